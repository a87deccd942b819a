"""The `sink_classes` analysis: schemes binary / 001 / 002 on the multi-year mean and per
year, per zone, and the one-pass per-zone class shares (oracle: stats.class_area_shares)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.analysis import MemoryContext, run_analysis
from carbonsink.analysis.sink_classes import class_shares_by_zone
from carbonsink.cube import GridSpec, pixel_area
from carbonsink.stats import class_area_shares, sink_source_classes

G = GridSpec("EPSG:4326", 1.0, (100.0, 30.0, 104.0, 33.0))  # 3 rows x 4 columns
# multi-year mean NEP per pixel [g C m-2 yr-1]: sources, 001 levels, a missing pixel
MEAN = np.array([[-20.0, 30.0, 250.0, 500.0],
                 [10.0, 120.0, 399.0, np.nan],
                 [-5.0, 45.0, 60.0, 410.0]])
YEARS = 6


def _zones(area):
    z = np.array([[1, 1, 2, 2], [1, 1, 2, 2], [0, 1, 2, 2]], "int32")
    return xr.DataArray(z, dims=area.dims, coords={"y": area.y, "x": area.x},
                        attrs={"zone_names": json.dumps({"1": "P", "2": "Q"}),
                               "zone_layer": "province"})


def _annual(area):
    # year k adds (k - 2.5) * 10: the mean is MEAN, the sign flips for small |MEAN|
    dev = (np.arange(YEARS) - 2.5) * 10.0
    v = MEAN[None] + dev[:, None, None]
    da = xr.DataArray(v, dims=("time", "y", "x"),
                      coords={"time": pd.date_range("2001", periods=YEARS, freq="YS"),
                              "y": area.y, "x": area.x}, name="nep",
                      attrs={"units": "g C m-2 yr-1"})
    return xr.Dataset({"nep": da.rio.write_crs("EPSG:4326")})


@pytest.fixture(scope="module")
def setup():
    area = pixel_area(G)
    ctx = MemoryContext({("annual", "c1"): _annual(area)}, {"area": area},
                        zones=_zones(area), zone="NW")
    res = run_analysis("sink_classes", ctx, scheme=["binary", "001", "002"])
    return area, res


def _hand_shares(area, classes, mask):
    a = np.asarray(area.values)
    c = np.asarray(classes.values, float)
    ok = mask & np.isfinite(MEAN)
    tot = a[ok].sum()
    return {int(k): 100 * a[ok & (c == k)].sum() / tot for k in np.unique(c[ok])}


def test_mean_class_shares_per_zone_match_hand_computation(setup):
    area, res = setup
    tab = res.tables["sink_source_area"]
    assert list(tab.columns[:3]) == ["experiment", "combination", "zone"]
    sh = tab[tab.statistic == "area_share"]
    zones = _zones(area).values
    for scheme in ("binary", "001", "002"):
        classes = sink_source_classes(xr.DataArray(MEAN, dims=("y", "x")), scheme=scheme)
        for zone, mask in (("NW", np.ones(MEAN.shape, bool)), ("P", zones == 1),
                           ("Q", zones == 2)):
            got = sh[(sh.scheme == scheme) & (sh.zone == zone)].set_index("class")["value"]
            assert got.sum() == pytest.approx(100.0, rel=1e-12)
            for k, v in _hand_shares(area, classes, mask).items():
                assert got[k] == pytest.approx(v, rel=1e-12)
    names = set(sh[sh.scheme == "001"]["class_name"])
    assert names == {"source", "low sink", "medium sink", "high sink"}


def test_yearly_source_share_series(setup):
    area, res = setup
    y = res.tables["sink_source_area_yearly"]
    src = y[(y.statistic == "area_share") & (y.scheme == "binary") & (y.zone == "NW")
            & (y.class_name == "source")].set_index("year")["value"]
    a = np.asarray(area.values)
    ok = np.isfinite(MEAN)
    for k, year in enumerate(range(2001, 2001 + YEARS)):
        v = MEAN + (k - 2.5) * 10.0
        assert src[year] == pytest.approx(100 * a[ok & (v < 0)].sum() / a[ok].sum(), rel=1e-12)
    sums = y[y.statistic == "area_share"].groupby(["scheme", "zone", "year"])["value"].sum()
    np.testing.assert_allclose(sums.values, 100.0, rtol=1e-12)
    assert "nep_source_share_yearly" in res.figures
    fig = res.figures["nep_source_share_yearly"]
    assert [ax.get_title() for ax in fig.axes if ax.get_visible()] == ["NW", "P", "Q"]


def test_maps_dataset_figures_and_section(setup):
    _, res = setup
    (prod,) = res.datasets
    assert prod.name == "sink_classes" and prod.map_prefix == "nep_"
    assert set(prod.maps) == {"sink_class_binary", "sink_class_001", "sink_class_002"}
    assert prod.data["sink_class_001"].attrs["flag_values"].tolist() == [0, 1, 2, 3]
    assert {"c1_nep_sink_class_001_map", "nep_sink_class_002_shares"} <= set(res.figures)
    legend = res.figures["c1_nep_sink_class_001_map"].axes[0].get_legend()
    assert [t.get_text().split(" (")[0] for t in legend.get_texts()] == [
        "source", "low sink", "medium sink", "high sink"]
    text = " ".join(b.caption for b in res.sections[0].blocks if hasattr(b, "caption"))
    assert "each province" in text


def _nep_and_zones(seed, east, years, sd, gap, nlabels):
    """Random yearly NEP (one row band missing) and zones a, b, c (labels 1-3; a label
    beyond 3 names no zone) on a 0.5° grid."""
    rng = np.random.default_rng(seed)
    area = pixel_area(GridSpec("EPSG:4326", 0.5, (100.0, 30.0, east, 34.0)))
    t = pd.date_range("2001", periods=years, freq="YS")
    v = rng.normal(100, sd, (years, *area.shape))
    v[:, gap[0], :gap[1]] = np.nan
    nep = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t, "y": area.y,
                                                          "x": area.x})
    z = rng.integers(0, nlabels, area.shape).astype("int32")
    zones = xr.DataArray(z, dims=area.dims, coords={"y": area.y, "x": area.x},
                         attrs={"zone_names": json.dumps({"1": "a", "2": "b", "3": "c"})})
    return area, nep, zones


def test_class_shares_by_zone_equals_class_area_shares_on_each_zone():
    area, nep, zones = _nep_and_zones(5, 105.0, 4, 150, (0, 3), 4)
    classes = sink_source_classes(nep, scheme="001")
    got = class_shares_by_zone(classes, area, zones, by="time", region="all")
    ref = class_area_shares(classes, area, by="time")
    g = got[got.zone == "all"]
    np.testing.assert_allclose(g["area_km2"].values, ref["area_km2"].values, rtol=1e-12)
    np.testing.assert_allclose(g["share_percent"].values, ref["share_percent"].values,
                               rtol=1e-12)
    for k, name in ((1, "a"), (2, "b"), (3, "c")):
        ref = class_area_shares(classes.where(zones == k), area, by="time")
        g = got[got.zone == name]
        np.testing.assert_allclose(g["area_km2"].values, ref["area_km2"].values, rtol=1e-12)
        np.testing.assert_allclose(g["share_percent"].values, ref["share_percent"].values,
                                   rtol=1e-12)


def test_yearly_shares_of_a_lazy_cube_equal_the_in_memory_table():
    """The per-year shares the analysis computes block by block (never loading the class
    cube) are the table of class_shares_by_zone on the loaded cube."""
    from carbonsink.analysis.sink_classes import _yearly_shares_plan

    area, nep, zones = _nep_and_zones(8, 106.0, 5, 200, (1, 4), 5)  # label 4: no zone
    for scheme, stored in (("binary", "int8"), ("001", "int8"), ("001", "float")):
        classes = sink_source_classes(nep.chunk({"y": 3, "x": 5}), scheme=scheme)
        assert classes.dtype == np.int8  # looked up by its bytes
        if stored == "float":  # as read back from a store: fill as NaN (looked up by value)
            classes = classes.where(classes != -128).astype("float32")
        sums, finish = _yearly_shares_plan(classes, area, zones, region="all")
        assert sums.chunks is not None  # lazy until computed
        got = finish(sums.compute())
        ref = class_shares_by_zone(classes.compute(), area, zones, by="time", region="all")
        pd.testing.assert_frame_equal(got[["zone", "time", "class", "label"]],
                                      ref[["zone", "time", "class", "label"]])
        np.testing.assert_allclose(got["area_km2"], ref["area_km2"], rtol=1e-12)
        np.testing.assert_allclose(got["share_percent"], ref["share_percent"], rtol=1e-12)
