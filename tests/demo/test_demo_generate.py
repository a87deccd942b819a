"""Tests of the synthetic demo-data generator (carbonsink.demo)."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import xarray as xr

rioxarray = pytest.importorskip("rioxarray")

from carbonsink import demo  # noqa: E402
from carbonsink.units import VARIABLES, canonical_units, to_units  # noqa: E402

KEYS = {"tas", "pr", "sol", "pet", "ndvi", "soc", "npp_annual", "gpp_8day", "landcover"}
MONTHLY = ("tas", "pr", "sol", "pet", "ndvi")


@pytest.fixture(scope="module")
def full():
    """Default demo (150 x 150, 2001-2021) and its truth, generated once."""
    return demo.generate_with_truth()


@pytest.fixture(scope="module")
def small():
    return demo.generate(seed=7, ny=24, nx=30, start=2003, end=2008)


def _area_weights(da):
    lat = np.deg2rad(da["y"])
    h = np.deg2rad(0.025)
    return np.sin(lat + h) - np.sin(lat - h)


def _regional(da, mask=None):
    if mask is not None:
        da = da.where(mask)
    return da.weighted(_area_weights(da)).mean(("y", "x"))


def _ols_slope(series):
    t = np.arange(len(series), dtype=float)
    return np.polyfit(t, np.asarray(series, float), 1)[0]


# ----------------------------------------------------------------- determinism


def test_same_seed_identical_arrays(small):
    again = demo.generate(seed=7, ny=24, nx=30, start=2003, end=2008)
    assert set(again) == set(small)
    for k in small:
        xr.testing.assert_identical(small[k], again[k])


def test_different_seed_differs(small):
    other = demo.generate(seed=8, ny=24, nx=30, start=2003, end=2008)
    for k in ("tas", "pr", "ndvi", "soc", "npp_annual", "gpp_8day"):
        assert not np.array_equal(small[k].values, other[k].values, equal_nan=True), k


# ----------------------------------------------------------------- structure


def test_keys_dims_shapes_dtypes(full):
    data, _ = full
    assert set(data) == KEYS
    for k in MONTHLY:
        da = data[k]
        assert da.dims == ("time", "y", "x")
        assert da.shape == (252, 150, 150)
        assert da.dtype == np.float32
        t = pd.DatetimeIndex(da.time.values)
        assert t[0] == pd.Timestamp("2001-01-01") and t[-1] == pd.Timestamp("2021-12-01")
        assert (t.day == 1).all()
    assert data["soc"].dims == ("y", "x")
    for k in ("npp_annual", "landcover"):
        t = pd.DatetimeIndex(data[k].time.values)
        assert data[k].shape == (21, 150, 150)
        assert list(t) == [pd.Timestamp(y, 1, 1) for y in range(2001, 2022)]
    assert data["landcover"].dtype == np.uint8
    assert data["gpp_8day"].shape == (966, 150, 150)
    assert data["gpp_8day"].dtype == np.float32


def test_grid_and_crs(full):
    data, _ = full
    for k, da in data.items():
        assert da.rio.crs is not None and da.rio.crs.to_epsg() == 4326, k
        assert "spatial_ref" in da.coords, k
        x, y = da.x.values, da.y.values
        np.testing.assert_allclose(np.diff(x), 0.05, atol=1e-9)
        np.testing.assert_allclose(np.diff(y), -0.05, atol=1e-9)  # north-up
        np.testing.assert_allclose([x[0], x[-1]], [110.025, 117.475], atol=1e-9)
        np.testing.assert_allclose([y[0], y[-1]], [48.475, 41.025], atol=1e-9)
        res = da.rio.resolution()
        np.testing.assert_allclose(res, (0.05, -0.05), atol=1e-9)
        np.testing.assert_allclose(da.rio.bounds(), (110.0, 41.0, 117.5, 48.5), atol=1e-9)


def test_units_and_synthetic_labels(full):
    data, truth = full
    expected = {"tas": "degC", "pr": "mm month-1", "sol": "MJ m-2 month-1",
                "pet": "mm month-1", "ndvi": "1", "soc": "kg C m-2",
                "npp_annual": "g C m-2 yr-1", "gpp_8day": "g C m-2", "landcover": "1"}
    for k, da in data.items():
        assert da.attrs["units"] == expected[k], k
        assert da.attrs["source"] == demo.SYNTHETIC_SOURCE
        assert da.attrs["synthetic"] == "true"
        assert "SYNTHETIC" in da.attrs["long_name"]
    # canonical units agree with the registry
    for k in MONTHLY + ("soc", "landcover"):
        assert data[k].attrs["units"] == canonical_units(k)
    assert data["npp_annual"].attrs["units"] == canonical_units("npp", "year")
    assert data["gpp_8day"].attrs["units"] == canonical_units("gpp", None)
    for da in list(truth.trends.values()) + list(truth.fields.values()):
        assert da.attrs["synthetic"] == "true"
    assert "synthetic" in demo.recipe().lower()
    assert demo.dataset_attrs()["synthetic"] == "true"


def test_chunks_give_dask(small):
    lazy = demo.generate(seed=7, ny=24, nx=30, start=2003, end=2008, chunks={"y": 12, "x": 15})
    assert lazy["tas"].chunks is not None
    assert lazy["tas"].chunks[0] == (72,)  # time stays whole
    np.testing.assert_array_equal(lazy["tas"].values, small["tas"].values)


# ----------------------------------------------------------------- plausibility


def test_plausible_ranges(full):
    data, _ = full
    rng = {"tas": (-30, 35), "pr": (0, 450), "sol": (100, 800), "pet": (0, 250),
           "ndvi": (-0.1, 0.9), "soc": (1, 8), "npp_annual": (50, 800), "gpp_8day": (0, 250)}
    for k, (lo, hi) in rng.items():
        a = data[k].values
        assert np.nanmin(a) >= lo, (k, np.nanmin(a))
        assert np.nanmax(a) <= hi, (k, np.nanmax(a))
    # registry plausibility (monthly canonical ranges)
    for k in ("tas", "pr", "sol", "pet", "ndvi", "soc"):
        lo, hi = VARIABLES[k].valid_range
        assert np.nanmin(data[k].values) >= lo and np.nanmax(data[k].values) <= hi
    # climatology looks like a continental monsoon steppe
    tas_m = _regional(data["tas"]).groupby("time.month").mean()
    pr_m = _regional(data["pr"]).groupby("time.month").mean()
    assert int(tas_m.idxmin()) == 1 and int(tas_m.idxmax()) == 7
    assert int(pr_m.idxmax()) in (7, 8)
    ndvi_m = _regional(data["ndvi"]).groupby("time.month").mean()
    assert int(ndvi_m.idxmax()) in (7, 8) and float(ndvi_m.max() - ndvi_m.min()) > 0.2
    # gradients: north colder, east wetter
    tmean = data["tas"].mean("time")
    assert float(tmean.isel(y=0).mean()) < float(tmean.isel(y=-1).mean()) - 3
    pann = data["pr"].groupby("time.year").sum().mean("year")
    assert float(pann.isel(x=-1).mean()) > float(pann.isel(x=0).mean()) + 150


def test_landcover_classes_and_nan_policy(full):
    data, truth = full
    lc = data["landcover"].values
    codes = set(np.unique(lc).tolist())
    assert codes <= set(range(1, 18))
    assert {10, 12, 13, 16, 17, 11, 7} <= codes and codes & {1, 2, 3, 4, 5}
    water_frac = (lc[0] == 17).mean()
    assert 0 < water_frac < 0.01
    npp = data["npp_annual"].values
    nonveg = np.isin(lc, (13, 16, 17))
    assert np.isnan(npp[nonveg]).all()
    assert np.isfinite(npp[~nonveg]).all()
    gpp = data["gpp_8day"].values.reshape(21, 46, 150, 150)
    assert np.isnan(gpp[np.broadcast_to(nonveg[:, None], gpp.shape)]).all()
    assert np.isnan(data["soc"].values[lc[0] == 17]).all()
    assert np.isfinite(data["soc"].values[lc[0] != 17]).all()
    for k in MONTHLY:
        assert np.isfinite(data[k].values).all(), k


# ----------------------------------------------------------------- land-cover transitions


def test_transitions_match_truth(full):
    data, truth = full
    lc = data["landcover"].values
    tm = truth.transition_matrix
    observed = pd.crosstab(lc[0].ravel(), lc[-1].ravel())
    for fr in observed.index:
        for to in observed.columns:
            assert observed.loc[fr, to] == tm.loc[fr, to]
    assert int(tm.to_numpy().sum()) == lc[0].size
    off = tm.to_numpy().sum() - np.trace(tm.to_numpy())
    assert off == int((lc[0] != lc[-1]).sum()) > 0
    pairs = {(t["from"], t["to"]) for t in truth.transitions}
    assert {(10, 12), (12, 13), (12, 10)} <= pairs
    assert any(to in (1, 2, 3, 4, 5) for _, to in pairs)  # some forest gain
    # each changed pixel changes exactly once, in change_year, and never back
    cy = truth.change_year.values
    changed = lc[0] != lc[-1]
    assert np.array_equal(changed, cy > 0)
    years = np.arange(2001, 2022)
    nchanges = (np.diff(lc.astype(int), axis=0) != 0).sum(axis=0)
    assert nchanges.max() == 1
    ys, xs = np.nonzero(changed)
    for j, i in zip(ys[:50], xs[:50]):
        k = int(np.argmax(lc[:, j, i] != lc[0, j, i]))
        assert years[k] == cy[j, i]
    assert sum(t["pixels"] for t in truth.transitions) == int(changed.sum())


# ----------------------------------------------------------------- prescribed trends


def test_tas_trend_recovered(full):
    data, truth = full
    annual = _regional(data["tas"]).groupby("time.year").mean()
    slope = _ols_slope(annual)
    expected = truth.regional_trends["tas_degC_per_yr"]
    assert expected == pytest.approx(0.04, rel=0.05)
    assert slope == pytest.approx(expected, rel=0.2)


def test_pr_trend_recovered(full):
    data, truth = full
    annual = _regional(data["pr"]).groupby("time.year").sum()
    slope = _ols_slope(annual)
    assert truth.regional_trends["pr_mm_per_yr2"] == pytest.approx(1.5, rel=0.05)
    assert slope == pytest.approx(truth.regional_trends["pr_mm_per_yr2"], rel=0.2)


def test_npp_trend_field_recovered(full):
    data, truth = full
    stable = truth.masks["stable"].values.astype(bool)
    y = data["npp_annual"].values.astype(float)
    t = np.arange(y.shape[0]) - (y.shape[0] - 1) / 2
    slope = np.tensordot(t, y, axes=(0, 0)) / (t * t).sum()
    prescribed = truth.trends["npp"].values
    assert np.isfinite(prescribed[stable]).all()
    err = np.abs(slope - prescribed)[stable]
    assert err.max() < 0.05  # only storage rounding (0.1 g C m-2) separates them
    neg = (prescribed[stable] < 0).mean()
    assert 0.02 < neg < 0.5  # some pixels brown, most green
    regional = _ols_slope(_regional(data["npp_annual"], truth.masks["stable"].astype(bool)))
    assert regional == pytest.approx(truth.regional_trends["npp_g_per_m2_yr2_stable"], rel=0.05)


def test_greening_trend(full):
    data, truth = full
    nd = data["ndvi"]
    gs = nd.where(nd.time.dt.month.isin([5, 6, 7, 8, 9]))
    annual = _regional(gs, truth.masks["stable"].astype(bool)).groupby("time.year").mean()
    slope = _ols_slope(annual)
    expected = truth.regional_trends["ndvi_gs_per_yr_stable"]
    assert expected > 0 and slope > 0
    # the vigour-driven part is prescribed; warming adds phenological greening
    assert expected * 0.7 < slope < expected * 2.0


def test_couplings_have_prescribed_signs(full):
    data, truth = full
    stable = truth.masks["stable"].values.astype(bool)

    def detrend(a):
        t = np.arange(a.shape[0]) - (a.shape[0] - 1) / 2
        a = a - a.mean(0)
        return a - t[:, None, None] * np.tensordot(t, a, axes=(0, 0)) / (t * t).sum()

    def corr(a, b):
        a, b = detrend(a), detrend(b)
        return (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))

    npp = data["npp_annual"].values.astype(float)
    pr = data["pr"].groupby("time.year").sum().values.astype(float)
    r = corr(npp, pr)[stable]
    assert np.median(r) > 0.7 and (r > 0).mean() > 0.95
    assert truth.couplings["npp_pr_elasticity"] > 0
    assert truth.couplings["expected_signs"]["npp_annual~pr_annual (detrended)"] == "+"
    # sol is reduced by rain (cloudiness) and PET follows temperature
    assert np.corrcoef(data["pet"].values[:, ::10, ::10].ravel(),
                       data["tas"].values[:, ::10, ::10].ravel())[0, 1] > 0.8
    # summer months only (season drives both up): cloud effect must be negative
    summer = data["sol"].time.dt.month.isin([6, 7, 8]).values
    s = data["sol"].values[summer][:, ::10, ::10].ravel()
    p = data["pr"].values[summer][:, ::10, ::10].ravel()
    assert np.corrcoef(s, p)[0, 1] < 0


# ----------------------------------------------------------------- 8-day GPP


def test_gpp_composite_structure(full):
    data, _ = full
    g = data["gpp_8day"]
    t = pd.DatetimeIndex(g.time.values)
    nd = g["ndays"].values
    assert len(t) == 46 * 21
    for year in range(2001, 2022):
        sel = t.year == year
        assert sel.sum() == 46
        doy = t[sel].day_of_year.to_numpy()
        np.testing.assert_array_equal(doy, 1 + 8 * np.arange(46))
        ndays = 366 if pd.Timestamp(year, 1, 1).is_leap_year else 365
        assert nd[sel].sum() == ndays
        assert (nd[sel][:-1] == 8).all() and nd[sel][-1] == ndays - 360
    assert np.nanmin(g.values) >= 0


def test_gpp_consistent_with_npp_and_ndvi(full):
    data, truth = full
    g = data["gpp_8day"]
    annual = g.groupby("time.year").sum(skipna=False).values
    npp = data["npp_annual"].values
    ratio = annual / npp
    ok = np.isfinite(ratio)
    cue = truth.fields["cue"].values
    np.testing.assert_allclose(ratio[ok], np.broadcast_to(1 / cue, ratio.shape)[ok], rtol=0.01)
    assert 1.8 < np.median(ratio[ok]) < 2.2
    # seasonal shape follows NDVI: growing-season share dominates
    gm = _regional(g).groupby("time.month").sum()
    assert float(gm.sel(month=[5, 6, 7, 8, 9]).sum() / gm.sum()) > 0.8
    assert float(gm.sel(month=[12, 1, 2]).sum() / gm.sum()) < 0.02


# ----------------------------------------------------------------- truth


def test_truth_object(full):
    _, truth = full
    assert isinstance(truth, demo.DemoTruth)
    for k in ("tas", "pr", "npp", "ndvi_peak", "ndvi_gs"):
        da = truth.trends[k]
        assert da.dims == ("y", "x") and "units" in da.attrs and da.rio.crs.to_epsg() == 4326
    d = truth.to_dict()
    json.dumps(d)  # serialisable
    assert d["synthetic"] is True
    ds = truth.to_dataset()
    assert "trend_tas" in ds and ds.attrs["synthetic"] == "true"


def test_truth_function_matches_generate_with_truth(small):
    t1 = demo.truth(seed=7, ny=24, nx=30, start=2003, end=2008)
    _, t2 = demo.generate_with_truth(seed=7, ny=24, nx=30, start=2003, end=2008)
    for k in t1.trends:
        xr.testing.assert_identical(t1.trends[k], t2.trends[k])
    pd.testing.assert_frame_equal(t1.transition_matrix, t2.transition_matrix)


def test_bad_arguments():
    with pytest.raises(ValueError):
        demo.generate(ny=2, nx=2)
    with pytest.raises(ValueError):
        demo.generate(start=2010, end=2005)


# ----------------------------------------------------------------- writing


def test_write_demo_inputs_round_trip(tmp_path, small):
    mapping = demo.write_demo_inputs(tmp_path, seed=7, ny=24, nx=30, start=2003, end=2008)
    json.dumps(mapping)
    import yaml

    assert yaml.safe_load(yaml.safe_dump(mapping)) == mapping
    assert set(mapping) == KEYS
    for role, spec in mapping.items():
        assert {"path", "variable", "units", "frequency"} <= set(spec), role
    assert not list(tmp_path.glob(".*tmp*")), "temporary files left behind"
    for f in ("README.txt", "demo_truth.json", "demo_truth.nc"):
        assert (tmp_path / f).exists()

    # climate.nc: CF-decoded values, then the mapping's units to canonical units
    clim = xr.open_dataset(tmp_path / mapping["tas"]["path"])
    try:
        assert clim.attrs["synthetic"] == "true"
        for role in ("tas", "pr", "sol", "pet"):
            spec = mapping[role]
            da = clim[spec["variable"]].load()
            assert da.attrs["units"] == spec["units"]
            assert da.attrs["grid_mapping"] == "spatial_ref"
            got = to_units(da.astype("float64"), canonical_units(role), variable=role)
            np.testing.assert_allclose(got.values, small[role].values, atol=1e-3, err_msg=role)
            np.testing.assert_array_equal(got.time.values, small[role].time.values)
        assert clim["pr"].dtype == np.int16
        assert clim.rio.crs.to_epsg() == 4326
    finally:
        clim.close()

    # NDVI GeoTIFF series
    pat = re.compile(mapping["ndvi"]["date_pattern"])
    files = sorted(tmp_path.glob(mapping["ndvi"]["path"]))
    assert len(files) == 72
    for f in files[::11]:
        m = pat.search(f.name)
        date = pd.Timestamp(int(m["year"]), int(m["month"]), 1)
        with rioxarray.open_rasterio(f, mask_and_scale=True) as r:
            assert r.rio.crs.to_epsg() == 4326
            assert r.attrs["synthetic"] == "true"
            np.testing.assert_allclose(r.squeeze("band").values,
                                       small["ndvi"].sel(time=date).values, atol=1e-6)
            # bit-identical coordinates across formats (no spurious misalignment)
            np.testing.assert_array_equal(r.x.values, small["ndvi"].x.values)
            np.testing.assert_array_equal(r.y.values, small["ndvi"].y.values)

    # SOC in t C ha-1
    with rioxarray.open_rasterio(tmp_path / mapping["soc"]["path"], mask_and_scale=True) as r:
        assert r.attrs["units"] == mapping["soc"]["units"] == "t C ha-1"
        got = to_units(r.squeeze("band", drop=True).astype("float64"), "kg C m-2",
                       variable="soc")
        np.testing.assert_allclose(got.values, small["soc"].values, atol=1e-5)

    # MODIS-like NPP / GPP (int16 DN, scale 0.0001 kg C m-2, fill -> NaN)
    for role, period in (("npp_annual", "year"), ("gpp_8day", None)):
        spec = mapping[role]
        with xr.open_dataset(tmp_path / spec["path"]) as ds:
            da = ds[spec["variable"]].load()
            assert ds[spec["variable"]].encoding["dtype"] == np.int16
        canon = "npp" if role == "npp_annual" else "gpp"
        got = to_units(da.astype("float64"), canonical_units(canon, period), variable=canon)
        np.testing.assert_allclose(got.values, small[role].values, atol=1e-3, equal_nan=True)
        np.testing.assert_array_equal(np.isnan(got.values), np.isnan(small[role].values))
        if role == "gpp_8day":
            np.testing.assert_array_equal(da["ndays"].values, small[role]["ndays"].values)

    # land cover, one band per year
    with rioxarray.open_rasterio(tmp_path / mapping["landcover"]["path"]) as r:
        assert r.shape == (6, 24, 30)
        np.testing.assert_array_equal(r.x.values, small["landcover"].x.values)
        np.testing.assert_array_equal(r.y.values, small["landcover"].y.values)
        np.testing.assert_array_equal(r.values, small["landcover"].values)
        assert [d[:4] for d in mapping["landcover"]["band_dates"]] == \
            [str(y) for y in range(2003, 2009)]
        assert list(r.attrs["long_name"]) == mapping["landcover"]["band_dates"]


def test_write_demo_inputs_reuses_data(tmp_path, small):
    mapping = demo.write_demo_inputs(tmp_path, seed=7, data=small, write_truth=False,
                                     ny=24, nx=30, start=2003, end=2008)
    assert (tmp_path / mapping["landcover"]["path"]).exists()
    assert not (tmp_path / "demo_truth.nc").exists()
