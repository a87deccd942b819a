"""Time-axis helpers shared by cube, flux and stats (rank 0).

The one place for calendar arithmetic on a time axis of period-start dates: the conversion
of a time coordinate to a :class:`pandas.DatetimeIndex`, days in month, calendar fields,
fractional years and month starts.  ``cube.temporal``, ``flux._util`` (``Calendar``,
``calendar_of``, ``calendar_from_dates``) and ``stats._core.time_in_years`` build on these.

Imports only numpy, pandas, xarray and :mod:`carbonsink.errors` (cheap: no dask, no
numba), so that every subpackage may use it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .errors import InputError

__all__ = ["DAYS_IN_MONTH_NOLEAP", "MONTH_START_DOY_NOLEAP", "is_leap_year",
           "to_datetime_index", "dates_index", "days_in_month", "calendar_fields",
           "fractional_years", "month_starts"]

#: days of each month (January ... December) of a non-leap year
DAYS_IN_MONTH_NOLEAP = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])

#: day of year (0-based) on which each month starts in a non-leap year
MONTH_START_DOY_NOLEAP = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334],
                                  dtype=float)


def is_leap_year(years: Any) -> np.ndarray:
    """Proleptic Gregorian leap years (element-wise, integer years)."""
    years = np.asarray(years)
    return ((years % 4 == 0) & (years % 100 != 0)) | (years % 400 == 0)


def dates_index(dates: Any) -> pd.DatetimeIndex:
    """Anything :func:`pandas.to_datetime` accepts (strings, datetime64 ...) as an index."""
    return pd.DatetimeIndex(pd.to_datetime(np.asarray(dates)))


def to_datetime_index(coord: xr.DataArray, name: str = "input", *,
                      strict: bool = False) -> pd.DatetimeIndex:
    """A time coordinate (datetime64 or cftime) as a :class:`pandas.DatetimeIndex`.

    ``name`` is the variable named in error messages; the coordinate's own name is the
    dimension.  ``strict=True`` also requires unique, increasing time steps.  Raises
    :class:`~carbonsink.errors.InputError` when the coordinate does not hold dates.
    """
    dim = getattr(coord, "name", None) or "time"
    values = coord.values if isinstance(coord, (xr.DataArray, pd.Index)) else np.asarray(coord)
    try:
        idx = pd.DatetimeIndex(values)
    except (TypeError, ValueError):
        try:
            index = coord.to_index() if isinstance(coord, xr.DataArray) else coord
            idx = index.to_datetimeindex()
        except Exception:
            raise InputError(f"variable '{name}': coordinate '{dim}' must hold dates "
                             f"(datetime64), found {values.dtype}") from None
    if strict:
        if idx.has_duplicates:
            dup = idx[idx.duplicated()].strftime("%Y-%m-%d")[:5]
            raise InputError(f"variable '{name}': duplicate time steps {', '.join(dup)}")
        if not idx.is_monotonic_increasing:
            raise InputError(f"variable '{name}': time steps must be increasing; sort with "
                             f"da.sortby('{dim}')")
    return idx


def calendar_fields(times: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(year, month, days in month) of each date.

    ``times``: a datetime64/cftime DataArray (read through ``.dt``, so cftime calendars
    keep their own month lengths), a DatetimeIndex, or dates :func:`dates_index` accepts.
    A DataArray that does not hold dates raises ``TypeError``/``AttributeError``.
    """
    if isinstance(times, xr.DataArray):
        return times.dt.year.values, times.dt.month.values, times.dt.days_in_month.values
    idx = times if isinstance(times, pd.DatetimeIndex) else dates_index(times)
    return idx.year, idx.month, idx.days_in_month


def days_in_month(times: Any) -> np.ndarray:
    """Days in the month of each date, float64 (see :func:`calendar_fields` for ``times``)."""
    if isinstance(times, xr.DataArray):
        return np.asarray(times.dt.days_in_month.values, dtype="float64")
    idx = times if isinstance(times, pd.DatetimeIndex) else dates_index(times)
    return np.asarray(idx.days_in_month, dtype="float64")


def fractional_years(coord: xr.DataArray) -> np.ndarray:
    """Dates of a datetime64/cftime coordinate as fractional calendar years (float64).

    ``year + (day_of_year - 1 + time_of_day) / days_in_year``; the time of day is only
    resolved for datetime64 coordinates.
    """
    year = coord.dt.year.values.astype(np.float64)
    doy = coord.dt.dayofyear.values.astype(np.float64)
    try:
        diy = coord.dt.days_in_year.values.astype(np.float64)
    except AttributeError:
        diy = np.where(coord.dt.is_leap_year.values, 366.0, 365.0)
    frac = (doy - 1.0) / diy
    if np.issubdtype(coord.dtype, np.datetime64):
        secs = (coord.values - coord.values.astype("datetime64[D]")).astype("timedelta64[ns]")
        frac = frac + secs.astype(np.float64) / 86400e9 / diy
    return year + frac


def month_starts(index: pd.DatetimeIndex) -> pd.DatetimeIndex:
    """The first day (00:00) of the month of each date."""
    return pd.DatetimeIndex(pd.to_datetime({"year": index.year, "month": index.month,
                                            "day": 1}))
