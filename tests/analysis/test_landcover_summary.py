"""landcover_summary: per-class areas, means and totals with each year's class (or a
reference year's), aggregates with and without a class, per zone, per-class trends."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from carbonsink.analysis import MemoryContext, run_analysis
from carbonsink.cube import GridSpec

U = "g C m-2 yr-1"


def _cube(values, years, name, units=U):
    v = np.asarray(values, dtype=float)
    coords = GridSpec("EPSG:4326", 1.0, (0.0, 0.0, v.shape[2], v.shape[1])).coords()
    t = pd.to_datetime([f"{y}-01-01" for y in years])
    da = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t, **coords}, name=name,
                      attrs={"units": units})
    return da.rio.write_crs("EPSG:4326")


class _Ctx(MemoryContext):
    def __init__(self, *a, zones=None, **k):
        super().__init__(*a, **k)
        self._z = zones

    def zones(self):
        return self._z


@pytest.fixture
def case():
    # 1 x 3 pixels, areas 1, 2, 3 km2; IGBP: forest (4), grassland (10), barren (16)
    years = list(range(2001, 2013))
    n = len(years)
    lc = np.empty((n, 1, 3))
    lc[:, 0, 0] = 4
    lc[:, 0, 1] = np.where(np.array(years) >= 2005, 4, 10)  # grassland -> forest in 2005
    lc[:, 0, 2] = 16
    t = np.arange(n, dtype=float)
    nep = np.empty((n, 1, 3))
    nep[:, 0, 0] = 300 + 5 * t
    nep[:, 0, 1] = 100 + 2 * t
    nep[:, 0, 2] = 10.0
    npp = nep * 2
    rh = npp - nep
    ds = xr.Dataset({"npp": _cube(npp, years, "npp"), "rh": _cube(rh, years, "rh"),
                     "nep": _cube(nep, years, "nep")})
    gs = (ds * 0.8).assign_attrs()
    for v in gs:
        gs[v].attrs["units"] = "g C m-2"
    area = xr.DataArray(np.array([[1.0, 2.0, 3.0]]), dims=("y", "x"),
                        coords={"y": ds.y, "x": ds.x}, attrs={"units": "km2"})
    landcover = _cube(lc, years, "landcover", units="1").astype("uint8")
    return years, ds, gs, area, landcover


def _run(case, zones=None, **opts):
    years, ds, gs, area, lc = case
    ctx = _Ctx({("annual", "c"): ds, ("growing_season", "c"): gs},
               {"area": area, "landcover": lc}, zones=zones, growing_season_months=(5, 6, 7, 8))
    return run_analysis("landcover_summary", ctx, **opts)


def test_each_year_in_its_own_class(case):
    years, ds, *_ = case
    res = _run(case)
    ann = res.tables["landcover_annual"]
    nep = ann[(ann.variable == "nep") & (ann.zone == "study area")]
    f = nep[nep.class_name == "forest"].pivot_table(index="year", columns="statistic",
                                                   values="value")
    t = np.arange(len(years), dtype=float)
    a = 300 + 5 * t
    b = 100 + 2 * t
    conv = np.array(years) >= 2005
    expect = np.where(conv, (1 * a + 2 * b) / 3, a)
    np.testing.assert_allclose(f["mean"].to_numpy(), expect)
    np.testing.assert_allclose(f["area"].to_numpy(), np.where(conv, 3.0, 1.0))
    # total [Tg C yr-1]: Σ F·A, A in m2, g -> Tg
    np.testing.assert_allclose(f["total"].to_numpy(), np.where(conv, a + 2 * b, a) * 1e6 / 1e12)
    assert set(nep.landcover) == {"year of each step"}
    multi = res.tables["landcover_nep"]
    m = multi[(multi.variable == "nep") & (multi.zone == "study area")].set_index(
        ["class_name", "statistic"])["value"]
    pooled = (np.where(conv, a + 2 * b, a).sum()) / np.where(conv, 3.0, 1.0).sum()
    assert m["forest", "multi_year_mean"] == pytest.approx(pooled)
    assert m["grassland", "multi_year_mean"] == pytest.approx(b[~conv].mean())
    assert {"area", "multi_year_mean", "multi_year_mean_total", "gs_multi_year_mean",
            "gs_monthly_mean"} <= set(multi.statistic)
    gsm = m["forest", "gs_monthly_mean"]
    assert gsm == pytest.approx(0.8 * pooled / 4)
    assert set(multi[multi.statistic == "gs_monthly_mean"].units) == {"g C m-2 month-1"}
    # with and without barren from one run
    every = (1 * a + 2 * b + 3 * 10.0) / 6
    without = (1 * a + 2 * b) / 3
    allc = nep[(nep.class_name == "all classes") & (nep.statistic == "mean")]["value"]
    woc = nep[(nep.class_name == "without barren") & (nep.statistic == "mean")]["value"]
    np.testing.assert_allclose(allc.to_numpy(), every)
    np.testing.assert_allclose(woc.to_numpy(), without)


def test_reference_year_and_trends(case):
    years, ds, *_ = case
    res = _run(case, reference_year=2001, scheme="8class", trend_min_years=5)
    ann = res.tables["landcover_annual"]
    nep = ann[(ann.variable == "nep") & (ann.statistic == "mean")]
    g = nep[nep.class_name == "grassland"]["value"].to_numpy()
    t = np.arange(len(years), dtype=float)
    np.testing.assert_allclose(g, 100 + 2 * t)
    assert set(ann.landcover) == {"reference year 2001"} and set(ann.scheme) == {"8class"}
    tr = res.tables["landcover_trends"]
    f = tr[(tr.variable == "nep") & (tr.class_name == "forest")].set_index("statistic")
    assert f.loc["ols_slope", "value"] == pytest.approx(5.0)
    assert f.loc["sen_slope", "value"] == pytest.approx(5.0)
    assert f.loc["ols_slope", "units"] == "g C m-2 yr-2"
    # yearly attribution: the forest series jumps in 2005; OLS against scipy
    res2 = _run(case, trend_min_years=5)
    tr2 = res2.tables["landcover_trends"]
    ann2 = res2.tables["landcover_annual"]
    s = ann2[(ann2.variable == "nep") & (ann2.statistic == "mean") &
             (ann2.class_name == "forest")]["value"].to_numpy()
    ref = stats.linregress(years, s)
    got = tr2[(tr2.variable == "nep") & (tr2.class_name == "forest")].set_index("statistic")
    assert got.loc["ols_slope", "value"] == pytest.approx(ref.slope, rel=1e-9)
    assert got.loc["ols_p", "value"] == pytest.approx(ref.pvalue, rel=1e-6)
    assert res2.figures and res2.sections[0].tables


def test_per_zone_blocks(case):
    years, ds, gs, area, lc = case
    zones = xr.DataArray(np.array([[1, 1, 2]], dtype="int32"), dims=("y", "x"),
                         coords={"y": ds.y, "x": ds.x},
                         attrs={"zone_names": json.dumps({"1": "East", "2": "West"})})
    res = _run(case, zones=zones)
    multi = res.tables["landcover_nep"]
    area_rows = multi[(multi.statistic == "area") & (multi.variable == "nep")]
    per = area_rows.pivot_table(index="class_name", columns="zone", values="value")
    assert set(per.columns) == {"study area", "East", "West"}
    assert per.loc["barren", "West"] == pytest.approx(3.0)
    assert per.loc["all classes", "East"] + per.loc["all classes", "West"] == \
        pytest.approx(per.loc["all classes", "study area"])


def test_unknown_scheme_and_exclude_are_reported(case):
    from carbonsink.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="target classification"):
        _run(case, scheme="nine")
