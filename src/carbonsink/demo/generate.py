"""Synthetic demo data for carbonsink — the recipe.

Everything here is **synthetic** (labelled so on every array and file): a
deterministic, documented recipe that produces, in a few seconds and with no
downloads, every input the flux models need on a small region, with prescribed
spatial gradients, trends and climate couplings, so that analyses can show
*recovered* against *prescribed* values (see :func:`truth`).

Grid
----
EPSG:4326, 0.05°, ``ny × nx`` cells (default 150 × 150), west edge 110.0° E,
south edge 41.0° N (default region 110.0–117.5° E, 41.0–48.5° N, an Inner
Mongolia-like steppe/forest/cropland mosaic). ``y`` descends (north-up),
coordinates are cell centres, CRS written with rioxarray (``spatial_ref``).
Below, ``u`` ∈ [0, 1] runs west→east and ``v`` ∈ [0, 1] south→north across
the region (gradients are defined over the region, so any ``ny, nx`` stays
plausible); ``f_*`` are smooth Gaussian random fields (Gaussian filter,
σ = 10 px, rescaled to mean 0 and standard deviation 1); ``yc`` is the centre
year ``(start + end) / 2``.

Interannual anomalies
---------------------
Annual anomaly series ``z_y(x) = 0.85 a_y + 0.45 b_y f(x) + 0.25 e_y(x)``
(``a, b`` regional N(0, 1) series, ``e`` pixel noise) are *orthogonalised
against [1, year] at every pixel*, so an OLS trend on annual values recovers
the prescribed trend up to storage rounding; within-year (monthly) anomalies
have zero mean in every pixel-year, so they never change annual means/totals.

Variables (canonical units, ``carbonsink.units``)
------------------------------------------------
``tas`` [degC], monthly
    ``T_mean + T_amp·s(m) + β_T(x)·(t − yc) + 0.5·z^T_y + monthly anomaly``;
    ``T_mean = 6.5 − 6.0 v − 1.5 u − 1.2 f_terrain`` (south→north and
    west→east cooling), ``T_amp = 15.5 + 3.0 v``, ``s(m) = −cos(2π m/12)``
    (m = 0 in January; coldest January, warmest July), ``t`` decimal year of
    the month. Prescribed warming ``β_T = 0.03 + 0.02 v`` °C yr⁻¹ (0.04 in
    the middle). Monthly anomaly: 0.9 regional + 0.35 pixel N(0, 1), zero
    mean per pixel-year.
``pr`` [mm month-1], monthly, ≥ 0, stored to 0.1 mm
    annual total ``P_y = P_clim·(1 + 0.18 z^P_y) + β_P(x)·(year − yc)``
    with ``P_clim = 150 + 330 u^1.2 + 35 f_terrain`` (≥ 90; east→west
    drying) and prescribed trend ``β_P = 1.5·(0.4 + 1.2 u)`` mm yr⁻¹ per
    year (1.5 on average); split into months by the monsoon weights
    ``w_m ∝ 0.02 + exp(−½((m − 6.3)/1.4)²)`` (July–August peak) times
    lognormal monthly noise (σ 0.25 regional + 0.18 pixel) renormalised so that the 12 months sum to
    ``P_y`` exactly.
``sol`` [MJ m-2 month-1], monthly
    extraterrestrial radiation (FAO-56 Eq. 21, summed over the days of each
    month, latitude of the cell) × transmissivity
    ``τ = (0.53 + 0.05 (1 − u))·(1 + 0.001 (t − yc))·(1 − 0.30 pr/(pr + 60))
    ·exp(0.03 ε)``: latitude/season driven, prescribed brightening of
    +0.1 % yr⁻¹, cloudiness coupled to the month's precipitation (negative
    sol–pr coupling).
``pet`` [mm month-1], monthly
    Hargreaves (1975) radiation formula
    ``PET = 0.0135·max(tas + 17.8, 0)·sol / 2.45`` (sol/2.45 is the
    evaporation equivalent in mm): consistent with ``tas`` and ``sol``, plays
    the role of an external PET product (carbonsink docs/methods.md §2.2 ``mode="paper"``).
``landcover`` ["1"], yearly (Jan 1), uint8, IGBP (MCD12Q1 LC_Type1) codes
    2001 map from quantiles of smooth scores: barren 16 (driest 6 %, west),
    open shrubland 7 (next 9 %), grassland 10 (rest), forest (top 13 % of
    ``u + 0.8 v + 0.25 f_terrain``: 3 deciduous needleleaf in the north,
    4 deciduous broadleaf, 5 mixed at the forest margin), cropland 12 (top
    14 % of ``u − 1.2 v − 0.3 f_terrain``, south-east), a lake (17) ringed by
    wetland (11) and a city (13). Prescribed transitions, each pixel changing
    once, in its ``change_year``: cropland → grassland ("grain for green",
    marginal cropland, early years), grassland → cropland (reclamation next to
    the cropland zone), grassland/shrubland → deciduous broadleaf forest (an
    afforestation belt), any land → urban (a ring around the city, converted
    outward year by year). Counts are in ``truth().transition_matrix``.
``npp_annual`` [g C m-2 yr-1], yearly (Jan 1), MODIS-like (MOD17A3HGF)
    ``NPP_y = base(lc_y, MI)·V_y`` with moisture index
    ``MI = P_clim/(P_clim + 250)`` and ``base = a_c + b_c·MI`` per class
    (forest 300 + 330 MI, shrub 40 + 380 MI, grassland 20 + 520 MI, cropland
    200 + 450 MI, wetland 420), vigour
    ``V_y = 1 + r(x)(year − yc) + 0.5·p'_y − 0.06·t'_y + 0.03 ε_y``, where
    ``p'_y = 0.18 z^P_y`` is the relative annual precipitation anomaly and
    ``t'_y = 0.5 z^T_y`` the annual temperature anomaly (°C). Prescribed
    relative trend ``r = 0.006·(0.4 + 1.6(u − 0.2)) + 0.003 f_trend`` yr⁻¹
    (browning in the west, greening in the east), so the prescribed NPP trend
    is ``base·r`` g C m⁻² yr⁻² (``truth().trends['npp']``, for pixels whose
    land cover never changes). Couplings: +0.5 NPP elasticity to annual
    precipitation anomalies, −0.06 relative NPP per °C of annual temperature
    anomaly. Water, barren and urban pixels are NaN (MODIS fill).
``gpp_8day`` [g C m-2] per composite (cumulative sum over ``ndays``), 8-day
    MOD17A2HGF-like composites starting on DOY 1, 9, …, 361 (46 a year;
    ``ndays`` coordinate 8, last 5 or 6 in leap years). Daily rate shape =
    monthly ``FPAR(ndvi)·sol/days·1/(1 + exp(−(tas − 5)/3))`` linearly
    interpolated to composite mid-days, × lognormal noise (σ = 0.08); scaled
    so that each pixel-year sums to ``NPP_y / CUE`` with carbon-use
    efficiency ``CUE = clip(0.5 + 0.03 f_cue, 0.44, 0.56)`` (annual sum ≈ 2 ×
    NPP). NaN where NPP is NaN.
``ndvi`` ["1"], monthly, stored to 0.0001, within [−0.1, 0.9]
    ``s0 + (peak_y − s0)·φ(tas)·ψ(pr) + 0.012 ε`` with soil/winter NDVI
    ``s0`` per class, peak ``peak_y = s0 + A·(1 + 0.6 (V_y − 1))``, climatological
    amplitude ``A = 0.12 + 0.78 (1 − exp(−base/380)) − s0`` for vegetated
    classes (constant low peaks for urban/barren, water ≈ −0.05 flat),
    temperature phenology ``φ = 1/(1 + exp(−(tas − 9)/2.5))`` (summer
    green-up) and moisture factor ``ψ = 0.75 + 0.25 min(1, pr₂/40 mm)``
    (pr₂ = mean of this and last month's pr). The greening/browning trend
    therefore follows the NPP vigour trend: peak NDVI trend ``0.6·A·r`` yr⁻¹.
``soc`` [kg C m-2], static, 0–20 cm
    ``1 + 5.5 MI_n + 1.5 [forest] + 2.0 [wetland] + 0.4 f_soc``, clipped to
    [1, 8] (``MI_n`` = MI rescaled to [0, 1]; moisture gradient), NaN over
    water.

Storage precision
-----------------
Values are rounded to the precision of the files :func:`write_demo_inputs`
writes (tas 0.01 °C, pr 0.1 mm, sol 0.1 MJ m⁻², pet 0.1 mm, ndvi 0.0001,
npp/gpp 0.1 g C m⁻²), so the files decode to the in-memory arrays.

Truth
-----
:func:`truth` (``TRUTH`` for the default seed) returns the prescribed trend
fields (``tas``, ``pr``, ``npp``, ``npp_relative``, ``ndvi_peak``,
``ndvi_gs``), their area-weighted regional means, the coupling coefficients
and expected correlation signs, the land-cover transition matrix and
per-process records, the change year of every pixel and masks (``stable`` =
vegetated and never changing land cover). Realised vs prescribed: annual OLS
trends of tas, pr and (stable-pixel) NPP equal the prescribed ones up to
storage rounding; the realised NDVI greening is somewhat larger than
``ndvi_gs`` (warming lengthens the green season); the realised sol trend is
smaller than +0.1 % yr⁻¹ (the rising precipitation adds cloud).

Cost: about 2 s and < 1 GB peak memory for the default 150 × 150 × 21 years;
``write_demo_inputs`` adds about 4 s and ~50 MB of files.

``write_demo_inputs`` stores these in real formats (see its docstring).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr

from ..errors import InvalidArgumentError

__all__ = [
    "DEFAULT_SEED",
    "SYNTHETIC_SOURCE",
    "DemoTruth",
    "generate",
    "truth",
    "write_demo_inputs",
    "dataset_attrs",
    "recipe",
    "IGBP_NAMES",
]

DEFAULT_SEED = 20260101
RES = 0.05
WEST = 110.0
SOUTH = 41.0
SYNTHETIC_SOURCE = "carbonsink synthetic demo data (not real observations)"
SMOOTH_SIGMA_PX = 10.0

IGBP_NAMES = {
    1: "evergreen needleleaf forest", 2: "evergreen broadleaf forest",
    3: "deciduous needleleaf forest", 4: "deciduous broadleaf forest", 5: "mixed forest",
    6: "closed shrubland", 7: "open shrubland", 8: "woody savanna", 9: "savanna",
    10: "grassland", 11: "permanent wetland", 12: "cropland", 13: "urban and built-up",
    14: "cropland/natural mosaic", 15: "snow and ice", 16: "barren", 17: "water",
}

# prescribed constants (documented in the module docstring)
PRESCRIBED: dict[str, Any] = {
    "tas_trend_degC_per_yr": "0.03 + 0.02 v (0.04 at mid-latitude of the region)",
    "pr_trend_mm_per_yr2": "1.5 (0.4 + 1.2 u) (1.5 regional mean)",
    "sol_trend_relative_per_yr": 0.001,
    "npp_relative_trend_per_yr": "0.006 (0.4 + 1.6 (u - 0.2)) + 0.003 f_trend",
    "npp_pr_elasticity": 0.5,
    "npp_tas_sensitivity_per_degC": -0.06,
    "ndvi_vigour_sensitivity": 0.6,
    "pr_annual_anomaly_relative_sd": 0.18,
    "tas_annual_anomaly_sd_degC": 0.5,
    "cue_mean": 0.5,
}

# class parameters: base NPP = a + b * MI ; NDVI soil/winter value s0
_NPP_A = {3: 300.0, 4: 300.0, 5: 300.0, 7: 40.0, 10: 20.0, 11: 420.0, 12: 200.0}
_NPP_B = {3: 330.0, 4: 330.0, 5: 330.0, 7: 380.0, 10: 520.0, 11: 0.0, 12: 450.0}
_NDVI_S0 = {3: 0.18, 4: 0.18, 5: 0.18, 7: 0.08, 10: 0.09, 11: 0.12, 12: 0.10,
            13: 0.15, 16: 0.06, 17: -0.05}
_NDVI_PEAK_FIXED = {13: 0.24, 16: 0.10, 17: -0.05}
_NONVEG = (13, 16, 17)  # NaN in MODIS-like NPP/GPP (MOD17 fill codes)


def recipe() -> str:
    """Return the documented recipe (this module's docstring)."""
    return __doc__ or ""


def dataset_attrs(seed: int = DEFAULT_SEED) -> dict[str, str]:
    """Dataset-level metadata for the demo data (files carry these as global attrs)."""
    try:
        from carbonsink import __version__ as version
    except Exception:  # pragma: no cover
        version = "unknown"
    return {
        "title": "carbonsink synthetic demo data",
        "source": SYNTHETIC_SOURCE,
        "synthetic": "true",
        "comment": ("SYNTHETIC: generated by carbonsink.demo.generate from a documented recipe "
                    "(carbonsink.demo.recipe()); not real observations. Prescribed trends, "
                    "couplings and land-cover transitions: carbonsink.demo.truth()."),
        "demo_seed": str(int(seed)),
        "institution": "none (synthetic)",
        "history": f"created by carbonsink {version} carbonsink.demo",
        "Conventions": "CF-1.8",
    }


# --------------------------------------------------------------------------- truth


@dataclass
class DemoTruth:
    """Prescribed values of the synthetic demo (what analyses should recover).

    ``trends``: prescribed per-pixel trend fields (DataArrays with units):
    ``tas`` [degC yr-1] (of annual mean), ``pr`` [mm yr-2] (trend of the annual
    total), ``npp`` [g C m-2 yr-2] (of annual NPP; valid for pixels whose land
    cover never changes — ``masks['stable']``), ``npp_relative`` [yr-1],
    ``ndvi_peak`` [yr-1], ``ndvi_gs`` [yr-1] (expected trend of May–Sep mean
    NDVI, approximate).
    ``regional_trends``: area-weighted regional means of these fields.
    ``couplings``: coefficients and expected signs of correlations.
    ``transition_matrix``: pixel counts, rows = class in the first year,
    columns = class in the last year. ``transitions``: one record per
    prescribed process. ``change_year`` (y, x): year of the land-cover change
    (0 = none). ``fields``: static fields used by the recipe (climatologies,
    CUE, base NPP, moisture index).
    """

    seed: int
    start: int
    end: int
    trends: dict[str, xr.DataArray]
    regional_trends: dict[str, float]
    couplings: dict[str, Any]
    transition_matrix: pd.DataFrame
    transitions: list[dict[str, Any]]
    change_year: xr.DataArray
    masks: dict[str, xr.DataArray]
    fields: dict[str, xr.DataArray]
    prescribed: dict[str, Any] = field(default_factory=lambda: dict(PRESCRIBED))

    def to_dataset(self) -> xr.Dataset:
        """All gridded truth as one Dataset (trend_*, mask_*, field_*, change_year)."""
        out: dict[str, xr.DataArray] = {}
        for k, v in self.trends.items():
            out[f"trend_{k}"] = v
        for k, v in self.masks.items():
            out[f"mask_{k}"] = v.astype("uint8")
        for k, v in self.fields.items():
            out[f"field_{k}"] = v
        out["change_year"] = self.change_year
        ds = xr.Dataset(out)
        ds.attrs.update(dataset_attrs(self.seed))
        ds.attrs["title"] = "carbonsink synthetic demo data: prescribed truth"
        return ds

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-serialisable summary (no grids)."""
        tm = self.transition_matrix
        return {
            "synthetic": True,
            "source": SYNTHETIC_SOURCE,
            "seed": self.seed,
            "period": [self.start, self.end],
            "regional_trends": {k: float(v) for k, v in self.regional_trends.items()},
            "couplings": _jsonable(self.couplings),
            "transitions": _jsonable(self.transitions),
            "transition_matrix": {
                "rows_first_year_class": [int(i) for i in tm.index],
                "columns_last_year_class": [int(c) for c in tm.columns],
                "counts": [[int(x) for x in row] for row in tm.to_numpy()],
            },
            "prescribed": _jsonable(self.prescribed),
        }


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    return obj


# --------------------------------------------------------------------------- helpers


def _smooth_field(rng: np.random.Generator, ny: int, nx: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    f = gaussian_filter(rng.standard_normal((ny, nx)), SMOOTH_SIGMA_PX, mode="reflect")
    sd = f.std()
    return (f - f.mean()) / (sd if sd > 0 else 1.0)


def _detrend(a: np.ndarray) -> np.ndarray:
    """Remove the OLS projection on [1, t] along axis 0 (exactly trendless, zero mean)."""
    n = a.shape[0]
    if n < 3:
        return a - a.mean(axis=0, keepdims=True)
    t = np.arange(n, dtype=float) - (n - 1) / 2.0
    t = t / np.sqrt((t * t).sum())
    shape = (n,) + (1,) * (a.ndim - 1)
    tt = t.reshape(shape)
    a = a - a.mean(axis=0, keepdims=True)
    return a - tt * (tt * a).sum(axis=0, keepdims=True)


def _standardise(a: np.ndarray) -> np.ndarray:
    sd = a.std()
    return a / (sd if sd > 0 else 1.0)


def _quantile_mask(score: np.ndarray, eligible: np.ndarray, frac_of_all: float) -> np.ndarray:
    """Top ``frac_of_all`` (fraction of *all* pixels) of ``score`` among ``eligible``."""
    n = int(round(frac_of_all * score.size))
    out = np.zeros(score.shape, bool)
    idx = np.flatnonzero(eligible)
    if n <= 0 or idx.size == 0:
        return out
    n = min(n, idx.size)
    order = np.argsort(-score.ravel()[idx], kind="stable")
    out.ravel()[idx[order[:n]]] = True
    return out


def _rank01(score: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Rank of ``score`` within ``mask`` scaled to [0, 1] (0 = highest score)."""
    r = np.zeros(score.shape)
    idx = np.flatnonzero(mask)
    if idx.size:
        order = np.argsort(-score.ravel()[idx], kind="stable")
        ranks = np.empty(idx.size)
        ranks[order] = np.arange(idx.size) / max(idx.size - 1, 1)
        r.ravel()[idx] = ranks
    return r


def _class_lookup(lc: np.ndarray, table: dict[int, float], default: float = np.nan) -> np.ndarray:
    lut = np.full(256, default, dtype=np.float64)
    for k, val in table.items():
        lut[k] = val
    return lut[lc]


def _composite_starts(start: int, end: int) -> tuple[pd.DatetimeIndex, np.ndarray]:
    dates, ndays = [], []
    for year in range(start, end + 1):
        ylen = 366 if pd.Timestamp(year, 1, 1).is_leap_year else 365
        for k in range(46):
            dates.append(pd.Timestamp(year, 1, 1) + pd.Timedelta(days=8 * k))
            ndays.append(min(8, ylen - 8 * k))
    return pd.DatetimeIndex(dates), np.asarray(ndays, dtype=np.int16)


def _extraterrestrial_monthly(lat_deg: np.ndarray, start: int, end: int) -> np.ndarray:
    """FAO-56 Eq. 21 daily Ra [MJ m-2 d-1] summed per calendar month -> (months, nlat)."""
    days = pd.date_range(f"{start}-01-01", f"{end}-12-31", freq="D")
    j = days.day_of_year.to_numpy(dtype=float)[:, None]
    phi = np.deg2rad(lat_deg)[None, :]
    dr = 1.0 + 0.033 * np.cos(2 * np.pi * j / 365.0)
    delta = 0.409 * np.sin(2 * np.pi * j / 365.0 - 1.39)
    ws = np.arccos(np.clip(-np.tan(phi) * np.tan(delta), -1.0, 1.0))
    ra = (24 * 60 / np.pi) * 0.0820 * dr * (ws * np.sin(phi) * np.sin(delta)
                                           + np.cos(phi) * np.cos(delta) * np.sin(ws))
    month_id = (days.year - start) * 12 + days.month - 1
    starts = np.flatnonzero(np.r_[True, np.diff(month_id) != 0])
    return np.add.reduceat(ra, starts, axis=0)


# --------------------------------------------------------------------------- the generator


def _grid_transform(ny: int):
    """Affine transform of the demo grid (north-up, 0.05°, west/south edges fixed)."""
    from affine import Affine

    return Affine.translation(WEST, SOUTH + RES * ny) @ Affine.scale(RES, -RES)


def _grid_centres(ny: int, nx: int) -> tuple[np.ndarray, np.ndarray]:
    """Cell-centre coordinates computed exactly as rioxarray does from the transform,
    so GeoTIFF and NetCDF inputs of the demo carry bit-identical coordinates."""
    from affine import Affine

    t = _grid_transform(ny) @ Affine.translation(0.5, 0.5)
    x, _ = t @ (np.arange(nx, dtype=float), np.zeros(nx))
    _, y = t @ (np.zeros(ny), np.arange(ny, dtype=float))
    return np.asarray(x, dtype=float), np.asarray(y, dtype=float)


@dataclass
class _Built:
    arrays: dict[str, np.ndarray]
    coords: dict[str, Any]
    truth_np: dict[str, Any]


def _build(seed: int, ny: int, nx: int, start: int, end: int) -> _Built:  # noqa: PLR0915
    if ny < 4 or nx < 4:
        raise InvalidArgumentError(f"demo grid must be at least 4 x 4 pixels, got ny={ny}, "
                                   f"nx={nx}")
    if end < start:
        raise InvalidArgumentError(f"end ({end}) must not be before start ({start})")
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    nyears = end - start + 1
    nmon = 12 * nyears
    yc = (start + end) / 2.0
    years = np.arange(start, end + 1)

    # ---------------------------------------------------------------- grid
    x, y = _grid_centres(ny, nx)  # y descending (north-up)
    u = np.broadcast_to(((np.arange(nx) + 0.5) / nx)[None, :], (ny, nx))
    v = np.broadcast_to((1.0 - (np.arange(ny) + 0.5) / ny)[:, None], (ny, nx))

    # smooth random fields (fixed draw order => determinism)
    f_terrain = _smooth_field(rng, ny, nx)
    f_pat_p = _smooth_field(rng, ny, nx)
    f_pat_t = _smooth_field(rng, ny, nx)
    f_dry = _smooth_field(rng, ny, nx)
    f_forest = _smooth_field(rng, ny, nx)
    f_crop = _smooth_field(rng, ny, nx)
    f_trend = _smooth_field(rng, ny, nx)
    f_cue = _smooth_field(rng, ny, nx)
    f_soc = _smooth_field(rng, ny, nx)

    # ---------------------------------------------------------------- climatology
    t_mean = 6.5 - 6.0 * v - 1.5 * u - 1.2 * f_terrain
    t_amp = 15.5 + 3.0 * v
    p_clim = np.maximum(150.0 + 330.0 * u ** 1.2 + 35.0 * f_terrain, 90.0)
    mi = p_clim / (p_clim + 250.0)

    # ---------------------------------------------------------------- land cover (first year)
    lc0 = np.full((ny, nx), 10, dtype=np.uint8)
    dry_score = -u + 0.12 * f_dry
    barren = _quantile_mask(dry_score, np.ones_like(lc0, bool), 0.06)
    shrub = _quantile_mask(dry_score, ~barren, 0.09)
    lc0[barren] = 16
    lc0[shrub] = 7
    forest_score = u + 0.8 * v + 0.25 * f_terrain + 0.1 * f_forest
    forest = _quantile_mask(forest_score, np.ones_like(lc0, bool), 0.13)
    crop_score = u - 1.2 * v - 0.3 * f_terrain + 0.1 * f_crop
    crop = _quantile_mask(crop_score, ~forest & ~barren, 0.14)
    lc0[crop] = 12
    lc0[forest] = 4
    mixed = forest & (_rank01(forest_score, forest) > 0.75)
    lc0[mixed] = 5
    lc0[forest & ~mixed & (v > 0.78)] = 3
    # lake ringed by wetland, and a city
    dlake = np.hypot((u - 0.78) / 0.035, (v - 0.58) / 0.025)
    lc0[(dlake > 1.0) & (dlake <= 1.6)] = 11
    lc0[dlake <= 1.0] = 17
    # distance to city in pixels-at-150 units (region fraction)
    dcity = np.hypot(u - 0.62, (v - 0.14))
    r_city = 0.025
    lc0[dcity <= r_city] = 13

    # ---------------------------------------------------------------- prescribed transitions
    change_year = np.zeros((ny, nx), dtype=np.int16)
    to_class = lc0.copy()
    first_change, last_change = start + 1, end
    span = max(last_change - first_change, 0)
    jitter = rng.integers(0, 3, size=(ny, nx))
    natural = ~np.isin(lc0, (11, 13, 17))
    ring = (dcity > r_city) & (dcity <= r_city + 0.05) & natural
    free = natural & ~ring
    processes: list[dict[str, Any]] = []

    def _yr(frac: np.ndarray, lo: float, hi: float) -> np.ndarray:
        yrs = first_change + np.floor(lo * span + frac * (hi - lo) * span)
        return np.clip(yrs, first_change, last_change).astype(np.int16)

    # (1) cropland -> grassland: most marginal cropland, early years
    m = _quantile_mask(-crop_score, free & (lc0 == 12), 0.012)
    yrs = np.clip(_yr(_rank01(-crop_score, m), 0.0, 0.25) + jitter, first_change, last_change)
    change_year[m], to_class[m] = yrs[m], 10
    processes.append(("grain for green: cropland -> grassland", m))
    free &= ~m
    # (2) grassland -> cropland: reclamation next to the cropland zone
    m = _quantile_mask(crop_score, free & (lc0 == 10), 0.04)
    yrs = np.clip(_yr(_rank01(crop_score, m), 0.1, 0.75) + jitter, first_change, last_change)
    change_year[m], to_class[m] = yrs[m], 12
    processes.append(("reclamation: grassland -> cropland", m))
    free &= ~m
    # (3) grassland/shrubland -> deciduous broadleaf forest: afforestation belt
    belt = (np.abs(v - 0.30 - 0.04 * np.sin(6.0 * u)) < 0.012) & (u > 0.2) & (u < 0.6)
    m = belt & free & np.isin(lc0, (7, 10))
    yrs = _yr((u - 0.2) / 0.4, 0.2, 0.45)
    change_year[m], to_class[m] = yrs[m], 4
    processes.append(("afforestation: grassland/shrubland -> deciduous broadleaf forest", m))
    free &= ~m
    # (4) urban expansion: a ring around the city converts outward year by year
    m = ring
    yrs = _yr((dcity - r_city) / 0.05, 0.1, 0.95)
    change_year[m], to_class[m] = yrs[m], 13
    processes.append(("urban expansion: any land -> urban", m))

    lc = np.repeat(lc0[None], nyears, axis=0)
    changed = change_year > 0
    after = (years[:, None, None] >= change_year[None]) & changed[None]
    lc = np.where(after, to_class[None], lc).astype(np.uint8)

    transitions = []
    for name, mm in processes:
        if not mm.any():
            continue
        pairs = pd.Series(list(zip(lc0[mm].tolist(), to_class[mm].tolist()))).value_counts()
        for (fr, to), n in sorted(pairs.items()):
            yy = change_year[mm & (lc0 == fr)]
            transitions.append({"process": name, "from": int(fr), "to": int(to),
                                "from_name": IGBP_NAMES[int(fr)], "to_name": IGBP_NAMES[int(to)],
                                "pixels": int(n), "first_year": int(yy.min()),
                                "last_year": int(yy.max())})
    classes = sorted(set(np.unique(lc[0]).tolist()) | set(np.unique(lc[-1]).tolist()))
    tm = pd.crosstab(pd.Categorical(lc[0].ravel(), categories=classes),
                     pd.Categorical(lc[-1].ravel(), categories=classes), dropna=False)
    tm.index.name, tm.columns.name = f"landcover_{start}", f"landcover_{end}"

    # ---------------------------------------------------------------- interannual anomalies
    def _annual_anomaly(pattern: np.ndarray) -> np.ndarray:
        a = _standardise(_detrend(rng.standard_normal(nyears)))
        b = _standardise(_detrend(rng.standard_normal(nyears)))
        e = rng.standard_normal((nyears, ny, nx))
        z = 0.85 * a[:, None, None] + 0.45 * b[:, None, None] * pattern[None] + 0.25 * e
        return _detrend(z)

    z_t = _annual_anomaly(f_pat_t)
    z_p = _annual_anomaly(f_pat_p)
    t_anom = 0.5 * z_t                        # degC
    p_anom = PRESCRIBED["pr_annual_anomaly_relative_sd"] * z_p   # relative

    yy = np.repeat(years, 12).astype(float)               # (nmon,)
    mm_ = np.tile(np.arange(12), nyears)                  # (nmon,)
    t_dec = yy + (mm_ + 0.5) / 12.0 - 0.5                 # decimal year, annual mean = year
    iy = yy.astype(int) - start

    # ---------------------------------------------------------------- tas
    tas_trend = 0.03 + 0.02 * v
    mon_t = (0.9 * rng.standard_normal(nmon)[:, None, None]
             + 0.35 * rng.standard_normal((nmon, ny, nx)))
    mon_t = mon_t.reshape(nyears, 12, ny, nx)
    mon_t -= mon_t.mean(axis=1, keepdims=True)
    season = -np.cos(2 * np.pi * np.arange(12) / 12.0)
    tas = (t_mean[None] + t_amp[None] * season[mm_][:, None, None]
           + tas_trend[None] * (t_dec - yc)[:, None, None]
           + t_anom[iy] + mon_t.reshape(nmon, ny, nx))
    del mon_t

    # ---------------------------------------------------------------- pr
    pr_trend = 1.5 * (0.4 + 1.2 * u)
    p_year = p_clim[None] * (1.0 + p_anom) + pr_trend[None] * (years - yc)[:, None, None]
    p_year = np.maximum(p_year, 0.0)
    w = 0.02 + np.exp(-0.5 * ((np.arange(12) - 6.3) / 1.4) ** 2)
    w = w / w.sum()
    g = np.exp(0.25 * rng.standard_normal(nmon)[:, None, None]
               + 0.18 * rng.standard_normal((nmon, ny, nx))).reshape(nyears, 12, ny, nx)
    g *= w[None, :, None, None]
    g /= g.sum(axis=1, keepdims=True)
    pr = (p_year[:, None] * g).reshape(nmon, ny, nx)
    del g
    pr = np.round(pr, 1)  # storage precision 0.1 mm

    # ---------------------------------------------------------------- sol
    ra = _extraterrestrial_monthly(y, start, end)       # (nmon, ny)
    tau = ((0.53 + 0.05 * (1.0 - u))[None]
           * (1.0 + PRESCRIBED["sol_trend_relative_per_yr"] * (t_dec - yc))[:, None, None]
           * (1.0 - 0.30 * pr / (pr + 60.0))
           * np.exp(0.03 * (rng.standard_normal(nmon)[:, None, None]
                            + 0.5 * rng.standard_normal((nmon, ny, nx)))))
    sol = np.round(ra[:, :, None] * tau, 1)  # storage precision 0.1 MJ m-2
    del tau
    tas = np.round(tas, 2)  # storage precision 0.01 degC

    # ---------------------------------------------------------------- pet (Hargreaves 1975)
    pet = np.round(0.0135 * np.maximum(tas + 17.8, 0.0) * sol / 2.45, 1)  # 0.1 mm

    # ---------------------------------------------------------------- vigour, NPP
    r_rel = 0.006 * (0.4 + 1.6 * (u - 0.2)) + 0.003 * f_trend
    eps = _detrend(rng.standard_normal((nyears, ny, nx)))
    vig = (1.0 + r_rel[None] * (years - yc)[:, None, None]
           + PRESCRIBED["npp_pr_elasticity"] * p_anom
           + PRESCRIBED["npp_tas_sensitivity_per_degC"] * t_anom + 0.03 * eps)
    a_lc = _class_lookup(lc, _NPP_A)
    b_lc = _class_lookup(lc, _NPP_B)
    base = a_lc + b_lc * mi[None]                         # NaN for non-vegetated
    npp = np.round(base * vig, 1)                         # storage precision 0.1 g
    base0 = _class_lookup(lc0, _NPP_A) + _class_lookup(lc0, _NPP_B) * mi

    # ---------------------------------------------------------------- NDVI
    s0 = _class_lookup(lc, _NDVI_S0)
    amp_veg = 0.12 + 0.78 * (1.0 - np.exp(-np.nan_to_num(base) / 380.0)) - s0
    fixed = _class_lookup(lc, _NDVI_PEAK_FIXED)
    amp = np.where(np.isnan(fixed), amp_veg, fixed - s0)
    kappa = PRESCRIBED["ndvi_vigour_sensitivity"]
    peak = s0 + amp * (1.0 + kappa * (vig - 1.0) * np.isnan(fixed))
    phi = 1.0 / (1.0 + np.exp(-(tas - 9.0) / 2.5))
    pr2 = 0.5 * (pr + np.concatenate([pr[:1], pr[:-1]], axis=0))
    psi = 0.75 + 0.25 * np.minimum(1.0, pr2 / 40.0)
    del pr2
    greenness = phi * psi
    ndvi = (s0[iy] + (peak - s0)[iy] * greenness
            + 0.012 * rng.standard_normal((nmon, ny, nx)))
    ndvi = np.round(np.clip(ndvi, -0.1, 0.9), 4)
    gs = np.isin(mm_, (4, 5, 6, 7, 8))
    green_gs = greenness[gs].mean(axis=0)
    amp0 = np.where(np.isin(lc0, _NONVEG), 0.0,
                    0.12 + 0.78 * (1.0 - np.exp(-np.nan_to_num(base0) / 380.0))
                    - _class_lookup(lc0, _NDVI_S0))
    del greenness, phi, psi

    # ---------------------------------------------------------------- GPP 8-day composites
    cue = np.clip(0.5 + 0.03 * f_cue, 0.44, 0.56)
    mtimes = pd.date_range(f"{start}-01-01", periods=nmon, freq="MS")
    dim = mtimes.days_in_month.to_numpy(dtype=float)
    fpar = np.clip((ndvi - 0.05) / 0.80, 0.001, 1.0)
    shape_m = (fpar * (sol / dim[:, None, None]) / (1.0 + np.exp(-(tas - 5.0) / 3.0)))
    shape_m = shape_m.astype(np.float32)
    del fpar
    ctimes, ndays = _composite_starts(start, end)
    mid = ctimes + pd.to_timedelta(ndays / 2.0, unit="D")
    # position in "month index" coordinates, month i centred at i + 0.5
    mpos = ((mid.year - start) * 12 + mid.month - 1
            + (mid.day - 1 + mid.hour / 24.0) / mid.days_in_month).to_numpy(dtype=float)
    p = mpos - 0.5
    i0 = np.clip(np.floor(p).astype(int), 0, nmon - 2)
    wt = np.clip(p - i0, 0.0, 1.0).astype(np.float32)[:, None, None]
    gpp = shape_m[i0] * (1 - wt) + shape_m[i0 + 1] * wt
    del shape_m
    gpp *= ndays.astype(np.float32)[:, None, None]
    gpp *= np.exp(0.08 * rng.standard_normal(gpp.shape, dtype=np.float32))
    ncomp = 46
    gpp = gpp.reshape(nyears, ncomp, ny, nx)
    target = (npp / cue[None]).astype(np.float32)          # (nyears, ny, nx)
    tot = gpp.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        gpp *= (target / np.where(tot > 0, tot, np.nan))[:, None]
    gpp = np.round(gpp.reshape(nyears * ncomp, ny, nx), 1)

    # ---------------------------------------------------------------- SOC
    mi_n = (mi - mi.min()) / max(mi.max() - mi.min(), 1e-9)
    soc = (1.0 + 5.5 * mi_n + 1.5 * np.isin(lc0, (1, 2, 3, 4, 5)) + 2.0 * (lc0 == 11)
           + 0.4 * f_soc)
    soc = np.clip(soc, 1.0, 8.0)
    soc[lc0 == 17] = np.nan

    arrays = {
        "tas": tas.astype(np.float32), "pr": pr.astype(np.float32),
        "sol": sol.astype(np.float32), "pet": pet.astype(np.float32),
        "ndvi": ndvi.astype(np.float32), "soc": soc.astype(np.float32),
        "npp_annual": npp.astype(np.float32), "gpp_8day": gpp.astype(np.float32),
        "landcover": lc,
    }
    coords = {
        "x": x, "y": y,
        "month": mtimes,
        "year": pd.DatetimeIndex([pd.Timestamp(int(yr), 1, 1) for yr in years]),
        "composite": ctimes, "ndays": ndays,
    }
    stable = (~changed) & ~np.isin(lc0, _NONVEG)
    truth_np = {
        "tas_trend": tas_trend, "pr_trend": pr_trend, "npp_relative": r_rel,
        "npp_trend": np.where(np.isin(lc0, _NONVEG), np.nan, base0 * r_rel),
        "ndvi_peak_trend": kappa * amp0 * r_rel,
        "ndvi_gs_trend": kappa * amp0 * r_rel * green_gs,
        "change_year": change_year, "stable": stable, "changed": changed,
        "t_mean": t_mean, "t_amp": t_amp, "p_clim": p_clim, "mi": mi, "cue": cue,
        "npp_base": np.where(np.isin(lc0, _NONVEG), np.nan, base0),
        "transitions": transitions, "transition_matrix": tm,
    }
    return _Built(arrays, coords, truth_np)


# --------------------------------------------------------------------------- xarray wrapping

_META = {
    "tas": ("degC", "near-surface air temperature (monthly mean)", "air_temperature"),
    "pr": ("mm month-1", "precipitation", "precipitation_amount"),
    "sol": ("MJ m-2 month-1", "surface downwelling shortwave radiation",
            "surface_downwelling_shortwave_flux_in_air"),
    "pet": ("mm month-1", "potential evapotranspiration (Hargreaves 1975)",
            "water_potential_evaporation_amount"),
    "ndvi": ("1", "normalized difference vegetation index",
             "normalized_difference_vegetation_index"),
    "soc": ("kg C m-2", "soil organic carbon density (0-20 cm)", None),
    "npp_annual": ("g C m-2 yr-1", "annual net primary production (MODIS MOD17A3HGF-like)",
                   "net_primary_productivity_of_biomass_expressed_as_carbon"),
    "gpp_8day": ("g C m-2", "gross primary production, cumulative sum over each 8-day composite "
                 "(MODIS MOD17A2HGF-like)",
                 "gross_primary_productivity_of_biomass_expressed_as_carbon"),
    "landcover": ("1", "land-cover class (IGBP, MCD12Q1 LC_Type1 convention)", "area_type"),
}

_CANONICAL = {"npp_annual": "npp", "gpp_8day": "gpp"}


def _spatial(da: xr.DataArray) -> xr.DataArray:
    da["x"].attrs.update(units="degrees_east", standard_name="longitude", long_name="longitude",
                         axis="X")
    da["y"].attrs.update(units="degrees_north", standard_name="latitude", long_name="latitude",
                         axis="Y")
    return da.rio.write_crs("EPSG:4326").rio.write_coordinate_system()


_FORMULA = {
    "tas": "T_mean(u,v) + T_amp(v) (-cos 2pi m/12) + (0.03 + 0.02 v)(t - yc) + anomalies",
    "pr": "annual P_clim(u)(1 + 0.18 z) + 1.5(0.4 + 1.2 u)(year - yc), monsoon monthly split",
    "sol": "FAO-56 extraterrestrial radiation x transmissivity (cloud from pr, +0.1 %/yr)",
    "pet": "Hargreaves 1975: 0.0135 max(tas + 17.8, 0) sol / 2.45",
    "ndvi": "s0 + (peak_y - s0) phi(tas) psi(pr); peak follows NPP vigour",
    "soc": "1 + 5.5 MI_n + 1.5 forest + 2 wetland + noise, clipped to [1, 8]",
    "npp_annual": "base(landcover, MI) (1 + r (year - yc) + 0.5 p' - 0.06 t' + noise)",
    "gpp_8day": "FPAR(ndvi) sol Tscalar shape, scaled to NPP_y / CUE per year",
    "landcover": "IGBP map from smooth scores with prescribed transitions",
}


def _label(da: xr.DataArray, key: str, seed: int) -> xr.DataArray:
    units, long_name, std = _META[key]
    da.attrs.update({"units": units, "long_name": long_name + " [SYNTHETIC]",
                     "source": SYNTHETIC_SOURCE, "synthetic": "true",
                     "comment": "SYNTHETIC demo data: " + _FORMULA[key]
                                + " (full recipe: carbonsink.demo.recipe())",
                     "demo_seed": str(int(seed)), "canonical_variable": _CANONICAL.get(key, key)})
    if std:
        da.attrs["standard_name"] = std
    return da


def _wrap(built: _Built, seed: int, chunks: Any = None) -> dict[str, xr.DataArray]:
    c = built.coords
    out: dict[str, xr.DataArray] = {}
    for key, arr in built.arrays.items():
        if key == "soc":
            dims, crd = ("y", "x"), {"y": c["y"], "x": c["x"]}
        elif key in ("npp_annual", "landcover"):
            dims, crd = ("time", "y", "x"), {"time": c["year"], "y": c["y"], "x": c["x"]}
        elif key == "gpp_8day":
            dims = ("time", "y", "x")
            crd = {"time": c["composite"], "y": c["y"], "x": c["x"],
                   "ndays": ("time", c["ndays"], {"units": "d", "long_name":
                                                  "number of days in the composite"})}
        else:
            dims, crd = ("time", "y", "x"), {"time": c["month"], "y": c["y"], "x": c["x"]}
        da = xr.DataArray(arr, dims=dims, coords=crd, name=key)
        if "time" in da.dims:
            da["time"].attrs["long_name"] = "start of period"
        if key == "landcover":
            da.attrs["flag_values"] = list(IGBP_NAMES)
            da.attrs["flag_meanings"] = " ".join(n.replace(" ", "_").replace("/", "_")
                                                 for n in IGBP_NAMES.values())
        da = _label(_spatial(da), key, seed)
        if key == "gpp_8day":
            da.attrs["cell_methods"] = "time: sum (interval: 8 days, last composite 5 or 6 days)"
        if chunks is not None:
            ch = chunks
            if isinstance(ch, dict):
                ch = {k: v for k, v in ch.items() if k in da.dims}
            da = da.chunk(ch)
        out[key] = da
    return out


def generate(seed: int = DEFAULT_SEED, ny: int = 150, nx: int = 150, start: int = 2001,
             end: int = 2021, chunks: Any = None) -> dict[str, xr.DataArray]:
    """Generate the synthetic demo inputs (deterministic for a given ``seed``).

    Returns a dict of DataArrays with canonical units (see :func:`recipe`):
    ``tas`` [degC], ``pr`` [mm month-1], ``sol`` [MJ m-2 month-1],
    ``pet`` [mm month-1], ``ndvi`` ["1"] (monthly, time = month starts);
    ``soc`` [kg C m-2] (y, x); ``npp_annual`` [g C m-2 yr-1] and ``landcover``
    [IGBP code, uint8] (yearly, time = Jan 1); ``gpp_8day`` [g C m-2 per
    composite] (time = composite start dates, coordinate ``ndays``).
    All arrays are float32 (landcover uint8), on EPSG:4326 with a
    ``spatial_ref`` coordinate, and carry ``source`` = "carbonsink synthetic
    demo data (not real observations)" and ``synthetic`` = "true".
    ``chunks`` (e.g. ``{"y": 50, "x": 50}``) returns dask-backed arrays.
    """
    built = _build(int(seed), int(ny), int(nx), int(start), int(end))
    return _wrap(built, int(seed), chunks)


def _truth_from_built(built: _Built, seed: int, start: int, end: int) -> DemoTruth:
    t = built.truth_np
    c = built.coords
    grid = {"y": c["y"], "x": c["x"]}

    def _da(arr, name, units, long_name):
        da = xr.DataArray(np.asarray(arr), dims=("y", "x"), coords=grid, name=name)
        da = _spatial(da)
        da.attrs.update(units=units, long_name=long_name + " [SYNTHETIC, prescribed]",
                        source=SYNTHETIC_SOURCE, synthetic="true")
        return da

    trends = {
        "tas": _da(t["tas_trend"].astype(np.float32), "tas_trend", "degC yr-1",
                   "prescribed trend of annual mean air temperature"),
        "pr": _da(t["pr_trend"].astype(np.float32), "pr_trend", "mm yr-2",
                  "prescribed trend of annual precipitation total"),
        "npp": _da(t["npp_trend"].astype(np.float32), "npp_trend", "g C m-2 yr-2",
                   "prescribed trend of annual NPP (valid where mask_stable)"),
        "npp_relative": _da(t["npp_relative"].astype(np.float32), "npp_relative_trend", "yr-1",
                            "prescribed relative trend of vegetation vigour / NPP"),
        "ndvi_peak": _da(t["ndvi_peak_trend"].astype(np.float32), "ndvi_peak_trend", "yr-1",
                         "prescribed trend of peak (potential) NDVI"),
        "ndvi_gs": _da(t["ndvi_gs_trend"].astype(np.float32), "ndvi_gs_trend", "yr-1",
                       "expected trend of May-Sep mean NDVI (approximate)"),
    }
    lat = np.deg2rad(c["y"])
    wy = np.sin(lat + np.deg2rad(RES / 2)) - np.sin(lat - np.deg2rad(RES / 2))
    wgt = np.broadcast_to(wy[:, None], t["tas_trend"].shape)
    stable = t["stable"]

    def _wmean(a, mask=None):
        a = np.asarray(a, float)
        ok = np.isfinite(a) if mask is None else (np.isfinite(a) & mask)
        return float((a * wgt)[ok].sum() / wgt[ok].sum())

    regional = {
        "tas_degC_per_yr": _wmean(t["tas_trend"]),
        "pr_mm_per_yr2": _wmean(t["pr_trend"]),
        "npp_g_per_m2_yr2_stable": _wmean(t["npp_trend"], stable),
        "npp_relative_per_yr_stable": _wmean(t["npp_relative"], stable),
        "ndvi_peak_per_yr_stable": _wmean(t["ndvi_peak_trend"], stable),
        "ndvi_gs_per_yr_stable": _wmean(t["ndvi_gs_trend"], stable),
        "sol_relative_per_yr": float(PRESCRIBED["sol_trend_relative_per_yr"]),
        "npp_negative_trend_fraction_stable": float(
            (t["npp_trend"][stable] < 0).mean()) if stable.any() else float("nan"),
    }
    couplings = {
        "npp_pr_elasticity": PRESCRIBED["npp_pr_elasticity"],
        "npp_tas_sensitivity_per_degC": PRESCRIBED["npp_tas_sensitivity_per_degC"],
        "ndvi_vigour_sensitivity": PRESCRIBED["ndvi_vigour_sensitivity"],
        "sol_pr_cloud_factor": "tau *= 1 - 0.30 pr/(pr + 60)",
        "pet_formula": "0.0135 max(tas + 17.8, 0) sol / 2.45 (Hargreaves 1975)",
        "expected_signs": {
            "npp_annual~pr_annual (detrended)": "+",
            "npp_annual~tas_annual (partial, detrended)": "-",
            "ndvi_growing_season~pr_annual (detrended)": "+",
            "nep~pr_annual (detrended)": "+",
            "sol~pr (monthly)": "-",
            "pet~tas (monthly)": "+",
        },
    }
    change = xr.DataArray(t["change_year"], dims=("y", "x"), coords=grid, name="change_year")
    change = _spatial(change)
    change.attrs.update(units="1", long_name="year of the prescribed land-cover change "
                        "(0 = none) [SYNTHETIC]", source=SYNTHETIC_SOURCE, synthetic="true")
    masks = {
        "stable": _da(t["stable"], "stable", "1",
                      "vegetated pixels whose land cover never changes"),
        "changed": _da(t["changed"], "changed", "1", "pixels with a prescribed land-cover change"),
    }
    fields = {
        "tas_mean": _da(t["t_mean"].astype(np.float32), "tas_mean", "degC",
                        "climatological annual mean temperature (at the centre year)"),
        "tas_amplitude": _da(t["t_amp"].astype(np.float32), "tas_amplitude", "degC",
                             "seasonal half-range of temperature"),
        "pr_annual_mean": _da(t["p_clim"].astype(np.float32), "pr_annual_mean", "mm yr-1",
                              "climatological annual precipitation (at the centre year)"),
        "moisture_index": _da(t["mi"].astype(np.float32), "moisture_index", "1",
                              "P/(P + 250 mm)"),
        "cue": _da(t["cue"].astype(np.float32), "cue", "1", "carbon-use efficiency NPP/GPP"),
        "npp_base": _da(t["npp_base"].astype(np.float32), "npp_base", "g C m-2 yr-1",
                        "base NPP of the first-year land cover at the centre year"),
    }
    return DemoTruth(seed=seed, start=start, end=end, trends=trends, regional_trends=regional,
                     couplings=couplings, transition_matrix=t["transition_matrix"],
                     transitions=t["transitions"], change_year=change, masks=masks,
                     fields=fields)


@lru_cache(maxsize=4)
def truth(seed: int = DEFAULT_SEED, ny: int = 150, nx: int = 150, start: int = 2001,
          end: int = 2021) -> DemoTruth:
    """Prescribed values of the demo generated with the same arguments (cached)."""
    built = _build(int(seed), int(ny), int(nx), int(start), int(end))
    return _truth_from_built(built, int(seed), int(start), int(end))


def generate_with_truth(seed: int = DEFAULT_SEED, ny: int = 150, nx: int = 150,
                        start: int = 2001, end: int = 2021, chunks: Any = None
                        ) -> tuple[dict[str, xr.DataArray], DemoTruth]:
    """:func:`generate` and :func:`truth` in one pass."""
    built = _build(int(seed), int(ny), int(nx), int(start), int(end))
    return _wrap(built, int(seed), chunks), _truth_from_built(built, int(seed), int(start),
                                                              int(end))


# --------------------------------------------------------------------------- writing


@contextmanager
def _atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename onto it on success.

    Uses :func:`carbonsink.io.atomic.atomic_write` when available, else a
    minimal local equivalent (temp file in the same directory + ``os.replace``).
    """
    try:
        from carbonsink.io.atomic import atomic_write
    except ImportError:  # pragma: no cover - io not installed
        atomic_write = None
    if atomic_write is not None:
        with atomic_write(path) as tmp:
            yield Path(tmp)
        return
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                               dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _write_netcdf(ds: xr.Dataset, path: Path, encoding: dict) -> None:
    with _atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="netcdf4", encoding=encoding, format="NETCDF4")


def _geotiff_profile(ny: int, nx: int, x: np.ndarray, y: np.ndarray, dtype: str, nodata,
                     count: int = 1) -> dict:
    from rasterio.transform import from_origin

    gx, gy = _grid_centres(ny, nx)
    if np.array_equal(gx, x) and np.array_equal(gy, y):
        transform = _grid_transform(ny)
    else:  # arrays not from generate(): derive the transform from the coordinates
        rx = (x[-1] - x[0]) / max(nx - 1, 1) if nx > 1 else RES
        ry = (y[0] - y[-1]) / max(ny - 1, 1) if ny > 1 else RES
        transform = from_origin(float(x[0]) - rx / 2, float(y[0]) + ry / 2, rx, ry)
    return {"driver": "GTiff", "height": ny, "width": nx, "count": count, "dtype": dtype,
            "crs": "EPSG:4326", "nodata": nodata, "transform": transform,
            "compress": "deflate", "tiled": False, "interleave": "band"}


def write_demo_inputs(out_dir: str | os.PathLike, seed: int = DEFAULT_SEED, *,
                      data: dict[str, xr.DataArray] | None = None,
                      write_truth: bool = True, **kw: Any) -> dict[str, dict[str, Any]]:
    """Write the synthetic demo inputs to ``out_dir`` in several real formats.

    Files (all labelled synthetic in their metadata; every write is atomic):

    * ``climate.nc`` — NetCDF4/CF (zlib), variables ``tas`` (int16, CF
      ``scale_factor`` 0.01, "degC"), ``pr`` (int16, units "0.1 mm month-1":
      stored tenths of mm, *no* CF scale factor, so the reader's unit
      conversion is exercised), ``sol`` (int16, ``scale_factor`` 0.1,
      "MJ m-2 month-1"), ``pet`` (int16, ``scale_factor`` 0.1, "mm month-1");
      CRS via ``grid_mapping`` = ``spatial_ref``.
    * ``ndvi/NDVI_YYYYMM.tif`` — one single-band GeoTIFF per month, int16 DN,
      scale 0.0001, nodata −3000 (MOD13A3-like).
    * ``soc.tif`` — float32 GeoTIFF in "t C ha-1" (= 10 × kg C m-2),
      nodata −9999 (the lake).
    * ``modis_npp_annual.nc`` — ``Npp`` int16 DN, CF ``scale_factor`` 0.0001,
      units "kg C m-2 yr-1", ``_FillValue`` 32767 (water/barren/urban),
      time = Jan 1 (MOD17A3HGF-like).
    * ``modis_gpp_8day.nc`` — ``Gpp`` int16 DN, ``scale_factor`` 0.0001, units
      "kg C m-2" per composite, ``_FillValue`` 32767, time = composite start,
      coordinate ``ndays`` (MOD17A2HGF-like).
    * ``landcover.tif`` — uint8 multi-band GeoTIFF, one band per year (band
      description = year), nodata 255, IGBP codes.
    * ``demo_truth.nc`` / ``demo_truth.json`` / ``README.txt`` (when
      ``write_truth``): the prescribed values and a synthetic-data notice.

    ``data`` reuses arrays from :func:`generate` (must match ``seed``/``kw``);
    ``kw`` are passed to :func:`generate` (``ny``, ``nx``, ``start``, ``end``).
    Returns the ``inputs:`` mapping of a study file (YAML-serialisable):
    role → ``{path, variable, units, frequency, ...}`` with paths relative to
    ``out_dir``.
    """
    import rasterio

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    truth_obj = None
    if data is None:
        if write_truth:
            data, truth_obj = generate_with_truth(seed, **kw)
        else:
            data = generate(seed, **kw)
    elif write_truth:
        truth_obj = truth(seed, **kw)
    gattrs = dataset_attrs(seed)

    # ---- climate.nc
    clim = xr.Dataset({k: data[k] for k in ("tas", "pr", "sol", "pet")})
    clim["pr"] = (clim["pr"] * 10.0).round().astype(np.int16)
    clim["pr"].attrs = dict(data["pr"].attrs, units="0.1 mm month-1",
                            comment="stored in tenths of a millimetre per month (no CF scale "
                                    "factor): value x 0.1 = mm month-1")
    clim.attrs.update(gattrs)
    clim = clim.rio.write_crs("EPSG:4326")
    for k in ("tas", "pr", "sol", "pet"):
        clim[k].attrs["grid_mapping"] = "spatial_ref"
        clim[k].encoding = {}
    enc = {k: {"zlib": True, "complevel": 1, "shuffle": True,
               "chunksizes": (12, clim.sizes["y"], clim.sizes["x"])}
           for k in ("tas", "pr", "sol", "pet")}
    # tas, sol, pet: int16 with a CF scale_factor (decoded by any CF reader);
    # the generator already rounds them to these precisions
    for k, sf in (("tas", 0.01), ("sol", 0.1), ("pet", 0.1)):
        enc[k].update(dtype="int16", scale_factor=np.float32(sf), add_offset=np.float32(0.0),
                      _FillValue=np.int16(-32768))
    enc["time"] = {"units": f"days since {int(pd.Timestamp(clim.time.values[0]).year)}-01-01",
                   "calendar": "proleptic_gregorian", "dtype": "int32"}
    _write_netcdf(clim, out / "climate.nc", enc)

    # ---- NDVI monthly GeoTIFFs
    nd = data["ndvi"]
    ny, nx = nd.sizes["y"], nd.sizes["x"]
    xs, ys = nd["x"].values, nd["y"].values
    (out / "ndvi").mkdir(exist_ok=True)
    dn_all = np.round(nd.values / 0.0001)
    dn_all = np.where(np.isfinite(dn_all), dn_all, -3000).astype(np.int16)
    prof = _geotiff_profile(ny, nx, xs, ys, "int16", -3000)
    for i, t in enumerate(pd.DatetimeIndex(nd["time"].values)):
        path = out / "ndvi" / f"NDVI_{t.year:04d}{t.month:02d}.tif"
        with _atomic_path(path) as tmp:
            with rasterio.open(tmp, "w", **prof) as dst:
                dst.write(dn_all[i], 1)
                dst.scales = (0.0001,)
                dst.offsets = (0.0,)
                dst.units = ("1",)
                dst.set_band_description(1, "NDVI")
                dst.update_tags(1, long_name=nd.attrs["long_name"])
                dst.update_tags(units="1", date=t.strftime("%Y-%m-%d"), **_tif_tags(gattrs))
    del dn_all

    # ---- soc.tif (t C ha-1)
    soc = data["soc"].values.astype(np.float32) * np.float32(10.0)
    soc = np.where(np.isfinite(soc), soc, -9999.0).astype(np.float32)
    with _atomic_path(out / "soc.tif") as tmp:
        with rasterio.open(tmp, "w", **_geotiff_profile(ny, nx, xs, ys, "float32", -9999.0)) as dst:
            dst.write(soc, 1)
            dst.units = ("t C ha-1",)
            dst.set_band_description(1, "soc")
            dst.update_tags(1, long_name="soil organic carbon density (0-20 cm) [SYNTHETIC]")
            dst.update_tags(units="t C ha-1", **_tif_tags(gattrs))

    # ---- MODIS-like NPP / GPP NetCDF (int16 DN, scale 0.0001 kg C m-2)
    for key, fname, var, units in (("npp_annual", "modis_npp_annual.nc", "Npp", "kg C m-2 yr-1"),
                                   ("gpp_8day", "modis_gpp_8day.nc", "Gpp", "kg C m-2")):
        # kg C m-2 so that xarray's CF encoder stores DN = value / 0.0001
        da = (data[key].astype(np.float64) / 1000.0)
        da.attrs = dict(data[key].attrs, units=units,
                        comment="SYNTHETIC, MODIS-like: stored as int16 DN x 0.0001 kg C m-2; "
                                "non-vegetated (water, barren, urban) = _FillValue")
        da.name = var
        ds = da.to_dataset()
        ds[var].attrs["grid_mapping"] = "spatial_ref"
        ds.attrs.update(gattrs)
        e = {var: {"dtype": "int16", "scale_factor": np.float32(0.0001),
                   "add_offset": np.float32(0.0),
                   "_FillValue": np.int16(32767), "zlib": True, "complevel": 1,
                   "shuffle": True},
             "time": {"units": f"days since {int(pd.Timestamp(ds.time.values[0]).year)}-01-01",
                      "calendar": "proleptic_gregorian", "dtype": "int32"}}
        if "ndays" in ds.coords:
            e["ndays"] = {"dtype": "int16"}
        _write_netcdf(ds, out / fname, e)

    # ---- landcover.tif, one band per year
    lc = data["landcover"]
    lyears = [int(pd.Timestamp(t).year) for t in lc["time"].values]
    with _atomic_path(out / "landcover.tif") as tmp:
        with rasterio.open(tmp, "w", **_geotiff_profile(ny, nx, xs, ys, "uint8", 255,
                                                        count=len(lyears))) as dst:
            dst.write(np.asarray(lc.values, dtype=np.uint8))
            for b, yr in enumerate(lyears, start=1):
                dst.set_band_description(b, f"{yr}-01-01")
                dst.update_tags(b, date=f"{yr}-01-01")
            dst.update_tags(units="1", scheme="IGBP (MCD12Q1 LC_Type1 convention)",
                            **_tif_tags(gattrs))

    # ---- truth + notice
    if write_truth and truth_obj is not None:
        tds = truth_obj.to_dataset()
        for k in tds.data_vars:
            tds[k].attrs.pop("grid_mapping", None)
            tds[k].encoding["grid_mapping"] = "spatial_ref"
        _write_netcdf(tds, out / "demo_truth.nc", {})
        with _atomic_path(out / "demo_truth.json") as tmp:
            tmp.write_text(json.dumps(truth_obj.to_dict(), indent=1))
    with _atomic_path(out / "README.txt") as tmp:
        tmp.write_text(
            "SYNTHETIC DATA - carbonsink built-in demo (not real observations).\n"
            f"Generated by carbonsink.demo.write_demo_inputs(seed={int(seed)}).\n"
            "Recipe: python -c 'import carbonsink.demo as d; print(d.recipe())'\n"
            "Prescribed trends, couplings and land-cover transitions: demo_truth.json, "
            "demo_truth.nc.\n")

    band_dates = [f"{yr}-01-01" for yr in lyears]
    return {
        "tas": {"path": "climate.nc", "variable": "tas", "units": "degC", "frequency": "month"},
        "pr": {"path": "climate.nc", "variable": "pr", "units": "0.1 mm month-1",
               "frequency": "month"},
        "sol": {"path": "climate.nc", "variable": "sol", "units": "MJ m-2 month-1",
                "frequency": "month"},
        "pet": {"path": "climate.nc", "variable": "pet", "units": "mm month-1",
                "frequency": "month"},
        "ndvi": {"path": "ndvi/NDVI_*.tif", "variable": "ndvi", "units": "1",
                 "frequency": "month",
                 "date_pattern": r"NDVI_(?P<year>\d{4})(?P<month>\d{2})"},
        "soc": {"path": "soc.tif", "variable": "soc", "units": "t C ha-1",
                "frequency": "static"},
        "npp_annual": {"path": "modis_npp_annual.nc", "variable": "Npp",
                       "units": "kg C m-2 yr-1", "frequency": "year"},
        "gpp_8day": {"path": "modis_gpp_8day.nc", "variable": "Gpp", "units": "kg C m-2",
                     "frequency": "8day"},
        "landcover": {"path": "landcover.tif", "variable": "landcover", "units": "1",
                      "frequency": "year", "band_dates": band_dates},
    }


def _tif_tags(gattrs: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in gattrs.items()
            if k in ("title", "source", "synthetic", "comment", "demo_seed")}
