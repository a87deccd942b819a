"""What is written (outputs.monthly) and per-model caching: changing one Rh model's option
recomputes only that model and its combinations."""

from __future__ import annotations

import shutil

import numpy as np
import xarray as xr
import yaml
from pipeline_helpers import study_dict

from carbonsink.analysis import MemoryContext  # noqa: F401  (import check)
from carbonsink.pipeline import run_study
from carbonsink.pipeline.runner import RunContext
from carbonsink.pipeline.steps import PipelineContext


def _copy(src, dst):
    for item in src.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, dst / item.name)


def _run(folder, **over):
    d = study_dict(**over)
    (folder / "study.yaml").write_text(yaml.safe_dump(d, sort_keys=False))
    lines: list[str] = []
    ctx = run_study(folder / "study.yaml", echo=lines.append)
    return ctx, lines


def test_default_keeps_no_monthly_cube_and_derives_months_on_demand(hetero_inputs, tmp_path):
    _copy(hetero_inputs, tmp_path)
    outputs = {"dir": "results", "formats": ["zarr", "csv"]}
    ctx, _ = _run(tmp_path, outputs=outputs, analyses={"regional_summary": {}})
    cubes = tmp_path / "results" / "cubes"
    assert not list(cubes.rglob("monthly.zarr"))
    assert not (cubes / "models").exists() and not (cubes / "_scratch").exists()
    annual = xr.open_zarr(cubes / "modis+pei" / "annual.zarr")
    # monthly NPP, Rh and NEP run again lazily from the aligned inputs, consistent with the
    # stored annual cube
    monthly = PipelineContext(ctx).cube("monthly", "modis+pei")
    assert monthly is not None and monthly["nep"].chunks is not None
    for v in ("npp", "rh", "nep"):
        np.testing.assert_allclose(monthly[v].resample(time="YS").sum().values,
                                   annual[v].values, rtol=1e-5)
    np.testing.assert_array_equal(monthly["nep"].values,
                                  (monthly["npp"] - monthly["rh"]).values)


def test_monthly_models_keeps_model_months_and_derives_nep(hetero_inputs, tmp_path):
    _copy(hetero_inputs, tmp_path)
    outputs = {"dir": "results", "formats": ["zarr", "csv"], "monthly": "models"}
    ctx, _ = _run(tmp_path, outputs=outputs, analyses={"regional_summary": {}})
    cubes = tmp_path / "results" / "cubes"
    assert (cubes / "models" / "npp_modis.zarr").is_dir()
    assert (cubes / "models" / "rh_gsmsr_bl.zarr").is_dir()
    assert not (cubes / "modis+pei" / "monthly.zarr").exists()
    annual = xr.open_zarr(cubes / "modis+pei" / "annual.zarr")
    # monthly NEP derived lazily from the model cubes, consistent with the stored annual cube
    monthly = PipelineContext(ctx).cube("monthly", "modis+pei")
    assert monthly is not None and monthly["nep"].chunks is not None
    np.testing.assert_allclose(monthly["nep"].resample(time="YS").sum().values,
                               annual["nep"].values, rtol=1e-6)
    npp = xr.open_zarr(cubes / "models" / "npp_modis.zarr")["npp"]
    rh = xr.open_zarr(cubes / "models" / "rh_pei.zarr")["rh"]
    np.testing.assert_array_equal(monthly["nep"].values, (npp - rh).values)


def test_changing_one_rh_option_with_no_monthly_cubes_recomputes_its_combinations(
        hetero_inputs, tmp_path):
    """The default (outputs.monthly: none): the combination of the unchanged models is reused,
    only the changed Rh model's combination is written again."""
    _copy(hetero_inputs, tmp_path)
    models = {"combinations": ["modis+pei", "modis+gsmsr_bl"]}
    outputs = {"dir": "results", "formats": ["zarr", "csv"]}
    _run(tmp_path, models=models, outputs=outputs, analyses={"regional_summary": {}})
    cubes = tmp_path / "results" / "cubes"
    files = [cubes / c / p / ".zattrs" for c in ("modis+pei", "modis+gsmsr_bl")
             for p in ("annual.zarr", "growing_season.zarr")]
    before = {p: p.stat().st_mtime_ns for p in files}
    models["options"] = {"gsmsr_bl": {"beta": -0.006}}
    _, lines = _run(tmp_path, models=models, outputs=outputs,
                    analyses={"regional_summary": {}})
    assert any("combination 'modis+pei': unchanged, reused" in line for line in lines)
    changed = {p.parent.parent.name for p in files if p.stat().st_mtime_ns != before[p]}
    assert changed == {"modis+gsmsr_bl"}


def test_changing_one_rh_option_recomputes_only_that_model(hetero_inputs, tmp_path):
    _copy(hetero_inputs, tmp_path)
    models = {"combinations": ["modis+pei", "modis+gsmsr_bl"]}
    _run(tmp_path, models=models, analyses={"regional_summary": {}})
    cubes = tmp_path / "results" / "cubes"
    before = {p: p.stat().st_mtime_ns for p in (
        cubes / "models" / "npp_modis.zarr" / ".zattrs",
        cubes / "models" / "rh_pei.zarr" / ".zattrs",
        cubes / "modis+pei" / "annual.zarr" / ".zattrs",
        cubes / "models" / "rh_gsmsr_bl.zarr" / ".zattrs",
        cubes / "modis+gsmsr_bl" / "annual.zarr" / ".zattrs")}
    old_bl = xr.open_zarr(cubes / "modis+gsmsr_bl" / "annual.zarr")["rh"].values
    models["options"] = {"gsmsr_bl": {"beta": -0.006}}
    _, lines = _run(tmp_path, models=models, analyses={"regional_summary": {}})
    assert any("unchanged models reused: npp_modis, rh_pei" in line for line in lines)
    assert any("combination 'modis+pei': unchanged, reused" in line for line in lines)
    after = {p: p.stat().st_mtime_ns for p in before}
    names = [str(p.parent.name) for p in before]
    changed = {n for p, n in zip(before, names) if after[p] != before[p]}
    assert changed == {"rh_gsmsr_bl.zarr", "annual.zarr"}
    assert after[cubes / "modis+pei" / "annual.zarr" / ".zattrs"] == \
        before[cubes / "modis+pei" / "annual.zarr" / ".zattrs"]
    new_bl = xr.open_zarr(cubes / "modis+gsmsr_bl" / "annual.zarr")["rh"].values
    assert not np.allclose(old_bl, new_bl)
    assert isinstance(RunContext, type)


def test_small_tiles_blocks_give_the_same_cubes_time_contiguous(hetero_inputs, tmp_path):
    """One chunking everywhere (time whole, balanced tiles of at most dask.chunks), and the
    flux step computed block by block gives the cubes of a one-block run."""
    import zarr

    a, b = tmp_path / "a", tmp_path / "b"
    for f in (a, b):
        f.mkdir()
        _copy(hetero_inputs, f)
    models = {"combinations": ["modis+pei", "modis+gsmsr_bl"]}
    _run(a, models=models, analyses={"regional_summary": {}})
    _run(b, models=models, analyses={"regional_summary": {}}, dask={"chunks": {"y": 3, "x": 3}})
    for rel in ("modis+gsmsr_bl/annual.zarr", "modis+pei/growing_season.zarr",
                "modis+pei/monthly.zarr", "models/npp_modis.zarr", "inputs_monthly.zarr"):
        got = xr.open_zarr(b / "results" / "cubes" / rel)
        want = xr.open_zarr(a / "results" / "cubes" / rel)
        for v in want.data_vars:
            np.testing.assert_array_equal(got[v].values, want[v].values)
        g = zarr.open_group(str(b / "results" / "cubes" / rel), mode="r")
        for v in got.data_vars:
            if "time" in got[v].dims and {"y", "x"} <= set(got[v].dims):
                chunks = dict(zip(got[v].dims, g[v].chunks))
                assert chunks["time"] == got.sizes["time"]  # pixel series contiguous
                assert chunks["y"] <= 3 and chunks["x"] <= 3
