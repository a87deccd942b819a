"""Trends of annual NEP: per-pixel Theil–Sen / Mann–Kendall and OLS with their class maps,
and the trends of the regional series (METHODS §6.1–6.3), as a registered analysis."""

from __future__ import annotations

from typing import Literal

import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from ..regions import regional_mean
from ..stats import (
    class_area_shares,
    mann_kendall,
    ols_six_classes,
    ols_trend,
    sen_mk_classes,
)
from .base import Analysis, AnalysisResult, CubeProduct, register_analysis, tidy
from .sink_classes import class_share_table

__all__ = ["Trends", "trend_dataset", "regional_trend_table"]

#: the Mann–Kendall test needs at least this many years (METHODS §1.3)
MIN_TREND_YEARS = 10
_SCHEMES = (("sen_mk_class", "Sen/MK nine classes (seed 001)"),
            ("ols_class", "OLS six classes (seed 003)"))


def trend_dataset(da: xr.DataArray, dim: str = "time") -> xr.Dataset:
    """Sen/MK and OLS trend statistics of ``da`` with the nine- and six-class maps (lazy)."""
    mk = mann_kendall(da, dim)
    ols = ols_trend(da, dim)
    return xr.Dataset({
        **{f"sen_{k}": v for k, v in mk.data_vars.items()},
        **{f"ols_{k}": v for k, v in ols.data_vars.items()},
        "sen_mk_class": sen_mk_classes(mk), "ols_class": ols_six_classes(ols)})


def regional_trend_table(ds: xr.Dataset, area: xr.DataArray, variables=("npp", "rh", "nep"),
                         dim: str = "time") -> pd.DataFrame:
    """OLS and Sen/MK trend of the area-weighted regional series of each variable (tidy)."""
    rows = []
    for v in variables:
        if v not in ds:
            continue
        series = regional_mean(ds[v], area).compute()
        tr = ols_trend(series, dim).compute()
        tm = mann_kendall(series, dim).compute()
        slope_units = tr["slope"].attrs.get("units", "")
        for stat, value, units in (
                ("ols_slope", tr["slope"], slope_units), ("ols_p", tr["p"], "1"),
                ("ols_r2", tr["r2"], "1"), ("sen_slope", tm["slope"], slope_units),
                ("mk_z", tm["z"], "1"), ("mk_p", tm["p"], "1"), ("n_years", tr["n"], "1")):
            rows.append({"variable": v, "statistic": stat, "units": units,
                         "value": float(value)})
    return pd.DataFrame(rows)


@register_analysis
class Trends(Analysis):
    name = "trends"
    title = "Trends and significance classes of annual NEP"
    description = ("Per-pixel Theil–Sen slope with the Mann–Kendall test and OLS slope with its "
                   "t-test, the nine Sen/MK classes (001) and six OLS classes (003) with their "
                   "area shares, and the trends of the regional series.")
    requires = ("annual", "area")
    default = True
    order = 40

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variable: Literal["nep", "npp", "rh"] = Field("nep", description="mapped variable")
        min_years: int = Field(MIN_TREND_YEARS, ge=4,
                               description="fewer years in the study: the analysis is skipped")
        maps: list[str] = Field(default_factory=lambda: ["sen_slope", "sen_mk_class",
                                                         "ols_slope", "ols_p"])

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import map_figure

        res = AnalysisResult()
        sec = res.section(self)
        v = options.variable
        years = None
        for exp, combo in ctx.runs():
            annual = ctx.cube("annual", combo, exp)
            if annual is None:
                continue
            years = annual.sizes["time"]
            if years < options.min_years:
                ctx.echo(f"trends skipped: the study period has {years} years, the "
                         f"Mann–Kendall test needs at least {options.min_years} (METHODS §1.3)")
                sec.text(f"Skipped: the study period has {years} years; trends need at least "
                         f"{options.min_years}.")
                return res
            area = ctx.area
            ds = trend_dataset(annual[v])
            written = ctx.store(CubeProduct(f"{v}_trend", ds, combination=combo, experiment=exp,
                                            maps=tuple(options.maps), map_prefix=f"{v}_"))
            for var, label in _SCHEMES:
                shares = class_area_shares(written[var], area)
                res.add_table(f"{v}_trend_classes", tidy(
                    class_share_table(shares, variable=v, scheme=label), experiment=exp,
                    combination=combo, zone=ctx.zone))
            res.add_table("regional_trends", tidy(regional_trend_table(annual, area),
                                                  experiment=exp, combination=combo,
                                                  zone=ctx.zone))
            label = combo if len(ctx.experiments) < 2 else f"{exp}/{combo}"
            fname = f"{combo}_{v}_sen_slope_map" if len(ctx.experiments) < 2 else \
                f"{exp}_{combo}_{v}_sen_slope_map"
            res.add_figure(fname, map_figure(written["sen_slope"].compute(),
                                             title=f"{label}: Theil–Sen trend of annual "
                                                   f"{v.upper()}", cmap="RdBu",
                                             synthetic=ctx.synthetic))
            sec.figure(fname, f"{label}: Theil–Sen slope of annual {v.upper()}")
        tab = res.tables.get("regional_trends")
        if tab is None:
            sec.text("No annual cubes were found for this study.")
            return res
        from ..report.sections import Text

        sec.blocks.insert(0, Text(
            f"{years} years. Per pixel: Theil–Sen slope with the Mann–Kendall test and OLS with "
            "its t-test (METHODS §6.1–6.3); the maps show the Theil–Sen slope, the tables the "
            "trends of the area-weighted regional series and the area share of each class."))
        keys = ["experiment", "combination", "variable"] if len(ctx.experiments) > 1 else \
            ["combination", "variable"]
        view = tab.pivot_table(index=keys, columns="statistic", values="value", sort=False)
        view = view[[c for c in ("ols_slope", "ols_p", "sen_slope", "mk_z", "mk_p", "n_years")
                     if c in view.columns]].reset_index()
        units = tab[tab.statistic == "ols_slope"]["units"].iloc[0]
        sec.table(view, "regional_trends",
                  caption=f"Trends of the regional annual series (slopes in {units}; "
                          f"units per variable in the linked table)")
        shares = res.tables[f"{v}_trend_classes"]
        sv = shares[shares.statistic == "area_share"].pivot_table(
            index=["scheme", "class", "class_name"], columns="combination", values="value",
            sort=False).reset_index()
        sec.table(sv, f"{v}_trend_classes", caption="Area share of each trend class [%]")
        return res
