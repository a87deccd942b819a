"""`carbonsink demo` through the CLI, the same study on a 2-process LocalCluster, and the CLI."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from click.testing import CliRunner
from pipeline_helpers import write_study

from carbonsink.cli import main


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    res = CliRunner().invoke(main, ["demo", "--out", str(out)])
    assert res.exit_code == 0, res.output
    return out, res.output


def test_demo_cli_writes_a_results_folder(demo_run):
    out, output = demo_run
    assert "demo finished" in output and "[8/8] HTML report" in output
    index = out / "results" / "index.html"
    html = index.read_text()
    assert "Synthetic data" in html
    for combo in ("modis+pei", "modis+gsmsr_bl", "modis+gsmsr_shi", "casa+pei",
                  "casa+gsmsr_bl", "casa+gsmsr_shi"):
        assert (out / "results" / "cubes" / combo / "annual.zarr").is_dir()
        assert (out / "results" / "cubes" / combo / "nep_trend.zarr").is_dir()
        assert (out / "results" / "maps" / combo / "nep_sen_mk_class.tif").exists()
        assert combo in html
    shares = pd.read_csv(out / "results" / "tables" / "nep_trend_classes.csv")
    shares = shares[shares.statistic == "area_share"]
    assert set(shares["units"]) == {"%"}
    for (_, _), grp in shares.groupby(["combination", "scheme"]):
        assert grp["value"].sum() == pytest.approx(100.0)
        assert (grp["class"].abs() <= 4).all()
    trends = pd.read_csv(out / "results" / "tables" / "regional_trends.csv")
    # the demo prescribes NPP greening (regional mean +2.07 g C m-2 yr-2, carbonsink.demo)
    npp = trends[(trends.variable == "npp") & trends.combination.str.startswith("modis")
                 & (trends.statistic == "ols_slope")]
    assert len(npp) == 3 and set(npp["units"]) == {"g C m-2 yr-2"}
    assert ((npp["value"] > 1.0) & (npp["value"] < 3.5)).all()
    tab = pd.read_parquet(out / "results" / "tables" / "regional_annual.parquet")
    assert tab["year"].min() == 2001 and tab["year"].max() == 2021
    nep = tab[(tab.variable == "nep") & (tab.statistic == "mean")]
    assert len(nep) == 6 * 21 and np.isfinite(nep["value"]).all()
    assert list(tab.columns[:3]) == ["experiment", "combination", "zone"]
    assert list(tab.columns[-4:]) == ["variable", "statistic", "units", "value"]
    ds = xr.open_zarr(out / "results" / "cubes" / "casa+pei" / "annual.zarr")
    assert "synthetic" in ds.attrs["carbonsink_synthetic"]


def test_demo_on_local_cluster_gives_the_same_numbers(demo_run, tmp_path):
    """The demo study (one combination per NPP model, the regional summary) on a 2-process
    LocalCluster gives the cubes of the local run and the tables the same analysis gives on
    the local cubes."""
    distributed = pytest.importorskip("distributed")
    from carbonsink.analysis import MemoryContext, run_analysis
    from carbonsink.cube import valid_area
    from carbonsink.io import read_cube
    from carbonsink.pipeline import run_study

    out, _ = demo_run
    study = yaml.safe_load((out / "inputs" / "study.yaml").read_text())
    combos = ["modis+gsmsr_bl", "casa+pei"]
    options = {"common_mask": False, "growing_season": False}
    study["models"] = {"combinations": combos}
    study["analyses"] = {"regional_summary": options}
    study["outputs"].update({"figures": False, "formats": ["zarr", "parquet"]})
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None) as cluster:
        study["dask"] = {"scheduler": cluster.scheduler_address}
        study["outputs"]["dir"] = str(tmp_path / "cluster_results")
        p = out / "inputs" / "study_cluster.yaml"
        p.write_text(yaml.safe_dump(study))
        lines = []
        run_study(p, echo=lines.append)
    assert any("using dask cluster" in line for line in lines)
    remote_dir = tmp_path / "cluster_results"
    cubes = {}
    for combo in combos:
        for product in ("annual", "growing_season"):
            a = xr.open_zarr(out / "results" / "cubes" / combo / f"{product}.zarr")
            b = xr.open_zarr(remote_dir / "cubes" / combo / f"{product}.zarr")
            for v in ("npp", "rh", "nep"):
                np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-6,
                                           equal_nan=True)
        cubes[("annual", combo)] = read_cube(out / "results" / "cubes" / combo / "annual.zarr")
    static = read_cube(out / "results" / "cubes" / "inputs_static.zarr")
    ctx = MemoryContext(cubes, {"area": valid_area(static["area"], static["valid_fraction"])})
    local = run_analysis("regional_summary", ctx, **options).tables["regional_annual"]
    remote = pd.read_parquet(remote_dir / "tables" / "regional_annual.parquet")
    keys = ["combination", "year", "variable", "statistic"]
    m = local.merge(remote, on=keys, suffixes=("_local", "_cluster"))
    assert len(m) == len(remote) > 0
    np.testing.assert_allclose(m["value_cluster"], m["value_local"], rtol=1e-6)


def test_cli_check_run_and_errors(hetero_inputs, tmp_path):
    runner = CliRunner()
    import shutil

    for item in hetero_inputs.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, tmp_path / item.name)
    study = write_study(tmp_path)
    res = runner.invoke(main, ["check", str(study)])
    assert res.exit_code == 0 and "OK" in res.output and "target grid" in res.output
    res = runner.invoke(main, ["run", str(study), "--out", str(tmp_path / "r")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "r" / "index.html").exists()
    bad = write_study(tmp_path, models={"combinations": ["nope+pei"]})
    res = runner.invoke(main, ["run", str(bad)])
    assert res.exit_code == 2
    assert "unknown combination 'nope+pei'" in res.output
    res = runner.invoke(main, ["check", str(tmp_path / "missing.yaml")])
    assert res.exit_code == 2 and "study file not found" in res.output


def test_cli_lists_models_and_variables():
    runner = CliRunner()
    res = runner.invoke(main, ["models"])
    assert res.exit_code == 0 and "casa+gsmsr_shi" in res.output and "gsmsr_bl" in res.output
    res = runner.invoke(main, ["variables"])
    assert res.exit_code == 0 and "g C m-2 month-1" in res.output and "landcover" in res.output
    res = runner.invoke(main, ["--version"])
    assert res.exit_code == 0 and "carbonsink" in res.output


def test_cli_validate_on_fluxnet_towers(shared_data, tmp_path):
    files = sorted((shared_data / "fluxnet2015" / "MM").glob("FLX_CN-*_MM_*.csv"))
    assert len(files) == 7
    args = ["validate", *map(str, files[:2]), "--out", str(tmp_path / "v"), "--sites",
            str(shared_data / "fluxnet2015" / "sites_cn.csv")]
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    # without a SOC source the GSMSR chains are skipped, never run on a silent constant
    assert "cue+pei" in res.output and "cue+gsmsr_bl" not in res.output
    assert "skipped" in res.output
    res = CliRunner().invoke(main, [*args, "--soc", "3.0"])
    assert res.exit_code == 0, res.output
    assert "cue+gsmsr_bl" in res.output and "written to" in res.output
    written = sorted(p.name for p in (tmp_path / "v").rglob("*") if p.is_file())
    assert any(n.endswith(".csv") for n in written) and any(n.endswith(".png") for n in written)


def test_demo_cubes_are_cf_compliant(demo_run):
    """Every cube the demo writes opens with cf-xarray; units parse in UDUNITS (no coulomb);
    standard names where CF has them; annual NPP converts to kg m-2 s-1 with cf-units."""
    cf_units = pytest.importorskip("cf_units")
    pytest.importorskip("cf_xarray")
    out, _ = demo_run
    cubes = sorted((out / "results" / "cubes").rglob("*.zarr"))
    assert len(cubes) > 20
    std_seen, checked = set(), 0
    for p in cubes:
        ds = xr.open_zarr(p, decode_coords="all")
        assert "synthetic" in ds.attrs.get("carbonsink_synthetic", ""), p
        for name, v in ds.variables.items():
            u = v.attrs.get("units")
            if u is None:
                continue
            unit = cf_units.Unit(u)
            assert not unit.is_unknown(), (p, name, u)
            assert "A" not in unit.definition.replace("mA", ""), (p, name, u)  # no coulomb
            checked += 1
            if v.attrs.get("standard_name"):
                std_seen.add(v.attrs["standard_name"])
    assert checked > 100
    assert "net_primary_productivity_of_biomass_expressed_as_carbon" in std_seen
    assert "heterotrophic_respiration_carbon_flux" in std_seen
    annual = xr.open_zarr(out / "results" / "cubes" / "modis+pei" / "annual.zarr",
                          decode_coords="all")
    assert annual.cf["net_primary_productivity_of_biomass_expressed_as_carbon"].name == "npp"
    npp = annual["npp"].isel(time=0).values.astype("float64")
    flux = cf_units.Unit(annual["npp"].attrs["units"]).convert(npp, cf_units.Unit("kg m-2 s-1"))
    # g m-2 yr-1 -> kg m-2 s-1 with UDUNITS' year (365.242198781 d)
    np.testing.assert_allclose(flux, npp * 1e-3 / (365.242198781 * 86400), rtol=1e-9,
                               equal_nan=True)
