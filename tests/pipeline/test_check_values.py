"""``check`` and ``run`` reject implausible inputs and model option values before writing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import yaml
from pipeline_helpers import GRID, YEARS, _lonlat, study_dict, tas_kelvin
from rasterio.transform import from_origin

from carbonsink.errors import ConfigError, InvalidArgumentError
from carbonsink.flux import registry
from carbonsink.pipeline import check, run_study
from carbonsink.plausibility import PlausibilityWarning


@pytest.fixture
def folder(hetero_inputs, tmp_path):
    for item in hetero_inputs.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    return tmp_path


def _study(folder: Path, **over) -> Path:
    d = study_dict(models={"combinations": ["modis+pei"]}, analyses={"regional_summary": {}})
    for k, v in over.items():
        if k == "inputs":
            d["inputs"].update(v)
        else:
            d[k] = v
    p = folder / "study.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def _tas(folder: Path, edit=None) -> None:
    lon, lat = _lonlat(0.05)
    time = pd.date_range(f"{YEARS[0]}-01-01", f"{YEARS[1]}-12-01", freq="MS")
    data = np.broadcast_to(tas_kelvin(lon)[None, None, :],
                           (time.size, lat.size, lon.size)).astype("float64").copy()
    if edit is not None:
        edit(data)
    xr.DataArray(data, dims=("time", "lat", "lon"), coords={"time": time, "lat": lat, "lon": lon},
                 attrs={"units": "K"}, name="t2m").to_dataset().to_netcdf(folder / "tas.nc")


def _rewrite_pr(folder: Path, func) -> None:
    """Rewrite every monthly pr GeoTIFF as float32 with ``func(values in 0.1 mm)``."""
    for p in sorted((folder / "pr").glob("pr_*.tif")):
        with rasterio.open(p) as src:
            prof, data = src.profile, src.read().astype("float32")
        prof.update(dtype="float32", nodata=np.nan)
        with rasterio.open(p, "w", **prof) as dst:
            dst.write(func(data).astype("float32"))


def _grid_nc(path: Path, values, units, name, times=None, dtype="float32") -> None:
    lon, lat = _lonlat(0.1, pad=0.0)
    if times is None:
        da = xr.DataArray(np.asarray(values, dtype).reshape(lat.size, lon.size), name=name,
                          dims=("lat", "lon"), coords={"lat": lat, "lon": lon})
    else:
        da = xr.DataArray(np.asarray(values, dtype).reshape(len(times), lat.size, lon.size),
                          name=name, dims=("time", "lat", "lon"),
                          coords={"time": times, "lat": lat, "lon": lon})
    da.attrs["units"] = units
    da.to_dataset().to_netcdf(path)


def _fails(study: Path, *patterns: str) -> str:
    with pytest.raises(ConfigError) as info:
        check(study)
    msg = str(info.value)
    for pat in patterns:
        assert pat in msg, (pat, msg)
    with pytest.raises(ConfigError):
        run_study(study, echo=lambda s: None)
    assert not (study.parent / "results").exists()  # nothing written
    return msg


def test_the_unaltered_study_passes_with_a_summary(folder):
    msgs = check(_study(folder))
    (line,) = [m for m in msgs if m.startswith("plausibility")]
    assert "tas: 0.0 % of" in line and "pr: 0.0 % of" in line and "soc: 0.0 %" in line
    assert not any(m.startswith("WARNING") for m in msgs)


def test_kelvin_declared_celsius(folder):
    _fails(_study(folder, inputs={"tas": {"path": "tas.nc", "variable": "t2m", "units": "degC"}}),
           "inputs.tas", "100.0 % of the sampled values", "kelvin labelled as degC",
           'inputs.tas.units: "K"')


def test_precipitation_in_metres_declared_mm(folder):
    _rewrite_pr(folder, lambda v: v / 10 / 1000)          # 0.05 m
    pr = {"path": "pr/pr_*.tif", "date_pattern": r"pr_(?P<year>\d{4})(?P<month>\d{2})",
          "units": "mm"}
    _fails(_study(folder, inputs={"pr": pr}), "inputs.pr", "100.0 % of the sampled values",
           "1000 times too small", 'inputs.pr.units: "m"')


def test_double_scaled_ndvi(folder):
    times = pd.date_range(f"{YEARS[0]}-01-01", f"{YEARS[1]}-12-01", freq="MS")
    vals = np.random.default_rng(1).uniform(0.1, 0.8, (times.size, 100))  # scale applied
    _grid_nc(folder / "ndvi.nc", vals, "1", "NDVI", times)
    _fails(_study(folder, inputs={"ndvi": {"path": "ndvi.nc", "variable": "NDVI",
                                           "units": "0.0001", "crs": "EPSG:4326"}}),
           "inputs.ndvi", "100.0 % of the sampled values", "10000 times too small",
           'inputs.ndvi.units: "1"')


def test_undeclared_fill_value(folder):
    def edit(d):
        d[:, :, :6] = -9999.0  # 6 of the columns of the file

    _tas(folder, edit)
    msg = _fails(_study(folder), "inputs.tas", "-9999", "undeclared fill values",
                 "declare them as nodata")
    share = 6 / _lonlat(0.05)[0].size  # 6 of 28 columns (hand-computed)
    assert f"{100 * share:.1f} % of the sampled values" in msg


def test_negative_precipitation(folder):
    def neg(v):
        v = v.copy()
        v[:, :2, :] = -np.arange(1, v.shape[2] + 1) * 10.0  # first 2 of the rows, varying
        return v

    _rewrite_pr(folder, neg)
    with rasterio.open(next((folder / "pr").glob("*.tif"))) as src:
        share = 2 / src.height
    _fails(_study(folder), "inputs.pr", f"{100 * share:.1f} % of the sampled values",
           "negative values", "sign convention")


def test_infinite_values(folder):
    def edit(d):
        d[:, 0, :] = np.inf

    _tas(folder, edit)
    _fails(_study(folder), "inputs.tas", "+inf or -inf", "nodata")


def test_unknown_land_cover_code(folder):
    years = pd.date_range(f"{YEARS[0]}-01-01", periods=2, freq="YS")
    codes = np.tile(np.arange(100) % 17 + 1, (2, 1))
    codes[:, :10] = 42                                     # 10 % of the cells
    _grid_nc(folder / "lc.nc", codes, "1", "LC", years, dtype="int16")
    _fails(_study(folder, inputs={"landcover": {"path": "lc.nc", "variable": "LC",
                                                "crs": "EPSG:4326"}}),
           "inputs.landcover", "10.0 % of the sampled values", "class codes 42",
           "inputs.landcover.scheme")


def test_all_nan_input_and_input_empty_inside_the_region(folder):
    x0, y0, x1, y1 = GRID["bounds"]
    prof = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "float32",
            "crs": "EPSG:4326", "transform": from_origin(x0, y1, 0.1, 0.1), "nodata": np.nan}
    with rasterio.open(folder / "soc.tif", "w", **prof) as dst:
        dst.write(np.full((1, 10, 10), np.nan, "float32"))
    _fails(_study(folder), "inputs.soc", "100.0 % of the sampled values", "no valid value")
    data = np.full((1, 10, 10), 30.0, "float32")
    data[:, :, :5] = np.nan                                # west half empty
    with rasterio.open(folder / "soc.tif", "w", **prof) as dst:
        dst.write(data)
    ring = [[x0, y0], [x0 + 0.5, y0], [x0 + 0.5, y1], [x0, y1], [x0, y0]]
    (folder / "west.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "west"},
         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))
    _fails(_study(folder, region={"path": "west.geojson", "attribute": "name"}),
           "inputs.soc covers 0.0 % of the region", "Fix:")


def test_warn_mode_passes_with_a_warning_and_off_skips(folder):
    tas = {"path": "tas.nc", "variable": "t2m", "units": "degC"}
    with pytest.warns(PlausibilityWarning, match="kelvin labelled as degC"):
        msgs = check(_study(folder, inputs={"tas": tas}, checks={"plausibility": "warn"}))
    assert any(m.startswith("WARNING inputs.tas") and 'units: "K"' in m for m in msgs)
    msgs = check(_study(folder, inputs={"tas": tas}, checks={"plausibility": "off"}))
    assert not any(m.startswith("plausibility") for m in msgs)


def test_model_option_values_are_checked_by_check(folder):
    study = _study(folder, models={"combinations": ["modis+pei"],
                                   "options": {"pei": {"mode": "papr"}}})
    _fails(study, "models.options.pei", "mode='papr'", "'recommended', 'paper'")
    study = _study(folder, models={"combinations": ["modis+gsmsr_bl"],
                                   "options": {"gsmsr_bl": {"scaling": "yearly"}}})
    _fails(study, "scaling='yearly'", "'annual_ratio', 'annualised_rate', 'direct'")
    study = _study(folder, models={"combinations": ["modis+gsmsr_bl"],
                                   "options": {"gsmsr_bl": {"beta": "small"}}})
    _fails(study, "beta='small'", "expected a number")


def test_registry_reads_accepted_values_from_the_model_functions():
    assert registry.option_choices("rh", "gsmsr_bl") == {
        "mode": ("recommended", "paper"), "scaling": ("annual_ratio", "annualised_rate",
                                                      "direct"), "period": ("month", "year")}
    assert registry.option_choices("rh", "century")["water"] == ("auto", "psi", "ppt", "none")
    assert registry.option_choices("npp", "casa")["heat_index"] == ("annual", "climatology")
    registry.validate_options("rh", "gsmsr_bl", {"mode": "paper", "scaling": None,
                                                 "beta": -0.001, "alpha": 2})
    with pytest.raises(InvalidArgumentError, match="half_rule=1 .*expected true or false"):
        registry.validate_options("npp", "casa", {"half_rule": 1})
    with pytest.raises(InvalidArgumentError, match="spinup_cycles=2.5 .*expected an integer"):
        registry.validate_options("rh", "century", {"spinup_cycles": 2.5})
