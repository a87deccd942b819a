"""Class maps as Cloud-Optimized GeoTIFFs with a colour table and category names;
continuous maps with units in the band metadata."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import numpy as np
import pytest
import rasterio
import xarray as xr
from rasterio.enums import ColorInterp

from carbonsink.errors import InputError
from carbonsink.io import write_cog
from carbonsink.io.geotiff import class_palette
from carbonsink.stats import sink_source_classes
from carbonsink.stats import mann_kendall, sen_mk_classes

Y = 40.0 - 0.1 * (np.arange(40) + 0.5)
X = 100.0 + 0.1 * (np.arange(48) + 0.5)


def _cube():
    rng = np.random.default_rng(2)
    t = np.arange(2001, 2016)
    v = rng.normal(0, 1, (t.size, Y.size, X.size)) + np.linspace(-0.4, 0.4, X.size) * \
        (t - t.mean())[:, None, None]
    v[:, 0, :5] = np.nan
    return xr.DataArray(v, dims=("time", "y", "x"), coords={"time": t, "y": Y, "x": X})


def _categories(path):
    root = ET.parse(str(path) + ".aux.xml").getroot()
    return [c.text or "" for c in root.iter("Category")]


def _rat(path):
    root = ET.parse(str(path) + ".aux.xml").getroot()
    return [[f.text for f in row.iter("F")] for row in root.iter("Row")]


def _validate(path):
    cogeo = pytest.importorskip("rio_cogeo.cogeo")
    ok, errors, _ = cogeo.cog_validate(str(path), quiet=True)
    assert ok, errors


def test_signed_class_map_round_trips_with_colour_table_and_names(tmp_path):
    classes = sen_mk_classes(mann_kendall(_cube())).rio.write_crs(4326)
    codes = list(range(-4, 5))
    labels = classes.attrs["labels"]
    out = write_cog(classes, tmp_path / "nep_sen_mk_class.tif", blocksize=16)
    with rasterio.open(out) as src:
        assert src.dtypes[0] == "uint8" and src.nodata == 0
        assert src.colorinterp[0] == ColorInterp.palette
        assert src.overviews(1) and src.block_shapes[0] == (16, 16)
        raw = src.read(1)
        cmap = src.colormap(1)
        band = src.tags(1)
        assert src.descriptions[0].startswith("Sen slope / Mann-Kendall")
    # values: code - min + 1, nodata 0 where the input had no class
    expected = np.where(classes.values == -128, 0, classes.values.astype(int) + 5)
    np.testing.assert_array_equal(raw, expected)
    assert (raw[0, :5] == 0).all()
    pal = class_palette(codes, labels)
    for c in codes:
        h = pal[c].lstrip("#")
        assert cmap[c + 5][:3] == tuple(int(h[i:i + 2], 16) for i in (0, 2, 4))
    assert json.loads(band["class_codes"]) == {str(c + 5): c for c in codes}
    assert json.loads(band["class_names"])["9"] == "extremely significant increase"
    cats = _categories(out)
    assert cats[0] == "" and cats[1:] == labels
    rat = _rat(out)
    assert [int(r[0]) for r in rat] == [c + 5 for c in codes]
    assert [int(r[1]) for r in rat] == codes and [r[2] for r in rat] == labels
    _validate(out)


def test_class_map_after_a_zarr_round_trip_and_non_negative_codes(tmp_path):
    mean = _cube().mean("time") * 400
    classes = sink_source_classes(mean, scheme="001").rio.write_crs(4326)
    xr.Dataset({"c": classes}).to_zarr(tmp_path / "c.zarr")
    back = xr.open_zarr(tmp_path / "c.zarr")["c"]  # fill decoded to NaN, float
    assert back.dtype.kind == "f"
    out = write_cog(back.rio.write_crs(4326), tmp_path / "sink.tif", blocksize=16)
    with rasterio.open(out) as src:
        raw = src.read(1)
        assert src.nodata == 255 and src.dtypes[0] == "uint8"
        assert "class_codes" not in src.tags(1)  # codes stored as they are
        cmap = src.colormap(1)
    np.testing.assert_array_equal(raw, np.where(classes.values == -128, 255,
                                                classes.values.astype(int)))
    assert _categories(out) == ["source", "low sink", "medium sink", "high sink"]
    assert cmap[0][:3] == (215, 48, 31)  # the source class is red
    _validate(out)
    # the same path rewritten as a continuous layer loses the stale side-car
    write_cog(mean.rio.write_crs(4326).assign_attrs(units="g C m-2 yr-1"), out)
    assert not (tmp_path / "sink.tif.aux.xml").exists()


def test_continuous_map_has_units_and_description_in_the_band(tmp_path):
    da = (_cube().mean("time")).rio.write_crs(4326).rename("sen_slope")
    da.attrs = {"units": "g C m-2 yr-2", "long_name": "Theil-Sen slope"}
    out = write_cog(da, tmp_path / "slope.tif", blocksize=16)
    with rasterio.open(out) as src:
        assert src.units == ("g C m-2 yr-2",)
        assert src.tags(1)["units"] == "g C m-2 yr-2"
        assert src.tags()["units"] == "g C m-2 yr-2"
        assert src.descriptions == ("Theil-Sen slope",)
        assert src.colorinterp[0] == ColorInterp.gray
        np.testing.assert_array_equal(src.read(1, masked=True).filled(np.nan), da.values)
    assert not (tmp_path / "slope.tif.aux.xml").exists()
    _validate(out)


def test_values_outside_the_legend_are_refused(tmp_path):
    classes = sen_mk_classes(mann_kendall(_cube())).rio.write_crs(4326)
    bad = classes.copy(data=np.where(classes.values == 4, 7, classes.values).astype("int8"))
    with pytest.raises(InputError, match=r"not among its flag_values"):
        write_cog(bad, tmp_path / "bad.tif")
    assert not (tmp_path / "bad.tif").exists()
