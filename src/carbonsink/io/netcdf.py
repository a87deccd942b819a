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

CF units at the write boundary
------------------------------
Inside carbonsink, carbon fluxes carry units such as ``"g C m-2 month-1"``
where the ``C`` token means "of carbon".  UDUNITS (and so cf-units, Iris,
ILAMB, ESMValTool) reads that ``C`` as the coulomb, so the writers store
UDUNITS-parseable units instead (:func:`cf_units_string`):

* ``units`` without the carbon token (``"g m-2 month-1"``, ``"Tg yr-1"``,
  ``"kg m-2"``), the carbonsink units in ``carbonsink_units`` and "(as carbon)"
  appended to ``long_name``;
* the CF / CMIP ``standard_name`` where one exists for the variable and its
  units are compatible (:data:`CF_STANDARD_NAMES`: npp, gpp, rh, nep, soc,
  tas, pr, sol, hurs, ndvi, area; the ``..._expressed_as_carbon`` names make
  the carbon explicit);
* a ``time_bnds`` variable (``time: bounds``, each step from its start to the
  next period start) when the time steps are regular days, months or years, and
  ``cell_methods = "time: sum"`` on period totals (units "per month" on a
  monthly axis, "per year" on an annual axis).

:func:`read_cube` (and the readers) undo this: ``units`` is restored from
``carbonsink_units`` and the time bounds are dropped, so a round trip returns
the units the rest of carbonsink works with.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import rioxarray  # noqa: F401
import xarray as xr
from pyproj import CRS
from pyproj.exceptions import CRSError

from .._memory import release_memory
from ..errors import AlignmentError, InputError, UnknownVariableError
from ._common import (ChunksLike, PathLike, attach_crs, chunk_sizes, decode_time_values,
                      expand_paths, no_crs_error, parse_crs, serialisable_attrs,
                      small_integer, standardise_time)
from .atomic import atomic_write

__all__ = ["read_netcdf", "read_zarr", "read_cube", "write_netcdf", "write_zarr",
           "NETCDF_SUFFIXES", "CONVENTIONS", "CF_STANDARD_NAMES", "cf_units_string"]

NETCDF_SUFFIXES = (".nc", ".nc4", ".netcdf", ".cdf", ".h5", ".he5")
CONVENTIONS = "CF-1.8"

_LAT_NAMES = {"lat", "latitude", "lats", "nav_lat", "y_lat"}
_LON_NAMES = {"lon", "longitude", "lons", "long", "nav_lon", "x_lon"}
_TIME_NAMES = {"time", "t", "times", "date", "valid_time"}
_BOUNDS_DIMS = {"bnds", "bounds", "nv", "nb2", "bnd", "d2"}


# --------------------------------------------------------------------------- reading


def _decode_packed_float32(ds: xr.Dataset, path: Path, engine: str | None = "zarr", *,
                           only: str | None = None) -> xr.Dataset:
    """Variables stored as integers of at most 16 bits with a scale and offset, decoded
    lazily straight to float32 in one pass per value (:func:`_fused_unpacking`).

    Zarr (``engine="zarr"``): xarray would decode to float64 (Zarr keeps the float32
    ``scale_factor`` as a JSON number); the integers are decoded with float32 arithmetic, as
    NetCDF readers do for a float32 scale. Other engines (NetCDF): only the variables xarray
    itself decodes to float32 (a float32 scale), with the same values, bit for bit.
    ``only``: that variable alone."""
    zarr = engine == "zarr"
    packed = [str(n) for n, v in ds.variables.items()
              if small_integer(v.encoding.get("dtype", v.dtype))
              and ("scale_factor" in v.encoding or "add_offset" in v.encoding)
              and (zarr or v.dtype == np.float32) and (only is None or n == only)]
    if not packed:
        return ds
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
        source, kw = _source(path, engine)
        raw = xr.open_dataset(source, **kw, chunks=None, cache=False,
                              mask_and_scale=False, decode_times=False, decode_coords=False,
                              decode_timedelta=False,
                              drop_variables=[n for n in ds.variables if n not in packed])
    out = {}
    for n in packed:
        var = raw[n].variable.copy(deep=False)
        var.attrs = dict(var.attrs)
        # (a NetCDF variable xarray decodes to float32 has a float32 scale and offset)
        fused = _fused_unpacking(var)
        if fused is not None:
            out[n] = xr.Variable(var.dims, fused, attrs=dict(ds[n].attrs),
                                 encoding=dict(ds[n].encoding))
            continue
        if not zarr:
            continue  # xarray's own decoding (float32 already) stays
        for k in ("scale_factor", "add_offset"):
            var.attrs[k] = np.float32(var.attrs.get(k, 0.0 if k == "add_offset" else 1.0))
        dec = xr.conventions.decode_cf_variable(n, var, mask_and_scale=True,
                                                decode_times=False, decode_timedelta=False)
        if dec.dtype != np.float32:
            continue
        dec.attrs = dict(ds[n].attrs)
        dec.encoding = dict(ds[n].encoding)
        out[n] = dec
    return ds.assign(out) if out else ds


def _fused_unpacking(var: xr.Variable):
    """The lazy float32 values of a packed integer variable decoded in one compiled pass
    (:func:`carbonsink.io._unpack.unpack`, bit-identical to xarray's CF decoding, without its
    four whole-block temporaries), or None where that decoding does not apply (``_Unsigned``,
    a fill value the integer type cannot hold)."""
    from functools import partial

    from xarray.coding.variables import lazy_elemwise_func, unpack_for_decoding

    from ._unpack import unpack

    attrs = var.attrs
    if "_Unsigned" in attrs:
        return None
    info = np.iinfo(var.dtype)
    fills = []
    for k in ("_FillValue", "missing_value"):
        for f in np.atleast_1d(attrs.get(k, [])):
            f = float(f)
            if not (np.isfinite(f) and f == int(f) and info.min <= f <= info.max):
                return None
            fills.append(int(f))
    if len(set(fills)) > 2:
        return None
    scale = np.float32(attrs.get("scale_factor", 1.0))
    offset = np.float32(attrs.get("add_offset", 0.0))
    _, data, _, _ = unpack_for_decoding(var)
    fn = partial(unpack, fills=sorted(set(fills)), scale=scale,
                 offset=offset, add="add_offset" in attrs)
    return lazy_elemwise_func(data, fn, np.dtype(np.float32))


#: HDF5 chunk cache per NetCDF variable during a study run [bytes]
RUN_CHUNK_CACHE = 16 * 2**20


@contextlib.contextmanager
def bounded_chunk_cache(nbytes: int = RUN_CHUNK_CACHE):
    """NetCDF files opened inside keep at most ``nbytes`` of decompressed chunks per variable.

    netCDF-C caches 64 MB of chunks per open variable by default, and xarray keeps files open
    between reads: with whole-grid chunks (12 months x 1.2 M cells = 29 MB) the inputs of a
    study then hold ~0.35 GB that grows with the region. HDF5 does not cache a chunk larger
    than the cache, so memory stays bounded whatever the region; the pipeline reads every
    chunk once, in file order, so nothing is decompressed twice. The previous setting is
    restored on exit.
    """
    import netCDF4

    before = netCDF4.get_chunk_cache()
    netCDF4.set_chunk_cache(int(nbytes), before[1], before[2])
    try:
        yield
    finally:
        netCDF4.set_chunk_cache(*before)


_HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def _source(path: Path, engine: str | None) -> tuple[Any, dict[str, Any]]:
    """What to give ``xarray.open_dataset`` for ``path`` read with ``engine``, and the
    ``engine`` argument: a NetCDF-4 (HDF5) file read with netCDF4 (the default for ``.nc``)
    goes through :class:`~carbonsink.io._h5chunks.DirectNetCDF4Store`, whose chunked,
    deflated variables are decompressed on every thread, not one at a time behind the HDF5
    lock (same values, bit for bit)."""
    if engine in (None, "netcdf4") and Path(path).is_file():
        with open(path, "rb") as fh:
            hdf5 = fh.read(8) == _HDF5_SIGNATURE
        if hdf5:
            from ._h5chunks import DirectNetCDF4Store

            return DirectNetCDF4Store.open(str(path), mode="r"), {}
    return path, ({"engine": engine} if engine is not None else {})


def _open_dataset(path: Path, engine: str | None) -> xr.Dataset:
    kind = "Zarr store" if engine == "zarr" else "NetCDF file"
    kw: dict[str, Any] = {"chunks": None, "cache": False, "decode_coords": "all",
                          "decode_timedelta": False}
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
            # CMIP files name cell_measures (areacella) kept in other files: harmless here
            warnings.filterwarnings("ignore", message=".*referenced in cell_measures.*")
            source, engine_kw = _source(path, engine)
            return xr.open_dataset(source, **engine_kw, **kw)
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
    _restore_carbonsink_attrs(da.attrs)
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
            if chunks != "file":
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
        if engine != "zarr":  # a packed NetCDF variable: decoded in one pass per value
            ds = _decode_packed_float32(ds, p, engine=engine, only=name)
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
    if chunks is not None and chunks != "file":
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
    if _is_zarr(p):
        ds = _decode_packed_float32(ds, p)
    ds = _undo_cf_write(ds)
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
        # the Dataset's write_crs gives every gridded variable the grid mapping too
        ds = ds.rio.write_crs(target, grid_mapping_name="spatial_ref")
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


# --------------------------------------------------------------------------- CF units

#: CF standard names written for carbonsink variables, with the CF canonical units
#: their ``units`` must be convertible to (else no standard name is written).  Carbon
#: fluxes follow the CMIP6 Lmon table (npp, gpp, rh, nep) and cSoil for soc.
CF_STANDARD_NAMES: dict[str, tuple[str, str]] = {
    "npp": ("net_primary_productivity_of_biomass_expressed_as_carbon", "kg m-2 s-1"),
    "gpp": ("gross_primary_productivity_of_biomass_expressed_as_carbon", "kg m-2 s-1"),
    "rh": ("heterotrophic_respiration_carbon_flux", "kg m-2 s-1"),
    "nep": ("surface_net_downward_mass_flux_of_carbon_dioxide_expressed_as_carbon_due_to_"
            "all_land_processes_excluding_anthropogenic_land_use_change", "kg m-2 s-1"),
    "soc": ("soil_mass_content_of_carbon", "kg m-2"),
    "tas": ("air_temperature", "K"),
    "pr": ("lwe_precipitation_rate", "m s-1"),
    "sol": ("surface_downwelling_shortwave_flux_in_air", "W m-2"),
    "hurs": ("relative_humidity", "1"),
    "ndvi": ("normalized_difference_vegetation_index", "1"),
    "area": ("cell_area", "m2"),
}

#: canonical units of further CF standard names carbonsink inputs may carry; a standard
#: name whose canonical units do not match the variable's units is not written
_CF_CANONICAL: dict[str, str] = {
    **{std: canon for std, canon in CF_STANDARD_NAMES.values()},
    "precipitation_amount": "kg m-2",
    "water_potential_evaporation_amount": "kg m-2",
    "water_evapotranspiration_amount": "kg m-2",
    "duration_of_sunshine": "s",
}
_CF_STRING_VALUED = {"area_type"}   # CF names for string-valued (not coded) variables

#: tokens that name the element a mass refers to ("g C m-2"), not a unit
_SUBSTANCE_TOKENS = {"C", "CO2", "N"}
_CARBON_LABEL = " (as carbon)"


def cf_units_string(units: str) -> str:
    """UDUNITS-parseable form of a carbonsink unit string.

    Drops the substance token of "mass of carbon" units (``"g C m-2 month-1"`` →
    ``"g m-2 month-1"``, ``"Tg C yr-1"`` → ``"Tg yr-1"``, ``"µmol CO2 m-2 s-1"`` →
    ``"umol m-2 s-1"``): in UDUNITS ``C`` is the coulomb.  Other strings are returned
    unchanged (``"degC"``, ``"%"``, ``"mm month-1"`` already parse).
    """
    toks = str(units).split()
    keep = [t for i, t in enumerate(toks) if not (i > 0 and t in _SUBSTANCE_TOKENS)]
    return " ".join(t.replace("µ", "u") for t in keep)


def _has_substance(units: str) -> bool:
    toks = str(units).split()
    return any(i > 0 and t in _SUBSTANCE_TOKENS for i, t in enumerate(toks))


def _compatible(units: str, canonical: str) -> bool:
    """Same physical dimension (a ``month-1``/``yr-1`` period counts as time-1)."""
    from .. import units as cu

    try:
        pu = cu.parse_units(units)
        dim = pu.dimensionality
        if pu.period is not None:
            dim = dim / cu.ureg.second.dimensionality
        return dim == cu.parse_units(canonical).dimensionality
    except Exception:  # unreadable units: no standard name, nothing else changes
        return False


def _time_step(time: xr.DataArray) -> str | None:
    """``"day"``, ``"month"`` or ``"year"`` when the starts are regular periods."""
    import pandas as pd

    try:
        idx = pd.DatetimeIndex(time.values)
    except (TypeError, ValueError):
        return None
    if idx.size < 2:
        return None
    for step, off in (("month", pd.DateOffset(months=1)), ("year", pd.DateOffset(years=1)),
                      ("day", pd.DateOffset(days=1))):
        if (idx[:-1] + off).equals(idx[1:]):
            return step
    return None


_PERIOD_OF_STEP = {"day": ("d-1", "day-1"), "month": ("month-1", "mon-1"),
                   "year": ("yr-1", "a-1", "year-1")}


def _time_bounds(time: xr.DataArray, step: str) -> np.ndarray:
    import pandas as pd

    idx = pd.DatetimeIndex(time.values)
    off = {"day": pd.DateOffset(days=1), "month": pd.DateOffset(months=1),
           "year": pd.DateOffset(years=1)}[step]
    return np.stack([idx.values, (idx + off).values], axis=1).astype("datetime64[ns]")


def _apply_cf_write(ds: xr.Dataset) -> xr.Dataset:
    """UDUNITS units, standard names, time bounds and cell methods (see module notes)."""
    step = _time_step(ds["time"]) if "time" in ds.coords and ds["time"].ndim == 1 else None
    for name in list(ds.data_vars):
        a = dict(ds[name].attrs)
        units = a.get("units")
        if isinstance(units, str) and units:
            cf = cf_units_string(units)
            if cf != units:
                a["carbonsink_units"] = units
                a["units"] = cf
                if _has_substance(units) and "carbon" not in str(a.get("long_name", "")):
                    a["long_name"] = str(a.get("long_name", name)) + _CARBON_LABEL
            entry = CF_STANDARD_NAMES.get(str(name))
            std = a.get("standard_name")
            if entry is not None and _compatible(units, entry[1]):
                a["standard_name"] = entry[0]
            elif std in _CF_STRING_VALUED or (
                    std in _CF_CANONICAL and not _compatible(units, _CF_CANONICAL[std])):
                # e.g. a trend of npp (g C m-2 yr-2) or an 8-day total (g C m-2) is not
                # the flux the name describes; precipitation in mm is not kg m-2
                a.pop("standard_name")
            if step is not None and "time" in ds[name].dims and \
                    "time:" not in str(a.get("cell_methods", "")) and \
                    units.split()[-1] in _PERIOD_OF_STEP[step]:
                prev = a.get("cell_methods")
                a["cell_methods"] = f"{prev} time: sum" if prev else "time: sum"
        ds[name].attrs = a
    totals = step is not None and any(
        "time" in v.dims and str(v.attrs.get("carbonsink_units", v.attrs.get("units", "")))
        .split()[-1:] and str(v.attrs.get("carbonsink_units", v.attrs.get("units", "")))
        .split()[-1] in _PERIOD_OF_STEP[step] for v in ds.data_vars.values())
    # bounds only where the data say what the period is (per-month data on a monthly
    # axis ...): a growing-season total on an annual axis does not cover the whole year
    if totals and "time_bnds" not in ds.variables:
        ds = ds.assign_coords(time_bnds=(("time", "bnds"), _time_bounds(ds["time"], step)))
        ds["time"].attrs["bounds"] = "time_bnds"
        ds["time_bnds"].attrs = {}
        # one encoding for time and its bounds (CF: the bounds share the time units)
        if not ds["time"].encoding.get("units"):
            ds["time"].encoding["units"] = "days since 1970-01-01"
        ds["time"].encoding.setdefault("calendar", "proleptic_gregorian")
    return ds


def _restore_carbonsink_attrs(a: dict) -> None:
    """In place: ``units`` from ``carbonsink_units``, long_name without "(as carbon)"."""
    cs_units = a.pop("carbonsink_units", None)
    if cs_units:
        a["units"] = cs_units
        ln = a.get("long_name")
        if isinstance(ln, str) and ln.endswith(_CARBON_LABEL):
            a["long_name"] = ln[: -len(_CARBON_LABEL)]


def _undo_cf_write(ds: xr.Dataset) -> xr.Dataset:
    """Read boundary: carbonsink units again, time bounds dropped."""
    for name in ds.variables:
        a = dict(ds[name].attrs)
        _restore_carbonsink_attrs(a)
        ds[name].attrs = a
    if "time" in ds.variables:
        bnd = ds["time"].attrs.get("bounds") or ds["time"].encoding.get("bounds")
        if bnd and str(bnd) in ds.variables:
            ds = ds.drop_vars(str(bnd))
            # the writer's period-total marker; carbonsink's own aggregations add theirs
            for name in ds.data_vars:
                if ds[name].attrs.get("cell_methods") == "time: sum":
                    ds[name].attrs.pop("cell_methods")
        ds["time"].attrs.pop("bounds", None)
        ds["time"].encoding.pop("bounds", None)
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
    return _apply_cf_write(ds)


def _netcdf_os_error(exc: RuntimeError, path: Path) -> Exception:
    """An OSError for a NetCDF library error met while writing ``path`` when the cause is the
    file system (no space left), else the error itself."""
    import errno
    import shutil

    try:
        free = shutil.disk_usage(path.parent).free
    except OSError:
        return exc
    if free < (1 << 20):
        return OSError(errno.ENOSPC, f"No space left on device ({exc})", str(path))
    return exc


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
        try:
            ds.to_netcdf(tmp, engine=engine, encoding=encoding, format="NETCDF4")
        except RuntimeError as exc:  # the HDF5 library reports a full disk as "HDF error"
            raise _netcdf_os_error(exc, Path(tmp)) from None
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


_ZSTD1 = numcodecs.Blosc(cname="zstd", clevel=1, shuffle=numcodecs.Blosc.SHUFFLE)


def _zarr_ready(obj: xr.Dataset | xr.DataArray, attrs: Mapping[str, Any] | None, *,
                scratch: bool = False) -> xr.Dataset:
    """CF attributes, regular chunks and only the encodings Zarr keeps (no codecs or chunk
    sizes of the source file). ``scratch``: every variable with the default LZ4 (a store read
    back at once, where compressing fast matters more than size)."""
    ds = _regular_chunks(_prepare_cf(obj, attrs))
    for name in ds.variables:
        enc = {k: v for k, v in ds[name].encoding.items()
               if k in ("units", "calendar", "dtype", "_FillValue", "grid_mapping",
                        "scale_factor", "add_offset")}
        if (not scratch and small_integer(enc.get("dtype", ds[name].dtype))
                and ds[name].ndim >= 2):
            # 16-bit integers (packed inputs): zstd level 1 is as fast as LZ4 and ~10 %
            # smaller on them (benchmarks/results/codecs.md); floats keep LZ4
            enc["compressors"] = (_ZSTD1,)
        ds[name].encoding = enc
        packed = _packed_variable(ds[name].variable)
        if packed is not None:
            ds[name] = packed
    return ds


def _packed_variable(var: xr.Variable) -> xr.Variable | None:
    """A float variable whose encoding packs it (integer ``dtype``, ``scale_factor`` /
    ``add_offset``, a ``_FillValue``) as the integers xarray's CF encoding would store, packed
    slice by slice (:func:`carbonsink.io._unpack.pack`: the same bytes without the encoder's six
    whole-block temporaries), with the attributes that encoding writes; None otherwise."""
    import dask.array as dsa

    from ._unpack import pack

    enc = var.encoding
    if (var.dtype.kind != "f" or var.ndim < 2 or not small_integer(enc.get("dtype", var.dtype))
            or not ("scale_factor" in enc or "add_offset" in enc) or "_FillValue" not in enc):
        return None
    fill = enc["_FillValue"]
    try:
        if not np.isfinite(float(fill)):
            return None
    except (TypeError, ValueError):
        return None
    dtype = np.dtype(enc["dtype"])
    kw = dict(to=dtype, scale=enc.get("scale_factor"), offset=enc.get("add_offset"),
              fill=fill)
    data = var.data
    if isinstance(data, dsa.Array):
        data = data.map_blocks(pack, dtype=dtype, inplace=False, **kw)
    else:
        data = pack(np.asarray(data), inplace=True, **kw)
    attrs = dict(var.attrs)
    for k in ("add_offset", "scale_factor", "_FillValue"):  # the order the coders add them
        if k in enc:
            attrs[k] = enc[k]
    rest = {k: v for k, v in enc.items() if k not in ("scale_factor", "add_offset", "_FillValue")}
    return xr.Variable(var.dims, data, attrs, rest)


def write_zarr_many(items: Sequence[tuple[xr.Dataset | xr.DataArray, PathLike]], *,
                    blocks: Sequence[tuple[slice, slice]] | None = None, zarr_format: int = 2,
                    consolidated: bool = True) -> list[Path]:
    """Write several Datasets to Zarr stores in one dask computation, each atomically.

    Outputs computed from the same lazy inputs (a model's monthly cube, the annual and
    growing-season cubes of every combination using it) then read each input chunk once and
    run on all threads together, instead of one computation per store re-reading the inputs.

    ``blocks`` (``(y slice, x slice)`` pairs aligned with the chunks, covering the grid)
    splits that computation into one per block of the region: every store is created first,
    then each block of every store is computed and written together (Zarr region writes), so
    peak memory is set by the block, not by the region. Datasets without both ``y`` and ``x``
    are written whole.

    Every store is written into a temporary directory beside its target and renamed onto it
    only after all of them succeeded (else all temporaries are removed, no target changes).
    See :func:`write_zarr` for the encoding.
    """
    import contextlib

    import dask

    paths = [Path(p) for _, p in items]
    with contextlib.ExitStack() as stack:
        ready: list[tuple[xr.Dataset, Path]] = []
        delayed = []
        for (obj, _), path in zip(items, paths):
            ds = _zarr_ready(obj, None)
            tmp = stack.enter_context(atomic_write(path))
            spatial = blocks is not None and {"y", "x"} <= set(ds.dims)
            if spatial:  # what the blocks do not cover is written with the metadata
                small = [v for v in ds.variables if not {"y", "x"} <= set(ds[v].dims)
                         and ds[v].chunks is not None]
                if small:
                    loaded = dict(zip(small, dask.compute(*[ds[v].variable for v in small])))
                    ds = ds.assign({v: loaded[v] for v in small if v in ds.data_vars})
                    ds = ds.assign_coords({v: loaded[v] for v in small if v in ds.coords})
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
                # the metadata now; the data in the one computation below (blocks: the
                # non-spatial variables now, the data block by block)
                d = ds.to_zarr(tmp, mode="w-", zarr_format=zarr_format,
                               consolidated=consolidated, compute=False)
            if spatial:
                ready.append((ds, tmp))
            else:
                delayed.append(d)
        if blocks is None:
            dask.compute(*delayed)
            release_memory()  # the computation's arrays are gone: their heap pages too
        else:
            for ys, xs in blocks:
                parts = []
                for ds, tmp in ready:
                    keep = [v for v in ds.variables if {"y", "x"} <= set(ds[v].dims)]
                    sub = ds[keep].isel(y=ys, x=xs).drop_vars(
                        [c for c in ds[keep].coords if not {"y", "x"} <= set(ds[c].dims)])
                    parts.append(sub.to_zarr(tmp, region={"y": ys, "x": xs}, compute=False,
                                             zarr_format=zarr_format))
                dask.compute(*parts)
                release_memory()
    return paths


def spatial_blocks(ny: int, nx: int, cy: int, cx: int, tiles: int) -> list[tuple[slice, slice]]:
    """Blocks of about ``tiles`` chunks of ``cy`` x ``cx`` cells covering an ``ny`` x ``nx``
    grid (strips of whole chunks along x, then further rows), aligned with the chunks: the
    unit :func:`write_zarr_many` computes at once."""
    ntx = -(-nx // cx)
    bx = max(1, min(ntx, tiles))
    by = max(1, tiles // bx)
    out = []
    for y0 in range(0, ny, by * cy):
        for x0 in range(0, nx, bx * cx):
            out.append((slice(y0, min(ny, y0 + by * cy)), slice(x0, min(nx, x0 + bx * cx))))
    return out


def write_zarr(obj: xr.Dataset | xr.DataArray, path: PathLike, *,
               attrs: Mapping[str, Any] | None = None, zarr_format: int = 2,
               consolidated: bool = True, scratch: bool = False) -> Path:
    """Write a Dataset/DataArray to a Zarr store with CF-1.8 attributes, atomically.

    The store is written into a temporary directory beside ``path`` and
    renamed onto it when complete (replacing an existing store). Zarr format 2
    with consolidated metadata is the default because GDAL, older
    zarr-python and other tools read it; ``zarr_format=3`` is available.
    Dask chunks become Zarr chunks. See :func:`write_netcdf` for ``attrs``.
    Packed variables (integer ``dtype`` with ``scale_factor``/``add_offset`` in their
    encoding) are stored as those integers, compressed with zstd level 1, floats with LZ4;
    ``scratch=True`` (a temporary store read back at once) uses LZ4 for all.
    """
    path = Path(path)
    ds = _zarr_ready(obj, attrs, scratch=scratch)
    with atomic_write(path) as tmp:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*consolidated metadata.*")
            ds.to_zarr(tmp, mode="w-", zarr_format=zarr_format, consolidated=consolidated)
    release_memory()  # the computation's arrays are gone: their heap pages too
    return path

