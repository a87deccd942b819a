"""Pixel-wise multiple linear regression (attribution of a response to several drivers).

:func:`multiple_regression` fits, for every pixel, the ordinary least squares model
``y = c + sum_k b_k x_k + e`` on the time steps where the response and every
predictor are valid (complete cases).  The fit runs in one numba kernel over
pixel ranges (:func:`carbonsink._engine.run_pixel_kernel`); there is no Python
loop over pixels and dask input stays lazy (time in one chunk, space chunks kept).

Numerics (per pixel, in float64): the series are centred, the predictor
cross-product matrix is scaled to a correlation matrix and inverted by Cholesky
(a pixel whose predictors are constant or collinear to within 1e-12 gets NaN);
residuals are summed explicitly so that an exact fit gives ``r2 = 1``.
Two-sided p-values come from Student's t with ``n - k - 1`` degrees of freedom
(:func:`carbonsink.stats._special.t_sf2`, full relative precision for tiny p).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numba as nb
import numpy as np
import xarray as xr

from carbonsink.errors import InvalidArgumentError

from ._core import apply, check_dataarray, check_dim, out_float_dtype, resolve_min_valid
from ._core import run_kernel, time_in_years
from ._kernels import _JIT
from ._special import t_sf2

__all__ = ["multiple_regression"]

PREDICTOR_DIM = "predictor"


# --------------------------------------------------------------------------- kernel


# Sums over the complete cases may be reassociated (vectorised, several accumulators):
# the data are finite here, so only the rounding of the last bits changes.
_FAST = dict(cache=True, nogil=True, boundscheck=False, error_model="numpy",
             fastmath={"reassoc", "contract"})


@nb.njit(**_FAST)
def _sum(a, n):
    s = 0.0
    for r in range(n):
        s += a[r]
    return s


@nb.njit(**_FAST)
def _dot(a, c, n):
    s = 0.0
    for r in range(n):
        s += a[r] * c[r]
    return s


_BR = 128  # pixels per gathered block


@nb.njit(inline="always", **_JIT)
def _gather_block(xs, orient, p0, nb_, buf, okm):
    """Copy pixels ``[p0, p0 + nb_)`` into ``buf[v, t, b]`` (pixels innermost, so the
    usual ``(time, pixel)`` input is read and written contiguously) and flag in
    ``okm[t, b]`` the time steps where every variable is valid."""
    nvar = buf.shape[0]
    T = buf.shape[1]
    for t in range(T):
        for b in range(nb_):
            okm[t, b] = 1
    for v in range(nvar):
        x = xs[v]
        if orient[v] == 0:
            for b in range(nb_):
                for t in range(T):
                    buf[v, t, b] = x[p0 + b, t]
        else:
            for t in range(T):
                for b in range(nb_):
                    buf[v, t, b] = x[t, p0 + b]
        for t in range(T):
            for b in range(nb_):
                val = buf[v, t, b]
                if val != val:
                    okm[t, b] = 0


@nb.njit(**_JIT)
def _spd_inverse(M, L, out, k):
    """Inverse of the symmetric positive definite ``M[:k, :k]`` (unit-scale diagonal) into
    ``out`` via Cholesky ``M = L L^T``; False when a pivot is below 1e-12 (singular)."""
    for j in range(k):
        s = M[j, j]
        for q in range(j):
            s -= L[j, q] * L[j, q]
        if not s > 1e-12 * M[j, j]:
            return False
        ljj = math.sqrt(s)
        L[j, j] = ljj
        for i in range(j + 1, k):
            s2 = M[i, j]
            for q in range(j):
                s2 -= L[i, q] * L[j, q]
            L[i, j] = s2 / ljj
    # L <- L^{-1} (lower triangular, in place)
    for j in range(k):
        L[j, j] = 1.0 / L[j, j]
        for i in range(j + 1, k):
            s = 0.0
            for q in range(j, i):
                s -= L[i, q] * L[q, j]
            L[i, j] = s / L[i, i]
    # out = L^{-T} L^{-1}
    for i in range(k):
        for j in range(i, k):
            s = 0.0
            for q in range(j, k):
                s += L[q, i] * L[q, j]
            out[i, j] = s
            out[j, i] = s
    return True


@nb.njit(**_JIT)
def regression_kernel(xs, orient, tt, min_valid, detrend, ridge,
                      coef, se, tval, pval, r2, r2a, vif, nout, start, stop):
    """OLS (or ridge) of xs[0] on xs[1..k] with intercept, per pixel in ``[start, stop)``.

    Outputs ``coef, se, tval, pval, vif``: ``(pixel, k + 1)``, column 0 = intercept
    (``vif[:, 0]`` is NaN); ``r2, r2a``: ``(pixel,)``; ``nout``: complete cases.
    """
    V = len(xs)
    k = V - 1
    T = xs[0].shape[1] if orient[0] == 0 else xs[0].shape[0]
    buf = np.empty((V, T, _BR))
    okm = np.empty((T, _BR), dtype=np.uint8)
    d = np.empty((V, T))  # complete cases, one contiguous row per variable
    tv = np.empty(T)
    mu = np.empty(V)
    S = np.empty((V, V))
    R = np.empty((k, k))
    A = np.empty((k, k))
    L = np.empty((k, k))
    Rinv = np.empty((k, k))
    Ainv = np.empty((k, k))
    Cs = np.empty((k, k))
    tmp = np.empty((k, k))
    sc = np.empty(k)
    g = np.empty(k)
    b = np.empty(k)
    nan = np.nan
    for p0 in range(start, stop, _BR):
        nb_ = min(_BR, stop - p0)
        _gather_block(xs, orient, p0, nb_, buf, okm)
        for bb in range(nb_):
            pix = p0 + bb
            n = 0
            for t in range(T):
                if okm[t, bb]:
                    for v in range(V):
                        d[v, n] = buf[v, t, bb]
                    tv[n] = tt[t]
                    n += 1
            nout[pix] = n
            df = n - k - 1
            bad = n < min_valid or df < 1
            if not bad:
                for v in range(V):
                    m = _sum(d[v], n) / n
                    for r in range(n):
                        d[v, r] -= m
                    mu[v] = m
                if detrend:
                    m = 0.0
                    for r in range(n):
                        m += tv[r]
                    m /= n
                    stt = 0.0
                    for r in range(n):
                        tv[r] -= m
                        stt += tv[r] * tv[r]
                    if stt > 0.0:
                        for v in range(V):
                            beta = _dot(d[v], tv, n) / stt
                            for r in range(n):
                                d[v, r] -= beta * tv[r]
                    for v in range(V):  # detrended series have mean zero
                        mu[v] = 0.0
                for v in range(V):
                    for w in range(v, V):
                        acc = _dot(d[v], d[w], n)
                        S[v, w] = acc
                        S[w, v] = acc
                for j in range(k):
                    if not S[j + 1, j + 1] > 0.0:
                        bad = True
            if not bad:
                for j in range(k):
                    sc[j] = 1.0 / math.sqrt(S[j + 1, j + 1])
                for i in range(k):
                    for j in range(k):
                        R[i, j] = S[i + 1, j + 1] * sc[i] * sc[j]
                    R[i, i] = 1.0
                if not _spd_inverse(R, L, Rinv, k):
                    bad = True
            if not bad and ridge > 0.0:
                for i in range(k):
                    for j in range(k):
                        A[i, j] = R[i, j]
                    A[i, i] = 1.0 + ridge * sc[i] * sc[i]
                if not _spd_inverse(A, L, Ainv, k):
                    bad = True
            if bad:
                for j in range(k + 1):
                    coef[pix, j] = nan
                    se[pix, j] = nan
                    tval[pix, j] = nan
                    pval[pix, j] = nan
                    vif[pix, j] = nan
                r2[pix] = nan
                r2a[pix] = nan
                continue
            if ridge > 0.0:
                # sandwich covariance of the ridge estimator, scaled units: A^-1 R A^-1
                for i in range(k):
                    for j in range(k):
                        s = 0.0
                        for q in range(k):
                            s += Ainv[i, q] * R[q, j]
                        tmp[i, j] = s
                for i in range(k):
                    for j in range(k):
                        s = 0.0
                        for q in range(k):
                            s += tmp[i, q] * Ainv[q, j]
                        Cs[i, j] = s
            else:
                for i in range(k):
                    for j in range(k):
                        Ainv[i, j] = Rinv[i, j]
                        Cs[i, j] = Rinv[i, j]
            for j in range(k):
                g[j] = S[j + 1, 0] * sc[j]
            for i in range(k):
                s = 0.0
                for j in range(k):
                    s += Ainv[i, j] * g[j]
                b[i] = s * sc[i]
            for r in range(n):
                e = d[0, r]
                for j in range(k):
                    e -= b[j] * d[j + 1, r]
                tv[r] = e
            rss = _dot(tv, tv, n)
            s2 = rss / df
            c = mu[0]
            var_c = s2 / n
            for i in range(k):
                c -= mu[i + 1] * b[i]
                for j in range(k):
                    var_c += mu[i + 1] * mu[j + 1] * s2 * Cs[i, j] * sc[i] * sc[j]
            coef[pix, 0] = c
            sec = math.sqrt(var_c)
            se[pix, 0] = sec
            tc = c / sec
            tval[pix, 0] = tc
            pval[pix, 0] = t_sf2(tc, df)
            vif[pix, 0] = nan
            for j in range(k):
                coef[pix, j + 1] = b[j]
                sej = math.sqrt(s2 * Cs[j, j]) * sc[j]
                se[pix, j + 1] = sej
                tj = b[j] / sej
                tval[pix, j + 1] = tj
                pval[pix, j + 1] = t_sf2(tj, df)
                vif[pix, j + 1] = Rinv[j, j]
            tss = S[0, 0]
            if tss > 0.0:
                rr = 1.0 - rss / tss
                r2[pix] = rr
                r2a[pix] = 1.0 - (1.0 - rr) * (n - 1) / df
            else:
                r2[pix] = nan
                r2a[pix] = nan


# --------------------------------------------------------------------------- wrapper


def _predictor_items(predictors) -> list[tuple[str, xr.DataArray]]:
    what = "multiple_regression: predictors"
    if isinstance(predictors, xr.DataArray):
        if PREDICTOR_DIM in predictors.dims:
            npred = predictors.sizes[PREDICTOR_DIM]
            if PREDICTOR_DIM in predictors.coords:
                names = [str(v) for v in predictors[PREDICTOR_DIM].values]
            else:
                names = [f"x{i + 1}" for i in range(npred)]
            items = [(names[i], predictors.isel({PREDICTOR_DIM: i}, drop=True))
                     for i in range(npred)]
        else:
            items = [(str(predictors.name) if predictors.name is not None else "x1",
                      predictors)]
    elif isinstance(predictors, xr.Dataset):
        items = [(str(name), predictors[name]) for name in predictors.data_vars]
    elif isinstance(predictors, Mapping):
        items = [(str(name), v) for name, v in predictors.items()]
    elif isinstance(predictors, Sequence) and not isinstance(predictors, str):
        items = [(str(v.name) if getattr(v, "name", None) is not None else f"x{i + 1}", v)
                 for i, v in enumerate(predictors)]
    else:
        raise InvalidArgumentError(
            f"{what} must be a list or dict of DataArrays, a Dataset, or a DataArray with a "
            f"'{PREDICTOR_DIM}' dimension; found {type(predictors).__name__}")
    if not items:
        raise InvalidArgumentError(f"{what}: give at least one predictor")
    names = [nm for nm, _ in items]
    if len(set(names)) != len(names) or "intercept" in names:
        raise InvalidArgumentError(
            f"{what}: predictor names must be unique and not 'intercept', got {names}")
    for nm, v in items:
        check_dataarray(v, f"multiple_regression: predictor '{nm}'")
    return items


def _ratio_units(uy: str | None, ux: str | None) -> str | None:
    if not uy:
        return None
    if not ux or str(ux).strip() in ("1", ""):
        return str(uy)
    return f"({uy}) ({ux})-1"


def _regress_np(*arrays, tt, min_valid, detrend, ridge, threads):
    m = len(arrays)
    f = ("float", (m,))
    s = ("float", ())
    return run_kernel(regression_kernel, list(arrays),
                      (np.asarray(tt, dtype=np.float64), int(min_valid), bool(detrend),
                       float(ridge)),
                      [f, f, f, f, s, s, f, (np.int32, ())], threads)


def multiple_regression(y: xr.DataArray, predictors, dim: str = "time", *,
                        min_valid: int | None = None, detrend: bool = False,
                        ridge: float = 0.0) -> xr.Dataset:
    """Per-pixel multiple linear regression of ``y`` on several predictors, with intercept.

    Parameters
    ----------
    y : response with a ``dim`` dimension (e.g. annual NEP, ``(time, y, x)``).
    predictors : list or dict of DataArrays (or a Dataset), or one DataArray with a
        ``predictor`` dimension; each must have ``dim`` and be broadcastable to ``y``
        (e.g. a time-only series applies to every pixel). Names come from the dict
        keys / variable names / ``predictor`` coordinate (``x1, x2, ...`` otherwise).
    min_valid : a time step is used only where ``y`` and every predictor are valid
        (complete cases); pixels with fewer such steps give NaN. Default
        ``max(k + 2, ceil(0.8 n))`` for k predictors and n time steps; at least ``k + 2``.
    detrend : remove each series' own least-squares linear trend in time (years of the
        ``dim`` coordinate), computed on the complete cases of the pixel, before the
        fit. The coefficients then describe interannual co-variation; the intercept is 0
        and the degrees of freedom are not reduced for the removed trends (the same as
        fitting already detrended series).
    ridge : ``lambda >= 0``; with ``lambda > 0`` the non-intercept coefficients minimise
        ``sum(e**2) + lambda * sum(b_k**2)`` (penalty on the coefficients in the units of
        the predictors, which are not standardised). ``se`` is then the sandwich standard
        error ``s * sqrt(diag(A^-1 X'X A^-1))``, ``A = X'X + lambda I``, with
        ``s**2 = RSS / (n - k - 1)``; it ignores the bias of the shrinkage, so ``se``,
        ``t`` and ``p`` are **approximate** for ridge fits. ``vif`` always describes the
        unpenalised design.

    Returns
    -------
    Dataset with

    * ``coef``, ``se``, ``t``, ``p`` — dims ``(predictor, <spatial dims of y>)``; the
      ``predictor`` coordinate is ``["intercept", names...]``; ``p`` is two-sided from
      Student's t with ``n - k - 1`` degrees of freedom. Units of the coefficients are
      in ``coef.attrs["units_<name>"]`` (units(y) / units(x_k));
    * ``r2``, ``r2_adj`` — coefficient of determination and its adjusted value
      ``1 - (1 - r2)(n - 1)/(n - k - 1)`` (NaN for a constant response);
    * ``vif`` — variance inflation factor of each predictor (``1 / (1 - R_k^2)`` from
      regressing it on the others with intercept); NaN for ``intercept``;
    * ``n`` — number of complete cases (int32).

    Pixels with too few complete cases, a constant predictor or exactly collinear
    predictors are NaN. Float32 inputs give float32 results (computed in float64).
    """
    y = check_dataarray(y, "multiple_regression: y")
    items = _predictor_items(predictors)
    length = check_dim(y, dim, "multiple_regression: y")
    for nm, v in items:
        check_dim(v, dim, f"multiple_regression: predictor '{nm}'")
    ridge = float(ridge)
    if not (ridge >= 0.0 and math.isfinite(ridge)):
        raise InvalidArgumentError(f"multiple_regression: ridge must be a finite number >= 0, "
                                   f"got {ridge}")
    k = len(items)
    mv = resolve_min_valid(min_valid, length, floor=k + 2, default_min=k + 2,
                           what="multiple_regression")
    tt = time_in_years(y, dim) if detrend else np.zeros(length)
    arrays = [y] + [v for _, v in items]
    arrays = [a.drop_vars([PREDICTOR_DIM], errors="ignore") for a in arrays]
    fdt = out_float_dtype(*arrays)
    pd_ = [PREDICTOR_DIM]
    coef, se, t, p, r2, r2a, vif, n = apply(
        _regress_np, arrays, dim, n_out=8, out_dtypes=[fdt] * 7 + [np.int32],
        out_core_dims=[pd_, pd_, pd_, pd_, [], [], pd_, []],
        out_sizes={PREDICTOR_DIM: k + 1},
        kwargs=dict(tt=tt, min_valid=mv, detrend=bool(detrend), ridge=ridge))
    names = ["intercept"] + [nm for nm, _ in items]
    out = {}
    for key, da in (("coef", coef), ("se", se), ("t", t), ("p", p), ("vif", vif)):
        da = da.assign_coords({PREDICTOR_DIM: names})
        out[key] = da.transpose(PREDICTOR_DIM, ...)
    uy = y.attrs.get("units")
    units = {"intercept": _ratio_units(uy, None)}
    units.update({nm: _ratio_units(uy, v.attrs.get("units")) for nm, v in items})
    for key, long in (("coef", "regression coefficient"),
                      ("se", "standard error of the coefficient")):
        out[key].attrs["long_name"] = long
        for nm, u in units.items():
            if u is not None:
                out[key].attrs[f"units_{nm}"] = u
    df_txt = f"n - {k + 1}"
    out["t"].attrs.update(long_name="t statistic (coef / se)", units="1")
    out["p"].attrs.update(long_name=f"two-sided p-value (t distribution, df = {df_txt})",
                          units="1")
    out["vif"].attrs.update(long_name="variance inflation factor", units="1")
    r2.attrs.update(long_name="coefficient of determination", units="1")
    r2a.attrs.update(long_name="adjusted coefficient of determination", units="1")
    n.attrs.update(long_name="number of complete cases", units="1")
    ds = xr.Dataset({"coef": out["coef"], "se": out["se"], "t": out["t"], "p": out["p"],
                     "r2": r2, "r2_adj": r2a, "vif": out["vif"], "n": n})
    ds.attrs.update(method="multiple linear regression with intercept, per pixel "
                           "(complete cases)" + (", ridge" if ridge > 0 else ""),
                    dim=dim, min_valid=mv, detrend=int(bool(detrend)), ridge=ridge,
                    predictors=", ".join(names[1:]))
    if ridge > 0:
        ds.attrs["note"] = "ridge fit: se, t and p are approximate (sandwich, bias ignored)"
    if y.name is not None:
        ds.attrs["response"] = str(y.name)
    return ds
