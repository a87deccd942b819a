"""Shared plumbing of the xarray wrappers: time axis, NaN policy, apply_ufunc."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import xarray as xr

from .._xrutil import keep_coord_attrs
from numba import typed

from carbonsink.errors import AlignmentError, CarbonsinkError, InsufficientDataError

from ._parallel import run_ranges


# --------------------------------------------------------------------------- inputs


def check_dataarray(obj, name: str = "input") -> xr.DataArray:
    if not isinstance(obj, xr.DataArray):
        raise CarbonsinkError(
            f"{name}: expected an xarray.DataArray, found {type(obj).__name__}; wrap NumPy "
            "arrays with xr.DataArray(values, dims=(..., 'time'))")
    return obj


def check_dim(da: xr.DataArray, dim: str, name: str = "input") -> int:
    if dim not in da.dims:
        raise CarbonsinkError(
            f"{name} ('{da.name}') has no dimension '{dim}' (dims: {tuple(da.dims)}); pass "
            "dim= naming the time dimension")
    return int(da.sizes[dim])


def resolve_min_valid(min_valid: int | None, length: int, *, floor: int, default_min: int,
                      what: str) -> int:
    """Apply the default ``max(default_min, ceil(0.8 n))`` and check it is reachable."""
    if min_valid is None:
        mv = max(default_min, math.ceil(0.8 * length - 1e-9))
        if length < mv:
            raise InsufficientDataError(
                f"{what}: the series has only {length} time steps but the default "
                f"min_valid is max({default_min}, ceil(0.8 n)) = {mv}; pass min_valid= "
                f"(at least {floor}) to compute on short series")
    else:
        mv = int(min_valid)
        if mv < floor:
            raise InsufficientDataError(
                f"{what}: min_valid={mv} is below the minimum of {floor} valid values this "
                f"statistic needs; pass min_valid >= {floor}")
        if mv > length:
            raise InsufficientDataError(
                f"{what}: min_valid={mv} exceeds the series length {length}; no pixel could "
                "be computed")
    return max(mv, floor)


def time_in_years(da: xr.DataArray, dim: str) -> np.ndarray:
    """Time coordinate in years relative to the first step (float64).

    datetime64/cftime → fractional calendar year; numeric → taken as years;
    no coordinate → 0, 1, 2, ...  The coordinate must be strictly increasing.
    """
    n = da.sizes[dim]
    if dim not in da.coords:
        return np.arange(n, dtype=np.float64)
    c = da[dim]
    if np.issubdtype(c.dtype, np.datetime64) or c.dtype == object:
        year = c.dt.year.values.astype(np.float64)
        doy = c.dt.dayofyear.values.astype(np.float64)
        try:
            diy = c.dt.days_in_year.values.astype(np.float64)
        except AttributeError:
            diy = np.where(c.dt.is_leap_year.values, 366.0, 365.0)
        frac = (doy - 1.0) / diy
        if np.issubdtype(c.dtype, np.datetime64):
            secs = (c.values - c.values.astype("datetime64[D]")).astype("timedelta64[ns]")
            frac = frac + secs.astype(np.float64) / 86400e9 / diy
        years = year + frac
    elif np.issubdtype(c.dtype, np.number):
        years = c.values.astype(np.float64)
    else:
        raise CarbonsinkError(
            f"coordinate '{dim}' has dtype {c.dtype}; expected datetimes or numbers (years)")
    if n > 1 and not np.all(np.diff(years) > 0):
        raise CarbonsinkError(
            f"coordinate '{dim}' must be strictly increasing; sort with .sortby('{dim}') and "
            "drop duplicate time steps")
    return years - years[0]


def time_origin(da: xr.DataArray, dim: str) -> str:
    if dim in da.coords and da.sizes[dim] > 0:
        return str(da[dim].values[0])
    return "index 0"


def slope_units(units: str | None) -> str | None:
    if not units:
        return None
    u = str(units).strip()
    for suffix in (" yr-1", " a-1", " year-1"):
        if u.endswith(suffix):
            return u[: -len(suffix)] + " yr-2"
    return f"{u} yr-1"


# --------------------------------------------------------------------------- kernel driver


def _float_dtype(arrays: Sequence[np.ndarray]) -> np.dtype:
    if all(a.dtype == np.float32 for a in arrays):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def _canonical(a2: np.ndarray) -> tuple[np.ndarray, int]:
    """(pixels, time) array → C-contiguous array and orientation flag."""
    if a2.flags.c_contiguous:
        return a2, 0
    if a2.flags.f_contiguous:
        return a2.T, 1
    return np.ascontiguousarray(a2), 0


def run_kernel(kernel, arrays, args, outputs, threads, post=None):
    """Run ``kernel(xs, orient, *args, *outs, start, stop)`` over all pixels.

    ``arrays``: NumPy arrays ``(..., time)`` with broadcastable leading shapes.
    ``outputs``: list of ``(dtype or "float", extra_shape)``; "float" means the
    common float dtype of the inputs.  Returns the outputs shaped
    ``leading_shape + extra_shape``.
    """
    arrays = [np.asarray(a) for a in arrays]
    fdt = _float_dtype(arrays)
    arrays = [a if a.dtype == fdt else a.astype(fdt) for a in arrays]
    T = arrays[0].shape[-1]
    lead = np.broadcast_shapes(*[a.shape[:-1] for a in arrays])
    npix = int(np.prod(lead)) if len(lead) else 1
    xs = typed.List()
    orient = np.zeros(len(arrays), dtype=np.int64)
    for i, a in enumerate(arrays):
        if a.shape[:-1] != lead:
            a = np.broadcast_to(a, lead + (T,))
        a2, o = _canonical(a.reshape(npix, T))
        xs.append(a2)
        orient[i] = o
    outs = []
    for dt, extra in outputs:
        dt = fdt if dt == "float" else np.dtype(dt)
        outs.append(np.empty((npix,) + tuple(extra), dtype=dt))
    def task(s, e):
        kernel(xs, orient, *args, *outs, s, e)
        if post is not None:
            post(outs, s, e)

    if npix > 0:
        run_ranges(task, npix, threads)
    return tuple(o.reshape(lead + o.shape[1:]) for o in outs)


# --------------------------------------------------------------------------- apply_ufunc


def prepare(objs: Sequence[xr.DataArray], dim: str) -> list[xr.DataArray]:
    """Align exactly, make the core dim a single dask chunk."""
    try:
        objs = list(xr.align(*objs, join="exact", copy=False))
    except ValueError as exc:
        raise AlignmentError(
            f"inputs are not on the same coordinates ({exc}); put them on one grid and "
            "period first (carbonsink.cube.regrid / .sel)") from None
    out = []
    for o in objs:
        if o.chunks is not None:
            axis = o.get_axis_num(dim)
            if len(o.chunks[axis]) > 1:
                o = o.chunk({dim: -1})
        out.append(o)
    return out


def is_lazy(objs: Sequence[xr.DataArray]) -> bool:
    return any(o.chunks is not None for o in objs)


def apply(func, objs, dim, *, n_out, out_dtypes, out_core_dims=None, out_sizes=None,
          kwargs=None, extra_core_dims=None):
    """``xr.apply_ufunc`` with time as the core dim, lazy over dask chunks."""
    objs = prepare(objs, dim)
    lazy = is_lazy(objs)
    kwargs = dict(kwargs or {})
    kwargs["threads"] = 1 if lazy else None
    in_core = [[dim]] * len(objs) if extra_core_dims is None else extra_core_dims
    res = xr.apply_ufunc(
        func, *objs,
        input_core_dims=in_core,
        output_core_dims=out_core_dims or [[]] * n_out,
        dask="parallelized",
        output_dtypes=out_dtypes,
        dask_gufunc_kwargs={"output_sizes": out_sizes} if out_sizes else None,
        kwargs=kwargs,
        keep_attrs=False,
    )
    res = keep_coord_attrs(res, *objs)
    return res if isinstance(res, tuple) else (res,)


def out_float_dtype(*objs: xr.DataArray) -> np.dtype:
    if all(o.dtype == np.float32 for o in objs):
        return np.dtype(np.float32)
    return np.dtype(np.float64)
