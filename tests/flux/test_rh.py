"""Rh models: invariants, calendars, units (METHODS §3.1–3.4)."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from flux_helpers import EXAMPLE_DAYS, EXAMPLE_P, example_t
from hypothesis import given, settings
from hypothesis import strategies as st

from carbonsink.errors import InputError, InvalidArgumentError, UnitError
from carbonsink.flux import rh


def _da(values, units, start="2003-01-01"):
    v = np.asarray(values, float)
    time = pd.date_range(start, periods=v.shape[0], freq="MS")
    dims = ("time",) + tuple(f"d{i}" for i in range(v.ndim - 1))
    return xr.DataArray(v, dims=dims, coords={"time": time}, attrs={"units": units})


def test_pei_units_and_attrs():
    t, p = _da(example_t(), "degC"), _da(EXAMPLE_P, "mm month-1")
    out = rh.pei2009(t, p)
    assert out.attrs["units"] == "g C m-2 month-1" and out.attrs["model"] == "pei2009"
    assert json.loads(out.attrs["parameters"])["b"] == 0.0912
    k = (t + 273.15).assign_attrs(units="K")
    cm = (p / 10).assign_attrs(units="cm month-1")
    np.testing.assert_allclose(rh.pei2009(k, cm).values, out.values, rtol=1e-12)
    with pytest.raises(UnitError, match="'pr'.*found 'K'"):
        rh.pei2009(t, p.assign_attrs(units="K"))
    with pytest.raises(UnitError, match="no 'units'"):
        rh.pei2009(t, p.drop_attrs())
    with pytest.raises(InvalidArgumentError, match="mode"):
        rh.pei2009(t, p, mode="papers")


def test_pei_true_month_length_and_paper_mode_units():
    t, p = _da(example_t(), "degC"), _da(EXAMPLE_P, "mm month-1")
    a = rh.pei2009(t, p, days_in_month=True)
    np.testing.assert_allclose(a.values, rh.pei2009(t, p).values * EXAMPLE_DAYS / 30)
    with pytest.raises(UnitError):  # paper mode expects annual precipitation
        rh.pei2009(t, p, mode="paper")
    ya = rh.pei2009(t.mean("time"), p.sum("time").assign_attrs(units="mm yr-1"), mode="paper")
    assert ya.attrs["units"] == "g C m-2 yr-1"
    assert float(ya) == pytest.approx(19.704, abs=1e-3)


def test_gsmsr_true_days_from_time_coordinate():
    t = _da(np.full(24, 10.0), "degC", start="2003-01-01")
    p = _da(np.full(24, 40.0), "mm month-1", start="2003-01-01")
    out = rh.gsmsr(t, p, 3.0)
    daily = rh.gsmsr_daily(10.0, 40.0, 3.0)
    feb = out.sel(time=["2003-02-01", "2004-02-01"]).values
    np.testing.assert_allclose(feb, [28 * daily, 29 * daily])
    assert out.attrs["beta_status"].startswith("unresolved")
    assert out.attrs["units"] == "g C m-2 month-1"
    with pytest.raises(InputError, match="days per month"):
        rh.gsmsr(np.full(12, 10.0), np.full(12, 40.0), 3.0)
    np.testing.assert_allclose(
        rh.gsmsr(np.full(24, 10.0), np.full(24, 40.0), 3.0, time=t.time.values), out.values)
    # soc in t C ha-1 is converted (1 t ha-1 = 0.1 kg m-2)
    soc = xr.DataArray(30.0, attrs={"units": "t C ha-1"})
    np.testing.assert_allclose(rh.gsmsr(t, p, soc).values, out.values)


def test_gsmsr_precipitation_in_cm_inside():
    # P0/K factor at P = 0 and saturation towards 1 for large P
    lo = rh.gsmsr_daily(0.0, 0.0, 0.0)
    assert lo == pytest.approx(0.588 * 2.972 / 5.657)
    hi = rh.gsmsr_daily(0.0, 1e7, 0.0)
    assert hi == pytest.approx(0.588, rel=1e-4)


def test_bond_lamberty_annual_ratio_invariants():
    rng = np.random.default_rng(1)
    rs = rng.uniform(5, 90, (36, 4))
    out = rh.bond_lamberty2004(rs)
    ys, yh = rs.reshape(3, 12, 4).sum(1), out.reshape(3, 12, 4).sum(1)
    np.testing.assert_allclose(yh, np.exp(1.22) * ys ** 0.73, rtol=1e-12)
    np.testing.assert_allclose(out / rs, np.repeat(yh / ys, 12, axis=0), rtol=1e-12)
    assert np.all(out <= rs)  # annual Rs here > 91.7 so ratio < 1
    rs[5, 0] = np.nan
    rs[14, 1] = -3.0
    out = rh.bond_lamberty2004(rs)
    assert np.isnan(out[:12, 0]).all() and np.isfinite(out[12:, 0]).all()
    assert out[14, 1] == 0.0
    with pytest.warns(RuntimeWarning, match="Rh > Rs in 1 values"):
        assert (rh.bond_lamberty2004(np.array([0.0, -1.0, 50.0]), "direct")[:2] == 0).all()


def test_bond_lamberty_calendar_years_from_time_and_partial_years():
    rs = _da(np.full((18, 1), 30.0), "g C m-2 month-1", start="2003-07-01")
    out = rh.bond_lamberty2004(rs)
    assert json.loads(out.attrs["parameters"])["scaling"] == "annual_ratio"
    assert out.attrs["incomplete_years"].startswith("annualised")
    # every year is uniform 30/month -> annualised 360 -> same ratio everywhere
    ratio = np.exp(1.22) * 360.0 ** 0.73 / 360.0
    np.testing.assert_allclose(out.values, 30.0 * ratio)


def test_bond_lamberty_direct_flags_and_annual_units():
    rs = _da(np.array([10.0, 50.0, 100.0]), "g C m-2 month-1")
    with pytest.warns(RuntimeWarning):
        d = rh.bond_lamberty2004(rs, mode="paper")
    assert "91.70" in d.attrs["rh_gt_rs"] and d.attrs["n_rh_gt_rs"] == 2
    assert (d.values[:2] > rs.values[:2]).all()
    ann = xr.DataArray([500.0], dims="time", attrs={"units": "g C m-2 yr-1"})
    out = rh.bond_lamberty2004(ann)
    assert out.attrs["units"] == "g C m-2 yr-1" and float(out[0]) == pytest.approx(316.29, 1e-4)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.floats(0, 2000), min_size=1, max_size=30))
def test_shi_clipped_never_exceeds_rs(values):
    rs = np.array(values)
    with np.errstate(all="ignore"):
        import warnings
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            out = rh.shi2015(rs)
    assert np.all(out <= rs)


def test_shi_modes_and_vertex_count():
    rs = _da(np.array([5.0, 100.0, 400.0]), "g C m-2 month-1")
    with pytest.warns(RuntimeWarning, match="333.9"):
        out = rh.shi2015(rs)
    assert out.attrs["n_rs_above_vertex"] == 1
    assert float(out[0]) == 5.0
    with pytest.warns(RuntimeWarning):
        paper = rh.shi2015(rs, mode="paper")
    assert float(paper[0]) == pytest.approx(-0.0009 * 25 + 0.6011 * 5 + 4.8874)
