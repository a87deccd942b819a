"""Put inputs on one grid: :func:`regrid` and :func:`align_all`.

Reprojection uses :func:`rasterio.warp.reproject` (GDAL's warper) one 2-D
slice at a time. For dask-backed input the work is a ``dask.array.map_blocks``
over chunks of the non-spatial dimensions (time), each chunk holding the full
spatial extent of the source, so the result stays lazy until written.

Methods (carbonsink docs/methods.md §1.5): ``"average"`` for continuous fields and ``"mode"`` for
categorical ones by default; any :class:`rasterio.enums.Resampling` name
(``"nearest"``, ``"bilinear"``, ``"max"``, ...) can be asked for.
``"average"`` is an **area-weighted** mean of the source cells that cover a
target cell: GDAL weights each source cell by the fraction of it inside the
target cell; where source cells differ in true area (lat/lon grids, non
equal-area projections) the field is additionally weighted by the source cell
area (``avg(F·A) / avg(A)`` over valid cells), so that ``Σ F·A`` is conserved
when coarsening onto a nested grid. NaN cells are ignored by ``average`` and
``mode``; a target cell with no valid source cell is NaN (or the nodata value
for integer categorical data).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from ..errors import AlignmentError, InvalidArgumentError, UnknownVariableError
from ..units import get_variable
from .area import is_equal_area, pixel_area
from .grid import GridSpec, as_grid, attach_grid, rio_crs

__all__ = ["regrid", "align_all", "valid_fraction", "valid_area", "RESAMPLING_METHODS"]

_CONTINUOUS = {"average", "bilinear", "cubic", "cubic_spline", "lanczos", "gauss", "rms", "sum"}
_CHUNK_BYTES = 128 * 2 ** 20


def _resampling_enum():
    from rasterio.enums import Resampling

    return Resampling


RESAMPLING_METHODS = tuple(m for m in _resampling_enum().__members__)


def _is_categorical(da: xr.DataArray, variable: str | None) -> bool:
    for name in (variable, da.name):
        if name is None:
            continue
        try:
            return get_variable(str(name)).kind == "categorical"
        except UnknownVariableError:
            continue
    return "flag_values" in da.attrs or "flag_meanings" in da.attrs


def _default_nodata(dtype: np.dtype):
    if dtype.kind == "u":
        return np.iinfo(dtype).max
    if dtype.kind == "i":
        return np.iinfo(dtype).min
    if dtype.kind == "b":
        return None
    return np.nan


def _warp_block(block: np.ndarray, *, src_transform, src_crs, dst_transform, dst_crs,
                dst_shape, resampling, src_nodata, dst_nodata, out_dtype, area_grid):
    """Reproject every 2-D slice of ``block`` (``(..., y, x)``).

    ``area_grid``: the source grid when the average must be weighted by the
    source cell areas (computed here, so the graph does not carry the array).
    """
    from rasterio.warp import reproject

    weights = None if area_grid is None else np.asarray(pixel_area(area_grid).values, "float64")
    lead = block.shape[:-2]
    src = block.reshape((-1,) + block.shape[-2:])
    out = np.empty((src.shape[0],) + tuple(dst_shape), dtype=out_dtype)
    kw = dict(src_transform=src_transform, src_crs=src_crs, dst_transform=dst_transform,
              dst_crs=dst_crs, resampling=resampling, num_threads=1)
    for i in range(src.shape[0]):
        plane = src[i]
        if weights is None:
            dst = np.full(dst_shape, dst_nodata, dtype=out_dtype)
            reproject(plane, dst, src_nodata=src_nodata, dst_nodata=dst_nodata, **kw)
            out[i] = dst
            continue
        valid = np.isfinite(plane)
        num_src = np.where(valid, plane.astype("float64") * weights, np.nan)
        den_src = np.where(valid, weights, np.nan)
        num = np.full(dst_shape, np.nan)
        den = np.full(dst_shape, np.nan)
        reproject(num_src, num, src_nodata=np.nan, dst_nodata=np.nan, **kw)
        reproject(den_src, den, src_nodata=np.nan, dst_nodata=np.nan, **kw)
        with np.errstate(invalid="ignore", divide="ignore"):
            out[i] = (num / den).astype(out_dtype)
    return out.reshape(lead + tuple(dst_shape))


def _check_overlap(src: GridSpec, grid: GridSpec, name: str) -> None:
    from rasterio.warp import transform_bounds

    try:
        b = transform_bounds(rio_crs(grid.crs), rio_crs(src.crs), *grid.bounds, densify_pts=21)
    except Exception:  # grid bounds outside the source projection's domain
        return
    if not np.all(np.isfinite(b)):
        return
    sx0, sy0, sx1, sy1 = src.bounds
    if src.crs.is_geographic and (sx1 - sx0) >= 359.999:
        xo = True  # a global lon range overlaps any longitude, whatever the convention
    else:
        xo = b[0] < sx1 and b[2] > sx0
    if not (xo and b[1] < sy1 and b[3] > sy0):
        raise AlignmentError(
            f"input '{name}' does not overlap the target grid: its bounds are {src.bounds} "
            f"in {src.crs.name}, the grid covers {tuple(round(v, 6) for v in b)} in the same CRS. "
            "Fix: check the input's CRS (crs: in the study file) and the region/grid bounds")


def _resolve_method(da: xr.DataArray, method: str | None, variable: str | None, name: str) -> str:
    categorical = _is_categorical(da, variable)
    if method is None:
        return "mode" if categorical else "average"
    m = str(method).lower()
    if m not in RESAMPLING_METHODS:
        raise InvalidArgumentError(f"unknown resampling method {method!r} for input '{name}'; "
                                   f"valid methods are: {', '.join(RESAMPLING_METHODS)}")
    if categorical and m in _CONTINUOUS:
        raise InvalidArgumentError(f"input '{name}' is categorical (class codes); resampling it "
                                   f"with '{m}' would mix class codes. Fix: use method 'mode' or 'nearest'")
    return m


def regrid(da: xr.DataArray, grid: Any, method: str | None = None, variable: str | None = None,
           chunks: Any = "auto") -> xr.DataArray:
    """Reproject/resample ``da`` onto ``grid``.

    Parameters
    ----------
    da
        DataArray with a CRS (``da.rio.crs``) and dims ``(..., y, x)`` (any
        names rioxarray recognises as x/y; north-up or south-up). numpy- or
        dask-backed.
    grid
        A :class:`GridSpec` or anything :func:`as_grid` accepts (a DataArray,
        a raster path, ``{crs, resolution, bounds}``).
    method
        A resampling name; default ``"mode"`` for categorical variables
        (``units`` registry kind, or ``flag_values`` attribute), otherwise
        ``"average"`` (area-weighted, see the module docstring).
    variable
        Canonical variable name (defaults to ``da.name``); used for the
        default method and in error messages.
    chunks
        Chunks of a dask-backed result: ``"auto"`` (default) keeps the
        non-spatial dims whole and chunks space automatically; ``None`` keeps
        the per-time-chunk blocks of the warp; or a dict for
        :meth:`xarray.DataArray.chunk`.

    Returns a DataArray with dims ``(..., "y", "x")`` on the grid's cell
    centres, the grid CRS and transform written (rioxarray), the attributes of
    ``da`` (units included) plus ``regrid_method``; integer categorical data
    keep their dtype and nodata value.
    """
    name = str(variable or da.name or "?")
    grid = as_grid(grid)
    src_grid = GridSpec.from_dataarray(da, name=name)
    method = _resolve_method(da, method, variable, name)
    ydim, xdim = da.rio.y_dim, da.rio.x_dim
    attrs = dict(da.attrs)
    attrs["regrid_method"] = method

    # north-up, spatial dims last
    src = da
    if src[ydim].values[0] < src[ydim].values[-1]:
        src = src.isel({ydim: slice(None, None, -1)})
    if src[xdim].values[0] > src[xdim].values[-1]:
        src = src.isel({xdim: slice(None, None, -1)})
    lead_dims = [d for d in src.dims if d not in (ydim, xdim)]
    src = src.transpose(*lead_dims, ydim, xdim)

    # nodata / dtype
    nodata = src.rio.nodata
    dtype = src.dtype
    if dtype.kind == "f":
        if nodata is not None and not np.isnan(nodata):
            src = src.where(src != nodata)
        nodata, out_dtype = np.nan, dtype
    elif method in _CONTINUOUS:
        data = src.astype("float64")
        if nodata is not None:
            data = data.where(src != nodata)
        src, nodata, out_dtype = data, np.nan, np.dtype("float64")
    else:
        if dtype.kind == "b":
            src = src.astype("uint8")
            dtype = src.dtype
        if nodata is None:
            nodata = _default_nodata(dtype)
        out_dtype = dtype

    _check_overlap(src_grid, grid, name)

    keep_coords = {k: v for k, v in src.coords.items()
                   if k not in (ydim, xdim, "spatial_ref") and ydim not in v.dims and xdim not in v.dims}
    window = src_grid.window_of(grid)
    if window is not None:
        # the target is a sub-window of the source lattice: exact slicing, no resampling
        data = src.isel({ydim: window[0], xdim: window[1]}).data
    else:
        data = _warp(src, src_grid, grid, method, nodata, out_dtype)
    coords = dict(keep_coords)
    coords.update(grid.coords())
    out = xr.DataArray(data, dims=tuple(lead_dims) + ("y", "x"), coords=coords, name=da.name,
                       attrs=attrs)
    if out.chunks is not None and chunks is not None:
        if chunks == "auto":
            spec = {d: -1 for d in lead_dims}
            spec.update({"y": "auto", "x": "auto"})
            out = out.chunk(spec)
        else:
            out = out.chunk(chunks)
    if da.dtype == bool and method not in _CONTINUOUS:
        # a regridded mask stays a mask: cells without source (nodata) are False
        out = (out == 1).assign_attrs(attrs)
        out.name = da.name
        return attach_grid(out, grid)
    out = attach_grid(out, grid)
    if out_dtype.kind in "iu":
        out = out.rio.write_nodata(nodata)
    return out


def _warp(src: xr.DataArray, src_grid: GridSpec, grid: GridSpec, method: str, nodata,
          out_dtype: np.dtype):
    Resampling = _resampling_enum()
    area_grid = src_grid if method == "average" and not is_equal_area(src_grid.crs) else None
    kw = dict(src_transform=src_grid.transform, src_crs=rio_crs(src_grid.crs),
              dst_transform=grid.transform, dst_crs=rio_crs(grid.crs), dst_shape=grid.shape,
              resampling=getattr(Resampling, method), src_nodata=nodata, dst_nodata=nodata,
              out_dtype=out_dtype, area_grid=area_grid)
    arr = src.data
    if not hasattr(arr, "dask"):
        return _warp_block(np.asarray(arr), **kw)
    import dask.array as dsa

    nlead = arr.ndim - 2
    plane_bytes = (src_grid.shape[0] * src_grid.shape[1] * max(arr.dtype.itemsize, 8) +
                   grid.shape[0] * grid.shape[1] * max(out_dtype.itemsize, 8))
    per_chunk = max(1, int(_CHUNK_BYTES // max(plane_bytes, 1)))
    spec = {i: 1 for i in range(nlead)}
    if nlead:
        spec[0] = min(arr.shape[0], per_chunk) if arr.shape[0] else 1
    spec[nlead] = -1
    spec[nlead + 1] = -1
    arr = arr.rechunk(spec)
    out_chunks = arr.chunks[:nlead] + ((grid.shape[0],), (grid.shape[1],))
    return dsa.map_blocks(_warp_block, arr, chunks=out_chunks, dtype=out_dtype,
                          meta=np.array((), dtype=out_dtype), **kw)


def valid_fraction(da: xr.DataArray, grid: Any, *, dim: str | None = "time",
                   variable: str | None = None) -> xr.DataArray:
    """Share of each target cell's area covered by valid (not NaN / nodata) source cells.

    ``f = Σ A_valid / Σ A`` over the source cells covering a target cell, with GDAL's
    coverage weights and true source cell areas (the same weighting as ``regrid(...,
    "average")``), so that for a coarsened field ``Σ regrid(F) · A_target · f = Σ F · A`` over
    the valid fine cells: totals use the valid area, not the whole cell. With ``dim`` (default
    ``"time"``) a cell counts as valid when it is valid in any step of ``dim`` (pass
    ``dim=None`` for one fraction per step). 1 where the target cell is wholly covered (values
    within 1e-9 of 1 are set to 1), 0 outside the source. Lazy for dask input.
    """
    name = str(variable or da.name or "?")
    ydim, xdim = da.rio.y_dim, da.rio.x_dim
    valid = da.notnull()
    nodata = da.rio.nodata
    if nodata is not None and not (isinstance(nodata, float) and np.isnan(nodata)):
        valid = valid & (da != nodata)
    if dim is not None and dim in valid.dims:
        valid = valid.any(dim)
    ind = valid.astype("float64")
    for c in ("spatial_ref",):
        if c in da.coords:
            ind = ind.assign_coords({c: da[c]})
    ind = ind.rio.write_crs(da.rio.crs)
    ind = ind.rio.set_spatial_dims(x_dim=xdim, y_dim=ydim)
    ind.attrs = {"units": "1"}
    ind.name = f"valid_{name}"  # a 0/1 indicator: average it even for categorical inputs
    frac = regrid(ind, grid, method="average")
    frac = frac.fillna(0.0).clip(0.0, 1.0)
    frac = xr.where(frac > 1.0 - 1e-9, 1.0, frac).astype("float64")
    frac.attrs = {"units": "1", "long_name": f"valid-area fraction of {name}",
                  "description": "share of the cell area covered by valid source cells"}
    frac.name = f"valid_fraction_{name}"
    return attach_grid(frac, as_grid(grid))


def valid_area(area: xr.DataArray, *fractions: xr.DataArray) -> xr.DataArray:
    """``area`` × the smallest of the valid-area ``fractions`` (see :func:`valid_fraction`):
    the cell area covered by every input, in the units of ``area``; use it as the weights of
    regional means and totals."""
    out = area
    if fractions:
        f = fractions[0]
        for g in fractions[1:]:
            f = np.minimum(f, g)
        out = area * f.drop_vars("spatial_ref", errors="ignore")
    out = out.assign_attrs({**area.attrs, "long_name": "valid cell area",
                            "description": "cell area times the valid-area fraction of the "
                                           "inputs"})
    out.name = "valid_area"
    return out


def align_all(inputs: Mapping[str, xr.DataArray], grid: Any,
              methods: Mapping[str, str] | None = None, chunks: Any = "auto") -> dict[str, xr.DataArray]:
    """Regrid every DataArray of ``inputs`` onto one grid.

    ``grid`` may also be the name of one of ``inputs`` ("the grid of input X").
    ``methods`` maps input names to resampling methods (default per variable,
    see :func:`regrid`). Returns a new dict with the same keys.
    """
    grid = as_grid(grid, inputs=inputs)
    methods = dict(methods or {})
    unknown = set(methods) - set(inputs)
    if unknown:
        raise InvalidArgumentError(f"resampling methods given for unknown inputs "
                                   f"{sorted(unknown)}; inputs are: {', '.join(inputs)}")
    return {name: regrid(da, grid, method=methods.get(name), variable=name, chunks=chunks)
            for name, da in inputs.items()}
