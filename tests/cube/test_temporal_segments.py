"""The segment-sum path of annual / growing-season aggregation equals the dense matrix path."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.cube import temporal as T


def _cube(start="2001-01-01", n=36, seed=0):
    rng = np.random.default_rng(seed)
    a = rng.random((n, 4, 5)).astype("float32")
    a[rng.random(a.shape) < 0.1] = np.nan
    t = pd.date_range(start, periods=n, freq="MS")
    return xr.DataArray(a, dims=("time", "y", "x"), coords={"time": t},
                        attrs={"units": "g C m-2 month-1"}).chunk({"y": 2, "x": 3})


@pytest.mark.parametrize("func,kw", [
    (T.to_annual, {}), (T.to_annual, {"how": "mean"}), (T.to_annual, {"min_valid_fraction": 0.5}),
    (T.growing_season, {}), (T.growing_season, {"months": (11, 12)}),
    (T.growing_season, {"min_valid_fraction": 0.6, "how": "mean"}),
])
@pytest.mark.parametrize("start", ["2001-01-01", "2001-10-01", "2001-03-01"])
def test_segments_equal_dense_path(monkeypatch, func, kw, start):
    da = _cube(start)
    fast = func(da, **kw).compute()
    monkeypatch.setattr(T, "_segments", lambda *a: None)
    dense = func(da, **kw).compute()
    xr.testing.assert_allclose(fast, dense, rtol=1e-6)
    assert fast.attrs == dense.attrs


def test_segments_hand_computed():
    # two years of ones except one missing month: annual sums 12 and NaN (min fraction 1)
    da = xr.DataArray(np.ones((24, 1, 1)), dims=("time", "y", "x"),
                      coords={"time": pd.date_range("2001-01-01", periods=24, freq="MS")},
                      attrs={"units": "g C m-2 month-1"})
    da[15] = np.nan
    out = T.to_annual(da)
    assert out.values.ravel()[0] == 12 and np.isnan(out.values.ravel()[1])
    assert T.to_annual(da, min_valid_fraction=0.9).values.ravel()[1] == pytest.approx(12.0)


def test_segments_refuse_overlapping_periods():
    member = np.array([[1, 1], [0, 1]], dtype=float)
    assert T._segments(member, member) is None
    member = np.array([[1, 0], [0, 1], [1, 0]], dtype=float)  # period 0 not contiguous
    assert T._segments(member, member) is None
