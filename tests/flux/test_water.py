"""Thornthwaite PET and Zhou–Zhang EET (METHODS §2.2.3)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from flux_helpers import example_t

from carbonsink.errors import InputError, UnitError
from carbonsink.flux import water


def _series(values, start="2003-01-01", **coords):
    time = pd.date_range(start, periods=len(values), freq="MS")
    return xr.DataArray(np.asarray(values, float)[:, None], dims=("time", "x"),
                        coords={"time": time, **coords}, attrs={"units": "degC"})


def test_thornthwaite_zero_below_freezing_and_nan():
    t = example_t().copy()
    ep = water.thornthwaite_pet(t)
    assert np.all(ep[t <= 0] == 0) and np.all(ep[t > 0] > 0)
    t[3] = np.nan
    ep2 = water.thornthwaite_pet(t)
    assert np.isnan(ep2).all()  # NaN month -> NaN heat index for that year
    assert (water.thornthwaite_pet(np.full(12, -5.0)) == 0).all()


def _thornthwaite_reference(t, climatology=False):
    """The documented formula with plain powers, year by year, in float64 (independent of
    the kernel's exp/log evaluation): t (months, pixels) [degC], whole calendar years."""
    t = np.asarray(t, float)
    years = t.reshape(-1, 12, t.shape[-1])
    if climatology:
        tm = years.mean(axis=0)
        hi = np.where(tm > 0, np.abs(tm / 5) ** 1.514, 0).sum(axis=0)
        hi = np.broadcast_to(hi, (years.shape[0], t.shape[-1]))
    else:
        hi = np.where(years > 0, np.abs(years / 5) ** 1.514, 0).sum(axis=1)
        hi = np.where(np.isnan(years).any(axis=1), np.nan, hi)
    a = 6.75e-7 * hi ** 3 - 7.71e-5 * hi ** 2 + 1.792e-2 * hi + 0.49239
    out = np.zeros_like(years)
    for y in range(years.shape[0]):
        ok = (years[y] > 0) & (hi[y] > 0)
        with np.errstate(all="ignore"):
            out[y] = np.where(ok, 16 * (10 * years[y] / hi[y]) ** a[y], 0)
        out[y][np.isnan(years[y]) | np.isnan(np.broadcast_to(hi[y], years[y].shape))] = np.nan
    return out.reshape(t.shape)


@pytest.mark.parametrize("heat_index", ["annual", "climatology"])
def test_thornthwaite_matches_the_formula_on_a_grid(heat_index):
    """Many pixels and years, cold pixels, a year with a missing month, a pixel whose
    climatological heat index is 0 although single months are above 0."""
    rng = np.random.default_rng(11)
    t = rng.normal(8, 12, (60, 40)).astype("float32")
    t[:, 0] = -4.0
    t[::24, 1], t[12::24, 1] = 2.0, -10.0  # Januaries alternate: mean January < 0
    t[:, 1][np.arange(60) % 12 != 0] = -3.0
    if heat_index == "annual":
        t[17, 2] = np.nan  # one missing month: that year of that pixel is NaN
    got = water.thornthwaite_pet(t, heat_index=heat_index)
    assert got.dtype == np.float32
    want = _thornthwaite_reference(t, climatology=heat_index == "climatology")
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_allclose(got, want, rtol=2e-7, atol=0)
    assert (got[:, 0] == 0).all()
    if heat_index == "climatology":
        assert (got[:, 1] == 0).all()  # I = 0: no evapotranspiration even in warm months
    else:
        assert np.isnan(got[12:24, 2]).all() and not np.isnan(got[:12, 2]).any()


def test_thornthwaite_annual_heat_index_per_year():
    t = np.concatenate([example_t(), example_t() + 3])
    ep = water.thornthwaite_pet(t)
    np.testing.assert_allclose(ep[:12], water.thornthwaite_pet(example_t()))
    np.testing.assert_allclose(ep[12:], water.thornthwaite_pet(example_t() + 3))
    clim = water.thornthwaite_pet(t, heat_index="climatology")
    assert not np.allclose(clim, ep)
    same = np.concatenate([example_t(), example_t()])
    np.testing.assert_allclose(water.thornthwaite_pet(same, heat_index="climatology"),
                               water.thornthwaite_pet(same))
    with pytest.raises(InputError, match="complete calendar years"):
        water.thornthwaite_pet(_series(example_t()[:10]))


def test_daylength_correction():
    t = _series(example_t(), lat=("x", [0.0]))
    plain = water.thornthwaite_pet(t)
    corr = water.thornthwaite_pet(t, daylength_correction=True)
    days = t.time.dt.days_in_month.values
    # equator: 12-h days, the correction is the month-length factor d/30
    np.testing.assert_allclose(corr.values[:, 0], plain.values[:, 0] * days / 30, rtol=2e-3)
    north = water.thornthwaite_pet(t, daylength_correction=True, lat=np.array([50.0]))
    assert north.values[6, 0] > corr.values[6, 0]  # long July days at 50 °N
    with pytest.raises(InputError, match="latitudes"):
        water.thornthwaite_pet(_series(example_t()), daylength_correction=True)


def test_thornthwaite_units_boundary():
    t = _series(example_t())
    k = (t + 273.15).assign_attrs(units="K")
    np.testing.assert_allclose(water.thornthwaite_pet(k).values, water.thornthwaite_pet(t).values,
                               rtol=1e-10)
    with pytest.raises(UnitError, match="tas"):
        water.thornthwaite_pet(t.assign_attrs(units="mm month-1"))
    out = water.thornthwaite_pet(t)
    assert out.attrs["units"] == "mm month-1" and out.attrs["model"] == "thornthwaite1948"


def test_zhou_zhang_edge_cases():
    assert water.zhou_zhang_eet(0.0, 80.0) == 0.0
    assert water.zhou_zhang_eet(50.0, 0.0) == 0.0
    assert water.zhou_zhang_pet(50.0, 0.0) == 0.0
    assert water.zhou_zhang_rn(0.0, 80.0) == 0.0
    assert np.isnan(water.zhou_zhang_eet(np.nan, 80.0))
    assert water.zhou_zhang_eet(-5.0, 80.0) == 0.0  # negative P clipped
    # EET > PET possible when P >> E_p (Wε is then clipped to 1)
    assert water.zhou_zhang_eet(200.0, 100.0) > water.zhou_zhang_pet(200.0, 100.0)
    p = np.linspace(0, 300, 61)
    e = water.zhou_zhang_eet(p, 80.0)
    assert np.all(np.diff(e) >= 0) and np.all(e <= p + 1e-12)
