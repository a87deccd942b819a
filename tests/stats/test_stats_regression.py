"""multiple_regression against statsmodels OLS; analytic, detrend, ridge, NaN and CRS cases."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import carbonsink.stats as cs

sm = pytest.importorskip("statsmodels.api")
from statsmodels.stats.outliers_influence import variance_inflation_factor  # noqa: E402

T = 21


def _case(k, npix=12, seed=0, nan_frac=0.08):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(k, npix, T)) * rng.uniform(0.5, 3.0, size=(k, npix, 1))
    X[0] += 0.4 * X[-1]  # some collinearity
    b = rng.normal(size=(k, npix, 1))
    y = 1.5 + (b * X).sum(axis=0) + rng.normal(size=(npix, T))
    y[rng.random(y.shape) < nan_frac] = np.nan
    X[rng.random(X.shape) < nan_frac] = np.nan
    time = np.arange(2000, 2000 + T)
    yd = xr.DataArray(y, dims=("pixel", "time"), coords={"time": time}, name="nep",
                      attrs={"units": "g C m-2 yr-1"})
    xd = {f"v{i}": xr.DataArray(X[i], dims=("pixel", "time"), coords={"time": time},
                                attrs={"units": "K"}) for i in range(k)}
    return y, X, yd, xd


def _sm_fit(yv, Xv):
    ok = ~np.isnan(yv) & ~np.isnan(Xv).any(axis=0)
    design = sm.add_constant(Xv[:, ok].T, has_constant="add")
    res = sm.OLS(yv[ok], design).fit()
    vif = [variance_inflation_factor(design, j) for j in range(1, design.shape[1])]
    return res, np.array(vif), int(ok.sum())


def _close(a, b, tol=1e-6):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


@pytest.mark.parametrize("k,seed", [(2, 1), (3, 2), (4, 3)])
def test_matches_statsmodels(k, seed):
    y, X, yd, xd = _case(k, seed=seed)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = cs.multiple_regression(yd, xd, min_valid=k + 2)
    assert list(ds["predictor"].values) == ["intercept"] + [f"v{i}" for i in range(k)]
    assert ds["coef"].dims == ("predictor", "pixel")
    for pix in range(y.shape[0]):
        res, vif, n = _sm_fit(y[pix], X[:, pix])
        d = ds.isel(pixel=pix)
        assert int(d["n"]) == n
        _close(d["coef"].values, res.params)
        _close(d["se"].values, res.bse)
        _close(d["t"].values, res.tvalues)
        _close(d["p"].values, res.pvalues)
        _close(float(d["r2"]), res.rsquared)
        _close(float(d["r2_adj"]), res.rsquared_adj)
        assert np.isnan(d["vif"].values[0])
        _close(d["vif"].values[1:], vif)
    assert ds["coef"].attrs["units_v0"] == "(g C m-2 yr-1) (K)-1"
    assert ds["coef"].attrs["units_intercept"] == "g C m-2 yr-1"


def test_predictor_dim_input_and_float32():
    y, X, yd, xd = _case(3, seed=4)
    stacked = xr.concat(list(xd.values()), dim="predictor").assign_coords(
        predictor=list(xd))
    a = cs.multiple_regression(yd, xd, min_valid=5)
    b = cs.multiple_regression(yd, stacked, min_valid=5)
    xr.testing.assert_identical(a, b)
    c = cs.multiple_regression(yd.astype(np.float32),
                               {n: v.astype(np.float32) for n, v in xd.items()}, min_valid=5)
    assert c["coef"].dtype == np.float32 and c["n"].dtype == np.int32
    np.testing.assert_allclose(c["coef"].values, a["coef"].values, rtol=1e-3, atol=1e-3)


def test_numpy_equals_dask():
    rng = np.random.default_rng(5)
    ny, nx = 9, 8
    X = rng.normal(size=(3, T, ny, nx))
    y = 0.5 * X[0] - X[2] + rng.normal(size=(T, ny, nx))
    y[rng.random(y.shape) < 0.05] = np.nan
    y[:, 2, 3] = np.nan
    dims = ("time", "y", "x")
    yd = xr.DataArray(y, dims=dims)
    xs = [xr.DataArray(X[i], dims=dims, name=f"d{i}") for i in range(3)]
    # a time-only predictor broadcasts to every pixel
    xs.append(xr.DataArray(np.linspace(0, 1, T) ** 2, dims=("time",), name="co2"))
    eager = cs.multiple_regression(yd, xs)
    lazy = cs.multiple_regression(yd.chunk({"y": 4, "x": 5}),
                                  [x.chunk({"y": 4}) if "y" in x.dims else x for x in xs])
    assert lazy["coef"].chunks is not None
    assert eager["coef"].dims == ("predictor", "y", "x")
    xr.testing.assert_identical(eager, lazy.compute())
    assert np.isnan(eager["coef"].values[:, 2, 3]).all()
    assert int(eager["n"].values[2, 3]) == 0


def test_exact_linear_relation():
    rng = np.random.default_rng(6)
    X = rng.normal(size=(3, 5, T))
    bvec = np.array([2.0, -0.5, 3.25])
    y = 4.0 + np.tensordot(bvec, X, axes=1)
    ds = cs.multiple_regression(xr.DataArray(y, dims=("pixel", "time")),
                                [xr.DataArray(X[i], dims=("pixel", "time")) for i in range(3)])
    _close(ds["coef"].values, np.broadcast_to(np.r_[4.0, bvec][:, None], (4, 5)), 1e-10)
    _close(ds["r2"].values, 1.0, 1e-12)
    assert (ds["p"].values < 1e-10).all()


def test_detrend_equals_fit_of_detrended_series():
    y, X, yd, xd = _case(2, seed=7)
    trend = np.arange(T) * 0.3
    yd = yd + trend
    xd = {n: v - 0.2 * (i + 1) * trend for i, (n, v) in enumerate(xd.items())}
    ds = cs.multiple_regression(yd, xd, detrend=True, min_valid=5)
    t = np.arange(T, dtype=float)
    for pix in range(y.shape[0]):
        series = [yd.values[pix]] + [v.values[pix] for v in xd.values()]
        ok = np.all([~np.isnan(s) for s in series], axis=0)
        det = []
        for s in series:
            c = np.polyfit(t[ok], s[ok], 1)
            det.append(s[ok] - np.polyval(c, t[ok]))
        design = sm.add_constant(np.column_stack(det[1:]), has_constant="add")
        res = sm.OLS(det[0], design).fit()
        d = ds.isel(pixel=pix)
        _close(d["coef"].values, res.params)
        _close(d["se"].values, res.bse)
        _close(d["p"].values[1:], res.pvalues[1:])
        _close(float(d["r2"]), res.rsquared)


def test_ridge():
    y, X, yd, xd = _case(3, seed=8)
    ols = cs.multiple_regression(yd, xd, min_valid=5)
    r0 = cs.multiple_regression(yd, xd, min_valid=5, ridge=0.0)
    xr.testing.assert_identical(ols, r0)
    small = cs.multiple_regression(yd, xd, min_valid=5, ridge=1.0)
    big = cs.multiple_regression(yd, xd, min_valid=5, ridge=1e9)
    assert "approximate" in big.attrs["note"]
    slopes = lambda ds: np.abs(ds["coef"].values[1:])  # noqa: E731
    assert np.all(np.linalg.norm(slopes(small), axis=0) <= np.linalg.norm(slopes(ols), axis=0))
    assert np.all(slopes(big) < 1e-6)
    # with the slopes shrunk to 0 the intercept becomes the mean of y (complete cases)
    for pix in range(y.shape[0]):
        ok = ~np.isnan(y[pix]) & ~np.isnan(X[:, pix]).any(axis=0)
        _close(big["coef"].values[0, pix], y[pix, ok].mean(), 1e-4)
    # ridge solution = (Xc'Xc + lambda I)^-1 Xc'yc on one pixel
    pix = 0
    ok = ~np.isnan(y[pix]) & ~np.isnan(X[:, pix]).any(axis=0)
    Xc = X[:, pix][:, ok].T
    Xc = Xc - Xc.mean(axis=0)
    yc = y[pix, ok] - y[pix, ok].mean()
    b = np.linalg.solve(Xc.T @ Xc + 1.0 * np.eye(3), Xc.T @ yc)
    _close(small["coef"].values[1:, pix], b, 1e-9)


def test_min_valid_gives_nan():
    y, X, yd, xd = _case(2, seed=9, nan_frac=0.0)
    yv = yd.values.copy()
    yv[0, :8] = np.nan  # 13 complete cases left
    yd = yd.copy(data=yv)
    ds = cs.multiple_regression(yd, xd, min_valid=14)
    assert np.isnan(ds["coef"].values[:, 0]).all() and np.isnan(ds["r2"].values[0])
    assert int(ds["n"].values[0]) == 13
    assert np.isfinite(ds["coef"].values[:, 1:]).all()
    default = cs.multiple_regression(yd, xd)  # default min_valid = ceil(0.8 * 21) = 17
    assert default.attrs["min_valid"] == 17
    assert np.isnan(default["coef"].values[:, 0]).all()
    # a constant predictor gives NaN, not an error
    xd2 = dict(xd)
    xv = xd["v1"].values.copy()
    xv[3] = 1.0
    xd2["v1"] = xd["v1"].copy(data=xv)
    ds2 = cs.multiple_regression(yd, xd2)
    assert np.isnan(ds2["coef"].values[:, 3]).all()


def test_crs_kept():
    from carbonsink import cube, demo

    d = demo.generate(ny=6, nx=5, start=2001, end=2012)
    y = cube.temporal.to_annual(d["pr"])
    t = cube.temporal.to_annual(d["tas"])
    s = cube.temporal.to_annual(d["sol"])
    for lazy in (False, True):
        args = [a.chunk({"y": 3}) if lazy else a for a in (y, t, s)]
        ds = cs.multiple_regression(args[0], {"tas": args[1], "sol": args[2]}, min_valid=5)
        assert ds.rio.crs.to_epsg() == 4326
        assert ds["coef"].rio.crs.to_epsg() == 4326
