"""A small heterogeneous study: GeoTIFF + NetCDF inputs on different grids, CRSs and units.

Target grid: EPSG:4326, 0.1 deg, 10 x 10 cells, the first row centred at 35.0 N.
* tas: NetCDF, lat/lon 0.05 deg, Kelvin, linear in longitude (so area-averaging to
  0.1 deg gives the value at the coarse cell centre exactly).
* pr: one GeoTIFF per month in UTM zone 49N (EPSG:32649), 4 km cells, stored as
  "0.1 mm" integers, constant 500 -> 50 mm month-1.
* soc: GeoTIFF in "t C ha-1", constant 30 -> 3 kg C m-2.
* npp_annual: NetCDF in "kg C m-2 yr-1", 0.365 -> 365 g C m-2 yr-1.
* gpp_8day: NetCDF of 8-day composites with a constant daily rate (2 g C m-2 d-1).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import rasterio
import xarray as xr
import yaml
from rasterio.transform import from_origin

GRID = {"crs": "EPSG:4326", "resolution": 0.1, "bounds": [110.0, 34.95, 111.0, 35.95]}
YEARS = (2001, 2002)


def _lonlat(res, pad=0.2):
    x0, y0, x1, y1 = GRID["bounds"]
    lon = np.arange(x0 - pad + res / 2, x1 + pad, res)
    lat = np.arange(y1 + pad - res / 2, y0 - pad, -res)
    return np.round(lon, 6), np.round(lat, 6)


def tas_kelvin(lon):
    return 280.0 + (lon - 110.0) * 10.0


def write_tas(path: Path, units="K", with_coords=True):
    lon, lat = _lonlat(0.05)
    time = pd.date_range(f"{YEARS[0]}-01-01", f"{YEARS[1]}-12-01", freq="MS")
    data = np.broadcast_to(tas_kelvin(lon)[None, None, :], (time.size, lat.size, lon.size))
    da = xr.DataArray(data.astype("float32"), dims=("time", "lat", "lon"),
                      coords={"time": time, "lat": lat, "lon": lon},
                      attrs={"units": units, "long_name": "air temperature"}, name="t2m")
    if not with_coords:
        da = da.rename(lat="y", lon="x")
    da.to_dataset().to_netcdf(path)


def write_pr_series(folder: Path):
    from pyproj import Transformer

    folder.mkdir(parents=True, exist_ok=True)
    tr = Transformer.from_crs("EPSG:4326", "EPSG:32649", always_xy=True)
    xs, ys = tr.transform([109.7, 111.3, 109.7, 111.3], [34.7, 34.7, 36.2, 36.2])
    res = 4000.0
    west, north = min(xs), max(ys)
    nx = int((max(xs) - west) / res) + 1
    ny = int((north - min(ys)) / res) + 1
    prof = {"driver": "GTiff", "width": nx, "height": ny, "count": 1, "dtype": "int16",
            "crs": "EPSG:32649", "transform": from_origin(west, north, res, res), "nodata": -1}
    for t in pd.date_range(f"{YEARS[0]}-01-01", f"{YEARS[1]}-12-01", freq="MS"):
        with rasterio.open(folder / f"pr_{t:%Y%m}.tif", "w", **prof) as dst:
            dst.write(np.full((1, ny, nx), 500, dtype="int16"))


def write_soc(path: Path):
    x0, y0, x1, y1 = GRID["bounds"]
    prof = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "float32",
            "crs": "EPSG:4326", "transform": from_origin(x0, y1, 0.1, 0.1), "nodata": -9999}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(np.full((1, 10, 10), 30.0, dtype="float32"))


def write_modis_like(folder: Path):
    lon, lat = _lonlat(0.1, pad=0.0)
    years = pd.date_range(f"{YEARS[0]}-01-01", periods=len(range(YEARS[0], YEARS[1] + 1)),
                          freq="YS")
    npp = xr.DataArray(np.full((years.size, lat.size, lon.size), 0.365, "float32"),
                       dims=("time", "lat", "lon"),
                       coords={"time": years, "lat": lat, "lon": lon},
                       attrs={"units": "kg C m-2 yr-1"}, name="Npp")
    npp.to_dataset().to_netcdf(folder / "npp_annual.nc")
    starts, ndays = [], []
    for y in range(YEARS[0], YEARS[1] + 1):
        ylen = 366 if pd.Timestamp(f"{y}-01-01").is_leap_year else 365
        for doy in range(1, 362, 8):
            starts.append(pd.Timestamp(f"{y}-01-01") + pd.Timedelta(days=doy - 1))
            ndays.append(min(8, ylen - doy + 1))
    ndays = np.array(ndays, "float32")
    gpp = xr.DataArray(np.broadcast_to(2.0 * ndays[:, None, None],
                                       (ndays.size, lat.size, lon.size)).astype("float32"),
                       dims=("time", "lat", "lon"),
                       coords={"time": pd.DatetimeIndex(starts), "lat": lat, "lon": lon},
                       attrs={"units": "g C m-2"}, name="Gpp")
    gpp.to_dataset().to_netcdf(folder / "gpp_8day.nc")


def study_dict(**over):
    d = {
        "name": "hetero-test",
        "period": {"start": f"{YEARS[0]}-01", "end": f"{YEARS[1]}-12"},
        "grid": dict(GRID),
        "inputs": {
            "tas": {"path": "tas.nc", "variable": "t2m"},
            "pr": {"path": "pr/pr_*.tif", "date_pattern": r"pr_(?P<year>\d{4})(?P<month>\d{2})",
                   "units": "0.1 mm"},
            "soc": {"path": "soc.tif", "units": "t C ha-1", "frequency": "static"},
            "npp_annual": {"path": "npp_annual.nc", "variable": "Npp"},
            "gpp_8day": {"path": "gpp_8day.nc", "variable": "Gpp"},
        },
        "models": {"combinations": ["modis+pei", "modis+gsmsr_bl"]},
        "outputs": {"dir": "results", "formats": ["zarr", "cog", "csv", "parquet"],
                    "monthly": "all"},
    }
    d.update(over)
    return d


def write_study(folder: Path, **over) -> Path:
    p = folder / "study.yaml"
    p.write_text(yaml.safe_dump(study_dict(**over), sort_keys=False))
    return p


def demo_study_file(folder: Path, n: int = 12, **over) -> Path:
    """A small demo study (n x n cells, 2001-2003, inputs written by carbonsink.demo under
    ``folder / "inputs"``): two combinations, no analyses, Zarr only, no figures; ``over``
    replaces top-level keys. Returns the study file (inputs relative to it)."""
    from carbonsink.demo import generate, write_demo_inputs
    from carbonsink.demo.generate import RES, SOUTH, WEST
    from carbonsink.pipeline.demo_study import demo_study_dict

    inputs = write_demo_inputs(folder / "inputs", data=generate(ny=n, nx=n, end=2003),
                               write_truth=False)
    study = demo_study_dict(inputs)
    study["period"] = {"start": "2001-01", "end": "2003-12"}
    study["grid"]["bounds"] = [WEST, SOUTH, round(WEST + n * RES, 6), round(SOUTH + n * RES, 6)]
    study["models"] = {"combinations": ["modis+pei", "casa+gsmsr_bl"]}
    study["analyses"] = {}
    study["outputs"] = {"dir": "results", "formats": ["zarr"], "figures": False}
    study.update(over)
    p = folder / "inputs" / "study.yaml"
    p.write_text(yaml.safe_dump(study, sort_keys=False))
    return p
