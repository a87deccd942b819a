"""Statistics of regional annual series against hand-computed values and scipy/pymannkendall."""

import numpy as np
import pandas as pd
import pymannkendall as pmk
import pytest
from scipy import stats as sps

from carbonsink.analysis.series_stats import decade_periods, series_statistics


def _table():
    rng = np.random.default_rng(3)
    years = np.arange(2001, 2022)
    noisy = 40 + 1.5 * (years - 2001) + rng.normal(0, 5, years.size)
    noisy[4] = np.nan
    rows = []
    for zone, vals in (("line", 2.0 * (years - 2001) + 5.0), ("noisy", noisy)):
        for y, v in zip(years, vals):
            rows.append({"zone": zone, "statistic": "mean", "year": y,
                         "units": "g C m-2 yr-1", "value": v})
    return pd.DataFrame(rows), years, noisy


def _get(out, zone, stat, period=""):
    sel = out[(out.zone == zone) & (out.statistic == stat) & (out.period == period)]
    assert len(sel) == 1
    return sel["value"].item(), sel["units"].item()


def test_decade_periods():
    assert decade_periods(range(2001, 2022)) == [(2001, 2010), (2011, 2020)]
    assert decade_periods(range(1979, 2019), start=1980) == [(1980, 1989), (1990, 1999),
                                                            (2000, 2009), (2010, 2018)][:3]


def test_linear_series_exact():
    df, years, _ = _table()
    out = series_statistics(df, keys=["zone", "statistic"])
    assert _get(out, "line", "ols_slope") == (pytest.approx(2.0), "g C m-2 yr-2")
    assert _get(out, "line", "sen_slope")[0] == pytest.approx(2.0)
    assert _get(out, "line", "multi_year_mean")[0] == pytest.approx(25.0)
    assert _get(out, "line", "year_of_min")[0] == 2001
    assert _get(out, "line", "year_of_max")[0] == 2021
    assert _get(out, "line", "cumulative") == (pytest.approx(525.0), "g C m-2")
    assert _get(out, "line", "period_mean", "2001-2010")[0] == pytest.approx(14.0)
    assert _get(out, "line", "period_mean", "2011-2020")[0] == pytest.approx(34.0)
    assert _get(out, "line", "period_difference", "2011-2020 minus 2001-2010")[0] == \
        pytest.approx(20.0)


def test_noisy_series_against_oracles():
    df, years, noisy = _table()
    out = series_statistics(df, keys=["zone", "statistic"], periods=[(2001, 2005), (2016, 2021)])
    ok = np.isfinite(noisy)
    lr = sps.linregress(years[ok], noisy[ok])
    assert _get(out, "noisy", "ols_slope")[0] == pytest.approx(lr.slope, rel=1e-9)
    assert _get(out, "noisy", "ols_p")[0] == pytest.approx(lr.pvalue, rel=1e-6)
    mk = pmk.original_test(noisy[ok])
    assert _get(out, "noisy", "mk_p")[0] == pytest.approx(mk.p, rel=1e-6)
    assert _get(out, "noisy", "n_years")[0] == 20
    assert _get(out, "noisy", "min")[0] == pytest.approx(np.nanmin(noisy))
    assert _get(out, "noisy", "year_of_max")[0] == years[np.nanargmax(noisy)]
    assert _get(out, "noisy", "period_mean", "2001-2005")[0] == pytest.approx(
        np.nanmean(noisy[:5]))
    assert _get(out, "noisy", "period_mean", "2016-2021")[0] == pytest.approx(
        np.mean(noisy[15:]))


def test_fixed_pixel_set_regional_trend_equals_hand_computed():
    """regional_summary (pixel_set=fixed, the default): pixels missing any year are left out of
    every year, so the regional trend is the trend of one pixel set; per_year mixes sets."""
    import xarray as xr

    from carbonsink.analysis import MemoryContext, run_analysis
    from carbonsink.cube import GridSpec, pixel_area

    grid = GridSpec(crs="EPSG:4326", resolution=1.0, bounds=(100, 30, 104, 32))
    area = pixel_area(grid)
    years = np.arange(2001, 2013)
    t = pd.to_datetime([f"{y}-01-01" for y in years])
    rng = np.random.default_rng(5)
    base = rng.uniform(50, 150, (2, 4))
    slope = rng.uniform(-2, 4, (2, 4))
    nep = base[None] + slope[None] * (years - 2001)[:, None, None]
    nep[6:, 0, 0] = np.nan          # a pixel lost after 2006 (e.g. land-cover change)
    nep[3, 1, 2] = np.nan           # a pixel missing one year
    da = xr.DataArray(nep, dims=("time", "y", "x"), coords={"time": t, "y": area.y,
                                                            "x": area.x},
                      attrs={"units": "g C m-2 yr-1"}, name="nep")
    ctx = MemoryContext({("annual", "a+b"): xr.Dataset({"nep": da})}, {"area": area})
    res = run_analysis("regional_summary", ctx, variables=["nep"], growing_season=False)
    st = res.tables["regional_statistics"]
    got = st[(st.of == "mean") & (st.statistic == "ols_slope") & (st.period == "")]["value"]
    keep = np.isfinite(nep).all(axis=0)
    w = np.where(keep, area.values, 0.0)
    series = (np.where(keep, nep, 0.0) * w[None]).sum(axis=(1, 2)) / w.sum()
    expected = np.polyfit(years, series, 1)[0]
    assert got.item() == pytest.approx(expected, rel=1e-9)
    # the fixed set is a plain weighted average of the kept pixels' slopes (exactly linear)
    assert expected == pytest.approx((slope * w).sum() / w.sum(), rel=1e-9)
    per_year = run_analysis("regional_summary", ctx, variables=["nep"], growing_season=False,
                            pixel_set="per_year").tables["regional_statistics"]
    other = per_year[(per_year.of == "mean") & (per_year.statistic == "ols_slope")
                     & (per_year.period == "")]["value"].item()
    assert other != pytest.approx(expected, rel=1e-6)
    area_rows = res.tables["regional_annual"]
    stated = area_rows[area_rows.statistic == "area"]["value"]
    assert np.allclose(stated, w.sum() / 1e6)
