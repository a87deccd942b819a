"""The flux step masks the annual and growing-season values with the yearly vegetation mask
(after aggregating) instead of masking every month first: the stored cubes must equal the
aggregation of the masked monthly cube, with a land cover that changes between years."""

from __future__ import annotations

import numpy as np
import yaml
from pipeline_helpers import demo_study_file

from carbonsink.cube.temporal import growing_season, to_annual
from carbonsink.io import read_cube


def _study(folder):
    # cropland masked too: in the demo some cells switch between grassland and cropland
    return demo_study_file(folder, models={"combinations": ["modis+pei", "casa+gsmsr_bl"],
                                           "mask_classes": ["water", "snow_ice", "CRO"]},
                           outputs={"dir": "results", "formats": ["zarr"], "figures": False,
                                    "monthly": "all"})


def test_yearly_mask_after_aggregation_equals_masking_the_months(tmp_path):
    from carbonsink.pipeline import run_study

    study = _study(tmp_path)
    run_study(study, tmp_path / "out", echo=lambda s: None)
    cubes = tmp_path / "out" / "cubes"
    lc = read_cube(cubes / "inputs_annual.zarr")["landcover"].load()
    crop = (lc == 12).values  # (year, y, x): cropland that year
    switching = crop.any(0) & ~crop.all(0)
    assert switching.sum() >= 3  # the test needs cells masked in some years only
    gs_months = tuple(yaml.safe_load(study.read_text()).get("outputs", {}).get(
        "growing_season_months", (5, 6, 7, 8, 9)))
    for combo in ("modis+pei", "casa+gsmsr_bl"):
        monthly = read_cube(cubes / combo / "monthly.zarr")
        annual = read_cube(cubes / combo / "annual.zarr")
        gs = read_cube(cubes / combo / "growing_season.zarr")
        for v in ("npp", "rh", "nep"):
            want_a = to_annual(monthly[v], min_valid_fraction=1.0)
            want_g = growing_season(monthly[v], months=gs_months)
            np.testing.assert_allclose(annual[v].values, want_a.values, rtol=2e-6,
                                       err_msg=f"{combo} {v} annual")
            np.testing.assert_allclose(gs[v].values, want_g.values, rtol=2e-6,
                                       err_msg=f"{combo} {v} growing season")
            # NaN exactly in the cropland years of the switching cells, values otherwise
            a = annual[v].values
            assert np.isnan(a[crop]).all()
            keep = ~crop & switching[None]
            assert np.isfinite(a[keep]).all(), (combo, v)
