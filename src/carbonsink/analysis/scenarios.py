"""Future scenarios by anomaly forcing and their period summaries (seed paper 002;
carbonsink docs/methods.md §9).

CTSM/CESM "anomaly forcing" superimposes monthly anomalies of a coupled (CMIP) simulation,
relative to a present-day baseline, on a **repeating cycle of the observed present-day
forcing**: additive for states (temperature), multiplicative for fluxes (precipitation,
shortwave radiation). For scenario year y and calendar month m (carbonsink docs/methods.md §9.1)::

    clim_B(m) = mean of X_GCM(·, m) over the baseline years B                     (1)
    ΔX(y, m)  = X_GCM(y, m) − clim_B(m)            states   (tas)                 (2)
    r(y, m)   = X_GCM(y, m) / clim_B(m)            fluxes   (pr, sol), clipped to
                [0, 5] and 1 where |clim_B(m)| is near zero                       (3)
    X(y, m)   = X_obs(c(y), m) + ΔX(y, m)   or   X_obs(c(y), m) · r(y, m)          (4)
    c(y)      = base year number (y − y0 + shift) mod L of the L observed years    (5)

optionally with X_GCM smoothed by a running mean over ``smoothing`` years per calendar month
before (2)–(3). Each scenario's forcing becomes an experiment of a study
(:func:`write_scenario_inputs` writes the NetCDF files a study points at), so any NPP × Rh
chain runs unchanged; the registered analysis ``scenarios`` then summarises every
experiment over the near (2025–2050), mid (2051–2075) and long-term (2076–2100) periods
(docs/methods.md §9.2): mean annual NEP, OLS trend with p, range of the annual regional means and
the sink-area share, plus period mean and trend maps and the multi-scenario NEP series
(002 Fig. 9 analogue).

References: ESCOMP/CTSM users guide "Running with anomaly forcing"; ESCOMP/CDEPS
``datm_datamode_clmncep_mod.F90``; seed paper 002 §2.3, §3.3, Fig. 9–11.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import InputError, InsufficientDataError, InvalidArgumentError
from ..regions import regional_mean
from ..stats import ols_trend
from .base import Analysis, AnalysisResult, CubeProduct, register_analysis, tidy

__all__ = ["make_anomaly_forcing", "gcm_anomalies", "cycle_base", "period_summary", "anomaly_table",
           "join_historical", "write_scenario_inputs", "Scenarios", "DEFAULT_HOW",
           "DEFAULT_PERIODS"]

#: application of each variable (CTSM anomaly forcing: states additive, fluxes multiplicative)
DEFAULT_HOW = {"tas": "additive", "pr": "multiplicative", "sol": "multiplicative"}
#: 002's periods (carbonsink docs/methods.md §9.2)
DEFAULT_PERIODS = {"near": (2025, 2050), "mid": (2051, 2075), "long": (2076, 2100),
                   "full": (2025, 2100)}
_HOWS = ("additive", "multiplicative")


# --------------------------------------------------------------------------- helpers


def _years_months(da: xr.DataArray, dim: str = "time") -> tuple[np.ndarray, np.ndarray]:
    t = da[dim]
    return np.asarray(t.dt.year.values, dtype=int), np.asarray(t.dt.month.values, dtype=int)


def _period(p: Any, what: str) -> tuple[int, int]:
    try:
        a, b = (int(v) for v in p)
    except (TypeError, ValueError):
        raise InvalidArgumentError(f"{what} must be (first year, last year), got {p!r}") from None
    if a > b:
        raise InvalidArgumentError(f"{what}: first year {a} is after last year {b}")
    return a, b


def _step(da: xr.DataArray, dim: str) -> str:
    """'month' or 'year' from the spacing of the time stamps."""
    years, months = _years_months(da, dim)
    if da.sizes[dim] > 1 and np.all(np.diff(years) >= 1) and len(np.unique(years)) == da.sizes[dim]:
        return "year"
    return "month"


def _smooth(gcm: xr.DataArray, window: int, step: str, dim: str) -> xr.DataArray:
    """Centred running mean over ``window`` years per calendar month (edges: shorter window)."""
    if step == "year":
        return gcm.rolling({dim: window}, center=True, min_periods=1).mean()
    _, months = _years_months(gcm, dim)
    parts = [gcm.isel({dim: np.flatnonzero(months == m)})
             .rolling({dim: window}, center=True, min_periods=1).mean() for m in range(1, 13)
             if np.any(months == m)]
    return xr.concat(parts, dim).sortby(dim)


def gcm_anomalies(gcm: xr.DataArray, *, baseline_period: Sequence[int],
                  scenario_years: Sequence[int], how: str = "additive",
                  smoothing: int | None = None, ratio_max: float = 5.0,
                  near_zero: float = 1e-3, dim: str = "time") -> xr.DataArray:
    """Anomalies (2) or ratios (3) of a GCM series for each scenario year and month.

    Parameters
    ----------
    gcm : xarray.DataArray
        Monthly (or annual) GCM series with a ``time`` axis of period starts (as read by
        :func:`carbonsink.io.read_cmip`); any other dims (y, x, model ...) are kept.
    baseline_period : (int, int)
        First and last year of the baseline climatology (1).
    scenario_years : (int, int)
        First and last scenario year; the GCM must cover them.
    how : {"additive", "multiplicative"}
        Eq. (2) (states) or Eq. (3) (fluxes).
    smoothing : int, optional
        Running-mean window [years] applied per calendar month before (2)/(3).
    ratio_max : float
        Upper clip of the ratios (lower clip 0).
    near_zero : float
        A baseline with ``|clim_B(m)| <= near_zero · max_m |clim_B(m)|`` gives ratio 1.

    Returns
    -------
    xarray.DataArray
        Dims ``(time, ...)`` with one step per scenario month (monthly GCM) or year (annual
        GCM); units of ``gcm`` (additive) or ``"1"``; attributes record the baseline,
        smoothing, clipping and the number of clipped / near-zero ratios.
    """
    if how not in _HOWS:
        raise InvalidArgumentError(f"how={how!r} is not valid; use one of {_HOWS}")
    if dim not in gcm.dims:
        raise InputError(f"the GCM series '{gcm.name}' has no '{dim}' dimension")
    b0, b1 = _period(baseline_period, "baseline_period")
    s0, s1 = _period(scenario_years, "scenario_years")
    step = _step(gcm, dim)
    years, months = _years_months(gcm, dim)
    if smoothing is not None:
        if int(smoothing) < 1:
            raise InvalidArgumentError(f"smoothing must be a window of >= 1 years, got "
                                       f"{smoothing}")
        gcm = _smooth(gcm, int(smoothing), step, dim)
        years, months = _years_months(gcm, dim)
    inb = (years >= b0) & (years <= b1)
    missing_b = sorted(set(range(b0, b1 + 1)) - set(years[inb].tolist()))
    if missing_b:
        raise InsufficientDataError(f"the GCM series '{gcm.name}' does not cover the baseline "
                                    f"years {missing_b[:5]}...; choose a baseline inside "
                                    f"{years.min()}–{years.max()}")
    ins = (years >= s0) & (years <= s1)
    missing_s = sorted(set(range(s0, s1 + 1)) - set(years[ins].tolist()))
    if missing_s:
        raise InsufficientDataError(f"the GCM series '{gcm.name}' does not cover the scenario "
                                    f"years {missing_s[:5]}... (it covers "
                                    f"{years.min()}–{years.max()}); join the historical run "
                                    "(join_historical) or shorten scenario_years")
    base = gcm.isel({dim: np.flatnonzero(inb)})
    sc = gcm.isel({dim: np.flatnonzero(ins)})
    if step == "month":
        clim = base.groupby(f"{dim}.month").mean(dim)
        if clim.sizes["month"] != 12:
            raise InsufficientDataError("the baseline period does not contain all 12 months")
        ref = clim.sel(month=xr.DataArray(months[ins], dims=(dim,))).drop_vars("month")
        ref = ref.assign_coords({dim: sc[dim]})
        scale = np.abs(clim).max("month")
    else:
        ref = base.mean(dim)
        scale = np.abs(ref)
    attrs = {"carbonsink_anomaly": how, "baseline_period": f"{b0}-{b1}",
             "scenario_years": f"{s0}-{s1}", "smoothing_years": int(smoothing or 0),
             "gcm_time_step": step, "long_name": f"{gcm.name} anomaly ({how})"}
    if how == "additive":
        out = sc - ref
        attrs["units"] = gcm.attrs.get("units", "")
    else:
        small = np.abs(ref) <= near_zero * scale
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = sc / ref.where(~small)
        clipped = (ratio < 0) | (ratio > ratio_max)
        out = xr.where(small, 1.0, ratio.clip(0.0, ratio_max)).where(sc.notnull())
        attrs.update({"units": "1", "ratio_clip": f"[0, {ratio_max}]",
                      "near_zero_baseline": f"|clim| <= {near_zero} x max monthly |clim| -> 1"})
        if not hasattr(out.data, "dask"):
            attrs["n_clipped"] = int(clipped.sum())
            attrs["n_near_zero"] = int((small & sc.notnull()).sum())
    out = out.transpose(*sc.dims)
    out.attrs = attrs
    out.name = gcm.name
    return out


def _on_grid(anom: xr.DataArray, base: xr.DataArray) -> xr.DataArray:
    """Nearest GCM cell for every study cell (both in the same CRS, lat/lon for CMIP)."""
    if "y" in anom.dims and "x" in anom.dims and "y" in base.dims and "x" in base.dims:
        out = anom.sel(y=base["y"].values, x=base["x"].values, method="nearest")
        return out.assign_coords(y=base["y"].values, x=base["x"].values)
    return anom


def _is_flux(units: str) -> bool:
    return "month-1" in str(units)


def make_anomaly_forcing(gcm: xr.DataArray, base: xr.DataArray, *,
                         baseline_period: Sequence[int], scenario_years: Sequence[int],
                         how: str | Mapping[str, str] | None = None,
                         smoothing: int | None = None, ratio_max: float = 5.0,
                         near_zero: float = 1e-3, cycle_start: int | None = None,
                         variable: str | None = None, dim: str = "time") -> xr.DataArray:
    """Scenario forcing: the observed base climate cycled over the scenario years with the
    GCM's anomalies (Eq. 1–5 of the module docstring).

    Parameters
    ----------
    gcm : xarray.DataArray
        GCM series of the variable (monthly or annual; gridded or a regional/global series).
    base : xarray.DataArray
        Observed monthly base climate of the study, ``(time, y, x)`` with units.
    baseline_period, scenario_years : (int, int)
        See :func:`gcm_anomalies`; the baseline should match the base years.
    how : str or mapping, optional
        ``"additive"`` / ``"multiplicative"``, or a mapping variable → how (default
        :data:`DEFAULT_HOW`: tas additive, pr and sol multiplicative).
    smoothing : int, optional
        Running-mean window [years] per calendar month.
    ratio_max, near_zero : float
        Ratio clipping (see :func:`gcm_anomalies`).
    cycle_start : int, optional
        Base year used for the first scenario year (default: the first base year); later
        years follow cyclically (Eq. 5).
    variable : str, optional
        Variable name (default ``base.name``) to look ``how`` up.

    Returns
    -------
    xarray.DataArray
        Monthly forcing on the scenario years (``time`` = month starts), dims and units of
        ``base``; flux totals (units ``month-1``) are rescaled by the ratio of the month
        lengths when a cycled February changes length. Lazy for dask ``base``. Attributes
        record the baseline, smoothing, clipping and the cycle.
    """
    name = variable or str(base.name)
    if how is None or isinstance(how, Mapping):
        table = dict(DEFAULT_HOW, **(how or {}))
        if name not in table:
            raise InvalidArgumentError(f"no anomaly rule for variable '{name}'; pass how= "
                                       f"('additive' or 'multiplicative'); known: "
                                       f"{sorted(table)}")
        how = table[name]
    if how not in _HOWS:
        raise InvalidArgumentError(f"how={how!r} is not valid; use one of {_HOWS}")
    if dim not in base.dims:
        raise InputError(f"the base climate '{name}' needs a '{dim}' axis of month starts")
    g = gcm
    if how == "additive" and "units" in gcm.attrs and "units" in base.attrs and \
            gcm.attrs["units"] != base.attrs["units"]:
        from ..units import to_units
        g = to_units(gcm, base.attrs["units"], variable=name)
    anom = gcm_anomalies(g, baseline_period=baseline_period, scenario_years=scenario_years,
                         how=how, smoothing=smoothing, ratio_max=ratio_max,
                         near_zero=near_zero, dim=dim)
    anom = _on_grid(anom, base)
    s0, s1 = _period(scenario_years, "scenario_years")
    target = pd.date_range(f"{s0}-01-01", f"{s1}-12-01", freq="MS")
    byears, bmonths = _years_months(base, dim)
    cyc_years = np.unique(byears)
    if any(np.sum((byears == y)) != 12 for y in cyc_years):
        raise InputError(f"the base climate '{name}' must hold whole calendar years of months")
    first = cyc_years[0] if cycle_start is None else int(cycle_start)
    if first not in cyc_years:
        raise InvalidArgumentError(f"cycle_start {first} is not a base year "
                                   f"({cyc_years[0]}–{cyc_years[-1]})")
    shift = int(np.flatnonzero(cyc_years == first)[0])
    pos = {(int(y), int(m)): i for i, (y, m) in enumerate(zip(byears, bmonths))}
    src_year = cyc_years[(target.year.values - s0 + shift) % len(cyc_years)]
    idx = np.array([pos[(int(y), int(m))] for y, m in zip(src_year, target.month.values)])
    cyc = base.isel({dim: idx}).assign_coords({dim: target})
    ayears, amonths = _years_months(anom, dim)
    if anom.attrs.get("gcm_time_step") == "year":
        apos = {int(y): i for i, y in enumerate(ayears)}
        aidx = np.array([apos[int(y)] for y in target.year.values])
    else:
        apos = {(int(y), int(m)): i for i, (y, m) in enumerate(zip(ayears, amonths))}
        aidx = np.array([apos[(int(y), int(m))] for y, m in zip(target.year.values,
                                                                 target.month.values)])
    a = anom.isel({dim: aidx}).assign_coords({dim: target})
    if how == "additive":
        out = cyc + a
    else:
        out = cyc * a
        if _is_flux(base.attrs.get("units", "")):
            src_days = pd.DatetimeIndex(base[dim].values[idx]).days_in_month.values
            fac = target.days_in_month.values / src_days
            if np.any(fac != 1.0):
                out = out * xr.DataArray(fac, dims=(dim,), coords={dim: target})
    out = out.transpose(*base.dims)
    if "spatial_ref" in base.coords:
        out = out.assign_coords(spatial_ref=base["spatial_ref"])
    attrs = dict(base.attrs)
    attrs.update({"carbonsink_scenario_forcing": how,
                  "baseline_period": anom.attrs["baseline_period"],
                  "smoothing_years": anom.attrs["smoothing_years"],
                  "cycle": f"base years {cyc_years[0]}-{cyc_years[-1]} cycled from {first}",
                  "gcm_time_step": anom.attrs["gcm_time_step"]})
    for k in ("ratio_clip", "near_zero_baseline", "n_clipped", "n_near_zero"):
        if k in anom.attrs:
            attrs[k] = anom.attrs[k]
    out.attrs = attrs
    out.name = base.name
    return out


def cycle_base(base: xr.DataArray, scenario_years: Sequence[int], *,
               cycle_start: int | None = None, dim: str = "time") -> xr.DataArray:
    """The base series cycled over the scenario years without anomalies (Eq. 5), for inputs
    that no GCM changes (NDVI, a given NPP product ...); monthly or annual ``base``."""
    s0, s1 = _period(scenario_years, "scenario_years")
    byears, bmonths = _years_months(base, dim)
    cyc_years = np.unique(byears)
    annual = len(cyc_years) == base.sizes[dim]
    first = cyc_years[0] if cycle_start is None else int(cycle_start)
    shift = int(np.flatnonzero(cyc_years == first)[0]) if first in cyc_years else 0
    target = pd.date_range(f"{s0}-01-01", f"{s1}-12-01", freq="YS" if annual else "MS")
    pos = {(int(y), int(m)): i for i, (y, m) in enumerate(zip(byears, bmonths))}
    src_year = cyc_years[(target.year.values - s0 + shift) % len(cyc_years)]
    idx = np.array([pos[(int(y), int(1 if annual else m))]
                    for y, m in zip(src_year, target.month.values)])
    out = base.isel({dim: idx}).assign_coords({dim: target})
    if not annual and _is_flux(base.attrs.get("units", "")):
        src_days = pd.DatetimeIndex(base[dim].values[idx]).days_in_month.values
        fac = target.days_in_month.values / src_days
        if np.any(fac != 1.0):
            out = out * xr.DataArray(fac, dims=(dim,), coords={dim: target})
    out.attrs = dict(base.attrs, cycle=f"base years {cyc_years[0]}-{cyc_years[-1]} cycled "
                                       f"from {first}")
    out.name = base.name
    return out


def join_historical(da: xr.DataArray, scenario: str, *, historical: str = "historical",
                    dim: str = "scen") -> xr.DataArray:
    """One continuous series: the historical run, continued by ``scenario`` where the
    historical run ends (CMIP files with a scenario dimension, e.g. the xclim global means)."""
    if dim not in da.dims:
        raise InputError(f"'{da.name}' has no scenario dimension '{dim}'")
    for s in (scenario, historical):
        if s not in da[dim].values:
            raise InvalidArgumentError(f"scenario '{s}' is not in {list(da[dim].values)}")
    out = da.sel({dim: historical}, drop=True).combine_first(da.sel({dim: scenario}, drop=True))
    out.attrs = dict(da.attrs, scenario=scenario)
    return out


def anomaly_table(gcm: xr.DataArray, *, baseline_period: Sequence[int],
                  scenario_years: Sequence[int], how: str,
                  periods: Mapping[str, Sequence[int]] | None = None,
                  smoothing: int | None = None, scenario: str = "", dim: str = "time"
                  ) -> pd.DataFrame:
    """Mean anomaly (additive) or ratio (multiplicative) per period of a GCM series (tidy:
    columns scenario, period, start, end, variable, statistic, units, value; other dims of
    the series, e.g. model, become key columns)."""
    anom = gcm_anomalies(gcm, baseline_period=baseline_period, scenario_years=scenario_years,
                         how=how, smoothing=smoothing, dim=dim)
    years, _ = _years_months(anom, dim)
    s0, s1 = _period(scenario_years, "scenario_years")
    rows = []
    for pname, (a, b) in _clip_periods(periods or DEFAULT_PERIODS, s0, s1).items():
        sel = anom.isel({dim: np.flatnonzero((years >= a) & (years <= b))})
        m = sel.mean(dim).compute()
        df = m.to_dataframe(name="value").reset_index() if m.ndim else \
            pd.DataFrame({"value": [float(m)]})
        df = df.drop(columns=[c for c in df.columns if c in ("spatial_ref",)], errors="ignore")
        df["period"], df["start"], df["end"] = pname, a, b
        rows.append(df)
    out = pd.concat(rows, ignore_index=True)
    out["scenario"] = scenario
    out["variable"] = str(gcm.name)
    out["statistic"] = "mean_anomaly" if how == "additive" else "mean_ratio"
    out["units"] = anom.attrs["units"] if how == "additive" else "1"
    keys = ["scenario", "period", "start", "end"] + [c for c in out.columns if c not in (
        "scenario", "period", "start", "end", "variable", "statistic", "units", "value")]
    return out[keys + ["variable", "statistic", "units", "value"]]


def _clip_periods(periods: Mapping[str, Sequence[int]], first: int, last: int
                  ) -> dict[str, tuple[int, int]]:
    """Periods cut to [first, last]; periods outside are dropped."""
    out = {}
    for name, p in periods.items():
        a, b = _period(p, f"period '{name}'")
        a, b = max(a, first), min(b, last)
        if a <= b:
            out[name] = (a, b)
    return out


# --------------------------------------------------------------------------- period summaries


def period_summary(series: xr.DataArray, periods: Mapping[str, Sequence[int]] | None = None,
                   *, dim: str = "time") -> pd.DataFrame:
    """Mean, OLS trend (slope, p) and range of an annual series per period (docs/methods.md §9.2).

    ``series``: annual values (one per year, ``time`` = 1 January), e.g. the area-weighted
    regional NEP [g C m-2 yr-1]. Periods default to :data:`DEFAULT_PERIODS`, cut to the
    years present; a period with fewer than 3 years gets no trend. Returns a tidy frame with
    columns period, start, end, variable, statistic (mean, ols_slope, ols_p, min, max,
    n_years), units, value.
    """
    s = series.compute() if hasattr(series.data, "dask") else series
    years = np.asarray(s[dim].dt.year.values, dtype=int)
    units = s.attrs.get("units", "")
    slope_units = units.replace("yr-1", "yr-2") if units.endswith("yr-1") else f"{units} yr-1"
    rows = []
    for pname, (a, b) in _clip_periods(periods or DEFAULT_PERIODS, years.min(),
                                       years.max()).items():
        sub = s.isel({dim: np.flatnonzero((years >= a) & (years <= b))})
        vals = sub.values.astype(float)
        ok = np.isfinite(vals)
        stats = {"mean": (float(np.mean(vals[ok])) if ok.any() else np.nan, units),
                 "min": (float(np.min(vals[ok])) if ok.any() else np.nan, units),
                 "max": (float(np.max(vals[ok])) if ok.any() else np.nan, units),
                 "n_years": (float(ok.sum()), "1")}
        if ok.sum() >= 3:
            tr = ols_trend(sub, dim, min_valid=3).compute()
            stats["ols_slope"] = (float(tr["slope"]), slope_units)
            stats["ols_p"] = (float(tr["p"]), "1")
        for stat, (v, u) in stats.items():
            rows.append({"period": pname, "start": a, "end": b,
                         "variable": str(series.name), "statistic": stat, "units": u,
                         "value": v})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- study inputs


def write_scenario_inputs(gcm: Mapping[str, Mapping[str, xr.DataArray | str | Path]],
                          base: Mapping[str, xr.DataArray | str | Path], out_dir: str | Path,
                          *, baseline_period: Sequence[int], scenario_years: Sequence[int],
                          how: Mapping[str, str] | None = None, smoothing: int | None = None,
                          ratio_max: float = 5.0, cycle_start: int | None = None,
                          control: str | None = "control") -> dict[str, Any]:
    """Write the NetCDF inputs of a scenario study.

    Parameters
    ----------
    gcm : mapping scenario → {variable: DataArray or CMOR file}
        The GCM series per scenario (files are read with :func:`carbonsink.io.read_cmip`).
    base : mapping role → DataArray or file
        The study's observed inputs (``tas``, ``pr``, ``sol`` and any other role with a time
        axis, e.g. ``npp`` or ``ndvi``; files read with :func:`carbonsink.io.read_input`).
        Roles a GCM changes get the anomaly forcing; the others are cycled unchanged.
    out_dir : path
        Folder; files ``<out_dir>/<control>/<role>.nc`` (cycled base) and
        ``<out_dir>/<scenario>/<role>.nc`` (anomaly-forced roles) are written.
    baseline_period, scenario_years, how, smoothing, ratio_max, cycle_start
        See :func:`make_anomaly_forcing`.
    control : str or None
        Name of the folder of the cycled base inputs (no anomalies).

    Returns
    -------
    dict
        ``{"period": {"start", "end"}, "inputs": {role: {"path": ...}}, "experiments":
        {scenario: {"inputs": {role: {"path": ...}}}}}`` — paths as strings, ready to put in
        a study file (``inputs`` the cycled base, one experiment per scenario).
    """
    from ..io import read_cmip, read_input, write_netcdf

    out_dir = Path(out_dir)
    s0, s1 = _period(scenario_years, "scenario_years")

    def load_base(v):
        return read_input(v) if isinstance(v, (str, Path)) else v

    def load_gcm(v, name):
        return read_cmip(v, name) if isinstance(v, (str, Path)) else v

    base_da = {role: load_base(v) for role, v in base.items()}
    for role, da in base_da.items():
        if not isinstance(da, xr.DataArray) or "time" not in da.dims:
            raise InputError(f"base input '{role}' must be a series with a time axis")
    result: dict[str, Any] = {"period": {"start": f"{s0}-01", "end": f"{s1}-12"},
                              "inputs": {}, "experiments": {}}
    folder = out_dir / (control or "control")
    folder.mkdir(parents=True, exist_ok=True)
    for role, da in base_da.items():
        p = folder / f"{role}.nc"
        write_netcdf(cycle_base(da, (s0, s1), cycle_start=cycle_start).rename(role), p,
                     attrs={"carbonsink_scenario": "control (cycled base, no anomalies)"})
        result["inputs"][role] = {"path": str(p)}
    for scen, variables in gcm.items():
        folder = out_dir / scen
        folder.mkdir(parents=True, exist_ok=True)
        exp_inputs = {}
        for var, src in variables.items():
            if var not in base_da:
                raise InputError(f"scenario '{scen}': the GCM variable '{var}' has no base "
                                 f"input of that role (base roles: {sorted(base_da)})")
            g = load_gcm(src, var)
            f = make_anomaly_forcing(g, base_da[var], baseline_period=baseline_period,
                                     scenario_years=(s0, s1), how=how, smoothing=smoothing,
                                     ratio_max=ratio_max, cycle_start=cycle_start,
                                     variable=var)
            p = folder / f"{var}.nc"
            write_netcdf(f.rename(var), p, attrs={"carbonsink_scenario": scen})
            exp_inputs[var] = {"path": str(p)}
        result["experiments"][scen] = {"description": f"scenario {scen} (anomaly forcing)",
                                       "inputs": exp_inputs}
    return result


# --------------------------------------------------------------------------- the analysis


def _sink_share(mean_map: xr.DataArray, area: xr.DataArray) -> float:
    valid = mean_map.notnull()
    w = area.where(valid)
    tot = float(w.sum())
    return float(w.where(mean_map > 0).sum()) / tot * 100.0 if tot > 0 else np.nan


def _trend_figure(series: pd.DataFrame, combo: str, variable: str, units: str,
                  synthetic: bool):
    from ..report.figures import new_figure

    fig, ax = new_figure((7.5, 4))
    for i, (exp, grp) in enumerate(series.groupby("experiment", sort=False)):
        grp = grp.sort_values("year")
        x, y = grp["year"].to_numpy(float), grp["value"].to_numpy(float)
        line, = ax.plot(x, y, lw=1.3, label=exp)
        ok = np.isfinite(y)
        if ok.sum() >= 3:
            b, a = np.polyfit(x[ok], y[ok], 1)
            ax.plot(x, a + b * x, ls="--", lw=1.0, color=line.get_color(),
                    label=f"{exp} trend {b:+.2f} {units.replace('yr-1', 'yr-2')}")
    ax.axhline(0, color="0.6", lw=0.8)
    ax.set_xlabel("year")
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel(f"{variable.upper()} [{units}]")
    ax.set_title(f"{combo}: regional annual {variable.upper()} per scenario", fontsize=10)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    if synthetic:
        from ..report.figures import _synthetic
        _synthetic(ax)
    return fig


def _maps_figure(maps: dict[tuple[str, str], xr.DataArray], combo: str, variable: str,
                 units: str, synthetic: bool):
    import matplotlib.pyplot as plt

    exps = list(dict.fromkeys(e for e, _ in maps))
    pers = list(dict.fromkeys(p for _, p in maps))
    vals = np.concatenate([np.asarray(m.values, float).ravel() for m in maps.values()])
    lim = float(np.nanmax(np.abs(vals))) if np.isfinite(vals).any() else 1.0
    fig, axes = plt.subplots(len(exps), len(pers), figsize=(2.6 * len(pers) + 1,
                                                           2.3 * len(exps) + 0.5),
                             squeeze=False)
    im = None
    for i, e in enumerate(exps):
        for j, p in enumerate(pers):
            ax = axes[i, j]
            m = maps.get((e, p))
            if m is not None:
                im = ax.imshow(np.asarray(m.values, float), cmap="RdBu", vmin=-lim, vmax=lim)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{e} {p}", fontsize=8)
    if im is not None:
        fig.colorbar(im, ax=axes, shrink=0.8, label=f"mean {variable.upper()} [{units}]")
    fig.suptitle(f"{combo}: period mean annual {variable.upper()}"
                 + (" (synthetic data)" if synthetic else ""), fontsize=10)
    return fig


@register_analysis
class Scenarios(Analysis):
    name = "scenarios"
    title = "Future scenarios: NEP per scenario and period"
    description = ("Every experiment as a scenario (anomaly-forced climate, "
                   "carbonsink docs/methods.md §9): the regional annual NEP series with its "
                   "OLS trend per scenario (002 Fig. 9), "
                   "mean, trend, range and sink-area share per period (near, mid, long, "
                   "full), period mean and trend maps.")
    requires = ("annual", "area", "experiments")
    order = 70

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variable: str = Field("nep", description="flux variable summarised")
        periods: dict[str, tuple[int, int]] = Field(
            default_factory=lambda: dict(DEFAULT_PERIODS),
            description="period name -> (first year, last year), cut to the study years")
        scenarios: list[str] | None = Field(
            None, description="experiments that are scenarios (default: all)")
        maps: bool = Field(True, description="write period mean and trend maps")

        @field_validator("periods")
        @classmethod
        def _ordered(cls, v):
            for k, (a, b) in v.items():
                if a > b:
                    raise ValueError(f"period '{k}': {a} is after {b}")
            return v

    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        sec = res.section(self)
        v = options.variable
        wanted = options.scenarios or list(ctx.experiments)
        unknown = sorted(set(wanted) - set(ctx.experiments))
        if unknown:
            raise InvalidArgumentError(f"scenarios: experiments {unknown} are not in the study "
                                       f"(experiments: {list(ctx.experiments)})")
        area = ctx.area
        zones = ctx.zones() if callable(getattr(ctx, "zones", None)) else None
        series_rows, units = [], ""
        maps: dict[str, dict[tuple[str, str], xr.DataArray]] = {}
        for exp, combo in ctx.runs():
            if exp not in wanted:
                continue
            annual = ctx.cube("annual", combo, exp)
            if annual is None or v not in annual:
                continue
            da = annual[v].drop_vars("experiment", errors="ignore")
            series = regional_mean(da, area).compute()
            series.name = v
            units = series.attrs.get("units", "")
            years = np.asarray(series["time"].dt.year.values, dtype=int)
            periods = _clip_periods(options.periods, years.min(), years.max())
            tab = period_summary(series, periods)
            share_rows = []
            per_pixel = {}
            for pname, (a, b) in periods.items():
                sub = da.isel(time=np.flatnonzero((years >= a) & (years <= b)))
                mean_map = sub.mean("time")
                share_rows.append({"period": pname, "start": a, "end": b, "variable": v,
                                   "statistic": "sink_area_share", "units": "%",
                                   "value": _sink_share(mean_map.compute(), area)})
                if options.maps:
                    per_pixel[f"{pname}_mean"] = mean_map.assign_attrs(
                        units=da.attrs.get("units", ""),
                        long_name=f"mean annual {v} {a}-{b}")
                    if b - a + 1 >= 3:
                        tr = ols_trend(sub, "time", min_valid=3)
                        per_pixel[f"{pname}_slope"] = tr["slope"]
                        per_pixel[f"{pname}_p"] = tr["p"]
                if zones is not None:
                    try:
                        from ..regions import summarise
                        zt = summarise(mean_map, area, zones=zones, how=("mean",),
                                       units=da.attrs.get("units", ""))
                        zt = zt.assign(period=pname, start=a, end=b, variable=v,
                                       statistic="period_mean")
                        res.add_table(f"{v}_scenario_zones",
                                      tidy(zt, experiment=exp, combination=combo))
                    except (ImportError, TypeError, ValueError, KeyError) as exc:
                        ctx.echo(f"scenarios: per-zone summary skipped ({exc})")
            tab = pd.concat([tab, pd.DataFrame(share_rows)], ignore_index=True)
            res.add_table(f"{v}_scenario_periods", tidy(tab, experiment=exp,
                                                        combination=combo, zone=ctx.zone))
            st = pd.DataFrame({"year": years, "variable": v, "statistic": "regional_mean",
                               "units": units, "value": series.values.astype(float)})
            res.add_table(f"{v}_scenario_series", tidy(st, experiment=exp, combination=combo,
                                                       zone=ctx.zone))
            series_rows.append(st.assign(experiment=exp, combination=combo))
            if options.maps and per_pixel:
                ds = xr.Dataset(per_pixel)
                ds.attrs["periods"] = json.dumps({k: list(p) for k, p in periods.items()})
                written = ctx.store(CubeProduct(f"{v}_scenario_periods", ds, combination=combo,
                                                experiment=exp, maps=tuple(per_pixel),
                                                map_prefix=f"{v}_scenario_"))
                maps.setdefault(combo, {}).update(
                    {(exp, p): written[f"{p}_mean"].compute() for p in periods})
        if not series_rows:
            sec.text("No annual cubes were found for the scenario experiments.")
            return res
        sec.text(f"Each experiment is a scenario: the observed base climate cycled over the "
                 f"scenario years with GCM anomalies (additive for temperature, multiplicative "
                 f"for precipitation and radiation; docs/methods.md §9.1). Per period: mean of the "
                 f"area-weighted annual {v.upper()}, OLS trend with p, range of the annual "
                 f"regional means and the area share with a positive period mean "
                 f"(sink, carbonsink docs/methods.md §9.2).")
        allser = pd.concat(series_rows, ignore_index=True)
        for combo, grp in allser.groupby("combination", sort=False):
            fname = f"{combo}_{v}_scenarios"
            res.add_figure(fname, _trend_figure(grp, combo, v, units, ctx.synthetic))
            sec.figure(fname, f"{combo}: regional annual {v.upper()} per scenario with its OLS "
                              "trend (dashed) — seed 002 Fig. 9 analogue")
        tab = res.tables[f"{v}_scenario_periods"]
        view = tab.pivot_table(index=["experiment", "combination", "period", "start", "end"],
                               columns="statistic", values="value", sort=False)
        view = view[[c for c in ("mean", "ols_slope", "ols_p", "min", "max",
                                 "sink_area_share", "n_years") if c in view.columns]]
        sec.table(view.reset_index(), f"{v}_scenario_periods",
                  caption=f"{v.upper()} per scenario and period (mean, min, max in {units}; "
                          "slope per year; sink-area share in %)")
        for combo, m in maps.items():
            fname = f"{combo}_{v}_scenario_period_maps"
            res.add_figure(fname, _maps_figure(m, combo, v, units, ctx.synthetic))
            sec.figure(fname, f"{combo}: mean annual {v.upper()} per scenario and period")
        return res
