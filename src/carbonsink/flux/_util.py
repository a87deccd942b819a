"""Shared helpers of the flux models (private): input checks, calendars, output attrs.

Conventions for every public model function of :mod:`carbonsink.flux`:

* **numpy / scalars** are taken to be in the units documented in the model's
  docstring.  For functions that need the time axis, time is **axis 0**.
  Calendar information (days per month, calendar years) comes from a
  ``time=`` argument (period-start dates, anything ``pandas.DatetimeIndex``
  accepts) or, where documented, from an explicit ``days_in_month=`` array.
* **xarray.DataArray** inputs must carry a ``units`` attribute compatible with
  the documented units; they are converted once at the boundary
  (:func:`carbonsink.units.ensure_units`) and a wrong or missing unit raises
  :class:`~carbonsink.errors.UnitError`.  Time is the dimension ``time_dim``
  (default ``"time"``) whose coordinate holds period starts.  Dask-backed
  inputs stay lazy.
"""

from __future__ import annotations

import json
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._xrutil import keep_coord_attrs
from ..errors import ConfigError, InputError
from ..units import ensure_units

METHODS_REF = "carbonsink METHODS.md"


def is_xr(x: Any) -> bool:
    return isinstance(x, xr.DataArray)


def is_dask(x: Any) -> bool:
    data = x.data if is_xr(x) else x
    return hasattr(data, "dask") and hasattr(data, "chunks")


def choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """Validate a string option; raise :class:`ConfigError` listing the valid values."""
    if value not in valid:
        raise ConfigError(f"{name}={value!r} is not valid; choose one of: "
                          + ", ".join(repr(v) for v in valid))
    return value


def check_mode(mode: str) -> str:
    return choice("mode", mode, ("recommended", "paper"))


def prep(x: Any, units: str, name: str, *, time_dim: str = "time", required: bool = True):
    """Boundary check: convert a DataArray to ``units``; pass numpy/dask/scalars through."""
    if x is None:
        if required:
            raise InputError(f"input '{name}' is required (in {units})")
        return None
    if isinstance(x, xr.Dataset):
        raise InputError(f"input '{name}' must be a DataArray, numpy array or scalar, "
                         "not a Dataset; select the variable first (ds['name'])")
    if is_xr(x):
        return ensure_units(x, units, name, time_dim=time_dim)
    if isinstance(x, numbers.Number):
        return float(x)
    if is_dask(x):
        return x
    arr = np.asarray(x)
    if arr.dtype.kind in "iub":
        arr = arr.astype(np.float64)
    elif arr.dtype.kind != "f":
        raise InputError(f"input '{name}' must be numeric, found dtype {arr.dtype}")
    return arr


def float_dtype(*xs: Any) -> np.dtype:
    """float32 when every array input is float32, else float64."""
    dts = []
    for x in xs:
        if x is None or isinstance(x, numbers.Number):
            continue
        dt = x.dtype
        dts.append(dt if dt.kind == "f" else np.dtype(np.float64))
    if not dts:
        return np.dtype(np.float64)
    return np.dtype(np.result_type(*dts))


def jsonable(v: Any) -> Any:
    if isinstance(v, (str, bool)) or v is None:
        return v
    if isinstance(v, numbers.Integral):
        return int(v)
    if isinstance(v, numbers.Real):
        return float(v)
    if isinstance(v, Mapping):
        return {str(k): jsonable(w) for k, w in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(w) for w in v]
    if is_xr(v) or isinstance(v, np.ndarray) or is_dask(v):
        return f"<array shape={tuple(v.shape)}>"
    return str(v)


def finish(out: Any, *, name: str, units: str, long_name: str, model: str,
           parameters: Mapping[str, Any], reference: str, section: str,
           extra: Mapping[str, Any] | None = None):
    """Attach name, units, long_name and provenance attrs to a DataArray result."""
    if not is_xr(out):
        return out
    out = out.copy(deep=False)
    out.name = name
    attrs = {"units": units, "long_name": long_name, "model": model,
             "parameters": json.dumps(jsonable(dict(parameters)), sort_keys=True),
             "reference": reference, "methods_section": f"{METHODS_REF} {section}"}
    if extra:
        attrs.update({k: (v if isinstance(v, (str, int, float)) else json.dumps(jsonable(v)))
                      for k, v in extra.items()})
    out.attrs = attrs
    return out


# --------------------------------------------------------------------------- calendars


class Calendar:
    """Calendar of a time axis: year, month, days in month, day-of-year of mid-month."""

    def __init__(self, years, months, days):
        self.years = np.asarray(years, dtype=np.int64)
        self.months = np.asarray(months, dtype=np.int64)
        self.days = np.asarray(days, dtype=np.float64)

    def __len__(self) -> int:
        return len(self.years)

    @property
    def mid_doy(self) -> np.ndarray:
        leap = ((self.years % 4 == 0) & (self.years % 100 != 0)) | (self.years % 400 == 0)
        cum = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], dtype=float)
        return cum[self.months - 1] + np.where(leap & (self.months > 2), 1, 0) + 15.0

    def year_groups(self) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """(label per step, number of years, the years, steps per year); years must be sorted."""
        if len(self.years) and np.any(np.diff(self.years) < 0):
            raise InputError("the time axis must be sorted in time (calendar years contiguous)")
        uniq, labels, counts = np.unique(self.years, return_inverse=True, return_counts=True)
        return labels.astype(np.int64), len(uniq), uniq, counts.astype(np.float64)


def calendar_from_dates(dates: Any) -> Calendar:
    idx = pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))
    return Calendar(idx.year, idx.month, idx.days_in_month)


def calendar_of(x: Any, time_dim: str, time: Any = None, n: int | None = None,
                assume_years: bool = False) -> Calendar:
    """Calendar of ``x``'s time axis.

    DataArray: from the ``time_dim`` coordinate (datetime64 or cftime).  numpy:
    from ``time=``; without it and with ``assume_years=True``, axis 0 is taken as
    consecutive calendar months starting in January of a non-leap year.
    """
    if is_xr(x) and time_dim in x.dims:
        if time_dim not in x.coords:
            raise InputError(f"'{x.name}' has no '{time_dim}' coordinate; calendar information "
                             "(period-start dates) is needed")
        t = x[time_dim]
        try:
            return Calendar(t.dt.year.values, t.dt.month.values, t.dt.days_in_month.values)
        except (TypeError, AttributeError) as exc:
            raise InputError(f"coordinate '{time_dim}' of '{x.name}' must hold dates") from exc
    if time is not None:
        cal = calendar_from_dates(time)
        if n is not None and len(cal) != n:
            raise InputError(f"time= has {len(cal)} dates but the time axis (axis 0) has {n} steps")
        return cal
    if assume_years and n is not None:
        months = np.arange(n) % 12 + 1
        years = 1 + np.arange(n) // 12
        days = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])[months - 1]
        return Calendar(years, months, days)
    raise InputError("calendar information is needed: pass an xarray object with a time "
                     "coordinate, or time= (period-start dates of axis 0) for numpy input")


def time_length(x: Any, time_dim: str) -> int:
    if is_xr(x):
        if time_dim not in x.dims:
            raise InputError(f"'{x.name}' has no '{time_dim}' dimension")
        return x.sizes[time_dim]
    if np.ndim(x) == 0:
        raise InputError("a time series is needed (axis 0 = time), got a scalar")
    return np.shape(x)[0]


def along_axis0(x: Any, values: np.ndarray) -> Any:
    """Broadcast a per-time-step vector against ``x`` (time dim / axis 0)."""
    if is_xr(x):
        raise TypeError("use the time coordinate for xarray inputs")
    nd = np.ndim(x)
    return np.asarray(values).reshape((-1,) + (1,) * max(nd - 1, 0))


# --------------------------------------------------------------------------- time kernels


def _to_2d(arrs_time, arrs_static, core_last: bool):
    """Return (list of (nt, npix) time arrays, list of (npix,) static arrays, spatial shape)."""
    tarrs = [np.moveaxis(a, -1, 0) if core_last else a for a in arrs_time]
    shapes = [a.shape[1:] for a in tarrs] + [np.shape(s) for s in arrs_static]
    spatial = np.broadcast_shapes(*shapes)
    npix = int(np.prod(spatial)) if spatial else 1
    t2 = [np.ascontiguousarray(np.broadcast_to(a, (a.shape[0],) + spatial)).reshape(a.shape[0], npix)
          for a in tarrs]
    s2 = [np.ascontiguousarray(np.broadcast_to(s, spatial), dtype=np.float64).reshape(npix)
          for s in arrs_static]
    return t2, s2, spatial


def apply_time_kernel(func, time_inputs: list, static_inputs: list, *, time_dim: str,
                      dtype: np.dtype, out_time: bool = True):
    """Run ``func(time_arrays_2d, static_arrays_1d) -> (nt, npix) or (npix,)``.

    ``time_inputs`` have a time dimension (axis 0 for numpy); ``static_inputs``
    are per pixel (no time) and broadcast over it.  xarray inputs go through
    ``xr.apply_ufunc(dask="parallelized")`` with time as a core dimension (one
    task per spatial chunk; time is rechunked to a single chunk if needed).
    """
    nt_in = len(time_inputs)

    def _block(*arrays, core_last=True):
        t2, s2, spatial = _to_2d([np.asarray(a, dtype=dtype) for a in arrays[:nt_in]],
                                 [np.asarray(a) for a in arrays[nt_in:]], core_last)
        res = func(t2, s2)
        if out_time:
            res = res.reshape((res.shape[0],) + spatial)
            return np.moveaxis(res, 0, -1) if core_last else res
        return res.reshape(spatial)

    if any(is_xr(a) for a in time_inputs + static_inputs):
        args, cores = [], []
        for a in time_inputs:
            if not is_xr(a):
                raise InputError("mixing numpy and xarray time series is not supported; "
                                 "wrap every time-varying input in a DataArray")
            args.append(a)
            cores.append([time_dim])
        for s in static_inputs:
            if is_xr(s) and time_dim in s.dims:
                raise InputError(f"'{s.name}' must not have a '{time_dim}' dimension here")
            args.append(s)
            cores.append([])
        out = xr.apply_ufunc(
            _block, *args, input_core_dims=cores,
            output_core_dims=[[time_dim]] if out_time else [[]],
            dask="parallelized", output_dtypes=[dtype],
            dask_gufunc_kwargs={"allow_rechunk": True}, keep_attrs=False,
        )
        if out_time:
            dims = list(time_inputs[0].dims)
            order = [d for d in dims if d in out.dims] + [d for d in out.dims if d not in dims]
            out = out.transpose(*order)
        return keep_coord_attrs(out, *args)
    return _block(*time_inputs, *static_inputs, core_last=False)


def lookup(codes: Any, table: np.ndarray, fill: float) -> Any:
    """Map integer class codes through ``table`` (index = code); invalid codes -> ``fill``."""
    table = np.asarray(table)

    def _map(c):
        c = np.asarray(c)
        out = np.full(c.shape, fill, dtype=table.dtype)
        with np.errstate(invalid="ignore"):
            ok = np.isfinite(c) & (c >= 0) & (c < len(table)) if c.dtype.kind == "f" else \
                (c >= 0) & (c < len(table))
        out[ok] = table[c[ok].astype(np.int64)]
        return out

    if is_xr(codes):
        return keep_coord_attrs(xr.apply_ufunc(_map, codes, dask="parallelized",
                                               output_dtypes=[table.dtype], keep_attrs=False),
                                codes)
    if is_dask(codes):
        return codes.map_blocks(_map, dtype=table.dtype)
    return _map(codes)


class _Quiet:
    """Call a compiled ufunc with floating-point warnings silenced.

    The numba kernels guard every invalid operation with explicit branches,
    but LLVM may evaluate both sides of a branch in SIMD loops and raise
    spurious FP flags (e.g. 0·inf in a discarded lane); results are unaffected.
    """

    def __init__(self, uf):
        self.uf = uf

    def __call__(self, *args):
        with np.errstate(all="ignore"):
            return self.uf(*args)

    def __dask_tokenize__(self):  # deterministic graph keys: equal calls are shared
        return ("carbonsink.flux._Quiet", self.uf.__name__)


def call_uf(uf, *args):
    """Apply a compiled element-wise kernel to numpy, dask or xarray arguments (lazy for dask)."""
    if any(is_xr(a) for a in args):
        return keep_coord_attrs(xr.apply_ufunc(lambda *a: call_uf(uf, *a), *args,
                                               dask="allowed", keep_attrs=False), *args)
    if any(is_dask(a) for a in args):
        from dask.array.core import elemwise
        return elemwise(_Quiet(uf), *args, dtype=float_dtype(*args))
    return _Quiet(uf)(*args)
