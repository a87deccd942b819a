"""CLM5 CENTURY-type cascade (flux.century, METHODS §3.5): scalars, exact update, spin-up,
mass balance, the chain with NPP, dask."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from flux_helpers import chunked, make_inputs
from scipy.linalg import expm

from carbonsink.flux import century as C
from carbonsink.flux.chain import run_chain
from carbonsink.flux.registry import get_model

# --------------------------------------------------------------------------- the METHODS table

K = np.array([0.3, 18.5, 4.9, 4.9, 7.3, 0.2, 0.0045])  # CWD L1 L2 L3 S1 S2 S3 [yr-1]


def methods_matrix(sand=40.0):
    """A = B·diag(k) written out from the table of METHODS §3.5 (independent of the package)."""
    t = 0.85 - 0.68 * 0.01 * (100 - sand)
    rows = [  # (from, to, p, rf)
        (0, 2, 0.76, 0.0), (0, 3, 0.24, 0.0), (1, 4, 1.0, 0.55), (2, 4, 1.0, 0.50),
        (3, 5, 1.0, 0.50), (4, 5, 1 - 0.004 / (1 - t), t), (4, 6, 0.004 / (1 - t), t),
        (5, 4, 0.42 / 0.45, 0.55), (5, 6, 0.03 / 0.45, 0.55), (6, 4, 1.0, 0.55)]
    b = -np.eye(7)
    resp = np.zeros(7)  # respired fraction of each pool's outflow
    for i, j, p, rf in rows:
        b[j, i] += p * (1 - rf)
        resp[i] += p * rf
    return b @ np.diag(K), resp


def _cube(values, time, units, name):
    v = np.asarray(values, dtype=float)
    return xr.DataArray(v, dims=("time", "y", "x"), coords={"time": time}, name=name,
                        attrs={"units": units})


def constant_forcing(years=3, tas=8.0, rate=400.0, ny=2, nx=2):
    """Constant temperature and a constant litter *rate* [g C m-2 yr-1] (months ∝ days)."""
    time = pd.date_range("2001-01-01", periods=12 * years, freq="MS")
    days = np.asarray(time.days_in_month, dtype=float)
    npp = (rate * days / 365.0)[:, None, None] * np.ones((1, ny, nx))
    return (_cube(np.full((time.size, ny, nx), tas), time, "degC", "tas"),
            _cube(npp, time, "g C m-2 month-1", "npp"))


# --------------------------------------------------------------------------- scalars


def test_normalisation_factor_0_8206():
    def catanf(t):
        return 11.75 + (29.7 / math.pi) * math.atan(math.pi * 0.031 * (t - 15.4))

    expected = (catanf(15) / catanf(30)) / 1.5 ** ((15 - 25) / 10)
    assert C.normalisation_factor() == pytest.approx(expected, rel=1e-12)
    assert round(C.normalisation_factor(), 4) == 0.8206
    # f_T at 25 degC is the factor itself, at 15 degC factor / 1.5
    ft = C.temperature_scalar(np.array([25.0, 15.0]))
    np.testing.assert_allclose(ft, [0.820595, 0.820595 / 1.5], rtol=1e-6)


def test_s1_fraction_and_matrix_match_the_methods_table():
    assert float(C.s1_respired_fraction(40)) == pytest.approx(0.442)
    for sand in (0.0, 40.0, 100.0):
        np.testing.assert_allclose(C.decomposition_matrix(sand), methods_matrix(sand)[0],
                                   rtol=1e-14, atol=1e-14)


def test_water_scalars():
    np.testing.assert_allclose(C.water_scalar_psi(np.array([-3.0, -2.5, -0.002, -0.001])),
                               [0, 0, 1, 1], atol=1e-15)
    mid = -math.sqrt(2.5 * 0.002)  # geometric mean: half way on the log scale
    assert float(C.water_scalar_psi(np.array(mid))) == pytest.approx(0.5)
    np.testing.assert_allclose(C.water_scalar_ppt(np.array([50.0, 0.0, 10.0]),
                                                  np.array([50.0, 40.0, 0.0])),
                               [1 / (1 + 30 * math.exp(-8.5)), 1 / 31, 1.0])


# --------------------------------------------------------------------------- spin-up, balance


def test_steady_state_pools_equal_the_analytic_solution():
    tas, npp = constant_forcing(tas=8.0, rate=400.0)
    ds = C.century(tas, npp, spinup_cycles=0)
    r = C.normalisation_factor() * 1.5 ** ((8.0 - 25.0) / 10.0)
    a, _ = methods_matrix(40.0)
    u = 400.0 * np.array([0, 0.25, 0.5, 0.25, 0, 0, 0])
    expected = np.linalg.solve(-r * a, u)
    got = ds["soil_c_spinup"].values[:, 0, 0]
    assert expected[0] == 0.0 and got[0] == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(got[1:], expected[1:], rtol=1e-8)
    assert list(ds["soil_c_spinup"]["pool"].values) == list(C.POOLS)
    # the package's steady_state helper agrees
    np.testing.assert_allclose(C.steady_state(400.0, r)[1:], expected[1:], rtol=1e-10)


def test_constant_forcing_rh_equals_litter_input_and_respired_fractions():
    tas, npp = constant_forcing(tas=3.0, rate=250.0)
    ds = C.century(tas, npp, cwd_fraction=0.3, spinup_cycles=3)
    np.testing.assert_allclose(ds["rh"].values, npp.values, rtol=1e-6)
    assert float(ds["spinup_drift"].max()) < 1e-8
    # Rh is the respired part only: Σ rf·k·r·C* = u, while Σ k·r·C* (002's Eq. 4) is larger
    r = C.normalisation_factor() * 1.5 ** ((3.0 - 25.0) / 10.0)
    a, resp = methods_matrix(40.0)
    pools = ds["soil_c_spinup"].values[:, 0, 0]
    assert np.sum(resp * K * r * pools) == pytest.approx(250.0, rel=1e-8)
    assert np.sum(K * r * pools) > 1.5 * 250.0


def test_exact_monthly_update_matches_the_matrix_exponential():
    """Varying climate and input: the kernel equals expm stepping of dC/dt = u + rAC."""
    time = pd.date_range("2001-01-01", periods=24, freq="MS")
    m = np.arange(24)
    t = 5 + 15 * np.sin(2 * np.pi * (m - 3) / 12)
    lit = np.clip(20 + 40 * np.sin(2 * np.pi * (m - 3) / 12), 0, None)
    tas = _cube(t[:, None, None], time, "degC", "tas")
    npp = _cube(lit[:, None, None], time, "g C m-2 month-1", "npp")
    ds = C.century(tas, npp, sand_percent=70.0, spinup_years=1, spinup_cycles=2)
    a, _ = methods_matrix(70.0)
    f = np.array([0, 0.25, 0.5, 0.25, 0, 0, 0])
    days = np.asarray(time.days_in_month, float) / 365.0
    r = C.temperature_scalar(t)
    c = ds["soil_c_spinup"].values[:, 0, 0].copy()
    rh = []
    for i in range(24):  # exact step via the augmented-matrix exponential
        aug = np.zeros((8, 8))
        aug[:7, :7] = r[i] * a * days[i]
        aug[:7, 7] = f * lit[i]
        e = expm(aug)
        new = e[:7, :7] @ c + e[:7, 7]
        rh.append(lit[i] - (new.sum() - c.sum()))
        c = new
    np.testing.assert_allclose(ds["rh"].values[:, 0, 0], rh, rtol=1e-9)


def test_sinusoidal_climate_drift_after_three_cycles_below_0_1_percent():
    years = 4
    time = pd.date_range("2001-01-01", periods=12 * years, freq="MS")
    m = np.arange(time.size)
    season = np.sin(2 * np.pi * (m - 3) / 12)
    tas = _cube((-2 + 14 * season)[:, None, None] * np.ones((1, 2, 2)), time, "degC", "tas")
    npp = _cube(np.clip(35 * season, 0, None)[:, None, None] * np.ones((1, 2, 2)), time,
                "g C m-2 month-1", "npp")
    pr = _cube((40 + 30 * season)[:, None, None] * np.ones((1, 2, 2)), time, "mm month-1",
               "pr")
    pet = _cube((60 + 50 * season)[:, None, None] * np.ones((1, 2, 2)), time, "mm month-1",
                "pet")
    ds = C.century(tas, npp, pr=pr, pet=pet, spinup="mean", spinup_cycles=3)
    assert ds["rh"].attrs["water_scalar"] == "ppt"
    drift = ds["spinup_drift"].values
    assert np.all(drift < 0.1) and np.all(drift > 0)
    per = C.century(tas, npp, pr=pr, pet=pet, spinup="periodic", spinup_cycles=3)
    assert float(per["spinup_drift"].max()) < 1e-8
    # periodic steady state of the 4-year cycle: Rh over the cycle equals the litter input
    assert per["rh"].values[:, 0, 0].sum() == pytest.approx(npp.values[:, 0, 0].sum(),
                                                             rel=1e-9)


def test_drift_above_tolerance_warns():
    tas, npp = constant_forcing(years=2)
    tas = tas + xr.DataArray(np.r_[np.full(12, -10.0), np.full(12, 10.0)], dims="time",
                             coords={"time": tas.time})
    tas.attrs["units"] = "degC"
    with pytest.warns(RuntimeWarning, match="drifts"):
        C.century(tas, npp, spinup_years=2, spinup_cycles=1, drift_tolerance=1e-9)


def test_sand_map_equals_scalar_runs_and_nan_pixels():
    tas, npp = constant_forcing(years=2, ny=1, nx=3)
    npp = npp * xr.DataArray(np.linspace(0.5, 1.5, 24), dims="time",
                             coords={"time": npp.time})
    npp.attrs["units"] = "g C m-2 month-1"
    npp[:, 0, 2] = np.nan
    sand = xr.DataArray(np.array([[10.0, 80.0, 50.0]]), dims=("y", "x"), attrs={"units": "%"})
    ds = C.century(tas, npp, sand=sand)
    for j, s in enumerate((10.0, 80.0)):
        one = C.century(tas[:, :, j:j + 1], npp[:, :, j:j + 1], sand_percent=s)
        np.testing.assert_allclose(ds["rh"].values[:, 0, j], one["rh"].values[:, 0, 0],
                                   rtol=1e-12)
    assert np.isnan(ds["rh"].values[:, 0, 2]).all()
    assert not np.allclose(ds["rh"].values[:, 0, 0], ds["rh"].values[:, 0, 1])


# --------------------------------------------------------------------------- registry, chain, dask


def test_registered_rh_model_needing_npp():
    m = get_model("rh", "century")
    assert m.needs == ("npp",) and m.inputs == ("tas",)
    assert set(m.optional_inputs) == {"pr", "pet", "psi", "sand"}


def test_chain_modis_century_nep_is_npp_minus_rh():
    inputs = make_inputs(ny=3, nx=3, years=(2003, 2004))
    res = run_chain(["modis+century"], inputs, options={"century": {"spinup_cycles": 3}})
    ds = res["modis+century"]
    np.testing.assert_allclose(ds["nep"].values, ds["npp"].values - ds["rh"].values,
                               rtol=1e-12, atol=1e-12)
    assert "soil_c_spinup" in ds and ds["rh"].attrs["rh_model"] == "century"
    assert np.all(np.isfinite(ds["rh"].values)) and np.all(ds["rh"].values > 0)


def test_dask_lazy_and_equal(no_compute):
    inputs = make_inputs(ny=4, nx=4, years=(2003, 2004))
    npp = inputs["tas"] * 0 + 20.0
    npp.attrs = {"units": "g C m-2 month-1"}
    lazy_in = chunked({"tas": inputs["tas"], "npp": npp, "pr": inputs["pr"]},
                      {"y": 2, "x": 2})
    lazy = C.century(lazy_in["tas"], lazy_in["npp"])
    assert lazy["rh"].chunks is not None
    with pytest.warns(RuntimeWarning, match="without PET"):
        C.century(lazy_in["tas"], lazy_in["npp"], pr=lazy_in["pr"])


def test_dask_equals_numpy():
    inputs = make_inputs(ny=4, nx=4, years=(2003, 2004))
    npp = (inputs["tas"] * 0 + 20.0).assign_attrs(units="g C m-2 month-1")
    eager = C.century(inputs["tas"], npp)
    lazy = C.century(inputs["tas"].chunk({"y": 2, "x": 2}), npp.chunk({"y": 2, "x": 2}))
    xr.testing.assert_allclose(eager["rh"], lazy["rh"].compute(), rtol=1e-12)
    xr.testing.assert_allclose(eager["soil_c_spinup"], lazy["soil_c_spinup"].compute())
