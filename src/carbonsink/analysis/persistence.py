"""Persistence of NPP, Rh or NEP: per-pixel Hurst exponent by R/S analysis (optionally with the
Anis–Lloyd small-sample correction), the share of the area with H > 0.5, and the trend × Hurst
classes of seed 001 Fig. 7 with their area shares per zone (docs/methods.md §6.5), as a registered
analysis."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from ..regions import summarise
from ..stats import hurst_rs, mann_kendall, persistence_classes
from ._zonal import (class_map_figure, class_shares, figure_name, run_label, season_label,
                     share_bar_figure, zone_layer)
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["Persistence", "persistence_dataset", "hurst_summary"]


def persistence_dataset(da: xr.DataArray, *, method: str = "expanding",
                        input: str = "levels", tau_min: int | None = None,
                        correction: str | None = None, significance: bool = False,
                        critical: float = 1.96, threshold: float = 0.5,
                        min_valid: int | None = None, dim: str = "time") -> xr.Dataset:
    """Hurst exponent, Sen/MK trend and trend × Hurst classes of one series (computed).

    ``hurst`` from :func:`carbonsink.stats.hurst_rs` (``method``, ``input``, ``tau_min``,
    ``correction``: None, ``"anis-lloyd"`` or ``"peters"``); ``sen_slope`` [units of ``da``
    per year] and ``mk_z`` [1] from :func:`carbonsink.stats.mann_kendall`;
    ``persistence_class`` from :func:`carbonsink.stats.persistence_classes` (persistent or
    anti-persistent increase/decrease; split by MK significance |Z| > ``critical`` when
    ``significance``).
    """
    h = hurst_rs(da, dim, method=method, tau_min=tau_min, input=input, min_valid=min_valid,
                 full=True, correction=correction)
    mk = mann_kendall(da, dim)
    cls = persistence_classes(mk, h["hurst"], z=True if significance else None,
                              critical=critical, threshold=threshold)
    out = xr.Dataset({"hurst": h["hurst"], "sen_slope": mk["slope"], "mk_z": mk["z"],
                      "persistence_class": cls})
    if "hurst_uncorrected" in h:
        out["hurst_uncorrected"] = h["hurst_uncorrected"]
    out.attrs.update(method=method, input=input, correction=correction or "none",
                     hurst_threshold=float(threshold), variable=str(da.name))
    return out.compute()


def hurst_summary(ds: xr.Dataset, series: xr.DataArray, area, *, zones=None,
                  region: str = "study area", threshold: float = 0.5, method="expanding",
                  input="levels", tau_min=None, correction=None) -> pd.DataFrame:
    """Per zone (the whole region first): area share [%] of H > threshold and H < threshold
    among the pixels with an H, area-weighted mean H, and H of the area-weighted regional
    series (same R/S options)."""
    h = ds["hurst"]
    above = xr.where(h.notnull(), (h > threshold).astype(np.float64), np.nan)
    below = xr.where(h.notnull(), (h < threshold).astype(np.float64), np.nan)
    frames = []
    for stat, field, scale, units in (("share_h_above_threshold", above, 100.0, "%"),
                                      ("share_h_below_threshold", below, 100.0, "%"),
                                      ("mean_hurst", h, 1.0, "1")):
        f = field.assign_attrs(units=units).rename(stat)
        s = summarise(f, area, zones=zones, how=("mean",), region=region)
        frames.append(s.assign(statistic=stat, units=units, value=s["value"] * scale)
                      [["zone", "statistic", "units", "value"]])
    ser = summarise(series, area, zones=zones, how=("mean",), region=region)
    zones_order = list(dict.fromkeys(ser["zone"]))
    wide = ser.pivot_table(index="time", columns="zone", values="value", sort=False)
    mat = xr.DataArray(wide[zones_order].to_numpy(dtype=np.float64).T, dims=("zone", "time"))
    n = mat.sizes["time"]
    tmin = tau_min if tau_min is not None else (3 if method == "expanding" else 4)
    floor = tmin + 2 + (1 if input == "differences" else 0)
    if method == "blocks":
        floor = max(floor, 2 * tmin)
    if n >= floor:
        hr = hurst_rs(mat, method=method, input=input, tau_min=tau_min, correction=correction,
                      min_valid=floor).values
    else:
        hr = np.full(len(zones_order), np.nan)
    frames.append(pd.DataFrame({"zone": zones_order, "statistic": "regional_series_hurst",
                                "units": "1", "value": hr}))
    return pd.concat(frames, ignore_index=True)


#: colours of the persistence classes: decreases red/orange, undetermined grey, increases green
_COLOURS5 = ["#b2182b", "#f4a582", "#bdbdbd", "#92c5de", "#1a9850"]
_COLOURS9 = ["#67001f", "#b2182b", "#d6604d", "#f4a582", "#bdbdbd", "#92c5de", "#4393c3",
             "#1a9850", "#00441b"]


@register_analysis
class Persistence(Analysis):
    name = "persistence"
    title = "Persistence: Hurst exponent and trend persistence classes"
    description = ("Per-pixel Hurst exponent of annual or growing-season NPP, Rh or NEP by R/S "
                   "analysis (expanding windows or blocks, levels or differences, optional "
                   "Anis–Lloyd small-sample correction), the share of the area with H > 0.5, "
                   "and the trend × Hurst classes of seed 001 with their true-area shares per "
                   "zone (carbonsink docs/methods.md §6.5).")
    requires = ("annual", "area")
    default = False
    order = 55
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variable: Literal["nep", "npp", "rh"] = Field("nep", description="flux variable")
        season: Literal["annual", "growing_season"] = Field(
            "annual", description="annual or growing-season series")
        method: Literal["expanding", "blocks"] = Field(
            "expanding", description="R/S windows: expanding prefixes (Chinese remote-sensing "
                                     "literature) or non-overlapping blocks (Hurst/Mandelbrot)")
        input: Literal["levels", "differences"] = Field(
            "levels", description="R/S on the series or on its first differences")
        tau_min: int | None = Field(None, ge=2, description="shortest window (default 3 "
                                                            "expanding, 4 blocks)")
        correction: Literal["none", "anis-lloyd", "peters"] = Field(
            "none", description="small-sample correction H = 0.5 + slope of ln(R/S) − "
                                "ln E[R/S] (Anis–Lloyd 1976; 'peters' adds Peters' (n−½)/n)")
        significance: bool = Field(False, description="split the trend × Hurst classes by "
                                                      "Mann–Kendall significance")
        critical: float = Field(1.96, gt=0, description="|Z| for a significant trend")
        threshold: float = Field(0.5, gt=0, lt=1, description="H separating persistent from "
                                                              "anti-persistent")
        min_valid: int | None = Field(None, ge=4, description="valid years needed per pixel")

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import map_figure

        res = AnalysisResult()
        sec = res.section(self)
        area = ctx.area
        zones = ctx.zones()
        layer = zone_layer(zones)
        v, season = options.variable, options.season
        suffix = "" if season == "annual" else "_gs"
        corr = None if options.correction == "none" else options.correction
        colours = _COLOURS9 if options.significance else _COLOURS5
        nyears = None
        for exp, combo in ctx.runs():
            cube = ctx.cube(season, combo, exp)
            if cube is None or v not in cube:
                continue
            nyears = cube.sizes["time"]
            label = run_label(ctx, exp, combo)
            ds = persistence_dataset(cube[v], method=options.method, input=options.input,
                                     tau_min=options.tau_min, correction=corr,
                                     significance=options.significance,
                                     critical=options.critical, threshold=options.threshold,
                                     min_valid=options.min_valid)
            res.add_dataset(f"{v}{suffix}_persistence", ds, combination=combo, experiment=exp,
                            maps=("hurst", "persistence_class"))
            fixed = dict(experiment=exp, combination=combo, variable=v, season=season)
            shares = class_shares(ds["persistence_class"], area, zones=zones, region=ctx.zone)
            scheme = "trend x Hurst" + (" (MK significance)" if options.significance else "")
            res.add_table("persistence_classes", tidy(shares.assign(scheme=scheme), **fixed))
            summ = hurst_summary(ds, cube[v], area, zones=zones, region=ctx.zone,
                                 threshold=options.threshold, method=options.method,
                                 input=options.input, tau_min=options.tau_min, correction=corr)
            res.add_table("hurst_summary", tidy(summ, **fixed))
            fn = figure_name(ctx, exp, combo, f"{v}{suffix}_hurst_map")
            hmap = ds["hurst"].assign_attrs(long_name="Hurst exponent H")
            res.add_figure(fn, map_figure(hmap, title=f"{label}: Hurst exponent of "
                                          f"{season_label(season)} {v.upper()}",
                                          cmap="PuOr", center_zero=False,
                                          synthetic=ctx.synthetic))
            sec.figure(fn, f"{label}: Hurst exponent (R/S, {options.method}, "
                           f"{options.input}, correction {options.correction}) of "
                           f"{season_label(season)} {v.upper()} over {ctx.zone}")
            reg = shares[(shares.zone == ctx.zone) & (shares.statistic == "area_share")]
            fn = figure_name(ctx, exp, combo, f"{v}{suffix}_persistence_class_map")
            res.add_figure(fn, class_map_figure(
                ds["persistence_class"], title=f"{label}: trend persistence of {v.upper()}",
                shares=dict(zip(reg["class"], reg["value"])), colors=colours,
                synthetic=ctx.synthetic))
            sec.figure(fn, f"{label}: Theil–Sen trend × Hurst classes of {v.upper()} "
                           f"({ctx.zone}; legend: share of the area with a class)")
            if zones is not None:
                fn = figure_name(ctx, exp, combo, f"{v}{suffix}_persistence_class_shares")
                res.add_figure(fn, share_bar_figure(
                    shares, title=f"{label}: trend persistence classes per {layer}",
                    colors=colours, synthetic=ctx.synthetic))
                sec.figure(fn, f"{label}: area share of each persistence class, {ctx.zone} "
                               f"and per {layer}")
        if nyears is None:
            sec.text(f"No {season_label(season)} cubes with {v} were found for this study.")
            return res
        from ..report.sections import Text

        sec.blocks.insert(0, Text(
            f"Hurst exponent H of the {season_label(season)} {v.upper()} series ({nyears} "
            f"years) per pixel by R/S analysis (seed 001 §2.4.4, carbonsink docs/methods.md §6.5): "
            f"{options.method} windows on the {options.input}"
            + ("" if corr is None else f", {corr} small-sample correction") +
            f". H > {options.threshold:g}: persistent, H < {options.threshold:g}: "
            "anti-persistent. Without the correction, white noise of 20–40 years gives H ≈ "
            "0.6, so 0.5 < H < 0.65 should not be over-interpreted. The classes combine the "
            "sign of the Theil–Sen slope with H (seed 001 Fig. 7); area shares use true pixel "
            f"areas over {ctx.zone}" + (f" and per {layer}" if zones is not None else "") +
            "."))
        hs = res.tables["hurst_summary"]
        hv = hs.pivot_table(index=["zone", "combination", "variable"], columns="statistic",
                            values="value", sort=False).reset_index()
        sec.table(hv, "hurst_summary",
                  caption=f"Share of the area with H above / below {options.threshold:g} [%], "
                          "area-weighted mean H and H of the regional series [1]")
        sh = res.tables["persistence_classes"]
        sv = sh[sh.statistic == "area_share"].pivot_table(
            index=["class", "class_name"], columns=["combination", "zone"], values="value",
            sort=False)
        sv.columns = [f"{c} | {z}" for c, z in sv.columns]
        sec.table(sv.reset_index(), "persistence_classes",
                  caption=f"Area share of each trend × Hurst class [%] ({ctx.zone}"
                          + (f" and per {layer})" if zones is not None else ")"))
        return res
