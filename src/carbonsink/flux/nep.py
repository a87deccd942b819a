"""Net ecosystem production NEP = NPP − Rh — carbonsink docs/methods.md §4.1.

NEP > 0 is uptake (sink). NEP is formed at the common time step of its inputs
(monthly for the 000 combinations); annual NEP is the sum of monthly NEP.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import xarray as xr

from ..errors import AlignmentError, UnitError
from ..units import ensure_units, units_compatible
from ._util import is_xr

__all__ = ["nep"]

_FLUX_UNITS = ("g C m-2 month-1", "g C m-2 yr-1", "g C m-2")


def _params(da: xr.DataArray) -> Any:
    raw = da.attrs.get("parameters")
    if raw is None:
        return None
    try:
        return json.loads(raw)
    except (TypeError, ValueError):
        return raw


def nep(npp: Any, rh: Any, *, time_dim: str = "time"):
    """NEP = NPP − Rh [units of ``npp``: g C m-2 month-1 for monthly inputs].

    ``npp`` and ``rh`` carbon fluxes of the same period.  numpy inputs are
    taken to be in the same units and are simply subtracted.  DataArrays must
    carry ``units``: ``rh`` is converted to the units of ``npp`` (a per-month
    flux cannot be subtracted from a per-year one: :class:`UnitError`).
    DataArrays are aligned on their common time steps (inner join along
    ``time_dim``); any other coordinate mismatch raises
    :class:`AlignmentError`.  The subtraction is exact (no rescaling), so
    ``nep + rh == npp`` bit for bit.  Attributes record ``npp_model``,
    ``rh_model`` and both models' ``parameters``.  carbonsink docs/methods.md §4.1.
    """
    if not (is_xr(npp) or is_xr(rh)):
        return np.asarray(npp) - np.asarray(rh) if not hasattr(npp, "dask") else npp - rh
    if not (is_xr(npp) and is_xr(rh)):
        raise AlignmentError("nep: give npp and rh both as DataArrays or both as numpy arrays")
    units = npp.attrs.get("units")
    if units is None or not any(units_compatible(units, u) for u in _FLUX_UNITS):
        raise UnitError("npp", "g C m-2 month-1", units)
    rh = ensure_units(rh, units, "rh", time_dim=time_dim)
    a, b = xr.align(npp, rh, join="inner")
    for d in set(npp.dims) | set(rh.dims):
        if d == time_dim:
            continue
        sizes = {npp.sizes.get(d), rh.sizes.get(d), a.sizes.get(d)} - {None}
        if len(sizes) > 1:
            raise AlignmentError(f"nep: npp and rh have different '{d}' coordinates; put both on "
                                 "one grid first (carbonsink.cube.regrid)")
    if time_dim in a.dims and a.sizes[time_dim] == 0:
        raise AlignmentError(f"nep: npp and rh have no common '{time_dim}' steps")
    out = a - b
    out.name = "nep"
    params = {"npp": _params(npp), "rh": _params(rh)}
    out.attrs = {
        "units": units,
        "long_name": "net ecosystem production (NPP - Rh; positive = sink)",
        "model": "nep",
        "npp_model": str(npp.attrs.get("npp_model", npp.attrs.get("model", "unknown"))),
        "rh_model": str(rh.attrs.get("rh_model", rh.attrs.get("model", "unknown"))),
        "parameters": json.dumps(params, sort_keys=True),
        "methods_section": "carbonsink docs/methods.md §4.1",
    }
    return out
