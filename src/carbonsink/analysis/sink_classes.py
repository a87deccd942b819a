"""Carbon sink / source classes of NEP (docs/methods.md §4.2) as a registered analysis, and the
per-zone class area shares shared by the class-map analyses.

``sink_classes`` classifies the multi-year mean annual NEP of every combination with one or
more schemes (binary sink/source of 000/003, the four levels of 001, the three of 002),
writes the class maps as Cloud-Optimized GeoTIFFs with their legend, and tabulates the area
of each class for the region and every zone; optionally also each year's classes (the yearly
source-area share of 003, Fig. 3).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator

from .._grouped import class_area_sums
from ..errors import InvalidArgumentError
from ..stats import CLASS_FILL, class_labels, sink_source_classes
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["SinkClasses", "class_share_table", "class_shares_by_zone", "SINK_SCHEMES"]

#: the sink/source schemes of carbonsink docs/methods.md §4.2 and their descriptions
SINK_SCHEMES = {
    "binary": "binary: source NEP < 0, neutral NEP = 0, sink NEP > 0 (000, 003)",
    "001": "001: source < 0, low sink [0, 200), medium [200, 400), high >= 400 g C m-2 yr-1",
    "002": "002: source < 0, weak sink [0, 50), strong sink >= 50 g C m-2 yr-1",
}


def class_share_table(shares: pd.DataFrame, *, variable: str, scheme: str) -> pd.DataFrame:
    """Long form of :func:`carbonsink.stats.class_area_shares` output: statistics ``area``
    [km2] and ``area_share`` [%] per class (key columns scheme, class, class_name)."""
    base = {"scheme": scheme, "class": shares["class"].values,
            "class_name": shares["label"].values, "variable": variable}
    extra = {c: shares[c].values for c in shares.columns
             if c not in ("class", "label", "area_km2", "share_percent")}
    return pd.concat([
        pd.DataFrame({**extra, **base, "statistic": "area", "units": "km2",
                      "value": shares["area_km2"].values}),
        pd.DataFrame({**extra, **base, "statistic": "area_share", "units": "%",
                      "value": shares["share_percent"].values}),
    ], ignore_index=True)


def class_shares_by_zone(classes: xr.DataArray, area: xr.DataArray,
                         zones: xr.DataArray | None = None, *, region: str = "study area",
                         by: str | None = None, labels: dict[int, str] | None = None
                         ) -> pd.DataFrame:
    """Area [km2] and area share [%] of each class, for the region and every zone, in one pass.

    For class ``c`` of zone ``z`` (docs/methods.md §1.6, §4.2): ``area = Σ A`` over the pixels of
    ``z`` whose class is ``c``; ``share = 100 · area / Σ A`` over the pixels of ``z`` that
    have a class (fill values and NaN excluded), so the shares of a zone sum to 100 % of its
    valid area. ``A`` are the true pixel areas (``area`` with ``units``, e.g. m2 from
    :func:`carbonsink.cube.pixel_area`).

    Parameters
    ----------
    classes : class map ``(y, x)`` or ``(by, y, x)`` with CF ``flag_values`` and labels
        (:mod:`carbonsink.stats.classes`), or with ``labels``.
    area : pixel areas ``(y, x)``.
    zones : zone labels ``(y, x)`` (int, 0 = no zone; names in ``zone_names``) or None.
    region : name of the whole-region block (every valid pixel, in a zone or not).
    by : an extra dimension of ``classes`` (e.g. ``"time"``) giving one block per value.

    Returns
    -------
    DataFrame ``zone, [by,] class, label, area_km2, share_percent``: the region first, then
    the zones in label order; every class listed for every zone, also with zero area.
    One compiled pass (:func:`carbonsink._grouped.class_area_sums`): no Python loop over
    pixels or zones.
    """
    from ..stats.classes import _area_km2

    if not isinstance(classes, xr.DataArray):
        raise InvalidArgumentError("class_shares_by_zone: classes must be an xarray.DataArray")
    lab = dict(labels) if labels is not None else class_labels(classes)
    codes = sorted(int(c) for c in lab)
    a_km2 = _area_km2(area)
    spatial = [d for d in classes.dims if d != by]
    if by is not None and by not in classes.dims:
        raise InvalidArgumentError(f"class_shares_by_zone: classes has no dimension '{by}'")
    if set(spatial) != set(a_km2.dims):
        raise InvalidArgumentError(f"class_shares_by_zone: classes has dims {classes.dims}, "
                                   f"area {a_km2.dims}; pass by= for the extra dimension")
    cls = classes.transpose(*(([by] if by else []) + list(a_km2.dims)))
    cv = np.asarray(cls.values, dtype=np.float64)
    if by is None:
        cv = cv[None]
    nb = cv.shape[0]
    av = np.asarray(a_km2.values, dtype=np.float64)
    zi, zlabels, names = _zone_positions(zones, a_km2.dims)
    if zi is None:
        zi = np.zeros(av.shape, np.int64)
    nz = len(zlabels) + 1
    sums = class_area_sums(cv.reshape(nb, -1), np.asarray(codes, dtype=np.float64),
                           np.ascontiguousarray(zi, dtype=np.int64).reshape(-1),
                           np.ascontiguousarray(av).reshape(-1), float(CLASS_FILL), nz)
    keys = cls[by].values if by is not None else [None]
    return _share_rows(sums, region, names, zlabels, codes, lab, by, keys)


def _share_rows(sums, region, names, zlabels, codes, lab, by, keys) -> pd.DataFrame:
    """The table of :func:`class_shares_by_zone` from class areas ``sums (by, zone, class)``
    [km2] (zone 0 = in no listed zone)."""
    nb = sums.shape[0]
    blocks = [(region, sums.sum(axis=1))] + [(names[z], sums[:, i]) for i, z in
                                             enumerate(zlabels, start=1)]
    rows = []
    for zname, s in blocks:
        tot = s.sum(axis=1)
        for b in range(nb):
            for i, c in enumerate(codes):
                row = {"zone": zname, "class": c, "label": lab[c], "area_km2": float(s[b, i]),
                       "share_percent": 100.0 * s[b, i] / tot[b] if tot[b] > 0 else np.nan}
                if by is not None:
                    row = {"zone": zname, by: keys[b], **{k_: v for k_, v in row.items()
                                                         if k_ != "zone"}}
                rows.append(row)
    cols = ["zone"] + ([by] if by else []) + ["class", "label", "area_km2", "share_percent"]
    return pd.DataFrame(rows, columns=cols)


def _zone_positions(zones, dims):
    """(zone position per cell (0 = in no listed zone), zone labels, names) as numpy."""
    from ..cube import zone_names

    if zones is None:
        return None, [], {}
    names = zone_names(zones)
    zv = np.asarray(zones.transpose(*dims).values, dtype=np.float64)
    zv = np.where(np.isfinite(zv), zv, 0).astype(np.int64)
    zlabels = sorted(names)
    zpos = np.zeros(int(max([0, *zlabels, int(zv.max(initial=0))])) + 1, np.int64)
    for i, z in enumerate(zlabels, start=1):
        zpos[z] = i
    return zpos[np.clip(zv, 0, None)], zlabels, names


def _yearly_shares_plan(classes: xr.DataArray, area: xr.DataArray,
                        zones: xr.DataArray | None, *, region: str, by: str = "time"):
    """:func:`class_shares_by_zone` of a lazy ``(by, y, x)`` class cube without loading it:
    (lazy class areas from one compiled pass per block, function making the table)."""
    from .._grouped import grouped_sums
    from ..stats.classes import _area_km2

    lab = class_labels(classes)
    codes = sorted(int(c) for c in lab)
    a_km2 = _area_km2(area)
    dims = tuple(a_km2.dims)
    zi, zlabels, names = _zone_positions(zones, dims)
    nz, k = len(zlabels) + 1, len(codes)
    lut = np.asarray(codes, dtype=np.float64)
    # one-byte class maps (the int8 maps of carbonsink.stats.classes): a 256-entry table on
    # the bytes, no float64 or int64 temporaries (a block of 21 x 600 x 600 cells would
    # otherwise need ~300 MB of them)
    table = np.full(256, -1, np.int16)
    for i, c in enumerate(codes):
        if c != CLASS_FILL and -128 <= c <= 255:
            table[c % 256] = i

    def index(v):
        v = np.asarray(v)
        if v.dtype.itemsize == 1 and v.dtype.kind in "iu":
            return table[v.view(np.uint8)]
        v = v.astype(np.float64)
        pos = np.clip(np.searchsorted(lut, v), 0, k - 1)
        return np.where((lut[pos] == v) & (v != CLASS_FILL), pos, -1).astype(np.int16)

    ci = xr.apply_ufunc(index, classes, dask="parallelized", output_dtypes=[np.int16])
    zpart = 0 if zi is None else xr.DataArray(zi.astype(np.int32), dims=dims,
                                              coords={d: a_km2[d] for d in dims})
    code = (zpart * np.int32(k) + ci.astype(np.int32)).where(ci >= 0, np.int32(-1))
    sums = grouped_sums(classes.astype(np.float32), a_km2, dims, codes=code, n_groups=nz * k)
    keys = classes[by].values

    def finish(s) -> pd.DataFrame:
        a = np.asarray(s.sel(statistic="area").transpose(by, "group").values)
        return _share_rows(a.reshape(len(keys), nz, k), region, names, zlabels, codes, lab,
                           by, keys)

    return sums, finish


def _years(t: pd.Series) -> np.ndarray:
    """Calendar years of a time column (datetime64 stamps or plain year numbers)."""
    v = np.asarray(t)
    if np.issubdtype(v.dtype, np.datetime64):
        return pd.DatetimeIndex(v).year.to_numpy(dtype=int)
    return v.astype(int)


def _label(exp: str, combo: str, ctx) -> str:
    return combo if len(ctx.experiments) < 2 else f"{exp}/{combo}"


def _fname(exp: str, combo: str, ctx, rest: str) -> str:
    base = combo if len(ctx.experiments) < 2 else f"{exp}_{combo}"
    return f"{base}_{rest}"


@register_analysis
class SinkClasses(Analysis):
    name = "sink_classes"
    title = "Carbon sink and source areas"
    description = ("Classes of multi-year mean annual NEP (binary sink/source of 000/003, the "
                   "four levels of 001, the three of 002) and of each year's NEP, with their "
                   "true areas and shares for the region and every zone; class maps as COG "
                   "with their legend.")
    requires = ("annual", "area")
    default = True
    order = 30
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        scheme: Literal["binary", "001", "002"] | list[Literal["binary", "001", "002"]] = Field(
            "binary", description="class scheme(s) of docs/methods.md §4.2 (one or a list)")
        per_year: bool = Field(True, description="also classify each year's NEP (yearly "
                                                 "area shares, e.g. the source share of 003)")
        maps: bool = Field(True, description="write the class maps of the multi-year mean "
                                             "as Cloud-Optimized GeoTIFFs")

        @field_validator("scheme")
        @classmethod
        def _unique(cls, v):
            if isinstance(v, list):
                if not v:
                    raise ValueError("give at least one scheme")
                return list(dict.fromkeys(v))
            return v

        @property
        def schemes(self) -> list[str]:
            return [self.scheme] if isinstance(self.scheme, str) else list(self.scheme)

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import area_share_figure, categorical_map_figure, \
            trend_series_figure

        res = AnalysisResult()
        sec = res.section(self)
        area = ctx.area
        zones = ctx.zones()
        layer = zones.attrs.get("zone_layer", "zone") if zones is not None else None
        schemes = options.schemes
        map_blocks = []
        # the class maps of each combination and their yearly class areas in one pass over
        # its annual cube (one computation per combination: all of them at once held the
        # blocks of every cube, 2.65 GB at 1.2 M pixels against 0.91 GB, and was slower)
        runs, lazy = [], []
        for exp, combo in ctx.runs():
            annual = ctx.cube("annual", combo, exp)
            if annual is None or "nep" not in annual:
                continue
            nep_mean = annual["nep"].mean("time", skipna=False)
            nep_mean.attrs = dict(annual["nep"].attrs)
            ds = xr.Dataset()
            for scheme in schemes:
                ds[f"sink_class_{scheme}"] = sink_source_classes(nep_mean, scheme=scheme)
            plans = [_yearly_shares_plan(sink_source_classes(annual["nep"], scheme=scheme),
                                         area, zones, region=ctx.zone)
                     for scheme in schemes] if options.per_year else []
            runs.append((exp, combo, [f for _, f in plans]))
            lazy.append((ds, [s_ for s_, _ in plans]))
        import dask

        computed = [dask.compute(one)[0] for one in lazy]
        for (exp, combo, finishers), (ds, yearly_sums) in zip(runs, computed):
            if options.maps:
                res.add_dataset("sink_classes", ds, combination=combo, experiment=exp,
                                maps=tuple(ds.data_vars), map_prefix="nep_")
            for i, scheme in enumerate(schemes):
                classes = ds[f"sink_class_{scheme}"]
                shares = class_shares_by_zone(classes, area, zones, region=ctx.zone)
                res.add_table("sink_source_area", tidy(
                    class_share_table(shares, variable="nep", scheme=scheme),
                    experiment=exp, combination=combo))
                whole = shares[shares.zone == ctx.zone]
                fname = _fname(exp, combo, ctx, f"nep_sink_class_{scheme}_map")
                res.add_figure(fname, categorical_map_figure(
                    classes, shares=whole, zones=zones, synthetic=ctx.synthetic,
                    title=f"{_label(exp, combo, ctx)}: sink/source classes ({scheme}) of the "
                          "multi-year mean annual NEP", legend_title="class (area share)"))
                map_blocks.append((fname, f"{_label(exp, combo, ctx)}: {SINK_SCHEMES[scheme]}; "
                                          f"legend: area share of {ctx.zone}"))
                if options.per_year:
                    ys = finishers[i](yearly_sums[i])
                    ys.insert(1, "year", _years(ys.pop("time")))
                    res.add_table("sink_source_area_yearly", tidy(
                        class_share_table(ys, variable="nep", scheme=scheme),
                        experiment=exp, combination=combo))
        tab = res.tables.get("sink_source_area")
        if tab is None:
            sec.text("No annual NEP cubes were found for this study.")
            return res
        where = ctx.zone + (f" and each {layer}" if layer else "")
        sec.text(f"Schemes (docs/methods.md §4.2): {'; '.join(SINK_SCHEMES[s] for s in schemes)}. "
                 f"Classes of the multi-year mean annual NEP per pixel; area shares over "
                 f"{where} are of the area of pixels with a class, from true pixel areas. "
                 "Class maps: maps/<combination>/nep_sink_class_<scheme>.tif (colour table "
                 "and class names; QGIS shows the legend).")
        shares = tab[tab.statistic == "area_share"]
        for scheme in schemes:
            sv = shares[shares.scheme == scheme].pivot_table(
                index=["zone", "class_name"], columns="combination", values="value",
                sort=False).reset_index()
            sec.table(sv, "sink_source_area",
                      caption=f"Area share per class [%], scheme {scheme}, {where}")
            fig_name = f"nep_sink_class_{scheme}_shares"
            sub = shares[shares.scheme == scheme]
            bars = ["zone", "combination"] if sub["combination"].nunique() > 1 else ["zone"]
            res.add_figure(fig_name, area_share_figure(
                sub, bar=bars, synthetic=ctx.synthetic,
                title=f"Area share of the sink/source classes ({scheme}) per "
                      f"{layer or 'region'}"))
            sec.figure(fig_name, f"Area share of each class ({SINK_SCHEMES[scheme]}) of the "
                                 f"multi-year mean NEP in {where}")
        yearly = res.tables.get("sink_source_area_yearly")
        if yearly is not None:
            first = schemes[0]
            y = yearly[(yearly.statistic == "area_share") & (yearly.scheme == first)
                       & (yearly.class_name == "source")]
            if not y.empty:
                y = y.assign(line=[_label(e, c, ctx) for e, c in zip(y.experiment,
                                                                     y.combination)])
                res.add_figure("nep_source_share_yearly", trend_series_figure(
                    y, by="line", panel="zone", units="%", ylabel="source area [%]",
                    synthetic=ctx.synthetic,
                    title="Yearly share of the carbon-source area (NEP < 0) with its OLS "
                          "trend"))
                sec.figure("nep_source_share_yearly",
                           f"Share of the area with NEP < 0 in each year, {where}, with the "
                           "fitted OLS line and its slope [% per year] (003 Fig. 3)")
                yv = y.pivot_table(index=["zone", "year"], columns="line", values="value",
                                   sort=False).reset_index()
                sec.table(yv, "sink_source_area_yearly",
                          caption=f"Yearly carbon-source area share [%] ({where})")
        for fname, caption in map_blocks:
            sec.figure(fname, caption)
        return res
