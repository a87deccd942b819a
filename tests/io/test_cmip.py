"""CMIP5/CMIP6 CMOR reader: model calendars, period totals in the native calendar."""

from __future__ import annotations

import netCDF4
import numpy as np
import pytest
import xarray as xr
from _io_helpers import forbid_compute

from carbonsink.errors import InputError, InvalidArgumentError, UnknownVariableError
from carbonsink.io import read_cmip, read_input
from carbonsink.units import parse_units, to_canonical

SPD = 86400.0


def write_cmor(path, *, name="npp", units="kg m-2 s-1", calendar="360_day", nmonths=3,
               start_days=0.0, month_days=None, lon=(0.0, 180.0, 270.0), lat=(-10.0, 10.0),
               value=1e-8, bounds=True):
    """A CMOR-like monthly file: mid-month stamps, time_bnds, given calendar."""
    month_days = month_days or [30] * nmonths
    edges = start_days + np.concatenate([[0.0], np.cumsum(month_days)])
    with netCDF4.Dataset(path, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("bnds", 2)
        nc.createDimension("lat", len(lat))
        nc.createDimension("lon", len(lon))
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 1850-01-01"
        t.calendar = calendar
        t.standard_name = "time"
        t[:] = 0.5 * (edges[:-1] + edges[1:])
        if bounds:
            t.bounds = "time_bnds"
            b = nc.createVariable("time_bnds", "f8", ("time", "bnds"))
            b[:] = np.stack([edges[:-1], edges[1:]], axis=1)
        nc.createVariable("lat", "f8", ("lat",))[:] = lat
        nc.createVariable("lon", "f8", ("lon",))[:] = lon
        v = nc.createVariable(name, "f4", ("time", "lat", "lon"), fill_value=1e20)
        if units is not None:
            v.units = units
        v[:] = np.full((nmonths, len(lat), len(lon)), value, dtype="f4")
        nc.model_id = "TOY"
        nc.experiment_id = "historical"
        nc.project_id = "CMIP5"


def test_360_day_months_are_30_days_and_stamped_at_month_start(tmp_path):
    p = tmp_path / "npp_Lmon_TOY_historical_r1i1p1_185001-185003.nc"
    write_cmor(p)
    npp = read_cmip(p)
    assert npp.name == "npp" and npp.dims == ("time", "y", "x")
    assert [str(t)[:10] for t in npp.time.values] == ["1850-01-01", "1850-02-01", "1850-03-01"]
    assert npp.attrs["units"] == "g C m-2 month-1"
    parse_units(npp.attrs["units"])
    assert npp.attrs["carbonsink_native_calendar"] == "360_day"
    assert npp.attrs["cmip_name"] == "npp"
    # 1e-8 kg m-2 s-1 = 1e-5 g m-2 s-1; x 30 days (also for the model's "February")
    np.testing.assert_allclose(npp[:, 0, 0], 1e-5 * 30 * SPD, rtol=1e-6)
    assert float(npp[1, 0, 0]) == pytest.approx(25.92, rel=1e-6)
    np.testing.assert_allclose(npp.x, [-180.0, -90.0, 0.0])  # 0, 180, 270 E
    assert npp.rio.crs.to_epsg() == 4326


@pytest.mark.parametrize("calendar,days", [("noleap", [31, 28, 31]),
                                           ("365_day", [31, 28, 31]),
                                           ("proleptic_gregorian", [31, 28, 31]),
                                           ("standard", [31, 28, 31]),
                                           ("gregorian", [31, 28, 31])])
def test_calendars_use_their_month_lengths(tmp_path, calendar, days):
    p = tmp_path / f"rh_{calendar}.nc"
    write_cmor(p, name="rh", calendar=calendar, month_days=days)
    rh = read_cmip(p, "rh")
    np.testing.assert_allclose(rh[:, 1, 1] / (1e-5 * SPD), days, rtol=1e-6)
    assert rh.attrs["carbonsink_native_calendar"] == calendar


def test_pr_rsds_tas_conversions(tmp_path):
    write_cmor(tmp_path / "pr.nc", name="pr", value=2e-5, calendar="noleap",
               month_days=[31, 28, 31])
    pr = read_cmip(tmp_path / "pr.nc")
    assert pr.attrs["units"] == "mm month-1"
    assert float(pr[1, 0, 0]) == pytest.approx(2e-5 * 28 * SPD, rel=1e-6)  # 48.384 mm
    write_cmor(tmp_path / "rsds.nc", name="rsds", units="W m-2", value=150.0)
    sol = read_cmip(tmp_path / "rsds.nc", "sol")
    assert sol.name == "sol" and sol.attrs["units"] == "MJ m-2 month-1"
    assert float(sol[0, 0, 0]) == pytest.approx(150.0 * 30 * SPD / 1e6, rel=1e-6)  # 388.8
    write_cmor(tmp_path / "tas.nc", name="tas", units="K", value=300.0)
    tas = read_cmip(tmp_path / "tas.nc")
    assert tas.attrs["units"] == "degC"
    assert float(tas[0, 0, 0]) == pytest.approx(26.85, abs=1e-4)


def test_errors(tmp_path):
    write_cmor(tmp_path / "npp.nc")
    with pytest.raises(UnknownVariableError, match="valid names are.*rsds"):
        read_cmip(tmp_path / "npp.nc", "cVeg")
    with pytest.raises(InputError, match=r"npp.nc has no variable 'rh'"):
        read_cmip(tmp_path / "npp.nc", "rh")
    with pytest.raises(InvalidArgumentError):
        read_cmip(tmp_path / "npp.nc", chunks="big")
    write_cmor(tmp_path / "nounits.nc", units=None)
    with pytest.raises(InputError, match=r"nounits.nc.*no units attribute.*units="):
        read_cmip(tmp_path / "nounits.nc")
    npp = read_cmip(tmp_path / "nounits.nc", units="kg m-2 s-1")
    assert float(npp[0, 0, 0]) == pytest.approx(25.92, rel=1e-6)
    write_cmor(tmp_path / "wrong.nc", units="K")
    with pytest.raises(InputError, match=r"wrong.nc.*'K'"):
        read_cmip(tmp_path / "wrong.nc")
    write_cmor(tmp_path / "mixed.nc", calendar="noleap", month_days=[31, 28, 31],
               start_days=365.0 * 0)
    with pytest.raises(InputError, match="calendar"):
        read_cmip([tmp_path / "npp.nc", tmp_path / "mixed.nc"])


def test_no_bounds_inferred_from_mid_month_stamps(tmp_path):
    write_cmor(tmp_path / "nb.nc", bounds=False)
    with pytest.warns(UserWarning, match="no time bounds"):
        npp = read_cmip(tmp_path / "nb.nc")
    assert [str(t)[:10] for t in npp.time.values] == ["1850-01-01", "1850-02-01", "1850-03-01"]
    np.testing.assert_allclose(npp[:, 0, 0], 1e-5 * 30 * SPD, rtol=1e-6)


def test_lazy(tmp_path):
    write_cmor(tmp_path / "npp.nc")
    with forbid_compute():
        npp = read_cmip(tmp_path / "npp.nc", chunks="auto")
    assert npp.chunks is not None
    assert float(npp[0, 0, 0]) == pytest.approx(25.92, rel=1e-6)


# --------------------------------------------------------------------------- real CMIP files


def test_hadgem2es_rh_360_day(shared_data):
    files = sorted((shared_data / "cmip" / "hadgem2es_decimated").glob("rh_Lmon_*.nc"))
    assert len(files) == 6
    rh = read_cmip(files)
    assert rh.attrs["carbonsink_native_calendar"] == "360_day"
    assert rh.attrs["cmip_model"] == "HadGEM2-ES" and rh.attrs["cmip_name"] == "rh"
    assert rh.sizes == {"time": 1752, "y": 2, "x": 2}
    assert str(rh.time.values[0])[:10] == "1859-12-01"
    assert str(rh.time.values[-1])[:10] == "2005-11-01"
    assert str(rh.time.values[3])[:10] == "1860-03-01"
    assert rh.indexes["time"].is_monotonic_increasing and rh.indexes["time"].is_unique
    np.testing.assert_allclose(rh.x, [-172.5, 0.0])
    # raw value at lat 35, lon 0 of 1859-12 is 5.4438315e-10 kg m-2 s-1 (ncdump):
    # x 1000 g/kg x 30 days x 86400 s = 1.41104 g C m-2 month-1 (a 31-day month would give 1.458)
    raw = xr.open_dataset(files[0], decode_times=False)["rh"]
    r0 = float(raw.isel(time=0).sel(lat=35.0, lon=0.0))
    assert r0 == pytest.approx(5.4438315e-10, rel=1e-6)
    assert float(rh.isel(time=0).sel(y=35.0, x=0.0)) == pytest.approx(r0 * 1000 * 30 * SPD,
                                                                      rel=1e-6)
    assert float(rh.isel(time=0).sel(y=35.0, x=0.0)) == pytest.approx(1.41104, rel=1e-5)
    # every month (February included) is 30 days: ratio to raw is constant
    np.testing.assert_allclose(rh.sel(y=35.0, x=0.0).values[:300],
                               raw.sel(lat=35.0, lon=0.0).values * 1000 * 30 * SPD, rtol=1e-6)
    # through read_input as the pipeline does: unchanged by to_canonical
    da = read_input([str(f) for f in files], variable="rh", product="cmip", frequency="month")
    can = to_canonical(da, "rh", period="month")
    np.testing.assert_allclose(can.isel(time=slice(0, 24)).values,
                               rh.isel(time=slice(0, 24)).values, rtol=1e-6)


def test_hadgem2es_tas(shared_data):
    files = sorted((shared_data / "cmip" / "hadgem2es_decimated").glob("tas_Amon_*.nc"))
    tas = read_cmip(files, "tas")
    assert tas.attrs["units"] == "degC"
    assert tas.attrs["carbonsink_native_calendar"] == "360_day"
    raw = xr.open_dataset(files[0], decode_times=False)["tas"]
    assert float(tas[0, 0, 1]) == pytest.approx(float(raw[0, 0, 0]) - 273.15, abs=1e-3)


def test_canesm2_tas_365_day(shared_data):
    p = shared_data / "cmip" / "tas_Amon_CanESM2_rcp85_r1i1p1_200701-200712.nc"
    tas = read_cmip(p)
    assert tas.attrs["carbonsink_native_calendar"] == "365_day"
    assert tas.attrs["cmip_model"] == "CanESM2"
    assert tas.sizes == {"time": 12, "y": 64, "x": 128}
    # the file's time_bnds start at 2006-12-01 (its stamps are 2006-12-16 ... 2007-11-16)
    assert str(tas.time.values[0])[:10] == "2006-12-01"
    assert str(tas.time.values[-1])[:10] == "2007-11-01"
    assert float(tas.x[0]) == pytest.approx(-180.0) and float(tas.x[-1]) < 180.0
    raw = xr.open_dataset(p, decode_times=False)["tas"]
    assert float(tas.isel(time=0).sel(y=raw.lat[0], x=0.0)) == pytest.approx(
        float(raw[0, 0, 0]) - 273.15, abs=1e-3)
    # first cell of the file (lon 0): 242.83412 K -> now at x index 64
    assert float(tas[0, 0, 64]) == pytest.approx(242.83412 - 273.15, abs=1e-4)
    # the file's lon 180 (index 64) becomes x = -180, the first column
    assert float(tas[0, 0, 0]) == pytest.approx(float(raw[0, 0, 64]) - 273.15, abs=1e-4)
    assert float(tas[0, 0, 0]) == pytest.approx(-31.2058, abs=1e-3)


def test_global_mean_series(shared_data):
    p = shared_data / "cmip" / "cmip5_tas_global_mon.nc"
    with pytest.warns(UserWarning, match="no time bounds"):
        tas = read_cmip(p, units="K")
    assert "y" not in tas.dims and tas.dims[0] == "time"
    assert set(tas.dims) == {"time", "scen", "model", "run"}
    assert tas.attrs["carbonsink_period"] == "year"
    assert str(tas.time.values[0])[:10] == "1850-01-01"
    raw = xr.open_dataset(p)["tas"]
    np.testing.assert_allclose(tas.transpose(*raw.dims).values, raw.values - 273.15,
                               rtol=1e-6, atol=1e-4)
    with pytest.raises(InputError, match="no units attribute"):
        with pytest.warns(UserWarning):
            read_input(p, variable="tas", product="cmip")


def test_series_without_latlon_and_read_input_refuses_it(tmp_path):
    p = tmp_path / "nep_global.nc"
    with netCDF4.Dataset(p, "w") as nc:
        nc.createDimension("time", None)
        nc.createDimension("bnds", 2)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "noleap"
        t.bounds = "time_bnds"
        t[:] = [15.5, 45.0]
        nc.createVariable("time_bnds", "f8", ("time", "bnds"))[:] = [[0, 31], [31, 59]]
        v = nc.createVariable("nep", "f4", ("time",))
        v.units = "kg m-2 s-1"
        v[:] = [1e-9, -1e-9]
    nep = read_cmip(p)
    assert nep.dims == ("time",)
    np.testing.assert_allclose(nep, [1e-6 * 31 * SPD, -1e-6 * 28 * SPD], rtol=1e-6)
    with pytest.raises(InputError, match="gridded"):
        read_input(p, variable="nep", product="cmip")
    with pytest.raises(InvalidArgumentError, match="units"):
        read_input(p, variable="nep", product="cmip", units="kg m-2 s-1")
