"""GeoTIFF readers (single files, one-file-per-time-step series, multi-band
stacks) and the Cloud-Optimized GeoTIFF writer.

Conventions
-----------
* ``nodata`` becomes NaN; the band's GDAL scale/offset, or else ``scale_factor``
  / ``add_offset`` tags (band tags before dataset tags), are applied.
* The ``units`` attribute comes from a ``units`` tag (band, then dataset) or the
  band's GDAL unit type; it describes the values *after* scale and offset.
* Other tags are kept as attributes; the CRS travels as rioxarray's
  ``spatial_ref`` coordinate.
* Reading is lazy: dask chunks over space, the whole ``time`` axis in one chunk.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import rasterio
import rasterio.shutil
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from rasterio.errors import RasterioIOError
from rasterio.io import MemoryFile

from ..errors import AlignmentError, InputError, InvalidArgumentError
from ._common import (ChunksLike, PathLike, attach_crs, chunk_sizes, expand_paths, parse_crs,
                      small_integer, text_tags, to_datetime64_ns)
from .atomic import atomic_write

__all__ = ["read_geotiff", "read_geotiff_series", "write_cog", "class_palette", "parse_date",
           "GEOTIFF_SUFFIXES"]

GEOTIFF_SUFFIXES = (".tif", ".tiff", ".gtif")
_SCALE_KEYS = ("scale_factor", "add_offset")
_DROP_ATTRS = ("scale_factor", "add_offset", "_FillValue", "long_name")
#: encoding keys that say how the values are stored (packed integer type, scale, offset,
#: fill): true of a series only when every file stores its values the same way
_PACKING_KEYS = ("dtype", "rasterio_dtype", "scale_factor", "add_offset", "_FillValue",
                 "missing_value", "_Unsigned")


@dataclass(frozen=True)
class _Meta:
    path: Path
    count: int
    height: int
    width: int
    dtype: str
    crs: Any
    transform: Any
    nodata: float | None
    scales: tuple[float, ...]
    offsets: tuple[float, ...]
    tags: dict[str, str]
    band_tags: tuple[dict[str, str], ...]
    descriptions: tuple[str | None, ...]
    band_units: tuple[str, ...]
    block: tuple[int, int]


def _read_meta(path: Path) -> _Meta:
    try:
        with rasterio.open(path, driver="GTiff") as src:  # no VRT or other indirection
            return _Meta(
                path=path, count=src.count, height=src.height, width=src.width,
                dtype=src.dtypes[0], crs=src.crs, transform=src.transform, nodata=src.nodata,
                scales=tuple(src.scales), offsets=tuple(src.offsets), tags=dict(src.tags()),
                band_tags=tuple(dict(src.tags(i)) for i in range(1, src.count + 1)),
                descriptions=tuple(src.descriptions), band_units=tuple(src.units or ()),
                block=tuple(src.block_shapes[0]) if src.block_shapes else (src.height, src.width),
            )
    except RasterioIOError as exc:
        raise InputError(f"cannot read GeoTIFF {path}: {exc}; check that the file is a complete "
                         "GeoTIFF (re-download or re-export it)") from None


def _tag_float(meta: _Meta, key: str, band: int) -> float | None:
    for tags in (meta.band_tags[band] if meta.band_tags else {}, meta.tags):
        if key in tags:
            try:
                return float(tags[key])
            except ValueError:
                raise InputError(f"{meta.path}: tag {key}={tags[key]!r} is not a number; fix the "
                                 "tag (e.g. gdal_edit.py -mo) or remove it") from None
    return None


def _scale_offset(meta: _Meta, band: int) -> tuple[float, float]:
    """(scale, offset) for a 0-based band: GDAL band scale/offset, else tags."""
    scale = meta.scales[band] if meta.scales else 1.0
    offset = meta.offsets[band] if meta.offsets else 0.0
    if scale == 1.0 and offset == 0.0:
        scale = _tag_float(meta, "scale_factor", band)
        offset = _tag_float(meta, "add_offset", band)
        scale = 1.0 if scale is None else scale
        offset = 0.0 if offset is None else offset
    return scale, offset


def _units(meta: _Meta, band: int) -> str | None:
    if meta.band_tags and "units" in meta.band_tags[band]:
        return meta.band_tags[band]["units"]
    if "units" in meta.tags:
        return meta.tags["units"]
    if meta.band_units and meta.band_units[band]:
        return meta.band_units[band]
    return None


def _attrs(meta: _Meta, bands: Sequence[int]) -> dict[str, Any]:
    attrs: dict[str, Any] = {k: v for k, v in meta.tags.items() if k not in _SCALE_KEYS}
    # band tags that agree across the bands read
    common = None
    for b in bands:
        bt = {k: v for k, v in (meta.band_tags[b] if meta.band_tags else {}).items()
              if k not in _SCALE_KEYS}
        common = bt if common is None else {k: v for k, v in common.items() if bt.get(k) == v}
    attrs.update(common or {})
    units = {_units(meta, b) for b in bands}
    if len(units) > 1:
        raise InputError(f"{meta.path}: bands carry different units {sorted(map(str, units))}; "
                         "a stack must hold one variable in one unit")
    u = units.pop()
    if u is not None:
        attrs["units"] = u
    else:
        attrs.pop("units", None)
    return attrs


def _open(meta: _Meta, chunks: dict[str, Any] | None) -> xr.DataArray:
    kw: dict[str, Any] = {"masked": True, "mask_and_scale": False, "driver": "GTiff"}
    if chunks is not None:
        kw["chunks"] = {"band": 1, "y": chunks.get("y", "auto"), "x": chunks.get("x", "auto")}
    da = rioxarray.open_rasterio(meta.path, **kw)
    if isinstance(da, list):  # pragma: no cover - subdatasets are not GeoTIFF
        raise InputError(f"{meta.path}: holds several subdatasets; not a plain GeoTIFF")
    return da


def _layer_attrs(meta: _Meta, bands: Sequence[int]) -> dict[str, Any]:
    """Attributes of the decoded bands: :func:`_attrs` plus ``nodata_in_file``."""
    attrs = _attrs(meta, bands)
    if meta.nodata is not None and not (isinstance(meta.nodata, float) and math.isnan(meta.nodata)):
        attrs["nodata_in_file"] = meta.nodata
    return attrs


def _decode(da: xr.DataArray, meta: _Meta, bands: Sequence[int]) -> xr.DataArray:
    """Apply per-band scale/offset (nodata is already NaN) and set attrs."""
    pairs = [_scale_offset(meta, b) for b in bands]
    if len(set(pairs)) == 1:  # one scale and offset for every band (or none)
        da = _scale_block(da, *pairs[0])
    else:
        if da.dtype.kind != "f":
            da = da.astype("float32")
        s = xr.DataArray(np.array([p[0] for p in pairs], dtype=da.dtype), dims="band")
        o = xr.DataArray(np.array([p[1] for p in pairs], dtype=da.dtype), dims="band")
        da = da * s + o
    da.attrs = _layer_attrs(meta, bands)
    return da


def _grid_mismatch(ref: _Meta, meta: _Meta) -> str | None:
    if (ref.height, ref.width) != (meta.height, meta.width):
        return f"shape {meta.height}x{meta.width} differs from {ref.height}x{ref.width}"
    if ref.crs != meta.crs:
        return f"CRS {meta.crs} differs from {ref.crs}"
    tol = 1e-6 * max(abs(ref.transform.a), abs(ref.transform.e), 1e-12)
    if not ref.transform.almost_equals(meta.transform, precision=tol):
        return f"transform {tuple(meta.transform)[:6]} differs from {tuple(ref.transform)[:6]}"
    return None


def _finish(da: xr.DataArray, meta: _Meta, crs: Any, variable: str | None,
            units: str | None, *, packed: bool = True) -> xr.DataArray:
    """CRS, units, name and encoding of a decoded layer or series of ``meta``'s file(s).

    ``packed=False`` (a series whose files store their values differently): no packing
    encoding (``_PACKING_KEYS``) at all, so a copy is written as the decoded floats instead
    of being packed with the scale, offset and fill of ``meta`` alone.
    """
    if crs is not None:
        da = attach_crs(da, parse_crs(crs, source=str(meta.path)))
    elif meta.crs is None:
        raise AlignmentError(f"no CRS: file {meta.path} has no georeferencing; fix: give crs: in "
                             "the study input (e.g. crs: EPSG:4326)")
    else:
        da = attach_crs(da, da.rio.crs)
    if units is not None:
        if "units" in da.attrs and da.attrs["units"] != units:
            da.attrs["units_in_file"] = da.attrs["units"]
        da.attrs["units"] = units
    if variable is not None:
        da.name = variable
    da.encoding["source"] = str(meta.path)
    if packed:
        da.encoding.update(_packing(meta))
    else:
        for key in _PACKING_KEYS:
            da.encoding.pop(key, None)
    return da


def _packing(meta: _Meta) -> dict[str, Any]:
    """How the file stores the values when they are small integers with one scale and offset
    for every band (xarray's CF encoding keys), so a copy can be stored the same way."""
    if not small_integer(meta.dtype):
        return {}
    pairs = {_scale_offset(meta, b) for b in range(meta.count)}
    if len(pairs) != 1:
        return {}
    (s, o), = pairs
    enc: dict[str, Any] = {"dtype": np.dtype(meta.dtype), "scale_factor": s, "add_offset": o}
    if meta.nodata is not None and not (isinstance(meta.nodata, float)
                                        and math.isnan(meta.nodata)):
        enc["_FillValue"] = meta.nodata
    return enc


def _same_packing(a: _Meta, b: _Meta) -> bool:
    """Whether band 1 of two files is stored the same way: dtype, nodata and scale/offset
    (then one encoding packs the decoded values of both exactly as in the files)."""
    return (a.dtype == b.dtype and _same_nodata(a.nodata, b.nodata)
            and _scale_offset(a, 0) == _scale_offset(b, 0))


# --------------------------------------------------------------------------- dates


def _compile(date_pattern: str | re.Pattern) -> re.Pattern:
    try:
        pat = re.compile(date_pattern) if isinstance(date_pattern, str) else date_pattern
    except re.error as exc:
        raise InvalidArgumentError(f"date_pattern {date_pattern!r} is not a valid regular "
                                   f"expression: {exc}") from None
    groups = set(pat.groupindex)
    if "year" not in groups:
        raise InvalidArgumentError(f"date_pattern {pat.pattern!r} needs a named group 'year', "
                                   r"e.g. r'NDVI_(?P<year>\d{4})(?P<month>\d{2})'")
    if "doy" in groups and ({"month", "day"} & groups):
        raise InvalidArgumentError(f"date_pattern {pat.pattern!r}: use either 'doy' or "
                                   "'month'/'day'")
    return pat


def parse_date(name: str, date_pattern: str | re.Pattern) -> np.datetime64:
    """Date encoded in a file name by ``date_pattern``.

    The pattern is searched in ``name`` (a path's file name is used) and must
    have a named group ``year`` and optionally ``month`` and ``day`` or ``doy``
    (day of year). Missing month/day default to 1, so ``(?P<year>\\d{4})``
    alone gives 1 January.
    """
    pat = _compile(date_pattern)
    base = Path(name).name
    m = pat.search(base)
    if m is None:
        raise InputError(f"cannot find a date in the file name {base!r} with date_pattern "
                         f"{pat.pattern!r}; fix the pattern or the file name")
    g = {k: v for k, v in m.groupdict().items() if v is not None}
    try:
        year = int(g["year"])
        if "doy" in g:
            ts = pd.Timestamp(year=year, month=1, day=1) + pd.Timedelta(days=int(g["doy"]) - 1)
            if ts.year != year or int(g["doy"]) < 1:
                raise ValueError(f"day of year {g['doy']} out of range")
        else:
            ts = pd.Timestamp(year=year, month=int(g.get("month", 1)), day=int(g.get("day", 1)))
    except (ValueError, KeyError) as exc:
        raise InputError(f"file name {base!r}: the date matched by {pat.pattern!r} "
                         f"({m.group(0)!r}) is not a valid date: {exc}") from None
    return np.datetime64(ts.as_unit("ns").to_datetime64(), "ns")


def _band_dates(meta: _Meta, band_dates: Any) -> np.ndarray:
    if isinstance(band_dates, str):
        if band_dates != "from_descriptions":
            raise InvalidArgumentError(f"band_dates must be a list of dates or "
                                       f"'from_descriptions', got {band_dates!r}")
        out = []
        for i, d in enumerate(meta.descriptions, start=1):
            try:
                if not d:
                    raise ValueError("no description")
                out.append(pd.Timestamp(d))
            except ValueError:
                raise InputError(f"{meta.path}: band {i} description {d!r} is not a date; fix: "
                                 "give band_dates as a list of dates (one per band)") from None
        return to_datetime64_ns(out)
    dates = list(band_dates)
    if len(dates) != meta.count:
        raise InputError(f"{meta.path}: {meta.count} bands but {len(dates)} band_dates; give "
                         "one date per band")
    try:
        return to_datetime64_ns(dates)
    except (ValueError, TypeError) as exc:
        raise InvalidArgumentError(f"band_dates for {meta.path} are not dates: {exc}") from None


# --------------------------------------------------------------------------- readers


def read_geotiff(path: PathLike, *, band_dates: Sequence[Any] | str | None = None,
                 variable: str | None = None, units: str | None = None,
                 chunks: ChunksLike = "auto", crs: Any = None) -> xr.DataArray:
    """Read one GeoTIFF (single band or a multi-band stack).

    Parameters
    ----------
    path : the GeoTIFF.
    band_dates : ``None`` -> a single band gives ``(y, x)``, several bands
        ``(band, y, x)``; a list of dates (one per band) or
        ``"from_descriptions"`` (band descriptions hold ISO dates) -> the
        band dimension becomes ``time`` (datetime64).
    variable : name of the result.
    units : overrides the file's ``units`` tag (the file's value is kept as
        ``units_in_file``).
    chunks : ``"auto"`` (space chunked by dask, time whole), int, mapping or
        ``None`` for no dask.
    crs : CRS to assign when the file has none (or to override it).
    """
    (p,) = expand_paths(path)
    meta = _read_meta(p)
    bands = list(range(meta.count))
    prev = None if chunks == "file" else (1, meta.block[0], meta.block[1])
    sizes = chunk_sizes((meta.count, meta.height, meta.width), ("band", "y", "x"), chunks,
                        "float32", prev)
    da = _decode(_open(meta, sizes), meta, bands)
    if band_dates is not None:
        times = _band_dates(meta, band_dates)
        if len(np.unique(times)) != len(times):
            raise InputError(f"{p}: band_dates contain duplicates")
        da = da.rename(band="time").assign_coords(time=("time", times))
        if not da.indexes["time"].is_monotonic_increasing:
            da = da.sortby("time")
        if sizes is not None:
            da = da.chunk({"time": -1})
    elif meta.count == 1:
        da = da.squeeze("band", drop=True)
        if meta.descriptions and meta.descriptions[0]:
            da.attrs.setdefault("long_name", meta.descriptions[0])
    else:
        da.attrs["band_descriptions"] = [d or "" for d in meta.descriptions]
    return _finish(da, meta, crs, variable, units)


def read_geotiff_series(files: PathLike | Iterable[PathLike], date_pattern: str | re.Pattern, *,
                        variable: str | None = None, units: str | None = None,
                        chunks: ChunksLike = "auto", crs: Any = None,
                        _fast: bool = True) -> xr.DataArray:
    """Stack single-band GeoTIFFs, one per time step, into ``(time, y, x)``.

    ``files`` is a glob pattern, a directory, or a list of paths. The date of
    each file is parsed from its name by ``date_pattern`` (a regular expression
    with named groups ``year`` and optionally ``month``, ``day`` or ``doy``,
    e.g. ``r"NDVI_(?P<year>\\d{4})(?P<month>\\d{2})"``); files are sorted by date.
    All files must share shape, CRS and transform (otherwise
    :class:`AlignmentError` names the offending file) and units and scaling
    tags. The result is lazy, chunked over space with time whole (``chunks="file"``:
    groups of files).

    When every file has the dtype, nodata and scale/offset of the first (the usual case),
    only the first file is opened with rioxarray and the series is one dask array with a
    task per file and spatial chunk; otherwise (or with the private ``_fast=False``) one
    array per file is opened and concatenated. Both give the same result.

    The ``encoding`` carries the files' packing (integer ``dtype``, ``scale_factor``,
    ``add_offset``, ``_FillValue``), so that ``to_netcdf``/``to_zarr`` store a copy as the
    files do, only when every file has the same dtype, nodata and scale/offset; a series of
    files packed differently has no packing encoding (it is written as the decoded floats:
    one file's packing would round, wrap or mask the values of the others).
    """
    paths = expand_paths(files, suffixes=GEOTIFF_SUFFIXES)
    pat = _compile(date_pattern)
    dated = sorted(((parse_date(p.name, pat), p) for p in paths), key=lambda t: t[0])
    times = np.array([d for d, _ in dated], dtype="datetime64[ns]")
    dup = pd.Index(times).duplicated()
    if dup.any():
        i = int(np.argmax(dup))
        same = [str(p) for d, p in dated if d == times[i]]
        raise InputError(f"several files have the date {str(times[i])[:10]}: {same}; fix the "
                         "date_pattern or remove the duplicates")
    metas = [_read_meta(p) for _, p in dated]
    ref = metas[0]
    for meta in metas:
        if meta.count != 1:
            raise InputError(f"{meta.path} has {meta.count} bands; a one-file-per-time-step "
                             "series needs single-band files (read multi-band stacks with "
                             "band_dates instead)")
        why = _grid_mismatch(ref, meta)
        if why:
            raise AlignmentError(f"file {meta.path} is not on the grid of {ref.path}: {why}; "
                                 "fix: reproject/resample it to the same grid (e.g. gdalwarp "
                                 "-te/-tr/-t_srs) or remove it from the series")
        if _units(meta, 0) != _units(ref, 0):
            raise InputError(f"{meta.path} has units {_units(meta, 0)!r} but {ref.path} has "
                             f"{_units(ref, 0)!r}; a series must hold one unit")
    sizes = chunk_sizes((len(metas), ref.height, ref.width), ("time", "y", "x"), chunks,
                        "float32", None if chunks == "file" else (1, ref.block[0], ref.block[1]))
    out = _stack_direct(metas, times, sizes, chunks) if _fast else None
    if out is None:
        out = _stack_concat(metas, times, sizes, chunks)
    out = out.rio.write_crs(ref.crs) if ref.crs is not None else out
    packed = all(_same_packing(ref, meta) for meta in metas[1:])
    return _finish(out, ref, crs, variable, units, packed=packed)


def _common_attrs(attrs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The attributes every layer of a series carries with the same value."""
    common = dict(attrs[0])
    for a in attrs[1:]:
        common = {k: v for k, v in common.items() if k in a and
                  np.array_equal(np.asarray(a[k]), np.asarray(v))}
    return common


def _stack_concat(metas: Sequence[_Meta], times: np.ndarray, sizes: dict[str, Any] | None,
                  chunks: ChunksLike) -> xr.DataArray:
    """Series as the concatenation of one rioxarray array per file (any mix of dtypes,
    nodata values and scalings; ~16 ms per file to open)."""
    layers = []
    for meta in metas:
        da = _decode(_open(meta, sizes), meta, [0]).squeeze("band", drop=True)
        layers.append(da.drop_vars("spatial_ref", errors="ignore"))
    attrs = _common_attrs([layer.attrs for layer in layers])
    out = xr.concat(layers, dim="time", coords="minimal", compat="override",
                    combine_attrs="drop", join="override")
    out = out.assign_coords(time=("time", times))
    out.attrs = attrs
    if sizes is not None:
        out = out.chunk({"time": sizes["time"] if chunks == "file" else -1})
    return out


def _same_nodata(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is b
    return a == b or (math.isnan(a) and math.isnan(b))


def _scale_block(x: np.ndarray, scale: float, offset: float) -> np.ndarray:
    """``x * scale + offset`` (numpy or xarray; integers become float32 first, the scale and
    offset take the data's float type); unchanged when the pair is (1, 0)."""
    if (scale, offset) != (1.0, 0.0):
        if x.dtype.kind != "f":
            x = x.astype("float32")
        x = x * np.asarray(scale, dtype=x.dtype) + np.asarray(offset, dtype=x.dtype)
    return x


def _read_block(path: str, rows: tuple[int, int], cols: tuple[int, int], dtype: np.dtype,
                scale: float, offset: float) -> np.ndarray:
    """One window of band 1 of one file as ``(1, rows, cols)``: masked like
    ``rioxarray.open_rasterio(masked=True)`` (pixels masked by GDAL, i.e. nodata, become NaN
    of the promoted ``dtype``), then scaled. Opens its own dataset (thread-safe)."""
    with rasterio.open(path, driver="GTiff") as src:
        raw = src.read(1, window=(rows, cols), masked=True)
    x = np.ma.filled(raw.astype(dtype), np.nan)
    return _scale_block(x, scale, offset)[None]


def _stack_direct(metas: Sequence[_Meta], times: np.ndarray, sizes: dict[str, Any] | None,
                  chunks: ChunksLike) -> xr.DataArray | None:
    """Series built as one dask array (one task per file and spatial chunk) when every file
    has the dtype, nodata and scale/offset of the first; only the first file is opened
    with rioxarray (coordinates, encoding). Gives the same array, attributes and encoding
    as :func:`_stack_concat`, or None when the files differ (the caller then concatenates)."""
    import dask.array as dsa
    from dask.array.core import normalize_chunks
    from dask.base import tokenize
    from dask.highlevelgraph import HighLevelGraph

    ref = metas[0]
    pair = _scale_offset(ref, 0)
    if not all(_same_packing(ref, meta) for meta in metas[1:]):
        return None
    raw = _open(ref, sizes)
    masked = raw.dtype
    if masked.kind not in "fc":  # rioxarray promotes to a NaN-capable dtype; else be safe
        return None
    template = _decode(raw, ref, [0]).squeeze("band", drop=True)
    template = template.drop_vars("spatial_ref", errors="ignore")
    dtype = _scale_block(np.zeros((0, 0), dtype=masked), *pair).dtype
    if dtype != template.dtype or template.dims != ("y", "x"):
        return None
    n, h, w = len(metas), ref.height, ref.width
    paths = [str(m.path) for m in metas]
    if sizes is None:
        data: Any = np.empty((n, h, w), dtype=dtype)
        for i, p in enumerate(paths):
            data[i] = _read_block(p, (0, h), (0, w), masked, *pair)[0]
    else:
        ych, xch = normalize_chunks((sizes["y"], sizes["x"]), shape=(h, w), dtype=dtype)
        mtimes = [m.path.stat().st_mtime_ns for m in metas]
        tch = normalize_chunks((sizes["time"] if chunks == "file" else -1,), shape=(n,))[0]
        token = tokenize(paths, mtimes, tch, ych, xch, str(masked), pair)
        rname = "read_geotiff_file-" + token
        ystart = np.cumsum((0,) + ych)
        xstart = np.cumsum((0,) + xch)
        layers = {rname: {(rname, t, i, j): (_read_block, p, (int(ystart[i]), int(ystart[i + 1])),
                                             (int(xstart[j]), int(xstart[j + 1])), masked, *pair)
                          for t, p in enumerate(paths)
                          for i in range(len(ych)) for j in range(len(xch))}}
        deps: dict[str, set[str]] = {rname: set()}
        name = rname
        if max(tch) > 1:  # group the files into the time chunks (no dask rechunk planning)
            name = "read_geotiff_series-" + token
            tstart = np.cumsum((0,) + tch)
            layers[name] = {(name, k, i, j): (np.concatenate, [(rname, t, i, j) for t in
                                                               range(tstart[k], tstart[k + 1])], 0)
                            for k in range(len(tch))
                            for i in range(len(ych)) for j in range(len(xch))}
            deps[name] = {rname}
        graph = HighLevelGraph(layers, deps)
        data = dsa.Array(graph, name, chunks=(tch if name != rname else (1,) * n, ych, xch),
                         dtype=dtype)
    out = xr.DataArray(data, dims=("time", "y", "x"),
                       coords={k: v.variable for k, v in template.coords.items()})
    out.name = template.name  # (xarray would take the dask array's name)
    out = out.assign_coords(time=("time", times))
    out.attrs = _common_attrs([_layer_attrs(m, [0]) for m in metas])
    out.encoding = dict(template.encoding)
    return out


# --------------------------------------------------------------------------- writer


def _require_cog_driver() -> None:
    with rasterio.Env() as env:
        if "COG" not in env.drivers():
            raise RuntimeError(f"GDAL {rasterio.__gdal_version__} has no COG driver (needs GDAL "
                               ">= 3.1); upgrade rasterio (its wheels bundle a recent GDAL)")


#: colours of the classes of a class map, by role (hex RGB); see :func:`class_palette`
_DECREASE = ("#8c2d04", "#cc4c02", "#ec7014", "#fe9929", "#fec44f", "#fee391")
_INCREASE = ("#d9f0a3", "#addd8e", "#78c679", "#41ab5d", "#238443", "#005a32")
_NEUTRAL = "#e0e0e0"
_SOURCE = "#d7301f"


def _ramp(colours: Sequence[str], k: int) -> list[str]:
    """``k`` colours spread evenly over ``colours`` (in their order)."""
    if k <= 0:
        return []
    if k == 1:
        return [colours[len(colours) // 2]]
    return [colours[i] for i in np.linspace(0, len(colours) - 1, k).round().astype(int)]


def class_palette(codes: Sequence[int], labels: Sequence[str] | None = None) -> dict[int, str]:
    """Colours (hex ``#rrggbb``) of the classes of a class map, one per code.

    Signed schemes (codes below 0, e.g. the Sen/MK nine classes −4…4 or the OLS classes
    −3…3): decreasing classes in browns (darkest = most negative), ``0`` light grey,
    increasing classes in greens (darkest = most positive). Non-negative schemes whose
    label contains "source" (the sink schemes of docs/methods.md §4.2): the source class red, the
    sink classes greens from light (weak) to dark (strong). Other non-negative schemes:
    greens from light to dark. Used by :func:`write_cog` for the colour table and by the
    report's categorical maps, so the file and the figure agree.
    """
    codes = [int(c) for c in codes]
    labels = list(labels) if labels is not None else [""] * len(codes)
    out: dict[int, str] = {}
    neg = sorted(c for c in codes if c < 0)
    if neg:
        pos = sorted(c for c in codes if c > 0)
        for c, col in zip(neg, _ramp(_DECREASE, len(neg))):
            out[c] = col
        for c, col in zip(pos, _ramp(_INCREASE, len(pos))):
            out[c] = col
        if 0 in codes:
            out[0] = _NEUTRAL
        # a binary sink map (source −1, neutral 0, sink 1) reads best in red / grey / green
        lab = dict(zip(codes, labels))
        for c in codes:
            if "source" in str(lab.get(c, "")).lower():
                out[c] = _SOURCE
        return out
    lab = dict(zip(codes, labels))
    src = [c for c in codes if "source" in str(lab.get(c, "")).lower()]
    rest = sorted(c for c in codes if c not in src)
    for c in src:
        out[c] = _SOURCE
    for c, col in zip(rest, _ramp(_INCREASE[1:], len(rest))):
        out[c] = col
    return out


def _class_legend(da: xr.DataArray) -> tuple[list[int], list[str]] | None:
    """(codes, labels) of a class map (CF ``flag_values`` with ``labels`` or
    ``flag_meanings``), or None for a continuous layer."""
    import json

    fv = da.attrs.get("flag_values")
    if fv is None:
        return None
    codes = [int(v) for v in np.atleast_1d(np.asarray(fv))]
    labels = da.attrs.get("labels")
    if isinstance(labels, str):
        try:
            labels = json.loads(labels)
        except json.JSONDecodeError:
            labels = None
    if labels is None or len(labels) != len(codes):
        labels = [m.replace("_", " ") for m in str(da.attrs.get("flag_meanings", "")).split()]
    if len(labels) != len(codes):
        labels = [str(c) for c in codes]
    return codes, [str(v) for v in labels]


def _hex_rgba(colour: str) -> tuple[int, int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def _write_category_names(path: Path, names: Sequence[str],
                          rows: Sequence[tuple[int, int, str, tuple[int, int, int, int]]]
                          ) -> Path:
    """GDAL PAM side-car ``<path>.aux.xml`` with the band's category names and a thematic
    raster attribute table (value, class code, name, colour).

    GDAL keeps category names and attribute tables of GeoTIFFs in this side-car; QGIS labels
    the colour-table entries with the category names, and QGIS >= 3.30 builds its paletted
    legend from the attribute table (only the classes, with their names and colours).
    ``rows`` are ``(stored value, class code, name, rgba)``.
    """
    from xml.sax.saxutils import escape

    cats = "\n".join(f"      <Category>{escape(n)}</Category>" for n in names)
    # GDAL field types: 0 integer, 2 string; usages: 5 min-max (the value), 0 generic,
    # 2 name, 6/7/8 red/green/blue
    fields = (("Value", 0, 5), ("Code", 0, 0), ("Class", 2, 2), ("Red", 0, 6),
              ("Green", 0, 7), ("Blue", 0, 8))
    defs = "\n".join(f'      <FieldDefn index="{i}">\n        <Name>{n}</Name>\n'
                     f"        <Type>{t}</Type>\n        <Usage>{u}</Usage>\n      </FieldDefn>"
                     for i, (n, t, u) in enumerate(fields))
    body = "\n".join(
        f'      <Row index="{i}">' + "".join(
            f"<F>{escape(str(v))}</F>" for v in (value, code, name, *rgba[:3])) + "</Row>"
        for i, (value, code, name, rgba) in enumerate(rows))
    text = ("<PAMDataset>\n  <PAMRasterBand band=\"1\">\n    <CategoryNames>\n"
            f"{cats}\n    </CategoryNames>\n"
            '    <GDALRasterAttributeTable tableType="thematic">\n'
            f"{defs}\n{body}\n    </GDALRasterAttributeTable>\n"
            "  </PAMRasterBand>\n</PAMDataset>\n")
    aux = path.with_name(path.name + ".aux.xml")
    with atomic_write(aux) as tmp:
        Path(tmp).write_text(text, encoding="utf-8")
    return aux


def write_cog(da: xr.DataArray, path: PathLike, *, attrs: dict[str, Any] | None = None,
              compress: str = "DEFLATE", blocksize: int = 512,
              overview_resampling: str | None = None, nodata: float | None = None,
              colors: dict[int, str] | None = None) -> Path:
    """Write one 2-D layer as a Cloud-Optimized GeoTIFF, atomically.

    ``da`` must have dims ``(y, x)`` (a length-1 ``time``/``band`` dimension is
    dropped, its value kept as a ``time`` tag) and a CRS. ``units``, ``long_name`` and every
    other attribute, plus ``attrs`` (provenance), become dataset tags; the band carries the
    units (GDAL unit type and band tag ``units``) and a description (``long_name``, else the
    name).

    **Continuous layers** (floats): NaN is nodata; integers use ``nodata`` or the
    ``_FillValue`` / ``nodata`` attribute. Overviews: ``overview_resampling`` (default
    ``"average"``).

    **Class maps** (a ``flag_values`` attribute with ``labels`` or ``flag_meanings``, as made
    by :mod:`carbonsink.stats.classes`; also after a NetCDF/Zarr round trip, where the fill
    became NaN) are written as ``uint8`` with a colour table (GDAL colour interpretation
    *palette*; colours from ``colors`` ``{code: "#rrggbb"}`` or :func:`class_palette`) and
    category names in the GDAL side-car ``<file>.aux.xml``, so QGIS opens them with their
    legend. Pixel values are the class codes when these lie in 0…254 (nodata 255);
    otherwise (signed codes such as −4…4) the codes are shifted to 1…k (value = code −
    min + 1, nodata 0) and the band tag ``class_codes`` maps each value to its code. Band
    tags ``class_names`` (``{value: name}``) and CF ``flag_values``/``flag_meanings`` (of
    the stored values) describe the legend for any reader. Overviews use ``"mode"``.

    Returns the path written.
    """
    import json

    path = Path(path)
    if not isinstance(da, xr.DataArray):
        raise TypeError(f"write_cog needs a DataArray, got {type(da).__name__}")
    _require_cog_driver()
    tags: dict[str, Any] = {}
    for d in [d for d in da.dims if d not in ("y", "x")]:
        if da.sizes[d] != 1:
            raise InvalidArgumentError(f"write_cog writes one 2-D layer; {da.name!r} has dims "
                                       f"{da.dims} ({d}={da.sizes[d]}); select a layer (da.isel({d}=i)) or loop")
        if d in da.coords:
            tags[d] = str(np.asarray(da[d].values).ravel()[0])
        da = da.squeeze(d, drop=True)
    if set(da.dims) != {"y", "x"}:
        raise InvalidArgumentError(f"write_cog needs dims (y, x), got {da.dims}")
    for c in list(da.coords):
        if c not in ("y", "x", "spatial_ref") and da[c].ndim == 0:
            tags.setdefault(c, str(da[c].values))
    crs = da.rio.crs
    if crs is None:
        raise AlignmentError(f"write_cog {path}: the layer {da.name!r} has no CRS; fix: set it "
                             "with da.rio.write_crs(...) before writing")
    da = da.transpose("y", "x")
    transform = da.rio.transform(recalc=True)
    legend = _class_legend(da)
    all_attrs = {k: v for k, v in da.attrs.items()
                 if k not in ("_FillValue", "grid_mapping", "missing_value")}
    all_attrs.update(attrs or {})
    values = np.asarray(da.values)  # computes dask input (a failure leaves no file)
    band_tags: dict[str, str] = {}
    names: list[str] | None = None
    rat: list = []
    colormap = None
    units = all_attrs.get("units")
    description = str(all_attrs.get("long_name") or da.name or "")
    if legend is not None:
        codes, labels = legend
        if nodata is not None:
            raise InvalidArgumentError(f"write_cog {path}: '{da.name}' is a class map; its "
                                       "nodata value is chosen by write_cog (leave nodata=None)")
        fill = da.attrs.get("_FillValue", da.encoding.get("_FillValue",
                                                           da.attrs.get("missing_value")))
        v = values.astype(np.float64)
        bad = ~np.isfinite(v)
        if fill is not None:
            bad |= v == float(fill)
        present = np.unique(v[~bad]).astype(np.int64) if (~bad).any() else np.array([], int)
        unknown = sorted(set(present.tolist()) - set(codes))
        if unknown:
            raise InputError(f"write_cog {path}: class map '{da.name}' holds values {unknown} "
                             f"that are not among its flag_values {codes}")
        lo, hi = min(codes), max(codes)
        if lo >= 0 and hi <= 254:
            shift, fill_out = 0, 255
        else:
            if hi - lo + 1 > 254:
                raise InvalidArgumentError(f"write_cog {path}: class codes {lo}..{hi} span "
                                           "more than 254 values")
            shift, fill_out = 1 - lo, 0
        raw = np.where(bad, fill_out, np.where(bad, 0, v) + shift).astype(np.uint8)
        palette = dict(class_palette(codes, labels))
        palette.update({int(k): str(c) for k, c in (colors or {}).items()})
        colormap = {i: (0, 0, 0, 0) for i in range(256)}
        names = [""] * (max(codes) + shift + 1)
        rat = []
        for c, lab in zip(codes, labels):
            colormap[c + shift] = _hex_rgba(palette.get(c, _NEUTRAL))
            names[c + shift] = lab
            rat.append((c + shift, c, lab, colormap[c + shift]))
        values, fill, dtype = raw, fill_out, "uint8"
        stored = [c + shift for c in codes]
        band_tags["class_names"] = json.dumps({str(s): lab for s, lab in zip(stored, labels)})
        if shift:
            band_tags["class_codes"] = json.dumps({str(s): c for s, c in zip(stored, codes)})
        all_attrs["flag_values"] = np.asarray(stored)
        all_attrs["flag_meanings"] = " ".join("_".join(lab.split()) for lab in labels)
        all_attrs.pop("labels", None)
        units = units or "1"
        resampling = (overview_resampling or "mode").upper()
    else:
        if values.dtype.kind == "f":
            fill = np.nan if nodata is None else nodata
            if nodata is not None:
                values = np.where(np.isnan(values), nodata, values)
        else:
            fill = nodata if nodata is not None else da.attrs.get(
                "_FillValue", da.encoding.get("_FillValue", da.attrs.get("nodata")))
        if values.dtype == np.bool_:
            values = values.astype(np.uint8)
        if values.dtype.kind == "i" and values.dtype.itemsize == 8:
            values = values.astype(np.int32)
        dtype = values.dtype.name
        resampling = (overview_resampling or "average").upper()
    tags.update(text_tags(all_attrs))
    if units:
        band_tags["units"] = str(units)
    profile = dict(width=values.shape[1], height=values.shape[0], count=1, dtype=dtype,
                   crs=crs, transform=transform, nodata=fill, BIGTIFF="IF_SAFER")
    cog = dict(compress=compress, blocksize=blocksize, overview_resampling=resampling,
               BIGTIFF="IF_SAFER")
    if compress.upper() in ("DEFLATE", "ZSTD", "LZW") and values.dtype.kind == "f":
        # floating-point predictor at the fastest level: 5-17 % smaller than plain DEFLATE
        # at its default level and 10-35 % faster (measured on maps of the 1.2 M-pixel study)
        cog.update(predictor=3, **({"level": 1} if compress.upper() != "LZW" else {}))
    # the layer, its tags, colours and band metadata go into a plain GeoTIFF in memory; GDAL
    # builds the COG from it (overviews, compression) in one CreateCopy, which rasterio runs
    # without Python's interpreter lock: dask's threads and the other COG writers of the
    # step keep running meanwhile (opened for writing with driver="COG", the same work ran
    # on the dataset's close with the lock held: 7.5 s of lock at 1.2 M pixels). The files
    # are the same as written that way (values, tags, overviews, colour tables, sizes: the
    # 54 COGs of the 300 x 300 benchmark study compared)
    with atomic_write(path) as tmp, MemoryFile() as mem:
        with mem.open(driver="GTiff", **profile) as dst:
            dst.write(values, 1)
            if colormap is not None:
                dst.write_colormap(1, colormap)
            dst.update_tags(**tags)
            if band_tags:
                dst.update_tags(1, **band_tags)
            if description:
                dst.set_band_description(1, description)
            if units:
                dst.set_band_unit(1, str(units))
        with mem.open() as src:
            rasterio.shutil.copy(src, tmp, driver="COG", **cog)
    aux = path.with_name(path.name + ".aux.xml")
    if names is not None:
        _write_category_names(path, names, rat)
    elif aux.exists():  # a side-car of an earlier class map at this path would now lie
        aux.unlink()
    return path
