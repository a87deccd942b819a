"""Trend attribution of seed paper 000 (METHODS §7.1): recovery on a synthetic cube with known
sensitivities and collinear drivers, the exact decomposition identity, the Table 2 classes on
hand-built pixels, 000's Table 3 arithmetic, and the registered analysis on in-memory data."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import rioxarray  # noqa: F401  (registers .rio)
import xarray as xr

from carbonsink.analysis import TIDY_COLUMNS, MemoryContext, run_analysis
from carbonsink.analysis.attribution import (
    TABLE2_CLASSES,
    attribute,
    climate_human_shares,
    contribution_rates,
    paper_contribution_rates,
    regional_contributions,
    table2_classes,
)
from carbonsink.cube import pixel_area
from carbonsink.errors import InputError, InvalidArgumentError
from carbonsink.stats import CLASS_FILL

T, NY, NX = 21, 12, 15
B = {"pr": 0.3, "tas": 5.0, "sol": -0.05, "pet": 0.1}
H = 1.5
SIGMA = 3.0


def _grid(a, units, name):
    time = pd.date_range("2001-01-01", periods=a.shape[0], freq="YS")
    da = xr.DataArray(a, dims=("time", "y", "x"), name=name, attrs={"units": units},
                      coords={"time": time, "y": 45.0 - 0.1 * np.arange(a.shape[1]),
                              "x": 110.0 + 0.1 * np.arange(a.shape[2])})
    return da.rio.write_crs("EPSG:4326")


@pytest.fixture(scope="module")
def synthetic():
    """NEP = Σ b_k X_k + h·t + noise; PET and SOL collinear with TEM, all drivers trending."""
    rng = np.random.default_rng(42)
    t = np.arange(T, dtype=float)[:, None, None]
    shape = (T, NY, NX)
    tas = 0.06 * t + rng.normal(0, 1.0, shape)
    pet = 600 + 32.0 * tas + rng.normal(0, 10, shape)
    pr = 300 + 2.0 * t + rng.normal(0, 40, shape)
    sol = 5000 + 0.9 * (pet - 600) + rng.normal(0, 30, shape)
    drivers = {"pr": _grid(pr, "mm yr-1", "pr"), "tas": _grid(tas, "degC", "tas"),
               "sol": _grid(sol, "MJ m-2 yr-1", "sol"), "pet": _grid(pet, "mm yr-1", "pet")}
    nep = sum(B[k] * drivers[k].values for k in B) + H * t + rng.normal(0, SIGMA, shape)
    return _grid(nep, "g C m-2 yr-1", "nep"), drivers


def test_recovers_sensitivities_within_their_standard_errors(synthetic):
    nep, drivers = synthetic
    ds = attribute(nep, drivers, detrend=True).compute()
    vif = float(ds["vif_pet"].median())
    assert vif > 5  # the drivers are strongly collinear
    for k, b in B.items():
        z = (ds[f"sens_{k}"] - b) / ds[f"se_{k}"]
        # t-distributed with n - 5 = 16 df: P(|t| < 2) = 0.937, P(|t| < 3) = 0.992
        assert 0.88 < float((abs(z) < 2).mean()) <= 1.0, k
        assert float((abs(z) < 3.5).mean()) > 0.98, k
        # the mean over 180 independent pixels is unbiased
        assert abs(float(z.mean())) < 0.3, k


def test_human_term_recovered_within_its_standard_error(synthetic):
    """Ĥ = dNEP/dt − Σ b̂_k dX_k/dt is linear in NEP, Ĥ = w·NEP; its standard error is
    σ·|w| with w built from the design of each pixel (oracle, numpy)."""
    nep, drivers = synthetic
    ds = attribute(nep, drivers, detrend=True).compute()
    t = np.arange(T, dtype=float)
    tc = t - t.mean()
    c = tc / (tc @ tc)
    P = np.eye(T) - np.ones((T, T)) / T - np.outer(tc, tc) / (tc @ tc)  # centre + detrend
    z = []
    for i in range(NY):
        for j in range(NX):
            X = np.column_stack([drivers[k].values[:, i, j] for k in B])
            Xd = P @ X
            A = np.linalg.solve(Xd.T @ Xd, Xd.T @ P)  # b̂ = A·NEP
            slopes = c @ X
            w = c - slopes @ A
            se = SIGMA * np.sqrt(w @ w)
            z.append((float(ds["h_con"][i, j]) - H) / se)
    z = np.asarray(z)
    assert float((abs(z) < 2).mean()) > 0.9
    assert float((abs(z) < 3.5).mean()) > 0.98
    assert abs(z.mean()) < 0.3


def test_contributions_add_up_to_the_trend_exactly(synthetic):
    nep, drivers = synthetic
    for kw in ({}, {"detrend": True}, {"ridge": 5.0}):
        ds = attribute(nep.astype("float32"), drivers, **kw).compute()
        total = sum(ds[f"xcon_{k}"] for k in B) + ds["h_con"]
        np.testing.assert_allclose(total.values, ds["dnep_dt"].values, rtol=0, atol=1e-9)
        assert ds["dnep_dt"].dtype == np.float64
    # the per-pixel NEP trend is the OLS slope
    slope = np.polyfit(np.arange(T), nep.values[:, 3, 4].astype("float32").astype(float), 1)[0]
    assert float(ds["dnep_dt"][3, 4]) == pytest.approx(slope, rel=1e-10)
    assert ds["xcon_tas"].attrs["units"] == "g C m-2 yr-2"
    assert ds["sens_pr"].attrs["units"] == "(g C m-2 yr-1) (mm yr-1)-1"


def test_table2_classes_on_edge_pixels():
    d = np.array([1, 1, 1, -1, -1, -1, 0, 1, -1, 1, -1, np.nan, 2.0])
    c = np.array([.4, 2, -1, -.4, -2, 1, 0, 0, .5, 1, -1, 1, 1.0])
    h = d - c
    h[9] = 0.0  # C = dNEP/dt exactly
    h[12] = 1.0  # d = c + h with both positive
    cls = table2_classes(d, c, h)
    np.testing.assert_array_equal(cls, [1, 2, 3, 4, 5, 6, 0, 0, 6, 0, 0, CLASS_FILL, 1])
    assert table2_classes(0.0, 0.0, 0.0) == 0
    assert table2_classes(1.0, 0.0, 1.0) == 0  # C exactly zero
    climate, human = climate_human_shares(d, c, h)
    np.testing.assert_allclose(climate[[0, 1, 2, 3, 4, 5]], [40, 100, 0, 40, 100, 0])
    np.testing.assert_allclose(human[[0, 1, 2, 3, 4, 5]], [60, 0, 100, 60, 0, 100])
    assert np.isnan(climate[6]) and np.isnan(human[11])
    da = xr.DataArray(d, dims="x")
    out = table2_classes(da, xr.DataArray(c, dims="x"), xr.DataArray(h, dims="x"))
    assert out.dtype == np.int8 and list(out.attrs["labels"]) == list(TABLE2_CLASSES.values())
    np.testing.assert_array_equal(out.values, cls)


def test_paper_table3_arithmetic_reproduces_000():
    """000 Table 3, interannual, barren included (METHODS §7.1)."""
    x = {"pr": 0.013, "tas": -0.007, "sol": -0.029, "pet": 0.046}
    r = paper_contribution_rates(x, 0.030)
    assert r["c_con"] == pytest.approx(0.095)
    assert r["c_con_signed"] == pytest.approx(0.023)
    np.testing.assert_allclose([r["rates"][k] for k in x], [13.68, -7.37, -30.53, 48.42],
                               atol=0.005)
    assert r["climate"] == pytest.approx(76.0) and r["human"] == pytest.approx(24.0)
    # the recommended (signed) path gives a different split of the same numbers
    s = contribution_rates(x, 0.030)
    assert s["c_con"] == pytest.approx(0.023) and s["dnep_dt"] == pytest.approx(0.053)
    assert s["climate"] + s["human"] == pytest.approx(100.0)
    assert sum(s["rates"].values()) + s["human"] == pytest.approx(100.0)
    assert s["rates"]["pet"] == pytest.approx(100 * 0.046 / 0.053)
    assert np.isnan(contribution_rates({"pr": 1.0}, -1.0)["climate"])  # zero trend


def test_paper_mode_uses_z_scores_and_pearson_r(synthetic):
    nep, drivers = synthetic
    ds = attribute(nep, drivers, mode="paper").compute()
    i, j = 2, 5
    y = nep.values[:, i, j]
    zy = (y - y.mean()) / y.std(ddof=1)
    t = np.arange(T)
    assert float(ds["dnep_dt"][i, j]) == pytest.approx(np.polyfit(t, zy, 1)[0], rel=1e-9)
    x = drivers["tas"].values[:, i, j]
    r = np.corrcoef(x, y)[0, 1]
    zx = (x - x.mean()) / x.std(ddof=1)
    assert float(ds["xcon_tas"][i, j]) == pytest.approx(r * np.polyfit(t, zx, 1)[0], rel=1e-9)
    cabs = sum(abs(ds[f"xcon_{k}"]) for k in B)
    np.testing.assert_allclose(ds["c_con_abs"].values, cabs.values, rtol=1e-12)
    np.testing.assert_allclose(ds["rate_pr"].values,
                               100 * ds["xcon_pr"].values / cabs.values, rtol=1e-12)


def test_regional_rates_are_area_weighted(synthetic):
    nep, drivers = synthetic
    ds = attribute(nep, drivers).compute()
    area = pixel_area(nep)
    zones = xr.DataArray(np.where(np.arange(NX) < 7, 1, 2)[None, :].repeat(NY, 0)
                         .astype("int32"), dims=("y", "x"),
                         coords={"y": nep.y, "x": nep.x},
                         attrs={"zone_names": json.dumps({"1": "west", "2": "east"})})
    tab = regional_contributions(ds, area, zones=zones)
    assert set(tab.zone) == {"study area", "west", "east"}
    w = area.values / area.values.sum()
    got = tab[(tab.zone == "study area") & (tab.statistic == "contribution")] \
        .set_index("factor")["value"]
    assert got["tas"] == pytest.approx(float((ds["xcon_tas"].values * w).sum()), rel=1e-9)
    rates = tab[(tab.zone == "west") & (tab.statistic == "contribution_rate")] \
        .set_index("factor")["value"]
    assert sum(rates[k] for k in B) + rates["human"] == pytest.approx(100.0)


def _ctx(synthetic, *, landcover=None, zones=None, exp="base"):
    nep, drivers = synthetic
    annual = xr.Dataset({"nep": nep})
    drv = xr.Dataset(drivers)
    cubes = {("annual", "toy", exp): annual, ("growing_season", "toy", exp): annual * 0.6,
             ("annual", "drivers", exp): drv, ("growing_season", "drivers", exp): drv}
    cubes[("growing_season", "toy", exp)]["nep"].attrs["units"] = "g C m-2 yr-1"
    inputs = {"area": pixel_area(nep)}
    if landcover is not None:
        inputs["landcover"] = landcover
    return MemoryContext(cubes, inputs, zones=zones)


def test_registered_analysis_tables_maps_and_report(synthetic):
    nep, _ = synthetic
    lc = np.full((2, NY, NX), 10, dtype="uint8")  # grassland
    lc[:, :, :3] = 16  # barren in the west
    landcover = xr.DataArray(lc, dims=("time", "y", "x"),
                             coords={"time": pd.date_range("2001", periods=2, freq="10YS"),
                                     "y": nep.y, "x": nep.x})
    res = run_analysis("attribution", _ctx(synthetic, landcover=landcover))
    reg = res.tables["attribution_regional"]
    assert list(reg.columns[:3]) == list(TIDY_COLUMNS[:3])
    assert set(reg.season) == {"annual", "growing_season"}
    assert set(reg.subset) == {"all pixels", "without barren"}
    area = pixel_area(nep).values
    names = {d.name for d in res.datasets}
    assert not names  # MemoryContext.store returns the data, nothing is deferred
    ds = attribute(nep, synthetic[1]).compute()
    keep = np.ones((NY, NX), bool)
    keep[:, :3] = False
    w = np.where(keep, area, 0) / np.where(keep, area, 0).sum()
    got = reg[(reg.season == "annual") & (reg.subset == "without barren")
              & (reg.factor == "human") & (reg.statistic == "contribution")]["value"]
    assert float(got.iloc[0]) == pytest.approx(float((ds["h_con"].values * w).sum()), rel=1e-9)
    cls = res.tables["attribution_classes"]
    shares = cls[(cls.statistic == "area_share") & (cls.season == "annual")
                 & (cls.subset == "all pixels")]
    assert shares["value"].sum() == pytest.approx(100.0)
    assert set(shares["class"]) == set(range(7))
    signs = res.tables["attribution_signs"]
    s = signs[(signs.season == "annual") & (signs.subset == "all pixels")
              & (signs.factor == "tas")].set_index("statistic")["value"]
    assert s["area_share_positive"] + s["area_share_negative"] + s["area_share_zero"] == \
        pytest.approx(100.0)
    assert set(res.figures) == {"toy_attribution_annual_classes",
                                "toy_attribution_annual_rates",
                                "toy_attribution_growing_season_classes",
                                "toy_attribution_growing_season_rates"}
    sec = res.sections[0]
    kinds = [type(b).__name__ for b in sec.blocks]
    assert "TableRef" in kinds and "FigureRef" in kinds
    legend = res.figures["toy_attribution_annual_classes"].axes[0].get_legend()
    texts = [t.get_text() for t in legend.get_texts()]
    assert len(texts) == 7 and texts[1].startswith("1 increase, climate and human (")


def test_options_and_errors(synthetic):
    ctx = _ctx(synthetic)
    res = run_analysis("attribution", ctx, season="annual", drivers=["tas", "pr"], mode="paper")
    reg = res.tables["attribution_regional"]
    assert set(reg.factor) == {"tas", "pr", "climate", "human", "nep"}
    assert set(reg.season) == {"annual"}
    assert "without barren" not in set(reg.subset)  # no land-cover input
    with pytest.raises(InputError, match="none of the factors"):
        run_analysis("attribution", ctx, drivers=["hurs"])
    with pytest.raises(InvalidArgumentError, match="mode"):
        run_analysis("attribution", ctx, mode="other")
    with pytest.raises(InputError, match="not among the driver series"):
        attribute(synthetic[0], synthetic[1], factors=["hurs"])
