"""The compiled one-pass aggregation of contiguous periods (months into years and growing
seasons) equals the general steps x periods matrix product it replaces, NaN rule included."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.cube import temporal


def _monthly(name, units, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2001-01", periods=36, freq="MS")
    f = rng.gamma(2.0, 30.0, (36, 9, 7)).astype("float32")
    f[rng.random(f.shape) < 0.05] = np.nan
    return xr.DataArray(f, dims=("time", "y", "x"), coords={"time": t}, name=name,
                        attrs={"units": units})


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("mvf", [1.0, 0.5])
@pytest.mark.parametrize("name,units", [("npp", "g C m-2 month-1"), ("tas", "degC")])
def test_segment_pass_equals_matrix_product(monkeypatch, lazy, mvf, name, units):
    da = _monthly(name, units)
    if lazy:
        da = da.chunk({"y": 4, "x": 3})
    fused = [temporal.to_annual(da, min_valid_fraction=mvf),
             temporal.growing_season(da, months=[5, 6, 7, 8, 9], min_valid_fraction=mvf)]
    monkeypatch.setattr(temporal, "_segments", lambda *a: None)  # force the matrix product
    dense = [temporal.to_annual(da, min_valid_fraction=mvf),
             temporal.growing_season(da, months=[5, 6, 7, 8, 9], min_valid_fraction=mvf)]
    for a, b in zip(fused, dense):
        assert a.dims == b.dims and a.dtype == np.float32
        np.testing.assert_array_equal(a["time"].values, b["time"].values)
        assert a.attrs == b.attrs
        av, bv = a.values, b.values
        np.testing.assert_array_equal(np.isnan(av), np.isnan(bv))
        np.testing.assert_allclose(av, bv, rtol=2e-6)
        if mvf == 1.0:  # any gap makes the period missing
            assert np.isnan(av).any()


def test_segment_pass_against_numpy_year_sums():
    da = _monthly("npp", "g C m-2 month-1", seed=4)
    out = temporal.to_annual(da).values
    f = da.values.reshape(3, 12, 9, 7).astype(np.float64)
    ref = np.where(np.isnan(f).any(axis=1), np.nan, f.sum(axis=1))
    np.testing.assert_allclose(out, ref, rtol=1e-6)
