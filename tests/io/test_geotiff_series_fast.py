"""read_geotiff_series: the direct dask path (one rioxarray open, one task per file and
spatial chunk) against the per-file concatenation it replaces."""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr
from _io_helpers import forbid_compute, write_tif
from rasterio.transform import from_origin

import carbonsink.io.geotiff as geotiff
from carbonsink.errors import AlignmentError
from carbonsink.io import read_geotiff_series, read_input

PATTERN = r"NDVI_(?P<year>\d{4})(?P<month>\d{2})"
MONTHS = (3, 1, 5, 2, 4)  # written out of order: the reader sorts by date


def _raw(m: int, dtype: str, shape=(7, 6)) -> np.ndarray:
    return (np.arange(np.prod(shape)).reshape(shape) * 3 + 100 * m).astype(dtype)


def _write(tmp_path, kind: str, months=MONTHS) -> dict[int, np.ndarray]:
    """A series of one kind; returns the expected decoded values per month."""
    expected = {}
    for m in months:
        path = tmp_path / f"NDVI_2019{m:02d}.tif"
        tags = {"units": "1", "source_product": "test", "date": f"2019-{m:02d}"}
        if kind == "int16_tag_scale":
            a = _raw(m, "int16")
            a[0, 0] = a[3, 2] = -3000
            write_tif(path, a, nodata=-3000, tags={**tags, "scale_factor": "0.0001",
                                                   "add_offset": "0.5"})
            e = a.astype("float32") * np.float32(1e-4) + np.float32(0.5)
            e[a == -3000] = np.nan
        elif kind == "float32_nan":
            a = _raw(m, "float32") / 7
            a[1, 1] = a[6, 5] = np.nan
            write_tif(path, a, nodata=np.nan, tags=tags)
            e = a
        elif kind == "uint8_gdal_scale":
            a = _raw(m, "uint8") % 250
            a[2, 3] = 255
            write_tif(path, a, nodata=255, tags=tags, scales=[0.004], offsets=[-0.08])
            e = a.astype("float32") * np.float32(0.004) + np.float32(-0.08)
            e[a == 255] = np.nan
        elif kind == "int16_no_nodata":
            a = _raw(m, "int16")
            write_tif(path, a, tags=tags)
            e = a.astype("float32")
        else:  # pragma: no cover
            raise ValueError(kind)
        expected[m] = e
    return expected


def _count_opens(monkeypatch) -> list:
    calls = []
    real = geotiff._open

    def counting(meta, chunks):
        calls.append(meta.path.name)
        return real(meta, chunks)

    monkeypatch.setattr(geotiff, "_open", counting)
    return calls


def _same(old: xr.DataArray, new: xr.DataArray) -> None:
    xr.testing.assert_identical(old, new)
    assert old.dtype == new.dtype
    assert old.chunks == new.chunks
    assert type(old.data) is type(new.data)
    assert old.encoding.keys() == new.encoding.keys()
    for k, v in old.encoding.items():  # NaN fill values compare equal here
        w = new.encoding[k]
        assert type(v) is type(w) and (v == w or (v != v and w != w)), (k, v, w)
    assert old.rio.crs == new.rio.crs
    assert old.rio.transform() == new.rio.transform()
    xr.testing.assert_identical(old.spatial_ref, new.spatial_ref)


@pytest.mark.parametrize("kind", ["int16_tag_scale", "float32_nan", "uint8_gdal_scale",
                                  "int16_no_nodata"])
@pytest.mark.parametrize("chunks", ["file", "auto", None, 3, {"y": 4, "x": 2}])
def test_direct_path_equals_concatenation(tmp_path, monkeypatch, kind, chunks):
    expected = _write(tmp_path, kind)
    old = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, variable="ndvi",
                              chunks=chunks, _fast=False)
    opens = _count_opens(monkeypatch)
    new = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, variable="ndvi",
                              chunks=chunks)
    assert opens == ["NDVI_201901.tif"]  # the direct path ran: only the first file opened
    _same(old, new)
    assert "date" not in new.attrs and new.attrs["source_product"] == "test"
    assert new.encoding["source"].endswith("NDVI_201901.tif")
    want = np.stack([expected[m] for m in sorted(MONTHS)])
    np.testing.assert_array_equal(new.values, want)  # same float32 arithmetic
    assert new.values.dtype == want.dtype


def test_chunks_and_packing_as_before(tmp_path):
    _write(tmp_path, "int16_tag_scale")
    da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks={"y": 4, "x": 2})
    assert isinstance(da.data, dsa.Array)
    assert da.chunks == ((5,), (4, 3), (2, 2, 2))
    assert da.encoding["dtype"] == np.dtype("int16")
    assert (da.encoding["scale_factor"], da.encoding["add_offset"]) == (1e-4, 0.5)
    assert da.encoding["_FillValue"] == -3000
    assert da.attrs["nodata_in_file"] == -3000
    assert da.rio.transform() == from_origin(100.0, 45.0, 0.5, 0.5)
    assert da.rio.crs.to_epsg() == 4326


def test_file_chunks_group_files(tmp_path, monkeypatch):
    _write(tmp_path, "float32_nan")
    # several groups of files per time chunk (real series: 12 files per chunk)
    monkeypatch.setattr("carbonsink.io._common.file_chunks",
                        lambda *a: {"time": 2, "y": 7, "x": 6})
    old = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks="file", _fast=False)
    new = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks="file")
    assert new.chunks == ((2, 2, 1), (7,), (6,))
    _same(old, new)


def test_lazy_and_threadsafe(tmp_path):
    expected = _write(tmp_path, "int16_tag_scale")
    with forbid_compute():
        da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks=2)
    assert len(da.chunks[1]) * len(da.chunks[2]) == 12
    with dask.config.set(scheduler="threads", num_workers=2):
        got = da.values
    np.testing.assert_array_equal(got, np.stack([expected[m] for m in sorted(MONTHS)]))


def test_read_input_month_series(tmp_path, monkeypatch):
    expected = _write(tmp_path, "int16_tag_scale")
    kw = dict(variable="ndvi", units="1", date_pattern=PATTERN, frequency="month")
    opens = _count_opens(monkeypatch)
    da = read_input(str(tmp_path / "NDVI_*.tif"), chunks="file", **kw)
    assert opens == ["NDVI_201901.tif"]
    assert [str(t)[:7] for t in da.time.values] == [f"2019-{m:02d}" for m in sorted(MONTHS)]
    np.testing.assert_array_equal(da.values, np.stack([expected[m] for m in sorted(MONTHS)]))


def test_files_that_differ_fall_back(tmp_path, monkeypatch):
    expected = _write(tmp_path, "int16_tag_scale", months=(1, 2))
    a = _raw(3, "int16")
    write_tif(tmp_path / "NDVI_201903.tif", a, nodata=-3000,
              tags={"units": "1", "scale_factor": "0.01", "add_offset": "0"})
    expected[3] = a.astype("float32") * np.float32(0.01)
    opens = _count_opens(monkeypatch)
    da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks=3)
    assert len(opens) == 3  # every file opened and concatenated
    np.testing.assert_array_equal(da.values, np.stack([expected[m] for m in (1, 2, 3)]))
    _same(read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks=3, _fast=False), da)


def test_differing_dtype_or_nodata_fall_back(tmp_path, monkeypatch):
    _write(tmp_path, "float32_nan", months=(1,))
    a = _raw(2, "float32")
    a[0, 0] = -1
    write_tif(tmp_path / "NDVI_201902.tif", a, nodata=-1, tags={"units": "1"})
    opens = _count_opens(monkeypatch)
    da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks="auto")
    assert len(opens) == 2
    assert np.isnan(da.values[1, 0, 0]) and da.values[1, 0, 1] == a[0, 1]


@pytest.mark.parametrize("fast", [True, False])
def test_grid_mismatch_same_error(tmp_path, fast):
    _write(tmp_path, "int16_tag_scale", months=(1, 2))
    write_tif(tmp_path / "NDVI_201903.tif", np.zeros((7, 6), "int16"), nodata=-3000,
              transform=from_origin(100.5, 45.0, 0.5, 0.5),
              tags={"units": "1", "scale_factor": "0.0001", "add_offset": "0.5"})
    with pytest.raises(AlignmentError, match=r"file .*NDVI_201903\.tif is not on the grid of "
                       r".*NDVI_201901\.tif: transform .* differs from .*; fix: reproject"):
        read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, _fast=fast)
    (tmp_path / "NDVI_201903.tif").unlink()
    write_tif(tmp_path / "NDVI_201903.tif", np.zeros((6, 6), "int16"), nodata=-3000,
              tags={"units": "1"})
    with pytest.raises(AlignmentError, match=r"NDVI_201903\.tif is not on the grid.*shape 6x6 "
                       r"differs from 7x6"):
        read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, _fast=fast)
