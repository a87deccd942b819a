"""CLM5 / CTSM history reader: period-start stamps, true period lengths, names, grids."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from _io_helpers import forbid_compute

from carbonsink.errors import InputError, InvalidArgumentError, UnknownVariableError
from carbonsink.io import read_clm_history, read_input
from carbonsink.units import parse_units, to_canonical

NOLEAP_MONTH_DAYS = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31]
SPD = 86400.0


def _month_edges(year0: int, nmonths: int) -> np.ndarray:
    """Month edges in 'days since 1979-01-01' of a noleap calendar."""
    days = [0.0]
    for k in range(nmonths):
        days.append(days[-1] + NOLEAP_MONTH_DAYS[k % 12])
    off = 365.0 * (year0 - 1979)
    return np.asarray(days) + off


def write_clm(path, *, year0=1979, nmonths=3, fields=None, layout="grid", bounds="time_bounds",
              lon=(100.0, 101.25, 102.5), lat=(30.0, 31.0), coords1d="lat",
              calendar="noleap"):
    """A CLM-style monthly history file: end-of-month stamps, bounds, gC/m^2/s."""
    edges = _month_edges(year0, nmonths)
    lat = np.asarray(lat, dtype="f8")
    lon = np.asarray(lon, dtype="f8")
    fields = fields or {}
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("hist_interval", 2)
        t = nc.createVariable("time", "f8", ("time",))
        t.long_name = "time"
        t.units = "days since 1979-01-01 00:00:00"
        t.calendar = calendar
        if bounds:
            t.bounds = bounds
            b = nc.createVariable(bounds, "f8", ("time", "hist_interval"))
            b.long_name = "history time interval endpoints"
            b[:] = np.stack([edges[:-1], edges[1:]], axis=1)
        t[:] = edges[1:]  # CLM stamps the END of the averaging interval
        if layout == "grid":
            nc.createDimension("lat", len(lat))
            nc.createDimension("lon", len(lon))
            la = nc.createVariable("lat", "f4", ("lat",))
            la.units = "degrees_north"
            la[:] = lat
            lo = nc.createVariable("lon", "f4", ("lon",))
            lo.units = "degrees_east"
            lo[:] = lon
            space = ("lat", "lon")
        else:
            n = len(lat)
            nc.createDimension("lndgrid", n)
            la = nc.createVariable("lat" if coords1d == "lat" else "grid1d_lat", "f8",
                                   ("lndgrid",))
            la.units = "degrees_north"
            la[:] = lat
            lo = nc.createVariable("lon" if coords1d == "lat" else "grid1d_lon", "f8",
                                   ("lndgrid",))
            lo.units = "degrees_east"
            lo[:] = lon
            space = ("lndgrid",)
        for name, (units, values) in fields.items():
            v = nc.createVariable(name, "f4", ("time", *space), fill_value=1e36)
            v.units = units
            v.long_name = f"CLM {name}"
            v[:] = values
        nc.source = "Community Terrestrial Systems Model"
        nc.case_id = "test_case"


def _rates(nt, shape, value):
    return np.full((nt, *shape), value, dtype="f4")


def test_monthly_stamps_at_period_start_and_true_month_length(tmp_path):
    p = tmp_path / "case.clm2.h0.1979-01.nc"
    write_clm(p, fields={"NPP": ("gC/m^2/s", _rates(3, (2, 3), 1e-6))})
    ds = read_clm_history(p)
    npp = ds["npp"]
    assert list(npp.time.values.astype("datetime64[D]").astype(str)) == \
        ["1979-01-01", "1979-02-01", "1979-03-01"]
    assert npp.dims == ("time", "y", "x")
    assert npp.attrs["units"] == "g C m-2 month-1"
    parse_units(npp.attrs["units"])  # parses in the project's units registry
    assert npp.attrs["clm_name"] == "NPP"
    assert npp.attrs["carbonsink_native_calendar"] == "noleap"
    # January: 1e-6 g C m-2 s-1 x 31 days = 2.6784 (not 2.419 = 28 days, the bug)
    assert float(npp.isel(time=0, y=0, x=0)) == pytest.approx(1e-6 * 31 * SPD, rel=1e-6)
    assert float(npp.isel(time=0, y=0, x=0)) == pytest.approx(2.6784, rel=1e-5)
    assert float(npp.isel(time=1, y=0, x=0)) == pytest.approx(1e-6 * 28 * SPD, rel=1e-6)
    assert float(npp.isel(time=2, y=0, x=0)) == pytest.approx(1e-6 * 31 * SPD, rel=1e-6)
    assert ds.rio.crs.to_epsg() == 4326 and npp.rio.crs.to_epsg() == 4326


def test_time_bnds_name_and_no_bounds_fall_back_to_end_convention(tmp_path):
    p1 = tmp_path / "a.nc"
    write_clm(p1, bounds="time_bnds", fields={"HR": ("gC/m^2/s", _rates(3, (2, 3), 2e-6))})
    rh = read_clm_history(p1, "rh")["rh"]
    assert str(rh.time.values[0])[:10] == "1979-01-01"
    assert float(rh[1, 0, 0]) == pytest.approx(2e-6 * 28 * SPD, rel=1e-6)
    p2 = tmp_path / "b.nc"
    write_clm(p2, bounds=None, fields={"HR": ("gC/m^2/s", _rates(3, (2, 3), 2e-6))})
    with pytest.warns(UserWarning, match="no time bounds"):
        rh2 = read_clm_history(p2, "HR")["rh"]
    np.testing.assert_allclose(rh2.values, rh.values)
    np.testing.assert_array_equal(rh2.time.values, rh.time.values)


def test_climate_fields_units(tmp_path):
    p = tmp_path / "clim.nc"
    shp = (2, 3)
    write_clm(p, fields={"TSA": ("K", _rates(3, shp, 283.15)),
                         "RAIN": ("mm/s", _rates(3, shp, 1e-5)),
                         "SNOW": ("mm/s", _rates(3, shp, 2e-5)),
                         "FSDS": ("W/m^2", _rates(3, shp, 200.0))})
    ds = read_clm_history(p, ["tas", "pr", "sol"])
    assert set(ds.data_vars) == {"tas", "pr", "sol"}
    assert ds["tas"].attrs["units"] == "degC"
    assert float(ds["tas"][0, 0, 0]) == pytest.approx(10.0, abs=1e-4)
    assert ds["pr"].attrs["units"] == "mm month-1"
    assert ds["pr"].attrs["clm_name"] == "RAIN+SNOW"
    assert float(ds["pr"][1, 0, 0]) == pytest.approx(3e-5 * 28 * SPD, rel=1e-6)  # 72.576 mm
    assert ds["sol"].attrs["units"] == "MJ m-2 month-1"
    assert float(ds["sol"][0, 0, 0]) == pytest.approx(200.0 * 31 * SPD / 1e6, rel=1e-6)
    for v in ds.data_vars.values():
        parse_units(v.attrs["units"])


def test_nep_equals_npp_minus_hr_and_nee_sign(tmp_path):
    rng = np.random.default_rng(1)
    npp = rng.uniform(1e-7, 5e-6, size=(3, 2, 3)).astype("f4")
    hr = rng.uniform(1e-7, 3e-6, size=(3, 2, 3)).astype("f4")
    nep = (npp - hr).astype("f4")
    p = tmp_path / "carbon.nc"
    write_clm(p, fields={"NPP": ("gC/m^2/s", npp), "HR": ("gC/m^2/s", hr),
                         "NEP": ("gC/m^2/s", nep), "NEE": ("gC/m^2/s", -nep)})
    ds = read_clm_history(p)
    assert {"npp", "rh", "nep", "nee"} <= set(ds.data_vars)
    np.testing.assert_allclose(ds["nep"], ds["npp"] - ds["rh"], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(ds["nee"], -ds["nep"], rtol=1e-6)
    # January NEP by hand
    assert float(ds["nep"][0, 1, 2]) == pytest.approx(float(nep[0, 1, 2]) * 31 * SPD, rel=1e-5)
    # without NEP: nep from -NEE (documented sign), and from NPP - HR when asked
    p2 = tmp_path / "nee_only.nc"
    write_clm(p2, fields={"NEE": ("gC/m^2/s", -nep)})
    d2 = read_clm_history(p2)
    assert d2["nep"].attrs["carbonsink_derivation"].startswith("nep = -NEE")
    np.testing.assert_allclose(d2["nep"], ds["nep"], rtol=1e-6)
    assert float(d2["nee"][0, 1, 2]) == pytest.approx(-float(nep[0, 1, 2]) * 31 * SPD, rel=1e-5)
    p3 = tmp_path / "npp_hr.nc"
    write_clm(p3, fields={"NPP": ("gC/m^2/s", npp), "HR": ("gC/m^2/s", hr)})
    d3 = read_clm_history(p3, ["nep"])
    np.testing.assert_allclose(d3["nep"], ds["nep"], rtol=1e-4, atol=1e-5)
    assert "nep" not in read_clm_history(p3).data_vars  # only derived when asked for


@pytest.mark.parametrize("coords1d", ["lat", "grid1d"])
def test_lndgrid_output_mapped_to_grid(tmp_path, coords1d):
    # 4 columns of a 1-degree grid, longitudes 0..360 (one across Greenwich), one gap
    lat = [30.5, 30.5, 31.5, 32.5]
    lon = [359.5, 0.5, 0.5, 1.5]
    vals = np.array([[1, 2, 3, 4]] * 3, dtype="f4") * 1e-6
    p = tmp_path / "ne.nc"
    write_clm(p, layout="lndgrid", lat=lat, lon=lon, coords1d=coords1d,
              fields={"GPP": ("gC/m^2/s", vals)})
    g = read_clm_history(p)["gpp"]
    assert g.dims == ("time", "y", "x")
    np.testing.assert_allclose(g.y, [32.5, 31.5, 30.5])  # north-up
    np.testing.assert_allclose(g.x, [-0.5, 0.5, 1.5])
    jan = g.isel(time=0).values / (31 * SPD) * 1e6
    expected = np.array([[np.nan, np.nan, 4.0],
                         [np.nan, 3.0, np.nan],
                         [1.0, 2.0, np.nan]])
    np.testing.assert_allclose(jan, expected, rtol=1e-6)
    assert g.rio.crs.to_epsg() == 4326
    # onto a given grid
    g2 = read_clm_history(p, grid=(np.arange(29.5, 34, 1.0), np.arange(-1.5, 3, 1.0)))["gpp"]
    assert g2.shape == (3, 5, 5)
    assert float(g2.sel(y=32.5, x=1.5).isel(time=0)) == pytest.approx(4e-6 * 31 * SPD, rel=1e-6)
    assert int(g2.isel(time=0).notnull().sum()) == 4
    with pytest.raises(InputError, match="outside the grid"):
        read_clm_history(p, grid=([10.0, 11.0], [0.5, 1.5]))


def test_several_files_concatenated_and_sorted(tmp_path):
    vals = _rates(3, (2, 3), 1e-6)
    write_clm(tmp_path / "h0.1979-04.nc", year0=1979, nmonths=3,
              fields={"NPP": ("gC/m^2/s", vals)})  # Jan-Mar written as second file name
    # a second file, Apr-Jun: shift the edges by Jan-Mar (90 days)
    p2 = tmp_path / "h0.1979-01.nc"
    edges = np.array([90.0, 120.0, 151.0, 181.0])
    with netCDF4.Dataset(p2, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("hist_interval", 2)
        nc.createDimension("lat", 2)
        nc.createDimension("lon", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 1979-01-01 00:00:00"
        t.calendar = "noleap"
        t.bounds = "time_bounds"
        t[:] = edges[1:]
        b = nc.createVariable("time_bounds", "f8", ("time", "hist_interval"))
        b[:] = np.stack([edges[:-1], edges[1:]], axis=1)
        nc.createVariable("lat", "f4", ("lat",))[:] = [30.0, 31.0]
        nc.createVariable("lon", "f4", ("lon",))[:] = [100.0, 101.25, 102.5]
        v = nc.createVariable("NPP", "f4", ("time", "lat", "lon"))
        v.units = "gC/m^2/s"
        v[:] = vals
    npp = read_clm_history(str(tmp_path / "h0.*.nc"), "npp")["npp"]
    assert [str(t)[:7] for t in npp.time.values] == \
        ["1979-01", "1979-02", "1979-03", "1979-04", "1979-05", "1979-06"]
    np.testing.assert_allclose(npp[:, 0, 0] / (1e-6 * SPD), [31, 28, 31, 30, 31, 30], rtol=1e-6)
    with pytest.raises(InputError, match="overlap in time"):
        read_clm_history([tmp_path / "h0.1979-01.nc", tmp_path / "h0.1979-01.nc"], "npp")


def test_longitudes_0_360_become_minus180_180(tmp_path):
    p = tmp_path / "glob.nc"
    lon = np.array([0.0, 90.0, 180.0, 270.0])
    vals = np.broadcast_to(lon, (3, 2, 4)).astype("f4") * 1e-9
    write_clm(p, lon=lon, fields={"NPP": ("gC/m^2/s", vals)})
    npp = read_clm_history(p)["npp"]
    np.testing.assert_allclose(npp.x, [-180.0, -90.0, 0.0, 90.0])
    # the value written at 270E is now at -90
    assert float(npp.isel(time=0).sel(x=-90.0)[0]) == pytest.approx(270e-9 * 31 * SPD, rel=1e-6)


def test_lazy_with_chunks(tmp_path):
    p = tmp_path / "lazy.nc"
    write_clm(p, fields={"NPP": ("gC/m^2/s", _rates(3, (2, 3), 1e-6))})
    with forbid_compute():
        ds = read_clm_history(p, chunks="auto")
    assert ds["npp"].chunks is not None
    assert float(ds["npp"][0, 0, 0]) == pytest.approx(2.6784, rel=1e-5)


def test_read_input_product_clm_and_to_canonical(tmp_path):
    p = tmp_path / "h0.nc"
    write_clm(p, nmonths=12, fields={"NPP": ("gC/m^2/s", _rates(12, (2, 3), 1e-6)),
                                     "HR": ("gC/m^2/s", _rates(12, (2, 3), 5e-7))})
    da = read_input(p, variable="npp", product="clm", frequency="month")
    assert da.name == "npp" and da.dims == ("time", "y", "x")
    # what the pipeline does next: no re-conversion with Gregorian month lengths
    can = to_canonical(da, "npp", period="month")
    np.testing.assert_allclose(can[:, 0, 0] / (1e-6 * SPD), NOLEAP_MONTH_DAYS, rtol=1e-6)
    rh = to_canonical(read_input(p, variable="rh", product="CLM"), "rh")
    assert float(rh[0, 0, 0]) == pytest.approx(5e-7 * 31 * SPD, rel=1e-6)
    with pytest.raises(InputError, match="several"):
        read_input(p, product="clm")
    with pytest.raises(InvalidArgumentError, match="units"):
        read_input(p, variable="npp", product="clm", units="gC/m^2/s")


def test_errors(tmp_path):
    p = tmp_path / "h0.nc"
    write_clm(p, fields={"NPP": ("gC/m^2/s", _rates(3, (2, 3), 1e-6))})
    with pytest.raises(UnknownVariableError, match="valid names are.*npp"):
        read_clm_history(p, "cVeg")
    with pytest.raises(InputError, match=r"h0.nc.*no GPP.*hist_fincl1"):
        read_clm_history(p, "gpp")
    with pytest.raises(InvalidArgumentError):
        read_clm_history(p, variables=[1, 2])
    with pytest.raises(InvalidArgumentError):
        read_clm_history(p, grid=([30.0], [100.0]))  # gridded output takes no grid=
    bad = tmp_path / "bad_units.nc"
    write_clm(bad, fields={"NPP": ("furlongs", _rates(3, (2, 3), 1e-6))})
    with pytest.raises(InputError, match=r"bad_units.nc.*'furlongs'"):
        read_clm_history(bad)
    wrong = tmp_path / "wrong_units.nc"
    write_clm(wrong, fields={"NPP": ("K", _rates(3, (2, 3), 1e-6))})
    with pytest.raises(InputError, match=r"wrong_units.nc.*'K'"):
        read_clm_history(wrong)
    broken = tmp_path / "broken.nc"
    broken.write_bytes(b"not a netcdf file")
    with pytest.raises(InputError, match="broken.nc"):
        read_clm_history(broken)


def test_dataset_roundtrip_attrs(tmp_path):
    p = tmp_path / "h0.nc"
    write_clm(p, fields={"NPP": ("gC/m^2/s", _rates(3, (2, 3), 1e-6))})
    ds = read_clm_history(p)
    assert ds.attrs["case_id"] == "test_case"
    assert ds["npp"].attrs["units_in_file"] == "gC/m^2/s"
    assert ds["npp"].attrs["cell_methods"] == "time: sum"
    assert isinstance(ds, xr.Dataset)


def test_plain_netcdf_read_of_clm_file_warns(tmp_path):
    p = tmp_path / "h0.nc"
    write_clm(p, fields={"NPP": ("gC/m^2/s", _rates(3, (2, 3), 1e-6))})
    with pytest.warns(UserWarning, match="product: clm"):
        da = read_input(p, variable="NPP", frequency="month")
    # the generic reader keeps the end-of-period stamps: January shows up as February
    assert str(da.time.values[0])[:10] == "1979-02-01"
