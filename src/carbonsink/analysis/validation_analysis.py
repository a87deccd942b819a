"""Tower validation (docs/methods.md §5) as a registered analysis: ``analyses: {tower_validation:
{files: [...]}}``. The ``carbonsink validate`` command is the shortcut for the same
:func:`carbonsink.analysis.validation.validate_towers`."""

from __future__ import annotations

import glob
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError
from . import validation as _val
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["TowerValidation", "metrics_long"]

_STATS = ("n", "bias", "rel_bias", "rmse", "r", "r2", "nse", "slope", "intercept",
          "skill_vs_reference", "rh_reco_ratio", *_val.ILAMB_SCORES, "obs_mean", "model_mean",
          "n_months", "n_sites", "soc")
_FLUX_STATS = {"bias", "rmse", "intercept", "obs_mean", "model_mean"}
_KEYS = ("site", "igbp", "data", "npp_source", "rh_model", "reference", "rank",
         "rh_exceeds_reco", "flag", "soc_source")


def metrics_long(table: pd.DataFrame) -> pd.DataFrame:
    """The metrics table of :func:`~carbonsink.analysis.validation.validate_towers` in the long
    schema (zone = site; statistic = metric; units per metric)."""
    keys = [k for k in _KEYS if k in table.columns]
    frames = []
    for stat in _STATS:
        if stat not in table.columns:
            continue
        units = "g C m-2 month-1" if stat in _FLUX_STATS else \
            ("kg C m-2" if stat == "soc" else "1")
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
                   "from FLUXNET2015/ONEFlux files (carbonsink docs/methods.md §5).")
    requires = ()
    order = 90

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        files: list[str] = Field(..., min_length=1,
                                 description="FLUXNET CSV files or globs (relative to the study)")
        sites: str | None = Field(None, description="site metadata CSV (id, lat, lon, igbp)")
        cue: float = Field(_val.DEFAULT_CUE, gt=0, le=1)
        clip_negative_gpp: bool = Field(True, description="NPP = CUE x max(GPP, 0)")
        qc_min: float = Field(_val.DEFAULT_QC_MIN, ge=0, le=1)
        soc: float | None = Field(None, ge=0, description="SOC of 0-20 cm at every tower "
                                  "[kg C m-2]; with soc_table and soc_grid one SOC source; "
                                  "none: GSMSR skipped")
        soc_table: str | None = Field(None, description="CSV site, soc [kg C m-2, 0-20 cm]")
        soc_grid: str | None = Field(None, description="SOC stock grid sampled at the towers")
        soc_grid_depth: float | None = Field(None, gt=0, description="bottom of the grid layer "
                                             "[cm], required with soc_grid")
        soc_grid_units: str | None = Field(None, description="grid units if the file has none")
        soc_depth_rule: Literal["proportional", "exponential"] = "proportional"
        soc_deep_grid: str | None = Field(None, description="deeper stock grid (exponential)")
        soc_deep_depth: float | None = Field(None, gt=0)
        rank_by: Literal["nse", "rmse", "r2", "abs_bias", "ilamb"] = _val.DEFAULT_RANK_BY
        rh_reco_threshold: float = Field(_val.DEFAULT_RH_RECO_THRESHOLD, gt=0)
        reference: bool = Field(True, description="add the '<npp>+no_rh' reference rows")
        rh_options: dict[str, Any] = Field(default_factory=dict,
                                           description="Rh options keyed by model name")

    def _path(self, study, value: str | None) -> Path | None:
        if value is None:
            return None
        base = study.base_dir if study is not None else Path(".")
        p = Path(value).expanduser()
        return p if p.is_absolute() else base / p

    def tower_files(self, study, options) -> list[Path]:
        """The FLUXNET files (globs expanded, relative to the study file)."""
        base = study.base_dir if study is not None else Path(".")
        out: list[Path] = []
        for pattern in options.files:
            p = Path(pattern).expanduser()
            p = p if p.is_absolute() else base / p
            out += [Path(f) for f in sorted(glob.glob(str(p)))] or [p]
        return out

    def files(self, study, options) -> list[Path]:
        sites = self._path(study, options.sites)
        return self.tower_files(study, options) + ([sites] if sites else []) + \
            self._soc_paths(study, options)

    def _soc_paths(self, study, options) -> list[Path]:
        return [p for p in (self._path(study, options.soc_table),
                            self._path(study, options.soc_grid),
                            self._path(study, options.soc_deep_grid)) if p is not None]

    def check(self, study, options) -> list[str]:
        files = self.files(study, options)
        missing = [str(f) for f in files if not f.exists()]
        if missing:
            raise InputError(f"analyses.tower_validation: file(s) not found: {missing}; fix "
                             "the paths under analyses.tower_validation (files, sites, "
                             "soc_table, soc_grid, soc_deep_grid; relative to the study file)")
        n = len(self.tower_files(study, options))
        msgs = [f"tower_validation: {n} tower file(s)"]
        if options.soc is None and options.soc_table is None and options.soc_grid is None:
            msgs.append("tower_validation: no SOC source (soc, soc_table, soc_grid): the GSMSR "
                        "combinations will be skipped")
        return msgs

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import new_figure

        files = self.tower_files(ctx.study, options)
        sites = self._path(ctx.study, options.sites)
        table, monthly = _val.validate_towers(
            files, sites=sites, cue=options.cue, qc_min=options.qc_min, soc=options.soc,
            soc_table=self._path(ctx.study, options.soc_table),
            soc_grid=self._path(ctx.study, options.soc_grid),
            soc_grid_depth=options.soc_grid_depth, soc_grid_units=options.soc_grid_units,
            soc_depth_rule=options.soc_depth_rule,
            soc_deep_grid=self._path(ctx.study, options.soc_deep_grid),
            soc_deep_depth=options.soc_deep_depth, rank_by=options.rank_by,
            rh_reco_threshold=options.rh_reco_threshold,
            clip_negative_gpp=options.clip_negative_gpp, reference=options.reference,
            rh_options=options.rh_options or None, figures=False, return_monthly=True)
        res = AnalysisResult()
        long = tidy(metrics_long(table), experiment=ctx.experiments[0])
        long.attrs = dict(table.attrs)
        res.add_table("towers_metrics", long)
        sec = res.section(self)
        skipped = table.attrs.get("skipped_rh_models") or {}
        soc_kind = table.attrs.get("soc_source", {}).get("kind", "none")
        sec.text(f"{len(files)} tower file(s); NPP = {options.cue} × tower GPP (an "
                 "approximation, not an independent NPP; negative GPP "
                 f"{'clipped at 0' if options.clip_negative_gpp else 'kept'}); months with NEE "
                 f"QC ≥ {options.qc_min}; ranked by {options.rank_by} (ties by RMSE); reference "
                 f"rows '+{_val.REFERENCE_RH}' have Rh = 0; Σ Rh / Σ RECO above "
                 f"{options.rh_reco_threshold:g} is flagged; SOC source: {soc_kind}"
                 + (f"; skipped (no SOC): {', '.join(skipped)}" if skipped else "") + ".")
        cols = [c for c in ("site", "combination", "rank", "n", "nse", "rmse", "r2", "bias",
                            "skill_vs_reference", "rh_reco_ratio", "flag") if c in table.columns]
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
