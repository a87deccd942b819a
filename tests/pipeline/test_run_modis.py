"""`carbonsink run` on MODIS HDF4-EOS tiles: MOD17A3HGF annual NPP and MOD17A2HGF 8-day GPP,
two tiles (h26v04, h27v04) mosaicked, decoded, reprojected from the sinusoidal grid to a
0.5 deg lat/lon grid, downscaled to months (METHODS 2.1) and combined with Pei Rh.

Hand-computed expectation: Npp DN 3650 x 0.0001 kg C m-2 yr-1 = 365 g C m-2 yr-1 everywhere;
a constant daily GPP rate makes monthly NPP = 365 x days / 365 = the month's day count.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from carbonsink.pipeline import run_study
from carbonsink.testing.modis import modis_name, write_modis

N = 24  # pixels per tile side (tile width 1111950.5 m / 24 = 46.3 km)
YEARS = (2001, 2002)
GRID = {"crs": "EPSG:4326", "resolution": 0.5, "bounds": [124.0, 44.0, 131.0, 46.0]}


def _composites(year):
    ylen = 366 if pd.Timestamp(f"{year}-01-01").is_leap_year else 365
    return [(doy, min(8, ylen - doy + 1)) for doy in range(1, 362, 8)]


@pytest.fixture(scope="module")
def modis_study(tmp_path_factory):
    folder = tmp_path_factory.mktemp("modis")
    (folder / "a3").mkdir()
    (folder / "a2").mkdir()
    for h in (26, 27):
        for y in YEARS:
            npp = np.full((N, N), 3650, "int16")
            if h == 26:
                npp[12, 21] = 32761  # a non-vegetated code near 45 N, 126 E: NaN, not 3276.1
            write_modis(folder / "a3" / modis_name("MOD17A3HGF", y, 1, h, 4), "MOD17A3HGF",
                        {"Npp_500m": npp}, h=h, v=4, begin=f"{y}-01-01", end=f"{y}-12-31")
            for doy, nd in _composites(y):
                gpp = np.full((N, N), 20 * nd, "int16")  # 2 g C m-2 d-1 = 0.002 kg, /0.0001
                write_modis(folder / "a2" / modis_name("MOD17A2HGF", y, doy, h, 4),
                            "MOD17A2H", {"Gpp_500m": gpp}, h=h, v=4, short="MOD17A2HGF")
    lon = np.arange(123.25, 132.0, 0.25)
    lat = np.arange(47.0, 43.0, -0.25)
    time = pd.date_range(f"{YEARS[0]}-01-01", f"{YEARS[1]}-12-01", freq="MS")
    clim = xr.Dataset(
        {"tas": (("time", "lat", "lon"), np.full((time.size, lat.size, lon.size), 8.0)),
         "pr": (("time", "lat", "lon"), np.full((time.size, lat.size, lon.size), 40.0))},
        coords={"time": time, "lat": lat, "lon": lon})
    clim["tas"].attrs["units"] = "degC"
    clim["pr"].attrs["units"] = "mm month-1"
    clim.to_netcdf(folder / "climate.nc")
    study = {
        "name": "modis-test",
        "period": {"start": f"{YEARS[0]}-01", "end": f"{YEARS[1]}-12"},
        "grid": GRID,
        "inputs": {
            "npp_annual": {"path": "a3/MOD17A3HGF*.hdf", "variable": "Npp_500m",
                           "product": "MOD17A3HGF"},
            "gpp_8day": {"path": "a2/MOD17A2HGF*.hdf", "variable": "Gpp_500m",
                         "product": "MOD17A2HGF"},
            "tas": {"path": "climate.nc", "variable": "tas"},
            "pr": {"path": "climate.nc", "variable": "pr"},
        },
        "models": {"combinations": ["modis+pei"]},
        "outputs": {"formats": ["zarr", "csv"], "figures": False, "monthly": "all"},
    }
    p = folder / "study.yaml"
    p.write_text(yaml.safe_dump(study))
    run_study(p, echo=lambda s: None)
    return folder / "results"


def test_modis_tiles_are_mosaicked_decoded_and_reprojected(modis_study):
    from carbonsink.io import read_cube

    ds = read_cube(modis_study / "cubes" / "inputs_annual.zarr")
    npp = ds["npp_annual"]
    assert npp.attrs["units"] == "g C m-2 yr-1"
    assert npp.sizes == {"time": 2, "y": 4, "x": 14}
    # every 0.5 deg cell of the grid (both tiles) decodes to 365: the non-vegetated code is
    # masked before averaging (a scaled flag, 3276.1, would raise its cells' means)
    vals = npp.values
    assert np.isfinite(vals).all()
    np.testing.assert_allclose(vals, 365.0, rtol=1e-5)
    g = read_cube(modis_study / "cubes" / "inputs_8day.zarr")["gpp_8day"]
    assert g.attrs["units"] == "g C m-2"
    assert g.sizes["time"] == 2 * 46


def test_monthly_npp_from_modis_sums_to_the_annual_product(modis_study):
    m = xr.open_zarr(modis_study / "cubes" / "modis+pei" / "monthly.zarr")
    days = m["time"].dt.days_in_month.values
    expected = days[:, None, None] * np.ones((1, 4, 14))
    valid = np.isfinite(m["npp"].values)
    assert valid.mean() > 0.95
    np.testing.assert_allclose(m["npp"].values[valid], expected[valid], rtol=1e-5)
    a = xr.open_zarr(modis_study / "cubes" / "modis+pei" / "annual.zarr")
    np.testing.assert_allclose(a["npp"].values, 365.0, rtol=1e-5)
    np.testing.assert_array_equal(m["nep"].values, (m["npp"] - m["rh"]).values)
