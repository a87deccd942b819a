"""Zones (provinces, subzones) rasterised once and summarised in one pass; climate driver
series written beside the flux cubes with the same years and mask."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from pipeline_helpers import GRID, study_dict

from carbonsink.cube import GridSpec, pixel_area, region_mask, zone_labels, zone_names
from carbonsink.pipeline import run_study
from carbonsink.regions import regional_mean, regional_total, summarise


def _two_zones(path: Path) -> None:
    """West half 'A' (110.0–110.5 E), east half 'B' (110.5–111.0 E) of the hetero grid."""
    x0, y0, x1, y1 = GRID["bounds"]
    xm = 110.5
    feats = []
    for name, (a, b) in (("A", (x0, xm)), ("B", (xm, x1))):
        ring = [[a, y0], [b, y0], [b, y1], [a, y1], [a, y0]]
        feats.append({"type": "Feature", "properties": {"name": name},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))


@pytest.fixture(scope="module")
def zoned_run(hetero_inputs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("zones")
    for item in hetero_inputs.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, folder / item.name)
    _two_zones(folder / "halves.geojson")
    d = study_dict(models={"combinations": ["modis+pei"]},
                   analyses={"regional_summary": {}},
                   zones={"path": "halves.geojson", "attribute": "name", "label": "half"})
    (folder / "study.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    _RUNS["zoned"] = run_study(folder / "study.yaml", echo=lambda s: None)
    return folder / "results"


_RUNS: dict = {}


def test_zones_are_rasterised_once_with_names(zoned_run):
    static = xr.open_zarr(zoned_run / "cubes" / "inputs_static.zarr")
    z = static["zones"].values
    assert z.dtype == np.int32
    assert (z[:, :5] == 1).all() and (z[:, 5:] == 2).all()
    assert zone_names(static["zones"]) == {1: "A", 2: "B"}
    assert static["zones"].attrs["zone_layer"] == "half"


def test_zone_totals_add_up_to_the_region(zoned_run):
    tab = pd.read_parquet(zoned_run / "tables" / "regional_annual.parquet")
    assert set(tab["zone"]) == {"study area", "A", "B"}
    tot = tab[tab.statistic == "total"].pivot_table(index=["variable", "year"], columns="zone",
                                                    values="value")
    np.testing.assert_allclose(tot["A"] + tot["B"], tot["study area"], rtol=1e-9)
    # zone means are area-weighted means over the zone's cells
    a = xr.open_zarr(zoned_run / "cubes" / "modis+pei" / "annual.zarr")["rh"]
    area = xr.open_zarr(zoned_run / "cubes" / "inputs_static.zarr")["area"]
    west = (a.isel(x=slice(0, 5)) * area.isel(x=slice(0, 5))).sum(("y", "x")) / \
        area.isel(x=slice(0, 5)).sum()
    got = tab[(tab.zone == "A") & (tab.variable == "rh") & (tab.statistic == "mean")]
    np.testing.assert_allclose(got["value"].values, west.values, rtol=1e-9)
    html = (zoned_run / "index.html").read_text()
    assert "per half" in html


def test_driver_series_match_the_flux_years_and_are_means_or_sums(zoned_run):
    from carbonsink.pipeline.steps import PipelineContext

    # no analysis of this study reads the drivers throughout: not stored, derived on demand
    assert not (zoned_run / "cubes" / "drivers").exists()
    pctx = PipelineContext(_RUNS["zoned"])
    drv = pctx.drivers("annual")
    flux = xr.open_zarr(zoned_run / "cubes" / "modis+pei" / "annual.zarr")
    np.testing.assert_array_equal(drv["time"].values, flux["time"].values)
    monthly = xr.open_zarr(zoned_run / "cubes" / "inputs_monthly.zarr")
    np.testing.assert_allclose(drv["tas"].values,
                               monthly["tas"].resample(time="YS").mean().values, rtol=1e-6)
    np.testing.assert_allclose(drv["pr"].values,
                               monthly["pr"].resample(time="YS").sum().values, rtol=1e-6)
    assert drv["pr"].attrs["units"] == "mm yr-1" and drv["tas"].attrs["units"] == "degC"
    gs = pctx.drivers("growing_season")
    sel = monthly["pr"].sel(time=monthly["time"].dt.month.isin([5, 6, 7, 8, 9]))
    np.testing.assert_allclose(gs["pr"].values, sel.resample(time="YS").sum().values,
                               rtol=1e-6)


def test_summarise_equals_regional_functions_and_per_zone_masks():
    grid = GridSpec(crs="EPSG:4326", resolution=1.0, bounds=(100, 30, 106, 34))
    area = pixel_area(grid)
    rng = np.random.default_rng(1)
    t = pd.date_range("2001", periods=5, freq="YS")
    da = xr.DataArray(rng.normal(100, 20, (5, 4, 6)), dims=("time", "y", "x"),
                      coords={"time": t, "y": area["y"], "x": area["x"]}, name="nep",
                      attrs={"units": "g C m-2 yr-1"})
    da[0, 1, 1] = np.nan
    zones = xr.DataArray(np.repeat([[0, 1, 1, 2, 2, 3]], 4, axis=0).astype("int32"),
                         dims=("y", "x"), coords={"y": area["y"], "x": area["x"]},
                         attrs={"zone_names": json.dumps({"1": "p", "2": "q", "3": "r"})})
    df = summarise(da, area, zones=zones, how=("mean", "total", "area"))
    whole = df[df.zone == "study area"]
    # the compiled pass adds in another order than xarray's sums: equal to rounding
    np.testing.assert_allclose(whole[whole.statistic == "mean"]["value"].values,
                               regional_mean(da, area).values, rtol=1e-12)
    np.testing.assert_allclose(whole[whole.statistic == "total"]["value"].values,
                               regional_total(da, area).values, rtol=1e-12)
    for k, name in ((1, "p"), (2, "q"), (3, "r")):
        sub = df[df.zone == name]
        np.testing.assert_allclose(sub[sub.statistic == "mean"]["value"].values,
                                   regional_mean(da.where(zones == k), area).values, rtol=1e-12)
        np.testing.assert_allclose(sub[sub.statistic == "total"]["value"].values,
                                   regional_total(da.where(zones == k), area).values,
                                   rtol=1e-12)
    zt = df[(df.zone != "study area") & (df.statistic == "total")].groupby("time")["value"].sum()
    col0 = regional_total(da.isel(x=[0]), area.isel(x=[0])).values
    np.testing.assert_allclose(zt.values + col0, whole[whole.statistic == "total"]["value"],
                               rtol=1e-9)
    assert set(df[df.statistic == "area"]["units"]) == {"km2"}


def test_provinces_in_one_pass_on_the_real_boundaries(shared_data):
    path = shared_data / "boundaries" / "china_provinces_dcw-gmt-2.1.1_simplified0.01deg.geojson"
    grid = GridSpec(crs="EPSG:4326", resolution=0.1, bounds=(73, 18, 135, 54))
    zones = zone_labels(grid, path, "name", label="province")
    names = zone_names(zones)
    assert len(names) == 34 and "Nei Mongol" in names.values()
    area = pixel_area(grid)
    ones = xr.ones_like(area).assign_attrs(units="1").rename("cover")
    t0 = time.perf_counter()
    df = summarise(ones, area, zones=zones, how=("area",))
    elapsed = time.perf_counter() - t0
    nm = df[(df.zone == "Nei Mongol") & (df.statistic == "area")]["value"].item()
    # METHODS 1.6: Nei Mongol is 1.144 million km2 from pixel areas (1.146 geodesic)
    assert nm == pytest.approx(1.144e6, rel=0.005)
    # a cell whose centre lies in two overlapping (simplified) provinces belongs to one zone
    # only; the province's own mask counts it in both: 0.02 % here
    mask = region_mask(grid, path, "name", "Nei Mongol")
    assert nm == pytest.approx(float(area.where(mask).sum()) / 1e6, rel=1e-3)
    total = df[(df.zone != "study area") & (df.statistic == "area")]["value"].sum()
    assert total == pytest.approx(float(area.where(zones > 0).sum()) / 1e6, rel=1e-9)
    assert elapsed < 60  # sanity only; speed is measured in benchmarks/


def test_fractional_region_and_zones_count_border_cells_by_their_share(hetero_inputs,
                                                                        tmp_path):
    """A region and zones whose border splits a column of cells in half: with
    ``fractional: true`` the half cells count half in the totals."""
    for item in hetero_inputs.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    x0, y0, x1, y1 = GRID["bounds"]
    feats = []
    for name, (a, b) in (("A", (x0, 110.55)), ("B", (110.55, 110.85))):
        ring = [[a, y0], [b, y0], [b, y1], [a, y1], [a, y0]]
        feats.append({"type": "Feature", "properties": {"name": name},
                      "geometry": {"type": "Polygon", "coordinates": [ring]}})
    (tmp_path / "zones.geojson").write_text(json.dumps({"type": "FeatureCollection",
                                                        "features": feats}))
    d = study_dict(models={"combinations": ["modis+pei"]},
                   analyses={"regional_summary": {}},
                   region={"path": "zones.geojson", "fractional": True, "min_coverage": 0.5},
                   zones={"path": "zones.geojson", "attribute": "name", "fractional": True})
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    run_study(tmp_path / "study.yaml", echo=lambda s: None)
    out = tmp_path / "results"
    static = xr.open_zarr(out / "cubes" / "inputs_static.zarr")
    area = static["area"].values
    rf = static["region_fraction"].values
    # the union of A and B ends at 110.85 E: column 8 (110.8-110.9) is half inside
    np.testing.assert_allclose(rf[:, :8], 1.0)
    np.testing.assert_allclose(rf[:, 8], 0.5, atol=0.11)   # 5 x 5 sub-cells per cell
    np.testing.assert_allclose(rf[:, 9], 0.0)
    tab = pd.read_parquet(out / "tables" / "regional_annual.parquet")
    npp = tab[(tab.variable == "npp") & (tab.statistic == "total")]
    region = npp[npp.zone == "A, B" if "A, B" in set(npp.zone) else npp.zone == "zones"]
    expected = 365.0 * float((area * rf).sum()) / 1e12
    np.testing.assert_allclose(region["value"], expected, rtol=1e-5)
    za = npp[npp.zone == "A"]["value"].values
    zb = npp[npp.zone == "B"]["value"].values
    np.testing.assert_allclose(za + zb, region["value"].values, rtol=1e-6)
    zf = static["zone_fractions"].values
    # the A/B border at 110.55 E splits column 5: both zones share it, nothing is lost
    np.testing.assert_allclose(zf[0, :, 5], 0.5, atol=0.11)
    np.testing.assert_allclose(zf[0, :, 5] + zf[1, :, 5], rf[:, 5], atol=1e-6)
    za_expected = 365.0 * float((area * zf[0]).sum()) / 1e12
    np.testing.assert_allclose(za, za_expected, rtol=1e-5)
