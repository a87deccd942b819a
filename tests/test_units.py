"""Tests of the canonical variable registry and unit conversions (units.py)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.errors import UnitError, UnknownVariableError
from carbonsink.units import (
    VARIABLES,
    canonical_units,
    ensure_units,
    get_variable,
    parse_units,
    to_canonical,
    to_units,
    units_compatible,
)


def monthly(values, units, start="2001-01-01"):
    time = pd.date_range(start, periods=len(values), freq="MS")
    return xr.DataArray(np.asarray(values, float), dims="time", coords={"time": time},
                        attrs={"units": units}, name="x")


def test_registry_has_required_variables():
    for name in ["npp", "gpp", "ndvi", "tas", "pr", "sol", "pet", "eet", "soc", "landcover",
                 "rs", "rh", "nep"]:
        v = VARIABLES[name]
        assert v.units and v.long_name
        lo, hi = v.valid_range
        assert lo < hi
    assert get_variable("TEM").name == "tas"
    assert VARIABLES["landcover"].resampling == "mode"
    assert VARIABLES["tas"].resampling == "average"


def test_unknown_variable_lists_valid_names():
    with pytest.raises(UnknownVariableError, match="valid names are: .*npp"):
        get_variable("nppp")


def test_canonical_units_per_period():
    assert canonical_units("npp") == "g C m-2 month-1"
    assert canonical_units("npp", "year") == "g C m-2 yr-1"
    assert canonical_units("npp", None) == "g C m-2"
    assert canonical_units("tas", "year") == "degC"


@pytest.mark.parametrize(
    "found, target, raw, expected",
    [
        ("0.1 degC", "degC", 253.0, 25.3),
        ("K", "degC", 273.15, 0.0),
        ("degC", "K", 0.0, 273.15),
        ("0.1 mm", "mm month-1", 1234.0, 123.4),
        ("kg C m-2", "g C m-2", 1.5, 1500.0),
        ("t C ha-1", "kg C m-2", 30.0, 3.0),
        ("g C m-2", "kg C m-2", 250.0, 0.25),
        ("0.0001 kg C m-2 yr-1", "g C m-2 yr-1", 4321.0, 432.1),  # MOD17A3HGF DN x scale
        ("0.0001", "1", 6543.0, 0.6543),  # MOD13 NDVI DN
        ("%", "1", 50.0, 0.5),
    ],
)
def test_scalar_conversions(found, target, raw, expected):
    assert to_units(np.array(raw), target, found=found) == pytest.approx(expected, rel=1e-12,
                                                                         abs=1e-12)


def test_rate_to_monthly_total_uses_true_day_count():
    # W m-2 monthly mean -> MJ m-2 month-1 = W m-2 x 0.0864 x days (METHODS 1.1)
    da = monthly([100.0] * 3, "W m-2", start="2004-01-01")  # 2004 is a leap year
    out = to_canonical(da, "sol")
    np.testing.assert_allclose(out.values, [100 * 0.0864 * 31, 100 * 0.0864 * 29,
                                            100 * 0.0864 * 31])
    assert out.attrs["units"] == "MJ m-2 month-1"
    mm = to_canonical(monthly([2.0, 2.0], "mm d-1", start="2001-02-01"), "pr")
    np.testing.assert_allclose(mm.values, [56.0, 62.0])
    # CMIP precipitation flux kg m-2 s-1 (water: 1 kg m-2 = 1 mm)
    cm = to_canonical(monthly([1e-5], "kg m-2 s-1"), "pr")
    np.testing.assert_allclose(cm.values, [1e-5 * 86400 * 31])
    # CLM g C m-2 s-1 -> g C m-2 month-1
    clm = to_canonical(monthly([1e-6], "g C m-2 s-1", start="2001-04-01"), "npp")
    np.testing.assert_allclose(clm.values, [1e-6 * 86400 * 30])


def test_monthly_total_back_to_rate():
    da = monthly([31.0], "mm month-1")
    np.testing.assert_allclose(to_units(da, "mm d-1").values, [1.0])


def test_month_to_year_is_not_a_unit_change():
    with pytest.raises(UnitError, match="aggregate in time"):
        to_units(monthly([1.0], "g C m-2 month-1"), "g C m-2 yr-1", variable="npp")


def test_annual_product_keeps_its_period():
    da = monthly([500.0], "g C m-2 yr-1")
    out = to_canonical(da, "npp")
    assert out.attrs["units"] == "g C m-2 yr-1"
    assert out.name == "npp"
    assert out.attrs["long_name"] == "net primary production"


def test_missing_and_wrong_units_raise_unit_error_naming_everything():
    da = monthly([1.0], "degC")
    with pytest.raises(UnitError) as err:
        to_canonical(da, "pr")
    msg = str(err.value)
    assert "'pr'" in msg and "mm month-1" in msg and "degC" in msg and "Fix" in msg
    del da.attrs["units"]
    with pytest.raises(UnitError, match="no 'units' attribute"):
        to_canonical(da, "tas")
    with pytest.raises(UnitError, match="unknown unit .blah."):
        to_canonical(da.assign_attrs(units="furlongs fortnight-1 blah"), "tas")


def test_ensure_units_numpy_passthrough_and_dataarray_conversion():
    arr = np.array([1.0, 2.0])
    assert ensure_units(arr, "degC", "tas") is arr
    k = monthly([273.15, 283.15], "K")
    np.testing.assert_allclose(ensure_units(k, "degC", "tas").values, [0.0, 10.0])
    with pytest.raises(UnitError):
        ensure_units(monthly([1.0], "mm month-1").drop_attrs(), "mm month-1", "pr")


def test_conversion_is_lazy_and_preserves_attrs():
    dask = pytest.importorskip("dask")
    da = monthly(np.arange(24.0), "0.1 degC").chunk({"time": 6})
    da.attrs["long_name"] = "air temperature"

    def fail(*args, **kwargs):
        raise AssertionError("computed")

    with dask.config.set(scheduler=fail):
        out = to_canonical(da, "tas")
    assert out.chunks is not None
    assert out.attrs["long_name"] == "air temperature"
    np.testing.assert_allclose(out.values, np.arange(24.0) / 10)


def test_integer_dn_becomes_float():
    da = monthly([6543, 100], "0.0001").astype("int16")
    da.attrs["units"] = "0.0001"
    out = to_canonical(da, "ndvi")
    assert out.dtype.kind == "f"
    np.testing.assert_allclose(out.values, [0.6543, 0.01], rtol=1e-6)


def test_parse_units_carbon_marker_and_compatibility():
    p = parse_units("g C m-2 month-1")
    assert p.period == "month"
    assert units_compatible("kg C m-2 s-1", "g C m-2 month-1")
    assert not units_compatible("degC", "g C m-2 month-1")
    assert units_compatible("g C m-2 yr-1", "g C m-2 month-1", ignore_period=True)
