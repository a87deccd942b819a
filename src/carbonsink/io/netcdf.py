"""NetCDF and Zarr readers and writers with CF time and CRS.

Reading
-------
* Files are opened lazily (dask: space chunked, ``time`` whole).
* CF time is decoded; cftime calendars (noleap, 360_day ...) become
  datetime64 where every date exists in the standard calendar, otherwise
  ``frequency="month"``/``"year"`` maps each date to its period start.
* Dimensions ``lat``/``latitude`` become ``y`` and ``lon``/``longitude`` become
  ``x`` (also recognised by CF ``standard_name``/``units``/``axis``);
  coordinates are kept in the file's order but made monotonic.
* CRS from the variable's ``grid_mapping`` (``crs_wkt``, ``spatial_ref`` or
  CF grid-mapping parameters), else EPSG:4326 for lat/lon grids, else
  :class:`AlignmentError` asking for ``crs:`` in the study input.

Writing
-------
CF-1.8 attributes (``Conventions``, ``units``, ``long_name``, ``grid_mapping``
with a ``spatial_ref`` CRS variable, coordinate attributes), provenance
attributes given by the caller, atomic temp + rename.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import rioxarray  # noqa: F401
import xarray as xr
from pyproj import CRS
from pyproj.exceptions import CRSError

from ..errors import AlignmentError, InputError, UnknownVariableError
from ._common import (ChunksLike, PathLike, attach_crs, chunk_sizes, decode_time_values,
                      expand_paths, no_crs_error, parse_crs, serialisable_attrs,
                      standardise_time)
from .atomic import atomic_write

__all__ = ["read_netcdf", "read_zarr", "read_cube", "write_netcdf", "write_zarr",
           "NETCDF_SUFFIXES", "CONVENTIONS"]

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".he5")
CONVENTIONS = "CF-1.8"

_LAT_NAMES = {"lat", "latitude", "lats", "nav_lat", "y_lat"}
_LON_NAMES = {"lon", "longitude", "lons", "long", "nav_lon", "x_lon"}
_TIME_NAMES = {"time", "t", "times", "date", "valid_time"}
_BOUNDS_DIMS = {"bnds", "bounds", "nv", "nb2", "bnd", "d2"}


# --------------------------------------------------------------------------- reading


def _open_dataset(path: Path, engine: str | None) -> xr.Dataset:
    kind = "Zarr store" if engine == "zarr" else "NetCDF file"
    kw: dict[str, Any] = {"chunks": None, "cache": False, "decode_coords": "all",
                          "decode_timedelta": False}
    if engine == "zarr":
        kw["engine"] = "zarr"
    elif engine is not None:
        kw["engine"] = engine
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
            # CMIP files name cell_measures (areacella) kept in other files: harmless here
            warnings.filterwarnings("ignore", message=".*referenced in cell_measures.*")
            return xr.open_dataset(path, **kw)
    except ValueError as exc:
        msg = str(exc)
        if "time" in msg.lower() or "calendar" in msg.lower() or "units" in msg.lower():
            raise InputError(f"cannot decode the time axis of {kind} {path}: {msg}; fix: give "
                             "the time variable CF units such as 'days since 2000-01-01' and a "
                             "CF calendar") from None
        raise InputError(f"cannot read {kind} {path}: {msg}; check that it is a complete "
                         f"{kind} (e.g. with ncdump -h / zarr info)") from None
    except (OSError, RuntimeError, KeyError, FileNotFoundError) as exc:
        raise InputError(f"cannot read {kind} {path}: {exc}; check that it is a complete, "
                         f"uncorrupted {kind}") from None


def _is_aux(ds: xr.Dataset, name: str) -> bool:
    v = ds[name]
    if "grid_mapping_name" in v.attrs or "crs_wkt" in v.attrs or "spatial_ref" in v.attrs:
        return True
    if set(v.dims) & _BOUNDS_DIMS:
        return True
    bounds_of = {ds[c].attrs.get("bounds") for c in ds.variables}
    return name in bounds_of


def _candidates(ds: xr.Dataset) -> list[str]:
    return [str(n) for n in ds.data_vars if ds[n].ndim >= 2 and not _is_aux(ds, n)]


def _select_variable(ds: xr.Dataset, variable: str | None, source: str) -> str:
    names = [str(n) for n in ds.data_vars]
    if variable is None:
        cands = _candidates(ds)
        if len(cands) == 1:
            return cands[0]
        raise InputError(f"{source} holds {len(cands)} gridded variables {cands}; fix: give "
                         "variable: <name> in the study input")
    if variable in names:
        return variable
    lower = [n for n in names if n.lower() == variable.lower()]
    if len(lower) == 1:
        return lower[0]
    try:
        from ..units import get_variable

        var = get_variable(variable)
        wanted = {var.name.lower(), *(a.lower() for a in var.aliases)}
        if var.standard_name:
            by_std = [n for n in names if ds[n].attrs.get("standard_name") == var.standard_name]
        else:
            by_std = []
        hits = sorted({n for n in names if n.lower() in wanted} | set(by_std))
        if len(hits) == 1:
            return hits[0]
    except UnknownVariableError:
        pass
    raise InputError(f"variable {variable!r} not found in {source}; it holds {names}; fix: give "
                     "variable: <one of these> in the study input")


def _coord_role(ds: xr.Dataset, dim: str) -> str | None:
    """'y', 'x', 'time' or None for a dimension of the variable."""
    name = dim.lower()
    attrs = ds[dim].attrs if dim in ds.variables else {}
    std = str(attrs.get("standard_name", "")).lower()
    units = str(attrs.get("units", "")).lower()
    axis = str(attrs.get("axis", "")).upper()
    if name in _LAT_NAMES or std == "latitude" or units in ("degrees_north", "degree_north",
                                                              "degrees_n", "degree_n"):
        return "lat"
    if name in _LON_NAMES or std == "longitude" or units in ("degrees_east", "degree_east",
                                                               "degrees_e", "degree_e"):
        return "lon"
    if name == "y" or std == "projection_y_coordinate" or axis == "Y":
        return "y"
    if name == "x" or std == "projection_x_coordinate" or axis == "X":
        return "x"
    if name in _TIME_NAMES or std == "time" or axis == "T":
        return "time"
    return None


def _grid_mapping_crs(ds: xr.Dataset, da: xr.DataArray, source: str) -> CRS | None:
    gm = da.encoding.get("grid_mapping") or da.attrs.get("grid_mapping")
    names: list[str] = []
    if gm:
        # CF also allows the extended form "crs: x y"
        names.append(str(gm).split()[0].rstrip(":"))
    names += [n for n in ("spatial_ref", "crs", "crs_wkt", "transverse_mercator", "albers")
              if n in ds.variables and n not in names]
    for n in names:
        if n not in ds.variables:
            continue
        attrs = ds[n].attrs
        for key in ("crs_wkt", "spatial_ref"):
            if key in attrs:
                try:
                    return CRS.from_wkt(str(attrs[key]))
                except CRSError:
                    try:
                        return CRS.from_user_input(str(attrs[key]))
                    except CRSError:
                        pass
        if "grid_mapping_name" in attrs:
            try:
                return CRS.from_cf(dict(attrs))
            except CRSError as exc:
                raise InputError(f"{source}: cannot read the grid mapping {n!r} ({exc}); fix: "
                                 "give crs: in the study input") from None
    for key in ("crs_wkt", "spatial_ref", "crs"):
        if isinstance(ds.attrs.get(key), str):
            try:
                return CRS.from_user_input(ds.attrs[key])
            except CRSError:
                pass
    return None


def _standardise(ds: xr.Dataset, name: str, *, source: str, units: str | None, crs: Any,
                 chunks: ChunksLike, frequency: str | None, variable: str | None) -> xr.DataArray:
    da = ds[name]
    roles = {d: _coord_role(ds, str(d)) for d in da.dims}
    rename: dict[str, str] = {}
    lat_lon = False
    for d, role in roles.items():
        if role in ("lat", "y"):
            rename[d] = "y"
        elif role in ("lon", "x"):
            rename[d] = "x"
        elif role == "time":
            rename[d] = "time"
        lat_lon = lat_lon or role in ("lat", "lon")
    if list(rename.values()).count("y") != 1 or list(rename.values()).count("x") != 1:
        two_d = [c for c in da.coords if da[c].ndim == 2 and _coord_role(ds, str(c)) in
                 ("lat", "lon")]
        hint = ("it is on a curvilinear grid (2-D lat/lon); fix: regrid it to a regular grid "
                "first, e.g. cdo remapbil" if two_d else
                "fix: name them lat/lon or y/x, or give them CF standard_name attributes")
        raise InputError(f"variable {name!r} in {source} has dims {da.dims}; carbonsink needs one "
                         f"latitude/y and one longitude/x dimension; {hint}")
    # drop 2-D auxiliary lat/lon coordinates and clashing names before renaming
    clash = [c for c in da.coords if c in rename.values() and c not in rename]
    da = da.drop_vars(clash)
    da = da.rename({k: v for k, v in rename.items() if k != v})
    for d in ("y", "x"):
        if d not in da.coords:
            raise InputError(f"variable {name!r} in {source}: dimension {d} has no coordinate "
                             "values; fix: add lat/lon (or x/y) coordinate variables")
        idx = da.indexes[d]
        if not (idx.is_monotonic_increasing or idx.is_monotonic_decreasing):
            da = da.sortby(d)
        if not da.indexes[d].is_unique:
            raise InputError(f"variable {name!r} in {source}: duplicate {d} coordinates")
    # length-1 extra dimensions (a single level or band) become scalar coordinates
    for d in [d for d in da.dims if d not in ("time", "y", "x") and da.sizes[d] == 1]:
        da = da.squeeze(d)
    # order (..., time, y, x)
    lead = [d for d in da.dims if d not in ("time", "y", "x")]
    da = da.transpose(*lead, *[d for d in ("time", "y", "x") if d in da.dims])
    da = standardise_time(da, frequency=frequency, source=f"{source} variable {name!r}")
    # CRS
    file_crs = _grid_mapping_crs(ds, ds[name], source)
    if crs is not None:
        target = parse_crs(crs, source=source)
    elif file_crs is not None:
        target = file_crs
    elif lat_lon:
        target = CRS.from_epsg(4326)
    else:
        raise no_crs_error(source, name)
    gm = ds[name].encoding.get("grid_mapping")
    if gm and str(gm) in da.coords:
        da = da.drop_vars(str(gm))
    da.encoding.pop("grid_mapping", None)
    da.attrs.pop("grid_mapping", None)
    da = attach_crs(da, target)
    # units, name
    if units is not None:
        if "units" in da.attrs and da.attrs["units"] != units:
            da.attrs["units_in_file"] = da.attrs["units"]
        da.attrs["units"] = units
    da.name = variable if variable is not None else name
    # lazy chunks
    if chunks is not None:
        pref = ds[name].encoding.get("preferred_chunks") or {}
        prev = None
        if pref:
            inv = {v: k for k, v in rename.items()}
            prev = tuple(int(pref.get(inv.get(d, d), da.sizes[d])) for d in da.dims)
            prev = tuple(1 if d == "time" else p for d, p in zip(da.dims, prev))
        sizes = chunk_sizes(da.shape, da.dims, chunks, da.dtype if da.dtype.kind == "f"
                            else "float32", prev)
        da = da.chunk(sizes)
    for k in ("chunks", "preferred_chunks", "chunksizes", "contiguous", "original_shape"):
        da.encoding.pop(k, None)
    return da


_MODEL_CALENDARS = {"360_day", "noleap", "365_day", "all_leap", "366_day", "julian"}


def _model_output_hint(ds: xr.Dataset, da: xr.DataArray, source: str) -> None:
    """Warn when CLM history or model-calendar rate files are read as plain NetCDF.

    CLM stamps the END of each averaging period, and a rate in a model calendar
    (a 30-day month of a 360_day calendar) would later be summed with real month
    lengths: the dedicated readers (``product: clm`` / ``product: cmip``) get both
    right.
    """
    src = str(ds.attrs.get("source", "")) + " " + str(ds.attrs.get("title", ""))
    if "hist_interval" in ds.dims or "Community Land Model" in src or \
            "Community Terrestrial Systems Model" in src:
        warnings.warn(f"{source} looks like a CLM history file: CLM stamps each record at the "
                      "END of its averaging period, so read as plain NetCDF every month is one "
                      "month late; fix: give product: clm (carbonsink.io.read_clm_history)",
                      UserWarning, stacklevel=4)
        return
    units = str(da.attrs.get("units_in_file", da.attrs.get("units", "")))
    calendar = da["time"].attrs.get("original_calendar") if "time" in da.coords else None
    if calendar in _MODEL_CALENDARS and ("s-1" in units or "/s" in units or
                                         units.strip().startswith("W")):
        warnings.warn(f"{source}: {da.name!r} is a rate ({units!r}) in the {calendar!r} "
                      "calendar; converted to per-month totals later it would use real month "
                      "lengths, not the model's; fix: give product: cmip "
                      "(carbonsink.io.read_cmip), which sums in the native calendar",
                      UserWarning, stacklevel=4)


def _read(paths: list[Path], variable: str | None, *, engine: str | None, units: str | None,
          crs: Any, chunks: ChunksLike, frequency: str | None) -> xr.DataArray:
    parts = []
    for p in paths:
        ds = _open_dataset(p, engine)
        name = _select_variable(ds, variable, str(p))
        parts.append(_standardise(ds, name, source=str(p), units=units, crs=crs, chunks=chunks,
                                  frequency=frequency, variable=variable))
        _model_output_hint(ds, parts[-1], str(p))
    if len(parts) == 1:
        return parts[0]
    ref = parts[0]
    for p, part in zip(paths[1:], parts[1:]):
        if "time" not in part.dims:
            raise InputError(f"{p}: several files can only be combined along time, but this one "
                             "has no time dimension")
        for d in ("y", "x"):
            if part.sizes[d] != ref.sizes[d] or not np.allclose(part[d].values, ref[d].values):
                raise AlignmentError(f"file {p} is not on the grid of {paths[0]} ({d} "
                                     "coordinates differ); fix: regrid it or remove it")
        if part.rio.crs != ref.rio.crs:
            raise AlignmentError(f"file {p} has CRS {part.rio.crs}, {paths[0]} has "
                                 f"{ref.rio.crs}; fix: reproject it or remove it")
        if part.attrs.get("units") != ref.attrs.get("units"):
            raise InputError(f"file {p} has units {part.attrs.get('units')!r}, {paths[0]} has "
                             f"{ref.attrs.get('units')!r}; all files of an input need one unit")
    out = xr.concat(parts, dim="time", coords="minimal", compat="override", join="override",
                    combine_attrs="override")
    out = out.sortby("time")
    if not out.indexes["time"].is_unique:
        raise InputError(f"files {[str(p) for p in paths]} overlap in time (duplicate time "
                         "stamps); fix: remove the overlapping files")
    if chunks is not None:
        out = out.chunk({"time": -1})
    return out


def read_netcdf(paths: PathLike | Iterable[PathLike], variable: str | None = None, *,
                units: str | None = None, crs: Any = None, chunks: ChunksLike = "auto",
                frequency: str | None = None, engine: str | None = None) -> xr.DataArray:
    """Read one variable of NetCDF file(s) as a lazy ``(time, y, x)`` DataArray.

    ``paths`` may be a file, a glob or a list; several files are concatenated
    along time (they must share grid, CRS and units). ``variable`` is the name
    in the file (also matched case-insensitively or through the canonical
    variable's aliases, e.g. ``"tas"`` finds ``TEM``); when omitted the file
    must hold exactly one gridded variable. The result is named ``variable``
    (or the file's name). ``units`` overrides the file's units attribute (kept
    as ``units_in_file``), ``crs`` overrides or supplies the CRS, ``frequency``
    ('month'/'year'/'day') snaps time stamps to period starts.
    """
    files = expand_paths(paths, suffixes=NETCDF_SUFFIXES)
    return _read(files, variable, engine=engine, units=units, crs=crs, chunks=chunks,
                 frequency=frequency)


def read_zarr(path: PathLike, variable: str | None = None, *, units: str | None = None,
              crs: Any = None, chunks: ChunksLike = "auto",
              frequency: str | None = None) -> xr.DataArray:
    """Read one variable of a Zarr store (v2 or v3); see :func:`read_netcdf`."""
    files = expand_paths(path)
    return _read(files, variable, engine="zarr", units=units, crs=crs, chunks=chunks,
                 frequency=frequency)


def _is_zarr(path: Path) -> bool:
    return path.suffix.lower() == ".zarr" or (path.is_dir() and (
        (path / ".zgroup").exists() or (path / "zarr.json").exists()))


def read_cube(path: PathLike, *, chunks: ChunksLike = "auto", crs: Any = None) -> xr.Dataset:
    """Open a whole cube (Zarr store or NetCDF file) as a lazy Dataset.

    Meant for cubes written by :func:`write_zarr` / :func:`write_netcdf` (and
    other CF files): every variable is kept; ``lat``/``lon`` dimensions become
    ``y``/``x``; time becomes datetime64[ns]; the CRS is restored from the
    grid mapping (else EPSG:4326 for lat/lon, else ``crs``, else
    :class:`AlignmentError`) on the Dataset and each gridded variable.
    Chunked with ``time`` whole and space by dask (one chunking for all
    variables).
    """
    (p,) = expand_paths(path)
    ds = _open_dataset(p, "zarr" if _is_zarr(p) else None)
    rename: dict[str, str] = {}
    lat_lon = False
    for d in ds.dims:
        role = _coord_role(ds, str(d))
        if role in ("lat", "y"):
            rename[str(d)] = "y"
        elif role in ("lon", "x"):
            rename[str(d)] = "x"
        elif role == "time":
            rename[str(d)] = "time"
        lat_lon = lat_lon or role in ("lat", "lon")
    ydim = next((k for k, v in rename.items() if v == "y"), None)
    xdim = next((k for k, v in rename.items() if v == "x"), None)
    gridded = [n for n in ds.data_vars
               if ydim is not None and xdim is not None and {ydim, xdim} <= set(ds[n].dims)]
    file_crs = None
    for n in gridded:
        file_crs = _grid_mapping_crs(ds, ds[n], str(p))
        if file_crs is not None:
            break
    ds = ds.rename({k: v for k, v in rename.items() if k != v})
    if "time" in ds.dims and "time" in ds.coords:
        values, tattrs = decode_time_values(ds["time"].values, ds["time"].attrs,
                                            frequency=None, source=str(p))
        ds = ds.assign_coords(time=("time", values, tattrs))
        if not ds.indexes["time"].is_monotonic_increasing:
            ds = ds.sortby("time")
    target = parse_crs(crs, source=str(p)) if crs is not None else file_crs
    if target is None and lat_lon:
        target = CRS.from_epsg(4326)
    if "y" in ds.dims and "x" in ds.dims:
        if target is None:
            raise no_crs_error(str(p), None)
        gm_names = {str(ds[n].encoding.get("grid_mapping", "")) for n in ds.variables}
        drop = [g for g in gm_names if g and g != "spatial_ref" and g in ds.variables]
        ds = ds.drop_vars(drop)
        for n in ds.variables:
            ds[n].encoding.pop("grid_mapping", None)
            ds[n].attrs.pop("grid_mapping", None)
        ds = ds.rio.set_spatial_dims(x_dim="x", y_dim="y")
        ds = ds.rio.write_crs(target, grid_mapping_name="spatial_ref")
        for n in ds.data_vars:
            if {"y", "x"} <= set(ds[n].dims):
                ds[n] = ds[n].rio.write_crs(target, grid_mapping_name="spatial_ref")
    if chunks is not None and ds.data_vars:
        big = max(ds.data_vars.values(), key=lambda v: v.size)
        pref = big.encoding.get("preferred_chunks") or {}
        inv = {v: k for k, v in rename.items()}
        prev = tuple(1 if d == "time" else int(pref.get(inv.get(d, d), big.sizes[d]))
                     for d in big.dims) if pref else None
        sizes = chunk_sizes(big.shape, big.dims, chunks, "float32", prev)
        for d in ds.dims:
            if d not in sizes:
                sizes[d] = -1
        ds = ds.chunk(sizes)
    for n in ds.variables:
        for k in ("chunks", "preferred_chunks", "chunksizes", "contiguous", "original_shape"):
            ds[n].encoding.pop(k, None)
    return ds


# --------------------------------------------------------------------------- writing

_KEEP_ENCODING = {"units", "calendar", "dtype", "_FillValue", "scale_factor", "add_offset"}


def _to_dataset(obj: xr.Dataset | xr.DataArray) -> xr.Dataset:
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else "data"
        return obj.to_dataset(name=str(name), promote_attrs=False)
    if isinstance(obj, xr.Dataset):
        return obj.copy()
    raise TypeError(f"expected an xarray Dataset or DataArray, got {type(obj).__name__}")


def _merge_history(old: Any, new: Any) -> str:
    old_s, new_s = (str(old) if old else ""), (str(new) if new else "")
    if old_s and new_s and new_s not in old_s:
        return f"{new_s}\n{old_s}"
    return new_s or old_s


def _prepare_cf(obj: xr.Dataset | xr.DataArray, attrs: Mapping[str, Any] | None) -> xr.Dataset:
    ds = _to_dataset(obj)
    # CRS: from the dataset or from any variable carrying one
    crs = None
    try:
        crs = ds.rio.crs
    except Exception:  # rioxarray raises for inconsistent per-variable CRSs
        crs = None
    if crs is None:
        for v in ds.data_vars.values():
            if v.rio.crs is not None:
                crs = v.rio.crs
                break
    for name in list(ds.variables):
        var = ds[name]
        enc = {k: v for k, v in var.encoding.items() if k in _KEEP_ENCODING}
        if var.dtype.kind == "f" and enc.get("dtype") is not None and \
                np.dtype(enc["dtype"]).kind in "iu" and "scale_factor" not in enc:
            enc.pop("dtype")  # floats derived from integer files: keep them float
        a = dict(var.attrs)
        if "_FillValue" in a and "_FillValue" not in enc:
            enc["_FillValue"] = a.pop("_FillValue")
        a.pop("_FillValue", None)
        if name in ds.data_vars:
            a.pop("grid_mapping", None)
        ds[name].attrs = serialisable_attrs(a)
        ds[name].encoding = enc
    if crs is not None and "y" in ds.dims and "x" in ds.dims:
        ds = ds.rio.set_spatial_dims(x_dim="x", y_dim="y")
        ds = ds.rio.write_crs(crs, grid_mapping_name="spatial_ref")
        ds = ds.rio.write_coordinate_system()
        for name in ds.data_vars:
            if {"y", "x"} <= set(ds[name].dims):
                ds[name].encoding["grid_mapping"] = "spatial_ref"
                ds[name].attrs.pop("grid_mapping", None)
            else:
                ds[name].encoding.pop("grid_mapping", None)
                ds[name].attrs.pop("grid_mapping", None)
    if "time" in ds.coords:
        ds["time"].attrs.setdefault("standard_name", "time")
        ds["time"].attrs.setdefault("axis", "T")
        ds["time"].attrs.setdefault("long_name", "time (start of period)")
        ds["time"].attrs.pop("units", None)
        ds["time"].attrs.pop("calendar", None)
    g = serialisable_attrs(ds.attrs)
    extra = serialisable_attrs(dict(attrs or {}))
    history = _merge_history(g.get("history"), extra.pop("history", None))
    g.update(extra)
    if history:
        g["history"] = history
    g["Conventions"] = CONVENTIONS
    ds.attrs = g
    return ds


def write_netcdf(obj: xr.Dataset | xr.DataArray, path: PathLike, *,
                 attrs: Mapping[str, Any] | None = None, complevel: int = 4,
                 engine: str = "netcdf4") -> Path:
    """Write a Dataset/DataArray to NetCDF-4 with CF-1.8 attributes, atomically.

    ``attrs`` are global provenance attributes (carbonsink version, study
    hash, models and parameters ...; mappings are stored as JSON text);
    ``history`` is prepended to any existing history. The CRS is written as a
    ``spatial_ref`` grid-mapping variable referenced by each gridded
    variable's ``grid_mapping``. Dask-backed data are computed while writing;
    if that fails no file is left behind. Returns the path written.
    """
    path = Path(path)
    ds = _prepare_cf(obj, attrs)
    encoding: dict[str, dict[str, Any]] = {}
    for name in ds.data_vars:
        enc = dict(ds[name].encoding)
        if engine in ("netcdf4", "h5netcdf") and ds[name].dtype.kind in "iuf" and complevel:
            enc.update({"zlib": True, "complevel": int(complevel)})
        encoding[str(name)] = enc
        ds[name].encoding = {}
    with atomic_write(path) as tmp:
        ds.to_netcdf(tmp, engine=engine, encoding=encoding, format="NETCDF4")
    return path


def _regular_chunks(ds: xr.Dataset) -> xr.Dataset:
    """Zarr needs equal dask chunks (except the last); rechunk irregular ones."""
    fixes: dict[str, int] = {}
    for v in ds.variables.values():
        if v.chunks is None:
            continue
        for d, c in zip(v.dims, v.chunks):
            if len(c) > 1 and (len(set(c[:-1])) > 1 or c[-1] > c[0]):
                fixes[str(d)] = max(fixes.get(str(d), 0), max(c))
    return ds.chunk(fixes) if fixes else ds


def write_zarr(obj: xr.Dataset | xr.DataArray, path: PathLike, *,
               attrs: Mapping[str, Any] | None = None, zarr_format: int = 2,
               consolidated: bool = True) -> Path:
    """Write a Dataset/DataArray to a Zarr store with CF-1.8 attributes, atomically.

    The store is written into a temporary directory beside ``path`` and
    renamed onto it when complete (replacing an existing store). Zarr format 2
    with consolidated metadata is the default because GDAL, older
    zarr-python and other tools read it; ``zarr_format=3`` is available.
    Dask chunks become Zarr chunks. See :func:`write_netcdf` for ``attrs``.
    """
    path = Path(path)
    ds = _regular_chunks(_prepare_cf(obj, attrs))
    for name in ds.variables:
        ds[name].encoding = {k: v for k, v in ds[name].encoding.items()
                             if k in ("units", "calendar", "dtype", "_FillValue",
                                      "grid_mapping")}
    with atomic_write(path) as tmp:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
            ds.to_zarr(tmp, mode="w-", zarr_format=zarr_format, consolidated=consolidated)
    return path

