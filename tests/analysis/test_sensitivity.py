"""Hold-one-driver-constant sensitivity experiments (seed paper 002, METHODS §7.2): the
arithmetic of both contribution methods on 002's Table 3, and the registered analysis on
in-memory experiments with known per-pixel trends."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401
import xarray as xr

from carbonsink.analysis import TIDY_COLUMNS, MemoryContext, run_analysis
from carbonsink.analysis.sensitivity import (
    difference_contributions,
    dominant_factor,
    run_trend_contributions,
)
from carbonsink.cube import pixel_area
from carbonsink.errors import InvalidArgumentError
from carbonsink.stats import CLASS_FILL

# 002 Table 3: S1 control, S2 temperature, S3 precipitation, S4 solar radiation held
B_S1, B_RUNS = 0.2, {"tas": 0.5, "pr": -0.1, "sol": 0.2}


def test_difference_method_on_002_table3():
    r = difference_contributions(B_S1, B_RUNS)
    assert r["delta"] == pytest.approx({"tas": -0.3, "pr": 0.3, "sol": 0.0}, abs=1e-12)
    assert r["relative_contribution"] == pytest.approx({"tas": 50.0, "pr": 50.0, "sol": 0.0})
    assert r["residual"] == pytest.approx(0.2)  # b(S1) − ΣΔ = 0.2 − 0


def test_paper_method_on_002_table3():
    rc = run_trend_contributions(B_RUNS)["relative_contribution"]
    assert rc == pytest.approx({"tas": 62.5, "pr": 12.5, "sol": 25.0})
    # with the unrounded trends of METHODS §7.2 the published 68 / 21 / 11 % appear
    rc = run_trend_contributions({"tas": 0.50, "sol": 0.154, "pr": 0.081})["relative_contribution"]
    assert [round(rc[k]) for k in ("tas", "sol", "pr")] == [68, 21, 11]


def test_arithmetic_edge_cases_and_arrays():
    assert np.isnan(difference_contributions(0.3, {"tas": 0.3})["relative_contribution"]["tas"])
    a = xr.DataArray([1.0, 2.0, np.nan], dims="x")
    r = difference_contributions(a, {"tas": a - 1.0, "pr": a * 0})
    np.testing.assert_allclose(r["relative_contribution"]["tas"].values[:2], [50, 100 / 3])
    np.testing.assert_allclose(r["residual"].values[:2], [-1.0, -1.0])
    with pytest.raises(InvalidArgumentError):
        difference_contributions(0.2, {})
    dom = dominant_factor({"tas": xr.DataArray([-3.0, 1.0, 0.0, np.nan], dims="x"),
                           "pr": xr.DataArray([2.0, -4.0, 0.0, 1.0], dims="x")})
    np.testing.assert_array_equal(dom.values, [1, 2, 0, CLASS_FILL])
    assert list(dom.attrs["labels"]) == ["none (all zero)", "tas", "pr"]


NY, NX, T = 6, 8, 12


def _cube(slope_map, units="g C m-2 yr-1", noise=None):
    t = np.arange(T, dtype=float)[:, None, None]
    data = 100.0 + slope_map[None] * t + (0 if noise is None else noise)
    time = pd.date_range("2001-01-01", periods=T, freq="YS")
    coords = {"time": time, "y": 40.0 - 0.25 * np.arange(NY), "x": 100.0 + 0.25 * np.arange(NX)}
    ds = xr.Dataset({v: xr.DataArray(data * f, dims=("time", "y", "x"), coords=coords,
                                     attrs={"units": units})
                     for v, f in (("nep", 1.0), ("npp", 3.0), ("rh", 2.0))})
    return ds.rio.write_crs("EPSG:4326")


@pytest.fixture(scope="module")
def experiments():
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 2.0, (T, NY, NX))  # the same weather noise in every run
    x = np.linspace(0, 1, NX)[None, :].repeat(NY, 0)
    slopes = {"S1": 2.0 + 0 * x, "S2": 2.0 - 1.5 * x, "S3": 1.0 + 0 * x, "S4": 2.0 + 0.2 * x}
    return {e: _cube(s, noise=noise) for e, s in slopes.items()}, slopes


def _regional_slope(da, w):
    """OLS slope of the area-weighted mean series (numpy oracle)."""
    series = (da.values * w[None]).sum(axis=(1, 2))
    return float(np.polyfit(np.arange(T), series, 1)[0])


class _Capture(MemoryContext):
    """MemoryContext that keeps what the analysis stores (per-pixel products)."""

    def store(self, product):
        self.stored = getattr(self, "stored", {})
        self.stored[(product.name, product.experiment)] = product
        return super().store(product)


def _ctx(cubes):
    area = pixel_area(cubes["S1"]["nep"])
    return _Capture({("annual", "toy", e): ds for e, ds in cubes.items()}, {"area": area})


def test_analysis_difference_method_per_pixel_and_regionally(experiments):
    cubes, slopes = experiments
    ctx = _ctx(cubes)
    res = run_analysis("sensitivity", ctx, drivers={"S2": "tas", "S3": "pr", "S4": "sol"})
    # per pixel: the shared noise cancels in Δ, so Δ_X = slope(S1) − slope(S_X) exactly
    px = ctx.stored[("sensitivity", None)].data
    x = np.linspace(0, 1, NX)[None, :].repeat(NY, 0)
    np.testing.assert_allclose(px["nep_delta_tas"].values, 1.5 * x, atol=1e-9)
    np.testing.assert_allclose(px["nep_delta_pr"].values, 1.0, atol=1e-9)
    np.testing.assert_allclose(px["nep_delta_sol"].values, -0.2 * x, atol=1e-9)
    tot = 1.5 * x + 1.0 + 0.2 * x
    np.testing.assert_allclose(px["npp_rc_tas"].values, 100 * 1.5 * x / tot, rtol=1e-6)
    tr = {e: ctx.stored[("sensitivity_trends", e)].data["nep_trend"].values for e in slopes}
    np.testing.assert_allclose(px["nep_residual"].values,
                               tr["S2"] + tr["S3"] + tr["S4"] - 2 * tr["S1"], atol=1e-9)
    trend = tr["S2"]
    assert np.corrcoef(trend.ravel(), (2.0 - 1.5 * x).ravel())[0, 1] > 0.9
    tab = res.tables["sensitivity"]
    assert list(tab.columns[:3]) == list(TIDY_COLUMNS[:3])
    nep = tab[tab.variable == "nep"].set_index(["factor", "statistic"])["value"]
    area = pixel_area(cubes["S1"]["nep"]).values
    w = area / area.sum()
    b = {e: _regional_slope(cubes[e]["nep"], w) for e in slopes}
    assert nep["control", "trend"] == pytest.approx(b["S1"], rel=1e-9)
    delta = {k: b["S1"] - b[e] for k, e in (("tas", "S2"), ("pr", "S3"), ("sol", "S4"))}
    tot = sum(abs(v) for v in delta.values())
    for k, d in delta.items():
        assert nep[k, "delta"] == pytest.approx(d, rel=1e-9, abs=1e-12)
        assert nep[k, "relative_contribution"] == pytest.approx(100 * abs(d) / tot, rel=1e-9)
    assert nep["residual", "residual"] == pytest.approx(b["S1"] - sum(delta.values()), abs=1e-9)
    npp = tab[(tab.variable == "npp") & (tab.statistic == "trend") & (tab.factor == "control")]
    assert float(npp["value"].iloc[0]) == pytest.approx(3 * b["S1"], rel=1e-9)
    assert set(tab[tab.statistic == "relative_contribution"]["method"]) == {"difference"}
    # dominant driver per pixel: |Δ_tas| = 1.5x, |Δ_pr| = 1, |Δ_sol| = 0.2x
    dom = res.tables["sensitivity_dominant"]
    shares = dom[dom.statistic == "area_share"].set_index("class_name")["value"]
    x = np.linspace(0, 1, NX)
    exp_tas = float((np.where(1.5 * x > 1.0, 1.0, 0.0)[None, :] * w).sum()) * 100
    assert shares["tas"] == pytest.approx(exp_tas, rel=1e-9)
    assert shares["sol"] == 0.0
    assert any(k.endswith("_sensitivity_nep_trends") for k in res.figures)
    kinds = [type(bk).__name__ for bk in res.sections[0].blocks]
    assert kinds.count("TableRef") == 1 and "FigureRef" in kinds


def test_analysis_paper_mode_normalises_the_run_trends(experiments):
    cubes, slopes = experiments
    res = run_analysis("sensitivity", _ctx(cubes), mode="paper", variables=["nep"],
                       drivers={"S2": "tas", "S3": "pr", "S4": "sol"})
    tab = res.tables["sensitivity"]
    area = pixel_area(cubes["S1"]["nep"]).values
    w = area / area.sum()
    b = {k: _regional_slope(cubes[e]["nep"], w) for k, e in (("tas", "S2"), ("pr", "S3"),
                                                              ("sol", "S4"))}
    rc = tab[tab.statistic == "relative_contribution"].set_index("factor")["value"]
    tot = sum(abs(v) for v in b.values())
    for k, v in b.items():
        assert rc[k] == pytest.approx(100 * abs(v) / tot, rel=1e-9)
    assert set(tab[tab.statistic == "relative_contribution"]["method"]) == {"paper_run_trends"}
    assert set(tab["variable"]) == {"nep"}


def test_analysis_needs_two_experiments_and_a_known_baseline(experiments):
    cubes, _ = experiments
    res = run_analysis("sensitivity", _ctx({"S1": cubes["S1"]}))
    assert "sensitivity" not in res.tables
    with pytest.raises(InvalidArgumentError, match="baseline"):
        run_analysis("sensitivity", _ctx(cubes), baseline="S9")
    with pytest.raises(InvalidArgumentError, match="S7"):
        run_analysis("sensitivity", _ctx(cubes), drivers={"S7": "tas"})
    # without a study the driver labels default to the experiment names
    res = run_analysis("sensitivity", _ctx(cubes), baseline="S3", variables=["nep"])
    tab = res.tables["sensitivity"]
    assert set(tab[tab.statistic == "delta"]["factor"]) == {"S1", "S2", "S4"}
