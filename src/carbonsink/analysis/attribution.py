"""Attribution of NEP trends to climate factors and human activity (seed paper 000).

Trend decomposition (000 Eq. 21–22; docs/methods.md §7.1), per pixel on annual or growing-season
series::

    dNEP/dt = Σ_k (∂NEP/∂X_k)·(dX_k/dt) + H_con
    X_con,k = (∂NEP/∂X_k)·(dX_k/dt),   C_con = Σ_k X_con,k,   H_con = dNEP/dt − C_con

``dNEP/dt`` and ``dX_k/dt`` are OLS slopes in time (carbonsink docs/methods.md §6.1).

* ``mode="recommended"`` (default): ``∂NEP/∂X_k = b_k`` of the per-pixel multiple linear
  regression ``NEP_t = b_0 + Σ_k b_k X_k,t + e_t`` in raw units
  (:func:`carbonsink.stats.multiple_regression`), so X_con,k is in g C m-2 yr-2 and
  ``Σ_k X_con,k + H_con = dNEP/dt`` exactly; C_con is the signed sum.
* ``mode="paper"`` (replication of 000 only): every series is z-scored, the Pearson r of
  NEP with X_k is used as the "partial derivative" (000's claim, dimensionally invalid and
  wrong for collinear factors), ``X_con,k = r_k·dz_X/dt`` and ``dNEP/dt`` is the slope of the
  z-scored NEP; the regional contribution degree of the climate factors is the **sum of
  absolute values** of the factor contributions, as 000's Table 3 was computed.

Pixels are classified by the six rules of 000's Table 2 (:func:`table2_classes`), with
class 0 for exact zeros. Regional contribution rates (Table 3 analogue) are computed from
area-weighted means of the per-pixel contributions (true pixel areas), for the region, for
every zone and, with a land-cover input, without the excluded classes (e.g. barren land).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InputError, InvalidArgumentError
from ..regions import summarise
from ..stats import CLASS_FILL, class_area_shares, multiple_regression, ols_trend, pearson
from .base import Analysis, AnalysisResult, CubeProduct, register_analysis, tidy
from ._zonal import as_scalar, safe_div
from .sink_classes import class_share_table

__all__ = ["Attribution", "attribute", "table2_classes", "climate_human_shares",
           "contribution_rates", "paper_contribution_rates", "regional_contributions",
           "sign_area_shares", "class_map_figure", "TABLE2_CLASSES", "DEFAULT_FACTORS"]

#: climate factors of seed 000 (precipitation, temperature, solar radiation, PET)
DEFAULT_FACTORS = ("pr", "tas", "sol", "pet")

#: codes and names of the classes of 000 Table 2 / Fig. 12 (0: an exact zero)
TABLE2_CLASSES = {
    0: "unclassified (exact zero)",
    1: "increase, climate and human",
    2: "increase, climate dominated",
    3: "increase, human dominated",
    4: "decrease, climate and human",
    5: "decrease, climate dominated",
    6: "decrease, human dominated",
}

_CLASS_COLOURS = ("#bdbdbd", "#1a9850", "#91cf60", "#d9ef8b", "#d73027", "#fc8d59", "#fee08b")

_FACTOR_LABELS = {"pr": "precipitation", "tas": "temperature", "sol": "solar radiation",
                  "pet": "PET", "eet": "actual evapotranspiration", "hurs": "relative humidity",
                  "sund": "sunshine duration"}


# --------------------------------------------------------------------------- arithmetic


def _is_xr(*xs) -> bool:
    return any(isinstance(x, xr.DataArray) for x in xs)


def _classes_np(d, c, h):
    d = np.asarray(d, dtype=np.float64)
    c = np.asarray(c, dtype=np.float64)
    h = np.asarray(h, dtype=np.float64)
    conds = [(d > 0) & (c > 0) & (h > 0), (d > 0) & (c > 0) & (h < 0),
             (d > 0) & (c < 0) & (h > 0), (d < 0) & (c < 0) & (h < 0),
             (d < 0) & (c < 0) & (h > 0), (d < 0) & (c > 0) & (h < 0)]
    out = np.select(conds, [1, 2, 3, 4, 5, 6], 0).astype(np.int8)
    out[np.isnan(d) | np.isnan(c) | np.isnan(h)] = CLASS_FILL
    return out


def table2_classes(dnep_dt, c_con, h_con):
    """Classes of seed paper 000's Table 2 (Fig. 12) from the trend decomposition.

    ========  =====  =====  ==========================  =====
    dNEP/dt   C_con  H_con  dominant                    class
    ========  =====  =====  ==========================  =====
    > 0       > 0    > 0    climate and human           1
    > 0       > 0    < 0    climate                     2
    > 0       < 0    > 0    human                       3
    < 0       < 0    < 0    climate and human           4
    < 0       < 0    > 0    climate                     5
    < 0       > 0    < 0    human                       6
    ========  =====  =====  ==========================  =====

    Any exact zero (and the sign patterns a residual H_con cannot produce) gives class 0
    "unclassified"; NaN gives :data:`carbonsink.stats.CLASS_FILL` (carbonsink docs/methods.md §7.1).

    Parameters
    ----------
    dnep_dt : NEP trend [g C m-2 yr-2] (or z-score units in paper mode).
    c_con : climate contribution C_con (same units).
    h_con : human contribution H_con (same units).

    Returns
    -------
    int8 codes 0–6 of the same shape (a class map with ``flag_values``/labels for
    DataArray input).
    """
    if _is_xr(dnep_dt, c_con, h_con):
        out = xr.apply_ufunc(_classes_np, dnep_dt, c_con, h_con, dask="parallelized",
                             output_dtypes=[np.int8])
        out.name = "class"
        out.attrs = {"flag_values": np.arange(7, dtype=np.int8),
                     "flag_meanings": " ".join(v.replace(",", "").replace("(", "")
                                               .replace(")", "").replace(" ", "_")
                                               for v in TABLE2_CLASSES.values()),
                     "labels": list(TABLE2_CLASSES.values()),
                     "missing_value": np.int8(CLASS_FILL),
                     "long_name": "driver class of the NEP trend (000 Table 2)", "units": "1"}
        out.encoding["_FillValue"] = np.int8(CLASS_FILL)
        return out
    res = _classes_np(dnep_dt, c_con, h_con)
    return int(res) if res.ndim == 0 else res


def _shares_np(d, c, h):
    cls = _classes_np(d, c, h)
    with np.errstate(invalid="ignore", divide="ignore"):
        both = 100.0 * np.asarray(c, np.float64) / (np.asarray(c, np.float64)
                                                     + np.asarray(h, np.float64))
    climate = np.select([np.isin(cls, (1, 4)), np.isin(cls, (2, 5)), np.isin(cls, (3, 6))],
                        [both, 100.0, 0.0], np.nan)
    human = np.where(np.isnan(climate), np.nan, 100.0 - climate)
    return climate, human


def climate_human_shares(dnep_dt, c_con, h_con):
    """Climate and human shares [%] of the NEP trend by the rules of 000's Table 2.

    Classes 1 and 4 (both act in the direction of the trend): climate = 100·C/(C + H),
    human = 100·H/(C + H); classes 2 and 5: 100 / 0; classes 3 and 6: 0 / 100; class 0
    (exact zeros) and missing pixels: NaN.

    Returns
    -------
    (climate, human) in % (DataArrays for DataArray input, floats for scalars).
    """
    if _is_xr(dnep_dt, c_con, h_con):
        climate, human = xr.apply_ufunc(_shares_np, dnep_dt, c_con, h_con, dask="parallelized",
                                        output_dtypes=[np.float64, np.float64],
                                        output_core_dims=[[], []])
        climate.attrs = {"long_name": "climate share of the NEP trend (000 Table 2)",
                         "units": "%"}
        human.attrs = {"long_name": "human share of the NEP trend (000 Table 2)", "units": "%"}
        return climate.rename("climate_share"), human.rename("human_share")
    climate, human = _shares_np(dnep_dt, c_con, h_con)
    return as_scalar(climate), as_scalar(human)


def contribution_rates(x_con: Mapping[str, object], h_con) -> dict:
    """Contribution rates of the recommended (signed) decomposition (docs/methods.md §7.1).

    With ``dNEP/dt = Σ_k X_con,k + H_con`` (exact), each term's rate is its share of the
    trend: ``rate_k = 100·X_con,k / (dNEP/dt)``, ``climate = 100·C_con/(dNEP/dt)`` with the
    signed ``C_con = Σ_k X_con,k``, ``human = 100·H_con/(dNEP/dt)``; the factor rates and the
    human rate add up to 100 %. Rates are NaN where dNEP/dt = 0.

    Parameters
    ----------
    x_con : factor name → X_con,k [g C m-2 yr-2] (floats, arrays or DataArrays).
    h_con : H_con (same units).

    Returns
    -------
    dict with ``dnep_dt``, ``c_con`` (signed sum), ``h_con``, ``rates`` (factor → %),
    ``climate`` and ``human`` [%].
    """
    if not x_con:
        raise InvalidArgumentError("contribution_rates: give at least one factor contribution")
    c = sum(x_con.values())
    d = c + h_con
    return {"dnep_dt": as_scalar(d), "c_con": as_scalar(c), "h_con": as_scalar(h_con),
            "rates": {k: as_scalar(100.0 * safe_div(v, d)) for k, v in x_con.items()},
            "climate": as_scalar(100.0 * safe_div(c, d)), "human": as_scalar(100.0 * safe_div(h_con, d))}


def paper_contribution_rates(x_con: Mapping[str, object], h_con) -> dict:
    """Contribution degrees and rates as seed paper 000's Table 3 computed them (replication).

    000 prints C_con as the signed sum (Eq. 21) but its Table 3 uses the **sum of absolute
    values** of the factor contributions (carbonsink docs/methods.md §7.1)::

        C_abs     = Σ_k |X_con,k|
        rate_k    = 100·X_con,k / C_abs
        climate % = 100·C_abs / (C_abs + H_con),   human % = 100·H_con / (C_abs + H_con)

    E.g. 000's interannual row (barren included), X_con = 0.013, −0.007, −0.029, 0.046 and
    H_con = 0.030: C_abs = 0.095 (signed 0.023), rates 13.68, −7.37, −30.53, 48.42 %,
    climate / human 76.0 / 24.0 %.

    Returns
    -------
    dict with ``c_con`` (C_abs, the paper's climate contribution degree), ``c_con_signed``,
    ``h_con``, ``rates`` (factor → %), ``climate`` and ``human`` [%].
    """
    if not x_con:
        raise InvalidArgumentError("paper_contribution_rates: give at least one factor "
                                   "contribution")
    cabs = sum(abs(v) for v in x_con.values())
    signed = sum(x_con.values())
    tot = cabs + h_con
    return {"c_con": as_scalar(cabs), "c_con_signed": as_scalar(signed), "h_con": as_scalar(h_con),
            "rates": {k: as_scalar(100.0 * safe_div(v, cabs)) for k, v in x_con.items()},
            "climate": as_scalar(100.0 * safe_div(cabs, tot)),
            "human": as_scalar(100.0 * safe_div(h_con, tot))}


# --------------------------------------------------------------------------- per pixel


def _zscore(da: xr.DataArray, dim: str) -> xr.DataArray:
    sd = da.std(dim, ddof=1)
    return (da - da.mean(dim)) / sd.where(sd > 0)


def _driver_items(drivers, factors) -> list[tuple[str, xr.DataArray]]:
    if isinstance(drivers, xr.Dataset):
        names = list(drivers.data_vars)
    elif isinstance(drivers, Mapping):
        names = list(drivers)
    else:
        raise InvalidArgumentError(f"attribute: drivers must be a Dataset or a mapping of "
                                   f"DataArrays, found {type(drivers).__name__}")
    factors = list(factors) if factors is not None else [f for f in DEFAULT_FACTORS
                                                         if f in names]
    missing = [f for f in factors if f not in names]
    if missing or not factors:
        raise InputError(f"attribute: climate factor(s) {missing or list(DEFAULT_FACTORS)} "
                         f"not among the driver series {names}; choose factors from these")
    return [(f, drivers[f]) for f in factors]


def attribute(nep: xr.DataArray, drivers, *, factors: Sequence[str] | None = None,
              mode: Literal["recommended", "paper"] = "recommended", dim: str = "time",
              min_valid: int | None = None, detrend: bool = False,
              ridge: float = 0.0) -> xr.Dataset:
    """Per-pixel trend decomposition of NEP into climate-factor and human contributions.

    Seed paper 000 Eq. 21–22 (carbonsink docs/methods.md §7.1): ``X_con,k = (∂NEP/∂X_k)·(dX_k/dt)``,
    ``C_con = Σ_k X_con,k``, ``H_con = dNEP/dt − C_con`` (residual); classes of 000's Table 2.

    Parameters
    ----------
    nep : annual (or growing-season) NEP ``(time, y, x)`` [g C m-2 yr-1].
    drivers : Dataset or mapping of the climate series on the same years (e.g.
        ``ctx.drivers("annual")``: ``pr`` [mm yr-1], ``tas`` [degC], ...).
    factors : the factors X_k (default those of ``pr, tas, sol, pet`` present).
    mode : ``"recommended"`` — ∂NEP/∂X_k = coefficient of the multiple regression of NEP on
        all factors in raw units (float64), so ``Σ_k X_con,k + H_con = dNEP/dt`` exactly and
        X_con is in the units of dNEP/dt [g C m-2 yr-2]; ``"paper"`` — 000 as published (for
        replication only): z-scored series, Pearson r_k as ∂NEP/∂X_k, X_con,k =
        r_k·dz_X/dt, dNEP/dt the slope of z-scored NEP [yr-1].
    min_valid : least number of complete years per pixel, used by every trend and the
        regression (default ``max(k + 2, ceil(0.8 n))`` for k factors and n years).
    detrend, ridge : passed to :func:`carbonsink.stats.multiple_regression` (recommended mode):
        estimate the sensitivities from detrended anomalies; ridge penalty λ.

    Returns
    -------
    Dataset (y, x): ``dnep_dt``, ``trend_<k>`` (dX_k/dt), ``sens_<k>`` (∂NEP/∂X_k),
    ``xcon_<k>``, ``c_con`` (signed), ``h_con``, ``class`` (Table 2, int8),
    ``climate_share``, ``human_share`` [%], ``rate_<k>`` [%] (recommended:
    100·X_con,k/(dNEP/dt); paper: 100·X_con,k/Σ|X_con|); recommended mode adds ``se_<k>``,
    ``vif_<k>``, ``r2``; paper mode adds ``c_con_abs`` (Σ|X_con,k|).
    """
    if mode not in ("recommended", "paper"):
        raise InvalidArgumentError(f"attribute: mode must be 'recommended' or 'paper', "
                                   f"found {mode!r}")
    items = _driver_items(drivers, factors)
    if min_valid is None:
        min_valid = max(len(items) + 2, int(np.ceil(0.8 * nep.sizes[dim])))
    nep = nep.astype(np.float64)
    xs = {k: v.astype(np.float64) for k, v in items}
    nep_units = nep.attrs.get("units")
    out: dict[str, xr.DataArray] = {}
    if mode == "recommended":
        d = ols_trend(nep, dim, min_valid=min_valid)["slope"]
        reg = multiple_regression(nep, xs, dim, min_valid=min_valid, detrend=detrend,
                                  ridge=ridge)
        trend_units = d.attrs.get("units", "")
        for k, x in xs.items():
            out[f"trend_{k}"] = ols_trend(x, dim, min_valid=min_valid)["slope"]
            sens = reg["coef"].sel(predictor=k, drop=True)
            sens.attrs = {"long_name": f"∂NEP/∂{k} (multiple-regression coefficient)",
                          **({"units": reg["coef"].attrs[f"units_{k}"]}
                             if f"units_{k}" in reg["coef"].attrs else {})}
            out[f"sens_{k}"] = sens
            se = reg["se"].sel(predictor=k, drop=True)
            se.attrs = {"long_name": f"standard error of ∂NEP/∂{k}",
                        **({"units": sens.attrs["units"]} if "units" in sens.attrs else {})}
            out[f"se_{k}"] = se
            out[f"vif_{k}"] = reg["vif"].sel(predictor=k, drop=True).assign_attrs(
                long_name=f"variance inflation factor of {k}", units="1")
        out["r2"] = reg["r2"]
    else:
        zn = _zscore(nep, dim)
        d = ols_trend(zn, dim, min_valid=min_valid)["slope"]
        trend_units = "yr-1"
        for k, x in xs.items():
            out[f"trend_{k}"] = ols_trend(_zscore(x, dim), dim, min_valid=min_valid)["slope"]
            out[f"trend_{k}"].attrs.update(long_name=f"trend of z-scored {k}", units="yr-1")
            out[f"sens_{k}"] = pearson(x, nep, dim, min_valid=min_valid)["r"].assign_attrs(
                long_name=f"Pearson r of NEP and {k} (000's 'partial derivative')", units="1")
    d = d.assign_attrs(long_name="OLS trend of NEP" + (" (z-scored)" if mode == "paper" else ""),
                       units=trend_units)
    xcon = {}
    for k in xs:
        xc = out[f"sens_{k}"] * out[f"trend_{k}"]
        xcon[k] = xc.assign_attrs(long_name=f"contribution of {k} to the NEP trend",
                                  units=trend_units)
    c = sum(xcon.values()).assign_attrs(long_name="climate contribution C_con (signed sum)",
                                        units=trend_units)
    h = (d - c).assign_attrs(long_name="human contribution H_con (residual)", units=trend_units)
    cls = table2_classes(d, c, h)
    climate, human = climate_human_shares(d, c, h)
    ds = xr.Dataset({"dnep_dt": d, **{k: v for k, v in out.items()},
                     **{f"xcon_{k}": v for k, v in xcon.items()}, "c_con": c, "h_con": h,
                     "class": cls, "climate_share": climate, "human_share": human})
    if mode == "paper":
        cabs = sum(abs(v) for v in xcon.values())
        ds["c_con_abs"] = cabs.assign_attrs(long_name="sum of absolute factor contributions "
                                                      "(000 Table 3)", units=trend_units)
        rates = paper_contribution_rates(xcon, h)["rates"]
    else:
        rates = contribution_rates(xcon, h)["rates"]
    for k, r in rates.items():
        ds[f"rate_{k}"] = r.assign_attrs(long_name=f"contribution rate of {k}", units="%")
    ds = ds.drop_vars([v for v in ("predictor",) if v in ds.coords])
    ds.attrs.update(method=("multiple-regression trend decomposition (000 Eq. 21-22, "
                            "docs/methods.md §7.1, recommended)" if mode == "recommended" else
                            "z-scores x Pearson r (000 as published, replication only)"),
                    mode=mode, factors=", ".join(xs), detrend=int(bool(detrend)),
                    ridge=float(ridge))
    if nep_units:
        ds.attrs["nep_units"] = nep_units
    return ds


# --------------------------------------------------------------------------- regional


def regional_contributions(ds: xr.DataArray | xr.Dataset, area: xr.DataArray, *,
                           mode: Literal["recommended", "paper"] = "recommended",
                           zones: xr.DataArray | None = None, region: str = "study area",
                           mask: xr.DataArray | None = None) -> pd.DataFrame:
    """Regional contribution degrees and rates (000 Table 3 analogue) from :func:`attribute`.

    The area-weighted means (true pixel areas) of dNEP/dt, X_con,k and H_con over the pixels
    where all are valid are combined by :func:`contribution_rates` (recommended) or
    :func:`paper_contribution_rates` (``mode="paper"``), for the whole region and per zone.

    Returns
    -------
    Tidy frame: zone, factor (``<k>``, ``climate``, ``human``, ``nep``), statistic
    (``contribution`` in the units of dNEP/dt, ``contribution_rate`` [%]), units, value.
    """
    factors = [v[len("xcon_"):] for v in ds.data_vars if str(v).startswith("xcon_")]
    units = ds["dnep_dt"].attrs.get("units", "")
    valid = ds["dnep_dt"].notnull() & ds["h_con"].notnull()
    means: dict[str, pd.Series] = {}
    for name in ["dnep_dt", "h_con", *[f"xcon_{k}" for k in factors]]:
        df = summarise(ds[name].where(valid), area, zones=zones, how=("mean",), region=region,
                       mask=mask)
        means[name] = df.set_index("zone")["value"]
    zones_order = list(means["dnep_dt"].index)
    rows = []
    for z in zones_order:
        x = {k: float(means[f"xcon_{k}"][z]) for k in factors}
        h = float(means["h_con"][z])
        if mode == "paper":
            r = paper_contribution_rates(x, h)
            cdeg = r["c_con"]
        else:
            r = contribution_rates(x, h)
            cdeg = r["c_con"]
        d = float(means["dnep_dt"][z])
        for k in factors:
            rows.append((z, k, "contribution", units, x[k]))
            rows.append((z, k, "contribution_rate", "%", r["rates"][k]))
        rows += [(z, "climate", "contribution", units, cdeg),
                 (z, "climate", "contribution_rate", "%", r["climate"]),
                 (z, "human", "contribution", units, h),
                 (z, "human", "contribution_rate", "%", r["human"]),
                 (z, "nep", "trend", units, d)]
    return pd.DataFrame(rows, columns=["zone", "factor", "statistic", "units", "value"])


def sign_area_shares(ds: xr.Dataset, area: xr.DataArray,
                     mask: xr.DataArray | None = None) -> pd.DataFrame:
    """Area shares [%] of the pixels where each factor's contribution (and C_con, H_con) is
    positive, negative or zero, relative to the area of pixels with a valid decomposition.

    Returns columns factor, sign (``positive`` | ``negative`` | ``zero``), units, value.
    """
    names = [v for v in ds.data_vars if str(v).startswith("xcon_")] + ["c_con", "h_con"]
    a = area.astype(np.float64)
    valid = ds["h_con"].notnull()
    if mask is not None:
        valid = valid & mask.astype(bool)
    tot = float(a.where(valid).sum())
    rows = []
    for n in names:
        v = ds[n]
        label = n[len("xcon_"):] if n.startswith("xcon_") else n
        for sign, sel in (("positive", v > 0), ("negative", v < 0), ("zero", v == 0)):
            share = 100.0 * float(a.where(valid & sel).sum()) / tot if tot > 0 else np.nan
            rows.append((label, sign, "%", share))
    return pd.DataFrame(rows, columns=["factor", "sign", "units", "value"])


# --------------------------------------------------------------------------- figure


def class_map_figure(classes: xr.DataArray, shares: Mapping[int, float] | None = None, *,
                     title: str = "", synthetic: bool = False):
    """Fig. 12-style map of the Table 2 classes with a legend of class names and area
    shares [%] (:func:`carbonsink.report.figures.categorical_map_figure`)."""
    from ..report.figures import categorical_map_figure

    return categorical_map_figure(
        classes, labels={c: f"{c} {name}" for c, name in TABLE2_CLASSES.items()},
        colors=dict(enumerate(_CLASS_COLOURS)), shares=shares, title=title,
        synthetic=synthetic)


def _rate_maps_figure(ds: xr.DataArray, factors: Sequence[str], *, title: str,
                      synthetic: bool):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ..report.figures import SYNTHETIC_NOTE

    n = len(factors)
    fig = Figure(figsize=(3.2 * n + 0.8, 3.4))
    FigureCanvasAgg(fig)
    axes = np.atleast_1d(fig.subplots(1, n))
    for ax, k in zip(axes, factors):
        v = np.asarray(ds[f"rate_{k}"].values, dtype=np.float64)
        fin = v[np.isfinite(v)]
        lim = float(np.nanpercentile(np.abs(fin), 98)) if fin.size else 1.0
        lim = lim if lim > 0 else 1.0
        im = ax.imshow(v, cmap="RdBu", vmin=-lim, vmax=lim, interpolation="nearest")
        ax.set_title(_FACTOR_LABELS.get(k, k), fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
        cb = fig.colorbar(im, ax=ax, shrink=0.8)
        cb.set_label("contribution rate [%]", fontsize=7)
    fig.suptitle(title, fontsize=10)
    if synthetic:
        axes[0].text(0.01, 0.01, SYNTHETIC_NOTE, transform=axes[0].transAxes, fontsize=6,
                     color="firebrick")
    return fig


# --------------------------------------------------------------------------- analysis


def _exclude_mask(ctx, classes: Sequence[str]) -> xr.DataArray | None:
    """True where the pixel is kept (land cover of the last map not in ``classes``)."""
    from ..cube import landcover_mask

    lc = ctx.inputs().get("landcover")
    if lc is None or not classes:
        return None
    if "time" in lc.dims:
        lc = lc.isel(time=-1, drop=True)
    scheme = getattr(ctx.study, "landcover_scheme", None) or "igbp"
    return landcover_mask(lc, mask_classes=tuple(classes), scheme=scheme).compute()


@register_analysis
class Attribution(Analysis):
    name = "attribution"
    title = "Attribution of the NEP trend to climate factors and human activity"
    description = ("Per-pixel trend decomposition dNEP/dt = Σ X_con,k + H_con (000 Eq. 21-22) "
                   "with ∂NEP/∂X_k from a multiple regression (or 000's z-score × r with "
                   "mode: paper), the six classes of 000 Table 2 (Fig. 12), climate/human "
                   "shares and the regional contribution rates (Table 3), per zone and "
                   "without excluded land-cover classes.")
    requires = ("annual", "drivers", "area")
    order = 70
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        mode: Literal["recommended", "paper"] = Field(
            "recommended", description="recommended: multiple regression, signed sums; "
                                       "paper: 000 as published (replication only)")
        season: Literal["annual", "growing_season", "both"] = Field(
            "both", description="annual series, growing-season series or both")
        drivers: list[str] = Field(
            default_factory=lambda: list(DEFAULT_FACTORS),
            description="climate factors X_k (those present among the driver series)")
        exclude_classes: list[str] = Field(
            default_factory=lambda: ["barren"],
            description="land-cover classes left out in the second Table 3 variant "
                        "(needs inputs.landcover)")
        detrend: bool = Field(False, description="sensitivities from detrended anomalies")
        ridge: float = Field(0.0, ge=0.0, description="ridge penalty of the regression")
        min_years: int = Field(8, ge=4, description="fewer years: the analysis is skipped")

    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        sec = res.section(self)
        seasons = ["annual", "growing_season"] if options.season == "both" else [options.season]
        area = ctx.area
        zones = ctx.zones()
        keep = _exclude_mask(ctx, options.exclude_classes)
        multi = len(ctx.experiments) > 1
        notes: list[str] = []
        figs: list[tuple[str, str]] = []
        for exp, combo in ctx.runs():
            for season in seasons:
                cube = ctx.cube(season, combo, exp)
                drv = ctx.drivers(season, exp)
                if cube is None or "nep" not in cube or drv is None:
                    notes.append(f"{exp}/{combo} {season}: no NEP or no driver series")
                    continue
                if cube.sizes["time"] < options.min_years:
                    notes.append(f"{exp}/{combo} {season}: {cube.sizes['time']} years, fewer "
                                 f"than {options.min_years}")
                    continue
                present = [f for f in options.drivers if f in drv]
                if not present:
                    raise InputError(f"attribution: none of the factors {options.drivers} is "
                                     f"among the driver series {list(drv.data_vars)}; set "
                                     f"options.drivers to some of these")
                nep, drv = xr.align(cube["nep"], drv[present], join="inner")
                ds = attribute(nep, drv, factors=present, mode=options.mode,
                               detrend=options.detrend, ridge=options.ridge)
                maps = ("class", "climate_share", "human_share",
                        *[f"xcon_{k}" for k in present], *[f"rate_{k}" for k in present])
                ds = ctx.store(CubeProduct(f"attribution_{season}", ds, combination=combo,
                                           experiment=exp, maps=maps,
                                           map_prefix=f"attribution_{season}_"))
                fixed = dict(experiment=exp, combination=combo)
                subsets = [("all pixels", None)]
                if keep is not None:
                    subsets.append((f"without {', '.join(options.exclude_classes)}", keep))
                for subset, mask in subsets:
                    tab = regional_contributions(ds, area, mode=options.mode, zones=zones,
                                                 region=ctx.zone, mask=mask)
                    tab.insert(1, "season", season)
                    tab.insert(2, "subset", subset)
                    tab.insert(3, "variable", "nep")
                    res.add_table("attribution_regional", tidy(tab, **fixed))
                    sh = class_area_shares(ds["class"] if mask is None else
                                           ds["class"].where(mask, CLASS_FILL), area,
                                           labels=TABLE2_CLASSES)
                    ct = class_share_table(sh, variable="nep", scheme="000 Table 2")
                    ct.insert(0, "season", season)
                    ct.insert(1, "subset", subset)
                    res.add_table("attribution_classes", tidy(ct, zone=ctx.zone, **fixed))
                    sg = sign_area_shares(ds, area, mask)
                    sg.insert(0, "season", season)
                    sg.insert(1, "subset", subset)
                    sg["variable"] = "nep"
                    sg["statistic"] = "area_share_" + sg.pop("sign")
                    res.add_table("attribution_signs", tidy(sg, zone=ctx.zone, **fixed))
                label = f"{exp}/{combo}" if multi else combo
                sh = class_area_shares(ds["class"], area, labels=TABLE2_CLASSES)
                shares = dict(zip(sh["class"], sh["share_percent"]))
                stem = f"{exp}_{combo}" if multi else combo
                fname = f"{stem}_attribution_{season}_classes"
                res.add_figure(fname, class_map_figure(
                    ds["class"].compute(), shares,
                    title=f"{label}: drivers of the {season.replace('_', '-')} NEP trend "
                          f"(000 Table 2)", synthetic=ctx.synthetic))
                figs.append((fname, f"{label}, {season.replace('_', ' ')}: classes of 000 "
                                    "Table 2 with their area shares"))
                rname = f"{stem}_attribution_{season}_rates"
                res.add_figure(rname, _rate_maps_figure(
                    ds.compute(), present, title=f"{label}: contribution rate per factor "
                                                 f"({season.replace('_', ' ')})",
                    synthetic=ctx.synthetic))
                figs.append((rname, f"{label}, {season.replace('_', ' ')}: contribution rate "
                                    "of each factor [%]"))
        self._report(sec, res, figs, notes, options, ctx)
        return res

    def _report(self, sec, res, figs, notes, options, ctx) -> None:
        if options.mode == "paper":
            sec.text("mode: paper — z-scored series, Pearson r as ∂NEP/∂X and the climate "
                     "contribution degree as Σ|X_con| (000 as published; for replication "
                     "only: r is not a partial derivative and the factors are collinear).")
        else:
            sec.text("Per pixel, dNEP/dt and dX_k/dt are OLS trends and ∂NEP/∂X_k the "
                     "coefficients of the multiple regression of NEP on the factors (raw "
                     "units), so Σ X_con,k + H_con = dNEP/dt exactly (000 Eq. 21-22 with "
                     "docs/methods.md §7.1's correction). Regional rates: shares of the "
                     "area-weighted mean trend (signed).")
        for n in notes:
            sec.text(f"Skipped {n}.")
        tab = res.tables.get("attribution_regional")
        if tab is None:
            sec.text("No run had both NEP and climate driver series.")
            return
        keys = ["experiment", "combination", "season", "subset", "zone", "factor"]
        keys = [k for k in keys if tab[k].nunique() > 1 or k in ("season", "factor")]
        view = tab[tab.statistic.isin(["contribution", "contribution_rate"])].pivot_table(
            index=keys, columns="statistic", values="value", sort=False).reset_index()
        units = tab[tab.statistic == "contribution"]["units"].iloc[0]
        sec.table(view, "attribution_regional",
                  caption=f"Contribution degree [{units}] and rate [%] of each factor, climate "
                          "and human activity (000 Table 3 analogue, area-weighted)")
        sg = res.tables["attribution_signs"]
        sg = sg[sg.subset == "all pixels"]
        sk = [k for k in ("experiment", "combination") if sg[k].nunique() > 1]
        sv = sg.pivot_table(index=[*sk, "season", "factor"], columns="statistic",
                            values="value", sort=False).reset_index()
        sec.table(sv, "attribution_signs",
                  caption="Area share [%] with a positive, negative or zero contribution")
        ct = res.tables["attribution_classes"]
        ct = ct[(ct.statistic == "area_share") & (ct.subset == "all pixels")]
        ck = [k for k in ("experiment", "combination") if ct[k].nunique() > 1]
        cv = ct.pivot_table(index=["class", "class_name"], columns=[*ck, "season"],
                            values="value", sort=False).reset_index()
        cv.columns = [" ".join(str(p) for p in c if p != "").strip() if isinstance(c, tuple)
                      else c for c in cv.columns]
        sec.table(cv, "attribution_classes", caption="Area share [%] of the classes of 000 "
                                                     "Table 2")
        for fname, caption in figs:
            sec.figure(fname, caption)
