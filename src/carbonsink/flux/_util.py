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
import xarray as xr

from .. import _engine
from .. import _time
from .._xrutil import keep_coord_attrs
from .._engine import float_dtype, is_dask, is_xr  # noqa: F401  (re-exported)
from ..errors import InputError, InvalidArgumentError
from ..units import ensure_units

METHODS_REF = "carbonsink docs/methods.md"


def choice(name: str, value: Any, valid: Sequence[str]) -> str:
    """Validate a string option; raise :class:`InvalidArgumentError` listing the valid values."""
    if value not in valid:
        raise InvalidArgumentError(f"{name}={value!r} is not valid; choose one of: "
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
        leap = _time.is_leap_year(self.years)
        cum = _time.MONTH_START_DOY_NOLEAP
        return cum[self.months - 1] + np.where(leap & (self.months > 2), 1, 0) + 15.0

    def year_groups(self) -> tuple[np.ndarray, int, np.ndarray, np.ndarray]:
        """(label per step, number of years, the years, steps per year); years must be sorted."""
        if len(self.years) and np.any(np.diff(self.years) < 0):
            raise InputError("the time axis must be sorted in time (calendar years contiguous)")
        uniq, labels, counts = np.unique(self.years, return_inverse=True, return_counts=True)
        return labels.astype(np.int64), len(uniq), uniq, counts.astype(np.float64)


def calendar_from_dates(dates: Any) -> Calendar:
    """Calendar of period-start dates (anything :func:`pandas.to_datetime` accepts)."""
    return Calendar(*_time.calendar_fields(_time.dates_index(dates)))


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
            return Calendar(*_time.calendar_fields(t))
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
        days = _time.DAYS_IN_MONTH_NOLEAP[months - 1]
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


def _deprecated(old: str, new: str) -> None:
    import warnings
    warnings.warn(f"carbonsink.flux._util.{old} is deprecated; use carbonsink._engine.{new}",
                  DeprecationWarning, stacklevel=3)


def _to_2d(arrs_time, arrs_static, core_last: bool):
    """Deprecated alias of :func:`carbonsink._engine.to_2d` (time-major layout)."""
    _deprecated("_to_2d", "to_2d")
    return _engine.to_2d(arrs_time, arrs_static, core_last=core_last, layout="time_major")


def apply_time_kernel(func, time_inputs: list, static_inputs: list, *, time_dim: str,
                      dtype: np.dtype, out_time: bool = True):
    """Deprecated alias of :func:`carbonsink._engine.apply_time_kernel`."""
    _deprecated("apply_time_kernel", "apply_time_kernel")
    return _engine.apply_time_kernel(func, time_inputs, static_inputs, time_dim=time_dim,
                                     dtype=dtype, out_time=out_time)


def lookup(codes: Any, table: np.ndarray, fill: float) -> Any:
    """Map integer class codes through ``table`` (index = code); invalid codes -> ``fill``."""
    from ._kernels import lookup_kernel

    table = np.asarray(table)
    fill_value = np.asarray(fill, dtype=table.dtype)[()]

    def _map(c):
        # one compiled pass (float codes with NaN as read from a masked land-cover cube:
        # 14.4 ns a value with NumPy's mask-and-index, 4.9 in one pass)
        c = np.ascontiguousarray(c)
        out = np.empty(c.shape, dtype=table.dtype)
        lookup_kernel(c.reshape(-1), table, fill_value, out.reshape(-1))
        return out

    if is_xr(codes):
        return keep_coord_attrs(xr.apply_ufunc(_map, codes, dask="parallelized",
                                               output_dtypes=[table.dtype], keep_attrs=False),
                                codes)
    if is_dask(codes):
        return codes.map_blocks(_map, dtype=table.dtype)
    return _map(codes)


_Quiet = _engine.Quiet  # deprecated alias


def call_uf(uf, *args):
    """Deprecated alias of :func:`carbonsink._engine.elementwise`."""
    _deprecated("call_uf", "elementwise")
    return _engine.elementwise(uf, *args)
