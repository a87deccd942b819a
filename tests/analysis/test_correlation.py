"""Correlation analysis (carbonsink.analysis.correlation; METHODS §6.6): the demo's prescribed
driver–flux couplings appear with their signs, maps equal the statistics engine and NumPy on a
pixel, area shares sum to 100 % per zone, the factor ranking (seed 003 Table 2), the regional
series correlation and the dominant driver."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from demo_analysis_helpers import COMBO, demo_context, demo_cubes, weighted_mean

from carbonsink import demo, stats
from carbonsink.analysis import run_analysis
from carbonsink.analysis.correlation import correlation_dataset, ranking_table
from carbonsink.errors import InputError, InvalidArgumentError


@pytest.fixture(scope="module")
def raw():
    return run_analysis("correlation", demo_context())


@pytest.fixture(scope="module")
def npp_detrended():
    return run_analysis("correlation", demo_context(), variable="npp", detrend=True, fdr=True)


def _share(res, method, driver, stat, zone="study area"):
    t = res.tables["correlation_shares"]
    sel = t[(t.method == method) & (t.driver == driver) & (t.statistic == stat) &
            (t.zone == zone)]
    return float(sel["value"].item())


def test_prescribed_signs_of_the_demo(raw, npp_detrended):
    signs = demo.truth(ny=4, nx=4).couplings["expected_signs"]
    assert signs["nep~pr_annual (detrended)"] == "+"
    assert signs["npp_annual~tas_annual (partial, detrended)"] == "-"
    assert signs["npp_annual~pr_annual (detrended)"] == "+"
    for m in ("pearson", "spearman", "partial"):
        # NEP rises with precipitation (+0.5 NPP elasticity), raw and detrended, in both zones
        for zone in ("study area", "west", "east"):
            assert _share(raw, m, "pr", "positive_share", zone) > 95.0
        assert _share(npp_detrended, m, "pr", "positive_share") > 95.0
    # NPP falls with temperature once precipitation and radiation are held (−0.06 per degC)
    assert _share(npp_detrended, "partial", "tas", "negative_share") > 90.0
    assert _share(npp_detrended, "partial", "tas", "significant_negative_share") > 50.0
    # precipitation dominates the interannual NEP variability
    dd = raw.tables["dominant_driver_shares"]
    reg = dd[(dd.zone == "study area") & (dd.statistic == "area_share")]
    assert reg.set_index("class_name")["value"]["pr"] > 80.0


def test_maps_equal_the_engine_and_numpy_on_a_pixel():
    annual, drv, *_ = demo_cubes()
    ds = correlation_dataset(annual["nep"], drv[["tas", "pr", "sol"]])
    pc = stats.partial_correlation(annual["nep"], {k: drv[k] for k in ("tas", "pr", "sol")})
    np.testing.assert_array_equal(ds["partial_r"].values, pc["r"].values)
    sp = stats.spearman(annual["nep"], drv["sol"])
    np.testing.assert_array_equal(ds["spearman_r"].sel(driver="sol").values, sp["r"].values)
    y, x = 5, 17
    a = annual["nep"].values[:, y, x].astype(np.float64)
    b = drv["pr"].values[:, y, x].astype(np.float64)
    assert float(ds["pearson_r"].sel(driver="pr")[y, x]) == pytest.approx(
        np.corrcoef(a, b)[0, 1], abs=1e-6)
    dom = stats.dominant_driver(pc)
    np.testing.assert_array_equal(ds["dominant_driver"].values, dom.values)


def test_shares_sum_to_100_per_zone_and_mean_r_by_hand(raw):
    annual, drv, _, _, area, zones = demo_cubes()
    t = raw.tables["correlation_classes"]
    sums = t[t.statistic == "area_share"].groupby(["method", "driver", "zone"])["value"].sum()
    np.testing.assert_allclose(sums.values, 100.0, rtol=1e-12)
    for m in ("pearson", "spearman", "partial"):
        for k in ("tas", "pr", "sol"):
            for z in ("study area", "west", "east"):
                assert (_share(raw, m, k, "positive_share", z) +
                        _share(raw, m, k, "negative_share", z)) == pytest.approx(100.0)
    ds = raw.datasets[0].data
    r = ds["spearman_r_tas"].values
    west = zones.values == 1
    assert _share(raw, "spearman", "tas", "mean_r", "west") == pytest.approx(
        weighted_mean(r, area.values, west), rel=1e-9)


def test_factor_ranking_by_r_or_abs():
    means = pd.DataFrame({"zone": ["A"] * 3 + ["B"] * 3, "method": "spearman",
                          "driver": ["tas", "pr", "sund"] * 2,
                          "value": [0.47, 0.36, -0.60, 0.23, 0.15, 0.23]})
    by_r = ranking_table(means, by="r")
    assert by_r[by_r.zone == "A"]["driver"].tolist() == ["tas", "pr", "sund"]
    assert by_r[by_r.zone == "B"]["rank"].tolist() == [1, 1, 3]   # ties share the rank
    by_abs = ranking_table(means, by="abs")
    assert by_abs[by_abs.zone == "A"]["driver"].tolist() == ["sund", "tas", "pr"]
    assert set(by_abs["ranked_by"]) == {"|mean r|"}


def test_ranking_table_and_report(raw):
    rk = raw.tables["factor_ranking"]
    top = rk[(rk.statistic == "rank") & (rk.value == 1)]
    assert set(top["driver"]) == {"pr"} and set(top["zone"]) == {"study area", "west", "east"}
    assert set(rk["method"]) == {"spearman"} and set(rk["ranked_by"]) == {"mean r"}
    sec = raw.sections[0]
    text = sec.blocks[0].text
    assert "signed, as seed 003 Table 2" in text and "per half" in text
    ranking = [t for t in sec.tables if t.name == "factor_ranking"][0]
    assert ranking.rows[0][0] == "study area"
    assert ranking.rows[0][2].startswith("precipitation (")
    assert all(f.name in raw.figures for f in sec.figures)
    # 3 drivers × (spearman + partial) maps, share bars, dominant map and its zone bars
    assert len(sec.figures) == 9
    maps = raw.datasets[0].maps
    assert {"pearson_r_tas", "pearson_p_tas", "spearman_p_pr", "partial_r_sol",
            "dominant_driver"} <= set(maps)


def test_regional_series_correlation_by_hand(raw):
    annual, drv, _, _, area, zones = demo_cubes()
    reg = raw.tables["regional_series_correlation"]
    a = area.values
    for zone, mask in (("study area", None), ("east", zones.values == 2)):
        y = np.array([weighted_mean(annual["nep"].values[i], a, mask)
                      for i in range(annual.sizes["time"])])
        x = np.array([weighted_mean(drv["tas"].values[i], a, mask)
                      for i in range(annual.sizes["time"])])
        got = reg[(reg.zone == zone) & (reg.method == "pearson") & (reg.driver == "tas") &
                  (reg.statistic == "r")]["value"].item()
        assert got == pytest.approx(np.corrcoef(y, x)[0, 1], abs=1e-9)


def test_fdr_and_detrend_options(npp_detrended):
    ds = npp_detrended.datasets[0].data
    p, praw = ds["partial_p_tas"].values, ds["partial_p_raw_tas"].values
    ok = np.isfinite(p)
    assert (p[ok] >= praw[ok] - 1e-15).all() and (p[ok] > praw[ok]).any()
    assert "Benjamini–Hochberg" in npp_detrended.sections[0].blocks[0].text
    assert "pearson_p_raw_tas" not in npp_detrended.datasets[0].maps


def test_growing_season_missing_driver_and_bad_options():
    res = run_analysis("correlation", demo_context(with_zones=False), season="growing_season",
                       drivers=["tas", "pr"], partial=False)
    assert res.datasets[0].name == "nep_gs_correlation"
    assert "dominant_driver_shares" not in res.tables
    assert set(res.tables["correlation_shares"]["method"]) == {"pearson", "spearman"}
    with pytest.raises(InputError, match="hurs"):
        run_analysis("correlation", demo_context(), drivers=["tas", "hurs"])
    with pytest.raises(InvalidArgumentError):
        run_analysis("correlation", demo_context(), drivers=["wind"])
    assert COMBO in res.tables["correlation_shares"]["combination"].values
