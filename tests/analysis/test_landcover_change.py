"""landcover_change: area-weighted transition matrices (demo truth), per-transition flux
change (hand-computed), stable + converted = regional change, Sankey flows = matrix,
real MCD12C1 class areas of Nei Mongol = province area."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink import demo
from carbonsink.analysis import MemoryContext, run_analysis
from carbonsink.analysis.landcover_change import (changed_share, class_area_change,
                                                  contribution_summary, sankey_figure,
                                                  sankey_layout, square_matrix,
                                                  transition_chain, transition_flux_change,
                                                  transition_matrix, transition_table)
from carbonsink.cube import GridSpec, pixel_area, reclassify

IGBP = {c: n for c, n in demo.IGBP_NAMES.items()}


@pytest.fixture(scope="module")
def small_demo():
    return demo.generate_with_truth(ny=30, nx=30, start=2001, end=2008)


def _grid(ny, nx):
    return GridSpec("EPSG:4326", 1.0, (100.0, 40.0, 100.0 + nx, 40.0 + ny)).coords()


def _map(values, name="lc"):
    v = np.asarray(values)
    da = xr.DataArray(v, dims=("y", "x"), coords=_grid(*v.shape), name=name)
    return da.rio.write_crs("EPSG:4326")


def test_demo_matrix_equals_truth_weighted_by_pixel_areas(small_demo):
    d, truth = small_demo
    lc = d["landcover"]
    first, last = lc.isel(time=0), lc.isel(time=-1)
    area = pixel_area(first)
    # pixel counts (unit areas) reproduce the recorded truth exactly
    ones = xr.ones_like(area).assign_attrs(units="km2")
    counts = transition_matrix(first, last, ones, labels=IGBP).sel(zone="all")
    tm = truth.transition_matrix
    np.testing.assert_array_equal(counts.sel(from_class=list(tm.index),
                                             to_class=list(tm.columns)).values, tm.to_numpy())
    assert counts.sum() == tm.to_numpy().sum()
    # area weights: the truth's pixel pairs (first map, its change to the last map as recorded
    # by change_year) weighted by the analytic lat/lon cell areas of METHODS §1.6
    lat = np.deg2rad(first["y"].values)
    r, half = 6371007.181, np.deg2rad(0.025)
    row_area = r ** 2 * np.deg2rad(0.05) * (np.sin(lat + half) - np.sin(lat - half)) / 1e6
    a = np.broadcast_to(row_area[:, None], first.shape)
    changed = truth.change_year.values > 0
    assert changed.sum() == tm.to_numpy().sum() - np.trace(tm.to_numpy())
    expect = pd.crosstab(first.values.ravel(), last.values.ravel(), values=a.ravel(),
                         aggfunc="sum").fillna(0.0)
    mat = transition_matrix(first, last, area, labels=IGBP).sel(zone="all")
    got = mat.sel(from_class=list(expect.index), to_class=list(expect.columns)).values
    np.testing.assert_allclose(got, expect.to_numpy(), rtol=1e-12, atol=1e-9)
    off = mat.values.copy()
    np.fill_diagonal(off, 0.0)
    np.testing.assert_allclose(off.sum(), a[changed].sum(), rtol=1e-12)
    # row sums = first date's class areas, column sums = last date's
    for m, date in ((first, "from"), (last, "to")):
        ref = pd.Series(a.ravel()).groupby(m.values.ravel()).sum()
        sums = mat.sum("to_class" if date == "from" else "from_class")
        np.testing.assert_allclose(sums.sel({f"{date}_class": ref.index.values}).values,
                                   ref.values, rtol=1e-12)


def test_chain_sankey_flows_equal_matrix(small_demo):
    d, _ = small_demo
    cl = reclassify(d["landcover"], scheme="igbp", to="8class")
    maps = [cl.isel(time=i).drop_vars("time") for i in (0, 3, 7)]
    mats = transition_chain(maps, dates=[2001, 2004, 2008])
    assert len(mats) == 3 and mats[-1].attrs["date_from"] == "2001"
    # consecutive matrices chain: column sums of step 1 = row sums of step 2
    np.testing.assert_allclose(mats[0].sum("from_class").values, mats[1].sum("to_class").values,
                               rtol=1e-12)
    lay = sankey_layout(mats[:2])
    flows, nodes = lay["flows"], lay["nodes"]
    for step, m in enumerate(mats[:2]):
        f = flows[flows.step == step]
        mm = m.sel(zone="all")
        for _, r in f.iterrows():
            assert r["value"] == pytest.approx(float(mm.sel(from_class=r["from_class"],
                                                            to_class=r["to_class"])), rel=1e-12)
        assert f["value"].sum() == pytest.approx(float(mm.sum()), rel=1e-12)
        assert len(f) == int((mm.values > 0).sum())
        # band heights are proportional to the flow values
        h = f["y1_from"] - f["y0_from"]
        np.testing.assert_allclose(h / h.sum(), f["value"] / f["value"].sum(), rtol=1e-9)
        hin = f["y1_to"] - f["y0_to"]
        np.testing.assert_allclose(hin / hin.sum(), f["value"] / f["value"].sum(), rtol=1e-9)
    col0 = nodes[nodes.column == 0].set_index("class")["value"]
    np.testing.assert_allclose(col0.values, mats[0].sel(zone="all").sum("to_class").values)
    col2 = nodes[nodes.column == 2].set_index("class")["value"]
    np.testing.assert_allclose(col2.values, mats[1].sel(zone="all").sum("from_class").values)
    # bands leaving a bar tile it exactly
    for c, grp in flows[flows.step == 0].groupby("from_class"):
        n = nodes[(nodes.column == 0) & (nodes["class"] == c)].iloc[0]
        assert grp["y1_from"].max() == pytest.approx(n["y1"])
        assert grp["y0_from"].min() == pytest.approx(n["y0"])
    fig = sankey_figure(lay, title="t")
    assert len(fig.axes[0].patches) == len(flows) + int((nodes["value"] > 0).sum())


def test_matrix_tables_and_shares_on_a_hand_case():
    lab = {1: "forest", 2: "grassland", 3: "barren"}
    a = _map([[1, 1, 2], [2, 2, 3]]).assign_attrs(flag_values=[1, 2, 3],
                                                  flag_meanings="forest grassland barren")
    b = _map([[1, 2, 2], [1, 2, 0]]).assign_attrs(a.attrs)
    area = xr.full_like(a, 1.0, dtype=float).assign_attrs(units="km2")
    area[0, :] = 2.0
    m = transition_matrix(a, b, area).sel(zone="all")
    expect = np.array([[2.0, 2.0, 0], [1.0, 3.0, 0], [0, 0, 0]])  # last pixel unclassified
    np.testing.assert_allclose(m.values, expect)
    assert changed_share(m) == pytest.approx(100 * 3 / 8)
    cc = class_area_change(m).set_index("class_name")
    assert cc.loc["forest", "area_from"] == 4 and cc.loc["forest", "area_to"] == 3
    assert cc.loc["forest", "area_change_percent"] == pytest.approx(-25.0)
    assert cc.loc["grassland", "share_change"] == pytest.approx(100 * (5 - 4) / 8)
    sq = square_matrix(m, "1e4 km2")
    assert sq.loc["Sum", "Sum"] == pytest.approx(8e-4)
    tab = transition_table(m)
    assert set(tab.units) == {"km2", "1e4 km2", "%"}
    assert tab[(tab.statistic == "share")]["value"].sum() == pytest.approx(100.0)
    assert m.attrs["units"] == "km2" and lab[1] == m["from_name"].values[0]


def test_transition_flux_change_hand_computed():
    attrs = dict(flag_values=[1, 2], flag_meanings="forest grassland")
    c1 = _map([[1, 1, 2, 2]]).assign_attrs(attrs)
    c2 = _map([[1, 2, 2, 1]]).assign_attrs(attrs)
    area = xr.DataArray(np.array([[1.0, 2.0, 3.0, 4.0]]), dims=("y", "x"),
                        coords=c1.coords, attrs={"units": "km2"})
    u = {"units": "g C m-2 yr-1"}
    before = _map([[100.0, 200.0, 50.0, 60.0]]).assign_attrs(u)
    after = _map([[110.0, 150.0, 70.0, np.nan]]).assign_attrs(u)
    fc = transition_flux_change(c1, c2, before, after, area)
    g = fc.set_index(["from_name", "to_name", "statistic"])["value"]
    assert g["forest", "forest", "change"] == pytest.approx(10.0)
    assert g["forest", "grassland", "change"] == pytest.approx(-50.0)
    assert g["grassland", "grassland", "mean_after"] == pytest.approx(70.0)
    assert ("grassland", "forest", "area") not in g.index  # NaN after: excluded
    total_a = 6.0  # pixels valid on both dates: 1 + 2 + 3 km2
    assert g["forest", "grassland", "contribution"] == pytest.approx(2 * -50 / total_a)
    # total change [Tg C yr-1]: Σ A·Δ = 2e6 m2 · (−50 g m-2) = −1e8 g = −1e-4 Tg
    assert g["forest", "grassland", "total_change"] == pytest.approx(-1e-4)
    cs = contribution_summary(fc).set_index(["component", "statistic"])["value"]
    regional = (1 * 110 + 2 * 150 + 3 * 70) / 6 - (1 * 100 + 2 * 200 + 3 * 50) / 6
    assert cs["total", "contribution"] == pytest.approx(regional)
    assert cs["stable", "contribution"] + cs["converted", "contribution"] == \
        pytest.approx(regional, abs=1e-12)
    assert cs["stable", "contribution"] == pytest.approx((1 * 10 + 3 * 20) / 6)
    assert cs["total", "regional_mean_after"] - cs["total", "regional_mean_before"] == \
        pytest.approx(regional)
    # counting pixels without flux as zero brings the grassland -> forest pixel in
    fz = transition_flux_change(c1, c2, before, after, area, nonvegetated="zero")
    gz = fz.set_index(["from_name", "to_name", "statistic"])["value"]
    assert gz["grassland", "forest", "change"] == pytest.approx(-60.0)


def test_analysis_on_the_demo_contributions_add_up(small_demo):
    d, _ = small_demo
    npp = d["npp_annual"]
    rh = (0.4 * npp).assign_attrs(units="g C m-2 yr-1")
    annual = xr.Dataset({"npp": npp, "rh": rh, "nep": (npp - rh).assign_attrs(
        units="g C m-2 yr-1")})
    ctx = MemoryContext({("annual", "demo"): annual},
                        {"area": pixel_area(npp.isel(time=0)), "landcover": d["landcover"]},
                        synthetic=True)
    res = run_analysis("landcover_change", ctx, dates=[2001, 2005, 2008], scheme="8class",
                       nonvegetated="zero")
    tr = res.tables["landcover_transitions"]
    assert {"date_from", "date_to", "from_name", "to_name"} <= set(tr.columns)
    assert set(tr.date_from) == {"2001", "2005"}
    cs = res.tables["landcover_change_contributions"]
    for v in ("npp", "rh", "nep"):
        c = cs[(cs.variable == v) & (cs.statistic == "contribution")].set_index(
            "component")["value"]
        assert c["stable"] + c["converted"] == pytest.approx(c["total"], abs=1e-9)
        tot = cs[(cs.variable == v) & (cs.component == "total")].set_index("statistic")["value"]
        # the regional change computed directly from the maps
        a = pixel_area(npp.isel(time=0)).values
        fb, fa = annual[v].isel(time=0).fillna(0).values, annual[v].isel(time=-1).fillna(0).values
        assert c["total"] == pytest.approx(((fa - fb) * a).sum() / a.sum(), rel=1e-9)
        assert tot["regional_mean_after"] - tot["regional_mean_before"] == \
            pytest.approx(c["total"], rel=1e-9)
    summ = res.tables["landcover_change_summary"]
    assert (summ[summ.statistic == "changed_share"]["value"] > 0).all()
    assert {"landcover_sankey", "landcover_transition_heatmap",
            "landcover_class_areas"} <= set(res.figures)
    assert res.sections[0].figures and res.sections[0].tables


def test_mcd12c1_class_areas_of_nei_mongol_sum_to_the_province(shared_data):
    import rioxarray

    from carbonsink.cube import region_mask

    tif = next((shared_data / "landcover").glob("MCD12C1*.tif"))
    lc = rioxarray.open_rasterio(tif).squeeze("band", drop=True)
    lc = lc.rio.clip_box(97.0, 37.0, 126.5, 53.5)
    lc.name = "landcover"
    prov = next((shared_data / "boundaries").glob("china_provinces_*.geojson"))
    mask = region_mask(lc, prov, attribute="name", values="Nei Mongol")
    area = pixel_area(lc)
    province_km2 = float((area.where(mask)).sum()) / 1e6
    assert 1.0e6 < province_km2 < 1.3e6  # ≈ 1.18 million km2
    for to in ("7class", "8class"):
        cl = reclassify(lc, scheme="mcd12c1", to=to)
        m = transition_matrix(cl, cl, area, mask=mask).sel(zone="all")
        assert changed_share(m) == 0.0
        cc = class_area_change(m)
        assert cc["area_from"].sum() == pytest.approx(province_km2, rel=1e-9)
        if to == "8class":
            assert cc.set_index("class_name").loc["shrub", "area_from"] > 0
