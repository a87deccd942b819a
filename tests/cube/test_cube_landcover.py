import dask.array as dsa
import numpy as np
import pytest
import rioxarray
import xarray as xr

from carbonsink.cube import (GridSpec, class_labels, landcover_mask, landcover_table, pixel_area,
                             reclassify, regrid)
from carbonsink.errors import UnknownNameError

G = GridSpec("EPSG:4326", 1.0, (0.0, 0.0, 18.0, 1.0))

SEVEN = {1: "forest", 2: "forest", 3: "forest", 4: "forest", 5: "forest", 6: "grassland",
         7: "grassland", 8: "grassland", 9: "grassland", 10: "grassland", 11: "wetland",
         12: "cropland", 13: "urban", 14: "cropland", 15: "barren", 16: "barren", 17: "water"}
EIGHT = {1: "forest", 2: "forest", 3: "forest", 4: "forest", 5: "forest", 6: "shrub",
         7: "shrub", 8: "shrub", 9: "grassland", 10: "grassland", 11: "wetland", 12: "cropland",
         13: "impervious", 14: "cropland", 15: "barren", 16: "barren", 17: "water"}


def _igbp():
    codes = np.array([[0, *range(1, 18)]], dtype="uint8")  # 0 = unclassified in MCD12Q1
    return xr.DataArray(codes, dims=("y", "x"), coords=G.coords(),
                        name="landcover").rio.write_crs(4326)


@pytest.mark.parametrize("to, table", [("7class", SEVEN), ("8class", EIGHT)])
def test_reclassify_igbp_table(to, table):
    lc = _igbp()
    out = reclassify(lc, scheme="igbp", to=to)
    labels = class_labels(to)
    names = [labels.get(int(c), None) for c in out.values[0]]
    assert names[0] is None and out.values[0, 0] == 0
    assert names[1:] == [table[c] for c in range(1, 18)]
    assert out.dtype == np.uint8
    assert out.attrs["flag_meanings"].split() == [labels[k] for k in sorted(labels)]
    np.testing.assert_array_equal(out.attrs["flag_values"], sorted(labels))
    assert out.rio.crs.to_epsg() == 4326 and out.rio.nodata == 0


def test_reclassify_overrides_fill_nan_and_lazy(no_compute):
    lc = _igbp().astype("float32")
    lc[0, 0] = np.nan
    lc[0, 17] = 255  # fill value
    lazy = lc.chunk({"x": 6})
    with no_compute():
        out = reclassify(lazy, overrides={8: "forest"})
        assert isinstance(out.data, dsa.Array)
    v = out.values[0]
    labels = class_labels("7class")
    assert v[0] == 0 and v[17] == 0
    assert labels[v[8]] == "forest" and labels[v[9]] == "grassland"
    assert "8->forest" in out.attrs["overrides"]
    with pytest.raises(UnknownNameError, match="unknown 7class class name"):
        reclassify(lc, overrides={8: "jungle"})
    with pytest.raises(UnknownNameError, match="unknown land-cover scheme 'esa'.*clcd, igbp, mcd12c1"):
        reclassify(lc, scheme="esa")


def test_landcover_mask_default_and_options():
    lc = _igbp()
    keep = landcover_mask(lc)  # water and snow/ice always masked
    v = keep.values[0]
    assert not v[0]                    # unclassified is never kept
    assert not v[17] and not v[15]     # water, snow and ice
    assert v[16] and v[13] and v[1:15].all()
    keep2 = landcover_mask(lc, mask_classes=("water", "snow_ice", "barren", "urban"))
    assert not keep2.values[0, 16] and not keep2.values[0, 13] and keep2.values[0, 12]
    assert not landcover_mask(lc, mask_classes=("WAT", 10)).values[0, 10]
    with pytest.raises(UnknownNameError, match=r"unknown land-cover class 'ocean'.*water"):
        landcover_mask(lc, mask_classes=("ocean",))


def test_mcd12c1_scheme_zero_is_water():
    lc = xr.DataArray(np.array([[0, 1, 15, 16, 255]], dtype="uint8"), dims=("y", "x"),
                      coords=GridSpec("EPSG:4326", 1.0, (0, 0, 5, 1)).coords(), name="landcover")
    keep = landcover_mask(lc, scheme="mcd12c1").values[0]
    np.testing.assert_array_equal(keep, [False, True, False, True, False])
    assert landcover_table("mcd12c1")[0]["group"] == "water"
    labels = class_labels("7class")
    cls = reclassify(lc, scheme="mcd12c1").values[0]
    assert [labels.get(int(c)) for c in cls] == ["water", "forest", "barren", "barren", None]


def test_user_table(tmp_path):
    p = tmp_path / "lc.csv"
    p.write_text("scheme,code,name,short,group,7class,8class\n"
                 "mine,1,Trees,T,forest,forest,forest\nmine,2,Lake,L,water,water,water\n")
    lc = xr.DataArray(np.array([[1, 2, 3]], dtype="uint8"), dims=("y", "x"),
                      coords=GridSpec("EPSG:4326", 1.0, (0, 0, 3, 1)).coords(), name="landcover")
    np.testing.assert_array_equal(landcover_mask(lc, scheme="mine", table=p).values[0],
                                  [True, False, False])


# ----------------------------------------------------------------------------- real MCD12C1


@pytest.fixture(scope="module")
def mcd(mcd12c1):
    da = rioxarray.open_rasterio(mcd12c1, chunks={"y": 600, "x": 1200}).squeeze("band", drop=True)
    return da.rename("landcover")


def test_mcd12c1_water_share_of_windows(mcd):
    pacific = mcd.sel(x=slice(-150, -140), y=slice(10, 0))
    assert float(1 - landcover_mask(pacific, scheme="mcd12c1").mean()) == 1.0
    east_china = mcd.sel(x=slice(110, 125), y=slice(40, 25))  # coast and Yellow/East China Sea
    keep = landcover_mask(east_china, scheme="mcd12c1")
    share = float(1 - keep.mean())
    assert share == pytest.approx(float((east_china == 0).mean()) +
                                  float((east_china == 15).mean()) +
                                  float((east_china == 255).mean()))
    assert 0.15 < share < 0.6
    inner_mongolia = mcd.sel(x=slice(110, 115), y=slice(44, 41))
    assert float(1 - landcover_mask(inner_mongolia, scheme="mcd12c1").mean()) < 0.05


def test_mcd12c1_regrid_mode_and_area_shares(mcd):
    win = mcd.sel(x=slice(105, 115), y=slice(45, 35))
    tgt = GridSpec("EPSG:4326", 0.25, (105.0, 35.0, 115.0, 45.0))
    out = regrid(win, tgt)  # mode, lazy
    assert out.dtype == np.uint8 and out.rio.nodata == 255
    classes = reclassify(win, scheme="mcd12c1")
    a = pixel_area(win)
    grass = int(np.flatnonzero(np.array(classes.attrs["flag_meanings"].split()) == "grassland")[0]) + 1
    fine_share = float(a.where(classes == grass).sum() / a.sum())
    coarse_cls = reclassify(out, scheme="mcd12c1")
    ac = pixel_area(out)
    coarse_share = float(ac.where(coarse_cls == grass).sum() / ac.sum())
    assert 0.2 < fine_share < 0.9
    assert coarse_share == pytest.approx(fine_share, abs=0.1)
