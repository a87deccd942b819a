"""``read_input``: one entry point for every gridded input of a study."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import xarray as xr

from ..errors import AlignmentError, InputError
from ._common import ChunksLike, PathLike, attach_crs, expand_paths, parse_crs, standardise_time
from .geotiff import GEOTIFF_SUFFIXES, read_geotiff, read_geotiff_series
from .modis import HDF_SUFFIXES, read_modis_hdf
from .netcdf import NETCDF_SUFFIXES, read_netcdf, read_zarr

#: ``product=`` values read by the model-output readers (``io.clm``, ``io.cmip``)
MODEL_PRODUCTS = ("clm", "cmip")

__all__ = ["read_input", "SUPPORTED_SUFFIXES", "check_local_input", "check_local_raster",
           "check_local_vector", "VECTOR_SUFFIXES"]

SUPPORTED_SUFFIXES = GEOTIFF_SUFFIXES + NETCDF_SUFFIXES + (".zarr",) + HDF_SUFFIXES


# --------------------------------------------------------------------------- local files only
#
# carbonsink reads only local files of the format their name announces, so that a run never
# fetches data over the network: a GDAL VRT named ``.tif``, an OGR VRT named ``.geojson``, a
# ``/vsicurl/`` path or an http(s) URL would make GDAL open other (possibly remote) files.
# Formats are recognised by their first bytes ("magic numbers"), before any driver opens the
# file; GeoTIFFs are then opened with the GTiff driver only.

_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NETCDF_MAGIC = (b"CDF\x01", b"CDF\x02", b"CDF\x05")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_HDF4_MAGIC = b"\x0e\x03\x13\x01"
#: vector suffix -> (format name, test of the first bytes)
VECTOR_SUFFIXES = {
    ".geojson": "GeoJSON", ".json": "GeoJSON", ".shp": "ESRI Shapefile", ".gpkg": "GeoPackage",
    ".fgb": "FlatGeobuf", ".parquet": "GeoParquet", ".zip": "zipped Shapefile",
}
_REMOTE_RE = re.compile(r"(^|/)(vsi[a-z0-9_]+|[A-Za-z][A-Za-z0-9+.-]*:)(/|$)")


def _head(path: Path, n: int = 4096) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read(n)
    except OSError:
        return b""


def _looks_like(head: bytes) -> str:
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n")[:400].lower()
    if b"<vrtdataset" in text:
        return "a GDAL VRT (an XML file that points at other, possibly remote, files)"
    if b"<ogrvrtdatasource" in text:
        return "an OGR VRT (an XML file that points at other, possibly remote, files)"
    if text.startswith(b"<"):
        return "an XML file"
    if text.startswith((b"http://", b"https://", b"/vsi")):
        return "a link to a remote file"
    if any(head.startswith(m) for m in _TIFF_MAGIC):
        return "a TIFF file"
    if head.startswith(_NETCDF_MAGIC) or head.startswith(_HDF5_MAGIC):
        return "a NetCDF/HDF5 file"
    if head.startswith(_HDF4_MAGIC):
        return "an HDF4 file"
    if not head:
        return "empty"
    return "an unknown format"


def _where(key: str | None) -> str:
    return f" ({key} in the study file)" if key else ""


def _refuse_remote(path: Path | str, key: str | None) -> None:
    text = str(path)
    if "://" in text or _REMOTE_RE.search(text.replace("\\", "/")):
        raise InputError(f"{text}{_where(key)} is a URL or a GDAL virtual path; carbonsink reads "
                         "only local files, so that a run never fetches data over the network. "
                         "Fix: download the file and give its local path")


def _mismatch(path: Path, expected: str, head: bytes, key: str | None, fix: str) -> InputError:
    found = _looks_like(head)
    return InputError(f"{path}{_where(key)} is not a {expected} file: it is {found}. "
                      "carbonsink reads local files in their own format only (no VRT or other "
                      f"indirection that could reach the network). Fix: {fix}")


def check_local_input(path: PathLike | Iterable[PathLike], *, key: str | None = None) -> None:
    """Refuse a study input (path, glob or list) that is a URL, a GDAL ``/vsi…`` path, or a
    file whose content is text rather than binary raster data (e.g. a GDAL VRT named
    ``.tif``); corrupt binary files are left to the readers, which name the problem.

    Missing files are left to :func:`read_input` (which names them). Raises
    :class:`InputError`.
    """
    items = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    for item in items:
        _refuse_remote(item, key)
    try:
        files = expand_paths(path, suffixes=GEOTIFF_SUFFIXES + NETCDF_SUFFIXES + HDF_SUFFIXES,
                             **({"name": f"{key}"} if key else {}))
    except InputError:
        return
    for p in files:
        if p.is_dir():
            continue
        head = _head(p)
        if _is_text(head):
            expected = {"geotiff": "GeoTIFF", "netcdf": "NetCDF", "modis": "HDF"}.get(
                _kind_or_none(p), "raster")
            raise _mismatch(p, expected, head, key,
                            "convert it to a GeoTIFF (gdal_translate in.vrt out.tif) or give "
                            "the data file itself")


def _kind_or_none(p: Path) -> str | None:
    try:
        return _kind(p)
    except InputError:
        return None


def _is_text(head: bytes) -> bool:
    """True for a file that starts like text (XML, JSON, a URL): raster formats are binary,
    while GDAL's text formats (VRT, WMS/WCS descriptions, STAC ...) point at other files."""
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if not stripped:
        return False
    if stripped[:1] in (b"<", b"{", b"["):
        return True
    return stripped.lower().startswith((b"http:", b"https:", b"ftp:", b"/vsi"))


def check_local_raster(path: PathLike, *, key: str | None = None) -> None:
    """Refuse a raster (e.g. a grid template) given as a URL or ``/vsi…`` path, or whose file
    is text (a GDAL VRT or another description that points at other files) rather than a
    binary raster. Raises :class:`InputError`."""
    _refuse_remote(path, key)
    p = Path(path)
    if not p.is_file():
        return  # the reader names a missing file
    head = _head(p)
    if _is_text(head):
        raise _mismatch(p, "GeoTIFF", head, key, "give a GeoTIFF (gdal_translate in.vrt out.tif)")


def check_local_vector(path: PathLike, *, key: str | None = None) -> None:
    """Refuse a polygon layer that is not a local file of a supported format (GeoJSON,
    Shapefile, GeoPackage, FlatGeobuf, GeoParquet, zipped Shapefile), or whose content does
    not match its suffix (e.g. an OGR VRT named ``.geojson``). Raises :class:`InputError`."""
    _refuse_remote(path, key)
    p = Path(path)
    if not p.exists():
        return  # the reader names a missing file
    s = p.suffix.lower()
    if s not in VECTOR_SUFFIXES:
        raise InputError(f"{p}{_where(key)}: unsupported polygon format {p.suffix or '(none)'!r};"
                         f" supported: {', '.join(sorted(set(VECTOR_SUFFIXES.values())))} "
                         f"({', '.join(VECTOR_SUFFIXES)}). Fix: convert it (ogr2ogr out.gpkg "
                         "in.file)")
    if p.is_dir():
        raise InputError(f"{p}{_where(key)} is a folder; give the polygon file itself")
    head = _head(p)
    fmt = VECTOR_SUFFIXES[s]
    stripped = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    ok = {
        "GeoJSON": stripped.startswith(b"{"),
        "ESRI Shapefile": head.startswith(b"\x00\x00\x27\x0a"),
        "GeoPackage": head.startswith(b"SQLite format 3\x00"),
        "FlatGeobuf": head.startswith(b"fgb\x03"),
        "GeoParquet": head.startswith(b"PAR1"),
        "zipped Shapefile": head.startswith(b"PK\x03\x04"),
    }[fmt]
    if ok and fmt == "zipped Shapefile":
        import zipfile

        try:
            names = zipfile.ZipFile(p).namelist()
        except (OSError, zipfile.BadZipFile):
            names = []
        ok = any(n.lower().endswith(".shp") for n in names) and \
            not any(n.lower().endswith((".vrt", ".xml")) for n in names)
    if not ok:
        raise _mismatch(p, fmt, head, key, "convert it to a GeoPackage or GeoJSON file "
                        "(ogr2ogr -f GPKG out.gpkg in.file)")


def _kind(path: Path) -> str:
    s = path.suffix.lower()
    if s in GEOTIFF_SUFFIXES:
        return "geotiff"
    if s in NETCDF_SUFFIXES:
        return "netcdf"
    if s == ".zarr" or (path.is_dir() and ((path / ".zgroup").exists() or
                                           (path / "zarr.json").exists())):
        return "zarr"
    if s in HDF_SUFFIXES:
        return "modis"
    raise InputError(f"cannot read {path}: unknown format {path.suffix or '(no suffix)'!r}; "
                     f"supported are {', '.join(SUPPORTED_SUFFIXES)}; fix: convert the file or "
                     "give it the right suffix")


def _read_model_output(files: list[Path], product: str, *, variable: str | None,
                       units: str | None, frequency: str | None, crs: Any,
                       chunks: ChunksLike, date_pattern: Any, band_dates: Any,
                       sds: Any) -> xr.DataArray:
    """``product="clm"`` / ``"cmip"``: per-period totals from the model calendar.

    The readers convert rates with the true period lengths of the model calendar
    and stamp period starts, so the result is already in canonical units and
    ``units.to_canonical`` leaves it unchanged.
    """
    from ..errors import InvalidArgumentError
    from ._common import normalise_frequency
    from .clm import read_clm_history
    from .cmip import read_cmip

    label = "CLM history" if product == "clm" else "CMIP"
    bad = [p for p in files if p.suffix.lower() not in NETCDF_SUFFIXES]
    if bad:
        raise InputError(f"product: {product} reads {label} NetCDF files; {bad[0]} is not one "
                         "(suffix .nc); fix: give the NetCDF files or drop product:")
    for key, value in (("date_pattern", date_pattern), ("band_dates", band_dates),
                       ("sds", sds)):
        if value is not None:
            raise InvalidArgumentError(f"{key} does not apply to product: {product} ({label} "
                                       f"files carry their own time axis); remove it")
    if chunks == "file":  # model output on coarse grids: the default chunking is file order
        chunks = "auto"
    if product == "clm":
        ds = read_clm_history(files, variable, chunks=chunks)
        if len(ds.data_vars) != 1:
            raise InputError(f"{files[0]} holds several CLM fields {sorted(ds.data_vars)}; "
                             "fix: give variable: (e.g. npp, rh, nep, tas, pr, sol)")
        da = ds[next(iter(ds.data_vars))]
    else:
        da = read_cmip(files, variable, chunks=chunks)
    if units is not None and units != da.attrs.get("units"):
        raise InvalidArgumentError(
            f"units: {units!r} given for {files[0]}, but product: {product} takes the units "
            f"from the file ({da.attrs.get('units_in_file')!r}) and returns "
            f"{da.attrs.get('units')!r} per period of the model calendar; fix: remove units:")
    if "y" not in da.dims or "x" not in da.dims:
        raise InputError(f"{files[0]}: {da.name!r} is a series without latitude/longitude "
                         f"(dims {da.dims}); a study input must be gridded; fix: read it with "
                         f"carbonsink.io.{'read_cmip' if product == 'cmip' else 'read_clm_history'}"
                         " instead")
    freq = normalise_frequency(frequency)
    period = da.attrs.get("carbonsink_period")
    if freq in ("day", "month", "year") and period != freq:
        raise InputError(f"{files[0]}: frequency {frequency!r} given, but the file holds "
                         f"{period}ly periods (from its time bounds); fix: give frequency: "
                         f"{period} or aggregate the file in time first")
    if crs is not None:
        da = attach_crs(da, parse_crs(crs, source=str(files[0])))
    return da


def read_input(path: PathLike | Iterable[PathLike], *, variable: str | None = None,
               units: str | None = None, date_pattern: str | None = None,
               band_dates: Sequence[Any] | str | None = None, frequency: str | None = None,
               crs: Any = None, chunks: ChunksLike = "auto", product: str | None = None,
               sds: str | None = None) -> xr.DataArray:
    """Read a gridded study input as a DataArray ``(time, y, x)`` or ``(y, x)``.

    Dispatches on the suffix: ``.tif/.tiff`` (one file, a multi-band stack
    with ``band_dates``, or a glob / list of one-file-per-step GeoTIFFs whose
    dates ``date_pattern`` parses from the names), ``.nc/.nc4`` (one or more
    files concatenated on time), ``.zarr``, ``.hdf`` (MODIS HDF4-EOS tiles;
    ``sds`` or else ``variable`` names the SDS, ``product`` the short name).
    ``product="clm"`` reads CLM5/CTSM history files (:func:`read_clm_history`)
    and ``product="cmip"`` CMIP CMOR files (:func:`read_cmip`), selecting
    ``variable``: both return per-period totals computed in the model
    calendar, stamped at period starts, in canonical units.

    ``variable`` names the result (and selects the NetCDF/Zarr variable);
    ``units`` overrides the file's units (the file's are kept as
    ``units_in_file``); ``crs`` supplies or overrides the CRS; ``frequency``
    ('month', 'year', 'day') snaps time stamps to period starts. The result is
    lazy (dask, space chunked, time whole) unless ``chunks=None``.

    Raises :class:`InputError` for missing files, unmatched globs, unknown
    formats or unreadable files, and :class:`AlignmentError` when no CRS can
    be found (fix: ``crs:`` in the study input).
    """
    check_local_input(path)
    files = expand_paths(path, suffixes=GEOTIFF_SUFFIXES + NETCDF_SUFFIXES + HDF_SUFFIXES)
    kinds = {_kind(p) for p in files}
    if len(kinds) > 1:
        raise InputError(f"inputs {[str(p) for p in files]} mix formats {sorted(kinds)}; one "
                         "input must be one format")
    kind = kinds.pop()
    prod = product.strip().lower() if isinstance(product, str) else None
    if prod in MODEL_PRODUCTS:
        da = _read_model_output(files, prod, variable=variable, units=units,
                                frequency=frequency, crs=crs, chunks=chunks,
                                date_pattern=date_pattern, band_dates=band_dates, sds=sds)
    elif kind == "geotiff":
        if len(files) > 1 or date_pattern is not None:
            if date_pattern is None:
                raise InputError(f"{len(files)} GeoTIFF files given for one input but no "
                                 "date_pattern; fix: give date_pattern: with named groups year, "
                                 r"month (e.g. 'NDVI_(?P<year>\d{4})(?P<month>\d{2})')")
            if band_dates is not None:
                raise InputError("band_dates applies to one multi-band GeoTIFF; a series of "
                                 "files takes its dates from date_pattern")
            da = read_geotiff_series(files, date_pattern, variable=variable, units=units,
                                     chunks=chunks, crs=crs)
        else:
            da = read_geotiff(files[0], band_dates=band_dates, variable=variable, units=units,
                              chunks=chunks, crs=crs)
            if "band" in da.dims:
                raise InputError(f"{files[0]} has {da.sizes['band']} bands; fix: give "
                                 "band_dates: (a list with one date per band, or "
                                 "'from_descriptions') or select one band")
    elif kind == "netcdf":
        da = read_netcdf(files, variable, units=units, crs=crs, chunks=chunks,
                         frequency=frequency)
    elif kind == "zarr":
        if len(files) > 1:
            raise InputError(f"one Zarr store per input, got {[str(p) for p in files]}")
        da = read_zarr(files[0], variable, units=units, crs=crs, chunks=chunks,
                       frequency=frequency)
    else:
        name = sds or variable
        if name is None:
            raise InputError(f"{files[0]}: give sds: (e.g. Npp, Gpp, NDVI) for a MODIS HDF input")
        da = read_modis_hdf(files, name, product, variable=variable, chunks=chunks)
        if crs is not None:
            da = attach_crs(da, parse_crs(crs, source=str(files[0])))
        if units is not None and da.attrs.get("units") != units:
            da.attrs["units_in_file"] = da.attrs.get("units", "")
            da.attrs["units"] = units
    if kind in ("geotiff", "modis") and frequency is not None and "time" in da.dims:
        da = standardise_time(da, frequency=frequency, source=str(files[0]))
    extra = [d for d in da.dims if d not in ("time", "y", "x")]
    if extra:
        raise InputError(f"{files[0]}: variable {da.name!r} has extra dimensions "
                         f"{[(d, da.sizes[d]) for d in extra]}; carbonsink needs (time, y, x) "
                         "or (y, x); fix: select one level first (e.g. ncks -d <dim>,0)")
    if da.rio.crs is None:
        raise AlignmentError(f"no CRS: file {files[0]}; fix: give crs: in the study input")
    if variable is not None:
        da.name = variable
    da.encoding.setdefault("source", os.fspath(files[0]))
    return da
