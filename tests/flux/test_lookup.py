"""Class-code lookups (land cover -> per-type parameters) in one compiled pass: the same
values as masking and indexing with NumPy, for every code type, lazily and with NaN."""

from __future__ import annotations

import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from carbonsink.flux._util import lookup


def _reference(codes, table, fill):
    codes = np.asarray(codes)
    out = np.full(codes.shape, fill, dtype=table.dtype)
    for i, v in np.ndenumerate(codes):
        if np.isfinite(v) and 0 <= v < len(table):
            out[i] = table[int(v)]
    return out


@pytest.mark.parametrize("dtype", ["float32", "float64", "uint8", "int16", "int64"])
@pytest.mark.parametrize("table,fill", [(np.linspace(0.1, 2.0, 17).astype("float32"), np.nan),
                                        (np.arange(5, 22, dtype="int16"), -1)])
def test_lookup_matches_the_masked_index(dtype, table, fill):
    rng = np.random.default_rng(7)
    lo = 0 if dtype == "uint8" else -3
    codes = rng.integers(lo, 30, (4, 9, 11)).astype(dtype)
    if codes.dtype.kind == "f":
        codes[0, 0, :4] = [np.nan, np.inf, -np.inf, 2.7]  # 2.7 -> code 2, like astype(int)
    want = _reference(codes, table, fill)
    got = lookup(codes, table, fill)
    assert got.dtype == table.dtype
    np.testing.assert_array_equal(got, want)
    lazy = lookup(dsa.from_array(codes, (2, 5, 4)), table, fill)
    np.testing.assert_array_equal(lazy.compute(), want)
    da = xr.DataArray(codes[:, ::2, ::3], dims=("time", "y", "x"))  # not contiguous
    np.testing.assert_array_equal(lookup(da, table, fill).values, want[:, ::2, ::3])
