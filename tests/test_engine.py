"""The kernel driver (carbonsink._engine): layout, dtype rule, threads, dask, lazy compile."""

import pickle
import subprocess
import sys

import dask
import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from carbonsink import _engine as E
from carbonsink.errors import InvalidArgumentError


def _cube(nt=24, ny=70, nx=80, dtype=np.float64, seed=1):
    rng = np.random.default_rng(seed)
    v = rng.normal(10, 3, (nt, ny, nx)).astype(dtype)
    v[3, 2, 5] = np.nan
    v[:, 7, 7] = np.nan
    return v


def test_dtype_rule():
    f4, f8 = np.zeros(2, np.float32), np.zeros(2)
    assert E.float_dtype(f4, f4, 2.0, None) == np.float32
    assert E.float_dtype(f4, f8) == np.float64
    assert E.float_dtype(f4, np.zeros(2, np.int16)) == np.float64
    assert E.float_dtype(np.zeros(2, np.float16)) == np.float64
    assert E.float_dtype(1.0) == np.float64


@pytest.mark.parametrize("layout", E.LAYOUTS)
def test_to_2d_layouts(layout):
    v = _cube(nt=5, ny=8, nx=8)[:, :3, :4].copy()
    s = np.arange(12.0).reshape(3, 4)
    t2, s2, spatial = E.to_2d([v], [s], core_last=False, layout=layout)
    assert spatial == (3, 4) and s2[0].shape == (12,)
    ref = v.reshape(5, 12)
    np.testing.assert_array_equal(t2[0], ref if layout == "time_major" else ref.T)
    with pytest.raises(InvalidArgumentError, match="layout"):
        E.to_2d([v], core_last=False, layout="diagonal")


def _cumsum_kernel(t2, s2):
    return np.cumsum(t2[0], axis=0) + s2[0][None, :] if s2 else np.cumsum(t2[0], axis=0)


def test_time_kernel_threads_do_not_change_results():
    v = _cube()
    calls = []

    def k(t2, s2):
        calls.append(t2[0].shape[1])
        return _cumsum_kernel(t2, s2)

    one = E.run_time_kernel(k, [v], [], core_last=False, dtype=np.float64, threads=1)
    assert calls == [70 * 80]
    calls.clear()
    many = E.run_time_kernel(k, [v], [], core_last=False, dtype=np.float64, threads=2)
    assert len(calls) > 1 and sum(calls) == 70 * 80
    np.testing.assert_array_equal(one, many)
    np.testing.assert_array_equal(one, np.cumsum(v, axis=0))


def test_apply_time_kernel_numpy_dask_identical_and_lazy():
    v = _cube(dtype=np.float32)
    da = xr.DataArray(v, dims=("time", "y", "x"), name="a", attrs={"units": "1"})
    da = da.assign_coords(spatial_ref=xr.DataArray(0, attrs={"crs_wkt": "EPSG:4326"}))
    ref = E.apply_time_kernel(_cumsum_kernel, [v], [], time_dim="time", dtype=np.float32)
    eager = E.apply_time_kernel(_cumsum_kernel, [da], [], time_dim="time", dtype=np.float32)

    def boom(*a, **k):
        raise AssertionError("computed")

    with dask.config.set(scheduler=boom):
        lazy = E.apply_time_kernel(_cumsum_kernel, [da.chunk({"y": 20, "time": 6})], [],
                                   time_dim="time", dtype=np.float32)
    assert isinstance(lazy.data, dsa.Array) and lazy.dims == ("time", "y", "x")
    assert lazy.dtype == np.float32 and lazy.attrs == {}
    assert lazy["spatial_ref"].attrs["crs_wkt"] == "EPSG:4326"
    np.testing.assert_array_equal(eager.values, ref)
    np.testing.assert_array_equal(lazy.values, ref)


def test_pixel_kernel_via_stats_matches_across_threads():
    import carbonsink.stats as cs
    v = _cube(nt=20)
    da = xr.DataArray(np.moveaxis(v, 0, -1), dims=("y", "x", "time"))
    E.set_num_threads(1)
    try:
        one = cs.mann_kendall(da)
    finally:
        E.set_num_threads(None)
    xr.testing.assert_identical(one, cs.mann_kendall(da))
    xr.testing.assert_identical(one, cs.mann_kendall(da.chunk({"y": 30})).compute())
    with pytest.raises(InvalidArgumentError):
        E.set_num_threads(0)


def test_elementwise_ufuncs_lazy_tokens_and_pickle():
    from carbonsink.flux import _kernels as K
    a = np.linspace(-5, 30, 12)
    p = np.linspace(0, 100, 12)
    args = (1.0, 0.05, 0.1, 30.0, 1.0)
    ref = K.pei_uf(a, p, *args)
    d1 = E.elementwise(K.pei_uf, dsa.from_array(a, 4), dsa.from_array(p, 4), *args)
    d2 = E.elementwise(K.pei_uf, dsa.from_array(a, 4), dsa.from_array(p, 4), *args)
    assert d1.name == d2.name  # deterministic dask keys
    np.testing.assert_array_equal(d1.compute(), ref)
    assert pickle.loads(pickle.dumps(K.pei_uf)) is K.pei_uf
    assert K.pei_uf.nin == 7 and len(K.pei_uf.types) == 2


def test_import_compiles_nothing():
    code = ("import carbonsink.flux.combinations\n"
            "from carbonsink.flux import _kernels as K\n"
            "lazy = [n for n in dir(K) if isinstance(getattr(K, n), K._LazyUfunc)]\n"
            "assert lazy and all(getattr(K, n)._uf is None for n in lazy), lazy\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_apply_time_major_inputs_of_different_lengths_statics_and_grid_check():
    from carbonsink.errors import AlignmentError

    rng = np.random.default_rng(5)
    years = rng.normal(size=(3, 8, 6))
    steps = rng.normal(size=(10, 8, 6))
    lat = np.linspace(30, 40, 8)
    coords = {"y": np.arange(8.0), "x": np.arange(6.0)}
    a = xr.DataArray(years, dims=("yr", "y", "x"), coords=coords)
    b = xr.DataArray(steps, dims=("st", "y", "x"), coords=coords)
    s = xr.DataArray(lat, dims="y", coords={"y": coords["y"]})

    def kernel(t2, s2):  # per pixel: each year's value + the step mean + the static
        return t2[0] + t2[1].mean(axis=0)[None] + s2[0][None]

    ref = years + steps.mean(axis=0)[None] + lat[None, :, None]
    for lazy in (False, True):
        aa, bb = (a.chunk({"y": 3, "x": 4}), b.chunk({"st": 4, "y": 3, "x": 4})) if lazy \
            else (a, b)
        out = E.apply_time_major(kernel, [aa, bb], [s], core_dims=["yr", "st"], out_dim="yr",
                                 dtype=np.float64)
        assert out.dims == ("yr", "y", "x") and (out.chunks is not None) == lazy
        np.testing.assert_allclose(out.values, ref)
    # a per-pixel (no time) output, the input in (y, x, time) order
    tot = E.apply_time_major(lambda t2, s2: t2[0].sum(axis=0), [b.transpose("y", "x", "st")],
                             [], core_dims=["st"], out_dim="st", dtype=np.float64,
                             out_time=False)
    np.testing.assert_allclose(tot.transpose("y", "x").values, steps.sum(axis=0))
    with pytest.raises(AlignmentError):
        E.apply_time_major(kernel, [a, b.assign_coords(x=coords["x"] + 0.5)], [s],
                           core_dims=["yr", "st"], out_dim="yr", dtype=np.float64)
