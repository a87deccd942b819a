"""Pixel-wise trends: OLS with t-test, Theil–Sen slope with the Mann–Kendall test.

Both take a DataArray with a time dimension (``dim``, default ``"time"``) and
return a Dataset of per-pixel statistics, lazy when the input is dask-backed
(time is made a single chunk; space chunks are kept).

Time axis: slopes are per year.  A datetime64/cftime coordinate is converted
to fractional calendar years, a numeric coordinate is taken as years, and
without a coordinate the steps are 0, 1, 2, ... .  Intercepts are the value of
the fitted line at the **first time step** of the series (``t - t[0] = 0``),
which is what ``pymannkendall`` reports for index time and what
``scipy.stats.linregress`` / ``theilslopes`` report for ``x = t - t[0]``.

NaN policy (carbonsink docs/methods.md §1.3): missing years are dropped pairwise; a pixel needs at
least ``min_valid`` valid years (default ``max(10, ceil(0.8 n))``), otherwise
all its statistics are NaN (``n`` still counts its valid years).  With
``skipna=False`` any missing year makes the pixel NaN.
"""

from __future__ import annotations

import numpy as np
import xarray as xr
from scipy.special import ndtr, ndtri

from carbonsink.errors import InvalidArgumentError

from . import _kernels as K
from ._core import (apply, check_dataarray, check_dim, out_float_dtype, resolve_min_valid,
                    run_kernel, slope_units, time_in_years, time_origin)

__all__ = ["ols_trend", "mann_kendall", "MK_VARIANTS"]

#: accepted ``variant=`` values of :func:`mann_kendall`
MK_VARIANTS = {
    "original": K.MK_ORIGINAL,
    "hamed_rao": K.MK_HAMED_RAO,
    "yue_wang": K.MK_YUE_WANG,
    "pre_whitening": K.MK_PREWHITENING,
    "trend_free_pre_whitening": K.MK_TFPW,
}

_EXACT_TABLE = K.mk_exact_table(11)   # exact p for n <= 10


def _ols_np(x, *, tt, min_valid, skipna, threads):
    f = ("float", ())
    return run_kernel(K.ols_kernel, [x], (tt, min_valid, skipna),
                      [f, f, f, f, f, f, (np.int32, ())], threads)


def ols_trend(da: xr.DataArray, dim: str = "time", *, min_valid: int | None = None,
              skipna: bool = True) -> xr.Dataset:
    """Ordinary least-squares trend per pixel with its two-sided t-test (docs/methods.md §6.1).

    ``b = Σ(t−t̄)(y−ȳ)/Σ(t−t̄)²``, ``SE = sqrt(SSE/(n−2)/Σ(t−t̄)²)``, ``t = b/SE``,
    ``p = 2(1 − F_t(|t|; n−2))``, ``r2`` = squared Pearson r of y and t.

    Parameters
    ----------
    da : DataArray with dimension ``dim``.
    dim : time dimension.
    min_valid : least number of valid years (default ``max(10, ceil(0.8 n))``, at least 3).
        With the default a series shorter than 10 years raises
        :class:`~carbonsink.errors.InsufficientDataError`; pass ``min_valid=`` (>= 3)
        to fit shorter series.
    skipna : drop missing years (True) or make such pixels NaN (False).

    Returns
    -------
    Dataset with ``slope`` [units yr-1], ``intercept`` (value at the first time
    step), ``stderr``, ``t``, ``p``, ``r2`` and ``n`` (valid years).

    A constant series (all valid values exactly equal, including all zeros) gives
    slope 0, stderr 0, t 0, p 1 and r2 NaN (no variance to explain), whatever
    its value; a perfect non-constant line gives t = ±inf and p = 0.
    """
    da = check_dataarray(da, "ols_trend")
    length = check_dim(da, dim, "ols_trend")
    mv = resolve_min_valid(min_valid, length, floor=3, default_min=10, what="ols_trend")
    tt = time_in_years(da, dim)
    fdt = out_float_dtype(da)
    outs = apply(_ols_np, [da], dim, n_out=7, out_dtypes=[fdt] * 6 + [np.int32],
                 kwargs=dict(tt=tt, min_valid=mv, skipna=bool(skipna)))
    names = ["slope", "intercept", "stderr", "t", "p", "r2", "n"]
    ds = xr.Dataset(dict(zip(names, outs)))
    units = da.attrs.get("units")
    su = slope_units(units)
    ds["slope"].attrs.update(long_name="OLS trend", **({"units": su} if su else {}))
    ds["intercept"].attrs.update(long_name=f"fitted value at {time_origin(da, dim)}",
                                 **({"units": units} if units else {}))
    ds["stderr"].attrs.update(long_name="standard error of the slope",
                              **({"units": su} if su else {}))
    ds["t"].attrs.update(long_name="t statistic of the slope", units="1")
    ds["p"].attrs.update(long_name="two-sided p-value (t distribution, df = n - 2)", units="1")
    ds["r2"].attrs.update(long_name="coefficient of determination", units="1")
    ds["n"].attrs.update(long_name="number of valid years", units="1")
    ds.attrs.update(method="ordinary least squares trend with t-test (docs/methods.md §6.1)",
                    dim=dim, min_valid=mv, skipna=int(bool(skipna)),
                    intercept_at=time_origin(da, dim))
    if da.name is not None:
        ds.attrs["variable"] = str(da.name)
    return ds


def _fill_normal_p(outs, start, stop):
    """p = 2 Φ(−|z|) where the kernel left p NaN (scipy's ndtr: ~15 ns per value)."""
    z = outs[4][start:stop]
    p = outs[5][start:stop]
    with np.errstate(invalid="ignore"):
        q = 2.0 * ndtr(-np.abs(z))
    np.copyto(p, q, where=np.isnan(p), casting="unsafe")


def _mk_np(x, *, tt, min_valid, skipna, variant, lag, zcrit, small_exact, threads):
    f = ("float", ())
    return run_kernel(K.mk_kernel, [x],
                      (tt, min_valid, skipna, variant, lag, zcrit, small_exact, _EXACT_TABLE),
                      [f, f, f, f, f, f, f, (np.int32, ())], threads, post=_fill_normal_p)


def mann_kendall(da: xr.DataArray, dim: str = "time", *, variant: str = "original",
                 lag: int | None = None, alpha: float = 0.05, min_valid: int | None = None,
                 skipna: bool = True, small_n: str = "exact",
                 mode: str = "standard") -> xr.Dataset:
    """Theil–Sen slope and Mann–Kendall trend test per pixel (carbonsink docs/methods.md §6.2–6.3).

    * ``slope`` — median of ``(y_j − y_i)/(t_j − t_i)`` over all pairs i < j of
      valid years (true time distance across gaps), per year.
    * ``intercept`` — Conover's ``median(y) − slope·median(t)`` over valid years,
      i.e. the line's value at the first time step (as ``pymannkendall``).
    * ``s`` — Σ sgn(y_j − y_i); ``var_s`` — tie-corrected variance;
      ``z`` — continuity-corrected; ``p`` — two-sided; ``tau`` = S / (n(n−1)/2).

    Parameters
    ----------
    variant : ``"original"`` (default) or a serial-correlation correction:
        ``"hamed_rao"`` (Hamed & Rao 1998: variance inflated by the significant
        lags of the autocorrelation of the ranks of the Sen-detrended series),
        ``"yue_wang"`` (Yue & Wang 2004: effective sample size from all lags of
        the detrended series), ``"pre_whitening"`` (Yue & Wang 2002: S on
        ``y_{t+1} − r1 y_t``) or ``"trend_free_pre_whitening"``.  The
        corrections follow ``pymannkendall`` exactly for gap-free series; with
        gaps they are applied to the series of valid years.
    lag : number of lags used by the Hamed–Rao / Yue–Wang corrections (default all).
    alpha : significance level of the Hamed–Rao lag screening (``z = Φ⁻¹(1 − α/2)``).
    min_valid : least number of valid years (default ``max(10, ceil(0.8 n))``, at least 3).
        With the default a series shorter than 10 years raises
        :class:`~carbonsink.errors.InsufficientDataError`; pass ``min_valid=`` (>= 3).
    skipna : drop missing years (True) or make such pixels NaN (False).
    small_n : ``"exact"`` (default): for tie-free series with n <= 10 and the
        original test, ``p`` is the exact two-sided p ``P(|S'| >= |S|)`` of S
        from its permutation distribution (counts of permutations by number of
        inversions); ``"normal"``: always the normal approximation.  With ties
        (any n) the tie-corrected normal approximation is used (stated in
        ``p.attrs["p_method"]``).
    mode : ``"standard"`` (default): the test as described above.  ``"paper"``:
        **for replication only** — seed paper 000's Eqs. 19–20 as printed:
        ``Var(S) = n(n−1)(2n+5)/18`` without the tie term, and
        ``Z = S/sqrt(Var(S))`` for S > 0 (no continuity correction), ``Z = 0`` for
        S = 0, ``Z = (S+1)/sqrt(Var(S))`` for S < 0; ``p`` is the two-sided normal
        p of that Z.  Only with ``variant="original"``; slope, intercept, S and tau
        are unchanged.  The asymmetric correction biases Z upwards and ignoring ties
        understates Var(S); use the default for analysis.

    Returns
    -------
    Dataset ``slope, intercept, s, var_s, z, p, tau, n``.

    A constant series (all valid values equal) gives slope 0, S 0, Var(S) 0
    (every pair is tied), Z 0 and p 1 for every variant (the serial-correlation
    corrections are skipped when the detrended series has no variance), so it
    falls in the "unchanged" class of :func:`~carbonsink.stats.sen_mk_classes`.

    Notes
    -----
    For speed the pairwise slopes are formed in the input precision: with
    float32 input the Sen slope carries an absolute error of about 1e-7 times
    the spread of the pairwise slopes (so its relative error can exceed 1e-6
    only where the slope is near zero compared with that spread).  Cast to
    float64 for agreement with float64 references to the last digits.  S, the
    tie counts and therefore Z and p are exact in either precision.
    """
    da = check_dataarray(da, "mann_kendall")
    length = check_dim(da, dim, "mann_kendall")
    if variant not in MK_VARIANTS:
        raise InvalidArgumentError(
            f"mann_kendall: unknown variant '{variant}'; valid: {', '.join(MK_VARIANTS)}")
    if small_n not in ("exact", "normal"):
        raise InvalidArgumentError(f"mann_kendall: small_n must be 'exact' or 'normal', got {small_n!r}")
    if lag is not None and int(lag) < 1:
        raise InvalidArgumentError(f"mann_kendall: lag must be >= 1 or None, got {lag}")
    if not 0.0 < alpha < 1.0:
        raise InvalidArgumentError(f"mann_kendall: alpha must be in (0, 1), got {alpha}")
    if mode not in ("standard", "paper"):
        raise InvalidArgumentError(f"mann_kendall: mode must be 'standard' or 'paper', "
                                   f"got {mode!r}")
    if mode == "paper" and variant != "original":
        raise InvalidArgumentError("mann_kendall: mode='paper' (seed paper Eqs. 19-20) is only "
                                   "defined for variant='original'")
    mv = resolve_min_valid(min_valid, length, floor=3, default_min=10, what="mann_kendall")
    tt = time_in_years(da, dim)
    fdt = out_float_dtype(da)
    outs = apply(_mk_np, [da], dim, n_out=8, out_dtypes=[fdt] * 7 + [np.int32],
                 kwargs=dict(tt=tt, min_valid=mv, skipna=bool(skipna),
                             variant=MK_VARIANTS[variant], lag=0 if lag is None else int(lag),
                             zcrit=float(ndtri(1.0 - alpha / 2.0)),
                             small_exact=small_n == "exact"))
    names = ["slope", "intercept", "s", "var_s", "z", "p", "tau", "n"]
    ds = xr.Dataset(dict(zip(names, outs)))
    units = da.attrs.get("units")
    su = slope_units(units)
    ds["slope"].attrs.update(long_name="Theil-Sen slope", **({"units": su} if su else {}))
    ds["intercept"].attrs.update(
        long_name=f"Theil-Sen line value at {time_origin(da, dim)} (Conover)",
        **({"units": units} if units else {}))
    ds["s"].attrs.update(long_name="Mann-Kendall S", units="1")
    ds["var_s"].attrs.update(long_name="variance of S (tie-corrected"
                             + ("" if variant == "original" else f", {variant} correction") + ")",
                             units="1")
    ds["z"].attrs.update(long_name="continuity-corrected Z", units="1")
    ds["p"].attrs.update(
        long_name="two-sided p-value", units="1",
        p_method=("exact permutation distribution of S for tie-free series with n <= 10, "
                  "normal approximation (tie-corrected variance) otherwise"
                  if small_n == "exact" and variant == "original" else "normal approximation"))
    ds["tau"].attrs.update(long_name="Kendall tau (S / (n(n-1)/2))", units="1")
    ds["n"].attrs.update(long_name="number of valid years", units="1")
    ds.attrs.update(method="Theil-Sen slope and Mann-Kendall test (docs/methods.md §6.2-6.3)",
                    variant=variant, dim=dim, min_valid=mv, skipna=int(bool(skipna)),
                    intercept_at=time_origin(da, dim))
    if variant != "original":
        ds.attrs["lag"] = "all" if lag is None else int(lag)
    if variant == "hamed_rao":
        ds.attrs["alpha"] = alpha
    if mode == "paper":
        ds = _paper_z(ds, fdt)
    ds.attrs["mode"] = mode
    if da.name is not None:
        ds.attrs["variable"] = str(da.name)
    return ds


def _paper_zp(s, n):
    """Var(S), Z and p of seed paper 000's Eqs. 19-20 as printed (no tie term; continuity
    correction only for S < 0)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        var = n * (n - 1.0) * (2.0 * n + 5.0) / 18.0
        sd = np.sqrt(var)
        z = np.where(s > 0, s / sd, np.where(s < 0, (s + 1.0) / sd, 0.0))
        z = np.where(np.isnan(s), np.nan, z)
        var = np.where(np.isnan(s), np.nan, var)
        p = 2.0 * ndtr(-np.abs(z))
    return var, z, p


def _paper_z(ds: xr.Dataset, fdt) -> xr.Dataset:
    """Replace ``var_s``, ``z`` and ``p`` by the seed paper's printed formulas (lazy for dask)."""
    var, z, p = xr.apply_ufunc(_paper_zp, ds["s"].astype(np.float64),
                               ds["n"].astype(np.float64), dask="parallelized",
                               output_dtypes=[np.float64] * 3, output_core_dims=[[], [], []])
    for key, new in (("var_s", var), ("z", z), ("p", p)):
        attrs = dict(ds[key].attrs)
        ds[key] = new.astype(fdt)
        ds[key].attrs.update(attrs)
    ds["var_s"].attrs["long_name"] = "variance of S without tie term (paper Eq. 19, as printed)"
    ds["z"].attrs["long_name"] = ("Z of paper Eq. 20 as printed (S/sqrt(var) for S > 0, "
                                  "(S+1)/sqrt(var) for S < 0)")
    ds["p"].attrs.update(long_name="two-sided p-value", units="1",
                         p_method="normal approximation of the paper's Z (replication only)")
    return ds
