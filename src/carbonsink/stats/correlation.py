"""Pixel-wise correlation: Pearson, Spearman, partial correlation, dominant driver, FDR (§6.6).

All statistics use, per pixel, the time steps where every variable involved
is valid (complete cases), need ``min_valid`` of them (default
``max(10, ceil(0.8 n))``) and give NaN otherwise.  p-values are two-sided from
Student's t with ``df = n − 2`` (``n − 2 − k`` for partial correlations with
``k`` controlled variables), computed in the kernels with full relative
precision.  Every series is centred and scaled before the sums of squares are
formed, so the results do not depend on the magnitude of the data (1e-100 and
1e100 give the same r as 1).  A constant series (zero variance) gives NaN: its
correlation is undefined.

``min_valid`` default: ``max(10, ceil(0.8 n))`` valid time steps (at least 3; at
least ``k + 3`` for partial correlations); a series shorter than 10 steps raises
:class:`~carbonsink.errors.InsufficientDataError` unless ``min_valid`` is given.
"""

from __future__ import annotations

import warnings

from collections.abc import Mapping, Sequence

import numpy as np
import xarray as xr

from carbonsink.errors import InvalidArgumentError

from . import _kernels as K
from ._core import (apply, check_dataarray, check_dim, is_lazy, out_float_dtype,
                    resolve_min_valid, run_kernel)
from .classes import CLASS_FILL, _class_da

__all__ = ["pearson", "spearman", "partial_correlation", "dominant_driver", "fdr_bh"]


def _corr_np(x, y, *, min_valid, skipna, rank, threads):
    f = ("float", ())
    return run_kernel(K.corr_kernel, [x, y], (min_valid, skipna, rank),
                      [f, f, (np.int32, ())], threads)


def _correlation(x, y, dim, min_valid, skipna, rank, fdr, what):
    x = check_dataarray(x, f"{what}: x")
    y = check_dataarray(y, f"{what}: y")
    length = check_dim(x, dim, f"{what}: x")
    check_dim(y, dim, f"{what}: y")
    mv = resolve_min_valid(min_valid, length, floor=3, default_min=10, what=what)
    fdt = out_float_dtype(x, y)
    r, p, n = apply(_corr_np, [x, y], dim, n_out=3, out_dtypes=[fdt, fdt, np.int32],
                    kwargs=dict(min_valid=mv, skipna=bool(skipna), rank=rank))
    kind = "Spearman rank" if rank else "Pearson"
    r.attrs.update(long_name=f"{kind} correlation coefficient", units="1")
    p.attrs.update(long_name="two-sided p-value (t distribution, df = n - 2)", units="1")
    n.attrs.update(long_name="number of complete pairs", units="1")
    ds = xr.Dataset({"r": r, "p": p, "n": n},
                    attrs={"method": f"{kind} correlation (docs/methods.md §6.6)", "dim": dim,
                           "min_valid": mv, "skipna": int(bool(skipna))})
    if rank:
        ds.attrs["ties"] = "average ranks"
    if x.name is not None and y.name is not None:
        ds.attrs["variables"] = f"{x.name}, {y.name}"
    if fdr:
        ds["p_fdr"] = fdr_bh(ds["p"])
    return ds


def pearson(x: xr.DataArray, y: xr.DataArray, dim: str = "time", *,
            min_valid: int | None = None, skipna: bool = True, fdr: bool = False) -> xr.Dataset:
    """Pearson correlation per pixel: Dataset ``r, p, n`` (+ ``p_fdr`` with ``fdr=True``).

    Same numbers as ``scipy.stats.pearsonr`` on each pixel's complete pairs.
    ``fdr=True`` adds Benjamini–Hochberg adjusted p-values over all pixels.
    """
    return _correlation(x, y, dim, min_valid, skipna, False, fdr, "pearson")


def spearman(x: xr.DataArray, y: xr.DataArray, dim: str = "time", *,
             min_valid: int | None = None, skipna: bool = True, fdr: bool = False) -> xr.Dataset:
    """Spearman rank correlation per pixel (average ranks for ties): Dataset ``r, p, n``.

    Same numbers as ``scipy.stats.spearmanr`` on each pixel's complete pairs
    (p from t = r·sqrt((n−2)/(1−r²)), df = n − 2).
    """
    return _correlation(x, y, dim, min_valid, skipna, True, fdr, "spearman")


# --------------------------------------------------------------------------- partial correlation


def _named_arrays(obj, what: str) -> list[tuple[str, xr.DataArray]]:
    if obj is None:
        return []
    if isinstance(obj, xr.Dataset):
        items = [(str(k), obj[k]) for k in obj.data_vars]
    elif isinstance(obj, Mapping):
        items = [(str(k), v) for k, v in obj.items()]
    elif isinstance(obj, xr.DataArray):
        items = [(str(obj.name) if obj.name is not None else f"{what}1", obj)]
    elif isinstance(obj, Sequence) and not isinstance(obj, str):
        items = [(str(v.name) if getattr(v, "name", None) is not None else f"{what}{i + 1}", v)
                 for i, v in enumerate(obj)]
    else:
        raise InvalidArgumentError(
            f"partial_correlation: {what} must be a Dataset, a dict of DataArrays or a list of "
            f"DataArrays, found {type(obj).__name__}")
    names = [n for n, _ in items]
    if len(set(names)) != len(names):
        raise InvalidArgumentError(f"partial_correlation: duplicate {what} names {names}")
    for name, v in items:
        check_dataarray(v, f"partial_correlation: {what} '{name}'")
    return items


def _partial_np(*arrays, nreport, min_valid, skipna, threads):
    f = ("float", (nreport,))
    return run_kernel(K.partial_kernel, list(arrays), (nreport, min_valid, skipna),
                      [f, f, (np.int32, ()), (np.int8, ())], threads)


#: meanings of the ``status`` variable of :func:`partial_correlation`
PARTIAL_STATUS = ("computed", "too few complete cases", "a variable is constant",
                  "collinear variables (singular correlation matrix)")


def partial_correlation(y: xr.DataArray, drivers, dim: str = "time", *, controls=None,
                        min_valid: int | None = None, skipna: bool = True,
                        fdr: bool = False) -> xr.Dataset:
    """Partial correlation of ``y`` with each driver, controlling for all other variables.

    For every pixel the correlation matrix C of ``[y, drivers..., controls...]``
    (complete cases) is inverted, ``P = C⁻¹``, and the partial r of ``y`` and
    driver j given all the rest is ``−P_0j / sqrt(P_00 P_jj)``.  The test uses
    ``t = r sqrt(df/(1 − r²))`` with ``df = n − 2 − k``, k = number of
    variables controlled for (other drivers + controls), as
    ``pingouin.partial_corr``.

    Parameters
    ----------
    y : response (e.g. NEP).
    drivers : Dataset, dict name → DataArray, or list of named DataArrays; one
        partial r is reported per driver.
    controls : further variables controlled for but not reported.
    fdr : add ``p_fdr``, Benjamini–Hochberg adjusted over all pixels per driver.

    Returns
    -------
    Dataset ``r`` and ``p`` with a ``driver`` dimension (coordinate = names),
    ``n`` (complete cases) and ``status`` (int8 per pixel, CF flags: 0 computed,
    1 too few complete cases, 2 a variable is constant, 3 collinear variables).

    Notes
    -----
    Collinear variables (a driver or control that is, to 1e-13 in 1 − R², a
    linear combination of the others) make the correlation matrix singular: the
    partial correlation is then not defined, ``r`` and ``p`` are NaN, ``status``
    is 3 and the Dataset's ``nan_reasons`` attribute says so.  For NumPy-backed
    input a :class:`UserWarning` reports how many pixels were affected; for dask
    input inspect ``status`` after computing (no warning, to stay lazy).  Remove
    the redundant control to obtain a value.
    """
    y = check_dataarray(y, "partial_correlation: y")
    drv = _named_arrays(drivers, "driver")
    ctl = _named_arrays(controls, "control")
    if not drv:
        raise InvalidArgumentError("partial_correlation: give at least one driver")
    length = check_dim(y, dim, "partial_correlation: y")
    for name, v in drv + ctl:
        check_dim(v, dim, f"partial_correlation: '{name}'")
    k = len(drv) + len(ctl) - 1
    mv = resolve_min_valid(min_valid, length, floor=k + 3, default_min=10,
                           what="partial_correlation")
    arrays = [y] + [v for _, v in drv] + [v for _, v in ctl]
    arrays = [a.drop_vars(["driver"], errors="ignore") for a in arrays]
    fdt = out_float_dtype(*arrays)
    nrep = len(drv)
    r, p, n, st = apply(_partial_np, arrays, dim, n_out=4,
                        out_dtypes=[fdt, fdt, np.int32, np.int8],
                        out_core_dims=[["driver"], ["driver"], [], []],
                    out_sizes={"driver": nrep},
                    kwargs=dict(nreport=nrep, min_valid=mv, skipna=bool(skipna)))
    names = [nm for nm, _ in drv]
    r = r.assign_coords(driver=names)
    p = p.assign_coords(driver=names)
    r.attrs.update(long_name="partial correlation coefficient", units="1")
    p.attrs.update(long_name=f"two-sided p-value (t distribution, df = n - 2 - {k})", units="1")
    n.attrs.update(long_name="number of complete cases", units="1")
    st.attrs.update(long_name="partial correlation status", units="1",
                    flag_values=np.arange(len(PARTIAL_STATUS), dtype=np.int8),
                    flag_meanings=" ".join("_".join(m.replace("(", "").replace(")", "").split())
                                           for m in PARTIAL_STATUS))
    ds = xr.Dataset({"r": r, "p": p, "n": n, "status": st})
    ds.attrs["nan_reasons"] = ("r and p are NaN where status != 0: too few complete cases "
                               f"(min_valid={mv}), a constant variable, or collinear variables "
                               "(singular correlation matrix; the partial correlation is "
                               "undefined)")
    if not is_lazy([st]):
        ncol = int((st.values == K.PC_COLLINEAR).sum())
        if ncol:
            warnings.warn(
                f"partial_correlation: {ncol} of {st.size} pixel(s) have collinear variables "
                f"({', '.join(nm for nm, _ in drv + ctl)}); their r and p are NaN (status 3). "
                "Drop the redundant driver or control.", UserWarning, stacklevel=2)
    ds.attrs.update(method="partial correlation from the precision matrix (docs/methods.md §6.6)",
                    dim=dim, controlled_per_driver=k, min_valid=mv, skipna=int(bool(skipna)),
                    controls=", ".join(nm for nm, _ in ctl) or "none")
    if y.name is not None:
        ds.attrs["response"] = str(y.name)
    if fdr:
        ds["p_fdr"] = fdr_bh(ds["p"], over=[d for d in ds["p"].dims if d != "driver"])
    return ds


# --------------------------------------------------------------------------- dominant driver


def dominant_driver(pc: xr.Dataset, *, require_significance: bool = False, alpha: float = 0.05,
                    fdr: bool = False) -> xr.DataArray:
    """Driver with the largest |partial r| per pixel (seed 002 Fig. 7).

    ``pc`` is a :func:`partial_correlation` Dataset.  Codes ``1..K`` follow the
    ``driver`` coordinate; with ``require_significance=True`` only drivers with
    p < ``alpha`` (BH-adjusted p when ``fdr=True``) compete and pixels with none
    get ``0`` ("none").  Pixels without data get the fill value.
    """
    if not isinstance(pc, xr.Dataset) or "r" not in pc or "driver" not in pc["r"].dims:
        raise InvalidArgumentError("dominant_driver: pass the Dataset returned by partial_correlation")
    names = [str(v) for v in pc["driver"].values]
    r = pc["r"]
    if fdr:
        p = pc["p_fdr"] if "p_fdr" in pc else fdr_bh(
            pc["p"], over=[d for d in pc["p"].dims if d != "driver"])
    else:
        p = pc["p"]

    def f(rr, pp):
        with np.errstate(invalid="ignore"):
            a = np.abs(rr)
            if require_significance:
                a = np.where(pp < alpha, a, -1.0)
            a = np.where(np.isnan(a), -2.0, a)
            idx = np.argmax(a, axis=-1)
            best = np.take_along_axis(a, idx[..., None], axis=-1)[..., 0]
        out = (idx + 1).astype(np.int8)
        out[best == -1.0] = 0
        out[np.all(np.isnan(rr), axis=-1)] = CLASS_FILL
        return out

    res = xr.apply_ufunc(f, r, p, input_core_dims=[["driver"], ["driver"]],
                         dask="parallelized", output_dtypes=[np.int8])
    res = res.drop_vars("driver", errors="ignore")
    if require_significance:
        out = _class_da(res, range(0, len(names) + 1), ["none"] + names, "dominant_driver")
    else:
        out = _class_da(res, range(1, len(names) + 1), names, "dominant_driver")
    out.attrs.update(long_name="dominant driver (largest absolute partial correlation)",
                     require_significance=int(bool(require_significance)), alpha=float(alpha),
                     fdr=int(bool(fdr)))
    return out


# --------------------------------------------------------------------------- FDR


def _bh_last(p: np.ndarray, nover: int) -> np.ndarray:
    """Benjamini–Hochberg adjusted p over the last ``nover`` axes (NaN ignored)."""
    shp = p.shape
    lead = shp[: len(shp) - nover]
    flat = np.asarray(p, dtype=np.float64).reshape(int(np.prod(lead)) if lead else 1, -1)
    out = np.full(flat.shape, np.nan)
    for row in range(flat.shape[0]):  # one row per tested family (e.g. per driver)
        v = flat[row]
        ok = ~np.isnan(v)
        pv = v[ok]
        m = pv.size
        if m == 0:
            continue
        order = np.argsort(pv, kind="stable")
        scaled = pv[order] * (m / np.arange(1, m + 1))
        q = np.minimum.accumulate(scaled[::-1])[::-1]
        np.minimum(q, 1.0, out=q)
        res = np.empty(m)
        res[order] = q
        out[row, ok] = res
    return out.reshape(shp)


def fdr_bh(p: xr.DataArray, *, over: Sequence[str] | None = None) -> xr.DataArray:
    """Benjamini–Hochberg false-discovery-rate adjusted p-values (q-values).

    The hypotheses of one family are the pixels along the dims ``over``
    (default: all dims of ``p``); other dims (e.g. ``driver``) are separate
    families.  NaN p-values are not counted.  A pixel is significant at FDR
    level α when its adjusted p < α.  Dask input stays lazy; the family's dims
    are brought into one chunk (the p map, not the data cube, must fit in memory).
    """
    if not isinstance(p, xr.DataArray):
        raise InvalidArgumentError("fdr_bh: p must be an xarray.DataArray")
    over = list(p.dims) if over is None else list(over)
    for d in over:
        if d not in p.dims:
            raise InvalidArgumentError(f"fdr_bh: p has no dimension '{d}'")
    src = p
    if p.chunks is not None:
        p = p.chunk({d: -1 for d in over})
    out = xr.apply_ufunc(_bh_last, p, input_core_dims=[over], output_core_dims=[over],
                         dask="parallelized", output_dtypes=[np.float64],
                         kwargs={"nover": len(over)})
    out = out.transpose(*src.dims)
    if src.chunks is not None:
        out = out.chunk(dict(zip(src.dims, src.chunks)))
    out.attrs.update(long_name="Benjamini-Hochberg adjusted p-value", units="1",
                     family_dims=" ".join(over))
    out.name = "p_fdr"
    return out
