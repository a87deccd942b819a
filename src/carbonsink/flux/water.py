"""Water balance terms for CASA: Thornthwaite PET and the Zhou–Zhang regional EET.

Implements carbonsink docs/methods.md §2.2.3 ("Water stress Wε"): the Thornthwaite (1948) local
potential evapotranspiration E_p, optionally corrected for day length as in the
original CASA, and the regional actual / potential evapotranspiration of Zhou &
Zhang (1995) used by the Chinese CASA parameterisation (Zhu et al. 2007).

numpy inputs are in the documented units with time on axis 0; xarray inputs
must carry ``units`` and a ``time`` coordinate of period starts (see
:mod:`carbonsink.flux._util`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError
from . import _kernels as K
from .._engine import apply_time_kernel, elementwise, float_dtype, is_xr
from ._util import calendar_of, choice, finish, prep, time_length

__all__ = ["thornthwaite_pet", "thornthwaite_heat_index", "thornthwaite_exponent",
           "zhou_zhang_rn", "zhou_zhang_eet", "zhou_zhang_pet"]

_REF_TH = "Thornthwaite C.W. (1948) Geogr. Rev. 38:55-94"
_REF_ZZ = ("Zhou G.S. & Zhang X.S. (1995) Acta Phytoecol. Sin. 19:193; as used by "
           "Zhu W.Q., Pan Y.Z. & Zhang J.S. (2007) Chin. J. Plant Ecol. 31:413")


def thornthwaite_heat_index(tas: Any) -> Any:
    """Thornthwaite annual heat index ``I = Σ_{months, T>0} (T/5)^1.514`` [1].

    ``tas`` [degC]: the 12 monthly mean temperatures of one year (or a
    climatology) on axis 0 (numpy) or along ``time`` (xarray). carbonsink docs/methods.md §2.2.3.
    """
    t = prep(tas, "degC", "tas")
    if is_xr(t):
        return xr.where(t > 0, (t.clip(min=0) / 5.0) ** 1.514, 0.0).sum("time", skipna=False)
    t = np.asarray(t, dtype=float)
    return np.where(t > 0, (np.clip(t, 0, None) / 5.0) ** 1.514, 0.0).sum(axis=0)


def thornthwaite_exponent(heat_index: Any) -> Any:
    """Thornthwaite exponent ``a = 6.75e-7·I³ − 7.71e-5·I² + 1.792e-2·I + 0.49239`` [1].

    carbonsink docs/methods.md §2.2.3; Thornthwaite (1948).
    """
    i = heat_index
    return 6.75e-7 * i ** 3 - 7.71e-5 * i ** 2 + 1.792e-2 * i + 0.49239


def _latitude(t: Any, lat: Any):
    if lat is not None:
        if is_xr(lat):
            return lat
        return np.asarray(lat, dtype=float) if not is_xr(t) else lat
    if is_xr(t):
        for name in ("lat", "latitude"):
            if name in t.coords:
                return t.coords[name]
        if "y" in t.coords:
            crs = None
            try:
                crs = t.rio.crs
            except Exception:  # rioxarray missing or no CRS
                crs = None
            if crs is not None and crs.is_geographic:
                return t.coords["y"]
    raise InputError("the day-length correction needs latitudes: pass lat= (degrees north) or "
                     "give tas a 'lat'/'latitude' coordinate or a geographic CRS with a 'y' "
                     "coordinate")


def thornthwaite_pet(tas: Any, *, lat: Any = None, daylength_correction: bool = False,
                     heat_index: str = "annual", time_dim: str = "time", time: Any = None):
    """Thornthwaite (1948) potential evapotranspiration E_p [mm month-1].

    ::

        I   = Σ_{12 months, T>0} (T/5)^1.514
        a   = 6.75e-7·I³ − 7.71e-5·I² + 1.792e-2·I + 0.49239
        E_p = 16 · (10·T / I)^a       for T > 0;   0 for T ≤ 0
        E_p ← E_p · (N/12) · (d/30)   if daylength_correction

    with N the astronomical day length [h] at mid-month for the pixel latitude
    (FAO-56 declination formula) and d the days in the month.

    Parameters
    ----------
    tas : monthly mean air temperature [degC]; time on axis 0 (numpy) or ``time_dim``.
    lat : latitude [degrees north] per pixel (array broadcastable to one time
        step, or DataArray); only used with ``daylength_correction``.  For
        DataArrays it defaults to a ``lat``/``latitude`` coordinate or to ``y``
        of a geographic CRS.
    daylength_correction : False (default; the unadjusted form of the Chinese
        CASA) or True (original CASA / Thornthwaite's adjustment).
    heat_index : ``"annual"`` (default): I of each calendar year from that
        year's 12 months (the time axis must hold complete calendar years);
        ``"climatology"``: one I per pixel from the mean temperature of each
        calendar month over the whole record.
    time : period-start dates of axis 0 for numpy input; without it axis 0 is
        taken as consecutive months starting in January (length a multiple of 12).

    Any NaN month makes that year's I (annual) or the pixel's I (climatology)
    NaN. Reference: Thornthwaite (1948). carbonsink docs/methods.md §2.2.3 (example climate:
    I = 32.06, a = 1.0099, July E_p = 101.6 mm, unadjusted).
    """
    choice("heat_index", heat_index, ("annual", "climatology"))
    t = prep(tas, "degC", "tas", time_dim=time_dim)
    n = time_length(t, time_dim)
    cal = calendar_of(t, time_dim, time, n, assume_years=not daylength_correction)
    labels, ngroup, years, counts = cal.year_groups()
    if heat_index == "annual" and np.any(counts != 12):
        bad = years[counts != 12].tolist()
        raise InputError(f"heat_index='annual' needs complete calendar years; years {bad} do "
                         "not have 12 months. Use heat_index='climatology' or trim the period")
    static = []
    if daylength_correction:
        la = _latitude(t, lat)
        static = [la]
    moy = cal.months - 1
    doy = cal.mid_doy
    days = cal.days
    dtype = float_dtype(t)
    clim = heat_index == "climatology"

    def run(t2, s2):
        latv = s2[0] if s2 else np.zeros(t2[0].shape[1])
        return K.thornthwaite_values(t2[0], labels, ngroup, clim, moy, latv, doy, days,
                                     bool(daylength_correction))

    out = apply_time_kernel(run, [t], static, time_dim=time_dim, dtype=dtype)
    if is_xr(out):
        out = out.assign_coords({time_dim: t[time_dim]})
    return finish(out, name="pet", units="mm month-1",
                  long_name="Thornthwaite potential evapotranspiration", model="thornthwaite1948",
                  parameters={"daylength_correction": bool(daylength_correction),
                              "heat_index": heat_index},
                  reference=_REF_TH, section="§2.2.3")


def zhou_zhang_rn(pr: Any, ep: Any):
    """Zhou–Zhang regional net radiation in water-equivalent [mm month-1].

    ``Rn = sqrt(E_p·P) · (0.369 + 0.598·sqrt(E_p/P))``; 0 when P = 0 or E_p = 0.
    ``pr`` precipitation [mm month-1], ``ep`` Thornthwaite E_p [mm month-1];
    negative inputs are clipped to 0 (docs/methods.md §1.3). docs/methods.md §2.2.3.
    """
    p = prep(pr, "mm month-1", "pr")
    e = prep(ep, "mm month-1", "ep")
    out = elementwise(K.zz_rn_uf, p, e)
    return finish(out, name="rn", units="mm month-1", long_name="regional net radiation "
                  "(water equivalent)", model="zhou_zhang1995", parameters={},
                  reference=_REF_ZZ, section="§2.2.3")


def zhou_zhang_eet(pr: Any, ep: Any):
    """Zhou–Zhang (1995) regional estimated actual evapotranspiration EET [mm month-1].

    ::

        Rn  = sqrt(E_p·P) · (0.369 + 0.598·sqrt(E_p/P))
        EET = P·Rn·(P² + Rn² + P·Rn) / ((P + Rn)·(P² + Rn²))

    ``pr`` precipitation [mm month-1]; ``ep`` Thornthwaite E_p [mm month-1].
    Edge cases: P = 0 → EET = 0 (the formula is 0/0); E_p = 0 → Rn = 0, EET = 0;
    negative inputs are clipped to 0; NaN propagates.
    Reference: Zhou & Zhang (1995); Zhu et al. (2007). carbonsink docs/methods.md §2.2.3
    (P 50, E_p 80 → Rn 71.18, EET 43.18).
    """
    p = prep(pr, "mm month-1", "pr")
    e = prep(ep, "mm month-1", "ep")
    out = elementwise(K.zz_eet_uf, p, e)
    return finish(out, name="eet", units="mm month-1",
                  long_name="estimated actual evapotranspiration (Zhou-Zhang)",
                  model="zhou_zhang1995", parameters={}, reference=_REF_ZZ, section="§2.2.3")


def zhou_zhang_pet(pr: Any, ep: Any):
    """Zhou–Zhang potential evapotranspiration ``PET = (EET + E_p)/2`` [mm month-1].

    ``pr`` [mm month-1], ``ep`` Thornthwaite E_p [mm month-1]; EET from
    :func:`zhou_zhang_eet`. Reference: Zhou & Zhang (1995). carbonsink docs/methods.md §2.2.3
    (P 50, E_p 80 → PET 61.59).
    """
    p = prep(pr, "mm month-1", "pr")
    e = prep(ep, "mm month-1", "ep")
    out = elementwise(K.zz_pet_uf, p, e)
    return finish(out, name="pet", units="mm month-1",
                  long_name="potential evapotranspiration (Zhou-Zhang)",
                  model="zhou_zhang1995", parameters={}, reference=_REF_ZZ, section="§2.2.3")
