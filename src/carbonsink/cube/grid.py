"""Target grids: :class:`GridSpec` (CRS + resolution + bounds).

A grid is a regular, north-up raster lattice. It can be given explicitly
(``GridSpec(crs, resolution, bounds)``), taken from a raster file
(:meth:`GridSpec.from_raster`) or from a DataArray already on the wanted grid
(:meth:`GridSpec.from_dataarray`, "the grid of input X").

Snapping rule
-------------
``bounds`` describe the outer edges of the cells. When the extent
``xmax - xmin`` (or ``ymax - ymin``) is a whole number of cells (within 1e-6
of a cell) the bounds are kept exactly as given, whatever their origin (MODIS
sinusoidal tiles, for instance, do not start on a multiple of the cell size).
Otherwise the bounds are **expanded outward** onto the lattice of whole
multiples of the resolution (like ``gdalwarp -tap``), so that the grid covers
at least the requested area, and a :class:`UserWarning` reports the change.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import pyproj
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from ..errors import AlignmentError, InputError, InvalidArgumentError

__all__ = ["GridSpec", "as_grid", "rio_crs"]

_TOL = 1e-6  # fraction of a cell


def rio_crs(crs: Any):
    """Return a :class:`rasterio.crs.CRS` for anything pyproj accepts."""
    from rasterio.crs import CRS as RioCRS

    return RioCRS.from_wkt(pyproj.CRS.from_user_input(crs).to_wkt())


def _crs_label(crs: pyproj.CRS) -> str:
    auth = crs.to_authority(min_confidence=90)
    return f"{auth[0]}:{auth[1]}" if auth else crs.name


def _snap(lo: float, hi: float, step: float, axis: str) -> tuple[float, float, bool]:
    n = (hi - lo) / step
    if abs(n - round(n)) <= _TOL and round(n) >= 1:
        return lo, hi, False
    lo2 = math.floor(lo / step + _TOL) * step
    hi2 = math.ceil(hi / step - _TOL) * step
    if hi2 <= lo2:
        hi2 = lo2 + step
    return lo2, hi2, True


@dataclass(frozen=True, eq=False)
class GridSpec:
    """A regular north-up grid: ``crs``, ``resolution`` and outer ``bounds``.

    Parameters
    ----------
    crs
        Anything :func:`pyproj.CRS.from_user_input` accepts (``"EPSG:4326"``,
        a WKT or PROJ string, a pyproj or rasterio CRS). Stored as
        :class:`pyproj.CRS`.
    resolution
        Cell size in CRS units, one number or ``(dx, dy)``; both positive.
    bounds
        ``(xmin, ymin, xmax, ymax)`` of the cell edges, in CRS units. See the
        module docstring for the snapping rule.
    """

    crs: Any
    resolution: Any
    bounds: tuple[float, float, float, float]

    def __post_init__(self) -> None:
        try:
            crs = pyproj.CRS.from_user_input(self.crs)
        except Exception as exc:
            raise InvalidArgumentError(f"grid CRS {self.crs!r} is not a valid CRS ({exc}). Fix: "
                                       "use an EPSG code such as 'EPSG:4326', a WKT or a PROJ "
                                       "string") from None
        res = self.resolution
        if np.ndim(res) == 0:
            dx = dy = abs(float(res))
        else:
            if len(res) != 2:
                raise InvalidArgumentError(f"grid resolution must be a number or (dx, dy), "
                                           f"got {res!r}")
            dx, dy = (abs(float(r)) for r in res)
        if not (dx > 0 and dy > 0 and math.isfinite(dx) and math.isfinite(dy)):
            raise InvalidArgumentError(f"grid resolution must be positive and finite, got {res!r}")
        if len(self.bounds) != 4:
            raise InvalidArgumentError(f"grid bounds must be (xmin, ymin, xmax, ymax), "
                                       f"got {self.bounds!r}")
        xmin, ymin, xmax, ymax = (float(b) for b in self.bounds)
        if not (xmax > xmin and ymax > ymin):
            raise InvalidArgumentError(f"grid bounds must satisfy xmin < xmax and ymin < ymax, "
                                       f"got {self.bounds!r} (order is xmin, ymin, xmax, ymax)")
        xmin2, xmax2, cx = _snap(xmin, xmax, dx, "x")
        ymin2, ymax2, cy = _snap(ymin, ymax, dy, "y")
        if cx or cy:
            warnings.warn(f"grid bounds {(xmin, ymin, xmax, ymax)} are not a whole number of "
                          f"{dx} x {dy} cells; expanded outward to "
                          f"{(xmin2, ymin2, xmax2, ymax2)}", UserWarning, stacklevel=3)
        object.__setattr__(self, "crs", crs)
        object.__setattr__(self, "resolution", (dx, dy))
        object.__setattr__(self, "bounds", (xmin2, ymin2, xmax2, ymax2))

    # ------------------------------------------------------------------ derived
    @property
    def dx(self) -> float:
        return self.resolution[0]

    @property
    def dy(self) -> float:
        return self.resolution[1]

    @property
    def shape(self) -> tuple[int, int]:
        """``(ny, nx)``."""
        xmin, ymin, xmax, ymax = self.bounds
        return int(round((ymax - ymin) / self.dy)), int(round((xmax - xmin) / self.dx))

    @property
    def transform(self) -> Affine:
        """North-up affine transform of the cell edges."""
        xmin, _, _, ymax = self.bounds
        return Affine(self.dx, 0.0, xmin, 0.0, -self.dy, ymax)

    @property
    def x(self) -> np.ndarray:
        """Cell-centre x coordinates (increasing)."""
        return self.bounds[0] + self.dx * (np.arange(self.shape[1]) + 0.5)

    @property
    def y(self) -> np.ndarray:
        """Cell-centre y coordinates (decreasing, north-up)."""
        return self.bounds[3] - self.dy * (np.arange(self.shape[0]) + 0.5)

    @property
    def is_geographic(self) -> bool:
        return bool(self.crs.is_geographic)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, GridSpec):
            return NotImplemented
        return self.crs == other.crs and self.shape == other.shape and \
            np.allclose(self.resolution, other.resolution, rtol=1e-9, atol=0) and \
            np.allclose(self.bounds, other.bounds, rtol=0, atol=_TOL * min(self.resolution))

    def __hash__(self) -> int:
        return hash((self.crs.to_wkt(), self.shape))

    def __repr__(self) -> str:
        return (f"GridSpec(crs={_crs_label(self.crs)!r}, resolution={self.resolution}, "
                f"bounds={self.bounds}, shape={self.shape})")

    def to_dict(self) -> dict:
        """A YAML/JSON-serialisable description (for provenance)."""
        return {"crs": self.crs.to_wkt(), "resolution": list(self.resolution),
                "bounds": list(self.bounds), "shape": list(self.shape)}

    def coords(self) -> dict[str, xr.DataArray]:
        """``{"y": ..., "x": ...}`` coordinate variables with CF attributes."""
        if self.is_geographic:
            xa = {"standard_name": "longitude", "long_name": "longitude", "units": "degrees_east",
                  "axis": "X"}
            ya = {"standard_name": "latitude", "long_name": "latitude", "units": "degrees_north",
                  "axis": "Y"}
        else:
            unit = self.crs.axis_info[0].unit_name if self.crs.axis_info else "metre"
            xa = {"standard_name": "projection_x_coordinate", "long_name": "x coordinate of projection",
                  "units": "m" if unit in ("metre", "meter") else unit, "axis": "X"}
            ya = {"standard_name": "projection_y_coordinate", "long_name": "y coordinate of projection",
                  "units": xa["units"], "axis": "Y"}
        return {"y": xr.DataArray(self.y, dims="y", attrs=ya),
                "x": xr.DataArray(self.x, dims="x", attrs=xa)}

    def template(self, fill: float = np.nan, dtype: Any = "float64", chunks: Any = None,
                 name: str | None = None) -> xr.DataArray:
        """A DataArray ``(y, x)`` on this grid, filled with ``fill``, CRS written.

        ``chunks`` (e.g. ``"auto"`` or ``{"y": 1000, "x": 1000}``) makes it dask-backed.
        """
        if chunks is not None:
            import dask.array as dsa

            data = dsa.full(self.shape, fill, dtype=dtype, chunks=_dask_chunks(chunks, self.shape))
        else:
            data = np.full(self.shape, fill, dtype=dtype)
        da = xr.DataArray(data, dims=("y", "x"), coords=self.coords(), name=name)
        return attach_grid(da, self)

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_raster(cls, path: str | PathLike) -> "GridSpec":
        """The grid of a raster file (GeoTIFF, or anything GDAL reads)."""
        import rasterio

        p = Path(path)
        if not p.exists():
            raise InputError(f"raster '{p}' does not exist. Fix: check the path of the grid "
                             "template (grid: in the study file)")
        try:
            with rasterio.open(p) as src:
                crs, transform, width, height = src.crs, src.transform, src.width, src.height
        except rasterio.errors.RasterioIOError as exc:
            raise InputError(f"cannot read raster '{p}': {exc}") from None
        if crs is None:
            raise AlignmentError(f"raster '{p}' has no CRS. Fix: give the grid explicitly "
                                 "(crs, resolution, bounds) or assign a CRS to the file")
        return cls._from_transform(crs, transform, width, height, str(p))

    @classmethod
    def _from_transform(cls, crs, transform: Affine, width: int, height: int, what: str):
        if transform.b != 0 or transform.d != 0:
            raise AlignmentError(f"{what} is on a rotated grid ({transform}); only north-up "
                                 "regular grids are supported. Fix: warp it first (gdalwarp)")
        dx, dy = abs(transform.a), abs(transform.e)
        x0, x1 = transform.c, transform.c + transform.a * width
        y0, y1 = transform.f, transform.f + transform.e * height
        return cls(crs, (dx, dy), (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1)))

    @classmethod
    def from_dataarray(cls, da: xr.DataArray, name: str | None = None) -> "GridSpec":
        """The grid of a DataArray with a CRS (rioxarray) and regular x/y coordinates."""
        what = f"input '{name or da.name or '?'}'"
        crs = da.rio.crs
        if crs is None:
            raise AlignmentError(
                f"{what} has no CRS. Fix: set `crs:` for this input in the study file "
                f"(e.g. crs: EPSG:4326) or call da.rio.write_crs(...) before aligning")
        try:
            xdim, ydim = da.rio.x_dim, da.rio.y_dim
        except Exception as exc:
            raise AlignmentError(f"{what} has no recognisable x/y dimensions ({exc}); dims are "
                                 f"{da.dims}") from None
        nx, ny = da.sizes[xdim], da.sizes[ydim]
        x = np.asarray(da[xdim].values, dtype="float64")
        y = np.asarray(da[ydim].values, dtype="float64")
        if nx == 0 or ny == 0:
            raise AlignmentError(f"{what} has an empty x or y dimension")
        dxs, dys = np.diff(x), np.diff(y)
        for d in (dxs, dys):
            if d.size and not np.allclose(d, d[0], rtol=1e-6, atol=0):
                raise AlignmentError(f"{what} is not on a regular grid (irregular x or y spacing)")
        if nx < 2 or ny < 2:
            # one row or column: the cell size comes from the stored transform
            gm = da.rio.grid_mapping
            if gm not in da.coords or "GeoTransform" not in da[gm].attrs:
                raise AlignmentError(f"{what} has a single row or column and no stored transform, "
                                     "so its cell size is unknown. Fix: write the transform "
                                     "(da.rio.write_transform) or use a GridSpec")
            tr = da.rio.transform()
            dx = abs(float(np.mean(dxs))) if dxs.size else abs(tr.a)
            dy = abs(float(np.mean(dys))) if dys.size else abs(tr.e)
        else:
            dx, dy = abs(float(np.mean(dxs))), abs(float(np.mean(dys)))
        # coordinates computed as origin + i * step carry float noise (0.05000000000000007);
        # 12 significant digits remove it and stay far below the 1e-6-cell tolerance
        dx, dy = _clean(dx), _clean(dy)
        return cls(crs, (dx, dy), (_clean(x.min() - dx / 2), _clean(y.min() - dy / 2),
                                   _clean(x.max() + dx / 2), _clean(y.max() + dy / 2)))

    # ------------------------------------------------------------------ helpers
    def matches(self, da: xr.DataArray) -> bool:
        """True if ``da`` (with a CRS) lies exactly on this grid (north-up)."""
        try:
            other = GridSpec.from_dataarray(da)
        except (AlignmentError, InvalidArgumentError):
            return False
        ydim, xdim = da.rio.y_dim, da.rio.x_dim
        north_up = da[ydim].values[0] > da[ydim].values[-1] and da[xdim].values[0] < da[xdim].values[-1]
        return bool(north_up and other == self)

    def window_of(self, other: "GridSpec") -> tuple[slice, slice] | None:
        """Row/column slices of ``other`` inside this grid, when ``other`` is a
        sub-grid on the same lattice (same CRS and resolution); else ``None``."""
        if self.crs != other.crs or not np.allclose(self.resolution, other.resolution, rtol=1e-9, atol=0):
            return None
        c0 = (other.bounds[0] - self.bounds[0]) / self.dx
        r0 = (self.bounds[3] - other.bounds[3]) / self.dy
        if abs(c0 - round(c0)) > _TOL or abs(r0 - round(r0)) > _TOL:
            return None
        c0, r0 = int(round(c0)), int(round(r0))
        ny, nx = other.shape
        if c0 < 0 or r0 < 0 or c0 + nx > self.shape[1] or r0 + ny > self.shape[0]:
            return None
        return slice(r0, r0 + ny), slice(c0, c0 + nx)


def _clean(v: float) -> float:
    return float(f"{float(v):.12g}")


def _dask_chunks(chunks: Any, shape: tuple[int, int]):
    if isinstance(chunks, Mapping):
        return (chunks.get("y", -1), chunks.get("x", -1))
    return chunks


def attach_grid(da: xr.DataArray, grid: GridSpec) -> xr.DataArray:
    """Write ``grid``'s CRS and transform onto ``da`` (dims ``y``, ``x``)."""
    da = da.rio.write_crs(rio_crs(grid.crs))
    return da.rio.write_transform(grid.transform)


def as_grid(obj: Any, inputs: Mapping[str, xr.DataArray] | None = None) -> GridSpec:
    """Turn a grid description into a :class:`GridSpec`.

    Accepts a ``GridSpec``; a DataArray (its grid); a path to a raster
    template; a mapping with ``crs``, ``resolution`` and ``bounds``; or the
    name of one of ``inputs`` ("the grid of input X").
    """
    if isinstance(obj, GridSpec):
        return obj
    if isinstance(obj, xr.DataArray):
        return GridSpec.from_dataarray(obj)
    if isinstance(obj, Mapping):
        missing = {"crs", "resolution", "bounds"} - set(obj)
        if missing:
            raise InvalidArgumentError(f"grid description lacks {sorted(missing)}; it needs crs, "
                                       "resolution and bounds (xmin, ymin, xmax, ymax)")
        return GridSpec(obj["crs"], obj["resolution"], tuple(obj["bounds"]))
    if isinstance(obj, str) and inputs is not None and obj in inputs:
        return GridSpec.from_dataarray(inputs[obj], name=obj)
    if isinstance(obj, (str, PathLike)):
        p = Path(obj)
        if not p.exists() and inputs is not None:
            raise InvalidArgumentError(f"grid {str(obj)!r} is neither an input name "
                                       f"({', '.join(inputs)}) nor an existing raster file")
        return GridSpec.from_raster(p)
    raise InvalidArgumentError(f"cannot make a grid from {type(obj).__name__}; give a GridSpec, "
                               "a DataArray, a raster path or {crs, resolution, bounds}")
