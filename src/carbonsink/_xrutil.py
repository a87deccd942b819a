"""Small xarray helpers shared by the model and statistics layers."""

from __future__ import annotations

from typing import Any

import xarray as xr

__all__ = ["keep_coord_attrs"]


def keep_coord_attrs(out: Any, *inputs: Any) -> Any:
    """Give the coordinates of ``out`` back the attributes they have on ``inputs``.

    ``xr.apply_ufunc(keep_attrs=False)`` — used so that a model's or statistic's
    output never inherits a driver's ``units`` — also strips coordinate
    attributes, among them the CRS held by rioxarray's ``spatial_ref``
    coordinate. CRS must never be lost silently. Works on DataArrays,
    Datasets and tuples of them.
    """
    if isinstance(out, tuple):
        return tuple(keep_coord_attrs(o, *inputs) for o in out)
    if not isinstance(out, (xr.DataArray, xr.Dataset)):
        return out
    for name, coord in out.coords.items():
        if coord.attrs:
            continue
        for a in inputs:
            if isinstance(a, (xr.DataArray, xr.Dataset)) and name in a.coords \
                    and a.coords[name].attrs:
                out.coords[name].attrs.update(a.coords[name].attrs)
                break
    return out
