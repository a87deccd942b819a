"""Class maps (seeds 001, 003, 004, sink/source) and area shares."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

import carbonsink.stats as cs
from carbonsink.errors import InvalidArgumentError, UnitError


def test_sen_mk_nine_classes_boundaries():
    slope = xr.DataArray([1, 1, 1, 1, 1, 0, -1, -1, -1, -1, np.nan, 2.0])
    z = xr.DataArray([0.5, 1.645, 1.7, 1.96, 2.576, 3.0, -1.0, -1.7, -2.2, -3.0, 1.0, 2.6])
    cls = cs.sen_mk_classes(slope, z)
    np.testing.assert_array_equal(cls.values, [1, 1, 2, 2, 3, 0, -1, -2, -3, -4, -128, 4])
    assert cls.dtype == np.int8
    assert list(cls.attrs["flag_values"]) == list(range(-4, 5))
    assert cls.attrs["flag_meanings"].split()[0] == "extremely_significant_decrease"
    assert cls.encoding["_FillValue"] == cs.CLASS_FILL
    rounded = cs.sen_mk_classes(slope, z, critical=(1.64, 1.96, 2.58))
    assert int(rounded[1]) == 2 and int(rounded[4]) == 3


def test_sen_mk_classes_from_dataset():
    t = np.arange(24.0)
    y = np.stack([t, -t, np.sin(t)])
    ds = cs.mann_kendall(xr.DataArray(y, dims=("pixel", "time")))
    cls = cs.sen_mk_classes(ds)
    assert cls.values[0] == 4 and cls.values[1] == -4
    with pytest.raises(InvalidArgumentError):
        cs.sen_mk_classes(ds["slope"])
    with pytest.raises(InvalidArgumentError):
        cs.sen_mk_classes(ds, critical=(2.0, 1.0, 3.0))


def test_ols_six_and_four_classes():
    slope = xr.DataArray([1, 1, 1, 1, -1, -1, -1, 0, np.nan])
    p = xr.DataArray([0.001, 0.01, 0.049, 0.05, 0.005, 0.02, 0.5, 0.001, 0.01])
    six = cs.ols_six_classes(slope, p)
    np.testing.assert_array_equal(six.values, [3, 2, 2, 1, -3, -2, -1, 0, -128])
    four = cs.ols_four_classes(slope, p)
    np.testing.assert_array_equal(four.values, [2, 2, 2, 1, -2, -2, -1, 0, -128])
    labels = cs.class_labels(four)
    assert labels[2] == "significant increase (SI)" and labels[-1] == "insignificant decrease (ID)"
    ds = xr.Dataset({"slope": slope, "p": p})
    xr.testing.assert_equal(cs.ols_six_classes(ds), six)


def test_sink_source_schemes():
    nep = xr.DataArray([-5.0, 0.0, 10.0, 199.9, 200.0, 400.0, 49.9, 50.0, np.nan],
                       attrs={"units": "g C m-2 yr-1"})
    np.testing.assert_array_equal(cs.sink_source_classes(nep).values,
                                  [-1, 0, 1, 1, 1, 1, 1, 1, -128])
    np.testing.assert_array_equal(cs.sink_source_classes(nep, "001").values,
                                  [0, 1, 1, 1, 2, 3, 1, 1, -128])
    c2 = cs.sink_source_classes(nep, "002")
    np.testing.assert_array_equal(c2.values, [0, 1, 1, 2, 2, 2, 1, 2, -128])
    assert cs.class_labels(c2) == {0: "source", 1: "weak sink", 2: "strong sink"}
    own = cs.sink_source_classes(nep, thresholds=[0, 100], labels=["source", "weak", "strong"])
    np.testing.assert_array_equal(own.values[:4], [0, 1, 1, 2])
    with pytest.raises(InvalidArgumentError):
        cs.sink_source_classes(nep, "003")
    with pytest.raises(InvalidArgumentError):
        cs.sink_source_classes(nep, thresholds=[0, 100], labels=["a"])


def test_class_area_shares_weighted_by_area_and_units():
    cls = cs.sink_source_classes(xr.DataArray([[-1.0, 1.0], [2.0, np.nan]], dims=("y", "x")))
    area_m2 = xr.DataArray([[1e6, 3e6], [4e6, 9e6]], dims=("y", "x"), attrs={"units": "m2"})
    df = cs.class_area_shares(cls, area_m2)
    assert list(df.columns) == ["class", "label", "area_km2", "share_percent"]
    rows = df.set_index("label")
    assert rows.loc["source", "area_km2"] == pytest.approx(1.0)
    assert rows.loc["sink", "area_km2"] == pytest.approx(7.0)
    assert rows.loc["neutral", "area_km2"] == 0.0
    assert rows.loc["sink", "share_percent"] == pytest.approx(87.5)
    assert df.share_percent.sum() == pytest.approx(100.0)
    km2 = cs.class_area_shares(cls, (area_m2 / 1e6).assign_attrs(units="km2"))
    np.testing.assert_allclose(km2.area_km2, df.area_km2)
    with pytest.raises(UnitError):
        cs.class_area_shares(cls, area_m2.assign_attrs(units=None).drop_attrs())
    with pytest.raises(UnitError):
        cs.class_area_shares(cls, area_m2.assign_attrs(units="kg"))


def test_class_area_shares_by_time():
    nep = xr.DataArray([[[-1.0, 1.0]], [[1.0, 1.0]]], dims=("time", "y", "x"),
                       coords={"time": [2001, 2002]})
    cls = cs.sink_source_classes(nep)
    area = xr.DataArray([[2.0, 2.0]], dims=("y", "x"), attrs={"units": "km2"})
    df = cs.class_area_shares(cls, area, by="time")
    assert list(df.columns) == ["time", "class", "label", "area_km2", "share_percent"]
    y1 = df[df.time == 2001].set_index("label")
    assert y1.loc["source", "share_percent"] == pytest.approx(50.0)
    y2 = df[df.time == 2002].set_index("label")
    assert y2.loc["sink", "share_percent"] == pytest.approx(100.0)
    with pytest.raises(InvalidArgumentError):
        cs.class_area_shares(cls, area)
