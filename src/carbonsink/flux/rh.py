"""Soil heterotrophic respiration (Rh) models — carbonsink docs/methods.md §3.1–3.4.

* :func:`pei2009` — empirical monthly Rh from air temperature and precipitation
  (:func:`pei2009_annual` reproduces the single annual evaluation of papers 001/003).
* :func:`gsmsr` / :func:`gsmsr_daily` — GSMSR soil respiration Rs (Yu et al. 2010).
* :func:`bond_lamberty2004` — Rs → Rh power law (annual-ratio, annualised or direct).
* :func:`shi2015` — quadratic Rs → Rh (monthly), clipped to Rh ≤ Rs by default.

numpy inputs are in the units given in brackets, time on axis 0 where a
function needs the time axis; DataArrays must carry compatible ``units``
(converted at the boundary) and a ``time`` coordinate of period starts.
Dask-backed inputs stay lazy. Results are DataArrays named ``rh`` / ``rs``
with ``units``, ``long_name``, ``model`` and ``parameters`` (JSON) attrs.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from ..errors import InputError
from ..units import parse_units
from . import _kernels as K
from .._engine import apply_time_kernel, elementwise, float_dtype, is_dask, is_xr
from ._util import along_axis0, calendar_of, check_mode, choice, finish, prep, time_length

__all__ = ["pei2009", "pei2009_annual", "gsmsr", "gsmsr_daily", "bond_lamberty2004", "shi2015",
           "BL_CROSSOVER_RS", "SHI_VERTEX_RS", "GSMSR_BETA_STATUS"]

_REF_PEI = "Pei Z.Y. et al. (2009) J. Integr. Plant Biol. 51:521"
_REF_YU = "Yu D.S. et al. (2010) Environ. Sci. Technol. 44:6074 (GSMSR)"
_REF_BL = "Bond-Lamberty B., Wang C. & Gower S.T. (2004) Glob. Change Biol. 10:1756"
_REF_SHI = "Shi (2015) MSc thesis, Northwest A&F University (as used by seed paper 000)"

#: Rs [same units as applied] below which Bond-Lamberty gives Rh > Rs: e^(1.22/0.27)
BL_CROSSOVER_RS = float(np.exp(1.22 / 0.27))
#: Rs [g C m-2 month-1] at the vertex of the Shi (2015) parabola
SHI_VERTEX_RS = 0.6011 / (2 * 0.0009)
#: status of the GSMSR β coefficient (carbonsink docs/methods.md §3.2)
GSMSR_BETA_STATUS = "unresolved (000 prints -0.0006; secondary sources -0.006)"


def _days(x: Any, time_dim: str, days_in_month: Any, time: Any):
    """Day counts per month broadcastable against ``x`` (time coord / axis 0)."""
    if days_in_month is not None and not isinstance(days_in_month, bool):
        d = np.asarray(days_in_month, dtype=float)
        if is_xr(x) and d.ndim == 1 and d.size == x.sizes.get(time_dim, -1):
            import xarray as xr
            return xr.DataArray(d, dims=(time_dim,), coords={time_dim: x[time_dim]}
                                if time_dim in x.coords else None)
        if not is_xr(x) and d.ndim == 1 and np.ndim(x) >= 1 and d.size == np.shape(x)[0] \
                and np.ndim(x) > 1:
            return along_axis0(x, d)
        return d if d.ndim else float(d)
    if is_xr(x) and time_dim in x.dims:
        return x[time_dim].dt.days_in_month.astype(float)
    if time is not None:
        cal = calendar_of(x, time_dim, time, time_length(x, time_dim))
        return along_axis0(x, cal.days)
    raise InputError("days per month are needed: give an xarray input with a time coordinate, "
                     "time= (period-start dates of axis 0) or days_in_month= (day counts)")


# --------------------------------------------------------------------------- Pei 2009


def pei2009(tas: Any, pr: Any, *, a: float = 0.22, b: float = 0.0912, c: float = 0.3145,
            days: float = 30.0, fraction: float = 0.465, days_in_month: Any = False,
            mode: str = "recommended", time_dim: str = "time", time: Any = None):
    """Pei et al. (2009) empirical heterotrophic respiration [g C m-2 month-1].

    ::

        Rh = a · [exp(b·T) + ln(c·P + 1)] · days · fraction
           = 0.22 · [exp(0.0912·T) + ln(0.3145·P + 1)] · 30 · 0.465

    ``tas`` monthly mean air temperature [degC]; ``pr`` monthly precipitation
    [mm month-1] (negative values clipped to 0, carbonsink docs/methods.md §1.3).  The model is
    monthly: annual Rh is the sum of the 12 monthly values.

    ``b`` = 0.0912 in every mode: paper 003's printed 0.913 is a decimal-place
    typo (Rh ≈ 28 000 g C m-2 month-1 at 10 °C) and is rejected; pass ``b=``
    explicitly to override.  ``days_in_month=True`` replaces the fixed 30 days
    by the true day count of each month (from the time coordinate or
    ``time=``); an array of day counts is also accepted.

    ``mode="paper"`` reproduces papers 001/003, which evaluated the formula
    once per year with annual mean T and annual total P: the inputs are then
    *annual* (``pr`` in mm yr-1) and the result is in g C m-2 yr-1 — see
    :func:`pei2009_annual`, which this delegates to.  This under-estimates
    annual Rh by about an order of magnitude (example climate: 163.76 monthly
    vs 19.70 annual, carbonsink docs/methods.md §3.1).

    Reference: Pei et al. (2009). carbonsink docs/methods.md §3.1, §10.
    """
    check_mode(mode)
    if mode == "paper":
        return pei2009_annual(tas, pr, a=a, b=b, c=c, days=days, fraction=fraction)
    t = prep(tas, "degC", "tas", time_dim=time_dim)
    p = prep(pr, "mm month-1", "pr", time_dim=time_dim)
    dd: Any = float(days)
    if days_in_month is not False and days_in_month is not None:
        dd = _days(t if is_xr(t) else p, time_dim, None if days_in_month is True
                   else days_in_month, time)
    dt = float_dtype(t, p)
    if not is_xr(dd) and not isinstance(dd, float):
        dd = np.asarray(dd, dtype=dt)
    out = elementwise(K.pei_values, t, p, a, b, c, dd, fraction)
    params = {"a": a, "b": b, "c": c, "days": "days_in_month" if days_in_month not in
              (False, None) else days, "fraction": fraction, "mode": mode}
    return finish(out, name="rh", units="g C m-2 month-1",
                  long_name="soil heterotrophic respiration", model="pei2009",
                  parameters=params, reference=_REF_PEI, section="§3.1")


def pei2009_annual(tas_annual: Any, pr_annual: Any, *, a: float = 0.22, b: float = 0.0912,
                   c: float = 0.3145, days: float = 30.0, fraction: float = 0.465):
    """Single annual evaluation of Pei et al. (2009) as done by papers 001/003 [g C m-2 yr-1].

    Same formula as :func:`pei2009`, evaluated once per year with
    ``tas_annual`` = annual mean temperature [degC] and ``pr_annual`` = annual
    total precipitation [mm yr-1].  Only for replication (``mode="paper"``):
    the model is monthly and this under-estimates annual Rh (carbonsink docs/methods.md §3.1:
    19.70 vs 163.76 g C m-2 yr-1 for the example climate).
    """
    t = prep(tas_annual, "degC", "tas")
    p = prep(pr_annual, "mm yr-1", "pr")
    out = elementwise(K.pei_values, t, p, a, b, c, days, fraction)
    params = {"a": a, "b": b, "c": c, "days": days, "fraction": fraction, "mode": "paper",
              "evaluation": "annual"}
    return finish(out, name="rh", units="g C m-2 yr-1",
                  long_name="soil heterotrophic respiration (single annual evaluation)",
                  model="pei2009", parameters=params, reference=_REF_PEI, section="§3.1")


# --------------------------------------------------------------------------- GSMSR


def gsmsr_daily(tas: Any, pr: Any, soc: Any, *, beta: float = -0.0006, alpha: float = 1.83,
                r0: float = 0.588, m: float = 0.118, p0: float = 2.972, k: float = 5.657):
    """GSMSR mean daily soil respiration of a month [g C m-2 d-1] (Yu et al. 2010).

    ::

        Q10(T) = α · exp(β·T)
        Rs_day = (R0 + M·Ds) · Q10(T)^(T/10) · (P + P0) / (P + K)

    ``tas`` monthly mean air temperature [degC]; ``pr`` monthly precipitation
    [mm month-1] (converted to cm inside: P = pr/10; negative clipped to 0);
    ``soc`` = Ds, soil organic carbon density of the 0–20 cm layer [kg C m-2].
    Coefficients (000 as printed): R0 = 0.588 g C m-2 d-1, M = 0.118,
    α = 1.83, β = −0.0006 °C-1 (unresolved: secondary sources give −0.006),
    P0 = 2.972 cm, K = 5.657 cm.

    Reference: Yu et al. (2010). carbonsink docs/methods.md §3.2 (T 20, P 8 cm, Ds 3 →
    2.474 with β −0.0006, 1.994 with β −0.006).
    """
    t = prep(tas, "degC", "tas")
    p = prep(pr, "mm month-1", "pr")
    s = prep(soc, "kg C m-2", "soc")
    out = elementwise(K.gsmsr_values, t, p, s, 1.0, r0, m, alpha, beta, p0, k)
    return finish(out, name="rs", units="g C m-2 d-1",
                  long_name="soil respiration (mean daily rate)", model="gsmsr",
                  parameters=dict(beta=beta, alpha=alpha, r0=r0, m=m, p0=p0, k=k),
                  reference=_REF_YU, section="§3.2", extra={"beta_status": GSMSR_BETA_STATUS})


def gsmsr(tas: Any, pr: Any, soc: Any, beta: float = -0.0006, *, alpha: float = 1.83,
          r0: float = 0.588, m: float = 0.118, p0: float = 2.972, k: float = 5.657,
          days_in_month: Any = None, time_dim: str = "time", time: Any = None):
    """GSMSR monthly soil respiration Rs [g C m-2 month-1] (Yu et al. 2010).

    ::

        Q10(T)   = α · exp(β·T)
        Rs_day   = (R0 + M·Ds) · Q10(T)^(T/10) · (P + P0) / (P + K)
        Rs_month = Rs_day · days_in_month

    Inputs and coefficients as in :func:`gsmsr_daily`: ``tas`` [degC],
    ``pr`` [mm month-1] (used in cm), ``soc`` Ds [kg C m-2, 0–20 cm].
    Month lengths are the true day counts: from the ``time`` coordinate of a
    DataArray input, or for numpy from ``days_in_month=`` (scalar or per-step
    array along axis 0) or ``time=`` (period-start dates of axis 0).

    **β is unresolved** (carbonsink docs/methods.md §3.2, §10): the default −0.0006 is what paper
    000 prints (``mode="paper"``); several secondary sources give −0.006, which
    yields the declining Q10 the model was designed for.  The output records
    ``attrs["beta_status"]``.  Example climate, Ds 3: annual Rs 406.9 (β
    −0.0006) vs 361.5 (β −0.006) g C m-2 yr-1.

    Reference: Yu et al. (2010). carbonsink docs/methods.md §3.2.
    """
    t = prep(tas, "degC", "tas", time_dim=time_dim)
    p = prep(pr, "mm month-1", "pr", time_dim=time_dim)
    s = prep(soc, "kg C m-2", "soc", time_dim=time_dim)
    ref = t if is_xr(t) else (p if is_xr(p) else t)
    dd = _days(ref, time_dim, days_in_month, time)
    dt = float_dtype(t, p, s)
    if not is_xr(dd) and not isinstance(dd, float):
        dd = np.asarray(dd, dtype=dt)
    elif is_xr(dd):
        dd = dd.astype(dt)
    out = elementwise(K.gsmsr_values, t, p, s, dd, r0, m, alpha, beta, p0, k)
    return finish(out, name="rs", units="g C m-2 month-1", long_name="soil respiration",
                  model="gsmsr", parameters=dict(beta=beta, alpha=alpha, r0=r0, m=m, p0=p0, k=k),
                  reference=_REF_YU, section="§3.2", extra={"beta_status": GSMSR_BETA_STATUS})


# --------------------------------------------------------------------------- Bond-Lamberty


def _period(rs: Any, period: str | None) -> str:
    if period is not None:
        return choice("period", period, ("month", "year"))
    if is_xr(rs):
        p = parse_units(rs.attrs["units"]).period
        return p or "month"
    return "month"


def bond_lamberty2004(rs: Any, scaling: str | None = None, *, intercept: float = 1.22,
                      slope: float = 0.73, mode: str = "recommended", period: str | None = None,
                      time_dim: str = "time", time: Any = None):
    """Bond-Lamberty et al. (2004) Rh from soil respiration Rs.

    ::

        ln(Rh) = 1.22 + 0.73·ln(Rs)   ⇔   Rh = 3.3872 · Rs^0.73

    fitted on **annual** fluxes [g C m-2 yr-1].  Applied to monthly Rs
    [g C m-2 month-1] (``period="month"``, the default for numpy; DataArrays
    follow their ``units``) the relation is scale dependent, hence ``scaling``:

    * ``"annual_ratio"`` (recommended default): ``Rs_y = Σ_m Rs_m`` per calendar
      year, ``Rh_y = 3.3872·Rs_y^0.73``, ``Rh_m = Rs_m·Rh_y/Rs_y``.  Calendar
      years come from the time coordinate (numpy: ``time=`` or consecutive
      12-month years on axis 0 starting in January).  A year with fewer than 12
      steps in the record is annualised as ``Rs_y = Σ·12/n`` (the ratio is then
      applied to its months); a NaN month makes its whole year NaN.
    * ``"annualised_rate"``: ``Rh_m = 3.3872·(12·Rs_m)^0.73 / 12``.
    * ``"direct"`` (``mode="paper"``, paper 000): the formula on each monthly
      value.  Gives Rh > Rs wherever Rs < e^(1.22/0.27) = 91.70; the result is
      flagged in ``attrs["rh_gt_rs"]``.

    Annual input (``period="year"``, e.g. units g C m-2 yr-1) is evaluated
    directly whatever ``scaling``.  Rs ≤ 0 → Rh = 0; NaN → NaN.

    Reference: Bond-Lamberty et al. (2004). carbonsink docs/methods.md §3.3, §10 (annual Rs 500 →
    Rh 316.3; example year 249.6 / 239.1 / 467.7).
    """
    check_mode(mode)
    if scaling is None:
        scaling = "direct" if mode == "paper" else "annual_ratio"
    choice("scaling", scaling, ("annual_ratio", "annualised_rate", "direct"))
    per = _period(rs, period)
    units = "g C m-2 yr-1" if per == "year" else "g C m-2 month-1"
    r = prep(rs, units, "rs", time_dim=time_dim)
    extra: dict[str, Any] = {}
    if per == "year" or scaling == "direct":
        out = elementwise(K.bond_lamberty_uf, r, intercept, slope)
        if per == "month":
            extra["rh_gt_rs"] = (f"direct monthly application: Rh > Rs wherever Rs < "
                                 f"{BL_CROSSOVER_RS:.2f} g C m-2 month-1 (docs/methods.md §3.3)")
            _warn_count(r, (r > 0) & (r < BL_CROSSOVER_RS), extra, "n_rh_gt_rs",
                        "bond_lamberty2004 (direct): Rh > Rs in {n} values")
    elif scaling == "annualised_rate":
        out = elementwise(K.bond_lamberty_uf, r * 12.0, intercept, slope) / 12.0
    else:
        n = time_length(r, time_dim)
        cal = calendar_of(r, time_dim, time, n, assume_years=True)
        labels, ngroup, _, counts = cal.year_groups()
        extra["incomplete_years"] = "annualised as sum*12/n" if np.any(counts != 12) else "none"
        out = apply_time_kernel(
            lambda t2, s2: K.bl_annual_ratio_kernel(t2[0], labels, ngroup, counts,
                                                    intercept, slope),
            [r], [], time_dim=time_dim, dtype=float_dtype(r))
        if is_xr(out) and time_dim in r.coords:
            out = out.assign_coords({time_dim: r[time_dim]})
    params = {"intercept": intercept, "slope": slope, "scaling": scaling, "period": per,
              "mode": mode}
    return finish(out, name="rh", units=units, long_name="soil heterotrophic respiration",
                  model="bond_lamberty2004", parameters=params, reference=_REF_BL,
                  section="§3.3", extra=extra)


def _warn_count(x: Any, cond: Any, extra: dict, key: str, message: str) -> None:
    """Count ``cond`` for in-memory inputs (attr + warning); lazy inputs get no count."""
    if is_dask(x):
        extra[key] = "not counted (lazy input)"
        return
    c = cond.values if is_xr(cond) else np.asarray(cond)
    n = int(np.count_nonzero(c))
    extra[key] = n
    if n:
        warnings.warn(message.format(n=n), RuntimeWarning, stacklevel=3)


# --------------------------------------------------------------------------- Shi 2015


def shi2015(rs: Any, clip_to_rs: bool | None = None, *, a: float = -0.0009, b: float = 0.6011,
            c: float = 4.8874, mode: str = "recommended"):
    """Shi (2015) quadratic Rh from monthly soil respiration [g C m-2 month-1].

    ::

        Rh = −0.0009·Rs² + 0.6011·Rs + 4.8874

    ``rs`` monthly soil respiration [g C m-2 month-1] (a monthly relation: the
    parabola peaks at Rs = 333.9, Rh = 105.25, and turns negative near 800).
    ``clip_to_rs`` (default True; False in ``mode="paper"``) caps Rh at
    max(Rs, 0) — without it Rh > Rs for Rs < 11.93 because of the intercept.
    Values with Rs > 333.9 (outside the increasing branch) are counted in
    ``attrs["n_rs_above_vertex"]`` with a warning (in-memory inputs only).

    Reference: Shi (2015). carbonsink docs/methods.md §3.4, §10 (Rs 0/100/333.94/500 →
    4.89/56.00/105.25/80.44).
    """
    check_mode(mode)
    if clip_to_rs is None:
        clip_to_rs = mode != "paper"
    r = prep(rs, "g C m-2 month-1", "rs")
    out = elementwise(K.shi_uf, r, a, b, c, 1.0 if clip_to_rs else 0.0)
    extra: dict[str, Any] = {"rs_above_vertex": f"Rs > {SHI_VERTEX_RS:.1f} is outside the "
                             "increasing branch of the parabola (carbonsink docs/methods.md §3.4)"}
    _warn_count(r, r > SHI_VERTEX_RS, extra, "n_rs_above_vertex",
                "shi2015: {n} values with Rs > 333.9 (decreasing branch of the parabola)")
    return finish(out, name="rh", units="g C m-2 month-1",
                  long_name="soil heterotrophic respiration", model="shi2015",
                  parameters={"a": a, "b": b, "c": c, "clip_to_rs": bool(clip_to_rs),
                              "mode": mode},
                  reference=_REF_SHI, section="§3.4", extra=extra)
