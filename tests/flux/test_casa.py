"""CASA NPP and its components (METHODS §2.2)."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr


from carbonsink.errors import AlignmentError, InputError, InvalidArgumentError
from carbonsink.flux import npp, water


def test_parameter_tables_are_package_data():
    emax = npp.epsilon_max_table()
    assert emax == {"enf": 0.389, "dnf": 0.485, "ebf": 0.985, "dbf": 0.692, "mf": 0.475,
                    "shrub": 0.429, "grassland": 0.542, "cropland": 0.542,
                    "other_vegetated": 0.542}
    lc = npp.landcover_table()
    assert lc[1] == "enf" and lc[2] == "ebf" and lc[3] == "dnf" and lc[10] == "grassland"
    assert lc[17] == "non_vegetated" and lc[0] == "non_vegetated"
    e = npp.epsilon_max_from_landcover(np.array([1, 4, 10, 17, 255, 300]))
    np.testing.assert_allclose(e[:3], [0.389, 0.692, 0.542])
    assert np.isnan(e[3:]).all()
    e2 = npp.epsilon_max_from_landcover(np.array([10]), epsilon_max={"grassland": 0.6})
    assert e2[0] == 0.6
    with pytest.raises(InputError, match="unknown vegetation types"):
        npp.landcover_table({1: "jungle"})


def test_landcover_table_from_csv(tmp_path):
    p = tmp_path / "lc.csv"
    p.write_text("code,vegetation_type\n1,grassland\n2,non_vegetated\n")
    assert npp.landcover_table(str(p)) == {1: "grassland", 2: "non_vegetated"}
    e = npp.epsilon_max_from_landcover(np.array([1, 2]), lc_table=str(p))
    assert e[0] == 0.542 and np.isnan(e[1])


def test_fpar_bounds_and_clipping():
    f = npp.fpar_ndvi_sr(np.array([-0.5, 0.023, 0.634, 0.99, np.nan]), 0.023, 0.634)
    np.testing.assert_allclose(f[:4], [0.001, 0.001, 0.95, 0.95])
    assert np.isnan(f[4])
    g = npp.fpar_minmax(np.array([-0.2, 0.1, 0.5, 0.9]), 0.1, 0.5)
    np.testing.assert_allclose(g, [0.0, 0.0, 1.0, 1.0])


def test_tepsilon2_paper_mode_half_rule():
    t = np.array([5.0, 6.9, 20.0, 30.0, 30.5])
    paper = npp.tepsilon2(t, 20.0, mode="paper")
    ref = npp.tepsilon2(20.0, 20.0, c=1.184)
    assert paper[0] == pytest.approx(0.5 * ref)  # 15 °C below Topt (> 13)
    assert paper[4] == pytest.approx(0.5 * ref)  # 10.5 above (> 10)
    assert paper[3] == pytest.approx(npp.tepsilon2(30.0, 20.0, c=1.184))  # exactly 10 above
    rec = npp.tepsilon2(t, 20.0)
    assert rec[0] != pytest.approx(paper[0])
    assert npp.tepsilon2(20.0, 20.0, mode="paper", half_rule=False) == pytest.approx(ref)


def test_wepsilon_carry_forward_and_bounds():
    eet = np.array([[0.0], [5.0], [0.0], [0.0], [50.0], [200.0], [1.0], [0.0]])
    pet = np.array([[0.0], [10.0], [0.0], [-1.0], [100.0], [100.0], [np.nan], [0.0]])
    w = npp.wepsilon(eet, pet)[:, 0]
    assert w[0] == 1.0  # first month frozen: 1
    assert w[1] == pytest.approx(0.75)
    assert w[2] == w[3] == pytest.approx(0.75)  # carried forward
    assert w[4] == pytest.approx(0.75)
    assert w[5] == 1.0  # EET > PET clipped to 1
    assert np.isnan(w[6]) and np.isnan(w[7])  # NaN is not carried forward
    w2 = npp.wepsilon(eet, pet, carry_forward=False)[:, 0]
    assert np.isnan(w2[2])


def test_optimum_temperature_multi_year_mean_and_floor():
    nd = np.array([0.1] * 24)
    nd[6], nd[12 + 7] = 0.8, 0.9  # peak in July of year 1, August of year 2
    t = np.arange(24, dtype=float) - 10.0
    topt = npp.optimum_temperature(nd[:, None], t[:, None])
    assert topt[0] == pytest.approx(((6 - 10) + (19 - 10)) / 2)
    t_cold = t - 30
    assert npp.optimum_temperature(nd[:, None], t_cold[:, None])[0] == 0.0
    assert npp.optimum_temperature(nd[:, None], t_cold[:, None], floor=None)[0] < 0


def test_casa_single_pixel_matches_components():
    """CASA on one pixel/year equals the hand-assembled component chain."""
    time = pd.date_range("2003-01-01", periods=12, freq="MS")
    m = np.arange(12)
    tas = 5 + 15 * np.sin(2 * np.pi * (m - 3) / 12)
    ndvi = 0.2 + 0.4 * np.clip(np.sin(2 * np.pi * (m - 3) / 12), 0, None)
    sol = 300 + 200 * np.sin(2 * np.pi * (m - 3) / 12)
    pr = np.array([2, 3, 8, 15, 35, 60, 90, 85, 50, 30, 12, 10], dtype=float)

    def da(v, u):
        return xr.DataArray(v[:, None], dims=("time", "x"), coords={"time": time},
                            attrs={"units": u})

    lc = xr.DataArray([10], dims=("x",), attrs={"units": "1"})
    out = npp.casa(da(ndvi, "1"), da(tas, "degC"), da(sol, "MJ m-2 month-1"), lc,
                   pr=da(pr, "mm month-1"), ndvi_bounds={"grassland": (0.2, 0.6)})
    ep = water.thornthwaite_pet(tas)
    we = npp.wepsilon(water.zhou_zhang_eet(pr, ep), water.zhou_zhang_pet(pr, ep))
    topt = tas[np.argmax(ndvi)]
    f = npp.fpar_ndvi_sr(ndvi, 0.2, 0.6)
    eps = npp.light_use_efficiency(tas, topt, we, 0.542)
    expected = npp.apar(sol, f) * eps
    expected[tas <= -10] = 0.0
    np.testing.assert_allclose(out.values[:, 0], expected, rtol=1e-12)
    assert out.attrs["units"] == "g C m-2 month-1" and out.attrs["model"] == "casa"
    assert out.values[0, 0] == 0.0  # January T = -10 °C -> ε = 0


def test_casa_grid_properties(inputs):
    out = npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"],
                   pr=inputs["pr"])
    lc = inputs["landcover"].values
    nonveg = np.isin(lc, [16, 17])
    assert np.isnan(out.values[:, nonveg]).all()
    veg = out.values[:, ~nonveg]
    assert np.isfinite(veg).all() and (veg >= 0).all()
    cold = inputs["tas"].values[:, ~nonveg] <= -10
    assert (veg[cold] == 0).all()
    assert out.dims == ("time", "y", "x")


def test_casa_user_eet_pet_and_paper_mode(inputs):
    ep = water.thornthwaite_pet(inputs["tas"])
    eet = water.zhou_zhang_eet(inputs["pr"], ep)
    pet = water.zhou_zhang_pet(inputs["pr"], ep)
    a = npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"],
                 pr=inputs["pr"])
    b = npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"],
                 eet=eet, pet=pet)
    np.testing.assert_allclose(a.values, b.values, rtol=1e-12)
    c = npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"],
                 eet=eet, pet=pet, mode="paper")
    assert '"fpar": "minmax"' in c.attrs["parameters"] and '"c": 1.184' in c.attrs["parameters"]
    assert not np.allclose(np.nan_to_num(a.values), np.nan_to_num(c.values))
    with pytest.raises(InputError, match="both eet and pet"):
        npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"], eet=eet)
    with pytest.raises(InputError, match="needs pr"):
        npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"])
    with pytest.raises(InvalidArgumentError, match="fpar"):
        npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"],
                 pr=inputs["pr"], fpar="ndvi")


def test_casa_yearly_landcover_maps_months_to_years(inputs):
    lc = inputs["landcover"]
    years = pd.DatetimeIndex(["2003-01-01", "2004-01-01", "2005-01-01"])
    lc_y = xr.concat([lc, lc.where(False, 17), lc], dim=xr.DataArray(years, dims="time",
                                                                       name="time"))
    lc_y.attrs["units"] = "1"
    bounds = {"enf": (0.1, 0.7), "dbf": (0.1, 0.7), "shrub": (0.1, 0.7),
              "grassland": (0.1, 0.7), "cropland": (0.1, 0.7)}
    a = npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], lc, pr=inputs["pr"],
                 ndvi_bounds=bounds)
    b = npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], lc_y, pr=inputs["pr"],
                 ndvi_bounds=bounds)
    assert np.isnan(b.sel(time="2004").values).all()
    np.testing.assert_array_equal(a.sel(time="2005").values, b.sel(time="2005").values)


def test_ndvi_percentile_bounds_close_to_numpy():
    rng = np.random.default_rng(3)
    time = pd.date_range("2001-01-01", periods=24, freq="MS")
    nd = xr.DataArray(rng.beta(2, 3, (24, 40, 50)) * 1.1 - 0.1, dims=("time", "y", "x"),
                      coords={"time": time}, attrs={"units": "1"})
    lc = xr.DataArray(rng.choice([1, 10, 12, 17], (40, 50)), dims=("y", "x"),
                      attrs={"units": "1"})
    nd[3, 4, 5] = np.nan
    b = npp.ndvi_percentile_bounds(nd, lc)
    for code, vt in [(10, "grassland"), (12, "cropland"), (1, "enf")]:
        vals = nd.values[:, lc.values == code].ravel()
        lo, hi = np.nanpercentile(vals, [5, 95])
        assert float(b.sel(vegetation_type=vt, bound="min")) == pytest.approx(lo, abs=1e-3)
        assert float(b.sel(vegetation_type=vt, bound="max")) == pytest.approx(hi, abs=1e-3)
    assert np.isnan(b.sel(vegetation_type="ebf")).all()  # no pixels of that type
    b2 = npp.ndvi_percentile_bounds(nd, lc, percentiles=(0, 100))
    vals = nd.values[:, lc.values == 10]
    assert float(b2.sel(vegetation_type="grassland", bound="min")) == pytest.approx(
        np.nanmin(vals), abs=5e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_ndvi_class_histogram_counts_every_value_once(dtype):
    """The compiled (class, bin) histogram equals an independent count: NumPy's
    ``np.histogram`` per class on the 4000 bins over [-1, 1] (values outside [-1, 1] in the
    edge bins), NaN, ±inf and pixels without a vegetation type left out, one class map
    broadcast over time or one per step."""
    rng = np.random.default_rng(11)
    nt, ny, nx = 7, 9, 11
    vals = (rng.random((nt, ny, nx)) * 2.4 - 1.2).astype(dtype)
    vals[0, 0, :4] = [np.nan, np.inf, -np.inf, 1.0]
    vals[1, 1, :5] = [-1.0, 0.0, 0.9995, -0.9995, 2.0]  # bin edges and clipped values
    static = rng.integers(-1, 4, (ny, nx)).astype(np.int16)
    yearly = rng.integers(-1, 4, (nt, ny, nx)).astype(np.int16)
    nbins = npp._NBINS
    edges = np.linspace(-1.0, 1.0, nbins + 1)
    for cls in (static, yearly):
        got = npp._hist_block(vals, cls, 4).reshape(4, nbins)
        full = np.broadcast_to(cls, vals.shape)
        # exactly the documented bin rule, in the dtype of the values
        ok = np.isfinite(vals) & (full >= 0)
        b = np.clip(((vals[ok] + 1.0) * (nbins / 2.0)).astype(np.int64), 0, nbins - 1)
        np.testing.assert_array_equal(
            got.ravel(), np.bincount(full[ok].astype(np.int64) * nbins + b,
                                     minlength=4 * nbins))
        for c in range(4):
            v = vals[(full == c) & np.isfinite(vals)].astype(np.float64)
            want, _ = np.histogram(np.clip(v, -1.0, 1.0), bins=edges)
            # np.histogram puts the right edge of the last bin in it, as the clip does
            assert got[c].sum() == v.size
            np.testing.assert_array_equal(np.abs(got[c] - want) <= 1, True)
            assert np.abs(got[c] - want).sum() <= 2 * int(np.sum(np.isclose(
                (v + 1) * nbins / 2, np.round((v + 1) * nbins / 2), atol=1e-3)))


def test_casa_rejects_mismatched_months(inputs):
    with pytest.raises(AlignmentError, match="different 'time'"):
        npp.casa(inputs["ndvi"], inputs["tas"].isel(time=slice(0, 24)),
                 inputs["sol"], inputs["landcover"], pr=inputs["pr"])


def test_casa_numpy_path_equals_xarray(inputs):
    a = npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"],
                 pr=inputs["pr"])
    b = npp.casa(inputs["ndvi"].values, inputs["tas"].values, inputs["sol"].values,
                 inputs["landcover"].values, pr=inputs["pr"].values,
                 time=inputs["tas"].time.values)
    np.testing.assert_array_equal(a.values, b)
