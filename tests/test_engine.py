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
    a = np.linspace(-5, 500, 12)
    args = (-0.0009, 0.6011, 4.8874, 1.0)
    ref = K.shi_uf(a, *args)
    d1 = E.elementwise(K.shi_uf, dsa.from_array(a, 4), *args)
    d2 = E.elementwise(K.shi_uf, dsa.from_array(a, 4), *args)
    assert d1.name == d2.name  # deterministic dask keys
    np.testing.assert_array_equal(d1.compute(), ref)
    assert pickle.loads(pickle.dumps(K.shi_uf)) is K.shi_uf
    assert K.shi_uf.nin == 5 and len(K.shi_uf.types) == 2


@pytest.mark.parametrize("name", ["pei_values", "gsmsr_values"])
def test_numpy_kernels_float32_lazy_and_nan(name):
    """The NumPy-expression kernels keep float32, give the same values on dask blocks, keep
    NaN where an input is NaN, take negative precipitation as 0, and agree with the formula
    evaluated in float64 to float32 rounding."""
    import math

    from carbonsink.flux import _kernels as K
    rng = np.random.default_rng(3)
    t = (rng.random((24, 5, 7)) * 45 - 15).astype("float32")
    p = (rng.random((24, 5, 7)) * 250 - 10).astype("float32")
    t[3, 2, 1] = np.nan
    soc = (rng.random((5, 7)) * 8).astype("float32")
    days = np.full((24, 1, 1), 31.0, "float32")
    if name == "pei_values":
        args = (t, p, 0.22, 0.0912, 0.3145, days, 0.465)

        def ref(t, p):
            return 0.22 * (np.exp(0.0912 * t) + np.log(0.3145 * np.maximum(p, 0) + 1)) \
                * 31.0 * 0.465
    else:
        args = (t, p, soc, days, 0.588, 0.118, 1.83, -0.0006, 2.972, 5.657)

        def ref(t, p):
            pc = np.maximum(p / 10.0, 0)
            q10 = 1.83 * np.exp(-0.0006 * t)
            return (0.588 + 0.118 * soc.astype("f8")) * q10 ** (t / 10.0) \
                * (pc + 2.972) / (pc + 5.657) * 31.0
    fn = getattr(K, name)
    out = E.elementwise(fn, *args)
    assert out.dtype == np.float32
    lazy = E.elementwise(fn, *[dsa.from_array(x, (7, 5, 7)[-x.ndim:]) if hasattr(x, "ndim")
                               and x.ndim else x for x in args])
    np.testing.assert_array_equal(lazy.compute(), out)
    want = ref(t.astype("f8"), p.astype("f8"))
    assert np.isnan(out[3, 2, 1]) and np.array_equal(np.isnan(out), np.isnan(want))
    np.testing.assert_allclose(out, want, rtol=3e-6)
    # scalars work too; negative precipitation counts as none
    rest = (3.0, 31.0, *args[4:]) if name == "gsmsr_values" else (*args[2:5], 31.0, args[6])
    assert fn(20.0, -5.0, *rest) == fn(20.0, 0.0, *rest)
    assert math.isfinite(fn(20.0, -5.0, *rest))


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
