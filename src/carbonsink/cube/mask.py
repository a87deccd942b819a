"""Region masks from vector files and clipping (carbonsink docs/methods.md §1.3).

:func:`region_mask` rasterises polygons (GeoJSON, shapefile, GeoPackage, or
anything :func:`geopandas.read_file` reads) onto a grid: a cell is inside
when its centre is inside a selected polygon (``all_touched=False``, the
default) or when the polygon touches it at all (``all_touched=True``).
Masks are 2-D ``(y, x)`` and computed eagerly (vector data are small); the
cubes they are applied to stay lazy.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import AlignmentError, InputError, InvalidArgumentError, UnknownNameError
from .grid import GridSpec, as_grid, attach_grid

__all__ = ["region_mask", "zone_labels", "zone_names", "polygon_fractions", "clip",
           "read_regions"]


def _fmt_values(values: Iterable[Any], limit: int = 60) -> str:
    vals = sorted({str(v) for v in values})
    text = ", ".join(vals[:limit])
    return text + (f", ... ({len(vals)} in all)" if len(vals) > limit else "")


def read_regions(source: Any, attribute: str | None = None, values: Any = None,
                 layer: str | int | None = None):
    """Read polygons and select features; returns a GeoDataFrame with a CRS.

    ``source`` is a path (GeoJSON, shapefile, GeoPackage ...) or a
    GeoDataFrame/GeoSeries. ``values`` (one value or a list) selects features
    whose ``attribute`` equals one of them; string matching falls back to a
    case-insensitive comparison. With ``values`` but no ``attribute``, the
    ``name`` attribute is used when present.
    """
    import geopandas as gpd

    if isinstance(source, (gpd.GeoDataFrame, gpd.GeoSeries)):
        gdf = source if isinstance(source, gpd.GeoDataFrame) else gpd.GeoDataFrame(geometry=source)
        what = "the region GeoDataFrame"
    else:
        p = Path(source)
        what = f"region file '{p}'"
        if not p.exists():
            raise InputError(f"{what} does not exist. Fix: check region.path in the study file")
        from ..io.dispatch import check_local_vector

        check_local_vector(p)  # local GeoJSON/Shapefile/GeoPackage ... only: no OGR VRT, no URL
        try:
            gdf = gpd.read_file(p, layer=layer) if layer is not None else gpd.read_file(p)
        except Exception as exc:
            raise InputError(f"cannot read {what}: {exc}. Fix: give a GeoJSON, shapefile or "
                             "GeoPackage (and layer= for a multi-layer GeoPackage)") from None
    if gdf.crs is None:
        raise AlignmentError(f"{what} has no CRS (a shapefile without .prj?). Fix: add the "
                             "CRS to the file or set it with GeoDataFrame.set_crs()")
    if len(gdf) == 0:
        raise InputError(f"{what} contains no features")
    if values is not None and attribute is None:
        if "name" in gdf.columns:
            attribute = "name"
        else:
            cols = [c for c in gdf.columns if c != gdf.geometry.name]
            raise InvalidArgumentError(f"{what}: values {values!r} given but no attribute to "
                                       f"match them against. Fix: set attribute to one of: {', '.join(map(str, cols))}")
    if attribute is not None:
        if attribute not in gdf.columns:
            cols = [c for c in gdf.columns if c != gdf.geometry.name]
            err = UnknownNameError("attribute", str(attribute), map(str, cols))
            err.args = (f"{what} has no attribute '{attribute}'; available attributes: "
                        f"{', '.join(map(str, cols))}",)
            raise err
        if values is not None:
            wanted = [values] if isinstance(values, (str, int, float)) else list(values)
            column = gdf[attribute]
            selected = np.zeros(len(gdf), dtype=bool)
            missing = []
            for v in wanted:
                hit = (column == v).to_numpy()
                if not hit.any() and isinstance(v, str):
                    hit = (column.astype(str).str.casefold() == v.casefold()).to_numpy()
                if not hit.any():
                    missing.append(v)
                selected |= hit
            if missing:
                err = UnknownNameError(f"'{attribute}' value", ", ".join(map(str, missing)),
                                       {str(v) for v in column.dropna()})
                err.args = (f"{what}: no feature with {attribute} = "
                            f"{', '.join(map(repr, missing))}; available values of "
                            f"'{attribute}': {_fmt_values(column.dropna())}",)
                raise err
            gdf = gdf[selected]
    return gdf


def _as_layer(values: np.ndarray, grid: GridSpec, da: xr.DataArray | None, name: str,
              attrs: dict) -> xr.DataArray:
    """A north-up ``(y, x)`` raster on ``grid`` as a DataArray: on the grid's coordinates, or
    on those of ``da`` (its dimension names and orientation) when given."""
    if da is None:
        return attach_grid(xr.DataArray(values, dims=("y", "x"), coords=grid.coords(),
                                        name=name, attrs=attrs), grid)
    ydim, xdim = da.rio.y_dim, da.rio.x_dim
    if da[ydim].values[0] < da[ydim].values[-1]:
        values = values[::-1, :]
    if da[xdim].values[0] > da[xdim].values[-1]:
        values = values[:, ::-1]
    out = xr.DataArray(values, dims=(ydim, xdim), coords={ydim: da[ydim], xdim: da[xdim]},
                       name=name, attrs=attrs)
    return out.rio.write_crs(da.rio.crs)


def region_mask(grid_or_da: Any, path: Any, attribute: str | None = None, values: Any = None,
                *, all_touched: bool = False, layer: str | int | None = None) -> xr.DataArray:
    """Boolean ``(y, x)`` mask, True inside the selected polygons.

    ``grid_or_da`` is a :class:`GridSpec` (or anything :func:`as_grid`
    takes) or a DataArray whose grid, dimension names and coordinates are
    used. ``path`` is a vector file or a GeoDataFrame; ``attribute`` /
    ``values`` select features (e.g. ``attribute="name", values="Nei Mongol"``);
    unknown attributes or values raise :class:`~carbonsink.errors.UnknownNameError` (a
    ``KeyError``) listing what exists.
    Polygons are reprojected to the grid CRS before rasterising.
    """
    from rasterio.features import geometry_mask

    gdf = read_regions(path, attribute, values, layer)
    if isinstance(grid_or_da, xr.DataArray):
        da = grid_or_da
        grid = GridSpec.from_dataarray(da)
    else:
        da, grid = None, as_grid(grid_or_da)
    geoms = gdf.to_crs(grid.crs).geometry
    geoms = [g for g in geoms if g is not None and not g.is_empty]
    if geoms:
        inside = geometry_mask(geoms, out_shape=grid.shape, transform=grid.transform,
                               all_touched=all_touched, invert=True)
    else:
        inside = np.zeros(grid.shape, dtype=bool)
    label = values if values is None or isinstance(values, str) else ", ".join(map(str, values))
    attrs = {"long_name": "region mask (True = inside)", "units": "1",
             "source": str(path) if not hasattr(path, "geometry") else "GeoDataFrame",
             "all_touched": int(all_touched)}
    if attribute is not None:
        attrs["region_attribute"] = attribute
    if label is not None:
        attrs["region"] = label
    return _as_layer(inside, grid, da, "region_mask", attrs)


def zone_labels(grid_or_da: Any, path: Any, attribute: str, values: Any = None, *,
                all_touched: bool = False, layer: str | int | None = None,
                label: str = "zone") -> xr.DataArray:
    """Labelled zones ``(y, x)`` (int32; 0 = in no zone) rasterised from a polygon layer.

    Each distinct value of ``attribute`` (e.g. a province name) becomes one label
    1, 2, … in sorted order (several polygons with the same name share it); a cell belongs to
    the zone that covers its centre (``all_touched=False``); where simplified borders overlap
    and a centre lies in two polygons, the polygon that comes later in the layer keeps it, so
    every cell counts once. The names travel in the attribute
    ``zone_names`` (JSON ``{label: name}``), the kind of zone in ``zone_layer``. Polygons are
    reprojected to the grid CRS first. Rasterised once, so every per-zone summary reads the
    same cells (see :func:`carbonsink.regions.summarise`).
    """
    import json

    from rasterio.features import rasterize

    gdf = read_regions(path, attribute, values, layer)
    if isinstance(grid_or_da, xr.DataArray):
        da = grid_or_da
        grid = GridSpec.from_dataarray(da)
    else:
        da, grid = None, as_grid(grid_or_da)
    gdf = gdf.to_crs(grid.crs)
    names = sorted({str(v) for v in gdf[attribute]})
    code = {n: i + 1 for i, n in enumerate(names)}
    shapes = [(g, code[str(v)]) for g, v in zip(gdf.geometry, gdf[attribute], strict=True)
              if g is not None and not g.is_empty]
    if shapes:
        labels = rasterize(shapes, out_shape=grid.shape, transform=grid.transform, fill=0,
                           all_touched=all_touched, dtype="int32")
    else:
        labels = np.zeros(grid.shape, dtype="int32")
    attrs = {"long_name": f"{label} label (0 = none)", "units": "1",
             "zone_names": json.dumps({str(v): k for k, v in code.items()}),
             "zone_layer": label, "zone_attribute": attribute,
             "source": str(path) if not hasattr(path, "geometry") else "GeoDataFrame"}
    return _as_layer(labels, grid, da, "zones", attrs)


def polygon_fractions(grid_or_da: Any, path: Any, attribute: str | None = None,
                      values: Any = None, *, by_value: bool = False, oversample: int = 5,
                      layer: str | int | None = None, label: str = "zone") -> xr.DataArray:
    """Share of each cell covered by the selected polygons (0–1), for totals along borders.

    The polygons are rasterised on a grid ``oversample`` times finer than the study grid and
    the covered sub-cells of each cell are counted (cell-centre rule on the fine grid), so a
    cell half inside a province counts half in its totals. With ``by_value`` the result has
    a ``zone`` dimension, one layer per distinct value of ``attribute`` (labels 1, 2, … in
    sorted order as in :func:`zone_labels`, names in ``zone_names``); otherwise it is the
    fraction covered by the union. Accurate to about 1 / oversample² of a cell.
    """
    import json

    from affine import Affine
    from rasterio.features import rasterize

    if oversample < 1:
        raise InvalidArgumentError(f"oversample must be >= 1, got {oversample}")
    gdf = read_regions(path, attribute, values, layer)
    grid = GridSpec.from_dataarray(grid_or_da) if isinstance(grid_or_da, xr.DataArray) \
        else as_grid(grid_or_da)
    gdf = gdf.to_crs(grid.crs)
    k = int(oversample)
    ny, nx = grid.shape
    fine = grid.transform * Affine.scale(1.0 / k)
    if by_value:
        if attribute is None:
            raise InvalidArgumentError("polygon_fractions(by_value=True) needs attribute=")
        names = sorted({str(v) for v in gdf[attribute]})
        code = {n: i + 1 for i, n in enumerate(names)}
        shapes = [(g, code[str(v)]) for g, v in zip(gdf.geometry, gdf[attribute], strict=True)
                  if g is not None and not g.is_empty]
    else:
        names, code = ["region"], {"region": 1}
        shapes = [(g, 1) for g in gdf.geometry if g is not None and not g.is_empty]
    labels = rasterize(shapes, out_shape=(ny * k, nx * k), transform=fine, fill=0,
                       dtype="int32") if shapes else np.zeros((ny * k, nx * k), "int32")
    blocks = labels.reshape(ny, k, nx, k)
    frac = np.stack([(blocks == c).sum(axis=(1, 3)) / (k * k) for c in range(1, len(names) + 1)])
    attrs = {"units": "1", "long_name": f"share of the cell inside each {label}",
             "oversample": k, "zone_layer": label,
             "zone_names": json.dumps({str(v): n for n, v in code.items()})}
    coords = grid.coords()
    if by_value:
        out = xr.DataArray(frac.astype("float32"), dims=("zone", "y", "x"),
                           coords={"zone": np.arange(1, len(names) + 1), **coords},
                           attrs=attrs, name="zone_fractions")
    else:
        out = xr.DataArray(frac[0].astype("float32"), dims=("y", "x"), coords=coords,
                           attrs={**attrs, "long_name": "share of the cell inside the region"},
                           name="region_fraction")
    return attach_grid(out, grid)


def zone_names(zones: xr.DataArray) -> dict[int, str]:
    """``{label: name}`` of a zone map made by :func:`zone_labels`."""
    import json

    raw = zones.attrs.get("zone_names")
    if raw is None:
        vals = np.unique(np.asarray(zones.values))
        return {int(v): str(int(v)) for v in vals if v > 0}
    return {int(k): str(v) for k, v in json.loads(raw).items()}


def match_grid(other: xr.DataArray, da: xr.DataArray, what: str = "mask") -> xr.DataArray:
    """Return ``other`` (a ``(y, x)`` field) with ``da``'s exact x/y coordinates.

    Raises :class:`AlignmentError` when the two are not on the same grid, so
    that xarray's coordinate alignment never silently drops cells.
    """
    ydim, xdim = da.rio.y_dim, da.rio.x_dim
    for dim in (ydim, xdim):
        if dim not in other.dims:
            raise AlignmentError(f"{what} has dims {other.dims}, expected '{ydim}' and '{xdim}' "
                                 f"like '{da.name}'. Fix: build it from the same grid")
        a, b = np.asarray(other[dim].values, float), np.asarray(da[dim].values, float)
        step = abs(b[1] - b[0]) if b.size > 1 else 1.0
        if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=1e-6 * step):
            raise AlignmentError(
                f"{what} is not on the grid of '{da.name}' ({dim}: {a.size} cells from "
                f"{a[0] if a.size else None} vs {b.size} from {b[0] if b.size else None}). "
                "Fix: regrid both onto one GridSpec (carbonsink.cube.regrid)")
    oc, dc = other.rio.crs if hasattr(other, "rio") else None, da.rio.crs
    if oc is not None and dc is not None and oc != dc:
        raise AlignmentError(f"{what} is in CRS {oc} but '{da.name}' is in {dc}. Fix: regrid "
                             "both onto one GridSpec")
    return other.assign_coords({ydim: da[ydim], xdim: da[xdim]})


def clip(da: xr.DataArray, mask: xr.DataArray, drop: bool = False) -> xr.DataArray:
    """Set cells outside ``mask`` (False) to NaN, keeping attrs and CRS.

    Integer data with a nodata value keep their dtype and get the nodata
    value instead of NaN. ``drop=True`` also trims the result to the bounding
    box of the mask (the 2-D mask is computed for that).
    """
    mask = match_grid(mask, da, "mask")
    if mask.dtype != bool:
        mask = mask.astype(bool)
    nodata = da.rio.nodata if da.dtype.kind in "iu" else None
    out = da.where(mask, nodata) if nodata is not None else da.where(mask)
    out.attrs = dict(da.attrs)
    if "spatial_ref" in da.coords and "spatial_ref" not in out.coords:
        out = out.assign_coords(spatial_ref=da.spatial_ref)
    if drop:
        ydim, xdim = da.rio.y_dim, da.rio.x_dim
        m = np.asarray(mask.transpose(ydim, xdim).values)
        rows, cols = np.flatnonzero(m.any(axis=1)), np.flatnonzero(m.any(axis=0))
        if rows.size == 0:
            raise InputError(f"clipping '{da.name}': the mask selects no cell of its grid. Fix: "
                             "check that the region lies inside the grid bounds")
        out = out.isel({ydim: slice(rows[0], rows[-1] + 1), xdim: slice(cols[0], cols[-1] + 1)})
        out = out.rio.write_transform(out.rio.transform(recalc=True))
    return out
