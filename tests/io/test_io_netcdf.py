"""NetCDF / Zarr readers and writers."""

from __future__ import annotations

import json

import dask.array as dsa
import netCDF4
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from _io_helpers import forbid_compute, no_temp_left
from pyproj import CRS

from carbonsink.errors import AlignmentError, InputError, InvalidArgumentError
from carbonsink.io import (read_cube, read_input, read_netcdf, read_zarr, write_netcdf,
                           write_zarr)

ALBERS = CRS.from_proj4("+proj=aea +lat_0=0 +lon_0=105 +lat_1=25 +lat_2=47 +x_0=0 +y_0=0 "
                        "+ellps=krass +units=m +no_defs")


def _latlon_file(path, *, lat_ascending=True, times=None, calendar="standard",
                 units="degC", name="TEM", extra_vars=()):
    """A CF file written with netCDF4 directly (as producers do)."""
    ny, nx, nt = 4, 6, 3
    lat = 40.0 + 0.5 * np.arange(ny) + 0.25
    lat = lat if lat_ascending else lat[::-1]
    lon = 110.0 + 0.5 * np.arange(nx) + 0.25
    rng = np.random.default_rng(0)
    data = rng.normal(5, 3, size=(nt, ny, nx)).astype("float32")
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("lat", ny)
        nc.createDimension("lon", nx)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01 00:00:00"
        t.calendar = calendar
        t.standard_name = "time"
        t[:] = times if times is not None else [0, 31, 60]
        la = nc.createVariable("lat", "f8", ("lat",))
        la.units = "degrees_north"
        la[:] = lat
        lo = nc.createVariable("lon", "f8", ("lon",))
        lo.units = "degrees_east"
        lo[:] = lon
        v = nc.createVariable(name, "f4", ("time", "lat", "lon"), fill_value=-9999.0)
        v.units = units
        v.long_name = "monthly mean air temperature"
        v[:] = data
        for extra in extra_vars:
            e = nc.createVariable(extra, "f4", ("time", "lat", "lon"))
            e[:] = data
        nc.title = "test"
    return data, lat, lon


def test_latlon_netcdf_standardised(tmp_path):
    p = tmp_path / "tem.nc"
    data, lat, lon = _latlon_file(p)
    da = read_netcdf(p)
    assert da.dims == ("time", "y", "x")
    assert da.name == "TEM"
    assert da.attrs["units"] == "degC" and da.attrs["long_name"].startswith("monthly")
    assert da.rio.crs.to_epsg() == 4326
    np.testing.assert_allclose(da.y.values, lat)  # file order kept (ascending)
    np.testing.assert_allclose(da.values, data)
    assert da.time.dtype == np.dtype("datetime64[ns]")
    assert [str(t)[:10] for t in da.time.values] == ["2000-01-01", "2000-02-01", "2000-03-01"]
    assert da.chunks is not None and da.chunks[0] == (3,)


def test_netcdf_lazy_and_equal(tmp_path):
    p = tmp_path / "tem.nc"
    data, _, _ = _latlon_file(p)
    with forbid_compute():
        da = read_input(p, variable="tas", chunks={"y": 2, "x": 3})
    assert isinstance(da.data, dsa.Array)
    assert da.chunks == ((3,), (2, 2), (3, 3))
    assert da.name == "tas"  # found TEM through the canonical aliases
    np.testing.assert_allclose(da.values, data)


def test_variable_selection_errors(tmp_path):
    p = tmp_path / "two.nc"
    _latlon_file(p, extra_vars=("PRE",))
    with pytest.raises(InputError, match=r"2 gridded variables \['TEM', 'PRE'\].*variable:"):
        read_netcdf(p)
    with pytest.raises(InputError, match=r"'npp' not found.*holds \['TEM', 'PRE'\]"):
        read_netcdf(p, "npp")
    assert read_netcdf(p, "pre").name == "pre"  # case-insensitive, named as asked


def test_units_override_and_frequency_snap(tmp_path):
    p = tmp_path / "mid.nc"
    _latlon_file(p, times=[15.5, 45.0, 74.5], units="K")
    da = read_input(p, units="degC", frequency="month")
    assert da.attrs["units"] == "degC" and da.attrs["units_in_file"] == "K"
    assert [str(t)[:10] for t in da.time.values] == ["2000-01-01", "2000-02-01", "2000-03-01"]
    raw = read_input(p)
    assert str(raw.time.values[0])[:13] == "2000-01-16T12"
    q = tmp_path / "daily.nc"
    _latlon_file(q, times=[0, 1, 2])
    with pytest.raises(InputError, match="several time steps fall into one month"):
        read_input(q, frequency="month")


def test_cftime_calendars(tmp_path):
    p = tmp_path / "noleap.nc"
    _latlon_file(p, times=[0, 31, 59], calendar="noleap")
    da = read_netcdf(p)
    assert da.time.dtype == np.dtype("datetime64[ns]")
    assert da.time.attrs["original_calendar"] == "noleap"
    assert [str(t)[:10] for t in da.time.values] == ["2000-01-01", "2000-02-01", "2000-03-01"]
    q = tmp_path / "d360.nc"
    _latlon_file(q, times=[59, 89, 119], calendar="360_day")  # 30 Feb exists here
    with pytest.raises(InputError, match="360_day.*frequency: month"):
        read_netcdf(q)
    da = read_netcdf(q, frequency="month")
    assert [str(t)[:10] for t in da.time.values] == ["2000-02-01", "2000-03-01", "2000-04-01"]


def test_descending_and_nonmonotonic_coordinates(tmp_path):
    p = tmp_path / "desc.nc"
    data, lat, _ = _latlon_file(p, lat_ascending=False)
    da = read_netcdf(p)
    np.testing.assert_allclose(da.y.values, lat)  # descending kept
    assert da.rio.resolution()[1] < 0
    # longitudes stored 0..360-style out of order become sorted
    ds = xr.open_dataset(p).load()
    ds = ds.isel(lon=[3, 4, 5, 0, 1, 2])
    ds.to_netcdf(tmp_path / "shuffled.nc")
    da2 = read_netcdf(tmp_path / "shuffled.nc")
    assert da2.indexes["x"].is_monotonic_increasing
    np.testing.assert_allclose(da2.values, data)


def _projected(path, *, gm: str | None):
    x = 500_000.0 + 1000.0 * (np.arange(5) + 0.5)
    y = 4_500_000.0 - 1000.0 * (np.arange(4) + 0.5)
    ds = xr.Dataset(
        {"npp": (("time", "y", "x"), np.arange(40, dtype="float32").reshape(2, 4, 5),
                 {"units": "g C m-2 month-1"})},
        coords={"time": pd.date_range("2001-01-01", periods=2, freq="MS"), "y": y, "x": x})
    if gm == "cf":
        ds["albers"] = xr.DataArray(0, attrs=ALBERS.to_cf())
        ds["albers"].attrs.pop("crs_wkt", None)
        ds["npp"].attrs["grid_mapping"] = "albers"
    elif gm == "wkt":
        ds["crs"] = xr.DataArray(0, attrs={"crs_wkt": ALBERS.to_wkt()})
        ds["npp"].attrs["grid_mapping"] = "crs"
    ds.to_netcdf(path)
    return ds


@pytest.mark.parametrize("gm", ["cf", "wkt"])
def test_grid_mapping_crs(tmp_path, gm):
    p = tmp_path / f"proj_{gm}.nc"
    ds = _projected(p, gm=gm)
    da = read_netcdf(p)
    assert CRS.from_user_input(da.rio.crs).equals(ALBERS)
    assert "albers" not in da.coords and "crs" not in da.coords
    assert da.rio.resolution() == pytest.approx((1000.0, -1000.0))
    np.testing.assert_array_equal(da.values, ds.npp.values)


def test_projected_without_crs(tmp_path):
    p = tmp_path / "nocrs.nc"
    _projected(p, gm=None)
    with pytest.raises(AlignmentError, match=r"no CRS: file .*nocrs\.nc variable npp.*crs:"):
        read_input(p)
    da = read_input(p, crs=ALBERS.to_wkt())
    assert CRS.from_user_input(da.rio.crs).equals(ALBERS)


def test_multi_file_concat_and_mismatch(tmp_path):
    a, b = tmp_path / "a.nc", tmp_path / "b.nc"
    d1, _, _ = _latlon_file(a, times=[0, 31, 60])
    d2, _, _ = _latlon_file(b, times=[91, 121, 152])
    da = read_input([b, a])
    assert da.sizes["time"] == 6 and da.indexes["time"].is_monotonic_increasing
    np.testing.assert_allclose(da.values, np.concatenate([d1, d2]))
    c = tmp_path / "c.nc"
    _latlon_file(c, lat_ascending=False, times=[182, 213, 244])
    with pytest.raises(AlignmentError, match=r"c\.nc is not on the grid"):
        read_input([a, c])


def test_extra_level_dimension(tmp_path):
    p = tmp_path / "lev.nc"
    ds = xr.Dataset({"tas": (("time", "lev", "lat", "lon"), np.zeros((2, 3, 2, 2), "f4"),
                             {"units": "K"})},
                    coords={"time": pd.date_range("2001-01-01", periods=2, freq="MS"),
                            "lev": [1, 2, 3], "lat": [1.0, 2.0], "lon": [1.0, 2.0]})
    ds.to_netcdf(p)
    with pytest.raises(InputError, match=r"extra dimensions \[\('lev', 3\)\]"):
        read_input(p)
    ds.isel(lev=[0]).to_netcdf(tmp_path / "lev1.nc")
    one = read_input(tmp_path / "lev1.nc")
    assert one.dims == ("time", "y", "x") and float(one["lev"]) == 1


def test_corrupt_and_missing(tmp_path):
    bad = tmp_path / "bad.nc"
    bad.write_text("not netcdf")
    with pytest.raises(InputError, match=r"cannot read NetCDF file .*bad\.nc"):
        read_input(bad)
    with pytest.raises(InputError, match=r"file not found: .*none\.nc; check inputs"):
        read_input(tmp_path / "none.nc")


# --------------------------------------------------------------------------- writers


def _cube(chunked=True):
    y = 45.0 - 0.5 * (np.arange(4) + 0.5)
    x = 100.0 + 0.5 * (np.arange(6) + 0.5)
    t = pd.date_range("2001-01-01", periods=5, freq="MS").as_unit("ns")
    vals = np.random.default_rng(3).random((5, 4, 6)).astype("float32") * 100
    vals[0, 0, 0] = np.nan
    da = xr.DataArray(vals, dims=("time", "y", "x"), coords={"time": t, "y": y, "x": x},
                      name="npp", attrs={"units": "g C m-2 month-1",
                                         "long_name": "net primary production",
                                         "parameters": {"eps_max": 0.389}})
    da = da.rio.write_crs("EPSG:4326")
    return da.chunk({"time": -1, "y": 2, "x": 3}) if chunked else da


PROV = {"carbonsink_version": "0.1.0", "study_hash": "abc123", "history": "carbonsink run x"}


def test_write_netcdf_cf_round_trip(tmp_path):
    da = _cube()
    out = write_netcdf(da, tmp_path / "out" / "npp.nc", attrs=PROV)
    with netCDF4.Dataset(out) as nc:
        assert nc.Conventions == "CF-1.8"
        assert nc.carbonsink_version == "0.1.0" and nc.study_hash == "abc123"
        assert nc.history == "carbonsink run x"
        v = nc["npp"]
        # on disk: UDUNITS-parseable units ("C" would be the coulomb), carbonsink's label kept
        assert v.units == "g m-2 month-1" and v.carbonsink_units == "g C m-2 month-1"
        assert v.grid_mapping == "spatial_ref"
        assert json.loads(v.parameters) == {"eps_max": 0.389}
        assert "crs_wkt" in nc["spatial_ref"].ncattrs()
        assert nc["spatial_ref"].grid_mapping_name == "latitude_longitude"
        assert nc["x"].standard_name == "longitude" and nc["y"].units == "degrees_north"
        assert nc["time"].standard_name == "time"
    back = read_netcdf(out)
    assert back.rio.crs.to_epsg() == 4326
    assert back.attrs["units"] == "g C m-2 month-1"
    np.testing.assert_array_equal(back.values, da.values)
    np.testing.assert_array_equal(back.time.values, da.time.values)
    np.testing.assert_allclose(back.x.values, da.x.values)
    assert no_temp_left(tmp_path)


def test_write_netcdf_dataset_history_prepended(tmp_path):
    ds = _cube(chunked=False).to_dataset()
    ds["rh"] = ds["npp"] * 0.5
    ds.attrs["history"] = "older step"
    out = write_netcdf(ds, tmp_path / "c.nc", attrs={"history": "newer step"})
    back = xr.open_dataset(out)
    assert back.attrs["history"] == "newer step\nolder step"
    assert back["rh"].attrs["grid_mapping"] == "spatial_ref"
    back.close()
    rh = read_netcdf(out, "rh")
    np.testing.assert_allclose(rh.values, ds["rh"].values)


def test_write_netcdf_projected_round_trip(tmp_path):
    p = tmp_path / "proj.nc"
    _projected(p, gm="cf")
    da = read_netcdf(p)
    out = write_netcdf(da, tmp_path / "again.nc")
    back = read_netcdf(out)
    assert CRS.from_user_input(back.rio.crs).equals(ALBERS)
    np.testing.assert_array_equal(back.values, da.values)


def _failing(da):
    def boom(block):
        raise RuntimeError("compute failed mid-write")

    return da.copy(data=da.data.map_blocks(boom, dtype=da.dtype,
                                           meta=np.array((), dtype=da.dtype)))


def test_write_netcdf_atomic(tmp_path):
    target = tmp_path / "npp.nc"
    with pytest.raises(RuntimeError, match="mid-write"):
        write_netcdf(_failing(_cube()), target)
    assert not target.exists() and no_temp_left(tmp_path)
    write_netcdf(_cube(), target, attrs={"run": 1})
    with pytest.raises(RuntimeError, match="mid-write"):
        write_netcdf(_failing(_cube()), target, attrs={"run": 2})
    with netCDF4.Dataset(target) as nc:
        assert nc.run == 1  # the previous complete output is untouched
    assert no_temp_left(tmp_path)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_write_zarr_round_trip(tmp_path, zarr_format):
    da = _cube()
    out = write_zarr(da, tmp_path / "cube.zarr", attrs=PROV, zarr_format=zarr_format)
    raw = xr.open_zarr(out, decode_coords="all")
    assert raw.attrs["Conventions"] == "CF-1.8" and raw.attrs["study_hash"] == "abc123"
    assert raw["npp"].encoding["grid_mapping"] == "spatial_ref"
    assert raw["npp"].encoding["chunks"] == (5, 2, 3)
    with forbid_compute():
        back = read_zarr(out)
    assert back.rio.crs.to_epsg() == 4326 and back.attrs["units"] == "g C m-2 month-1"
    assert json.loads(back.attrs["parameters"]) == {"eps_max": 0.389}
    np.testing.assert_array_equal(back.values, da.values)
    np.testing.assert_array_equal(back.time.values, da.time.values)
    via = read_input(out, variable="npp")
    np.testing.assert_array_equal(via.values, da.values)


def test_write_zarr_atomic_and_replaces(tmp_path):
    target = tmp_path / "cube.zarr"
    with pytest.raises(RuntimeError, match="mid-write"):
        write_zarr(_failing(_cube()), target)
    assert not target.exists() and no_temp_left(tmp_path)
    write_zarr(_cube(), target, attrs={"run": 1})
    with pytest.raises(RuntimeError, match="mid-write"):
        write_zarr(_failing(_cube()), target, attrs={"run": 2})
    assert xr.open_zarr(target).attrs["run"] == 1
    write_zarr(_cube() * 2, target, attrs={"run": 3})
    back = xr.open_zarr(target)
    assert back.attrs["run"] == 3
    np.testing.assert_allclose(back["npp"].values, _cube().values * 2)
    assert no_temp_left(tmp_path)


def test_write_zarr_irregular_chunks(tmp_path):
    da = _cube(chunked=False).chunk({"time": (2, 3), "y": (1, 3), "x": 6})
    out = write_zarr(da, tmp_path / "irr.zarr")
    np.testing.assert_array_equal(read_zarr(out).values, da.values)


def test_real_cmip_noleap_file(shared_data):
    p = shared_data / "cmip" / "tas_Amon_CanESM2_rcp85_r1i1p1_200701-200712.nc"
    if not p.exists():
        pytest.skip(f"{p} is absent")
    with forbid_compute():
        tas = read_input(p, variable="tas", frequency="month")
    assert tas.dims == ("time", "y", "x") and tas.shape == (12, 64, 128)
    assert tas.attrs["units"] == "K"
    assert tas.time.attrs["original_calendar"] == "noleap"
    assert [str(t)[:10] for t in tas.time.values[[0, -1]]] == ["2006-12-01", "2007-11-01"]
    assert tas.rio.crs.to_epsg() == 4326
    assert float(tas["height"]) == pytest.approx(2.0)  # scalar coordinate kept
    assert 180 < float(tas.min()) and float(tas.max()) < 330


@pytest.mark.parametrize("suffix", [".zarr", ".nc"])
def test_read_cube_restores_dataset(tmp_path, suffix):
    ds = _cube().to_dataset()
    ds["rh"] = (ds["npp"] * 0.4).assign_attrs(units="g C m-2 month-1")
    ds["area"] = xr.DataArray(np.full((4, 6), 2.5e9), dims=("y", "x"),
                              coords={"y": ds.y, "x": ds.x}, attrs={"units": "m2"})
    ds = ds.rio.write_crs("EPSG:4326")
    writer = write_zarr if suffix == ".zarr" else write_netcdf
    out = writer(ds, tmp_path / f"inputs_monthly{suffix}", attrs={"step": "prepare"})
    with forbid_compute():
        back = read_cube(out, chunks={"y": 2, "x": 3})
    assert set(back.data_vars) == {"npp", "rh", "area"}
    assert back.attrs["step"] == "prepare" and back.attrs["Conventions"] == "CF-1.8"
    assert back.rio.crs.to_epsg() == 4326
    for v in ("npp", "rh", "area"):
        assert back[v].rio.crs.to_epsg() == 4326
        assert back[v].attrs["units"] == ds[v].attrs["units"]
        assert isinstance(back[v].data, dsa.Array)
        np.testing.assert_allclose(back[v].values, ds[v].values)
    assert back["npp"].chunks == ((5,), (2, 2), (3, 3))
    np.testing.assert_array_equal(back.time.values, ds.time.values)


def test_read_cube_latlon_file_and_8day_frequency(tmp_path):
    p = tmp_path / "tem.nc"
    _latlon_file(p, times=[0, 8, 16])
    cube = read_cube(p)
    assert cube["TEM"].dims == ("time", "y", "x") and cube.rio.crs.to_epsg() == 4326
    da = read_input(p, frequency="8day")
    assert [str(t)[:10] for t in da.time.values] == ["2000-01-01", "2000-01-09", "2000-01-17"]
    static = read_input(p, frequency="static")
    assert static.sizes["time"] == 3
    with pytest.raises(InvalidArgumentError, match="unknown frequency 'weekly'"):
        read_input(p, frequency="weekly")
