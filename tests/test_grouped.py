"""The engine of area-weighted group sums (carbonsink._grouped) against plain numpy sums, and
summarise_many against one summarise per request."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink._grouped import grouped_sums
from carbonsink.cube import pixel_area
from carbonsink.cube.grid import GridSpec
from carbonsink.regions import summarise, summarise_many


def _case(seed=0):
    rng = np.random.default_rng(seed)
    f = rng.normal(100, 30, (6, 40, 30)).astype("float32")
    f[rng.random(f.shape) < 0.1] = np.nan
    w = rng.uniform(1.0, 2.0, (40, 30))
    w[3, 4] = np.nan
    t = np.arange(6)
    da = xr.DataArray(f, dims=("time", "y", "x"), coords={"time": t})
    return rng, da, xr.DataArray(w, dims=("y", "x"))


def _ref(f, w, member):
    """area, sum, count of the cells where ``member`` (broadcast over time) holds."""
    valid = ~np.isnan(f) & member
    wn = np.where(np.isnan(w), 0.0, w)
    area = (valid * wn).sum(axis=(-2, -1))
    total = np.where(valid, np.nan_to_num(f) * wn, 0.0).sum(axis=(-2, -1))
    return area, total, valid.sum(axis=(-2, -1))


@pytest.mark.parametrize("lazy", [False, True])
def test_label_share_and_varying_label_sums_match_numpy(lazy):
    rng, da, w = _case()
    codes = xr.DataArray(rng.integers(-1, 4, (40, 30)), dims=("y", "x"))
    varying = xr.DataArray(rng.integers(-1, 4, (6, 40, 30)), dims=("time", "y", "x"),
                           coords={"time": da["time"]})
    share = rng.uniform(0, 1, (3, 40, 30))
    share[share < 0.4] = 0.0
    shares = xr.DataArray(share, dims=("zone", "y", "x"))

    def ch(x):
        return x.chunk({"y": 15, "x": 11}) if lazy else x

    both = grouped_sums(ch(da), ch(w), ("y", "x"), codes=ch(codes), n_groups=4,
                        shares=ch(shares)).values
    per_year = grouped_sums(ch(da), ch(w), ("y", "x"), codes=ch(varying), n_groups=4).values
    whole = grouped_sums(ch(da), ch(w), ("y", "x")).values
    f, wv = da.values, w.values
    for g in range(4):
        for k, ref in enumerate(_ref(f, wv, (codes.values == g)[None])):
            np.testing.assert_allclose(both[k, :, g], ref, rtol=1e-12)
        for k, ref in enumerate(_ref(f, wv, varying.values == g)):
            np.testing.assert_allclose(per_year[k, :, g], ref, rtol=1e-12)
    for z in range(3):
        valid = ~np.isnan(f)
        ws = np.nan_to_num(wv) * share[z]
        np.testing.assert_allclose(both[1, :, 4 + z],
                                   np.where(valid, np.nan_to_num(f) * ws, 0).sum(axis=(1, 2)),
                                   rtol=1e-12)
        np.testing.assert_allclose(both[2, :, 4 + z], (valid & (share[z] > 0)).sum(axis=(1, 2)))
    for k, ref in enumerate(_ref(f, wv, np.ones((1, 40, 30), bool))):
        np.testing.assert_allclose(whole[k, :, 0], ref, rtol=1e-12)


def test_label_sums_add_each_cell_in_pixel_order_bit_for_bit():
    """The label sums are those of adding cell by cell in pixel order (np.add.at), exactly:
    labels in runs (a region, patches) and scattered, cells outside every group (-1, or a
    label >= n_groups), NaN values and NaN weights, constant and per-year labels."""
    rng, da, w = _case(5)
    f = da.values
    patches = np.repeat(rng.integers(-1, 4, (40, 6)), 5, axis=1)  # runs of 5 along x
    scattered = rng.integers(-1, 5, (6, 40, 30))  # 4 is >= n_groups: in no group
    for labels in (patches, scattered):
        codes = xr.DataArray(labels, dims=da.dims[-labels.ndim:],
                             coords={"time": da["time"]} if labels.ndim == 3 else None)
        got = grouped_sums(da, w, ("y", "x"), codes=codes, n_groups=4).values
        lab = np.broadcast_to(labels, f.shape).reshape(6, -1)
        fv, wv = f.reshape(6, -1).astype(np.float64), np.broadcast_to(w.values.ravel(), (6, 1200))
        want = np.zeros((3, 6, 4))
        for t in range(6):
            ok = (lab[t] >= 0) & (lab[t] < 4) & ~np.isnan(fv[t])
            np.add.at(want[2, t], lab[t][ok], 1.0)
            ok &= ~np.isnan(wv[t])
            np.add.at(want[0, t], lab[t][ok], wv[t][ok])
            np.add.at(want[1, t], lab[t][ok], wv[t][ok] * fv[t][ok])
        assert np.array_equal(got, want)


def test_summarise_many_equals_one_summarise_per_request():
    grid = GridSpec(crs="EPSG:4326", resolution=1.0, bounds=(100, 30, 106, 34))
    area = pixel_area(grid)
    rng = np.random.default_rng(3)
    t = pd.date_range("2001", periods=4, freq="YS")
    reqs = []
    zones = xr.DataArray(np.repeat([[0, 1, 1, 2, 2, 7]], 4, axis=0).astype("int32"),
                         dims=("y", "x"), coords={"y": area["y"], "x": area["x"]},
                         attrs={"zone_names": json.dumps({"1": "a", "2": "b", "7": "c"})})
    for i, how in enumerate([("mean",), ("mean", "total", "area")]):
        da = xr.DataArray(rng.normal(50, 10, (4, 4, 6)), dims=("time", "y", "x"),
                          coords={"time": t, "y": area["y"], "x": area["x"]}, name=f"v{i}",
                          attrs={"units": "g C m-2 yr-1"}).chunk({"y": 2, "x": 3})
        reqs.append(dict(da=da, area=area, zones=zones, how=how))
    together = summarise_many(reqs)
    for r, df in zip(reqs, together):
        pd.testing.assert_frame_equal(df, summarise(**r))
    # a zone label without a name counts in the region only; zone "c" (label 7) is listed
    assert list(dict.fromkeys(together[1]["zone"])) == ["study area", "a", "b", "c"]


def test_class_area_sums_equal_the_bincount_of_the_cells():
    """The one-pass class areas are, bit for bit, ``np.bincount`` of the (block, zone, class)
    index of every cell with a listed class, a finite area and not the fill value."""
    from carbonsink._grouped import class_area_sums

    rng = np.random.default_rng(4)
    nb, npix, nz = 3, 5000, 4
    codes = np.array([0.0, 1.0, 2.0, 5.0])
    cv = rng.choice([0.0, 1.0, 2.0, 5.0, 7.0, 255.0, np.nan], (nb, npix))
    zone = rng.integers(0, nz, npix).astype(np.int64)
    area = rng.random(npix) * 1e3
    area[::97] = np.nan
    got = class_area_sums(cv, codes, zone, area, 255.0, nz)
    ci = np.full(cv.shape, -1)
    for i, c in enumerate(codes):
        ci[cv == c] = i
    ok = (ci >= 0) & np.isfinite(area)[None] & (cv != 255.0)
    flat = ((np.arange(nb)[:, None] * nz + zone[None]) * len(codes) + ci)[ok]
    w = np.broadcast_to(area[None], cv.shape)[ok]
    want = np.bincount(flat, weights=w, minlength=nb * nz * len(codes)).reshape(nb, nz, -1)
    np.testing.assert_array_equal(got, want)
