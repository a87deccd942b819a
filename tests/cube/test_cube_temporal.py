import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.cube import (check_period, composite_starts, composites_to_monthly,
                             growing_season, to_annual, to_monthly)
from carbonsink.errors import InputError, InsufficientDataError, InvalidArgumentError


def _series(times, values, name="gpp", units="g C m-2", ny=2, nx=3):
    values = np.asarray(values, dtype="float64")
    if values.ndim == 1:
        values = np.broadcast_to(values[:, None, None], (len(values), ny, nx)).copy()
    return xr.DataArray(values, dims=("time", "y", "x"),
                        coords={"time": pd.DatetimeIndex(times), "y": np.arange(values.shape[1]),
                                "x": np.arange(values.shape[2])},
                        name=name, attrs={"units": units, "source": "test"})


def _composites(years):
    return pd.DatetimeIndex(np.concatenate([composite_starts(y).values for y in years]))


def test_composite_starts_and_lengths():
    for year, last in [(2019, 5), (2020, 6)]:
        s = composite_starts(year)
        assert len(s) == 46 and s[0].day_of_year == 1 and s[-1].day_of_year == 361
        nxt = pd.Timestamp(year=year + 1, month=1, day=1)
        assert (nxt - s[-1]).days == last


def test_constant_daily_rate_gives_days_in_month_exactly():
    t = _composites([2019, 2020])
    ends = list(t[1:]) + [pd.Timestamp("2021-01-01")]
    ndays = np.array([(min(e, pd.Timestamp(year=s.year + 1, month=1, day=1)) - s).days
                      for s, e in zip(t, ends)], dtype=float)
    da = _series(t, 2.0 * ndays)  # 2 g C m-2 per day
    m = composites_to_monthly(da)
    assert m.sizes["time"] == 24
    np.testing.assert_allclose(m.values[:, 0, 0], 2.0 * m["time"].dt.days_in_month.values, rtol=1e-13)
    assert m.values[13, 0, 0] == pytest.approx(58.0)  # Feb 2020 (leap)
    assert m.attrs["units"] == "g C m-2 month-1" and m.attrs["source"] == "test"


@pytest.mark.parametrize("split", ["days", "start"])
def test_8day_to_monthly_conserves_annual_total_incl_leap_year(split):
    t = _composites([2019, 2020])
    rng = np.random.default_rng(4)
    da = _series(t, rng.random((len(t), 2, 3)) * 40)
    m = composites_to_monthly(da, split=split)
    for year in (2019, 2020):
        comp = da.sel(time=str(year)).sum("time")
        mon = m.sel(time=str(year)).sum("time")
        np.testing.assert_allclose(mon.values, comp.values, rtol=1e-12)


def test_straddling_composite_is_split_by_days():
    # composite 4 starts on Jan 25 (DOY 25): 7 days in January, 1 in February
    t = _composites([2019])
    vals = np.zeros(len(t))
    vals[3] = 80.0
    m = composites_to_monthly(_series(t, vals))
    assert m.values[0, 0, 0] == pytest.approx(70.0)
    assert m.values[1, 0, 0] == pytest.approx(10.0)
    paper = composites_to_monthly(_series(t, vals), split="start")
    assert paper.values[0, 0, 0] == pytest.approx(80.0) and paper.values[1, 0, 0] == 0.0


def test_daily_rate_units_are_multiplied_by_days():
    t = _composites([2019])
    m = composites_to_monthly(_series(t, np.full(len(t), 1.5), name="npp", units="g C m-2 d-1"))
    np.testing.assert_allclose(m.values[:, 0, 0], 1.5 * m["time"].dt.days_in_month.values)
    assert m.attrs["units"] == "g C m-2 month-1"


def test_state_mean_and_max_composites():
    t = _composites([2019])
    vals = np.zeros(len(t))
    vals[3] = 0.8  # Jan 25 - Feb 1
    ndvi = _series(t, vals, name="ndvi", units="1")
    mean = composites_to_monthly(ndvi)  # state -> day-weighted mean
    assert mean.values[0, 0, 0] == pytest.approx(0.8 * 7 / 31)
    assert mean.values[1, 0, 0] == pytest.approx(0.8 * 1 / 28)
    assert mean.attrs["units"] == "1"
    mx = composites_to_monthly(ndvi, how="max")
    assert mx.values[0, 0, 0] == 0.8 and mx.values[1, 0, 0] == 0.8 and mx.values[2, 0, 0] == 0.0


def test_nan_composite_propagates_to_its_months():
    t = _composites([2019])
    da = _series(t, np.ones(len(t)))
    da[3, 0, 0] = np.nan
    m = composites_to_monthly(da)
    assert np.isnan(m.values[0, 0, 0]) and np.isnan(m.values[1, 0, 0])
    assert np.isfinite(m.values[2, 0, 0]) and np.isfinite(m.values[0, 1, 1])
    relaxed = composites_to_monthly(da, min_valid_fraction=0.7)
    # January: 24 of 31 days valid, total scaled to 31 days
    jan_valid = 3 * 1.0  # three whole composites of 8 days, value 1 each
    assert relaxed.values[0, 0, 0] == pytest.approx(jan_valid * 31 / 24)


def test_gaps_edges_and_bad_dates():
    t = _composites([2019])
    with pytest.raises(InsufficientDataError, match=r"'gpp'.*2019-03-06"):
        composites_to_monthly(_series(t.delete(8), np.ones(len(t) - 1)))
    # a series starting on DOY 9 does not cover January: January is dropped
    m = composites_to_monthly(_series(t[1:], np.ones(len(t) - 1)))
    assert pd.Timestamp(m["time"].values[0]) == pd.Timestamp("2019-02-01")
    with pytest.raises(InputError, match="day-of-year 1, 9, 17"):
        composites_to_monthly(_series(t + pd.Timedelta(days=1), np.ones(len(t))))


def test_composites_lazy_and_equal_to_numpy(no_compute):
    t = _composites([2019, 2020])
    rng = np.random.default_rng(2)
    da = _series(t, rng.random((len(t), 4, 6)))
    ref = composites_to_monthly(da)
    with no_compute():
        lazy = composites_to_monthly(da.chunk({"time": -1, "y": 2, "x": 3}))
        ann = to_annual(lazy)
        gs = growing_season(lazy)
        assert isinstance(lazy.data, dsa.Array) and isinstance(ann.data, dsa.Array)
        assert isinstance(gs.data, dsa.Array)
    np.testing.assert_allclose(lazy.values, ref.values, rtol=1e-13)


def _monthly(years, values=None, name="npp", units="g C m-2 month-1"):
    t = pd.date_range(f"{years[0]}-01-01", f"{years[-1]}-12-01", freq="MS")
    if values is None:
        values = np.arange(1, len(t) + 1, dtype=float)
    return _series(t, values, name=name, units=units)


def test_to_annual_sum_and_mean():
    npp = _monthly([2001, 2002])
    a = to_annual(npp)
    np.testing.assert_allclose(a.values[:, 0, 0], [sum(range(1, 13)), sum(range(13, 25))])
    assert a.attrs["units"] == "g C m-2 yr-1"
    assert list(pd.DatetimeIndex(a["time"].values)) == [pd.Timestamp("2001-01-01"),
                                                       pd.Timestamp("2002-01-01")]
    tas = _monthly([2001], name="tas", units="degC")
    at = to_annual(tas)
    assert at.values[0, 0, 0] == pytest.approx(6.5) and at.attrs["units"] == "degC"
    # explicit how overrides the variable kind
    assert to_annual(tas, how="sum").values[0, 0, 0] == pytest.approx(78.0)


def test_to_annual_min_valid_rule():
    npp = _monthly([2001], values=np.full(12, 10.0))
    npp[4, 0, 0] = np.nan
    strict = to_annual(npp)
    assert np.isnan(strict.values[0, 0, 0]) and strict.values[0, 1, 1] == pytest.approx(120.0)
    relaxed = to_annual(npp, min_valid_fraction=11 / 12)
    assert relaxed.values[0, 0, 0] == pytest.approx(120.0)  # 110 scaled by 12/11
    assert np.isnan(to_annual(npp, min_valid_fraction=1.0).values[0, 0, 0])
    # a year only partly present counts missing months as gaps
    partial = npp.isel(time=slice(0, 6))
    assert np.isnan(to_annual(partial).values).all()
    assert to_annual(partial, min_valid_fraction=0.5).values[0, 1, 1] == pytest.approx(120.0)


def test_to_annual_of_mean_daily_rates_uses_days():
    t = pd.date_range("2020-01-01", "2020-12-01", freq="MS")
    flux = _series(t, np.full(12, 2.0), name="gpp", units="g C m-2 d-1")
    assert to_annual(flux).values[0, 0, 0] == pytest.approx(2.0 * 366)
    assert to_annual(flux).attrs["units"] == "g C m-2 yr-1"


def test_growing_season_may_to_september():
    npp = _monthly([2001, 2002])
    gs = growing_season(npp)
    assert gs.values[0, 0, 0] == pytest.approx(5 + 6 + 7 + 8 + 9)
    assert gs.values[1, 0, 0] == pytest.approx(17 + 18 + 19 + 20 + 21)
    assert gs.attrs["units"] == "g C m-2" and gs.attrs["period"] == "May-Sep"
    pm = growing_season(npp, per_month=True)
    assert pm.values[0, 0, 0] == pytest.approx(35 / 5) and pm.attrs["units"] == "g C m-2 month-1"
    tas = _monthly([2001], name="tas", units="degC")
    assert growing_season(tas).values[0, 0, 0] == pytest.approx(7.0)
    custom = growing_season(npp, months=(6, 7, 8))
    assert custom.values[0, 0, 0] == pytest.approx(21.0) and custom.attrs["period"] == "Jun-Aug"
    npp[6, 0, 0] = np.nan  # July 2001
    assert np.isnan(growing_season(npp).values[0, 0, 0])
    npp[0, 0, 0] = np.nan  # January does not matter for the season
    assert growing_season(npp).values[1, 0, 0] == pytest.approx(95.0)
    with pytest.raises(InvalidArgumentError, match="months"):
        growing_season(npp, months=(5, 13))


def test_daily_to_monthly_and_annual():
    t = pd.date_range("2020-01-01", "2020-12-31", freq="D")
    pr = _series(t, np.ones(len(t)), name="pr", units="mm d-1")
    m = to_monthly(pr)
    np.testing.assert_allclose(m.values[:, 0, 0], m["time"].dt.days_in_month.values)
    assert m.attrs["units"] == "mm month-1"
    assert to_annual(pr).values[0, 0, 0] == pytest.approx(366.0)
    pr[40, 0, 0] = np.nan
    assert np.isnan(to_monthly(pr).values[1, 0, 0])
    tas = _series(t, np.arange(len(t), dtype=float), name="tas", units="degC")
    assert to_monthly(tas).values[0, 0, 0] == pytest.approx(15.0)


def test_how_cannot_be_inferred():
    da = _monthly([2001], name="mystery", units="kg")
    with pytest.raises(InputError, match="how='sum' or how='mean'"):
        to_annual(da)
    with pytest.raises(InputError, match="categorical"):
        to_annual(_monthly([2001], name="landcover", units="1"))


def test_check_period():
    npp = _monthly([2001, 2002])
    sub = check_period(npp, 2001, "2001-06")
    assert sub.sizes["time"] == 6
    with pytest.raises(InsufficientDataError) as err:
        check_period(npp, "2000-11", 2002)
    msg = str(err.value)
    assert "'npp'" in msg and "2000-11, 2000-12" in msg and "2 of 26" in msg
    gap = npp.drop_sel(time=[pd.Timestamp("2001-03-01"), pd.Timestamp("2002-07-01")])
    with pytest.raises(InsufficientDataError, match=r"2001-03, 2002-07"):
        check_period(gap, 2001, 2002)
    # mid-month stamps count for their month
    mid = npp.assign_coords(time=npp["time"].values + np.timedelta64(14, "D"))
    assert check_period(mid, 2001, 2002).sizes["time"] == 24
    ann = to_annual(npp)
    check_period(ann, 2001, 2002, freq="YS")
    with pytest.raises(InsufficientDataError, match="2003"):
        check_period(ann, 2001, 2003, freq="YS")
    t = _composites([2019])
    comp = _series(t.delete(10), np.ones(len(t) - 1))
    with pytest.raises(InsufficientDataError, match=r"1 of 46 .*2019-03-22"):
        check_period(comp, 2019, 2019, freq="8D")
    with pytest.raises(InvalidArgumentError, match="freq"):
        check_period(npp, 2001, 2002, freq="W")


def test_datasets_are_aggregated_per_variable():
    npp = _monthly([2001, 2002])
    tas = _monthly([2001, 2002], name="tas", units="degC")
    area = xr.DataArray(np.ones((2, 3)), dims=("y", "x"), name="area", attrs={"units": "m2"})
    ds = xr.Dataset({"npp": npp, "tas": tas, "area": area}, attrs={"combination": "x"})
    ann = to_annual(ds)
    assert ann["npp"].attrs["units"] == "g C m-2 yr-1" and ann["tas"].attrs["units"] == "degC"
    assert ann["npp"].values[0, 0, 0] == pytest.approx(78.0)
    assert ann["tas"].values[0, 0, 0] == pytest.approx(6.5)
    assert "area" in ann and ann.attrs["combination"] == "x"
    gs = growing_season(ds, months=(6, 7, 8))
    assert gs["npp"].values[0, 0, 0] == pytest.approx(21.0) and gs["npp"].attrs["period"] == "Jun-Aug"
    assert check_period(ds, 2001, 2002).sizes["time"] == 24
    with pytest.raises(InsufficientDataError, match="2003-01"):
        check_period(ds, 2001, 2003)


# ----------------------------------------------------------------------------- climatology, hold_constant


def _driver(years=(2001, 2004), seed=7, nan=True):
    t = pd.date_range(f"{years[0]}-01-01", f"{years[1]}-12-01", freq="MS")
    rng = np.random.default_rng(seed)
    vals = rng.normal(10.0, 3.0, (len(t), 2, 3))
    if nan:
        vals[5, 0, 0] = np.nan
    da = _series(t, vals, name="tas", units="degC")
    return da.assign_coords(spatial_ref=xr.DataArray(0, attrs={"crs_wkt": "EPSG:4326"}))


def test_climatology_is_calendar_month_mean():
    from carbonsink.cube.temporal import climatology
    da = _driver()
    c = climatology(da)
    assert c.dims == ("month", "y", "x") and list(c["month"].values) == list(range(1, 13))
    v = da.values
    for m in range(12):
        np.testing.assert_allclose(c.values[m], np.nanmean(v[m::12], axis=0), rtol=1e-13)
    assert c.attrs["units"] == "degC" and c.attrs["source"] == "test" and c.name == "tas"
    assert c["spatial_ref"].attrs["crs_wkt"] == "EPSG:4326"
    sub = climatology(da, period=(2002, 2003))
    np.testing.assert_allclose(sub.values[0], v[[12, 24]].mean(axis=0), rtol=1e-13)
    assert sub.attrs["climatology_period"] == "2002-01 to 2003-12"


@pytest.mark.parametrize("how", ["climatology", "scalar_mean"])
def test_hold_constant(how):
    from carbonsink.cube.temporal import hold_constant
    da = _driver()
    h = hold_constant(da, how, period=(2001, 2003))
    assert h.dims == da.dims and (h["time"].values == da["time"].values).all()
    assert h.attrs["carbonsink_held"] == how and h.attrs["units"] == "degC"
    assert h["spatial_ref"].attrs["crs_wkt"] == "EPSG:4326"
    v = da.values[:36]
    byyear = h.values.reshape(4, 12, 2, 3)
    # zero interannual variance per calendar month
    assert np.all(byyear.var(axis=0) == 0.0)
    if how == "climatology":
        np.testing.assert_allclose(byyear[0], np.nanmean(v.reshape(3, 12, 2, 3), axis=0), rtol=1e-13)
    else:
        assert np.all(h.values == h.values[0])
        np.testing.assert_allclose(h.values[0], np.nanmean(v, axis=0), rtol=1e-13)
        h.values[0, 0, 0] = 1.0  # a writable array, not a broadcast view


def test_anomalies():
    from carbonsink.cube.temporal import anomalies, climatology
    da = _driver(nan=False)
    c = climatology(da).values
    add = anomalies(da)
    np.testing.assert_allclose(add.values, da.values - np.tile(c, (4, 1, 1)), rtol=1e-13)
    np.testing.assert_allclose(add.values.reshape(4, 12, 2, 3).sum(axis=0), 0.0, atol=1e-12)
    mul = anomalies(da, "multiplicative")
    np.testing.assert_allclose(mul.values, da.values / np.tile(c, (4, 1, 1)), rtol=1e-13)
    assert mul.attrs["units"] == "1" and add.attrs["units"] == "degC"
    assert add.attrs["carbonsink_anomaly"] == "additive"


def test_climatology_functions_lazy_and_errors(no_compute):
    from carbonsink.cube.temporal import anomalies, climatology, hold_constant
    from carbonsink.errors import InvalidArgumentError
    da = _driver()
    lazy = da.chunk({"time": -1, "y": 1, "x": 3})
    with no_compute():
        out = {"c": climatology(lazy), "h": hold_constant(lazy),
               "s": hold_constant(lazy, "scalar_mean", period=(2002, 2004)),
               "a": anomalies(lazy, "multiplicative")}
        assert all(isinstance(o.data, dsa.Array) for o in out.values())
        assert out["h"].chunks == lazy.chunks and out["s"].chunks == lazy.chunks
    np.testing.assert_array_equal(out["c"].values, climatology(da).values)
    np.testing.assert_array_equal(out["h"].values, hold_constant(da).values)
    np.testing.assert_array_equal(out["s"].values,
                                  hold_constant(da, "scalar_mean", period=(2002, 2004)).values)
    np.testing.assert_array_equal(out["a"].values, anomalies(da, "multiplicative").values)
    with pytest.raises(InvalidArgumentError, match="scalar_mean"):
        hold_constant(da, "median")
    with pytest.raises(InvalidArgumentError, match="multiplicative"):
        anomalies(da, "ratio")
    with pytest.raises(InvalidArgumentError, match="period"):
        climatology(da, period=2001)
    with pytest.raises(InsufficientDataError, match="no time step"):
        climatology(da, period=(1990, 1995))
    with pytest.raises(InsufficientDataError, match="Jul"):
        hold_constant(da, period=("2001-01", "2001-06"))


def test_flags_are_counted_and_day_rates_integrated():
    t = pd.date_range("2020-01-01", "2021-12-01", freq="MS")
    flag = _series(t, (np.arange(24) % 3 == 0).astype(float), name="rh_gt_rs", units="1")
    flag = flag.astype(bool).assign_attrs(long_name="Rh > Rs")
    n = to_annual(flag)
    np.testing.assert_array_equal(n.values[:, 0, 0], [4, 4])
    assert n.attrs["units"] == "1" and n.attrs["long_name"] == "number of months with Rh > Rs"
    assert to_annual(flag, how="mean").values[0, 0, 0] == pytest.approx(4 / 12)
    assert growing_season(flag).values[0, 0, 0] == 1  # flags in Jan, Apr, Jul, Oct: Jul only
    rate = _series(t, np.full(24, 2.0), name="gpp", units="g C m-2 d-1")
    np.testing.assert_allclose(to_annual(rate).values[:, 0, 0], [2.0 * 366, 2.0 * 365])


def test_flux_annual_is_a_deprecated_alias_of_to_annual():
    from carbonsink.flux.combinations import annual
    npp = _monthly([2001, 2002])
    with pytest.warns(DeprecationWarning, match="to_annual"):
        a = annual(xr.Dataset({"npp": npp}))
    xr.testing.assert_identical(a["npp"], to_annual(npp, min_valid_fraction=1.0))
