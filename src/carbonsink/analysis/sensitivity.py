"""Factorial hold-one-driver-constant sensitivity experiments (seed paper 002,
carbonsink docs/methods.md §7.2).

A study with ``experiments:`` runs the whole chain once per experiment: a control run (S1, all
drivers transient) and runs with one driver held at its calendar-month climatology (or its
scalar mean, the literal reading of 002), e.g. S2 ``hold: {tas: climatology}``. Externally
produced runs (e.g. four CLM5 outputs given as ``nep: given`` per experiment) work the same.

Contribution of driver X (b = OLS trend of the annual series, carbonsink docs/methods.md §6.1):

* recommended, the difference method stated by 002::

      Δ_X = b(S1) − b(S_X),   RC_X = 100·|Δ_X| / Σ_Y |Δ_Y|,   residual = b(S1) − Σ_X Δ_X

  (the residual holds interactions and non-climate drivers; it is reported);
* ``mode="paper"`` — how 002's Table 3 percentages (68/21/11 %) arise: the sensitivity runs'
  **own** trends are normalised, ``RC_X = 100·|b(S_X)| / Σ_Y |b(S_Y)|`` (with 002's rounded
  trends 0.5, 0.2, −0.1: 62.5/25/12.5 %, while the difference method gives 50/50/0 %).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidArgumentError
from ..regions import summarise
from ..stats import CLASS_FILL, class_area_shares, ols_trend
from .base import Analysis, AnalysisResult, CubeProduct, register_analysis, tidy
from ._zonal import as_scalar, safe_div
from .sink_classes import class_share_table

__all__ = ["Sensitivity", "difference_contributions", "run_trend_contributions",
           "dominant_factor", "experiment_factors", "regional_trends"]

_VARS = ("nep", "npp", "rh")


def difference_contributions(b_control, b_runs: Mapping[str, object]) -> dict:
    """Contributions by the difference method of 002 (carbonsink docs/methods.md §7.2, recommended).

    ``Δ_X = b(S1) − b(S_X)``, ``RC_X = 100·|Δ_X| / Σ_Y |Δ_Y|`` [%],
    ``residual = b(S1) − Σ_X Δ_X`` (interactions and non-climate drivers).

    Parameters
    ----------
    b_control : trend of the control run S1 [g C m-2 yr-2] (float, array or DataArray).
    b_runs : driver → trend of the run with that driver held constant.

    Returns
    -------
    dict ``delta`` (driver → Δ_X), ``relative_contribution`` (driver → %), ``residual``.
    With 002's Table 3 trends (S1 0.2; T 0.5, P −0.1, SR 0.2): Δ = −0.3, 0.3, 0.0 and
    RC = 50, 50, 0 %.
    """
    if not b_runs:
        raise InvalidArgumentError("difference_contributions: give at least one sensitivity run")
    delta = {k: as_scalar(b_control - v) for k, v in b_runs.items()}
    tot = sum(abs(v) for v in delta.values())
    rc = {k: as_scalar(100.0 * safe_div(abs(v), tot)) for k, v in delta.items()}
    return {"delta": delta, "relative_contribution": rc,
            "residual": as_scalar(b_control - sum(delta.values()))}


def run_trend_contributions(b_runs: Mapping[str, object]) -> dict:
    """Relative contributions as 002's Table 3 computed them (``mode="paper"``, replication).

    ``RC_X = 100·|b(S_X)| / Σ_Y |b(S_Y)|``: each sensitivity run's own trend (the trend left
    *without* the held driver's variation) is attributed to the held driver (docs/methods.md §7.2).
    With 002's rounded trends T 0.5, P −0.1, SR 0.2: 62.5, 12.5, 25 %.

    Returns
    -------
    dict ``relative_contribution`` (driver → %).
    """
    if not b_runs:
        raise InvalidArgumentError("run_trend_contributions: give at least one sensitivity run")
    tot = sum(abs(v) for v in b_runs.values())
    return {"relative_contribution": {k: as_scalar(100.0 * safe_div(abs(v), tot))
                                      for k, v in b_runs.items()}}


def dominant_factor(values: Mapping[str, xr.DataArray], *, name: str = "dominant_factor"
                    ) -> xr.DataArray:
    """Class map of the driver with the largest ``|value|`` per pixel (e.g. ``|Δ_X|``).

    Codes 1..K in the order of ``values`` (labels = driver names), 0 where all values are
    zero, :data:`carbonsink.stats.CLASS_FILL` where any is NaN.
    """
    if not values:
        raise InvalidArgumentError("dominant_factor: give at least one driver")
    names = list(values)
    stack = xr.concat([abs(values[k]).astype(np.float64) for k in names], dim="factor",
                      coords="minimal", compat="override")
    if stack.chunks is not None:
        stack = stack.chunk({"factor": -1})

    def f(a):
        bad = np.isnan(a).any(axis=-1)
        idx = np.argmax(np.where(np.isnan(a), -np.inf, a), axis=-1).astype(np.int8) + 1
        idx[np.nanmax(np.where(np.isnan(a), 0.0, a), axis=-1) == 0] = 0
        idx[bad] = CLASS_FILL
        return idx

    out = xr.apply_ufunc(f, stack, input_core_dims=[["factor"]], dask="parallelized",
                         output_dtypes=[np.int8])
    labels = ["none (all zero)", *names]
    out.name = name
    out.attrs = {"flag_values": np.arange(len(labels), dtype=np.int8),
                 "flag_meanings": " ".join(lb.replace(" ", "_").replace("(", "")
                                           .replace(")", "") for lb in labels),
                 "labels": labels, "missing_value": np.int8(CLASS_FILL), "units": "1",
                 "long_name": "driver with the largest absolute contribution"}
    out.encoding["_FillValue"] = np.int8(CLASS_FILL)
    return out


def experiment_factors(study, experiments: Sequence[str], baseline: str,
                       given: Mapping[str, str] | None = None) -> dict[str, str]:
    """Driver label of every non-baseline experiment: ``given[exp]`` if set, else the input
    role(s) the study's experiment holds (``tas``, ``tas+pr``), else the experiment name."""
    out = {}
    for e in experiments:
        if e == baseline:
            continue
        if given and e in given:
            out[e] = str(given[e])
            continue
        exps = getattr(study, "experiments", None) or {}
        hold = getattr(exps.get(e), "hold", None) or {}
        out[e] = "+".join(hold) if hold else e
    return out


def _slope_1d(years: np.ndarray, values: np.ndarray) -> float:
    ok = np.isfinite(values)
    if ok.sum() < 3:
        return float("nan")
    t = years[ok].astype(np.float64)
    y = values[ok].astype(np.float64)
    tc = t - t.mean()
    return float((tc * (y - y.mean())).sum() / (tc * tc).sum())


def regional_trends(da: xr.DataArray, area: xr.DataArray, *, zones=None,
                    region: str = "study area") -> pd.DataFrame:
    """OLS trend (docs/methods.md §6.1) of the area-weighted mean series of ``da`` for the region
    and each zone. Returns columns zone, value (per year)."""
    df = summarise(da, area, zones=zones, how=("mean",), region=region)
    rows = []
    for z, g in df.groupby("zone", sort=False):
        years = pd.DatetimeIndex(g["time"]).year.values
        rows.append((z, _slope_1d(years, g["value"].to_numpy())))
    return pd.DataFrame(rows, columns=["zone", "value"])


def _slope_units(units: str) -> str:
    from ..stats._core import slope_units

    return slope_units(units) or ""


def _trend_maps_figure(maps: Mapping[str, xr.DataArray], *, title: str, synthetic: bool):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..report.figures import SYNTHETIC_NOTE

    n = len(maps)
    fig = Figure(figsize=(3.2 * n + 0.8, 3.4))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, n))
    vals = {k: np.asarray(v.values, dtype=np.float64) for k, v in maps.items()}
    fin = np.concatenate([v[np.isfinite(v)] for v in vals.values()])
    lim = float(np.nanpercentile(np.abs(fin), 98)) if fin.size else 1.0
    lim = lim if lim > 0 else 1.0
    units = next(iter(maps.values())).attrs.get("units", "")
    for ax, (k, v) in zip(axes, vals.items()):
        im = ax.imshow(v, cmap="RdBu", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(k, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    cb = fig.colorbar(im, ax=list(axes), shrink=0.8)
    cb.set_label(f"OLS trend [{units}]", fontsize=8)
    fig.suptitle(title, fontsize=10)
    if synthetic:
        axes[0].text(0.01, 0.01, SYNTHETIC_NOTE, transform=axes[0].transAxes, fontsize=6,
                     color="firebrick")
    return fig


@register_analysis
class Sensitivity(Analysis):
    name = "sensitivity"
    title = "Hold-one-driver-constant sensitivity experiments"
    description = ("OLS trends of NEP, NPP and Rh per experiment, per pixel and regionally; "
                   "contribution of each held driver by the difference method "
                   "Δ_X = b(S1) − b(S_X) with relative contributions and the residual "
                   "(or 002's normalised run trends with mode: paper); dominant-driver map.")
    requires = ("annual", "area", "experiments")
    order = 75

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        baseline: str | None = Field(None, description="control experiment (default the "
                                                       "first)")
        drivers: dict[str, str] = Field(
            default_factory=dict,
            description="experiment -> driver label (default: the roles it holds)")
        mode: Literal["recommended", "paper"] = Field(
            "recommended", description="recommended: difference method; paper: normalised "
                                       "trends of the sensitivity runs (002 Table 3)")
        variables: list[Literal["nep", "npp", "rh"]] = Field(
            default_factory=lambda: list(_VARS), description="flux variables")
        season: Literal["annual", "growing_season"] = Field("annual",
                                                            description="series to trend")
        min_years: int = Field(5, ge=3, description="fewer years: the analysis is skipped")

    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        sec = res.section(self)
        exps = list(ctx.experiments)
        if len(exps) < 2:
            sec.text("Skipped: the study has fewer than two experiments.")
            return res
        baseline = options.baseline or exps[0]
        if baseline not in exps:
            raise InvalidArgumentError(f"sensitivity: baseline '{baseline}' is not an "
                                       f"experiment of the study; choose one of {exps}")
        unknown = sorted(set(options.drivers) - set(exps))
        if unknown:
            raise InvalidArgumentError(f"sensitivity: drivers names experiments {unknown} that "
                                       f"the study lacks; experiments: {exps}")
        factors = experiment_factors(ctx.study, exps, baseline, options.drivers)
        area = ctx.area
        zones = ctx.zones()
        method = "difference" if options.mode == "recommended" else "paper_run_trends"
        figs = []
        for combo in ctx.combinations:
            cubes = {e: ctx.cube(options.season, combo, e) for e in exps}
            if any(c is None for c in cubes.values()):
                sec.text(f"{combo}: skipped (an experiment lacks the {options.season} cube).")
                continue
            years = cubes[baseline].sizes["time"]
            if years < options.min_years:
                sec.text(f"{combo}: skipped ({years} years, fewer than {options.min_years}).")
                continue
            variables = [v for v in options.variables if all(v in c for c in cubes.values())]
            if not variables:
                sec.text(f"{combo}: skipped (none of {options.variables} in every experiment).")
                continue
            written = {}
            for e in exps:
                tds = xr.Dataset({f"{v}_trend": ols_trend(cubes[e][v],
                                                          min_valid=options.min_years)["slope"]
                                  for v in variables})
                written[e] = ctx.store(CubeProduct(
                    "sensitivity_trends", tds, combination=combo, experiment=e,
                    maps=tuple(tds.data_vars), map_prefix="sensitivity_")
                ).drop_vars("experiment", errors="ignore")
            maps: dict[str, xr.DataArray] = {}
            for v in variables:
                b = {e: written[e][f"{v}_trend"] for e in exps}
                units = b[baseline].attrs.get("units") or _slope_units(
                    cubes[baseline][v].attrs.get("units", ""))
                runs = {factors[e]: b[e] for e in exps if e != baseline}
                dc = difference_contributions(b[baseline], runs)
                rc = dc["relative_contribution"] if options.mode == "recommended" else \
                    run_trend_contributions(runs)["relative_contribution"]
                for k in runs:
                    maps[f"{v}_delta_{k}"] = dc["delta"][k].assign_attrs(
                        long_name=f"Δ trend of {v}: control − {k} held", units=units)
                    maps[f"{v}_rc_{k}"] = rc[k].assign_attrs(
                        long_name=f"relative contribution of {k} to the {v} trend", units="%")
                maps[f"{v}_residual"] = dc["residual"].assign_attrs(
                    long_name=f"residual of the {v} trend (control − ΣΔ)", units=units)
                dom_of = dc["delta"] if options.mode == "recommended" else runs
                maps[f"{v}_dominant"] = dominant_factor(dom_of, name=f"{v}_dominant")
                self._regional(res, ctx, cubes, v, exps, baseline, factors, units, method,
                               combo, area, zones, options.mode)
                if v == "nep" or (v == variables[0] and "nep" not in variables):
                    fname = f"{combo}_sensitivity_{v}_trends"
                    res.add_figure(fname, _trend_maps_figure(
                        {f"{e} ({factors.get(e, 'control')})": b[e].compute() for e in exps},
                        title=f"{combo}: OLS trend of {options.season.replace('_', ' ')} "
                              f"{v.upper()} per experiment", synthetic=ctx.synthetic))
                    figs.append((fname, f"{combo}: trend of {v.upper()} in each experiment"))
                    dom = maps[f"{v}_dominant"].compute()
                    sh = class_area_shares(dom, area)
                    res.add_table("sensitivity_dominant", tidy(
                        class_share_table(sh, variable=v, scheme=f"dominant driver ({method})"),
                        experiment=baseline, combination=combo, zone=ctx.zone))
            if not maps:
                continue
            ds = xr.Dataset(maps)
            ds.attrs.update(baseline=baseline, mode=options.mode, method=method,
                            factors=", ".join(f"{e}: {k}" for e, k in factors.items()))
            ctx.store(CubeProduct("sensitivity", ds, combination=combo,
                                  maps=tuple(k for k in maps if k.startswith("nep_")),
                                  map_prefix="sensitivity_"))
        self._report(sec, res, figs, options, baseline, factors)
        return res

    @staticmethod
    def _regional(res, ctx, cubes, v, exps, baseline, factors, units, method, combo, area,
                  zones, mode) -> None:
        per = {e: regional_trends(cubes[e][v], area, zones=zones, region=ctx.zone)
               .set_index("zone")["value"] for e in exps}
        rows = []
        for z in per[baseline].index:
            bc = float(per[baseline][z])
            runs = {factors[e]: float(per[e][z]) for e in exps if e != baseline}
            dc = difference_contributions(bc, runs)
            rc = dc["relative_contribution"] if mode == "recommended" else \
                run_trend_contributions(runs)["relative_contribution"]
            rows.append((baseline, z, "control", "", "trend", units, bc))
            for e in exps:
                if e == baseline:
                    continue
                k = factors[e]
                rows += [(e, z, k, "", "trend", units, runs[k]),
                         (e, z, k, "difference", "delta", units, dc["delta"][k]),
                         (e, z, k, method, "relative_contribution", "%", rc[k])]
            rows.append((baseline, z, "residual", "difference", "residual", units,
                         dc["residual"]))
        df = pd.DataFrame(rows, columns=["experiment", "zone", "factor", "method", "statistic",
                                         "units", "value"])
        df["variable"] = v
        res.add_table("sensitivity", tidy(df, combination=combo))

    @staticmethod
    def _report(sec, res, figs, options, baseline, factors) -> None:
        held = ", ".join(f"{e}: {k} held" for e, k in factors.items())
        if options.mode == "recommended":
            sec.text(f"Control run {baseline}; {held}. Contribution of driver X: Δ_X = "
                     "b(control) − b(X held) with b the OLS trend; relative contribution "
                     "100·|Δ_X|/Σ|Δ|; the residual b(control) − ΣΔ holds interactions and "
                     "non-climate drivers (002, carbonsink docs/methods.md §7.2).")
        else:
            sec.text(f"Control run {baseline}; {held}. mode: paper — relative contribution "
                     "100·|b(X held)|/Σ|b(runs)|, the normalised trends of the sensitivity runs "
                     "themselves, which is how 002's Table 3 percentages arise (replication "
                     "only; Δ and the residual are shown as well).")
        tab = res.tables.get("sensitivity")
        if tab is None:
            sec.text("No combination had the cubes of every experiment.")
            return
        region = tab[tab.zone == tab.zone.iloc[0]]
        keys = ["combination", "variable", "experiment", "factor"]
        view = region.pivot_table(index=keys, columns="statistic", values="value",
                                  sort=False).reset_index()
        cols = [c for c in ("trend", "delta", "relative_contribution", "residual")
                if c in view.columns]
        view = view[keys + cols]
        units = region[region.statistic == "trend"]["units"].iloc[0]
        sec.table(view, "sensitivity",
                  caption=f"Trend of the regional series per experiment and Δ [{units}], "
                          "relative contribution [%] and residual")
        for fname, caption in figs:
            sec.figure(fname, caption)
