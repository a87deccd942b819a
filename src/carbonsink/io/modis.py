"""MODIS HDF4-EOS tiles (MOD17A3HGF, MOD17A2H/A2HGF, MOD13A3/A1/A2/Q1, MCD12Q1).

Decoding follows carbonsink docs/methods.md §1.1: values equal to the SDS ``_FillValue`` or
outside the valid range (the product's rule intersected with the file's
``valid_range`` attribute) become NaN *before* the scale is applied; then the
scale and offset are applied and carbon is converted to grams:

========================  ===================  ==========================  =========================
product                   SDS (alias)          valid raw range             result
========================  ===================  ==========================  =========================
MOD17A3HGF / A3H (annual) ``Npp_500m`` (Npp)   -30000 .. 32700             DN x 0.1 g C m-2 yr-1
MOD17A3HGF / A3H (annual) ``Gpp_500m`` (Gpp)   0 .. 65500                  DN x 0.1 g C m-2 yr-1
MOD17A2H / A2HGF (8-day)  ``Gpp_500m`` (Gpp)   0 .. 32760 (file range)     DN x 0.1 g C m-2 per composite
MOD17A2H / A2HGF (8-day)  ``PsnNet_500m``      -30000 .. 32760             DN x 0.1 g C m-2 per composite
MOD13A3 / A1 / A2 / Q1    ``... NDVI`` (NDVI)  -2000 .. 10000, fill -3000  DN x 0.0001, units "1"
MCD12Q1                   ``LC_Type1`` ...     1 .. 17, fill 255           class code, units "1"
========================  ===================  ==========================  =========================

MOD13 files store ``scale_factor = 10000`` meaning "divide by"; MOD17 files
store ``0.0001`` meaning "multiply by". The product table decides which
convention a file uses; a file whose ``scale_factor`` matches neither is
rejected rather than decoded wrongly. MYD (Aqua) products decode like their
MOD counterparts. Unknown products are decoded from their own attributes
(fill, valid range, HDF4 calibration ``scale*(DN-offset)``) with a warning.

Georeferencing comes from the ``StructMetadata.0`` ODL text (``GridStructure``:
``UpperLeftPointMtrs``, ``LowerRightMtrs``, ``XDim``, ``YDim``, ``Projection``,
``ProjParams``); the sinusoidal sphere radius is 6371007.181 m. Tiles of one
date are mosaicked onto the union of their extents (the MODIS tiles share the
global grid, so they align exactly; gaps are NaN); dates are stacked on
``time`` (the file name's ``AYYYYDDD`` token, else ``RANGEBEGINNINGDATE`` of
``CoreMetadata.0``). Reading is lazy: each dask chunk reads its window from
the HDF4 file (under a process-wide lock; the HDF4 library is not
thread-safe).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr
from dask.base import tokenize
from dask.utils import SerializableLock
from pyproj import CRS

from ..errors import AlignmentError, InputError, UnknownNameError
from ..units import to_units
from ._common import ChunksLike, PathLike, attach_crs, chunk_sizes, expand_paths

__all__ = ["read_modis_hdf", "modis_grid", "ModisGrid", "SdsSpec", "PRODUCTS",
           "product_of", "MODIS_SPHERE_RADIUS", "MODIS_TILE_WIDTH", "SINUSOIDAL_PROJ",
           "HDF_SUFFIXES"]

from .._constants import MODIS_SPHERE_RADIUS  # noqa: E402  (the one definition)
#: width (and height) of one MODIS sinusoidal tile in metres
MODIS_TILE_WIDTH = 1111950.5197665
SINUSOIDAL_PROJ = ("+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R={R} +units=m +no_defs")
HDF_SUFFIXES = (".hdf", ".hdf4", ".h4", ".hdfeos")

_HDF4_LOCK = SerializableLock("carbonsink-hdf4")


@dataclass(frozen=True)
class SdsSpec:
    """How to decode one SDS of a MODIS product (carbonsink docs/methods.md §1.1)."""

    alias: str                      # short name users give: "Npp", "Gpp", "NDVI"
    names: tuple[str, ...]          # SDS names as stored in the files
    raw_units: str                  # units of DN x scale
    units: str                      # units of the result
    scale: float                    # multiplicative: physical = DN x scale
    valid_range: tuple[float, float]  # raw DN range that holds data
    fill: int                       # _FillValue when the file does not say
    long_name: str
    cell_methods: str | None = None


@dataclass(frozen=True)
class Product:
    name: str
    pattern: str                    # regex on the short name (file name prefix)
    sds: tuple[SdsSpec, ...]
    note: str = ""

    def spec_for(self, sds: str, available: Iterable[str]) -> SdsSpec | None:
        available = list(available)
        for s in self.sds:
            if sds in s.names:
                return s
        for s in self.sds:
            if sds.lower() == s.alias.lower() and any(n in available for n in s.names):
                return s
        return None


_MOD17_ANNUAL = Product(
    "MOD17A3HGF", r"^M[OY]D17A3H(GF)?$",
    (SdsSpec("Npp", ("Npp_500m", "Npp"), "kg C m-2 yr-1", "g C m-2 yr-1", 1e-4,
             (-30000, 32700), 32767, "net primary production (annual)"),
     SdsSpec("Gpp", ("Gpp_500m", "Gpp"), "kg C m-2 yr-1", "g C m-2 yr-1", 1e-4,
             (0, 65500), 65535, "gross primary production (annual)")),
    "annual; values > 32700 (Npp) are fill or non-vegetated codes")
_MOD17_8DAY = Product(
    "MOD17A2H", r"^M[OY]D17A2H(GF)?$",
    (SdsSpec("Gpp", ("Gpp_500m", "Gpp"), "kg C m-2", "g C m-2", 1e-4, (0, 32760), 32767,
             "gross primary production (8-day composite total)", "time: sum"),
     SdsSpec("PsnNet", ("PsnNet_500m", "PsnNet"), "kg C m-2", "g C m-2", 1e-4,
             (-30000, 32760), 32767, "net photosynthesis (8-day composite total)",
             "time: sum")),
    "8-day composites; codes >= 32761 flag fill and non-vegetated classes")


def _vi(resolution: str, period: str) -> tuple[SdsSpec, ...]:
    return (SdsSpec("NDVI", (f"{resolution} {period} NDVI",), "1", "1", 1e-4, (-2000, 10000),
                    -3000, "normalized difference vegetation index"),
            SdsSpec("EVI", (f"{resolution} {period} EVI",), "1", "1", 1e-4, (-2000, 10000),
                    -3000, "enhanced vegetation index"))


_MOD13A3 = Product("MOD13A3", r"^M[OY]D13A3$", _vi("1 km", "monthly"))
_MOD13A1 = Product("MOD13A1", r"^M[OY]D13A1$", _vi("500m", "16 days"))
_MOD13A2 = Product("MOD13A2", r"^M[OY]D13A2$", _vi("1 km", "16 days"))
_MOD13Q1 = Product("MOD13Q1", r"^M[OY]D13Q1$", _vi("250m", "16 days"))
_MCD12Q1 = Product(
    "MCD12Q1", r"^MCD12Q1$",
    tuple(SdsSpec(f"LC_Type{i}", (f"LC_Type{i}",), "1", "1", 1.0, (1, 254), 255,
                  f"land cover type {i} class code") for i in range(1, 6)))

#: the MODIS products with a decoding table
PRODUCTS: dict[str, Product] = {p.name: p for p in (_MOD17_ANNUAL, _MOD17_8DAY, _MOD13A3,
                                                     _MOD13A1, _MOD13A2, _MOD13Q1, _MCD12Q1)}


def product_of(short_name: str) -> Product | None:
    """The decoding table for a MODIS short name (``MOD17A3HGF``, ``MYD13A1`` ...)."""
    for p in PRODUCTS.values():
        if re.match(p.pattern, short_name, flags=re.IGNORECASE):
            return p
    return None


# --------------------------------------------------------------------------- ODL metadata


@dataclass(frozen=True)
class ModisGrid:
    """One HDF-EOS grid from ``StructMetadata.0``."""

    name: str
    xdim: int
    ydim: int
    upper_left: tuple[float, float]
    lower_right: tuple[float, float]
    projection: str
    proj_params: tuple[float, ...]
    fields: tuple[str, ...] = field(default_factory=tuple)

    @property
    def crs(self) -> CRS:
        if self.projection == "GCTP_SNSOID":
            r = self.proj_params[0] if self.proj_params and self.proj_params[0] > 0 \
                else MODIS_SPHERE_RADIUS
            return CRS.from_proj4(SINUSOIDAL_PROJ.format(R=repr(float(r))))
        if self.projection == "GCTP_GEO":
            return CRS.from_epsg(4326)
        raise InputError(f"HDF-EOS grid {self.name!r} uses projection {self.projection}; "
                         "carbonsink reads GCTP_SNSOID (sinusoidal) and GCTP_GEO grids; fix: "
                         "convert the file to GeoTIFF with gdalwarp first")

    def _corner(self, xy: tuple[float, float]) -> tuple[float, float]:
        if self.projection == "GCTP_GEO":
            return (_packed_dms_to_degrees(xy[0]), _packed_dms_to_degrees(xy[1]))
        return xy

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in CRS units."""
        ulx, uly = self._corner(self.upper_left)
        lrx, lry = self._corner(self.lower_right)
        return ulx, lry, lrx, uly

    @property
    def resolution(self) -> tuple[float, float]:
        left, bottom, right, top = self.bounds
        return (right - left) / self.xdim, (top - bottom) / self.ydim

    def coords(self) -> tuple[np.ndarray, np.ndarray]:
        """Cell-centre coordinates (y descending, x ascending)."""
        left, bottom, right, top = self.bounds
        rx, ry = self.resolution
        x = left + (np.arange(self.xdim) + 0.5) * rx
        y = top - (np.arange(self.ydim) + 0.5) * ry
        return y, x


def _packed_dms_to_degrees(v: float) -> float:
    """GCTP packed DMS (DDDMMMSSS.SS) -> decimal degrees."""
    sign = -1.0 if v < 0 else 1.0
    v = abs(v)
    deg = int(v // 1_000_000)
    minutes = int((v - deg * 1_000_000) // 1000)
    seconds = v - deg * 1_000_000 - minutes * 1000
    return sign * (deg + minutes / 60.0 + seconds / 3600.0)


def _odl_value(block: str, key: str) -> str | None:
    m = re.search(rf"^\s*{re.escape(key)}\s*=\s*(.+?)\s*$", block, flags=re.MULTILINE)
    return m.group(1) if m else None


def _tuple(text: str | None) -> tuple[float, ...]:
    if not text:
        return ()
    return tuple(float(t) for t in re.findall(r"[-+]?\d*\.?\d+(?:[eE][-+]?\d+)?", text))


def modis_grid(struct_metadata: str, field_name: str | None = None, *,
               source: str = "file") -> ModisGrid:
    """Parse the grid holding ``field_name`` from ``StructMetadata.0`` text."""
    gs = re.search(r"GROUP=GridStructure(.*?)END_GROUP=GridStructure", struct_metadata, re.S)
    if not gs:
        raise InputError(f"{source}: StructMetadata.0 has no GridStructure; not an HDF-EOS grid "
                         "file (is it a swath product?)")
    grids = []
    for m in re.finditer(r"GROUP=(GRID_\d+)(.*?)END_GROUP=\1", gs.group(1), re.S):
        block = m.group(2)
        try:
            grids.append(ModisGrid(
                name=(_odl_value(block, "GridName") or m.group(1)).strip('"'),
                xdim=int(float(_odl_value(block, "XDim") or "nan")),
                ydim=int(float(_odl_value(block, "YDim") or "nan")),
                upper_left=_tuple(_odl_value(block, "UpperLeftPointMtrs"))[:2],  # type: ignore
                lower_right=_tuple(_odl_value(block, "LowerRightMtrs"))[:2],  # type: ignore
                projection=(_odl_value(block, "Projection") or "").strip(),
                proj_params=_tuple(_odl_value(block, "ProjParams")),
                fields=tuple(re.findall(r'DataFieldName="([^"]+)"', block)),
            ))
        except (ValueError, TypeError) as exc:
            raise InputError(f"{source}: cannot read grid {m.group(1)} of StructMetadata.0 "
                             f"({exc}); the file's metadata is damaged") from None
    for g in grids:
        if len(g.upper_left) != 2 or len(g.lower_right) != 2:
            raise InputError(f"{source}: grid {g.name!r} lacks UpperLeftPointMtrs/LowerRightMtrs")
    if not grids:
        raise InputError(f"{source}: StructMetadata.0 defines no grid")
    if field_name is not None:
        hits = [g for g in grids if field_name in g.fields]
        if hits:
            return hits[0]
    if len(grids) == 1:
        return grids[0]
    raise InputError(f"{source}: SDS {field_name!r} is in none of the grids "
                     f"{[g.name for g in grids]}")


def _core_value(core: str, key: str) -> str | None:
    m = re.search(rf"OBJECT\s*=\s*{key}\b.*?VALUE\s*=\s*(\"[^\"]*\"|\S+)", core, re.S)
    return m.group(1).strip('"') if m else None


_DATE_TOKEN = re.compile(r"(?:^|\.)A(\d{4})(\d{3})(?:\.|$)")
_TILE_TOKEN = re.compile(r"\.h(\d{2})v(\d{2})\.")


def _date_from_name(name: str) -> pd.Timestamp | None:
    m = _DATE_TOKEN.search(name)
    if not m:
        return None
    year, doy = int(m.group(1)), int(m.group(2))
    ts = pd.Timestamp(year=year, month=1, day=1) + pd.Timedelta(days=doy - 1)
    return ts if ts.year == year and doy >= 1 else None


# --------------------------------------------------------------------------- file access


def _sd():
    try:
        from pyhdf.SD import SD, SDC
        from pyhdf.error import HDF4Error
    except ImportError as exc:  # pragma: no cover - pyhdf is a dependency
        raise InputError(f"reading MODIS HDF4 needs pyhdf ({exc}); install it with "
                         "pip install pyhdf") from None
    return SD, SDC, HDF4Error


class _SdsWindow:
    """Array-like reading windows of one SDS (opened per read; lock-protected)."""

    def __init__(self, path: str, sds: str, shape: tuple[int, int], dtype: np.dtype):
        self.path, self.sds, self.shape, self.dtype = path, sds, tuple(shape), np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        SD, SDC, HDF4Error = _sd()
        with _HDF4_LOCK:
            try:
                f = SD(self.path, SDC.READ)
            except HDF4Error as exc:
                raise InputError(f"cannot open HDF4 file {self.path}: {exc}") from None
            try:
                s = f.select(self.sds)
                try:
                    data = np.asarray(s[key])
                finally:
                    s.endaccess()
            finally:
                f.end()
        return data.astype(self.dtype, copy=False)


@dataclass
class _Tile:
    path: Path
    sds: str
    spec: SdsSpec | None
    product: str
    date: pd.Timestamp
    grid: ModisGrid
    dtype: np.dtype
    shape: tuple[int, int]
    attrs: dict[str, Any]
    tile: str | None


def _inspect(path: Path, sds: str, product: str | None) -> _Tile:
    SD, SDC, HDF4Error = _sd()
    with _HDF4_LOCK:
        try:
            f = SD(str(path), SDC.READ)
        except HDF4Error as exc:
            raise InputError(f"cannot read {path} as HDF4 ({exc}); check that it is a complete "
                             "MODIS HDF4-EOS file (re-download it)") from None
        try:
            gattrs = f.attributes()
            datasets = f.datasets()
            short = product or _core_value(str(gattrs.get("CoreMetadata.0", "")), "SHORTNAME") \
                or path.name.split(".")[0]
            prod = product_of(short)
            spec = prod.spec_for(sds, datasets) if prod else None
            name = sds if sds in datasets else (next((n for n in spec.names if n in datasets),
                                                      None) if spec else None)
            if name is None:
                lower = [n for n in datasets if n.lower() == sds.lower()]
                name = lower[0] if len(lower) == 1 else None
            if name is None:
                raise InputError(f"SDS {sds!r} not found in {path}; it holds {sorted(datasets)}; "
                                 "fix: give sds: <one of these> (or Npp/Gpp/NDVI for the known "
                                 "products)")
            if spec is None and prod is not None:
                spec = next((s for s in prod.sds if name in s.names), None)
            s = f.select(name)
            try:
                sattrs = s.attributes()
                _, rank, dims, dtype_code, _ = s.info()
                fill_from_lib = None
                try:
                    fill_from_lib = s.getfillvalue()
                except HDF4Error:
                    pass
                raw = s[0:1, 0:1] if rank == 2 else None
            finally:
                s.endaccess()
            struct = "".join(str(gattrs[k]) for k in sorted(
                (k for k in gattrs if k.startswith("StructMetadata.")),
                key=lambda k: int(k.split(".")[-1]) if k.split(".")[-1].isdigit() else 0))
            core = str(gattrs.get("CoreMetadata.0", ""))
        finally:
            f.end()
    if rank != 2:
        raise InputError(f"{path}: SDS {name!r} has {rank} dimensions; only 2-D tiles are "
                         "supported")
    if "_FillValue" not in sattrs and fill_from_lib is not None:
        sattrs["_FillValue"] = fill_from_lib
    if not struct:
        raise InputError(f"{path} has no StructMetadata.0 attribute, so it cannot be "
                         "georeferenced; it is not an HDF-EOS grid file")
    grid = modis_grid(struct, name, source=str(path))
    if (grid.ydim, grid.xdim) != tuple(dims):
        raise InputError(f"{path}: SDS {name!r} is {dims[0]}x{dims[1]} but its grid "
                         f"{grid.name!r} says YDim={grid.ydim}, XDim={grid.xdim}")
    date = _date_from_name(path.name)
    if date is None:
        begin = _core_value(core, "RANGEBEGINNINGDATE")
        try:
            date = pd.Timestamp(begin) if begin else None
        except ValueError:
            date = None
    if date is None:
        raise InputError(f"{path}: no date found (no .AYYYYDDD. token in the file name and no "
                         "RANGEBEGINNINGDATE in CoreMetadata.0); fix: keep the original MODIS "
                         "file name")
    tile = _TILE_TOKEN.search(path.name)
    return _Tile(path=path, sds=name, spec=spec, product=prod.name if prod else short,
                 date=date, grid=grid, dtype=np.asarray(raw).dtype, shape=tuple(dims),
                 attrs=sattrs, tile=f"h{tile.group(1)}v{tile.group(2)}" if tile else None)


# --------------------------------------------------------------------------- decoding


@dataclass(frozen=True)
class _Decoding:
    fill: float | None
    vmin: float
    vmax: float
    factor: float        # physical (result units) = (DN - offset) * factor
    offset: float
    units: str
    long_name: str
    note: str


def _decoding(t: _Tile) -> _Decoding:
    a = t.attrs
    fill = a.get("_FillValue")
    fill = float(np.asarray(fill).ravel()[0]) if fill is not None else None
    vr = a.get("valid_range")
    file_range = tuple(float(v) for v in np.asarray(vr).ravel()[:2]) if vr is not None else None
    sf = a.get("scale_factor")
    sf = float(np.asarray(sf).ravel()[0]) if sf is not None else None
    off = float(np.asarray(a.get("add_offset", 0.0)).ravel()[0])
    spec = t.spec
    if spec is None:
        scale = 1.0 if sf is None else sf
        vmin, vmax = file_range if file_range else (-np.inf, np.inf)
        units = str(a.get("units", "")).strip() or None
        if scale != 1.0 or off != 0.0:
            warnings.warn(f"{t.path}: product {t.product!r} has no decoding table in carbonsink; "
                          f"decoding SDS {t.sds!r} as scale_factor*(DN-add_offset) with "
                          f"scale_factor={scale}, add_offset={off} from the file attributes",
                          stacklevel=4)
        return _Decoding(fill, vmin, vmax, scale, off, units or "", str(a.get("long_name",
                         t.sds)), "HDF4 calibration from file attributes")
    if sf is None or np.isclose(sf, spec.scale, rtol=1e-6):
        scale = spec.scale
    elif np.isclose(sf * spec.scale, 1.0, rtol=1e-6):
        scale = spec.scale  # MOD13 stores 10000 meaning "divide by 10000"
    else:
        raise InputError(f"{t.path}: SDS {t.sds!r} has scale_factor={sf}, but {t.product} "
                         f"{spec.alias} is stored as DN x {spec.scale}; the file does not look "
                         f"like {t.product}; fix: check the file or pass the right product=")
    vmin, vmax = spec.valid_range
    if file_range:
        vmin, vmax = max(vmin, file_range[0]), min(vmax, file_range[1])
    if fill is None:
        fill = float(spec.fill)
    conv = float(to_units(np.float64(1.0), spec.units, found=spec.raw_units))
    return _Decoding(fill, vmin, vmax, scale * conv, off, spec.units, spec.long_name,
                     f"raw DN outside [{vmin:g}, {vmax:g}] or == {fill:g} -> NaN; "
                     f"value = (DN - {off:g}) x {scale:g} {spec.raw_units} -> {spec.units}")


def _decode(raw: dsa.Array, d: _Decoding) -> dsa.Array:
    bad = (raw < d.vmin) | (raw > d.vmax)
    if d.fill is not None:
        bad = bad | (raw == d.fill)
    vals = raw.astype("float64")
    if d.offset:
        vals = vals - d.offset
    if d.factor != 1.0:
        vals = vals * d.factor
    return dsa.where(bad, np.nan, vals).astype("float32")


# --------------------------------------------------------------------------- reader


def read_modis_hdf(paths: PathLike | Iterable[PathLike], sds: str, product: str | None = None,
                   *, variable: str | None = None, chunks: ChunksLike = "auto") -> xr.DataArray:
    """Read, decode, georeference and mosaic MODIS HDF4-EOS tiles.

    Parameters
    ----------
    paths : file, glob or list of ``.hdf`` tiles (several tiles and/or dates).
    sds : SDS name as stored (``"Npp_500m"``, ``"1 km monthly NDVI"``) or the
        product alias (``"Npp"``, ``"Gpp"``, ``"NDVI"``, ``"EVI"``).
    product : short name (``"MOD17A3HGF"``); default from ``CoreMetadata.0``
        SHORTNAME or the file name.
    variable : name of the result (default the alias or SDS name).
    chunks : ``"auto"`` (tile-aligned space chunks, time whole), int, mapping
        or ``None`` (load into memory).

    Returns ``(time, y, x)`` float32 on the sinusoidal grid (metres, cell
    centres), CRS set, units per carbonsink docs/methods.md §1.1 (``g C m-2 yr-1`` for annual
    MOD17, ``g C m-2`` per composite for MOD17A2H, ``"1"`` for NDVI).
    """
    files = expand_paths(paths, suffixes=HDF_SUFFIXES)
    if product is not None and product_of(product) is None:
        err = UnknownNameError("MODIS product", product, PRODUCTS)
        err.args = (f"{err} (and their MYD twins); fix: give one of these or leave product out "
                    "to decode from the file's own attributes",)
        raise err
    tiles = [_inspect(p, sds, product) for p in files]
    ref = tiles[0]
    for t in tiles[1:]:
        if t.product != ref.product or t.sds != ref.sds:
            raise InputError(f"{t.path} is {t.product} SDS {t.sds!r} but {ref.path} is "
                             f"{ref.product} SDS {ref.sds!r}; one input must be one product")
        if not t.grid.crs.equals(ref.grid.crs):
            raise AlignmentError(f"{t.path} uses CRS {t.grid.crs.to_proj4()} but {ref.path} "
                                 f"uses {ref.grid.crs.to_proj4()}")
        if t.shape != ref.shape or not np.allclose(t.grid.resolution, ref.grid.resolution,
                                                   rtol=1e-9):
            raise AlignmentError(f"{t.path} has {t.shape} pixels of {t.grid.resolution} but "
                                 f"{ref.path} has {ref.shape} of {ref.grid.resolution}; mosaic "
                                 "only tiles of one product and resolution")
    dec = _decoding(ref)
    for t in tiles[1:]:
        if _decoding(t) != dec:
            raise InputError(f"{t.path}: fill/valid-range/scale attributes differ from "
                             f"{ref.path}; the files are not one product version")
    rx, ry = ref.grid.resolution
    ny, nx = ref.shape
    lefts = [t.grid.bounds[0] for t in tiles]
    tops = [t.grid.bounds[3] for t in tiles]
    left0, top0 = min(lefts), max(tops)
    # tile lattice positions
    pos: dict[tuple[pd.Timestamp, int, int], _Tile] = {}
    for t in tiles:
        ci = (t.grid.bounds[0] - left0) / (rx * nx)
        ri = (top0 - t.grid.bounds[3]) / (ry * ny)
        if abs(ci - round(ci)) > 1e-6 or abs(ri - round(ri)) > 1e-6:
            raise AlignmentError(f"{t.path} does not lie on the tile lattice of {ref.path} "
                                 f"(offset {ci:.6f} x {ri:.6f} tiles); the tiles are not from "
                                 "one MODIS grid")
        key = (t.date, int(round(ri)), int(round(ci)))
        if key in pos:
            raise InputError(f"{t.path} and {pos[key].path} are the same tile and date; remove "
                             "the duplicate")
        pos[key] = t
    n_rows = max(k[1] for k in pos) + 1
    n_cols = max(k[2] for k in pos) + 1
    dates = sorted({k[0] for k in pos})
    sizes = chunk_sizes((len(dates), ny, nx), ("time", "y", "x"), chunks, "float32", (1, ny, nx))
    tile_chunks = (sizes["y"], sizes["x"]) if sizes is not None else (ny, nx)
    layers = []
    for date in dates:
        rows = []
        for r in range(n_rows):
            row = []
            for c in range(n_cols):
                t = pos.get((date, r, c))
                if t is None:
                    row.append(dsa.full((ny, nx), np.nan, dtype="float32", chunks=tile_chunks))
                    continue
                window = _SdsWindow(str(t.path), t.sds, t.shape, t.dtype)
                name = "modis-raw-" + tokenize(str(t.path), t.path.stat().st_mtime_ns, t.sds,
                                               tile_chunks)
                raw = dsa.from_array(window, chunks=tile_chunks, name=name,
                                     meta=np.empty((0, 0), dtype=t.dtype), asarray=False)
                row.append(_decode(raw, dec))
            rows.append(row)
        layers.append(dsa.block(rows))
    data = dsa.stack(layers, axis=0)
    if sizes is not None:
        data = data.rechunk({0: -1})
    y = top0 - (np.arange(n_rows * ny) + 0.5) * ry
    x = left0 + (np.arange(n_cols * nx) + 0.5) * rx
    times = np.asarray(pd.DatetimeIndex(dates).as_unit("ns").values)
    tile_names = sorted({t.tile for t in tiles if t.tile})
    attrs: dict[str, Any] = {
        "units": dec.units,
        "long_name": dec.long_name,
        "modis_product": ref.product,
        "modis_sds": ref.sds,
        "decoding": dec.note,
    }
    if ref.spec is not None and ref.spec.cell_methods:
        attrs["cell_methods"] = ref.spec.cell_methods
    if tile_names:
        attrs["modis_tiles"] = " ".join(tile_names)
    if "units" in ref.attrs:
        attrs["units_in_file"] = str(ref.attrs["units"])
    if not dec.units:
        attrs.pop("units")
    out = xr.DataArray(data, dims=("time", "y", "x"),
                       coords={"time": times, "y": y, "x": x}, attrs=attrs,
                       name=variable or (ref.spec.alias if ref.spec else ref.sds))
    out["x"].attrs.update(standard_name="projection_x_coordinate", units="m", axis="X")
    out["y"].attrs.update(standard_name="projection_y_coordinate", units="m", axis="Y")
    out = attach_crs(out, ref.grid.crs)
    if chunks is None:
        out = out.compute()
    return out
