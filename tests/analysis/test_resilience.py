"""Tests of the probability-attenuation resilience (carbonsink.analysis.resilience and
carbonsink.stats.windows; paper 004 Eq. 7–12, METHODS §8.2)."""

from __future__ import annotations

import dask
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.analysis import MemoryContext, run_analysis
from carbonsink.analysis.base import TIDY_COLUMNS
from carbonsink.analysis.resilience import (change_counts, count_trends, decay_fits, fit_decay,
                                            maintained_counts, maintenance_surface,
                                            maintenance_table, resilience_dataset,
                                            resilience_grade, resilience_windows, slope_surface)
from carbonsink.cube import GridSpec, pixel_area
from carbonsink.errors import InputError, InvalidArgumentError
from carbonsink.stats import expanding_slopes, window_slopes

# --------------------------------------------------------------------------- 004 Table 2
# maintained-grid counts printed in paper 004, Table 2 (China, MuSyQ NPP, t' = 2000)
T2_YEARS = np.arange(2000, 2019)
T2_POS = [250139, 239740, 234023, 227525, 223575, 219457, 215577, 211820, 208897, 205734,
          202627, 200074, 197873, 195627, 193896, 192211, 190575, 189153, 187513]
T2_NEG = [134180, 93389, 79037, 68794, 61061, 55182, 50254, 47142, 44265, 41809, 39510,
          37720, 35503, 33249, 31906, 30707, 29414, 27925, 26226]
T2_POS_PCT = [100, 95.84, 93.56, 90.96, 89.38, 87.73, 86.18, 84.68, 83.51, 82.25, 81.01, 79.99,
              79.11, 78.21, 77.52, 76.84, 76.19, 75.62, 74.96]
T2_NEG_PCT = [100, 69.60, 58.90, 51.27, 45.51, 41.13, 37.45, 35.13, 32.99, 31.16, 29.45, 28.11,
              26.46, 24.78, 23.78, 22.88, 21.92, 20.81, 19.55]
T2_CHANGE = [51190, 71259, 88000, 99683, 109680, 118488, 125357, 131157, 136776, 142182,
             146525, 150943, 155443, 158517, 161401, 164330, 167241, 170580]
T2_CHANGE_PCT = [2.18, 5.21, 8.96, 13.20, 17.87, 22.92, 28.26, 33.84, 39.66, 45.72, 51.96,
                 58.38, 65.00, 71.75, 78.62, 85.62, 92.74, 100]


def _t2_counts():
    return pd.DataFrame({"zone": "China", "year": T2_YEARS, "n_positive": T2_POS,
                         "n_negative": T2_NEG})


def test_table2_change_counts_and_cumulative_ratio():
    change, ratio = change_counts(T2_POS, T2_NEG)
    np.testing.assert_array_equal(change, T2_CHANGE)
    np.testing.assert_allclose(ratio, T2_CHANGE_PCT, atol=0.005)
    tab = maintenance_table(_t2_counts())
    pct = tab[(tab.variable == "positive") & (tab.statistic == "percent")].value.to_numpy()
    np.testing.assert_allclose(pct, T2_POS_PCT, atol=0.005)
    pct = tab[(tab.variable == "negative") & (tab.statistic == "percent")].value.to_numpy()
    np.testing.assert_allclose(pct, T2_NEG_PCT, atol=0.005)
    ch = tab[(tab.variable == "change") & (tab.statistic == "count")]
    assert ch.year.tolist() == list(range(2001, 2019))
    np.testing.assert_array_equal(ch.value.to_numpy(), T2_CHANGE)


@pytest.mark.parametrize("variant, tau_p, tau_n, lam_p, lam_n", [
    ("nls", 64.95, 10.00, 0.960, 0.792),          # METHODS §8.2 reproduction table
    ("loglinear", 66.96, 13.26, None, None),
    ("lambda1", 52.81, 7.35, 1.0, 1.0),
])
def test_table2_decay_fits_reproduce_methods(variant, tau_p, tau_n, lam_p, lam_n):
    q_p = np.asarray(T2_POS, float) / T2_POS[0]
    q_n = np.asarray(T2_NEG, float) / T2_NEG[0]
    fp = fit_decay(T2_YEARS, q_p, 2000, variant=variant)
    fn = fit_decay(T2_YEARS, q_n, 2000, variant=variant)
    assert fp["flag"] == "ok" and fn["flag"] == "ok"
    assert fp["tau"] == pytest.approx(tau_p, abs=0.01)
    assert fn["tau"] == pytest.approx(tau_n, abs=0.01)
    if lam_p is not None:
        assert fp["lambda"] == pytest.approx(lam_p, abs=0.0005)
        assert fn["lambda"] == pytest.approx(lam_n, abs=0.0005)
    assert 0.5 < fp["r2"] <= 1 and 0.5 < fn["r2"] <= 1
    # R² is 1 - SSE/SST on q, computed by hand
    t = T2_YEARS - 2000.0
    fit = fp["lambda"] * np.exp(-t / fp["tau"])
    assert fp["r2"] == pytest.approx(1 - ((q_p - fit) ** 2).sum()
                                     / ((q_p - q_p.mean()) ** 2).sum(), rel=1e-12)


def test_table2_decay_fits_table_and_rs_grade():
    fits = decay_fits(_t2_counts(), 2000)
    rs = fits[(fits.variable == "rs") & (fits.fit == "nls")].iloc[0]
    assert rs.value == pytest.approx(64.95 - 10.00, abs=0.02)
    assert rs.grade == "strong" and rs.units == "yr"
    assert set(fits.fit) == {"nls", "loglinear", "lambda1"}


def test_table2_count_slopes():
    tr = count_trends(_t2_counts())
    get = dict(zip(tr.variable, tr.value))
    assert round(get["negative"]) == -4162      # 004 §4.3: N⁻ over 2000–2018
    assert round(get["change"]) == 6211         # 004 §4.3: change count over 2001–2018


def test_fit_flags():
    yrs = np.arange(2000, 2010)
    flat = fit_decay(yrs, np.ones(10), 2000)
    assert np.isnan(flat["tau"]) and "does not change" in flat["flag"]
    rising = 1.0 + 0.05 * (yrs - 2000)
    for variant in ("nls", "loglinear", "lambda1"):
        r = fit_decay(yrs, rising, 2000, variant=variant)
        assert np.isnan(r["tau"]) and np.isnan(r["lambda"]) and "tau <= 0" in r["flag"], r
    few = fit_decay(yrs[:2], [1.0, 0.5], 2000)
    assert np.isnan(few["tau"]) and "too few" in few["flag"]
    zero = fit_decay(yrs, np.r_[1.0, 0.5, np.zeros(8)], 2000, variant="loglinear")
    assert np.isnan(zero["tau"]) and "<= 0" in zero["flag"]
    # an exact exponential is recovered by all variants
    exact = 0.9 * np.exp(-(yrs - 2000) / 12.0)
    for variant in ("nls", "loglinear"):
        r = fit_decay(yrs, exact, 2000, variant=variant)
        assert r["tau"] == pytest.approx(12.0, rel=1e-6) and r["lambda"] == \
            pytest.approx(0.9, rel=1e-6)
    with pytest.raises(InvalidArgumentError):
        fit_decay(yrs, exact, 2000, variant="cubic")


@pytest.mark.parametrize("rs, grade", [
    (501, "extremely strong"), (500, "stronger"), (100.5, "stronger"), (100, "strong"),
    (0, "strong"), (-0.1, "weak"), (-100, "weak"), (-100.1, "weaker"),
    (float("nan"), "undetermined")])
def test_grades(rs, grade):
    assert resilience_grade(rs) == grade


# --------------------------------------------------------------------------- synthetic NPP

G = GridSpec("EPSG:4326", 1.0, (100.0, 30.0, 104.0, 32.0))  # 2 x 4 cells
YEARS = np.arange(1991, 2011)   # t0 = 1991, t' = 2000, evaluation 2001–2010
T_REF = 2000
EVAL = np.arange(2000, 2011)


def _series(case: str) -> np.ndarray:
    k = (YEARS - YEARS[0]).astype(float)
    y = 300.0 + 5.0 * k
    if case == "up":
        return y
    if case == "down":
        return 300.0 - 5.0 * k
    if case == "up_then_down_2005":        # the expanding slope turns negative in 2005
        return np.where(YEARS < 2005, y, -2000.0)
    if case == "down_then_up_2003":        # turns positive in 2003
        return np.where(YEARS < 2003, 300.0 - 5.0 * k, 5000.0)
    if case == "flip_2003_back_2004":      # negative in 2003, positive again from 2004
        return np.where(YEARS < 2003, y, np.where(YEARS == 2003, -2000.0, 9000.0))
    if case == "flat":
        return np.full(YEARS.size, 250.0)
    if case == "nan":
        return np.full(YEARS.size, np.nan)
    if case == "gappy_up":                 # 2 missing years, still increasing
        out = y.copy()
        out[[2, 11]] = np.nan
        return out
    raise KeyError(case)


CASES = [["up", "down", "up_then_down_2005", "down_then_up_2003"],
         ["flip_2003_back_2004", "flat", "nan", "gappy_up"]]

# prescribed slope surface S per evaluation year (2000..2010) and maintenance P
_S = {
    "up": [1] * 11, "down": [-1] * 11, "gappy_up": [1] * 11,
    "up_then_down_2005": [1] * 5 + [-1] * 6,
    "down_then_up_2003": [-1] * 3 + [1] * 8,
    "flip_2003_back_2004": [1] * 3 + [-1] + [1] * 7,
    "flat": [0] * 11, "nan": [0] * 11,
}
_P = {
    "up": [1] * 11, "down": [-1] * 11, "gappy_up": [1] * 11,
    "up_then_down_2005": [1] * 5 + [0] * 6,
    "down_then_up_2003": [-1] * 3 + [0] * 8,
    "flip_2003_back_2004": [1] * 3 + [0] * 8,
    "flat": [0] * 11, "nan": [0] * 11,
}
_STACK = {"up": 11, "down": -11, "gappy_up": 11, "up_then_down_2005": 5,
          "down_then_up_2003": -3, "flip_2003_back_2004": 3, "flat": 0, "nan": 0}


def _npp(chunks=None, dtype=np.float64) -> xr.DataArray:
    v = np.stack([np.stack([_series(c) for c in row], -1) for row in CASES], -2)  # (t, y, x)
    t = pd.date_range(f"{YEARS[0]}-01-01", periods=YEARS.size, freq="YS")
    da = xr.DataArray(v.astype(dtype), dims=("time", "y", "x"),
                      coords={"time": t, **G.coords()}, name="npp",
                      attrs={"units": "g C m-2 yr-1"})
    return da.chunk(chunks) if chunks is not None else da


def _prescribed(table):
    return np.array([[table[c] for c in row] for row in CASES])  # (y, x, year)


def _polyfit_reference(v, windows, min_valid=3):
    out = np.full((len(windows), *v.shape[1:]), np.nan)
    for w, (s, e) in enumerate(windows):
        for i in range(v.shape[1]):
            for j in range(v.shape[2]):
                m = (YEARS >= s) & (YEARS <= e) & np.isfinite(v[:, i, j])
                if m.sum() >= min_valid and np.ptp(YEARS[m]) > 0:
                    out[w, i, j] = np.polyfit(YEARS[m], v[m, i, j], 1)[0]
    return out


@pytest.mark.parametrize("window_start", ["t0", "tref"])
def test_window_slopes_equal_polyfit(window_start):
    rng = np.random.default_rng(3)
    v = rng.normal(400.0, 60.0, (YEARS.size, 3, 5)) + 4.0 * (YEARS - 2000)[:, None, None]
    v[rng.random(v.shape) < 0.1] = np.nan
    v[:, 2, 4] = np.nan
    t = pd.date_range(f"{YEARS[0]}-01-01", periods=YEARS.size, freq="YS")
    da = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t},
                      attrs={"units": "g C m-2 yr-1"})
    windows = resilience_windows(YEARS, t_ref=T_REF, window_start=window_start)
    ref = _polyfit_reference(v, windows)
    got = window_slopes(da, windows)
    assert got.dims == ("window", "y", "x") and got.attrs["units"] == "g C m-2 yr-2"
    np.testing.assert_allclose(got.values, ref, rtol=1e-9, atol=1e-9)
    assert np.array_equal(np.isnan(got.values), np.isnan(ref))
    lazy = window_slopes(da.chunk({"y": 2, "x": 3}), windows)
    np.testing.assert_allclose(lazy.values, ref, rtol=1e-9, atol=1e-9)
    # all expanding windows of the record
    ex = expanding_slopes(da)
    assert ex.year.values.tolist() == YEARS[1:].tolist()
    np.testing.assert_allclose(ex.values, _polyfit_reference(v, [(1991, e) for e in YEARS[1:]]),
                               rtol=1e-9, atol=1e-9)


def test_windows_of_004():
    w = resilience_windows(np.arange(1981, 2019))
    assert w[0] == (1981, 2000) and w[1] == (1981, 2001) and w[-1] == (1981, 2018)
    assert len(w) == 19
    w = resilience_windows(np.arange(1981, 2019), window_start="tref")
    assert w[0] == (1981, 2000) and w[1] == (2000, 2001) and w[-1] == (2000, 2018)
    with pytest.raises(InvalidArgumentError):
        resilience_windows(np.arange(1981, 2019), t_ref=1982)
    with pytest.raises(InvalidArgumentError):
        resilience_windows(np.arange(1981, 2019), eval_years=[1999])


def test_maps_equal_prescription():
    ds = resilience_dataset(_npp(), t_ref=T_REF)
    assert ds["year"].values.tolist() == EVAL.tolist()
    # the slopes are the polyfit slopes of the expanding windows
    windows = [(1991, e) for e in EVAL]
    np.testing.assert_allclose(ds["slope"].values, _polyfit_reference(_npp().values, windows),
                               rtol=1e-9, atol=1e-9)
    s = np.moveaxis(ds["slope_surface"].values, 0, -1)
    p = np.moveaxis(ds["maintenance"].values, 0, -1)
    np.testing.assert_array_equal(s, _prescribed(_S))
    np.testing.assert_array_equal(p, _prescribed(_P))
    np.testing.assert_array_equal(ds["maintained_years"].values, _prescribed(_STACK))
    assert ds["maintenance"].dtype == np.int8
    counts = maintained_counts(ds["maintenance"])
    exp_pos = [4, 4, 4, 3, 3, 2, 2, 2, 2, 2, 2]   # up, gappy_up, up_then_down, flip_back
    exp_neg = [2, 2, 2, 1, 1, 1, 1, 1, 1, 1, 1]   # down, down_then_up
    # hand count from the prescription
    p_all = _prescribed(_P).reshape(-1, EVAL.size)
    np.testing.assert_array_equal(counts.n_positive, (p_all == 1).sum(0))
    np.testing.assert_array_equal(counts.n_negative, (p_all == -1).sum(0))
    assert counts.n_positive.tolist() == exp_pos and counts.n_negative.tolist() == exp_neg


def test_maintenance_surface_once_broken_stays_zero():
    s = xr.DataArray(np.array([[1, 1, -1, 1, 1], [-1, -1, -1, 0, -1], [0, 1, 1, 1, 1]],
                              dtype=np.int8).T, dims=("year", "x"))
    p = maintenance_surface(s)
    np.testing.assert_array_equal(p.values.T, [[1, 1, 0, 0, 0], [-1, -1, -1, 0, 0],
                                               [0, 0, 0, 0, 0]])
    k = xr.DataArray([np.nan, 0.0, 2.0, -1e-12], dims="x")
    np.testing.assert_array_equal(slope_surface(k).values, [0, 0, 1, -1])


def _fail(dsk, keys, **kwargs):
    raise AssertionError("computed although it should stay lazy")


def test_lazy_dask_and_float32():
    npp = _npp({"time": -1, "y": 1, "x": 2}, dtype=np.float32)
    with dask.config.set(scheduler=_fail):
        ds = resilience_dataset(npp, t_ref=T_REF)
        for v in ds.data_vars:
            assert ds[v].chunks is not None, v
    assert ds["slope"].dtype == np.float32
    np.testing.assert_array_equal(np.moveaxis(ds["maintenance"].values, 0, -1),
                                  _prescribed(_P))


def test_not_annual_is_an_input_error():
    npp = _npp()
    monthly = npp.assign_coords(time=pd.date_range("2001-01-01", periods=YEARS.size,
                                                   freq="MS"))
    with pytest.raises(InputError, match="annual"):
        resilience_dataset(monthly)


def _zones():
    z = xr.DataArray(np.array([[1, 1, 2, 2], [2, 0, 1, 1]], dtype=np.int32), dims=("y", "x"),
                     coords=G.coords(), name="zones",
                     attrs={"zone_names": '{"1": "North", "2": "South"}',
                            "zone_layer": "province"})
    return z


def test_counts_per_zone():
    ds = resilience_dataset(_npp(), t_ref=T_REF)
    counts = maintained_counts(ds["maintenance"], _zones(), region="all")
    assert list(dict.fromkeys(counts.zone)) == ["all", "North", "South"]
    p = _prescribed(_P)
    z = _zones().values
    for code, name in ((1, "North"), (2, "South")):
        g = counts[counts.zone == name]
        np.testing.assert_array_equal(g.n_positive, (p[z == code] == 1).sum(0))
        np.testing.assert_array_equal(g.n_negative, (p[z == code] == -1).sum(0))
    tot = counts[counts.zone == "all"]
    zs = counts[counts.zone != "all"].groupby("year")[["n_positive", "n_negative"]].sum()
    # pixel (1, 1) is in no zone and is flat (0): zone sums equal the region
    np.testing.assert_array_equal(tot.n_positive.to_numpy(), zs.n_positive.to_numpy())


class _ZoneContext(MemoryContext):
    def zones(self):
        return _zones()


def test_registered_analysis_with_zones():
    npp = _npp()
    ds = xr.Dataset({"npp": npp})
    ctx = _ZoneContext({("annual", "given"): ds}, {"area": pixel_area(G)}, synthetic=True)
    res = run_analysis("resilience", ctx, t_ref=T_REF)
    for name in ("resilience_counts", "resilience_fits"):
        tab = res.tables[name]
        assert list(tab.columns[:3]) == list(TIDY_COLUMNS[:3])
        assert list(tab.columns[-4:]) == list(TIDY_COLUMNS[-4:])
    counts = res.tables["resilience_counts"]
    assert set(counts.zone) == {"study area", "North", "South"}
    region = counts[(counts.zone == "study area") & (counts.variable == "positive")
                    & (counts.statistic == "count")]
    p_all = _prescribed(_P).reshape(-1, EVAL.size)
    np.testing.assert_array_equal(region.value.to_numpy(), (p_all == 1).sum(0))
    fits = res.tables["resilience_fits"]
    assert {"nls", "loglinear", "lambda1"} <= set(fits.fit)
    assert {"rs", "tau", "lambda", "r2"} <= set(fits.variable)
    # the RS map carries the zone's RS value
    (prod,) = [d for d in res.datasets if d.name == "npp_resilience_zones"]
    rs = fits[(fits.variable == "rs") & (fits.fit == "nls")].set_index("zone").value
    rmap = prod.data["rs"].values
    z = _zones().values
    for code, name in ((1, "North"), (2, "South")):
        np.testing.assert_array_equal(rmap[z == code], rs[name])
    assert np.isnan(rmap[z == 0]).all()
    assert "given_npp_resilience_decay" in res.figures
    assert "given_npp_maintained_years_map" in res.figures
    assert len(res.sections) == 1 and res.sections[0].analysis == "resilience"


def test_registered_analysis_without_zones_and_options():
    ctx = MemoryContext({("annual", "a+b"): xr.Dataset({"npp": _npp()})},
                        {"area": pixel_area(G)})
    res = run_analysis("resilience", ctx, t_ref=T_REF, window_start="tref", fit="lambda1",
                       years=[2002, 2004, 2006])
    counts = res.tables["resilience_counts"]
    assert set(counts.zone) == {"study area"}
    assert sorted(set(counts.year)) == [2000, 2002, 2004, 2006]
    with pytest.raises(InvalidArgumentError):
        run_analysis("resilience", ctx, fit="cubic")
