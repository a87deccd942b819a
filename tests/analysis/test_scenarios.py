"""Anomaly forcing and scenario period summaries (analysis.scenarios, METHODS §9)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml

from carbonsink.analysis.scenarios import (
    anomaly_table,
    gcm_anomalies,
    join_historical,
    make_anomaly_forcing,
    period_summary,
    write_scenario_inputs,
)
from carbonsink.errors import InsufficientDataError

BASE_YEARS = (2001, 2004)


def base_climate(ny=3, nx=4, years=BASE_YEARS, seed=1):
    rng = np.random.default_rng(seed)
    time = pd.date_range(f"{years[0]}-01-01", f"{years[1]}-12-01", freq="MS")
    m = np.asarray(time.month) - 1
    season = np.sin(2 * np.pi * (m - 3) / 12)[:, None, None]
    y = np.round(35.85 - 0.1 * np.arange(ny), 6)
    x = np.round(100.05 + 0.1 * np.arange(nx), 6)
    tas = 2 + 12 * season + rng.normal(0, 1, (time.size, ny, nx))
    pr = np.clip(40 + 35 * season + rng.normal(0, 5, (time.size, ny, nx)), 0, None)
    coords = {"time": time, "y": y, "x": x}
    out = {}
    for name, v, u in (("tas", tas, "degC"), ("pr", pr, "mm month-1")):
        da = xr.DataArray(v, dims=("time", "y", "x"), coords=coords, name=name,
                          attrs={"units": u}).rio.write_crs("EPSG:4326")
        out[name] = da
    return out


def gcm_series(first, last, name, units, *, clim, trend=0.0, factor_per_year=0.0,
               multiplicative=False):
    """A regional monthly GCM series: climatology (12) + linear change after 2020."""
    time = pd.date_range(f"{first}-01-01", f"{last}-12-01", freq="MS")
    c = np.asarray(clim, float)[time.month.values - 1]
    yrs = np.clip(time.year.values - 2020, 0, None).astype(float)
    v = c * (1 + factor_per_year * yrs) if multiplicative else c + trend * yrs
    return xr.DataArray(v, dims=("time",), coords={"time": time}, name=name,
                        attrs={"units": units})


TAS_CLIM = 5 + 10 * np.sin(2 * np.pi * (np.arange(12) - 3) / 12)
PR_CLIM = np.array([2, 3, 8, 15, 35, 60, 90, 85, 50, 30, 12, 10], float)


# --------------------------------------------------------------------------- forcing


def test_gcm_equal_to_its_baseline_gives_the_base_climate_exactly():
    base = base_climate()
    for name, clim, units in (("tas", TAS_CLIM, "degC"), ("pr", PR_CLIM, "mm month-1")):
        g = gcm_series(1990, 2010, name, units, clim=clim)  # no change: its own baseline
        f = make_anomaly_forcing(g, base[name], baseline_period=BASE_YEARS,
                                 scenario_years=BASE_YEARS)
        np.testing.assert_array_equal(f.values, base[name].values)
        assert f.attrs["baseline_period"] == "2001-2004"


def test_offsets_and_ratios_are_recovered_and_base_is_cycled():
    base = base_climate()
    g_t = gcm_series(1990, 2040, "tas", "degC", clim=TAS_CLIM, trend=0.05)
    g_p = gcm_series(1990, 2040, "pr", "mm month-1", clim=PR_CLIM, multiplicative=True,
                     factor_per_year=0.01)
    ft = make_anomaly_forcing(g_t, base["tas"], baseline_period=BASE_YEARS,
                              scenario_years=(2025, 2034))
    fp = make_anomaly_forcing(g_p, base["pr"], baseline_period=BASE_YEARS,
                              scenario_years=(2025, 2034))
    assert ft.sizes["time"] == 120 and str(ft.time.values[0])[:10] == "2025-01-01"
    for k, year in enumerate(range(2025, 2035)):
        src = BASE_YEARS[0] + k % 4  # the 4 base years cycled from 2001
        b_t = base["tas"].sel(time=str(src)).values
        b_p = base["pr"].sel(time=str(src)).values
        np.testing.assert_allclose(ft.sel(time=str(year)).values - b_t, 0.05 * (year - 2020),
                                   atol=1e-10)
        days = pd.date_range(f"{year}-01-01", periods=12, freq="MS").days_in_month.values
        sdays = pd.date_range(f"{src}-01-01", periods=12, freq="MS").days_in_month.values
        np.testing.assert_allclose(fp.sel(time=str(year)).values,
                                   b_p * (1 + 0.01 * (year - 2020))
                                   * (days / sdays)[:, None, None], rtol=1e-10)
    a = gcm_anomalies(g_p, baseline_period=BASE_YEARS, scenario_years=(2025, 2026),
                      how="multiplicative")
    np.testing.assert_allclose(a.values, np.repeat([1.05, 1.06], 12), rtol=1e-12)


def test_ratio_clipping_near_zero_baseline_and_smoothing():
    clim = PR_CLIM.copy()
    clim[0] = 0.0  # a dry January baseline
    g = gcm_series(1990, 2040, "pr", "mm month-1", clim=clim)
    g[(g.time.dt.year == 2030) & (g.time.dt.month == 1)] = 3.0
    g[(g.time.dt.year == 2030) & (g.time.dt.month == 7)] = 90 * 8.0  # ratio 8 -> 5
    a = gcm_anomalies(g, baseline_period=BASE_YEARS, scenario_years=(2030, 2030),
                      how="multiplicative")
    assert float(a[0]) == 1.0 and float(a[6]) == 5.0
    assert a.attrs["n_clipped"] == 1 and a.attrs["n_near_zero"] == 1
    # smoothing: a 3-year running mean per calendar month of a linear series is the series
    gt = gcm_series(1990, 2040, "tas", "degC", clim=TAS_CLIM, trend=0.1)
    raw = gcm_anomalies(gt, baseline_period=(2025, 2027), scenario_years=(2030, 2031))
    sm = gcm_anomalies(gt, baseline_period=(2025, 2027), scenario_years=(2030, 2031),
                       smoothing=3)
    np.testing.assert_allclose(sm.values, raw.values, atol=1e-12)
    assert sm.attrs["smoothing_years"] == 3
    # a spike is spread over the window
    gt[(gt.time.dt.year == 2030) & (gt.time.dt.month == 5)] += 3.0
    sm = gcm_anomalies(gt, baseline_period=(2025, 2027), scenario_years=(2030, 2030),
                       smoothing=3)
    raw = gcm_anomalies(gt, baseline_period=(2025, 2027), scenario_years=(2030, 2030))
    assert float(sm[4] - raw[4]) == pytest.approx(-2.0)
    with pytest.raises(InsufficientDataError):
        gcm_anomalies(gt, baseline_period=BASE_YEARS, scenario_years=(2030, 2050))


def test_cmip5_global_means_give_per_scenario_anomaly_tables(shared_data):
    from carbonsink.io import read_cmip

    with pytest.warns(UserWarning):
        tas = read_cmip(shared_data / "cmip" / "cmip5_tas_global_mon.nc", units="K")
    with pytest.warns(UserWarning):
        pr = read_cmip(shared_data / "cmip" / "cmip5_pr_global_mon.nc", units="kg m-2 s-1")
    tables = []
    for scen in ("rcp26", "rcp45", "rcp85"):
        t = join_historical(tas, scen).sel(model="CanESM2", run="run1")
        p = join_historical(pr, scen).sel(model="CanESM2", run="run1")
        tables.append(anomaly_table(t, baseline_period=(1979, 2005),
                                    scenario_years=(2025, 2099), how="additive",
                                    scenario=scen))
        tables.append(anomaly_table(p, baseline_period=(1979, 2005),
                                    scenario_years=(2025, 2099), how="multiplicative",
                                    scenario=scen))
        # hand computation for the long-term warming
        yrs = t.time.dt.year.values
        ref = float(t.values[(yrs >= 1979) & (yrs <= 2005)].mean())
        hand = float(t.values[(yrs >= 2076) & (yrs <= 2099)].mean()) - ref
        got = tables[-2].query("period == 'long'")["value"].item()
        assert got == pytest.approx(hand, rel=1e-6)
    tab = pd.concat(tables)
    long = tab[(tab.period == "long") & (tab.variable == "tas")].set_index("scenario")["value"]
    assert 0 < long["rcp26"] < long["rcp45"] < long["rcp85"] < 8
    ratio = tab[(tab.period == "long") & (tab.variable == "pr")].set_index("scenario")["value"]
    assert np.all((ratio > 0.95) & (ratio < 1.2))
    assert set(tab.period) == {"near", "mid", "long", "full"}
    assert (tab[tab.period == "long"]["end"] == 2099).all()


# --------------------------------------------------------------------------- period summary


def test_period_summary_equals_hand_computation():
    years = np.arange(2025, 2101)
    rng = np.random.default_rng(3)
    vals = 40 + 0.3 * (years - 2025) + rng.normal(0, 4, years.size)
    s = xr.DataArray(vals, dims="time", name="nep", attrs={"units": "g C m-2 yr-1"},
                     coords={"time": pd.DatetimeIndex([f"{y}-01-01" for y in years])})
    tab = period_summary(s).set_index(["period", "statistic"])["value"]
    for name, (a, b) in {"near": (2025, 2050), "mid": (2051, 2075),
                         "long": (2076, 2100), "full": (2025, 2100)}.items():
        sel = (years >= a) & (years <= b)
        assert tab[(name, "mean")] == pytest.approx(vals[sel].mean(), rel=1e-12)
        assert tab[(name, "ols_slope")] == pytest.approx(
            np.polyfit(years[sel], vals[sel], 1)[0], rel=1e-9)
        assert tab[(name, "min")] == vals[sel].min() and tab[(name, "max")] == vals[sel].max()
    from scipy import stats
    full = stats.linregress(years, vals)
    assert tab[("full", "ols_p")] == pytest.approx(full.pvalue, rel=1e-6)


# --------------------------------------------------------------------------- a scenario study


def _write_nc(da: xr.DataArray, path: Path) -> str:
    from carbonsink.io import write_netcdf

    write_netcdf(da, path)
    return str(path)


def test_scenario_study_period_tables_equal_hand_computed(tmp_path):
    from carbonsink.pipeline import run_study

    base = base_climate(ny=6, nx=6)
    npp = (30 + 25 * np.sin(2 * np.pi * (base["tas"].time.dt.month - 4) / 12)
           + 0 * base["tas"])
    npp = npp.rename("npp").assign_attrs(units="g C m-2 month-1").rio.write_crs("EPSG:4326")
    gcm = {"low": {"tas": gcm_series(1990, 2040, "tas", "degC", clim=TAS_CLIM, trend=0.02)},
           "high": {"tas": gcm_series(1990, 2040, "tas", "degC", clim=TAS_CLIM, trend=0.15),
                    "pr": gcm_series(1990, 2040, "pr", "mm month-1", clim=PR_CLIM,
                                     multiplicative=True, factor_per_year=0.02)}}
    spec = write_scenario_inputs(gcm, {"tas": base["tas"], "pr": base["pr"], "npp": npp},
                                 tmp_path / "forcing", baseline_period=BASE_YEARS,
                                 scenario_years=(2025, 2036))
    study = {
        "name": "scenario-test", "synthetic": True, "period": spec["period"],
        "grid": {"crs": "EPSG:4326", "resolution": 0.1, "bounds": [100.0, 35.3, 100.6, 35.9]},
        "inputs": spec["inputs"], "experiments": spec["experiments"],
        "models": {"npp": "given", "rh": ["pei"]},
        "analyses": {"scenarios": {"periods": {"near": [2025, 2030], "long": [2031, 2036],
                                               "full": [2025, 2036]}}},
        "outputs": {"dir": "results", "formats": ["zarr", "csv"]},
    }
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(study, sort_keys=False))
    run_study(p, echo=lambda s: None)
    out = tmp_path / "results"
    tab = pd.read_csv(out / "tables" / "nep_scenario_periods.csv")
    assert set(tab.experiment) == {"low", "high"} and set(tab.combination) == {"given+pei"}
    area = xr.open_zarr(out / "cubes" / "inputs_static.zarr")["area"].values
    for exp in ("low", "high"):
        # the projected series by hand: Pei Rh on the forcing files, NEP = NPP - Rh
        tas = xr.open_dataset(spec["experiments"][exp]["inputs"]["tas"]["path"])["tas"]
        prf = spec["experiments"][exp]["inputs"].get("pr", spec["inputs"]["pr"])["path"]
        pr = xr.open_dataset(prf)["pr"]
        nppf = xr.open_dataset(spec["inputs"]["npp"]["path"])["npp"]
        rh = 0.22 * (np.exp(0.0912 * tas.values) + np.log(0.3145 * np.clip(pr.values, 0, None)
                                                            + 1)) * 30 * 0.465
        nep_m = nppf.values - rh
        nep_y = nep_m.reshape(12, 12, 6, 6).sum(1)
        regional = (nep_y * area).sum((1, 2)) / area.sum()
        years = np.arange(2025, 2037)
        sub = tab[tab.experiment == exp].set_index(["period", "statistic"])["value"]
        for name, (a, b) in {"near": (2025, 2030), "long": (2031, 2036),
                             "full": (2025, 2036)}.items():
            sel = (years >= a) & (years <= b)
            assert sub[(name, "mean")] == pytest.approx(regional[sel].mean(), rel=1e-5)
            assert sub[(name, "ols_slope")] == pytest.approx(
                np.polyfit(years[sel], regional[sel], 1)[0], rel=1e-4, abs=1e-6)
            assert sub[(name, "max")] == pytest.approx(regional[sel].max(), rel=1e-5)
        assert 0 <= sub[("full", "sink_area_share")] <= 100
    # warming raises Rh: the high scenario has the lower NEP in the long term
    lng = tab[(tab.period == "long") & (tab.statistic == "mean")].set_index("experiment")
    assert lng.loc["high", "value"] < lng.loc["low", "value"]
    assert (out / "figures" / "given+pei_nep_scenarios.png").exists()
    assert (out / "cubes" / "high" / "given+pei" / "nep_scenario_periods.zarr").is_dir()
    assert "scenario" in (out / "index.html").read_text().lower()
