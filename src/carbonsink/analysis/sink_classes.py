"""Carbon sink / source classes of multi-year mean NEP (METHODS §4.2) as a registered analysis."""

from __future__ import annotations

from typing import Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..stats import class_area_shares, sink_source_classes
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["SinkClasses", "class_share_table"]


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


@register_analysis
class SinkClasses(Analysis):
    name = "sink_classes"
    title = "Carbon sink and source areas"
    description = ("Classes of multi-year mean annual NEP (binary sink/source of 000/003, the "
                   "four levels of 001 or the three of 002) with their true areas.")
    requires = ("annual", "area")
    default = True
    order = 30

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        scheme: Literal["binary", "001", "002"] = Field(
            "binary", description="class scheme of METHODS §4.2")

    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        area = ctx.area
        for exp, combo in ctx.runs():
            annual = ctx.cube("annual", combo, exp)
            if annual is None:
                continue
            nep_mean = annual["nep"].mean("time", skipna=False)
            classes = sink_source_classes(nep_mean, scheme=options.scheme)
            shares = class_area_shares(classes, area)
            res.add_table("sink_source_area", tidy(
                class_share_table(shares, variable="nep", scheme=options.scheme),
                experiment=exp, combination=combo, zone=ctx.zone))
        sec = res.section(self)
        tab = res.tables.get("sink_source_area")
        if tab is None:
            sec.text("No annual cubes were found for this study.")
            return res
        sec.text(f"Scheme '{options.scheme}' (METHODS §4.2) on the multi-year mean annual NEP; "
                 "shares are of the area of pixels with a class, from true pixel areas.")
        view = tab[tab.statistic == "area_share"].pivot_table(
            index="class_name", columns="combination", values="value", sort=False)
        sec.table(view.reset_index(), "sink_source_area", caption="Area share per class [%]")
        return res
