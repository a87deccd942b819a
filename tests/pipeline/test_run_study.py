"""`carbonsink run` on GeoTIFF + NetCDF inputs on different grids, CRSs and units.

Checked against hand-computed values: unit conversions, area-averaging, the 0.1 deg cell at
35 N (101.28 km2), MODIS downscaling (monthly NPP sums to the annual value), NEP = NPP - Rh,
annual = sum of months, provenance on every output, rerun skipping, and clean failures.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
import yaml
from pipeline_helpers import GRID, study_dict, tas_kelvin, write_study, write_tas

from carbonsink.errors import (
    AlignmentError,
    CarbonsinkError,
    InputError,
    InsufficientDataError,
    UnitError,
    UnknownModelError,
)
from carbonsink.flux.rh import pei2009
from carbonsink.io import read_cube
from carbonsink.pipeline import check, load_study, run_study


@pytest.fixture(scope="module")
def finished(hetero_inputs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("run")
    for item in hetero_inputs.iterdir():
        dest = folder / item.name
        (shutil.copytree if item.is_dir() else shutil.copy)(item, dest)
    study = write_study(folder)
    lines: list[str] = []
    ctx = run_study(study, echo=lines.append)
    return folder, ctx, lines


def test_results_folder_and_progress(finished):
    folder, ctx, lines = finished
    out = folder / "results"
    assert (out / "index.html").exists()
    assert any(line.startswith("[1/7]") for line in lines)
    assert any("done in" in line for line in lines)
    assert any("trends skipped: the study period has 2 years" in line for line in lines)
    for combo in ("modis+pei", "modis+gsmsr_bl"):
        for cube in ("monthly", "annual", "growing_season"):
            assert (out / "cubes" / combo / f"{cube}.zarr").is_dir()
        assert (out / "maps" / combo / "nep_mean_annual.tif").exists()
    for t in ("regional_annual", "regional_growing_season", "sink_source_area"):
        assert (out / "tables" / f"{t}.csv").exists()
        assert (out / "tables" / f"{t}.parquet").exists()
    html = (out / "index.html").read_text()
    assert "modis+gsmsr_bl" in html and "regional_annual.csv" in html


def test_aligned_inputs_have_canonical_units_and_values(finished):
    folder, _, _ = finished
    cubes = folder / "results" / "cubes"
    monthly = read_cube(cubes / "inputs_monthly.zarr")
    assert monthly["tas"].attrs["units"] == "degC"
    assert monthly["pr"].attrs["units"] == "mm month-1"
    assert monthly["tas"].sizes == {"time": 24, "y": 10, "x": 10}
    expected_c = tas_kelvin(monthly["x"].values) - 273.15
    np.testing.assert_allclose(monthly["tas"].isel(time=5).values,
                               np.broadcast_to(expected_c, (10, 10)), atol=1e-4)
    np.testing.assert_allclose(monthly["pr"].values, 50.0, rtol=1e-6)
    static = read_cube(cubes / "inputs_static.zarr")
    assert static["soc"].attrs["units"] == "kg C m-2"
    assert xr.open_zarr(cubes / "inputs_static.zarr")["soc"].attrs["units"] == "kg m-2"
    np.testing.assert_allclose(static["soc"].values, 3.0, rtol=1e-6)
    # the first row is centred at 35.0 N: a 0.1 deg cell there is 101.28 km2 (METHODS 1.6)
    assert float(static["y"][-1]) == pytest.approx(35.0)
    assert static["area"].attrs["units"] == "m2"
    assert float(static["area"].sel(y=35.0, method="nearest")[0]) / 1e6 == pytest.approx(
        101.28, abs=0.005)
    # CRS travels with the cubes (CF grid_mapping; rioxarray reads it with decode_coords="all")
    cf = xr.open_zarr(cubes / "inputs_monthly.zarr", decode_coords="all")
    assert cf.rio.crs.to_epsg() == 4326
    assert cf["tas"].rio.crs.to_epsg() == 4326


def test_flux_cubes_against_hand_computed_values(finished):
    folder, _, _ = finished
    cubes = folder / "results" / "cubes"
    m = xr.open_zarr(cubes / "modis+pei" / "monthly.zarr")
    a = xr.open_zarr(cubes / "modis+pei" / "annual.zarr")
    # constant daily GPP rate: monthly NPP = 365 g/yr x days/365 (2001, 2002 not leap years)
    days = m["time"].dt.days_in_month.values
    np.testing.assert_allclose(m["npp"].isel(y=0, x=0).values, days * 1.0, rtol=1e-5)
    np.testing.assert_allclose(a["npp"].values, 365.0, rtol=1e-5)
    # Pei with the cube's own T and P, independently evaluated
    tas = xr.open_zarr(cubes / "inputs_monthly.zarr")["tas"].isel(y=0, x=3)
    pr = xr.open_zarr(cubes / "inputs_monthly.zarr")["pr"].isel(y=0, x=3)
    rh = pei2009(tas.values, pr.values)
    np.testing.assert_allclose(m["rh"].isel(y=0, x=3).values, rh, rtol=1e-5)
    # NEP = NPP - Rh exactly; annual = sum of the 12 months
    np.testing.assert_array_equal(m["nep"].values, (m["npp"] - m["rh"]).values)
    np.testing.assert_allclose(a["nep"].values,
                               m["nep"].resample(time="YS").sum().values, rtol=1e-6)
    # on disk UDUNITS units; read_cube restores carbonsink's "g C ..." labels
    assert m["nep"].attrs["units"] == "g m-2 month-1"
    assert read_cube(cubes / "modis+pei" / "annual.zarr")["nep"].attrs["units"] == \
        "g C m-2 yr-1"
    gs = xr.open_zarr(cubes / "modis+pei" / "growing_season.zarr")
    np.testing.assert_allclose(
        gs["npp"].values, m["npp"].sel(time=m["time"].dt.month.isin([5, 6, 7, 8, 9]))
        .resample(time="YS").sum().values, rtol=1e-6)


def test_provenance_on_every_output(finished):
    folder, _, _ = finished
    out = folder / "results"
    sha = load_study(folder / "study.yaml").sha256
    ds = xr.open_zarr(out / "cubes" / "modis+gsmsr_bl" / "annual.zarr")
    assert ds.attrs["carbonsink_study_sha256"] == sha
    assert "carbonsink_version" in ds.attrs
    assert json.loads(ds.attrs["carbonsink_models"])["rh"] == "gsmsr_bl"
    with rasterio.open(out / "maps" / "modis+gsmsr_bl" / "nep_mean_annual.tif") as src:
        tags = src.tags()
        assert src.crs.to_epsg() == 4326
    assert tags["carbonsink_study_sha256"] == sha
    meta = json.loads((out / "tables" / "regional_annual.csv.meta.json").read_text())
    assert sha in json.dumps(meta)
    pq = pd.read_parquet(out / "tables" / "regional_annual.parquet")
    assert set(pq["combination"]) == {"modis+pei", "modis+gsmsr_bl"}
    assert sha in (out / "index.html").read_text()
    from PIL import Image

    png = Image.open(out / "figures" / "nep_regional_annual.png")
    assert png.text["carbonsink_study_sha256"] == sha


def test_regional_table_is_area_weighted(finished):
    folder, _, _ = finished
    out = folder / "results"
    tab = pd.read_csv(out / "tables" / "regional_annual.csv")
    npp = tab[(tab.variable == "npp") & (tab.combination == "modis+pei")]
    mean, total = npp[npp.statistic == "mean"], npp[npp.statistic == "total"]
    assert len(mean) == len(total) == 2
    assert set(mean["units"]) == {"g C m-2 yr-1"} and set(total["units"]) == {"Tg C yr-1"}
    np.testing.assert_allclose(mean["value"], 365.0, rtol=1e-5)
    area = xr.open_zarr(out / "cubes" / "inputs_static.zarr")["area"].sum().compute().item()
    np.testing.assert_allclose(total["value"], 365.0 * area / 1e12, rtol=1e-5)


def test_rerun_skips_current_steps_and_reruns_after_change(finished):
    folder, _, _ = finished
    lines: list[str] = []
    run_study(folder / "study.yaml", echo=lines.append)
    assert sum("up to date, skipped" in line for line in lines) == 7
    d = study_dict()
    d["outputs"]["growing_season_months"] = [6, 7, 8]
    (folder / "study.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    lines = []
    run_study(folder / "study.yaml", echo=lines.append)
    assert "[1/7] read, convert and align inputs: up to date, skipped" in lines[0]
    assert not any("[2/7]" in line and "skipped" in line for line in lines)


def _copy_inputs(src, dst):
    for item in src.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, dst / item.name)


def _assert_nothing_finished(folder):
    out = folder / "results"
    assert not (out / "index.html").exists()
    leftovers = [p for p in out.rglob("*") if ".tmp" in p.name] if out.exists() else []
    assert leftovers == []


@pytest.mark.parametrize(
    "change, error, match",
    [
        ({"inputs": {"tas": {"path": "nope.nc", "variable": "t2m"}}}, InputError, "nope.nc"),
        ({"inputs": {"tas": {"path": "tas.nc", "variable": "t2m", "units": "mm"}}}, UnitError,
         "'tas'.*degC.*'mm'"),
        ({"period": {"start": "2001-01", "end": "2004-12"}}, InsufficientDataError,
         "period 2001-01-01 to 2004-12-31 .* not covered.*Fix"),
        ({"models": {"combinations": ["modis+peii"]}}, UnknownModelError,
         "valid names are: .*modis\\+pei"),
        ({"models": {"combinations": ["casa+pei"]}}, CarbonsinkError, "inputs.ndvi is required"),
        ({"models": {"combinations": ["modis+gsmsr_bl"], "options": {"gsmsr_bl": {"betta": 1}}}},
         CarbonsinkError, "models.options.gsmsr_bl: unknown option.*'betta'.*beta"),
        ({"models": {"combinations": ["modis+pei"], "options": {"gsmrs": {}}}}, CarbonsinkError,
         "unknown model.*'gsmrs'.*gsmsr_bl"),
    ],
)
def test_bad_study_fails_cleanly(hetero_inputs, tmp_path, change, error, match):
    _copy_inputs(hetero_inputs, tmp_path)
    d = study_dict()
    for k, v in change.items():
        if k == "inputs":
            d["inputs"] = {**d["inputs"], **v}
        else:
            d[k] = v
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(error, match=match):
        run_study(tmp_path / "study.yaml", echo=lambda s: None)
    _assert_nothing_finished(tmp_path)
    with pytest.raises(error):
        check(tmp_path / "study.yaml")


def test_input_without_crs_names_file_and_fix(hetero_inputs, tmp_path):
    _copy_inputs(hetero_inputs, tmp_path)
    write_tas(tmp_path / "tas_nocrs.nc", with_coords=False)
    d = study_dict()
    d["inputs"]["tas"] = {"path": "tas_nocrs.nc", "variable": "t2m"}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(d))
    with pytest.raises(AlignmentError, match="tas_nocrs.nc.*crs"):
        run_study(tmp_path / "study.yaml", echo=lambda s: None)
    _assert_nothing_finished(tmp_path)
    # ... and giving the CRS in the study fixes it
    d["inputs"]["tas"]["crs"] = "EPSG:4326"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(d))
    assert any("tas" in m for m in check(tmp_path / "study.yaml"))


def test_check_reports_without_writing(hetero_inputs, tmp_path):
    _copy_inputs(hetero_inputs, tmp_path)
    write_study(tmp_path)
    msgs = check(tmp_path / "study.yaml")
    assert any("target grid: 10 x 10" in m for m in msgs)
    assert any(m.startswith("input pr: mm month-1") for m in msgs)
    assert not (tmp_path / "results").exists()


def test_grid_like_an_input(hetero_inputs, tmp_path):
    _copy_inputs(hetero_inputs, tmp_path)
    write_study(tmp_path, grid={"like": "soc"})
    msgs = check(tmp_path / "study.yaml")
    assert any("target grid: 10 x 10" in m for m in msgs)
    assert GRID["resolution"] == 0.1


def test_check_and_reading_compute_nothing(hetero_inputs, tmp_path):
    import dask

    from carbonsink.pipeline.steps import read_inputs

    _copy_inputs(hetero_inputs, tmp_path)
    write_study(tmp_path)

    def fail(*args, **kwargs):
        raise AssertionError("check must not compute")

    with dask.config.set(scheduler=fail):
        check(tmp_path / "study.yaml")
        arrays = read_inputs(load_study(tmp_path / "study.yaml"))
    assert all(a.chunks is not None for a in arrays.values())
