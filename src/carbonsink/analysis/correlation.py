"""Correlation of NPP, Rh or NEP with the climate drivers: per-pixel Pearson and Spearman r with
p for each driver, partial correlation controlling the other drivers, optional FDR control, the
positive / negative / significant area shares per driver and zone, the factor ranking of seed
003 Table 2, the correlation of the regional series, and the dominant-driver map (largest
|partial r|, seed 002 Fig. 7) with its shares (docs/methods.md §6.6), as a registered analysis."""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError
from ..regions import summarise
from ..stats import dominant_driver, partial_correlation, pearson, spearman
from ..stats.classes import CLASS_FILL, _class_da
from ._zonal import (DRIVER_NAMES, class_map_figure, class_shares, detrend, figure_name,
                     run_label, season_label, share_bar_figure, zone_layer)
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["Correlation", "correlation_dataset", "sign_classes", "ranking_table",
           "regional_correlation_table", "DEFAULT_DRIVERS"]

#: drivers used when the options name none (those present): pet and eet are left out by
#: default because they are computed from temperature and radiation (collinear in the partial
#: correlation)
DEFAULT_DRIVERS = ("tas", "pr", "sol", "hurs", "sund")

_SIGN_LABELS = ("significant negative", "negative", "zero", "positive", "significant positive")
_METHODS = ("pearson", "spearman", "partial")


def sign_classes(r: xr.DataArray, p: xr.DataArray, alpha: float) -> xr.DataArray:
    """Sign × significance class of a correlation map: ``−2`` significant negative (r < 0,
    p < alpha), ``−1`` negative, ``0`` r = 0, ``1`` positive, ``2`` significant positive."""

    def f(rr, pp):
        with np.errstate(invalid="ignore"):
            out = (np.sign(rr) * np.where(pp < alpha, 2, 1)).astype(np.int8)
        out[np.isnan(rr)] = CLASS_FILL
        return out

    res = xr.apply_ufunc(f, r, p, dask="parallelized", output_dtypes=[np.int8])
    out = _class_da(res, range(-2, 3), _SIGN_LABELS, "correlation_class")
    out.attrs.update(long_name="sign and significance of the correlation", alpha=float(alpha))
    return out


def correlation_dataset(y: xr.DataArray, drivers: xr.Dataset, *, fdr: bool = False,
                        partial: bool = True, detrended: bool = False,
                        min_valid: int | None = None, alpha: float = 0.05,
                        dominant_significance: bool = False, dim: str = "time") -> xr.Dataset:
    """Per-pixel correlation of ``y`` with every driver of ``drivers`` (computed).

    Variables with a ``driver`` dimension: ``pearson_r``, ``pearson_p``, ``spearman_r``,
    ``spearman_p`` (:func:`carbonsink.stats.pearson` / :func:`~carbonsink.stats.spearman`),
    and with ``partial`` (two or more drivers) ``partial_r``, ``partial_p``
    (:func:`carbonsink.stats.partial_correlation`, controlling all other drivers,
    df = n − 2 − k) and the 2-D ``dominant_driver`` map (largest |partial r|; with
    ``dominant_significance`` only drivers with p < ``alpha`` compete, else "none"). With
    ``fdr`` the p-values are Benjamini–Hochberg adjusted over the pixels (per driver) and
    stored as ``*_p``; the unadjusted ones as ``*_p_raw``. ``detrended`` removes each
    pixel's OLS line from every series first (correlation of interannual anomalies).
    """
    names = list(drivers.data_vars)
    if detrended:
        y = detrend(y, dim)
        drivers = xr.Dataset({k: detrend(drivers[k], dim) for k in names})
    out = {}
    for kind, fn in (("pearson", pearson), ("spearman", spearman)):
        rs, ps, raws = [], [], []
        for k in names:
            c = fn(y, drivers[k], dim, min_valid=min_valid, fdr=fdr)
            rs.append(c["r"])
            ps.append(c["p_fdr"] if fdr else c["p"])
            raws.append(c["p"])
        out[f"{kind}_r"] = xr.concat(rs, "driver").assign_coords(driver=names)
        out[f"{kind}_p"] = xr.concat(ps, "driver").assign_coords(driver=names)
        if fdr:
            out[f"{kind}_p_raw"] = xr.concat(raws, "driver").assign_coords(driver=names)
    if partial and len(names) >= 2:
        pc = partial_correlation(y, {k: drivers[k] for k in names}, dim, min_valid=min_valid,
                                 fdr=fdr)
        out["partial_r"] = pc["r"]
        out["partial_p"] = pc["p_fdr"] if fdr else pc["p"]
        if fdr:
            out["partial_p_raw"] = pc["p"]
        out["dominant_driver"] = dominant_driver(pc, require_significance=dominant_significance,
                                                 alpha=alpha, fdr=fdr)
    ds = xr.Dataset(out).compute()
    for v in ds.data_vars:
        if v.endswith("_r"):
            ds[v].attrs.update(units="1", long_name=f"{v.split('_')[0]} correlation coefficient")
        elif "_p" in v:
            ds[v].attrs.update(units="1", long_name=f"{v.split('_')[0]} two-sided p-value"
                               + (" (BH-adjusted)" if fdr and not v.endswith("raw") else ""))
    ds.attrs.update(fdr=int(bool(fdr)), detrended=int(bool(detrended)), alpha=float(alpha),
                    drivers=", ".join(names), response=str(y.name))
    return ds


def _flat_maps(ds: xr.Dataset) -> xr.Dataset:
    """One 2-D variable per driver (``pearson_r_tas`` ...) for map files."""
    out = {}
    for v in ds.data_vars:
        if "driver" in ds[v].dims:
            for k in ds["driver"].values:
                out[f"{v}_{k}"] = ds[v].sel(driver=k).drop_vars("driver")
        else:
            out[v] = ds[v]
    return xr.Dataset(out, attrs=ds.attrs)


def ranking_table(means: pd.DataFrame, *, by: str = "r") -> pd.DataFrame:
    """Factor ranking of seed 003 Table 2: per zone (and method) the drivers ordered by their
    area-weighted mean r (``by="r"``, as 003) or by |mean r| (``by="abs"``); rank 1 first.

    ``means`` has columns zone, method, driver, value (mean r). Returns those columns plus
    ``rank`` and ``ranked_by``."""
    df = means.copy()
    key = df["value"] if by == "r" else df["value"].abs()
    df["_key"] = key.fillna(-np.inf)
    df["rank"] = df.groupby(["zone", "method"], sort=False)["_key"].rank(
        ascending=False, method="min").astype(int)
    df["ranked_by"] = "mean r" if by == "r" else "|mean r|"
    df["_zone"] = pd.Categorical(df["zone"], categories=list(dict.fromkeys(df["zone"])))
    df = df.sort_values(["_zone", "method", "rank"], kind="stable")
    return df.drop(columns=["_key", "_zone"]).reset_index(drop=True)


def regional_correlation_table(y: xr.DataArray, drivers: xr.Dataset, area, *, zones=None,
                               region: str = "study area", detrended: bool = False,
                               partial: bool = True) -> pd.DataFrame:
    """Pearson, Spearman (and partial) r and p of the area-weighted regional series of ``y``
    with each driver's regional series, for the whole region and every zone.

    Columns zone, method, driver, statistic (r | p | n), units, value."""
    names = list(drivers.data_vars)

    def _series(da):
        s = summarise(da, area, zones=zones, how=("mean",), region=region)
        order = list(dict.fromkeys(s["zone"]))
        w = s.pivot_table(index="time", columns="zone", values="value", sort=False)[order]
        return xr.DataArray(w.to_numpy(dtype=np.float64).T, dims=("zone", "time"),
                            coords={"zone": order})

    ys = _series(y)
    ds = xr.Dataset({k: _series(drivers[k]) for k in names})
    if detrended:
        ys = detrend(ys)
        ds = xr.Dataset({k: detrend(ds[k]) for k in names})
    n = ys.sizes["time"]
    mv = max(3, min(10, n))
    rows = []
    if n < 3:
        return pd.DataFrame(columns=["zone", "method", "driver", "statistic", "units", "value"])
    for kind, fn in (("pearson", pearson), ("spearman", spearman)):
        for k in names:
            c = fn(ys, ds[k], min_valid=mv)
            for z in c["zone"].values:
                for stat in ("r", "p", "n"):
                    rows.append((str(z), kind, k, stat, "1", float(c[stat].sel(zone=z))))
    if partial and len(names) >= 2 and n >= len(names) + 2:
        pc = partial_correlation(ys, {k: ds[k] for k in names},
                                 min_valid=max(len(names) + 2, min(10, n)))
        for z in pc["zone"].values:
            for k in names:
                for stat in ("r", "p"):
                    rows.append((str(z), "partial", k, stat, "1",
                                 float(pc[stat].sel(zone=z, driver=k))))
                rows.append((str(z), "partial", k, "n", "1", float(pc["n"].sel(zone=z))))
    return pd.DataFrame(rows, columns=["zone", "method", "driver", "statistic", "units",
                                       "value"])


@register_analysis
class Correlation(Analysis):
    name = "correlation"
    title = "Correlation with the climate drivers and dominant drivers"
    description = ("Per-pixel Pearson and Spearman correlation of annual or growing-season NPP, "
                   "Rh or NEP with each climate driver (with p), partial correlation "
                   "controlling the other drivers, optional FDR control, positive / negative / "
                   "significant area shares per driver and zone, the factor ranking of seed 003, "
                   "the correlation of the regional series and the dominant-driver map "
                   "(carbonsink docs/methods.md §6.6).")
    requires = ("annual", "drivers", "area")
    default = False
    order = 60
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variable: Literal["nep", "npp", "rh"] = Field("nep", description="flux variable")
        season: Literal["annual", "growing_season"] = Field(
            "annual", description="annual or growing-season series of flux and drivers")
        drivers: list[Literal["tas", "pr", "sol", "pet", "eet", "hurs", "sund"]] | None = Field(
            None, description="climate drivers (default: those of tas, pr, sol, hurs, sund "
                              "the study has)")
        partial: bool = Field(True, description="partial correlations and dominant driver")
        fdr: bool = Field(False, description="Benjamini–Hochberg adjusted p over the pixels")
        alpha: float = Field(0.05, gt=0, lt=1, description="significance level")
        detrend: bool = Field(False, description="correlate the residuals from each pixel's "
                                                 "linear trend (interannual anomalies) instead "
                                                 "of the raw series (as the papers do)")
        rank_method: Literal["spearman", "pearson", "partial"] = Field(
            "spearman", description="correlation ranked in the factor table (003: Spearman)")
        rank_by: Literal["r", "abs"] = Field(
            "r", description="rank factors by mean r (003) or by |mean r|")
        dominant_significance: bool = Field(
            False, description="dominant driver only among significant partial r ('none' "
                               "where none is)")
        min_valid: int | None = Field(None, ge=3, description="valid years needed per pixel "
                                                              "(default max(10, 0.8 n))")

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import map_figure, new_figure

        res = AnalysisResult()
        sec = res.section(self)
        area = ctx.area
        zones = ctx.zones()
        layer = zone_layer(zones)
        v, season = options.variable, options.season
        suffix = "" if season == "annual" else "_gs"
        used: list[str] = []
        nyears = None
        for exp, combo in ctx.runs():
            cube = ctx.cube(season, combo, exp)
            if cube is None or v not in cube:
                continue
            drv = ctx.drivers(season, exp)
            if drv is None:
                sec.text(f"No {season_label(season)} driver series were found (the study needs "
                         "monthly climate inputs such as tas and pr).")
                return res
            if options.drivers is not None:
                missing = [d for d in options.drivers if d not in drv]
                if missing:
                    raise InputError(
                        f"correlation: driver(s) {missing} are not among the climate series of "
                        f"this study ({', '.join(map(str, drv.data_vars))}); add them as inputs "
                        "or remove them from analyses.correlation.drivers")
                used = list(options.drivers)
            else:
                used = [d for d in DEFAULT_DRIVERS if d in drv]
            if not used:
                sec.text("None of the climate drivers tas, pr, sol, hurs, sund is an input.")
                return res
            y, dset = xr.align(cube[v], drv[used], join="inner")
            nyears = y.sizes["time"]
            label = run_label(ctx, exp, combo)
            ds = correlation_dataset(y, dset, fdr=options.fdr, partial=options.partial,
                                     detrended=options.detrend, min_valid=options.min_valid,
                                     alpha=options.alpha,
                                     dominant_significance=options.dominant_significance)
            flat = _flat_maps(ds)
            res.add_dataset(f"{v}{suffix}_correlation", flat, combination=combo,
                            experiment=exp, maps=tuple(m for m in flat.data_vars
                                                       if "_p_raw" not in m))
            fixed = dict(experiment=exp, combination=combo, variable=v, season=season)
            self._tables(res, ctx, ds, used, zones, fixed, options)
            reg = regional_correlation_table(y, dset, area, zones=zones, region=ctx.zone,
                                             detrended=options.detrend,
                                             partial=options.partial)
            res.add_table("regional_series_correlation", tidy(reg, **fixed))
            self._figures(res, sec, ctx, ds, used, zones, layer, exp, combo, label, suffix,
                          options, map_figure, new_figure)
        if nyears is None:
            sec.text(f"No {season_label(season)} cubes with {v} were found for this study.")
            return res
        self._report(sec, res, ctx, used, zones, layer, nyears, options)
        return res

    # ------------------------------------------------------------------------------ tables
    def _tables(self, res, ctx, ds, used, zones, fixed, options) -> None:
        area = ctx.area
        methods = [m for m in _METHODS if f"{m}_r" in ds]
        means = []
        for m in methods:
            for k in used:
                r = ds[f"{m}_r"].sel(driver=k).drop_vars("driver")
                cls = sign_classes(r, ds[f"{m}_p"].sel(driver=k).drop_vars("driver"),
                                   options.alpha)
                sh = class_shares(cls, area, zones=zones, region=ctx.zone)
                res.add_table("correlation_classes",
                              tidy(sh.assign(method=m, driver=k), **fixed))
                share = sh[sh.statistic == "area_share"].pivot_table(
                    index="zone", columns="class", values="value", sort=False)
                share = share.reindex(columns=range(-2, 3), fill_value=0.0)
                rows = pd.DataFrame({
                    "zone": share.index, "method": m, "driver": k,
                    "positive_share": share[1] + share[2],
                    "negative_share": share[-1] + share[-2],
                    "significant_positive_share": share[2],
                    "significant_negative_share": share[-2],
                    "significant_share": share[2] + share[-2]}).melt(
                    id_vars=["zone", "method", "driver"], var_name="statistic")
                rows["units"] = "%"
                mr = summarise(r.assign_attrs(units="1"), area, zones=zones, how=("mean",),
                               region=ctx.zone)
                mr = mr.assign(method=m, driver=k, statistic="mean_r", units="1")
                means.append(mr[["zone", "method", "driver", "value"]])
                res.add_table("correlation_shares", tidy(pd.concat(
                    [rows, mr[["zone", "method", "driver", "statistic", "units", "value"]]],
                    ignore_index=True), **fixed))
        allmeans = pd.concat(means, ignore_index=True)
        rk = ranking_table(allmeans[allmeans.method == options.rank_method],
                           by=options.rank_by)
        long = pd.concat([rk.assign(statistic="mean_r", units="1"),
                          rk.assign(statistic="rank", units="1",
                                    value=rk["rank"].astype(float))], ignore_index=True)
        res.add_table("factor_ranking", tidy(long.drop(columns="rank"), **fixed))
        if "dominant_driver" in ds:
            sh = class_shares(ds["dominant_driver"], area, zones=zones, region=ctx.zone)
            res.add_table("dominant_driver_shares", tidy(sh, **fixed))

    # ------------------------------------------------------------------------------ figures
    def _figures(self, res, sec, ctx, ds, used, zones, layer, exp, combo, label, suffix,
                 options, map_figure, new_figure) -> None:
        v = options.variable
        sl = season_label(options.season)
        for m in [m for m in ("spearman", "pearson", "partial") if f"{m}_r" in ds]:
            if m == "pearson" and options.rank_method != "pearson":
                continue  # maps of every method are written; figures: the ranked one + partial
            for k in used:
                fn = figure_name(ctx, exp, combo, f"{v}{suffix}_{m}_{k}_map")
                r = ds[f"{m}_r"].sel(driver=k).drop_vars("driver")
                sig = ds[f"{m}_p"].sel(driver=k) < options.alpha
                share = float(sig.where(r.notnull()).mean())
                res.add_figure(fn, map_figure(
                    r.assign_attrs(long_name=f"{m} r"), title=f"{label}: {m} r of {sl} "
                    f"{v.upper()} with {DRIVER_NAMES.get(k, k)}", cmap="RdBu_r",
                    synthetic=ctx.synthetic))
                sec.figure(fn, f"{label}: {m} correlation of {sl} {v.upper()} with "
                               f"{DRIVER_NAMES.get(k, k)} ({k}) over {ctx.zone}; "
                               f"p < {options.alpha:g}"
                               + (" (FDR)" if options.fdr else "") +
                               f" on {100 * share:.1f} % of the pixels")
        sh = res.tables["correlation_shares"]
        sub = sh[(sh.experiment == exp) & (sh.combination == combo) & (sh.zone == ctx.zone)]
        fig, ax = new_figure((7.5, 4))
        methods = [m for m in _METHODS if m in set(sub["method"])]
        width = 0.8 / max(len(methods), 1)
        xs = np.arange(len(used))
        for i, m in enumerate(methods):
            s = sub[sub.method == m].set_index(["driver", "statistic"])["value"]
            pos = np.array([s.get((k, "positive_share"), np.nan) for k in used])
            spos = np.array([s.get((k, "significant_positive_share"), np.nan) for k in used])
            neg = np.array([s.get((k, "negative_share"), np.nan) for k in used])
            sneg = np.array([s.get((k, "significant_negative_share"), np.nan) for k in used])
            off = xs - 0.4 + width * (i + 0.5)
            ax.bar(off, pos, width, color=f"C{i}", alpha=0.45, label=f"{m}: positive")
            ax.bar(off, spos, width, color=f"C{i}", label=f"{m}: significant positive")
            ax.bar(off, -neg, width, color=f"C{i}", alpha=0.45)
            ax.bar(off, -sneg, width, color=f"C{i}", hatch="//", edgecolor="white")
        ax.axhline(0, color="0.3", lw=0.6)
        ax.set_xticks(xs)
        ax.set_xticklabels([DRIVER_NAMES.get(k, k) for k in used], fontsize=8)
        ax.set_ylabel("area share [%] (negative r below 0)")
        ax.set_title(f"{label}: area with positive / negative r, {ctx.zone}", fontsize=10)
        ax.legend(fontsize=7, frameon=False, ncol=2)
        if ctx.synthetic:
            from ..report.figures import _synthetic

            _synthetic(ax)
        fn = figure_name(ctx, exp, combo, f"{v}{suffix}_correlation_shares")
        res.add_figure(fn, fig)
        sec.figure(fn, f"{label}: share of {ctx.zone} with positive (above 0) and negative "
                       f"(below 0) correlation per driver; dark: significant at "
                       f"p < {options.alpha:g}")
        if "dominant_driver" in ds:
            dd = res.tables["dominant_driver_shares"]
            dd = dd[(dd.experiment == exp) & (dd.combination == combo)]
            reg = dd[(dd.zone == ctx.zone) & (dd.statistic == "area_share")]
            labels = {int(c): n for c, n in zip(reg["class"], reg["class_name"])}
            dmap = ds["dominant_driver"]
            fn = figure_name(ctx, exp, combo, f"{v}{suffix}_dominant_driver_map")
            res.add_figure(fn, class_map_figure(
                dmap, title=f"{label}: dominant driver of {sl} {v.upper()}",
                shares=dict(zip(reg["class"], reg["value"])), cmap="tab10",
                synthetic=ctx.synthetic))
            names = ", ".join(f"{labels[c]}" for c in sorted(labels))
            sec.figure(fn, f"{label}: driver with the largest |partial r| ({names}) over "
                           f"{ctx.zone}" + ("; 'none' where no partial r is significant"
                                            if options.dominant_significance else ""))
            if zones is not None:
                fn = figure_name(ctx, exp, combo, f"{v}{suffix}_dominant_driver_shares")
                res.add_figure(fn, share_bar_figure(
                    dd, title=f"{label}: dominant driver per {layer}", cmap="tab10",
                    synthetic=ctx.synthetic))
                sec.figure(fn, f"{label}: area share of each dominant driver, {ctx.zone} "
                               f"and per {layer}")

    # ------------------------------------------------------------------------------ report
    def _report(self, sec, res, ctx, used, zones, layer, nyears, options) -> None:
        from ..report.sections import Text

        where = f"{ctx.zone}" + (f" and per {layer}" if zones is not None else "")
        sl = season_label(options.season)
        sec.blocks.insert(0, Text(
            f"Correlation of the {sl} {options.variable.upper()} series ({nyears} years) with "
            f"the {sl} series of {', '.join(DRIVER_NAMES.get(k, k) for k in used)} per pixel "
            "(docs/methods.md §6.6): Pearson r (seed 000 Eq. 14–15), Spearman r_s (seed 003), and "
            "partial r controlling the other drivers (seed 001 Eq. 4; df = n − 2 − k). "
            + ("Series are detrended first (linear trend removed per pixel). "
               if options.detrend else "Raw series, as in the papers (shared trends add to r). ")
            + f"Significance: p < {options.alpha:g}"
            + (" after Benjamini–Hochberg FDR control over the pixels" if options.fdr else "")
            + f". Area shares use true pixel areas over {where}. The factor ranking orders the "
            f"drivers by the area-weighted mean {options.rank_method} r"
            + (" (signed, as seed 003 Table 2)" if options.rank_by == "r" else
               " by its absolute value") + "."))
        sh = res.tables["correlation_shares"]
        view = sh[sh.zone == ctx.zone].pivot_table(
            index=["combination", "method", "driver"], columns="statistic", values="value",
            sort=False)
        order = ["mean_r", "positive_share", "negative_share", "significant_positive_share",
                 "significant_negative_share", "significant_share"]
        view = view[[c for c in order if c in view.columns]].reset_index()
        sec.table(view, "correlation_shares",
                  caption=f"{ctx.zone}: area-weighted mean r [1] and share of the area with "
                          "positive, negative and significant correlation [%] per driver")
        if zones is not None:
            zv = sh[(sh.zone != ctx.zone) & (sh.statistic.isin(
                ["mean_r", "positive_share", "significant_share"]))].pivot_table(
                index=["zone", "combination", "method", "driver"], columns="statistic",
                values="value", sort=False).reset_index()
            sec.table(zv, "correlation_shares",
                      caption=f"Per {layer}: mean r [1], share of the area with positive and "
                              "with significant correlation [%]")
        rk = res.tables["factor_ranking"]
        text_rows = []
        for (combo, zone), g in rk[rk.statistic == "mean_r"].groupby(
                ["combination", "zone"], sort=False):
            ranks = rk[(rk.statistic == "rank") & (rk.combination == combo) &
                       (rk.zone == zone)].set_index("driver")["value"]
            g = g.assign(rank=[ranks[d] for d in g["driver"]]).sort_values("rank",
                                                                          kind="stable")
            parts, prev = [], None
            for _, row in g.iterrows():
                sep = "" if prev is None else (" = " if row["rank"] == prev else " > ")
                parts.append(f"{sep}{DRIVER_NAMES.get(row['driver'], row['driver'])} "
                             f"({row['value']:.2f})")
                prev = row["rank"]
            text_rows.append({"zone": zone, "combination": combo,
                              "ranking of factors": "".join(parts)})
        sec.table(pd.DataFrame(text_rows), "factor_ranking",
                  caption=f"Ranking of the climate factors by the area-weighted mean "
                          f"{options.rank_method} r"
                          + (" (signed)" if options.rank_by == "r" else " (by |r|)")
                          + f", {where} (seed 003 Table 2)")
        reg = res.tables["regional_series_correlation"]
        rv = reg[reg.statistic.isin(["r", "p"])].pivot_table(
            index=["zone", "combination", "driver"], columns=["method", "statistic"],
            values="value", sort=False)
        rv.columns = [f"{m} {s}" for m, s in rv.columns]
        sec.table(rv.reset_index(), "regional_series_correlation",
                  caption=f"Correlation of the area-weighted regional series, {where}")
        if "dominant_driver_shares" in res.tables:
            dd = res.tables["dominant_driver_shares"]
            dv = dd[dd.statistic == "area_share"].pivot_table(
                index=["zone", "combination"], columns="class_name", values="value",
                sort=False).reset_index()
            sec.table(dv, "dominant_driver_shares",
                      caption=f"Area share of each dominant driver [%] (largest |partial r|), "
                              f"{where}")
