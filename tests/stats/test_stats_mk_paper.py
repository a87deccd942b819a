"""``mann_kendall(mode="paper")``: seed paper 000's Eqs. 19–20 as printed (METHODS §6.3) —
Var(S) without the tie term, Z = S/√Var for S > 0 (no continuity correction),
(S + 1)/√Var for S < 0, 0 for S = 0 — and the default mode unchanged."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy.stats import norm

from carbonsink.errors import InvalidArgumentError
from carbonsink.stats import mann_kendall

# METHODS §12.1: S = 39, Var(S) = 120.333 (tie-corrected), 125 without ties, Z = 3.4641
Y = [1, 2, 2, 3, 5, 4, 6, 6, 6, 8]


def _series(values, dims=("time",)):
    values = np.asarray(values, dtype=float)
    time = pd.date_range("2001-01-01", periods=values.shape[0], freq="YS")
    return xr.DataArray(values, dims=dims, coords={"time": time})


def _paper_oracle(y):
    """Eq. 17, 19, 20 of 000 typed in by hand (pure Python)."""
    n = len(y)
    s = sum(np.sign(y[j] - y[i]) for i, j in itertools.combinations(range(n), 2))
    var = n * (n - 1) * (2 * n + 5) / 18
    z = s / math.sqrt(var) if s > 0 else (s + 1) / math.sqrt(var) if s < 0 else 0.0
    return s, var, z, 2 * norm.sf(abs(z))


def test_paper_mode_on_the_methods_series_with_ties():
    ds = mann_kendall(_series(Y), mode="paper").compute()
    assert float(ds["s"]) == 39
    assert float(ds["var_s"]) == pytest.approx(125.0)  # no tie term
    assert float(ds["z"]) == pytest.approx(39 / math.sqrt(125), rel=1e-12)  # 3.48827
    assert float(ds["z"]) == pytest.approx(3.48827, abs=1e-5)
    assert float(ds["p"]) == pytest.approx(2 * norm.sf(39 / math.sqrt(125)), rel=1e-9)
    assert ds.attrs["mode"] == "paper"


def test_default_mode_is_unchanged_on_the_same_series():
    ds = mann_kendall(_series(Y)).compute()
    assert float(ds["var_s"]) == pytest.approx(120.3333333, rel=1e-7)
    assert float(ds["z"]) == pytest.approx(3.4641, abs=1e-4)  # (S − 1)/√Var
    assert float(ds["p"]) == pytest.approx(0.00053, abs=1e-5)
    assert ds.attrs["mode"] == "standard"
    # slope, S and tau do not depend on the mode
    dp = mann_kendall(_series(Y), mode="paper").compute()
    for k in ("slope", "intercept", "s", "tau", "n"):
        assert float(dp[k]) == float(ds[k])


def test_negative_s_keeps_the_continuity_correction():
    y = Y[::-1]
    ds = mann_kendall(_series(y), mode="paper").compute()
    assert float(ds["s"]) == -39
    assert float(ds["z"]) == pytest.approx(-38 / math.sqrt(125), rel=1e-12)  # −3.39882
    # the asymmetry of the printed equations: |Z(S)| ≠ |Z(−S)|
    assert abs(float(ds["z"])) < 39 / math.sqrt(125)


def test_zero_s_gives_zero_z():
    y = [3, 1, 4, 1, 5, 5, 1, 4, 1, 3]  # palindrome: every increase is matched by a decrease
    assert _paper_oracle(y)[0] == 0
    ds = mann_kendall(_series(y), mode="paper").compute()
    assert float(ds["s"]) == 0 and float(ds["z"]) == 0.0 and float(ds["p"]) == 1.0
    const = mann_kendall(_series([2.0] * 10), mode="paper").compute()
    assert float(const["z"]) == 0.0 and float(const["var_s"]) == pytest.approx(125.0)


def test_paper_mode_matches_the_oracle_on_a_grid_with_ties_and_gaps():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 6, size=(14, 3, 4)).astype(float)  # many ties
    a[2, 0, 0] = np.nan  # one gap: n = 13 for that pixel
    da = _series(a, dims=("time", "y", "x"))
    ds = mann_kendall(da, mode="paper", min_valid=10).compute()
    for i in range(3):
        for j in range(4):
            y = a[:, i, j]
            y = y[np.isfinite(y)]
            s, var, z, p = _paper_oracle(y)
            assert float(ds["s"][i, j]) == s
            assert float(ds["var_s"][i, j]) == pytest.approx(var, rel=1e-12)
            assert float(ds["z"][i, j]) == pytest.approx(z, rel=1e-12, abs=1e-15)
            assert float(ds["p"][i, j]) == pytest.approx(p, rel=1e-9)
    assert int(ds["n"][0, 0]) == 13


def test_paper_mode_rejects_serial_correlation_variants():
    with pytest.raises(InvalidArgumentError, match="only"):
        mann_kendall(_series(Y), mode="paper", variant="hamed_rao")
    with pytest.raises(InvalidArgumentError, match="mode"):
        mann_kendall(_series(Y), mode="printed")
