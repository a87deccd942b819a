"""The CENTURY-type Rh model in a study: pools after spin-up and drift reported per region."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import xarray as xr
import yaml
from pipeline_helpers import study_dict

from carbonsink.pipeline import run_study


def test_century_pools_after_spinup_in_the_report(hetero_inputs, tmp_path):
    for item in hetero_inputs.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    d = study_dict(models={"combinations": ["modis+century"]},
                   analyses={"regional_summary": {}, "soil_pools": {}})
    d["outputs"]["monthly"] = "models"
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    run_study(tmp_path / "study.yaml", echo=lambda s: None)
    out = tmp_path / "results"
    model = xr.open_zarr(out / "cubes" / "models" / "rh_century@modis.zarr")
    area = xr.open_zarr(out / "cubes" / "inputs_static.zarr")["area"]
    tab = pd.read_parquet(out / "tables" / "soil_pools.parquet")
    assert set(tab["pool"]) == {str(p) for p in model["pool"].values}
    p0 = str(model["pool"].values[-1])
    pool = model["soil_c_spinup"].sel(pool=model["pool"].values[-1])
    expected = float((pool * area).sum() / area.where(pool.notnull()).sum())
    got = tab[(tab.pool == p0) & (tab.statistic == "mean")]["value"].item()
    np.testing.assert_allclose(got, expected, rtol=1e-9)
    drift = pd.read_parquet(out / "tables" / "soil_spinup_drift.parquet")
    mx = drift[drift.statistic == "max_abs_drift"]["value"].item()
    np.testing.assert_allclose(mx, float(np.abs(model["spinup_drift"]).max()), rtol=1e-9)
    html = (out / "index.html").read_text()
    assert "Soil carbon pools after spin-up" in html
