"""Compiled numerical kernels of the flux models (private).

Two kinds of kernel live here:

* **element-wise ufuncs** (``numba.vectorize`` with explicit float32 and
  float64 loops, built on first use by :class:`_LazyUfunc` so that importing the
  package compiles nothing; ``cache=True`` keeps the machine code on disk).
  They are NumPy ufuncs, so the same call works on NumPy arrays, on dask arrays (dask maps them block-wise and stays lazy) and on
  xarray objects (via ``__array_ufunc__``).  Each model formula is evaluated in
  one pass over memory instead of one temporary per arithmetic operator.
* **along-time kernels** (``numba.njit``) working on 2-D ``(time, pixel)``
  arrays, for the parts that need a whole time series of a pixel (calendar-year
  sums, the NDVI-peak month, Wε carry-forward).  The inner loop runs over
  pixels so that memory is read contiguously.

The scalar helpers (``_te2`` ...) are shared by the public component
ufuncs and the fused CASA kernel so that every formula is written once.
Equations and references are documented in the public modules
(:mod:`.npp`, :mod:`.rh`, :mod:`.water`).
"""

from __future__ import annotations

import math
import threading

import numba
import numpy as np

_build_lock = threading.Lock()
_F4 = numba.float32
_F8 = numba.float64


def _sigs(nargs: int) -> list:
    return [_F4(*([_F4] * nargs)), _F8(*([_F8] * nargs))]


_VEC = dict(cache=True, nopython=True)
_JIT = dict(cache=True, nogil=True)


class _LazyUfunc:
    """A ``numba.vectorize`` ufunc (float32 and float64 loops) built on first use.

    ``numba.vectorize`` with explicit signatures compiles (or loads from its on-disk
    cache) at decoration time, which made ``import carbonsink.flux`` take seconds. This
    wrapper defers that to the first call; afterwards it forwards to the real NumPy ufunc
    (attributes such as ``nin``, ``types`` or ``reduce`` included). Its dask token and its
    pickle are its name, so graphs stay deterministic and it travels to dask workers.
    """

    def __init__(self, func, nargs: int):
        self.py_func = func
        self.nargs = nargs
        self.__name__ = func.__name__
        self.__qualname__ = func.__qualname__
        self.__doc__ = func.__doc__
        self.__module__ = func.__module__
        self._uf = None

    @property
    def ufunc(self) -> np.ufunc:
        if self._uf is None:
            with _build_lock:
                if self._uf is None:
                    self._uf = numba.vectorize(_sigs(self.nargs), **_VEC)(self.py_func)
        return self._uf

    def __call__(self, *args, **kwargs):
        return self.ufunc(*args, **kwargs)

    def __getattr__(self, name):
        if name.startswith("__") or name in ("py_func", "nargs", "_uf"):
            raise AttributeError(name)
        return getattr(self.ufunc, name)

    def __dask_tokenize__(self):
        return ("carbonsink.flux._kernels", self.__name__)

    def __reduce__(self):
        return (_ufunc_by_name, (self.__name__,))

    def __repr__(self) -> str:
        state = "compiled" if self._uf is not None else "not compiled yet"
        return f"<carbonsink ufunc {self.__name__} ({state})>"


def _ufunc_by_name(name: str) -> "_LazyUfunc":
    return globals()[name]


def _vectorize(nargs: int):
    """Decorator: a lazily compiled float32/float64 ufunc of ``nargs`` arguments."""
    def deco(func):
        return _LazyUfunc(func, nargs)
    return deco

# --------------------------------------------------------------------- scalar helpers


@numba.njit(**_JIT)
def _te1(topt):
    return 0.8 + 0.02 * topt - 0.0005 * topt * topt


@numba.njit(**_JIT)
def _te2_raw(t, topt, c):
    return c / ((1.0 + math.exp(0.2 * (topt - 10.0 - t))) * (1.0 + math.exp(0.3 * (t - 10.0 - topt))))


@numba.njit(**_JIT)
def _te2(t, topt, c, half, above, below):
    if half != 0.0 and (t > topt + above or t < topt - below):
        return 0.5 * _te2_raw(topt, topt, c)
    return _te2_raw(t, topt, c)


@numba.njit(**_JIT)
def _zz_rn(p, ep):
    # safe operands so that speculatively evaluated branches raise no FP flags
    ok = p > 0.0 and ep > 0.0
    ps = p if ok else 1.0
    es = ep if ok else 1.0
    rn = math.sqrt(es * ps) * (0.369 + 0.598 * math.sqrt(es / ps))
    return rn if ok else 0.0


@numba.njit(**_JIT)
def _zz_eet(p, ep):
    if p != p or ep != ep:
        return math.nan
    if p < 0.0:
        p = 0.0
    if ep < 0.0:
        ep = 0.0
    rn = _zz_rn(p, ep)
    ok = p > 0.0 and rn > 0.0
    ps = p if ok else 1.0
    rs = rn if ok else 1.0
    e = ps * rs * (ps * ps + rs * rs + ps * rs) / ((ps + rs) * (ps * ps + rs * rs))
    return e if ok else 0.0


# --------------------------------------------------------------------- element-wise ufuncs


# Formulas whose cost is their exp/log are NumPy expressions, not numba loops: NumPy's SIMD
# exp and log (and its SVML paths on AVX-512) evaluate 4-16 values at once, where a numba
# loop calls the scalar libm function per value. On 252 x 150 x 150 float32 blocks: Pei
# 19-21 -> 7.5-7.9 ns per value, GSMSR 25-29 -> 9.7-10.8 (max relative difference to the
# numba loops 5e-7, float32 rounding). They take NumPy, dask blocks and scalars alike and
# return float32 for float32 inputs (Python scalars do not promote).


def pei_values(t, p, a, b, c, days, fraction):
    """Pei et al. (2009) Rh: a·(exp(b·T) + ln(c·P + 1))·days·fraction, P < 0 taken as 0."""
    return a * (np.exp(b * t) + np.log(c * np.maximum(p, 0.0) + 1.0)) * days * fraction


def gsmsr_values(t, pr_mm, soc, days, r0, m, alpha, beta, p0, k):
    """GSMSR Rs over ``days`` days; P enters in cm (pr_mm / 10, negative taken as 0).

    Q10(T)^(T/10) = exp(ln(α·e^(βT))·T/10) = exp((ln α + β·T)·T/10): one exp.
    """
    p_cm = np.maximum(pr_mm * 0.1, 0.0)
    temp = np.exp((math.log(alpha) + beta * t) * t * 0.1)
    return (r0 + m * soc) * temp * (p_cm + p0) / (p_cm + k) * days


@_vectorize(3)
def bond_lamberty_uf(rs, intercept, slope):
    if rs != rs:
        return rs
    if rs <= 0.0:
        return 0.0
    return math.exp(intercept + slope * math.log(rs))


@_vectorize(5)
def shi_uf(rs, a, b, c, clip):
    rh = a * rs * rs + b * rs + c
    if clip != 0.0:
        cap = rs if rs > 0.0 else 0.0
        if rh > cap:
            rh = cap
    return rh


@_vectorize(1)
def te1_uf(topt):
    return _te1(topt)


@_vectorize(6)
def te2_uf(t, topt, c, half, above, below):
    return _te2(t, topt, c, half, above, below)


@_vectorize(6)
def fpar_zhu_uf(ndvi, lo, hi, fmin, fmax, alpha):
    if ndvi != ndvi or lo != lo or hi != hi:
        return math.nan
    if ndvi < lo:
        ndvi = lo
    if ndvi > hi:
        ndvi = hi
    span = fmax - fmin
    if hi > lo:
        f_ndvi = (ndvi - lo) / (hi - lo) * span + fmin
        sr = (1.0 + ndvi) / (1.0 - ndvi)
        sr_lo = (1.0 + lo) / (1.0 - lo)
        sr_hi = (1.0 + hi) / (1.0 - hi)
        f_sr = (sr - sr_lo) / (sr_hi - sr_lo) * span + fmin
    else:  # degenerate class range: no information in NDVI
        f_ndvi = fmin
        f_sr = fmin
    f = alpha * f_ndvi + (1.0 - alpha) * f_sr
    if f < fmin:
        f = fmin
    if f > fmax:
        f = fmax
    return f


@_vectorize(3)
def fpar_minmax_uf(ndvi, lo, hi):
    if ndvi != ndvi:
        return ndvi
    f = (ndvi - lo) / (hi - lo) if hi > lo else 0.0
    if f < 0.0:
        f = 0.0
    if f > 1.0:
        f = 1.0
    return f


@_vectorize(2)
def zz_rn_uf(p, ep):
    if p != p or ep != ep:
        return math.nan
    return _zz_rn(max(p, 0.0), max(ep, 0.0))


@_vectorize(2)
def zz_eet_uf(p, ep):
    return _zz_eet(p, ep)


@_vectorize(2)
def zz_pet_uf(p, ep):
    e = _zz_eet(p, ep)
    return 0.5 * (e + max(ep, 0.0))


@_vectorize(10)
def casa_npp_uf(fpar, sol, t, topt, we, emax, par_fraction, c, half, t_min):
    if t != t:
        return t
    apar = sol * fpar * par_fraction
    if t <= t_min:
        return 0.0 * apar * emax  # ε = 0; keeps NaN of masked pixels
    eps = _te1(topt) * _te2(t, topt, c, half, 10.0, 13.0) * we * emax
    return apar * eps


@_vectorize(2)
def miami_uf(t, r):
    npp_t = 3000.0 / (1.0 + math.exp(1.315 - 0.119 * t))
    npp_p = 3000.0 * (1.0 - math.exp(-0.000664 * r))
    if npp_t != npp_t or npp_p != npp_p:
        return math.nan
    return min(npp_t, npp_p)


@_vectorize(2)
def thornthwaite_memorial_uf(t, r):
    big_l = 3000.0 + 25.0 * t + 0.05 * t ** 3
    v = 1.05 * r / math.sqrt(1.0 + (1.0 + 1.05 * r / big_l) ** 2)
    npp = 3000.0 * (1.0 - math.exp(-0.0009695 * (v - 20.0)))
    if npp < 0.0:
        npp = 0.0
    return npp


@numba.njit(**_JIT)
def class_histogram_kernel(values, cls, nclass, nbins, one, half_bins):
    """Counts of (class, bin) of the finite ``values`` whose class is in [0, nclass).

    ``values`` and ``cls`` are 2-D (step, pixel); ``cls`` has one row per step or a single
    row for every step. The bin of ``v`` is ``int((v + one) * half_bins)`` clipped to
    [0, nbins - 1] (``one`` and ``half_bins`` in the dtype of ``values``, so the arithmetic
    is that of NumPy's ``(v + 1.0) * (nbins / 2)``): bins of width 2 / nbins over [-1, 1].
    Returns int64 counts of length ``nclass * nbins`` (class-major). One pass over memory.
    """
    nt, npx = values.shape
    single = cls.shape[0] == 1
    top = nbins - 1
    counts = np.zeros(nclass * nbins, dtype=np.int64)
    for i in range(nt):
        ci = 0 if single else i
        for p in range(npx):
            c = cls[ci, p]
            if c < 0 or c >= nclass:
                continue
            v = values[i, p]
            if not math.isfinite(v):
                continue
            x = (v + one) * half_bins
            if x < 0:
                b = 0
            elif x >= top:
                b = top
            else:
                b = int(x)
            counts[c * nbins + b] += 1
    return counts


# --------------------------------------------------------------------- along-time kernels
# Arrays are (time, pixel); ``group`` is an int64 label per time step
# (calendar-year index 0..ngroup-1, non-decreasing).


def thornthwaite_values(t, group, ngroup, climatology, moy, lat, doy, days, correct):
    """Thornthwaite E_p [mm month-1] of ``t`` (time, pixels) [degC]; see
    :func:`carbonsink.flux.water.thornthwaite_pet`.

    ``group`` holds the heat-index group (calendar year) of each step. The powers
    (T/5)^1.514 and (10·T/I)^a are evaluated as exp(p·ln x) with NumPy on one group's steps
    at a time (float64 temporaries of 12 steps): its SIMD exp and log are several times
    faster per value than the scalar power a numba loop calls, which made this the
    costliest model kernel of a study. A month with T ≤ 0 is evaluated at T = 1 and its
    terms multiplied by 0 (extreme arguments would send exp and log down their slow
    paths); NaN propagates through both. I ≤ 0 gives E_p = 0.
    """
    nt, npx = t.shape
    out = np.empty((nt, npx), dtype=t.dtype)
    with np.errstate(all="ignore"):
        if climatology:  # one I per pixel from the mean of each calendar month
            hi_clim = np.zeros(npx)
            for m in range(12):
                sel = t[moy == m].astype(np.float64)
                n = np.sum(~np.isnan(sel), axis=0)
                tm = np.where(n > 0, np.nansum(sel, axis=0) / np.maximum(n, 1), np.nan)
                term = (np.where(tm > 0.0, tm, 5.0) / 5.0) ** 1.514
                hi_clim += np.where(tm > 0.0, term, np.where(np.isnan(tm), np.nan, 0.0))
        for g in range(ngroup):
            rows = np.flatnonzero(group == g)
            if rows.size == 0:
                continue
            v = t[rows].astype(np.float64)
            pos = v > 0.0
            v[v <= 0.0] = 1.0  # NaN compares False: stays NaN
            lv = np.log(v)
            if climatology:
                hi = hi_clim
            else:
                x = lv - _LN5
                x *= 1.514
                np.exp(x, out=x)
                x *= pos
                hi = x.sum(axis=0)
            expo = 6.75e-7 * hi ** 3 - 7.71e-5 * hi ** 2 + 1.792e-2 * hi + 0.49239
            log_hi = np.log(hi)
            log_hi[hi <= 0.0] = np.inf  # (10·T/I)^a -> 0
            y = lv + (_LN10 - log_hi)
            y *= expo
            np.exp(y, out=y)
            y *= 16.0
            y *= pos
            if correct:
                _daylength_apply(y, lat, doy[rows], days[rows])
            out[rows] = y
    return out


_LN5 = math.log(5.0)
_LN10 = math.log(10.0)


@numba.njit(**_JIT)
def _daylength_apply(ep, lat, doy, days):
    """``ep`` (steps, pixels) times Thornthwaite's day-length factor of each step and pixel
    latitude, in place; pixels of one grid row share the latitude, so the factor is
    recomputed only where it changes (same formula, same value)."""
    nt, npx = ep.shape
    for i in range(nt):
        last_lat = math.nan
        factor = 1.0
        for p in range(npx):
            if lat[p] != last_lat:
                last_lat = lat[p]
                factor = _daylength_factor(lat[p], doy[i], days[i])
            ep[i, p] *= factor


@numba.njit(**_JIT)
def _daylength_factor(lat, doy, days):
    """Thornthwaite's correction N/12 · days/30 (N: FAO-56 day length [h] at ``lat`` on
    day of year ``doy``)."""
    phi = math.radians(lat)
    dec = 0.409 * math.sin(2.0 * math.pi * doy / 365.0 - 1.39)
    x = -math.tan(phi) * math.tan(dec)
    if x >= 1.0:
        ws = 0.0
    elif x <= -1.0:
        ws = math.pi
    else:
        ws = math.acos(x)
    n_hours = 24.0 / math.pi * ws
    return n_hours / 12.0 * days / 30.0


@numba.njit(inline="always")
def _wepsilon_step(e, q, prev, carry):
    """One month of Wε = 0.5 + 0.5·EET/PET in [0.5, 1]; returns (Wε, the new carried value).

    A NaN month gives NaN and breaks the carry; PET <= 0 repeats the carried value
    (CASA's frozen-month rule) or gives NaN when ``carry`` is False.
    """
    if e != e or q != q:
        return math.nan, math.nan
    if q <= 0.0:
        return (prev if carry else math.nan), prev
    w = min(max(0.5 + 0.5 * e / q, 0.5), 1.0)
    return w, w


@numba.njit(**_JIT)
def wepsilon_kernel(eet, pet, first, carry):
    """Wε from EET and PET grids, carried forward where PET <= 0.

    Time is the outer loop and pixels the inner one, so every step reads the
    (time, pixel) arrays contiguously; ``prev`` holds each pixel's carried Wε.
    """
    nt, npx = eet.shape
    out = np.empty((nt, npx), dtype=eet.dtype)
    prev = np.full(npx, first)
    for i in range(nt):
        for p in range(npx):
            out[i, p], prev[p] = _wepsilon_step(eet[i, p], pet[i, p], prev[p], carry)
    return out


@numba.njit(**_JIT)
def wepsilon_zz_kernel(pr, ep, first, carry):
    """Wε from the Zhou–Zhang EET and PET of (P, E_p) in one pass, with carry-forward."""
    nt, npx = pr.shape
    out = np.empty((nt, npx), dtype=pr.dtype)
    prev = np.full(npx, first)
    for i in range(nt):
        for p in range(npx):
            pv = pr[i, p]
            e0 = max(ep[i, p], 0.0) if ep[i, p] == ep[i, p] else math.nan
            eet = _zz_eet(pv, e0) if pv == pv else math.nan
            out[i, p], prev[p] = _wepsilon_step(eet, 0.5 * (eet + e0), prev[p], carry)
    return out


@numba.njit(**_JIT)
def modis_kernel(npp, gpp, amat, comp_year, nyear, zero_negative):
    """Monthly NPP (12·nyear, npix) from annual NPP (nyear, npix) and composites (ncomp, npix).

    ``amat`` (ncomp, 12) assigns each composite to months (rows sum to 1);
    ``comp_year`` is the year index of each composite.  Accumulates in float64.
    """
    ncomp, npx = gpp.shape
    out = np.empty((12 * nyear, npx), dtype=gpp.dtype)
    acc = np.zeros((12, npx))
    k = 0
    for j in range(nyear):
        acc[:, :] = 0.0
        while k < ncomp and comp_year[k] == j:
            for m in range(12):
                a = amat[k, m]
                if a != 0.0:
                    for p in range(npx):
                        acc[m, p] += a * gpp[k, p]
            k += 1
        for p in range(npx):
            tot = 0.0
            for m in range(12):
                tot += acc[m, p]
            ny = npp[j, p]
            if zero_negative and ny < 0.0:
                ny = 0.0
            if tot == 0.0:
                v = 0.0 if ny == 0.0 else math.nan
                for m in range(12):
                    out[12 * j + m, p] = v
            else:
                f = ny / tot
                for m in range(12):
                    out[12 * j + m, p] = acc[m, p] * f
    return out


@numba.njit(**_JIT)
def topt_kernel(ndvi, t, group, ngroup, floor, use_floor):
    """Multi-year mean of the temperature of each year's NDVI-peak month.

    Time-outer loop (contiguous reads); ties keep the first month of the year.
    """
    nt, npx = ndvi.shape
    out = np.empty(npx, dtype=t.dtype)
    best = np.full((ngroup, npx), -np.inf)
    tbest = np.full((ngroup, npx), np.nan)
    for i in range(nt):
        g = group[i]
        for p in range(npx):
            v = ndvi[i, p]
            if v == v and v > best[g, p]:
                best[g, p] = v
                tbest[g, p] = t[i, p]
    for p in range(npx):
        s = 0.0
        n = 0
        for g in range(ngroup):
            if tbest[g, p] == tbest[g, p]:
                s += tbest[g, p]
                n += 1
        val = s / n if n > 0 else math.nan
        if use_floor and val == val and val < floor:
            val = floor
        out[p] = val
    return out


@numba.njit(**_JIT)
def bl_annual_ratio_kernel(rs, group, ngroup, nmonths, intercept, slope):
    """Bond-Lamberty applied to calendar-year sums, distributed by monthly Rs."""
    nt, npx = rs.shape
    out = np.empty((nt, npx), dtype=rs.dtype)
    ysum = np.zeros((ngroup, npx))
    for i in range(nt):
        g = group[i]
        for p in range(npx):
            ysum[g, p] += rs[i, p]
    ratio = np.empty((ngroup, npx))
    for g in range(ngroup):
        scale = 12.0 / nmonths[g]
        for p in range(npx):
            s = ysum[g, p] * scale
            if s != s:
                ratio[g, p] = math.nan
            elif s <= 0.0:
                ratio[g, p] = 0.0
            else:
                ratio[g, p] = math.exp(intercept + slope * math.log(s)) / s
    for i in range(nt):
        g = group[i]
        for p in range(npx):
            v = rs[i, p]
            if v != v:
                out[i, p] = math.nan
            elif v <= 0.0:
                out[i, p] = 0.0
            else:
                out[i, p] = v * ratio[g, p]
    return out


@numba.njit(**_JIT)
def lookup_kernel(codes, table, fill, out):
    """``out[i] = table[codes[i]]`` for a whole code in ``[0, len(table))``, else ``fill``
    (NaN, negative and too large codes; float codes are truncated like ``astype(int)``);
    see :func:`carbonsink.flux._util.lookup`."""
    n = table.shape[0]
    for i in range(codes.shape[0]):
        v = codes[i]
        if v >= 0 and v < n:  # False for NaN
            out[i] = table[int(v)]
        else:
            out[i] = fill
