"""Carbon-sink carrying capacity (CSCC), peak year, potential and saturation (docs/methods.md §8.1,
paper 004) as functions and a registered analysis.

Per pixel over the record (NaN-aware)::

    CSCC(x)        = max_y NPP(x, y)
    peak_year(x)   = first year attaining the maximum
    PCS(x, y)      = CSCC(x) - NPP(x, y)          (>= 0)
    potential_%    = 100 * PCS / CSCC
    saturation_%   = 100 * NPP / CSCC

A pixel is excluded (NaN in every output) when fewer than ``min_valid_fraction`` of the
years are valid or when NPP <= 0 in every valid year (not vegetated). Regional values are
ratios of area-weighted totals (docs/methods.md §1.6); the PCS share is stated against both
denominators (of CSCC, and as an increase over current NPP).
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError, InvalidArgumentError
from ..regions import summarise
from .base import Analysis, AnalysisResult, CubeProduct, register_analysis, tidy

__all__ = ["carrying_capacity", "capacity_summary", "potential_npp", "saturation_series",
           "Capacity", "MIN_VALID_FRACTION", "CARBON_FRACTION"]

#: g C per g dry matter used to express the Miami / Thornthwaite Memorial NPP as carbon
CARBON_FRACTION = 0.45

#: share of valid years a pixel needs (carbonsink docs/methods.md §8.1)
MIN_VALID_FRACTION = 0.8


def _year_values(da: xr.DataArray, dim: str) -> xr.DataArray:
    """Calendar years of the ``dim`` coordinate (datetime or integer years) as float64."""
    if dim not in da.coords:
        raise InputError(f"'{da.name}' has no '{dim}' coordinate; annual data need one")
    coord = da[dim]
    if np.issubdtype(coord.dtype, np.datetime64) or coord.dtype == object:
        years = coord.dt.year
    else:
        years = coord
    return years.astype("float64")


def carrying_capacity(npp: xr.DataArray, *, min_valid_fraction: float = MIN_VALID_FRACTION,
                      dim: str = "time") -> xr.Dataset:
    """Carrying capacity of annual ``npp`` (time, y, x) [g C m-2 yr-1] (docs/methods.md §8.1).

    Returns a Dataset with

    * ``cscc`` (y, x): maximum over the years (units of ``npp``);
    * ``peak_year`` (y, x): the first year attaining the maximum, **float64 with NaN** on
      excluded pixels (whole calendar years otherwise);
    * ``vegetated`` (y, x, bool): False where NPP <= 0 in every valid year (or no valid year);
    * ``n_valid`` (y, x): number of valid years;
    * ``pcs`` (time, y, x) = cscc - npp, ``potential_percent`` = 100·pcs/cscc and
      ``saturation_percent`` = 100·npp/cscc [%].

    Pixels with fewer than ``min_valid_fraction`` of the years valid, or not vegetated, are
    NaN in ``cscc``, ``peak_year``, ``pcs`` and both percentages. Pure xarray arithmetic:
    lazy for dask input.
    """
    if not isinstance(npp, xr.DataArray):
        raise InvalidArgumentError("carrying_capacity: npp must be an xarray DataArray "
                                   "(time, y, x)")
    if dim not in npp.dims:
        raise InputError(f"carrying_capacity: '{npp.name}' has no '{dim}' dimension "
                         f"(dims {npp.dims})")
    if not 0.0 < float(min_valid_fraction) <= 1.0:
        raise InvalidArgumentError(f"min_valid_fraction must be in (0, 1], got "
                                   f"{min_valid_fraction!r}")
    units = npp.attrs.get("units", "")
    n_years = npp.sizes[dim]
    need = max(1, math.ceil(float(min_valid_fraction) * n_years - 1e-9))
    years = _year_values(npp, dim)

    n_valid = npp.notnull().sum(dim)
    vegetated = (npp > 0).any(dim)
    keep = (n_valid >= need) & vegetated

    cscc = npp.max(dim, skipna=True).where(keep)
    # first year attaining the maximum: the smallest year where npp equals the maximum
    # (time is expected in increasing order; ties resolve to the earliest year)
    at_max = npp == cscc
    peak_year = years.where(at_max).min(dim, skipna=True).where(keep)
    pcs = (cscc - npp).where(keep).transpose(*npp.dims)
    potential = (100.0 * pcs / cscc).transpose(*npp.dims)
    saturation = (100.0 * npp / cscc).where(keep).transpose(*npp.dims)

    base = npp.attrs.get("long_name", npp.name or "NPP")
    cscc.attrs = {"units": units, "long_name": f"carbon-sink carrying capacity (maximum of "
                  f"{base})", "cell_methods": f"{dim}: maximum",
                  "min_valid_fraction": float(min_valid_fraction)}
    peak_year.attrs = {"units": "year", "long_name": "first year attaining the carrying "
                       "capacity", "comment": "float calendar year; NaN on excluded pixels"}
    vegetated.attrs = {"long_name": f"pixel with {base} > 0 in at least one valid year"}
    n_valid.attrs = {"units": "1", "long_name": "number of valid years"}
    pcs.attrs = {"units": units, "long_name": "potential carbon sink (carrying capacity minus "
                 f"{base})"}
    potential.attrs = {"units": "%", "long_name": "potential (PCS as a share of the carrying "
                       "capacity)"}
    saturation.attrs = {"units": "%", "long_name": f"saturation ({base} as a share of the "
                        "carrying capacity)"}
    return xr.Dataset({"cscc": cscc, "peak_year": peak_year, "vegetated": vegetated,
                       "n_valid": n_valid, "pcs": pcs, "potential_percent": potential,
                       "saturation_percent": saturation},
                      attrs={"method": "carbonsink docs/methods.md §8.1 (paper 004)",
                             "min_valid_fraction": float(min_valid_fraction),
                             "min_valid_years": int(need)})


def _select_years(npp: xr.DataArray, years, dim: str) -> list[int]:
    available = [int(y) for y in _year_values(npp, dim).values]
    if years is None:
        return [available[-1]]
    chosen = [int(y) for y in years]
    missing = [y for y in chosen if y not in available]
    if missing:
        raise InvalidArgumentError(f"capacity: year(s) {missing} are not in the record "
                                   f"({available[0]}–{available[-1]})")
    return chosen


def _stack_years(ds: xr.Dataset, npp: xr.DataArray, years: list[int], dim: str,
                 extra: dict[str, xr.DataArray] | None = None) -> xr.DataArray:
    """(year, variable, y, x) stack of CSCC, NPP(y), PCS(y) (and ``extra`` annual layers) on
    the support of each year: pixels with both a CSCC and a valid NPP(y)."""
    cscc = ds["cscc"]
    yr = _year_values(npp, dim).values
    name = str(npp.name or "npp")
    per_year = []
    for y in years:
        n_y = npp.isel({dim: int(np.flatnonzero(yr == y)[0])}, drop=True)
        support = cscc.notnull() & n_y.notnull()
        c_y = cscc.where(support)
        n_y = n_y.where(support)
        layers = [c_y, n_y, c_y - n_y]
        names = ["cscc", name, "pcs"]
        for k, da in (extra or {}).items():
            eyr = _year_values(da, dim).values
            if y in eyr:
                layers.append(da.isel({dim: int(np.flatnonzero(eyr == y)[0])},
                                      drop=True).where(support))
                names.append(k)
        per_year.append(xr.concat([v.drop_vars("spatial_ref", errors="ignore").reset_coords(
            drop=True) for v in layers], dim=pd.Index(names, name="variable"), join="outer"))
    stack = xr.concat(per_year, dim=pd.Index(years, name="year"), join="outer")
    stack.attrs = {"units": npp.attrs.get("units", "")}
    return stack.rename(name)


def capacity_summary(ds: xr.Dataset, npp: xr.DataArray, area: xr.DataArray, *,
                     years=None, units: str = "Tg C", dim: str = "time",
                     zones: xr.DataArray | None = None, region: str = "study area",
                     potential: xr.Dataset | None = None) -> pd.DataFrame:
    """Regional (and per-zone) totals of CSCC, NPP(y) and PCS(y) for ``years`` (default: the
    last year) — the province table of 004 (Table 1).

    Parameters
    ----------
    ds : output of :func:`carrying_capacity` (only ``cscc`` is used).
    npp : the annual data it came from [g C m-2 yr-1].
    area : true pixel areas [m2 or km2].
    years : years of the table (default: the last year of ``npp``).
    units : units of the totals (``"Tg C"`` or ``"Pg C"``; the period of ``npp`` is kept).
    zones : integer label map (y, x), 0 = no zone, names in attr ``zone_names`` (e.g.
        provinces from the study's ``zones:``); adds one block per zone.
    region : name of the whole region in the ``zone`` column.
    potential : annual comparison layers (e.g. :func:`potential_npp`) summarised on the same
        pixels for the years they cover.

    Returns
    -------
    Tidy rows (columns zone, year, variable, statistic, units, value): ``total`` [``units``
    yr-1] and area-weighted ``mean`` [units of npp] of ``cscc``, ``npp``, ``pcs`` (and the
    comparison layers); ``pcs``/``percent_of_cscc`` (potential = PCS_total / CSCC_total),
    ``pcs``/``percent_of_npp`` (increase over current NPP = PCS_total / NPP_total(y)) and
    ``npp``/``percent_of_cscc`` (saturation) [%] (docs/methods.md §8.1). For each year the pixel set
    is the pixels with both a CSCC and a valid NPP(y), so every ratio has the same support.
    Computed by :func:`carbonsink.regions.summarise` (one pass for all zones).
    """
    name = str(npp.name or "npp")
    chosen = _select_years(npp, years, dim)
    extra = {k: potential[k] for k in potential.data_vars} if potential is not None else None
    stack = _stack_years(ds, npp, chosen, dim, extra)
    tab = summarise(stack, area, zones=zones, how=("mean", "total"), units=units,
                    region=region)
    tab = tab[["zone", "year", "variable", "statistic", "units", "value"]]
    totals = tab[tab.statistic == "total"].pivot_table(index=["zone", "year"],
                                                       columns="variable", values="value",
                                                       sort=False, dropna=False)

    def pct(num, den):
        return 100.0 * num / den if np.isfinite(den) and den > 0 else np.nan

    rows = []
    for (zone, y), r in totals.iterrows():
        c, n, p = r.get("cscc", np.nan), r.get(name, np.nan), r.get("pcs", np.nan)
        rows += [
            {"zone": zone, "year": y, "variable": "pcs", "statistic": "percent_of_cscc",
             "units": "%", "value": pct(p, c)},
            {"zone": zone, "year": y, "variable": "pcs", "statistic": "percent_of_npp",
             "units": "%", "value": pct(p, n)},
            {"zone": zone, "year": y, "variable": name, "statistic": "percent_of_cscc",
             "units": "%", "value": pct(n, c)},
        ]
    out = pd.concat([tab, pd.DataFrame(rows)], ignore_index=True)
    order = {z: i for i, z in enumerate(dict.fromkeys(tab.zone))}
    out = out.sort_values(["zone", "year"], key=lambda col: col.map(order) if col.name == "zone"
                          else col, kind="stable")
    out["year"] = out["year"].astype(int)
    return tidy(out.reset_index(drop=True))


def saturation_series(ds: xr.Dataset, npp: xr.DataArray, area: xr.DataArray, *,
                      units: str = "Tg C", dim: str = "time",
                      region: str = "study area") -> pd.DataFrame:
    """Regional saturation 100·NPP_total(y)/CSCC_total(y) [%] for every year (004 Fig. 4A),
    with the totals it comes from (tidy: zone, year, variable, statistic, units, value)."""
    years = [int(y) for y in _year_values(npp, dim).values]
    stack = _stack_years(ds, npp, years, dim)
    tab = summarise(stack, area, how=("total",), units=units, region=region)
    tab = tab[["zone", "year", "variable", "statistic", "units", "value"]]
    name = str(npp.name or "npp")
    tot = tab.pivot_table(index="year", columns="variable", values="value", sort=False)
    sat = pd.DataFrame({"zone": region, "year": tot.index.astype(int), "variable": name,
                        "statistic": "percent_of_cscc", "units": "%",
                        "value": 100.0 * tot[name].to_numpy() / tot["cscc"].to_numpy()})
    return tidy(pd.concat([tab, sat], ignore_index=True))


def _is_annual(da: xr.DataArray, dim: str) -> bool:
    years = _year_values(da, dim).values
    return len(np.unique(years)) == da.sizes[dim]


def potential_npp(tas: xr.DataArray, pr: xr.DataArray, *,
                  carbon_fraction: float = CARBON_FRACTION, dim: str = "time") -> xr.Dataset:
    """Miami and Thornthwaite Memorial potential NPP per year [g C m-2 yr-1] (docs/methods.md §2.5),
    the comparison layers of the carrying capacity (paper 004 §5.1).

    ``tas`` [degC] and ``pr`` [mm month-1 or mm yr-1] are monthly (aggregated with
    :func:`carbonsink.cube.temporal.to_annual`: mean temperature, summed precipitation; a
    year needs all 12 months) or already annual. Returns ``npp_miami`` (Lieth 1972) and
    ``npp_thornthwaite`` (Lieth & Box 1972) = dry matter × ``carbon_fraction`` [g C per g
    DM] (:func:`carbonsink.flux.npp.miami`, :func:`carbonsink.flux.npp.thornthwaite_memorial`).
    Lazy for dask input.
    """
    from ..cube.temporal import to_annual
    from ..flux.npp import miami, thornthwaite_memorial

    if not 0.0 < float(carbon_fraction) <= 1.0:
        raise InvalidArgumentError(f"carbon_fraction must be in (0, 1] g C per g dry matter "
                                   f"(0.45 or 0.475 are usual), got {carbon_fraction!r}")
    t = tas if _is_annual(tas, dim) else to_annual(tas, how="mean", dim=dim)
    r = pr if _is_annual(pr, dim) else to_annual(pr, how="sum", dim=dim)
    t, r = xr.align(t, r, join="inner")
    if t.sizes[dim] == 0:
        raise InputError("potential_npp: tas and pr have no year in common")
    out = xr.Dataset({
        "npp_miami": miami(t, r, carbon_fraction=carbon_fraction),
        "npp_thornthwaite": thornthwaite_memorial(t, r, carbon_fraction=carbon_fraction)})
    out["npp_miami"].attrs["long_name"] = "potential NPP, Miami model (Lieth 1972)"
    out["npp_thornthwaite"].attrs["long_name"] = ("potential NPP, Thornthwaite Memorial model "
                                                  "(Lieth & Box 1972)")
    out.attrs["carbon_fraction"] = float(carbon_fraction)
    return out


def _potential_of(ctx, experiment, npp, carbon_fraction):
    """Annual Miami / Thornthwaite Memorial layers on the years of ``npp`` when the study has
    tas and pr inputs, else None."""
    inputs = ctx.inputs(experiment)
    if "tas" not in inputs or "pr" not in inputs:
        return None
    pot = potential_npp(inputs["tas"], inputs["pr"], carbon_fraction=carbon_fraction)
    years = [y for y in _year_values(pot["npp_miami"], "time").values.astype(int)
             if y in set(_year_values(npp, "time").values.astype(int))]
    if not years:
        return None
    keep = np.isin(_year_values(pot["npp_miami"], "time").values.astype(int), years)
    return pot.isel(time=np.flatnonzero(keep))


@register_analysis
class Capacity(Analysis):
    name = "capacity"
    title = "Carbon-sink carrying capacity"
    description = ("Per-pixel carrying capacity (maximum annual NPP over the record), the first "
                   "year reaching it, the potential carbon sink and the saturation "
                   "(docs/methods.md §8.1, paper 004), with regional and per-zone totals and the "
                   "Miami / Thornthwaite Memorial potential NPP for comparison.")
    requires = ("annual", "area")
    order = 70
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variable: Literal["npp", "nep"] = Field("npp", description="annual variable")
        min_valid_fraction: float = Field(MIN_VALID_FRACTION, gt=0.0, le=1.0,
                                          description="share of valid years a pixel needs")
        years: list[int] | None = Field(None, description="years of the regional table "
                                                           "(default: the last year)")
        units: Literal["Tg C", "Pg C"] = Field("Tg C", description="units of the totals")
        potential: bool = Field(True, description="add Miami / Thornthwaite Memorial "
                                                  "potential NPP when tas and pr are inputs")
        carbon_fraction: float = Field(CARBON_FRACTION, gt=0.0, le=1.0,
                                       description="g C per g dry matter of the potential "
                                                   "NPP models")

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import map_figure, timeseries_figure

        res = AnalysisResult()
        sec = res.section(self)
        v = options.variable
        last = None
        zones = ctx.zones()
        multi = len(ctx.experiments) > 1
        has_potential = False
        for exp, combo, da in ctx.variable_runs("annual", v, "capacity"):
            ds = carrying_capacity(da, min_valid_fraction=options.min_valid_fraction)
            last = int(_year_values(da, "time").values[-1])
            pot = _potential_of(ctx, exp, da, options.carbon_fraction) if options.potential \
                else None
            layers = {
                "cscc": ds["cscc"], "peak_year": ds["peak_year"],
                "potential_percent": ds["potential_percent"].isel(time=-1, drop=True),
                "saturation_percent": ds["saturation_percent"].isel(time=-1, drop=True)}
            maps = ["cscc", "peak_year", "potential_percent"]
            if pot is not None:
                has_potential = True
                for k in pot.data_vars:
                    layers[f"{k}_mean"] = pot[k].mean("time").where(ds["cscc"].notnull())
                    layers[f"{k}_mean"].attrs = {
                        **pot[k].attrs, "long_name": pot[k].attrs["long_name"] + ", mean over "
                        f"{int(pot.time.dt.year[0])}–{int(pot.time.dt.year[-1])}",
                        "cell_methods": "time: mean"}
                    maps.append(f"{k}_mean")
            cube = xr.Dataset(layers, attrs={**ds.attrs, "variable": v,
                                             "year_of_percentages": last})
            written = ctx.store(CubeProduct(
                f"{v}_capacity", cube, combination=combo, experiment=exp,
                maps=tuple(maps), map_prefix=f"{v}_"))
            fixed = dict(experiment=exp, combination=combo)
            res.add_table("capacity", tidy(
                capacity_summary(written, da, ctx.area, years=options.years,
                                 units=options.units, zones=zones, region=ctx.zone,
                                 potential=pot), **fixed))
            sat = tidy(saturation_series(written, da, ctx.area, units=options.units,
                                         region=ctx.zone), **fixed)
            res.add_table("capacity_saturation", sat)
            label = f"{exp}/{combo}" if multi else combo
            stem = f"{exp}_{combo}" if multi else combo
            for var, cmap, center, what in (
                    ("cscc", "YlGn", False, f"carrying capacity (maximum annual {v.upper()})"),
                    ("peak_year", "viridis", False, "first year reaching the carrying capacity"),
                    ("potential_percent", "YlOrBr", False,
                     f"potential (PCS as a share of CSCC) in {last}")):
                fname = f"{stem}_{v}_{var}_map"
                res.add_figure(fname, map_figure(written[var].compute(),
                                                 title=f"{label}: {what}", cmap=cmap,
                                                 center_zero=center, synthetic=ctx.synthetic))
                sec.figure(fname, f"{label}: {what}")
            series = sat[sat.statistic == "percent_of_cscc"].assign(
                series=f"{label}: {v.upper()} / CSCC")
            fname = f"{stem}_{v}_saturation"
            res.add_figure(fname, timeseries_figure(
                series, by="series", title=f"{label}: saturation (regional {v.upper()} total "
                "as a share of the CSCC total)", ylabel="saturation [%]",
                synthetic=ctx.synthetic))
            sec.figure(fname, f"{label}: regional saturation per year")
        tab = res.tables.get("capacity")
        if tab is None:
            sec.text("No annual cubes were found for this study.")
            return res
        from ..report.sections import Text

        sec.blocks.insert(0, Text(
            f"Per pixel, the carrying capacity (CSCC) is the maximum annual {v.upper()} over the "
            f"record and the potential carbon sink PCS(y) = CSCC − {v.upper()}(y) (carbonsink "
            f"docs/methods.md §8.1, paper 004); pixels with fewer than "
            f"{options.min_valid_fraction:.0%} valid "
            f"years or {v.upper()} ≤ 0 in every year are excluded. Regional and per-zone values "
            "are ratios of area-weighted totals; the PCS is stated both as a share of CSCC and "
            f"as an increase over {v.upper()}(y). Map percentages refer to {last}."
            + (f" Miami and Thornthwaite Memorial potential NPP (carbon fraction "
               f"{options.carbon_fraction} g C per g dry matter) are given for comparison."
               if has_potential else "")))
        keys = ["experiment", "combination", "zone", "year"] if multi else \
            ["combination", "zone", "year"]
        region = tab[tab.zone == ctx.zone]
        view = region[region.statistic != "mean"].copy()
        view["column"] = view["variable"] + " " + view["statistic"] + " [" + view["units"] + "]"
        view = view.pivot_table(index=keys, columns="column", values="value",
                                sort=False).reset_index()
        sec.table(view, "capacity", caption="Regional carrying capacity, NPP and potential "
                                            "carbon sink (totals and ratios of totals)")
        if zones is not None and (tab.zone != ctx.zone).any():
            pick = tab[((tab.statistic == "total") & tab.variable.isin(["cscc", v, "pcs"]))
                       | ((tab.statistic == "percent_of_cscc") & (tab.variable == "pcs"))]
            pick = pick.copy()
            pick["column"] = np.where(pick.statistic == "total",
                                      pick.variable.str.upper() + " [" + pick.units + "]",
                                      "potential [%]")
            prov = pick.pivot_table(index=keys, columns="column", values="value",
                                    sort=False).reset_index()
            sec.table(prov, "capacity", caption="Carrying capacity, current "
                      f"{v.upper()} and potential carbon sink per zone (analogue of 004 "
                      "Table 1)")
        return res
