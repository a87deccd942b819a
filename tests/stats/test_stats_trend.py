"""Trend statistics against METHODS §12.1, pymannkendall and scipy."""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pytest
import scipy.stats as ss
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from stats_helpers import as_da, random_series

import carbonsink.stats as cs
from carbonsink.errors import InputError, InsufficientDataError, InvalidArgumentError

pmk = pytest.importorskip("pymannkendall")

RTOL = 1e-6
MK_FIELDS = [("slope", "slope"), ("intercept", "intercept"), ("s", "s"), ("var_s", "var_s"),
             ("z", "z"), ("p", "p"), ("tau", "Tau")]


def _close(got, exp, rtol=RTOL, atol=0.0):
    got = float(got)
    exp = float(exp)
    if np.isnan(exp):
        return np.isnan(got)
    return abs(got - exp) <= atol + rtol * abs(exp)


# --------------------------------------------------------------------------- METHODS 12.1


def test_methods_reference_mk_and_ols():
    y = np.array([1, 2, 2, 3, 5, 4, 6, 6, 6, 8.0])
    da = xr.DataArray(y, dims="time", coords={"time": np.arange(2001, 2011)})
    mk = cs.mann_kendall(da, min_valid=10)
    assert float(mk.s) == 39
    assert float(mk.var_s) == pytest.approx(120.333333, rel=1e-6)
    assert float(mk.z) == pytest.approx(3.4641016, rel=1e-6)
    assert float(mk.p) == pytest.approx(0.00053, abs=5e-6)
    assert float(mk.slope) == pytest.approx(0.666667, rel=1e-5)
    assert int(mk.n) == 10
    # without tie correction the variance would be 125
    assert 10 * 9 * 25 / 18 == 125
    ols = cs.ols_trend(da, min_valid=10)
    assert float(ols.slope) == pytest.approx(0.72121, abs=5e-6)
    assert np.sqrt(float(ols.r2)) == pytest.approx(0.9648, abs=5e-5)


# --------------------------------------------------------------------------- pymannkendall


@pytest.mark.parametrize("ntime, nan_frac, min_valid", [(24, 0.1, 5), (38, 0.0, 10), (9, 0.15, 3),
                                                        (5, 0.0, 3)])
def test_mk_original_matches_pymannkendall(ntime, nan_frac, min_valid):
    x = random_series(150, ntime, seed=ntime, nan_frac=nan_frac)
    res = cs.mann_kendall(as_da(x), min_valid=min_valid, small_n="normal")
    checked = 0
    for i in range(x.shape[0]):
        n = int(np.sum(~np.isnan(x[i])))
        assert int(res.n[i]) == n
        if n < min_valid:
            assert np.isnan(float(res.slope[i])) and np.isnan(float(res.p[i]))
            continue
        ref = pmk.original_test(x[i])
        for mine, theirs in MK_FIELDS:
            exp = getattr(ref, theirs)
            atol = 1e-12 if mine == "p" else 1e-12 * (mine == "intercept")
            assert _close(res[mine][i], exp, atol=atol), (i, mine, float(res[mine][i]), exp)
        checked += 1
    assert checked > 100


@pytest.mark.filterwarnings("ignore:invalid value encountered in sqrt:RuntimeWarning")
@pytest.mark.parametrize("variant, func", [("hamed_rao", "hamed_rao_modification_test"),
                                           ("yue_wang", "yue_wang_modification_test")])
@pytest.mark.parametrize("ntime", [12, 24])
def test_mk_serial_correlation_variants_match_pymannkendall(variant, func, ntime):
    x = random_series(120, ntime, seed=7 + ntime, nan_frac=0.0)
    # autocorrelated pixels too
    x[:40] = np.cumsum(x[:40], axis=1) * 0.5
    res = cs.mann_kendall(as_da(x), variant=variant, min_valid=5)
    f = getattr(pmk, func)
    for i in range(x.shape[0]):
        ref = f(x[i])
        for mine, theirs in MK_FIELDS:
            exp = getattr(ref, theirs)
            # pymannkendall computes p as 1 - cdf: absolute error ~1e-16 for tiny p
            atol = 1e-13 if mine == "p" else 0.0
            assert _close(res[mine][i], exp, atol=atol), (variant, i, mine,
                                                           float(res[mine][i]), exp)


@pytest.mark.parametrize("lag", [1, 3])
def test_mk_hamed_rao_lag_argument(lag):
    x = random_series(30, 20, seed=3, nan_frac=0.0, ties=False)
    x = np.cumsum(x, axis=1)
    res = cs.mann_kendall(as_da(x), variant="hamed_rao", lag=lag, min_valid=5)
    res_yw = cs.mann_kendall(as_da(x), variant="yue_wang", lag=lag, min_valid=5)
    for i in range(x.shape[0]):
        ref = pmk.hamed_rao_modification_test(x[i], lag=lag)
        assert _close(res.var_s[i], ref.var_s)
        ref = pmk.yue_wang_modification_test(x[i], lag=lag)
        assert _close(res_yw.var_s[i], ref.var_s)


@pytest.mark.parametrize("variant, func", [
    ("pre_whitening", "pre_whitening_modification_test"),
    ("trend_free_pre_whitening", "trend_free_pre_whitening_modification_test")])
def test_mk_prewhitening_variants_match_pymannkendall(variant, func):
    # continuous data: the whitened series has no float-rounding-dependent ties
    x = random_series(80, 24, seed=11, nan_frac=0.0, ties=False)
    res = cs.mann_kendall(as_da(x), variant=variant, min_valid=5)
    f = getattr(pmk, func)
    for i in range(x.shape[0]):
        ref = f(x[i])
        for mine, theirs in MK_FIELDS:
            assert _close(res[mine][i], getattr(ref, theirs), atol=1e-13 * (mine == "p")), \
                (variant, i, mine)


def test_mk_sen_with_gaps_uses_true_time_distance():
    # a perfect line with gaps: every pairwise slope is exactly 2 per year
    y = 2.0 * np.arange(15) + 1.0
    y[[2, 3, 9]] = np.nan
    res = cs.mann_kendall(as_da(y[None, :]), min_valid=10)
    assert float(res.slope[0]) == 2.0
    assert float(res.intercept[0]) == pytest.approx(1.0)
    # ... and that is what pymannkendall's sens_slope does with NaN in place
    assert pmk.sens_slope(y).slope == 2.0


def test_sen_matches_scipy_theilslopes_and_kendalltau():
    x = random_series(60, 24, seed=5, nan_frac=0.1, ties=False)
    res = cs.mann_kendall(as_da(x), min_valid=10)
    t = np.arange(24.0)
    for i in range(x.shape[0]):
        ok = ~np.isnan(x[i])
        if ok.sum() < 10:
            continue
        ts = ss.theilslopes(x[i][ok], t[ok])
        assert _close(res.slope[i], ts.slope)
        assert _close(res.intercept[i], ts.intercept, atol=1e-12)
        kt = ss.kendalltau(t[ok], x[i][ok])   # no ties: tau-b == tau-a
        assert _close(res.tau[i], kt.statistic)


def test_mk_exact_p_small_n_matches_enumeration():
    rng = np.random.default_rng(4)
    for n in (4, 5, 6, 7):
        y = rng.permutation(n).astype(float)[None, :]
        res = cs.mann_kendall(as_da(y), min_valid=3, small_n="exact")
        s_obs = int(res.s[0])
        s_all = []
        for perm in itertools.permutations(range(n)):
            s_all.append(sum(np.sign(perm[j] - perm[i]) for i in range(n) for j in range(i + 1, n)))
        s_all = np.abs(np.array(s_all))
        p_exact = np.mean(s_all >= abs(s_obs))
        assert float(res.p[0]) == pytest.approx(p_exact, rel=1e-12)
        normal = cs.mann_kendall(as_da(y), min_valid=3, small_n="normal")
        assert float(normal.p[0]) == pytest.approx(pmk.original_test(y[0]).p, rel=1e-9)


def test_mk_exact_not_used_with_ties():
    y = np.array([[1.0, 2.0, 2.0, 3.0, 5.0, 4.0]])
    ex = cs.mann_kendall(as_da(y), min_valid=3, small_n="exact")
    assert float(ex.p[0]) == pytest.approx(pmk.original_test(y[0]).p, rel=1e-9)


# --------------------------------------------------------------------------- OLS vs scipy


@pytest.mark.parametrize("ntime, nan_frac", [(24, 0.1), (7, 0.0), (40, 0.2)])
def test_ols_matches_scipy_linregress(ntime, nan_frac):
    x = random_series(120, ntime, seed=ntime + 1, nan_frac=nan_frac)
    res = cs.ols_trend(as_da(x), min_valid=3)
    t = np.arange(float(ntime))
    checked = 0
    for i in range(x.shape[0]):
        ok = ~np.isnan(x[i])
        assert int(res.n[i]) == ok.sum()
        if ok.sum() < 3:
            assert np.isnan(float(res.slope[i]))
            continue
        lr = ss.linregress(t[ok], x[i][ok])
        assert _close(res.slope[i], lr.slope)
        assert _close(res.intercept[i], lr.intercept, atol=1e-12)
        assert _close(res.stderr[i], lr.stderr)
        assert _close(res.p[i], lr.pvalue)
        assert _close(res.r2[i], lr.rvalue ** 2)
        assert _close(res.t[i], lr.slope / lr.stderr)
        checked += 1
    assert checked > 50


def test_ols_p_tiny_values_keep_relative_precision():
    t = np.arange(30.0)
    rng = np.random.default_rng(0)
    y = 5.0 * t + rng.normal(scale=0.5, size=(20, 30))
    res = cs.ols_trend(as_da(y), min_valid=10)
    for i in range(20):
        lr = ss.linregress(t, y[i])
        assert float(res.p[i]) < 1e-20
        assert _close(res.p[i], lr.pvalue, rtol=1e-6)


# --------------------------------------------------------------------------- time axis & attrs


def test_slope_per_year_for_datetime_and_monthly_time():
    y = 3.0 * np.arange(24) + 1.0
    years = np.array([np.datetime64(f"{2000 + i}-01-01") for i in range(24)])
    da = xr.DataArray(y, dims="time", coords={"time": years}, attrs={"units": "g C m-2 yr-1"})
    ols = cs.ols_trend(da)
    mk = cs.mann_kendall(da)
    # leap years make calendar-year fractions differ slightly from integer steps: Jan 1 -> .0
    assert float(ols.slope) == pytest.approx(3.0, rel=1e-12)
    assert float(mk.slope) == pytest.approx(3.0, rel=1e-12)
    assert ols.slope.attrs["units"] == "g C m-2 yr-2"
    assert mk.intercept.attrs["units"] == "g C m-2 yr-1"
    months = xr.date_range("2001-01-01", periods=36, freq="MS")
    dm = xr.DataArray(0.5 * np.arange(36.0), dims="time", coords={"time": months},
                      attrs={"units": "mm month-1"})
    # 0.5 per month is 6 per year (up to unequal month lengths)
    assert float(cs.ols_trend(dm).slope) == pytest.approx(6.0, rel=2e-3)
    assert cs.ols_trend(dm).slope.attrs["units"] == "mm month-1 yr-1"


def test_non_monotonic_time_and_bad_arguments_raise():
    da = as_da(np.ones((2, 12)))
    with pytest.raises(InputError, match="strictly increasing"):
        cs.ols_trend(da.isel(time=[1, 0, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]))
    with pytest.raises(InvalidArgumentError):
        cs.mann_kendall(da, variant="nope")
    with pytest.raises(InvalidArgumentError):
        cs.mann_kendall(da, dim="year")
    with pytest.raises(InsufficientDataError):
        cs.mann_kendall(as_da(np.ones((2, 8))))          # default min_valid 10 > 8 steps
    with pytest.raises(InsufficientDataError):
        cs.ols_trend(da, min_valid=2)
    with pytest.raises(InvalidArgumentError):
        cs.ols_trend(np.ones((3, 12)))


def test_nan_policy_min_valid_skipna_and_no_warnings():
    x = random_series(6, 20, seed=2, nan_frac=0.0)
    x[0] = np.nan                       # all-NaN pixel
    x[1, :5] = np.nan                   # 15 valid
    x[2, 3] = np.nan                    # 19 valid
    da = as_da(x)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        mk = cs.mann_kendall(da)                      # default min_valid = 16
        ols = cs.ols_trend(da, skipna=False)
        mk2 = cs.mann_kendall(da, min_valid=15)
    assert np.isnan(mk.slope[0]) and int(mk.n[0]) == 0
    assert np.isnan(mk.slope[1]) and int(mk.n[1]) == 15
    assert np.isfinite(mk.slope[2]) and np.isfinite(mk2.slope[1])
    assert np.isnan(ols.slope[2]) and np.isfinite(ols.slope[3])
    assert mk.attrs["min_valid"] == 16


def test_float32_input_gives_float32_close_to_float64():
    x = random_series(50, 24, seed=8, nan_frac=0.05, ties=False)
    r64 = cs.mann_kendall(as_da(x), min_valid=10)
    r32 = cs.mann_kendall(as_da(x.astype(np.float32)), min_valid=10)
    assert r32.slope.dtype == np.float32
    ref = cs.mann_kendall(as_da(x.astype(np.float32).astype(np.float64)), min_valid=10)
    # slopes are formed in float32: absolute error ~1e-7 of the pairwise-slope spread
    np.testing.assert_allclose(r32.slope, ref.slope, rtol=1e-6, atol=1e-6 * np.nanstd(x))
    np.testing.assert_array_equal(r32.s, ref.s)
    assert r64.slope.dtype == np.float64


@settings(max_examples=25, deadline=None)
@given(a=st.floats(0.1, 100.0), c=st.floats(-1e3, 1e3), seed=st.integers(0, 10_000))
def test_slope_scales_linearly_with_data(a, c, seed):
    x = random_series(3, 16, seed=seed, nan_frac=0.1, ties=False)
    base_ols = cs.ols_trend(as_da(x), min_valid=5)
    base_mk = cs.mann_kendall(as_da(x), min_valid=5)
    ols = cs.ols_trend(as_da(a * x + c), min_valid=5)
    mk = cs.mann_kendall(as_da(a * x + c), min_valid=5)
    np.testing.assert_allclose(ols.slope, a * base_ols.slope, rtol=1e-7, atol=1e-9 * a)
    np.testing.assert_allclose(mk.slope, a * base_mk.slope, rtol=1e-7, atol=1e-9 * a)
    np.testing.assert_array_equal(mk.s, base_mk.s)
    np.testing.assert_allclose(ols.p, base_ols.p, rtol=1e-5)


def test_cftime_calendars_give_slopes_per_year():
    pytest.importorskip("cftime")
    t = xr.date_range("2000-01-01", periods=24, freq="YS", calendar="noleap", use_cftime=True)
    da = xr.DataArray(2.0 * np.arange(24), dims="time", coords={"time": t})
    assert float(cs.ols_trend(da).slope) == pytest.approx(2.0, rel=1e-12)
    assert float(cs.mann_kendall(da).slope) == pytest.approx(2.0, rel=1e-12)
    t = xr.date_range("2000-01-01", periods=36, freq="MS", calendar="360_day", use_cftime=True)
    dm = xr.DataArray(np.arange(36.0), dims="time", coords={"time": t})
    assert float(cs.ols_trend(dm).slope) == pytest.approx(12.0, rel=1e-12)


@pytest.mark.parametrize("kind", ["normal", "rounded", "cauchy", "three_levels", "random_walk"])
@pytest.mark.parametrize("ntime", [10, 24, 37])
def test_sen_slope_and_intercept_equal_numpy_medians(kind, ntime):
    """Every path of the counting median selection (ties, splits, fallbacks) is exact."""
    rng = np.random.default_rng(ntime)
    shape = (1500, ntime)
    x = {"normal": lambda: rng.normal(size=shape),
         "rounded": lambda: np.round(rng.normal(size=shape)),
         "cauchy": lambda: rng.standard_cauchy(size=shape),
         "three_levels": lambda: rng.integers(0, 3, size=shape) * 1.0,
         "random_walk": lambda: np.cumsum(rng.normal(size=shape), axis=1)}[kind]()
    x[rng.random(shape) < 0.1] = np.nan
    res = cs.mann_kendall(as_da(x), min_valid=3)
    i, j = np.triu_indices(ntime, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        slopes = np.nanmedian((x[:, j] - x[:, i]) / (j - i), axis=1)
        t = np.where(np.isnan(x), np.nan, np.arange(ntime))
        intercept = np.nanmedian(x, axis=1) - np.nanmedian(t, axis=1) * slopes
    np.testing.assert_array_equal(res.slope.values, slopes)
    np.testing.assert_allclose(res.intercept.values, intercept, rtol=1e-12, atol=1e-12)
