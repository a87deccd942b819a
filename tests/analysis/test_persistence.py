"""Persistence analysis (carbonsink.analysis.persistence; seed 001 Fig. 7, METHODS §6.5): Hurst
R/S of a known series, the Anis–Lloyd expected R/S and small-sample correction, share of
H > 0.5 and trend × Hurst class shares per zone."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from demo_analysis_helpers import COMBO, demo_context, demo_cubes, weighted_mean

from carbonsink import stats
from carbonsink.analysis import MemoryContext, run_analysis
from carbonsink.analysis.persistence import persistence_dataset
from carbonsink.cube import GridSpec, pixel_area
from carbonsink.errors import InvalidArgumentError
from carbonsink.stats.persistence import expected_rs

XI = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]  # METHODS §12.1: H = 0.8404


def test_expected_rs_by_hand_for_small_n():
    # Anis & Lloyd (1976): Γ((n−1)/2)/(√π Γ(n/2)) Σ_{i=1}^{n−1} sqrt((n−i)/i)
    assert expected_rs(2, peters=False) == pytest.approx(1.0, rel=1e-14)  # R/S of 2 values is 1
    n3 = (1.0 / (math.sqrt(math.pi) * (math.sqrt(math.pi) / 2))) * (math.sqrt(2) + math.sqrt(0.5))
    assert n3 == pytest.approx(2 / math.pi * 1.5 * math.sqrt(2))
    assert expected_rs(3, peters=False) == pytest.approx(n3, rel=1e-14)
    n4 = (math.sqrt(math.pi) / 2) / math.sqrt(math.pi) * (math.sqrt(3) + 1 + math.sqrt(1 / 3))
    assert expected_rs(4, peters=False) == pytest.approx(n4, rel=1e-14)
    # Peters (1994): times (n − 1/2)/n
    np.testing.assert_allclose(expected_rs(np.array([3, 4])),
                               [n3 * 2.5 / 3, n4 * 3.5 / 4], rtol=1e-14)
    # large n: no overflow; the gamma ratio tends to 1/sqrt(n π / 2) (the form used for
    # n > 340 when Γ overflows)
    n = 5000
    i = np.arange(1, n)
    approx = np.sqrt((n - i) / i).sum() / math.sqrt(n * math.pi / 2)
    assert expected_rs(n, peters=False) == pytest.approx(approx, rel=1e-3)
    with pytest.raises(InvalidArgumentError):
        expected_rs(1)


def test_expected_rs_against_monte_carlo_white_noise():
    """Independent oracle: the mean R/S (population s.d.) of Gaussian white noise."""
    rng = np.random.default_rng(11)
    for n in (3, 6):
        x = rng.standard_normal((200_000, n))
        d = x - x.mean(axis=1, keepdims=True)
        c = d.cumsum(axis=1)
        rs = (c.max(axis=1) - c.min(axis=1)) / d.std(axis=1)
        assert rs.mean() == pytest.approx(expected_rs(n, peters=False), rel=0.004)


def _slow_corrected(series, method, tau_min, peters):
    """H = 0.5 + OLS slope of ln(R/S) − ln E[R/S] on ln τ, written out directly."""
    x = np.asarray([v for v in series if np.isfinite(v)], dtype=np.float64)
    m = x.size
    taus = list(range(tau_min, m + 1)) if method == "expanding" else \
        list(range(tau_min, m // 2 + 1)) + [m]
    lx, ly = [], []
    for tau in taus:
        blocks = [x[:tau]] if method == "expanding" else \
            ([x[b * tau:(b + 1) * tau] for b in range(m // tau)] if tau != m else [x])
        vals = []
        for blk in blocks:
            d = blk - blk.mean()
            c = np.cumsum(d)
            vals.append((c.max() - c.min()) / np.sqrt((d * d).mean()))
        lx.append(math.log(tau))
        ly.append(math.log(np.mean(vals)) - math.log(expected_rs(tau, peters=peters)))
    return 0.5 + np.polyfit(lx, ly, 1)[0]


@pytest.mark.parametrize("method,tau_min", [("expanding", 3), ("blocks", 4)])
@pytest.mark.parametrize("correction", ["anis-lloyd", "peters"])
def test_corrected_hurst_equals_the_definition(method, tau_min, correction):
    rng = np.random.default_rng(5)
    x = rng.standard_normal((6, 24)).cumsum(axis=1) * 0.3 + rng.standard_normal((6, 24))
    x[2, [3, 10]] = np.nan       # 22 valid values: the table entry of n = 22
    x[4, 0] = np.nan
    da = xr.DataArray(x, dims=("pixel", "time"))
    ds = stats.hurst_rs(da, method=method, correction=correction, min_valid=15, full=True)
    for i in range(x.shape[0]):
        expect = _slow_corrected(x[i], method, tau_min, correction == "peters")
        assert float(ds["hurst"][i]) == pytest.approx(expect, abs=1e-10)
    unc = stats.hurst_rs(da, method=method, min_valid=15)
    xr.testing.assert_allclose(ds["hurst_uncorrected"], unc.rename("hurst_uncorrected"))


def test_white_noise_corrected_hurst_is_near_one_half():
    rng = np.random.default_rng(2)
    da = xr.DataArray(rng.standard_normal((3000, 24)), dims=("pixel", "time"))
    raw = float(stats.hurst_rs(da).mean())
    al = float(stats.hurst_rs(da, correction="anis-lloyd").mean())
    assert raw == pytest.approx(0.62, abs=0.02)        # METHODS §12.1: mean 0.62
    assert al == pytest.approx(0.50, abs=0.02)


def _known_cube():
    g = GridSpec("EPSG:4326", 1.0, (100.0, 30.0, 103.0, 32.0))  # 2 x 3
    area = pixel_area(g)
    scale = np.array([[1.0, 2.0, 0.5], [3.0, 1.5, 1.0]])
    v = np.asarray(XI, dtype=np.float64)[:, None, None] * scale[None] + 10.0 * scale[None]
    v[:, 1, 2] = -v[:, 1, 2][::-1]    # a decreasing pixel
    da = xr.DataArray(v, dims=("time", "y", "x"),
                      coords={"time": pd.date_range("2001", periods=len(XI), freq="YS"),
                              "y": area["y"], "x": area["x"]}, name="nep",
                      attrs={"units": "g C m-2 yr-1"})
    return da, area


def test_hurst_of_a_known_series_in_the_map_and_for_the_regional_series():
    da, area = _known_cube()
    ds = persistence_dataset(da)
    np.testing.assert_allclose(ds["hurst"].values[[0, 0, 0, 1, 1], [0, 1, 2, 0, 1]], 0.8404,
                               atol=5e-5)
    ctx = MemoryContext({("annual", COMBO): xr.Dataset({"nep": da.where(da.x < 102.5)})},
                        {"area": area})
    res = run_analysis("persistence", ctx)
    s = res.tables["hurst_summary"].set_index("statistic")["value"]
    # the regional series is an affine function of the known series: same H
    assert s["regional_series_hurst"] == pytest.approx(0.8404, abs=5e-5)
    assert s["share_h_above_threshold"] == pytest.approx(100.0)
    assert s["mean_hurst"] == pytest.approx(0.8404, abs=5e-5)


@pytest.fixture(scope="module")
def result():
    return run_analysis("persistence", demo_context(), correction="anis-lloyd")


def test_demo_shares_and_classes(result):
    annual, _, _, _, area, zones = demo_cubes()
    ds = result.datasets[0].data
    assert result.datasets[0].name == "nep_persistence"
    assert set(result.datasets[0].maps) == {"hurst", "persistence_class"}
    h, b, cls = ds["hurst"].values, ds["sen_slope"].values, ds["persistence_class"].values
    ok = np.isfinite(h) & np.isfinite(b)
    expect = np.sign(b[ok]) * np.where(h[ok] > 0.5, 2, np.where(h[ok] < 0.5, 1, 0))
    np.testing.assert_array_equal(cls[ok], expect)
    t = result.tables["persistence_classes"]
    sums = t[t.statistic == "area_share"].groupby("zone")["value"].sum()
    np.testing.assert_allclose(sums.values, 100.0, rtol=1e-12)
    assert set(sums.index) == {"study area", "west", "east"}
    s = result.tables["hurst_summary"].set_index(["zone", "statistic"])["value"]
    a = area.values
    above = np.where(np.isfinite(h), (h > 0.5).astype(float), np.nan)
    assert s[("study area", "share_h_above_threshold")] == pytest.approx(
        100 * weighted_mean(above, a), rel=1e-9)
    east = zones.values == 2
    assert s[("east", "share_h_above_threshold")] == pytest.approx(
        100 * weighted_mean(above, a, east), rel=1e-9)
    assert s[("west", "mean_hurst")] == pytest.approx(weighted_mean(h, a, ~east), rel=1e-9)
    # the correction lowers H by the same amount as the expected R/S slope over τ = 3..21
    taus = np.arange(3, annual.sizes["time"] + 1)
    shift = 0.5 - np.polyfit(np.log(taus), np.log(expected_rs(taus, peters=False)), 1)[0]
    full = np.isfinite(h) & (annual["nep"].notnull().sum("time").values == annual.sizes["time"])
    np.testing.assert_allclose(h[full] - ds["hurst_uncorrected"].values[full], shift,
                               atol=1e-12)


def test_report_section_names_zones_and_options(result):
    sec = result.sections[0]
    assert "anis-lloyd" in sec.blocks[0].text and "per half" in sec.blocks[0].text
    assert len(sec.figures) == 3 and len(sec.tables) == 2
    assert all(f.name in result.figures for f in sec.figures)


def test_significance_split_and_differences_input():
    res = run_analysis("persistence", demo_context(with_zones=False), significance=True,
                       input="differences", method="blocks")
    cls = res.datasets[0].data["persistence_class"]
    assert set(np.unique(cls.values)) <= set(range(-4, 5)) | {stats.CLASS_FILL}
    t = res.tables["persistence_classes"]
    assert len(set(t["class"])) == 9 and set(t.zone) == {"study area"}
    with pytest.raises(InvalidArgumentError):
        run_analysis("persistence", demo_context(), correction="lo")
