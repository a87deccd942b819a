"""Validation of modelled NEP against eddy-covariance towers (carbonsink docs/methods.md §5).

At each tower the Rh models are driven by the tower's own monthly
meteorology (``TA_F`` → ``tas``, ``P_F`` → ``pr``), NPP is taken from one or
more *NPP sources*, and NEP = NPP − Rh of every NPP source × Rh model
combination is compared with the tower's NEP = −NEE on the months whose NEE
quality fraction (``NEE_VUT_REF_QC``) is at least ``qc_min``.

NPP sources (``npp=`` of :func:`validate_towers`):

``"cue"`` (default)
    NPP = CUE × tower GPP (``GPP_NT_VUT_REF``), CUE = 0.5 by default. **An
    approximation**: the carbon-use efficiency varies between ecosystems
    (about 0.3–0.7) and with season, and because tower GPP and NEE come from
    the same flux measurements (GPP is partitioned from NEE), the comparison is
    *not* an independent test of NPP — it mainly evaluates the Rh models and
    the seasonal NPP/GPP coupling.
a DataArray with spatial dims and a CRS (a study's NPP cube)
    sampled at the tower's lon/lat (from ``sites``) after transforming the
    coordinates into the cube CRS: ``npp_method="nearest"`` pixel, or
    ``"window"``: mean of the ``window`` × ``window`` pixels around it (NaN
    ignored).
a DataArray with dims ``(time,)`` or ``(time, site)``
    a user-supplied NPP series (per site when it has a ``site`` dim).
a mapping ``{label: source}``
    several sources at once, e.g. ``{"modis": cube1, "casa": cube2}`` gives
    the six combinations of seed 000 (two NPP models × three Rh models).

CASA cannot be run at the towers: it needs NDVI (FPAR), which the FLUXNET
files do not have. MODIS NPP at the towers can only come from a cube.

Rh models (``rh_models=``) run through the flux registry
(:func:`carbonsink.flux.run_rh`); every registered model that needs only
``tas``, ``pr`` and ``soc`` can run at a tower — built in:

``pei``         Pei et al. (2009) from tas and pr (§3.1, :func:`carbonsink.flux.rh.pei2009`)
``gsmsr_bl``    GSMSR soil respiration (§3.2) → Rh by Bond-Lamberty et al. (2004) (§3.3)
``gsmsr_shi``   GSMSR soil respiration → Rh by Shi (2015) (§3.4)

Combinations are named ``"<NPP label>+<Rh model>"`` like the registry's
(``cue+pei``; with ``npp={"modis": ..., "casa": ...}`` exactly the six
``SEED_000`` names ``modis+pei`` … ``casa+gsmsr_shi``).

A **reference** combination ``"<NPP label>+no_rh"`` (NEP = NPP, i.e. Rh = 0;
with ``npp="cue"``: NEP = CUE × GPP) is always added (``reference=False`` drops
it). It needs no respiration model, so the column ``skill_vs_reference`` =
1 − Σ(M − O)² / Σ(R − O)² (R = the reference NEP on the same months; an MSE skill
score, Murphy 1988, Mon. Wea. Rev. 116:2417) shows what each Rh model adds: > 0
the Rh model improves on "no respiration at all", ≤ 0 it does not. NSE = 0 is
the second, implicit reference (the observed mean).

GSMSR needs the SOC density Ds of the 0–20 cm layer [kg C m-2] at the tower.
FLUXNET files do not carry it, and **no constant is assumed**: SOC comes from
exactly one of

``soc=``        a value for all towers, or a ``{site: value}`` mapping [kg C m-2, 0–20 cm];
``soc_table=``  a CSV / DataFrame with columns ``site, soc`` [kg C m-2, 0–20 cm];
``soc_grid=``   a SOC-stock grid (GeoTIFF/NetCDF path or DataArray with a CRS)
                sampled at the towers' lon/lat (nearest pixel) from ``sites``, for
                the layer 0–``soc_grid_depth`` cm (required, e.g. 30), converted to
                0–20 cm by ``soc_depth_rule`` (see :func:`soc_depth_fraction`):
                ``"proportional"`` (uniform density in the layer, Ds = S·20/D) or
                ``"exponential"`` (density ρ(z) = ρ0·e^(−z/k), k fitted per tower to
                the ratio of the layer stock and a deeper stock ``soc_deep_grid``,
                e.g. 0–100 cm; Jobbágy & Jackson 2000, Ecol. Appl. 10:423, cumulative
                form 1 − β^d of Gale & Grigal 1987, β = e^(−1/k)).

Without a SOC source the GSMSR combinations are **skipped** with a warning and
the tables' metadata says so (``skipped_rh_models``); asking for them by name in
``combos`` raises :class:`InvalidArgumentError`.

NPP = CUE × GPP clips negative partitioned GPP (night-time partitioning gives
small negative monthly GPP in winter) at 0 before multiplying
(``clip_negative_gpp=True``, default; the number of clipped months is recorded).

Metrics (carbonsink docs/methods.md §5.2, model M vs observation O on paired months): ``n``,
``bias`` = mean(M − O), ``rel_bias`` = Σ(M − O)/ΣO (a fraction), ``rmse``,
``r`` (Pearson), ``r2`` = r² (R²_r, what seed 000 most likely reported), ``nse``
= 1 − Σ(O − M)²/Σ(O − Ō)² (R²_1:1, Nash–Sutcliffe), ``slope``/``intercept`` of
the OLS fit M = a + b·O. Fewer than ``min_n`` = 12 pairs → metrics NaN and a
``flag``. ILAMB-style scores in [0, 1] (:func:`ilamb_scores`; Collier et al.
2018, JAMES 10:2731): ``ilamb_bias``, ``ilamb_rmse``, ``ilamb_phase``
(seasonal-cycle phase), ``ilamb_iav`` (interannual variability) and
``ilamb_overall`` = (bias + 2·rmse + phase + iav)/5.

Σ Rh / Σ RECO (``rh_reco_ratio``) per tower and combination on the QC-passed
months with both values: heterotrophic respiration is a part of ecosystem
respiration, so a ratio above ``rh_reco_threshold`` (default 1) is physically
implausible and flagged (``rh_exceeds_reco`` and ``flag``).

Ranking: within each site (and data source), combinations are ranked by
``rank_by`` = ``"nse"`` (default, highest first; ties broken by the lower
``rmse``), ``"rmse"``, ``"r2"``, ``"abs_bias"`` or ``"ilamb"``
(``ilamb_overall``). r² is still reported but is not the default: at these
towers it mostly measures the GPP seasonality shared by NPP = CUE·GPP and the
tower NEP. A pooled ``"all sites"`` row per combination uses the paired months
of all sites together (one record per site; a monthly file is preferred when a
site also comes as an aggregated daily file); its ILAMB scores are the means of
the per-site scores.

Every option applied — the effective Rh model options (user values merged with
the model functions' defaults and the values the outputs record: β, the 30-day
month, the Bond-Lamberty scaling, ...), CUE, the GPP clipping, QC threshold,
SOC source and depth rule per tower, ranking, thresholds — goes into the
tables' ``attrs`` (written as the CSV ``.meta.json`` sidecar / Parquet metadata).
"""

from __future__ import annotations

import json
import math
import os
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from ..errors import (AlignmentError, InputError, InvalidArgumentError, UnitError,
                      UnknownModelError)
from ..io.atomic import atomic_write
from ..io.fluxnet import read_fluxnet, read_sites, to_monthly
from ..io.tables import write_table
from ..units import canonical_units, parse_units, to_units

__all__ = [
    "DEFAULT_CUE",
    "DEFAULT_QC_MIN",
    "DEFAULT_RANK_BY",
    "DEFAULT_RH_RECO_THRESHOLD",
    "GSMSR_SOC_DEPTH_CM",
    "ILAMB_SCORES",
    "METRIC_NAMES",
    "MIN_PAIRS",
    "POOLED",
    "RANK_KEYS",
    "REFERENCE_RH",
    "SOC_DEPTH_RULES",
    "TOWER_INPUTS",
    "NppSource",
    "effective_rh_options",
    "ilamb_scores",
    "metrics",
    "resolve_soc",
    "sample_grid_at_sites",
    "soc_depth_fraction",
    "npp_at_site",
    "npp_from_cue",
    "tower_rh_models",
    "tower_rh",
    "tower_nep",
    "validate_towers",
    "pooled_selection",
    "write_outputs",
    "write_markdown",
    "read_npp_series_csv",
    "run_validation_cli",
    "plot_scatter",
    "plot_timeseries",
]

DEFAULT_QC_MIN = 0.8
DEFAULT_CUE = 0.5
DEFAULT_RANK_BY = "nse"
DEFAULT_RH_RECO_THRESHOLD = 1.0
MIN_PAIRS = 12
METRIC_NAMES = ("n", "bias", "rel_bias", "rmse", "r", "r2", "nse", "slope", "intercept")
ILAMB_MIN_CALENDAR_MONTHS = 9
ILAMB_SCORES = ("ilamb_bias", "ilamb_rmse", "ilamb_phase", "ilamb_iav", "ilamb_overall")
#: ranking keys: column, ascending (best first)
RANK_KEYS = {"nse": ("nse", False), "rmse": ("rmse", True), "r2": ("r2", False),
             "abs_bias": ("abs_bias", True), "ilamb": ("ilamb_overall", False)}
#: name of the reference "Rh model": Rh = 0, NEP = NPP
REFERENCE_RH = "no_rh"
#: depth of the SOC layer GSMSR's Ds refers to [cm] (Yu et al. 2010; docs/methods.md §3.2)
GSMSR_SOC_DEPTH_CM = 20.0
SOC_DEPTH_RULES = ("proportional", "exponential")
POOLED = "all sites"
_NPP_UNITS = canonical_units("npp")  # g C m-2 month-1


# --------------------------------------------------------------------------- metrics


def metrics(model: Any, obs: Any, *, min_n: int = MIN_PAIRS) -> dict[str, float | int | str]:
    """Agreement metrics of ``model`` (M) against ``obs`` (O), carbonsink docs/methods.md §5.2.

    Pairs where either value is NaN are dropped. Returns a dict with ``n``,
    ``bias``, ``rel_bias``, ``rmse``, ``r``, ``r2`` (= r²), ``nse`` (R²_1:1),
    ``slope``, ``intercept`` (OLS of M on O), ``obs_mean``, ``model_mean`` and
    ``flag`` ("" when all metrics are defined). With fewer than ``min_n``
    pairs every metric but ``n`` is NaN and ``flag`` says why; ``r``, ``r2``,
    ``slope`` and ``intercept`` are NaN (flagged) when O or M is constant,
    ``nse`` when O is constant, ``rel_bias`` when ΣO = 0.
    """
    m = np.asarray(model, dtype=float).ravel()
    o = np.asarray(obs, dtype=float).ravel()
    if m.shape != o.shape:
        raise InvalidArgumentError(f"model and obs differ in length: {m.size} vs {o.size}")
    ok = np.isfinite(m) & np.isfinite(o)
    m, o = m[ok], o[ok]
    n = int(m.size)
    out: dict[str, float | int | str] = {k: math.nan for k in METRIC_NAMES}
    out.update(n=n, obs_mean=math.nan, model_mean=math.nan, flag="")
    if n < min_n:
        out["flag"] = f"n={n} < {min_n} pairs: metrics not computed"
        return out
    flags = []
    diff = m - o
    om, mm = float(o.mean()), float(m.mean())
    out.update(obs_mean=om, model_mean=mm)
    out["bias"] = float(diff.mean())
    out["rmse"] = float(np.sqrt(np.mean(diff ** 2)))
    so = float(o.sum())
    if so != 0.0:
        out["rel_bias"] = float(diff.sum() / so)
    else:
        flags.append("sum(obs) = 0: rel_bias undefined")
    do, dm = o - om, m - mm
    sxx, syy, sxy = float(do @ do), float(dm @ dm), float(do @ dm)
    if sxx > 0:
        out["nse"] = 1.0 - float(diff @ diff) / sxx
        out["slope"] = sxy / sxx
        out["intercept"] = mm - out["slope"] * om
    else:
        flags.append("constant obs: nse, slope, r undefined")
    if sxx > 0 and syy > 0:
        r = sxy / math.sqrt(sxx * syy)
        r = max(-1.0, min(1.0, r))
        out["r"], out["r2"] = r, r * r
    elif sxx > 0:
        flags.append("constant model: r undefined")
    out["flag"] = "; ".join(flags)
    return out


def ilamb_scores(model: Any, obs: Any, time: Any, *, min_n: int = MIN_PAIRS
                 ) -> dict[str, float]:
    """ILAMB-style scores of monthly ``model`` (M) against ``obs`` (O) at one site [1].

    Collier et al. (2018), "The International Land Model Benchmarking (ILAMB)
    system", JAMES 10:2731, doi:10.1029/2018MS001354, section 2.4, applied to
    one site's paired months (NaN pairs dropped)::

        crms(O)       = sqrt(mean((O - Ō)²))                      (centred RMS of O)
        ilamb_bias    = exp(-|M̄ - Ō| / crms(O))
        ilamb_rmse    = exp(-crmse / crms(O)),  crmse = sqrt(mean(((M - M̄) - (O - Ō))²))
        ilamb_phase   = 0.5 · (1 + cos(2π · Δ / 12))
                        Δ = months between the maxima of the mean annual cycles
                        (calendar-month means of the paired months; needs at least
                        ILAMB_MIN_CALENDAR_MONTHS = 9 of the 12 calendar months, as QC
                        often removes winter months, where NEP has no maximum)
        ilamb_iav     = exp(-|σ_M - σ_O| / σ_O),  σ = RMS of the anomalies from the
                        mean annual cycle (interannual variability)
        ilamb_overall = (bias + 2·rmse + phase + iav) / 5   (weights renormalised over
                        the defined scores)

    Each score is in [0, 1], 1 is perfect. ``time`` gives the month of each
    value. Fewer than ``min_n`` pairs, or constant O, give NaN.
    """
    m = np.asarray(model, dtype=float).ravel()
    o = np.asarray(obs, dtype=float).ravel()
    t = pd.DatetimeIndex(np.asarray(time).ravel())
    if not (m.size == o.size == t.size):
        raise InvalidArgumentError(f"model, obs and time differ in length: {m.size}, {o.size}, "
                                   f"{t.size}")
    ok = np.isfinite(m) & np.isfinite(o)
    m, o, month = m[ok], o[ok], np.asarray(t.month)[ok]
    out = {k: math.nan for k in ILAMB_SCORES}
    if m.size < min_n:
        return out
    om, mm = o.mean(), m.mean()
    crms = float(np.sqrt(np.mean((o - om) ** 2)))
    if crms == 0.0:
        return out
    out["ilamb_bias"] = math.exp(-abs(mm - om) / crms)
    crmse = float(np.sqrt(np.mean(((m - mm) - (o - om)) ** 2)))
    out["ilamb_rmse"] = math.exp(-crmse / crms)
    months = np.arange(1, 13)
    present = np.isin(months, month)
    clim_o = np.array([o[month == k].mean() if p else np.nan for k, p in zip(months, present)])
    clim_m = np.array([m[month == k].mean() if p else np.nan for k, p in zip(months, present)])
    if present.sum() >= ILAMB_MIN_CALENDAR_MONTHS:
        d = abs(int(np.nanargmax(clim_m)) - int(np.nanargmax(clim_o)))
        d = min(d, 12 - d)
        out["ilamb_phase"] = 0.5 * (1.0 + math.cos(2.0 * math.pi * d / 12.0))
    idx = month - 1
    ano_o, ano_m = o - clim_o[idx], m - clim_m[idx]
    s_o = float(np.sqrt(np.mean(ano_o ** 2)))
    s_m = float(np.sqrt(np.mean(ano_m ** 2)))
    if s_o > 0.0:
        out["ilamb_iav"] = math.exp(-abs(s_m - s_o) / s_o)
    weights = {"ilamb_bias": 1.0, "ilamb_rmse": 2.0, "ilamb_phase": 1.0, "ilamb_iav": 1.0}
    num = sum(w * out[k] for k, w in weights.items() if np.isfinite(out[k]))
    den = sum(w for k, w in weights.items() if np.isfinite(out[k]))
    out["ilamb_overall"] = num / den if den else math.nan
    return out


# --------------------------------------------------------------------------- NPP at a tower


def _month_start(index: pd.Index) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    return idx.to_period("M").to_timestamp().as_unit("ns")


def _as_monthly_npp(da: xr.DataArray, what: str) -> xr.DataArray:
    """Check units (monthly NPP) and put the time coordinate on month starts."""
    if "units" not in da.attrs:
        raise UnitError("npp", _NPP_UNITS, None,
                        fix=f"set the 'units' attribute of the {what} (e.g. 'g C m-2 month-1')")
    try:
        period = parse_units(da.attrs["units"]).period
    except ValueError:
        period = None
    if period == "year":
        raise UnitError("npp", _NPP_UNITS, da.attrs["units"],
                        fix=f"the {what} is annual; validation needs monthly NPP (downscale "
                            "it first, e.g. with carbonsink.flux.npp.modis_monthly)")
    out = to_units(da, _NPP_UNITS, variable="npp")
    if "time" not in out.dims:
        raise InputError(f"{what}: NPP needs a 'time' dimension (months); found dims {out.dims}")
    out = out.assign_coords(time=_month_start(out.indexes["time"]))
    if out.indexes["time"].has_duplicates:
        raise InputError(f"{what}: more than one NPP value per month; pass monthly NPP")
    return out


def _locate_pixel(grid: xr.DataArray, lon: float, lat: float, *, what: str
                  ) -> tuple[int, int, np.ndarray, np.ndarray]:
    """Indices (ix, iy) of the pixel of ``grid`` containing the WGS84 point lon/lat.

    The point is transformed into the grid CRS (pyproj); a point more than half
    a pixel outside the grid raises :class:`AlignmentError`.
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    from pyproj import Transformer

    crs = grid.rio.crs
    if crs is None:
        raise AlignmentError(f"{what} has no CRS: cannot locate the tower. Fix: set it with "
                             "grid.rio.write_crs(...) or crs= in the study inputs")
    xdim, ydim = grid.rio.x_dim, grid.rio.y_dim
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(float(lon), float(lat))
    xs = np.asarray(grid[xdim].values, dtype=float)
    ys = np.asarray(grid[ydim].values, dtype=float)
    ix, iy = int(np.argmin(np.abs(xs - x))), int(np.argmin(np.abs(ys - y)))
    dx = abs(float(xs[1] - xs[0])) if xs.size > 1 else abs(float(grid.rio.resolution()[0]))
    dy = abs(float(ys[1] - ys[0])) if ys.size > 1 else abs(float(grid.rio.resolution()[1]))
    if abs(xs[ix] - x) > dx / 2 * (1 + 1e-9) or abs(ys[iy] - y) > dy / 2 * (1 + 1e-9):
        raise AlignmentError(f"site at lon {lon}, lat {lat} (x={x:.6g}, y={y:.6g} in the "
                             f"{what} CRS) lies outside the {what} (x {xs.min():.6g}.."
                             f"{xs.max():.6g}, y {ys.min():.6g}..{ys.max():.6g}). Fix: use a "
                             "grid that covers the tower or drop the site")
    return ix, iy, xs, ys


def npp_at_site(cube: xr.DataArray, lon: float, lat: float, *, method: str = "nearest",
                window: int = 3) -> xr.DataArray:
    """NPP series of a gridded cube at the site ``lon``/``lat`` (degrees, WGS84).

    The cube needs a CRS (rioxarray, ``cube.rio.crs``) and spatial dims; the
    site coordinates are transformed into that CRS with pyproj.
    ``method="nearest"`` takes the pixel containing (nearest to) the site,
    ``"window"`` the mean of the ``window`` × ``window`` pixels centred on it
    (cut at the cube edge; NaN pixels ignored). A site more than half a pixel
    outside the cube raises :class:`AlignmentError`. Returns a ``(time,)``
    DataArray in g C m-2 month-1 with attrs ``npp_extraction``, ``pixel_x``,
    ``pixel_y``.
    """
    if method not in ("nearest", "window"):
        raise InvalidArgumentError(f"method must be 'nearest' or 'window', got {method!r}")
    if method == "window" and (window < 1 or window % 2 == 0):
        raise InvalidArgumentError(f"window must be an odd positive number of pixels, "
                                   f"got {window}")
    ix, iy, xs, ys = _locate_pixel(cube, lon, lat, what="NPP cube")
    xdim, ydim = cube.rio.x_dim, cube.rio.y_dim
    if method == "nearest":
        out = cube.isel({xdim: ix, ydim: iy})
        how = "nearest pixel"
    else:
        h = window // 2
        sub = cube.isel({xdim: slice(max(ix - h, 0), ix + h + 1),
                         ydim: slice(max(iy - h, 0), iy + h + 1)})
        out = sub.mean(dim=[xdim, ydim], skipna=True, keep_attrs=True)
        how = f"{window}x{window} window mean"
    out = out.drop_vars([c for c in out.coords if c != "time"])
    out.attrs = dict(cube.attrs)
    out.attrs.update(npp_extraction=how, pixel_x=float(xs[ix]), pixel_y=float(ys[iy]))
    return _as_monthly_npp(out.load(), "NPP cube")


def npp_from_cue(ds: xr.DataArray | xr.Dataset, cue: float = DEFAULT_CUE, *,
                 clip_negative_gpp: bool = True) -> xr.DataArray:
    """NPP = ``cue`` × tower GPP [g C m-2 month-1] (an approximation; module docstring).

    With ``clip_negative_gpp`` (default) negative partitioned GPP (night-time
    partitioning gives small negative monthly values in winter, which are not a
    carbon uptake) is set to 0 first: NPP = CUE · max(GPP, 0). The number of
    clipped months is in ``attrs["n_gpp_clipped"]``.
    """
    if not 0.0 < cue <= 1.0:
        raise InvalidArgumentError(f"cue must be in (0, 1], got {cue}")
    gpp = ds["gpp"] if isinstance(ds, xr.Dataset) else ds
    gpp = to_units(gpp, _NPP_UNITS, variable="gpp")
    negative = gpp < 0
    n_clipped = int(negative.sum()) if clip_negative_gpp else 0
    if clip_negative_gpp:
        gpp = gpp.where(~negative, 0.0)
    out = gpp * cue
    name = gpp.attrs.get("fluxnet_variable", "GPP")
    how = f"CUE {cue:g} x " + (f"max({name}, 0)" if clip_negative_gpp else name)
    out.attrs = {"units": _NPP_UNITS, "long_name": f"NPP = {cue:g} x tower GPP",
                 "npp_extraction": how, "clip_negative_gpp": bool(clip_negative_gpp),
                 "n_gpp_clipped": n_clipped}
    out.name = "npp"
    return out


@dataclass(frozen=True)
class NppSource:
    """Where NPP at a tower comes from: ``kind`` is "cue", "cube" or "series"."""

    label: str
    kind: str
    data: xr.DataArray | None = None
    cue: float = DEFAULT_CUE
    method: str = "nearest"
    window: int = 3
    clip_negative_gpp: bool = True

    def describe(self) -> str:
        if self.kind == "cue":
            clip = ", negative GPP clipped at 0" if self.clip_negative_gpp else ""
            return f"CUE {self.cue:g} x tower GPP (approximation{clip})"
        if self.kind == "cube":
            how = "nearest pixel" if self.method == "nearest" else \
                f"{self.window}x{self.window} window mean"
            return f"NPP cube '{self.label}' at the tower ({how})"
        return f"user-supplied NPP series '{self.label}'"

    def at_site(self, ds: xr.Dataset, site: str, meta: pd.DataFrame | None) -> xr.DataArray:
        """Monthly NPP (g C m-2 month-1) at ``site`` on the months of ``ds``."""
        if self.kind == "cue":
            if "gpp" not in ds:
                raise InputError(f"{ds.attrs.get('source', site)}: no GPP column "
                                 f"({ds.attrs.get('gpp_variable') or 'GPP_NT_VUT_REF'}) for "
                                 "NPP = CUE x GPP. Fix: supply an NPP cube or series")
            npp = npp_from_cue(ds, self.cue, clip_negative_gpp=self.clip_negative_gpp)
        elif self.kind == "cube":
            if meta is None or site not in meta.index or \
                    not np.isfinite(meta.loc[site, ["lat", "lon"]].astype(float)).all():
                raise InputError(f"site {site}: no lat/lon in the site metadata, needed to "
                                 f"sample the NPP cube '{self.label}'. Fix: pass sites= "
                                 "(a FLUXNET site list)")
            npp = npp_at_site(self.data, float(meta.loc[site, "lon"]),
                              float(meta.loc[site, "lat"]), method=self.method,
                              window=self.window)
        else:
            series = self.data
            if "site" in series.dims:
                sites = [str(s) for s in series["site"].values]
                if site not in sites:
                    raise InputError(f"NPP series '{self.label}' has no site {site} "
                                     f"(it has {', '.join(sites)})")
                series = series.isel(site=sites.index(site))
            extra = [d for d in series.dims if d != "time"]
            if extra:
                raise InputError(f"NPP series '{self.label}' must have dims (time,) or "
                                 f"(time, site); found {series.dims}")
            npp = _as_monthly_npp(series.drop_vars(
                [c for c in series.coords if c != "time"]), f"NPP series '{self.label}'")
        return npp.reindex(time=ds["time"].values)


def _npp_sources(npp: Any, *, cue: float, method: str, window: int,
                 clip_negative_gpp: bool = True) -> list[NppSource]:
    def one(label: str, spec: Any) -> NppSource:
        if spec is None or (isinstance(spec, str) and spec == "cue"):
            return NppSource(label, "cue", cue=cue, clip_negative_gpp=clip_negative_gpp)
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return NppSource(label, "cue", cue=float(spec), clip_negative_gpp=clip_negative_gpp)
        if isinstance(spec, xr.DataArray):
            spatial = {"x", "y", "lon", "lat", "longitude", "latitude"} & set(spec.dims)
            if spatial:
                return NppSource(label, "cube", spec, method=method, window=window)
            return NppSource(label, "series", spec)
        raise TypeError(f"NPP source '{label}': expected 'cue', a CUE value or a DataArray, "
                        f"got {type(spec).__name__}")

    if isinstance(npp, Mapping):
        if not npp:
            raise InvalidArgumentError("npp mapping is empty")
        return [one(str(k), v) for k, v in npp.items()]
    if npp is None or isinstance(npp, str) or isinstance(npp, (int, float)):
        if isinstance(npp, str) and npp != "cue":
            raise InvalidArgumentError(f"npp must be 'cue', a DataArray or a mapping, "
                                       f"got {npp!r}")
        return [one("cue", npp)]
    if isinstance(npp, xr.DataArray):
        source = one("npp", npp)
        label = "cube" if source.kind == "cube" else "series"
        return [NppSource(label, source.kind, npp, method=method, window=window)]
    raise TypeError(f"npp: expected 'cue', a DataArray or a mapping, got {type(npp).__name__}")


# --------------------------------------------------------------------------- SOC at a tower


def soc_depth_fraction(rule: str = "proportional", *, target_cm: float = GSMSR_SOC_DEPTH_CM,
                       layer_cm: float, layer_stock: Any = None, deep_stock: Any = None,
                       deep_cm: float | None = None) -> dict[str, np.ndarray]:
    """Share f of a 0–``layer_cm`` SOC stock that lies in 0–``target_cm`` [1].

    ``rule="proportional"``: uniform carbon density within the layer,
    ``f = target_cm / layer_cm`` (0–20 cm of a 0–30 cm stock: f = 2/3).

    ``rule="exponential"``: carbon density decreasing exponentially with depth,
    ρ(z) = ρ0·exp(−z/k), so the stock of 0–d cm is ∝ 1 − exp(−d/k) (the
    cumulative form Y = 1 − β^d of Gale & Grigal 1987, Can. J. For. Res.
    17:829, with β = exp(−1/k), used for SOC profiles by Jobbágy & Jackson
    2000, Ecol. Appl. 10:423). k [cm] is fitted per value to the ratio
    r = ``layer_stock`` / ``deep_stock`` of the layer stock and a deeper stock
    (0–``deep_cm``)::

        r = (1 − e^(−L/k)) / (1 − e^(−D/k))          solved for k (bisection)
        f = (1 − e^(−T/k)) / (1 − e^(−L/k))

    r must lie in (L/D, 1): r ≤ L/D means carbon density not decreasing with
    depth, r ≥ 1 a deep stock not larger than the layer stock; such values (and
    NaN) fall back to the proportional share, named in ``rule_applied``.

    Parameters
    ----------
    rule : {"proportional", "exponential"}
    target_cm : float
        Bottom of the wanted layer [cm] (20 for GSMSR's Ds).
    layer_cm : float
        Bottom of the layer the stock is given for [cm] (30 for a 0–30 cm grid).
    layer_stock, deep_stock : array-like
        Stocks of 0–layer_cm and 0–deep_cm [any common unit]; needed by
        ``"exponential"``.
    deep_cm : float
        Bottom of the deeper layer [cm] (e.g. 100).

    Returns
    -------
    dict with numpy arrays ``fraction`` [1], ``k_cm`` [cm] (NaN for the
    proportional share) and ``rule_applied`` (str).
    """
    if rule not in SOC_DEPTH_RULES:
        raise InvalidArgumentError(f"soc_depth_rule must be one of {', '.join(SOC_DEPTH_RULES)},"
                                   f" got {rule!r}")
    if not (layer_cm > 0 and 0 < target_cm <= layer_cm):
        raise InvalidArgumentError(f"SOC depths: need 0 < target ({target_cm} cm) <= layer "
                                   f"({layer_cm} cm); give the bottom of the grid's layer in cm")
    shape = np.shape(layer_stock) if layer_stock is not None else ()
    prop = np.full(shape, target_cm / layer_cm)
    if rule == "proportional":
        return {"fraction": prop, "k_cm": np.full(shape, np.nan),
                "rule_applied": np.full(shape, f"proportional {target_cm:g}/{layer_cm:g}",
                                        dtype=object)}
    if deep_stock is None or deep_cm is None:
        raise InvalidArgumentError("soc_depth_rule='exponential' needs the deeper stock and its "
                                   "depth (soc_deep_grid and soc_deep_depth, e.g. a 0-100 cm "
                                   "grid); or use soc_depth_rule='proportional'")
    if not deep_cm > layer_cm:
        raise InvalidArgumentError(f"soc_deep_depth ({deep_cm} cm) must exceed the layer depth "
                                   f"({layer_cm} cm)")
    top = np.asarray(layer_stock, dtype=float)
    deep = np.asarray(deep_stock, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = top / deep
    lo_r = layer_cm / deep_cm
    ok = np.isfinite(r) & (r > lo_r) & (r < 1.0)
    rr = np.where(ok, r, 0.5 * (lo_r + 1.0))

    def g(u):  # stock share of 0-L in 0-D for decay rate u = 1/k [cm-1], increasing in u
        return np.expm1(-layer_cm * u) / np.expm1(-deep_cm * u)

    lo = np.full(rr.shape, math.log(1e-9))
    hi = np.full(rr.shape, math.log(50.0))
    for _ in range(200):  # bisection in log(u), vectorised over all values
        mid = 0.5 * (lo + hi)
        above = g(np.exp(mid)) > rr
        hi = np.where(above, mid, hi)
        lo = np.where(above, lo, mid)
    u = np.exp(0.5 * (lo + hi))
    frac = np.expm1(-target_cm * u) / np.expm1(-layer_cm * u)
    k = 1.0 / u
    applied = np.where(ok, f"exponential (k fitted to 0-{layer_cm:g}/0-{deep_cm:g} cm)",
                       f"proportional {target_cm:g}/{layer_cm:g} (fallback: stock ratio "
                       f"outside ({lo_r:.3g}, 1))").astype(object)
    return {"fraction": np.where(ok, frac, prop), "k_cm": np.where(ok, k, np.nan),
            "rule_applied": applied}


def _read_grid(grid: Any, units: str | None, what: str) -> xr.DataArray:
    """A 2-D SOC-stock grid from a path (read_input) or a DataArray, in kg C m-2."""
    if isinstance(grid, xr.DataArray):
        da = grid
        if units is not None:
            da = da.assign_attrs(units=units)
    else:
        from ..io import read_input

        path = Path(grid)
        if not path.exists():
            raise InputError(f"{what} {path} not found. Fix: give the path of the SOC grid "
                             "(GeoTIFF or NetCDF)")
        da = read_input(path, variable="soc", units=units)
        da.attrs.setdefault("source_file", str(path))
    if not da.attrs.get("units"):
        raise UnitError("soc", "kg C m-2", None,
                        fix=f"the {what} carries no units: give them (e.g. soc_grid_units="
                            "'Mg C ha-1' for a stock in t C per hectare)")
    extra = [d for d in da.dims if d not in (da.rio.x_dim, da.rio.y_dim)]
    for d in extra:
        if da.sizes[d] != 1:
            raise InputError(f"{what} must be one 2-D layer; found dim {d!r} of size "
                             f"{da.sizes[d]}. Fix: select one layer/time first")
        da = da.isel({d: 0}, drop=True)
    return to_units(da, "kg C m-2", variable="soc")


def sample_grid_at_sites(grid: xr.DataArray, sites: pd.DataFrame,
                         site_ids: Iterable[str]) -> dict[str, float]:
    """Value of the 2-D ``grid`` at each site's lon/lat (nearest pixel) [grid units].

    ``sites`` is a site list (:func:`carbonsink.io.fluxnet.read_sites`, index =
    site id, columns ``lat``, ``lon``). Raises :class:`InputError` when a site
    has no coordinates and :class:`AlignmentError` when it lies outside the grid.
    """
    xdim, ydim = grid.rio.x_dim, grid.rio.y_dim
    out: dict[str, float] = {}
    for site in site_ids:
        if site not in sites.index or not np.isfinite(
                sites.loc[site, ["lat", "lon"]].astype(float)).all():
            raise InputError(f"site {site}: no lat/lon in the site list, needed to sample the "
                             "SOC grid. Fix: pass sites= (a FLUXNET site list with the tower)")
        ix, iy, _, _ = _locate_pixel(grid, float(sites.loc[site, "lon"]),
                                     float(sites.loc[site, "lat"]), what="SOC grid")
        out[site] = float(grid.isel({xdim: ix, ydim: iy}).values)
    return out


def resolve_soc(site_ids: Sequence[str], *, soc: float | Mapping[str, float] | None = None,
                soc_table: str | os.PathLike | pd.DataFrame | None = None,
                soc_grid: Any = None, soc_grid_depth: float | None = None,
                soc_grid_units: str | None = None, soc_depth_rule: str = "proportional",
                soc_deep_grid: Any = None, soc_deep_depth: float | None = None,
                sites: pd.DataFrame | None = None) -> dict[str, dict[str, Any]] | None:
    """SOC density of the 0–20 cm layer Ds [kg C m-2] at each tower, with its provenance.

    Exactly one source (module docstring): ``soc`` (one value or a
    ``{site: value}`` mapping, kg C m-2 of 0–20 cm), ``soc_table`` (CSV or
    DataFrame with columns ``site, soc``, the same unit and layer) or
    ``soc_grid`` (a stock grid of 0–``soc_grid_depth`` cm sampled at the
    towers and converted to 0–20 cm by :func:`soc_depth_fraction` with
    ``soc_depth_rule``; ``soc_deep_grid``/``soc_deep_depth`` for the exponential
    rule). Returns ``{site: {"value", "source", ...}}``, or None when no source
    is given (the GSMSR models are then skipped).
    """
    given = [n for n, v in (("soc", soc), ("soc_table", soc_table), ("soc_grid", soc_grid))
             if v is not None]
    if len(given) > 1:
        raise InvalidArgumentError(f"give one SOC source, not {' and '.join(given)}")
    if not given:
        return None
    out: dict[str, dict[str, Any]] = {}
    if soc is not None:
        for site in site_ids:
            if isinstance(soc, Mapping):
                if site not in soc:
                    raise InputError(f"soc mapping has no value for site {site} (it has "
                                     f"{', '.join(map(str, soc))}). Fix: add the site or pass "
                                     "one value for all sites")
                value, src = float(soc[site]), "user value per site [kg C m-2, 0-20 cm]"
            else:
                value, src = float(soc), "user value for all sites [kg C m-2, 0-20 cm]"
            out[site] = {"value": value, "source": src}
    elif soc_table is not None:
        if isinstance(soc_table, pd.DataFrame):
            df, name = soc_table, "soc_table"
        else:
            path = Path(soc_table)
            if not path.is_file():
                raise InputError(f"SOC table {path} not found")
            df, name = pd.read_csv(path, dtype={"site": str}), path.name
        if not {"site", "soc"} <= set(df.columns):
            raise InputError(f"{name}: the SOC table needs columns 'site' and 'soc' "
                             f"[kg C m-2, 0-20 cm]; found {', '.join(map(str, df.columns))}")
        table = df.assign(site=df["site"].astype(str).str.strip()).set_index("site")["soc"]
        for site in site_ids:
            if site not in table.index or not np.isfinite(float(table.loc[site])):
                raise InputError(f"{name}: no SOC value for site {site}. Fix: add a row "
                                 f"'{site},<kg C m-2 of 0-20 cm>'")
            out[site] = {"value": float(table.loc[site]),
                         "source": f"site table {name} [kg C m-2, 0-20 cm]"}
    else:
        if sites is None:
            raise InputError("soc_grid needs the towers' coordinates: pass sites= (a FLUXNET "
                             "site list)")
        if soc_grid_depth is None:
            raise InvalidArgumentError("soc_grid_depth is required with soc_grid: the bottom "
                                       "of the grid's layer in cm (30 for a 0-30 cm stock)")
        grid = _read_grid(soc_grid, soc_grid_units, "SOC grid")
        top = sample_grid_at_sites(grid, sites, site_ids)
        deep = None
        if soc_deep_grid is not None:
            deep = sample_grid_at_sites(_read_grid(soc_deep_grid, soc_grid_units,
                                                   "deep SOC grid"), sites, site_ids)
        elif soc_depth_rule == "exponential":
            raise InvalidArgumentError("soc_depth_rule='exponential' needs soc_deep_grid (a "
                                       "deeper stock, e.g. 0-100 cm) and soc_deep_depth")
        ids = list(site_ids)
        conv = soc_depth_fraction(
            soc_depth_rule, layer_cm=float(soc_grid_depth),
            layer_stock=np.array([top[s] for s in ids]),
            deep_stock=None if deep is None else np.array([deep[s] for s in ids]),
            deep_cm=None if soc_deep_depth is None else float(soc_deep_depth))
        label = str(grid.attrs.get("source_file", "SOC grid"))
        for i, site in enumerate(ids):
            if not np.isfinite(top[site]):
                raise InputError(f"SOC grid {Path(label).name}: no data at site {site} "
                                 "(nodata pixel). Fix: pass soc= or a soc_table for this site")
            rec = {"value": float(top[site] * conv["fraction"][i]),
                   "source": f"grid {Path(label).name} 0-{float(soc_grid_depth):g} cm, "
                             f"{conv['rule_applied'][i]}",
                   "grid_value_kg_C_m-2": top[site], "grid_depth_cm": float(soc_grid_depth),
                   "depth_rule": str(conv["rule_applied"][i]),
                   "depth_fraction": float(conv["fraction"][i])}
            if deep is not None:
                rec.update({"deep_grid_value_kg_C_m-2": deep[site],
                            "deep_grid_depth_cm": soc_deep_depth,
                            "k_cm": float(conv["k_cm"][i])})
            out[site] = rec
    bad = [s for s, r in out.items() if not (np.isfinite(r["value"]) and r["value"] >= 0)]
    if bad:
        raise InputError(f"SOC at {', '.join(bad)} is not a non-negative number "
                         f"({[out[s]['value'] for s in bad]} kg C m-2)")
    return out


# --------------------------------------------------------------------------- Rh at a tower


#: canonical inputs available at a tower for the Rh models (soc from ``soc=``)
TOWER_INPUTS = ("tas", "pr", "soc")


def tower_rh_models() -> list[str]:
    """Registered Rh models (:data:`carbonsink.flux.RH_MODELS`) that can run at a
    tower, i.e. that need only ``tas``, ``pr`` and ``soc`` and no other model's output
    (a model needing NPP, such as a litter-driven cascade, cannot run here)."""
    from ..flux import combinations as comb

    return [name for name, m in comb.RH_MODELS.items()
            if set(m.inputs) <= set(TOWER_INPUTS) and not m.needs]


def _check_rh_models(rh_models: Iterable[str] | None) -> list[str]:
    valid = tower_rh_models()
    names = valid if rh_models is None else list(rh_models)
    for name in names:
        if name not in valid:
            raise UnknownModelError("tower Rh model", name, valid)
    return names


def tower_rh(ds: xr.Dataset, *, soc: float | None = None,
             rh_models: Iterable[str] | None = None,
             rh_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Rh of each model from the tower's monthly ``tas`` (degC) and ``pr`` (mm month-1).

    ``ds`` is a monthly dataset from :func:`carbonsink.io.fluxnet.read_fluxnet`
    (or :func:`~carbonsink.io.fluxnet.to_monthly`). The models run through the
    flux registry (:func:`carbonsink.flux.run_rh`): ``pei``, ``gsmsr_bl``,
    ``gsmsr_shi`` (default: every registered model needing only tas, pr and
    soc). ``soc`` is the SOC density of 0–20 cm [kg C m-2], required by the
    models that need ``soc`` (GSMSR; no default is assumed). ``rh_options`` are
    keyed by model name as in the study file (``{"gsmsr_bl": {"beta": -0.006},
    "mode": "paper"}``); the model functions' defaults apply otherwise.
    Returns a Dataset with ``rh_<model>`` (g C m-2 month-1) and, for models
    that compute soil respiration, ``rs_<model>``; ``attrs["effective_options"]``
    (JSON) holds :func:`effective_rh_options` of every model run.
    """
    from ..flux import combinations as comb

    names = _check_rh_models(rh_models)
    options = dict(rh_options or {})
    bad = sorted(set(options) - set(comb.RH_MODELS) - {"mode"})
    if bad:
        err = UnknownModelError("Rh option group", ", ".join(bad), [*comb.RH_MODELS, "mode"])
        err.args = (f"unknown Rh option groups {bad}; options are keyed by Rh model name: "
                    + ", ".join(sorted(comb.RH_MODELS)) + " (or 'mode')",)
        raise err
    missing = [v for v in ("tas", "pr") if v not in ds]
    if missing:
        raise InputError(f"{ds.attrs.get('source', 'tower data')}: no {', '.join(missing)} "
                         "(TA_F, P_F) to drive the Rh models")
    if ds.attrs.get("resolution", "MM") != "MM":
        raise InputError(f"{ds.attrs.get('source', 'tower data')}: Rh models need monthly "
                         "data; aggregate with carbonsink.io.fluxnet.to_monthly first")
    need_soc = [n for n in names if "soc" in comb.RH_MODELS[n].inputs]
    if need_soc and soc is None:
        raise InvalidArgumentError(f"Rh model(s) {', '.join(need_soc)} need the SOC density "
                                   "(0-20 cm, kg C m-2) at the tower and none was given. Fix: "
                                   "pass soc= (a value, a site table or a SOC grid in "
                                   "validate_towers) or leave these models out")
    tas = ds["tas"].drop_vars([c for c in ds["tas"].coords if c != "time"])
    pr = ds["pr"].drop_vars([c for c in ds["pr"].coords if c != "time"])
    inputs = {"tas": tas, "pr": pr}
    if soc is not None:
        soc_da = xr.full_like(tas, float(soc))
        soc_da.attrs = {"units": "kg C m-2", "long_name": "soil organic carbon density (0-20 cm)"}
        inputs["soc"] = soc_da
    out: dict[str, xr.DataArray] = {}
    effective: dict[str, dict[str, Any]] = {}
    for name in names:
        opts = dict(options.get(name) or {})
        if "mode" in options:
            opts.setdefault("mode", options["mode"])
        res = comb.run_rh(name, inputs, **opts)
        out[f"rh_{name}"] = to_units(res["rh"], canonical_units("rh"), variable="rh")
        if "rs" in res:
            out[f"rs_{name}"] = res["rs"]
        effective[name] = effective_rh_options(name, opts, res)
    result = xr.Dataset(out)
    result.attrs.update(site=ds.attrs.get("site", ""),
                        soc=float(soc) if soc is not None else math.nan,
                        effective_options=json.dumps(effective, sort_keys=True, default=str))
    return result


def effective_rh_options(name: str, options: Mapping[str, Any] | None = None,
                         result: xr.Dataset | None = None) -> dict[str, Any]:
    """The options Rh model ``name`` ran with: its functions' defaults (from the
    registry), overridden by the user ``options``, overridden by the resolved values
    the outputs record in ``attrs["parameters"]`` (e.g. ``scaling=None`` →
    ``"annual_ratio"``, ``clip_to_rs=None`` → True, ``days`` = 30 for Pei's 30-day
    month). GSMSR's ``days_in_month=None`` means the true day count of each month.
    Reserved arguments (``time``, ``time_dim``) are left out.
    """
    from ..flux.registry import RESERVED_OPTIONS, describe_models

    eff: dict[str, Any] = {}
    for d in describe_models():
        if d["kind"] == "rh" and d["name"] == name:
            eff = {k: v for k, v in d["options"].items() if k not in RESERVED_OPTIONS}
    eff.update(dict(options or {}))
    if result is not None:
        for var in ("rs", "rh"):
            if var in result and result[var].attrs.get("parameters"):
                eff.update(json.loads(result[var].attrs["parameters"]))
        if "rs" in result and result["rs"].attrs.get("beta_status"):
            eff["beta_status"] = str(result["rs"].attrs["beta_status"])
    if "days_in_month" in eff and eff["days_in_month"] is None and "beta" in eff:
        eff["days_in_month"] = "true days of each month (GSMSR Rs_day x days)"
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in eff.items()}


# --------------------------------------------------------------------------- NEP and metrics


def tower_nep(ds: xr.Dataset, *, npp: Any = "cue", sites: pd.DataFrame | None = None,
              rh_models: Iterable[str] | None = None, qc_min: float = DEFAULT_QC_MIN,
              cue: float = DEFAULT_CUE, soc: float | None = None, npp_method: str = "nearest",
              window: int = 3, rh_options: Mapping[str, Any] | None = None,
              reference: bool = True, clip_negative_gpp: bool = True) -> pd.DataFrame:
    """Long monthly table of observed and modelled NEP at one tower.

    One row per month × combination with columns ``site, data, time,
    npp_label, npp_source, rh_model, combination, reference, obs_nep, obs_reco,
    nee_qc, qc_ok, qc_min, npp, npp_clipped, rh, nep`` (fluxes in g C m-2
    month-1). ``qc_ok`` is True where ``nee_qc >= qc_min`` and the observation
    exists. ``obs_reco`` is the tower's ecosystem respiration (RECO, NaN if the
    file has none). With ``reference`` (default) each NPP source also gets the
    reference rows ``"<label>+no_rh"`` (Rh = 0, NEP = NPP). ``npp_clipped``
    marks months whose negative GPP was set to 0 (``clip_negative_gpp``, CUE
    source only). ``ds`` must be monthly. The table's ``attrs`` hold
    ``effective_rh_options`` and ``n_gpp_clipped`` per NPP label.
    """
    site = str(ds.attrs.get("site", ""))
    sources = npp if isinstance(npp, list) and all(isinstance(s, NppSource) for s in npp) \
        else _npp_sources(npp, cue=cue, method=npp_method, window=window,
                          clip_negative_gpp=clip_negative_gpp)
    names = _check_rh_models(rh_models)
    rh = tower_rh(ds, soc=soc, rh_models=names, rh_options=rh_options)
    time = pd.DatetimeIndex(ds["time"].values)
    obs = ds["nep"].values.astype(float)
    reco = ds["reco"].values.astype(float) if "reco" in ds else np.full(obs.shape, np.nan)
    qc = ds["nee_qc"].values.astype(float) if "nee_qc" in ds else np.full(obs.shape, np.nan)
    qc_ok = np.isfinite(obs) & np.isfinite(qc) & (qc >= qc_min)
    data_label = ds.attrs.get("resolution", "MM")
    if ds.attrs.get("aggregated_from"):
        data_label = f"{ds.attrs['aggregated_from']}->MM"
    from ..flux import nep as nepmod

    gpp = ds["gpp"].values.astype(float) if "gpp" in ds else np.full(obs.shape, np.nan)
    frames, clipped = [], {}
    for src in sources:
        npp_da = src.at_site(ds, site, sites)
        npp_da = npp_da.drop_vars([c for c in npp_da.coords if c != "time"])
        npp_vals = npp_da.values.astype(float)
        is_clipped = (gpp < 0) if (src.kind == "cue" and src.clip_negative_gpp) else \
            np.zeros(obs.shape, bool)
        clipped[src.label] = int(is_clipped.sum())
        runs = ([(REFERENCE_RH, None)] if reference else []) + [(n, rh[f"rh_{n}"])
                                                                for n in names]
        for name, rh_da in runs:
            if rh_da is None:
                rh_vals = np.zeros(obs.shape)
                nep_vals = npp_vals.copy()
            else:
                rh_vals = rh_da.values.astype(float)
                nep_vals = nepmod.nep(npp_da, rh_da).reindex(time=ds["time"].values).values
            frames.append(pd.DataFrame({
                "site": site, "data": data_label, "time": time,
                "npp_label": src.label, "npp_source": src.describe(), "rh_model": name,
                "combination": f"{src.label}+{name}", "reference": rh_da is None,
                "obs_nep": obs, "obs_reco": reco, "nee_qc": qc, "qc_ok": qc_ok,
                "qc_min": qc_min, "npp": npp_vals, "npp_clipped": is_clipped, "rh": rh_vals,
                "nep": np.asarray(nep_vals, dtype=float),
            }))
    out = pd.concat(frames, ignore_index=True)
    out.attrs = {"effective_rh_options": json.loads(rh.attrs["effective_options"]),
                 "n_gpp_clipped": clipped}
    return out


def _rank(table: pd.DataFrame, rank_by: str) -> pd.Series:
    """Rank within (site, data): ``rank_by`` (:data:`RANK_KEYS`), ties by the lower RMSE
    (by the lower |bias| when ranking by RMSE)."""
    if rank_by not in RANK_KEYS:
        raise InvalidArgumentError(f"rank_by must be one of {', '.join(RANK_KEYS)}, "
                                   f"got {rank_by!r}")
    col, ascending = RANK_KEYS[rank_by]
    t = table.assign(abs_bias=table["bias"].abs())
    tie = "rmse" if col != "rmse" else "abs_bias"
    ranks = pd.Series(pd.NA, index=table.index, dtype="Int64")
    for _, grp in t.groupby(["site", "data"], sort=False):
        valid = grp[np.isfinite(grp[col].astype(float))]
        ordered = valid.sort_values([col, tie], ascending=[ascending, True], kind="mergesort")
        ranks.loc[ordered.index] = np.arange(1, len(ordered) + 1)
    return ranks


def pooled_selection(monthly: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``monthly`` with one data source per site (for pooled metrics).

    A site present more than once (e.g. its MM file and its DD file aggregated
    to months) contributes its monthly-file record (``data == "MM"``), else
    its first one.
    """
    chosen = []
    for site, grp in monthly.groupby("site", sort=False):
        datas = list(dict.fromkeys(grp["data"]))
        chosen.append((site, "MM" if "MM" in datas else datas[0]))
    keep = pd.MultiIndex.from_frame(monthly[["site", "data"]]).isin(
        pd.MultiIndex.from_tuples(chosen, names=["site", "data"]))
    return monthly[keep]


def _group_stats(sel: pd.DataFrame, ref: pd.DataFrame | None, *, min_n: int,
                 threshold: float) -> dict[str, Any]:
    """Metrics, Rh/RECO ratio and skill over the reference for the QC-passed rows ``sel``
    of one combination (``ref``: the reference rows on the same site/months)."""
    row: dict[str, Any] = dict(metrics(sel["nep"], sel["obs_nep"], min_n=min_n))
    flags = [row["flag"]] if row["flag"] else []
    both = sel[np.isfinite(sel["rh"]) & np.isfinite(sel["obs_reco"])]
    reco_sum = float(both["obs_reco"].sum())
    ratio = float(both["rh"].sum()) / reco_sum if len(both) and reco_sum > 0 else math.nan
    row["rh_reco_ratio"] = ratio
    row["rh_exceeds_reco"] = bool(np.isfinite(ratio) and ratio > threshold)
    if row["rh_exceeds_reco"]:
        flags.append(f"sum Rh / sum RECO = {ratio:.2f} > {threshold:g}: Rh exceeds the tower's "
                     "ecosystem respiration")
    row["skill_vs_reference"] = math.nan
    if ref is not None and row["n"] >= min_n:
        key = ["site", "data", "time"]
        pair = sel[key + ["nep", "obs_nep"]].merge(ref[key + ["nep"]], on=key,
                                                   suffixes=("", "_ref"))
        pair = pair[np.isfinite(pair["nep"]) & np.isfinite(pair["nep_ref"])
                    & np.isfinite(pair["obs_nep"])]
        den = float(((pair["nep_ref"] - pair["obs_nep"]) ** 2).sum())
        if len(pair) >= min_n and den > 0:
            row["skill_vs_reference"] = 1.0 - float(
                ((pair["nep"] - pair["obs_nep"]) ** 2).sum()) / den
    row["flag"] = "; ".join(flags)
    return row


def _metrics_table(monthly: pd.DataFrame, meta: pd.DataFrame | None, *, qc_min: float,
                   min_n: int, soc_info: Mapping[str, Mapping[str, Any]] | None,
                   rank_by: str, rh_reco_threshold: float = DEFAULT_RH_RECO_THRESHOLD
                   ) -> pd.DataFrame:
    rows = []
    keys = ["site", "data", "npp_label", "npp_source", "rh_model", "combination"]
    qc = monthly[monthly["qc_ok"]]
    refs = {k: g for k, g in qc[qc["reference"]].groupby(["site", "data", "npp_label"],
                                                          sort=False)}
    for key, grp in monthly.groupby(keys, sort=False):
        sel = grp[grp["qc_ok"]]
        row = dict(zip(keys, key))
        row["reference"] = bool(grp["reference"].iloc[0])
        row["n_months"] = int(len(grp))
        row["n_sites"] = 1
        ref = None if row["reference"] else refs.get((key[0], key[1], key[2]))
        row.update(_group_stats(sel, ref, min_n=min_n, threshold=rh_reco_threshold))
        row.update(ilamb_scores(sel["nep"], sel["obs_nep"], sel["time"], min_n=min_n))
        rows.append(row)
    # pooled: one record per site, all sites together
    pooled_src = pooled_selection(monthly)
    if pooled_src["site"].nunique() > 1:
        site_rows = pd.DataFrame(rows)
        chosen = set(map(tuple, pooled_src[["site", "data"]].drop_duplicates().to_numpy()))
        site_rows = site_rows[[(s, d) in chosen for s, d in zip(site_rows["site"],
                                                                 site_rows["data"])]]
        qc_pool = pooled_src[pooled_src["qc_ok"]]
        for key, grp in pooled_src.groupby(keys[2:], sort=False):
            sel = grp[grp["qc_ok"]]
            row = dict(zip(keys[2:], key))
            row.update(site=POOLED, data="pooled", n_months=int(len(grp)),
                       n_sites=int(sel["site"].nunique()),
                       reference=bool(grp["reference"].iloc[0]))
            ref = None
            if not row["reference"]:
                ref = qc_pool[qc_pool["reference"] & (qc_pool["npp_label"] == key[0])]
            row.update(_group_stats(sel, ref, min_n=min_n, threshold=rh_reco_threshold))
            per_site = site_rows[site_rows["combination"] == row["combination"]]
            for sc in ILAMB_SCORES:   # ILAMB: mean of the per-site scores
                vals = per_site[sc].astype(float)
                row[sc] = float(vals.mean()) if vals.notna().any() else math.nan
            rows.append(row)
    table = pd.DataFrame(rows)
    table["igbp"] = [meta.loc[s, "igbp"] if meta is not None and s in meta.index else ""
                     for s in table["site"]]
    info = dict(soc_info or {})
    vals = {v["value"] for v in info.values()}
    srcs = {v["source"] for v in info.values()}
    pooled_soc = {"value": vals.pop() if len(vals) == 1 else np.nan,
                  "source": srcs.pop() if len(srcs) == 1 else "per site"}
    none = {"value": np.nan, "source": "none (GSMSR not run)"}
    table["soc"] = [info.get(s, pooled_soc if info else none)["value"] for s in table["site"]]
    table["soc_source"] = [info.get(s, pooled_soc if info else none)["source"]
                           for s in table["site"]]
    table["qc_min"] = qc_min
    table["rank"] = _rank(table, rank_by)
    table["rank_by"] = rank_by
    cols = ["site", "igbp", "data", "npp_source", "rh_model", "combination", "reference", "rank",
            *METRIC_NAMES, "skill_vs_reference", "rh_reco_ratio", "rh_exceeds_reco",
            *ILAMB_SCORES, "obs_mean", "model_mean", "n_months", "n_sites", "qc_min", "soc",
            "soc_source", "rank_by", "flag"]
    table = table[cols]
    order = {s: i for i, s in enumerate(dict.fromkeys(table["site"]))}
    data_order = {d: i for i, d in enumerate(dict.fromkeys(table["data"]))}
    table = table.assign(_o=table["site"].map(order), _d=table["data"].map(data_order),
                         _r=table["rank"].fillna(10**6))
    table = table.sort_values(["_o", "_d", "_r", "combination"], kind="mergesort")
    return table.drop(columns=["_o", "_d", "_r"]).reset_index(drop=True)


def _load_sites(sites: str | os.PathLike | pd.DataFrame | None) -> pd.DataFrame | None:
    if sites is None or isinstance(sites, pd.DataFrame):
        return sites
    return read_sites(sites)


def _load_tower(item: str | os.PathLike | xr.Dataset, min_coverage: float) -> xr.Dataset:
    ds = item if isinstance(item, xr.Dataset) else read_fluxnet(item)
    res = ds.attrs.get("resolution")
    if res == "YY":
        raise InputError(f"{ds.attrs.get('source', item)}: yearly (YY) files cannot be "
                         "validated month by month. Fix: pass the MM, DD or HH file of the site")
    return to_monthly(ds, min_coverage=min_coverage) if res != "MM" else ds


def validate_towers(fluxnet_files: Sequence[str | os.PathLike | xr.Dataset], sites=None,
                    npp: Any = "cue", combos: Iterable[str] | None = None,
                    qc_min: float = DEFAULT_QC_MIN, out_dir: str | os.PathLike | None = None, *,
                    cue: float = DEFAULT_CUE, soc: float | Mapping[str, float] | None = None,
                    soc_table: str | os.PathLike | pd.DataFrame | None = None,
                    soc_grid: Any = None, soc_grid_depth: float | None = None,
                    soc_grid_units: str | None = None, soc_depth_rule: str = "proportional",
                    soc_deep_grid: Any = None, soc_deep_depth: float | None = None,
                    npp_method: str = "nearest", window: int = 3, min_n: int = MIN_PAIRS,
                    rank_by: str = DEFAULT_RANK_BY, min_coverage: float = 0.9,
                    rh_options: Mapping[str, Any] | None = None,
                    rh_reco_threshold: float = DEFAULT_RH_RECO_THRESHOLD,
                    clip_negative_gpp: bool = True, reference: bool = True,
                    figures: bool = True, formats: Sequence[str] = (".csv", ".parquet"),
                    report: bool = True, return_monthly: bool = False):
    """Validate NEP combinations against FLUXNET towers; return the metrics table.

    Parameters
    ----------
    fluxnet_files
        FLUXNET2015/ONEFlux CSV files (MM, DD, HH or HR; non-monthly ones are
        aggregated with :func:`carbonsink.io.fluxnet.to_monthly` and labelled
        ``data = "DD->MM"``) or datasets from ``read_fluxnet``.
    sites
        Site list (path or DataFrame from :func:`~carbonsink.io.fluxnet.read_sites`);
        needed to sample an NPP cube or a SOC grid, and for the ``igbp`` column.
    npp
        NPP source(s), see the module docstring (default ``"cue"``).
    combos
        Combinations to keep: names ``"<npp label>+<rh model>"`` or just Rh
        model names (``pei``, ``gsmsr_bl``, ``gsmsr_shi``); default all. The
        reference rows ``"<npp label>+no_rh"`` are kept whenever ``reference``.
    qc_min
        Months with ``NEE_VUT_REF_QC`` below this are excluded (default 0.8).
    out_dir
        If given, writes ``towers_metrics`` and ``towers_monthly`` tables (in
        ``formats``, with the metadata sidecar), ``towers.md`` (``report``) and
        PNG figures in ``figures/`` (``figures``), atomically.
    cue
        Carbon-use efficiency for NPP = CUE × GPP [1] (default 0.5).
    soc, soc_table, soc_grid, soc_grid_depth, soc_grid_units, soc_depth_rule
        The SOC source for GSMSR (one of ``soc``, ``soc_table``, ``soc_grid``).
    soc_deep_grid, soc_deep_depth
        Deeper stock grid and its depth for ``soc_depth_rule="exponential"``;
        see :func:`resolve_soc`. With none of ``soc``, ``soc_table``,
        ``soc_grid`` the GSMSR models are skipped with a warning.
    npp_method, window, min_n, min_coverage
        See the module docstring.
    rank_by
        ``"nse"`` (default), ``"rmse"``, ``"r2"``, ``"abs_bias"`` or ``"ilamb"``.
    rh_options
        Rh model options keyed by model name, as in the study file
        (``{"gsmsr_bl": {"beta": -0.006}}``); see :func:`tower_rh`.
    rh_reco_threshold
        Σ Rh / Σ RECO above this is flagged [1] (default 1).
    clip_negative_gpp
        NPP = CUE · max(GPP, 0) (default True).
    reference
        Add the ``"<npp label>+no_rh"`` reference rows (default True).

    Returns
    -------
    DataFrame with one row per site (and data source) × combination plus
    pooled ``"all sites"`` rows: ``site, igbp, data, npp_source, rh_model,
    combination, reference, rank, n, bias, rel_bias, rmse, r, r2, nse, slope,
    intercept, skill_vs_reference, rh_reco_ratio, rh_exceeds_reco,
    ilamb_bias, ilamb_rmse, ilamb_phase, ilamb_iav, ilamb_overall, obs_mean,
    model_mean, n_months, n_sites, qc_min, soc, soc_source, rank_by, flag``;
    its ``attrs`` record every option applied. With ``return_monthly=True`` a
    tuple ``(metrics, monthly)``.
    """
    from ..flux import combinations as comb

    if not fluxnet_files:
        raise InputError("validate_towers: no FLUXNET files given")
    if not 0.0 <= qc_min <= 1.0:
        raise InvalidArgumentError(f"qc_min must be in [0, 1], got {qc_min}")
    if rank_by not in RANK_KEYS:
        raise InvalidArgumentError(f"rank_by must be one of {', '.join(RANK_KEYS)}, "
                                   f"got {rank_by!r}")
    if not (np.isfinite(rh_reco_threshold) and rh_reco_threshold > 0):
        raise InvalidArgumentError(f"rh_reco_threshold must be a positive number, got "
                                   f"{rh_reco_threshold}")
    meta = _load_sites(sites)
    sources = _npp_sources(npp, cue=cue, method=npp_method, window=window,
                           clip_negative_gpp=clip_negative_gpp)
    towers = [_load_tower(item, min_coverage) for item in fluxnet_files]
    site_ids = list(dict.fromkeys(str(ds.attrs["site"]) for ds in towers))
    soc_info = resolve_soc(site_ids, soc=soc, soc_table=soc_table, soc_grid=soc_grid,
                           soc_grid_depth=soc_grid_depth, soc_grid_units=soc_grid_units,
                           soc_depth_rule=soc_depth_rule, soc_deep_grid=soc_deep_grid,
                           soc_deep_depth=soc_deep_depth, sites=meta)
    rh_names, wanted = _parse_combos(combos, sources, reference=reference)
    skipped: dict[str, str] = {}
    if soc_info is None:
        need_soc = [n for n in rh_names if "soc" in comb.RH_MODELS[n].inputs]
        if combos is not None and need_soc:
            raise InvalidArgumentError(
                f"combination(s) with {', '.join(need_soc)} need the SOC density at the towers"
                " and no SOC source was given. Fix: pass soc= (kg C m-2 of 0-20 cm), "
                "soc_table= or soc_grid= (with soc_grid_depth=)")
        for n in need_soc:
            skipped[n] = ("no SOC source given (soc, soc_table or soc_grid); GSMSR needs the "
                          "0-20 cm SOC density and no constant is assumed")
        if need_soc:
            warnings.warn(f"validate_towers: Rh model(s) {', '.join(need_soc)} skipped: no SOC "
                          "source (pass soc=, soc_table= or soc_grid=)", UserWarning,
                          stacklevel=2)
        rh_names = [n for n in rh_names if n not in need_soc]
    frames, sources_read, effective, clipped = [], [], {}, {}
    for item, ds in zip(fluxnet_files, towers):
        sources_read.append(str(ds.attrs.get("source", item)))
        site = str(ds.attrs["site"])
        soc_value = soc_info[site]["value"] if soc_info is not None else None
        f = tower_nep(ds, npp=sources, sites=meta, rh_models=rh_names, qc_min=qc_min,
                      soc=soc_value, rh_options=rh_options, reference=reference)
        frames.append(f)
        for name, opts in f.attrs["effective_rh_options"].items():
            opts = {k: v for k, v in opts.items()}
            if name not in effective:
                effective[name] = opts
            elif effective[name] != opts:   # per-site differences cannot happen today
                effective[name] = {"per_site": True, **opts}
        data_label = str(f["data"].iloc[0])
        clipped[f"{site} ({data_label})"] = f.attrs["n_gpp_clipped"]
    keys = [(f["site"].iloc[0], f["data"].iloc[0]) for f in frames]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise InputError("the same site and data record was given more than once: "
                         + ", ".join(f"{s} ({d})" for s, d in dupes)
                         + ". Fix: pass each FLUXNET file once")
    monthly = pd.concat(frames, ignore_index=True)
    monthly.attrs = {}
    if wanted is not None:
        monthly = monthly[monthly["combination"].isin(wanted)].reset_index(drop=True)
    table = _metrics_table(monthly, meta, qc_min=qc_min, min_n=min_n, soc_info=soc_info,
                           rank_by=rank_by, rh_reco_threshold=rh_reco_threshold)
    provenance = {
        "carbonsink_version": __version__,
        "created_by": "carbonsink.analysis.validation.validate_towers",
        "fluxnet_files": sources_read,
        "npp_sources": {s.label: s.describe() for s in sources},
        "cue": {s.label: s.cue for s in sources if s.kind == "cue"},
        "clip_negative_gpp": bool(clip_negative_gpp),
        "gpp_clipped_months": clipped,
        "rh_models": rh_names,
        "reference": (f"'<npp>+{REFERENCE_RH}': Rh = 0, NEP = NPP (no respiration model)"
                      if reference else "none"),
        "skipped_rh_models": skipped,
        "rh_options": effective,
        "rh_options_given": dict(rh_options or {}),
        "qc_min": qc_min, "qc_variable": "NEE_VUT_REF_QC", "min_n": min_n,
        "min_coverage": min_coverage,
        "rank_by": rank_by,
        "rank_rule": (f"within each site and data record by {RANK_KEYS[rank_by][0]} ("
                      + ("lowest" if RANK_KEYS[rank_by][1] else "highest")
                      + " first), ties by " + ("|bias|" if rank_by == "rmse" else "rmse")),
        "rh_reco_threshold": rh_reco_threshold,
        "rh_reco_rule": "sum(Rh) / sum(RECO) over the QC-passed months with both values; "
                        "flagged when above rh_reco_threshold",
        "soc_source": _soc_description(soc, soc_table, soc_grid, soc_grid_depth, soc_grid_units,
                                       soc_depth_rule, soc_deep_grid, soc_deep_depth),
        "soc_kg_C_m-2": soc_info or {},
        "ilamb_scores": "Collier et al. 2018 (JAMES 10:2731): exp(-|bias|/crms(O)), "
                        "exp(-crmse/crms(O)), 0.5(1+cos(2 pi dmonths/12)), "
                        "exp(-|iav_M-iav_O|/iav_O); overall = (bias + 2 rmse + phase + iav)/5; "
                        "pooled = mean of the site scores",
        "units": {c: _NPP_UNITS for c in ("bias", "rmse", "intercept", "obs_mean",
                                          "model_mean", "obs_nep", "obs_reco", "npp", "rh",
                                          "nep")} | {"soc": "kg C m-2 (0-20 cm)"},
    }
    table.attrs = dict(provenance)
    monthly.attrs = dict(provenance)
    if out_dir is not None:
        write_outputs(table, monthly, out_dir, figures=figures, formats=formats, report=report)
    return (table, monthly) if return_monthly else table


def _soc_description(soc, soc_table, soc_grid, depth, units, rule, deep_grid, deep_depth
                     ) -> dict[str, Any]:
    if soc is not None:
        return {"kind": "user value" if not isinstance(soc, Mapping) else "user value per site",
                "layer": "0-20 cm", "units": "kg C m-2"}
    if soc_table is not None:
        name = "DataFrame" if isinstance(soc_table, pd.DataFrame) else str(soc_table)
        return {"kind": "site table", "table": name, "layer": "0-20 cm", "units": "kg C m-2"}
    if soc_grid is not None:
        def name(g):
            return str(g.attrs.get("source_file", g.name)) if isinstance(g, xr.DataArray) \
                else str(g)
        out = {"kind": "grid", "grid": name(soc_grid), "grid_layer_cm": [0, depth],
               "grid_units": units or "from the file", "sampling": "nearest pixel at the "
               "tower lon/lat of the site list", "target_layer_cm": [0, GSMSR_SOC_DEPTH_CM],
               "depth_rule": rule}
        if rule == "proportional":
            out["depth_rule_equation"] = (f"Ds = S(0-{depth:g}) x {GSMSR_SOC_DEPTH_CM:g}/"
                                          f"{depth:g} (uniform density in the layer)")
        else:
            out["depth_rule_equation"] = (
                "rho(z) = rho0 exp(-z/k); k from S(0-L)/S(0-D) = (1-e^(-L/k))/(1-e^(-D/k)); "
                "Ds = S(0-L) (1-e^(-20/k))/(1-e^(-L/k)) (Jobbagy & Jackson 2000, Ecol. Appl. "
                "10:423; cumulative form of Gale & Grigal 1987)")
            out["deep_grid"] = name(deep_grid) if deep_grid is not None else None
            out["deep_grid_layer_cm"] = [0, deep_depth]
        return out
    return {"kind": "none", "note": "GSMSR models skipped; no constant assumed"}


def _parse_combos(combos: Iterable[str] | None, sources: list[NppSource], *,
                  reference: bool = True) -> tuple[list[str], set[str] | None]:
    rh_valid = tower_rh_models()
    if combos is None:
        return rh_valid, None
    labels = [s.label for s in sources]
    valid = {f"{lab}+{rh}" for lab in labels for rh in rh_valid}
    refs = {f"{lab}+{REFERENCE_RH}" for lab in labels}
    wanted: set[str] = set(refs) if reference else set()
    for c in combos:
        if c in rh_valid:
            wanted.update(f"{lab}+{c}" for lab in labels)
        elif c in valid:
            wanted.add(c)
        elif c in refs or c == REFERENCE_RH:
            if not reference:
                raise InvalidArgumentError(f"combination {c!r} is the reference; it needs "
                                           "reference=True")
        else:
            raise UnknownModelError("tower combination", c, sorted(valid | set(rh_valid) | refs))
    rh_names = [rh for rh in rh_valid if any(w.endswith(f"+{rh}") for w in wanted)]
    return rh_names, wanted


# --------------------------------------------------------------------------- outputs


def write_outputs(table: pd.DataFrame, monthly: pd.DataFrame, out_dir: str | os.PathLike, *,
                  figures: bool = True, dpi: int = 80,
                  formats: Sequence[str] = (".csv", ".parquet"),
                  report: bool = True) -> list[Path]:
    """Write the metrics and monthly tables (``formats``: ".csv" with a JSON sidecar and/or
    ".parquet"; atomic, with the tables' ``attrs`` as provenance metadata), the figures (PNG)
    and ``towers.md`` (:func:`write_markdown`)."""
    bad = [f for f in formats if f not in (".csv", ".parquet")]
    if bad or not formats:
        raise InvalidArgumentError(f"formats must be a subset of ('.csv', '.parquet'), got "
                                   f"{list(formats)}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in (("towers_metrics", table), ("towers_monthly", monthly)):
        for suffix in formats:
            written.append(write_table(df, out / f"{name}{suffix}"))
    figs: list[Path] = []
    if figures:
        fig_dir = out / "figures"
        for label in dict.fromkeys(monthly["npp_label"]):
            sub = monthly[monthly["npp_label"] == label]
            figs.append(plot_scatter(sub, fig_dir / f"scatter_{_safe(label)}.png", dpi=dpi))
        for (site, data), grp in monthly.groupby(["site", "data"], sort=False):
            suffix = "" if data == "MM" else f"_from_{_safe(data.split('->')[0])}"
            figs.append(plot_timeseries(grp, fig_dir / f"timeseries_{_safe(site)}{suffix}.png",
                                        dpi=dpi))
    written += figs
    if report:
        written.append(write_markdown(table, out / "towers.md",
                                      figures=[f.relative_to(out).as_posix() for f in figs]))
    return written


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating))
                                           and not np.isfinite(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else ""
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def _md_table(df: pd.DataFrame, columns: list[str], digits: Mapping[str, int]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], digits.get(c, 3)) for c in columns) + " |")
    return "\n".join(lines)


_DIGITS = {"bias": 1, "rmse": 1, "intercept": 1, "rel_bias": 2, "r": 3, "r2": 3, "nse": 3,
           "slope": 3, "skill_vs_reference": 3, "rh_reco_ratio": 2, "soc": 2,
           **{k: 2 for k in ILAMB_SCORES}}


def _summary(table: pd.DataFrame) -> list[str]:
    """Facts read off the metrics table, for the "What the table shows" section."""
    lines: list[str] = []
    a = table.attrs
    per = table[(table["site"] != POOLED) & (table["data"] == "MM")]
    scored = per[np.isfinite(per["nse"].astype(float))]
    towers = list(dict.fromkeys(scored["site"]))
    models = [m for m in dict.fromkeys(scored["rh_model"]) if m != REFERENCE_RH]
    if len(scored) and REFERENCE_RH in set(scored["rh_model"]):
        for m in models:
            beaten = [t for t in towers if _val_of(scored, t, m, "nse")
                      < _val_of(scored, t, REFERENCE_RH, "nse")]
            lines.append(f"`{m}`: NSE below the reference (no Rh at all) at {len(beaten)} of "
                         f"{len(towers)} towers with metrics"
                         + (f" ({', '.join(beaten)})" if beaten else "") + ".")
        top = [t for t in towers
               if scored[scored["site"] == t].sort_values("rank")["rh_model"].iloc[0]
               == REFERENCE_RH]
        lines.append(f"The reference ranks first by {a.get('rank_by', 'nse')} at {len(top)} of "
                     f"{len(towers)} towers" + (f" ({', '.join(top)})" if top else "") + ".")
    differ = []
    for t in towers:
        g = scored[scored["site"] == t]
        by_r2 = g.sort_values(["r2", "rmse"], ascending=[False, True]).iloc[0]
        by_rank = g.sort_values("rank").iloc[0]
        if by_r2["combination"] != by_rank["combination"]:
            differ.append(f"{t}: r² picks {by_r2['combination']} (NSE {by_r2['nse']:.2f}), "
                          f"{a.get('rank_by', 'nse')} picks {by_rank['combination']} "
                          f"(NSE {by_rank['nse']:.2f})")
    lines.append(f"Ranking by r² instead would change the first combination at {len(differ)} of "
                 f"{len(towers)} towers" + (": " + "; ".join(differ) if differ else "") + ".")
    wrong_sign = scored[np.sign(scored["model_mean"].astype(float))
                        != np.sign(scored["obs_mean"].astype(float))]
    if len(wrong_sign):
        lines.append("Mean NEP of the wrong sign (source instead of sink or vice versa) on the "
                     "QC-passed months: " + ", ".join(f"{r.site} {r.combination}"
                                                       for r in wrong_sign.itertuples()) + ".")
    flagged = per[per["rh_exceeds_reco"].astype(bool)]
    if len(flagged):
        lines.append("Σ Rh / Σ RECO above the threshold: " + ", ".join(
            f"{r.site} {r.rh_model} {r.rh_reco_ratio:.2f}" + (f" (n = {r.n} months)"
                                                              if r.n < a.get("min_n", 12)
                                                              else "")
            for r in flagged.itertuples()) + ".")
    return lines


def _val_of(df: pd.DataFrame, site: str, rh_model: str, col: str) -> float:
    v = df.loc[(df["site"] == site) & (df["rh_model"] == rh_model), col]
    return float(v.iloc[0]) if len(v) else math.nan


def _clipped_text(clipped: Any) -> str:
    if not clipped:
        return "none"
    parts = [f"{k} {sum(v.values()) if isinstance(v, Mapping) else v}"
             for k, v in clipped.items()]
    return ", ".join(parts)


def write_markdown(table: pd.DataFrame, path: str | os.PathLike, *,
                   figures: Sequence[str] = ()) -> Path:
    """Write ``towers.md``: settings and every applied option (from ``table.attrs``), the
    ranked table with reference rows, skill over the reference, Σ Rh / Σ RECO with flags,
    ILAMB scores, SOC per tower with its depth rule, and the list of figures."""
    a = dict(table.attrs)
    path = Path(path)
    rank_col = RANK_KEYS.get(a.get("rank_by", DEFAULT_RANK_BY), ("nse", False))[0]
    main_cols = ["site", "igbp", "data", "combination", "rank", "n", rank_col, "rmse", "r2",
                 "bias", "skill_vs_reference", "rh_reco_ratio", "rh_exceeds_reco"]
    main_cols = list(dict.fromkeys(main_cols))
    per_site = table[table["site"] != POOLED]
    pooled = table[table["site"] == POOLED]
    best = table[table["rank"] == 1]
    ilamb_cols = ["site", "data", "combination", *ILAMB_SCORES]
    soc = a.get("soc_kg_C_m-2") or {}
    soc_rows = pd.DataFrame([{"site": s, **v} for s, v in soc.items()])
    soc_cols = [c for c in ("site", "grid_value_kg_C_m-2", "deep_grid_value_kg_C_m-2", "k_cm",
                            "depth_fraction", "value", "depth_rule")
                if c in soc_rows.columns]
    flagged = per_site[per_site["rh_exceeds_reco"].astype(bool)]
    opts = json.dumps({k: a.get(k) for k in ("rh_options", "rh_options_given",
                                             "skipped_rh_models")}, indent=2, sort_keys=True,
                      default=str)
    files = "\n".join(f"- `{Path(f).name}`" for f in a.get("fluxnet_files", []))
    dd = table[table["data"].astype(str).str.endswith("->MM")]
    consistency = ""
    if len(dd):
        pair = dd.merge(table[table["data"] == "MM"], on=["site", "combination"],
                        suffixes=("_dd", "_mm"))
        if len(pair):
            consistency = (
                "\n## Same tower from two files\n\n"
                f"{', '.join(sorted(set(pair['site'])))}: the daily file aggregated to months "
                "(`DD->MM`) against the monthly file (`MM`): largest |Δ RMSE| "
                f"{float((pair['rmse_dd'] - pair['rmse_mm']).abs().max()):.3f} g C m-2 month-1, "
                f"largest |Δ NSE| {float((pair['nse_dd'] - pair['nse_mm']).abs().max()):.4f}. "
                "The pooled rows use the monthly file only.\n")
    soc_desc = json.dumps(a.get("soc_source", {}), indent=2, sort_keys=True, default=str)
    text = f"""# Tower validation: NEP combinations against eddy-covariance towers

Written by `carbonsink validate` (carbonsink {a.get('carbonsink_version', __version__)}),
`{a.get('created_by', 'validate_towers')}`. Do not edit by hand; rerun the command. Every
number below is in `towers_metrics.csv`, every option in `towers_metrics.csv.meta.json`.

## Data

{files}

Tower NEP = −NEE (`NEE_VUT_REF`; monthly files hold mean daily fluxes, multiplied by the days
in the month). Only months with `{a.get('qc_variable', 'NEE_VUT_REF_QC')}` ≥ {a.get('qc_min')}
enter the metrics; at least {a.get('min_n')} such months are needed, else the metrics are empty
and `flag` says why. Daily files are aggregated to months (months with < {a.get('min_coverage')}
of the days present are dropped).

## Settings (every option applied)

- NPP: {'; '.join(f'`{k}` = {v}' for k, v in (a.get('npp_sources') or {}).items())}.
  Negative partitioned GPP clipped at 0 before × CUE: **{a.get('clip_negative_gpp')}**
  (months clipped: {_clipped_text(a.get('gpp_clipped_months'))}). NPP = CUE × tower GPP is an
  approximation, and tower GPP is partitioned from the same NEE, so this is **not an
  independent test of NPP**: the table compares the Rh models under a shared NPP.
- Reference: {a.get('reference')}. `skill_vs_reference` = 1 − Σ(M − O)²/Σ(R − O)² on the same
  months (R = reference NEP): > 0 means the Rh model adds skill over "no respiration"; NSE = 0 is
  the skill of the observed mean.
- Rh models run: {', '.join(a.get('rh_models', [])) or 'none'}; skipped:
  {', '.join(a.get('skipped_rh_models', {})) or 'none'}. Effective options (registry defaults ←
  user values ← values recorded by the model outputs):

```json
{opts}
```

- SOC for GSMSR (Ds, 0–20 cm, kg C m-2):

```json
{soc_desc}
```

- Ranking: {a.get('rank_rule')}. r² is reported but not used to rank: with NPP = CUE × GPP it
  mostly measures the GPP seasonality that model and tower NEP share.
- Σ Rh / Σ RECO: {a.get('rh_reco_rule')} (threshold {a.get('rh_reco_threshold')}). Rh is a part
  of ecosystem respiration, so a ratio above 1 is physically implausible.
- ILAMB-style scores: {a.get('ilamb_scores')}.
- Metrics (model M vs tower O, g C m-2 month-1): bias = mean(M − O), RMSE, r² = Pearson r²,
  NSE = 1 − Σ(O − M)²/Σ(O − Ō)², OLS slope/intercept of M on O (in the CSV).

## What the table shows

{chr(10).join("- " + x for x in _summary(table))}

## SOC at the towers

`grid_value` = the 0–{(a.get('soc_source') or {}).get('grid_layer_cm', [0, '?'])[-1]} cm stock at
the tower pixel, `value` = Ds of 0–20 cm used by GSMSR = grid value × `depth_fraction` (all in
kg C m-2; 1 Mg C ha-1 = 0.1 kg C m-2).

{_md_table(soc_rows, soc_cols, {'value': 2, 'grid_value_kg_C_m-2': 2,
                                'deep_grid_value_kg_C_m-2': 2, 'k_cm': 1,
                                'depth_fraction': 3})
  if len(soc_rows) else 'No SOC source: GSMSR not run.'}

## Results, ranked by {rank_col} within each tower

{_md_table(per_site, main_cols, _DIGITS)}

Pooled over all towers (months of all towers together; one record per tower):

{_md_table(pooled, [c for c in main_cols if c not in ('site', 'igbp', 'data')], _DIGITS)
 if len(pooled) else 'Only one tower.'}

Rank 1 per tower:

{_md_table(best, ['site', 'data', 'combination', rank_col, 'rmse', 'skill_vs_reference'],
           _DIGITS)}

Σ Rh / Σ RECO above {a.get('rh_reco_threshold')} (flagged): {len(flagged)} of
{int((~per_site['reference'].astype(bool)).sum())} tower × Rh-model rows
{('(' + ', '.join(f"{r.site} {r.combination} {r.rh_reco_ratio:.2f}" for r in flagged.itertuples())
  + ')') if len(flagged) else ''}.

## ILAMB-style scores (0–1, 1 best; pooled = mean of the towers)

{_md_table(table, ilamb_cols, _DIGITS)}
{consistency}
## Figures

{chr(10).join(f"- `{f}`" for f in figures) or 'none written'}
"""
    with atomic_write(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


def _save_figure(fig, path: Path, dpi: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    return path


def plot_scatter(monthly: pd.DataFrame, path: str | os.PathLike, *, dpi: int = 80) -> Path:
    """Modelled vs observed monthly NEP, one panel per combination, 1:1 line.

    Uses the QC-passed months (``qc_ok``) of ``monthly`` (from
    :func:`tower_nep`), one record per site (:func:`pooled_selection`);
    points are coloured by site; each panel states n, R²_r, NSE and RMSE of
    the pooled points.
    """
    from matplotlib.figure import Figure

    monthly = pooled_selection(monthly)
    data = monthly[monthly["qc_ok"] & np.isfinite(monthly["nep"])]
    combos = list(dict.fromkeys(monthly["combination"]))
    sites = list(dict.fromkeys(monthly["site"]))
    fig = Figure(figsize=(3.2 * len(combos), 3.3))
    axes = fig.subplots(1, len(combos), squeeze=False)[0]
    cmap = _site_colours(sites)
    vals = np.concatenate([data["nep"].values, data["obs_nep"].values]) if len(data) else \
        np.array([-1.0, 1.0])
    lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    for ax, combo in zip(axes, combos):
        sub = data[data["combination"] == combo]
        for site in sites:
            s = sub[sub["site"] == site]
            if len(s):
                ax.scatter(s["obs_nep"], s["nep"], s=9, color=cmap[site], label=site, alpha=0.8,
                           linewidths=0)
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--")
        ax.axhline(0, color="0.85", lw=0.6)
        ax.axvline(0, color="0.85", lw=0.6)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        m = metrics(sub["nep"], sub["obs_nep"], min_n=3)
        ax.set_title(combo, fontsize=8)
        ax.text(0.03, 0.97, f"n={m['n']}  R²={m['r2']:.2f}\nNSE={m['nse']:.2f}  "
                f"RMSE={m['rmse']:.1f}", transform=ax.transAxes, va="top", fontsize=7)
        ax.set_xlabel("tower NEP = -NEE [g C m$^{-2}$ month$^{-1}$]", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("model NEP [g C m$^{-2}$ month$^{-1}$]", fontsize=7)
    axes[-1].legend(fontsize=6, frameon=False, loc="lower right", markerscale=1.2)
    return _save_figure(fig, Path(path), dpi)


def plot_timeseries(monthly: pd.DataFrame, path: str | os.PathLike, *, dpi: int = 80) -> Path:
    """Monthly observed (−NEE) and modelled NEP at one tower, one line per combination.

    Observed months failing the QC threshold are drawn as open circles.
    """
    from matplotlib.figure import Figure

    site = str(monthly["site"].iloc[0])
    data = str(monthly["data"].iloc[0])
    fig = Figure(figsize=(7.0, 2.8))
    ax = fig.subplots()
    obs = monthly.drop_duplicates("time").sort_values("time")
    ax.plot(obs["time"], obs["obs_nep"], color="k", lw=1.2, label="tower -NEE", zorder=3)
    good = obs[obs["qc_ok"]]
    bad = obs[~obs["qc_ok"]]
    ax.scatter(good["time"], good["obs_nep"], s=10, color="k", zorder=4)
    if len(bad):
        ax.scatter(bad["time"], bad["obs_nep"], s=14, facecolors="white", edgecolors="k",
                   zorder=4, label=f"QC < {_qc_of(monthly)}")
    for combo, grp in monthly.groupby("combination", sort=False):
        grp = grp.sort_values("time")
        ax.plot(grp["time"], grp["nep"], lw=0.9, label=combo)
    ax.axhline(0, color="0.7", lw=0.6)
    ax.set_ylabel("NEP [g C m$^{-2}$ month$^{-1}$]", fontsize=8)
    ax.set_title(f"{site} ({data}): {monthly['npp_source'].iloc[0]}"
                 if monthly["npp_label"].nunique() == 1 else f"{site} ({data})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, frameon=False, ncol=3, loc="best")
    return _save_figure(fig, Path(path), dpi)


def _qc_of(monthly: pd.DataFrame) -> str:
    if "qc_min" in monthly.columns and len(monthly):
        return f"{float(monthly['qc_min'].iloc[0]):g}"
    return "threshold"


def _site_colours(sites: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(sites)}


# --------------------------------------------------------------------------- CLI entry


def _expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.csv") if _is_fluxnet_name(q))
            if not found:
                raise InputError(f"{p}: no FLUXNET CSV files (FLX_/AMF_..._<res>_...csv) found")
            files.extend(found)
        else:
            files.append(p)
    return files


def _is_fluxnet_name(path: Path) -> bool:
    from ..io.fluxnet import parse_fluxnet_name

    meta = parse_fluxnet_name(path)
    return meta.site is not None and meta.resolution in ("HH", "HR", "DD", "MM")


def read_npp_series_csv(path: str | os.PathLike, *, units: str = _NPP_UNITS) -> xr.DataArray:
    """Read a CSV of monthly NPP per site (columns ``site, time, npp``) as a
    ``(time, site)`` DataArray; ``time`` is any date in the month (``2003-01``
    or ``2003-01-01``); ``npp`` is in ``units`` (default g C m-2 month-1).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: NPP series file not found")
    df = pd.read_csv(path, dtype={"site": str, "time": str})
    missing = [c for c in ("site", "time", "npp") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: NPP series CSV lacks column(s) {', '.join(missing)} "
                         "(expected site, time, npp)")
    time = pd.to_datetime(df["time"].str.strip(), errors="coerce", format="mixed")
    if time.isna().any():
        raise InputError(f"{path}: unreadable dates in 'time', e.g. "
                         f"{df.loc[time.isna(), 'time'].iloc[0]!r}")
    df = df.assign(time=_month_start(pd.Index(time)))
    if df.duplicated(["site", "time"]).any():
        raise InputError(f"{path}: more than one NPP value for a site and month")
    table = df.pivot(index="time", columns="site", values="npp").sort_index()
    da = xr.DataArray(table.to_numpy(dtype=float), dims=("time", "site"),
                      coords={"time": table.index.values, "site": table.columns.astype(str)},
                      attrs={"units": units}, name="npp")
    return da


def run_validation_cli(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                       npp_cube=None, npp_series=None, cue: float = DEFAULT_CUE,
                       qc_min: float = DEFAULT_QC_MIN, soc: float | None = None,
                       sites=None, **kwargs) -> pd.DataFrame:
    """What ``carbonsink validate`` runs: read, validate, write tables and figures.

    ``paths`` are FLUXNET files (or folders searched for them). NPP comes from
    ``npp_cube`` (a path read with :func:`carbonsink.io.read_input`, variable
    ``npp``, or a DataArray) and/or ``npp_series`` (a CSV for
    :func:`read_npp_series_csv`, or a DataArray); if neither is given, from
    ``cue`` × tower GPP. Writes ``towers_metrics`` and ``towers_monthly``
    tables (``formats=``), ``towers.md`` and ``figures/*.png`` in ``out_dir``
    and returns the metrics table. Further keyword arguments (SOC source,
    ``rank_by``, ``rh_reco_threshold``, ``clip_negative_gpp``, ...) go to
    :func:`validate_towers`.
    """
    files = _expand_paths(paths)
    sources: dict[str, Any] = {}
    if npp_cube is not None:
        cube = npp_cube
        if not isinstance(cube, xr.DataArray):
            from ..io import read_input

            cube = read_input(npp_cube, variable="npp")
        sources[str(cube.attrs.get("npp_model") or "cube")] = cube
    if npp_series is not None:
        series = npp_series if isinstance(npp_series, xr.DataArray) else \
            read_npp_series_csv(npp_series)
        sources["user"] = series
    npp = sources if sources else "cue"
    return validate_towers(files, sites=sites, npp=npp, qc_min=qc_min, out_dir=out_dir, cue=cue,
                           soc=soc, **kwargs)
