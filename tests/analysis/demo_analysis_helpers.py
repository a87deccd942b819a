"""Small demo cubes for the analysis tests: annual fluxes from the flux chain on the synthetic
demo inputs, annual driver series masked like the fluxes, true areas and two zones."""

from __future__ import annotations

import json
from functools import lru_cache

import numpy as np
import xarray as xr

from carbonsink import cube, demo
from carbonsink.analysis import MemoryContext
from carbonsink.flux.chain import run_chain

NY = NX = 24
COMBO = "modis+pei"


@lru_cache(maxsize=2)
def demo_cubes(ny: int = NY, nx: int = NX):
    """(annual fluxes, annual drivers, growing-season fluxes, growing-season drivers, area,
    zones) of the demo on an ny × nx grid (computed, cached)."""
    d = demo.generate(ny=ny, nx=nx)
    monthly = run_chain([COMBO], d)[COMBO][["npp", "rh", "nep"]]
    annual = cube.temporal.to_annual(monthly).compute()
    gs = cube.temporal.growing_season(monthly).compute()
    clim = xr.Dataset({k: d[k] for k in ("tas", "pr", "sol", "pet")})
    drv = cube.temporal.to_annual(clim).compute()
    drv_gs = cube.temporal.growing_season(clim).compute()
    keep = annual["nep"].notnull()
    with xr.set_options(keep_attrs=True):
        drv = drv.where(keep)
        drv_gs = drv_gs.where(gs["nep"].notnull())
    area = cube.pixel_area(annual["nep"])
    west = (np.arange(nx) < nx // 2)[None, :].repeat(ny, 0)
    zones = xr.DataArray(np.where(west, 1, 2).astype("int32"), dims=("y", "x"),
                         coords={"y": annual["y"], "x": annual["x"]}, name="zones",
                         attrs={"zone_names": json.dumps({"1": "west", "2": "east"}),
                                "zone_layer": "half"})
    return annual, drv, gs, drv_gs, area, zones


def demo_context(*, with_zones: bool = True) -> MemoryContext:
    annual, drv, gs, drv_gs, area, zones = demo_cubes()
    cubes = {("annual", COMBO): annual, ("growing_season", COMBO): gs,
             ("annual", "drivers"): drv, ("growing_season", "drivers"): drv_gs}
    return MemoryContext(cubes, {"area": area}, zones=zones if with_zones else None,
                         synthetic=True)


def weighted_mean(values: np.ndarray, area: np.ndarray, mask: np.ndarray | None = None) -> float:
    ok = np.isfinite(values) & (mask if mask is not None else True)
    return float((values[ok] * area[ok]).sum() / area[ok].sum())
