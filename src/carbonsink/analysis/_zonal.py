"""Helpers shared by the stability, persistence and correlation analyses: the zones of a study,
area shares of class maps for the whole region and every zone in one pass (true pixel areas,
carbonsink docs/methods.md §1.6 and §4.2), detrending, and the class-map and share figures."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InvalidArgumentError
from ..stats.classes import CLASS_FILL, class_labels

__all__ = ["safe_div", "as_scalar", "zone_layer", "class_shares", "detrend", "class_map_figure",
           "share_bar_figure", "run_label", "figure_name", "season_label", "DRIVER_NAMES"]

#: readable names of the climate drivers (canonical variable names of carbonsink.units)
DRIVER_NAMES = {"tas": "temperature", "pr": "precipitation", "sol": "solar radiation",
                "pet": "potential evapotranspiration", "eet": "actual evapotranspiration",
                "hurs": "relative humidity", "sund": "sunshine duration"}


def safe_div(a, b):
    """``a / b`` with NaN where ``b == 0`` (scalars, numpy arrays or DataArrays; a 0-d result
    is a float)."""
    if isinstance(a, xr.DataArray) or isinstance(b, xr.DataArray):
        return a / xr.where(b != 0, b, np.nan)
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        out = np.where(b != 0, a / np.where(b != 0, b, 1.0), np.nan)
    return float(out) if out.ndim == 0 else out


def as_scalar(x):
    """A 0-d numpy value as a float; anything else unchanged."""
    if isinstance(x, (np.ndarray, np.generic)) and np.ndim(x) == 0:
        return float(x)
    return x


def zone_layer(zones: xr.DataArray | None) -> str:
    """The kind of zone ("province", "subzone" ...) recorded with the zones, else "zone"."""
    return str(zones.attrs.get("zone_layer", "zone")) if zones is not None else "zone"


def _zone_names(zones: xr.DataArray) -> dict[int, str]:
    from ..cube.mask import zone_names

    return {int(k): v for k, v in zone_names(zones).items() if int(k) != 0}


def _area_km2(area: xr.DataArray) -> xr.DataArray:
    from ..units import to_units

    if "units" not in area.attrs:
        raise InvalidArgumentError("class_shares: area needs a 'units' attribute (m2 or km2), "
                                   "e.g. from carbonsink.cube.pixel_area")
    return to_units(area, "km2", variable=str(area.name or "area"))


def class_shares(classes: xr.DataArray, area: xr.DataArray, *,
                 zones: xr.DataArray | None = None, region: str = "study area",
                 labels: Mapping[int, str] | None = None) -> pd.DataFrame:
    """Area [km2] and area share [%] of every class of a 2-D class map, for the whole region and
    for every zone, from true pixel areas in one pass (``numpy.bincount`` over zone × class).

    Shares are of the area of pixels that have a class (fill value −128 and NaN excluded), so
    they sum to 100 % in every zone with such pixels. Pixels in no zone (label 0) count for the
    region only. ``labels`` defaults to the map's own class labels; every listed class appears,
    also with zero area.

    Returns columns ``zone, class, class_name, statistic (area | area_share), units, value``.
    """
    if classes.ndim != 2:
        raise InvalidArgumentError(f"class_shares: expected a 2-D (y, x) class map, found dims "
                                   f"{classes.dims}")
    lab = dict(labels) if labels is not None else (
        class_labels(classes) if "flag_values" in classes.attrs else {})
    a = _area_km2(area)
    c = np.asarray(classes.values)
    av = np.broadcast_to(np.asarray(a.transpose(*classes.dims).values, dtype=np.float64),
                         c.shape)
    finite = np.isfinite(c) if c.dtype.kind == "f" else np.ones(c.shape, bool)
    ok = finite & (np.where(finite, c, 0) != CLASS_FILL) & np.isfinite(av)
    codes_present = np.unique(c[ok].astype(np.int64))
    codes = np.array(sorted(set(int(k) for k in lab) | set(codes_present.tolist())),
                     dtype=np.int64)
    names = {0: region}
    if zones is not None:
        names.update(_zone_names(zones))
        z = np.asarray(zones.transpose(*classes.dims).values)
        z = np.where(np.isfinite(z), z, 0).astype(np.int64) if z.dtype.kind == "f" else \
            z.astype(np.int64)
    else:
        z = np.zeros(c.shape, dtype=np.int64)
    zlabels = np.array(sorted(names), dtype=np.int64)
    zi = np.searchsorted(zlabels, z)
    zi = np.where((zi < zlabels.size) & (zlabels[np.clip(zi, 0, zlabels.size - 1)] == z), zi, 0)
    ci = np.searchsorted(codes, np.where(ok, c, codes[0] if codes.size else 0).astype(np.int64))
    nz, nk = zlabels.size, max(codes.size, 1)
    sums = np.bincount((zi * nk + ci)[ok], weights=av[ok], minlength=nz * nk).reshape(nz, nk)
    blocks = [(region, sums.sum(axis=0))]
    blocks += [(names[int(zl)], sums[i]) for i, zl in enumerate(zlabels) if zl != 0]
    rows = []
    for zone, row in blocks:
        total = float(row.sum())
        for j, code in enumerate(codes):
            name = lab.get(int(code), str(int(code)))
            rows.append((zone, int(code), name, "area", "km2", float(row[j])))
            rows.append((zone, int(code), name, "area_share", "%",
                         100.0 * float(row[j]) / total if total > 0 else np.nan))
    return pd.DataFrame(rows, columns=["zone", "class", "class_name", "statistic", "units",
                                       "value"])


def detrend(da: xr.DataArray, dim: str = "time") -> xr.DataArray:
    """``da`` minus its per-pixel OLS line on the time index (docs/methods.md §6.1), NaN kept; the
    residuals are the interannual anomalies. Vectorised (lazy for dask input)."""
    t = xr.DataArray(np.arange(da.sizes[dim], dtype=np.float64), dims=dim)
    valid = da.notnull()
    cnt = valid.sum(dim)
    tm = (t * valid).sum(dim) / cnt.where(cnt > 0)
    ym = da.mean(dim, skipna=True)
    dt = (t - tm).where(valid)
    sxx = (dt * dt).sum(dim)
    b = (dt * (da - ym)).sum(dim) / sxx.where(sxx > 0)
    with xr.set_options(keep_attrs=True):
        out = da - ym - b.fillna(0.0) * (t - tm)
    out.attrs = dict(da.attrs)
    out.name = da.name
    return out


def season_label(season: str) -> str:
    return "annual" if season == "annual" else "growing-season"


def run_label(ctx, exp: str, combo: str) -> str:
    return combo if len(ctx.experiments) < 2 else f"{exp}/{combo}"


def figure_name(ctx, exp: str, combo: str, name: str) -> str:
    return f"{combo}_{name}" if len(ctx.experiments) < 2 else f"{exp}_{combo}_{name}"


def _palette(n: int, cmap: str):
    from matplotlib import colormaps

    cm = colormaps[cmap]
    if n == 1:
        return [cm(0.5)]
    if getattr(cm, "N", 256) < 32:  # qualitative
        return [cm(i % cm.N) for i in range(n)]
    return [cm(0.08 + 0.84 * i / (n - 1)) for i in range(n)]


def class_map_figure(classes: xr.DataArray, *, title: str = "",
                     shares: Mapping[int, float] | None = None, cmap: str = "viridis",
                     colors: Sequence | None = None, synthetic: bool = False):
    """Categorical map of a 2-D class map with class names and (``shares``, {code: %}) area
    shares in the legend: :func:`carbonsink.report.figures.categorical_map_figure` with the
    colours taken from ``colors`` (one per class, in code order) or the colormap ``cmap``."""
    from matplotlib.colors import to_hex

    from ..report.figures import categorical_map_figure

    lab = class_labels(classes) if "flag_values" in classes.attrs else {}
    if not lab:
        vals = np.asarray(classes.values, dtype=np.float64)
        ok = np.isfinite(vals) & (vals != CLASS_FILL)
        lab = {int(v): str(int(v)) for v in np.unique(vals[ok])} or {0: "0"}
    codes = sorted(lab)
    cols = list(colors) if colors is not None else _palette(len(codes), cmap)
    return categorical_map_figure(classes, labels=lab,
                                  colors={c: to_hex(col) for c, col in zip(codes, cols)},
                                  shares=shares, title=title, synthetic=synthetic)


def share_bar_figure(table: pd.DataFrame, *, title: str = "", cmap: str = "viridis",
                     colors: Sequence | None = None, synthetic: bool = False,
                     xlabel: str = "area share [%]"):
    """Horizontal stacked bars of the class area shares [%], one bar per zone (rows of
    :func:`class_shares` with statistic ``area_share``):
    :func:`carbonsink.report.figures.area_share_figure` with the colours of ``colors`` (one
    per class, in code order) or the colormap ``cmap``, as in :func:`class_map_figure`."""
    from matplotlib.colors import to_hex

    from ..report.figures import area_share_figure

    t = table[table.statistic == "area_share"]
    classes = list(dict.fromkeys(zip(t["class"], t["class_name"])))
    cols = list(colors) if colors is not None else _palette(len(classes), cmap)
    return area_share_figure(t, colors={name: to_hex(c) for (_, name), c in zip(classes, cols)},
                             title=title, xlabel=xlabel, synthetic=synthetic)
