"""Correlation statistics against scipy, pingouin and statsmodels."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import scipy.stats as ss
import xarray as xr
from stats_helpers import as_da, random_series

import carbonsink.stats as cs
from carbonsink.errors import AlignmentError, InvalidArgumentError


def _pair(seed, ntime=24, npix=120, nan_frac=0.08, ties=True):
    rng = np.random.default_rng(seed)
    x = random_series(npix, ntime, seed=seed, nan_frac=nan_frac, ties=ties)
    y = 0.6 * np.nan_to_num(x) + rng.normal(size=x.shape)
    if ties:
        y[::3] = np.round(y[::3])
    y[rng.random(y.shape) < nan_frac] = np.nan
    return x, y


@pytest.mark.parametrize("ntime", [24, 6])
def test_pearson_and_spearman_match_scipy(ntime):
    x, y = _pair(ntime, ntime=ntime)
    pr = cs.pearson(as_da(x), as_da(y, name="y"), min_valid=3)
    sp = cs.spearman(as_da(x), as_da(y, name="y"), min_valid=3)
    checked = 0
    for i in range(x.shape[0]):
        ok = ~np.isnan(x[i]) & ~np.isnan(y[i])
        assert int(pr.n[i]) == ok.sum() == int(sp.n[i])
        if ok.sum() < 3:
            assert np.isnan(pr.r[i]) and np.isnan(sp.p[i])
            continue
        a, b = x[i][ok], y[i][ok]
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            continue
        ref = ss.pearsonr(a, b)
        np.testing.assert_allclose(pr.r[i], ref.statistic, rtol=1e-6, atol=1e-14)
        if 1 - abs(ref.statistic) > 1e-10:   # p of |r| -> 1 is pure rounding noise
            np.testing.assert_allclose(pr.p[i], ref.pvalue, rtol=1e-6, atol=1e-14)
        ref = ss.spearmanr(a, b)
        if 1 - abs(ref.statistic) > 1e-10:
            np.testing.assert_allclose(sp.r[i], ref.statistic, rtol=1e-6, atol=1e-14)
            np.testing.assert_allclose(sp.p[i], ref.pvalue, rtol=1e-6, atol=1e-14)
        checked += 1
    assert checked > 60


def test_perfect_and_constant_correlation_edge_cases():
    t = np.arange(12.0)
    x = np.stack([t, t, np.ones(12)])
    y = np.stack([2 * t + 1, -t, t])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pr = cs.pearson(as_da(x), as_da(y), min_valid=10)
    assert float(pr.r[0]) == pytest.approx(1.0) and float(pr.p[0]) == 0.0
    assert float(pr.r[1]) == pytest.approx(-1.0)
    assert np.isnan(pr.r[2]) and np.isnan(pr.p[2])   # constant series: undefined


def test_pearson_p_critical_r_from_methods():
    # METHODS 6.6: critical |r| at p = 0.05 is 0.4044 for n = 24
    from carbonsink.stats._special import r_to_p
    assert r_to_p(0.4044, 22) == pytest.approx(0.05, abs=2e-4)
    assert r_to_p(0.4227, 20) == pytest.approx(0.05, abs=2e-4)   # partial, n = 24, k = 2


@pytest.mark.parametrize("ndrivers, ncontrols", [(1, 0), (2, 0), (3, 0), (2, 2)])
def test_partial_correlation_matches_pingouin(ndrivers, ncontrols):
    pg = pytest.importorskip("pingouin")
    rng = np.random.default_rng(10 * ndrivers + ncontrols)
    npix, ntime = 40, 24
    nv = ndrivers + ncontrols
    xs = rng.normal(size=(nv, npix, ntime))
    y = xs[: max(1, nv)].sum(axis=0) * 0.4 + rng.normal(size=(npix, ntime))
    xs[0][rng.random((npix, ntime)) < 0.08] = np.nan
    y[rng.random((npix, ntime)) < 0.05] = np.nan
    names = [f"d{j}" for j in range(ndrivers)]
    cnames = [f"c{j}" for j in range(ncontrols)]
    drivers = {nm: as_da(xs[j], name=nm) for j, nm in enumerate(names)}
    controls = [as_da(xs[ndrivers + j], name=nm) for j, nm in enumerate(cnames)] or None
    pc = cs.partial_correlation(as_da(y, name="nep"), drivers, controls=controls, min_valid=8)
    assert list(pc.driver.values) == names
    for i in range(npix):
        ok = ~np.isnan(y[i]) & ~np.isnan(xs[:, i]).any(axis=0)
        assert int(pc.n[i]) == ok.sum()
        df = pd.DataFrame({"nep": y[i][ok], **{nm: xs[j, i][ok] for j, nm in
                                                 enumerate(names + cnames)}})
        for j, nm in enumerate(names):
            covar = [c for c in names + cnames if c != nm]
            ref = pg.partial_corr(df, x="nep", y=nm, covar=covar or None) if covar else \
                pg.corr(df["nep"], df[nm])
            np.testing.assert_allclose(pc.r.isel(pixel=i, driver=j), ref["r"].iloc[0], rtol=1e-6)
            np.testing.assert_allclose(pc.p.isel(pixel=i, driver=j), ref["p_val"].iloc[0]
                                       if "p_val" in ref else ref["p-val"].iloc[0], rtol=1e-6)


def test_partial_correlation_first_and_second_order_formulas():
    # METHODS 6.6 recursion formulas equal the precision-matrix form
    rng = np.random.default_rng(3)
    z, w = rng.normal(size=(2, 30))
    x = z + rng.normal(size=30)
    y = 0.5 * x - w + rng.normal(size=30)
    r = np.corrcoef([x, y, z, w])
    rxy, rxz, ryz = r[0, 1], r[0, 2], r[1, 2]
    first = (rxy - rxz * ryz) / np.sqrt((1 - rxz ** 2) * (1 - ryz ** 2))

    def p1(a, b, c):
        return (r[a, b] - r[a, c] * r[b, c]) / np.sqrt((1 - r[a, c] ** 2) * (1 - r[b, c] ** 2))

    second = (p1(0, 1, 2) - p1(0, 3, 2) * p1(1, 3, 2)) / np.sqrt(
        (1 - p1(0, 3, 2) ** 2) * (1 - p1(1, 3, 2) ** 2))
    da = lambda v, nm: xr.DataArray(v[None, :], dims=("pixel", "time"), name=nm)  # noqa: E731
    pc1 = cs.partial_correlation(da(y, "y"), [da(x, "x"), da(z, "z")])
    assert float(pc1.r.sel(driver="x")[0]) == pytest.approx(first, rel=1e-10)
    pc2 = cs.partial_correlation(da(y, "y"), [da(x, "x")], controls=[da(z, "z"), da(w, "w")])
    assert float(pc2.r[0, 0]) == pytest.approx(second, rel=1e-10)
    assert pc2.attrs["controlled_per_driver"] == 2


def test_dominant_driver_and_significance():
    r = np.array([[0.2, -0.7, 0.1], [0.3, 0.1, 0.05], [np.nan, np.nan, np.nan], [0.5, 0.5, 0.1]])
    p = np.array([[0.3, 0.001, 0.6], [0.2, 0.7, 0.9], [np.nan] * 3, [0.01, 0.02, 0.5]])
    ds = xr.Dataset({"r": (("pixel", "driver"), r), "p": (("pixel", "driver"), p)},
                    coords={"driver": ["tas", "pr", "sol"]})
    dom = cs.dominant_driver(ds)
    np.testing.assert_array_equal(dom.values, [2, 1, cs.CLASS_FILL, 1])
    assert cs.class_labels(dom) == {1: "tas", 2: "pr", 3: "sol"}
    sig = cs.dominant_driver(ds, require_significance=True)
    np.testing.assert_array_equal(sig.values, [2, 0, cs.CLASS_FILL, 1])
    assert cs.class_labels(sig)[0] == "none"
    with pytest.raises(InvalidArgumentError):
        cs.dominant_driver(ds["r"])


def test_fdr_bh_matches_statsmodels():
    sm = pytest.importorskip("statsmodels.stats.multitest")
    rng = np.random.default_rng(2)
    p = rng.uniform(size=(20, 15)) ** 3
    p[rng.random(p.shape) < 0.1] = np.nan
    q = cs.fdr_bh(xr.DataArray(p, dims=("y", "x")))
    ok = ~np.isnan(p)
    ref = sm.multipletests(p[ok], method="fdr_bh")[1]
    np.testing.assert_allclose(q.values[ok], ref, rtol=1e-12)
    assert np.isnan(q.values[~ok]).all()
    # families per driver
    pp = xr.DataArray(np.stack([p, p[::-1]], axis=-1), dims=("y", "x", "driver"))
    qq = cs.fdr_bh(pp, over=["y", "x"])
    np.testing.assert_allclose(qq.isel(driver=0).values, q.values, rtol=1e-12)


def test_partial_correlation_fdr_and_input_forms():
    x, y = _pair(5, npix=30)
    rng = np.random.default_rng(1)
    z = as_da(rng.normal(size=x.shape), name="z")
    ds_drivers = xr.Dataset({"x": as_da(x), "z": z})
    a = cs.partial_correlation(as_da(y), ds_drivers, min_valid=10, fdr=True)
    b = cs.partial_correlation(as_da(y), [as_da(x, name="x"), z], min_valid=10)
    xr.testing.assert_allclose(a.r, b.r)
    assert "p_fdr" in a and (a.p_fdr.fillna(1) >= a.p.fillna(1)).all()
    with pytest.raises(InvalidArgumentError):
        cs.partial_correlation(as_da(y), [as_da(x, name="x"), as_da(x, name="x")])
    with pytest.raises(AlignmentError):
        cs.pearson(as_da(x), as_da(y).isel(pixel=slice(0, 10)))
