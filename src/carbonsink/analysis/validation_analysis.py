"""Tower validation (METHODS §5) as a registered analysis: ``analyses: {tower_validation:
{files: [...]}}``. The ``carbonsink validate`` command is the shortcut for the same
:func:`carbonsink.analysis.validation.validate_towers`."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError
from . import validation as _val
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["TowerValidation", "metrics_long"]

_STATS = ("n", "bias", "rel_bias", "rmse", "r", "r2", "nse", "slope", "intercept", "obs_mean",
          "model_mean", "n_months", "n_sites")
_FLUX_STATS = {"bias", "rmse", "intercept", "obs_mean", "model_mean"}
_KEYS = ("site", "igbp", "data", "npp_source", "rh_model", "rank", "flag", "soc_source")


def metrics_long(table: pd.DataFrame) -> pd.DataFrame:
    """The metrics table of :func:`~carbonsink.analysis.validation.validate_towers` in the long
    schema (zone = site; statistic = metric; units per metric)."""
    keys = [k for k in _KEYS if k in table.columns]
    frames = []
    for stat in _STATS:
        if stat not in table.columns:
            continue
        units = "g C m-2 month-1" if stat in _FLUX_STATS else ("%" if stat == "rel_bias" else "1")
        f = table[keys].copy()
        f["combination"] = table["combination"].values
        f["zone"] = table["site"].astype(str).values
        f["variable"] = "nep"
        f["statistic"] = stat
        f["units"] = units
        f["value"] = pd.to_numeric(table[stat], errors="coerce").astype(float).values
        frames.append(f)
    out = pd.concat(frames, ignore_index=True)
    return out.drop(columns=["site"])


@register_analysis
class TowerValidation(Analysis):
    name = "tower_validation"
    title = "Validation against eddy-covariance towers"
    description = ("NEP of each Rh model with tower NPP (CUE × GPP) against tower NEP = −NEE "
                   "from FLUXNET2015/ONEFlux files (METHODS §5).")
    requires = ()
    order = 90

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        files: list[str] = Field(..., min_length=1,
                                 description="FLUXNET CSV files or globs (relative to the study)")
        sites: str | None = Field(None, description="site metadata CSV (id, lat, lon, igbp)")
        cue: float = Field(_val.DEFAULT_CUE, gt=0, le=1)
        qc_min: float = Field(_val.DEFAULT_QC_MIN, ge=0, le=1)
        soc: float | None = Field(None, gt=0, description="SOC at the towers [kg C m-2]")
        rank_by: Literal["r2", "rmse", "nse", "bias"] = "r2"

    def files(self, study, options) -> list[Path]:
        base = study.base_dir if study is not None else Path(".")
        out: list[Path] = []
        for pattern in options.files:
            p = Path(pattern).expanduser()
            p = p if p.is_absolute() else base / p
            out += [Path(f) for f in sorted(glob.glob(str(p)))] or [p]
        if options.sites:
            s = Path(options.sites)
            out.append(s if s.is_absolute() else base / s)
        return out

    def check(self, study, options) -> list[str]:
        files = self.files(study, options)
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise InputError(f"analyses.tower_validation: file(s) not found: {missing}; fix "
                             "the paths under analyses.tower_validation.files / sites "
                             "(relative to the study file)")
        n = len(files) - (1 if options.sites else 0)
        return [f"tower_validation: {n} tower file(s)"]

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import new_figure

        files = self.files(ctx.study, options)
        sites = files.pop() if options.sites else None
        table, monthly = _val.validate_towers(
            files, sites=sites, cue=options.cue, qc_min=options.qc_min, soc=options.soc,
            rank_by=options.rank_by, figures=False, return_monthly=True)
        res = AnalysisResult()
        res.add_table("towers_metrics", tidy(metrics_long(table),
                                             experiment=ctx.experiments[0]))
        sec = res.section(self)
        sec.text(f"{len(files)} tower file(s); NPP = {options.cue} × tower GPP (an "
                 "approximation, not an independent NPP); months with NEE QC ≥ "
                 f"{options.qc_min}; ranked by {options.rank_by}.")
        cols = [c for c in ("site", "combination", "rank", "n", "r2", "rmse", "nse", "bias",
                            "flag") if c in table.columns]
        sec.table(table[cols], "towers_metrics",
                  caption="Metrics per tower and combination (bias, RMSE in g C m-2 month-1)")
        obs = monthly.get("obs_nep")
        if obs is not None and "nep" in monthly:
            fig, ax = new_figure((5.5, 5))
            for combo, grp in monthly.groupby("combination", sort=True):
                ax.scatter(grp["obs_nep"], grp["nep"], s=6, label=str(combo), alpha=0.6)
            lim = np.nanpercentile(np.abs(np.r_[monthly["obs_nep"], monthly["nep"]]), 99)
            ax.plot([-lim, lim], [-lim, lim], color="0.5", lw=0.8)
            ax.set_xlabel("tower NEP [g C m$^{-2}$ month$^{-1}$]")
            ax.set_ylabel("modelled NEP [g C m$^{-2}$ month$^{-1}$]")
            ax.legend(fontsize=6, frameon=False)
            res.add_figure("towers_scatter", fig)
            sec.figure("towers_scatter", "Monthly modelled vs tower NEP, all towers")
        return res
