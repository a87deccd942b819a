"""Pixel areas in m² (METHODS §1.6).

* Geographic (lat/lon) grids: exact area of the lat/lon cell on the MODIS
  authalic sphere, ``A = R² · Δλ · (sin φ_n − sin φ_s)`` with
  R = 6 371 007.181 m (the datum of the CRS is deliberately not used, so that
  areas agree with the MODIS products and with METHODS' reference values).
* Equal-area projected grids (Sinusoidal, Albers, Lambert azimuthal /
  cylindrical equal-area, Mollweide, Equal Earth, ...): the constant
  ``cell width × cell height``.
* Any other projected grid (UTM, Web Mercator, Lambert conformal ...): the
  true area on the CRS's ellipsoid, ``dx · dy / k_area`` where ``k_area`` is
  the areal scale factor of the projection at the cell centre
  (:meth:`pyproj.Proj.get_factors`); accurate to second order in the cell
  size (better than 1e-6 relative for cells up to a few km).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj
import xarray as xr

from ..errors import AlignmentError
from .grid import GridSpec, as_grid, attach_grid

__all__ = ["pixel_area", "R_AUTHALIC", "is_equal_area"]

R_AUTHALIC = 6371007.181  # m, MODIS authalic sphere

_EQUAL_AREA_METHODS = (
    "sinusoidal", "albers equal area", "lambert azimuthal equal area", "mollweide",
    "equal earth", "cylindrical equal area", "eckert iv", "eckert vi", "goode homolosine",
    "hammer", "equal area",
)


def is_equal_area(crs: Any) -> bool:
    """True for a projected CRS whose projection method is equal-area."""
    crs = pyproj.CRS.from_user_input(crs)
    if not crs.is_projected:
        return False
    op = crs.coordinate_operation
    if op is None and crs.is_bound:
        op = crs.source_crs.coordinate_operation
    name = (op.method_name if op is not None else "").lower()
    return any(m in name for m in _EQUAL_AREA_METHODS)


def _linear_unit_to_m(crs: pyproj.CRS) -> float:
    try:
        return float(crs.axis_info[0].unit_conversion_factor)
    except (IndexError, AttributeError):
        return 1.0


def _area_rows_geographic(y: np.ndarray, dx: float, dy: float, crs: pyproj.CRS) -> np.ndarray:
    to_rad = _linear_unit_to_m(crs) if crs.axis_info else np.pi / 180.0
    lat_n = np.clip((y + dy / 2) * to_rad, -np.pi / 2, np.pi / 2)
    lat_s = np.clip((y - dy / 2) * to_rad, -np.pi / 2, np.pi / 2)
    return R_AUTHALIC ** 2 * (dx * to_rad) * np.abs(np.sin(lat_n) - np.sin(lat_s))


def _area_projected(x: np.ndarray, y: np.ndarray, dx: float, dy: float,
                    crs: pyproj.CRS) -> np.ndarray:
    f = _linear_unit_to_m(crs)
    cell = dx * dy * f * f
    if is_equal_area(crs):
        return np.full((y.size, x.size), cell)
    xx, yy = np.meshgrid(x, y)
    geo = crs.geodetic_crs
    tr = pyproj.Transformer.from_crs(crs, geo, always_xy=True)
    lon, lat = tr.transform(xx, yy)
    if not (np.all(np.isfinite(lon)) and np.all(np.isfinite(lat))):
        raise AlignmentError(f"pixel areas: some cell centres of the grid lie outside the valid "
                             f"domain of the projection '{crs.name}'. Fix: use a geographic or "
                             "equal-area grid for this region")
    factors = pyproj.Proj(crs).get_factors(lon, lat)
    k = np.asarray(factors.areal_scale, dtype="float64")
    return cell / k


def pixel_area(grid_or_da: Any) -> xr.DataArray:
    """Cell areas ``(y, x)`` in m² for a :class:`GridSpec` or a DataArray's grid.

    Given a DataArray, the result uses its own x/y dimension names and
    coordinate values (so it aligns exactly) and is dask-backed, chunked like
    the DataArray's spatial chunks, when the DataArray is.
    """
    if isinstance(grid_or_da, xr.DataArray):
        da = grid_or_da
        grid = GridSpec.from_dataarray(da)
        xdim, ydim = da.rio.x_dim, da.rio.y_dim
        x = np.asarray(da[xdim].values, dtype="float64")
        y = np.asarray(da[ydim].values, dtype="float64")
    else:
        da = None
        grid = as_grid(grid_or_da)
        xdim, ydim, x, y = "x", "y", grid.x, grid.y
    crs = grid.crs
    if crs.is_geographic:
        rows = _area_rows_geographic(y, grid.dx, grid.dy, crs)
        values = np.broadcast_to(rows[:, None], (y.size, x.size)).copy()
        method = "spherical lat/lon cell on the MODIS authalic sphere R = 6371007.181 m"
    elif crs.is_projected:
        values = _area_projected(x, y, grid.dx, grid.dy, crs)
        method = ("equal-area projection: cell width x height" if is_equal_area(crs)
                  else "dx*dy / areal scale factor of the projection at the cell centre")
    else:
        raise AlignmentError(f"pixel areas need a geographic or projected CRS, found "
                             f"'{crs.name}'")
    attrs = {"units": "m2", "long_name": "cell area", "standard_name": "cell_area",
             "area_method": method}
    if da is not None:
        coords = {ydim: da[ydim], xdim: da[xdim]}
        out = xr.DataArray(values, dims=(ydim, xdim), coords=coords, name="cell_area", attrs=attrs)
        if da.chunks is not None:
            chunks = dict(zip(da.dims, da.chunks))
            out = out.chunk({ydim: chunks[ydim], xdim: chunks[xdim]})
        out = out.rio.write_crs(da.rio.crs)
        return out
    out = xr.DataArray(values, dims=("y", "x"), coords=grid.coords(), name="cell_area", attrs=attrs)
    return attach_grid(out, grid)
