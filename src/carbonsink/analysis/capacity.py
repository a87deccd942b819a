"""Carbon-sink carrying capacity (CSCC), peak year, potential and saturation (METHODS §8.1,
paper 004) as functions and a registered analysis.

Per pixel over the record (NaN-aware)::

    CSCC(x)        = max_y NPP(x, y)
    peak_year(x)   = first year attaining the maximum
    PCS(x, y)      = CSCC(x) - NPP(x, y)          (>= 0)
    potential_%    = 100 * PCS / CSCC
    saturation_%   = 100 * NPP / CSCC

A pixel is excluded (NaN in every output) when fewer than ``min_valid_fraction`` of the
years are valid or when NPP <= 0 in every valid year (not vegetated). Regional values are
ratios of area-weighted totals (METHODS §1.6); the PCS share is stated against both
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
from ..regions import regional_mean, regional_total
from .base import Analysis, AnalysisResult, CubeProduct, register_analysis, tidy

__all__ = ["carrying_capacity", "capacity_summary", "Capacity", "MIN_VALID_FRACTION"]

#: share of valid years a pixel needs (METHODS §8.1)
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
    """Carrying capacity of annual ``npp`` (time, y, x) [g C m-2 yr-1] (METHODS §8.1).

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
                      attrs={"method": "METHODS §8.1 (paper 004)",
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


def capacity_summary(ds: xr.Dataset, npp: xr.DataArray, area: xr.DataArray, *,
                     years=None, units: str = "Tg C", dim: str = "time") -> pd.DataFrame:
    """Regional totals of CSCC, NPP(y) and PCS(y) for ``years`` (default: the last year).

    ``ds`` is the output of :func:`carrying_capacity` (only ``cscc`` is used), ``npp`` the
    annual data it came from, ``area`` the true pixel areas. For each year the pixel set is
    the pixels with both a CSCC and a valid NPP(y), so every ratio has the same support.

    Tidy rows (key column ``year``): ``total`` [``units`` yr-1] and area-weighted ``mean``
    [units of npp] of ``cscc``, ``npp`` and ``pcs``; ``pcs``/``percent_of_cscc`` (potential,
    PCS_total / CSCC_total), ``pcs``/``percent_of_npp`` (increase over current NPP,
    PCS_total / NPP_total(y)) and ``npp``/``percent_of_cscc`` (saturation) [%].
    """
    import dask

    cscc = ds["cscc"]
    yr = _year_values(npp, dim)
    name = str(npp.name or "npp")
    lazy = {}
    for y in _select_years(npp, years, dim):
        n_y = npp.isel({dim: int(np.flatnonzero(yr.values == y)[0])}, drop=True)
        support = cscc.notnull() & n_y.notnull()
        c_y = cscc.where(support)
        n_y = n_y.where(support)
        p_y = c_y - n_y
        for v, da in (("cscc", c_y), (name, n_y), ("pcs", p_y)):
            da.attrs = {"units": npp.attrs.get("units")}
            da.name = v
            lazy[(y, v, "total")] = regional_total(da, area, units=units)
            lazy[(y, v, "mean")] = regional_mean(da, area)
    keys = list(lazy)
    values = dask.compute(*[lazy[k] for k in keys])
    got = {k: float(v) for k, v in zip(keys, values)}
    total_units = {k: lazy[k].attrs.get("units", "") for k in keys if k[2] == "total"}
    rows = []
    mean_units = npp.attrs.get("units", "")
    for y in dict.fromkeys(k[0] for k in keys):
        for v in ("cscc", name, "pcs"):
            rows.append({"year": y, "variable": v, "statistic": "total",
                         "units": total_units[(y, v, "total")], "value": got[(y, v, "total")]})
            rows.append({"year": y, "variable": v, "statistic": "mean", "units": mean_units,
                         "value": got[(y, v, "mean")]})
        c, n, p = got[(y, "cscc", "total")], got[(y, name, "total")], got[(y, "pcs", "total")]
        pct = (lambda num, den: 100.0 * num / den if np.isfinite(den) and den > 0 else np.nan)
        rows += [
            {"year": y, "variable": "pcs", "statistic": "percent_of_cscc", "units": "%",
             "value": pct(p, c)},
            {"year": y, "variable": "pcs", "statistic": "percent_of_npp", "units": "%",
             "value": pct(p, n)},
            {"year": y, "variable": name, "statistic": "percent_of_cscc", "units": "%",
             "value": pct(n, c)},
        ]
    return tidy(pd.DataFrame(rows))


@register_analysis
class Capacity(Analysis):
    name = "capacity"
    title = "Carbon-sink carrying capacity"
    description = ("Per-pixel carrying capacity (maximum annual NPP over the record), the first "
                   "year reaching it, the potential carbon sink and the saturation "
                   "(METHODS §8.1, paper 004), with regional totals.")
    requires = ("annual", "area")

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variable: Literal["npp", "nep"] = Field("npp", description="annual variable")
        min_valid_fraction: float = Field(MIN_VALID_FRACTION, gt=0.0, le=1.0,
                                          description="share of valid years a pixel needs")
        years: list[int] | None = Field(None, description="years of the regional table "
                                                           "(default: the last year)")

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import map_figure

        res = AnalysisResult()
        sec = res.section(self)
        v = options.variable
        last = None
        for exp, combo in ctx.runs():
            annual = ctx.cube("annual", combo, exp)
            if annual is None:
                continue
            if v not in annual:
                raise InputError(f"capacity: the annual cube of '{combo}' has no variable "
                                 f"'{v}' (found {list(annual.data_vars)})")
            da = annual[v]
            ds = carrying_capacity(da, min_valid_fraction=options.min_valid_fraction)
            last = int(_year_values(da, "time").values[-1])
            cube = xr.Dataset({
                "cscc": ds["cscc"], "peak_year": ds["peak_year"],
                "potential_percent": ds["potential_percent"].isel(time=-1, drop=True),
                "saturation_percent": ds["saturation_percent"].isel(time=-1, drop=True)},
                attrs={**ds.attrs, "variable": v, "year_of_percentages": last})
            written = ctx.store(CubeProduct(
                f"{v}_capacity", cube, combination=combo, experiment=exp,
                maps=("cscc", "peak_year", "potential_percent"), map_prefix=f"{v}_"))
            res.add_table("capacity", tidy(
                capacity_summary(written, da, ctx.area, years=options.years),
                experiment=exp, combination=combo, zone=ctx.zone))
            multi = len(ctx.experiments) > 1
            label = f"{exp}/{combo}" if multi else combo
            fname = f"{exp}_{combo}_{v}_cscc_map" if multi else f"{combo}_{v}_cscc_map"
            res.add_figure(fname, map_figure(
                written["cscc"].compute(), title=f"{label}: carrying capacity of annual "
                f"{v.upper()}", cmap="YlGn", center_zero=False, synthetic=ctx.synthetic))
            sec.figure(fname, f"{label}: carrying capacity (maximum annual {v.upper()})")
        tab = res.tables.get("capacity")
        if tab is None:
            sec.text("No annual cubes were found for this study.")
            return res
        from ..report.sections import Text

        sec.blocks.insert(0, Text(
            f"Per pixel, the carrying capacity (CSCC) is the maximum annual {v.upper()} over the "
            f"record and the potential carbon sink PCS(y) = CSCC − {v.upper()}(y) (METHODS "
            f"§8.1); pixels with fewer than {options.min_valid_fraction:.0%} valid years or "
            f"{v.upper()} ≤ 0 in every year are excluded. Regional values are ratios of "
            "area-weighted totals; the PCS is stated both as a share of CSCC and as an increase "
            f"over {v.upper()}(y). Map percentages refer to {last}."))
        keys = ["experiment", "combination", "year"] if len(ctx.experiments) > 1 else \
            ["combination", "year"]
        view = tab[tab.statistic != "mean"].copy()
        view["column"] = view["variable"] + " " + view["statistic"] + " [" + view["units"] + "]"
        view = view.pivot_table(index=keys, columns="column", values="value",
                                sort=False).reset_index()
        sec.table(view, "capacity", caption="Regional carrying capacity, NPP and potential "
                                            "carbon sink (totals and ratios of totals)")
        return res
