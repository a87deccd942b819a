"""carbonsink.plausibility: unit slips, fill values, negatives, inf, codes, empty inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.errors import InputError
from carbonsink.plausibility import PlausibilityWarning, check_values
from carbonsink.units import to_canonical

T = pd.date_range("2001-01-01", periods=24, freq="MS")
RNG = np.random.default_rng(42)


def _da(values, units, lazy=True):
    da = xr.DataArray(np.asarray(values, dtype="float64"), dims=("time", "y", "x"),
                      coords={"time": T[: np.shape(values)[0]]}, attrs={"units": units})
    return da.chunk({"y": 5}) if lazy else da


TAS = 8 + 12 * RNG.standard_normal((24, 20, 20))
PR = RNG.gamma(2.0, 30.0, (24, 20, 20))


def test_plausible_fields_pass_and_report_shares():
    tas = _da(TAS, "degC")
    rep = check_values(tas, "tas", name="inputs.tas")
    assert rep.ok and rep.n_sampled == 12 * 400 and rep.n_steps == 12
    # hand-computed: share of the 12 sampled steps outside [-70, 50]
    idx = np.unique(np.linspace(0, 23, 12).round().astype(int))
    sub = TAS[idx]
    assert rep.share_out_of_range == pytest.approx(np.mean((sub < -70) | (sub > 50)))
    assert "inputs.tas:" in rep.summary() and "outside [-70, 50] degC" in rep.summary()
    for da, var in ((_da(PR, "mm month-1"), "pr"),
                    (_da(RNG.uniform(-0.1, 0.9, (24, 20, 20)), "1"), "ndvi"),
                    (_da(RNG.normal(20, 40, (24, 20, 20)), "g C m-2 month-1"), "npp"),
                    (_da(RNG.normal(-5, 30, (24, 20, 20)), "g C m-2 month-1"), "nep")):
        assert check_values(da, var).ok, var


def test_kelvin_labelled_celsius_and_back():
    with pytest.raises(InputError, match=r"inputs\.tas .*100\.0 % of the sampled values.*"
                                         r"median 2\d\d\.\d.*kelvin labelled as degC.*"
                                         r'inputs\.tas\.units: "K"'):
        check_values(_da(TAS + 273.15, "degC"), "tas", name="inputs.tas", source_units="degC")
    wrong = to_canonical(_da(TAS, "K"), "tas")  # degC values declared K
    with pytest.raises(InputError, match=r'degC labelled as kelvin.*units: "degC"'):
        check_values(wrong, "tas", name="inputs.tas", source_units="K")


def test_metres_labelled_mm_and_double_scaled_ndvi():
    pr_m = to_canonical(_da(PR / 1000.0, "mm"), "pr")
    with pytest.raises(InputError, match=r'1000 times too small.*inputs\.pr\.units: "m"'):
        check_values(pr_m, "pr", name="inputs.pr", source_units="mm")
    ndvi = _da(RNG.uniform(0.05, 0.8, (24, 20, 20)) * 1e-4, "1")
    with pytest.raises(InputError, match=r"100\.0 % .*10000 times too small.*"
                                         r'inputs\.ndvi\.units: "1"'):
        check_values(ndvi, "ndvi", name="inputs.ndvi", source_units="0.0001")
    raw = _da(RNG.uniform(-1000, 9000, (24, 20, 20)), "1")
    with pytest.raises(InputError, match=r'10000 times too large.*units: "0.0001"'):
        check_values(raw, "ndvi", name="inputs.ndvi", source_units="1")


def test_daily_rate_labelled_monthly():
    per_day = _da(PR * 30.4375, "mm month-1")  # monthly totals declared "mm d-1"
    with pytest.raises(InputError, match=r'30 times too large.*units: "mm month-1"'):
        check_values(per_day, "pr", name="inputs.pr", source_units="mm d-1")


def test_undeclared_fill_value_in_file_units_with_share():
    v = TAS.copy()
    v[:, :3, :] = -9999.0          # 3 of 20 rows: 15 % of every step
    with pytest.raises(InputError, match=r"15\.0 % of the sampled values: the exact value\(s\) "
                                         r"-9999 .*undeclared fill"):
        check_values(_da(v, "degC"), "tas", name="inputs.tas")
    # stored as "0.1 mm": -9999 is -999.9 mm after conversion, still named as -9999
    p = np.round(PR * 10)
    p[:, :, :2] = -9999.0          # 2 of 20 columns: 10 %
    da = to_canonical(_da(p, "0.1 mm"), "pr")
    rep = check_values(da, "pr", how="report", source_units="0.1 mm")
    (f,) = rep.findings
    assert f.kind == "fill_value" and f.share == pytest.approx(0.10)
    assert "-9999" in f.found


def test_negative_precipitation_share():
    v = PR.copy()
    neg = np.zeros(v.shape, bool)
    neg[:, 0, :4] = True           # 4 of 400 cells: 1 %
    v[neg] = -RNG.uniform(1, 50, neg.sum())
    rep = check_values(_da(v, "mm month-1"), "pr", how="report")
    (f,) = rep.findings
    assert f.kind == "negative" and f.share == pytest.approx(0.01)
    with pytest.raises(InputError, match=r"1\.0 % of the sampled values: 48 negative values"):
        check_values(_da(v, "mm month-1"), "pr", name="inputs.pr")
    # NPP may be negative
    assert check_values(_da(v, "g C m-2 month-1"), "npp").ok


def test_infinite_values_and_empty_input():
    v = PR.copy()
    v[:, 5, 5] = np.inf
    v[:, 6, 6] = -np.inf
    with pytest.raises(InputError, match=r"0\.5 % of the sampled values: 24 of 4800 sampled "
                                         r"values are \+inf or -inf"):
        check_values(_da(v, "mm month-1"), "pr", name="inputs.pr")
    with pytest.raises(InputError, match=r"inputs\.soc .*100\.0 % .*no valid value"):
        check_values(_da(np.full((1, 4, 4), np.nan), "kg C m-2"), "soc", name="inputs.soc")
    # the sample may miss sparse data: the whole input is then looked at
    sparse = np.full((24, 50, 50), np.nan)
    sparse[3, 1, 1] = 5.0
    assert not any(f.kind == "empty" for f in
                   check_values(_da(sparse, "kg C m-2"), "soc", sample=1000, how="report")
                   .findings)


def test_unknown_land_cover_codes():
    lc = RNG.integers(1, 18, (2, 20, 20)).astype(float)
    lc[:, 0, :] = 42               # 20 of 400 cells: 5 %
    codes = range(1, 18)
    with pytest.raises(InputError, match=r"5\.0 % of the sampled values: class codes 42 are "
                                         r"not codes of the land-cover scheme.*inputs\.landcover"
                                         r"\.scheme"):
        check_values(_da(lc, "1"), "landcover", name="inputs.landcover", codes=codes)
    lc[:, 0, :] = 5
    assert check_values(_da(lc, "1"), "landcover", codes=codes).ok


def test_warn_mode_and_sample_bound():
    with pytest.warns(PlausibilityWarning, match="kelvin labelled as degC"):
        rep = check_values(_da(TAS + 273.15, "degC"), "tas", how="warn")
    assert not rep.ok and rep.findings[0].kind == "unit_slip"
    big = _da(RNG.normal(5, 10, (24, 300, 300)), "degC")
    rep = check_values(big, "tas", sample=10_000)
    assert rep.n_sampled <= 10_000 and rep.n_steps == 12 and rep.ok


def test_annual_fluxes_use_the_annual_range():
    npp_y = _da(RNG.uniform(100, 900, (2, 10, 10)), "g C m-2 yr-1")
    rep = check_values(npp_y, "npp")
    assert rep.ok and rep.valid_range == (-2400.0, 18000.0)


def test_implausibly_small_without_a_typical_factor():
    tiny = _da(RNG.uniform(0.1, 0.8, (24, 20, 20)) * 1e-8, "1")
    rep = check_values(tiny, "ndvi", how="report", source_units="0.0001")
    (f,) = rep.findings
    assert f.kind == "too_small" and f.share == 1.0 and "below the least plausible 0.01" in f.found
