"""Stability: coefficient of variation and Fisher–Jenks natural breaks (docs/methods.md §6.4)."""

from __future__ import annotations

import dask
import dask.array as dsa
import numpy as np
import xarray as xr

from carbonsink.errors import InvalidArgumentError, InsufficientDataError

from . import _kernels as K
from ._core import apply, check_dataarray, check_dim, out_float_dtype, resolve_min_valid, run_kernel
from .classes import CLASS_FILL, _class_da

__all__ = ["coefficient_of_variation", "natural_breaks", "classify", "cv_classes",
           "CV_CLASS_LABELS", "CV_FLAG_LABELS"]

#: labels of the five CV classes of seed 001 (class codes 1..5)
CV_CLASS_LABELS = ("low fluctuation", "lower fluctuation", "medium fluctuation",
                   "higher fluctuation", "high fluctuation")


def _cv_np(x, *, min_valid, skipna, ddof, eps, threads):
    f = ("float", ())
    return run_kernel(K.cv_kernel, [x], (min_valid, skipna, ddof, eps),
                      [f, f, f, (np.int32, ())], threads)


#: labels of the CV guard flags (codes 0..3) returned with ``min_mean`` and ``full=True``
CV_FLAG_LABELS = ("cv computed", "too few values", "mean <= 0", "near-zero mean")


def coefficient_of_variation(da: xr.DataArray, dim: str = "time", *, ddof: int = 1,
                             eps: float = 1e-12, min_valid: int | None = None,
                             skipna: bool = True, full: bool = False,
                             min_mean: float | None = None, min_mean_units: str | None = None):
    """Coefficient of variation ``CV = s / mean`` per pixel (seed 001 Eq. 3, docs/methods.md §6.4).

    ``s`` is the standard deviation with ``ddof`` (default 1, the sample s.d.).
    CV is only meaningful for positive means: it is NaN where ``mean <= 0`` or
    ``|mean| < eps`` (e.g. NEP source pixels).  ``min_valid`` defaults to
    ``max(2, ceil(0.8 n))`` valid values.  Returns the CV DataArray, or with
    ``full=True`` a Dataset ``cv, mean, std, n``.

    ``min_mean`` is a guard in data units for near-zero means: CV is also NaN
    where ``0 < mean < min_mean`` [units of ``da``, or ``min_mean_units``, converted
    to the units of ``da``], because ``s / mean`` explodes as the mean approaches 0
    (annual NEP of sparse vegetation: a mean of 1 g C m-2 yr-1 with an s.d. of
    30 gives CV = 30, and such pixels take one natural-break class to themselves).
    A threshold of about 10 g C m-2 yr-1 for annual NEP removes them.  With
    ``min_mean`` and ``full=True`` the Dataset also holds ``flag`` (int8 class
    map): ``0`` CV computed, ``1`` too few valid values, ``2`` mean <= 0,
    ``3`` near-zero mean (``0 < mean < min_mean``); pixels without any data hold the
    fill value.  Without ``min_mean`` the result is unchanged.
    """
    da = check_dataarray(da, "coefficient_of_variation")
    length = check_dim(da, dim, "coefficient_of_variation")
    if ddof not in (0, 1):
        raise InvalidArgumentError(f"coefficient_of_variation: ddof must be 0 or 1, got {ddof}")
    mv = resolve_min_valid(min_valid, length, floor=ddof + 1, default_min=2,
                           what="coefficient_of_variation")
    threshold = _min_mean_threshold(da, min_mean, min_mean_units)
    fdt = out_float_dtype(da)
    cv, mean, std, n = apply(_cv_np, [da], dim, n_out=4, out_dtypes=[fdt] * 3 + [np.int32],
                             kwargs=dict(min_valid=mv, skipna=bool(skipna), ddof=int(ddof),
                                         eps=max(float(eps), threshold or 0.0)))
    cv.attrs.update(long_name="coefficient of variation", units="1", ddof=int(ddof),
                    min_valid=mv, note="NaN where the mean is <= 0")
    units = da.attrs.get("units")
    if threshold is not None:
        cv.attrs["min_mean"] = threshold
        cv.attrs["note"] = (f"NaN where the mean is <= 0 or below min_mean = {threshold:g}"
                            + (f" {units}" if units else ""))
    cv.name = "cv"
    if not full:
        return cv
    mean.attrs.update(long_name="mean", **({"units": units} if units else {}))
    std.attrs.update(long_name=f"standard deviation (ddof={ddof})",
                     **({"units": units} if units else {}))
    n.attrs.update(long_name="number of valid values", units="1")
    out = {"cv": cv, "mean": mean, "std": std, "n": n}
    if threshold is not None:
        out["flag"] = _cv_flags(mean, n, max(float(eps), threshold))
    return xr.Dataset(out, attrs={"method": "coefficient of variation (carbonsink "
                                            "docs/methods.md §6.4)", "dim": dim})


def _min_mean_threshold(da: xr.DataArray, min_mean, min_mean_units) -> float | None:
    """``min_mean`` in the units of ``da`` (None when not given)."""
    if min_mean is None:
        if min_mean_units is not None:
            raise InvalidArgumentError("coefficient_of_variation: min_mean_units given without "
                                       "min_mean; pass min_mean= as well")
        return None
    value = float(min_mean)
    if not np.isfinite(value) or value < 0:
        raise InvalidArgumentError(f"coefficient_of_variation: min_mean must be a finite number "
                                   f">= 0 in data units, got {min_mean!r}")
    if min_mean_units is not None:
        from carbonsink.units import to_units

        target = da.attrs.get("units")
        if not target:
            raise InvalidArgumentError(
                f"coefficient_of_variation: min_mean_units='{min_mean_units}' needs the units "
                f"of '{da.name}' to convert to, but it has no 'units' attribute; set it or "
                "give min_mean in the data's units without min_mean_units")
        value = float(to_units(np.float64(value), target, found=min_mean_units,
                               variable=str(da.name or "min_mean")))
    return value


def _cv_flags(mean: xr.DataArray, n: xr.DataArray, threshold: float) -> xr.DataArray:
    """Guard flags of the CV map (codes of :data:`CV_FLAG_LABELS`), fill where n = 0."""

    def f(m, nn):
        with np.errstate(invalid="ignore"):
            out = np.where(np.isnan(m), 1, np.where(m <= 0, 2, np.where(
                np.abs(m) < threshold, 3, 0)))
        return np.where(np.asarray(nn) == 0, CLASS_FILL, out).astype(np.int8)

    res = xr.apply_ufunc(f, mean, n, dask="parallelized", output_dtypes=[np.int8])
    out = _class_da(res, range(len(CV_FLAG_LABELS)), CV_FLAG_LABELS, "cv_flag")
    out.attrs.update(long_name="coefficient of variation guard flag", min_mean=threshold)
    return out


# --------------------------------------------------------------------------- natural breaks


def _jenks_weighted(values: np.ndarray, weights: np.ndarray, k: int) -> np.ndarray:
    """Exact Fisher–Jenks on sorted distinct ``values`` with positive ``weights``."""
    m = values.size
    if m < k:
        raise InsufficientDataError(
            f"natural_breaks: {k} classes need at least {k} distinct values, found {m}")
    if k == 1:
        return np.array([values[0], values[-1]], dtype=np.float64)
    centre = float(np.average(values, weights=weights))
    v = values.astype(np.float64) - centre
    w = np.concatenate([[0.0], np.cumsum(weights, dtype=np.float64)])
    s1 = np.concatenate([[0.0], np.cumsum(weights * v)])
    s2 = np.concatenate([[0.0], np.cumsum(weights * v * v)])
    starts, _ = K.fisher_jenks_dp(w, s1, s2, int(k))
    upper = values[starts[1:-1] - 1]
    return np.concatenate([[values[0]], upper, [values[-1]]]).astype(np.float64)


def _finite_values(values) -> np.ndarray:
    if isinstance(values, xr.DataArray):
        values = values.data
    if isinstance(values, dsa.Array):
        values = values.compute()
    arr = np.asarray(values, dtype=np.float64).ravel()
    return arr[np.isfinite(arr)]


def natural_breaks(values, k: int = 5, *, method: str = "auto", max_exact: int = 10_000_000,
                   bins: int = 100_000, sample: int = 10_000, seed: int | None = 0) -> np.ndarray:
    """Fisher–Jenks natural breaks (optimal 1-D partition minimising within-class SS).

    Returns ``k + 1`` numbers ``[min, b_1, ..., b_{k-1}, max]`` where ``b_c`` is
    the **upper bound (inclusive) of class c** — the same format as
    ``jenkspy.jenks_breaks``.  NaN/inf are ignored.  Dask input is computed
    (breaks need all values).

    Methods
    -------
    ``"exact"``
        Fisher's exact optimum on all values: distinct values weighted by their
        counts, dynamic programme with the monotone split property solved by
        divide and conquer, O(k·m·log m) for m distinct values (1 million
        values, 5 classes: well under 2 s).
    ``"histogram"``
        the exact optimum on an equal-width histogram of ``bins`` bins (bin
        centres weighted by counts); breaks are the upper edges of the last
        bin of each class, so they are accurate to one bin width.
    ``"sample"``
        the exact optimum on a random sample of ``sample`` values (seeded by
        ``seed``) that always contains the minimum and the maximum — what
        ArcGIS (10 000 values) and QGIS do by default.
    ``"auto"`` (default)
        ``"exact"`` when there are at most ``max_exact`` distinct values,
        otherwise ``"histogram"``.
    """
    if int(k) < 1:
        raise InvalidArgumentError(f"natural_breaks: k must be >= 1, got {k}")
    k = int(k)
    if method not in ("auto", "exact", "histogram", "sample"):
        raise InvalidArgumentError(
            f"natural_breaks: unknown method '{method}'; valid: auto, exact, histogram, sample")
    arr = _finite_values(values)
    if arr.size == 0:
        raise InsufficientDataError("natural_breaks: no finite values")
    if method == "sample":
        if arr.size > sample:
            rng = np.random.default_rng(seed)
            pick = rng.choice(arr.size, size=sample, replace=False)
            arr = np.concatenate([arr[pick], [arr.min(), arr.max()]])
        method = "exact"
    if method == "histogram":
        lo, hi = float(arr.min()), float(arr.max())
        if hi <= lo:
            raise InsufficientDataError(f"natural_breaks: all values equal ({lo}); "
                                        f"{k} classes need {k} distinct values")
        counts, edges = np.histogram(arr, bins=bins, range=(lo, hi))
        keep = counts > 0
        centres = 0.5 * (edges[:-1] + edges[1:])[keep]
        uppers = edges[1:][keep]
        brk = _jenks_weighted(centres, counts[keep].astype(np.float64), k)
        # map class upper centres back to the upper edge of their bin
        pos = np.searchsorted(centres, brk[1:-1])
        return np.concatenate([[lo], uppers[pos], [hi]])
    arr.sort()
    flag = np.empty(arr.size, dtype=bool)
    flag[0] = True
    np.not_equal(arr[1:], arr[:-1], out=flag[1:])
    uniq = arr[flag]
    if method == "auto" and uniq.size > max_exact:
        return natural_breaks(arr, k, method="histogram", bins=bins)
    counts = np.diff(np.append(np.flatnonzero(flag), arr.size)).astype(np.float64)
    return _jenks_weighted(uniq, counts, k)


def _classify_np(values, breaks):
    values = np.asarray(values)
    b = np.asarray(breaks, dtype=np.float64)
    cls = np.searchsorted(b[1:-1], values, side="left") + 1
    return np.where(np.isfinite(values), cls, CLASS_FILL).astype(np.int8)


def classify(values, breaks, *, labels=None, name: str = "class"):
    """Class codes 1..k of ``values`` for ``breaks = [min, b_1, ..., b_{k-1}, max]``.

    Class c holds ``b_{c-1} < v <= b_c`` (class 1: ``v <= b_1``, class k:
    ``v > b_{k-1}``; values outside [min, max] fall in the end classes).
    Non-finite values get the fill value ``CLASS_FILL`` (−128).  A DataArray
    gives an int8 DataArray with CF ``flag_values``/``flag_meanings`` (lazy for
    dask input, also when ``breaks`` is a dask array); a NumPy array gives a
    NumPy array.
    """
    if isinstance(values, xr.DataArray):
        if isinstance(breaks, xr.DataArray):
            bda = breaks
        else:
            bda = xr.DataArray(breaks, dims="break")
            if isinstance(breaks, dsa.Array):
                bda = bda.chunk({"break": -1})
        kcls = bda.sizes["break"] - 1
        res = xr.apply_ufunc(_classify_np, values, bda, input_core_dims=[[], ["break"]],
                             dask="parallelized", output_dtypes=[np.int8])
        labels = labels or [f"class {i}" for i in range(1, kcls + 1)]
        out = _class_da(res, list(range(1, kcls + 1)), labels, name=name)
        if not isinstance(breaks, (xr.DataArray, dsa.Array)):
            out.attrs["breaks"] = [float(b) for b in np.asarray(breaks)]
        return out
    return _classify_np(values, breaks)


def cv_classes(cv: xr.DataArray, *, breaks=None, k: int = 5, method: str = "auto",
               sample: int = 10_000, seed: int | None = 0, labels=CV_CLASS_LABELS):
    """Five-class stability map of seed 001: CV classified by natural breaks.

    ``breaks`` (``k + 1`` values) can be given; otherwise they are the
    Fisher–Jenks breaks of all finite CV values (``method``/``sample``/``seed``
    as in :func:`natural_breaks`).  For dask input the breaks are computed
    lazily as part of the graph (and, being unknown before computing, are not
    recorded in the attributes; call :func:`natural_breaks` to get them).
    Codes 1..k = low .. high fluctuation; for NumPy input or given breaks they
    are stored in ``attrs["breaks"]``.
    """
    cv = check_dataarray(cv, "cv_classes")
    if labels is not None and len(labels) != k:
        labels = [f"class {i}" for i in range(1, k + 1)]
    if breaks is None:
        if cv.chunks is not None:
            delayed_breaks = dask.delayed(natural_breaks)(cv.data, k, method=method,
                                                          sample=sample, seed=seed)
            breaks = dsa.from_delayed(delayed_breaks, shape=(k + 1,), dtype=np.float64)
        else:
            breaks = natural_breaks(cv, k, method=method, sample=sample, seed=seed)
    out = classify(cv, breaks, labels=list(labels), name="cv_class")
    out.attrs["long_name"] = "CV stability class (natural breaks)"
    out.attrs["method"] = f"Fisher-Jenks natural breaks, k={k}, method={method}"
    return out
