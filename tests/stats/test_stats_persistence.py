"""Hurst exponent against METHODS §12.1 and a slow reference loop; persistence classes."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import xarray as xr
from stats_helpers import as_da, random_series

import carbonsink.stats as cs
from carbonsink.errors import InvalidArgumentError

XI = [3, 1, 4, 1, 5, 9, 2, 6, 5, 3, 5, 8, 9, 7, 9, 3, 2, 3, 8, 4]


def _rs_slow(seg):
    tau = len(seg)
    mean = sum(seg) / tau
    cum, xs = 0.0, []
    for v in seg:
        cum += v - mean
        xs.append(cum)
    r = max(xs) - min(xs)
    s = math.sqrt(sum((v - mean) ** 2 for v in seg) / tau)
    return r, s


def _fit(points):
    if len(points) < 3:
        return float("nan")
    xm = sum(p[0] for p in points) / len(points)
    ym = sum(p[1] for p in points) / len(points)
    return sum((p[0] - xm) * (p[1] - ym) for p in points) / sum((p[0] - xm) ** 2 for p in points)


def hurst_slow(series, method="expanding", tau_min=3, differences=False):
    xi = [v for v in series if not math.isnan(v)]
    if differences:
        xi = [b - a for a, b in zip(xi[:-1], xi[1:])]
    n = len(xi)
    pts = []
    if method == "expanding":
        for tau in range(tau_min, n + 1):
            r, s = _rs_slow(xi[:tau])
            if r > 0 and s > 0:
                pts.append((math.log(tau), math.log(r / s)))
    else:
        for tau in range(tau_min, n // 2 + 1):
            vals = []
            for b in range(n // tau):
                r, s = _rs_slow(xi[b * tau:(b + 1) * tau])
                if r > 0 and s > 0:
                    vals.append(r / s)
            if vals:
                pts.append((math.log(tau), math.log(sum(vals) / len(vals))))
        r, s = _rs_slow(xi)
        if r > 0 and s > 0:
            pts.append((math.log(n), math.log(r / s)))
    return _fit(pts)


def test_hurst_methods_reference_values():
    da = xr.DataArray(np.array(XI, dtype=float), dims="time")
    assert float(cs.hurst_rs(da)) == pytest.approx(0.8404, abs=5e-5)
    assert float(cs.hurst_rs(da, tau_min=2)) == pytest.approx(0.8019, abs=5e-5)


@pytest.mark.parametrize("method, tau_min, differences", [
    ("expanding", 3, False), ("expanding", 2, False), ("expanding", 3, True),
    ("blocks", 4, False), ("blocks", 2, True)])
def test_hurst_matches_slow_reference(method, tau_min, differences):
    x = random_series(80, 24, seed=tau_min + 3 * differences, nan_frac=0.1)
    x[:20] = np.cumsum(np.nan_to_num(x[:20]), axis=1)
    res = cs.hurst_rs(as_da(x), method=method, tau_min=tau_min,
                      input="differences" if differences else "levels", min_valid=12, full=True)
    for i in range(x.shape[0]):
        n = int(np.sum(~np.isnan(x[i])))
        assert int(res.n[i]) == n
        exp = hurst_slow(x[i], method, tau_min, differences) if n >= 12 else float("nan")
        got = float(res.hurst[i])
        if math.isnan(exp):
            assert math.isnan(got)
        else:
            assert got == pytest.approx(exp, rel=1e-9, abs=1e-12)


def test_hurst_edge_cases_no_warnings():
    x = np.full((3, 20), np.nan)
    x[1] = 5.0                               # constant: S = 0 for every tau
    x[2] = np.arange(20.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        h = cs.hurst_rs(as_da(x))
    assert np.isnan(h[0]) and np.isnan(h[1]) and np.isfinite(h[2])
    with pytest.raises(InvalidArgumentError):
        cs.hurst_rs(as_da(x), method="dfa")
    with pytest.raises(InvalidArgumentError):
        cs.hurst_rs(as_da(x), tau_min=1)


def test_persistence_classes():
    slope = xr.DataArray([1.0, 1.0, -1.0, -1.0, 0.0, 1.0, np.nan, 2.0])
    hurst = xr.DataArray([0.7, 0.3, 0.8, 0.2, 0.9, 0.5, 0.7, 0.6])
    cls = cs.persistence_classes(slope, hurst)
    np.testing.assert_array_equal(cls.values, [2, 1, -2, -1, 0, 0, cs.CLASS_FILL, 2])
    assert cs.class_labels(cls)[2] == "persistent increase"
    z = xr.DataArray([2.5, 0.5, -3.0, -2.0, 0.0, 1.0, 1.0, 1.0])
    sig = cs.persistence_classes(slope, hurst, z)
    np.testing.assert_array_equal(sig.values, [3, 1, -3, -4, 0, 0, cs.CLASS_FILL, 2])
    labels = cs.class_labels(sig)
    assert labels[-4] == "significant decrease then increase"
    assert labels[3] == "significant persistent increase"
    ds = xr.Dataset({"slope": slope, "z": z})
    xr.testing.assert_equal(cs.persistence_classes(ds, hurst, z=True), sig)
