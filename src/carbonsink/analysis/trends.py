"""Trends of NPP, Rh, NEP and the climate drivers, annual and growing season, as a registered
analysis: per-pixel Theil–Sen slope with the Mann–Kendall test (any serial-correlation variant)
and OLS with its t-test (docs/methods.md §6.1–6.3), the class maps of seeds 001 (Sen/MK nine
classes), 003 (OLS six classes) and 004 (SI/II/ID/SD) with their area shares per zone, and
the trends of the area-weighted regional and per-zone series.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from .._memory import computed_in_batches
from ..regions import summarise, summarise_many
from ..stats import (
    mann_kendall,
    ols_four_classes,
    ols_six_classes,
    ols_trend,
    sen_mk_classes,
)
from .base import DRIVERS, Analysis, AnalysisResult, CubeProduct, register_analysis, tidy
from .sink_classes import class_share_table, class_shares_by_zone
from .summaries import pixel_mask, pixel_set, series_zones

__all__ = ["Trends", "trend_dataset", "regional_trend_table", "regional_series_table",
           "series_trends", "TREND_SCHEMES", "FLUX_VARIABLES"]

#: the Mann–Kendall test needs at least this many years (carbonsink docs/methods.md §1.3)
MIN_TREND_YEARS = 10
#: variables of the flux cubes; every other variable is looked up in the driver series
FLUX_VARIABLES = ("npp", "rh", "nep")
#: class scheme -> (variable of the trend dataset, label in the tables)
TREND_SCHEMES = {
    "sen_mk": ("sen_mk_class", "Sen/MK nine classes (seed 001)"),
    "ols6": ("ols_class", "OLS six classes (seed 003)"),
    "ols4": ("ols4_class", "OLS SI/II/ID/SD classes (seed 004)"),
}
_MK_VARIANTS = ("original", "hamed_rao", "yue_wang", "pre_whitening",
                "trend_free_pre_whitening")
_MK_ALIASES = {"tfpw": "trend_free_pre_whitening", "prewhitening": "pre_whitening"}
_MAP_NAMES = tuple([f"sen_{k}" for k in ("slope", "intercept", "s", "var_s", "z", "p", "tau",
                                         "n")]
                   + [f"ols_{k}" for k in ("slope", "intercept", "stderr", "t", "p", "r2", "n")]
                   + [v for v, _ in TREND_SCHEMES.values()])
_SEASON_TAG = {"annual": "", "growing_season": "gs_"}
_SEASON_TEXT = {"annual": "annual", "growing_season": "growing-season"}


def trend_dataset(da: xr.DataArray, dim: str = "time", *, variant: str = "original",
                  schemes=("sen_mk", "ols6"), min_valid: int | None = None) -> xr.Dataset:
    """Sen/MK and OLS trend statistics of ``da`` with the class maps of ``schemes`` (lazy).

    Variables ``sen_<k>`` from :func:`carbonsink.stats.mann_kendall` (``variant``: original,
    hamed_rao, yue_wang, pre_whitening, trend_free_pre_whitening), ``ols_<k>`` from
    :func:`carbonsink.stats.ols_trend` (slopes in the units of ``da`` per year) and
    ``sen_mk_class`` (001 nine classes, docs/methods.md §6.3), ``ols_class`` (003 six classes,
    §6.1), ``ols4_class`` (004 SI/II/ID/SD, §6.1) for the schemes ``sen_mk``, ``ols6``,
    ``ols4``. ``min_valid``: pixels with fewer valid years are NaN in every map (default:
    the statistics' own default, max(10, ceil(0.8 n)) for Mann–Kendall).
    """
    unknown = sorted(set(schemes) - set(TREND_SCHEMES))
    if unknown:
        from ..errors import InvalidArgumentError

        raise InvalidArgumentError(f"trend_dataset: unknown scheme(s) {unknown}; valid: "
                                   f"{', '.join(TREND_SCHEMES)}")
    mk = mann_kendall(da, dim, variant=variant, min_valid=min_valid)
    ols = ols_trend(da, dim, min_valid=min_valid)
    out = {**{f"sen_{k}": v for k, v in mk.data_vars.items()},
           **{f"ols_{k}": v for k, v in ols.data_vars.items()}}
    if "sen_mk" in schemes:
        out["sen_mk_class"] = sen_mk_classes(mk)
    if "ols6" in schemes:
        out["ols_class"] = ols_six_classes(ols)
    if "ols4" in schemes:
        out["ols4_class"] = ols_four_classes(ols)
    ds = xr.Dataset(out)
    ds.attrs.update(mk_variant=variant, variable=str(da.name or ""))
    return ds


def regional_series_table(da: xr.DataArray, area: xr.DataArray, *, zones=None,
                          region: str = "study area") -> pd.DataFrame:
    """Area-weighted mean series (Σ F·A / Σ A per year, docs/methods.md §1.6) of ``da`` for
    the region and every zone: columns ``zone, year, units, value`` (zones in label order)."""
    return _series_table(summarise(da, area, zones=zones, how=("mean",), region=region))


def _series_table(df: pd.DataFrame) -> pd.DataFrame:
    """A :func:`carbonsink.regions.summarise` mean table as ``zone, year, units, value``."""
    t = np.asarray(df.pop("time"))
    years = pd.DatetimeIndex(t).year.to_numpy(dtype=int) if \
        np.issubdtype(t.dtype, np.datetime64) else t.astype(int)
    df.insert(1, "year", years)
    return df[["zone", "year", "units", "value"]]


def series_trends(series: pd.DataFrame, *, variant: str = "original") -> pd.DataFrame:
    """OLS (slope, p, r2) and Sen/MK (slope, Z, p) trends of each zone's series of a
    :func:`regional_series_table` (all zones in one vectorised call), in tidy rows
    ``zone, statistic, units, value``; statistics ``ols_slope, ols_p, ols_r2, sen_slope,
    mk_z, mk_p, n_years``."""
    zones = list(dict.fromkeys(series["zone"]))
    wide = series.pivot_table(index="zone", columns="year", values="value", dropna=False,
                              sort=False).reindex(zones)
    units = str(series["units"].iloc[0]) if len(series) else ""
    years = np.asarray(wide.columns, dtype=float)
    arr = xr.DataArray(wide.to_numpy(dtype=np.float64), dims=("zone", "time"),
                       coords={"zone": zones, "time": years}, attrs={"units": units})
    n = arr.sizes["time"]
    mv = None if n >= MIN_TREND_YEARS else max(3, n)
    tr = ols_trend(arr, "time", min_valid=mv).compute()
    tm = mann_kendall(arr, "time", variant=variant, min_valid=mv).compute()
    su = tr["slope"].attrs.get("units", "")
    rows = []
    for i, z in enumerate(zones):
        for stat, value, u in (
                ("ols_slope", tr["slope"], su), ("ols_p", tr["p"], "1"),
                ("ols_r2", tr["r2"], "1"), ("sen_slope", tm["slope"], su),
                ("mk_z", tm["z"], "1"), ("mk_p", tm["p"], "1"), ("n_years", tr["n"], "1")):
            rows.append({"zone": z, "statistic": stat, "units": u,
                         "value": float(value.values[i])})
    return pd.DataFrame(rows, columns=["zone", "statistic", "units", "value"])


def regional_trend_table(ds: xr.Dataset, area: xr.DataArray, variables=FLUX_VARIABLES,
                         dim: str = "time", *, zones=None, region: str = "study area",
                         variant: str = "original") -> pd.DataFrame:
    """OLS and Sen/MK trend of the area-weighted regional (and per-zone) series of each
    variable of ``ds`` (tidy: zone, variable, statistic, units, value)."""
    frames = []
    for v in variables:
        if v not in ds:
            continue
        da = ds[v] if dim == "time" else ds[v].rename({dim: "time"})
        tab = series_trends(regional_series_table(da, area, zones=zones, region=region),
                            variant=variant)
        tab.insert(1, "variable", v)
        frames.append(tab)
    cols = ["zone", "variable", "statistic", "units", "value"]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=cols)


def _label(exp: str, combo: str, ctx) -> str:
    return combo if len(ctx.experiments) < 2 else f"{exp}/{combo}"


def _fig(exp: str, combo: str, ctx, rest: str) -> str:
    return f"{combo}_{rest}" if len(ctx.experiments) < 2 else f"{exp}_{combo}_{rest}"


@register_analysis
class Trends(Analysis):
    name = "trends"
    title = "Trends and significance classes"
    description = ("Per-pixel Theil–Sen slope with the Mann–Kendall test (optionally "
                   "corrected for serial correlation) and OLS slope with its t-test for NPP, "
                   "Rh, NEP or the climate drivers, annual and growing season; the class maps "
                   "of 001 (Sen/MK nine classes), 003 (OLS six classes) and 004 (SI/II/ID/SD) "
                   "with their area shares per zone; trends of the regional and per-zone "
                   "series with figures of the fitted lines.")
    requires = ("annual", "area")
    default = True
    order = 40
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variables: list[str] = Field(
            default_factory=lambda: ["nep"],
            description="npp, rh, nep (flux cubes) and/or driver series (tas, pr, sol, pet, "
                        "eet, hurs, sund)")
        variable: Literal["nep", "npp", "rh"] | None = Field(
            None, description="(older form) one flux variable; same as variables: [name]")
        seasons: list[Literal["annual", "growing_season"]] = Field(
            default_factory=lambda: ["annual"], description="annual and/or growing-season "
                                                            "series (outputs.growing_season_months)")
        mk_variant: str = Field(
            "original", description="Mann–Kendall variant: original, hamed_rao, yue_wang, "
                                    "pre_whitening (prewhitening), trend_free_pre_whitening "
                                    "(tfpw)")
        schemes: list[Literal["sen_mk", "ols6", "ols4"]] = Field(
            default_factory=lambda: ["sen_mk", "ols6"],
            description="class schemes: sen_mk (001 nine classes), ols6 (003 six classes), "
                        "ols4 (004 SI/II/ID/SD)")
        regional_fluxes: bool = Field(
            True, description="also the trends of the regional series of the fluxes not in "
                              "variables (npp, rh, nep), in regional_trends")
        min_valid_share: float = Field(
            1.0, gt=0, le=1, description="pixels valid in fewer than this share of the years get "
                                         "no trend (masked in every map; the n layer counts)")
        pixel_set: Literal["fixed", "per_year"] = Field(
            "fixed", description="pixels of the regional and per-zone flux series: fixed = the "
                                 "same pixels every year (valid in at least min_valid_share of "
                                 "the years), as regional_summary, so both report the same "
                                 "regional trend; per_year = whichever pixels are valid")
        common_mask: bool = Field(
            True, description="with pixel_set fixed: the pixels valid in every combination "
                              "and experiment (as regional_summary)")
        min_years: int = Field(MIN_TREND_YEARS, ge=4,
                               description="fewer years in the study: the analysis is skipped")
        maps: list[str] | None = Field(
            None, description="trend variables written as COG (default: sen_slope, ols_slope, "
                              "ols_p and the class map of every scheme)")

        @field_validator("variables")
        @classmethod
        def _known(cls, v: list[str]) -> list[str]:
            from ..units import VARIABLES

            if not v:
                raise ValueError("give at least one variable")
            bad = [x for x in v if x not in FLUX_VARIABLES and x not in VARIABLES]
            if bad:
                raise ValueError(f"unknown variable(s) {bad}; use npp, rh, nep or a driver "
                                 "(tas, pr, sol, pet, eet, hurs, sund)")
            return list(dict.fromkeys(v))

        @field_validator("mk_variant")
        @classmethod
        def _variant(cls, v: str) -> str:
            v = _MK_ALIASES.get(v, v)
            if v not in _MK_VARIANTS:
                raise ValueError(f"unknown Mann–Kendall variant '{v}'; valid: "
                                 f"{', '.join(_MK_VARIANTS)} (or tfpw, prewhitening)")
            return v

        @field_validator("maps")
        @classmethod
        def _maps(cls, v):
            if v is not None:
                bad = [m for m in v if m not in _MAP_NAMES]
                if bad:
                    raise ValueError(f"unknown map(s) {bad}; valid: {', '.join(_MAP_NAMES)}")
            return v

        @model_validator(mode="after")
        def _alias(self):
            if self.variable is not None:
                self.variables = [self.variable]
            return self

    # ------------------------------------------------------------------------------ run
    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        sec = res.section(self)
        self._series: list[pd.DataFrame] = []
        self._maps: list[tuple[str, str]] = []
        self._notes: list[str] = []
        zones = ctx.zones()
        flux = [v for v in options.variables if v in FLUX_VARIABLES]
        drivers = [v for v in options.variables if v not in FLUX_VARIABLES]
        years = None
        # the series to analyse, in table order: (series, variable, season, experiment,
        # combination, per-pixel trend maps too?)
        items: list[tuple[xr.DataArray, str, str, str, str, bool]] = []
        for season in options.seasons:
            for exp, combo in ctx.runs() if flux else []:
                cube = ctx.cube(season, combo, exp)
                if cube is None:
                    self._notes.append(f"no {_SEASON_TEXT[season]} cube for {combo}")
                    continue
                years = cube.sizes["time"]
                if years < options.min_years:
                    return self._skip(ctx, res, sec, years, options)
                for v in flux:
                    if v not in cube:
                        self._notes.append(f"{combo} has no {v} ({_SEASON_TEXT[season]})")
                        continue
                    items.append((cube[v], v, season, exp, combo, True))
                if options.regional_fluxes:  # the regional series of the other fluxes too
                    for v in (x for x in FLUX_VARIABLES if x not in flux and x in cube):
                        items.append((cube[v], v, season, exp, combo, False))
            for exp in ctx.experiments if drivers else []:
                drv = ctx.drivers(season, exp)
                if drv is None:
                    self._notes.append(f"no {_SEASON_TEXT[season]} driver series (the study "
                                       "has no climate inputs summarised as drivers)")
                    continue
                years = drv.sizes["time"]
                if years < options.min_years:
                    return self._skip(ctx, res, sec, years, options)
                for v in drivers:
                    if v not in drv:
                        self._notes.append(f"'{v}' is not among the {_SEASON_TEXT[season]} "
                                           f"driver series ({', '.join(drv.data_vars)})")
                        continue
                    items.append((drv[v], v, season, exp, DRIVERS, True))
        # every trend cube in one computation, every regional series in another: the cubes
        # are read once and both cores share the work
        pixel = [it for it in items if it[5]]
        written = dict(zip((id(it) for it in pixel), ctx.store_many(
            [self._product(ctx, it, options) for it in pixel]))) if pixel else {}
        area = ctx.area
        # the regional series of the fluxes on the pixels (and with the zone fractions) of
        # regional_summary: both sections give the same regional series and trend
        keep = pixel_set(ctx, options) if any(it[1] in FLUX_VARIABLES for it in items) \
            else None
        szones = series_zones(ctx)

        def series_mask(it):
            return pixel_mask(keep, it[3], it[4]) if it[1] in FLUX_VARIABLES else None
        # every regional series and the class and slope layers of the stored trend cubes in
        # few computations (the annual cubes and the trend cubes read together, both cores
        # busy; the layers of a batch of cubes at a time)
        layers = [TREND_SCHEMES[s][0] for s in options.schemes] + ["sen_slope"]
        stream = computed_in_batches(
            [(None, summarise_many([dict(da=it[0], area=area, zones=szones,
                                         how=("mean",), region=ctx.zone, mask=series_mask(it))
                                    for it in items], compute=False))]
            + [(id(it), {k: written[id(it)][k] for k in layers}) for it in pixel])
        _, series = next(stream)
        for it, ser in zip(items, series):
            da, v, season, exp, combo, maps = it
            ser = _series_table(ser)
            trends = series_trends(ser, variant=options.mk_variant)
            trends.insert(1, "variable", v)
            trends.insert(1, "season", season)
            if maps:
                _, loaded = next(stream)  # the layers come in the order of ``pixel``
                self._one(ctx, res, written[id(it)], loaded, v, season, exp, combo,
                          options, zones)
            res.add_table("regional_trends", tidy(trends, experiment=exp, combination=combo))
            if maps:
                self._series.append(ser.assign(experiment=exp, combination=combo,
                                               season=season, variable=v,
                                               line=_label(exp, combo, ctx)))
        for n in self._notes:
            ctx.echo(f"trends: {n}")
        if "regional_trends" not in res.tables:
            sec.text("No series were found for the requested variables"
                     + (f" ({'; '.join(self._notes)})" if self._notes else "") + ".")
            return res
        self._report(ctx, res, sec, options, years, zones)
        return res

    def _skip(self, ctx, res, sec, years, options):
        ctx.echo(f"trends skipped: the study period has {years} years, the "
                 f"Mann–Kendall test needs at least {options.min_years} (docs/methods.md §1.3)")
        sec.text(f"Skipped: the study period has {years} years; trends need at least "
                 f"{options.min_years}.")
        res.tables.clear()
        res.datasets.clear()
        res.figures.clear()
        return res

    @staticmethod
    def _product(ctx, item, options) -> CubeProduct:
        """The per-pixel trend cube of one series (lazy), with the maps written as COG."""
        import math

        da, v, season, exp, combo, _ = item
        tag = _SEASON_TAG[season]
        need = max(4, math.ceil(options.min_valid_share * da.sizes["time"] - 1e-9))
        ds = trend_dataset(da, variant=options.mk_variant, schemes=options.schemes,
                           min_valid=need)
        maps = options.maps if options.maps is not None else \
            ["sen_slope", "ols_slope", "ols_p"] + [TREND_SCHEMES[s][0] for s in options.schemes]
        return CubeProduct(f"{v}_{tag}trend", ds, combination=combo, experiment=exp,
                           maps=tuple(m for m in maps if m in ds), map_prefix=f"{v}_{tag}")

    def _one(self, ctx, res, written, loaded, v, season, exp, combo, options, zones) -> None:
        """Class shares, class maps and the slope map of one stored trend cube (``loaded``:
        its class and slope layers, computed)."""
        from ..report.figures import categorical_map_figure, map_figure

        tag = _SEASON_TAG[season]
        area = ctx.area
        label = _label(exp, combo, ctx)
        what = f"{_SEASON_TEXT[season]} {v.upper() if v in FLUX_VARIABLES else v}"
        for scheme in options.schemes:
            var, scheme_label = TREND_SCHEMES[scheme]
            classes = loaded[var]
            shares = class_shares_by_zone(classes, area, zones, region=ctx.zone)
            res.add_table(f"{v}_trend_classes", tidy(
                class_share_table(shares, variable=v, scheme=scheme_label).assign(
                    season=season), experiment=exp, combination=combo))
            fname = _fig(exp, combo, ctx, f"{v}_{tag}{scheme}_class_map")
            res.add_figure(fname, categorical_map_figure(
                classes, shares=shares[shares.zone == ctx.zone], zones=zones,
                synthetic=ctx.synthetic, legend_title="class (area share)",
                title=f"{label}: {scheme_label}, {what}"))
            self._maps.append((fname, f"{label}: {scheme_label} of the {what} trend; legend: "
                                      f"area share of {ctx.zone}"))
        fname = _fig(exp, combo, ctx, f"{v}_{tag}sen_slope_map")
        res.add_figure(fname, map_figure(loaded["sen_slope"],
                                         title=f"{label}: Theil–Sen trend of {what}",
                                         cmap="RdBu", synthetic=ctx.synthetic))
        self._maps.append((fname, f"{label}: Theil–Sen slope of {what} "
                                  f"[{written['sen_slope'].attrs.get('units', '')}]"))

    def _report(self, ctx, res, sec, options, years, zones) -> None:
        from ..report.figures import area_share_figure, trend_series_figure
        from ..report.sections import Text

        layer = zones.attrs.get("zone_layer", "zone") if zones is not None else None
        where = ctx.zone + (f" and each {layer}" if layer else "")
        variant = options.mk_variant.replace("_", " ")
        sec.blocks.insert(0, Text(
            f"{years} years; region {where}. Per pixel: Theil–Sen slope with the Mann–Kendall "
            f"test ({variant}) and OLS with its t-test (docs/methods.md §6.1–6.3); classes: "
            + "; ".join(TREND_SCHEMES[s][1] for s in options.schemes)
            + ". Regional and per-zone series of the fluxes: area-weighted means over "
            + ("the same pixels every year (valid in "
               + ("every year" if options.min_valid_share >= 1 else
                  f"at least {100 * options.min_valid_share:g} % of the years")
               + (" and in every combination" if options.common_mask else "")
               + "), as in the regional summary" if options.pixel_set == "fixed" else
               "whichever pixels are valid each year")
            + ". Area shares are of the area of pixels with a class (true pixel areas). Maps "
              "in maps/<combination>/ (class maps with colour table and class names; driver "
              "trends under maps/drivers/)."
            + (f" Notes: {'; '.join(self._notes)}." if self._notes else "")))
        tab = res.tables["regional_trends"]
        keys = (["experiment"] if len(ctx.experiments) > 1 else []) + \
            ["zone", "combination", "variable", "season"]
        view = tab.pivot_table(index=keys, columns="statistic", values="value", sort=False)
        view = view[[c for c in ("ols_slope", "ols_p", "sen_slope", "mk_z", "mk_p", "n_years")
                     if c in view.columns]].reset_index()
        units = "; ".join(f"{v}: {u}" for v, u in tab[tab.statistic == "ols_slope"]
                          .groupby("variable", sort=False)["units"].first().items())
        sec.table(view, "regional_trends",
                  caption=f"Trends of the area-weighted series of {where} (slopes per year: "
                          f"{units})")
        series = pd.concat(self._series, ignore_index=True)
        for (season, v), grp in series.groupby(["season", "variable"], sort=False):
            tag = _SEASON_TAG[season]
            name = f"{v}_{tag}regional_trend"
            u = str(grp["units"].iloc[0])
            what = f"{_SEASON_TEXT[season]} {v.upper() if v in FLUX_VARIABLES else v}"
            res.add_figure(name, trend_series_figure(
                grp, by="line", panel="zone", units=u, ylabel=f"{what} [{u}]",
                synthetic=ctx.synthetic,
                title=f"Area-weighted mean {what} with its OLS trend"))
            sec.figure(name, f"Area-weighted mean {what} of {where} per year, with the fitted "
                             f"OLS line; the legend gives the slope [{u} per year] and p")
        for v in options.variables:
            shares = res.tables.get(f"{v}_trend_classes")
            if shares is None:
                continue
            sh = shares[shares.statistic == "area_share"]
            for (season, scheme), grp in sh.groupby(["season", "scheme"], sort=False):
                tag = _SEASON_TAG[season]
                key = next(k for k, (_, lab) in TREND_SCHEMES.items() if lab == scheme)
                what = f"{_SEASON_TEXT[season]} {v.upper() if v in FLUX_VARIABLES else v}"
                sv = grp.pivot_table(index=["zone", "class", "class_name"],
                                     columns="combination", values="value",
                                     sort=False).reset_index()
                sec.table(sv, f"{v}_trend_classes",
                          caption=f"Area share [%] of each class, {scheme}, {what} trend, "
                                  f"{where}")
                name = f"{v}_{tag}{key}_class_shares"
                bars = ["zone", "combination"] if grp["combination"].nunique() > 1 else ["zone"]
                res.add_figure(name, area_share_figure(
                    grp, bar=bars, synthetic=ctx.synthetic,
                    title=f"{scheme}: area shares, {what}"))
                sec.figure(name, f"Area share of each class ({scheme}) of the {what} trend "
                                 f"in {where}")
        for name, caption in self._maps:
            sec.figure(name, caption)
