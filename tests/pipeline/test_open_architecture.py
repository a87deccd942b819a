"""The open architecture: analyses, models, experiments and report sections plug in without
touching the pipeline, the study schema or the report.

* a test-only analysis registered here runs through ``check`` and ``run`` and appears in the
  report with its own template;
* ``analyses:`` as a mapping with options switches analyses on and off;
* ``npp: given`` on an annual NPP file with Pei Rh (papers 001/003) and ``nep: given`` on a
  CLM-style history file (paper 002) run end to end;
* two experiments, one holding ``tas`` at its calendar-month climatology.
"""

from __future__ import annotations

import re

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from click.testing import CliRunner
from pydantic import BaseModel, ConfigDict, Field
from pipeline_helpers import YEARS, study_dict

from carbonsink.analysis import (
    ANALYSES,
    Analysis,
    AnalysisResult,
    CubeProduct,
    MemoryContext,
    register_analysis,
    run_analysis,
    tidy,
)
from carbonsink.cli import main
from carbonsink.errors import CarbonsinkError, ConfigError, UnknownAnalysisError
from carbonsink.flux.rh import pei2009
from carbonsink.io import read_cube
from carbonsink.pipeline import check, run_study
from carbonsink.regions import regional_mean

TEMPLATES = Path(__file__).parent / "templates"


@register_analysis
class PluginProbe(Analysis):
    """Test-only analysis: factor × regional mean annual NEP, a map and a figure."""

    name = "plugin_probe"
    title = "Plug-in probe"
    requires = ("annual", "area")
    template = "plugin_probe"
    template_dir = TEMPLATES

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        factor: float = Field(1.0, gt=0)

    def run(self, ctx, options):
        from carbonsink.report.figures import timeseries_figure

        res = AnalysisResult()
        for exp, combo in ctx.runs():
            annual = ctx.cube("annual", combo, exp)
            scaled = (annual[["nep"]] * options.factor).mean("time")
            scaled["nep"].attrs["units"] = "g C m-2 yr-1"
            written = ctx.store(CubeProduct("probe", scaled, combination=combo, experiment=exp,
                                            maps=("nep",)))
            series = regional_mean(annual["nep"], ctx.area).compute() * options.factor
            df = pd.DataFrame({"year": annual["time"].dt.year.values, "variable": "nep",
                               "statistic": "scaled_mean", "units": "g C m-2 yr-1",
                               "value": series.values})
            res.add_table("probe", tidy(df, experiment=exp, combination=combo, zone=ctx.zone))
            assert float(written["nep"].mean()) == pytest.approx(
                float(scaled["nep"].mean().compute()))
        tab = res.tables["probe"]
        res.add_figure("probe_series", timeseries_figure(tab, title="probe"))
        sec = res.section(self)
        sec.data["factor"] = options.factor
        sec.text("Scaled NEP.").table(tab, "probe", caption="probe table")
        sec.figure("probe_series", "probe figure")
        return res


def _copy(src: Path, dst: Path) -> None:
    for item in src.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, dst / item.name)


def _write(folder: Path, d: dict) -> Path:
    p = folder / "study.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


@pytest.fixture(scope="module")
def probe_run(hetero_inputs, tmp_path_factory):
    folder = tmp_path_factory.mktemp("probe")
    _copy(hetero_inputs, folder)
    study = _write(folder, study_dict(
        models={"combinations": ["modis+pei"]},
        analyses={"regional_summary": {}, "plugin_probe": {"factor": 2.5}}))
    msgs = check(study)
    lines: list[str] = []
    run_study(study, echo=lines.append)
    return folder, msgs, lines


def test_plugin_analysis_runs_through_check_run_and_report(probe_run):
    folder, msgs, lines = probe_run
    out = folder / "results"
    assert any("plugin_probe" in m for m in msgs)
    # run order: prepare, flux, maps, regional_summary, plugin_probe (no maps), report
    assert any(line.startswith("[5/6] Plug-in probe ...") for line in lines)
    probe = pd.read_parquet(out / "tables" / "probe.parquet")
    ref = pd.read_parquet(out / "tables" / "regional_annual.parquet")
    ref = ref[(ref.variable == "nep") & (ref.statistic == "mean")]
    np.testing.assert_allclose(probe["value"].values, 2.5 * ref["value"].values, rtol=1e-12)
    assert list(probe.columns) == ["experiment", "combination", "zone", "year", "variable",
                                   "statistic", "units", "value"]
    assert (out / "cubes" / "modis+pei" / "probe.zarr").is_dir()
    assert (out / "maps" / "modis+pei" / "probe_nep.tif").exists()
    assert (out / "figures" / "probe_series.png").exists()
    html = (out / "index.html").read_text()
    assert "probe section rendered by its own template (factor 2.5)" in html
    assert 'href="#plugin_probe"' in html and "probe table" in html
    assert 'src="figures/probe_series.png"' in html
    # the report keeps the study order (regional_summary, plugin_probe), maps after them,
    # although maps ran third
    ids = re.findall(r'<section id="([^"]+)"', html)
    assert ids.index("regional_summary") < ids.index("plugin_probe") < ids.index("maps"), ids
    # only the asked analyses ran: no sink-class or trend tables
    assert not (out / "tables" / "sink_source_area.csv").exists()
    assert not (out / "tables" / "regional_trends.csv").exists()


def test_rerun_keeps_sections_of_skipped_analyses(probe_run):
    folder, _, _ = probe_run
    lines: list[str] = []
    run_study(folder / "study.yaml", echo=lines.append)
    assert sum("up to date, skipped" in line for line in lines) == 6
    html = (folder / "results" / "index.html").read_text()
    assert "probe section rendered by its own template" in html


def test_analysis_options_are_validated_by_check(hetero_inputs, tmp_path):
    _copy(hetero_inputs, tmp_path)
    study = _write(tmp_path, study_dict(analyses={"plugin_probe": {"factr": 2}}))
    with pytest.raises(ConfigError, match=r"analyses.*plugin_probe.*factr.*unknown option.*"
                                          r"allowed options: factor"):
        check(study)
    study = _write(tmp_path, study_dict(analyses={"plugin_probe": {"factor": -1}}))
    with pytest.raises(ConfigError, match=r"factor.*greater than 0"):
        check(study)
    study = _write(tmp_path, study_dict(analyses=["regional_sumary"]))
    with pytest.raises(ConfigError, match=r"unknown analysis \['regional_sumary'\].*"
                                          r"regional_summary.*trends"):
        check(study)
    study = _write(tmp_path, study_dict(analyses=["landcover_summary"]))
    with pytest.raises(ConfigError, match="analyses.landcover_summary needs a land-cover input"):
        check(study)
    assert not (tmp_path / "results").exists()


def test_registry_errors_and_listing():
    with pytest.raises(UnknownAnalysisError) as exc:
        run_analysis("nope", None)
    assert isinstance(exc.value, KeyError) and "plugin_probe" in str(exc.value)
    res = CliRunner().invoke(main, ["analyses"])
    assert res.exit_code == 0
    for name in ("regional_summary", "landcover_summary", "sink_classes", "trends",
                 "tower_validation", "plugin_probe"):
        assert name in res.output
    assert "factor" in res.output
    assert set(ANALYSES) >= {"regional_summary", "trends"}


def test_analysis_from_python_with_memory_context():
    from carbonsink.cube import GridSpec, pixel_area

    grid = GridSpec(crs="EPSG:4326", resolution=1.0, bounds=(100, 30, 104, 33))
    area = pixel_area(grid)
    t = pd.date_range("2001-01-01", periods=12, freq="YS")
    rng = np.random.default_rng(0)
    nep = xr.DataArray(rng.normal(50, 10, (12, 3, 4)), dims=("time", "y", "x"),
                       coords={"time": t, "y": area["y"], "x": area["x"]},
                       attrs={"units": "g C m-2 yr-1"}, name="nep")
    ds = xr.Dataset({"nep": nep, "npp": nep + 100, "rh": nep * 0 + 100})
    for v in ds:
        ds[v].attrs["units"] = "g C m-2 yr-1"
    ctx = MemoryContext({("annual", "x+y"): ds}, {"area": area})
    res = run_analysis("regional_summary", ctx, variables=["nep"], growing_season=False)
    tab = res.tables["regional_annual"]
    w = area.values / area.values.sum()
    expected = (nep.values * w).sum(axis=(1, 2))
    got = tab[tab.statistic == "mean"]["value"].values
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    res = run_analysis("plugin_probe", ctx, factor=3.0)
    np.testing.assert_allclose(res.tables["probe"]["value"].values, 3 * expected, rtol=1e-12)


# --------------------------------------------------------------------------- given products


def test_npp_given_annual_with_pei(hetero_inputs, tmp_path):
    """The path of papers 001/003: an annual NPP product and Pei Rh."""
    _copy(hetero_inputs, tmp_path)
    d = study_dict(models={"npp": "given", "rh": ["pei"]},
                   analyses={"regional_summary": {}, "sink_classes": {}})
    d["inputs"] = {k: v for k, v in d["inputs"].items() if k in ("tas", "pr")}
    d["inputs"]["npp"] = {"path": "npp_annual.nc", "variable": "Npp", "frequency": "year"}
    study = _write(tmp_path, d)
    assert any("combinations: given+pei" in m for m in check(study))
    run_study(study, echo=lambda s: None)
    out = tmp_path / "results"
    a = read_cube(out / "cubes" / "given+pei" / "annual.zarr")
    assert not (out / "cubes" / "given+pei" / "monthly.zarr").exists()
    assert a["nep"].attrs["units"] == "g C m-2 yr-1"
    np.testing.assert_allclose(a["npp"].values, 365.0, rtol=1e-6)
    inputs = xr.open_zarr(out / "cubes" / "inputs_monthly.zarr")
    rh_month = pei2009(inputs["tas"].isel(y=2, x=4).values, inputs["pr"].isel(y=2, x=4).values)
    rh_year = rh_month.reshape(2, 12).sum(axis=1)
    np.testing.assert_allclose(a["rh"].isel(y=2, x=4).values, rh_year, rtol=1e-5)
    np.testing.assert_array_equal(a["nep"].values, (a["npp"] - a["rh"]).values)
    tab = pd.read_csv(out / "tables" / "regional_annual.csv")
    assert set(tab["combination"]) == {"given+pei"}
    assert "given+pei" in (out / "index.html").read_text()


def _write_clm_history(path: Path, years: range, r0: float, r1: float) -> None:
    """A CLM5-style monthly history file: end-of-month stamps, time_bounds, noleap, gC/m^2/s."""
    import cftime

    lat = np.array([40.25, 40.75, 41.25, 41.75])
    lon = np.array([100.25, 100.75, 101.25, 101.75, 102.25])
    cum = np.cumsum([0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])
    bounds, stamps, rates = [], [], []
    for y in years:
        for m in range(12):
            lo = (y - years[0]) * 365 + cum[m]
            hi = (y - years[0]) * 365 + cum[m + 1]
            bounds.append([lo, hi])
            stamps.append(hi)
            rates.append(r0 + r1 * (y - years[0]))
    rate = np.asarray(rates)[:, None, None] * np.ones((1, lat.size, lon.size))
    rate = rate * (1 + 0.1 * np.arange(lon.size))[None, None, :]
    units = f"days since {years[0]}-01-01 00:00:00"
    ds = xr.Dataset(
        {"NEP": (("time", "lat", "lon"), rate.astype("float32"),
                 {"units": "gC/m^2/s", "long_name": "net ecosystem production"}),
         "time_bounds": (("time", "hist_interval"), np.asarray(bounds, float))},
        coords={"time": ("time", np.asarray(stamps, float),
                         {"units": units, "calendar": "noleap", "bounds": "time_bounds"}),
                "lat": ("lat", lat, {"units": "degrees_north"}),
                "lon": ("lon", lon, {"units": "degrees_east"})},
        attrs={"source": "Community Land Model CLM5.0"})
    assert cftime  # cftime decodes the noleap calendar when the reader opens the file
    ds.to_netcdf(path)


def test_nep_given_clm_history_runs_trends(tmp_path):
    """The path of paper 002: CLM NEP given, its trend analysed."""
    years = range(2001, 2013)
    r0, r1 = 2e-6, 1e-7  # gC m-2 s-1 and its yearly increase
    _write_clm_history(tmp_path / "clm_h0.nc", years, r0, r1)
    d = {"name": "clm-nep", "period": {"start": "2001-01", "end": "2012-12"},
         "grid": {"like": "nep"},
         "inputs": {"nep": {"path": "clm_h0.nc", "product": "clm", "variable": "NEP"}},
         "models": {"nep": "given"},
         "analyses": {"regional_summary": {}, "trends": {}},
         "outputs": {"dir": "results", "formats": ["zarr", "cog", "csv", "parquet"],
                     "monthly": "all"}}
    study = _write(tmp_path, d)
    assert any("combinations: nep_given" in m for m in check(study))
    run_study(study, echo=lambda s: None)
    out = tmp_path / "results"
    m = xr.open_zarr(out / "cubes" / "nep_given" / "monthly.zarr")
    # January = rate x 31 days; stamps at the period start
    assert str(m["time"].values[0])[:10] == "2001-01-01"
    np.testing.assert_allclose(m["nep"].isel(time=0, y=-1, x=0).values, r0 * 31 * 86400,
                               rtol=1e-6)
    a = xr.open_zarr(out / "cubes" / "nep_given" / "annual.zarr")
    np.testing.assert_allclose(a["nep"].isel(y=0, x=0).values,
                               [(r0 + r1 * i) * 365 * 86400 for i in range(12)], rtol=1e-6)
    tr = xr.open_zarr(out / "cubes" / "nep_given" / "nep_trend.zarr")
    slope = r1 * 365 * 86400 * (1 + 0.1 * np.arange(5))
    np.testing.assert_allclose(tr["sen_slope"].isel(y=0).values, slope, rtol=1e-5)
    np.testing.assert_allclose(tr["ols_slope"].isel(y=0).values, slope, rtol=1e-5)
    trends = pd.read_csv(out / "tables" / "regional_trends.csv")
    assert set(trends["combination"]) == {"nep_given"} and set(trends["variable"]) == {"nep"}
    assert (out / "maps" / "nep_given" / "nep_sen_slope.tif").exists()


# --------------------------------------------------------------------------- experiments


def _write_varying_tas(path: Path) -> None:
    """tas [K] on the hetero grid with a seasonal cycle and a different offset each year."""
    from pipeline_helpers import _lonlat, tas_kelvin

    lon, lat = _lonlat(0.05)
    time = pd.date_range(f"{YEARS[0]}-01-01", f"{YEARS[1]}-12-01", freq="MS")
    season = 8 * np.sin(2 * np.pi * (time.month.values - 4) / 12)
    year = np.where(time.year.values == YEARS[0], -1.5, 2.0)
    data = (tas_kelvin(lon)[None, None, :] + (season + year)[:, None, None]
            + 0 * lat[None, :, None])
    xr.DataArray(data.astype("float32"), dims=("time", "lat", "lon"),
                 coords={"time": time, "lat": lat, "lon": lon},
                 attrs={"units": "K"}, name="t2m").to_dataset().to_netcdf(path)


def test_two_experiments_hold_tas_at_its_climatology(hetero_inputs, tmp_path):
    _copy(hetero_inputs, tmp_path)
    _write_varying_tas(tmp_path / "tas.nc")
    d = study_dict(models={"combinations": ["modis+pei"]},
                   analyses={"regional_summary": {}},
                   experiments={"S1": {"description": "all drivers transient"},
                                "S2": {"hold": {"tas": "climatology"}}})
    study = _write(tmp_path, d)
    msgs = check(study)
    assert any("experiment S2: tas held at climatology" in m for m in msgs)
    run_study(study, echo=lambda s: None)
    out = tmp_path / "results"
    for exp in ("S1", "S2"):
        for cube in ("monthly", "annual", "growing_season"):
            assert (out / "cubes" / exp / "modis+pei" / f"{cube}.zarr").is_dir()
        assert (out / "maps" / exp / "modis+pei" / "nep_mean_annual.tif").exists()
        a = xr.open_zarr(out / "cubes" / exp / "modis+pei" / "annual.zarr")
        assert str(a["experiment"].values) == exp
    held = xr.open_zarr(out / "cubes" / "S2" / "inputs_monthly.zarr")["tas"]
    base = xr.open_zarr(out / "cubes" / "inputs_monthly.zarr")["tas"]
    # zero interannual variance per calendar month, equal to the base climatology
    assert float(held.groupby("time.month").var("time").max()) == 0.0
    np.testing.assert_allclose(held.isel(time=slice(0, 12)).values,
                               base.groupby("time.month").mean("time").values, rtol=1e-6)
    assert float(base.groupby("time.month").var("time").max()) > 1.0
    # S2's Rh is Pei on the held temperature; S1's on the transient one
    m1 = xr.open_zarr(out / "cubes" / "S1" / "modis+pei" / "monthly.zarr")
    m2 = xr.open_zarr(out / "cubes" / "S2" / "modis+pei" / "monthly.zarr")
    pr = xr.open_zarr(out / "cubes" / "inputs_monthly.zarr")["pr"].isel(y=1, x=1).values
    np.testing.assert_allclose(m2["rh"].isel(y=1, x=1).values,
                               pei2009(held.isel(y=1, x=1).values, pr), rtol=1e-5)
    np.testing.assert_allclose(m1["rh"].isel(y=1, x=1).values,
                               pei2009(base.isel(y=1, x=1).values, pr), rtol=1e-5)
    tab = pd.read_csv(out / "tables" / "regional_annual.csv")
    assert set(tab["experiment"]) == {"S1", "S2"}
    nep = tab[(tab.variable == "nep") & (tab.statistic == "mean")]
    s1 = nep[nep.experiment == "S1"]["value"].values
    s2 = nep[nep.experiment == "S2"]["value"].values
    assert not np.allclose(s1, s2)
    html = (out / "index.html").read_text()
    assert "experiments: S1, S2" in html


def test_bad_experiments_are_rejected(hetero_inputs, tmp_path):
    _copy(hetero_inputs, tmp_path)
    study = _write(tmp_path, study_dict(experiments={"S2": {"hold": {"ndvi": "climatology"}}}))
    with pytest.raises(ConfigError, match="experiments.S2.hold: 'ndvi' is not an input"):
        check(study)
    study = _write(tmp_path, study_dict(experiments={"S2": {"hold": {"tas": "median"}}}))
    with pytest.raises(ConfigError, match="experiments.S2.hold.tas"):
        check(study)
    study = _write(tmp_path, study_dict(experiments={"S2": {"hold": {"soc": "climatology"}}}))
    with pytest.raises(ConfigError, match="only monthly inputs"):
        check(study)


# --------------------------------------------------------------------------- tower validation


def test_tower_validation_as_an_analysis(hetero_inputs, tmp_path, shared_data):
    from carbonsink.analysis.validation import validate_towers

    _copy(hetero_inputs, tmp_path)
    files = sorted((shared_data / "fluxnet2015" / "MM").glob("FLX_CN-*_MM_*.csv"))[:2]
    opts = {"files": [str(f) for f in files],
            "sites": str(shared_data / "fluxnet2015" / "sites_cn.csv")}
    study = _write(tmp_path, study_dict(models={"combinations": ["modis+pei"]},
                                        analyses={"tower_validation": opts}))
    assert any("tower_validation: 2 tower file(s)" in m for m in check(study))
    run_study(study, echo=lambda s: None)
    tab = pd.read_parquet(tmp_path / "results" / "tables" / "towers_metrics.parquet")
    ref = validate_towers(files, sites=opts["sites"], figures=False)
    r2 = tab[tab.statistic == "r2"].merge(ref, left_on=["zone", "combination", "data"],
                                          right_on=["site", "combination", "data"])
    assert len(r2) == len(ref)
    np.testing.assert_allclose(r2["value"], r2["r2"], rtol=1e-12, equal_nan=True)
    assert "Validation against eddy-covariance towers" in \
        (tmp_path / "results" / "index.html").read_text()
    bad = _write(tmp_path, study_dict(analyses={"tower_validation": {"files": ["nope.csv"]}}))
    with pytest.raises(CarbonsinkError, match="nope.csv"):
        check(bad)


def test_capacity_analysis_found_and_run_by_the_pipeline(hetero_inputs, tmp_path):
    """A module added to carbonsink/analysis is discovered without any registration list."""
    _copy(hetero_inputs, tmp_path)
    study = _write(tmp_path, study_dict(models={"combinations": ["modis+pei"]},
                                        analyses={"capacity": {"min_valid_fraction": 1.0}}))
    check(study)
    run_study(study, echo=lambda s: None)
    out = tmp_path / "results"
    cap = xr.open_zarr(out / "cubes" / "modis+pei" / "npp_capacity.zarr")
    annual = xr.open_zarr(out / "cubes" / "modis+pei" / "annual.zarr")
    np.testing.assert_allclose(cap["cscc"].values, annual["npp"].max("time").values)
    assert (out / "maps" / "modis+pei" / "npp_cscc.tif").exists()
    tab = pd.read_csv(out / "tables" / "capacity.csv")
    assert set(tab["combination"]) == {"modis+pei"} and "%" in set(tab["units"])
