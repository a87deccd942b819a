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
