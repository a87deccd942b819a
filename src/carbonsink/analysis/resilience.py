"""Carbon-sink resilience by probability attenuation (paper 004 Eq. 7–12, docs/methods.md §8.2), as
public functions and a registered analysis.

Steps (t0 initial year, t′ reference year, t_i evaluation years t′ < t_i ≤ last year)::

    K(x, t_i) = OLS slope of NPP over [t0, t_i]      (window_start="t0", 004 §3.3.2; default)
                                 or over [t′, t_i]    (window_start="tref"; K(t′) keeps [t0, t′])
    S(x, t)   = +1 if K > 0, −1 if K < 0, 0 if K = 0 or NaN              (004 Eq. 8)
    P(x, t′)  = S(x, t′);  P(x, t_i) = P(x, t_{i−1}) if S(x, t_i) = P(x, t_{i−1}) ≠ 0, else 0
                                                     (004 Eq. 9; once broken, stays 0)
    N⁺(t) = #{P = +1},  N⁻(t) = #{P = −1},  q±(t) = N±(t) / N±(t′)         (004 Eq. 10)
    change(t_i) = [N⁺(t′) − N⁺(t_i)] + [N⁻(t′) − N⁻(t_i)],
    ratio(t_i)  = 100 · Σ_{t′<t≤t_i} change(t) / Σ_{t′<t≤last} change(t)    (004 Table 2)
    q(t) = λ · exp(−(t − t′) / τ)   fitted to q⁺ (τ_p) and to q⁻ (τ_n)      (004 Eq. 11)
    RS   = τ_p − τ_n  [yr]                                                   (004 Eq. 12)

Grades (004 §4.4, boundaries closed as in docs/methods.md §8.2): RS > 500 "extremely strong";
100 < RS ≤ 500 "stronger"; 0 ≤ RS ≤ 100 "strong"; −100 ≤ RS < 0 "weak"; RS < −100 "weaker".

The decay fit has three variants: ``"nls"`` (non-linear least squares on q with λ free,
:func:`scipy.optimize.curve_fit`; the default), ``"loglinear"`` (OLS of ln q on t − t′, λ
free) and ``"lambda1"`` (non-linear least squares with λ = 1). Each reports λ, τ, R² (on q) and
a flag; τ is NaN with the reason in the flag when the fit fails, τ ≤ 0 or q does not change.
On the maintained-grid counts printed in 004 Table 2 they give τ_p / τ_n = 64.95 / 10.00 (NLS),
66.96 / 13.26 (log-linear) and 52.81 / 7.35 (λ = 1); the paper's 196 / 7 yr could not be
reproduced with any variant (carbonsink docs/methods.md §8.2).

Reference: Wang et al. (2023), carbon-sink carrying capacity and resilience of China's
ecosystems, paper 004 (§3.3, Table 2).
"""

from __future__ import annotations

import json
import math
import warnings
from typing import Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field

from ..errors import InvalidArgumentError
from ..stats.windows import calendar_years, window_slopes
from .base import Analysis, AnalysisResult, CubeProduct, register_analysis, tidy

__all__ = ["resilience_windows", "slope_surface", "maintenance_surface", "maintained_years",
           "maintained_counts", "change_counts", "maintenance_table", "fit_decay",
           "decay_fits", "resilience_grade", "GRADES", "FIT_VARIANTS", "resilience_dataset",
           "default_reference_year", "Resilience"]

#: decay-fit variants (carbonsink docs/methods.md §8.2 step 6)
FIT_VARIANTS = ("nls", "loglinear", "lambda1")
_FIT_LABEL = {"nls": "NLS, λ free", "loglinear": "log-linear OLS, λ free",
              "lambda1": "NLS, λ = 1"}

#: resilience grades (lower bound, inclusive?, label), highest first (docs/methods.md §8.2 step 8)
GRADES = ("extremely strong", "stronger", "strong", "weak", "weaker")


# --------------------------------------------------------------------------- time division


def default_reference_year(years) -> int:
    """Default reference year t′: the middle of the record, rounded up (2000 for 1981–2018,
    the choice of 004)."""
    years = np.asarray(years)
    return int(math.ceil((int(years[0]) + int(years[-1])) / 2.0))


def resilience_windows(years, *, t0: int | None = None, t_ref: int | None = None,
                       eval_years=None, window_start: str = "t0") -> list[tuple[int, int]]:
    """The slope windows (start, end) for t′ and each evaluation year (004 §3.3.2).

    ``t0`` defaults to the first year, ``t_ref`` to :func:`default_reference_year`,
    ``eval_years`` to every year after ``t_ref``. ``window_start="t0"`` (default): every
    window starts at t0 (expanding windows, docs/methods.md §8.2 step 2); ``"tref"``: the reference
    window is [t0, t′] and the evaluation windows start at t′.
    """
    years = [int(y) for y in np.asarray(years)]
    t0 = years[0] if t0 is None else int(t0)
    t_ref = default_reference_year(years) if t_ref is None else int(t_ref)
    if window_start not in ("t0", "tref"):
        raise InvalidArgumentError(f"window_start must be 't0' or 'tref', got {window_start!r}")
    if t0 not in years or t_ref not in years:
        raise InvalidArgumentError(f"t0={t0} and t_ref={t_ref} must be years of the record "
                                   f"({years[0]}–{years[-1]})")
    if t_ref - t0 < 2:
        raise InvalidArgumentError(f"t_ref ({t_ref}) must be at least 2 years after t0 ({t0}) "
                                   "so that the reference slope has 3 or more years")
    ev = [y for y in years if y > t_ref] if eval_years is None else sorted(int(y) for y in
                                                                          eval_years)
    bad = [y for y in ev if y <= t_ref or y not in years]
    if bad or not ev:
        raise InvalidArgumentError(f"evaluation years must be years of the record after "
                                   f"t_ref={t_ref}; got {ev if not bad else bad}")
    start = t0 if window_start == "t0" else t_ref
    return [(t0, t_ref)] + [(start, y) for y in ev]


# --------------------------------------------------------------------------- surfaces


def slope_surface(slopes: xr.DataArray) -> xr.DataArray:
    """S = +1 where K > 0, −1 where K < 0, 0 where K = 0 or NaN (004 Eq. 8) [int8]."""
    s = xr.apply_ufunc(lambda k: np.nan_to_num(np.sign(k)).astype(np.int8), slopes,
                       dask="parallelized", output_dtypes=[np.int8])
    s.attrs = {"units": "1", "long_name": "slope surface (sign of the window slope)",
               "flag_values": [-1, 0, 1], "flag_meanings": "negative none positive"}
    return s.rename("slope_surface")


def maintenance_surface(surface: xr.DataArray, dim: str = "year") -> xr.DataArray:
    """Maintenance surface P (004 Eq. 9) from the slope surface S along ``dim`` (t′ first).

    P(t′) = S(t′); P(t_i) = P(t_{i−1}) where S(t_i) = P(t_{i−1}) ≠ 0, else 0 — so P(t_i) is
    S(t′) where S kept the sign of S(t′) in every year up to t_i, else 0 (once broken, stays
    0). Computed without a loop as S(t′) · cumulative-AND(S = S(t′)). [int8, lazy]
    """
    if dim not in surface.dims:
        raise InvalidArgumentError(f"maintenance_surface: the slope surface has no dimension "
                                   f"'{dim}' (dims {surface.dims})")
    first = surface.isel({dim: 0}, drop=True)
    kept = xr.apply_ufunc(np.logical_and.accumulate, surface == first,
                          input_core_dims=[[dim]], output_core_dims=[[dim]],
                          dask="parallelized", output_dtypes=[bool],
                          kwargs={"axis": -1})
    p = (first * kept).astype(np.int8).transpose(*surface.dims)
    p.attrs = {"units": "1", "long_name": "maintenance surface (sign kept since the "
                                          "reference year, else 0)",
               "flag_values": [-1, 0, 1], "flag_meanings": "negative broken positive"}
    return p.rename("maintenance")


def maintained_years(maintenance: xr.DataArray, dim: str = "year") -> xr.DataArray:
    """Stacked maintenance map: +n where a positive trend was maintained in n of the years
    (reference year included), −n for a negative trend, 0 where the sign was 0 at t′ (004
    Fig. 8) [int16]."""
    out = maintenance.astype(np.int16).sum(dim).astype(np.int16)
    out.attrs = {"units": "1", "long_name": "years with the reference-year trend maintained "
                                            "(positive: increasing, negative: decreasing)"}
    return out.rename("maintained_years")


def resilience_dataset(npp: xr.DataArray, *, t0: int | None = None, t_ref: int | None = None,
                       eval_years=None, window_start: str = "t0", min_valid: int | None = None,
                       dim: str = "time") -> xr.Dataset:
    """Window slopes K, slope surface S, maintenance surface P (dims year, y, x) and the
    stacked map of annual ``npp`` (004 Eq. 7–9). Lazy for dask input; the windows come from
    :func:`resilience_windows` and are computed at once by
    :func:`carbonsink.stats.window_slopes` (one pass of running sums). ``min_valid`` is the
    least number of valid years in a window (default 3; 2 with ``window_start="tref"``,
    whose first evaluation window [t′, t′ + 1] has two years)."""
    if min_valid is None:
        min_valid = 3 if window_start == "t0" else 2
    years = calendar_years(npp, dim)
    windows = resilience_windows(years, t0=t0, t_ref=t_ref, eval_years=eval_years,
                                 window_start=window_start)
    k = window_slopes(npp, windows, dim, min_valid=min_valid)
    k = k.rename(window="year").drop_vars(["window_start", "window_end"])
    k = k.assign_coords(year=("year", np.array([e for _, e in windows])))
    s = slope_surface(k)
    p = maintenance_surface(s)
    ds = xr.Dataset({"slope": k, "slope_surface": s, "maintenance": p,
                     "maintained_years": maintained_years(p)})
    ds = ds.assign_coords(window_start=("year", np.array([st for st, _ in windows]),
                                        {"units": "year", "long_name": "first year of the "
                                                                        "slope window"}))
    ds.attrs = {"method": "probability-attenuation resilience (paper 004 Eq. 7-12, "
                          "carbonsink docs/methods.md §8.2)", "t0": windows[0][0],
                "t_ref": windows[0][1],
                "window_start": window_start, "min_valid": int(min_valid)}
    return ds


# --------------------------------------------------------------------------- counts


def _zone_codes(zones: xr.DataArray) -> tuple[list[int], dict[int, str]]:
    names = zones.attrs.get("zone_names")
    if names:
        mapping = json.loads(names) if isinstance(names, str) else dict(names)
        named = {int(k): str(v) for k, v in mapping.items()}
        return sorted(c for c in named if c != 0), named
    vals = np.unique(np.asarray(zones.values))
    codes = [int(v) for v in vals if np.isfinite(v) and int(v) != 0]
    return codes, {c: str(c) for c in codes}


def maintained_counts(maintenance: xr.DataArray, zones: xr.DataArray | None = None, *,
                      region: str = "study area", dim: str = "year") -> pd.DataFrame:
    """N⁺ and N⁻ (pixels with P = +1 / −1) per year for the region and per zone.

    ``zones`` is an integer (y, x) label map (0 = no zone) with an optional ``zone_names``
    attribute (JSON {label: name}), e.g. from the study's ``zones:``. Returns a DataFrame with
    columns zone, year, n_positive, n_negative (one block for ``region``, one per zone).
    Counts are computed once (dask) with one-hot zone weights, no loop over pixels.
    """
    import dask

    pos = (maintenance == 1)
    neg = (maintenance == -1)
    other = [d for d in maintenance.dims if d != dim]
    lazy = {"region": (pos.sum(other), neg.sum(other))}
    codes, names = ([], {})
    if zones is not None:
        zones = zones.drop_vars("spatial_ref", errors="ignore")
        codes, names = _zone_codes(zones)
        if codes:
            code_da = xr.DataArray(np.asarray(codes), dims="zone", coords={"zone": codes})
            onehot = (zones == code_da).astype(np.float64)
            pz = xr.dot(pos.drop_vars("spatial_ref", errors="ignore").astype(np.float64),
                        onehot, dim=other)
            nz = xr.dot(neg.drop_vars("spatial_ref", errors="ignore").astype(np.float64),
                        onehot, dim=other)
            lazy["zones"] = (pz, nz)
    (got,) = dask.compute(lazy)
    years = [int(y) for y in maintenance[dim].values]
    frames = [pd.DataFrame({"zone": region, "year": years,
                            "n_positive": np.asarray(got["region"][0].values, np.int64),
                            "n_negative": np.asarray(got["region"][1].values, np.int64)})]
    if "zones" in got:
        pz, nz = got["zones"]
        for c in codes:
            frames.append(pd.DataFrame({
                "zone": names.get(c, str(c)), "year": years,
                "n_positive": np.rint(pz.sel(zone=c).transpose(dim).values).astype(np.int64),
                "n_negative": np.rint(nz.sel(zone=c).transpose(dim).values).astype(np.int64)}))
    return pd.concat(frames, ignore_index=True)


def change_counts(n_positive, n_negative) -> tuple[np.ndarray, np.ndarray]:
    """Change count and its cumulative ratio of 004 Table 2 (reference year first).

    ``change(t_i) = [N⁺(t′) − N⁺(t_i)] + [N⁻(t′) − N⁻(t_i)]`` for t_i > t′, and
    ``ratio(t_i) = 100 · cumsum(change)(t_i) / Σ change`` [%] (docs/methods.md §8.2 step 5). Returns
    two arrays of the length of the evaluation years (NaN ratio when Σ change = 0).
    """
    p = np.asarray(n_positive, dtype=np.float64)
    n = np.asarray(n_negative, dtype=np.float64)
    if p.shape != n.shape or p.ndim != 1 or p.size < 2:
        raise InvalidArgumentError("change_counts: give N+ and N- as 1-D series of equal "
                                   "length (reference year first, at least 2 years)")
    change = (p[0] - p[1:]) + (n[0] - n[1:])
    cs = np.cumsum(change)
    total = cs[-1]
    ratio = 100.0 * cs / total if total != 0 else np.full_like(cs, np.nan)
    return change, ratio


def _ratios(counts: np.ndarray) -> np.ndarray:
    ref = float(counts[0])
    if ref <= 0:
        return np.full(counts.shape, np.nan)
    return counts / ref


def maintenance_table(counts: pd.DataFrame) -> pd.DataFrame:
    """The 004 Table 2 analogue as a tidy table from :func:`maintained_counts`.

    Rows per zone and year: ``positive``/``negative`` ``count`` [1] and ``percent`` (q·100 [%],
    100 in the reference year); ``change`` ``count`` [1] and ``cumulative_percent`` [%] for the
    evaluation years (:func:`change_counts`).
    """
    rows = []
    for zone, g in counts.groupby("zone", sort=False):
        g = g.sort_values("year")
        yrs = g["year"].to_numpy()
        npos, nneg = g["n_positive"].to_numpy(), g["n_negative"].to_numpy()
        change, ratio = change_counts(npos, nneg)
        for trend, c in (("positive", npos), ("negative", nneg)):
            q = _ratios(c.astype(np.float64))
            for y, cnt, qq in zip(yrs, c, q):
                rows.append({"zone": zone, "year": int(y), "variable": trend,
                             "statistic": "count", "units": "1", "value": float(cnt)})
                rows.append({"zone": zone, "year": int(y), "variable": trend,
                             "statistic": "percent", "units": "%", "value": 100.0 * qq})
        for y, ch, r in zip(yrs[1:], change, ratio):
            rows.append({"zone": zone, "year": int(y), "variable": "change",
                         "statistic": "count", "units": "1", "value": float(ch)})
            rows.append({"zone": zone, "year": int(y), "variable": "change",
                         "statistic": "cumulative_percent", "units": "%", "value": float(r)})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- decay fits


def _r2(q, fitted) -> float:
    ss_tot = float(np.sum((q - q.mean()) ** 2))
    if ss_tot == 0:
        return float("nan")
    return 1.0 - float(np.sum((q - fitted) ** 2)) / ss_tot


def fit_decay(years, q, t_ref: int, *, variant: str = "nls") -> dict:
    """Fit q(t) = λ·exp(−(t − t′)/τ) (004 Eq. 11) to the maintained ratios ``q`` (fractions,
    1 at t′) over ``years`` (t′ included).

    Parameters
    ----------
    years : calendar years of ``q`` [yr].
    q : ratios N(t)/N(t′) [1]; NaN values are left out.
    t_ref : reference year t′ [yr].
    variant : ``"nls"`` (λ free, :func:`scipy.optimize.curve_fit`), ``"loglinear"`` (OLS of
        ln q on t − t′, λ = exp(intercept)) or ``"lambda1"`` (NLS with λ = 1).

    Returns
    -------
    dict with ``lambda`` [1], ``tau`` [yr], ``r2`` [1] (1 − SSE/SST on q) and ``flag``
    (``"ok"``, or the reason why λ, τ and R² are NaN: too few points, constant ratio, a
    non-positive ratio in a log fit, no convergence, τ ≤ 0).
    """
    from scipy.optimize import OptimizeWarning, curve_fit

    if variant not in FIT_VARIANTS:
        raise InvalidArgumentError(f"fit variant {variant!r} unknown; valid: "
                                   f"{', '.join(FIT_VARIANTS)}")
    t_all = np.asarray(years, dtype=np.float64) - float(t_ref)
    q_all = np.asarray(q, dtype=np.float64)
    ok = np.isfinite(q_all)
    t, qv = t_all[ok], q_all[ok]
    nan = {"lambda": float("nan"), "tau": float("nan"), "r2": float("nan")}
    if t.size < 3:
        return {**nan, "flag": f"too few points ({t.size} valid ratios, need 3)"}
    if np.all(qv == qv[0]):
        return {**nan, "flag": "no decay: the ratio does not change"}
    lam0, tau0 = 1.0, max(float(t.max()), 1.0)
    if np.all(qv > 0):
        b1, b0 = np.polyfit(t, np.log(qv), 1)
        if variant == "loglinear":
            if b1 >= 0:
                return {**nan, "flag": "tau <= 0: the ratio does not decrease (log-linear "
                                       "slope >= 0)"}
            lam, tau = float(np.exp(b0)), float(-1.0 / b1)
            return {"lambda": lam, "tau": tau,
                    "r2": _r2(qv, lam * np.exp(-t / tau)), "flag": "ok"}
        if b1 < 0:
            lam0, tau0 = float(np.exp(b0)), float(-1.0 / b1)
    elif variant == "loglinear":
        return {**nan, "flag": "log-linear fit impossible: a ratio is <= 0"}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", OptimizeWarning)
            warnings.simplefilter("ignore", RuntimeWarning)
            # fitted in the rate k = 1/τ, which may cross 0: an increasing ratio gives k <= 0
            # (τ <= 0) instead of an unbounded τ
            if variant == "nls":
                (lam, k), _ = curve_fit(lambda tt, a, b: a * np.exp(-tt * b), t, qv,
                                        p0=(lam0, 1.0 / tau0), maxfev=20000)
            else:
                (k,), _ = curve_fit(lambda tt, b: np.exp(-tt * b), t, qv, p0=(1.0 / tau0,),
                                    maxfev=20000)
                lam = 1.0
    except (RuntimeError, OptimizeWarning, ValueError) as exc:
        return {**nan, "flag": f"did not converge ({str(exc).splitlines()[0][:80]})"}
    lam, k = float(lam), float(k)
    if not (np.isfinite(lam) and np.isfinite(k)):
        return {**nan, "flag": "did not converge (non-finite parameters)"}
    if k <= 0:
        return {**nan, "flag": "tau <= 0: the ratio does not decrease"}
    tau = 1.0 / k
    return {"lambda": lam, "tau": tau, "r2": _r2(qv, lam * np.exp(-t / tau)), "flag": "ok"}


def resilience_grade(rs: float) -> str:
    """Grade of RS = τ_p − τ_n [yr] (004 §4.4; docs/methods.md §8.2 step 8):
    > 500 "extremely strong", (100, 500] "stronger", [0, 100] "strong", [−100, 0) "weak", < −100 "weaker"; NaN
    "undetermined"."""
    if rs is None or not np.isfinite(rs):
        return "undetermined"
    if rs > 500:
        return GRADES[0]
    if rs > 100:
        return GRADES[1]
    if rs >= 0:
        return GRADES[2]
    if rs >= -100:
        return GRADES[3]
    return GRADES[4]


def decay_fits(counts: pd.DataFrame, t_ref: int, variants=FIT_VARIANTS) -> pd.DataFrame:
    """Decay fits of q⁺ and q⁻ per zone and variant, and RS with its grade.

    ``counts`` as from :func:`maintained_counts` (reference year first). Returns a tidy frame
    with key columns ``trend`` (positive, negative, or empty for RS), ``fit``, ``flag`` and
    ``grade``; variables ``lambda`` [1], ``tau`` [yr], ``r2`` [1] per trend and ``rs`` [yr]
    (τ_p − τ_n) per fit.
    """
    rows = []
    for zone, g in counts.groupby("zone", sort=False):
        g = g.sort_values("year")
        yrs = g["year"].to_numpy()
        if int(yrs[0]) != int(t_ref):
            raise InvalidArgumentError(f"decay_fits: the counts of '{zone}' start in {yrs[0]}, "
                                       f"not in the reference year {t_ref}")
        for fit in variants:
            taus = {}
            for trend, col in (("positive", "n_positive"), ("negative", "n_negative")):
                c = g[col].to_numpy(dtype=np.float64)
                if c[0] <= 0:
                    res = {"lambda": np.nan, "tau": np.nan, "r2": np.nan,
                           "flag": f"no {trend} trend pixels in the reference year"}
                else:
                    res = fit_decay(yrs, c / c[0], t_ref, variant=fit)
                taus[trend] = res["tau"]
                for var, units in (("lambda", "1"), ("tau", "yr"), ("r2", "1")):
                    rows.append({"zone": zone, "trend": trend, "fit": fit,
                                 "flag": res["flag"], "grade": "", "variable": var,
                                 "statistic": "decay_fit", "units": units,
                                 "value": res[var]})
            rs = taus["positive"] - taus["negative"]
            rows.append({"zone": zone, "trend": "", "fit": fit,
                         "flag": "ok" if np.isfinite(rs) else "tau_p or tau_n undetermined",
                         "grade": resilience_grade(rs), "variable": "rs",
                         "statistic": "tau_p - tau_n", "units": "yr", "value": rs})
    return pd.DataFrame(rows)


def count_trends(counts: pd.DataFrame) -> pd.DataFrame:
    """OLS slopes [yr-1] of N⁻ and N⁺ over t′…last and of the change count over the evaluation
    years, per zone (004 §4.3: −4 162 and 6 211 grids yr⁻¹ for China)."""
    rows = []
    for zone, g in counts.groupby("zone", sort=False):
        g = g.sort_values("year")
        yrs = g["year"].to_numpy(dtype=np.float64)
        npos, nneg = g["n_positive"].to_numpy(), g["n_negative"].to_numpy()
        change, _ = change_counts(npos, nneg)
        for var, x, y in (("positive", yrs, npos), ("negative", yrs, nneg),
                          ("change", yrs[1:], change)):
            slope = float(np.polyfit(x, y.astype(np.float64), 1)[0]) if x.size >= 2 \
                else float("nan")
            rows.append({"zone": zone, "trend": "", "fit": "", "flag": "ok", "grade": "",
                         "variable": var, "statistic": "ols_slope", "units": "yr-1",
                         "value": slope})
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- analysis


def _decay_figure(counts: pd.DataFrame, fits: pd.DataFrame, zone: str, fit: str, title: str,
                  synthetic: bool):
    from ..report.figures import _synthetic, new_figure

    g = counts[counts.zone == zone].sort_values("year")
    yrs = g["year"].to_numpy()
    fig, ax = new_figure((7.5, 4))
    tt = np.linspace(yrs[0], yrs[-1], 200)
    for trend, col, color in (("positive", "n_positive", "tab:blue"),
                              ("negative", "n_negative", "tab:red")):
        c = g[col].to_numpy(dtype=np.float64)
        q = 100.0 * _ratios(c)
        sym = "q⁺" if trend == "positive" else "q⁻"
        ax.plot(yrs, q, "o", ms=4, color=color, label=f"{sym} (maintained {trend} trend)")
        sel = fits[(fits.zone == zone) & (fits.trend == trend) & (fits.fit == fit)]
        par = dict(zip(sel.variable, sel.value))
        if np.isfinite(par.get("tau", np.nan)):
            ax.plot(tt, 100.0 * par["lambda"] * np.exp(-(tt - yrs[0]) / par["tau"]), "-",
                    color=color, lw=1.2,
                    label=f"fit: λ={par['lambda']:.3f}, τ={par['tau']:.2f} yr, "
                          f"R²={par['r2']:.3f}")
    ax.set_xlabel("year")
    from matplotlib.ticker import MaxNLocator
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_ylabel("maintained pixels [% of reference year]")
    ax.set_ylim(bottom=0)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, frameon=False)
    if synthetic:
        _synthetic(ax)
    return fig


@register_analysis
class Resilience(Analysis):
    name = "resilience"
    title = "Carbon-sink resilience (probability attenuation)"
    description = ("Expanding-window OLS slopes of annual NPP from t0 to each evaluation year, "
                   "slope and maintenance surfaces, maintained-pixel counts and ratios (004 "
                   "Table 2), exponential decay times τ_p, τ_n and the resilience RS = τ_p − τ_n "
                   "with its grade, for the region and per zone (paper 004 Eq. 7–12, "
                   "carbonsink docs/methods.md §8.2).")
    requires = ("annual", "area")
    order = 75
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        variable: Literal["npp", "nep"] = Field("npp", description="annual variable")
        t0: int | None = Field(None, description="initial year (default: first year)")
        t_ref: int | None = Field(None, description="reference year t′ (default: the middle "
                                                    "of the record rounded up; 2000 for "
                                                    "1981–2018)")
        years: list[int] | None = Field(None, description="evaluation years (default: every "
                                                          "year after t_ref)")
        window_start: Literal["t0", "tref"] = Field(
            "t0", description="slope windows start at t0 (expanding, 004) or at t_ref")
        fit: Literal["nls", "loglinear", "lambda1"] = Field(
            "nls", description="decay-fit variant used for RS and the figures (all are "
                               "tabulated)")
        min_valid: int | None = Field(None, ge=2, description="least valid years in a slope "
                                      "window (default 3; 2 with window_start 'tref')")

    def run(self, ctx, options) -> AnalysisResult:
        from ..report.figures import map_figure

        res = AnalysisResult()
        sec = res.section(self)
        v = options.variable
        zones = ctx.zones()
        multi = len(ctx.experiments) > 1
        t_ref_used = None
        for exp, combo, da in ctx.variable_runs("annual", v, "resilience"):
            ds = resilience_dataset(da, t0=options.t0, t_ref=options.t_ref,
                                    eval_years=options.years,
                                    window_start=options.window_start,
                                    min_valid=options.min_valid)
            t_ref_used = int(ds.attrs["t_ref"])
            maps = ["maintained_years"]
            written = ctx.store(CubeProduct(f"{v}_resilience", ds, combination=combo,
                                            experiment=exp, maps=tuple(maps),
                                            map_prefix=f"{v}_"))
            counts = maintained_counts(written["maintenance"], zones, region=ctx.zone)
            fits = decay_fits(counts, t_ref_used)
            summary = pd.concat([fits, count_trends(counts)], ignore_index=True)
            fixed = dict(experiment=exp, combination=combo)
            res.add_table("resilience_counts", tidy(maintenance_table(counts), **fixed))
            res.add_table("resilience_fits", tidy(summary, **fixed))
            label = f"{exp}/{combo}" if multi else combo
            stem = f"{exp}_{combo}" if multi else combo
            fig = _decay_figure(counts, fits, ctx.zone, options.fit,
                                f"{label}: maintained {v.upper()} trends since {t_ref_used} "
                                f"({_FIT_LABEL[options.fit]})", ctx.synthetic)
            res.add_figure(f"{stem}_{v}_resilience_decay", fig)
            sec.figure(f"{stem}_{v}_resilience_decay",
                       f"{label}: q⁺ and q⁻ (points) with the fitted exponentials "
                       f"q = λ·exp(−(t − {t_ref_used})/τ)")
            res.add_figure(f"{stem}_{v}_maintained_years_map", map_figure(
                written["maintained_years"].compute().astype(np.float64),
                title=f"{label}: years with the {t_ref_used} trend maintained "
                      "(+ increasing, − decreasing)", cmap="RdBu", synthetic=ctx.synthetic))
            sec.figure(f"{stem}_{v}_maintained_years_map",
                       f"{label}: stacked maintenance map (004 Fig. 8)")
            if zones is not None:
                rs = fits[(fits.variable == "rs") & (fits.fit == options.fit)
                          & (fits.zone != ctx.zone)]
                codes, names = _zone_codes(zones)
                lut = {c: float(rs.loc[rs.zone == names.get(c, str(c)), "value"].iloc[0])
                       for c in codes if (rs.zone == names.get(c, str(c))).any()}
                table = np.full(max(codes, default=0) + 1, np.nan)
                for c, val in lut.items():
                    table[c] = val
                rs_map = xr.apply_ufunc(
                    lambda z: table[np.clip(np.nan_to_num(z), 0, table.size - 1).astype(
                        np.int64)], zones, dask="parallelized", output_dtypes=[np.float64])
                rs_map.attrs = {"units": "yr", "long_name": "carbon-sink resilience RS = "
                                                            "tau_p - tau_n per zone"}
                rs_ds = xr.Dataset({"rs": rs_map}, attrs={"fit": options.fit})
                res.add_dataset(f"{v}_resilience_zones", rs_ds, combination=combo,
                                experiment=exp, maps=("rs",), map_prefix=f"{v}_resilience_")
                res.add_figure(f"{stem}_{v}_rs_map", map_figure(
                    rs_map, title=f"{label}: resilience RS per zone", cmap="RdBu",
                    synthetic=ctx.synthetic))
                sec.figure(f"{stem}_{v}_rs_map", f"{label}: RS = τ_p − τ_n per zone")
        if "resilience_counts" not in res.tables:
            sec.text("No annual cubes were found for this study.")
            return res
        from ..report.sections import Text

        sec.blocks.insert(0, Text(
            f"Per pixel, the OLS slope of annual {v.upper()} over the windows "
            f"{'[t0, t]' if options.window_start == 't0' else '[t′, t]'} gives a slope surface "
            f"(+1/−1); the maintenance surface keeps the sign of the reference year "
            f"{t_ref_used} while it is unbroken (paper 004 Eq. 7–9). The ratios q⁺ and q⁻ of "
            "maintained pixels to the reference year are fitted with q = λ·exp(−(t − t′)/τ); "
            "RS = τ_p − τ_n (004 Eq. 10–12). Grades: RS > 500 extremely strong, 100–500 "
            "stronger, 0–100 strong, −100–0 weak, < −100 weaker. Figures and the RS map use "
            f"the fit '{_FIT_LABEL[options.fit]}'; all variants are in the table "
            "resilience_fits. τ is NaN with a flag when a fit fails or the ratio does not "
            "decrease."))
        keys = ["experiment", "combination"] if multi else ["combination"]
        tab = res.tables["resilience_counts"]
        view = tab[tab.zone == ctx.zone].copy()
        view["column"] = view["variable"] + " " + view["statistic"] + " [" + view["units"] + "]"
        view = view.pivot_table(index=keys + ["year"], columns="column", values="value",
                                sort=False).reset_index()
        sec.table(view, "resilience_counts", caption="Maintained pixels with positive and "
                  "negative trends, their share of the reference year and the change count "
                  "with its cumulative ratio (analogue of 004 Table 2)")
        fits = res.tables["resilience_fits"]
        rs = fits[(fits.variable.isin(["rs", "tau"])) & (fits.fit == options.fit)].copy()
        rs["column"] = np.where(rs.variable == "rs", "RS [yr]",
                                np.where(rs.trend == "positive", "tau_p [yr]", "tau_n [yr]"))
        grade = rs[rs.variable == "rs"].set_index(keys + ["zone"])["grade"]
        rview = rs.pivot_table(index=keys + ["zone"], columns="column", values="value",
                               sort=False)
        rview["grade"] = grade
        sec.table(rview.reset_index(), "resilience_fits",
                  caption=f"Decay times and resilience RS with its grade ({_FIT_LABEL[options.fit]})")
        return res
