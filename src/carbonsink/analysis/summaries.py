"""Regional and per-land-cover-class summaries (METHODS §1.6) as registered analyses.

``regional_summary``: area-weighted regional mean [g C m-2 yr-1] and total [Tg C yr-1] of
annual NPP, Rh and NEP per year, and growing-season totals.
``landcover_summary``: multi-year mean annual NEP per land-cover class (7-class scheme of
seed 001): class area, area-weighted mean and total.
"""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..regions import per_class_summary, summarise
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["RegionalSummary", "LandcoverSummary", "regional_series"]

_VARS = ("npp", "rh", "nep")


def _label(exp: str, combo: str, ctx) -> str:
    return combo if len(ctx.experiments) < 2 else f"{exp}/{combo}"


def regional_series(ds, area, *, variables=_VARS, total_units: str = "Tg C",
                    statistics=("mean", "total"), zones=None,
                    region: str = "study area") -> pd.DataFrame:
    """Tidy per-year area-weighted mean and total of the ``variables`` of ``ds``, for the
    whole region and for every zone of ``zones`` (see :func:`carbonsink.regions.summarise`).

    Columns: zone, year, variable, statistic (``mean`` | ``total``), units, value.
    """
    frames = []
    for v in variables:
        if v not in ds:
            continue
        df = summarise(ds[v], area, zones=zones, how=tuple(statistics), units=total_units,
                       region=region)
        df.insert(1, "year", pd.DatetimeIndex(df.pop("time")).year.astype(int))
        df.insert(2, "variable", v)
        frames.append(df)
    cols = ["zone", "year", "variable", "statistic", "units", "value"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


@register_analysis
class RegionalSummary(Analysis):
    name = "regional_summary"
    title = "Regional annual and growing-season summaries"
    description = ("Area-weighted regional mean and total of annual NPP, Rh and NEP per year "
                   "(true pixel areas), and growing-season totals.")
    requires = ("annual", "area")
    default = True
    order = 10

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variables: list[Literal["npp", "rh", "nep"]] = Field(
            default_factory=lambda: list(_VARS), description="flux variables to summarise")
        total_units: Literal["Gg C", "Tg C", "Pg C"] = "Tg C"
        growing_season: bool = Field(True, description="also the growing-season table")

    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        area = ctx.area
        nmonths = len(ctx.growing_season_months)
        for exp, combo in ctx.runs():
            annual = ctx.cube("annual", combo, exp)
            if annual is None:
                continue
            zones = ctx.zones()
            df = regional_series(annual, area, variables=options.variables,
                                 total_units=options.total_units, zones=zones, region=ctx.zone)
            res.add_table("regional_annual", tidy(df, experiment=exp, combination=combo))
            gs = ctx.cube("growing_season", combo, exp) if options.growing_season else None
            if gs is None:
                continue
            g = regional_series(gs, area, variables=options.variables, statistics=("mean",),
                                zones=zones, region=ctx.zone)
            total = g.assign(statistic="season_total")
            mean = g.assign(statistic="monthly_mean", value=g["value"] / nmonths,
                            units=g["units"].str.replace(r"\s*$", "", regex=True)
                            .map(lambda u: f"{u} month-1" if "month" not in u else u))
            res.add_table("regional_growing_season",
                          tidy(pd.concat([total, mean], ignore_index=True), experiment=exp,
                               combination=combo))
        tab = res.tables.get("regional_annual")
        sec = res.section(self)
        if tab is None or tab.empty:
            sec.text("No annual cubes were found for this study.")
            return res
        sec.text(f"Area-weighted over {ctx.zone} with true pixel areas (METHODS §1.6): the "
                 "regional mean is Σ F·A / Σ A over valid pixels, the total Σ F·A.")
        nep = tab[(tab["variable"] == "nep") & (tab["zone"] == ctx.zone)]
        zone_rows = tab[(tab["variable"] == "nep") & (tab["zone"] != ctx.zone)]
        if not nep.empty:
            means = nep[nep.statistic == "mean"]
            totals = nep[nep.statistic == "total"]
            keys = ["experiment", "combination"]
            view = means.groupby(keys, sort=False)["value"].agg(["mean", "min", "max"])
            view.columns = ["mean NEP", "lowest year", "highest year"]
            view["mean total"] = totals.groupby(keys, sort=False)["value"].mean()
            view = view.reset_index()
            if len(ctx.experiments) < 2:
                view = view.drop(columns="experiment")
            sec.table(view, "regional_annual",
                      caption=f"Regional NEP: mean, lowest and highest annual mean "
                              f"[{means['units'].iloc[0]}], mean total "
                              f"[{totals['units'].iloc[0]}]")
            series = means.assign(line=[_label(e, c, ctx) for e, c in
                                        zip(means.experiment, means.combination)])
            from ..report.figures import timeseries_figure

            res.add_figure("nep_regional_annual", timeseries_figure(
                series, by="line", title=f"{ctx.study.name if ctx.study else ''}: "
                "area-weighted mean annual NEP", synthetic=ctx.synthetic))
            sec.figure("nep_regional_annual", "Area-weighted mean annual NEP per combination")
        if not zone_rows.empty:
            zm = zone_rows[zone_rows.statistic == "mean"]
            zt = zone_rows[zone_rows.statistic == "total"]
            layer = ctx.zones().attrs.get("zone_layer", "zone")
            zview = zm.pivot_table(index="zone", columns="combination", values="value",
                                   sort=False)
            sec.table(zview.reset_index(), "regional_annual",
                      caption=f"Multi-year mean of the annual NEP per {layer} "
                              f"[{zm['units'].iloc[0]}]")
            tview = zt.pivot_table(index="zone", columns="combination", values="value",
                                   sort=False)
            sec.table(tview.reset_index(), "regional_annual",
                      caption=f"Multi-year mean annual NEP total per {layer} "
                              f"[{zt['units'].iloc[0]}]")
        return res


@register_analysis
class LandcoverSummary(Analysis):
    name = "landcover_summary"
    title = "NEP by land-cover class"
    description = ("Multi-year mean annual NEP per land-cover class (7-class scheme of seed "
                   "001): class area, area-weighted mean and total.")
    requires = ("annual", "landcover", "area")
    default = True
    order = 20

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variables: list[Literal["npp", "rh", "nep"]] = Field(default_factory=lambda: ["nep"])
        year: Literal["last", "first"] | int = Field(
            "last", description="which year's land cover assigns the classes")

    def run(self, ctx, options) -> AnalysisResult:
        from ..cube import reclassify

        res = AnalysisResult()
        scheme = getattr(ctx.study, "landcover_scheme", "igbp") if ctx.study else "igbp"
        area = ctx.area
        for exp, combo in ctx.runs():
            inputs = ctx.inputs(exp)
            annual = ctx.cube("annual", combo, exp)
            if annual is None or "landcover" not in inputs:
                continue
            lc = inputs["landcover"]
            if "time" in lc.dims:
                if options.year == "last":
                    lc = lc.isel(time=-1)
                elif options.year == "first":
                    lc = lc.isel(time=0)
                else:
                    lc = lc.sel(time=lc["time"].dt.year == options.year).isel(time=0)
            classes = reclassify(lc, scheme=scheme, to="7class")
            for v in options.variables:
                if v not in annual:
                    continue
                mean = annual[v].mean("time", skipna=False)
                df = per_class_summary(mean, classes, area)
                long = pd.concat([
                    pd.DataFrame({"class": df["class"], "class_name": df["label"],
                                  "variable": v, "statistic": "area", "units": "km2",
                                  "value": df["area_km2"]}),
                    pd.DataFrame({"class": df["class"], "class_name": df["label"],
                                  "variable": v, "statistic": "multi_year_mean",
                                  "units": df["mean_units"], "value": df["mean"]}),
                    pd.DataFrame({"class": df["class"], "class_name": df["label"],
                                  "variable": v, "statistic": "multi_year_mean_total",
                                  "units": df["total_units"], "value": df["total"]}),
                ], ignore_index=True)
                res.add_table("landcover_nep", tidy(long, experiment=exp, combination=combo,
                                                    zone=ctx.zone))
        sec = res.section(self)
        tab = res.tables.get("landcover_nep")
        if tab is None:
            sec.text("No land-cover input: nothing to summarise.")
            return res
        sec.text(f"Classes from the {options.year} year's land cover, reclassified to the "
                 "7-class scheme of seed 001; means are area-weighted over valid pixels.")
        view = tab[tab.statistic == "multi_year_mean"].pivot_table(
            index="class_name", columns="combination", values="value", sort=False)
        sec.table(view.reset_index(), "landcover_nep",
                  caption=f"Multi-year mean annual NEP per class [{tab[tab.statistic == 'multi_year_mean']['units'].iloc[0]}]")
        return res
