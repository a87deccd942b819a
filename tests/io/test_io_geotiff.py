"""GeoTIFF readers (series, stacks) and the COG writer."""

from __future__ import annotations

import datetime as dt

import dask.array as dsa
import numpy as np
import pytest
import rasterio
import xarray as xr
from _io_helpers import forbid_compute, no_temp_left, write_tif
from hypothesis import given, settings
from hypothesis import strategies as st
from rasterio.transform import from_origin

from carbonsink.errors import AlignmentError, InputError, InvalidArgumentError
from carbonsink.io import parse_date, read_geotiff, read_geotiff_series, read_input, write_cog


def _series(tmp_path, months=(3, 1, 2), **kw):
    data = {}
    for m in months:
        arr = (np.arange(20, dtype="int16").reshape(4, 5) + 100 * m)
        arr[0, 0] = -9999
        write_tif(tmp_path / f"NDVI_2019{m:02d}.tif", arr, nodata=-9999,
                  tags={"units": "1", "scale_factor": "0.0001", "add_offset": "0",
                        "source_product": "test"}, **kw)
        data[m] = arr
    return data


def test_series_sorted_scaled_masked(tmp_path):
    data = _series(tmp_path)
    da = read_geotiff_series(str(tmp_path / "NDVI_*.tif"),
                             r"NDVI_(?P<year>\d{4})(?P<month>\d{2})", variable="ndvi")
    assert da.dims == ("time", "y", "x") and da.shape == (3, 4, 5)
    assert da.time.dtype == np.dtype("datetime64[ns]")
    assert [str(t)[:10] for t in da.time.values] == ["2019-01-01", "2019-02-01", "2019-03-01"]
    assert da.name == "ndvi"
    assert da.attrs["units"] == "1"
    assert da.attrs["source_product"] == "test"
    assert "scale_factor" not in da.attrs  # applied, so no longer an instruction
    assert da.rio.crs.to_epsg() == 4326
    assert da.chunks[0] == (3,)  # time whole
    v = da.values
    assert np.isnan(v[:, 0, 0]).all()
    np.testing.assert_allclose(v[1, 2, 3], data[2][2, 3] * 1e-4, rtol=1e-6)
    np.testing.assert_allclose(v[0, 1:], data[1][1:] * 1e-4, rtol=1e-6)
    assert da.rio.transform() == from_origin(100.0, 45.0, 0.5, 0.5)


def test_series_is_lazy(tmp_path):
    _series(tmp_path)
    with forbid_compute():
        da = read_geotiff_series(sorted(tmp_path.glob("*.tif")),
                                 r"NDVI_(?P<year>\d{4})(?P<month>\d{2})", chunks={"y": 2, "x": 5})
    assert isinstance(da.data, dsa.Array)
    assert da.chunks == ((3,), (2, 2), (5,))
    eager = read_geotiff_series(sorted(tmp_path.glob("*.tif")),
                                r"NDVI_(?P<year>\d{4})(?P<month>\d{2})", chunks=None)
    np.testing.assert_array_equal(da.values, eager.values)


def test_series_doy_pattern(tmp_path):
    for doy in (17, 1, 9):
        write_tif(tmp_path / f"gpp.A2019{doy:03d}.tif", np.full((3, 3), doy, "float32"))
    da = read_input(str(tmp_path / "gpp.*.tif"), date_pattern=r"A(?P<year>\d{4})(?P<doy>\d{3})")
    assert [str(t)[:10] for t in da.time.values] == ["2019-01-01", "2019-01-09", "2019-01-17"]
    assert da.values[:, 0, 0].tolist() == [1.0, 9.0, 17.0]
    assert "units" not in da.attrs  # none in the file: not invented


def test_series_grid_mismatch_names_file(tmp_path):
    _series(tmp_path, months=(1, 2))
    write_tif(tmp_path / "NDVI_201903.tif", np.zeros((4, 5), "int16"), nodata=-9999,
              transform=from_origin(100.5, 45.0, 0.5, 0.5), tags={"units": "1"})
    with pytest.raises(AlignmentError, match=r"NDVI_201903\.tif.*not on the grid.*transform"):
        read_geotiff_series(str(tmp_path / "*.tif"), r"(?P<year>\d{4})(?P<month>\d{2})")
    (tmp_path / "NDVI_201903.tif").unlink()
    write_tif(tmp_path / "NDVI_201903.tif", np.zeros((4, 6), "int16"), nodata=-9999,
              tags={"units": "1"})
    with pytest.raises(AlignmentError, match=r"NDVI_201903\.tif.*shape 4x6"):
        read_geotiff_series(str(tmp_path / "*.tif"), r"(?P<year>\d{4})(?P<month>\d{2})")


def test_series_bad_names_and_duplicates(tmp_path):
    _series(tmp_path, months=(1,))
    write_tif(tmp_path / "NDVI_latest.tif", np.zeros((4, 5), "int16"))
    with pytest.raises(InputError, match=r"NDVI_latest\.tif.*date_pattern"):
        read_geotiff_series(str(tmp_path / "*.tif"), r"NDVI_(?P<year>\d{4})(?P<month>\d{2})")
    (tmp_path / "NDVI_latest.tif").unlink()
    write_tif(tmp_path / "NDVI_201901_v2.tif", np.zeros((4, 5), "int16"))
    with pytest.raises(InputError, match="several files have the date 2019-01-01"):
        read_geotiff_series(str(tmp_path / "*.tif"), r"NDVI_(?P<year>\d{4})(?P<month>\d{2})")
    with pytest.raises(InvalidArgumentError, match="named group 'year'"):
        read_geotiff_series(str(tmp_path / "*.tif"), r"NDVI_(\d{4})")


def test_parse_date_variants():
    assert str(parse_date("a/b/NDVI_2019.tif", r"(?P<year>\d{4})"))[:10] == "2019-01-01"
    assert str(parse_date("t_20200229.tif",
                          r"(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})"))[:10] == "2020-02-29"
    assert str(parse_date("x.A2020366.tif", r"A(?P<year>\d{4})(?P<doy>\d{3})"))[:10] == \
        "2020-12-31"
    with pytest.raises(InputError, match="not a valid date"):
        parse_date("t_201913.tif", r"(?P<year>\d{4})(?P<month>\d{2})")
    with pytest.raises(InputError, match="not a valid date"):
        parse_date("x.A2019366.tif", r"A(?P<year>\d{4})(?P<doy>\d{3})")


def test_multiband_stack_with_dates(tmp_path):
    arr = np.stack([np.full((3, 4), i, "float32") for i in range(3)])
    p = write_tif(tmp_path / "stack.tif", arr, nodata=-1.0, tags={"units": "degC"},
                  descriptions=["2001-03-01", "2001-01-01", "2001-02-01"])
    da = read_geotiff(p, band_dates="from_descriptions", variable="tas")
    assert da.dims == ("time", "y", "x")
    assert [str(t)[:7] for t in da.time.values] == ["2001-01", "2001-02", "2001-03"]
    assert da.values[:, 0, 0].tolist() == [1.0, 2.0, 0.0]   # sorted with their bands
    assert da.attrs["units"] == "degC" and da.name == "tas"
    da2 = read_input(p, band_dates=["2005-01-01", "2005-02-01", "2005-03-01"])
    assert da2.values[:, 0, 0].tolist() == [0.0, 1.0, 2.0]
    raw = read_geotiff(p)
    assert raw.dims == ("band", "y", "x")
    with pytest.raises(InputError, match="3 bands.*band_dates"):
        read_input(p)
    with pytest.raises(InputError, match="3 bands but 2 band_dates"):
        read_geotiff(p, band_dates=["2005-01-01", "2005-02-01"])
    q = write_tif(tmp_path / "nodesc.tif", arr)
    with pytest.raises(InputError, match="band 1 description"):
        read_geotiff(q, band_dates="from_descriptions")


def test_gdal_band_scale_offset_and_band_units(tmp_path):
    arr = np.array([[0, 10], [20, 255]], dtype="uint8")
    p = write_tif(tmp_path / "t.tif", arr, nodata=255, scales=[0.5], offsets=[-10.0],
                  band_tags=[{"units": "degC", "long_name": "air temperature"}])
    da = read_geotiff(p)
    assert da.dims == ("y", "x")
    np.testing.assert_allclose(da.values, [[-10.0, -5.0], [0.0, np.nan]])
    assert da.attrs["units"] == "degC" and da.attrs["long_name"] == "air temperature"
    over = read_input(p, units="K", variable="tas")
    assert over.attrs["units"] == "K" and over.attrs["units_in_file"] == "degC"


def test_no_crs_is_alignment_error_unless_given(tmp_path):
    p = tmp_path / "nocrs.tif"
    with rasterio.open(p, "w", driver="GTiff", height=2, width=2, count=1, dtype="float32",
                       transform=from_origin(0, 2, 1, 1)) as dst:
        dst.write(np.ones((1, 2, 2), "float32"))
    with pytest.raises(AlignmentError, match=r"no CRS.*nocrs\.tif.*crs:"):
        read_input(p)
    da = read_input(p, crs="EPSG:32650")
    assert da.rio.crs.to_epsg() == 32650


def test_write_cog_round_trip(tmp_path):
    y = 40.0 - 0.1 * (np.arange(64) + 0.5)
    x = 100.0 + 0.1 * (np.arange(80) + 0.5)
    vals = np.random.default_rng(1).random((64, 80)).astype("float32") * 500
    vals[3, 4] = np.nan
    da = xr.DataArray(vals, dims=("y", "x"), coords={"y": y, "x": x}, name="npp",
                      attrs={"units": "g C m-2 yr-1", "long_name": "net primary production"})
    da = da.rio.write_crs("EPSG:4326").expand_dims(time=[np.datetime64("2019-01-01", "ns")])
    out = write_cog(da.chunk({"y": 16}), tmp_path / "maps" / "npp_2019.tif",
                    attrs={"carbonsink_version": "0.1.0", "models": {"npp": "casa"}},
                    blocksize=16)
    with rasterio.open(out) as src:
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        assert src.overviews(1), "COG has overviews"
        assert src.is_tiled
        # lossless DEFLATE with the floating-point predictor (values compared exactly below)
        assert src.profile["compress"].lower() == "deflate"
        assert src.tags(ns="IMAGE_STRUCTURE").get("PREDICTOR") == "3"
        tags = src.tags()
        assert tags["units"] == "g C m-2 yr-1"
        assert tags["long_name"] == "net primary production"
        assert tags["carbonsink_version"] == "0.1.0"
        assert '"casa"' in tags["models"]
        assert tags["time"].startswith("2019-01-01")
        assert np.isnan(src.nodata)
        assert src.crs.to_epsg() == 4326
        assert src.transform.almost_equals(from_origin(100.0, 40.0, 0.1, 0.1), precision=1e-9)
    back = read_geotiff(out)
    np.testing.assert_array_equal(back.values, vals)
    assert back.attrs["units"] == "g C m-2 yr-1"
    assert no_temp_left(tmp_path)


def test_write_cog_rejects_stacks_and_missing_crs(tmp_path):
    da = xr.DataArray(np.zeros((2, 3, 3), "float32"), dims=("time", "y", "x"),
                      coords={"y": [3.0, 2.0, 1.0], "x": [1.0, 2.0, 3.0]})
    with pytest.raises(ValueError, match="one 2-D layer"):
        write_cog(da.rio.write_crs(4326), tmp_path / "a.tif")
    with pytest.raises(AlignmentError, match="no CRS"):
        write_cog(da.isel(time=0), tmp_path / "a.tif")
    assert not (tmp_path / "a.tif").exists()


def test_write_cog_atomic_on_failure(tmp_path):
    target = tmp_path / "npp.tif"
    good = xr.DataArray(np.ones((8, 8), "float32"), dims=("y", "x"),
                        coords={"y": np.arange(8.0)[::-1], "x": np.arange(8.0)}, name="npp")
    good = good.rio.write_crs(4326)
    write_cog(good, target)
    before = target.read_bytes()

    def boom(block):
        raise RuntimeError("disk full")

    bad = good.copy(data=dsa.from_array(np.ones((8, 8), "float32"), chunks=4).map_blocks(
        boom, dtype="float32", meta=np.array((), "float32")))
    with pytest.raises(RuntimeError, match="disk full"):
        write_cog(bad, target)
    assert target.read_bytes() == before
    assert no_temp_left(tmp_path)


def test_real_landcover_geotiff(shared_data):
    path = shared_data / "landcover" / "MCD12C1.A2019001.006.2020220162300.tif"
    if not path.exists():
        pytest.skip(f"{path} is absent")
    with forbid_compute():
        lc = read_input(path, variable="landcover", units="1")
    assert lc.shape == (3600, 7200)
    assert lc.rio.crs.is_geographic
    assert lc.rio.resolution() == pytest.approx((0.05, -0.05))
    # Inner Mongolia window: land classes only, no nodata
    win = lc.sel(y=slice(45, 40), x=slice(110, 120)).values
    assert np.isfinite(win).all()
    assert set(np.unique(win)) <= set(range(0, 17))
    # Antarctic/ocean cells: water (0) present globally, nodata 255 became NaN not 255
    assert float(lc.max()) <= 16


@settings(max_examples=60, deadline=None)
@given(st.dates(min_value=dt.date(1900, 1, 1), max_value=dt.date(2199, 12, 31)))
def test_parse_date_property(day):
    ymd = parse_date(f"x_{day:%Y%m%d}_v1.tif",
                     r"_(?P<year>\d{4})(?P<month>\d{2})(?P<day>\d{2})_")
    doy = parse_date(f"MOD.A{day:%Y%j}.h26v04.tif", r"\.A(?P<year>\d{4})(?P<doy>\d{3})\.")
    expected = np.datetime64(day.isoformat(), "ns")
    assert ymd == expected and doy == expected
