"""CMIP5 / CMIP6 CMOR files: model calendars, period totals, canonical names.

:func:`read_cmip` reads one CMOR variable (from one file or a series of files
split in time, as CMOR writes them) and returns it in carbonsink's canonical
variables and units:

============  ===========================  =================  =====================
CMOR name     table, units in file         carbonsink name    units returned
============  ===========================  =================  =====================
``tas``       Amon, K                      ``tas``            degC
``pr``        Amon, kg m-2 s-1             ``pr``             mm month-1
``rsds``      Amon, W m-2                  ``sol``            MJ m-2 month-1
``npp``       Lmon, kg m-2 s-1 (carbon)    ``npp``            g C m-2 month-1
``gpp``       Lmon, kg m-2 s-1 (carbon)    ``gpp``            g C m-2 month-1
``rh``        Lmon, kg m-2 s-1 (carbon)    ``rh``             g C m-2 month-1
``nep``       Lmon, kg m-2 s-1 (carbon)    ``nep``            g C m-2 month-1
============  ===========================  =================  =====================

Time and calendars
------------------
Files are decoded with :mod:`cftime` in their own calendar (``noleap`` /
``365_day``, ``360_day``, ``gregorian`` / ``standard``, ``proleptic_gregorian``,
``julian``, ``all_leap`` / ``366_day``). Each step's period is taken from
``time_bnds`` *in that calendar*, so a rate (kg m-2 s-1, W m-2) becomes a
per-period total with the model's own period length: a month of a 360-day
calendar lasts 30 days, February of a ``noleap`` calendar always 28. The
totals are computed here, before the time axis leaves the model calendar.

The result is stamped at period start with ``datetime64`` dates: a monthly
step becomes the first of its month, an annual step 1 January. For
``360_day`` calendars model month *k* of year *y* (whatever its day count) is
stamped ``y-k-01``; the values stay the model's 30-day totals, they are not
rescaled to the length of the real month. The native calendar is recorded in
the attribute ``carbonsink_native_calendar`` (and the period in
``carbonsink_period``), so the per-period units (``month-1``) are never
re-derived from Gregorian month lengths downstream.

Without ``time_bnds`` each time stamp is taken to lie inside its period (CMOR
stamps the middle of the period), the period length (day, month or year)
being inferred from the spacing of the stamps; a warning says so.

Grids
-----
``lat``/``lon`` become ``y``/``x``; longitudes 0..360 are converted to
−180..180 and sorted; EPSG:4326 is written with rioxarray. Series without
latitude/longitude (e.g. global means, possibly with extra dimensions such as
``model`` or ``scen``) are returned with their own dimensions and no CRS.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import AlignmentError, InputError, InvalidArgumentError, UnitError, \
    UnknownVariableError
from ..units import VARIABLES, parse_units, to_units
from ._common import ChunksLike, PathLike, attach_crs, chunk_sizes, expand_paths

__all__ = ["read_cmip", "CMIP_VARIABLES"]

_NC_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")


# --------------------------------------------------------------------------- variable specs


@dataclass(frozen=True)
class _Target:
    """How one source variable becomes a carbonsink variable.

    ``kind`` "flux": a rate converted to ``rate_units`` (per second) and
    multiplied by the period length in seconds, giving ``total_units`` with the
    period token appended; "state": converted to ``state_units``.
    """

    name: str
    kind: str
    rate_units: str | None = None
    total_units: str | None = None
    state_units: str | None = None
    sign: float = 1.0
    unit_variable: str | None = None  # variable name for the units registry (water rule)

    def output_units(self, period: str) -> str:
        if self.kind == "state":
            return str(self.state_units)
        return f"{self.total_units} {_PERIOD_TOKEN[period]}"


_PERIOD_TOKEN = {"month": "month-1", "year": "yr-1", "day": "d-1"}

_CARBON = dict(kind="flux", rate_units="g C m-2 s-1", total_units="g C m-2")

#: CMOR variable -> carbonsink variable
CMIP_VARIABLES: dict[str, _Target] = {
    "tas": _Target("tas", "state", state_units="degC", unit_variable="tas"),
    "pr": _Target("pr", "flux", rate_units="mm s-1", total_units="mm", unit_variable="pr"),
    "rsds": _Target("sol", "flux", rate_units="MJ m-2 s-1", total_units="MJ m-2",
                    unit_variable="sol"),
    "npp": _Target("npp", unit_variable="npp", **_CARBON),
    "gpp": _Target("gpp", unit_variable="gpp", **_CARBON),
    "rh": _Target("rh", unit_variable="rh", **_CARBON),
    "nep": _Target("nep", unit_variable="nep", **_CARBON),
}


# --------------------------------------------------------------------------- opening


def open_raw(path: Path, what: str) -> xr.Dataset:
    """Open a NetCDF file lazily with undecoded times (decoded by :func:`period_table`)."""
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*referenced in cell_measures.*")
            return xr.open_dataset(path, decode_times=False, decode_timedelta=False,
                                   decode_coords=False, cache=False, chunks=None)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        raise InputError(f"cannot read {what} file {path}: {exc}; fix: check that it is a "
                         "complete NetCDF file (ncdump -h)") from None


def normalise_units(text: Any) -> str:
    """Unit strings as models write them -> UDUNITS style for the units registry.

    ``"gC/m^2/s"`` -> ``"g C m-2 s-1"``, ``"W/m^2"`` -> ``"W m-2"``,
    ``"mm/s"`` -> ``"mm s-1"``, ``"mm3/mm3"`` -> ``"mm3 mm-3"``; strings
    without ``/`` are returned unchanged.
    """
    s = str(text).strip()
    if "/" not in s:
        return s
    parts = s.split("/")
    out: list[str] = []
    for i, part in enumerate(parts):
        for tok in part.replace("*", " ").split():
            if tok == "1" and i == 0:
                continue
            tok = tok.replace("^", "")
            base = tok.rstrip("0123456789-")
            exp_txt = tok[len(base):]
            exp = int(exp_txt) if exp_txt not in ("", "-") else 1
            if base in ("gC", "kgC", "mgC", "PgC", "TgC"):
                out.append(base[:-1] + (f"{exp}" if exp != 1 else ""))
                out.append("C")
                continue
            if i > 0:
                exp = -exp
            out.append(base + (f"{exp}" if exp != 1 else ""))
    return " ".join(out)


# --------------------------------------------------------------------------- periods


@dataclass
class Periods:
    """The time axis of one file: period starts (datetime64[ns]), lengths [s]."""

    stamps: np.ndarray
    seconds: np.ndarray
    period: str  # "day", "month" or "year"
    calendar: str
    order: np.ndarray  # positions of the file's steps, in the file's order


def _calendar_of(tvar: xr.Variable) -> str:
    return str(tvar.attrs.get("calendar", "standard")).strip().lower() or "standard"


def _num2date(values: np.ndarray, units: str, calendar: str, source: str) -> np.ndarray:
    import cftime

    try:
        return np.asarray(cftime.num2date(np.asarray(values, dtype="float64"), units,
                                          calendar=calendar,
                                          only_use_cftime_datetimes=True), dtype=object)
    except (ValueError, TypeError) as exc:
        raise InputError(f"{source}: cannot decode the time axis (units {units!r}, calendar "
                         f"{calendar!r}): {exc}; fix: give time CF units such as 'days since "
                         "1850-01-01' and a CF calendar") from None


def _bounds_name(ds: xr.Dataset) -> str | None:
    t = ds["time"]
    cands = [t.attrs.get("bounds")] + ["time_bounds", "time_bnds", "time_bnd", "time_bound"]
    for c in cands:
        if c and c in ds.variables and ds[c].ndim == 2 and ds[c].dims[0] == "time" and \
                ds[c].shape[1] == 2:
            return str(c)
    return None


def _infer_bounds(dates: np.ndarray, calendar: str, convention: str,
                  source: str) -> tuple[np.ndarray, np.ndarray]:
    import cftime

    if len(dates) < 2:
        raise InputError(f"{source}: no time bounds (time_bnds) and a single time step, so "
                         "its period is unknown; fix: add time bounds to the file (e.g. cdo "
                         "or nco) or give several steps")
    num = cftime.date2num(list(dates), "days since 1800-01-01", calendar=calendar)
    step = float(np.median(np.diff(np.sort(num))))
    if 0.99 <= step <= 1.01:
        kind = "day"
    elif 27.5 <= step <= 31.5:
        kind = "month"
    elif 359 <= step <= 367:
        kind = "year"
    else:
        raise InputError(f"{source}: no time bounds and time steps {step:g} days apart; "
                         "carbonsink reads daily, monthly or annual steps; fix: add "
                         "time_bnds or aggregate in time first (cdo monmean / yearmean)")
    lower, upper = [], []
    eps = 1.0 / 86400.0  # one second, in days
    for d, n in zip(dates, num):
        if convention == "end":  # stamp = end of period (CLM): step back into the period
            d = cftime.num2date(n - eps, "days since 1800-01-01", calendar=calendar,
                                only_use_cftime_datetimes=True)
        y, m, dd = d.year, d.month, d.day
        if kind == "day":
            lo = cftime.datetime(y, m, dd, calendar=calendar)
            hi = lo + _timedelta(days=1)
        elif kind == "month":
            lo = cftime.datetime(y, m, 1, calendar=calendar)
            hi = cftime.datetime(y + (m == 12), m % 12 + 1, 1, calendar=calendar)
        else:
            lo = cftime.datetime(y, 1, 1, calendar=calendar)
            hi = cftime.datetime(y + 1, 1, 1, calendar=calendar)
        lower.append(lo)
        upper.append(hi)
    warnings.warn(f"{source}: no time bounds; took each time stamp as "
                  f"{'the end of' if convention == 'end' else 'lying inside'} its {kind} "
                  f"(calendar {calendar}); add time_bnds to the file to make this explicit",
                  UserWarning, stacklevel=4)
    return np.asarray(lower, dtype=object), np.asarray(upper, dtype=object)


def _timedelta(**kw: float):
    import datetime

    return datetime.timedelta(**kw)


def _datetime64(y: int, m: int, d: int, source: str, calendar: str) -> np.datetime64:
    if not 1678 <= y <= 2261:
        raise InputError(f"{source}: model year {y} (calendar {calendar}) cannot be held as a "
                         "date (datetime64[ns] spans 1678-2261); fix: shift the time axis to "
                         "real years first (e.g. cdo shifttime or setreftime)")
    return np.datetime64(f"{y:04d}-{m:02d}-{d:02d}", "ns")


def period_table(ds: xr.Dataset, source: str, *, convention: str = "mid") -> Periods:
    """Decode ``time`` and its bounds in the file's calendar.

    ``convention`` says where a stamp lies in its period when the file has no
    bounds ("mid": inside it, as CMOR writes; "end": at its end, as CLM writes).
    Monthly periods are stamped at the first of the month holding the middle of
    the period, annual ones at 1 January, daily ones at their start.
    """
    if "time" not in ds.variables:
        raise InputError(f"{source}: no 'time' variable; fix: give the file a CF time "
                         "coordinate with units such as 'days since 1850-01-01'")
    t = ds["time"]
    units = t.attrs.get("units")
    if not units or "since" not in str(units):
        raise InputError(f"{source}: time has units {units!r}, not CF '<unit> since <date>'; "
                         "fix: give time CF units such as 'days since 1850-01-01'")
    calendar = _calendar_of(t)
    bname = _bounds_name(ds)
    if bname is not None:
        b = np.asarray(ds[bname].values, dtype="float64")
        bunits = ds[bname].attrs.get("units", units)
        bcal = str(ds[bname].attrs.get("calendar", calendar)).lower()
        lower = _num2date(b[:, 0], bunits, bcal, source)
        upper = _num2date(b[:, 1], bunits, bcal, source)
    else:
        dates = _num2date(np.atleast_1d(t.values), str(units), calendar, source)
        lower, upper = _infer_bounds(dates, calendar, convention, source)
    seconds = np.array([(hi - lo).total_seconds() for lo, hi in zip(lower, upper)],
                       dtype="float64")
    bad = np.flatnonzero(~(seconds > 0))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"{source}: time step {i} has the bounds {lower[i]} .. {upper[i]} "
                         f"({bname or 'inferred'}), a period of {seconds[i] / 86400:g} days; "
                         "periods must have a positive length; fix: drop instantaneous or "
                         "initial records (e.g. ncks -d time,1,) or repair the bounds")
    days = seconds / 86400.0
    whole = np.allclose(days, np.round(days), atol=1e-6)
    rd = np.round(days).astype(int)
    if whole and np.all(rd == 1):
        period = "day"
    elif whole and np.all((rd >= 28) & (rd <= 31)):
        period = "month"
    elif whole and np.all((rd >= 360) & (rd <= 366)):
        period = "year"
    else:
        found = sorted(set(np.round(days, 3).tolist()))[:6]
        raise InputError(f"{source}: time periods of {found} days (from "
                         f"{bname or 'the time stamps'}); carbonsink reads daily, monthly or "
                         "annual output with one period length kind per file; fix: aggregate "
                         "in time first (e.g. cdo monmean / yearmean)")
    stamps = np.empty(len(seconds), dtype="datetime64[ns]")
    for i, (lo, hi) in enumerate(zip(lower, upper)):
        if period == "day":
            if calendar in ("360_day",) and lo.day > 28 and lo.month == 2:
                raise InputError(f"{source}: daily 360-day dates such as {lo} do not exist in "
                                 "the standard calendar; fix: aggregate to months first "
                                 "(cdo monmean)")
            stamps[i] = _datetime64(lo.year, lo.month, lo.day, source, calendar)
            continue
        mid = lo + (hi - lo) / 2
        if period == "month":
            stamps[i] = _datetime64(mid.year, mid.month, 1, source, calendar)
        else:
            stamps[i] = _datetime64(mid.year, 1, 1, source, calendar)
    if len(np.unique(stamps)) != len(stamps):
        raise InputError(f"{source}: several time steps fall into one {period}; fix: remove "
                         "the duplicated steps")
    return Periods(stamps, seconds, period, calendar, np.arange(len(seconds)))


# --------------------------------------------------------------------------- conversion


def convert(da: xr.DataArray, target: _Target, periods: Periods, *, source: str,
            src_name: str, units: str | None = None) -> xr.DataArray:
    """Convert ``da`` (time already holding ``periods.stamps``) to ``target``."""
    found_raw = units if units is not None else da.attrs.get("units")
    if found_raw is None or str(found_raw).strip() == "":
        want = target.rate_units if target.kind == "flux" else target.state_units
        raise InputError(f"{source}: variable {src_name!r} has no units attribute; expected "
                         f"units such as {want!r} (or a per-period total); fix: pass units= "
                         "(e.g. units='kg m-2 s-1') or add the attribute (ncatted)")
    found = normalise_units(found_raw)
    name = target.unit_variable or target.name
    out_units = target.output_units(periods.period)
    try:
        parsed = parse_units(found)
    except ValueError as exc:
        raise InputError(f"{source}: variable {src_name!r} has units {found_raw!r} that "
                         f"carbonsink cannot read ({exc}); fix: pass units= with UDUNITS "
                         "units such as 'kg m-2 s-1'") from None
    try:
        if target.kind == "state":
            a = float(to_units(np.float64(1.0), out_units, variable=name, found=found)) - \
                float(to_units(np.float64(0.0), out_units, variable=name, found=found))
            b = float(to_units(np.float64(0.0), out_units, variable=name, found=found))
            secs = None
        elif parsed.period is not None:
            # already a per-period total: it must be per the file's own period
            if parsed.period != periods.period:
                raise InputError(f"{source}: variable {src_name!r} is in {found_raw!r} "
                                 f"(per {parsed.period}) but the file's steps are "
                                 f"{periods.period}s; fix: pass the right units=")
            a = float(to_units(np.float64(1.0), out_units, variable=name, found=found))
            b, secs = 0.0, None
        else:
            a = float(to_units(np.float64(1.0), str(target.rate_units), variable=name,
                               found=found))
            b = 0.0
            secs = periods.seconds
    except UnitError as exc:
        raise InputError(f"{source}: variable {src_name!r} has units {found_raw!r}, which "
                         f"cannot become {out_units!r} ({exc}); fix: pass the file's true "
                         "units as units=") from None
    a *= target.sign
    attrs = dict(da.attrs)
    dtype = da.dtype if da.dtype.kind == "f" else np.dtype("float64")
    out = da
    if secs is not None:
        out = out * xr.DataArray(secs * a, dims="time")
    elif a != 1.0:
        out = out * a
    if b != 0.0:
        out = out + b
    out = out.astype(dtype)
    attrs["units_in_file"] = str(found_raw)
    attrs["units"] = out_units
    var = VARIABLES.get(target.name)
    if var is not None:
        attrs["long_name"] = var.long_name
        if var.standard_name:
            attrs["standard_name"] = var.standard_name
        elif attrs.get("standard_name") and target.sign < 0:
            attrs.pop("standard_name")
    attrs["cell_methods"] = "time: sum" if target.kind == "flux" else "time: mean"
    attrs["carbonsink_native_calendar"] = periods.calendar
    attrs["carbonsink_period"] = periods.period
    for k in ("_FillValue", "missing_value", "scale_factor", "add_offset", "cell_measures",
              "associated_files", "coordinates", "grid_mapping"):
        attrs.pop(k, None)
    out.attrs = attrs
    out.name = target.name
    return out


# --------------------------------------------------------------------------- grids


_LAT = ("lat", "latitude", "nav_lat")
_LON = ("lon", "longitude", "nav_lon")


def latlon_dims(da: xr.DataArray) -> tuple[str | None, str | None]:
    lat = next((d for d in da.dims if str(d).lower() in _LAT), None)
    lon = next((d for d in da.dims if str(d).lower() in _LON), None)
    return lat, lon


def to_yx(da: xr.DataArray, ds: xr.Dataset, lat: str, lon: str, source: str) -> xr.DataArray:
    """Rename lat/lon dims to y/x, longitudes to -180..180 (sorted), lat monotonic."""
    for d in (lat, lon):
        if d not in ds.variables:
            raise InputError(f"{source}: dimension {d!r} has no coordinate values; fix: add "
                             "the lat/lon coordinate variables")
    lon_vals = np.asarray(ds[lon].values, dtype="float64")
    lat_vals = np.asarray(ds[lat].values, dtype="float64")
    x = ((lon_vals + 180.0) % 360.0) - 180.0
    # keep +180 where the file says 180 (it is the same meridian as -180)
    da = da.drop_vars([c for c in da.coords if c not in da.dims or c in (lat, lon)],
                      errors="ignore")
    da = da.rename({lat: "y", lon: "x"})
    da = da.assign_coords(
        y=("y", lat_vals, {"standard_name": "latitude", "long_name": "latitude",
                           "units": "degrees_north", "axis": "Y"}),
        x=("x", x, {"standard_name": "longitude", "long_name": "longitude",
                    "units": "degrees_east", "axis": "X"}))
    if not da.indexes["x"].is_monotonic_increasing:
        da = da.sortby("x")
    if not (da.indexes["y"].is_monotonic_increasing or da.indexes["y"].is_monotonic_decreasing):
        da = da.sortby("y")
    for d in ("y", "x"):
        if not da.indexes[d].is_unique:
            raise InputError(f"{source}: duplicate {'latitudes' if d == 'y' else 'longitudes'} "
                             "(after converting longitudes to -180..180); fix: drop the "
                             "repeated column (e.g. a cyclic 360-degree point)")
    return da


def rechunk(da: xr.DataArray, chunks: ChunksLike) -> xr.DataArray:
    if chunks is None:
        return da
    sizes = chunk_sizes(da.shape, [str(d) for d in da.dims], chunks,
                        da.dtype if da.dtype.kind == "f" else "float32")
    return da.chunk(sizes)


def concat_time(parts: Sequence[xr.DataArray], paths: Sequence[Path],
                what: str) -> xr.DataArray:
    """Concatenate per-file results along time, sorted, refusing overlaps and grid changes."""
    if len(parts) == 1:
        return parts[0]
    ref = parts[0]
    for p, part in zip(paths[1:], parts[1:]):
        for d in ref.dims:
            if d == "time":
                continue
            if d not in part.dims or part.sizes[d] != ref.sizes[d] or (
                    d in ref.coords and d in part.coords and
                    ref[d].dtype.kind in "fiu" and
                    not np.allclose(part[d].values, ref[d].values)):
                raise AlignmentError(f"{what} file {p} is not on the grid of {paths[0]} "
                                     f"(dimension {d} differs); fix: regrid it or remove it")
        if part.attrs.get("units") != ref.attrs.get("units"):
            raise InputError(f"{what} file {p} gives {part.name!r} in "
                             f"{part.attrs.get('units')!r}, {paths[0]} in "
                             f"{ref.attrs.get('units')!r}; fix: use files of one output stream")
        if part.attrs.get("carbonsink_native_calendar") != \
                ref.attrs.get("carbonsink_native_calendar"):
            raise InputError(f"{what} file {p} uses the "
                             f"{part.attrs.get('carbonsink_native_calendar')!r} calendar, "
                             f"{paths[0]} the {ref.attrs.get('carbonsink_native_calendar')!r} "
                             "calendar; fix: combine files of one simulation only")
    attrs = dict(ref.attrs)
    out = xr.concat(list(parts), dim="time", coords="minimal", compat="override",
                    join="override", combine_attrs="override")
    out = out.sortby("time")
    if not out.indexes["time"].is_unique:
        dup = out.indexes["time"][out.indexes["time"].duplicated()][0]
        raise InputError(f"{what} files {[str(p) for p in paths]} overlap in time (two steps "
                         f"stamped {str(dup)[:10]}); fix: remove the overlapping files")
    out.attrs = attrs
    return out


# --------------------------------------------------------------------------- reader


def _resolve_variable(ds: xr.Dataset, variable: str | None, source: str) -> tuple[str, _Target]:
    valid = sorted(set(CMIP_VARIABLES) | {t.name for t in CMIP_VARIABLES.values()})
    if variable is None:
        present = [str(n) for n in ds.data_vars if str(n) in CMIP_VARIABLES]
        if len(present) == 1:
            return present[0], CMIP_VARIABLES[present[0]]
        others = [str(n) for n in ds.data_vars
                  if not str(n).endswith(("_bnds", "_bounds")) and ds[n].ndim >= 1]
        if not present:
            raise InputError(f"{source} holds none of the CMIP variables carbonsink reads "
                             f"({', '.join(CMIP_VARIABLES)}); it holds {others}; fix: rename "
                             "the variable to its CMOR name or pass variable=")
        raise InputError(f"{source} holds several CMIP variables {present}; fix: pass "
                         "variable= (one of them)")
    key = str(variable)
    if key not in CMIP_VARIABLES:
        by_target = [k for k, t in CMIP_VARIABLES.items() if t.name == key]
        if not by_target and key.lower() in CMIP_VARIABLES:
            by_target = [key.lower()]
        if not by_target:
            raise UnknownVariableError("CMIP variable", key, valid)
        key = by_target[0]
    if key not in ds.data_vars:
        lower = [str(n) for n in ds.data_vars if str(n).lower() == key]
        if len(lower) == 1:
            return lower[0], CMIP_VARIABLES[key]
        raise InputError(f"{source} has no variable {key!r} (asked for {variable!r}); it holds "
                         f"{[str(n) for n in ds.data_vars]}; fix: give the file of that "
                         "variable or another variable=")
    return key, CMIP_VARIABLES[key]


def _global_meta(ds: xr.Dataset) -> dict[str, Any]:
    g = ds.attrs
    out: dict[str, Any] = {}
    for key, names in (("cmip_model", ("source_id", "model_id")),
                       ("cmip_experiment", ("experiment_id",)),
                       ("cmip_member", ("variant_label", "parent_experiment_rip")),
                       ("cmip_table", ("table_id",)),
                       ("cmip_project", ("mip_era", "project_id"))):
        for n in names:
            if n in g and str(g[n]).strip():
                out[key] = str(g[n])
                break
    if "variant_label" not in g and "realization" in g and "model_id" in g:
        r, i, p = (g.get(k) for k in ("realization", "initialization_method", "physics_version"))
        if None not in (r, i, p):
            out["cmip_member"] = f"r{int(r)}i{int(i)}p{int(p)}"
    return out


def _read_one(path: Path, variable: str | None, units: str | None,
              chunks: ChunksLike) -> xr.DataArray:
    source = str(path)
    ds = open_raw(path, "CMIP")
    name, target = _resolve_variable(ds, variable, source)
    periods = period_table(ds, source, convention="mid")
    da = ds[name]
    if "time" not in da.dims:
        raise InputError(f"{source}: variable {name!r} has no time dimension (dims {da.dims}); "
                         "fix: give a time series file (fx/static fields are not fluxes)")
    lat, lon = latlon_dims(da)
    two_d = [str(c) for c in ("lat", "lon", "latitude", "longitude")
             if c in ds.variables and ds[c].ndim == 2]
    if (lat is None) != (lon is None) or (lat is None and two_d):
        raise InputError(f"{source}: variable {name!r} has dims {da.dims}"
                         f"{' and 2-D ' + str(two_d) if two_d else ''}; carbonsink needs a "
                         "regular lat/lon grid (or no horizontal dimensions for a global-mean "
                         "series); fix: regrid it first, e.g. cdo remapbil,r360x180")
    da = da.assign_coords(time=("time", periods.stamps,
                                {"standard_name": "time", "axis": "T",
                                 "long_name": "time (start of period)"}))
    scalars = {str(c): ds[c].values.item() for c in str(da.attrs.get("coordinates", "")).split()
               if c in ds.variables and ds[c].ndim == 0}
    if lat is not None:
        da = to_yx(da, ds, lat, lon, source)
        lead = [d for d in da.dims if d not in ("time", "y", "x")]
        da = da.transpose(*lead, "time", "y", "x")
    else:
        da = da.drop_vars([c for c in da.coords if c not in da.dims])
        da = da.transpose("time", ...)
    da = da.sortby("time") if not da.indexes["time"].is_monotonic_increasing else da
    da = rechunk(da, chunks)
    out = convert(da, target, periods, source=source, src_name=name, units=units)
    for k, v in scalars.items():
        if isinstance(v, (int, float, np.integer, np.floating)):
            out.attrs[f"cmip_{k}"] = float(v)
    out.attrs.update(_global_meta(ds))
    out.attrs["cmip_name"] = name
    if units is not None:
        out.attrs["units_given"] = str(units)
    return out


def read_cmip(paths: PathLike | Iterable[PathLike], variable: str | None = None, *,
              chunks: ChunksLike = None, units: str | None = None) -> xr.DataArray:
    """Read a CMIP5/CMIP6 CMOR variable as per-period totals on a period-start time axis.

    Parameters
    ----------
    paths
        A file, a glob, a directory or a list; several files (a CMOR series
        split in time) are concatenated along time and sorted.
    variable
        The CMOR name (``tas``, ``pr``, ``rsds``, ``npp``, ``gpp``, ``rh``,
        ``nep``) or the carbonsink name (``sol`` for ``rsds``); when omitted
        the file must hold exactly one of them.
    chunks
        ``None`` (default): numpy; ``"auto"``, an int or a mapping: dask,
        chunked over space with time whole.
    units
        Overrides the file's ``units`` attribute (kept as ``units_in_file``),
        for files that lack one.

    Returns
    -------
    xarray.DataArray
        Named with the carbonsink name; dims ``(time, y, x)`` with EPSG:4326
        for gridded files, else ``(time, ...)``; fluxes as per-period totals
        computed with the period lengths of the native calendar
        (``g C m-2 month-1``, ``mm month-1``, ``MJ m-2 month-1``; ``yr-1`` for
        annual files), ``tas`` in degC. Attributes record the CMOR name
        (``cmip_name``), the native calendar (``carbonsink_native_calendar``),
        the period, the model/experiment/member and the source files
        (``carbonsink_source``).

    Raises
    ------
    UnknownVariableError
        ``variable`` is not one carbonsink reads (the valid names are listed).
    InputError
        Unreadable files, no/invalid time axis or units, curvilinear grids,
        files that overlap in time or mix calendars.
    InvalidArgumentError
        Bad ``chunks``.
    """
    if variable is not None and not isinstance(variable, str):
        raise InvalidArgumentError(f"variable must be a CMOR name (str) or None, got "
                                   f"{variable!r}")
    if chunks is not None and not isinstance(chunks, (str, int, Mapping)):
        raise InvalidArgumentError(f"chunks must be None, 'auto', an int or a mapping, got "
                                   f"{chunks!r}")
    if isinstance(chunks, str) and chunks != "auto":
        raise InvalidArgumentError(f"chunks must be None, 'auto', an int or a mapping, got "
                                   f"{chunks!r}")
    files = expand_paths(paths, name="paths", suffixes=_NC_SUFFIXES)
    parts = [_read_one(p, variable, units, chunks) for p in files]
    names = {str(p.attrs.get("cmip_name")) for p in parts}
    if len(names) > 1:
        raise InputError(f"files {[str(p) for p in files]} hold different variables "
                         f"{sorted(names)}; fix: pass variable= or one variable's files")
    out = concat_time(parts, files, "CMIP")
    out.attrs["carbonsink_source"] = ", ".join(str(p) for p in files)
    if "y" in out.dims and "x" in out.dims:
        out = attach_crs(out, "EPSG:4326")
    if chunks is not None:
        out = out.chunk({"time": -1})
    out.encoding["source"] = str(files[0])
    return out
