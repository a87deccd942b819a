"""Stability analysis (carbonsink.analysis.stability; seed 001 Eq. 3, METHODS §6.4): the CV guard
for near-zero means, exact natural breaks recorded in the table, class shares from true areas
summing to 100 % per zone, and the regional mean CV."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from demo_analysis_helpers import COMBO, demo_context, demo_cubes, weighted_mean

from carbonsink import stats
from carbonsink.analysis import MemoryContext, run_analysis
from carbonsink.analysis.base import TIDY_COLUMNS
from carbonsink.analysis.stability import DEFAULT_MIN_MEAN, stability_dataset
from carbonsink.cube import GridSpec, pixel_area
from carbonsink.errors import InvalidArgumentError


def _series(rows: list[np.ndarray]) -> xr.DataArray:
    return xr.DataArray(np.array(rows, dtype=np.float64), dims=("pixel", "time"),
                        attrs={"units": "g C m-2 yr-1"}, name="nep")


def test_guard_masks_and_flags_near_zero_means_in_data_units():
    x = np.arange(10.0)
    big = 100.0 + (x - 4.5) * 3.0          # mean 100
    near = 5.0 + (x - 4.5)                 # mean 5 < 10
    neg = -20.0 + (x - 4.5)                # mean -20
    few = np.r_[120.0, 130.0, [np.nan] * 8]
    empty = np.full(10, np.nan)
    da = _series([big, near, neg, few, empty])
    ds = stats.coefficient_of_variation(da, min_valid=5, full=True, min_mean=10.0)
    cv = ds["cv"].values
    assert cv[0] == pytest.approx(np.std(big, ddof=1) / np.mean(big), rel=1e-12)
    assert np.isnan(cv[1:]).all()
    assert ds["flag"].values.tolist() == [0, 3, 2, 1, stats.CLASS_FILL]
    assert stats.class_labels(ds["flag"])[3] == "near-zero mean"
    # the same threshold given in other units: 0.01 kg C m-2 yr-1 = 10 g C m-2 yr-1
    ds2 = stats.coefficient_of_variation(da, min_valid=5, full=True, min_mean=0.01,
                                         min_mean_units="kg C m-2 yr-1")
    assert ds2["flag"].values.tolist() == [0, 3, 2, 1, stats.CLASS_FILL]
    assert float(ds2["cv"].attrs["min_mean"]) == pytest.approx(10.0)
    # without the guard the near-zero mean gives its (huge-ish) CV and no flag (unchanged API)
    plain = stats.coefficient_of_variation(da, min_valid=5, full=True)
    assert "flag" not in plain
    assert plain["cv"].values[1] == pytest.approx(np.std(near, ddof=1) / 5.0, rel=1e-12)


def test_guard_keeps_natural_breaks_meaningful():
    """Many near-zero means took one class to themselves (99.7 % of the area in one class on the
    demo); the guard in data units removes them."""
    rng = np.random.default_rng(3)
    n_ok, n_near = 380, 20
    means = np.r_[rng.uniform(60, 400, n_ok), rng.uniform(0.05, 2.0, n_near)]
    sd = rng.uniform(10, 40, means.size)
    data = means[:, None] + sd[:, None] * rng.standard_normal((means.size, 20))
    data = data - data.mean(1, keepdims=True) + means[:, None]
    g = GridSpec("EPSG:4326", 0.5, (100.0, 30.0, 110.0, 40.0))  # 20 x 20
    area = pixel_area(g)
    da = xr.DataArray(data.reshape(20, 20, 20).transpose(2, 0, 1), dims=("time", "y", "x"),
                      coords={"time": pd.date_range("2001", periods=20, freq="YS"),
                              "y": area["y"], "x": area["x"]}, name="nep",
                      attrs={"units": "g C m-2 yr-1"})
    ctx = MemoryContext({("annual", COMBO): xr.Dataset({"nep": da})}, {"area": area})

    def largest_share(min_mean):
        t = run_analysis("stability", ctx, min_mean=min_mean).tables["stability_classes"]
        return t[t.statistic == "area_share"]["value"].max()

    assert largest_share(0.0) > 90.0
    assert largest_share(DEFAULT_MIN_MEAN) < 60.0


@pytest.fixture(scope="module")
def result():
    return run_analysis("stability", demo_context(), variables=["nep", "npp"])


def test_breaks_in_the_table_equal_exact_natural_breaks(result):
    annual, *_ = demo_cubes()
    cv = stats.coefficient_of_variation(annual["nep"], min_mean=DEFAULT_MIN_MEAN)
    expect = stats.natural_breaks(cv, 5, method="exact")
    bt = result.tables["stability_breaks"]
    b = bt[bt.variable == "nep"].pivot_table(index="class", columns="statistic", values="value")
    got = np.r_[b["lower_bound"].iloc[0], b["upper_bound"].values]
    np.testing.assert_allclose(got, expect, rtol=0, atol=0)
    # and the class map applies them: class c holds b_{c-1} < CV <= b_c
    ds = stability_dataset(annual["nep"])
    cls, v = ds["cv_class"].values, ds["cv"].values
    ok = np.isfinite(v)
    np.testing.assert_array_equal(cls[ok], np.searchsorted(expect[1:-1], v[ok], "left") + 1)


def test_class_shares_sum_to_100_per_zone_and_match_true_areas(result):
    annual, _, _, _, area, zones = demo_cubes()
    t = result.tables["stability_classes"]
    assert list(t.columns[:3]) == ["experiment", "combination", "zone"]
    assert set(TIDY_COLUMNS) <= set(t.columns)
    shares = t[t.statistic == "area_share"].groupby(["variable", "zone"])["value"].sum()
    np.testing.assert_allclose(shares.values, 100.0, rtol=1e-12)
    assert set(t.zone) == {"study area", "west", "east"}
    # zone areas add up to the region's, and the region's equals the area with a CV [km2]
    a = t[(t.statistic == "area") & (t.variable == "nep")].groupby("zone")["value"].sum()
    assert a["west"] + a["east"] == pytest.approx(a["study area"], rel=1e-12)
    ds = stability_dataset(annual["nep"])
    expect = float(area.where(ds["cv"].notnull()).sum()) / 1e6
    assert a["study area"] == pytest.approx(expect, rel=1e-9)


def test_regional_mean_cv_and_guard_shares(result):
    annual, _, _, _, area, zones = demo_cubes()
    ds = stability_dataset(annual["nep"])
    s = result.tables["stability_summary"]
    s = s[s.variable == "nep"].set_index(["zone", "statistic"])["value"]
    cv, a = ds["cv"].values, area.values
    assert s[("study area", "mean_cv")] == pytest.approx(weighted_mean(cv, a), rel=1e-9)
    west = zones.values == 1
    assert s[("west", "mean_cv")] == pytest.approx(weighted_mean(cv, a, west), rel=1e-9)
    flags = [k for k in s.index if k[0] == "study area" and k[1].startswith("share_")]
    assert len(flags) == 4
    assert sum(s[k] for k in flags) == pytest.approx(100.0, rel=1e-12)
    # CV of the area-weighted regional series, by hand
    w = area.values
    ser = np.array([weighted_mean(annual["nep"].values[i], w)
                    for i in range(annual.sizes["time"])])
    assert s[("study area", "cv_of_regional_series")] == pytest.approx(
        ser.std(ddof=1) / ser.mean(), rel=1e-9)
    # no pixel with a mean below the guard keeps a CV
    m = annual["nep"].mean("time").values
    assert np.isnan(cv[m < DEFAULT_MIN_MEAN]).all()


def test_products_and_report_section(result):
    names = {(p.name, p.combination) for p in result.datasets}
    assert names == {("nep_stability", COMBO), ("npp_stability", COMBO)}
    p = result.datasets[0]
    assert set(p.maps) == {"cv", "cv_class", "flag"}
    assert p.data["cv_class"].dtype == np.int8
    sec = result.sections[0]
    kinds = [b.kind for b in sec.blocks]
    assert kinds.count("figure") == 6 and kinds.count("table") == 3
    assert all(f.name in result.figures for f in sec.figures)
    assert "per half" in sec.blocks[0].text and "study area" in sec.blocks[0].text
    assert any("per half" in t.caption for t in sec.tables)


def test_growing_season_and_option_errors():
    res = run_analysis("stability", demo_context(with_zones=False), season="growing_season")
    assert res.datasets[0].name == "nep_gs_stability"
    t = res.tables["stability_classes"]
    assert set(t.zone) == {"study area"} and set(t.season) == {"growing_season"}
    with pytest.raises(InvalidArgumentError, match="min_mean_threshold"):
        run_analysis("stability", demo_context(), min_mean_threshold=3)
    with pytest.raises(InvalidArgumentError):
        run_analysis("stability", demo_context(), min_mean=-1)
