"""Net primary production (NPP) models — carbonsink docs/methods.md §2.1, §2.2, §2.5.

* :func:`modis_monthly` — MOD17A3HGF annual NPP downscaled to months with the
  seasonal shape of 8-day MOD17A2H(GF) GPP (paper 000 Eq. 1–2, §2.1).
* :func:`casa` — the CASA light-use-efficiency model with the China
  parameterisation (Potter et al. 1993; Piao et al. 2001; Zhu et al. 2006/2007),
  built from the public components :func:`fpar_ndvi_sr`, :func:`fpar_minmax`,
  :func:`apar`, :func:`optimum_temperature`, :func:`tepsilon1`,
  :func:`tepsilon2`, :func:`wepsilon`, :func:`light_use_efficiency` and the
  parameter tables :func:`epsilon_max_table` / :func:`landcover_table`
  (package data under ``carbonsink/flux/data``).
* :func:`miami`, :func:`thornthwaite_memorial` — potential NPP from annual
  climate (§2.5).

numpy inputs are in the units given in brackets with time on axis 0;
DataArrays must carry compatible ``units`` and a ``time`` coordinate of period
starts; dask-backed inputs stay lazy (see :mod:`carbonsink.flux._util`).
"""

from __future__ import annotations

import csv
import functools
import io
import importlib.resources
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .._xrutil import keep_coord_attrs
from ..errors import AlignmentError, InputError, InsufficientDataError
from . import _kernels as K
from .._engine import (apply_time_kernel, apply_time_major, elementwise, float_dtype, is_dask, is_xr,
                       run_time_kernel)
from ._util import calendar_of, check_mode, choice, finish, prep, time_length
from .rh import _warn_count
from .water import thornthwaite_pet

__all__ = [
    "modis_monthly", "composite_month_matrix",
    "casa", "fpar_ndvi_sr", "fpar_minmax", "apar", "optimum_temperature", "tepsilon1",
    "tepsilon2", "wepsilon", "light_use_efficiency", "ndvi_percentile_bounds",
    "epsilon_max_table", "landcover_table", "vegetation_types", "epsilon_max_from_landcover",
    "miami", "thornthwaite_memorial", "TE2_C_RECOMMENDED", "TE2_C_PAPER",
]

_REF_MODIS = ("Running S.W. & Zhao M. MOD17 (MOD17A3HGF, MOD17A2H/A2HGF); downscaling as in "
              "seed paper 000 Eq. 1-2")
_REF_CASA = ("Potter C.S. et al. (1993) Glob. Biogeochem. Cycles 7:811; Piao S.L. et al. (2001) "
             "Chin. J. Plant Ecol. 25:603; Zhu W.Q. et al. (2006) Chin. Sci. Bull. 51:457; "
             "Zhu W.Q. et al. (2007) Chin. J. Plant Ecol. 31:413")
_REF_MIAMI = "Lieth H. (1972/1975) Miami model"
_REF_TM = "Lieth H. & Box E. (1972) Thornthwaite Memorial model"

#: Potter's Tε2 constant (recommended) and the value printed by paper 000
TE2_C_RECOMMENDED = 1.1814
TE2_C_PAPER = 1.184

# =========================================================================== tables


@functools.lru_cache(maxsize=None)
def _read_csv(name: str) -> tuple[dict, ...]:
    text = importlib.resources.files("carbonsink.flux").joinpath("data").joinpath(name).read_text("utf-8")
    return tuple(csv.DictReader(io.StringIO(text)))


def epsilon_max_table() -> dict[str, float]:
    """ε_max [g C MJ-1] by vegetation type (Zhu et al. 2006), from ``data/epsilon_max.csv``."""
    return {r["vegetation_type"]: float(r["epsilon_max"]) for r in _read_csv("epsilon_max.csv")}


def vegetation_types() -> tuple[str, ...]:
    """The CASA vegetation types, in table order (index used for class arrays)."""
    return tuple(r["vegetation_type"] for r in _read_csv("epsilon_max.csv"))


def landcover_table(lc_table: Any = None) -> dict[int, str]:
    """Land-cover code → CASA vegetation type (``"non_vegetated"`` = masked).

    Default: ``data/igbp_casa.csv``, IGBP codes of MCD12Q1 ``LC_Type1`` (1–17)
    which also serves MCD12C1 (0 = water there; 0 = unclassified in MCD12Q1:
    both masked).  ``lc_table`` may be a mapping ``{code: vegetation_type}``
    or the path of a CSV with columns ``igbp_code`` (or ``code``) and
    ``vegetation_type``.  Vegetation types are those of
    :func:`vegetation_types` or ``non_vegetated``.
    """
    if lc_table is None:
        rows = _read_csv("igbp_casa.csv")
        return {int(r["igbp_code"]): r["vegetation_type"] for r in rows}
    if isinstance(lc_table, Mapping):
        table = {int(k): str(v) for k, v in lc_table.items()}
    elif isinstance(lc_table, (str, os.PathLike)):
        with open(lc_table, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
        key = "igbp_code" if rows and "igbp_code" in rows[0] else "code"
        try:
            table = {int(r[key]): r["vegetation_type"] for r in rows}
        except KeyError as exc:
            raise InputError(f"land-cover table {lc_table} needs columns 'igbp_code' (or "
                             "'code') and 'vegetation_type'") from exc
    else:
        raise InputError("lc_table must be None, a mapping {code: vegetation_type} or a CSV path")
    valid = set(vegetation_types()) | {"non_vegetated"}
    bad = sorted({v for v in table.values() if v not in valid})
    if bad:
        raise InputError(f"unknown vegetation types {bad} in lc_table; valid: {sorted(valid)}")
    return table


def _code_arrays(lc_table: Any, emax: Mapping[str, float] | None):
    table = landcover_table(lc_table)
    types = vegetation_types()
    etab = epsilon_max_table()
    if emax:
        unknown = sorted(set(emax) - set(types))
        if unknown:
            raise InputError(f"epsilon_max mapping has unknown vegetation types {unknown}; "
                             f"valid: {list(types)}")
        etab.update({k: float(v) for k, v in emax.items()})
    size = max(max(table) + 1, 256)
    cls = np.full(size, -1, dtype=np.int16)
    eps = np.full(size, np.nan, dtype=np.float64)
    for code, vt in table.items():
        if vt != "non_vegetated" and code >= 0:
            cls[code] = types.index(vt)
            eps[code] = etab[vt]
    return cls, eps


def _cloned(x: Any) -> Any:
    """``x`` with its dask graph keys renamed (same values): a reduction over the whole region
    built on the clone does not keep the chunks of ``x`` alive for the per-pixel graph."""
    if is_xr(x) and x.chunks is not None:
        from dask.graph_manipulation import clone

        return x.copy(data=clone(x.data))
    return x


def _lc_monthly(lc: Any, like: Any, time_dim: str, time: Any) -> Any:
    """Static (y, x) land cover as is; yearly (time, y, x) mapped to the months of ``like``."""
    has_time = (is_xr(lc) and time_dim in lc.dims) or (not is_xr(lc) and np.ndim(lc) ==
                                                       np.ndim(like) and np.ndim(like) > 0)
    if not has_time:
        return lc
    cal = calendar_of(like, time_dim, time, time_length(like, time_dim), assume_years=True)
    if is_xr(lc):
        lc_years = lc[time_dim].dt.year.values
    else:
        lc_years = np.unique(cal.years)
        if len(lc_years) != np.shape(lc)[0]:
            raise InputError("a yearly numpy land cover needs one layer per calendar year of the "
                             "time axis")
    pos = np.searchsorted(lc_years, cal.years)
    missing = sorted(set(cal.years.tolist()) - set(lc_years.tolist()))
    if missing:
        raise InsufficientDataError(f"land cover has no layer for years {missing}; give a "
                                    "static (y, x) land cover or one layer per year")
    if is_xr(lc):
        out = lc.isel({time_dim: xr.DataArray(pos, dims=(time_dim,))})
        if out.chunks is not None and is_xr(like) and like.chunks is not None:
            # the indexing makes a chunk per year; follow the time chunks of ``like``
            out = out.chunk({time_dim: like.chunksizes[time_dim]})
        return out.assign_coords({time_dim: like[time_dim]})
    return np.asarray(lc)[pos]


def epsilon_max_from_landcover(landcover: Any, *, lc_table: Any = None,
                               epsilon_max: Mapping[str, float] | None = None):
    """Map land-cover codes to ε_max [g C MJ-1] (NaN for non-vegetated classes).

    ``landcover`` integer codes [1] (IGBP by default, see :func:`landcover_table`);
    ``epsilon_max`` optionally overrides table values by vegetation type.
    carbonsink docs/methods.md §2.2.3 (Zhu et al. 2006 table).
    """
    _, eps = _code_arrays(lc_table, epsilon_max)
    return _lookup(landcover, eps, np.nan)


def _lookup(codes: Any, table: np.ndarray, fill: float):
    from ._util import lookup
    if is_xr(codes) and "units" in codes.attrs:
        codes = prep(codes, "1", "landcover")
    return lookup(codes, table, fill)


# =========================================================================== MODIS


def composite_month_matrix(starts: Any, ndays: Any, year: int, split: str = "days") -> np.ndarray:
    """Assignment matrix A (n_composites, 12) of one calendar year's 8-day composites.

    ``split="days"``: A[k, m] = (days of composite k in month m) / ndays_k (each
    day gets the composite's daily rate); ``split="start"``: A[k, m] = 1 for
    the month of the composite's start date (paper 000). Rows sum to 1.
    """
    choice("split", split, ("days", "start"))
    starts = pd.DatetimeIndex(starts)
    ndays = np.asarray(ndays, dtype=int)
    a = np.zeros((len(starts), 12))
    first_day = starts.values.astype("datetime64[D]")
    for k in range(len(starts)):  # loop over the ~46 composites of a year (graph build only)
        if split == "start":
            a[k, starts[k].month - 1] = 1.0
            continue
        days = first_day[k] + np.arange(int(ndays[k]))
        months = days.astype("datetime64[M]").astype(np.int64) % 12
        np.add.at(a[k], months, 1.0 / ndays[k])
    return a


def _composite_days(starts: pd.DatetimeIndex, composite_days: int) -> np.ndarray:
    year_end = pd.DatetimeIndex([pd.Timestamp(year=y + 1, month=1, day=1) for y in starts.year])
    ends = np.minimum((starts + pd.Timedelta(days=composite_days)).values, year_end.values)
    return ((ends - starts.values) / np.timedelta64(1, "D")).astype(int)


def modis_monthly(npp_annual: Any, gpp_8day: Any, *, split: str | None = None,
                  negative_npp: str = "propagate", mode: str = "recommended",
                  composite_days: int = 8, time_dim: str = "time", npp_time: Any = None,
                  gpp_time: Any = None):
    """Monthly NPP [g C m-2 month-1] from annual MODIS NPP and 8-day GPP (000 Eq. 1–2).

    ::

        GPP_y = Σ_k GPP_k                  (composites k of calendar year y)
        NPP_k = (GPP_k / GPP_y) · NPP_y    (000 Eq. 1)
        NPP_m = Σ_k NPP_k · A[k, m]        (000 Eq. 2)

    ``npp_annual`` [g C m-2 yr-1] with one step per calendar year (time
    coordinate = Jan 1); ``gpp_8day`` [g C m-2 per composite] with time = the
    composite start dates (MODIS: DOY 1, 9, …, 361).  The day count of
    composite k is taken from a coordinate ``ndays`` along time if present,
    else ``min(composite_days, days left in the year)`` (the last MODIS
    composite spans 5 days, 6 in leap years).  Each year's composites must
    cover the year exactly (else :class:`InsufficientDataError`).

    ``split="days"`` (recommended): the daily rate NPP_k/ndays_k is given to
    every day of composite k and days are summed per calendar month;
    ``split="start"`` (``mode="paper"``): each composite goes wholly to the month
    of its start date.  Either way Σ_m NPP_m = NPP_y by construction.

    Edge cases (carbonsink docs/methods.md §2.1): GPP_y = 0 → 0 if NPP_y = 0 else NaN; any NaN
    composite → NaN for that year; NPP_y < 0 → ``negative_npp="propagate"``
    (default; counted in ``attrs["n_negative_npp"]`` for in-memory input) or
    ``"zero"`` (treated as 0).

    Output: time = month starts of the years of ``npp_annual`` (all must have
    composites).  numpy input: axis 0 is time; give ``gpp_time`` (composite
    start dates) and optionally ``npp_time`` (default: the calendar years of
    ``gpp_time``); the result has 12 × n_years steps on axis 0.
    The computation is one matrix product per year over the composite axis
    (vectorised over pixels; one dask task per spatial chunk).

    carbonsink docs/methods.md §2.1, §10.
    """
    check_mode(mode)
    if split is None:
        split = "start" if mode == "paper" else "days"
    choice("split", split, ("days", "start"))
    choice("negative_npp", negative_npp, ("propagate", "zero"))
    npp = prep(npp_annual, "g C m-2 yr-1", "npp_annual", time_dim=time_dim)
    gpp = prep(gpp_8day, "g C m-2", "gpp_8day", time_dim=time_dim)
    if is_xr(gpp):
        if time_dim not in gpp.coords:
            raise InputError(f"gpp_8day needs a '{time_dim}' coordinate of composite start dates")
        starts = pd.DatetimeIndex(gpp[time_dim].values)
        ndays = (np.asarray(gpp["ndays"].values, dtype=int) if "ndays" in gpp.coords
                 else _composite_days(starts, composite_days))
    else:
        if gpp_time is None:
            raise InputError("numpy gpp_8day needs gpp_time= (composite start dates of axis 0)")
        starts = pd.DatetimeIndex(pd.to_datetime(np.asarray(gpp_time)))
        if len(starts) != np.shape(gpp)[0]:
            raise InputError("gpp_time must have one date per step of axis 0 of gpp_8day")
        ndays = _composite_days(starts, composite_days)
    if len(starts) > 1 and np.any(np.diff(starts.values).astype("int64") <= 0):
        raise InputError("gpp_8day composites must be sorted by start date")
    if is_xr(npp):
        npp_years = npp[time_dim].dt.year.values
    elif npp_time is not None:
        npp_years = pd.DatetimeIndex(pd.to_datetime(np.asarray(npp_time))).year.values
    else:
        npp_years = np.unique(starts.year.values)
    if len(npp_years) != (npp.sizes[time_dim] if is_xr(npp) else np.shape(npp)[0]):
        raise InputError("npp_annual must have one step per calendar year (npp_time= for numpy)")
    missing = sorted(set(npp_years.tolist()) - set(starts.year.tolist()))
    if missing:
        raise InsufficientDataError(f"gpp_8day has no composites for years {missing} of "
                                    "npp_annual; trim npp_annual or supply the composites")
    blocks, sel = [], []
    for y in npp_years:
        idx = np.flatnonzero(starts.year.values == y)
        s, nd = starts[idx], ndays[idx]
        ends = s + pd.to_timedelta(nd, unit="D")
        ylen = 366 if pd.Timestamp(year=int(y), month=1, day=1).is_leap_year else 365
        contiguous = (s[0] == pd.Timestamp(year=int(y), month=1, day=1)
                      and np.all(ends[:-1] == s[1:]) and int(nd.sum()) == ylen)
        if not contiguous:
            raise InsufficientDataError(
                f"year {int(y)}: the 8-day composites cover {int(nd.sum())} of {ylen} days (or "
                "leave gaps); every year needs its full set of composites (MOD17A2HGF)")
        k0 = len(sel)
        sel.extend(idx.tolist())
        blocks.append((k0, len(sel), composite_month_matrix(s, nd, int(y), split)))
    sel = np.asarray(sel)
    nyear = len(npp_years)
    dtype = float_dtype(npp, gpp)
    zero_neg = negative_npp == "zero"

    amat = np.concatenate([a for _, _, a in blocks], axis=0)
    comp_year = np.concatenate([np.full(k1 - k0, j, dtype=np.int64)
                                for j, (k0, k1, _) in enumerate(blocks)])

    def kernel(t2, s2):
        return K.modis_kernel(t2[0], t2[1], amat, comp_year, nyear, zero_neg)

    months = pd.DatetimeIndex([pd.Timestamp(year=int(y), month=m, day=1)
                               for y in npp_years for m in range(1, 13)])
    if is_xr(npp) or is_xr(gpp):
        if not (is_xr(npp) and is_xr(gpp)):
            raise InputError("npp_annual and gpp_8day must both be DataArrays or both numpy")
        g_sel = gpp.isel({time_dim: sel}).drop_vars(
            [c for c in gpp.coords if time_dim in gpp[c].dims], errors="ignore")
        n_in = npp.drop_vars([c for c in npp.coords if time_dim in npp[c].dims], errors="ignore")
        try:
            out = apply_time_major(
                kernel, [n_in.rename({time_dim: "_year"}), g_sel.rename({time_dim: "_composite"})],
                [], core_dims=["_year", "_composite"], out_dim=time_dim, out_size=12 * nyear,
                dtype=dtype)
        except (ValueError, AlignmentError) as exc:
            raise AlignmentError(f"npp_annual and gpp_8day are not on the same grid: {exc}. "
                                 "Fix: regrid both onto one grid (carbonsink.cube.regrid)") from exc
        out = keep_coord_attrs(out, npp, gpp)
        out = out.assign_coords({time_dim: months.values})
    else:
        out = run_time_kernel(kernel, [np.asarray(npp), np.asarray(gpp)[sel]], [],
                              core_last=False, dtype=dtype)
    extra: dict[str, Any] = {"negative_npp": negative_npp}
    if negative_npp == "propagate":
        _warn_count(npp, npp < 0, extra, "n_negative_npp",
                    "modis_monthly: {n} pixel-years with NPP_y < 0 propagated to monthly NPP")
    return finish(out, name="npp", units="g C m-2 month-1",
                  long_name="net primary production (MODIS annual NPP downscaled by 8-day GPP)",
                  model="modis_monthly",
                  parameters={"split": split, "negative_npp": negative_npp, "mode": mode,
                              "composite_days": composite_days},
                  reference=_REF_MODIS, section="§2.1", extra=extra)


# =========================================================================== CASA components


def fpar_ndvi_sr(ndvi: Any, ndvi_min: Any, ndvi_max: Any, *, fpar_min: float = 0.001,
                 fpar_max: float = 0.95, alpha: float = 0.5):
    """FPAR from NDVI and simple ratio with class bounds (Zhu et al. 2006/2007) [1].

    ::

        NDVI ← clip(NDVI, NDVI_min,i, NDVI_max,i);  SR = (1 + NDVI)/(1 − NDVI)
        FPAR_NDVI = (NDVI − NDVI_min,i)/(NDVI_max,i − NDVI_min,i)·(FPAR_max − FPAR_min) + FPAR_min
        FPAR_SR   = (SR − SR_min,i)/(SR_max,i − SR_min,i)·(FPAR_max − FPAR_min) + FPAR_min
        FPAR      = clip(α·FPAR_NDVI + (1 − α)·FPAR_SR, FPAR_min, FPAR_max)

    ``ndvi`` [1]; ``ndvi_min``/``ndvi_max`` [1] the bounds of the pixel's
    vegetation type (5th/95th percentiles, see :func:`ndvi_percentile_bounds`),
    broadcastable to ``ndvi``; SR bounds follow from them.  NaN in → NaN out.
    References: Potter et al. (1993); Zhu et al. (2006, 2007). carbonsink docs/methods.md §2.2.2
    (NDVI 0.6, grassland 0.023/0.634 → FPAR 0.859).
    """
    n = prep(ndvi, "1", "ndvi")
    out = elementwise(K.fpar_zhu_uf, n, ndvi_min, ndvi_max, fpar_min, fpar_max, alpha)
    return finish(out, name="fpar", units="1", long_name="fraction of absorbed PAR",
                  model="casa_fpar_ndvi_sr",
                  parameters={"fpar_min": fpar_min, "fpar_max": fpar_max, "alpha": alpha},
                  reference=_REF_CASA, section="§2.2.2")


def fpar_minmax(ndvi: Any, ndvi_min: Any, ndvi_max: Any):
    """FPAR by min–max NDVI scaling as in paper 000 (``mode="paper"``) [1].

    ``FPAR = clip((NDVI − NDVI_min)/(NDVI_max − NDVI_min), 0, 1)`` with
    NDVI_min/max the study-area extremes. carbonsink docs/methods.md §2.2.2 (a).
    """
    n = prep(ndvi, "1", "ndvi")
    out = elementwise(K.fpar_minmax_uf, n, ndvi_min, ndvi_max)
    return finish(out, name="fpar", units="1", long_name="fraction of absorbed PAR",
                  model="casa_fpar_minmax", parameters={}, reference="seed paper 000 Eq. 8-9",
                  section="§2.2.2")


def apar(sol: Any, fpar: Any, *, par_fraction: float = 0.5):
    """Absorbed PAR ``APAR = SOL · FPAR · 0.5`` [MJ m-2 month-1].

    ``sol`` total incoming shortwave [MJ m-2 month-1]; ``fpar`` [1]; 0.5 = PAR
    share of shortwave. Potter et al. (1993). carbonsink docs/methods.md §2.2.1.
    """
    s = prep(sol, "MJ m-2 month-1", "sol")
    f = prep(fpar, "1", "fpar")
    out = s * f * par_fraction
    return finish(out, name="apar", units="MJ m-2 month-1",
                  long_name="absorbed photosynthetically active radiation", model="casa_apar",
                  parameters={"par_fraction": par_fraction}, reference=_REF_CASA,
                  section="§2.2.1")


def tepsilon1(topt: Any):
    """Tε1 = 0.8 + 0.02·Topt − 0.0005·Topt² [1]; ``topt`` optimum temperature [degC].

    Potter et al. (1993). carbonsink docs/methods.md §2.2.3 (Topt 20/0/30 → 1.000/0.800/0.950).
    """
    t = prep(topt, "degC", "topt")
    out = elementwise(K.te1_uf, t)
    return finish(out, name="tepsilon1", units="1", long_name="temperature stress Tε1",
                  model="casa_tepsilon1", parameters={}, reference=_REF_CASA, section="§2.2.3")


def _te2_options(mode: str, c: float | None, half_rule: bool | None) -> tuple[float, bool]:
    check_mode(mode)
    if c is None:
        c = TE2_C_PAPER if mode == "paper" else TE2_C_RECOMMENDED
    if half_rule is None:
        half_rule = mode == "paper"
    return float(c), bool(half_rule)


def tepsilon2(tas: Any, topt: Any, *, c: float | None = None, half_rule: bool | None = None,
              mode: str = "recommended", above: float = 10.0, below: float = 13.0):
    """Tε2 = C / ([1 + exp(0.2·(Topt − 10 − T))]·[1 + exp(0.3·(T − 10 − Topt))]) [1].

    ``tas`` monthly mean temperature [degC]; ``topt`` [degC].  ``c`` = 1.1814
    (Potter; recommended) or 1.184 (paper 000, ``mode="paper"``).  Half rule
    (``half_rule=True``, default in ``mode="paper"``; Piao et al. 2001): when
    T > Topt + ``above`` or T < Topt − ``below``, Tε2 = 0.5·Tε2(T = Topt).
    Potter et al. (1993). carbonsink docs/methods.md §2.2.3, §10 (ratios to Tε2(Topt) at
    T − Topt = −13/−11.6/+10/+11: 0.422/0.501/0.585/0.500).
    """
    c, half = _te2_options(mode, c, half_rule)
    t = prep(tas, "degC", "tas")
    to = prep(topt, "degC", "topt")
    out = elementwise(K.te2_uf, t, to, c, 1.0 if half else 0.0, above, below)
    return finish(out, name="tepsilon2", units="1", long_name="temperature stress Tε2",
                  model="casa_tepsilon2",
                  parameters={"c": c, "half_rule": half, "above": above, "below": below,
                              "mode": mode}, reference=_REF_CASA, section="§2.2.3")


def wepsilon(eet: Any, pet: Any, *, carry_forward: bool = True, first: float = 1.0,
             time_dim: str = "time"):
    """Water stress Wε = 0.5 + 0.5·EET/PET, bounded to [0.5, 1] [1].

    ``eet``, ``pet`` [mm month-1], time on axis 0 (numpy) or ``time_dim``.
    Where PET ≤ 0 (frozen month) the previous month's Wε is carried forward
    (CASA bucket-model rule); before the first valid month Wε = ``first`` (1).
    A NaN month gives NaN and is not carried forward.  ``carry_forward=False``
    gives NaN where PET ≤ 0.  Potter et al. (1993); GTMM doSoilMoisture.
    carbonsink docs/methods.md §2.2.3 (EET 43.18, PET 61.59 → 0.851).
    """
    e = prep(eet, "mm month-1", "eet", time_dim=time_dim)
    p = prep(pet, "mm month-1", "pet", time_dim=time_dim)
    if np.ndim(e) == 0 and np.ndim(p) == 0 and not is_xr(e):
        w = K.wepsilon_kernel(np.array([[e]], float), np.array([[p]], float), first,
                              carry_forward)[0, 0]
        out: Any = float(w)
    else:
        out = apply_time_kernel(lambda t2, s2: K.wepsilon_kernel(t2[0], t2[1], first,
                                                                 carry_forward),
                                [e, p], [], time_dim=time_dim, dtype=float_dtype(e, p))
        if is_xr(out) and time_dim in e.coords:
            out = out.assign_coords({time_dim: e[time_dim]})
    return finish(out, name="wepsilon", units="1", long_name="water stress Wε",
                  model="casa_wepsilon",
                  parameters={"carry_forward": carry_forward, "first": first},
                  reference=_REF_CASA, section="§2.2.3")


def optimum_temperature(ndvi: Any, tas: Any, *, floor: float | None = 0.0,
                        time_dim: str = "time", time: Any = None):
    """Optimum temperature Topt [degC] per pixel.

    For each calendar year, the temperature of the month with the highest
    NDVI; Topt is the mean of these yearly values over the record (years
    without any valid NDVI are skipped).  ``floor`` (default 0 °C, as CASA's
    doOptimumTemperature) floors the result; ``None`` disables it.
    ``ndvi`` [1] and ``tas`` [degC] monthly, time on axis 0 (numpy: ``time=``
    or consecutive 12-month years from January). carbonsink docs/methods.md §2.2.3.
    """
    n = prep(ndvi, "1", "ndvi", time_dim=time_dim)
    t = prep(tas, "degC", "tas", time_dim=time_dim)
    cal = calendar_of(n, time_dim, time, time_length(n, time_dim), assume_years=True)
    labels, ngroup, _, _ = cal.year_groups()
    use = floor is not None
    fl = float(floor) if use else 0.0
    out = apply_time_kernel(
        lambda t2, s2: K.topt_kernel(t2[0], t2[1], labels, ngroup, fl, use),
        [n, t], [], time_dim=time_dim, dtype=float_dtype(t), out_time=False)
    return finish(out, name="topt", units="degC", long_name="optimum temperature (NDVI-peak "
                  "month, multi-year mean)", model="casa_topt", parameters={"floor": floor},
                  reference=_REF_CASA, section="§2.2.3")


def light_use_efficiency(tas: Any, topt: Any, wepsilon: Any, epsilon_max: Any, *,
                         c: float | None = None, half_rule: bool | None = None,
                         t_min: float = -10.0, mode: str = "recommended"):
    """Light-use efficiency ε = Tε1·Tε2·Wε·ε_max [g C MJ-1]; ε = 0 when T ≤ −10 °C.

    ``tas`` [degC], ``topt`` [degC], ``wepsilon`` [1], ``epsilon_max``
    [g C MJ-1].  ``c``/``half_rule``/``mode`` as in :func:`tepsilon2`.
    Potter et al. (1993); Piao et al. (2001). carbonsink docs/methods.md §2.2.3 (T 18, Topt 20,
    Wε 0.8, ε_max 0.542 → 0.415).
    """
    cc, half = _te2_options(mode, c, half_rule)
    t = prep(tas, "degC", "tas")
    to = prep(topt, "degC", "topt")
    w = prep(wepsilon, "1", "wepsilon")
    e = prep(epsilon_max, "g C MJ-1", "epsilon_max")
    # ε = APAR-normalised NPP: the fused kernel with APAR = 1
    out = elementwise(K.casa_npp_uf, 1.0, 1.0, t, to, w, e, 1.0, cc, 1.0 if half else 0.0, t_min)
    return finish(out, name="epsilon", units="g C MJ-1", long_name="light-use efficiency",
                  model="casa_epsilon",
                  parameters={"c": cc, "half_rule": half, "t_min": t_min, "mode": mode},
                  reference=_REF_CASA, section="§2.2.3")


# --------------------------------------------------------------------------- NDVI bounds

_NBINS = 4000  # NDVI histogram bins over [-1, 1]: resolution 0.0005


def _hist_block(ndvi, cls, nclass):
    """Counts of (vegetation type, NDVI bin) of one block (one compiled pass, no temporaries:
    ``bin = clip(int((ndvi + 1) · _NBINS / 2), 0, _NBINS − 1)``)."""
    ndvi = np.asarray(ndvi)
    if not np.issubdtype(ndvi.dtype, np.floating):
        ndvi = ndvi.astype(np.float64)
    cls = np.broadcast_to(np.asarray(cls), ndvi.shape)
    lead = ndvi.shape[0] if ndvi.ndim > 1 else 1
    v2 = ndvi.reshape(lead, -1)
    c2 = cls.reshape(lead, -1)
    if c2.dtype.kind not in "iu":
        c2 = np.where(np.isfinite(c2), c2, -1).astype(np.int64)
    one, half = ndvi.dtype.type(1.0), ndvi.dtype.type(_NBINS / 2.0)
    return K.class_histogram_kernel(v2, c2, nclass, _NBINS, one, half)


def _quantiles_from_hist(counts, q):
    counts = np.asarray(counts, dtype=np.float64).reshape(-1, _NBINS)
    out = np.full((counts.shape[0], len(q)), np.nan)
    edges = np.linspace(-1.0, 1.0, _NBINS + 1)
    width = 2.0 / _NBINS
    for i, row in enumerate(counts):  # loop over the ≤ 10 vegetation types
        total = row.sum()
        if total == 0:
            continue
        cum = np.cumsum(row)
        for j, qq in enumerate(q):
            target = qq / 100.0 * total
            if target <= 0.0:  # minimum: lower edge of the first occupied bin
                out[i, j] = edges[int(np.argmax(row > 0))]
                continue
            k = int(np.searchsorted(cum, target, side="left"))
            k = min(k, _NBINS - 1)
            below = cum[k - 1] if k > 0 else 0.0
            frac = (target - below) / row[k] if row[k] > 0 else 0.0
            out[i, j] = edges[k] + np.clip(frac, 0.0, 1.0) * width
    return out


def ndvi_percentile_bounds(ndvi: Any, landcover: Any, *, percentiles: tuple[float, float] = (5, 95),
                           lc_table: Any = None, time_dim: str = "time", time: Any = None):
    """Per-vegetation-type NDVI bounds (5th/95th percentiles by default) [1].

    All valid NDVI values (every pixel and month) of each CASA vegetation type
    enter the percentile.  Percentiles are read from a 4000-bin histogram over
    [−1, 1] (resolution 0.0005, uniform within a bin) so that the computation
    is a single streaming pass that stays lazy for dask input.  This is the
    inverse of the bin-smoothed empirical CDF: for the large samples of a
    raster (thousands of values per type) it agrees with
    ``numpy.nanpercentile`` to about one bin; for a few hundred values the
    usual differences between quantile definitions dominate.

    Returns a DataArray (vegetation_type, bound=["min", "max"]), lazy for dask
    input; types without pixels are NaN.  Pass it as ``casa(ndvi_bounds=...)``.
    carbonsink docs/methods.md §2.2.2 (Zhu et al. 2006/2007).
    """
    n = prep(ndvi, "1", "ndvi", time_dim=time_dim)
    cls_by_code, _ = _code_arrays(lc_table, None)
    types = vegetation_types()
    nclass = len(types)
    lc = _lc_monthly(landcover, n, time_dim, time)
    cls = _lookup(lc, cls_by_code, -1)
    q = tuple(float(p) for p in percentiles)
    if is_xr(n):
        cls_b = cls.broadcast_like(n).transpose(*n.dims) if is_xr(cls) else cls
        nd = n.data
        cd = cls_b.data if is_xr(cls_b) else np.broadcast_to(cls_b, n.shape)
    else:
        nd = np.asarray(n)
        cd = np.broadcast_to(cls.data if is_xr(cls) else cls, nd.shape)
    if is_dask(nd) or is_dask(cd):
        import dask.array as da
        nd = nd if is_dask(nd) else da.from_array(nd, chunks=cd.chunks)
        cd = cd if is_dask(cd) else da.from_array(cd, chunks=nd.chunks)
        cd = cd.rechunk(nd.chunks)
        kk = nclass * _NBINS
        parts = da.map_blocks(
            lambda a, b: _hist_block(a, b, nclass).reshape((1,) * a.ndim + (kk,)),
            nd, cd, new_axis=[nd.ndim], dtype=np.int64,
            chunks=tuple((1,) * len(c) for c in nd.chunks) + ((kk,),))
        counts = parts.sum(axis=tuple(range(nd.ndim)))
        bounds = counts.map_blocks(lambda c: _quantiles_from_hist(c, q), dtype=np.float64,
                                   chunks=((nclass,), (2,)), new_axis=[1])
    else:
        bounds = _quantiles_from_hist(_hist_block(nd, cd, nclass), q)
    return xr.DataArray(bounds, dims=("vegetation_type", "bound"),
                        coords={"vegetation_type": list(types), "bound": ["min", "max"]},
                        name="ndvi_bounds",
                        attrs={"units": "1", "percentiles": str(list(q)),
                               "long_name": "NDVI bounds per vegetation type"})


def _bounds_table(ndvi_bounds: Any) -> Any:
    types = vegetation_types()
    if isinstance(ndvi_bounds, xr.DataArray):
        return ndvi_bounds.sel(vegetation_type=list(types), bound=["min", "max"]).data
    if isinstance(ndvi_bounds, Mapping):
        unknown = sorted(set(ndvi_bounds) - set(types))
        if unknown:
            raise InputError(f"ndvi_bounds has unknown vegetation types {unknown}; "
                             f"valid: {list(types)}")
        tab = np.full((len(types), 2), np.nan)
        for k, (lo, hi) in ndvi_bounds.items():
            tab[types.index(k)] = (float(lo), float(hi))
        return tab
    raise InputError("ndvi_bounds must be a DataArray from ndvi_percentile_bounds() or a mapping "
                     "{vegetation_type: (ndvi_min, ndvi_max)}")


def _take_table(cls: Any, col: Any) -> Any:
    """Per-pixel value of a per-class table column (class -1 → NaN); lazy-safe."""
    def _take(c, t):
        t = np.asarray(t, dtype=np.float64).reshape(-1)
        out = np.full(np.shape(c), np.nan)
        ok = np.asarray(c) >= 0
        out[ok] = t[np.asarray(c)[ok]]
        return out

    data = cls.data if is_xr(cls) else cls
    if is_dask(data) or is_dask(col):
        import dask.array as da
        d = data if is_dask(data) else da.from_array(np.asarray(data), chunks=-1)
        ind = "abcdefgh"[:d.ndim]
        res = da.blockwise(_take, ind, d, ind, da.asarray(col), "z", dtype=np.float64,
                           concatenate=True)
    else:
        res = _take(data, col)
    return cls.copy(data=res) if is_xr(cls) else res


# =========================================================================== CASA


def casa(ndvi: Any, tas: Any, sol: Any, landcover: Any, *, pr: Any = None, eet: Any = None,
         pet: Any = None, mode: str = "recommended", fpar: str | None = None,
         ndvi_bounds: Any = None, percentiles: tuple[float, float] = (5, 95),
         fpar_min: float = 0.001, fpar_max: float = 0.95, alpha: float = 0.5,
         topt: Any = None, topt_floor: float | None = 0.0, c: float | None = None,
         half_rule: bool | None = None, t_min: float = -10.0, epsilon_max: Any = None,
         lc_table: Any = None, par_fraction: float = 0.5, lat: Any = None,
         daylength_correction: bool = False, heat_index: str = "annual",
         bounds_first: bool = False, time_dim: str = "time", time: Any = None):
    """CASA monthly NPP [g C m-2 month-1] (Potter et al. 1993; China parameterisation).

    ::

        NPP  = APAR · ε
        APAR = SOL · FPAR · 0.5
        ε    = Tε1(Topt) · Tε2(T, Topt) · Wε · ε_max     (ε = 0 when T ≤ −10 °C)
        Wε   = 0.5 + 0.5 · EET/PET  in [0.5, 1], carried forward when PET ≤ 0

    Inputs (monthly, time on axis 0 for numpy): ``ndvi`` [1], ``tas`` [degC],
    ``sol`` [MJ m-2 month-1], ``landcover`` integer codes [1], static (y, x)
    or one layer per calendar year (mapped to each month's year); ``pr``
    [mm month-1] or user ``eet`` and ``pet`` grids [mm month-1].

    * **FPAR** — ``fpar="ndvi_sr"`` (recommended; :func:`fpar_ndvi_sr` with
      per-type bounds ``ndvi_bounds``: a table from
      :func:`ndvi_percentile_bounds` or a mapping; when None they are computed
      from the data with ``percentiles`` — lazily for dask) or ``"minmax"``
      (``mode="paper"``, paper 000: study-area NDVI extremes of the input, or
      ``ndvi_bounds=(min, max)``).
    * **bounds_first** — for dask input, compute the whole-region NDVI bounds at once (one
      pass over NDVI and land cover) instead of lazily: the rest of the graph is then local
      to each chunk, so a region computed block by block (the pipeline's flux step) does not
      repeat the bounds pass per block. The numbers are the same.
    * **Topt** — :func:`optimum_temperature` (NDVI-peak month per year,
      multi-year mean, floored at ``topt_floor`` = 0 °C) unless given.
    * **Tε2** — ``c`` 1.1814 (1.184 in paper mode); half rule in paper mode.
    * **Wε** — from ``eet``/``pet`` if both are given (paper 000 used external
      grids), else Thornthwaite E_p from ``tas`` (:func:`~.water.thornthwaite_pet`
      with ``lat``, ``daylength_correction``, ``heat_index``) and the Zhou–Zhang
      EET and PET from ``pr`` (:mod:`.water`).
    * **ε_max** — by vegetation type from the Zhu et al. (2006) table via the
      IGBP mapping (:func:`landcover_table`, editable with ``lc_table``);
      ``epsilon_max`` may be a mapping {type: value} to override table entries,
      or a scalar / array [g C MJ-1] used instead of the table.
      Non-vegetated classes (water, snow/ice, barren, urban, unclassified) give NaN.

    Reference: Potter et al. (1993); Piao et al. (2001); Zhu et al. (2006,
    2007). carbonsink docs/methods.md §2.2, §10 (worked example NPP 106.9 g C m-2 month-1).
    """
    check_mode(mode)
    if fpar is None:
        fpar = "minmax" if mode == "paper" else "ndvi_sr"
    choice("fpar", fpar, ("ndvi_sr", "minmax"))
    cc, half = _te2_options(mode, c, half_rule)
    n = prep(ndvi, "1", "ndvi", time_dim=time_dim)
    t = prep(tas, "degC", "tas", time_dim=time_dim)
    s = prep(sol, "MJ m-2 month-1", "sol", time_dim=time_dim)
    _check_same_time(time_dim, ndvi=n, tas=t, sol=s, pr=pr, eet=eet, pet=pet)
    dt = float_dtype(n, t, s)
    params: dict[str, Any] = {"mode": mode, "fpar": fpar, "c": cc, "half_rule": half,
                              "t_min": t_min, "par_fraction": par_fraction,
                              "topt_floor": topt_floor}
    # --- land cover → class index and ε_max
    cls_by_code, emax_by_code = _code_arrays(
        lc_table, epsilon_max if isinstance(epsilon_max, Mapping) else None)
    # per-class values are looked up on the land-cover layers (one per year) and then mapped
    # to the months: 21 lookups instead of 252

    def monthly(per_layer):
        return _lc_monthly(per_layer, n, time_dim, time)

    if epsilon_max is None or isinstance(epsilon_max, Mapping):
        emax = monthly(_lookup(landcover, emax_by_code.astype(dt), np.nan))
        params["epsilon_max"] = "table (Zhu et al. 2006)" if epsilon_max is None else \
            {"table_overrides": dict(epsilon_max)}
    else:
        emax = prep(epsilon_max, "g C MJ-1", "epsilon_max")
        params["epsilon_max"] = epsilon_max
    # --- FPAR
    if fpar == "ndvi_sr":
        if ndvi_bounds is None:
            # the bounds are a reduction over the whole region: for dask input they read their
            # own copy of NDVI and land cover (cloned graph keys), so the scheduler can drop
            # each chunk once histogrammed instead of holding every chunk's inputs in memory
            # until the reduction ends; the per-pixel graph below reads its chunks afterwards
            nb, lb = (n, landcover) if bounds_first else (_cloned(n), _cloned(landcover))
            table = ndvi_percentile_bounds(nb, lb, percentiles=percentiles,
                                           lc_table=lc_table, time_dim=time_dim, time=time).data
            if bounds_first and hasattr(table, "compute"):
                table = np.asarray(table.compute())
            params["ndvi_bounds"] = f"percentiles {list(percentiles)} of the input per type"
        else:
            table = _bounds_table(ndvi_bounds)
            params["ndvi_bounds"] = "given"
        cls = _lookup(landcover, cls_by_code, -1)
        lo = monthly(_take_table(cls, table[:, 0]).astype(dt))
        hi = monthly(_take_table(cls, table[:, 1]).astype(dt))
        f = elementwise(K.fpar_zhu_uf, n, lo, hi, fpar_min, fpar_max, alpha)
        params.update(fpar_min=fpar_min, fpar_max=fpar_max, alpha=alpha)
    else:
        if ndvi_bounds is None:
            nb = n if bounds_first else _cloned(n)  # own copy for a lazy reduction (above)
            lo, hi = (nb.min(), nb.max()) if is_xr(n) else (np.nanmin(n), np.nanmax(n))
            if bounds_first and is_xr(n) and n.chunks is not None:
                import dask

                lo, hi = (float(v) for v in dask.compute(lo.data, hi.data))
            params["ndvi_bounds"] = "study-area min/max of the input"
        else:
            lo, hi = (float(v) for v in ndvi_bounds)
            params["ndvi_bounds"] = [lo, hi]
        f = elementwise(K.fpar_minmax_uf, n, lo, hi)
    # --- Topt
    if topt is None:
        to = optimum_temperature(n, t, floor=topt_floor, time_dim=time_dim, time=time)
        params["topt"] = "NDVI-peak month, multi-year mean"
    else:
        to = prep(topt, "degC", "topt")
        params["topt"] = "given"
    # --- Wε
    if (eet is None) != (pet is None):
        raise InputError("give both eet and pet grids, or neither (then pr is used with "
                         "Thornthwaite E_p and the Zhou-Zhang EET)")
    if eet is not None:
        e_ = prep(eet, "mm month-1", "eet", time_dim=time_dim)
        p_ = prep(pet, "mm month-1", "pet", time_dim=time_dim)
        params["water"] = "user EET/PET"
    else:
        if pr is None:
            raise InputError("casa needs pr (precipitation, mm month-1) to compute Wε, or eet "
                             "and pet grids")
        pr_ = prep(pr, "mm month-1", "pr", time_dim=time_dim)
        ep = thornthwaite_pet(t, lat=lat, daylength_correction=daylength_correction,
                              heat_index=heat_index, time_dim=time_dim, time=time)
        params["water"] = "Thornthwaite E_p + Zhou-Zhang EET/PET"
        params.update(daylength_correction=daylength_correction, heat_index=heat_index)
    if eet is not None:
        we = wepsilon(e_, p_, time_dim=time_dim)
    else:  # fused: Zhou-Zhang EET and PET and Wε in one pass (same as wepsilon(eet, pet))
        we = apply_time_kernel(lambda t2, s2: K.wepsilon_zz_kernel(t2[0], t2[1], 1.0, True),
                               [pr_, ep], [], time_dim=time_dim, dtype=float_dtype(pr_, ep))
    out = elementwise(K.casa_npp_uf, f, s, t, to, we, emax, par_fraction, cc, 1.0 if half else 0.0, t_min)
    if is_xr(out):
        keep = [c_ for c_ in out.coords if c_ not in n.coords]
        out = out.drop_vars(keep)
    return finish(out, name="npp", units="g C m-2 month-1",
                  long_name="net primary production (CASA)", model="casa", parameters=params,
                  reference=_REF_CASA, section="§2.2")


def _check_same_time(time_dim: str, **arrays: Any) -> None:
    ref_name, ref = None, None
    for name, a in arrays.items():
        if not is_xr(a) or time_dim not in a.coords:
            continue
        if ref is None:
            ref_name, ref = name, a[time_dim]
            continue
        if a.sizes[time_dim] != ref.size or not np.array_equal(a[time_dim].values, ref.values):
            raise AlignmentError(f"'{name}' and '{ref_name}' have different '{time_dim}' "
                                 "coordinates; select the same months for all monthly inputs")


# =========================================================================== potential NPP


def _potential(out, model, ref, carbon_fraction):
    units = "g m-2 yr-1"
    long_name = "potential net primary production (dry matter)"
    if carbon_fraction is not None:
        out = out * carbon_fraction
        units = "g C m-2 yr-1"
        long_name = "potential net primary production (carbon)"
    return finish(out, name="npp_potential", units=units, long_name=long_name, model=model,
                  parameters={"carbon_fraction": carbon_fraction}, reference=ref,
                  section="§2.5")


def miami(t: Any, r: Any, *, carbon_fraction: float | None = None):
    """Miami model potential NPP [g DM m-2 yr-1] (Lieth 1972).

    ::

        NPP_T = 3000 / (1 + exp(1.315 − 0.119·t))
        NPP_P = 3000 · (1 − exp(−0.000664·r))
        NPP   = min(NPP_T, NPP_P)

    ``t`` annual mean temperature [degC]; ``r`` annual precipitation [mm yr-1].
    ``carbon_fraction`` (e.g. 0.45 or 0.475 g C per g DM) converts to
    [g C m-2 yr-1]. carbonsink docs/methods.md §2.5 (t 10, r 600 → 985.8 g DM; 443.6 g C at 0.45).
    """
    tt = prep(t, "degC", "t")
    rr = prep(r, "mm yr-1", "r")
    return _potential(elementwise(K.miami_uf, tt, rr), "miami", _REF_MIAMI, carbon_fraction)


def thornthwaite_memorial(t: Any, r: Any, *, carbon_fraction: float | None = None):
    """Thornthwaite Memorial potential NPP [g DM m-2 yr-1] (Lieth & Box 1972).

    ::

        L   = 3000 + 25·t + 0.05·t³
        v   = 1.05·r / sqrt(1 + (1 + 1.05·r/L)²)       (mean annual actual ET, mm)
        NPP = 3000 · (1 − exp(−0.0009695·(v − 20)))     (clipped to ≥ 0)

    ``t`` annual mean temperature [degC]; ``r`` annual precipitation [mm yr-1];
    ``carbon_fraction`` as in :func:`miami`. carbonsink docs/methods.md §2.5 (t 10, r 600 → 934.8).
    """
    tt = prep(t, "degC", "t")
    rr = prep(r, "mm yr-1", "r")
    return _potential(elementwise(K.thornthwaite_memorial_uf, tt, rr), "thornthwaite_memorial", _REF_TM,
                      carbon_fraction)
