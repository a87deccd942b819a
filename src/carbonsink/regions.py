"""Area-weighted regional and per-class summaries (carbonsink docs/methods.md §1.6).

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

__all__ = ["regional_mean", "regional_total", "per_class_summary", "summarise",
           "summarise_many", "total_factor"]

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
                      mask: xr.DataArray | None = None, units: str | None = "Tg C"
                      ) -> pd.DataFrame:
    """Tidy table of area-weighted statistics per land-cover class (``units=None``: no
    totals, e.g. for a variable that is not an areal density).

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
    factor, total_units = (total_factor(da.attrs.get("units"), units, name)
                           if units is not None else (np.nan, ""))
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


def summarise(da: xr.DataArray, area: xr.DataArray | None = None, *,
              zones: xr.DataArray | None = None, how: tuple[str, ...] = ("mean", "total"),
              units: str = "Tg C", region: str = "study area",
              mask: xr.DataArray | None = None) -> pd.DataFrame:
    """Area-weighted summaries of ``da`` for the whole region and for every zone (tidy).

    One function for regions, zones (provinces, subzones) and classes (land cover, class
    maps): ``zones`` is an integer label map on the grid of ``da`` (e.g. from
    :func:`carbonsink.cube.zone_labels`, names in its ``zone_names`` attribute; or a class
    map with CF ``flag_values``/``flag_meanings``; label 0 and NaN are "no zone"), or a stack
    ``(zone, y, x)`` of the share of each cell inside each zone
    (:func:`carbonsink.cube.polygon_fractions` with ``by_value=True``), where a border cell
    counts with its area times its share.

    ``how`` picks the statistics: ``mean`` (Σ F·A / Σ A over valid cells, units of ``da``),
    ``total`` (Σ F·A in ``units`` with the period of ``da``), ``area`` (valid area [km2]).

    Returns columns ``zone``, the non-spatial dimensions of ``da`` (e.g. ``time``),
    ``statistic``, ``units``, ``value``: first the block of the whole region
    (``zone = region``), then one block per zone in label order. The region and every zone
    are computed in one compiled pass over the data (:mod:`carbonsink._grouped`: each value
    read once, sums per block), so 34 provinces cost about as much as one;
    :func:`summarise_many` computes several summaries in one pass.
    """
    return summarise_many([dict(da=da, area=area, zones=zones, how=how, units=units,
                                region=region, mask=mask)])[0]


def summarise_many(requests: list[dict[str, Any]], *, compute: bool = True):
    """Several :func:`summarise` calls (each a dict of its keyword arguments, ``da`` included)
    computed in one pass: every input is read once and both cores share the work of all of
    them. Returns one table per request, as :func:`summarise` would.

    ``compute=False`` returns a :class:`dask.delayed.Delayed` of that list instead, to be
    computed together with other work (``dask.compute(tables, other)``: one pass over the
    inputs of both).
    """
    import dask

    plans = [_summary_plan(**r) for r in requests]
    # the delayed call gets the bare arrays of the sums (each finisher knows its dims and
    # coordinates): handed a DataArray, dask would pickle it whole into the call, the graph of
    # its inputs included (on a dask cluster, a copy of every weight and label map per
    # summary: 99 MiB sent for the regional summary of six combinations at 600 x 600)
    tables = dask.delayed(_finish_all)([p[0].data for p in plans], [f for _, f in plans])
    return tables.compute() if compute else tables


def _finish_all(sums, finishers) -> list[pd.DataFrame]:
    return [finish(s) for s, finish in zip(sums, finishers)]


def _summary_plan(da: xr.DataArray, area: xr.DataArray | None = None, *,
                  zones: xr.DataArray | None = None, how: tuple[str, ...] = ("mean", "total"),
                  units: str = "Tg C", region: str = "study area",
                  mask: xr.DataArray | None = None):
    """(lazy sums, function turning the computed sums into the table) of one summary."""
    from ._grouped import grouped_sums

    bad = sorted(set(how) - {"mean", "total", "area"})
    if bad:
        raise InvalidArgumentError(f"summarise: unknown statistic(s) {bad}; choose from "
                                   "mean, total, area")
    # a mask on the grid (y, x) is folded into the groups (a cell outside it is in no group)
    # instead of masking every step of the data: the same sums without a pass that rewrites
    # the whole cube (a 21-year cube of 1.2 M pixels: 0.3 s per variable)
    fold = mask is not None and set(mask.dims) <= set(_spatial_dims(da))
    data, w, dims = _prepare(da, area, None if fold else mask)
    factor, total_units = (total_factor(da.attrs.get("units"), units, str(da.name or "?"))
                           if "total" in how else (1.0, ""))
    units_of = {"mean": da.attrs.get("units", ""), "total": total_units, "area": "km2"}
    codes, n_labels, shares, zone_ids, names = _zone_groups(zones, data, dims)
    if fold:
        inside = match_grid(mask, da, "mask").astype(bool).drop_vars("spatial_ref",
                                                                     errors="ignore")
        if codes is None and shares is None:
            codes = xr.zeros_like(inside, dtype=np.int64)
        if codes is not None:
            codes = codes.where(inside, -1)
        if shares is not None:
            shares = shares.where(inside, 0)
    sums = grouped_sums(data, w, dims, codes=codes, n_groups=n_labels, shares=shares)
    other = [d for d in data.dims if d not in dims]
    # what the finisher needs, and nothing lazy: it is pickled with the computation
    sum_dims, sum_coords = sums.dims, {k: c.variable for k, c in sums.coords.items()}
    by_share = shares is not None

    def finish(values) -> pd.DataFrame:
        s = xr.DataArray(values, dims=sum_dims, coords=sum_coords)
        a, f, n = (s.sel(statistic=k, drop=True) for k in ("area", "sum", "count"))
        ra, rf, rn = (x.isel(group=slice(0, n_labels)).sum("group") for x in (a, f, n))
        parts = {"mean": rf / ra.where(ra > 0), "total": (rf * factor).where(rn > 0),
                 "area": ra / 1e6}
        frames = []
        for stat in how:
            arr = parts[stat]
            if arr.dims:
                df = arr.rename("value").to_dataframe().reset_index()[[*arr.dims, "value"]]
            else:
                df = pd.DataFrame({"value": [float(arr)]})
            df.insert(0, "zone", region)
            df["statistic"], df["units"] = stat, units_of[stat]
            frames.append(df)
        if zone_ids:
            pos = np.arange(len(zone_ids)) + (0 if by_share else 1)
            if by_share:
                pos = pos + n_labels
            za, zf = (x.isel(group=pos).rename(group="zone").assign_coords(zone=zone_ids)
                      .transpose("zone", *other) for x in (a, f))
            zparts = {"mean": zf / za.where(za > 0), "total": (zf * factor).where(za > 0),
                      "area": za / 1e6}
            for stat in how:
                arr = zparts[stat]
                df = arr.rename("value").to_dataframe().reset_index()
                df = df[["zone", *[d for d in arr.dims if d != "zone"], "value"]]
                df["zone"] = [names.get(int(z), str(int(z))) for z in df["zone"]]
                df["statistic"], df["units"] = stat, units_of[stat]
                frames.append(df)
        return _order(pd.concat(frames, ignore_index=True))

    return sums, finish


def _zone_groups(zones: xr.DataArray | None, like: xr.DataArray, dims):
    """The groups of a summary: (label index per cell or None, number of labels, share stack
    or None, zone ids in output order, {id: name}). Label 0 collects the cells in no zone,
    so that the region is the sum over all labels."""
    if zones is None:
        return None, 1, None, [], {}
    stack, names = _zone_stack(zones, like, dims)
    if stack is None:
        return None, 1, None, [], names
    if "zone" in stack.dims:  # shares: region from one label (every cell), zones from shares
        return (xr.zeros_like(stack.isel(zone=0, drop=True), dtype=np.int64), 1, stack,
                [int(z) for z in stack["zone"].values], names)
    ids = sorted(names)
    return _label_index(stack, ids), len(ids) + 1, None, ids, names


def _label_index(labels: xr.DataArray, ids) -> xr.DataArray:
    """1 + the position of each cell's label in ``ids`` (int64), 0 for any other value/NaN."""
    ids = np.asarray(ids, dtype=np.float64)

    def _lookup(b):
        b = np.asarray(b, dtype=np.float64)
        pos = np.searchsorted(ids, b)
        pos = np.clip(pos, 0, max(ids.size - 1, 0))
        hit = (ids[pos] == b) if ids.size else np.zeros(b.shape, bool)
        return np.where(hit, pos + 1, 0).astype(np.int64)

    return xr.apply_ufunc(_lookup, labels, dask="parallelized", output_dtypes=[np.int64])


def _zone_stack(zones: xr.DataArray, like: xr.DataArray, dims
                ) -> tuple[xr.DataArray | None, dict[int, str]]:
    """Zones on the grid of ``like``: the share stack ``(zone, y, x)`` itself or the label map
    ``(y, x)`` (label 0 = no zone; None if it names no zone), with ``{label: name}``."""
    import json

    if "zone_names" in zones.attrs:
        names = {int(k): str(v) for k, v in json.loads(zones.attrs["zone_names"]).items()}
    elif "zone" in zones.dims:
        names = {int(z): str(int(z)) for z in zones["zone"].values}
    else:
        _, names = _class_codes(zones, None)
        names = {c: n for c, n in names.items() if c != 0}
    plane = like.isel({d: 0 for d in like.dims if d not in dims}, drop=True)
    if "zone" in zones.dims:
        stack = match_grid(zones, plane, "zones").fillna(0)
    elif not names:
        return None, {}
    else:
        stack = match_grid(zones, plane, "zones")
    return stack.drop_vars("spatial_ref", errors="ignore"), names


def _order(df: pd.DataFrame) -> pd.DataFrame:
    keys = [c for c in df.columns if c not in ("zone", "statistic", "units", "value")]
    return df[["zone", *keys, "statistic", "units", "value"]].reset_index(drop=True)
