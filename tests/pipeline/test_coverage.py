"""Valid-area accounting: coarsening with missing cells keeps totals; check measures how much of
the region each input covers and opens the region file."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio
import xarray as xr
import yaml
from pipeline_helpers import GRID, study_dict
from rasterio.transform import from_origin

from carbonsink.cube import GridSpec, pixel_area, regrid, valid_area, valid_fraction
from carbonsink.errors import ConfigError
from carbonsink.pipeline import check, run_study
from carbonsink.regions import regional_mean, regional_total


def test_coarsening_with_missing_cells_keeps_the_total():
    fine = GridSpec(crs="EPSG:4326", resolution=0.05, bounds=(100, 30, 102, 32))
    coarse = GridSpec(crs="EPSG:4326", resolution=0.25, bounds=(100, 30, 102, 32))
    a = pixel_area(fine)
    rng = np.random.default_rng(0)
    v = rng.normal(100, 10, a.shape)
    v[rng.random(a.shape) < 0.2] = np.nan
    da = xr.DataArray(v, dims=("y", "x"), coords={"y": a.y, "x": a.x}, name="nep",
                      attrs={"units": "g C m-2 yr-1"}).rio.write_crs("EPSG:4326")
    c = regrid(da, coarse)
    f = valid_fraction(da, coarse)
    ac = pixel_area(coarse)
    fine_total = float(regional_total(da, a))
    # without the valid fraction the total is inflated by about a quarter (1 / 0.8)
    assert float(regional_total(c, ac)) / fine_total - 1 > 0.2
    np.testing.assert_allclose(float(regional_total(c, valid_area(ac, f))), fine_total,
                               rtol=1e-9)
    np.testing.assert_allclose(float(regional_mean(c, valid_area(ac, f))),
                               float(regional_mean(da, a)), rtol=1e-9)
    assert 0 < float(f.min()) and float(f.max()) < 1.0  # 20 % missing at random


def _square(path: Path, bounds) -> None:
    x0, y0, x1, y1 = bounds
    ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"name": "box"},
         "geometry": {"type": "Polygon", "coordinates": [ring]}}]}))


def _partial_soc(path: Path, covered_columns: int) -> None:
    x0, y0, x1, y1 = GRID["bounds"]
    data = np.full((1, 10, 10), np.nan, dtype="float32")
    data[:, :, :covered_columns] = 30.0
    prof = {"driver": "GTiff", "width": 10, "height": 10, "count": 1, "dtype": "float32",
            "crs": "EPSG:4326", "transform": from_origin(x0, y1, 0.1, 0.1), "nodata": np.nan}
    with rasterio.open(path, "w", **prof) as dst:
        dst.write(data)


@pytest.fixture
def folder(hetero_inputs, tmp_path):
    for item in hetero_inputs.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    _square(tmp_path / "region.geojson", GRID["bounds"])
    return tmp_path


def _study(folder: Path, **over) -> Path:
    d = study_dict(models={"combinations": ["modis+gsmsr_bl"]},
                   region={"path": "region.geojson", "attribute": "name", "values": ["box"]},
                   analyses={"regional_summary": {}})
    d.update(over)
    p = folder / "study.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def test_check_fails_when_an_input_covers_20_percent(folder):
    _partial_soc(folder / "soc.tif", 2)
    with pytest.raises(ConfigError, match=r"inputs.soc covers 20.0 % of the region.*"
                                          r"region.min_coverage is 95 %"):
        check(_study(folder))
    with pytest.raises(ConfigError, match="inputs.soc covers 20.0 %"):
        run_study(_study(folder), echo=lambda s: None)
    assert not (folder / "results").exists()


def test_lower_threshold_runs_and_totals_use_the_covered_area(folder):
    _partial_soc(folder / "soc.tif", 6)
    region = {"path": "region.geojson", "attribute": "name", "values": ["box"],
              "min_coverage": 0.5}
    study = _study(folder, region=region)
    msgs = check(study)
    assert any("region coverage:" in m and "soc 60.0 %" in m for m in msgs)
    run_study(study, echo=lambda s: None)
    out = folder / "results"
    static = xr.open_zarr(out / "cubes" / "inputs_static.zarr")
    f = static["valid_fraction"].values
    assert (f[:, :6] == 1).all() and (f[:, 6:] == 0).all()
    tab = __import__("pandas").read_csv(out / "tables" / "regional_annual.csv")
    npp = tab[(tab.variable == "npp") & (tab.statistic == "total")]
    covered = float(static["area"].isel(x=slice(0, 6)).sum())
    np.testing.assert_allclose(npp["value"], 365.0 * covered / 1e12, rtol=1e-5)


def test_check_opens_the_region_file(folder):
    d_bad = {"path": "region.geojson", "attribute": "name", "values": ["boxx"]}
    with pytest.raises(ConfigError, match=r"region.values: .*boxx.*box"):
        check(_study(folder, region=d_bad))
    d_bad = {"path": "region.geojson", "attribute": "nom", "values": ["box"]}
    with pytest.raises(ConfigError, match=r"region.attribute: .*nom.*name"):
        check(_study(folder, region=d_bad))
    _square(folder / "far.geojson", (0, 0, 1, 1))
    with pytest.raises(ConfigError, match="cover no cell of the study grid"):
        check(_study(folder, region={"path": "far.geojson"}))


def test_stored_valid_fraction_equals_the_direct_fractions_of_the_inputs(folder):
    """The valid fraction the prepare step stores (smallest over the inputs) equals the
    fractions computed on their own from the raw inputs, for a time-varying input with a
    permanent gap."""
    from carbonsink.pipeline import steps
    from carbonsink.pipeline.config import load_study

    with xr.open_dataset(folder / "tas.nc") as ds:
        tas = ds.load()
    name = next(iter(tas.data_vars))
    xdim = tas[name].dims[-1]
    # a band of columns inside the study grid never valid (half of a 0.1° study cell too)
    lon = tas[xdim]
    tas[name] = tas[name].where((lon < 110.55) | (lon > 110.8))
    (folder / "tas.nc").unlink()
    tas.to_netcdf(folder / "tas.nc")
    study = _study(folder, region=None)
    run_study(study, echo=lambda s: None)
    got = xr.open_zarr(folder / "results" / "cubes" / "inputs_static.zarr")["valid_fraction"]
    cfg = load_study(study)
    arrays = steps.read_inputs(cfg)
    direct = steps.input_fractions(cfg, arrays, steps.target_grid(cfg, arrays))
    ref = None
    for f in direct.values():
        f = f.drop_vars("spatial_ref", errors="ignore").compute()
        ref = f if ref is None else np.minimum(ref, f)
    assert float(got.min()) == 0.0 and 0.0 < float(got.max()) == 1.0  # the gap shows
    assert ((got > 0) & (got < 1)).any()  # partly covered cells at its edge
    np.testing.assert_array_equal(got.values, ref.values)
