"""Stability of NPP, Rh or NEP: per-pixel coefficient of variation with a guard for near-zero
means, Fisher–Jenks natural-break classes with their area shares per zone, and the regional
mean CV (seed 001 §2.4.3 Eq. 3 and Fig. 4; docs/methods.md §6.4), as a registered analysis."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from ..regions import summarise
from ..stats import CV_CLASS_LABELS, coefficient_of_variation, cv_classes, natural_breaks
from ..stats.variability import CV_FLAG_LABELS
from ._zonal import (class_map_figure, class_shares, figure_name, run_label, season_label,
                     share_bar_figure, zone_layer)
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["Stability", "stability_dataset", "breaks_table", "DEFAULT_MIN_MEAN"]

#: default guard [units of the series, g C m-2 yr-1 for annual fluxes]: pixels whose
#: multi-year mean is below it get no CV. On the demo (modis+gsmsr_bl) the unguarded CV
#: reaches 4660 and one natural-break class holds 99.7 % of the area; with 10 the five
#: classes hold 42/32/18/8/0.2 %.
DEFAULT_MIN_MEAN = 10.0


def stability_dataset(da: xr.DataArray, *, min_mean: float = DEFAULT_MIN_MEAN, ddof: int = 1,
                      k: int = 5, method: str = "exact", sample: int = 10_000, seed: int = 0,
                      min_valid: int | None = None, dim: str = "time") -> xr.Dataset:
    """CV map with its guard flags and natural-break classes of one series (computed).

    ``cv`` = s / mean per pixel (:func:`carbonsink.stats.coefficient_of_variation`, ``ddof``),
    NaN where the mean is <= 0 or below ``min_mean`` [units of ``da``]; ``flag`` says why
    (:data:`carbonsink.stats.variability.CV_FLAG_LABELS`); ``cv_class`` = the ``k``
    Fisher–Jenks classes (low .. high fluctuation) with breaks computed on **all** finite CV
    values (``method="exact"``, or ``"histogram"``/``"sample"`` as in
    :func:`carbonsink.stats.natural_breaks`), recorded in ``cv_class.attrs["breaks"]``
    (``[min, b_1, ..., b_{k-1}, max]``, class c holds b_{c−1} < CV <= b_c).
    """
    ds = coefficient_of_variation(da, dim, ddof=ddof, min_valid=min_valid, full=True,
                                  min_mean=min_mean).compute()
    cv = ds["cv"]
    finite = np.isfinite(np.asarray(cv.values))
    labels = CV_CLASS_LABELS if k == len(CV_CLASS_LABELS) else \
        tuple(f"class {i}" for i in range(1, k + 1))
    if np.unique(np.asarray(cv.values)[finite]).size >= k:
        breaks = natural_breaks(cv, k, method=method, sample=sample, seed=seed)
        cls = cv_classes(cv, breaks=breaks, k=k, labels=labels)
    else:  # too few distinct CV values for k classes: no class map
        breaks = np.full(k + 1, np.nan)
        cls = cv_classes(cv.where(False), breaks=np.arange(k + 1.0), k=k, labels=labels)
        cls.attrs["breaks"] = [float("nan")] * (k + 1)
    cls.attrs["method"] = f"Fisher-Jenks natural breaks, k={k}, method={method}, all values"
    ds["cv_class"] = cls
    ds.attrs.update(min_mean=float(min_mean), ddof=int(ddof),
                    breaks=[float(b) for b in breaks], variable=str(da.name))
    return ds


def breaks_table(breaks, k: int, labels) -> pd.DataFrame:
    """Lower and upper bound [1] of every natural-break class (class c: lower < CV <= upper;
    class 1 includes its lower bound, the minimum)."""
    b = np.asarray(breaks, dtype=np.float64)
    rows = []
    for c in range(1, k + 1):
        for stat, v in (("lower_bound", b[c - 1]), ("upper_bound", b[c])):
            rows.append({"class": c, "class_name": labels[c - 1], "statistic": stat,
                         "units": "1", "value": float(v)})
    return pd.DataFrame(rows)


def _flag_stat(label: str) -> str:
    """Statistic name of a guard flag's area share ("mean <= 0" -> "share_mean_le_0")."""
    return "share_" + "_".join(label.replace("<=", "le").replace("-", " ").split())


def _summary_rows(ds: xr.DataArray, series: xr.DataArray, area, zones, region, ddof,
                  flags: pd.DataFrame) -> pd.DataFrame:
    """Area-weighted mean CV, the CV of the area-weighted regional series and the guard shares
    per zone (the whole region first)."""
    mean_cv = summarise(ds["cv"], area, zones=zones, how=("mean",), region=region)
    mean_cv = mean_cv.assign(statistic="mean_cv", units="1")
    ser = summarise(series, area, zones=zones, how=("mean",), region=region)
    g = ser.groupby("zone", sort=False)["value"]
    reg = pd.DataFrame({"zone": list(g.groups), "statistic": "cv_of_regional_series",
                        "units": "1"})
    mu = g.mean()
    sd = g.std(ddof=ddof)
    reg["value"] = [float(sd[z] / mu[z]) if mu[z] > 0 else np.nan for z in reg["zone"]]
    f = flags[flags.statistic == "area_share"]
    fl = pd.DataFrame({"zone": f["zone"].values,
                       "statistic": [_flag_stat(n) for n in f["class_name"]],
                       "units": "%", "value": f["value"].values})
    return pd.concat([mean_cv[["zone", "statistic", "units", "value"]], reg, fl],
                     ignore_index=True)


@register_analysis
class Stability(Analysis):
    name = "stability"
    title = "Stability: coefficient of variation and natural-break classes"
    description = ("Per-pixel coefficient of variation of annual or growing-season NPP, Rh or "
                   "NEP with a guard for near-zero means, Fisher–Jenks natural-break classes "
                   "(exact, breaks recorded) with their true-area shares per zone, and the "
                   "regional mean CV (seed 001, carbonsink docs/methods.md §6.4).")
    requires = ("annual", "area")
    default = False
    order = 50
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variables: list[Literal["nep", "npp", "rh"]] = Field(
            default_factory=lambda: ["nep"], min_length=1, description="flux variables")
        season: Literal["annual", "growing_season"] = Field(
            "annual", description="annual or growing-season series")
        min_mean: float = Field(
            DEFAULT_MIN_MEAN, ge=0,
            description="guard in data units (g C m-2 yr-1 for annual series, g C m-2 per "
                        "growing season): pixels whose multi-year mean is below it get no CV "
                        "and are counted as 'near-zero mean' (mean <= 0: 'mean <= 0')")
        ddof: Literal[0, 1] = Field(1, description="standard deviation: 1 sample, 0 population")
        classes: int = Field(5, ge=2, le=9, description="number of natural-break classes")
        breaks: Literal["exact", "histogram", "sample"] = Field(
            "exact", description="natural breaks on all values (exact), on a 100 000-bin "
                                 "histogram, or on a random sample as ArcGIS does")
        sample: int = Field(10_000, ge=100, description="sample size for breaks='sample'")
        seed: int = Field(0, description="random seed for breaks='sample'")
        min_valid: int | None = Field(None, ge=2, description="valid years needed per pixel "
                                                              "(default max(2, 0.8 n))")

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import map_figure

        res = AnalysisResult()
        sec = res.section(self)
        area = ctx.area
        zones = ctx.zones()
        layer = zone_layer(zones)
        k = options.classes
        labels = CV_CLASS_LABELS if k == len(CV_CLASS_LABELS) else \
            tuple(f"class {i}" for i in range(1, k + 1))
        season = options.season
        suffix = "" if season == "annual" else "_gs"
        found = False
        for exp, combo in ctx.runs():
            cube = ctx.cube(season, combo, exp)
            if cube is None:
                continue
            label = run_label(ctx, exp, combo)
            for v in options.variables:
                if v not in cube:
                    continue
                found = True
                ds = stability_dataset(cube[v], min_mean=options.min_mean, ddof=options.ddof,
                                       k=k, method=options.breaks, sample=options.sample,
                                       seed=options.seed, min_valid=options.min_valid)
                res.add_dataset(f"{v}{suffix}_stability", ds, combination=combo,
                                experiment=exp, maps=("cv", "cv_class", "flag"))
                fixed = dict(experiment=exp, combination=combo, variable=v, season=season)
                bt = breaks_table(ds["cv_class"].attrs["breaks"], k, labels)
                res.add_table("stability_breaks", tidy(bt, zone=ctx.zone, **fixed))
                shares = class_shares(ds["cv_class"], area, zones=zones, region=ctx.zone)
                res.add_table("stability_classes", tidy(shares.assign(
                    scheme="CV natural breaks"), **fixed))
                flags = class_shares(ds["flag"], area, zones=zones, region=ctx.zone)
                summ = _summary_rows(ds, cube[v], area, zones, ctx.zone, options.ddof, flags)
                res.add_table("stability_summary", tidy(summ, **fixed))
                # figures
                units = cube[v].attrs.get("units", "")
                cvmap = ds["cv"].assign_attrs(long_name=f"CV of {season_label(season)} "
                                                        f"{v.upper()}")
                fn = figure_name(ctx, exp, combo, f"{v}{suffix}_cv_map")
                res.add_figure(fn, map_figure(cvmap, title=f"{label}: coefficient of variation "
                                              f"of {season_label(season)} {v.upper()}",
                                              cmap="viridis", center_zero=False,
                                              synthetic=ctx.synthetic))
                sec.figure(fn, f"{label}: coefficient of variation of {season_label(season)} "
                               f"{v.upper()} over {ctx.zone}; blank where the mean is <= 0 or "
                               f"below {options.min_mean:g} {units}")
                reg = shares[(shares.zone == ctx.zone) & (shares.statistic == "area_share")]
                fn = figure_name(ctx, exp, combo, f"{v}{suffix}_cv_class_map")
                res.add_figure(fn, class_map_figure(
                    ds["cv_class"], title=f"{label}: stability classes of {v.upper()}",
                    shares=dict(zip(reg["class"], reg["value"])), cmap="RdYlGn_r",
                    synthetic=ctx.synthetic))
                sec.figure(fn, f"{label}: {k} natural-break classes of the CV of "
                               f"{season_label(season)} {v.upper()} ({ctx.zone}; legend: "
                               "share of the area with a CV)")
                if zones is not None:
                    fn = figure_name(ctx, exp, combo, f"{v}{suffix}_cv_class_shares")
                    res.add_figure(fn, share_bar_figure(
                        shares, title=f"{label}: stability classes of {v.upper()} per {layer}",
                        cmap="RdYlGn_r", synthetic=ctx.synthetic))
                    sec.figure(fn, f"{label}: area share of each stability class, {ctx.zone} "
                                   f"and per {layer}")
        if not found:
            sec.text(f"No {season_label(season)} cubes with {', '.join(options.variables)} "
                     "were found for this study.")
            return res
        from ..report.sections import Text

        sec.blocks.insert(0, Text(
            f"Coefficient of variation CV = s / mean of the {season_label(season)} series per "
            f"pixel (seed 001 Eq. 3; s with ddof = {options.ddof}; docs/methods.md §6.4) over "
            f"{ctx.zone}"
            + (f" and per {layer}" if zones is not None else "") +
            f". Guard: no CV where the multi-year mean is <= 0 or below {options.min_mean:g} "
            "(data units), because s / mean explodes for near-zero means; the share of such "
            f"pixels is listed. {k} classes by Fisher–Jenks natural breaks computed on all CV "
            f"values ({options.breaks}); the class bounds are recorded in the table "
            "stability_breaks. Area shares use true pixel areas and refer to the area with a "
            "CV."))
        bt = res.tables["stability_breaks"]
        view = bt.pivot_table(index=["combination", "variable", "class", "class_name"],
                              columns="statistic", values="value", sort=False).reset_index()
        sec.table(view, "stability_breaks", caption="Natural-break class bounds of the CV [1] "
                                                    "(class c: lower < CV <= upper)")
        sh = res.tables["stability_classes"]
        sv = sh[sh.statistic == "area_share"].pivot_table(
            index=["zone", "combination", "variable"], columns="class_name", values="value",
            sort=False)
        sv = sv[[c for c in labels if c in sv.columns]].reset_index()
        sec.table(sv, "stability_classes",
                  caption=f"Area share of each stability class [%] in {ctx.zone}"
                          + (f" and per {layer}" if zones is not None else ""))
        sm = res.tables["stability_summary"]
        keep = ["mean_cv", "cv_of_regional_series", *[_flag_stat(n) for n in CV_FLAG_LABELS]]
        mv = sm.pivot_table(index=["zone", "combination", "variable"], columns="statistic",
                            values="value", sort=False)
        mv = mv[[c for c in keep if c in mv.columns]].reset_index()
        sec.table(mv, "stability_summary",
                  caption=f"Area-weighted mean CV [1], CV of the regional series [1] and share "
                          f"of the area by guard flag [%] ({ctx.zone}"
                          + (f" and per {layer})" if zones is not None else ")"))
        return res
