"""Small synthetic monthly cubes with the canonical flux inputs (helpers of the flux tests)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import xarray as xr

EXAMPLE_P = np.array([2, 3, 8, 15, 35, 60, 90, 85, 50, 30, 12, 10], dtype=float)
EXAMPLE_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=float)


def example_t() -> np.ndarray:
    m = np.arange(12)
    return 5 + 15 * np.sin(2 * np.pi * (m - 3) / 12)


def modis_composite_starts(years) -> pd.DatetimeIndex:
    return pd.DatetimeIndex([pd.Timestamp(year=y, month=1, day=1) + pd.Timedelta(days=8 * k)
                             for y in years for k in range(46)])


def make_inputs(ny=6, nx=5, years=(2003, 2004, 2005), seed=0, dtype=np.float64):
    """Monthly/8-day/annual inputs on a (y, x) grid; 2004 is a leap year."""
    rng = np.random.default_rng(seed)
    years = list(years)
    time = pd.date_range(f"{years[0]}-01-01", periods=12 * len(years), freq="MS")
    nt = len(time)
    y = np.linspace(45.0, 40.0, ny)
    x = np.linspace(110.0, 115.0, nx)
    coords = {"time": time, "y": y, "x": x}
    m = np.asarray(time.month) - 1
    season = np.sin(2 * np.pi * (m - 3) / 12)[:, None, None]
    base_t = rng.uniform(-2, 10, (1, ny, nx))
    tas = base_t + 15 * season + rng.normal(0, 1, (nt, ny, nx))
    pr = np.clip(EXAMPLE_P[m][:, None, None] * rng.uniform(0.5, 2.0, (nt, ny, nx)), 0, None)
    pr[0, 0, 0] = 0.0
    ndvi = np.clip(0.2 + 0.35 * np.clip(season, 0, None) + rng.normal(0, 0.03, (nt, ny, nx)),
                   -0.1, 0.95)
    sol = 300 + 250 * season + rng.uniform(0, 30, (nt, ny, nx))
    soc = rng.uniform(1, 6, (ny, nx))
    lc = rng.choice([1, 4, 7, 10, 12, 16, 17], size=(ny, nx)).astype(np.int16)
    lc[0, :3] = [10, 12, 1]
    starts = modis_composite_starts(years)
    doy = np.asarray(starts.day_of_year)
    gpp_shape = np.clip(np.sin(np.pi * (doy - 60) / 240.0), 0.01, None)
    gpp = gpp_shape[:, None, None] * rng.uniform(20, 60, (len(starts), ny, nx))
    npp_y = rng.uniform(100, 500, (len(years), ny, nx))
    ytime = pd.DatetimeIndex([pd.Timestamp(year=v, month=1, day=1) for v in years])

    def da(values, units, name, dims=("time", "y", "x"), c=None):
        cc = c if c is not None else {d: coords[d] for d in dims}
        return xr.DataArray(values.astype(dtype) if values.dtype.kind == "f" else values,
                            dims=dims, coords=cc, name=name, attrs={"units": units})

    return {
        "tas": da(tas, "degC", "tas"),
        "pr": da(pr, "mm month-1", "pr"),
        "ndvi": da(ndvi, "1", "ndvi"),
        "sol": da(sol, "MJ m-2 month-1", "sol"),
        "soc": da(soc, "kg C m-2", "soc", dims=("y", "x")),
        "landcover": da(lc, "1", "landcover", dims=("y", "x")),
        "gpp_8day": da(gpp, "g C m-2", "gpp_8day",
                       c={"time": starts, "y": y, "x": x}),
        "npp_annual": da(npp_y, "g C m-2 yr-1", "npp_annual",
                         c={"time": ytime, "y": y, "x": x}),
    }


def chunked(inputs, chunks=None):
    chunks = chunks or {"y": 3, "x": 2}
    return {k: v.chunk({d: c for d, c in chunks.items() if d in v.dims}) for k, v in
            inputs.items()}


def raising_scheduler(*args, **kwargs):
    raise AssertionError("dask computation was triggered (inputs must stay lazy)")
