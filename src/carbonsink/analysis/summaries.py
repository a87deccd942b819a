"""Regional and per-land-cover-class summaries (docs/methods.md §1.6) as registered analyses.

``regional_summary``: area-weighted regional mean [g C m-2 yr-1] and total [Tg C yr-1] of
annual NPP, Rh and NEP per year, and growing-season totals.
``landcover_summary``: per land-cover class (7-class scheme of seed 001 or 8-class of seed
000): class area, area-weighted mean and total of NPP, Rh and NEP per year and over the
years (annual and growing season), the trends of the per-class series, per zone; each year's
fluxes are attributed to that year's class (or to a reference year's).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from ..regions import summarise_many
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["RegionalSummary", "LandcoverSummary", "regional_series", "class_series"]

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
    reqs = _series_requests(ds, area, variables=variables, total_units=total_units,
                            statistics=statistics, zones=zones, region=region)
    return _series_table([v for v, _ in reqs], summarise_many([r for _, r in reqs]))


def _series_requests(ds, area, *, variables, total_units, statistics, zones, region,
                     mask=None):
    """The :func:`carbonsink.regions.summarise` calls of one :func:`regional_series`
    (``mask``: the pixels summarised, None = every valid pixel)."""
    return [(v, dict(da=ds[v], area=area, zones=zones, how=tuple(statistics),
                     units=total_units, region=region, mask=mask))
            for v in variables if v in ds]


def _series_table(names, tables) -> pd.DataFrame:
    frames = []
    for v, df in zip(names, tables):
        df.insert(1, "year", pd.DatetimeIndex(df.pop("time")).year.astype(int))
        df.insert(2, "variable", v)
        frames.append(df)
    cols = ["zone", "year", "variable", "statistic", "units", "value"]
    return pd.concat(frames, ignore_index=True)[cols] if frames else pd.DataFrame(columns=cols)


def pixel_set(ctx, options):
    """The pixels the regional series are computed on (None = every valid pixel each year).

    ``fixed``: pixels whose annual NEP (else the first variable) is valid in at least
    ``min_valid_share`` of the years — per combination, or, with ``common_mask``, in every
    combination and experiment at once (a common mask, so that combinations are compared on
    the same area).
    """
    if options.pixel_set == "per_year":
        return None
    sets = {}
    for exp, combo in ctx.runs():
        annual = ctx.cube("annual", combo, exp)
        if annual is None:
            continue
        v = "nep" if "nep" in annual else next(iter(annual.data_vars))
        da = annual[v]
        need = int(np.ceil(options.min_valid_share * da.sizes["time"] - 1e-9))
        sets[(exp, combo)] = (da.notnull().sum("time") >= need).drop_vars(
            "experiment", errors="ignore")
    if not sets:
        return None
    # computed once here (a (y, x) boolean map each): every regional series then reuses it
    # instead of re-reading all annual cubes in each of its computations
    if options.common_mask:
        common = None
        for m in sets.values():
            common = m if common is None else common & m
        return common.compute()
    return {k: m.compute() for k, m in sets.items()}


def pixel_mask(keep, experiment, combination):
    """The mask of one run in a :func:`pixel_set` result (None: every valid pixel)."""
    return keep.get((experiment, combination)) if isinstance(keep, dict) else keep


def series_zones(ctx):
    """The zones of the regional series: the cells' zone fractions when the study asks for
    fractional zones, else the zone labels (None without zones)."""
    fractions = ctx.zone_fractions()
    return ctx.zones() if fractions is None else fractions


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
        periods: list[tuple[int, int]] | None = Field(
            None, description="[first, last] years of the periods whose means and differences "
                              "are reported; default: whole decades from the first year")
        period_length: int = Field(10, ge=1, description="years per default period")
        pixel_set: Literal["fixed", "per_year"] = Field(
            "fixed", description="fixed: the same pixels every year (valid in at least "
                                 "min_valid_share of the years); per_year: whichever are valid")
        min_valid_share: float = Field(1.0, gt=0, le=1)
        common_mask: bool = Field(True, description="compare combinations (and experiments) "
                                                    "on the pixels valid in all of them")

    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        area = ctx.area
        nmonths = len(ctx.growing_season_months)
        keep = pixel_set(ctx, options)
        zones = series_zones(ctx)
        # every summary of every combination in one pass over the cubes (both cores busy,
        # each cube read once)
        plan = []
        for exp, combo in ctx.runs():
            mask = pixel_mask(keep, exp, combo)
            for product in ("annual", "growing_season"):
                if product == "growing_season" and not options.growing_season:
                    continue
                ds = ctx.cube(product, combo, exp)
                if ds is None:
                    if product == "annual":
                        break
                    continue
                reqs = _series_requests(
                    ds, area, variables=options.variables, total_units=options.total_units,
                    zones=zones, region=ctx.zone, mask=mask,
                    statistics=("mean", "total", "area") if product == "annual" else ("mean",))
                plan.append((exp, combo, product, reqs))
        tables = summarise_many([r for *_, reqs in plan for _, r in reqs])
        pos = 0
        for exp, combo, product, reqs in plan:
            df = _series_table([v for v, _ in reqs], tables[pos:pos + len(reqs)])
            pos += len(reqs)
            if product == "annual":
                res.add_table("regional_annual", tidy(df, experiment=exp, combination=combo))
                continue
            total = df.assign(statistic="season_total")
            mean = df.assign(statistic="monthly_mean", value=df["value"] / nmonths,
                             units=df["units"].str.replace(r"\s*$", "", regex=True)
                             .map(lambda u: f"{u} month-1" if "month" not in u else u))
            res.add_table("regional_growing_season",
                          tidy(pd.concat([total, mean], ignore_index=True), experiment=exp,
                               combination=combo))
        tab = res.tables.get("regional_annual")
        sec = res.section(self)
        if tab is None or tab.empty:
            sec.text("No annual cubes were found for this study.")
            return res
        from .series_stats import decade_periods, series_statistics

        years = sorted(tab["year"].unique())
        periods = options.periods or decade_periods(years, options.period_length)
        stats = series_statistics(tab, keys=["experiment", "combination", "zone", "variable",
                                             "statistic"], periods=periods)
        res.add_table("regional_statistics", stats)
        how = ("the same pixels every year" + (" and in every combination"
                                                if options.common_mask else "")
               if options.pixel_set == "fixed" else "whichever pixels are valid each year")
        sec.text(f"Area-weighted over {ctx.zone} with true pixel areas times the inputs' "
                 "valid-area fraction: the regional mean is Σ F·A / Σ A over valid pixels, the "
                 f"total Σ F·A; computed on {how} (pixel_set = {options.pixel_set}, "
                 f"min_valid_share = {options.min_valid_share}). The area statistic of the "
                 "table states the area of each.")
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
            st = stats[(stats.variable == "nep") & (stats.of == "mean") & (stats.period == "")]
            sview = st.pivot_table(index=["zone", "combination"], columns="statistic",
                                   values="value", sort=False)
            cols = [c for c in ("multi_year_mean", "min", "year_of_min", "max", "year_of_max",
                                "ols_slope", "ols_p", "sen_slope", "mk_p") if c in sview]
            sec.table(sview[cols].reset_index(), "regional_statistics",
                      caption="Regional mean annual NEP: multi-year mean, lowest and highest "
                              "year, OLS and Theil–Sen trends with p (values in "
                              f"{means['units'].iloc[0]}, slopes per year)")
            pm = stats[(stats.variable == "nep") & (stats.of == "mean") & (stats.period != "")]
            if not pm.empty:
                pview = pm.pivot_table(index=["zone", "combination"], columns="period",
                                       values="value", sort=False)
                sec.table(pview.reset_index(), "regional_statistics",
                          caption="Period means of the regional mean annual NEP and their "
                                  f"differences [{means['units'].iloc[0]}]")
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


def class_series(ds, classes, area=None, *, variables=_VARS, zones=None, labels=None,
                 exclude=(), total_units: str = "Tg C", region: str = "study area"
                 ) -> pd.DataFrame:
    """Per-class, per-year area, area-weighted mean and total of the ``variables`` of ``ds``.

    Each year's flux is attributed to the class its pixel has *in that year* when
    ``classes`` has the time axis of ``ds`` (see :func:`carbonsink.cube.landcover.landcover_at`),
    else to the one map given. For class ``c`` and year ``t`` over the valid pixels
    (carbonsink docs/methods.md §1.6): ``area = Σ A`` [km2], ``mean = Σ A·F / Σ A`` [units of F],
    ``total = Σ A·F`` [``total_units`` with the period of F].

    Parameters
    ----------
    ds : Dataset ``(time, y, x)`` of fluxes (e.g. annual NPP, Rh, NEP [g C m-2 yr-1]).
    classes : reclassified land cover ``(time, y, x)`` or ``(y, x)`` with CF flag attributes
        (or ``labels``).
    area : cell areas [m2] (default :func:`carbonsink.cube.pixel_area`).
    zones : optional zone labels ``(y, x)`` (0 = none, names in ``zone_names``).
    exclude : class names left out of the second aggregate row (e.g. ``["barren"]``).

    Returns
    -------
    Tidy DataFrame: ``zone, year, class, class_name, variable, statistic, units, value``;
    besides one row per class, ``class`` 0 holds the aggregates ``all classes`` and (with
    ``exclude``) ``without <names>``. Zone ``region`` is every pixel, then one block per
    zone. One compiled pass over each variable (:mod:`carbonsink._grouped`) sums the area and
    the weighted flux of every (year, zone, class) group.
    """
    import dask

    sums, finish = _class_plan(ds, classes, area, variables=variables, zones=zones,
                               labels=labels, exclude=exclude, total_units=total_units,
                               region=region)
    (computed,) = dask.compute(sums)
    return finish(computed)


def _class_plan(ds, classes, area=None, *, variables=_VARS, zones=None, labels=None,
                exclude=(), total_units: str = "Tg C", region: str = "study area"):
    """(lazy sums, function turning the computed sums into the table) of one
    :func:`class_series`."""
    import numpy as np

    from .._grouped import grouped_sums
    from ..regions import _spatial_dims, total_factor
    from .landcover_change import _area_m2, _index, class_codes, zone_index

    codes, names = class_codes(classes, labels)
    bad = sorted(set(exclude) - set(names.values()))
    if bad:
        from ..errors import UnknownNameError

        raise UnknownNameError("land-cover class to exclude", ", ".join(bad),
                               sorted(names.values()))
    k = len(codes)
    first = next(v for v in variables if v in ds)
    like = ds[first]
    years = pd.DatetimeIndex(like["time"].values).year.astype(int)
    nt = len(years)
    cls = classes.drop_vars("spatial_ref", errors="ignore")
    if "time" in cls.dims:
        cls = cls.assign_coords(time=like["time"].values)
    kidx = _index(cls, codes)
    zidx, zlabels, znames = zone_index(zones)
    nz = len(zlabels)
    # a cell whose zone label is unknown counts in the region only (as "no zone")
    zpart = zidx.where(zidx >= 0, 0) if zidx is not None else 0
    code = (zpart * k + kidx).where(kidx >= 0, -1)
    w = _area_m2(area, like)
    dims = _spatial_dims(like)
    present = [v for v in variables if v in ds]
    sums = {v: grouped_sums(ds[v], w, dims, codes=code, n_groups=nz * k) for v in present}
    keep = [i for i, c in enumerate(codes) if names[c] not in exclude]
    groups = [(c, names[c], [i]) for i, c in enumerate(codes)]
    groups.append((0, "all classes", list(range(k))))
    if exclude:
        groups.append((0, "without " + ", ".join(exclude), keep))
    attribution = classes.attrs.get("landcover_attribution", "one map for all years")

    def finish(computed) -> pd.DataFrame:
        # the table built column by column (rows: variable, zone, class group, statistic,
        # year), not as a frame per (zone, group, statistic): ~1.7 s of the interpreter at
        # six combinations, whatever the region's size
        zone_names = [region, *znames]
        nzone, ng = len(zone_names), len(groups)
        stats = np.asarray(["area", "mean", "total"], dtype=object)
        frames = []
        for v in present:
            units = ds[v].attrs.get("units", "")
            factor, tunits = total_factor(units, total_units, v)
            arr = np.asarray(computed[v].transpose("statistic", "time", "group").values)
            a = arr[0].reshape(nt, nz, k)
            s = arr[1].reshape(nt, nz, k)
            za = np.stack([a.sum(axis=1) if zi == 0 else a[:, zi] for zi in range(nzone)])
            zs = np.stack([s.sum(axis=1) if zi == 0 else s[:, zi] for zi in range(nzone)])
            ga = np.stack([za[:, :, m].sum(axis=2) for _, _, m in groups], axis=1)
            gs_ = np.stack([zs[:, :, m].sum(axis=2) for _, _, m in groups], axis=1)
            with np.errstate(invalid="ignore", divide="ignore"):
                mean = np.where(ga > 0, gs_ / ga, np.nan)
            tot = np.where(ga > 0, gs_ * factor, np.nan)
            value = np.stack([ga * 1e-6, mean, tot], axis=2)  # (zone, group, statistic, year)
            per_group = 3 * nt
            frames.append(pd.DataFrame({
                "zone": np.repeat(np.asarray(zone_names, dtype=object), ng * per_group),
                "year": np.tile(np.asarray(years), nzone * ng * 3),
                "class": np.tile(np.repeat(np.asarray([g[0] for g in groups], dtype=np.int64),
                                           per_group), nzone),
                "class_name": np.tile(np.repeat(np.asarray([g[1] for g in groups],
                                                           dtype=object), per_group), nzone),
                "variable": v,
                "statistic": np.tile(np.repeat(stats, nt), nzone * ng),
                "units": np.tile(np.repeat(np.asarray(["km2", units, tunits], dtype=object),
                                           nt), nzone * ng),
                "value": value.reshape(-1)}))
        out = pd.concat(frames, ignore_index=True)
        out.attrs["landcover_attribution"] = attribution
        return out

    return sums, finish


def _multi_year(series: pd.DataFrame, prefix: str = "") -> pd.DataFrame:
    """Multi-year statistics of a :func:`class_series` table: mean class area [km2], the
    pooled mean Σ_t Σ A·F / Σ_t Σ A [units of F] and the mean annual total."""
    keys = ["zone", "class", "class_name", "variable"]
    a = series[series.statistic == "area"]
    m = series[series.statistic == "mean"]
    t = series[series.statistic == "total"]
    w = m.merge(a[[*keys, "year", "value"]], on=[*keys, "year"], suffixes=("", "_area"))
    w["wsum"] = w["value"] * w["value_area"]
    w = w[w["value"].notna()]
    pooled = w.groupby(keys, sort=False).agg(wsum=("wsum", "sum"),
                                             area=("value_area", "sum"),
                                             units=("units", "first")).reset_index()
    pooled["value"] = pooled["wsum"] / pooled["area"].where(pooled["area"] > 0)
    out = [a.groupby(keys, sort=False)["value"].mean().reset_index().assign(
               statistic="area", units="km2"),
           pooled[[*keys, "units", "value"]].assign(statistic=f"{prefix}multi_year_mean"),
           t.groupby(keys, sort=False).agg(value=("value", "mean"),
                                           units=("units", "first")).reset_index().assign(
               statistic=f"{prefix}multi_year_mean_total")]
    if prefix:
        out = out[1:]
    return pd.concat(out, ignore_index=True)[[*keys, "statistic", "units", "value"]]


def _class_trends(series: pd.DataFrame, min_valid: int | None) -> pd.DataFrame:
    """OLS and Sen/Mann–Kendall trends (docs/methods.md §6.1–6.3) of every per-class annual mean
    series of a :func:`class_series` table."""
    import numpy as np
    import xarray as xr

    from ..errors import InsufficientDataError, InvalidArgumentError
    from ..stats import mann_kendall, ols_trend

    keys = ["zone", "class", "class_name", "variable"]
    m = series[series.statistic == "mean"]
    if m.empty:
        return pd.DataFrame()
    wide = m.set_index([*keys, "year"])["value"].unstack("year")
    units = m.groupby(keys, sort=False)["units"].first().reindex(wide.index)
    years = wide.columns.to_numpy()
    da = xr.DataArray(wide.to_numpy(dtype=float), dims=("group", "time"),
                      coords={"time": pd.to_datetime([f"{y}-01-01" for y in years])})
    try:
        ols = ols_trend(da, "time", min_valid=min_valid).compute()
        mk = mann_kendall(da, "time", min_valid=min_valid).compute()
    except (InsufficientDataError, InvalidArgumentError):
        return pd.DataFrame()
    slope_units = [f"{u} yr-1" if not str(u).endswith("yr-1") else
                   str(u).replace("yr-1", "yr-2") for u in units]
    rows = []
    idx = wide.index.to_frame(index=False)
    for stat, arr, u in (("ols_slope", ols["slope"], slope_units), ("ols_p", ols["p"], "1"),
                         ("ols_r2", ols["r2"], "1"), ("sen_slope", mk["slope"], slope_units),
                         ("mk_z", mk["z"], "1"), ("mk_p", mk["p"], "1"),
                         ("n_years", ols["n"], "1")):
        rows.append(idx.assign(statistic=stat, units=u,
                               value=np.asarray(arr.values, dtype=float)))
    return pd.concat(rows, ignore_index=True)


@register_analysis
class LandcoverSummary(Analysis):
    name = "landcover_summary"
    title = "NPP, Rh and NEP by land-cover class"
    description = ("Per land-cover class (7-class scheme of seed 001 or 8-class of seed 000): "
                   "class area, area-weighted mean and total of NPP, Rh and NEP per year and "
                   "over the years (annual and growing season, total and per-month mean), OLS "
                   "and Sen trends of the per-class series, per zone; each year's fluxes in "
                   "that year's class (or a reference year's).")
    requires = ("annual", "landcover", "area")
    default = True
    order = 20

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variables: list[Literal["npp", "rh", "nep"]] = Field(
            default_factory=lambda: list(_VARS))
        scheme: str = Field("7class", description="target classes: 7class (001), 8class "
                                                  "(000, with shrub) or a column of table")
        table: str | None = Field(None, description="user reclassification table (CSV)")
        overrides: dict[int, str] | None = Field(
            None, description="source code -> class name, e.g. {8: forest}")
        reference_year: int | Literal["first", "last"] | None = Field(
            None, description="None: each year's fluxes in that year's class; a year (or "
                              "first/last): every year in the classes of that map")
        exclude: list[str] = Field(
            default_factory=lambda: ["barren"],
            description="classes left out of the 'without' aggregate (e.g. barren)")
        total_units: Literal["Gg C", "Tg C", "Pg C"] = "Tg C"
        trend_min_years: int | None = Field(
            None, ge=3, description="least valid years of a trend (default max(10, 0.8 n))")

    def check(self, study, options):
        from ..cube.landcover import TARGETS

        if options.scheme not in TARGETS and options.table is None:
            from ..errors import InputError

            raise InputError(f"analyses.landcover_summary.scheme '{options.scheme}' is "
                             f"neither {' nor '.join(TARGETS)}; give table: with a column of "
                             "that name")
        return []

    def run(self, ctx, options) -> AnalysisResult:
        from ..cube import reclassify
        from ..cube.landcover import landcover_at

        res = AnalysisResult()
        src = getattr(ctx.study, "landcover_scheme", "igbp") if ctx.study else "igbp"
        table = str(ctx.resolve(options.table)) if options.table else None
        area = ctx.area
        zones = ctx.zones()
        nmonths = len(ctx.growing_season_months)
        attribution = None
        # the class sums of every combination and product in one pass over the cubes
        plan = []
        for exp, combo in ctx.runs():
            inputs = ctx.inputs(exp)
            annual = ctx.cube("annual", combo, exp)
            if annual is None or "landcover" not in inputs:
                continue
            classes = reclassify(inputs["landcover"], scheme=src, to=options.scheme,
                                 overrides=options.overrides, table=table)
            mask = inputs.get("region_mask")
            exclude = [c for c in options.exclude if c in classes.attrs["flag_meanings"].split()]
            for product in ("annual", "growing_season"):
                ds = annual if product == "annual" else ctx.cube("growing_season", combo, exp)
                if ds is None:
                    continue
                cl = landcover_at(classes, ds["time"], reference_year=options.reference_year)
                if mask is not None:
                    attrs = dict(cl.attrs)
                    cl = cl.where(mask.astype(bool), 0).assign_attrs(attrs)
                attribution = cl.attrs.get("landcover_attribution")
                plan.append((exp, combo, product, attribution, _class_plan(
                    ds, cl, area, variables=options.variables, zones=zones, exclude=exclude,
                    total_units=options.total_units, region=ctx.zone)))
        import dask

        (computed,) = dask.compute([p[-1][0] for p in plan])
        per_run: dict = {}
        for (exp, combo, product, attr, (_, finish)), sums in zip(plan, computed):
            per_run.setdefault((exp, combo), {})[product] = (attr, finish(sums))
        for (exp, combo), out in per_run.items():
            keys = dict(experiment=exp, combination=combo, scheme=options.scheme)
            attribution = out["annual"][0]
            out = {k: v[1] for k, v in out.items()}
            keys["landcover"] = attribution
            ser = out["annual"]
            multi = _multi_year(ser)
            if "growing_season" in out:
                g = out["growing_season"]
                gm = _multi_year(g, prefix="gs_")
                pm = gm[gm.statistic == "gs_multi_year_mean"].assign(
                    statistic="gs_monthly_mean", value=lambda d: d["value"] / nmonths,
                    units=lambda d: d["units"].map(lambda u: f"{u} month-1"))
                multi = pd.concat([multi, gm, pm], ignore_index=True)
                gsm = g[g.statistic == "mean"].assign(
                    statistic="monthly_mean", value=lambda d: d["value"] / nmonths,
                    units=lambda d: d["units"].map(lambda u: f"{u} month-1"))
                res.add_table("landcover_growing_season", tidy(
                    pd.concat([g.replace({"statistic": {"mean": "season_mean",
                                                        "total": "season_total"}}), gsm],
                              ignore_index=True), **keys))
            res.add_table("landcover_nep", tidy(multi, **keys))
            res.add_table("landcover_annual", tidy(ser, **keys))
            tr = _class_trends(ser, options.trend_min_years)
            if not tr.empty:
                res.add_table("landcover_trends", tidy(tr, **keys))
        self._report(ctx, res, options, attribution)
        return res

    def _report(self, ctx, res, options, attribution) -> None:
        import numpy as np

        sec = res.section(self)
        tab = res.tables.get("landcover_nep")
        if tab is None:
            sec.text("No land-cover input: nothing to summarise.")
            return
        how = ("each year's fluxes in that year's land-cover class" if attribution ==
               "year of each step" else f"classes of the {attribution}")
        sec.text(f"Land cover reclassified to the {options.scheme} scheme; {how}. Means are "
                 "area-weighted over the valid pixels of each class (Σ F·A / Σ A, "
                 "carbonsink docs/methods.md §1.6); multi-year means pool all years, "
                 "totals are mean annual totals. "
                 "Class 0 rows are aggregates over all classes and without "
                 f"{', '.join(options.exclude) or '(none)'}.")
        t = tab[(tab.zone == ctx.zone) & (tab.variable == "nep")]
        view = t[t.statistic == "multi_year_mean"].pivot_table(
            index="class_name", columns="combination", values="value", sort=False)
        if not view.empty:
            u = t[t.statistic == "multi_year_mean"]["units"].iloc[0]
            sec.table(view.reset_index(), "landcover_nep",
                      caption=f"Multi-year mean annual NEP per class [{u}]")
        gsv = t[t.statistic == "gs_monthly_mean"]
        if not gsv.empty:
            sec.table(gsv.pivot_table(index="class_name", columns="combination",
                                      values="value", sort=False).reset_index(),
                      "landcover_nep", caption="Growing-season NEP per month per class "
                      f"[{gsv['units'].iloc[0]}] (seed 000 reports forest 84.81, cropland "
                      "46.41, grassland 32.95)")
        first = tab["combination"].iloc[0]
        area_v = tab[(tab.zone == ctx.zone) & (tab.statistic == "area") & (tab["class"] > 0) &
                     (tab.variable == "nep") & (tab.combination == first)]
        from ..report.figures import new_figure

        if not area_v.empty:
            fig, ax = new_figure((7, 3.6))
            ax.bar(area_v["class_name"], area_v["value"] / 1e4, color="#4a7ab0")
            ax.set_ylabel("mean class area [10$^4$ km$^2$]")
            ax.tick_params(axis="x", labelrotation=30, labelsize=8)
            ax.set_title("Class areas (mean over the years)", fontsize=10)
            res.add_figure("landcover_class_area", fig)
            sec.figure("landcover_class_area", "Mean class area over the years (pixels with "
                       "valid NEP)")
        ann = res.tables.get("landcover_annual")
        trs = res.tables.get("landcover_trends")
        if ann is not None:
            s = ann[(ann.zone == ctx.zone) & (ann.variable == "nep") & (ann.statistic == "mean")
                    & (ann.combination == first)]
            fig, ax = new_figure((7.5, 4.2))
            for i, (name, grp) in enumerate(s.groupby("class_name", sort=False)):
                if grp["value"].isna().all():
                    continue
                line, = ax.plot(grp["year"], grp["value"], marker="o", ms=2.5, lw=1.1,
                                label=name)
                if trs is not None:
                    sl = trs[(trs.zone == ctx.zone) & (trs.variable == "nep") &
                             (trs.class_name == name) & (trs.combination == first)]
                    slope = sl.loc[sl.statistic == "ols_slope", "value"]
                    if len(slope) and np.isfinite(slope.iloc[0]):
                        yy = grp["year"].to_numpy(float)
                        vv = grp["value"].to_numpy(float)
                        ok = np.isfinite(vv)
                        b = slope.iloc[0]
                        a0 = vv[ok].mean() - b * yy[ok].mean()
                        ax.plot(yy, a0 + b * yy, ls="--", lw=0.8, color=line.get_color())
            ax.set_xlabel("year")
            from matplotlib.ticker import MaxNLocator
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
            ax.set_ylabel("NEP [g C m$^{-2}$ yr$^{-1}$]")
            ax.legend(fontsize=7, ncol=3, frameon=False)
            ax.set_title(f"Annual NEP per land-cover class ({first}), OLS trends dashed",
                         fontsize=10)
            if ctx.synthetic:
                from ..report.figures import _synthetic

                _synthetic(ax)
            res.add_figure("landcover_class_series", fig)
            sec.figure("landcover_class_series", "Area-weighted annual NEP per class with "
                       "OLS trend lines")
        if trs is not None and not trs.empty:
            tv = trs[(trs.zone == ctx.zone) & (trs.variable == "nep") &
                     trs.statistic.isin(["ols_slope", "ols_p", "sen_slope", "mk_p"])]
            tv = tv.pivot_table(index=["combination", "class_name"], columns="statistic",
                                values="value", sort=False).reset_index()
            sec.table(tv, "landcover_trends", caption="Trends of the per-class annual NEP "
                      "[g C m⁻² yr⁻²] (seed 001: forest 8.5469, wetland 3.4486, urban 2.7333, "
                      "cropland 1.9699, grassland 1.7324)")
