"""Coefficient of variation and natural breaks (jenkspy as oracle)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr
from stats_helpers import as_da, random_series

import carbonsink.stats as cs
from carbonsink.errors import InsufficientDataError

jenkspy = pytest.importorskip("jenkspy")


def test_cv_matches_numpy_and_is_nan_for_nonpositive_mean():
    x = random_series(50, 20, seed=1, nan_frac=0.1) + 3.0
    x[0] -= 10.0                          # negative mean
    x[1] = np.nan                         # all NaN
    x[2] = 5.0                            # constant -> CV 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ds = cs.coefficient_of_variation(as_da(x), min_valid=5, full=True)
        cv0 = cs.coefficient_of_variation(as_da(x), min_valid=5, ddof=0)
    for i in range(3, 50):
        v = x[i][~np.isnan(x[i])]
        m = v.mean()
        exp = v.std(ddof=1) / m if m > 0 else np.nan
        np.testing.assert_allclose(ds.cv[i], exp, rtol=1e-10)
        np.testing.assert_allclose(cv0[i], v.std(ddof=0) / m, rtol=1e-10)
        np.testing.assert_allclose(ds["mean"][i], m, rtol=1e-12)
    assert np.isnan(ds.cv[0]) and np.isfinite(ds["mean"][0])
    assert np.isnan(ds.cv[1]) and int(ds.n[1]) == 0
    assert float(ds.cv[2]) == 0.0


@pytest.mark.parametrize("k", [2, 3, 5, 7])
@pytest.mark.parametrize("seed", [0, 1])
def test_natural_breaks_exact_matches_jenkspy(k, seed):
    rng = np.random.default_rng(seed)
    v = np.concatenate([rng.normal(size=700), rng.gamma(2.0, size=500) + 4.0])
    ref = jenkspy.jenks_breaks(v, n_classes=k)
    got = cs.natural_breaks(v, k, method="exact")
    np.testing.assert_allclose(got, ref, rtol=1e-12)


def test_natural_breaks_with_ties_is_optimal():
    rng = np.random.default_rng(3)
    v = np.round(rng.lognormal(size=3000), 1)         # many duplicates
    got = cs.natural_breaks(v, 5)
    ref = np.asarray(jenkspy.jenks_breaks(v, n_classes=5))

    def sse(breaks):
        cls = cs.classify(v, breaks)
        return sum(((v[cls == c] - v[cls == c].mean()) ** 2).sum() for c in np.unique(cls))

    assert sse(got) == pytest.approx(sse(ref), rel=1e-12)
    assert got[0] == v.min() and got[-1] == v.max()


def test_natural_breaks_histogram_and_sample_methods():
    rng = np.random.default_rng(4)
    v = rng.normal(size=200_000)
    exact = cs.natural_breaks(v, 5)
    hist = cs.natural_breaks(v, 5, method="histogram", bins=20_000)
    width = (v.max() - v.min()) / 20_000
    np.testing.assert_allclose(hist, exact, atol=2 * width)
    s1 = cs.natural_breaks(v, 5, method="sample", sample=5000, seed=7)
    s2 = cs.natural_breaks(v, 5, method="sample", sample=5000, seed=7)
    np.testing.assert_array_equal(s1, s2)
    assert s1[0] == v.min() and s1[-1] == v.max()       # min and max always in the sample
    sub = np.random.default_rng(7).choice(v.size, size=5000, replace=False)
    ref = jenkspy.jenks_breaks(np.concatenate([v[sub], [v.min(), v.max()]]), n_classes=5)
    np.testing.assert_allclose(s1, ref, rtol=1e-12)
    assert cs.natural_breaks(v, 5, method="auto", max_exact=1000, bins=20_000).tolist() == \
        hist.tolist()


def test_natural_breaks_errors_and_nan():
    with pytest.raises(InsufficientDataError):
        cs.natural_breaks(np.array([1.0, 1.0, 2.0]), 3)
    with pytest.raises(InsufficientDataError):
        cs.natural_breaks(np.array([np.nan, np.nan]), 2)
    v = np.array([1.0, 2.0, np.nan, 10.0, 11.0, np.inf])
    np.testing.assert_array_equal(cs.natural_breaks(v, 2), [1.0, 2.0, 11.0])


def test_classify_and_cv_classes():
    b = np.array([0.0, 1.0, 2.0, 3.0])
    v = np.array([0.0, 0.5, 1.0, 1.5, 3.0, 9.0, -1.0, np.nan])
    np.testing.assert_array_equal(cs.classify(v, b), [1, 1, 1, 2, 3, 3, 1, cs.CLASS_FILL])
    rng = np.random.default_rng(5)
    x = np.abs(rng.normal(size=(400, 20))) + rng.uniform(0.2, 3, size=(400, 1))
    cv = cs.coefficient_of_variation(as_da(x))
    cls = cs.cv_classes(cv)
    assert cls.dtype == np.int8 and set(np.unique(cls.values)) <= {1, 2, 3, 4, 5}
    brk = jenkspy.jenks_breaks(cv.values, n_classes=5)
    np.testing.assert_allclose(cls.attrs["breaks"], brk, rtol=1e-12)
    assert cs.class_labels(cls)[1] == "low fluctuation"
    np.testing.assert_array_equal(cls.values, cs.classify(cv.values, brk))
    fixed = cs.cv_classes(cv, breaks=[0, 0.1, 0.2, 0.3, 0.4, 10])
    assert fixed.attrs["breaks"] == [0, 0.1, 0.2, 0.3, 0.4, 10]
    assert isinstance(cls, xr.DataArray)
