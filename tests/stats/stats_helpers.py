"""Shared generators for the carbonsink.stats tests."""

from __future__ import annotations

import numpy as np
import xarray as xr


def random_series(npix: int, ntime: int, *, seed: int = 0, ties: bool = True,
                  nan_frac: float = 0.1, trend: float = 0.05) -> np.ndarray:
    """(npix, ntime) float64 series with a weak trend, optional ties and NaN gaps."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(npix, ntime)) + trend * np.arange(ntime)
    x *= rng.uniform(0.5, 3.0, size=(npix, 1))
    if ties:
        # a third of the pixels on a coarse grid -> many ties
        coarse = rng.random(npix) < 0.33
        x[coarse] = np.round(x[coarse] * 2.0) / 2.0
    if nan_frac:
        x[rng.random(x.shape) < nan_frac] = np.nan
    return x


def as_da(x: np.ndarray, *, start: int = 2000, name: str = "nep",
          units: str | None = "g C m-2 yr-1") -> xr.DataArray:
    """Wrap an (npix, ntime) array as DataArray (pixel, time) with integer years."""
    da = xr.DataArray(x, dims=("pixel", "time"),
                      coords={"time": np.arange(start, start + x.shape[1])}, name=name)
    if units:
        da.attrs["units"] = units
    return da


def cube(ny: int = 10, nx: int = 7, ntime: int = 24, *, seed: int = 1,
         nan_pixels: float = 0.1, gaps: float = 0.05) -> xr.DataArray:
    """(time, y, x) cube with datetime time, all-NaN pixels, gaps and a spatial_ref coord."""
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(ntime, ny, nx)) + 0.1 * np.arange(ntime)[:, None, None]
    data[rng.random(data.shape) < gaps] = np.nan
    data[:, rng.random((ny, nx)) < nan_pixels] = np.nan
    time = np.array([np.datetime64(f"{2000 + i}-01-01") for i in range(ntime)])
    da = xr.DataArray(data, dims=("time", "y", "x"),
                      coords={"time": time, "y": np.arange(ny) * 1.0, "x": np.arange(nx) * 1.0,
                              "spatial_ref": 0},
                      name="nep", attrs={"units": "g C m-2 yr-1"})
    return da
