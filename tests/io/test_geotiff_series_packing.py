"""read_geotiff_series: the packing encoding (dtype, scale_factor, add_offset, _FillValue)
of a series whose files store their values differently.

The series is decoded per file; its ``.encoding`` says how a copy is stored (write_zarr /
to_netcdf pack the floats with it). Only a packing shared by every file may be carried:
the first file's packing applied to the others rounds, wraps or masks their values.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from _io_helpers import write_tif

from carbonsink.io import read_geotiff_series, read_zarr, write_zarr

PATTERN = r"NDVI_(?P<year>\d{4})(?P<month>\d{2})"
PACKING_KEYS = ("scale_factor", "add_offset", "_FillValue", "missing_value", "dtype",
                "rasterio_dtype")

#: raw int16 values of the three files (3 x 4 pixels); -9999 is nodata
RAW = {
    1: np.array([[-9999, 12, 345, 1000], [7, -250, 0, 31], [99, 100, 101, 2047]], "int16"),
    2: np.array([[10, -9999, 345, 1234], [7, -251, 5, 32], [98, 101, 102, 2048]], "int16"),
    3: np.array([[11, 13, -9999, 1001], [8, -252, 3, 33], [97, 102, 103, 2049]], "int16"),
}
NAN = np.nan
#: decoded values of RAW[m] with scale 0.1 (m=1), 0.01 (m=2), 0.001 and offset 1 (m=3),
#: computed by hand
DECODED = {
    1: [[NAN, 1.2, 34.5, 100.0], [0.7, -25.0, 0.0, 3.1], [9.9, 10.0, 10.1, 204.7]],
    2: [[0.10, NAN, 3.45, 12.34], [0.07, -2.51, 0.05, 0.32], [0.98, 1.01, 1.02, 20.48]],
    3: [[1.011, 1.013, NAN, 2.001], [1.008, 0.748, 1.003, 1.033],
        [1.097, 1.102, 1.103, 3.049]],
}


def _write_scaled(tmp_path) -> None:
    packing = {1: ("0.1", "0"), 2: ("0.01", "0"), 3: ("0.001", "1")}
    for m, (scale, offset) in packing.items():
        write_tif(tmp_path / f"NDVI_2019{m:02d}.tif", RAW[m], nodata=-9999,
                  tags={"units": "1", "scale_factor": scale, "add_offset": offset})


def _round_trip(da: xr.DataArray, tmp_path) -> tuple[xr.DataArray, xr.Dataset]:
    """Written with write_zarr and read back (decoded, and as stored on disk)."""
    store = write_zarr(da.rename("ndvi"), tmp_path / "out.zarr")
    back = read_zarr(store, "ndvi", chunks=None)
    raw = xr.open_zarr(store, decode_cf=False, consolidated=True)
    return back, raw


def _assert_no_packing(da: xr.DataArray) -> None:
    left = {k: da.encoding[k] for k in PACKING_KEYS if k in da.encoding}
    assert not left, f"packing of one file carried by a mixed series: {left}"


@pytest.mark.parametrize("fast", [True, False])
def test_different_scale_factors_drop_packing(tmp_path, fast):
    _write_scaled(tmp_path)
    da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks=2, _fast=fast)
    assert da.dtype == np.float32
    for i, m in enumerate((1, 2, 3)):
        np.testing.assert_allclose(da.values[i], np.array(DECODED[m]), rtol=2e-7, atol=0)
    _assert_no_packing(da)
    assert da.encoding["source"].endswith("NDVI_201901.tif")
    assert da.encoding["grid_mapping"] == "spatial_ref"
    back, raw = _round_trip(da, tmp_path)
    assert raw["ndvi"].dtype == np.float32  # stored as the decoded floats, not int16
    assert "scale_factor" not in raw["ndvi"].attrs
    np.testing.assert_array_equal(back.values, da.values)  # NaN at the same places
    assert back.rio.crs == da.rio.crs


def test_different_nodata_drop_fill_value(tmp_path):
    # same scale, but 0 is nodata in the first file and a valid value in the second
    a = np.array([[0, 5, 10], [15, 20, 25]], "int16")
    b = np.array([[-32768, 0, 10], [0, 20, -5]], "int16")
    tags = {"units": "1", "scale_factor": "0.5"}
    write_tif(tmp_path / "NDVI_201901.tif", a, nodata=0, tags=tags)
    write_tif(tmp_path / "NDVI_201902.tif", b, nodata=-32768, tags=tags)
    da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN)
    want = np.array([[[NAN, 2.5, 5.0], [7.5, 10.0, 12.5]],
                     [[NAN, 0.0, 5.0], [0.0, 10.0, -2.5]]], "float32")
    np.testing.assert_array_equal(da.values, want)
    _assert_no_packing(da)
    assert "nodata_in_file" not in da.attrs  # differs between the files
    back, _ = _round_trip(da, tmp_path)
    np.testing.assert_array_equal(back.values, want)  # the zeros of file 2 stay 0, not NaN


def test_different_dtype_drop_packing(tmp_path):
    a = np.array([[-9999, 12], [345, 7]], "int16")
    b = np.array([[0.123456, np.nan], [-7.25, 1e6]], "float32")
    write_tif(tmp_path / "NDVI_201901.tif", a, nodata=-9999,
              tags={"units": "1", "scale_factor": "0.01"})
    write_tif(tmp_path / "NDVI_201902.tif", b, nodata=np.nan, tags={"units": "1"})
    da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN)
    want = np.array([[[NAN, 0.12], [3.45, 0.07]], [[0.123456, NAN], [-7.25, 1e6]]], "float32")
    np.testing.assert_allclose(da.values, want, rtol=2e-7, atol=0)
    _assert_no_packing(da)
    back, _ = _round_trip(da, tmp_path)
    np.testing.assert_array_equal(back.values, da.values)


@pytest.mark.parametrize("fast", [True, False])
def test_shared_packing_is_kept(tmp_path, fast):
    for m in (1, 2, 3):
        write_tif(tmp_path / f"NDVI_2019{m:02d}.tif", RAW[m], nodata=-9999,
                  tags={"units": "1", "scale_factor": "0.01", "add_offset": "0.5"})
    da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"), PATTERN, chunks=2, _fast=fast)
    assert da.encoding["dtype"] == np.dtype("int16")
    assert (da.encoding["scale_factor"], da.encoding["add_offset"]) == (0.01, 0.5)
    assert da.encoding["_FillValue"] == -9999
    # file 2, pixel (1, 1): -251 * 0.01 + 0.5 = -2.01; file 3, pixel (2, 3): 20.99
    assert da.values[1, 1, 1] == pytest.approx(-2.01, rel=1e-6)
    assert da.values[2, 2, 3] == pytest.approx(20.99, rel=1e-6)
    assert np.isnan(da.values[0, 0, 0]) and np.isnan(da.values[2, 0, 2])
    back, raw = _round_trip(da, tmp_path)
    assert raw["ndvi"].dtype == np.int16  # stored packed, as in the files
    np.testing.assert_array_equal(raw["ndvi"].values, np.stack([RAW[m] for m in (1, 2, 3)]))
    np.testing.assert_allclose(back.values, da.values, rtol=1e-6, atol=0)
    assert np.array_equal(np.isnan(back.values), np.isnan(da.values))
