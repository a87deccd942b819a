"""Map layers of several products written as COGs on one shared pool: every file is written
when the block ends, the values round-trip, and a failing layer raises its own error after
the others are done (no file of it left)."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from pipeline_helpers import write_study

from carbonsink.errors import AlignmentError
from carbonsink.io import read_geotiff
from carbonsink.pipeline.config import load_study
from carbonsink.pipeline.runner import RunContext
from carbonsink.pipeline.steps import MapWriter, write_maps


def _layer(seed, crs=True):
    rng = np.random.default_rng(seed)
    da = xr.DataArray(rng.random((6, 7)).astype("float32"), dims=("y", "x"),
                      coords={"y": 40.0 - 0.1 * np.arange(6), "x": 100.0 + 0.1 * np.arange(7)},
                      attrs={"units": "g C m-2 yr-1"})
    return da.rio.write_crs("EPSG:4326") if crs else da


def _ctx(tmp_path):
    return RunContext(cfg=load_study(write_study(tmp_path)), out_dir=tmp_path / "out")


def test_layers_of_several_products_are_all_written(tmp_path):
    ctx = _ctx(tmp_path)
    a = xr.Dataset({"m1": _layer(1), "m2": _layer(2)})
    b = xr.Dataset({"m3": _layer(3)}).chunk({"y": 3})  # lazy layers are computed first
    with MapWriter(ctx) as writer:
        paths = writer.write(a, ["m1", "m2"], prefix="p_", combination="c1")
        paths += writer.write(b, ["m3"], combination="c2")
    assert [p.name for p in paths] == ["p_m1.tif", "p_m2.tif", "m3.tif"]
    for p, want in zip(paths, (a["m1"], a["m2"], b["m3"])):
        assert p.exists()
        np.testing.assert_array_equal(read_geotiff(p).values.squeeze(), want.values)
    # the one-call form writes before it returns
    (one,) = write_maps(ctx, a, ["m1"], prefix="q_", combination="c1")
    assert one.exists()


def test_a_failing_layer_raises_after_the_others_are_written(tmp_path):
    ctx = _ctx(tmp_path)
    good = xr.Dataset({"ok": _layer(1)})
    bad = xr.Dataset({"nocrs": _layer(2, crs=False)})
    with pytest.raises(AlignmentError, match="no CRS"):
        with MapWriter(ctx) as writer:
            ok = writer.write(good, ["ok"], combination="c1")
            no = writer.write(bad, ["nocrs"], combination="c1")
    assert ok[0].exists() and not no[0].exists()
    assert not [p for p in (tmp_path / "out").rglob("*") if ".tmp" in p.name]
