"""CLM5 / CTSM history files (h0 monthly, or daily/annual streams).

:func:`read_clm_history` reads the carbon, climate and soil fields of CLM
history files and returns them as a Dataset in carbonsink's canonical names
and units:

==========  =================  ==================  ==================================
CLM name    units in file      carbonsink name     returned as
==========  =================  ==================  ==================================
NPP         gC/m^2/s           ``npp``             g C m-2 month-1 (per-period total)
GPP         gC/m^2/s           ``gpp``             g C m-2 month-1
HR          gC/m^2/s           ``rh``              g C m-2 month-1
NEP         gC/m^2/s           ``nep``             g C m-2 month-1 (positive = sink)
NEE         gC/m^2/s           ``nee``             g C m-2 month-1 (positive = source)
TSA         K                  ``tas``             degC
TSOI        K                  ``tsoi``            degC (with its ``levgrnd`` dimension)
RAIN+SNOW   mm/s               ``pr``              mm month-1
FSDS        W/m^2              ``sol``             MJ m-2 month-1
H2OSOI      mm3/mm3            ``h2osoi``          m3 m-3 (with ``levsoi``/``levgrnd``)
==========  =================  ==================  ==================================

Each variable keeps its CLM name in the attribute ``clm_name``.

Time
----
CLM stamps an averaged record at the END of its interval (the January mean of
1979 is stamped 1979-02-01 00:00) and writes the interval in ``time_bounds``
(``time_bnds`` in some versions). The readers take each period from the
bounds, in the file's calendar (``noleap`` is CLM's default), stamp it at its
START (monthly records: the first of the month, ``datetime64``) and turn the
rates into per-period totals with the TRUE length of each period from the
bounds: January = rate × 31 × 86400 s, February of a ``noleap`` calendar
28 days. The native calendar is kept in ``carbonsink_native_calendar``.
Files without bounds are read with the CLM convention (stamp = end of the
period) and a warning. Annual (``yr-1``) and daily (``d-1``) streams work
the same way.

Sign of NEE and NEP
-------------------
CLM's ``NEP`` is net ecosystem production, positive for a sink (uptake);
``NEE`` is net ecosystem exchange, positive for a source (release to the
atmosphere). So NEP = −NEE: when a file has no ``NEP`` but has ``NEE``,
``nep`` is computed as −NEE (``carbonsink_derivation = "nep = -NEE"``).
When ``nep`` is asked for explicitly and neither is present, it is computed as
NPP − HR (they agree with CLM's NEP when fire, land-use and harvest fluxes are
zero; carbonsink docs/methods.md §4.1).

Grids
-----
Gridded output (``lat``, ``lon`` dimensions) becomes ``(time, y, x)`` with
longitudes converted from 0..360 to −180..180 and sorted. 1-D output (a
``lndgrid`` or ``gridcell`` dimension with per-column ``lat(lndgrid)``/
``lon(lndgrid)`` or ``grid1d_lat``/``grid1d_lon``) is mapped onto a regular
lat/lon grid: the grid given by ``grid=``, or else the regular grid the
column coordinates lie on (north-up); cells without a column are NaN.
EPSG:4326 is written with rioxarray.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError, InvalidArgumentError, UnknownVariableError
from ._common import ChunksLike, PathLike, attach_crs, chunk_sizes, expand_paths
from .cmip import (Periods, _Target, concat_time, convert, latlon_dims, open_raw,
                   period_table, to_yx)

__all__ = ["read_clm_history", "CLM_VARIABLES"]

_NC_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf")
_CARBON = dict(kind="flux", rate_units="g C m-2 s-1", total_units="g C m-2")


@dataclass(frozen=True)
class _ClmVar:
    sources: tuple[str, ...]  # CLM history names, summed
    target: _Target


#: carbonsink name -> CLM history field(s) and conversion
CLM_VARIABLES: dict[str, _ClmVar] = {
    "npp": _ClmVar(("NPP",), _Target("npp", unit_variable="npp", **_CARBON)),
    "gpp": _ClmVar(("GPP",), _Target("gpp", unit_variable="gpp", **_CARBON)),
    "rh": _ClmVar(("HR",), _Target("rh", unit_variable="rh", **_CARBON)),
    "nep": _ClmVar(("NEP",), _Target("nep", unit_variable="nep", **_CARBON)),
    "nee": _ClmVar(("NEE",), _Target("nee", unit_variable="nep", **_CARBON)),
    "tas": _ClmVar(("TSA",), _Target("tas", "state", state_units="degC", unit_variable="tas")),
    "tsoi": _ClmVar(("TSOI",), _Target("tsoi", "state", state_units="degC",
                                       unit_variable="tas")),
    "pr": _ClmVar(("RAIN", "SNOW"), _Target("pr", "flux", rate_units="mm s-1",
                                            total_units="mm", unit_variable="pr")),
    "sol": _ClmVar(("FSDS",), _Target("sol", "flux", rate_units="MJ m-2 s-1",
                                      total_units="MJ m-2", unit_variable="sol")),
    "h2osoi": _ClmVar(("H2OSOI",), _Target("h2osoi", "state", state_units="m3 m-3")),
}

_NEP_FROM_NEE = _Target("nep", unit_variable="nep", sign=-1.0, **_CARBON)
_COLUMN_DIMS = ("lndgrid", "gridcell")


# --------------------------------------------------------------------------- names


def _valid_names() -> list[str]:
    names = set(CLM_VARIABLES)
    for v in CLM_VARIABLES.values():
        if len(v.sources) == 1:
            names.add(v.sources[0])
    names.add("RAIN+SNOW")
    return sorted(names)


def _canonical_name(name: str) -> str:
    if name in CLM_VARIABLES:
        return name
    if name.lower() in CLM_VARIABLES:
        return name.lower()
    up = name.upper().replace(" ", "")
    for key, v in CLM_VARIABLES.items():
        if up in v.sources and len(v.sources) == 1 or up == "+".join(v.sources):
            return key
    raise UnknownVariableError("CLM history variable", name, _valid_names())


def _wanted(variables: str | Sequence[str] | None) -> list[str] | None:
    if variables is None:
        return None
    if isinstance(variables, str):
        variables = [variables]
    elif not isinstance(variables, Sequence) or not all(isinstance(v, str) for v in variables):
        raise InvalidArgumentError(f"variables must be None, a name or a list of names, got "
                                   f"{variables!r}")
    if not variables:
        raise InvalidArgumentError(f"variables is empty; give None (all) or names from "
                                   f"{', '.join(_valid_names())}")
    out: list[str] = []
    for v in variables:
        key = _canonical_name(v)
        if key not in out:
            out.append(key)
    return out


def _plan(ds: xr.Dataset, wanted: list[str] | None, source: str) -> dict[str, tuple]:
    """carbonsink name -> (how, clm names, target); ``how`` 'read', 'neg' or 'diff'."""
    have = {str(n) for n in ds.data_vars}
    plan: dict[str, tuple] = {}
    keys = wanted if wanted is not None else list(CLM_VARIABLES)
    for key in keys:
        spec = CLM_VARIABLES[key]
        if all(s in have for s in spec.sources):
            plan[key] = ("read", spec.sources, spec.target)
            continue
        if key == "nep" and "NEE" in have:
            plan[key] = ("neg", ("NEE",), _NEP_FROM_NEE)
            continue
        if key == "nep" and wanted is not None and {"NPP", "HR"} <= have:
            plan[key] = ("diff", ("NPP", "HR"), CLM_VARIABLES["nep"].target)
            continue
        if wanted is not None:
            missing = [s for s in spec.sources if s not in have]
            alt = " (or NEE, or NPP and HR)" if key == "nep" else ""
            fields = sorted(h for h in have if ds[h].ndim >= 2 and "time" in ds[h].dims)
            raise InputError(f"CLM history file {source} has no {'+'.join(missing)}{alt} for "
                             f"{key!r}; its time-varying fields are {fields[:40]}"
                             f"{' ...' if len(fields) > 40 else ''}; fix: add "
                             f"{', '.join(missing)} to hist_fincl1 in user_nl_clm, or read "
                             "another history stream")
    if not plan:
        raise InputError(f"CLM history file {source} holds none of the fields carbonsink reads "
                         f"({', '.join(_valid_names())}); fix: check that it is a CLM/CTSM "
                         "land history file (h0 ...) or pass variables=")
    return plan


# --------------------------------------------------------------------------- 1-D output


def _column_coords(ds: xr.Dataset, dim: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    for la, lo in (("lat", "lon"), ("grid1d_lat", "grid1d_lon")):
        if la in ds.variables and lo in ds.variables and ds[la].dims == (dim,) and \
                ds[lo].dims == (dim,):
            return (np.asarray(ds[la].values, dtype="float64"),
                    np.asarray(ds[lo].values, dtype="float64"))
    raise InputError(f"CLM history file {source} has 1-D output on {dim!r} but no per-column "
                     f"coordinates lat({dim})/lon({dim}) or grid1d_lat/grid1d_lon; fix: read "
                     "gridded output (hist_dov2xy = .true.) or add the column coordinates")


def _axis_from_values(vals: np.ndarray, what: str, source: str) -> np.ndarray:
    u = np.unique(np.round(vals, 6))
    if u.size == 1:
        return u
    res = float(np.min(np.diff(u)))
    k = (u - u[0]) / res
    if not np.allclose(k, np.round(k), atol=1e-3):
        raise InputError(f"CLM history file {source}: the column {what}s are not on a regular "
                         f"grid (spacings {sorted(set(np.round(np.diff(u), 4)))[:5]} ...); "
                         "fix: pass grid= (a GridSpec or (lat, lon) cell centres) or regrid "
                         "the output first (e.g. ncremap)")
    n = int(round((u[-1] - u[0]) / res)) + 1
    return u[0] + res * np.arange(n)


def _grid_axes(grid: Any) -> tuple[np.ndarray, np.ndarray]:
    # a GridSpec (duck-typed: io must not import cube) has ``is_geographic`` and
    # cell-centre ``y``/``x`` arrays
    if (hasattr(grid, "is_geographic") and hasattr(grid, "y") and hasattr(grid, "x")
            and not isinstance(grid, (xr.DataArray, xr.Dataset))):
        if not grid.is_geographic:
            raise InvalidArgumentError(f"grid must be a geographic (lat/lon) grid for CLM "
                                       f"output, got {grid!r}")
        return np.asarray(grid.y, dtype="float64"), np.asarray(grid.x, dtype="float64")
    if isinstance(grid, (xr.DataArray, xr.Dataset)):
        for ya, xa in (("y", "x"), ("lat", "lon"), ("latitude", "longitude")):
            if ya in grid.coords and xa in grid.coords:
                return (np.asarray(grid[ya].values, dtype="float64"),
                        np.asarray(grid[xa].values, dtype="float64"))
        raise InvalidArgumentError("grid (an xarray object) needs y/x or lat/lon coordinates")
    if isinstance(grid, Mapping):
        lat = grid.get("lat", grid.get("y"))
        lon = grid.get("lon", grid.get("x"))
        if lat is not None and lon is not None:
            return np.asarray(lat, dtype="float64"), np.asarray(lon, dtype="float64")
    if isinstance(grid, (tuple, list)) and len(grid) == 2:
        return np.asarray(grid[0], dtype="float64"), np.asarray(grid[1], dtype="float64")
    raise InvalidArgumentError(f"grid must be a GridSpec, an xarray object with y/x (lat/lon) "
                               f"coordinates, a mapping {{'lat': ..., 'lon': ...}} or a "
                               f"(lat, lon) pair of cell-centre arrays; got {type(grid).__name__}")


def _nearest(axis: np.ndarray, vals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest axis value and whether it is within half a cell."""
    order = np.argsort(axis)
    s = axis[order]
    pos = np.clip(np.searchsorted(s, vals), 1, max(len(s) - 1, 1)) if len(s) > 1 else \
        np.zeros(len(vals), dtype=int)
    if len(s) > 1:
        left, right = s[pos - 1], s[pos]
        pos = np.where(np.abs(vals - left) <= np.abs(vals - right), pos - 1, pos)
        half = 0.5 * float(np.min(np.diff(s))) * (1 + 1e-6)
    else:
        half = 1e-6
    ok = np.abs(s[pos] - vals) <= half
    return order[pos], ok


def _column_layout(lat: np.ndarray, lon: np.ndarray, grid: Any,
                   source: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(y values, x values, flat cell index per column) of the target grid."""
    lon = ((lon + 180.0) % 360.0) - 180.0
    if grid is None:
        y = _axis_from_values(lat, "latitude", source)[::-1]  # north-up
        x = _axis_from_values(lon, "longitude", source)
    else:
        y, x = _grid_axes(grid)
        x = ((x + 180.0) % 360.0) - 180.0
        x = np.sort(x)
    iy, oky = _nearest(y, lat)
    ix, okx = _nearest(x, lon)
    bad = np.flatnonzero(~(oky & okx))
    if bad.size:
        i = int(bad[0])
        raise InputError(f"CLM history file {source}: {bad.size} column(s) lie outside the "
                         f"grid (e.g. column {i} at lat {lat[i]:g}, lon {lon[i]:g}); fix: give a "
                         "grid= that covers every column")
    flat = iy * len(x) + ix
    if len(np.unique(flat)) != len(flat):
        raise InputError(f"CLM history file {source}: several columns fall into one grid cell "
                         "(the grid is coarser than the output); fix: give a finer grid= or "
                         "regrid the output conservatively first (e.g. ncremap)")
    return y, x, flat


def _map_columns(da: xr.DataArray, dim: str, y: np.ndarray, x: np.ndarray,
                 flat: np.ndarray) -> xr.DataArray:
    cell = np.full(len(y) * len(x), -1, dtype="int64")
    cell[flat] = np.arange(len(flat))
    cell = cell.reshape(len(y), len(x))
    take = xr.DataArray(np.where(cell >= 0, cell, 0), dims=("y", "x"))
    valid = xr.DataArray(cell >= 0, dims=("y", "x"))
    if da.chunks is not None:
        da = da.chunk({dim: -1})
    out = da.isel({dim: take}).where(valid)
    out = out.drop_vars([c for c in out.coords if c not in out.dims], errors="ignore")
    return out.assign_coords(
        y=("y", y, {"standard_name": "latitude", "long_name": "latitude",
                    "units": "degrees_north", "axis": "Y"}),
        x=("x", x, {"standard_name": "longitude", "long_name": "longitude",
                    "units": "degrees_east", "axis": "X"}))


# --------------------------------------------------------------------------- one file


def _spatial(da: xr.DataArray, ds: xr.Dataset, grid: Any, source: str,
             chunks: ChunksLike) -> xr.DataArray:
    lat, lon = latlon_dims(da)
    if lat is not None and lon is not None:
        if grid is not None:
            raise InvalidArgumentError(f"grid= applies to 1-D (lndgrid) CLM output; {source} "
                                       "is gridded; regrid it with carbonsink.cube.regrid "
                                       "instead")
        da = to_yx(da, ds, lat, lon, source)
        if chunks is not None:
            da = _chunk(da, chunks)
        return da
    cols = [d for d in da.dims if d in _COLUMN_DIMS]
    if not cols:
        raise InputError(f"CLM history file {source}: field {da.name!r} has dims {da.dims}; "
                         "carbonsink reads gridded (lat, lon) or 1-D (lndgrid / gridcell) "
                         "output; column/PFT-level output (hist_dov2xy = .false. on column or "
                         "pft) is not supported; fix: write gridcell averages")
    dim = cols[0]
    clat, clon = _column_coords(ds, dim, source)
    y, x, flat = _column_layout(clat, clon, grid, source)
    if chunks is not None:
        da = da.chunk({d: -1 for d in da.dims})
    out = _map_columns(da, dim, y, x, flat)
    if chunks is not None:
        out = _chunk(out, chunks)
    return out


def _chunk(da: xr.DataArray, chunks: ChunksLike) -> xr.DataArray:
    sizes = chunk_sizes(da.shape, [str(d) for d in da.dims], chunks,
                        da.dtype if da.dtype.kind == "f" else "float32")
    return da.chunk(sizes)


def _field(ds: xr.Dataset, name: str, periods: Periods, grid: Any, source: str,
           chunks: ChunksLike) -> xr.DataArray:
    da = ds[name]
    if "time" not in da.dims:
        raise InputError(f"CLM history file {source}: field {name!r} has no time dimension "
                         f"(dims {da.dims}); fix: read a history stream, not a constant field")
    da = da.assign_coords(time=("time", periods.stamps,
                                {"standard_name": "time", "axis": "T",
                                 "long_name": "time (start of period)"}))
    da = _spatial(da, ds, grid, source, chunks)
    lead = [d for d in da.dims if d not in ("time", "y", "x")]
    return da.transpose(*lead, "time", "y", "x")


def _read_one(path: Path, wanted: list[str] | None, grid: Any,
              chunks: ChunksLike) -> dict[str, xr.DataArray]:
    source = str(path)
    ds = open_raw(path, "CLM history")
    plan = _plan(ds, wanted, source)
    periods = period_table(ds, source, convention="end")
    out: dict[str, xr.DataArray] = {}
    for key, (how, names, target) in plan.items():
        fields = [_field(ds, n, periods, grid, source, chunks) for n in names]
        units = [normalise(f.attrs.get("units")) for f in fields]
        if len(set(units)) > 1:
            raise InputError(f"CLM history file {source}: {' and '.join(names)} have different "
                             f"units {units}; carbonsink combines them for {key!r}; fix: give "
                             "them one unit")
        raw = fields[0]
        if how == "read" and len(fields) > 1:
            for f in fields[1:]:
                raw = raw + f
        elif how == "diff":
            raw = fields[0] - fields[1]
        raw.attrs = dict(fields[0].attrs)
        da = convert(raw, target, periods, source=source, src_name="+".join(names))
        da.attrs["clm_name"] = {"read": "+".join(names), "neg": "NEE",
                                "diff": "NPP-HR"}[how]
        clm_long = fields[0].attrs.get("long_name")
        if clm_long and how == "read" and len(names) == 1:
            da.attrs["clm_long_name"] = str(clm_long)
        if how == "neg":
            da.attrs["carbonsink_derivation"] = "nep = -NEE (CLM NEE is positive for a source)"
        elif how == "diff":
            da.attrs["carbonsink_derivation"] = ("nep = NPP - HR (equals CLM NEP when fire, "
                                                 "land-use and harvest fluxes are zero)")
        elif key == "nee":
            da.attrs["long_name"] = "net ecosystem exchange (positive = release to atmosphere)"
            da.attrs.pop("standard_name", None)
        elif key in ("tsoi", "h2osoi"):
            da.attrs["long_name"] = str(clm_long or key)
        da.name = key
        out[key] = da
    return out


def normalise(units: Any) -> str:
    from .cmip import normalise_units

    return normalise_units(units) if units is not None else ""


# --------------------------------------------------------------------------- reader


def read_clm_history(paths: PathLike | Iterable[PathLike],
                     variables: str | Sequence[str] | None = None, *, grid: Any = None,
                     chunks: ChunksLike = None) -> xr.Dataset:
    """Read CLM5/CTSM history files as canonical per-period totals on a period-start axis.

    Parameters
    ----------
    paths
        A history file, a glob (``"case.clm2.h0.*.nc"``), a directory or a
        list; several files are concatenated along time and sorted (they must
        not overlap and must share grid, units and calendar).
    variables
        carbonsink names (``npp``, ``gpp``, ``rh``, ``nep``, ``nee``, ``tas``,
        ``tsoi``, ``pr``, ``sol``, ``h2osoi``) or CLM names (``NPP``, ``HR``,
        ``TSA``, ``FSDS`` ...); ``None`` reads every one the files hold (and
        ``nep`` from −NEE when there is no ``NEP``).
    grid
        For 1-D (``lndgrid``) output only: the regular lat/lon grid to map the
        columns onto (a geographic :class:`~carbonsink.cube.GridSpec`, an
        xarray object with y/x coordinates, or ``(lat, lon)`` cell centres).
        By default the regular grid the columns lie on.
    chunks
        ``None`` (default): numpy; ``"auto"``, an int or a mapping: dask,
        chunked over space with time whole.

    Returns
    -------
    xarray.Dataset
        Variables named as above with dims ``(time, y, x)`` (soil fields
        ``(levgrnd, time, y, x)``), ``time`` = period start (datetime64),
        EPSG:4326; fluxes as totals per period computed with each period's
        true length from ``time_bounds`` (``g C m-2 month-1``,
        ``mm month-1``, ``MJ m-2 month-1``; ``yr-1`` / ``d-1`` for annual /
        daily streams); attributes ``clm_name``, ``units_in_file``,
        ``carbonsink_native_calendar``, ``carbonsink_period``.

    Raises
    ------
    UnknownVariableError
        A name in ``variables`` is not one carbonsink reads (lists the valid ones).
    InputError
        Unreadable files, fields missing from a file, bad time axes or units,
        columns off the grid, overlapping files.
    InvalidArgumentError
        Bad ``variables``, ``grid`` or ``chunks`` arguments.
    """
    if chunks is not None and not isinstance(chunks, (str, int, Mapping)) or \
            (isinstance(chunks, str) and chunks != "auto"):
        raise InvalidArgumentError(f"chunks must be None, 'auto', an int or a mapping, got "
                                   f"{chunks!r}")
    wanted = _wanted(variables)
    files = expand_paths(paths, name="paths", suffixes=_NC_SUFFIXES)
    per_file = []
    for p in files:
        got = _read_one(p, wanted, grid, chunks)
        if per_file and set(got) != set(per_file[0]):
            raise InputError(f"CLM history file {p} gives {sorted(got)}, {files[0]} gives "
                             f"{sorted(per_file[0])}; fix: pass variables= with the fields "
                             "every file holds, or use files of one history stream")
        per_file.append(got)
        if wanted is None:
            wanted = list(got)
    out: dict[str, xr.DataArray] = {}
    for key in per_file[0]:
        da = concat_time([f[key] for f in per_file], files, "CLM history")
        if not da.indexes["time"].is_monotonic_increasing:
            da = da.sortby("time")
        if chunks is not None:
            da = da.chunk({"time": -1})
        out[key] = attach_crs(da, "EPSG:4326")
    ds0 = open_raw(files[0], "CLM history")
    attrs = {k: v for k, v in ds0.attrs.items()
             if isinstance(v, (str, int, float, np.integer, np.floating))}
    ds0.close()
    result = xr.Dataset(out, attrs=attrs)
    result = result.rio.write_crs("EPSG:4326", grid_mapping_name="spatial_ref")
    result.attrs["carbonsink_source"] = ", ".join(str(p) for p in files)
    for v in result.data_vars.values():
        v.attrs["carbonsink_source"] = result.attrs["carbonsink_source"]
    return result
