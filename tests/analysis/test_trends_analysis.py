"""The `trends` analysis: fluxes and drivers, annual and growing season, three class schemes
with per-zone area shares, MK variants (MemoryContext, analytic series)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.analysis import MemoryContext, run_analysis
from carbonsink.analysis.base import TIDY_COLUMNS
from carbonsink.cube import GridSpec, pixel_area
from carbonsink.errors import InvalidArgumentError

G = GridSpec("EPSG:4326", 1.0, (100.0, 30.0, 105.0, 34.0))  # 4 rows x 5 columns
YEARS = np.arange(2001, 2013)  # 12 years
SLOPE = {"West": 5.0, "East": -3.0}  # g C m-2 yr-2, prescribed per zone


def _area():
    return pixel_area(G)


def _zones(area):
    z = np.zeros(area.shape, "int32")
    z[:, :2] = 1
    z[:, 2:] = 2
    return xr.DataArray(z, dims=area.dims, coords={"y": area.y, "x": area.x},
                        attrs={"zone_names": json.dumps({"1": "West", "2": "East"}),
                               "zone_layer": "half"})


def _series(area, slope_west, slope_east, base=100.0, units="g C m-2 yr-1", name="nep"):
    b = np.where(np.arange(area.sizes["x"]) < 2, slope_west, slope_east)
    t = (YEARS - YEARS[0]).astype(float)
    v = base + t[:, None, None] * b[None, None, :] * np.ones(area.shape)[None]
    da = xr.DataArray(v, dims=("time", "y", "x"),
                      coords={"time": pd.date_range("2001", periods=len(YEARS), freq="YS"),
                              "y": area.y, "x": area.x}, name=name, attrs={"units": units})
    return da.rio.write_crs("EPSG:4326")


def _ctx(**kw):
    area = _area()
    nep = _series(area, SLOPE["West"], SLOPE["East"])
    annual = xr.Dataset({"nep": nep, "npp": nep * 2 + 10, "rh": nep + 10})
    for v in ("npp", "rh"):
        annual[v].attrs["units"] = "g C m-2 yr-1"
    gs = xr.Dataset({"nep": _series(area, 2.0, 1.0)})
    drv = xr.Dataset({"tas": _series(area, 0.05, 0.02, base=5.0, units="degC", name="tas"),
                      "pr": _series(area, -1.0, 4.0, base=300.0, units="mm yr-1", name="pr")})
    cubes = {("annual", "modis+pei"): annual, ("growing_season", "modis+pei"): gs,
             ("annual", "drivers"): drv}
    return MemoryContext(cubes, {"area": area}, zones=_zones(area), synthetic=True, **kw)


@pytest.fixture(scope="module")
def result():
    return run_analysis("trends", _ctx(), variables=["nep", "tas", "pr"],
                        seasons=["annual", "growing_season"],
                        schemes=["sen_mk", "ols6", "ols4"], mk_variant="prewhitening")


def test_regional_and_zone_trends_recover_the_prescribed_slopes(result):
    tab = result.tables["regional_trends"]
    assert list(tab.columns[:3]) == ["experiment", "combination", "zone"]
    assert list(tab.columns[-4:]) == list(TIDY_COLUMNS[-4:])
    sel = tab[(tab.variable == "nep") & (tab.season == "annual")]
    area = _area()
    west = float(area[:, :2].sum() / area.sum())
    expected = {"West": 5.0, "East": -3.0, "study area": 5.0 * west - 3.0 * (1 - west)}
    for zone, b in expected.items():
        for stat in ("ols_slope", "sen_slope"):
            row = sel[(sel.zone == zone) & (sel.statistic == stat)]
            assert row["value"].item() == pytest.approx(b, rel=1e-9)
            assert row["units"].item() == "g C m-2 yr-2"
    # the regional series of the other fluxes are trended too (no maps for them)
    npp = tab[(tab.variable == "npp") & (tab.season == "annual")
                    & (tab.statistic == "ols_slope")].set_index("zone")["value"]
    assert npp["West"] == pytest.approx(10.0) and npp["East"] == pytest.approx(-6.0)
    assert "npp_trend_classes" not in result.tables
    gs = tab[(tab.variable == "nep") & (tab.season == "growing_season")
             & (tab.statistic == "ols_slope")].set_index("zone")["value"]
    assert gs["West"] == pytest.approx(2.0) and gs["East"] == pytest.approx(1.0)


def test_driver_trends_are_computed_under_the_drivers_pseudo_combination(result):
    tab = result.tables["regional_trends"]
    tas = tab[(tab.variable == "tas") & (tab.statistic == "ols_slope")]
    assert set(tas["combination"]) == {"drivers"}
    v = tas.set_index("zone")["value"]
    assert v["West"] == pytest.approx(0.05) and v["East"] == pytest.approx(0.02)
    assert set(tas["units"]) == {"degC yr-1"}
    pr = result.tables["pr_trend_classes"]
    pr = pr[(pr.statistic == "area_share") & (pr.scheme.str.startswith("OLS six"))]
    west = pr[pr.zone == "West"].set_index("class")["value"]
    east = pr[pr.zone == "East"].set_index("class")["value"]
    assert west[-3] == pytest.approx(100.0) and east[3] == pytest.approx(100.0)


def test_class_shares_per_zone_sum_to_100_and_match_the_prescription(result):
    area = _area()
    west = float(area[:, :2].sum() / area.sum()) * 100
    for v in ("nep", "tas", "pr"):
        tab = result.tables[f"{v}_trend_classes"]
        sh = tab[tab.statistic == "area_share"]
        sums = sh.groupby(["season", "scheme", "zone"])["value"].sum()
        np.testing.assert_allclose(sums.values, 100.0, rtol=1e-12)
        # the area rows of the zones add up to the region's
        ar = tab[(tab.statistic == "area")]
        z = ar[ar.zone != "study area"].groupby(["season", "scheme", "class"])["value"].sum()
        r = ar[ar.zone == "study area"].set_index(["season", "scheme", "class"])["value"]
        np.testing.assert_allclose(z.sort_index().values, r.sort_index().values, rtol=1e-12)
    nep = result.tables["nep_trend_classes"]
    nep = nep[(nep.statistic == "area_share") & (nep.season == "annual")
              & (nep.zone == "study area")]
    # a perfect linear series: p -> 0, so every pixel is in the most significant class
    for scheme, up, down in (("Sen/MK", 4, -4), ("OLS six", 3, -3), ("OLS SI", 2, -2)):
        s = nep[nep.scheme.str.startswith(scheme)].set_index("class")["value"]
        assert s[up] == pytest.approx(west) and s[down] == pytest.approx(100 - west)
        assert s.drop([up, down]).abs().max() == 0


def test_maps_figures_and_report(result):
    names = {d.name for d in result.datasets}
    assert not names  # MemoryContext.store wrote nothing (datasets go through ctx.store)
    figs = set(result.figures)
    assert {"modis+pei_nep_sen_mk_class_map", "modis+pei_nep_ols4_class_map",
            "drivers_tas_sen_mk_class_map", "nep_regional_trend", "nep_gs_regional_trend",
            "tas_regional_trend", "nep_sen_mk_class_shares"} <= figs
    # the categorical map legend lists names with the region's shares
    fig = result.figures["modis+pei_nep_ols4_class_map"]
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert any(t.startswith("significant increase (SI) (") for t in texts)
    sec = result.sections[0]
    captions = " ".join(b.caption for b in sec.blocks if hasattr(b, "caption"))
    assert "West" in " ".join(str(r) for b in sec.tables for r in b.rows)
    assert "each half" in captions
    assert "pre whitening" in sec.blocks[0].text
    # no growing-season driver series in this context: said, not failed
    assert "no growing-season driver series" in sec.blocks[0].text


def test_mk_variant_changes_p_but_not_slope():
    rng = np.random.default_rng(3)
    area = _area()
    nep = _series(area, 1.0, 1.0)
    noise = np.cumsum(rng.normal(0, 3, nep.shape), axis=0)  # autocorrelated
    annual = xr.Dataset({"nep": nep + noise})
    annual["nep"].attrs["units"] = "g C m-2 yr-1"
    ctx = MemoryContext({("annual", "c"): annual}, {"area": area})
    a = run_analysis("trends", ctx, mk_variant="original").tables["regional_trends"]
    b = run_analysis("trends", ctx, mk_variant="yue_wang").tables["regional_trends"]
    get = lambda t, s: t[t.statistic == s]["value"].item()  # noqa: E731
    assert get(a, "sen_slope") == get(b, "sen_slope")
    assert get(a, "mk_p") != get(b, "mk_p")
    import pymannkendall as pmk

    series = (annual["nep"] * area).sum(("y", "x")) / area.sum()
    ref = pmk.yue_wang_modification_test(series.values)
    assert get(b, "mk_p") == pytest.approx(ref.p, rel=1e-6)
    assert get(b, "sen_slope") == pytest.approx(ref.slope, rel=1e-9)


def test_options_are_validated():
    ctx = _ctx()
    with pytest.raises(InvalidArgumentError, match="variant"):
        run_analysis("trends", ctx, mk_variant="bogus")
    with pytest.raises(InvalidArgumentError, match="unknown variable"):
        run_analysis("trends", ctx, variables=["nope"])
    with pytest.raises(InvalidArgumentError, match="unknown map"):
        run_analysis("trends", ctx, maps=["slope"])
    # the older single-variable form still works
    res = run_analysis("trends", ctx, variable="npp", schemes=["ols4"], regional_fluxes=False)
    assert set(res.tables["regional_trends"]["variable"]) == {"npp"}
    assert set(res.tables) == {"regional_trends", "npp_trend_classes"}


def test_too_few_years_skips_with_a_message():
    area = _area()
    annual = xr.Dataset({"nep": _series(area, 1.0, 1.0).isel(time=slice(0, 5))})
    lines = []
    ctx = MemoryContext({("annual", "c"): annual}, {"area": area}, echo=lines.append)
    res = run_analysis("trends", ctx)
    assert not res.tables and any("trends skipped" in s for s in lines)


def test_regional_trend_is_the_regional_summary_trend_when_pixels_drop_out():
    """A pixel valid only in some years (and in one combination only) would change the
    per-year regional mean; with the default fixed pixel set the trends analysis uses the
    pixels regional_summary uses, so both sections report the same regional trend."""
    area = _area()
    nep = _series(area, SLOPE["West"], SLOPE["East"])
    # an outlying high-NEP pixel of the West, missing in the late years of one combination
    a = nep.copy()
    a[:, 0, 0] = 900.0
    a[8:, 0, 0] = np.nan
    b = nep.copy()
    b[:, 0, 0] = 900.0
    cubes = {("annual", "modis+pei"): xr.Dataset({"nep": a}),
             ("annual", "casa+pei"): xr.Dataset({"nep": b})}

    def ctx():
        return MemoryContext(cubes, {"area": area}, zones=_zones(area), synthetic=True)

    summary = run_analysis("regional_summary", ctx(), growing_season=False)
    stats = summary.tables["regional_statistics"]
    ref = stats[(stats.variable == "nep") & (stats["of"] == "mean")
                & (stats.statistic == "ols_slope")].set_index(["combination", "zone"])["value"]
    for kw, same in (({}, True), ({"pixel_set": "per_year"}, False)):
        tab = run_analysis("trends", ctx(), variables=["nep"], **kw).tables["regional_trends"]
        got = tab[(tab.variable == "nep") & (tab.statistic == "ols_slope")].set_index(
            ["combination", "zone"])["value"]
        for key in (("modis+pei", "study area"), ("casa+pei", "study area"),
                    ("modis+pei", "West"), ("casa+pei", "East")):
            if same:
                assert got[key] == pytest.approx(ref[key], rel=1e-9), (kw, key)
        # per year, the pixel leaving the series in 2009 bends the West and regional lines
        if not same:
            assert got[("modis+pei", "West")] != pytest.approx(ref[("modis+pei", "West")],
                                                                 rel=1e-3)
    # fixed: the common pixel set leaves the outlier out of both combinations alike
    assert ref[("modis+pei", "West")] == pytest.approx(SLOPE["West"], rel=1e-9)
    assert ref[("casa+pei", "West")] == pytest.approx(SLOPE["West"], rel=1e-9)
