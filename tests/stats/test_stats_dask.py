"""Wrappers stay lazy and give identical results for NumPy and (unevenly chunked) dask input."""

from __future__ import annotations

import dask
import numpy as np
import pytest
import xarray as xr
from stats_helpers import cube

import carbonsink.stats as cs


def _fail(*args, **kwargs):
    raise AssertionError("a computation was triggered")


def _drivers(da):
    rng = np.random.default_rng(9)
    out = {}
    for name in ("tas", "pr", "sol"):
        out[name] = da.copy(data=rng.normal(size=da.shape) + 0.3 * np.nan_to_num(da.values))
        out[name].name = name
    return out


CALLS = {
    "ols": lambda da, d: cs.ols_trend(da),
    "mk": lambda da, d: cs.mann_kendall(da),
    "mk_hr": lambda da, d: cs.mann_kendall(da, variant="hamed_rao"),
    "cv": lambda da, d: cs.coefficient_of_variation(da + 10.0, full=True),
    "hurst": lambda da, d: cs.hurst_rs(da, full=True),
    "pearson": lambda da, d: cs.pearson(da, d["tas"]),
    "spearman": lambda da, d: cs.spearman(da, d["pr"], fdr=True),
    "partial": lambda da, d: cs.partial_correlation(da, d, fdr=True),
    "dominant": lambda da, d: cs.dominant_driver(cs.partial_correlation(da, d),
                                                 require_significance=True),
    "classes": lambda da, d: cs.sen_mk_classes(cs.mann_kendall(da)),
    "ols6": lambda da, d: cs.ols_six_classes(cs.ols_trend(da)),
    "persistence": lambda da, d: cs.persistence_classes(cs.mann_kendall(da),
                                                        cs.hurst_rs(da)),
    "cv_classes": lambda da, d: cs.cv_classes(cs.coefficient_of_variation(da + 10.0)),
    "sink": lambda da, d: cs.sink_source_classes(da.mean("time"), "001"),
}


@pytest.mark.parametrize("name", sorted(CALLS))
def test_lazy_and_identical_to_numpy(name):
    da = cube()
    drivers = _drivers(da)
    eager = CALLS[name](da, drivers)
    chunks = {"y": (3, 4, 3), "x": (5, 2), "time": 8}      # uneven space, chunked time
    lazy_da = da.chunk(chunks)
    lazy_drivers = {k: v.chunk(chunks) for k, v in drivers.items()}
    with dask.config.set(scheduler=_fail):
        lazy = CALLS[name](lazy_da, lazy_drivers)
    objs = lazy.data_vars.values() if isinstance(lazy, xr.Dataset) else [lazy]
    for v in objs:
        assert v.chunks is not None, f"{name}: {v.name} is not lazy"
    computed = lazy.compute(scheduler="threads")
    if name == "cv_classes":
        # breaks are only known after computing, so the lazy map cannot record them
        assert "breaks" not in computed.attrs
        eager.attrs.pop("breaks")
    xr.testing.assert_identical(computed, eager)


def test_float32_cube_dtypes_and_coords_carried():
    da = cube().astype(np.float32)
    ds = cs.mann_kendall(da.chunk({"y": 4}))
    assert ds.slope.dtype == np.float32 and ds.n.dtype == np.int32
    assert "spatial_ref" in ds.coords and "x" in ds.coords and "time" not in ds.coords
    assert ds.slope.dims == ("y", "x")
    eager = cs.mann_kendall(da)
    xr.testing.assert_identical(ds.compute(), eager)


def test_thread_count_setting_does_not_change_results():
    da = cube(ny=60, nx=80)
    cs.set_num_threads(1)
    try:
        one = cs.mann_kendall(da)
    finally:
        cs.set_num_threads(None)
    two = cs.mann_kendall(da)
    xr.testing.assert_identical(one, two)
    with pytest.raises(ValueError):
        cs.set_num_threads(0)
