"""Soil carbon pools of the CENTURY-type Rh model after spin-up, and the spin-up drift.

For every combination whose Rh model is ``century`` (:mod:`carbonsink.flux.century`,
docs/methods.md §3.5) the model returns the seven pools (CWD, three litter, three soil
organic matter pools) after spin-up [g C m-2] and the drift of the last spin-up cycle
[% per cycle]. This analysis reports their area-weighted regional (and per-zone) means and
totals and the distribution of the drift, so the equilibrium the projections start from can
be checked and cited.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..regions import summarise
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["SoilPools", "pool_table"]


def pool_table(pools, area, *, zones=None, region: str = "study area") -> pd.DataFrame:
    """Area-weighted mean [g C m-2] and total [Tg C] of each pool, region and zones (tidy)."""
    frames = []
    for p in pools["pool"].values:
        da = pools.sel(pool=p).drop_vars("pool").rename("soil_c")
        da.attrs["units"] = pools.attrs.get("units", "g C m-2")
        df = summarise(da, area, zones=zones, how=("mean", "total"), units="Tg C",
                       region=region)
        df.insert(1, "pool", str(p))
        frames.append(df)
    out = pd.concat(frames, ignore_index=True)
    out["variable"] = "soil_c_spinup"
    return out


@register_analysis
class SoilPools(Analysis):
    name = "soil_pools"
    title = "Soil carbon pools after spin-up (CENTURY-type Rh)"
    description = ("Pool sizes after spin-up and the spin-up drift of the CENTURY-type soil "
                   "model, per region and zone.")
    requires = ("monthly", "area")
    order = 75

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        drift_tolerance: float = Field(0.1, gt=0, description="flag drift above this "
                                                              "[% per cycle]")

    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        sec = res.section(self)
        area = ctx.area
        found = False
        for exp, combo in ctx.runs():
            if "+century" not in combo:
                continue
            ds = ctx.cube("monthly", combo, exp)
            if ds is None or "soil_c_spinup" not in ds:
                continue
            found = True
            pools = ds["soil_c_spinup"].load()
            res.add_table("soil_pools", tidy(pool_table(pools, area, zones=ctx.zones(),
                                                        region=ctx.zone),
                                             experiment=exp, combination=combo))
            drift = np.abs(ds["spinup_drift"].values)
            w = np.asarray(area.values, dtype=float)
            ok = np.isfinite(drift)
            rows = {"max_abs_drift": float(np.nanmax(drift)) if ok.any() else np.nan,
                    "area_weighted_mean_abs_drift":
                        float((drift[ok] * w[ok]).sum() / w[ok].sum()) if ok.any() else np.nan,
                    "share_above_tolerance":
                        float(100 * w[ok & (drift > options.drift_tolerance)].sum() /
                              w[ok].sum()) if ok.any() else np.nan}
            units = {"max_abs_drift": "% cycle-1", "area_weighted_mean_abs_drift": "% cycle-1",
                     "share_above_tolerance": "%"}
            df = pd.DataFrame({"variable": "spinup_drift", "statistic": list(rows),
                               "units": [units[k] for k in rows], "value": list(rows.values())})
            res.add_table("soil_spinup_drift", tidy(df, experiment=exp, combination=combo,
                                                    zone=ctx.zone))
        if not found:
            sec.text("No combination uses the CENTURY-type Rh model (rh: century); nothing to "
                     "report.")
            return res
        tab = res.tables["soil_pools"]
        view = tab[(tab.statistic == "mean")].pivot_table(
            index=["zone", "pool"], columns="combination", values="value", sort=False)
        sec.text("Pools after spin-up (docs/methods.md §3.5): the steady state for the spin-up "
                 "forcing followed by repeated cycles; the drift is the change of total soil "
                 f"carbon over the last cycle (flag above {options.drift_tolerance} % per "
                 "cycle).")
        sec.table(view.reset_index(), "soil_pools",
                  caption=f"Area-weighted mean pool size [{tab['units'].iloc[0]}]")
        sec.table(res.tables["soil_spinup_drift"], "soil_spinup_drift",
                  caption="Spin-up drift")
        return res
