"""Temporal aggregation (carbonsink docs/methods.md §1.2, §1.3) and period checks.

All aggregations are weighted sums over the time axis, defined by a
``(time steps × output periods)`` weight matrix. When every step belongs to at most
one period and periods are contiguous (months into years or seasons, the usual
case) the sums and the NaN rule run in one compiled pass over the steps
(time-major, one task per spatial chunk); other maps apply the matrix with
:func:`xarray.dot`. Both stay lazy for dask input (time whole; space keeps its
chunks).

NaN rule (``min_valid_fraction``): an output period is NaN unless the valid
share of its constituents (time steps; days for 8-day composites) is at least
``min_valid_fraction`` (default 1.0: any gap makes the period NaN; a missing
time step counts as a gap). When a smaller fraction is allowed, a **sum** is
estimated as the mean of the valid constituents times their expected number
(i.e. the valid sum scaled by expected / valid), a **mean** is the mean of
the valid constituents.

Flux or state: ``how=None`` takes ``"sum"`` for fluxes and ``"mean"`` for
states, from the units registry (``variable`` or ``da.name``) or, failing
that, from per-period units (``month-1``, ``yr-1``, ``d-1`` → sum,
``1``/``degC`` → mean).

Per-day rates: a flux whose units end in ``d-1`` (a mean daily rate over the
step, e.g. FLUXNET monthly files or MuSyQ 8-day products) is summed as
``rate × days of the step`` so that totals are right whatever the step.

Boolean flags (e.g. ``rh_gt_rs``, "Rh > Rs this month"): with ``how=None``
an aggregate is the **number of steps with the flag** (units ``"1"``,
``long_name`` "number of months with ..." or "number of days with ..."),
under the same NaN rule as a sum; ``how="mean"`` gives the fraction of steps.

The aggregation rule in one table (``how=None``):

============================  ==========================================
input                          output period value
============================  ==========================================
boolean flag                   count of steps with the flag
rate per day (``... d-1``)     ``Σ rate × days of the step`` (true days)
flux per step (``month-1``)    sum
state (``degC``, ``1`` ...)    mean of the steps
============================  ==========================================

Time coordinates are period starts (``datetime64``); monthly data stamped
mid-month are accepted and labelled by their month.

Climatologies and experiments: :func:`climatology` (calendar-month means),
:func:`hold_constant` (a driver with its interannual variation removed) and
:func:`anomalies`.

``composites_to_monthly``, ``to_monthly``, ``to_annual`` and
``growing_season`` also take a Dataset (pass options as keywords): every data
variable with the time dimension is aggregated, its name choosing sum or mean;
variables without it are carried over. ``check_period`` takes a Dataset too.
"""

from __future__ import annotations

import datetime as _dt
import re
from collections.abc import Sequence
from typing import Any

import numba as nb
import numpy as np
import pandas as pd
import xarray as xr

from .. import _time
from .._xrutil import keep_coord_attrs
from ..errors import InputError, InsufficientDataError, InvalidArgumentError, UnknownNameError
from ..units import get_variable, parse_units

__all__ = ["composites_to_monthly", "to_monthly", "to_annual", "growing_season",
           "climatology", "hold_constant", "anomalies",
           "check_period", "composite_starts", "period_label"]

_MONTH_ABBR = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_PERIOD_RE = re.compile(r"^(month|mon|months|yr|year|years|a|d|day|days)-1$")
_DAY_RE = re.compile(r"^(d|day|days)-1$")


# ----------------------------------------------------------------------------- helpers


def _name(da: xr.DataArray, variable: str | None) -> str:
    return str(variable or getattr(da, "name", None) or "?")


def _per_variable(func):
    """Let ``func`` take a Dataset: applied to every data variable with the time
    dimension (named after the variable for the flux/state choice); variables
    without it are carried over unchanged."""
    import functools

    @functools.wraps(func)
    def wrapper(da, *args, **kwargs):
        if not isinstance(da, xr.Dataset):
            return func(da, *args, **kwargs)
        dim = kwargs.get("dim", "time")
        if dim not in da.dims:
            raise InputError(f"{func.__name__}: the Dataset has no '{dim}' dimension")
        out = {}
        for name, var in da.data_vars.items():
            if dim in var.dims:
                kw = dict(kwargs)
                kw.setdefault("variable", str(name))
                out[name] = func(var, *args, **kw)
        static = {n: v for n, v in da.data_vars.items() if n not in out}
        ds = xr.Dataset(out)
        for n, v in static.items():
            ds[n] = v
        ds.attrs = dict(da.attrs)
        return ds

    return wrapper


def _times(da: xr.DataArray, dim: str, name: str) -> pd.DatetimeIndex:
    if dim not in da.dims:
        raise InputError(f"variable '{name}' has no '{dim}' dimension (dims: {da.dims}); "
                         "temporal aggregation needs a time axis of period-start dates")
    return _time.to_datetime_index(da[dim], name, strict=True)


def _unit_tokens(units: str | None) -> list[str]:
    return units.split() if units else []


def _is_day_rate(units: str | None) -> bool:
    toks = _unit_tokens(units)
    return bool(toks) and any(_DAY_RE.match(t) for t in toks)


def _with_period(units: str | None, period: str | None) -> str | None:
    """Replace (or add) the per-period token of ``units``; ``None`` removes it."""
    if units is None:
        return None
    toks = _unit_tokens(units)
    kept = [t for t in toks if not _PERIOD_RE.match(t)]
    if period is not None:
        kept.append(f"{period}-1")
    return " ".join(kept) if kept else "1"


def _infer_how(da: xr.DataArray, how: str | None, variable: str | None, allowed: Sequence[str],
               func: str) -> str:
    name = _name(da, variable)
    if how is not None:
        if how not in allowed:
            raise InvalidArgumentError(f"{func}: how={how!r} is not valid; use one of {', '.join(allowed)}")
        return how
    for cand in (variable, da.name):
        if cand is None:
            continue
        try:
            var = get_variable(str(cand))
        except UnknownNameError:
            continue
        if var.kind == "categorical":
            raise InputError(f"{func}: '{name}' is categorical (class codes) and cannot be "
                             "summed or averaged over time")
        return "sum" if var.is_flux else "mean"
    units = da.attrs.get("units")
    toks = _unit_tokens(units)
    if any(_PERIOD_RE.match(t) for t in toks):
        return "sum"
    if units is not None:
        try:
            pu = parse_units(units)
            if str(pu.units) in ("dimensionless", "degree_Celsius", "kelvin"):
                return "mean"
        except ValueError:
            pass
    raise InputError(f"{func}: cannot tell whether '{name}' (units {units!r}) is a flux to sum "
                     "or a state to average. Fix: pass how='sum' or how='mean' (or name the "
                     "variable with a canonical name such as 'npp' or 'tas')")


def _flag_how(da: xr.DataArray, how: str | None, func: str) -> tuple[xr.DataArray, str | None, bool]:
    """Boolean flags: ``how=None``/``"sum"``/``"count"`` → count of flagged steps,
    ``"mean"`` → fraction. Returns (data to aggregate, how, is_flag)."""
    if da.dtype != bool:
        if how == "count":
            raise InvalidArgumentError(f"{func}: how='count' is only for boolean flags; "
                                       f"'{da.name}' has dtype {da.dtype}")
        return da, how, False
    if how not in (None, "sum", "count", "mean"):
        raise InvalidArgumentError(f"{func}: how={how!r} is not valid for a boolean flag; use "
                                   "'count' (default) or 'mean' (fraction of steps)")
    return da.astype("int16"), ("mean" if how == "mean" else "sum"), True


def _flag_attrs(da: xr.DataArray, how: str, step: str) -> dict:
    label = da.attrs.get("long_name", da.name)
    if how == "mean":
        return {"units": "1", "long_name": f"fraction of {step}s with {label}"}
    return {"units": "1", "long_name": f"number of {step}s with {label}"}


def _step_freq(idx: pd.DatetimeIndex, name: str, freq: str | None) -> str:
    if freq is not None:
        if freq not in ("MS", "D"):
            raise InvalidArgumentError(f"freq must be 'MS' (monthly) or 'D' (daily), got {freq!r}")
        return freq
    ym = idx.year * 12 + idx.month
    if len(idx) == 1:
        return "MS" if idx[0].day == 1 else "D"
    diffs = np.diff(idx.values).astype("timedelta64[s]").astype(np.int64) / 86400.0
    if len(np.unique(ym)) == len(idx) and diffs.min() >= 27.5:
        if diffs.min() >= 360:
            raise InputError(f"variable '{name}' is already annual (yearly time steps)")
        return "MS"
    if (idx == idx.normalize()).all() and diffs.min() == 1.0:
        return "D"
    raise InputError(f"variable '{name}': cannot tell the time step (expected monthly or daily "
                     f"steps, found steps of {diffs.min():g} to {diffs.max():g} days). Fix: "
                     "pass freq='MS' or 'D'")


def _days_of_step(idx: pd.DatetimeIndex, freq: str) -> np.ndarray:
    if freq == "MS":
        return _time.days_in_month(idx)
    return np.ones(len(idx))


def _segments(count_w: np.ndarray, value_w: np.ndarray):
    """The steps-to-periods map as contiguous segments, or None.

    When every step belongs to at most one period and each period's steps are contiguous and in
    time order (months into years, months into seasons), the weighted sums are segment sums
    (``np.add.reduceat``): linear in the number of steps, instead of a dense steps x periods
    matrix product. Returns ``(steps, starts, periods)``: the member steps in order, where each
    non-empty period starts among them, and which periods those are.
    """
    nz = count_w != 0
    if (nz.sum(axis=1) > 1).any() or ((value_w != 0) & ~nz).any():
        return None
    steps = np.flatnonzero(nz.any(axis=1))
    if steps.size == 0:
        return None
    period = nz[steps].argmax(axis=1)
    same = np.diff(period) == 0
    # periods in time order, each period's member steps consecutive
    if (np.diff(period) < 0).any() or (np.diff(steps)[same] != 1).any():
        return None
    periods, starts = np.unique(period, return_index=True)
    return steps, starts, periods


@nb.njit(nogil=True, cache=True)
def _segment_kernel(x, steps, bounds, periods, wv, wc, expected, nper, how_sum,
                    min_valid_fraction):  # pragma: no cover - compiled
    """Aggregate a ``(steps, pixel)`` array into ``(nper, pixel)`` periods in one pass: for
    segment ``s`` (member steps ``steps[bounds[s]:bounds[s + 1]]`` of period ``periods[s]``) the
    weighted total Σ w·x and the valid count Σ c over the valid (non-NaN) steps, then the NaN
    rule of :func:`_aggregate`. Time-major: the inner loop runs over contiguous pixels."""
    npix = x.shape[1]
    out = np.full((nper, npix), np.nan, dtype=x.dtype)
    tot = np.empty(npix)
    cnt = np.empty(npix)
    for s in range(periods.size):
        tot[:] = 0.0
        cnt[:] = 0.0
        for k in range(bounds[s], bounds[s + 1]):
            t = steps[k]
            a = wv[k]
            c = wc[k]
            for p in range(npix):
                v = x[t, p]
                if not np.isnan(v):
                    tot[p] += v * a
                    cnt[p] += c
        e = expected[periods[s]]
        need = e * (min_valid_fraction - 1e-9)
        row = periods[s]
        for p in range(npix):
            n = cnt[p]
            if n < need:
                continue
            if how_sum:
                if min_valid_fraction < 1.0:
                    if n > 0:
                        out[row, p] = tot[p] * (e / n)
                else:
                    out[row, p] = tot[p]
            elif n > 0:
                out[row, p] = tot[p] / n
    return out


def _segment_aggregate(x: xr.DataArray, dim: str, segments, value_w: np.ndarray,
                       count_w: np.ndarray, expected: np.ndarray, how: str,
                       min_valid_fraction: float, nperiods: int, wdtype, tmp: str
                       ) -> xr.DataArray:
    """Contiguous periods: weighted sums and the NaN rule in one compiled pass over the steps
    (:func:`_segment_kernel`), time-major, one task per spatial chunk
    (:func:`carbonsink._engine.apply_time_kernel`)."""
    from .. import _engine

    steps, starts, periods = segments
    member = periods.repeat(np.diff(np.append(starts, len(steps))))
    bounds = np.append(starts, len(steps)).astype(np.int64)
    wc = count_w[steps, member].astype(np.float64)
    wv = value_w[steps, member].astype(np.float64) if how == "sum" else wc
    args = (steps.astype(np.int64), bounds, periods.astype(np.int64), wv, wc,
            expected.astype(np.float64), int(nperiods), how == "sum", float(min_valid_fraction))

    def kernel(t2, _s2):
        return _segment_kernel(t2[0], *args)

    if not isinstance(x.data, np.ndarray):
        x = x.chunk({dim: -1})
    x = x.astype(wdtype, copy=False)
    out = _engine.apply_time_kernel(kernel, [x.rename({dim: tmp})], [], time_dim=tmp,
                                    dtype=wdtype, out_time=True, out_size=nperiods)
    return out


def _aggregate(da: xr.DataArray, dim: str, value_w: np.ndarray, count_w: np.ndarray,
               expected: np.ndarray, how: str, min_valid_fraction: float,
               new_times: pd.DatetimeIndex) -> xr.DataArray:
    """Core: weighted sums over ``dim`` into output periods, with the NaN rule.

    ``value_w`` (steps × periods) weights values for ``sum``; ``count_w``
    (steps × periods) counts constituents (steps or days) and serves as the
    weight of a ``mean``; ``expected`` (periods) is the full constituent count.
    Contiguous, non-overlapping periods (:func:`_segments`) are summed in one pass over
    the steps; other maps by a steps × periods matrix product.
    """
    if not 0.0 < min_valid_fraction <= 1.0:
        raise InvalidArgumentError(f"min_valid_fraction must be in (0, 1], got {min_valid_fraction}")
    if how not in ("sum", "mean"):
        raise InvalidArgumentError(f"unsupported aggregation {how!r}")
    wdtype = np.result_type(da.dtype, np.float32)
    tmp = "_period_"
    x = da.drop_vars([c for c in da.coords if dim in da[c].dims and c != dim])
    x = x.drop_vars(dim)
    segments = _segments(count_w, value_w)
    if segments is not None:
        out = _segment_aggregate(x, dim, segments, value_w, count_w, expected, how,
                                 min_valid_fraction, len(new_times), wdtype, tmp)
        order = [tmp if d == dim else d for d in da.dims]
        out = out.transpose(*order).rename({tmp: dim})
        out = out.assign_coords({dim: new_times.values.astype("datetime64[ns]")})
        out.name = da.name
        return out
    else:
        vw = xr.DataArray(value_w.astype(wdtype), dims=(dim, tmp))
        cw = xr.DataArray(count_w.astype(wdtype), dims=(dim, tmp))
        n_valid = xr.dot(x.notnull().astype(wdtype), cw, dim=dim)
        total = xr.dot(x.fillna(0).astype(wdtype), vw if how == "sum" else cw, dim=dim)
    exp = xr.DataArray(expected.astype(wdtype), dims=(tmp,))
    ok = n_valid >= exp * (min_valid_fraction - 1e-9)
    if how == "sum":
        if min_valid_fraction < 1.0:
            total = total * (exp / n_valid.where(n_valid > 0))
        out = total.where(ok)
    else:
        out = (total / n_valid.where(n_valid > 0)).where(ok)
    order = [tmp if d == dim else d for d in da.dims]
    out = out.transpose(*order).rename({tmp: dim})
    out = out.assign_coords({dim: new_times.values.astype("datetime64[ns]")})
    out.name = da.name
    return out


def _finish(out: xr.DataArray, da: xr.DataArray, units: str | None, cell_method: str,
            extra: dict | None = None) -> xr.DataArray:
    attrs = dict(da.attrs)
    if units is not None:
        attrs["units"] = units
    prev = attrs.get("cell_methods")
    attrs["cell_methods"] = f"{prev} {cell_method}" if prev else cell_method
    if extra:
        attrs.update(extra)
    out.attrs = attrs
    return out


_month_starts = _time.month_starts  # alias (the helper lives in carbonsink._time)


def period_label(months: Sequence[int]) -> str:
    """``(5, 6, 7, 8, 9)`` → ``"May-Sep"``; non-contiguous → ``"Jan+Mar"``."""
    ms = list(months)
    if len(ms) > 1 and ms == list(range(ms[0], ms[0] + len(ms))):
        return f"{_MONTH_ABBR[ms[0] - 1]}-{_MONTH_ABBR[ms[-1] - 1]}"
    return "+".join(_MONTH_ABBR[m - 1] for m in ms)


# ----------------------------------------------------------------------------- composites


def composite_starts(year: int, period_days: int = 8) -> pd.DatetimeIndex:
    """Start dates of the MODIS composites of ``year`` (DOY 1, 9, ..., 361 for 8 days)."""
    ndays = 366 if pd.Timestamp(year=year, month=12, day=31).day_of_year == 366 else 365
    doys = np.arange(1, ndays + 1, period_days)
    return pd.DatetimeIndex(pd.Timestamp(year=year, month=1, day=1) + pd.to_timedelta(doys - 1, "D"))


def _composite_ends(starts: pd.DatetimeIndex, period_days: int) -> pd.DatetimeIndex:
    nominal = starts + pd.Timedelta(days=period_days)
    next_year = pd.DatetimeIndex(pd.to_datetime({"year": starts.year + 1, "month": 1, "day": 1}))
    return pd.DatetimeIndex(np.minimum(nominal.values, next_year.values))


@_per_variable
def composites_to_monthly(da: xr.DataArray, dim: str = "time", how: str | None = None,
                          split: str = "days", period_days: int = 8,
                          min_valid_fraction: float = 1.0,
                          variable: str | None = None) -> xr.DataArray:
    """MODIS-style composites (8-day by default) → calendar months.

    Composites start on DOY 1, 1 + p, 1 + 2p, ... each year; the last one of
    a year ends on Dec 31 (5 days for 8-day composites, 6 in leap years).

    how
        ``"sum"`` (fluxes, e.g. MOD17A2H GPP, a cumulative total per
        composite): each composite is split into per-day rates
        ``value / ndays`` (or, for units in ``d-1``, the value is already the
        daily rate), days are assigned to calendar months and summed. Units
        become ``... month-1``. ``"mean"`` (states, e.g. NDVI): day-weighted
        mean of the composites overlapping the month. ``"max"``: maximum-value
        composite of the composites overlapping the month. Default from the
        variable kind.
    split
        ``"days"`` (recommended) or ``"start"`` (carbonsink docs/methods.md §2.1 paper mode: a
        composite counts wholly for the month containing its start date).
    min_valid_fraction
        Share of the month's days that must be covered by valid composites.

    Months only partly covered at the ends of the series are dropped; a
    missing composite inside the series raises :class:`InsufficientDataError`.
    The sum over the months of a year equals the sum of its composites.
    """
    name = _name(da, variable)
    idx = _times(da, dim, name)
    how = _infer_how(da, how, variable, ("sum", "mean", "max"), "composites_to_monthly")
    if split not in ("days", "start"):
        raise InvalidArgumentError(f"split must be 'days' or 'start', got {split!r}")
    starts = idx.normalize()
    off = (starts.day_of_year - 1) % period_days
    if (off != 0).any():
        bad = starts[off != 0].strftime("%Y-%m-%d")[:5]
        raise InputError(f"variable '{name}': composite dates must start on day-of-year 1, "
                         f"{1 + period_days}, {1 + 2 * period_days}, ... ({period_days}-day "
                         f"composites); found {', '.join(bad)}. Fix: set the time coordinate "
                         "to the composite start dates")
    expected = pd.DatetimeIndex(np.concatenate(
        [composite_starts(y, period_days).values for y in range(starts.year.min(), starts.year.max() + 1)]))
    expected = expected[(expected >= starts.min()) & (expected <= starts.max())]
    missing = expected.difference(starts)
    if len(missing):
        raise InsufficientDataError(
            f"variable '{name}': {len(missing)} composite(s) missing inside the series "
            f"{starts.min():%Y-%m-%d} to {starts.max():%Y-%m-%d}: "
            f"{', '.join(missing.strftime('%Y-%m-%d')[:5])}{' ...' if len(missing) > 5 else ''}. "
            "Fix: supply the missing composites (or a gap-filled product)")
    ends = _composite_ends(starts, period_days)
    ndays = np.asarray((ends - starts).days, dtype="float64")
    m0 = pd.Timestamp(year=starts.min().year, month=starts.min().month, day=1)
    last_day = (ends - pd.Timedelta(days=1)).max()
    months = pd.date_range(m0, pd.Timestamp(year=last_day.year, month=last_day.month, day=1),
                           freq="MS")
    month_ends = months + pd.offsets.MonthBegin(1)
    # day overlap of composite k with month m
    s = starts.values[:, None]
    e = ends.values[:, None]
    overlap = (np.minimum(e, month_ends.values[None, :]) - np.maximum(s, months.values[None, :]))
    days = np.clip(overlap.astype("timedelta64[D]").astype(np.int64), 0, None).astype("float64")
    full = days.sum(axis=0) == _time.days_in_month(months)
    if not full.any():
        raise InsufficientDataError(f"variable '{name}': the composites do not cover any whole "
                                    "calendar month")
    days = days[:, full]
    months = months[full]
    if split == "start":
        month_of = (starts.year * 12 + starts.month).values
        mkey = (months.year * 12 + months.month).values
        assign = (month_of[:, None] == mkey[None, :]).astype("float64") * ndays[:, None]
        # a composite assigned to a dropped edge month is dropped with it
    else:
        assign = days
    expected_days = assign.sum(axis=0)
    units = da.attrs.get("units")
    if how == "max":
        out = _composite_extreme(da, dim, assign, expected_days, min_valid_fraction, months)
        return _finish(out, da, units, "time: maximum (maximum-value composite per month)")
    day_rate = _is_day_rate(units)
    value_w = assign if day_rate else assign / ndays[:, None]
    out = _aggregate(da, dim, value_w, assign, expected_days, how, min_valid_fraction, months)
    if how == "sum":
        new_units = _with_period(units, "month")
        method = (f"time: sum (composites split into daily rates, split={split})")
    else:
        new_units = units
        method = "time: mean (day-weighted over composites)"
    return _finish(out, da, new_units, method)


def _composite_extreme(da, dim, assign, expected_days, min_valid_fraction, months):
    wdtype = np.result_type(da.dtype, np.float32)
    pieces = []
    valid = da.notnull().astype(wdtype)
    for j in range(assign.shape[1]):
        k = np.flatnonzero(assign[:, j] > 0)
        sub = da.isel({dim: k})
        w = xr.DataArray(assign[k, j].astype(wdtype), dims=(dim,))
        n_valid = xr.dot(valid.isel({dim: k}).drop_vars(dim), w, dim=dim)
        mx = sub.max(dim, skipna=True)
        pieces.append(mx.where(n_valid >= expected_days[j] * (min_valid_fraction - 1e-9)))
    out = xr.concat(pieces, dim=dim, coords="minimal", compat="override", join="override")
    out = out.assign_coords({dim: months.values.astype("datetime64[ns]")})
    out = out.transpose(*da.dims)
    out.name = da.name
    return out


# ----------------------------------------------------------------------------- daily/monthly


@_per_variable
def to_monthly(da: xr.DataArray, how: str | None = None, min_valid_fraction: float = 1.0,
               dim: str = "time", variable: str | None = None) -> xr.DataArray:
    """Daily → calendar months (sum for fluxes, mean for states).

    Expected constituents are the days of each month; fluxes get units
    ``... month-1`` (a ``d-1`` token is replaced, a per-step amount such as
    ``mm`` becomes ``mm month-1``).
    """
    name = _name(da, variable)
    idx = _times(da, dim, name)
    x, how, flag = _flag_how(da, how, "to_monthly")
    how = _infer_how(x, how, variable, ("sum", "mean"), "to_monthly")
    if _step_freq(idx, name, None) != "D":
        raise InputError(f"to_monthly: variable '{name}' does not have daily time steps")
    months = _month_starts(idx)
    out_months = pd.DatetimeIndex(months.unique())
    member = (months.values[:, None] == out_months.values[None, :]).astype("float64")
    expected = _time.days_in_month(out_months)
    out = _aggregate(x, dim, member, member, expected, how, min_valid_fraction, out_months)
    units = da.attrs.get("units")
    if flag:
        return _finish(out, da, None, f"time: {'mean' if how == 'mean' else 'count'} "
                       "(daily to monthly)", _flag_attrs(da, how, "day"))
    new_units = _with_period(units, "month") if how == "sum" else units
    return _finish(out, da, new_units, f"time: {how} (daily to monthly)")


@_per_variable
def to_annual(da: xr.DataArray, how: str | None = None, min_valid_fraction: float = 1.0,
              dim: str = "time", variable: str | None = None,
              freq: str | None = None) -> xr.DataArray:
    """Monthly or daily → calendar years (time coordinate Jan 1).

    ``how=None``: fluxes are summed (units ``month-1``/``d-1`` → ``yr-1``),
    states averaged (unweighted mean of the steps, units unchanged). A year
    needs ``min_valid_fraction`` of its 12 months (or its days) valid; years
    only partly present in the series count the absent steps as missing.
    """
    name = _name(da, variable)
    idx = _times(da, dim, name)
    orig, (da, how, flag) = da, _flag_how(da, how, "to_annual")
    how = _infer_how(da, how, variable, ("sum", "mean"), "to_annual")
    freq = _step_freq(idx, name, freq)
    years = np.unique(idx.year)
    member = (idx.year.values[:, None] == years[None, :]).astype("float64")
    if freq == "MS":
        expected = np.full(len(years), 12.0)
    else:
        expected = np.array([366.0 if pd.Timestamp(year=y, month=12, day=31).day_of_year == 366
                             else 365.0 for y in years])
    value_w = member * _days_of_step(idx, freq)[:, None] if _is_day_rate(da.attrs.get("units")) \
        else member
    new_times = pd.DatetimeIndex([pd.Timestamp(year=int(y), month=1, day=1) for y in years])
    out = _aggregate(da, dim, value_w, member, expected, how, min_valid_fraction, new_times)
    if flag:
        return _finish(out, orig, None, f"time: {'mean' if how == 'mean' else 'count'} (annual)",
                       _flag_attrs(orig, how, "month" if freq == "MS" else "day"))
    units = da.attrs.get("units")
    new_units = _with_period(units, "yr") if how == "sum" else units
    return _finish(out, da, new_units, f"time: {how} (annual)")


@_per_variable
def growing_season(da: xr.DataArray, months: Sequence[int] = (5, 6, 7, 8, 9),
                   how: str | None = None, per_month: bool = False,
                   min_valid_fraction: float = 1.0, dim: str = "time",
                   variable: str | None = None, freq: str | None = None) -> xr.DataArray:
    """Per-year growing-season totals or means (default May–September).

    Fluxes: the total over the season months with units without a period
    (``g C m-2``) and attribute ``period`` (``"May-Sep"``); with
    ``per_month=True`` the total divided by the number of months, in
    ``... month-1`` (carbonsink docs/methods.md §1.2: 000 reports growing-season values per
    month). States: the mean over the season's steps. Months are grouped by
    calendar year (seasons crossing New Year are not supported).
    """
    name = _name(da, variable)
    ms = [int(m) for m in months]
    if not ms or len(set(ms)) != len(ms) or any(m < 1 or m > 12 for m in ms):
        raise InvalidArgumentError(f"growing_season: months must be distinct integers 1-12, got {months!r}")
    ms = sorted(ms)
    idx = _times(da, dim, name)
    orig, (da, how, flag) = da, _flag_how(da, how, "growing_season")
    how = _infer_how(da, how, variable, ("sum", "mean"), "growing_season")
    freq = _step_freq(idx, name, freq)
    years = np.unique(idx.year)
    in_season = np.isin(idx.month, ms)
    member = ((idx.year.values[:, None] == years[None, :]) & in_season[:, None]).astype("float64")
    if freq == "MS":
        expected = np.full(len(years), float(len(ms)))
    else:
        expected = np.array([sum(pd.Timestamp(year=int(y), month=m, day=1).days_in_month
                                 for m in ms) for y in years], dtype="float64")
    value_w = member * _days_of_step(idx, freq)[:, None] if _is_day_rate(da.attrs.get("units")) \
        else member
    new_times = pd.DatetimeIndex([pd.Timestamp(year=int(y), month=1, day=1) for y in years])
    out = _aggregate(da, dim, value_w, member, expected, how, min_valid_fraction, new_times)
    label = period_label(ms)
    units = da.attrs.get("units")
    extra = {"period": label, "season_months": ",".join(map(str, ms))}
    if flag:
        extra.update(_flag_attrs(orig, how, "month" if freq == "MS" else "day"))
        return _finish(out, orig, None, f"time: {'mean' if how == 'mean' else 'count'} over "
                       f"{label}", extra)
    if how == "sum":
        if per_month:
            out = out / len(ms)
            new_units = _with_period(units, "month")
            method = f"time: sum over {label} divided by {len(ms)} months"
        else:
            new_units = _with_period(units, None)
            method = f"time: sum over {label}"
    else:
        new_units = units
        method = f"time: mean over {label}"
    return _finish(out, da, new_units, method, extra)


# ----------------------------------------------------------------------------- climatology, experiments


def _period_bounds(period: Any, func: str) -> tuple[pd.Timestamp, pd.Timestamp] | None:
    """``None`` | ``(start, end)`` | ``slice(start, end)`` → inclusive timestamps."""
    if period is None:
        return None
    if isinstance(period, slice):
        period = (period.start, period.stop)
    if not isinstance(period, (tuple, list)) or len(period) != 2:
        raise InvalidArgumentError(f"{func}: period must be None or (start, end), e.g. "
                                   f"(2001, 2010) or ('2001-01', '2010-12'), got {period!r}")
    t0, t1 = _parse_bound(period[0], False), _parse_bound(period[1], True)
    if t1 < t0:
        raise InvalidArgumentError(f"{func}: period end {period[1]!r} is before start "
                                   f"{period[0]!r}")
    return t0, t1


def _in_period(da: xr.DataArray, period: Any, dim: str, func: str) -> xr.DataArray:
    name = _name(da, None)
    idx = _times(da, dim, name)
    bounds = _period_bounds(period, func)
    if bounds is None:
        sub = da
    else:
        keep = (idx >= bounds[0]) & (idx <= bounds[1] + pd.Timedelta(days=1) - pd.Timedelta(1, "ns"))
        sub = da.isel({dim: np.flatnonzero(keep)})
        if sub.sizes[dim] == 0:
            raise InsufficientDataError(
                f"{func}: variable '{name}' has no time step in the period {bounds[0]:%Y-%m-%d} "
                f"to {bounds[1]:%Y-%m-%d} (the data cover {idx.min():%Y-%m-%d} to "
                f"{idx.max():%Y-%m-%d}). Fix: choose a period inside the data")
    return sub


def _check_months_covered(da: xr.DataArray, sub: xr.DataArray, dim: str, func: str) -> None:
    need = set(pd.DatetimeIndex(da[dim].values).month)
    have = set(pd.DatetimeIndex(sub[dim].values).month)
    missing = sorted(need - have)
    if missing:
        raise InsufficientDataError(
            f"{func}: variable '{_name(da, None)}': calendar month(s) "
            f"{', '.join(_MONTH_ABBR[m - 1] for m in missing)} have no time step in the "
            "climatology period. Fix: widen the period")


def _month_mean(sub: xr.DataArray, dim: str) -> xr.DataArray:
    """Calendar-month mean of ``sub`` (NaNs skipped) on dimension ``month`` = 1..12."""
    month = xr.DataArray(pd.DatetimeIndex(sub[dim].values).month.values, dims=(dim,),
                         name="month")
    x = sub.drop_vars([c for c in sub.coords if dim in sub[c].dims and c != dim])
    clim = x.groupby(month).mean(dim, skipna=True, keep_attrs=True)
    clim = clim.reindex(month=np.arange(1, 13))
    order = ["month" if d == dim else d for d in sub.dims]
    return clim.transpose(*order)


def climatology(da: xr.DataArray, *, period: Any = None, dim: str = "time") -> xr.DataArray:
    """Calendar-month climatology: the mean of each calendar month over ``period``.

    Parameters
    ----------
    da : xarray.DataArray
        Series with a time axis of period-start dates (monthly, or daily: then the mean of
        all days of the calendar month). Lazy for dask input.
    period : None or (start, end), optional
        Years (``(2001, 2010)``), ``"YYYY-MM"`` strings or dates, inclusive; ``None`` uses
        the whole series.
    dim : str
        Time dimension.

    Returns
    -------
    xarray.DataArray
        Dims ``(month, ...)`` with ``month`` = 1..12 in place of ``dim``; NaN steps are
        skipped (a calendar month without any valid step is NaN, one absent from the period
        too). Name, attributes (``units`` unchanged) and CRS coordinates are kept; attribute
        ``climatology_period`` records the period.
    """
    sub = _in_period(da, period, dim, "climatology")
    clim = _month_mean(sub, dim)
    idx = pd.DatetimeIndex(sub[dim].values)
    attrs = dict(da.attrs)
    attrs["climatology_period"] = f"{idx.min():%Y-%m} to {idx.max():%Y-%m}"
    prev = attrs.get("cell_methods")
    cm = "time: mean within months time: mean over years"
    attrs["cell_methods"] = f"{prev} {cm}" if prev else cm
    clim.attrs = attrs
    clim.name = da.name
    return keep_coord_attrs(clim, da)


def _on_time_axis(values: xr.DataArray, da: xr.DataArray, dim: str) -> xr.DataArray:
    """Give ``values`` (already carrying ``dim`` or broadcast to it) the time coords of ``da``
    (and, for dask input, the chunks of ``da``: time is kept in its chunks, not per step)."""
    tcoords = {c: da[c].variable for c in da.coords if dim in da[c].dims}
    out = values.assign_coords(tcoords).transpose(*da.dims)
    if out.chunks is not None:
        out = out.chunk(dict(zip(da.dims, da.chunks)) if da.chunks is not None else {dim: -1})
    return out


def hold_constant(da: xr.DataArray, how: str = "climatology", *, period: Any = None,
                  dim: str = "time") -> xr.DataArray:
    """A series on the time axis of ``da`` with the interannual variation removed.

    For sensitivity experiments ("hold a driver at its climatology").

    Parameters
    ----------
    da : xarray.DataArray
        Driver series with a time axis of period-start dates.
    how : {"climatology", "scalar_mean"}
        ``"climatology"``: every year repeats the calendar-month climatology over
        ``period`` (:func:`climatology`), so the seasonal cycle is kept and each
        calendar month has zero interannual variance. ``"scalar_mean"``: every step is
        the per-pixel mean of all steps in ``period`` (NaNs skipped; no seasonal cycle).
    period : None or (start, end), optional
        Reference period (see :func:`climatology`); ``None`` uses the whole series.
    dim : str
        Time dimension.

    Returns
    -------
    xarray.DataArray
        Same dims, time axis and coordinates as ``da``; lazy for dask input; attributes
        kept plus ``carbonsink_held = how`` and ``carbonsink_held_period``.
    """
    if how not in ("climatology", "scalar_mean"):
        raise InvalidArgumentError(f"hold_constant: how={how!r} is not valid; use "
                                   "'climatology' or 'scalar_mean'")
    sub = _in_period(da, period, dim, "hold_constant")
    idx = pd.DatetimeIndex(sub[dim].values)
    if how == "climatology":
        _check_months_covered(da, sub, dim, "hold_constant")
        clim = _month_mean(sub, dim)
        months = xr.DataArray(pd.DatetimeIndex(da[dim].values).month.values, dims=(dim,))
        out = clim.sel(month=months).drop_vars("month")
    else:
        x = sub.drop_vars([c for c in sub.coords if dim in sub[c].dims and c != dim])
        mean = x.mean(dim, skipna=True, keep_attrs=True)
        out = mean.expand_dims({dim: da.sizes[dim]})
        if not isinstance(out.data, np.ndarray) or not out.data.flags.writeable:
            out = out.copy(deep=not hasattr(out.data, "dask"))
    out = _on_time_axis(out, da, dim)
    attrs = dict(da.attrs)
    attrs["carbonsink_held"] = how
    attrs["carbonsink_held_period"] = f"{idx.min():%Y-%m} to {idx.max():%Y-%m}"
    out.attrs = attrs
    out.name = da.name
    return keep_coord_attrs(out, da)


def anomalies(da: xr.DataArray, how: str = "additive", period: Any = None,
              dim: str = "time") -> xr.DataArray:
    """Departures from the calendar-month climatology over ``period``.

    ``how="additive"``: ``da − climatology`` (units unchanged);
    ``how="multiplicative"``: ``da / climatology`` (units ``"1"``; a zero climatology
    gives ±inf or NaN). Same dims and time axis as ``da``; lazy for dask input;
    attributes kept plus ``carbonsink_anomaly = how``.
    """
    if how not in ("additive", "multiplicative"):
        raise InvalidArgumentError(f"anomalies: how={how!r} is not valid; use 'additive' or "
                                   "'multiplicative'")
    clim = climatology(da, period=period, dim=dim)
    months = xr.DataArray(pd.DatetimeIndex(da[dim].values).month.values, dims=(dim,),
                          coords={dim: da[dim].values})
    ref = _on_time_axis(clim.sel(month=months).drop_vars("month"), da, dim)
    out = da - ref if how == "additive" else da / ref
    out = out.transpose(*da.dims)
    attrs = dict(da.attrs)
    attrs["carbonsink_anomaly"] = how
    attrs["climatology_period"] = clim.attrs["climatology_period"]
    if how == "multiplicative":
        attrs["units"] = "1"
    out.attrs = attrs
    out.name = da.name
    return keep_coord_attrs(out, da)


# ----------------------------------------------------------------------------- period checks


def _parse_bound(value: Any, is_end: bool) -> pd.Timestamp:
    if isinstance(value, (int, np.integer)) or (isinstance(value, str) and re.fullmatch(r"\d{4}", value.strip())):
        y = int(value)
        return pd.Timestamp(year=y, month=12, day=31) if is_end else pd.Timestamp(year=y, month=1, day=1)
    if isinstance(value, str) and re.fullmatch(r"\d{4}-\d{1,2}", value.strip()):
        ts = pd.Timestamp(value.strip() + "-01")
        return ts + pd.offsets.MonthEnd(0) if is_end else ts
    if isinstance(value, (str, _dt.date, _dt.datetime, np.datetime64, pd.Timestamp)):
        return pd.Timestamp(value)
    raise InvalidArgumentError(f"cannot read period bound {value!r}; use a year (2001), 'YYYY-MM' or a date")


def _expected_steps(start: pd.Timestamp, end: pd.Timestamp, freq: str) -> pd.DatetimeIndex:
    if freq == "MS":
        return pd.date_range(start.to_period("M").to_timestamp(), end, freq="MS")
    if freq == "YS":
        return pd.date_range(pd.Timestamp(year=start.year, month=1, day=1), end, freq="YS")
    if freq == "D":
        return pd.date_range(start.normalize(), end.normalize(), freq="D")
    m = re.fullmatch(r"(\d+)D", freq)
    if m:
        p = int(m.group(1))
        allst = np.concatenate([composite_starts(y, p).values for y in range(start.year, end.year + 1)])
        allst = pd.DatetimeIndex(allst)
        return allst[(allst >= start.normalize()) & (allst <= end)]
    raise InvalidArgumentError(f"check_period: freq must be 'MS', 'YS', 'D' or 'ND' composites "
                     f"(e.g. '8D'), got {freq!r}")


def _keys(idx: pd.DatetimeIndex, freq: str) -> np.ndarray:
    if freq == "MS":
        return (idx.year * 100 + idx.month).values
    if freq == "YS":
        return idx.year.values
    return idx.normalize().values


def check_period(da: xr.DataArray, start: Any, end: Any, freq: str = "MS", dim: str = "time",
                 variable: str | None = None) -> xr.DataArray:
    """Check that ``da`` has every ``freq`` step from ``start`` to ``end`` (inclusive).

    ``start``/``end``: a year (``2001`` → Jan 1 / Dec 31), ``"YYYY-MM"`` or a
    date. ``freq``: ``"MS"`` monthly, ``"YS"`` yearly, ``"D"`` daily,
    ``"8D"``/``"16D"`` MODIS composites (restarting on Jan 1). Monthly and
    yearly steps are matched by month/year, so mid-month stamps count.
    Returns ``da`` restricted to the period; raises
    :class:`InsufficientDataError` naming the variable, the period and the
    first missing dates when a step is absent.
    """
    name = _name(da, variable)
    idx = _times(da, dim, name)
    t0, t1 = _parse_bound(start, False), _parse_bound(end, True)
    if t1 < t0:
        raise InvalidArgumentError(f"check_period: end {end!r} is before start {start!r}")
    expected = _expected_steps(t0, t1, freq)
    have = _keys(idx, freq)
    want = _keys(expected, freq)
    missing_mask = ~np.isin(want, have)
    label = {"MS": "monthly", "YS": "yearly", "D": "daily"}.get(freq, f"{freq} composites")
    if missing_mask.any():
        miss = expected[missing_mask]
        fmt = {"MS": "%Y-%m", "YS": "%Y"}.get(freq, "%Y-%m-%d")
        shown = ", ".join(miss.strftime(fmt)[:6]) + (" ..." if len(miss) > 6 else "")
        cover = (f"the data cover {idx.min():{fmt}} to {idx.max():{fmt}}" if len(idx)
                 else "the data have no time steps")
        raise InsufficientDataError(
            f"variable '{name}': the period {t0:%Y-%m-%d} to {t1:%Y-%m-%d} ({label}) is not "
            f"covered: {int(missing_mask.sum())} of {len(expected)} steps missing ({shown}); "
            f"{cover}. Fix: supply the missing data or shorten the study period")
    keep = np.isin(have, want)
    return da.isel({dim: np.flatnonzero(keep)})
