"""Edge cases of the pixel statistics (issue 13, item 4).

Constant series, 0-d classification, extreme magnitudes, the exact Mann–Kendall p
up to n = 10 against an independent enumeration, collinear partial-correlation controls.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import xarray as xr
from scipy import stats as sps

from carbonsink import stats as cs
from carbonsink.errors import InsufficientDataError

CONSTANTS = [0.0, 1e-3, 0.3, 1.0, -7.25, 1e6]


def _series(values, name="x"):
    return xr.DataArray(np.asarray(values, dtype=np.float64), dims="time", name=name)


# --------------------------------------------------------------------------- constant series


@pytest.mark.parametrize("value", CONSTANTS)
@pytest.mark.parametrize("variant", sorted(cs.MK_VARIANTS))
def test_constant_series_mann_kendall(value, variant):
    da = _series(np.full(15, value))
    m = cs.mann_kendall(da, variant=variant)
    assert float(m.slope) == 0.0
    assert float(m.s) == 0.0
    assert float(m.z) == 0.0
    assert float(m.p) == 1.0
    assert float(m.intercept) == value
    assert int(cs.sen_mk_classes(m)) == 0          # "unchanged"
    assert cs.class_labels(cs.sen_mk_classes(m))[0] == "unchanged"


@pytest.mark.parametrize("value", CONSTANTS)
def test_constant_series_mann_kendall_paper_and_small_n(value):
    da = _series(np.full(8, value))
    for kw in (dict(mode="paper"), dict(small_n="normal"), dict(small_n="exact")):
        m = cs.mann_kendall(da, min_valid=5, **kw)
        assert (float(m.s), float(m.z), float(m.p)) == (0.0, 0.0, 1.0), kw


@pytest.mark.parametrize("value", CONSTANTS)
def test_constant_series_ols(value):
    o = cs.ols_trend(_series(np.full(12, value)))
    assert float(o.slope) == 0.0
    assert float(o.t) == 0.0
    assert float(o.p) == 1.0
    assert float(o.stderr) == 0.0
    assert float(o.intercept) == value
    assert np.isnan(float(o.r2))
    assert int(cs.ols_six_classes(o)) == 0
    assert int(cs.ols_four_classes(o)) == 0


def test_constant_pixels_in_a_map_with_gaps_are_unchanged():
    rng = np.random.default_rng(3)
    data = rng.normal(size=(12, 2, 3))
    data[:, 0, 0] = 0.0
    data[:, 0, 1] = 1e-3
    data[:, 0, 2] = 0.3
    data[4, 0, 2] = np.nan                         # a gap in a constant pixel
    da = xr.DataArray(data, dims=("time", "y", "x"))
    m = cs.mann_kendall(da, variant="hamed_rao")
    cls = cs.sen_mk_classes(m)
    assert (cls.values[0] == 0).all()
    assert (m.p.values[0] == 1.0).all()
    o = cs.ols_trend(da)
    assert (o.p.values[0] == 1.0).all() and (o.slope.values[0] == 0.0).all()


# --------------------------------------------------------------------------- 0-d / 1-d classes


def test_classification_accepts_0d_and_1d():
    up = cs.mann_kendall(_series(np.arange(12.0)))           # 0-d Dataset (one series)
    assert up.slope.ndim == 0
    assert int(cs.sen_mk_classes(up)) == 4
    assert int(cs.ols_six_classes(cs.ols_trend(_series(np.arange(12.0))))) == 3
    assert int(cs.ols_four_classes(cs.ols_trend(_series(-np.arange(12.0))))) == -2
    assert int(cs.sink_source_classes(xr.DataArray(5.0))) == 1
    assert int(cs.sink_source_classes(xr.DataArray(np.nan))) == cs.CLASS_FILL
    assert int(cs.sink_source_classes(xr.DataArray(250.0), scheme="001")) == 2
    assert int(cs.sen_mk_classes(xr.DataArray(np.nan), z=xr.DataArray(1.0))) == cs.CLASS_FILL
    h = xr.DataArray(0.7)
    assert int(cs.persistence_classes(xr.DataArray(-1.0), h)) == -2
    one_d = cs.sink_source_classes(xr.DataArray([-1.0, 0.0, np.nan, 3.0], dims="site"))
    assert one_d.values.tolist() == [-1, 0, cs.CLASS_FILL, 1]
    cls = cs.classify(xr.DataArray(0.5), [0.0, 0.3, 0.6, 1.0])
    assert int(cls) == 2


# --------------------------------------------------------------------------- magnitudes


@pytest.mark.parametrize("scale", [1e-100, 1e-30, 1.0, 1e30, 1e100])
def test_correlation_is_scale_invariant(scale):
    rng = np.random.default_rng(11)
    x = rng.normal(size=25)
    y = 0.6 * x + rng.normal(size=25)
    z = rng.normal(size=25) + 0.3 * x
    ref_r, ref_p = sps.pearsonr(x, y)
    ref_s = sps.spearmanr(x, y)[0]
    # offsets large relative to the spread: centring must come first
    xs, ys, zs = (_series(v * scale + 1e3 * scale, n) for v, n in ((x, "x"), (y, "y"), (z, "z")))
    pr = cs.pearson(xs, ys)
    assert float(pr.r) == pytest.approx(ref_r, rel=1e-9)
    assert float(pr.p) == pytest.approx(ref_p, rel=1e-7)
    assert float(cs.spearman(xs, ys).r) == pytest.approx(ref_s, rel=1e-12)
    # partial r of y and x given z: correlation of the OLS residuals
    rx = x - np.polyval(np.polyfit(z, x, 1), z)
    ry = y - np.polyval(np.polyfit(z, y, 1), z)
    ref_pc = np.corrcoef(rx, ry)[0, 1]
    pc = cs.partial_correlation(ys, [xs], controls=[zs])
    assert float(pc.r.sel(driver="x")) == pytest.approx(ref_pc, rel=1e-8)
    assert int(pc.status) == 0


def test_constant_series_correlation_is_nan():
    x = _series(np.full(12, 0.3))
    y = _series(np.arange(12.0), "y")
    assert np.isnan(float(cs.pearson(x, y).r))
    assert np.isnan(float(cs.spearman(x, y).r))


# --------------------------------------------------------------------------- exact MK p


def _s_distribution_enumerated(n):
    """Counts of S over all n! orderings (brute force)."""
    counts = {}
    for perm in itertools.permutations(range(n)):
        s = sum(np.sign(perm[j] - perm[i]) for i in range(n) for j in range(i + 1, n))
        counts[s] = counts.get(s, 0) + 1
    return counts


def _s_distribution_dp(n):
    """Counts of S by dynamic programming over inversions: inserting the k-th element adds
    0..k-1 inversions (Mahonian numbers); S = n(n-1)/2 - 2 * inversions."""
    inv = [1]
    for k in range(2, n + 1):
        new = [0] * (len(inv) + k - 1)
        for i, c in enumerate(inv):
            for add in range(k):
                new[i + add] += c
        inv = new
    m = n * (n - 1) // 2
    return {m - 2 * i: c for i, c in enumerate(inv)}


def _exact_p(counts, s):
    total = sum(counts.values())
    return sum(c for v, c in counts.items() if abs(v) >= abs(s)) / total


@pytest.mark.parametrize("n", [4, 6, 8])
def test_dp_distribution_matches_full_enumeration(n):
    assert _s_distribution_dp(n) == _s_distribution_enumerated(n)


@pytest.mark.parametrize("n", [5, 8, 9, 10])
def test_exact_p_up_to_n10(n):
    counts = _s_distribution_dp(n)
    assert sum(counts.values()) == math.factorial(n)
    rng = np.random.default_rng(n)
    seen = set()
    for _ in range(40):
        y = rng.permutation(n).astype(float)
        m = cs.mann_kendall(_series(y), min_valid=3)
        s = int(m.s)
        seen.add(abs(s))
        assert float(m.p) == pytest.approx(_exact_p(counts, s), rel=1e-12, abs=1e-15)
        assert "exact" in m.p.attrs["p_method"]
    # extremes: a monotone series has the smallest p = 2 / n!
    m = cs.mann_kendall(_series(np.arange(n, dtype=float)), min_valid=3)
    assert float(m.p) == pytest.approx(2.0 / math.factorial(n), rel=1e-12)
    assert len(seen) > 3


def test_n10_with_ties_uses_normal_and_n11_is_normal():
    y = np.array([1, 2, 2, 3, 5, 4, 6, 8, 7, 9], dtype=float)
    m = cs.mann_kendall(_series(y), min_valid=3)
    z = float(m.z)
    assert float(m.p) == pytest.approx(2 * sps.norm.sf(abs(z)), rel=1e-12)
    y11 = np.array([1, 3, 2, 4, 6, 5, 7, 9, 8, 11, 10], dtype=float)
    m11 = cs.mann_kendall(_series(y11))
    assert float(m11.p) == pytest.approx(2 * sps.norm.sf(abs(float(m11.z))), rel=1e-12)


# --------------------------------------------------------------------------- collinear controls


def test_collinear_controls_warn_and_give_nan_with_reason():
    rng = np.random.default_rng(5)
    x = rng.normal(size=20)
    z = rng.normal(size=20)
    y = x + z + rng.normal(size=20)
    w = 2.0 * z - 1.0                                  # exactly collinear with z
    with pytest.warns(UserWarning, match="collinear"):
        pc = cs.partial_correlation(_series(y, "y"), [_series(x, "x")],
                                    controls=[_series(z, "z"), _series(w, "w")])
    assert np.isnan(float(pc.r.sel(driver="x")))
    assert int(pc.status) == 3
    assert "collinear" in pc.attrs["nan_reasons"]
    assert "collinear" in pc.status.attrs["flag_meanings"]
    # without the redundant control there is a value and no warning
    import warnings
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        ok = cs.partial_correlation(_series(y, "y"), [_series(x, "x")],
                                    controls=[_series(z, "z")])
    assert np.isfinite(float(ok.r.sel(driver="x"))) and int(ok.status) == 0


def test_collinear_status_lazy_without_warning():
    rng = np.random.default_rng(6)
    z = rng.normal(size=(20, 2, 2))
    x = rng.normal(size=(20, 2, 2))
    y = x + rng.normal(size=(20, 2, 2))
    da = lambda a, nm: xr.DataArray(a, dims=("time", "y", "x"), name=nm).chunk({"y": 1})
    pc = cs.partial_correlation(da(y, "y"), [da(x, "x")], controls=[da(z, "z"), da(3 * z, "w")])
    assert pc.status.chunks is not None
    assert (pc.status.values == 3).all() and np.isnan(pc.r.values).all()


# --------------------------------------------------------------------------- min_valid


def test_default_min_valid_rejects_short_series_with_a_fix():
    with pytest.raises(InsufficientDataError, match="min_valid"):
        cs.ols_trend(_series(np.arange(8.0)))
    with pytest.raises(InsufficientDataError, match="min_valid"):
        cs.mann_kendall(_series(np.arange(8.0)))
    assert float(cs.mann_kendall(_series(np.arange(8.0)), min_valid=3).slope) == 1.0
