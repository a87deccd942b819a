"""Class maps of the papers and their area shares.

All class maps are ``int8`` DataArrays (lazy for dask input) with CF
``flag_values`` / ``flag_meanings`` attributes; pixels without data (NaN
inputs) hold :data:`CLASS_FILL` (−128), which is also recorded as the
``_FillValue`` encoding so that writers mark it missing.  The thresholds are
arguments with the papers' defaults.

* :func:`sen_mk_classes` — nine classes of seed 001 (Sen slope sign × |Z| bins)
* :func:`ols_six_classes` — six classes of seed 003 (OLS slope sign × p bins)
* :func:`ols_four_classes` — SI/II/ID/SD of seed 004
* :func:`sink_source_classes` — binary sink/source, 001 four classes, 002 three classes
* :func:`class_area_shares` — area (km²) and share (%) of each class from true pixel areas
"""

from __future__ import annotations

import json

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from .._xrutil import keep_coord_attrs

from carbonsink.errors import InvalidArgumentError, UnitError

__all__ = ["CLASS_FILL", "sen_mk_classes", "ols_six_classes", "ols_four_classes",
           "sink_source_classes", "class_area_shares", "class_labels"]

#: integer fill value of all class maps (pixels without data)
CLASS_FILL = -128


def _meaning(label: str) -> str:
    return "_".join(str(label).replace("/", " ").replace("-", " ").split())


def _class_da(codes: xr.DataArray, values: Sequence[int], labels: Sequence[str],
              name: str) -> xr.DataArray:
    out = codes.astype(np.int8) if codes.dtype != np.int8 else codes
    out.name = name
    out.attrs = {
        "flag_values": np.asarray(values, dtype=np.int8),
        "flag_meanings": " ".join(_meaning(lb) for lb in labels),
        "labels": list(labels),
        "missing_value": np.int8(CLASS_FILL),
    }
    out.encoding["_FillValue"] = np.int8(CLASS_FILL)
    return out


def class_labels(classes: xr.DataArray) -> dict[int, str]:
    """``{code: label}`` of a class map made by this module."""
    vals = [int(v) for v in np.atleast_1d(classes.attrs.get("flag_values", []))]
    labels = classes.attrs.get("labels")
    if isinstance(labels, str):  # a list stored as JSON text by netCDF/Zarr writers
        try:
            labels = json.loads(labels)
        except json.JSONDecodeError:
            labels = None
    if labels is None:
        labels = [m.replace("_", " ") for m in str(classes.attrs.get("flag_meanings", "")).split()]
    if len(labels) != len(vals):
        raise InvalidArgumentError(
            f"class map '{classes.name}' has {len(vals)} flag_values but {len(labels)} labels")
    return dict(zip(vals, labels))


def _elementwise(func, *objs):
    return keep_coord_attrs(xr.apply_ufunc(func, *objs, dask="parallelized",
                                           output_dtypes=[np.int8], keep_attrs=False), *objs)


def _pick(trend, var, given, fname):
    if given is not None:
        return given
    if isinstance(trend, xr.Dataset):
        if var not in trend:
            raise InvalidArgumentError(f"{fname}: the Dataset has no variable '{var}'")
        return trend[var]
    raise InvalidArgumentError(f"{fname}: pass a trend Dataset or both the slope and '{var}' arrays")


def _slope_of(trend):
    return trend["slope"] if isinstance(trend, xr.Dataset) else trend


# --------------------------------------------------------------------------- trend classes

SEN_MK_LABELS = ("extremely significant decrease", "significant decrease",
                 "weakly significant decrease", "insignificant decrease", "unchanged",
                 "insignificant increase", "weakly significant increase",
                 "significant increase", "extremely significant increase")


def _signed_classes(slope, stat, magnitude, values, labels, name):
    """Class = sign(slope) × magnitude(stat); NaN in either input gives the fill code."""

    def f(b, x):
        b = np.asarray(b, dtype=np.float64)
        x = np.asarray(x, dtype=np.float64)
        with np.errstate(invalid="ignore"):
            out = np.sign(b) * np.asarray(magnitude(x))
        # np.where keeps 0-d (a single series, e.g. a regional mean) and n-d inputs alike
        return np.where(np.isnan(b) | np.isnan(x), CLASS_FILL, out).astype(np.int8)

    return _class_da(_elementwise(f, slope, stat), values, labels, name)


def sen_mk_classes(trend, z=None, *, critical: Sequence[float] = (1.645, 1.960, 2.576)):
    """Nine trend classes of seed 001 (docs/methods.md §6.3) from the Sen slope and MK |Z|.

    ``+4`` slope > 0 and |Z| > c3; ``+3`` c2 < |Z| <= c3; ``+2`` c1 < |Z| <= c2;
    ``+1`` |Z| <= c1; ``0`` slope == 0 (any Z); ``−1..−4`` mirror for slope < 0.
    ``critical = (c1, c2, c3)`` defaults to the exact normal quantiles 1.645,
    1.960, 2.576 (the paper prints them rounded to 1.64, 1.96, 2.58).
    ``trend`` is a :func:`mann_kendall` Dataset, or the slope with ``z`` given.
    """
    slope = _slope_of(trend)
    z = _pick(trend, "z", z, "sen_mk_classes")
    c = np.asarray(critical, dtype=np.float64)
    if c.shape != (3,) or not np.all(np.diff(c) > 0):
        raise InvalidArgumentError(f"sen_mk_classes: critical must be 3 increasing values, got {critical}")

    out = _signed_classes(slope, z, lambda zz: 1 + np.searchsorted(c, np.abs(zz), side="left"),
                          range(-4, 5), SEN_MK_LABELS, "sen_mk_class")
    out.attrs.update(long_name="Sen slope / Mann-Kendall trend class (seed 001)",
                     critical_values=[float(v) for v in c])
    return out


OLS6_LABELS = ("extremely significant decrease", "significant decrease",
               "non-significant decrease", "no change", "non-significant increase",
               "significant increase", "extremely significant increase")


def ols_six_classes(trend, p=None, *, levels: Sequence[float] = (0.01, 0.05)):
    """Six OLS trend classes of seed 003 (docs/methods.md §6.1) plus ``0`` for slope == 0.

    ``±3`` p < l1 (extremely significant), ``±2`` l1 <= p < l2 (significant),
    ``±1`` p >= l2 (non-significant), sign from the slope; ``levels = (l1, l2)``
    default (0.01, 0.05) with half-open intervals closing the paper's gap at
    p = 0.01.  ``trend`` is an :func:`ols_trend` Dataset, or the slope with ``p``.
    """
    slope = _slope_of(trend)
    p = _pick(trend, "p", p, "ols_six_classes")
    lv = np.asarray(levels, dtype=np.float64)
    if lv.shape != (2,) or not lv[0] < lv[1]:
        raise InvalidArgumentError(f"ols_six_classes: levels must be 2 increasing values, got {levels}")

    out = _signed_classes(slope, p, lambda pp: 3 - np.searchsorted(lv, pp, side="right"),
                          range(-3, 4), OLS6_LABELS, "ols_class")
    out.attrs.update(long_name="OLS trend significance class (seed 003)",
                     levels=[float(v) for v in lv])
    return out


OLS4_LABELS = ("significant decrease (SD)", "insignificant decrease (ID)", "no change",
               "insignificant increase (II)", "significant increase (SI)")


def ols_four_classes(trend, p=None, *, alpha: float = 0.05):
    """SI / II / ID / SD classes of seed 004 (carbonsink docs/methods.md §6.1).

    ``2`` SI (slope > 0, p < alpha), ``1`` II (slope > 0, p >= alpha),
    ``−1`` ID (slope < 0, p >= alpha), ``−2`` SD (slope < 0, p < alpha),
    ``0`` slope == 0.
    """
    slope = _slope_of(trend)
    p = _pick(trend, "p", p, "ols_four_classes")

    out = _signed_classes(slope, p, lambda pp: np.where(pp < alpha, 2, 1),
                          range(-2, 3), OLS4_LABELS, "ols4_class")
    out.attrs.update(long_name="OLS trend class SI/II/ID/SD (seed 004)", alpha=float(alpha))
    return out


# --------------------------------------------------------------------------- sink / source

_SINK_SCHEMES = {
    "001": ((0.0, 200.0, 400.0), ("source", "low sink", "medium sink", "high sink")),
    "002": ((0.0, 50.0), ("source", "weak sink", "strong sink")),
}


def _coded(v, classify) -> np.ndarray:
    """int8 classes ``classify(v)`` of a block, :data:`CLASS_FILL` where ``v`` is NaN; the
    values are compared as stored (float32 stays float32: no float64 copy of the block)."""
    v = np.asarray(v)
    if v.dtype.kind != "f":
        v = v.astype(np.float64)
    out = np.asarray(classify(v), dtype=np.int8)
    out[np.isnan(v)] = CLASS_FILL
    return out


def sink_source_classes(nep: xr.DataArray, scheme: str = "binary", *,
                        thresholds: Sequence[float] | None = None,
                        labels: Sequence[str] | None = None) -> xr.DataArray:
    """Carbon sink/source classes of NEP (carbonsink docs/methods.md §4.2).

    ``scheme="binary"`` (000, 003): ``−1`` source (NEP < 0), ``0`` neutral
    (NEP == 0), ``1`` sink (NEP > 0).
    ``scheme="001"``: ``0`` source (< 0), ``1`` low sink [0, 200), ``2`` medium
    [200, 400), ``3`` high (>= 400).  ``scheme="002"``: ``0`` source, ``1`` weak
    sink [0, 50), ``2`` strong (>= 50).  Thresholds are in the units of ``nep``
    (the papers use g C m-2 yr-1); ``thresholds``/``labels`` override the
    scheme's (class i covers ``[t_{i-1}, t_i)``, class 0 below ``t_0``).
    """
    if not isinstance(nep, xr.DataArray):
        raise InvalidArgumentError("sink_source_classes: nep must be an xarray.DataArray")
    if scheme == "binary" and thresholds is None:
        def f(v):
            # -1, 0, 1 = sign(v), from comparisons on the values as stored
            return _coded(v, lambda x: (x > 0).view(np.int8) - (x < 0).view(np.int8))

        res = _elementwise(f, nep)
        out = _class_da(res, (-1, 0, 1), labels or ("source", "neutral", "sink"), "sink_class")
        out.attrs.update(long_name="carbon sink/source class", scheme="binary")
        return out
    if thresholds is None:
        if scheme not in _SINK_SCHEMES:
            raise InvalidArgumentError(
                f"sink_source_classes: unknown scheme '{scheme}'; valid: binary, "
                f"{', '.join(_SINK_SCHEMES)} (or pass thresholds=)")
        thresholds, default_labels = _SINK_SCHEMES[scheme]
    else:
        default_labels = ("source",) + tuple(f"class {i}" for i in range(1, len(thresholds) + 1))
    th = np.asarray(thresholds, dtype=np.float64)
    if th.ndim != 1 or th.size == 0 or not np.all(np.diff(th) > 0):
        raise InvalidArgumentError(f"sink_source_classes: thresholds must increase, got {thresholds}")
    labels = tuple(labels) if labels is not None else tuple(default_labels)
    if len(labels) != th.size + 1:
        raise InvalidArgumentError(
            f"sink_source_classes: {th.size} thresholds need {th.size + 1} labels, got {len(labels)}")

    def g(v):
        return _coded(v, lambda x: np.searchsorted(th, x, side="right").astype(np.int8))

    res = _elementwise(g, nep)
    out = _class_da(res, range(th.size + 1), labels, "sink_class")
    out.attrs.update(long_name="carbon sink class", scheme=str(scheme),
                     thresholds=[float(v) for v in th])
    if "units" in nep.attrs:
        out.attrs["threshold_units"] = nep.attrs["units"]
    return out


# --------------------------------------------------------------------------- area shares


def _area_km2(area: xr.DataArray) -> xr.DataArray:
    from carbonsink import units as cu

    if not isinstance(area, xr.DataArray):
        raise InvalidArgumentError("class_area_shares: area must be an xarray.DataArray of pixel areas")
    found = area.attrs.get("units")
    if not found:
        raise UnitError(str(area.name or "area"), "m2 or km2", None,
                        fix="set area.attrs['units'] to 'm2' or 'km2' (carbonsink.cube.pixel_area "
                            "returns m2)")
    try:
        return cu.to_units(area, "km2", variable=str(area.name or "area"))
    except UnitError:
        raise
    except Exception as exc:  # pint parse errors and the like
        raise UnitError(str(area.name or "area"), "m2 or km2", found, fix=str(exc)) from None


def class_area_shares(classes: xr.DataArray, area: xr.DataArray,
                      labels: dict[int, str] | Sequence[str] | None = None, *,
                      by: str | None = None) -> pd.DataFrame:
    """Area (km²) and share (%) of each class, weighted by true pixel areas.

    ``area`` holds pixel areas with a ``units`` attribute (m², km², ha ...).
    Shares are relative to the total area of pixels that have a class (fill
    values and NaN areas excluded).  ``labels`` defaults to the map's
    ``flag_values``/labels; all listed classes appear, also with zero area.
    ``by`` names an extra dimension of ``classes`` (e.g. ``"time"`` for the
    per-year shares of seed 003): one block of rows per coordinate value.

    Returns a tidy DataFrame with columns ``[by,] class, label, area_km2,
    share_percent``.
    """
    if not isinstance(classes, xr.DataArray):
        raise InvalidArgumentError("class_area_shares: classes must be an xarray.DataArray")
    a_km2 = _area_km2(area)
    if labels is None:
        lab = class_labels(classes) if "flag_values" in classes.attrs else {}
    elif isinstance(labels, dict):
        lab = {int(k): str(v) for k, v in labels.items()}
    else:
        vals = [int(v) for v in np.atleast_1d(classes.attrs.get("flag_values", []))]
        if len(vals) != len(labels):
            raise InvalidArgumentError("class_area_shares: labels must match the map's flag_values, "
                                  "or be a {code: label} dict")
        lab = dict(zip(vals, labels))
    extra = [d for d in classes.dims if d not in a_km2.dims]
    if by is not None and by not in classes.dims:
        raise InvalidArgumentError(f"class_area_shares: classes has no dimension '{by}'")
    if [d for d in extra if d != by]:
        raise InvalidArgumentError(
            f"class_area_shares: classes has dimensions {extra} that area lacks; pass by= "
            "naming the one to group by")
    try:
        c, a = xr.align(classes, a_km2, join="exact", copy=False)
    except ValueError as exc:
        from carbonsink.errors import AlignmentError

        raise AlignmentError(f"class_area_shares: classes and area are not on the same grid "
                             f"({exc})") from None
    groups = [(None, c)] if by is None else [(c[by].values[i], c.isel({by: i}))
                                             for i in range(c.sizes[by])]
    rows = []
    for key, cc in groups:
        cv, av = xr.broadcast(cc, a)
        cv = np.asarray(cv.values).ravel()
        av = np.asarray(av.values, dtype=np.float64).ravel()
        # a map read back from netCDF/Zarr has its fill decoded to NaN
        finite = np.isfinite(cv) if cv.dtype.kind == "f" else np.ones(cv.shape, bool)
        ok = finite & (np.where(finite, cv, 0) != CLASS_FILL) & np.isfinite(av)
        codes = cv[ok].astype(np.int64)
        w = av[ok]
        present = np.unique(codes)
        allcodes = sorted(set(lab) | {int(v) for v in present})
        total = float(w.sum())
        for code in allcodes:
            sel = codes == code
            akm = float(w[sel].sum())
            row = {"class": int(code), "label": lab.get(int(code), str(code)), "area_km2": akm,
                   "share_percent": 100.0 * akm / total if total > 0 else np.nan}
            if by is not None:
                row = {by: key, **row}
            rows.append(row)
    cols = ([by] if by is not None else []) + ["class", "label", "area_km2", "share_percent"]
    return pd.DataFrame(rows, columns=cols)
