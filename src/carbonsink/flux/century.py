"""CENTURY-type soil decomposition cascade of CLM5 as an Rh model driven by NPP
(carbonsink docs/methods.md §3.5).

Seven carbon pools (coarse woody debris CWD, litter L1–L3, soil organic matter S1–S3)
receive litter from NPP and decompose at first-order rates scaled by temperature and
moisture; part of every transfer is respired. With the pool vector ``C`` [g C m-2]::

    dC/dt = u(t) + r(t) · A · C,      A = B · diag(k)                              (1)
    B_ii = −1,   B_ji = p_(i→j) · (1 − rf_(i→j))                                    (2)
    r = f_T · f_W · f_O · f_D,        f_O = f_D = 1 (single top layer, no anoxia)   (3)
    Rh = Σ_(i→j) rf_(i→j) · p_(i→j) · k_i · r · C_i                                  (4)

with the base rates ``k`` [yr-1], path fractions ``p`` and respired fractions ``rf`` of the
CLM5 code (:data:`PARAMETERS`, package table ``flux/data/clm5_soil.yaml``; the S1 transfers
depend on sand through ``t = 0.85 − 0.68·0.01·(100 − sand%)``).  Eq. (4) is heterotrophic
respiration — only the respired fraction of each transfer — not the total decomposition
flux ``Σ k_i C_i r`` that seed paper 002 prints as its Eq. 4.

Time stepping is exact for piecewise-constant forcing: within a month ``r`` and the litter
input are constant, so (1) is solved in the eigenbasis of ``A`` (``A = V Λ V⁻¹``, real and
distinct-enough eigenvalues for the CLM5 parameters; checked)::

    z = V⁻¹ C,   z_i ← z_i·e^(x_i) + (V⁻¹ f)_i · I · (e^(x_i) − 1)/x_i,   x_i = r λ_i Δt

(``I`` the month's litter input [g C m-2 month-1], ``f`` its split over the pools, ``Δt``
the month in years of ``days_per_year`` days).  The monthly Rh is the integral of (4) over
the month, which by mass balance equals ``I − Δ(Σ C)`` exactly.  No explicit step can
overshoot (k·Δt = 1.5 for L1 at a monthly step).

Spin-up (``spinup``): ``"mean"`` (docs/methods.md §3.5) solves the steady state of (1) for the
cycle-mean scalar ``r̄`` and litter input, ``C* = −(r̄ A)⁻¹ ū``; ``"periodic"`` solves the
exact periodic steady state of the spin-up cycle (each eigen-mode's fixed point of one cycle).
Either is followed by ``spinup_cycles`` (≥ 3 recommended) repetitions of the cycle — the
first ``spinup_years`` years of the forcing — and the drift of total soil carbon over the
last cycle is reported (``spinup_drift``, % per cycle); a drift above ``drift_tolerance``
warns.

References: Lawrence D.M. et al. (2019) J. Adv. Model. Earth Syst. 11:4245 (CLM5);
ESCOMP/CTSM ``SoilBiogeochemDecompCascadeBGCMod.F90`` and the CLM5 technical note,
decomposition chapter; Parton W.J. et al. (1987) Soil Sci. Soc. Am. J. 51:1173 (CENTURY);
Adair E.C. et al. (2008) Glob. Change Biol. 14:2636 (moisture function of P/PET).
"""

from __future__ import annotations

import functools
import importlib.resources
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numba
import numpy as np
import xarray as xr
import yaml

from .._engine import apply, float_dtype, is_xr, run_ranges, to_2d
from ..errors import InputError, InvalidArgumentError
from ..units import ensure_units, parse_units
from ._util import calendar_of, choice, jsonable
from .registry import register_model

__all__ = ["century", "PARAMETERS", "POOLS", "normalisation_factor", "temperature_scalar",
           "water_scalar_psi", "water_scalar_ppt", "s1_respired_fraction",
           "decomposition_matrix", "steady_state", "litter_split"]

_REF = ("Lawrence D.M. et al. (2019) J. Adv. Model. Earth Syst. 11:4245 (CLM5 decomposition "
        "cascade, CTSM SoilBiogeochemDecompCascadeBGCMod.F90)")


@functools.lru_cache(maxsize=1)
def _load_parameters() -> dict:
    text = importlib.resources.files("carbonsink.flux").joinpath("data").joinpath(
        "clm5_soil.yaml").read_text("utf-8")
    return yaml.safe_load(text)


#: the published CLM5 parameters (package table ``flux/data/clm5_soil.yaml``)
PARAMETERS: dict = _load_parameters()
#: pool names in the order of the state vector
POOLS: tuple[str, ...] = tuple(p["name"] for p in PARAMETERS["pools"])
_NPOOL = len(POOLS)


# --------------------------------------------------------------------------- scalars


def normalisation_factor(q10: float | None = None) -> float:
    """CLM5 normalisation of the Q10 temperature function [1] (= 0.8206 for Q10 = 1.5).

    ``N = [catanf(15)/catanf(30)] / Q10^((15 − 25)/10)`` with the CENTURY arctangent function
    ``catanf(T) = 11.75 + (29.7/π)·atan(π·0.031·(T − 15.4))``, so that ``N·Q10^((T−25)/10)``
    matches ``catanf(T)/catanf(30)`` at 15 °C (docs/methods.md §3.5; CTSM decomposition module).
    """
    c = PARAMETERS["catanf"]
    q = PARAMETERS["q10"] if q10 is None else float(q10)

    def catanf(t):
        return c["a"] + (c["b"] / math.pi) * math.atan(math.pi * c["c"] * (t - c["d"]))

    return (catanf(c["t_match"]) / catanf(c["t_high"])) / \
        q ** ((c["t_match"] - PARAMETERS["t_ref"]) / 10.0)


def temperature_scalar(tas: Any, *, q10: float = 1.5, q10_frozen: float = 1.5,
                       normalise: bool = True) -> Any:
    """CLM5 temperature scalar f_T [1] of soil (here: air) temperature ``tas`` [degC].

    ``f_T = N·Q10^((T − 25)/10)`` for T ≥ 0 °C and ``N·Q10^(−2.5)·Q10_frozen^(T/10)`` below,
    ``N`` = :func:`normalisation_factor` (1 with ``normalise=False``). docs/methods.md §3.5.
    """
    n = normalisation_factor(q10) if normalise else 1.0
    t = ensure_units(tas, "degC", "tas")
    tref = PARAMETERS["t_ref"]
    warm = q10 ** ((t - tref) / 10.0)
    cold = q10 ** ((0.0 - tref) / 10.0) * q10_frozen ** (t / 10.0)
    if is_xr(t):
        out = xr.where(t >= 0, warm, cold) * n
        return out.assign_attrs(units="1", long_name="temperature scalar of decomposition")
    return np.where(np.asarray(t) >= 0, warm, cold) * n


def water_scalar_psi(psi: Any, *, psi_min: float = -2.5, psi_max: float = -0.002) -> Any:
    """CLM5 water scalar from soil matric potential ``psi`` [MPa] → f_W [1].

    ``f_W = ln(ψ_min/ψ) / ln(ψ_min/ψ_max)`` for ψ_min < ψ < ψ_max, 0 below ψ_min, 1 above
    ψ_max (ψ_min = −2.5 MPa, ψ_max = −0.002 MPa; carbonsink docs/methods.md §3.5).
    """
    if not (psi_min < psi_max < 0):
        raise InvalidArgumentError(f"water scalar: need psi_min < psi_max < 0 [MPa], got "
                                   f"psi_min={psi_min}, psi_max={psi_max}")
    p = ensure_units(psi, "MPa", "psi")
    with np.errstate(invalid="ignore", divide="ignore"):
        clipped = np.clip(p, psi_min, psi_max)
        out = np.log(psi_min / clipped) / math.log(psi_min / psi_max)
    if is_xr(out):
        return out.assign_attrs(units="1", long_name="water scalar of decomposition")
    return out


def water_scalar_ppt(pr: Any, pet: Any) -> Any:
    """CENTURY moisture scalar from the ratio of precipitation to PET → f_W [1].

    ``f_W = 1 / (1 + 30·exp(−8.5·P/PET))`` with monthly ``pr`` and ``pet`` [mm month-1]
    (Parton et al. 2001; Adair et al. 2008, Glob. Change Biol. 14:2636; used when no soil
    matric potential is given). PET ≤ 0 gives f_W = 1 (no evaporative demand); negative P
    is taken as 0; NaN stays NaN.
    """
    p = ensure_units(pr, "mm month-1", "pr")
    e = ensure_units(pet, "mm month-1", "pet")
    if is_xr(p) or is_xr(e):
        p = p.clip(min=0.0) if is_xr(p) else np.maximum(p, 0.0)
        ratio = p / xr.where(e > 0, e, 1.0)
        out = xr.where(e > 0, 1.0 / (1.0 + 30.0 * np.exp(-8.5 * ratio)), 1.0)
        out = out.where(np.isfinite(p) & np.isfinite(e) if is_xr(p) and is_xr(e) else
                        (np.isfinite(p) if is_xr(p) else np.isfinite(e)))
        return out.assign_attrs(units="1", long_name="water scalar of decomposition")
    p = np.maximum(np.asarray(p, dtype=float), 0.0)
    e = np.asarray(e, dtype=float)
    safe = np.where(e > 0, e, 1.0)
    out = np.where(e > 0, 1.0 / (1.0 + 30.0 * np.exp(-8.5 * p / safe)), 1.0)
    return np.where(np.isfinite(p) & np.isfinite(e), out, np.nan)


def s1_respired_fraction(sand: Any) -> Any:
    """Respired fraction t of the S1 transfers: ``t = 0.85 − 0.68·0.01·(100 − sand)`` [1],
    ``sand`` in percent (sand 40 % → 0.442). carbonsink docs/methods.md §3.5."""
    c = PARAMETERS["s1_texture"]
    s = np.asarray(sand, dtype=float) if not is_xr(sand) else sand
    if np.any(np.asarray(s) < 0) or np.any(np.asarray(s) > 100):
        raise InvalidArgumentError("sand must be a percentage in [0, 100]")
    return c["t_intercept"] - c["t_slope"] * 0.01 * (100.0 - s)


def _transfer_value(v: Any, t: float) -> float:
    s13 = PARAMETERS["s1_texture"]["s1_s3"]
    if v == "t":
        return t
    if v == "s1_to_s2":
        return 1.0 - s13 / (1.0 - t)
    if v == "s1_to_s3":
        return s13 / (1.0 - t)
    return float(v)


def decomposition_matrix(sand: float = 40.0) -> np.ndarray:
    """The matrix ``A = B·diag(k)`` [yr-1] of Eq. (1) for one sand content [%].

    ``dC/dt = u + r·A·C``: column i holds −k_i on the diagonal and
    ``p_(i→j)(1 − rf_(i→j))·k_i`` in row j (pools in :data:`POOLS` order).
    """
    return _matrix_t(float(s1_respired_fraction(float(sand))))


def _matrix_t(t: float) -> np.ndarray:
    idx = {n: i for i, n in enumerate(POOLS)}
    k = np.array([p["k"] for p in PARAMETERS["pools"]], dtype=float)
    b = -np.eye(_NPOOL)
    for tr in PARAMETERS["transfers"]:
        i, j = idx[tr["from"]], idx[tr["to"]]
        b[j, i] += _transfer_value(tr["p"], t) * (1.0 - _transfer_value(tr["rf"], t))
    return b @ np.diag(k)


def litter_split(litter_fractions: Sequence[float] = (0.25, 0.5, 0.25),
                 cwd_fraction: float = 0.0) -> np.ndarray:
    """Fractions of the litter input going to each pool (CWD, L1, L2, L3, S1–S3) [1]."""
    lf = np.asarray(litter_fractions, dtype=float)
    if lf.shape != (3,) or np.any(lf < 0) or not math.isclose(lf.sum(), 1.0, abs_tol=1e-9):
        raise InvalidArgumentError(f"litter_fractions must be three non-negative fractions "
                                   f"(L1, L2, L3) summing to 1, got {list(lf)}")
    if not 0.0 <= cwd_fraction <= 1.0:
        raise InvalidArgumentError(f"cwd_fraction must be in [0, 1], got {cwd_fraction}")
    f = np.zeros(_NPOOL)
    f[0] = cwd_fraction
    f[1:4] = (1.0 - cwd_fraction) * lf
    return f


def steady_state(litter_input: float, r: float, *, sand: float = 40.0,
                 litter_fractions: Sequence[float] = (0.25, 0.5, 0.25),
                 cwd_fraction: float = 0.0) -> np.ndarray:
    """Steady-state pools ``C* = −(r·A)⁻¹·u`` [g C m-2] for a constant litter input
    [g C m-2 yr-1] and a constant scalar ``r`` [1] (carbonsink docs/methods.md §3.5 spin-up)."""
    if not r > 0:
        raise InvalidArgumentError(f"the decomposition scalar r must be > 0, got {r}")
    u = litter_input * litter_split(litter_fractions, cwd_fraction)
    return np.linalg.solve(-r * decomposition_matrix(sand), u)


@functools.lru_cache(maxsize=256)
def _eigen(t_values: tuple) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(λ, V, V⁻¹) for each S1 respired fraction t (stacked, vectorised)."""
    mats = np.stack([_matrix_t(t) for t in t_values])
    lam, v = np.linalg.eig(mats)
    if np.iscomplexobj(lam) and np.max(np.abs(lam.imag)) > 0:
        raise InvalidArgumentError("the decomposition matrix has complex eigenvalues for these "
                                   "parameters; the exact monthly update needs real ones")
    lam, v = np.real(lam), np.real(v)
    if np.any(lam >= 0):
        raise InvalidArgumentError("the decomposition matrix must have negative eigenvalues")
    return lam, v, np.linalg.inv(v)


# --------------------------------------------------------------------------- kernel


@numba.njit(cache=True, nogil=True)
def _step(z, lam, q, r, dt, inp):
    """Exact step of every eigen-mode: z ← z·e^x + q·I·(e^x − 1)/x, x = r·λ·Δt."""
    for i in range(z.shape[0]):
        x = r * lam[i] * dt
        e = math.exp(x)
        if abs(x) < 1e-5:
            phi = 1.0 + x * (0.5 + x / 6.0)
        else:
            phi = (e - 1.0) / x
        z[i] = z[i] * e + q[i] * inp * phi


@numba.njit(cache=True, nogil=True)
def _total(z, w):
    s = 0.0
    for i in range(z.shape[0]):
        s += w[i] * z[i]
    return s


@numba.njit(cache=True, nogil=True)
def century_kernel(litter, r, dt, lam, vec, vinv, which, frac, nspin, periodic, ncycles,
                   rh, pools, drift, start, stop):
    """Exact monthly update of the 7-pool cascade for pixels ``[start, stop)``.

    ``litter``, ``r``: (time, pixel) litter input [g C m-2 step-1] and scalar [1]; ``dt``:
    (time,) step length [yr]; ``lam``, ``vec``, ``vinv``: eigen-decompositions (set, 7[, 7])
    and ``which`` the set of each pixel; ``frac``: (7,) split of the litter input. Writes
    ``rh`` (time, pixel), ``pools`` (7, pixel) after spin-up, ``drift`` (pixel) [% per cycle].
    """
    nt = litter.shape[0]
    npool = frac.shape[0]
    z = np.empty(npool)
    q = np.empty(npool)
    w = np.empty(npool)
    for p in range(start, stop):
        s = which[p]
        for i in range(npool):
            acc = 0.0
            for j in range(npool):
                acc += vinv[s, i, j] * frac[j]
            q[i] = acc
            acc = 0.0
            for j in range(npool):
                acc += vec[s, j, i]
            w[i] = acc
        # spin-up forcing: the first nspin steps; any NaN there makes the pixel NaN
        bad = False
        sum_in = 0.0
        sum_r = 0.0
        sum_dt = 0.0
        for t in range(nspin):
            a = litter[t, p]
            b = r[t, p]
            if a != a or b != b:
                bad = True
                break
            sum_in += a
            sum_r += b * dt[t]
            sum_dt += dt[t]
        if bad or sum_dt <= 0.0:
            for t in range(nt):
                rh[t, p] = math.nan
            for i in range(npool):
                pools[i, p] = math.nan
            drift[p] = math.nan
            continue
        if periodic:
            # fixed point of one cycle in each eigen-mode: z* = H / (1 − G)
            for i in range(npool):
                z[i] = 0.0
            for t in range(nspin):
                _step(z, lam[s], q, r[t, p], dt[t], litter[t, p])
            ok = True
            for i in range(npool):
                g = 0.0
                for t in range(nspin):
                    g += r[t, p] * lam[s, i] * dt[t]
                den = -math.expm1(g)
                if den <= 0.0:
                    ok = False
                    break
                z[i] = z[i] / den
        else:
            rbar = sum_r / sum_dt
            ubar = sum_in / sum_dt
            ok = rbar > 0.0
            if ok:
                for i in range(npool):
                    z[i] = -q[i] * ubar / (rbar * lam[s, i])
        if not ok:
            for t in range(nt):
                rh[t, p] = math.nan
            for i in range(npool):
                pools[i, p] = math.nan
            drift[p] = math.nan
            continue
        d = 0.0
        for c in range(ncycles):
            tot0 = _total(z, w)
            for t in range(nspin):
                _step(z, lam[s], q, r[t, p], dt[t], litter[t, p])
            tot1 = _total(z, w)
            d = abs(tot1 - tot0) / tot0 * 100.0 if tot0 > 0.0 else math.nan
        drift[p] = d if ncycles > 0 else math.nan
        for i in range(npool):
            acc = 0.0
            for j in range(npool):
                acc += vec[s, i, j] * z[j]
            pools[i, p] = acc
        # transient run; a NaN month gives NaN Rh and leaves the pools unchanged
        for t in range(nt):
            a = litter[t, p]
            b = r[t, p]
            if a != a or b != b:
                rh[t, p] = math.nan
                continue
            tot0 = _total(z, w)
            _step(z, lam[s], q, b, dt[t], a)
            rh[t, p] = a - (_total(z, w) - tot0)


# --------------------------------------------------------------------------- model function


def _water(tas, pr, pet, psi, psi_min, psi_max, water):
    choice("water", water, ("auto", "psi", "ppt", "none"))
    if water == "auto":
        water = "psi" if psi is not None else ("ppt" if pr is not None and pet is not None
                                               else "none")
        if water == "none" and pr is not None:
            warnings.warn("century: precipitation is given without PET, so the water scalar "
                          "is 1 (no moisture limitation); give 'pet' (or 'psi') to use it",
                          RuntimeWarning, stacklevel=4)
    if water == "psi":
        if psi is None:
            raise InputError("century: water='psi' needs the soil matric potential 'psi' [MPa]")
        return water_scalar_psi(psi, psi_min=psi_min, psi_max=psi_max), water
    if water == "ppt":
        if pr is None or pet is None:
            raise InputError("century: water='ppt' needs 'pr' and 'pet' [mm month-1]")
        return water_scalar_ppt(pr, pet), water
    return 1.0, water


def century(tas: xr.DataArray, npp: xr.DataArray, *, pr: xr.DataArray | None = None,
            pet: xr.DataArray | None = None, psi: xr.DataArray | None = None,
            sand: xr.DataArray | None = None, sand_percent: float = 40.0,
            litter_fractions: Sequence[float] = (0.25, 0.5, 0.25), cwd_fraction: float = 0.0,
            q10: float = 1.5, q10_frozen: float = 1.5, normalise: bool = True,
            water: str = "auto", psi_min: float = -2.5, psi_max: float = -0.002,
            spinup: str = "mean", spinup_years: int | None = None, spinup_cycles: int = 3,
            drift_tolerance: float = 0.1, days_per_year: float = 365.0,
            pool_outputs: bool = True, time_dim: str = "time") -> xr.Dataset:
    """Heterotrophic respiration of the CLM5 CENTURY-type cascade [g C m-2 month-1].

    Parameters
    ----------
    tas : xarray.DataArray
        Monthly air temperature [degC] (stands for the top-soil temperature), time axis of
        period starts.
    npp : xarray.DataArray
        Monthly NPP [g C m-2 month-1] on the same grid and months; the litter input of each
        month is ``max(NPP, 0)`` (steady state: litterfall = NPP).
    pr, pet : xarray.DataArray, optional
        Monthly precipitation and PET [mm month-1] for the CENTURY moisture scalar
        ``1/(1 + 30·exp(−8.5·P/PET))`` (Adair et al. 2008).
    psi : xarray.DataArray, optional
        Soil matric potential [MPa] for the CLM5 water scalar
        ``ln(ψ_min/ψ)/ln(ψ_min/ψ_max)`` (preferred when given).
    sand : xarray.DataArray, optional
        Sand content [%] per pixel (static); otherwise ``sand_percent`` everywhere.
    sand_percent : float
        Sand content [%] used without a ``sand`` map (40 % → S1 respired fraction 0.442).
    litter_fractions : sequence of 3 floats
        Split of non-woody litter into L1 (metabolic), L2 (cellulose), L3 (lignin)
        (CLM values 0.25/0.50/0.25).
    cwd_fraction : float
        Fraction of the litter input that is woody (to CWD) [0–1].
    q10, q10_frozen : float
        Q10 above / below 0 °C (CLM5: 1.5 and 1.5).
    normalise : bool
        Multiply f_T by :func:`normalisation_factor` (0.8206 for Q10 1.5).
    water : {"auto", "psi", "ppt", "none"}
        Water scalar: ``"auto"`` uses ``psi`` if given, else P/PET if both are given, else 1.
    psi_min, psi_max : float
        Matric-potential bounds of the water scalar [MPa].
    spinup : {"mean", "periodic"}
        Initial pools: steady state for the cycle-mean scalar and input (docs/methods.md §3.5), or
        the exact periodic steady state of the spin-up cycle.
    spinup_years : int, optional
        Length of the spin-up cycle: the first ``spinup_years`` years of the forcing (default
        and maximum: the whole record).
    spinup_cycles : int
        Cycles run after the steady-state solution; the drift of the last one is reported.
    drift_tolerance : float
        Drift [% of total soil C per cycle] above which a warning is emitted.
    days_per_year : float
        Days of the year in which the base rates are expressed (CLM: 365).
    pool_outputs : bool
        Return the pools after spin-up (``soil_c_spinup``, dims pool, y, x) and the drift
        (``spinup_drift``) besides ``rh``.

    Returns
    -------
    xarray.Dataset
        ``rh`` [g C m-2 month-1] (Eq. 4 integrated over each month, ``= I − ΔΣC``) with
        attributes ``model``, ``parameters`` (JSON), ``water_scalar``, ``spinup``;
        with ``pool_outputs`` also ``soil_c_spinup`` [g C m-2] and ``spinup_drift``
        [% per cycle]. Lazy for dask input (one task per spatial chunk, time whole).

    Notes
    -----
    Equations (1)–(4) of the module docstring; exact update in the eigenbasis of ``A``;
    a month with NaN input has NaN Rh and leaves the pools unchanged; NaN in the spin-up
    cycle makes the pixel NaN. References: Lawrence et al. (2019) (CLM5); seed paper 002
    Eq. 4 (corrected to respired fractions); carbonsink docs/methods.md §3.5.
    """
    choice("spinup", spinup, ("mean", "periodic"))
    if not is_xr(tas) or not is_xr(npp):
        raise InputError("century needs xarray DataArrays for 'tas' and 'npp' with a time "
                         "coordinate of month starts (the calendar sets each step's length)")
    if int(spinup_cycles) < 0:
        raise InvalidArgumentError(f"spinup_cycles must be >= 0, got {spinup_cycles}")
    per = parse_units(npp.attrs.get("units", "")).period if "units" in npp.attrs else None
    if per == "year":
        raise InputError("century needs monthly NPP (g C m-2 month-1) as litter input, got "
                         f"'{npp.attrs.get('units')}'; use a monthly NPP model or product")
    t = ensure_units(tas, "degC", "tas", time_dim=time_dim)
    n = ensure_units(npp, "g C m-2 month-1", "npp", time_dim=time_dim)
    frac = litter_split(litter_fractions, cwd_fraction)
    fw, water_used = _water(t, pr, pet, psi, psi_min, psi_max, water)
    ft = temperature_scalar(t, q10=q10, q10_frozen=q10_frozen, normalise=normalise)
    r = ft * fw
    if is_xr(r):
        r = r.transpose(*t.dims)
    cal = calendar_of(t, time_dim)
    dt = cal.days / float(days_per_year)
    years = np.unique(cal.years)
    ny = len(years) if spinup_years is None else max(1, min(int(spinup_years), len(years)))
    nspin = int(np.sum(cal.years < years[0] + ny))
    litter = n.clip(min=0.0).where(n.notnull())
    if sand is not None:
        sand_da = ensure_units(sand, "%", "sand") if is_xr(sand) and "units" in sand.attrs \
            else sand
        s1t = s1_respired_fraction(sand_da)
    else:
        s1t = float(s1_respired_fraction(sand_percent))
    dtype = float_dtype(t, n)
    ncyc = int(spinup_cycles)
    periodic = spinup == "periodic"

    def block(lit, rr, tt, *, threads=None):
        t2, s2, spatial = to_2d([lit, rr], [np.asarray(tt)], core_last=True,
                                layout="time_major", dtype=np.float64)
        npix = int(np.prod(spatial)) if spatial else 1
        tvals, which = np.unique(np.round(s2[0], 12), return_inverse=True)
        finite = np.isfinite(tvals)
        lam = np.full((len(tvals), _NPOOL), np.nan)
        vec = np.zeros((len(tvals), _NPOOL, _NPOOL))
        vinv = np.zeros((len(tvals), _NPOOL, _NPOOL))
        if finite.any():
            lf, vf, vif = _eigen(tuple(float(v) for v in tvals[finite]))
            lam[finite], vec[finite], vinv[finite] = lf, vf, vif
        which = which.astype(np.int64).reshape(-1)
        nt = t2[0].shape[0]
        rh = np.empty((nt, npix))
        pools = np.empty((_NPOOL, npix))
        drift = np.empty(npix)

        def task(a, b):
            century_kernel(t2[0], t2[1], dt, lam, vec, vinv, which, frac, nspin, periodic,
                           ncyc, rh, pools, drift, a, b)

        if npix:
            run_ranges(task, npix, threads)
        bad = np.isfinite(drift) & (drift > drift_tolerance)
        if bad.any():
            warnings.warn(f"century spin-up: total soil carbon still drifts by up to "
                          f"{np.nanmax(drift):.3g} % per cycle in {int(bad.sum())} pixels "
                          f"(tolerance {drift_tolerance} %); use spinup='periodic' or more "
                          "spinup_cycles", RuntimeWarning, stacklevel=2)
        rh_out = np.moveaxis(rh.reshape((nt,) + spatial), 0, -1).astype(dtype, copy=False)
        pools_out = np.moveaxis(pools.reshape((_NPOOL,) + spatial), 0, -1)
        return rh_out, pools_out, drift.reshape(spatial)

    tt = s1t if is_xr(s1t) else xr.DataArray(np.float64(s1t))
    rh, pools, drift = apply(block, [litter, r, tt], time_dim, n_out=3,
                             out_dtypes=[dtype, np.float64, np.float64],
                             in_core_dims=[[time_dim], [time_dim], []],
                             out_core_dims=[[time_dim], ["pool"], []],
                             out_sizes={"pool": _NPOOL})
    rh = rh.transpose(*[d for d in t.dims if d in rh.dims])
    params = {"sand_percent": "map" if sand is not None else sand_percent,
              "litter_fractions": list(litter_fractions), "cwd_fraction": cwd_fraction,
              "q10": q10, "q10_frozen": q10_frozen, "normalise": normalise,
              "normalisation_factor": normalisation_factor(q10) if normalise else 1.0,
              "water": water_used, "psi_min": psi_min, "psi_max": psi_max,
              "spinup": spinup, "spinup_years": int(ny), "spinup_cycles": ncyc,
              "days_per_year": days_per_year}
    spin = {"method": spinup, "cycle_years": int(ny), "cycles": ncyc,
            "drift_tolerance_percent": drift_tolerance}
    rh.name = "rh"
    rh.attrs = {"units": "g C m-2 month-1", "long_name": "soil heterotrophic respiration",
                "model": "century", "parameters": json.dumps(jsonable(params), sort_keys=True),
                "reference": _REF, "methods_section": "carbonsink docs/methods.md §3.5",
                "water_scalar": water_used, "spinup": json.dumps(spin, sort_keys=True)}
    out = {"rh": rh}
    if pool_outputs:
        pools = pools.assign_coords(pool=list(POOLS)).transpose(
            "pool", *[d for d in pools.dims if d != "pool"])
        pools.attrs = {"units": "g C m-2", "long_name": "soil carbon pools after spin-up",
                       "spinup": json.dumps(spin, sort_keys=True)}
        drift.attrs = {"units": "%", "long_name": "drift of total soil carbon over the last "
                       "spin-up cycle (per cycle)",
                       "drift_tolerance": drift_tolerance}
        out["soil_c_spinup"] = pools
        out["spinup_drift"] = drift
    return xr.Dataset(out)


# --------------------------------------------------------------------------- registration


@register_model("rh", "century", inputs=("tas",), optional_inputs=("pr", "pet", "psi", "sand"),
                needs=("npp",), functions=(century,),
                description="CLM5 CENTURY-type 7-pool decomposition cascade driven by NPP "
                            "litter, with spin-up (carbonsink docs/methods.md §3.5)")
def _century(inputs: Mapping[str, Any], *, needs: Mapping[str, Any], **options) -> xr.Dataset:
    options.pop("mode", None)
    return century(inputs["tas"], needs["npp"], pr=inputs.get("pr"), pet=inputs.get("pet"),
                   psi=inputs.get("psi"), sand=inputs.get("sand"), **options)
