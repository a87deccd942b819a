"""Synthetic cubes shared by the cube and region tests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

from carbonsink.cube import GridSpec


def make_cube(grid: GridSpec, nt: int = 3, seed: int = 0, name: str = "npp",
              units: str = "g C m-2 month-1", start: str = "2001-01-01") -> xr.DataArray:
    rng = np.random.default_rng(seed)
    data = 50.0 + 100.0 * rng.random((nt,) + grid.shape)
    t = pd.date_range(start, periods=nt, freq="MS")
    da = xr.DataArray(data, dims=("time", "y", "x"), coords={"time": t, **grid.coords()},
                      name=name, attrs={"units": units, "long_name": "test field"})
    return da.rio.write_crs(grid.crs.to_wkt())
