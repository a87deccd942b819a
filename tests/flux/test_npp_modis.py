"""MODIS annual NPP downscaled by 8-day GPP (METHODS §2.1)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from flux_helpers import modis_composite_starts
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonsink.errors import InputError, InsufficientDataError, UnitError
from carbonsink.flux import npp


def test_composite_days_and_matrix_rows():
    starts = modis_composite_starts([2004])
    nd = npp._composite_days(starts, 8)
    assert nd[:-1].tolist() == [8] * 45 and nd[-1] == 6  # leap year: 366 - 360
    assert npp._composite_days(modis_composite_starts([2003]), 8)[-1] == 5
    for split in ("days", "start"):
        a = npp.composite_month_matrix(starts, nd, 2004, split)
        np.testing.assert_allclose(a.sum(axis=1), 1.0)
    a = npp.composite_month_matrix(starts, nd, 2004, "days")
    # composite starting Jan 25 (DOY 25) spans Jan 25..Feb 1: 7 days in Jan, 1 in Feb
    assert a[3, 0] == pytest.approx(7 / 8) and a[3, 1] == pytest.approx(1 / 8)
    # days per month recovered: sum_k ndays_k * A[k, m]
    np.testing.assert_allclose((nd[:, None] * a).sum(axis=0),
                               [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def test_monthly_sums_to_annual(inputs):
    out = npp.modis_monthly(inputs["npp_annual"], inputs["gpp_8day"])
    assert out.sizes["time"] == 36 and out.dims == ("time", "y", "x")
    assert out.attrs["units"] == "g C m-2 month-1" and out.attrs["model"] == "modis_monthly"
    annual = out.groupby("time.year").sum()
    np.testing.assert_allclose(annual.values, inputs["npp_annual"].values, rtol=1e-12)
    assert pd.Timestamp(out.time.values[0]) == pd.Timestamp("2003-01-01")


def test_split_start_differs_but_conserves(inputs):
    a = npp.modis_monthly(inputs["npp_annual"], inputs["gpp_8day"])
    b = npp.modis_monthly(inputs["npp_annual"], inputs["gpp_8day"], mode="paper")
    assert '"split": "start"' in b.attrs["parameters"]
    assert not np.allclose(a.values, b.values)
    np.testing.assert_allclose(b.groupby("time.year").sum().values,
                               inputs["npp_annual"].values, rtol=1e-12)


def test_constant_gpp_gives_day_proportional_months():
    starts = modis_composite_starts([2003])
    gpp = np.full((46, 1), 8.0)
    gpp[-1] = 5.0  # constant daily rate 1 g C m-2 d-1
    out = npp.modis_monthly(np.array([[365.0]]), gpp, gpp_time=starts)
    np.testing.assert_allclose(out[:, 0], [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    start = npp.modis_monthly(np.array([[365.0]]), gpp, gpp_time=starts, split="start")
    # whole-composite assignment: January gets the 4 composites starting in it (DOY 1..25)
    assert start[0, 0] == pytest.approx(32.0)


def test_edge_cases():
    starts = modis_composite_starts([2003])
    gpp = np.ones((46, 4))
    gpp[:, 0] = 0.0  # GPP_y = 0, NPP_y = 0  -> 0
    gpp[:, 1] = 0.0  # GPP_y = 0, NPP_y > 0  -> NaN
    gpp[10, 2] = np.nan  # NaN composite -> year NaN
    nppy = np.array([[0.0, 50.0, 100.0, -20.0]])
    with pytest.warns(RuntimeWarning, match="NPP_y < 0"):
        out = npp.modis_monthly(nppy, gpp, gpp_time=starts)
    assert np.all(out[:, 0] == 0)
    assert np.all(np.isnan(out[:, 1]))
    assert np.all(np.isnan(out[:, 2]))
    assert np.all(out[:, 3] < 0) and out[:, 3].sum() == pytest.approx(-20.0)
    z = npp.modis_monthly(nppy, gpp, gpp_time=starts, negative_npp="zero")
    assert np.all(z[:, 3] == 0)


def test_missing_composites_and_years_raise(inputs):
    g = inputs["gpp_8day"]
    with pytest.raises(InsufficientDataError, match="year 2004"):
        npp.modis_monthly(inputs["npp_annual"], g.drop_isel(time=[50]))
    with pytest.raises(InsufficientDataError, match="2003"):
        npp.modis_monthly(inputs["npp_annual"], g.sel(time=slice("2004", None)))
    with pytest.raises(InputError, match="gpp_time"):
        npp.modis_monthly(np.ones((1, 2)), np.ones((46, 2)))


def test_units_checked_and_converted(inputs):
    g = inputs["gpp_8day"]
    kg = (g / 1000.0).assign_attrs(units="kg C m-2")
    n_t = (inputs["npp_annual"] / 100.0).assign_attrs(units="t C ha-1 yr-1")
    a = npp.modis_monthly(inputs["npp_annual"], g)
    b = npp.modis_monthly(n_t, kg)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-12)
    with pytest.raises(UnitError, match="gpp_8day"):
        npp.modis_monthly(inputs["npp_annual"], g.assign_attrs(units="degC"))
    with pytest.raises(UnitError, match="npp_annual"):
        npp.modis_monthly(inputs["npp_annual"].assign_attrs(units="g C m-2 month-1"), g)


def test_numpy_equals_xarray(inputs):
    a = npp.modis_monthly(inputs["npp_annual"], inputs["gpp_8day"])
    b = npp.modis_monthly(inputs["npp_annual"].values, inputs["gpp_8day"].values,
                          gpp_time=inputs["gpp_8day"].time.values)
    np.testing.assert_array_equal(a.values, b)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.floats(0, 100), min_size=46, max_size=46).filter(lambda v: sum(v) > 0),
       st.floats(-50, 2000), st.sampled_from(["days", "start"]))
def test_sum_invariant_property(gpp, nppy, split):
    starts = modis_composite_starts([2004])
    out = npp.modis_monthly(np.array([nppy]), np.array(gpp), gpp_time=starts, split=split,
                            negative_npp="zero" if nppy < 0 else "propagate")
    expected = max(nppy, 0.0)
    assert out.sum() == pytest.approx(expected, rel=1e-12, abs=1e-9)


def test_ndays_coordinate_overrides_rule():
    starts = pd.DatetimeIndex(["2003-01-01", "2003-07-01"])
    g = xr.DataArray(np.array([[1.0], [1.0]]), dims=("time", "x"),
                     coords={"time": starts, "ndays": ("time", [181, 184])},
                     attrs={"units": "g C m-2"})
    n = xr.DataArray([[362.0]], dims=("time", "x"), coords={"time": [np.datetime64("2003-01-01")]},
                     attrs={"units": "g C m-2 yr-1"})
    out = npp.modis_monthly(n, g)
    assert float(out.isel(time=0, x=0)) == pytest.approx(362 / 2 / 181 * 31)  # daily rate 1 g C m-2 d-1
    assert float(out.sum()) == pytest.approx(362.0)
