"""Helpers shared by the readers and writers of :mod:`carbonsink.io`."""

from __future__ import annotations

import glob as _glob
import json
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
from dask.array.core import normalize_chunks
from pyproj import CRS
from pyproj.exceptions import CRSError

from ..errors import AlignmentError, InputError, InvalidArgumentError

PathLike = str | os.PathLike
ChunksLike = str | int | Mapping[str, Any] | None

_GLOB_CHARS = re.compile(r"[*?\[]")

#: frequency names accepted by the readers' ``frequency=`` argument -> how time
#: stamps are snapped ("day": to midnight, used for 8-/16-day composites whose
#: stamps are their start dates; "static": not at all)
FREQUENCIES = {
    "day": "day", "daily": "day", "D": "day",
    "8day": "day", "8D": "day", "16day": "day", "16D": "day",
    "month": "month", "monthly": "month", "MS": "month", "M": "month", "ME": "month",
    "year": "year", "yearly": "year", "annual": "year", "YS": "year", "Y": "year",
    "A": "year", "AS": "year", "YE": "year",
    "static": "static",
}


# --------------------------------------------------------------------------- paths


def is_glob(path: PathLike) -> bool:
    return bool(_GLOB_CHARS.search(str(path)))


def expand_paths(paths: PathLike | Iterable[PathLike], *, name: str = "inputs.<name>.path",
                 suffixes: Sequence[str] | None = None) -> list[Path]:
    """Expand a path, a glob pattern, a directory or a list of those.

    Globs are expanded and sorted; a directory expands to its files with one of
    ``suffixes``. A missing file or a glob without matches raises
    :class:`InputError` naming it and the study-file key to check.
    """
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not items:
        raise InputError(f"no input files given; check {name} in the study file")
    out: list[Path] = []
    for item in items:
        text = os.path.expanduser(str(item))
        if is_glob(text):
            matches = sorted(_glob.glob(text))
            if not matches:
                raise InputError(f"file not found: no file matches the pattern {text!r}; "
                                 f"check {name} in the study file")
            out.extend(Path(m) for m in matches)
            continue
        p = Path(text)
        if not p.exists():
            raise InputError(f"file not found: {p}; check {name} in the study file")
        is_store = p.suffix.lower() == ".zarr" or (p / ".zgroup").exists() or \
            (p / "zarr.json").exists()
        if p.is_dir() and not is_store and suffixes is not None and \
                p.suffix.lower() not in suffixes:
            found = sorted(q for q in p.iterdir() if q.suffix.lower() in suffixes)
            if not found:
                raise InputError(f"file not found: directory {p} holds no {'/'.join(suffixes)} "
                                 f"files; check {name} in the study file")
            out.extend(found)
            continue
        out.append(p)
    return out


# --------------------------------------------------------------------------- chunks


#: largest dask chunk of ``chunks="file"`` [bytes] when the file's own block is larger
FILE_CHUNK_BYTES = 64 * 2**20


def file_chunks(shape: Sequence[int], dims: Sequence[str], previous: Sequence[int] | None,
                dtype: Any) -> dict[str, Any]:
    """Dask chunks in the file's own order (``chunks="file"``): the on-disk blocks ``previous``
    where given (a NetCDF/HDF5 chunk such as 12 months x the whole grid is decompressed once),
    else one step (band, file) of the whole grid; steps are grouped, or a contiguous variable
    split along its first dimension, so a chunk stays near :data:`FILE_CHUNK_BYTES`. Used to
    read inputs once, in file order; the pipeline then writes them with time-contiguous
    chunks (``carbonsink.pipeline.steps.study_chunks``)."""
    item = max(np.dtype(dtype).itemsize, 4)
    sizes = [int(n) for n in shape]
    block = list(previous) if previous is not None else \
        [1 if d not in ("y", "x") else n for d, n in zip(dims, sizes)]
    block = [max(1, min(int(b), n)) if n else 1 for b, n in zip(block, sizes)]
    lead = [i for i, d in enumerate(dims) if d not in ("y", "x")]
    plane = item * int(np.prod([block[i] for i, d in enumerate(dims) if d in ("y", "x")]))
    if lead:
        i = lead[0]
        per_step = plane * int(np.prod([block[j] for j in lead[1:]]))
        fit = max(1, FILE_CHUNK_BYTES // max(per_step, 1))
        if block[i] > fit:  # a contiguous or very large block: split it
            block[i] = fit
        elif block[i] == 1 and fit > 1:  # single steps (bands, files): group a few
            block[i] = min(sizes[i], fit, 12)
    return {d: b for d, b in zip(dims, block)}


def chunk_sizes(shape: Sequence[int], dims: Sequence[str], chunks: ChunksLike, dtype: Any,
                previous: Sequence[int] | None = None) -> dict[str, Any] | None:
    """Resolve a ``chunks`` argument to explicit sizes per dimension.

    ``"auto"`` (default): the ``time`` dimension (and any dimension other than
    ``y``/``x``) whole, ``y`` and ``x`` sized by dask (about 128 MiB per chunk,
    multiples of the file's block size ``previous`` where given). An int
    chunks ``y`` and ``x`` by that size; a mapping gives sizes per dimension
    (missing ones as for ``"auto"``); ``None`` returns ``None`` (no dask).
    """
    if chunks is None:
        return None
    if isinstance(chunks, str) and chunks == "file":
        return file_chunks(shape, dims, previous, dtype)
    spec: dict[str, Any] = {}
    for d in dims:
        spec[d] = "auto" if d in ("y", "x") else -1
    if isinstance(chunks, str):
        if chunks != "auto":
            raise InvalidArgumentError(f"chunks must be 'auto', an int, a mapping or None, "
                                       f"got {chunks!r}")
    elif isinstance(chunks, (int, np.integer)):
        for d in ("y", "x"):
            if d in spec:
                spec[d] = int(chunks)
    elif isinstance(chunks, Mapping):
        for k, v in chunks.items():
            if k in spec:
                spec[k] = v
    else:
        raise InvalidArgumentError(f"chunks must be 'auto', an int, a mapping or None, "
                                   f"got {chunks!r}")
    prev = tuple(previous) if previous is not None else None
    normal = normalize_chunks(tuple(spec[d] for d in dims), shape=tuple(shape),
                              dtype=np.dtype(dtype), previous_chunks=prev)
    return {d: c[0] if len(set(c[:-1])) <= 1 else c for d, c in zip(dims, normal)}


# --------------------------------------------------------------------------- time


def to_datetime64_ns(values: Any) -> np.ndarray:
    """Convert dates (datetime64 of any unit, strings, Timestamps) to datetime64[ns]."""
    return np.asarray(pd.DatetimeIndex(pd.to_datetime(values)).as_unit("ns").values)


def normalise_frequency(frequency: str | None) -> str | None:
    if frequency is None:
        return None
    if frequency in FREQUENCIES:
        return FREQUENCIES[frequency]
    if str(frequency).lower() in FREQUENCIES:
        return FREQUENCIES[str(frequency).lower()]
    raise InvalidArgumentError(f"unknown frequency {frequency!r}; valid values are 'day', "
                               "'8day', 'month', 'year', 'static' (or None to keep the file's "
                               "time stamps)")


def _cftime_to_datetime64(values: np.ndarray, frequency: str | None) -> np.ndarray | None:
    """cftime dates -> datetime64[ns], or None where a date does not exist in the
    standard calendar (e.g. 30 February of a 360-day calendar) and no frequency
    allows snapping it to its period start."""
    out = np.empty(values.shape, dtype="datetime64[ns]")
    for i, v in enumerate(values.ravel()):
        if frequency == "month":
            out.flat[i] = np.datetime64(f"{v.year:04d}-{v.month:02d}-01", "ns")
            continue
        if frequency == "year":
            out.flat[i] = np.datetime64(f"{v.year:04d}-01-01", "ns")
            continue
        try:
            ts = pd.Timestamp(year=v.year, month=v.month, day=v.day, hour=v.hour,
                              minute=v.minute, second=v.second, microsecond=v.microsecond)
        except ValueError:
            return None
        out.flat[i] = ts.as_unit("ns").to_datetime64()
    return out


def snap_to_period_start(times: np.ndarray, frequency: str) -> np.ndarray:
    idx = pd.DatetimeIndex(times)
    if frequency == "month":
        snapped = idx.to_period("M").to_timestamp()
    elif frequency == "year":
        snapped = idx.to_period("Y").to_timestamp()
    else:
        snapped = idx.normalize()
    return np.asarray(snapped.as_unit("ns").values)


def decode_time_values(values: np.ndarray, attrs: dict[str, Any], *, frequency: str | None,
                       source: str) -> tuple[np.ndarray, dict[str, Any]]:
    """Time values -> (datetime64[ns] values, coordinate attrs), in the given order.

    cftime calendars are converted when every date exists in the standard
    calendar; otherwise ``frequency`` ('month' or 'year') is needed to map each
    date to its period start. With ``frequency`` given, time stamps are moved
    to the start of their period (mid-month stamps -> the 1st) and two stamps
    falling into one period raise :class:`InputError`.
    """
    freq = normalise_frequency(frequency)
    if freq == "static":
        freq = None
    attrs = dict(attrs)
    if values.dtype == object:
        calendar = getattr(values.flat[0], "calendar", None) if values.size else None
        conv = _cftime_to_datetime64(values, freq)
        if conv is None:
            raise InputError(
                f"{source}: time uses the {calendar!r} calendar, whose dates (e.g. 30 February) "
                "do not all exist in the standard calendar; fix: give frequency: month (or "
                "year) for this input so each date is mapped to the start of its period")
        values = conv
        if calendar:
            attrs["original_calendar"] = str(calendar)
    elif np.issubdtype(values.dtype, np.datetime64):
        values = values.astype("datetime64[ns]")
    else:
        raise InputError(f"{source}: the time coordinate holds {values.dtype} values, not dates; "
                         "fix: give the file CF time units (e.g. 'days since 2000-01-01') or "
                         "use a date_pattern for one file per time step")
    if freq is not None:
        snapped = snap_to_period_start(values, freq)
        if len(np.unique(snapped)) != len(snapped):
            raise InputError(f"{source}: several time steps fall into one {freq} "
                             f"(frequency={frequency!r}); fix: give the input's true frequency "
                             "or aggregate it in time first")
        if not np.array_equal(snapped, values):
            attrs["period_start_snapped"] = freq
        values = snapped
    return values, attrs


def standardise_time(da: xr.DataArray, *, frequency: str | None, source: str) -> xr.DataArray:
    """Make the ``time`` coordinate datetime64[ns] (see :func:`decode_time_values`),
    sorted and unique."""
    if "time" not in da.dims:
        return da
    values, attrs = decode_time_values(da["time"].values, da["time"].attrs,
                                       frequency=frequency, source=source)
    out = da.assign_coords(time=("time", values, attrs))
    if not out.indexes["time"].is_monotonic_increasing:
        out = out.sortby("time")
    if not out.indexes["time"].is_unique:
        raise InputError(f"{source}: duplicate time stamps; fix: remove duplicated files or steps")
    return out


# --------------------------------------------------------------------------- CRS


def parse_crs(crs: Any, *, source: str = "crs") -> CRS:
    try:
        return CRS.from_user_input(crs)
    except CRSError as exc:
        raise InvalidArgumentError(f"{source}: cannot read CRS {crs!r} ({exc}); give an EPSG "
                                   "code ('EPSG:4326'), a PROJ string or WKT") from None


def no_crs_error(source: str, variable: str | None) -> AlignmentError:
    var = f" variable {variable}" if variable else ""
    return AlignmentError(
        f"no CRS: file {source}{var} has no grid_mapping, crs_wkt or spatial_ref and no lat/lon "
        "dimensions; fix: give crs: in the study input (e.g. crs: EPSG:4326)")


def attach_crs(da: xr.DataArray, crs: Any) -> xr.DataArray:
    """Write ``crs`` onto ``da`` as the rioxarray ``spatial_ref`` grid mapping."""
    crs = crs if isinstance(crs, CRS) else parse_crs(crs)
    grid_mapping = da.encoding.get("grid_mapping", da.attrs.get("grid_mapping", "spatial_ref"))
    if grid_mapping in da.coords and grid_mapping != "spatial_ref":
        da = da.drop_vars(grid_mapping)
    da.attrs.pop("grid_mapping", None)
    da.encoding.pop("grid_mapping", None)
    if "x" in da.dims and "y" in da.dims:
        da = da.rio.set_spatial_dims(x_dim="x", y_dim="y")
    return da.rio.write_crs(crs, grid_mapping_name="spatial_ref")


# --------------------------------------------------------------------------- attributes


def serialisable_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """Attributes as netCDF/GeoTIFF can store them (str, numbers, 1-D number arrays).

    Mappings, lists of strings, booleans and None become JSON text so nothing is
    dropped silently.
    """
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        key = str(k)
        if isinstance(v, (bool, np.bool_)):
            out[key] = int(v)
        elif isinstance(v, (str, int, float, np.integer, np.floating)):
            out[key] = v
        elif isinstance(v, np.ndarray) and v.dtype.kind in "iuf" and v.ndim == 1:
            out[key] = v
        elif isinstance(v, (list, tuple)) and v and all(
                isinstance(e, (int, float, np.integer, np.floating)) and
                not isinstance(e, (bool, np.bool_)) for e in v):
            out[key] = np.asarray(v)
        elif isinstance(v, (np.datetime64, pd.Timestamp)):
            out[key] = str(pd.Timestamp(v).isoformat())
        else:
            out[key] = json.dumps(v, default=str, sort_keys=True)
    return out


def text_tags(attrs: Mapping[str, Any]) -> dict[str, str]:
    """Attributes as GeoTIFF tags (all strings)."""
    tags = {}
    for k, v in serialisable_attrs(attrs).items():
        if isinstance(v, np.ndarray):
            tags[k] = json.dumps(v.tolist())
        else:
            tags[k] = str(v)
    return tags


def small_integer(dtype) -> bool:
    """Whether ``dtype`` is an integer of at most 16 bits (how products pack their values
    with a scale and offset, and how carbonsink keeps them: see ``io.read_cube``)."""
    dt = np.dtype(dtype)
    return dt.kind in "iu" and dt.itemsize <= 2
