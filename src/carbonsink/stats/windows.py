"""OLS slopes over many time windows at once (expanding windows of paper 004, docs/methods.md §8.2).

For a window of years [s, e] the OLS slope of y on t (docs/methods.md §6.1, 004 Eq. 6) is::

    b = (Σty − Σt·Σy / n) / (Σt² − (Σt)² / n)        (sums over the valid years of the window)

All windows that share a start year are obtained in **one pass** over the years: the five
running sums n, Σt, Σt², Σy, Σty are updated year by year with whole-array (vectorised)
operations and the slope is read off at every window end. The cost is one pass over the
series per distinct start year (one for expanding windows), independent of the number of
windows; memory is the input chunk, five 2-D accumulators and the output. For precision, t
is counted from the start year of the window group and y is shifted by its first valid value
in the window (the slope is invariant to both shifts).

Reference: Wang et al. (2023) paper 004, §3.3.2 (slopes from the initial year t0 to each
evaluation year); carbonsink docs/methods.md §8.2 step 2.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError, InvalidArgumentError
from ._core import apply, check_dataarray, check_dim, out_float_dtype, slope_units

__all__ = ["window_slopes", "expanding_slopes", "calendar_years"]


def calendar_years(da: xr.DataArray, dim: str = "time") -> np.ndarray:
    """Integer calendar years of the ``dim`` coordinate of an annual series.

    datetime64/cftime coordinates give their year; numeric coordinates are taken as years.
    Raises :class:`~carbonsink.errors.InputError` when a year occurs twice (not an annual
    series) or the years are not increasing.
    """
    if dim not in da.coords:
        raise InputError(f"'{da.name}' has no '{dim}' coordinate; window slopes need the "
                         "calendar years of an annual series")
    c = da[dim]
    if np.issubdtype(c.dtype, np.datetime64):
        years = pd.DatetimeIndex(c.values).year.to_numpy()
    elif c.dtype == object:
        years = np.array([int(v.year) for v in c.values])
    elif np.issubdtype(c.dtype, np.number):
        years = np.asarray(c.values)
        if not np.all(years == np.round(years)):
            raise InputError(f"coordinate '{dim}' of '{da.name}' holds non-integer years; "
                             "window slopes need one value per calendar year")
    else:
        raise InputError(f"coordinate '{dim}' has dtype {c.dtype}; expected datetimes or "
                         "integer years")
    years = years.astype(np.int64)
    if years.size > 1 and not np.all(np.diff(years) > 0):
        raise InputError(f"'{da.name}' is not an annual series with increasing years along "
                         f"'{dim}' (years {years.tolist()[:6]}...); aggregate with "
                         "carbonsink.cube.temporal.to_annual first")
    return years


def _window_index(years: np.ndarray, windows: Sequence[tuple[int, int]]):
    """Index ranges of the windows, grouped by start: {start_index: [(end_index, k), ...]}."""
    pos = {int(y): i for i, y in enumerate(years)}
    groups: dict[int, list[tuple[int, int]]] = {}
    for k, (s, e) in enumerate(windows):
        s, e = int(s), int(e)
        if s not in pos or e not in pos:
            raise InvalidArgumentError(
                f"window [{s}, {e}] is not inside the record ({years[0]}–{years[-1]}); choose "
                "start and end years present in the series")
        if e <= s:
            raise InvalidArgumentError(f"window [{s}, {e}] must end after it starts (an OLS "
                                       "slope needs at least two years)")
        groups.setdefault(pos[s], []).append((pos[e], k))
    return groups


def _window_slopes_np(x, *, tt, groups, nwin, min_valid, out_dtype, threads=None):
    """Slopes of ``x`` (..., nt) over the windows → (..., nwin). Vectorised over pixels; one
    pass over the years per window start (running sums, updated in place)."""
    shape = x.shape[:-1]
    nt = x.shape[-1]
    y = np.ascontiguousarray(np.moveaxis(np.asarray(x), -1, 0).reshape(nt, -1))
    npix = y.shape[1]
    out = np.full((nwin, npix), np.nan, dtype=out_dtype)
    v = np.empty(npix)
    ok = np.empty(npix, dtype=bool)
    tv = np.empty(npix)
    with np.errstate(invalid="ignore", divide="ignore"):
        for s, ends in groups.items():
            last = max(e for e, _ in ends)
            at: dict[int, list[int]] = {}
            for e, k in ends:
                at.setdefault(e, []).append(k)
            # y is shifted by its first valid value in the window (the slope does not change;
            # the sums stay small): before that value every running sum of the pixel is 0
            ref = np.full(npix, np.nan)
            n, st, stt, sy, sty = (np.zeros(npix) for _ in range(5))
            for i in range(s, last + 1):            # loop over years, vectorised over pixels
                np.copyto(v, y[i])
                np.isfinite(v, out=ok)
                np.copyto(ref, v, where=np.isnan(ref) & ok)
                np.subtract(v, ref, out=v)
                v[~ok] = 0.0
                t = float(tt[i] - tt[s])
                n += ok
                if t != 0.0:
                    np.add(st, t, out=st, where=ok)
                    np.add(stt, t * t, out=stt, where=ok)
                    sy += v
                    np.multiply(v, t, out=tv)
                    sty += tv
                else:
                    sy += v
                if i in at:
                    sxx = stt - st * st / n
                    sxy = sty - st * sy / n
                    good = (n >= min_valid) & (sxx > 0)
                    b = np.divide(sxy, sxx, out=np.full(npix, np.nan), where=good)
                    for k in at[i]:
                        out[k] = b
    return np.moveaxis(out.reshape((nwin, *shape)), 0, -1)


def window_slopes(da: xr.DataArray, windows: Iterable[tuple[int, int]], dim: str = "time", *,
                  min_valid: int = 3) -> xr.DataArray:
    """OLS slope of an annual series over each window of calendar years (docs/methods.md §6.1).

    Parameters
    ----------
    da : DataArray (time, y, x) of an annual series (one value per calendar year), any units.
    windows : (start_year, end_year) pairs, both years inside the record, end > start.
    dim : time dimension.
    min_valid : least number of valid years in a window (at least 2); fewer gives NaN.

    Returns
    -------
    DataArray (window, y, x) [units of ``da`` per year] with coordinates ``window_start`` and
    ``window_end`` on ``window``. Lazy for dask input (one task per spatial chunk, time as one
    chunk); float32 input gives float32 slopes (computed in float64).

    Notes
    -----
    ``b = (Σty − Σt·Σy/n) / (Σt² − (Σt)²/n)`` over the valid years of the window, computed for
    all windows with one pass of running sums per distinct start year (see the module
    docstring). Equal to ``numpy.polyfit(t, y, 1)[0]`` on the valid years of each window.
    """
    da = check_dataarray(da, "window_slopes")
    check_dim(da, dim, "window_slopes")
    windows = [(int(s), int(e)) for s, e in windows]
    if not windows:
        raise InvalidArgumentError("window_slopes: give at least one (start, end) window")
    if int(min_valid) < 2:
        raise InvalidArgumentError(f"window_slopes: min_valid must be >= 2 (an OLS slope needs "
                                   f"two points), got {min_valid}")
    years = calendar_years(da, dim)
    groups = _window_index(years, windows)
    fdt = out_float_dtype(da)
    (out,) = apply(_window_slopes_np, [da], dim, n_out=1, out_dtypes=[fdt],
                   out_core_dims=[["window"]], out_sizes={"window": len(windows)},
                   kwargs=dict(tt=years.astype(np.float64), groups=groups, nwin=len(windows),
                               min_valid=int(min_valid), out_dtype=fdt))
    other = [d for d in da.dims if d != dim]
    out = out.transpose("window", *other)
    out = out.assign_coords(window_start=("window", np.array([s for s, _ in windows])),
                            window_end=("window", np.array([e for _, e in windows])))
    su = slope_units(da.attrs.get("units"))
    out.attrs = {"long_name": f"OLS slope of {da.attrs.get('long_name', da.name or 'series')} "
                              "over the window", **({"units": su} if su else {}),
                 "method": "OLS slope per window from running sums (docs/methods.md §6.1, 8.2)",
                 "min_valid": int(min_valid)}
    out.name = "slope"
    return out


def expanding_slopes(da: xr.DataArray, ends: Iterable[int] | None = None, dim: str = "time", *,
                     start: int | None = None, min_valid: int = 3) -> xr.DataArray:
    """OLS slopes over the expanding windows [start, e] for each end year ``e`` (004 Eq. 6–7).

    ``start`` defaults to the first year of the record, ``ends`` to every year from
    ``start + 1`` to the last. Returns a DataArray (year, y, x) where ``year`` is the end
    year of the window (coordinate ``window_start`` holds the start year); units and
    laziness as :func:`window_slopes`, which does the work (all windows in one pass).
    """
    da = check_dataarray(da, "expanding_slopes")
    check_dim(da, dim, "expanding_slopes")
    years = calendar_years(da, dim)
    s = int(years[0]) if start is None else int(start)
    ends = [int(e) for e in (years[years > s] if ends is None else ends)]
    out = window_slopes(da, [(s, e) for e in ends], dim, min_valid=min_valid)
    out = out.rename(window="year").assign_coords(year=("year", np.array(ends)))
    return out.drop_vars("window_end")
