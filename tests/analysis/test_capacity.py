"""Tests of the carbon-sink carrying capacity (carbonsink.analysis.capacity, METHODS §8.1)."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.analysis import MemoryContext, run_analysis
from carbonsink.analysis.base import TIDY_COLUMNS
from carbonsink.analysis.capacity import capacity_summary, carrying_capacity
from carbonsink.cube import GridSpec, pixel_area
from carbonsink.errors import InvalidArgumentError

G = GridSpec("EPSG:4326", 1.0, (100.0, 30.0, 103.0, 32.0))  # 2 x 3 cells
YEARS = list(range(2001, 2011))  # 10 years: >= 8 valid needed at 0.8
NAN = np.nan

# prescription per pixel (row, col): maximum, peak year, or a special case
CSCC = np.array([[500.0, 400.0, NAN], [NAN, 650.0, 420.0]])
PEAK = np.array([[2004.0, 2003.0, NAN], [NAN, 2010.0, 2001.0]])
VEGETATED = np.array([[True, True, False], [True, True, True]])


def _npp(chunks=None) -> xr.DataArray:
    rng = np.random.default_rng(7)
    v = rng.uniform(50.0, 300.0, (len(YEARS), 2, 3))
    i = {y: k for k, y in enumerate(YEARS)}
    v[i[2004], 0, 0] = 500.0                       # plain maximum
    v[i[2003], 0, 1] = v[i[2007], 0, 1] = 400.0    # tie -> first year (2003)
    v[:, 0, 2] = np.where(np.arange(len(YEARS)) % 2, 0.0, -5.0)  # NPP <= 0 everywhere
    v[[1, 4, 8], 1, 0] = NAN                       # 7 of 10 valid: too few
    v[i[2006], 1, 0] = 900.0
    v[[1, 4], 1, 1] = NAN                          # 8 of 10 valid: enough
    v[i[2010], 1, 1] = 650.0                       # maximum in the last year
    v[i[2001], 1, 2] = 420.0                       # maximum in the first year
    v[i[2005], 1, 2] = -30.0                       # one negative year
    t = pd.date_range(f"{YEARS[0]}-01-01", periods=len(YEARS), freq="YS")
    da = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t, **G.coords()}, name="npp",
                      attrs={"units": "g C m-2 yr-1"})
    return da.chunk(chunks) if chunks is not None else da


def test_maps_equal_prescription():
    npp = _npp()
    ds = carrying_capacity(npp)
    np.testing.assert_array_equal(ds["cscc"].values, CSCC)
    np.testing.assert_array_equal(ds["peak_year"].values, PEAK)
    np.testing.assert_array_equal(ds["vegetated"].values, VEGETATED)
    np.testing.assert_array_equal(ds["n_valid"].values, [[10, 10, 10], [7, 8, 10]])
    assert ds["cscc"].attrs["units"] == "g C m-2 yr-1"
    assert ds["pcs"].attrs["units"] == "g C m-2 yr-1"
    assert ds["potential_percent"].attrs["units"] == "%"
    assert ds["saturation_percent"].attrs["units"] == "%"
    assert ds["pcs"].dims == ("time", "y", "x")
    # excluded pixels are NaN in every output
    for v in ("pcs", "potential_percent", "saturation_percent"):
        assert ds[v].isel(y=0, x=2).isnull().all() and ds[v].isel(y=1, x=0).isnull().all()


def test_pcs_plus_npp_is_cscc_and_percentages():
    npp = _npp()
    ds = carrying_capacity(npp)
    keep = np.isfinite(CSCC)[None] & np.isfinite(npp.values)
    pcs, n = ds["pcs"].values, npp.values
    np.testing.assert_allclose((pcs + n)[keep], np.broadcast_to(CSCC, n.shape)[keep],
                               rtol=0, atol=1e-12)
    assert (pcs[keep] >= 0).all()
    assert np.isnan(pcs[~keep]).all()
    c = np.broadcast_to(CSCC, n.shape)
    np.testing.assert_allclose(ds["potential_percent"].values[keep], 100 * pcs[keep] / c[keep])
    np.testing.assert_allclose(ds["saturation_percent"].values[keep], 100 * n[keep] / c[keep])
    np.testing.assert_allclose(ds["potential_percent"].values[keep]
                               + ds["saturation_percent"].values[keep], 100.0)


def test_min_valid_fraction_option():
    ds = carrying_capacity(_npp(), min_valid_fraction=0.7)  # 7 of 10 now enough
    assert ds["cscc"].values[1, 0] == 900.0 and ds["peak_year"].values[1, 0] == 2006.0
    with pytest.raises(InvalidArgumentError):
        carrying_capacity(_npp(), min_valid_fraction=0.0)


def _fail(dsk, keys, **kwargs):
    raise AssertionError("computed although it should stay lazy")


def test_lazy_with_dask():
    npp = _npp({"time": -1, "y": 1, "x": 2})
    with dask.config.set(scheduler=_fail):
        ds = carrying_capacity(npp)
        for v in ds.data_vars:
            assert ds[v].chunks is not None, v
    np.testing.assert_array_equal(ds["cscc"].values, CSCC)
    np.testing.assert_array_equal(ds["peak_year"].values, PEAK)


def _expected_rows(npp, area, year):
    n = npp.sel(time=f"{year}-01-01").values
    support = np.isfinite(CSCC) & np.isfinite(n)
    a = area.values
    c_tot = (CSCC * a)[support].sum() / 1e12   # g -> Tg
    n_tot = (n * a)[support].sum() / 1e12
    return support, a, c_tot, n_tot


def _get(tab, year, variable, statistic):
    row = tab[(tab.year == year) & (tab.variable == variable) & (tab.statistic == statistic)]
    assert len(row) == 1, (year, variable, statistic)
    return row.iloc[0]


def test_regional_totals_hand_computed():
    npp = _npp()
    area = pixel_area(G)
    ds = carrying_capacity(npp)
    tab = capacity_summary(ds, npp, area)
    assert list(tab.columns[:3]) == ["experiment", "combination", "zone"]
    assert set(tab.year) == {2010}
    support, a, c_tot, n_tot = _expected_rows(npp, area, 2010)
    assert support.sum() == 4
    r = _get(tab, 2010, "cscc", "total")
    assert r.units == "Tg C yr-1" and r.value == pytest.approx(c_tot, rel=1e-12)
    assert _get(tab, 2010, "npp", "total").value == pytest.approx(n_tot, rel=1e-12)
    assert _get(tab, 2010, "pcs", "total").value == pytest.approx(c_tot - n_tot, rel=1e-12)
    assert _get(tab, 2010, "pcs", "percent_of_cscc").value == \
        pytest.approx(100 * (c_tot - n_tot) / c_tot, rel=1e-12)
    assert _get(tab, 2010, "pcs", "percent_of_npp").value == \
        pytest.approx(100 * (c_tot - n_tot) / n_tot, rel=1e-12)
    assert _get(tab, 2010, "npp", "percent_of_cscc").value == \
        pytest.approx(100 * n_tot / c_tot, rel=1e-12)
    m = _get(tab, 2010, "cscc", "mean")
    assert m.units == "g C m-2 yr-1"
    assert m.value == pytest.approx((CSCC * a)[support].sum() / a[support].sum(), rel=1e-12)


def test_regional_years_with_missing_npp():
    npp = _npp()
    area = pixel_area(G)
    tab = capacity_summary(carrying_capacity(npp), npp, area, years=[2002, 2010])
    assert set(tab.year) == {2002, 2010}
    # 2002: pixel (1, 1) has NaN NPP -> left out of both CSCC and NPP totals
    support, a, c_tot, n_tot = _expected_rows(npp, area, 2002)
    assert support.sum() == 3
    assert _get(tab, 2002, "cscc", "total").value == pytest.approx(c_tot, rel=1e-12)
    assert _get(tab, 2002, "npp", "total").value == pytest.approx(n_tot, rel=1e-12)
    with pytest.raises(InvalidArgumentError, match="1999"):
        capacity_summary(carrying_capacity(npp), npp, area, years=[1999])


def test_registered_analysis_with_memory_context():
    npp = _npp()
    area = pixel_area(G)
    ds = xr.Dataset({"npp": npp, "nep": npp - 100.0, "rh": npp * 0 + 100.0})
    for v in ds:
        ds[v].attrs["units"] = "g C m-2 yr-1"
    ctx = MemoryContext({("annual", "a+b"): ds}, {"area": area}, synthetic=True)
    res = run_analysis("capacity", ctx)
    tab = res.tables["capacity"]
    assert list(tab.columns[:3]) == list(TIDY_COLUMNS[:3])
    assert list(tab.columns[-4:]) == list(TIDY_COLUMNS[-4:])
    assert set(tab.combination) == {"a+b"} and set(tab.year) == {2010}
    _, _, c_tot, n_tot = _expected_rows(npp, area, 2010)
    assert _get(tab, 2010, "cscc", "total").value == pytest.approx(c_tot, rel=1e-12)
    assert _get(tab, 2010, "pcs", "percent_of_cscc").value == \
        pytest.approx(100 * (c_tot - n_tot) / c_tot, rel=1e-12)
    assert "a+b_npp_cscc_map" in res.figures
    assert len(res.sections) == 1 and res.sections[0].analysis == "capacity"
    res2 = run_analysis("capacity", ctx, years=[2003, 2010], min_valid_fraction=0.7)
    t2 = res2.tables["capacity"]
    assert set(t2.year) == {2003, 2010}
    with pytest.raises(InvalidArgumentError):
        run_analysis("capacity", ctx, variable="rh")


def test_registered_analysis_stores_cube_with_maps():
    npp = _npp()
    ds = xr.Dataset({"npp": npp})
    stored = []

    class Ctx(MemoryContext):
        def store(self, product):
            stored.append(product)
            return super().store(product)

    ctx = Ctx({("annual", "a+b"): ds}, {"area": pixel_area(G)})
    run_analysis("capacity", ctx)
    (p,) = stored
    assert p.name == "npp_capacity" and p.combination == "a+b"
    assert p.maps == ("cscc", "peak_year", "potential_percent")
    assert set(p.data.data_vars) == {"cscc", "peak_year", "potential_percent",
                                     "saturation_percent"}
    np.testing.assert_array_equal(p.data["cscc"].values, CSCC)
    np.testing.assert_array_equal(p.data["peak_year"].values, PEAK)
    last = npp.isel(time=-1).values
    np.testing.assert_allclose(p.data["saturation_percent"].values[np.isfinite(CSCC)],
                               (100 * last / CSCC)[np.isfinite(CSCC)])


# --------------------------------------------------------------------------- zones, potential


def _zones():
    return xr.DataArray(np.array([[1, 2, 2], [1, 1, 0]], dtype=np.int32), dims=("y", "x"),
                        coords=G.coords(), name="zones",
                        attrs={"zone_names": '{"1": "West", "2": "East"}',
                               "zone_layer": "province"})


def test_zone_table_hand_computed():
    npp = _npp()
    area = pixel_area(G)
    ds = carrying_capacity(npp)
    z = _zones().values
    tab = capacity_summary(ds, npp, area, zones=_zones(), region="all", years=[2002, 2010])
    assert list(dict.fromkeys(tab.zone)) == ["all", "West", "East"]
    for y in (2002, 2010):
        n = npp.sel(time=f"{y}-01-01").values
        support = np.isfinite(CSCC) & np.isfinite(n)
        a = area.values
        for code, name in ((1, "West"), (2, "East")):
            m = support & (z == code)
            c_tot = (CSCC * a)[m].sum() / 1e12
            n_tot = (n * a)[m].sum() / 1e12
            rows = tab[(tab.zone == name) & (tab.year == y)]
            get = {(r.variable, r.statistic): r.value for r in rows.itertuples()}
            if not m.any():
                assert np.isnan(get[("cscc", "total")])
                continue
            assert get[("cscc", "total")] == pytest.approx(c_tot, rel=1e-12)
            assert get[("npp", "total")] == pytest.approx(n_tot, rel=1e-12)
            assert get[("pcs", "total")] == pytest.approx(c_tot - n_tot, rel=1e-12)
            assert get[("pcs", "percent_of_cscc")] == pytest.approx(100 * (c_tot - n_tot)
                                                                    / c_tot, rel=1e-12)
            assert get[("pcs", "percent_of_npp")] == pytest.approx(100 * (c_tot - n_tot)
                                                                   / n_tot, rel=1e-12)
        # zones partition the supported pixels (the unzoned pixel (1, 2) is supported: the
        # whole region exceeds the zone sum by exactly its contribution)
        whole = tab[(tab.zone == "all") & (tab.year == y) & (tab.variable == "cscc")
                    & (tab.statistic == "total")].value.iloc[0]
        zsum = tab[(tab.zone != "all") & (tab.year == y) & (tab.variable == "cscc")
                   & (tab.statistic == "total")].value.sum()
        assert whole - zsum == pytest.approx(CSCC[1, 2] * a[1, 2] / 1e12, rel=1e-12)


def test_saturation_series_hand_computed():
    from carbonsink.analysis.capacity import saturation_series

    npp = _npp()
    area = pixel_area(G)
    sat = saturation_series(carrying_capacity(npp), npp, area)
    pct = sat[sat.statistic == "percent_of_cscc"].set_index("year").value
    assert list(pct.index) == YEARS
    a = area.values
    for y in (2002, 2006, 2010):
        n = npp.sel(time=f"{y}-01-01").values
        m = np.isfinite(CSCC) & np.isfinite(n)
        assert pct[y] == pytest.approx(100 * (n * a)[m].sum() / (CSCC * a)[m].sum(), rel=1e-12)


def _climate(monthly=True):
    months = pd.date_range(f"{YEARS[0]}-01-01", periods=12 * len(YEARS), freq="MS")
    shape = (months.size, 2, 3)
    m = np.arange(months.size) % 12
    # annual mean temperature 10 degC (seasonal cycle averages out), 600 mm per year
    tas = 10.0 + 8.0 * np.sin(2 * np.pi * (m - 3) / 12.0)
    tas = np.broadcast_to(tas[:, None, None], shape).copy()
    pr = np.full(shape, 50.0)
    t = xr.DataArray(tas, dims=("time", "y", "x"), coords={"time": months, **G.coords()},
                     name="tas", attrs={"units": "degC"})
    p = xr.DataArray(pr, dims=("time", "y", "x"), coords={"time": months, **G.coords()},
                     name="pr", attrs={"units": "mm month-1"})
    return t, p


def test_potential_npp_from_monthly_climate():
    from carbonsink.analysis.capacity import potential_npp

    tas, pr = _climate()
    pot = potential_npp(tas, pr)                         # carbon fraction 0.45
    assert pot.sizes["time"] == len(YEARS)
    # METHODS §12.1: t 10 degC, r 600 mm -> Miami 985.8 g DM (443.6 g C), TM 934.8 g DM
    np.testing.assert_allclose(pot["npp_miami"].values, 985.8 * 0.45, rtol=2e-4)
    np.testing.assert_allclose(pot["npp_thornthwaite"].values, 934.8 * 0.45, rtol=2e-4)
    assert pot["npp_miami"].attrs["units"] == "g C m-2 yr-1"
    pot2 = potential_npp(tas, pr, carbon_fraction=0.475)
    np.testing.assert_allclose(pot2["npp_miami"].values, 985.8 * 0.475, rtol=2e-4)
    with pytest.raises(InvalidArgumentError):
        potential_npp(tas, pr, carbon_fraction=1.5)


def test_registered_analysis_with_zones_and_potential():
    npp = _npp()
    area = pixel_area(G)
    tas, pr = _climate()
    stored = []

    class Ctx(MemoryContext):
        def store(self, product):
            stored.append(product)
            return super().store(product)

    ctx = Ctx({("annual", "given"): xr.Dataset({"npp": npp})},
              {"area": area, "zones": _zones(), "tas": tas, "pr": pr})
    res = run_analysis("capacity", ctx)
    (p,) = stored
    assert {"npp_miami_mean", "npp_thornthwaite_mean"} <= set(p.maps)
    m = p.data["npp_miami_mean"].values
    np.testing.assert_allclose(m[np.isfinite(CSCC)], 985.8 * 0.45, rtol=2e-4)
    assert np.isnan(m[~np.isfinite(CSCC)]).all()
    tab = res.tables["capacity"]
    assert set(tab.zone) == {"study area", "West", "East"}
    # comparison layers summarised on the same pixels
    row = tab[(tab.zone == "study area") & (tab.variable == "npp_miami")
              & (tab.statistic == "mean")]
    assert row.value.iloc[0] == pytest.approx(985.8 * 0.45, rel=2e-4)
    sat = res.tables["capacity_saturation"]
    assert set(sat.year) == set(YEARS)
    captions = [b.caption for b in res.sections[0].blocks if b.kind == "table"]
    assert any("per zone" in c for c in captions)


def test_province_table_on_real_boundaries(shared_data):
    """The per-province table runs on the real province polygons (DCW-GMT) on a 0.5° grid."""
    from carbonsink.cube import zone_labels

    path = next((shared_data / "boundaries").glob("china_provinces_*.geojson"))
    grid = GridSpec("EPSG:4326", 0.5, (73.0, 18.0, 135.0, 54.0))
    zones = zone_labels(grid, path, "name")
    ny, nx = zones.shape
    rng = np.random.default_rng(0)
    t = pd.date_range("2001-01-01", periods=10, freq="YS")
    v = rng.uniform(100.0, 600.0, (10, ny, nx))
    npp = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t, **grid.coords()},
                       name="npp", attrs={"units": "g C m-2 yr-1"}).where(zones > 0)
    area = pixel_area(grid)
    ds = carrying_capacity(npp)
    tab = capacity_summary(ds, npp, area, zones=zones, region="China")
    names = set(tab.zone) - {"China"}
    assert len(names) >= 30 and "Nei Mongol" in names
    tot = tab[(tab.statistic == "total") & (tab.variable == "cscc")].set_index("zone").value
    # provinces partition the masked grid: their totals add up to the national total
    assert tot.drop("China").sum() == pytest.approx(tot["China"], rel=1e-9)
    # a province by hand
    code = [int(k) for k, n in __import__("json").loads(zones.attrs["zone_names"]).items()
            if n == "Nei Mongol"][0]
    m = (zones.values == code) & np.isfinite(ds["cscc"].values) & np.isfinite(v[-1])
    assert tot["Nei Mongol"] == pytest.approx((ds["cscc"].values * area.values)[m].sum() / 1e12,
                                              rel=1e-9)
