"""Shared plumbing of the xarray wrappers: time axis, NaN policy, apply_ufunc."""

from __future__ import annotations

import math

import numpy as np
import xarray as xr

from .. import _engine, _time
from ..errors import InputError, InsufficientDataError, InvalidArgumentError


# --------------------------------------------------------------------------- inputs


def check_dataarray(obj, name: str = "input") -> xr.DataArray:
    if not isinstance(obj, xr.DataArray):
        raise InvalidArgumentError(
            f"{name}: expected an xarray.DataArray, found {type(obj).__name__}; wrap NumPy "
            "arrays with xr.DataArray(values, dims=(..., 'time'))")
    return obj


def check_dim(da: xr.DataArray, dim: str, name: str = "input") -> int:
    if dim not in da.dims:
        raise InvalidArgumentError(
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
        years = _time.fractional_years(c)
    elif np.issubdtype(c.dtype, np.number):
        years = c.values.astype(np.float64)
    else:
        raise InputError(
            f"coordinate '{dim}' has dtype {c.dtype}; expected datetimes or numbers (years)")
    if n > 1 and not np.all(np.diff(years) > 0):
        raise InputError(
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
# The driver lives in :mod:`carbonsink._engine` (pixel-major layout for the statistics
# kernels); these names are kept for the statistics modules.


def run_kernel(kernel, arrays, args, outputs, threads, post=None):
    """Run ``kernel(xs, orient, *args, *outs, start, stop)`` over all pixels
    (:func:`carbonsink._engine.run_pixel_kernel`)."""
    return _engine.run_pixel_kernel(kernel, arrays, args, outputs, threads, post=post)


prepare = _engine.prepare
is_lazy = _engine.is_lazy


def apply(func, objs, dim, *, n_out, out_dtypes, out_core_dims=None, out_sizes=None,
          kwargs=None, extra_core_dims=None):
    """``xr.apply_ufunc`` with time as the core dim, lazy over dask chunks
    (:func:`carbonsink._engine.apply`)."""
    return _engine.apply(func, objs, dim, n_out=n_out, out_dtypes=out_dtypes,
                         in_core_dims=extra_core_dims, out_core_dims=out_core_dims,
                         out_sizes=out_sizes, kwargs=kwargs)


def out_float_dtype(*objs: xr.DataArray) -> np.dtype:
    """float32 if every input is float32, else float64 (the engine's dtype rule)."""
    return _engine.float_dtype(*objs)
