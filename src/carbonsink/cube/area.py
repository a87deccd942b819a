"""Pixel areas in m² (carbonsink docs/methods.md §1.6).

* Geographic (lat/lon) grids: exact area of the lat/lon cell on the MODIS
  authalic sphere, ``A = R² · Δλ · (sin φ_n − sin φ_s)`` with
  R = 6 371 007.181 m (the datum of the CRS is deliberately not used, so that
  areas agree with the MODIS products and with the reference values of
  carbonsink docs/methods.md §1.6).
* Equal-area projected grids (Sinusoidal, Albers, Lambert azimuthal /
  cylindrical equal-area, Mollweide, Equal Earth, ...): the constant
  ``cell width × cell height``.
* Any other projected grid (UTM, Web Mercator, Lambert conformal ...): the
  true area on the ellipsoid of the CRS's datum: the cell corners are
  transformed to a Lambert azimuthal equal-area projection on that ellipsoid
  (centred on the grid) and the area of each quadrilateral is taken there
  (shoelace formula, vectorised). Agrees with geodesic polygon areas
  (``pyproj.Geod``) to better than 1e-6 for cells up to several km.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyproj
import xarray as xr

from .._constants import MODIS_SPHERE_RADIUS, R_AUTHALIC
from ..errors import AlignmentError
from .grid import GridSpec, as_grid, attach_grid

__all__ = ["pixel_area", "R_AUTHALIC", "MODIS_SPHERE_RADIUS", "is_equal_area"]

# radius of the MODIS sinusoidal sphere [m], also the authalic sphere of pixel areas;
# defined once in carbonsink._constants and re-exported here

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
    # true areas: cell corners → a Lambert azimuthal equal-area projection on the
    # CRS's own ellipsoid, centred on the grid; shoelace area of each quadrilateral
    xe = np.concatenate([x - dx / 2, [x[-1] + dx / 2]])
    ye = np.concatenate([y + dy / 2, [y[-1] - dy / 2]]) if y.size > 1 and y[0] > y[-1] else \
        np.concatenate([y - dy / 2, [y[-1] + dy / 2]])
    xx, yy = np.meshgrid(xe, ye)
    geo = crs.geodetic_crs
    to_geo = pyproj.Transformer.from_crs(crs, geo, always_xy=True)
    lon_c, lat_c = to_geo.transform(float(np.mean(x)), float(np.mean(y)))
    ell = geo.ellipsoid
    shape = (f"+a={ell.semi_major_metre!r} +b={ell.semi_minor_metre!r}" if ell is not None
             else "+ellps=WGS84")
    laea = pyproj.CRS.from_proj4(f"+proj=laea +lat_0={lat_c!r} +lon_0={lon_c!r} {shape} "
                                 "+units=m +no_defs")
    ex, ey = pyproj.Transformer.from_crs(crs, laea, always_xy=True).transform(xx, yy)
    if not (np.all(np.isfinite(ex)) and np.all(np.isfinite(ey))):
        raise AlignmentError(f"pixel areas: some cell corners of the grid lie outside the valid "
                             f"domain of the projection '{crs.name}'. Fix: use a geographic or "
                             "equal-area grid for this region")
    # corners of cell (i, j): (i, j), (i, j+1), (i+1, j+1), (i+1, j), relative to the first
    px = [ex[:-1, :-1], ex[:-1, 1:], ex[1:, 1:], ex[1:, :-1]]
    py = [ey[:-1, :-1], ey[:-1, 1:], ey[1:, 1:], ey[1:, :-1]]
    px = [p - px[0] for p in px]
    py = [p - py[0] for p in py]
    twice = sum(px[k] * py[(k + 1) % 4] - px[(k + 1) % 4] * py[k] for k in range(4))
    return np.abs(twice) / 2.0


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
                  else "cell corners in a Lambert azimuthal equal-area projection, shoelace area")
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
