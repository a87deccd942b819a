"""Given NPP / Rh / NEP products as models ("given", "nep_given")."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from flux_helpers import chunked, modis_composite_starts

from carbonsink.errors import InputError
from carbonsink.flux import run_chain, run_combination, run_npp, run_rh
from carbonsink.flux.given import given_product, time_step_of


def _grid(time, values, units, name):
    return xr.DataArray(values, dims=("time", "y", "x"),
                        coords={"time": time, "y": [1.0, 0.0], "x": [10.0, 11.0, 12.0]},
                        name=name, attrs={"units": units})


def test_given_monthly_npp_passes_through(inputs):
    time = pd.date_range("2003-01-01", periods=36, freq="MS")
    rng = np.random.default_rng(1)
    da = _grid(time, rng.uniform(0, 80, (36, 2, 3)), "g C m-2 month-1", "NPP")
    da.attrs["carbonsink_input"] = "data/npp_monthly.tif"
    out = run_npp("given", {"npp": da})
    np.testing.assert_array_equal(out.values, da.values)
    assert out.attrs["units"] == "g C m-2 month-1" and out.attrs["npp_model"] == "given"
    assert out.attrs["model"] == "given" and "data/npp_monthly.tif" in out.attrs["source"]
    assert "given" in out.attrs["long_name"]
    # other units are converted; mid-month stamps become month starts
    kg = (da / 1000).assign_attrs(units="kg C m-2 month-1")
    kg = kg.assign_coords(time=time + pd.Timedelta(days=14))
    out2 = run_npp("given", {"npp": kg})
    np.testing.assert_allclose(out2.values, da.values, rtol=1e-12)
    np.testing.assert_array_equal(out2.time.values, time.values)


def test_given_annual_npp_stays_annual():
    years = pd.DatetimeIndex(["2003-07-02", "2004-07-02", "2005-07-02"])
    da = _grid(years, np.full((3, 2, 3), 0.4), "kg C m-2 yr-1", "npp")
    out = run_npp("given", {"npp": da})
    assert out.attrs["units"] == "g C m-2 yr-1"
    np.testing.assert_allclose(out.values, 400.0)
    assert list(out.time.dt.month.values) == [1, 1, 1] and list(out.time.dt.day.values) == [1, 1, 1]
    assert time_step_of(da) == "year"


@pytest.mark.parametrize("units,scale", [("g C m-2", 1.0), ("g C m-2 d-1", None)])
def test_given_8day_npp_to_monthly_preserves_annual_total(units, scale):
    starts = modis_composite_starts([2003, 2004])
    rng = np.random.default_rng(3)
    vals = rng.uniform(0, 40, (len(starts), 2, 3))
    da = _grid(starts, vals, units, "npp")
    out = run_npp("given", {"npp": da})
    assert out.attrs["units"] == "g C m-2 month-1" and out.sizes["time"] == 24
    ends = np.minimum((starts + pd.Timedelta(days=8)).values,
                      pd.to_datetime({"year": starts.year + 1, "month": 1, "day": 1}).values)
    ndays = (ends - starts.values).astype("timedelta64[D]").astype(float)
    per_composite = vals if scale is not None else vals * ndays[:, None, None]
    for year in (2003, 2004):
        want = per_composite[starts.year == year].sum(axis=0)
        got = out.sel(time=str(year)).sum("time").values
        np.testing.assert_allclose(got, want, rtol=1e-12)
    assert time_step_of(da) == "composite"


def test_given_8day_stays_lazy(no_compute):
    starts = modis_composite_starts([2003])
    da = _grid(starts, np.ones((len(starts), 2, 3)), "g C m-2", "npp")
    out = run_npp("given", chunked({"npp": da}, {"x": 1}))
    assert out.chunks is not None


def test_given_errors():
    t = pd.DatetimeIndex(["2003-01-01", "2003-01-20", "2003-04-01"])
    da = _grid(t, np.ones((3, 2, 3)), "g C m-2 month-1", "npp")
    with pytest.raises(InputError, match="time step"):
        run_npp("given", {"npp": da})
    with pytest.raises(InputError, match="'npp'"):
        run_npp("given", {"tas": da})
    with pytest.raises(InputError, match="time"):
        given_product(da.isel(time=0, drop=True), "npp")


def test_given_annual_npp_plus_pei_gives_annual_nep(inputs):
    npp_y = inputs["npp_annual"].rename("npp")
    res = run_combination("given+pei", {**inputs, "npp": npp_y})
    assert res.attrs["time_step"] == "year" and res.sizes["time"] == 3
    assert res.nep.attrs["units"] == "g C m-2 yr-1"
    rh_monthly = run_rh("pei", inputs)["rh"]
    rh_year = rh_monthly.resample(time="YS").sum().values
    np.testing.assert_allclose(res.rh.values, rh_year, rtol=1e-12)
    np.testing.assert_array_equal(res.npp.values, npp_y.values)
    np.testing.assert_array_equal(res.nep.values, res.npp.values - res.rh.values)
    assert res.attrs["npp_model"] == "given" and res.attrs["rh_model"] == "pei"


def test_given_rh_with_modis_npp_monthly(inputs):
    rh = run_rh("gsmsr_shi", inputs)["rh"].rename("rh")
    res = run_combination("modis+given", {**inputs, "rh": rh})
    assert res.attrs["time_step"] == "month"
    np.testing.assert_array_equal(res.rh.values, rh.values)
    np.testing.assert_array_equal(res.nep.values, res.npp.values - rh.values)


def test_nep_given_returns_the_given_nep(inputs):
    nep = (inputs["sol"] * 0.1 - 20).assign_attrs(units="g C m-2 month-1", carbonsink_input="nep.nc")
    res = run_chain(["nep_given", "modis+pei"], {**inputs, "nep": nep.rename("nep")})
    ds = res["nep_given"]
    assert list(ds.data_vars) == ["nep"]
    np.testing.assert_array_equal(ds.nep.values, nep.values)
    assert ds.attrs["combination"] == "nep_given" and ds.attrs["nep_model"] == "given"
    assert ds.attrs["time_step"] == "month" and "nep.nc" in ds.attrs["parameters"]
    assert set(res["modis+pei"].data_vars) == {"npp", "rh", "nep"}
