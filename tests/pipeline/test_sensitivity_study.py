"""A hold-one-driver-constant sensitivity study (seed paper 002) on small synthetic demo data,
end to end through ``run_study``: S1 transient, S2/S3/S4 holding tas, pr and sol at their
calendar-month climatology, with the `sensitivity` and `attribution` analyses.

The chain is a test-registered direct NEP model that depends on temperature only
(NEP = 2·(tas + 10) g C m-2 month-1), so the whole NEP trend must be attributed to
temperature (METHODS §7.2) and the residual reported."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from carbonsink.flux.registry import register_model, unregister_model
from carbonsink.pipeline import check, run_study

N, START, END = 4, 2001, 2008


def _nep_tas_only(inputs, *, needs, slope: float = 2.0):
    tas = inputs["tas"]
    nep = (slope * (tas + 10.0)).astype("float64")
    return xr.Dataset({"nep": nep.assign_attrs(units="g C m-2 month-1",
                                               long_name="NEP linear in temperature (test)")})


@pytest.fixture(scope="module")
def sensitivity_run(tmp_path_factory):
    from carbonsink.demo import write_demo_inputs
    from carbonsink.demo.generate import RES, SOUTH, WEST

    register_model("nep", "tasonly", inputs=("tas",),
                   description="test: NEP linear in temperature")(_nep_tas_only)
    try:
        folder = tmp_path_factory.mktemp("sensitivity")
        inputs = write_demo_inputs(folder, ny=N, nx=N, start=START, end=END,
                                   write_truth=False)
        study = {
            "name": "sensitivity-test", "synthetic": True,
            "period": {"start": f"{START}-01", "end": f"{END}-12"},
            "grid": {"crs": "EPSG:4326", "resolution": RES,
                     "bounds": [WEST, SOUTH, round(WEST + N * RES, 6),
                                round(SOUTH + N * RES, 6)]},
            "inputs": {k: v for k, v in inputs.items() if k in ("tas", "pr", "sol", "pet")},
            "models": {"combinations": ["nep_tasonly"]},
            "experiments": {"S1": {"description": "all drivers transient"},
                            "S2": {"hold": {"tas": "climatology"}},
                            "S3": {"hold": {"pr": "climatology"}},
                            "S4": {"hold": {"sol": "climatology"}}},
            "analyses": {"sensitivity": {}, "attribution": {"season": "annual"}},
            "outputs": {"dir": "results", "formats": ["zarr", "cog", "csv"]},
        }
        path = folder / "study.yaml"
        path.write_text(yaml.safe_dump(study, sort_keys=False))
        msgs = check(path)
        run_study(path, echo=lambda s: None)
        yield folder / "results", msgs
    finally:
        unregister_model("nep", "tasonly")


def test_sensitivity_study_attributes_the_trend_to_temperature(sensitivity_run):
    out, msgs = sensitivity_run
    assert any("S2: tas held at climatology" in m for m in msgs)
    tab = pd.read_csv(out / "tables" / "sensitivity.csv")
    nep = tab[(tab.variable == "nep") & (tab.zone == tab.zone.iloc[0])]
    rc = nep[nep.statistic == "relative_contribution"].set_index("factor")["value"]
    assert set(rc.index) == {"tas", "pr", "sol"}
    assert rc["tas"] >= 95.0
    trend = nep[nep.statistic == "trend"].set_index("experiment")["value"]
    assert trend["S1"] > 0  # the demo climate warms
    assert abs(trend["S2"]) < 1e-3 * trend["S1"]  # tas held: no trend left
    np.testing.assert_allclose([trend["S3"], trend["S4"]], trend["S1"], rtol=1e-6)
    resid = nep[nep.statistic == "residual"]["value"]
    assert len(resid) == 1 and abs(float(resid.iloc[0])) < 1e-3 * trend["S1"]
    # per pixel: Δ_tas equals the control trend, the dominant driver is temperature
    px = xr.open_zarr(out / "cubes" / "nep_tasonly" / "sensitivity.zarr")
    s1 = xr.open_zarr(out / "cubes" / "S1" / "nep_tasonly" / "sensitivity_trends.zarr")
    np.testing.assert_allclose(px["nep_delta_tas"].values, s1["nep_trend"].values, rtol=1e-3,
                               atol=1e-6)
    dom = px["nep_dominant"].values
    assert np.all(dom[np.isfinite(dom)] == 1)  # code 1 = tas
    for e in ("S1", "S2", "S3", "S4"):
        assert (out / "maps" / e / "nep_tasonly" / "sensitivity_nep_trend.tif").exists()
    assert (out / "maps" / "nep_tasonly" / "sensitivity_nep_dominant.tif").exists()
    html = (out / "index.html").read_text()
    assert "Hold-one-driver-constant sensitivity experiments" in html
    assert "sensitivity.csv" in html


def test_attribution_runs_in_the_same_study(sensitivity_run):
    out, _ = sensitivity_run
    # attribution reads the driver series throughout: the flux step stores them
    stored = (out / "cubes").glob("*/drivers/annual.zarr")
    assert sorted(p.parent.parent.name for p in stored) == ["S1", "S2", "S3", "S4"]
    tab = pd.read_csv(out / "tables" / "attribution_regional.csv")
    assert set(tab.experiment) == {"S1", "S2", "S3", "S4"}
    s1 = tab[(tab.experiment == "S1") & (tab.subset == "all pixels")
             & (tab.zone == tab.zone.iloc[0])]
    contrib = s1[s1.statistic == "contribution"].set_index("factor")["value"]
    trend = float(s1[s1.statistic == "trend"]["value"].iloc[0])
    # the decomposition is exact: Σ X_con + H_con = dNEP/dt
    assert sum(contrib[k] for k in ("pr", "tas", "sol", "pet")) + contrib["human"] == \
        pytest.approx(trend, rel=1e-6)
    assert (out / "maps" / "S1" / "nep_tasonly" / "attribution_annual_class.tif").exists()
    html = (out / "index.html").read_text()
    assert "Attribution of the NEP trend" in html
