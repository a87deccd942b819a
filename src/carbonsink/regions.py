"""Area-weighted regional and per-class summaries (METHODS §1.6).

* regional mean  = Σ F·A / Σ A over valid cells (F not NaN, inside the mask);
* regional total = Σ F·A, converted from (units of F) × m² to e.g. ``Tg C``,
  keeping the per-period token of F (``g C m-2 yr-1`` → ``Tg C yr-1``).

``area`` is the cell area from :func:`carbonsink.cube.pixel_area` (any area
units, converted to m²); it must be on the grid of the data, otherwise an
:class:`~carbonsink.errors.AlignmentError` is raised (xarray would otherwise
silently drop non-matching cells). Everything is xarray/dask arithmetic:
results stay lazy except :func:`per_class_summary`, which computes once at
the end to build its table.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .cube.area import pixel_area
from .cube.mask import match_grid
from .errors import AlignmentError, InputError, InvalidArgumentError, UnitError
from .units import parse_units, ureg

__all__ = ["regional_mean", "regional_total", "per_class_summary", "total_factor"]

_PERIOD_TOKEN = {"month": "month-1", "year": "yr-1"}


def _spatial_dims(da: xr.DataArray) -> tuple[str, str]:
    try:
        return da.rio.y_dim, da.rio.x_dim
    except Exception as exc:
        raise AlignmentError(f"'{da.name}' has no recognisable x/y dimensions (dims {da.dims}): "
                             f"{exc}") from None


def _area_m2(da: xr.DataArray, area: xr.DataArray | None) -> xr.DataArray:
    if area is None:
        area = pixel_area(da)
    if not isinstance(area, xr.DataArray):
        raise InvalidArgumentError("area must be a DataArray (y, x) of cell areas, e.g. "
                                   "carbonsink.cube.pixel_area(da)")
    units = area.attrs.get("units")
    if units is None:
        raise UnitError("area", "m2", None, fix="use carbonsink.cube.pixel_area(), which sets "
                        "units 'm2', or set area.attrs['units']")
    try:
        pu = parse_units(units)
        f = ureg.Quantity(pu.factor, pu.units).to("meter**2").magnitude
    except Exception:
        raise UnitError("area", "m2", units) from None
    area = match_grid(area, da, "area")
    return area * f if f != 1.0 else area


def _prepare(da, area, mask):
    ydim, xdim = _spatial_dims(da)
    w = _area_m2(da, area)
    data = da
    if mask is not None:
        mask = match_grid(mask, da, "mask")
        data = da.where(mask.astype(bool))
    return data, w, (ydim, xdim)


def total_factor(units: str | None, target: str = "Tg C", name: str = "?") -> tuple[float, str]:
    """Factor turning Σ F·A (F in ``units``, A in m²) into ``target``; and the result units.

    The per-period token of ``units`` is carried over to the result
    (``"g C m-2 yr-1"``, ``"Tg C"`` → ``"Tg C yr-1"``).
    """
    if units is None:
        raise UnitError(name, "an areal density such as 'g C m-2 yr-1'", None)
    try:
        src = parse_units(units)
    except ValueError:
        raise UnitError(name, "an areal density such as 'g C m-2 yr-1'", units) from None
    dst = parse_units(target)
    if dst.period is not None and dst.period != src.period:
        raise UnitError(name, f"a density per {dst.period}", units,
                        fix="aggregate in time first or ask for units without a period")
    try:
        q = ureg.Quantity(src.factor, src.units * ureg.meter ** 2).to(dst.units)
    except Exception:
        raise UnitError(name, f"a density that times m2 gives '{target}'", units,
                        fix="choose total units matching the variable (e.g. 'Tg C' for carbon "
                            "fluxes, 'km3' for water in mm)") from None
    out_units = " ".join(t for t in target.split() if t not in ("month-1", "yr-1", "year-1"))
    if src.period is not None:
        out_units = f"{out_units} {_PERIOD_TOKEN.get(src.period, src.period + '-1')}"
    return float(q.magnitude) / dst.factor, out_units


def _finish(out: xr.DataArray, da: xr.DataArray, units: str | None, what: str) -> xr.DataArray:
    out = out.drop_vars([c for c in ("spatial_ref",) if c in out.coords])
    attrs = dict(da.attrs)
    for k in ("_FillValue", "grid_mapping"):
        attrs.pop(k, None)
    if units is not None:
        attrs["units"] = units
    base = da.attrs.get("long_name", da.name or "variable")
    attrs["long_name"] = f"{what} of {base}"
    attrs["cell_methods"] = (attrs.get("cell_methods", "") + " area: " +
                             ("mean" if "mean" in what else "sum")).strip()
    out.attrs = attrs
    out.name = da.name
    return out


def regional_mean(da: xr.DataArray, area: xr.DataArray | None = None,
                  mask: xr.DataArray | None = None) -> xr.DataArray:
    """Area-weighted mean over the valid cells (not NaN, inside ``mask``).

    ``area`` defaults to :func:`pixel_area` of ``da``. Returns a DataArray
    over the non-spatial dims (e.g. ``time``) with the units of ``da``; NaN
    where no cell is valid. Lazy for dask input.
    """
    data, w, dims = _prepare(da, area, mask)
    valid = data.notnull()
    num = (data.fillna(0) * w).sum(dims)
    den = (w * valid).sum(dims)
    out = num / den.where(den > 0)
    return _finish(out, da, da.attrs.get("units"), "area-weighted regional mean")


def regional_total(da: xr.DataArray, area: xr.DataArray | None = None,
                   mask: xr.DataArray | None = None, units: str = "Tg C") -> xr.DataArray:
    """Σ F·A over the valid cells, in ``units`` (``"Tg C"``, ``"Pg C"``, ``"g C"``...).

    F must be an areal density (``g C m-2 yr-1``, ``g C m-2 month-1``,
    ``kg C m-2``, ``mm month-1`` with ``units="km3"``...); the period token is
    kept (``Tg C yr-1``). NaN cells are skipped (they add nothing); a step
    with no valid cell is NaN. Time-resolved, lazy.
    """
    name = str(da.name or "?")
    factor, out_units = total_factor(da.attrs.get("units"), units, name)
    data, w, dims = _prepare(da, area, mask)
    valid = data.notnull()
    tot = (data.fillna(0) * w).sum(dims) * factor
    out = tot.where(valid.any(dims))
    return _finish(out, da, out_units, "regional total")


def _class_codes(classes: xr.DataArray, labels: Mapping[Any, str] | None):
    if labels is not None:
        return list(labels), dict(labels)
    fv, fm = classes.attrs.get("flag_values"), classes.attrs.get("flag_meanings")
    if fv is not None and fm is not None:
        codes = [int(v) for v in np.atleast_1d(fv)]
        names = str(fm).split()
        if len(names) == len(codes):
            return codes, dict(zip(codes, names))
    values = np.unique(np.asarray(classes.values))
    values = values[np.isfinite(values)] if values.dtype.kind == "f" else values
    nodata = classes.rio.nodata if hasattr(classes, "rio") else None
    if nodata is not None:
        values = values[values != nodata]
    codes = [v.item() for v in values]
    return codes, {c: str(c) for c in codes}


def per_class_summary(da: xr.DataArray, classes: xr.DataArray,
                      area: xr.DataArray | None = None,
                      labels: Mapping[Any, str] | None = None,
                      mask: xr.DataArray | None = None, units: str = "Tg C") -> pd.DataFrame:
    """Tidy table of area-weighted statistics per land-cover class.

    Columns: ``class``, ``label``, (``time`` and other non-spatial dims of
    ``da``), ``area_km2`` (area of the valid cells of the class), ``mean``
    (area-weighted, units of ``da``), ``total`` (in ``units`` with the period
    of ``da``), ``mean_units``, ``total_units``. Classes come from ``labels``
    (``{code: name}``), else from CF ``flag_values``/``flag_meanings`` of
    ``classes`` (as set by :func:`carbonsink.cube.reclassify`), else from the
    distinct values of ``classes`` (nodata excluded). ``classes`` is on the
    grid of ``da`` (2-D, or with the time axis of ``da`` for changing land
    cover). Built lazily with one-hot weights and computed once.
    """
    import dask

    name = str(da.name or "?")
    factor, total_units = total_factor(da.attrs.get("units"), units, name)
    data, w, dims = _prepare(da, area, mask)
    ydim, xdim = dims
    classes = match_grid(classes, da, "classes")
    codes, names = _class_codes(classes, labels)
    if not codes:
        raise InputError(f"per_class_summary: no classes found in '{classes.name}'")
    code_da = xr.DataArray(np.asarray(codes), dims="class", coords={"class": np.asarray(codes)})
    wdtype = np.result_type(data.dtype, np.float32)
    onehot = (classes.drop_vars("spatial_ref", errors="ignore") == code_da).astype(wdtype)
    valid = data.notnull().astype(wdtype)
    wa = (w * valid).drop_vars("spatial_ref", errors="ignore")
    wf = (data.fillna(0) * w).drop_vars("spatial_ref", errors="ignore")
    a_c = xr.dot(onehot, wa, dim=[ydim, xdim])
    s_c = xr.dot(onehot, wf, dim=[ydim, xdim])
    ds = xr.Dataset({"area_km2": a_c / 1e6, "mean": s_c / a_c.where(a_c > 0),
                     "total": s_c * factor})
    (ds,) = dask.compute(ds)
    other = [d for d in ds.dims if d != "class"]
    df = ds.to_dataframe().reset_index()
    df = df[["class", *other, "area_km2", "mean", "total"]]
    df.insert(1, "label", [names.get(c, str(c)) for c in df["class"]])
    df["mean_units"] = da.attrs.get("units")
    df["total_units"] = total_units
    df.attrs["units"] = {"area_km2": "km2", "mean": da.attrs.get("units"), "total": total_units}
    return df
