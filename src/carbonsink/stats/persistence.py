"""Persistence: Hurst exponent by rescaled-range analysis and trend × Hurst classes (§6.5)."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from carbonsink.errors import InvalidArgumentError

from . import _kernels as K
from ._core import apply, check_dataarray, check_dim, out_float_dtype, resolve_min_valid, run_kernel
from .classes import CLASS_FILL, _class_da

__all__ = ["hurst_rs", "persistence_classes", "expected_rs", "HURST_CORRECTIONS"]

#: small-sample corrections of :func:`hurst_rs` (``correction=``)
HURST_CORRECTIONS = ("anis-lloyd", "peters")


def expected_rs(n, *, peters: bool = True) -> np.ndarray:
    """Expected rescaled range E[R/S](n) of n independent normal values (docs/methods.md §6.5).

    Anis & Lloyd (1976)::

        E[R/S](n) = Γ((n − 1)/2) / (√π Γ(n/2)) · Σ_{i=1}^{n−1} sqrt((n − i)/i)

    with Peters' (1994, *Fractal Market Analysis*, Eq. 5.4) small-sample factor
    ``(n − 1/2)/n`` when ``peters=True`` (the "Anis–Lloyd–Peters" form).  The gamma ratio
    is evaluated through log-gamma, so large n do not overflow.  ``n`` is an integer or
    an array of integers >= 2; returns float64 [1] of the same shape.

    References: Anis, A. A., Lloyd, E. H. (1976) Biometrika 63, 111–116; Peters, E. E.
    (1994) Fractal Market Analysis, Wiley; Weron, R. (2002) Physica A 312, 285–299.
    """
    arr = np.asarray(n)
    if arr.dtype.kind not in "iu" and not np.all(np.mod(arr, 1) == 0):
        raise InvalidArgumentError(f"expected_rs: n must be integers, got {n!r}")
    arr = arr.astype(np.int64)
    if np.any(arr < 2):
        raise InvalidArgumentError(f"expected_rs: n must be >= 2 (R/S needs two values), "
                                   f"got {n!r}")
    out = np.empty(arr.shape, dtype=np.float64)
    for idx, m in np.ndenumerate(arr):  # one term per window length (not per pixel)
        i = np.arange(1, m, dtype=np.float64)
        ssum = float(np.sqrt((m - i) / i).sum())
        ratio = math.exp(math.lgamma((m - 1) / 2.0) - math.lgamma(m / 2.0)) / math.sqrt(math.pi)
        val = ratio * ssum
        if peters:
            val *= (m - 0.5) / m
        out[idx] = val
    return out if out.ndim else out[()]


def _taus(m: int, method: str, tau_min: int) -> list[int]:
    """Window lengths the R/S fit of :func:`hurst_rs` uses for a series of m values."""
    if method == "expanding":
        return list(range(max(tau_min, 2), m + 1))
    taus = list(range(max(tau_min, 2), m // 2 + 1))
    if m >= 2 and m not in taus:
        taus.append(m)
    return taus


def _correction_table(length: int, method: str, tau_min: int, differences: bool,
                      peters: bool) -> np.ndarray:
    """``0.5 − slope of ln E[R/S](τ) on ln τ`` for every count of valid values 0..length."""
    table = np.full(length + 1, np.nan)
    for nvalid in range(length + 1):
        m = nvalid - 1 if differences else nvalid
        taus = _taus(m, method, tau_min)
        if len(taus) < 3:
            continue
        lt = np.log(np.asarray(taus, dtype=np.float64))
        le = np.log(expected_rs(np.asarray(taus), peters=peters))
        dx = lt - lt.mean()
        table[nvalid] = 0.5 - float((dx * (le - le.mean())).sum() / (dx * dx).sum())
    return table


def _hurst_np(x, *, min_valid, skipna, method, tau_min, differences, threads):
    return run_kernel(K.hurst_kernel, [x],
                      (min_valid, skipna, method, tau_min, differences),
                      [("float", ()), (np.int32, ())], threads)


def hurst_rs(da: xr.DataArray, dim: str = "time", *, method: str = "expanding",
             tau_min: int | None = None, input: str = "levels", min_valid: int | None = None,
             skipna: bool = True, full: bool = False, correction: str | None = None):
    """Hurst exponent per pixel by R/S analysis (carbonsink docs/methods.md §6.5).

    ``method="expanding"`` (default; the formulation of the Chinese
    remote-sensing literature): for τ = ``tau_min`` .. n the prefix ξ(1..τ) gives
    ``R(τ)`` = range of the cumulative deviations from its mean and ``S(τ)`` =
    its population s.d.; ``H`` is the OLS slope of ln(R/S) on ln τ over the τ
    with R > 0 and S > 0 (``tau_min`` default 3).
    ``method="blocks"`` (classical Hurst/Mandelbrot): for τ = ``tau_min`` ..
    ⌊n/2⌋ (default 4) the series is cut into ⌊n/τ⌋ non-overlapping blocks,
    R/S is averaged over the blocks with R, S > 0, and τ = n is added.

    ``input="levels"`` analyses the series itself (default), ``"differences"``
    its first differences.  Missing values are dropped and the remaining values
    taken as consecutive (the series is compacted; differences are taken after
    compaction).  Fewer than 3 usable τ give NaN.  ``min_valid`` defaults to
    ``max(tau_min + 2, ceil(0.8 n))`` valid values.

    ``correction`` (default None: none) applies the small-sample correction of Anis &
    Lloyd (1976) (``"anis-lloyd"``) or with Peters' (1994) factor (``"peters"``):
    ``H = 0.5 + slope of [ln(R/S)(τ) − ln E[R/S](τ)] on ln τ`` over the same τ, with
    E[R/S] from :func:`expected_rs`, so that white noise gives H ≈ 0.5 also for the
    20–40-year series of the papers (uncorrected R/S gives about 0.6 there, docs/methods.md §6.5).
    The OLS slope is linear in the response, so this equals
    ``H + 0.5 − slope(ln E[R/S] on ln τ)`` with the correction term taken for the τ of a
    series of the pixel's number of valid values; it is exact unless a window is skipped
    (S = 0: a series starting with repeated identical values).  With ``full=True`` the
    uncorrected exponent is kept as ``hurst_uncorrected``.

    Returns ``H`` (DataArray ``hurst``), or with ``full=True`` a Dataset ``hurst, n``.
    """
    da = check_dataarray(da, "hurst_rs")
    length = check_dim(da, dim, "hurst_rs")
    if method not in ("expanding", "blocks"):
        raise InvalidArgumentError(f"hurst_rs: method must be 'expanding' or 'blocks', got {method!r}")
    if input not in ("levels", "differences"):
        raise InvalidArgumentError(f"hurst_rs: input must be 'levels' or 'differences', got {input!r}")
    if tau_min is None:
        tau_min = 3 if method == "expanding" else 4
    if int(tau_min) < 2:
        raise InvalidArgumentError(f"hurst_rs: tau_min must be >= 2 (R/S is undefined for tau=1), "
                              f"got {tau_min}")
    if correction is not None and correction not in HURST_CORRECTIONS:
        raise InvalidArgumentError(f"hurst_rs: correction must be None or one of "
                                   f"{', '.join(HURST_CORRECTIONS)}, got {correction!r}")
    tau_min = int(tau_min)
    floor = tau_min + 2 + (1 if input == "differences" else 0)
    if method == "blocks":
        floor = max(floor, 2 * tau_min)
    mv = resolve_min_valid(min_valid, length, floor=floor, default_min=floor, what="hurst_rs")
    fdt = out_float_dtype(da)
    h, n = apply(_hurst_np, [da], dim, n_out=2, out_dtypes=[fdt, np.int32],
                 kwargs=dict(min_valid=mv, skipna=bool(skipna),
                             method=0 if method == "expanding" else 1, tau_min=tau_min,
                             differences=input == "differences"))
    h.name = "hurst"
    h.attrs.update(long_name="Hurst exponent (R/S analysis)", units="1", method=method,
                   tau_min=tau_min, input=input, min_valid=mv)
    raw = None
    if correction is not None:
        table = _correction_table(length, method, tau_min, input == "differences",
                                  correction == "peters")
        shift = xr.apply_ufunc(lambda nn: table[np.clip(nn, 0, length)], n,
                               dask="parallelized", output_dtypes=[np.float64])
        raw = h
        h = (h + shift).astype(h.dtype)
        h.name = "hurst"
        h.attrs = dict(raw.attrs)
        h.attrs.update(long_name=f"Hurst exponent (R/S analysis, {correction} corrected)",
                       correction=correction)
    if not full:
        return h
    n.attrs.update(long_name="number of valid values", units="1")
    out = {"hurst": h, "n": n}
    if raw is not None:
        raw.name = "hurst_uncorrected"
        out["hurst_uncorrected"] = raw
    return xr.Dataset(out, attrs={"method": f"Hurst R/S ({method})", "dim": dim})


PERSISTENCE_LABELS = ("persistent decrease", "decrease then increase", "undetermined",
                      "increase then decrease", "persistent increase")

#: labels of the significance-split classes, codes -4..4
PERSISTENCE_SIG_LABELS = (
    "significant decrease then increase", "significant persistent decrease",
    "non-significant persistent decrease", "non-significant decrease then increase",
    "undetermined", "non-significant increase then decrease",
    "non-significant persistent increase", "significant persistent increase",
    "significant increase then decrease")


def persistence_classes(slope, hurst: xr.DataArray, z=None, *, critical: float = 1.96,
                        threshold: float = 0.5) -> xr.DataArray:
    """Trend × Hurst persistence classes (seed 001 Fig. 7, carbonsink docs/methods.md §6.5).

    Without ``z``:
    ``2`` persistent increase (slope > 0, H > 0.5), ``1`` increase then decrease
    (slope > 0, H < 0.5), ``−2`` persistent decrease (slope < 0, H > 0.5),
    ``−1`` decrease then increase (slope < 0, H < 0.5), ``0`` undetermined
    (slope = 0 or H = 0.5).

    With the MK ``z`` (significant when ``|z| > critical``) each trend class is
    split by significance: ``±3`` significant persistent, ``±2``
    non-significant persistent, ``±1`` non-significant anti-persistent, ``±4``
    significant anti-persistent (sign = slope sign), ``0`` undetermined.
    ``slope`` may be a :func:`mann_kendall` Dataset (its ``slope``; ``z`` is
    taken from it when ``z=True``).
    """
    if isinstance(slope, xr.Dataset):
        if z is True:
            z = slope["z"]
        slope = slope["slope"]
    elif z is True:
        raise InvalidArgumentError("persistence_classes: z=True needs a mann_kendall Dataset")
    thr = float(threshold)
    if z is None:
        def f(b, h):
            with np.errstate(invalid="ignore"):
                sb = np.sign(b)
                persistent = h > thr
                anti = h < thr
                out = np.where(persistent, 2, np.where(anti, 1, 0)) * sb
            # np.where (not item assignment) so 0-d inputs (one series) work too
            return np.where(np.isnan(b) | np.isnan(h), CLASS_FILL, out).astype(np.int8)

        res = xr.apply_ufunc(f, slope, hurst, dask="parallelized", output_dtypes=[np.int8])
        out = _class_da(res, (-2, -1, 0, 1, 2), PERSISTENCE_LABELS, "persistence_class")
    else:
        crit = float(critical)

        def g(b, h, zz):
            with np.errstate(invalid="ignore"):
                sb = np.sign(b)
                sig = np.abs(zz) > crit
                persistent = h > thr
                anti = h < thr
                mag = np.where(persistent, np.where(sig, 3, 2),
                               np.where(anti, np.where(sig, 4, 1), 0))
                out = mag * sb
            return np.where(np.isnan(b) | np.isnan(h) | np.isnan(zz), CLASS_FILL,
                            out).astype(np.int8)

        res = xr.apply_ufunc(g, slope, hurst, z, dask="parallelized", output_dtypes=[np.int8])
        out = _class_da(res, (-4, -3, -2, -1, 0, 1, 2, 3, 4),
                        PERSISTENCE_SIG_LABELS, "persistence_class")
        out.attrs["critical"] = crit
    out.attrs.update(long_name="trend persistence class (Sen slope x Hurst)",
                     hurst_threshold=thr)
    return out
