"""NetCDF-4 variables read by byte offset (io._h5chunks) against netCDF-C's own reads."""

from __future__ import annotations

import threading
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from carbonsink.io import read_netcdf
from carbonsink.io._h5chunks import DirectNetCDF4Store, HDF5ChunkArray

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"


def _write(path: Path, *, dtype="i2", chunks=(5, 7, 6), fill=-999, **kw) -> np.ndarray:
    """A (13, 17, 11) variable whose chunks do not divide the shape; one chunk left
    unwritten (it reads as the fill value)."""
    rng = np.random.default_rng(0)
    vals = rng.integers(-3000, 3000, size=(13, 17, 11)).astype(dtype)
    with netCDF4.Dataset(path, "w") as ds:
        for d, n in zip(("time", "y", "x"), vals.shape):
            ds.createDimension(d, n)
            c = ds.createVariable(d, "f8", (d,))
            c[:] = np.arange(n) * (31.0 if d == "time" else 0.5) + (0 if d == "time" else 30)
        ds["time"].units = "days since 2001-01-01"
        ds["y"].units, ds["x"].units = "degrees_north", "degrees_east"
        v = ds.createVariable("v", dtype, ("time", "y", "x"), chunksizes=chunks,
                              fill_value=fill, **kw)
        v.set_auto_maskandscale(False)
        v[5:, :, :] = vals[5:]  # time 0-4: the first row of chunks is never written
        v[0:5, 0:7, 6:11] = vals[0:5, 0:7, 6:11]  # ... except one chunk
        v.scale_factor = np.float32(0.01)
        v.units = "degC"
    return vals


def _netcdf_c(path: Path, key) -> np.ndarray:
    with netCDF4.Dataset(path) as ds:
        v = ds["v"]
        v.set_auto_maskandscale(False)
        return np.asarray(v[key])


KEYS = [np.s_[:, :, :], np.s_[3:9, 2:15, 1:10], np.s_[0:13:4, ::3, 5], np.s_[-1, 16, :],
        np.s_[0:5, 0:7, 0:6], np.s_[4:6, 6:8, 5:7], np.s_[2:2, :, :]]


@pytest.mark.parametrize("layout", [
    dict(zlib=True, shuffle=True, complevel=1),
    dict(zlib=True, shuffle=False, complevel=4),
    dict(zlib=False),
    dict(zlib=True, shuffle=True, complevel=1, dtype="f4", fill=np.float32(np.nan)),
    dict(zlib=True, shuffle=True, complevel=2, dtype="i8", fill=-1),
])
def test_reads_equal_netcdf_c(tmp_path, layout):
    p = tmp_path / "a.nc"
    _write(p, **layout)
    arr = HDF5ChunkArray.of(str(p), "v")
    assert arr is not None
    for key in KEYS:
        ref = _netcdf_c(p, key)
        got = arr[xr.core.indexing.BasicIndexer(key)]
        assert got.dtype == ref.dtype and got.shape == ref.shape, key
        np.testing.assert_array_equal(got, ref, err_msg=str(key))
    # unwritten chunks read as the fill value, as netCDF-C returns them
    first = arr[xr.core.indexing.BasicIndexer(np.s_[0:5, 7:14, 0:6])]
    fill = layout.get("fill", -999)
    assert np.all(np.isnan(first)) if np.isnan(fill) else np.all(first == fill)


def test_other_layouts_keep_xarrays_reader(tmp_path):
    p = tmp_path / "b.nc"
    _write(p, zlib=True, fletcher32=True)  # a checksum filter: not decoded here
    assert HDF5ChunkArray.of(str(p), "v") is None
    p2 = tmp_path / "c.nc"
    _write(p2, contiguous=True, chunks=None)
    assert HDF5ChunkArray.of(str(p2), "v") is None
    p3 = tmp_path / "d.nc"
    _write(p3, zlib=True, endian="big", dtype=">i2")
    assert HDF5ChunkArray.of(str(p3), "v") is None
    # and still read correctly through the store
    for f in (p, p2, p3):
        ds = xr.open_dataset(DirectNetCDF4Store.open(str(f), mode="r"), mask_and_scale=False)
        np.testing.assert_array_equal(ds["v"].values, _netcdf_c(f, np.s_[:, :, :]))


def test_read_netcdf_decodes_as_before_and_reads_on_several_threads(tmp_path, monkeypatch):
    p = tmp_path / "e.nc"
    vals = _write(p, zlib=True, shuffle=True, complevel=1)
    da = read_netcdf(p, "v", chunks={"time": 5, "y": 7, "x": 6})
    ref = xr.open_dataset(p, engine="netcdf4")["v"]  # xarray's reader, CF-decoded
    assert da.dtype == ref.dtype == np.float32
    np.testing.assert_array_equal(da.values, ref.values)
    np.testing.assert_array_equal(da.values[5:], (vals[5:] * np.float32(0.01)))
    # the chunk reads run concurrently (no lock held around them)
    inside, most = [0], [0]
    lock = threading.Lock()
    orig = HDF5ChunkArray._decode

    def tracked(self, *a):
        with lock:
            inside[0] += 1
            most[0] = max(most[0], inside[0])
        try:
            import time

            time.sleep(0.05)
            return orig(self, *a)
        finally:
            with lock:
                inside[0] -= 1

    monkeypatch.setattr(HDF5ChunkArray, "_decode", tracked)
    da.data.compute(scheduler="threads", num_workers=4)
    assert most[0] >= 2


@pytest.mark.skipif(not (SHARED / "climate_cru").is_dir(), reason="../shared/data absent")
def test_real_cru_file_reads_as_with_xarray():
    f = SHARED / "climate_cru" / "cru_ts4.00_tas_iberia_monthly_1981-2010.nc"
    with open(f, "rb") as fh:
        if fh.read(4) != b"\x89HDF":
            pytest.skip(f"{f.name} is not a NetCDF-4 (HDF5) file")
    ds = xr.open_dataset(DirectNetCDF4Store.open(str(f), mode="r"))
    ref = xr.open_dataset(f, engine="netcdf4")
    for name in ref.data_vars:
        np.testing.assert_array_equal(ds[name].values, ref[name].values)
