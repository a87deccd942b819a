"""A (y, x) mask given to ``summarise`` is folded into the groups instead of masking every step
of the data: the tables must equal those of the data masked beforehand, for label zones,
share zones and no zones, lazy or not; a mask with more dimensions still works."""

import json

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.cube import GridSpec, pixel_area
from carbonsink.regions import summarise, summarise_many

G = GridSpec("EPSG:4326", 1.0, (100.0, 20.0, 108.0, 26.0))  # 6 rows x 8 columns


def _cube(seed=0):
    rng = np.random.default_rng(seed)
    v = rng.normal(300.0, 80.0, (5, *G.shape))
    v[rng.random(v.shape) < 0.1] = np.nan
    t = pd.date_range("2001-01-01", periods=5, freq="YS")
    da = xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t, **G.coords()},
                      name="nep", attrs={"units": "g C m-2 yr-1"})
    return da.rio.write_crs(4326).rio.write_transform(G.transform)


def _labels():
    lab = np.zeros(G.shape, dtype="int32")
    lab[:3, :4], lab[3:, 2:6], lab[:2, 6:] = 1, 2, 3
    return xr.DataArray(lab, dims=("y", "x"), coords=G.coords(),
                        attrs={"zone_names": json.dumps({1: "a", 2: "b", 3: "c"})})


def _shares():
    rng = np.random.default_rng(3)
    s = rng.random((2, *G.shape))
    s[:, rng.random(G.shape) < 0.3] = 0.0
    return xr.DataArray(s, dims=("zone", "y", "x"), coords={"zone": [1, 2], **G.coords()})


def _mask():
    m = np.random.default_rng(7).random(G.shape) > 0.35
    return xr.DataArray(m, dims=("y", "x"), coords=G.coords())


@pytest.mark.parametrize("lazy", [False, True])
@pytest.mark.parametrize("zones", ["none", "labels", "shares"])
def test_folded_mask_equals_masked_data(lazy, zones):
    da, m = _cube(), _mask()
    z = {"none": None, "labels": _labels(), "shares": _shares()}[zones]
    area = pixel_area(G)
    if lazy:
        da = da.chunk({"time": -1, "y": 3, "x": 4})
    got = summarise(da, area, zones=z, how=("mean", "total", "area"), mask=m)
    want = summarise(da.where(m), area, zones=z, how=("mean", "total", "area"))
    pd.testing.assert_frame_equal(got, want)
    # and the mask matters: without it the numbers differ
    free = summarise(da, area, zones=z, how=("mean",))
    assert not np.allclose(free["value"], got[got.statistic == "mean"]["value"].values,
                           equal_nan=True)


def test_mask_with_a_time_dimension_masks_the_data():
    da = _cube()
    m = xr.DataArray(np.random.default_rng(1).random(da.shape) > 0.5, dims=da.dims,
                     coords=da.coords)
    (got,) = summarise_many([dict(da=da, area=pixel_area(G), zones=_shares(), mask=m,
                                  how=("mean",))])
    want = summarise(da.where(m), pixel_area(G), zones=_shares(), how=("mean",))
    pd.testing.assert_frame_equal(got, want)
