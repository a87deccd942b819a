"""Given flux products as models: NPP, Rh or NEP read from a file, not computed.

Studies that start from a published product (MOD17A3HGF annual NPP in papers
001/003/004, MuSyQ 8-day NPP, CLM5 history Rh/NEP ...) run through the same
chain as computed models: the model ``"given"`` of kind ``npp``, ``rh`` and
``nep`` reads the input role of the same name (``inputs.npp``, ``inputs.rh``,
``inputs.nep`` in a study file), so ``"given+pei"``, ``"modis+given"`` and
``"nep_given"`` are combinations like any other.

The time step is taken from the time coordinate:

* monthly steps → returned monthly [g C m-2 month-1];
* yearly steps → returned annual [g C m-2 yr-1] (NEP is then formed at the
  annual step, the other side aggregated to calendar-year totals);
* 8-day (MODIS-style) composites → calendar months with
  :func:`carbonsink.cube.temporal.composites_to_monthly` (a per-composite
  total such as ``g C m-2`` or a daily rate ``g C m-2 d-1``); the total of a
  year is preserved;
* daily steps → calendar months with :func:`carbonsink.cube.temporal.to_monthly`.

Units are converted to the canonical ones (``kg C m-2 yr-1`` → ``g C m-2 yr-1``,
rates such as ``g C m-2 s-1`` → per-month totals from the calendar).
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError
from ..units import canonical_units, ensure_units, get_variable, parse_units
from .registry import register_model

__all__ = ["given_product", "time_step_of"]


def _index(da: xr.DataArray, name: str) -> pd.DatetimeIndex:
    if "time" not in da.dims:
        raise InputError(f"given {name}: the product has no 'time' dimension (dims {da.dims}); "
                         "a given flux needs a time axis of period-start dates")
    try:
        idx = pd.DatetimeIndex(da["time"].values)
    except (TypeError, ValueError):
        try:
            idx = da.indexes["time"].to_datetimeindex()
        except Exception:
            raise InputError(f"given {name}: the 'time' coordinate must hold dates, found "
                             f"{da['time'].dtype}") from None
    if not idx.is_monotonic_increasing or idx.has_duplicates:
        raise InputError(f"given {name}: time steps must be strictly increasing; sort with "
                         "da.sortby('time')")
    return idx


def _period(units: str | None) -> str | None:
    try:
        return parse_units(units).period
    except ValueError:
        return None


def time_step_of(da: xr.DataArray, name: str = "flux") -> str:
    """``"year"``, ``"month"``, ``"composite"`` (8-day style) or ``"day"`` from the time axis
    (a single step is judged by the per-period token of its units)."""
    idx = _index(da, name)
    units = da.attrs.get("units")
    if len(idx) == 1:
        per = _period(units)
        if per in ("year", "month"):
            return per
        raise InputError(f"given {name}: one time step with units {units!r}; cannot tell the "
                         "time step. Fix: give units per year ('g C m-2 yr-1') or per month")
    days = np.diff(idx.values).astype("timedelta64[s]").astype(np.int64) / 86400.0
    lo, hi = float(days.min()), float(days.max())
    ym = idx.year * 12 + idx.month
    if lo >= 360:
        return "year"
    if lo >= 27.5 and len(np.unique(ym)) == len(idx):
        return "month"
    if lo == 1.0 and hi == 1.0:
        return "day"
    if lo >= 1.0 and hi <= 16.0:
        return "composite"
    raise InputError(f"given {name}: cannot tell the time step (steps of {lo:g} to {hi:g} "
                     "days); expected yearly, monthly, daily or 8-day composite steps")


def given_product(da: xr.DataArray, variable: str, /, *, split: str = "days",
                  period_days: int = 8, min_valid_fraction: float = 1.0) -> xr.DataArray:
    """A given product of canonical ``variable`` (``npp``, ``rh``, ``nep``) in canonical units.

    Monthly input → monthly [g C m-2 month-1]; yearly → annual
    [g C m-2 yr-1]; ``period_days`` composites (8-day MODIS style, DOY 1, 9,
    ...) and daily data → calendar months (``split`` and
    ``min_valid_fraction`` as in
    :func:`carbonsink.cube.temporal.composites_to_monthly`; a year's total is
    preserved).  Time coordinates become period starts.  Attributes say the
    product is given and name its source (attribute ``carbonsink_input`` when
    present) in ``source`` and ``parameters``.
    """
    if not isinstance(da, xr.DataArray):
        raise InputError(f"given {variable}: expected an xarray.DataArray with 'units' and a "
                         f"'time' axis, got {type(da).__name__}")
    from ..cube import temporal

    var = get_variable(variable)
    step = time_step_of(da, variable)
    x = da.copy()
    x.name = var.name
    if step == "composite":
        x = temporal.composites_to_monthly(x, how="sum", split=split, period_days=period_days,
                                           min_valid_fraction=min_valid_fraction,
                                           variable=var.name)
        period = "month"
    elif step == "day":
        x = temporal.to_monthly(x, how="sum", min_valid_fraction=min_valid_fraction,
                                variable=var.name)
        period = "month"
    else:
        period = step
        idx = _index(x, variable)
        starts = (pd.DatetimeIndex(pd.to_datetime({"year": idx.year, "month": 1, "day": 1}))
                  if step == "year" else
                  pd.DatetimeIndex(pd.to_datetime({"year": idx.year, "month": idx.month,
                                                   "day": 1})))
        if not starts.equals(idx):
            x = x.assign_coords(time=starts.values.astype("datetime64[ns]"))
    units = canonical_units(var.name, period)
    x = ensure_units(x, units, var.name)
    source = str(da.attrs.get("carbonsink_input", "in-memory array"))
    params: dict[str, Any] = {"product": "given", "source": source,
                              "time_step_in": "8-day composite" if step == "composite" and
                              period_days == 8 else step,
                              "time_step": period, "units_in": da.attrs.get("units")}
    if step == "composite":
        params.update(split=split, period_days=period_days,
                      min_valid_fraction=min_valid_fraction)
    elif step == "day":
        params.update(min_valid_fraction=min_valid_fraction)
    attrs = {k: v for k, v in x.attrs.items() if k not in ("model", "parameters")}
    attrs.update({
        "units": units,
        "long_name": f"{var.long_name} (given product)",
        "model": "given",
        "given": 1,
        "source": f"given product: {source}",
        "parameters": json.dumps(params, sort_keys=True, default=str),
    })
    if var.standard_name:
        attrs["standard_name"] = var.standard_name
    x.attrs = attrs
    return x


def _given(kind: str):
    def run(inputs, *, needs=None, **options):
        return xr.Dataset({kind: given_product(inputs[kind], kind, **options)})
    run.__name__ = f"_given_{kind}"
    return run


for _kind, _what, _eg in (("npp", "NPP", "MOD17A3HGF annual, MuSyQ 8-day, CLM5"),
                          ("rh", "Rh", "CLM5 history"), ("nep", "NEP", "CLM5 history")):
    register_model(_kind, "given", inputs=(_kind,), functions=(given_product,),
                   description=f"a given {_what} product, input '{_kind}' (monthly, annual, "
                               f"8-day or daily; e.g. {_eg})")(_given(_kind))
