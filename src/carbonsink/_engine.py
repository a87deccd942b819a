"""The one driver of compiled kernels along time over pixels (private).

Every compiled (numba) kernel of :mod:`carbonsink.flux` and :mod:`carbonsink.stats`
is run through this module, so that layout, dtype, threading and dask handling
are decided in one place.

Layout
    A kernel sees 2-D arrays with all spatial (leading) dimensions flattened to
    one pixel axis. ``layout="time_major"`` gives ``(time, pixel)`` arrays (time
    is the outer loop, pixels the contiguous inner one: the flux kernels are about
    3× faster so, see :func:`run_time_kernel`); ``layout="pixel_major"`` gives
    ``(pixel, time)`` arrays (one contiguous series per pixel: the statistics
    kernels, which sort or rank a series, see :func:`run_pixel_kernel`).

Dtype rule (:func:`float_dtype`)
    Computation and results are ``float32`` only if **every** array input is
    ``float32``; otherwise (any float64, integer, boolean or other input)
    ``float64``. Python scalars do not count. Integer/boolean outputs
    (counts, classes) are declared explicitly by the caller.

Threading
    NumPy input: the pixels are split into ranges of at least
    :data:`MIN_PIXELS_PER_TASK` pixels that run on a small thread pool
    (:func:`set_num_threads`; the kernels release the GIL). Dask input: each
    chunk is one task of the dask scheduler and runs on the calling thread only
    (no nested parallelism, no oversubscription). Numba's ``parallel=True`` is
    not used because its default threading layer refuses concurrent launches
    from several dask worker threads. Pixels are independent, so results do not
    depend on the number of threads.

xarray
    :func:`apply` wraps ``xr.apply_ufunc(..., dask="parallelized")`` with time as
    the core dimension (rechunked to one chunk), ``keep_attrs=False`` (a result
    never inherits a driver's ``units``) and the coordinate attributes — among
    them the CRS of rioxarray's ``spatial_ref`` — restored
    (:func:`carbonsink._xrutil.keep_coord_attrs`). Element-wise kernels go through
    :func:`elementwise`. Callables handed to dask define ``__dask_tokenize__`` so
    that graph keys are deterministic (equal calls share keys).
"""

from __future__ import annotations

import numbers
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import xarray as xr

from ._xrutil import keep_coord_attrs
from .errors import AlignmentError, InputError, InvalidArgumentError

__all__ = ["float_dtype", "get_num_threads", "set_num_threads", "run_ranges", "to_2d",
           "run_time_kernel", "run_pixel_kernel", "apply", "apply_time_kernel", "apply_time_major",
           "elementwise", "prepare", "is_lazy", "is_xr", "is_dask", "MIN_PIXELS_PER_TASK", "LAYOUTS"]

LAYOUTS = ("time_major", "pixel_major")

#: minimum number of pixels handed to one task of the thread pool
MIN_PIXELS_PER_TASK = 2048


# --------------------------------------------------------------------------- types, dtype rule


def is_xr(x: Any) -> bool:
    return isinstance(x, xr.DataArray)


def is_dask(x: Any) -> bool:
    data = x.data if is_xr(x) else x
    return hasattr(data, "dask") and hasattr(data, "chunks")


def float_dtype(*xs: Any) -> np.dtype:
    """The computation dtype: ``float32`` if every array input is float32, else ``float64``.

    ``None`` and Python/NumPy scalars are ignored; no array input → ``float64``.
    """
    dts = [x.dtype for x in xs if x is not None and not isinstance(x, numbers.Number)]
    if dts and all(np.dtype(dt) == np.float32 for dt in dts):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


# --------------------------------------------------------------------------- threads

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_num_threads: int | None = None


def get_num_threads() -> int:
    """Number of threads used for NumPy-backed input (default: usable CPU cores)."""
    if _num_threads is not None:
        return _num_threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int | None) -> None:
    """Set the number of threads for NumPy-backed input (``None`` = all usable cores)."""
    global _num_threads
    if n is not None and int(n) < 1:
        raise InvalidArgumentError(f"number of threads must be >= 1 (or None for all cores), "
                                   f"got {n}")
    _num_threads = None if n is None else int(n)


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="carbonsink-kernels")
            _pool_size = n
        return _pool


def _ranges(npix: int, threads: int | None) -> list[tuple[int, int]]:
    nthreads = get_num_threads() if threads is None else max(1, int(threads))
    if nthreads == 1 or npix < 2 * MIN_PIXELS_PER_TASK:
        return [(0, npix)]
    ntasks = min(nthreads * 4, max(1, npix // MIN_PIXELS_PER_TASK))
    bounds = [npix * i // ntasks for i in range(ntasks + 1)]
    return [(bounds[i], bounds[i + 1]) for i in range(ntasks) if bounds[i + 1] > bounds[i]]


def run_ranges(func: Callable[[int, int], Any], npix: int, threads: int | None) -> list:
    """Call ``func(start, stop)`` over ``[0, npix)`` split into ranges on ``threads`` threads
    (``None``: :func:`get_num_threads`; 1: the calling thread). Returns the results in order."""
    ranges = _ranges(npix, threads)
    if len(ranges) == 1:
        return [func(*ranges[0])]
    pool = _get_pool(get_num_threads() if threads is None else max(1, int(threads)))
    futures = [pool.submit(func, s, e) for s, e in ranges]
    return [f.result() for f in futures]


# --------------------------------------------------------------------------- layout


def to_2d(time_arrays: Sequence[np.ndarray], static_arrays: Sequence[np.ndarray] = (), *,
          core_last: bool, layout: str = "time_major", dtype: np.dtype | None = None):
    """Flatten the spatial dims: (list of 2-D time arrays, list of 1-D static arrays, spatial shape).

    ``time_arrays`` have time on the last axis (``core_last=True``, as handed over by
    ``apply_ufunc``) or on axis 0; ``static_arrays`` (no time) broadcast against the spatial
    shape. ``layout="time_major"`` returns C-contiguous ``(time, pixel)`` arrays,
    ``"pixel_major"`` ``(pixel, time)`` arrays (views when possible). Static arrays are
    float64; time arrays are cast to ``dtype`` when given.
    """
    if layout not in LAYOUTS:
        raise InvalidArgumentError(f"layout={layout!r} is not valid; use one of {LAYOUTS}")
    tarrs = [np.asarray(a, dtype=dtype) if dtype is not None else np.asarray(a)
             for a in time_arrays]
    tarrs = [np.moveaxis(a, -1, 0) if core_last else a for a in tarrs]  # (time, ...)
    shapes = [a.shape[1:] for a in tarrs] + [np.shape(s) for s in static_arrays]
    spatial = np.broadcast_shapes(*shapes) if shapes else ()
    npix = int(np.prod(spatial)) if spatial else 1
    if layout == "time_major":
        t2 = [np.ascontiguousarray(np.broadcast_to(a, (a.shape[0],) + spatial))
              .reshape(a.shape[0], npix) for a in tarrs]
    else:
        t2 = [np.moveaxis(np.broadcast_to(a, (a.shape[0],) + spatial), 0, -1)
              .reshape(npix, a.shape[0]) for a in tarrs]
    s2 = [np.ascontiguousarray(np.broadcast_to(s, spatial), dtype=np.float64).reshape(npix)
          for s in static_arrays]
    return t2, s2, spatial


def run_time_kernel(func: Callable, time_arrays: Sequence[np.ndarray],
                    static_arrays: Sequence[np.ndarray] = (), *, core_last: bool,
                    dtype: np.dtype, out_time: bool = True, threads: int | None = None):
    """Run a time-major kernel ``func(time_2d, static_1d) -> (nt, npix) | (npix,)``.

    The arrays are flattened to ``(time, pixel)`` (:func:`to_2d`); for more than
    ``2 × MIN_PIXELS_PER_TASK`` pixels and ``threads != 1`` the pixel columns are split into
    ranges computed on the thread pool and the pieces joined (pixels are independent, so
    the result is the same). Returns the result in the layout of the input (time last if
    ``core_last``), spatial dims restored.
    """
    t2, s2, spatial = to_2d(time_arrays, static_arrays, core_last=core_last,
                            layout="time_major", dtype=dtype)
    npix = int(np.prod(spatial)) if spatial else 1
    ranges = _ranges(npix, threads)
    if len(ranges) == 1:
        res = func(t2, s2)
    else:
        parts = run_ranges(lambda s, e: func([np.ascontiguousarray(a[:, s:e]) for a in t2],
                                             [a[s:e] for a in s2]), npix, threads)
        res = np.concatenate(parts, axis=-1)
    if out_time:
        res = res.reshape((res.shape[0],) + spatial)
        return np.moveaxis(res, 0, -1) if core_last else res
    return res.reshape(spatial)


def _canonical(a2: np.ndarray) -> tuple[np.ndarray, int]:
    """(pixels, time) array → C-contiguous array and orientation flag (1 = transposed)."""
    if a2.flags.c_contiguous:
        return a2, 0
    if a2.flags.f_contiguous:
        return a2.T, 1
    return np.ascontiguousarray(a2), 0


def run_pixel_kernel(kernel: Callable, arrays: Sequence[np.ndarray], args: tuple,
                     outputs: Sequence[tuple], threads: int | None, post: Callable | None = None):
    """Run a pixel-major range kernel ``kernel(xs, orient, *args, *outs, start, stop)``.

    ``arrays``: NumPy arrays ``(..., time)`` with broadcastable leading shapes, cast to
    :func:`float_dtype`; the kernel gets a tuple of C-contiguous ``(pixel, time)`` arrays
    (or their transposes, flagged by ``orient``, to avoid copies) and fills the
    preallocated outputs for pixels ``[start, stop)``. ``outputs``: list of
    ``(dtype or "float", extra_shape)``; ``"float"`` means the computation dtype.
    ``post(outs, start, stop)`` runs after each range. Returns the outputs shaped
    ``leading_shape + extra_shape``.
    """
    arrays = [np.asarray(a) for a in arrays]
    fdt = float_dtype(*arrays)
    arrays = [a if a.dtype == fdt else a.astype(fdt) for a in arrays]
    T = arrays[0].shape[-1]
    lead = np.broadcast_shapes(*[a.shape[:-1] for a in arrays])
    npix = int(np.prod(lead)) if len(lead) else 1
    # a tuple of arrays of one type (numba indexes it at run time like a list); unlike a
    # numba.typed.List it needs no compilation in every new process (~1 s, 0.3 s more for
    # each further dtype or layout), and kernels compiled for it are cached on disk
    parts = []
    orient = np.zeros(len(arrays), dtype=np.int64)
    for i, a in enumerate(arrays):
        if a.shape[:-1] != lead:
            a = np.broadcast_to(a, lead + (T,))
        a2, o = _canonical(a.reshape(npix, T))
        a2 = a2.view()  # every part read-only (a view): one array type, a homogeneous tuple
        a2.flags.writeable = False
        parts.append(a2)
        orient[i] = o
    xs = tuple(parts)
    outs = []
    for dt, extra in outputs:
        dt = fdt if isinstance(dt, str) and dt == "float" else np.dtype(dt)
        outs.append(np.empty((npix,) + tuple(extra), dtype=dt))

    def task(s, e):
        kernel(xs, orient, *args, *outs, s, e)
        if post is not None:
            post(outs, s, e)

    if npix > 0:
        run_ranges(task, npix, threads)
    return tuple(o.reshape(lead + o.shape[1:]) for o in outs)


# --------------------------------------------------------------------------- xarray


def prepare(objs: Sequence[xr.DataArray], dim: str, *, align: bool = True) -> list[xr.DataArray]:
    """Align exactly (``align=True``) and make the core dim ``dim`` a single dask chunk."""
    objs = list(objs)
    if align:
        try:
            objs = list(xr.align(*objs, join="exact", copy=False))
        except ValueError as exc:
            raise AlignmentError(
                f"inputs are not on the same coordinates ({exc}); put them on one grid and "
                "period first (carbonsink.cube.regrid / .sel)") from None
    out = []
    for o in objs:
        if is_xr(o) and o.chunks is not None and dim in o.dims:
            axis = o.get_axis_num(dim)
            if len(o.chunks[axis]) > 1:
                o = o.chunk({dim: -1})
        out.append(o)
    return out


def is_lazy(objs: Sequence[Any]) -> bool:
    return any(is_xr(o) and o.chunks is not None for o in objs)


class _Named:
    """A callable with a deterministic dask token (its qualified name plus static options)."""

    def __init__(self, func: Callable, token: Any):
        self.func = func
        self.token = token
        self.__name__ = getattr(func, "__name__", "kernel")

    def __call__(self, *args, **kwargs):
        return self.func(*args, **kwargs)

    def __dask_tokenize__(self):
        return ("carbonsink._engine", self.token)


def apply(func: Callable, objs: Sequence[Any], dim: str, *, n_out: int = 1,
          out_dtypes: Sequence[Any], in_core_dims: Sequence[Sequence[str]] | None = None,
          out_core_dims: Sequence[Sequence[str]] | None = None,
          out_sizes: dict | None = None, kwargs: dict | None = None, threads_kw: bool = True,
          align: bool = True, rechunk: bool = True, token: Any = None):
    """``xr.apply_ufunc(func, *objs, dask="parallelized")`` with ``dim`` as the core dim.

    ``in_core_dims`` defaults to ``[[dim]]`` for every input. With ``threads_kw`` the
    keyword ``threads`` is passed to ``func``: 1 for dask input (a chunk is a task), ``None``
    (the thread pool) for NumPy input. ``token``: when given, ``func`` gets a deterministic
    dask token built from it. Returns a tuple of ``n_out`` results with the coordinate
    attributes (CRS) of the inputs restored.
    """
    objs = prepare(objs, dim, align=align) if rechunk else list(objs)
    lazy = is_lazy(objs)
    kwargs = dict(kwargs or {})
    if threads_kw:
        kwargs["threads"] = 1 if lazy else None
    in_core = [[dim]] * len(objs) if in_core_dims is None else [list(c) for c in in_core_dims]
    gufunc_kwargs: dict[str, Any] = {"allow_rechunk": True}
    if out_sizes:
        gufunc_kwargs["output_sizes"] = out_sizes
    if token is not None:
        func = _Named(func, token)
    res = xr.apply_ufunc(
        func, *objs,
        input_core_dims=in_core,
        output_core_dims=[list(c) for c in out_core_dims] if out_core_dims else [[]] * n_out,
        dask="parallelized",
        output_dtypes=list(out_dtypes),
        dask_gufunc_kwargs=gufunc_kwargs,
        kwargs=kwargs,
        keep_attrs=False,
    )
    res = keep_coord_attrs(res, *objs)
    return res if isinstance(res, tuple) else (res,)


def apply_time_kernel(func: Callable, time_inputs: list, static_inputs: list, *, time_dim: str,
                      dtype: np.dtype, out_time: bool = True, out_size: int | None = None):
    """Run a time-major kernel ``func(time_arrays_2d, static_arrays_1d) -> (nt, npix) | (npix,)``
    on NumPy arrays (time on axis 0) or DataArrays (time = ``time_dim``).
    ``out_size``: the kernel returns ``out_size`` steps instead of ``nt`` (e.g. months into
    years); the output's ``time_dim`` then has that length and no coordinate.

    ``time_inputs`` have a time dimension; ``static_inputs`` are per pixel (no time) and
    broadcast over it. xarray inputs go through :func:`apply_time_major` (one task per spatial
    chunk, time rechunked to one chunk); NumPy inputs are computed at once, threaded over pixel
    ranges (:func:`run_time_kernel`). The output keeps the dim order of the first time input.
    """
    nt_in = len(time_inputs)

    if any(is_xr(a) for a in time_inputs + static_inputs):
        for a in time_inputs:
            if not is_xr(a):
                raise InputError("mixing numpy and xarray time series is not supported; "
                                 "wrap every time-varying input in a DataArray")
        for st in static_inputs:
            if is_xr(st) and time_dim in st.dims:
                raise InputError(f"'{st.name}' must not have a '{time_dim}' dimension here")
        out = apply_time_major(func, time_inputs, static_inputs,
                               core_dims=[time_dim] * nt_in, out_dim=time_dim,
                               out_size=out_size, dtype=dtype, out_time=out_time)
        if out_time:
            dims = list(time_inputs[0].dims)
            order = [d for d in dims if d in out.dims] + [d for d in out.dims if d not in dims]
            out = out.transpose(*order)
        return out
    return run_time_kernel(func, time_inputs, [np.asarray(a) for a in static_inputs],
                           core_last=False, dtype=dtype, out_time=out_time)


def apply_time_major(func: Callable, time_inputs: Sequence[xr.DataArray],
                     static_inputs: Sequence[Any], *, core_dims: Sequence[str], out_dim: str,
                     dtype: np.dtype, out_time: bool = True, out_size: int | None = None
                     ) -> xr.DataArray:
    """A time-major kernel on DataArrays without changing their memory layout.

    Each time input ``k`` has its own core (time) dimension ``core_dims[k]`` (lengths may
    differ, e.g. years and 8-day composites); the spatial dimensions are those of the first
    input, in its order, and every input must share their coordinates exactly
    (:class:`~carbonsink.errors.AlignmentError` otherwise). Blocks reach ``func`` as
    ``(time, pixel)`` arrays straight from the stored ``(time, y, x)`` layout: no transposing
    copy, no concatenation (``xr.apply_ufunc`` moves core dimensions last, which costs two
    transposing copies of every input block). For dask input: one task per spatial chunk of
    the first lazy input, time whole. Returns ``(out_dim, *spatial)`` (``out_size`` steps,
    default the length of the first input's core) or ``(*spatial)`` without ``out_time``.
    """
    import dask.array as dsa

    first = time_inputs[0]
    space = [d for d in first.dims if d != core_dims[0]]
    tin = []
    for a, c in zip(time_inputs, core_dims):
        if set(a.dims) != {c, *space}:
            raise AlignmentError(f"'{a.name}' has dimensions {a.dims}; expected {c} and "
                                 f"{tuple(space)} as '{first.name}'")
        tin.append(a.transpose(c, *space))
    plane = first.isel({core_dims[0]: 0}, drop=True)
    sin: list[Any] = []
    for st in static_inputs:
        if is_xr(st):
            if set(st.dims) - set(space):
                raise AlignmentError(f"'{st.name}' has dimensions {st.dims} beyond the spatial "
                                     f"dimensions {tuple(space)}")
            st = st.broadcast_like(plane).transpose(*space)
        elif np.ndim(st) == 0:
            st = xr.full_like(plane, float(st), dtype=np.float64)
        else:
            st = xr.DataArray(np.broadcast_to(np.asarray(st, dtype=np.float64), plane.shape),
                              dims=space, coords=plane.coords)
        sin.append(st)
    try:
        aligned = xr.align(*tin, *sin, join="exact", copy=False, exclude=set(core_dims))
    except ValueError as exc:
        raise AlignmentError(f"inputs are not on the same grid ({exc}); put them on one grid "
                             "first (carbonsink.cube.regrid)") from None
    tin, sin = list(aligned[:len(tin)]), list(aligned[len(tin):])
    n_out = int(out_size) if out_size is not None else first.sizes[core_dims[0]]
    coords = {k: v for k, v in plane.coords.items()}
    if out_time and out_size is None and out_dim == core_dims[0] and core_dims[0] in first.coords:
        coords[out_dim] = first[core_dims[0]]
    dims = (out_dim, *space) if out_time else tuple(space)
    nt = len(tin)

    def block(*blocks):
        blocks = [b[0] if isinstance(b, list) else b for b in blocks]
        return run_time_kernel(func, blocks[:nt], blocks[nt:], core_last=False, dtype=dtype,
                               out_time=out_time, threads=1)

    if not any(isinstance(x.data, dsa.Array) for x in (*tin, *sin)):
        res = run_time_kernel(func, [x.values for x in tin], [x.values for x in sin],
                              core_last=False, dtype=dtype, out_time=out_time)
        return keep_coord_attrs(xr.DataArray(res, dims=dims, coords=coords),
                                *time_inputs, *[x for x in static_inputs if is_xr(x)])
    lazy = next(x for x in (*tin, *sin) if isinstance(x.data, dsa.Array))
    schunks = lazy.chunks[-len(space):] if space else ()
    sidx = tuple(f"s{i}" for i in range(len(space)))
    args: list[Any] = []
    for k, x in enumerate(tin):
        args += [dsa.asarray(x.data).rechunk((-1, *schunks)), (f"c{k}", *sidx)]
    for x in sin:
        args += [dsa.asarray(x.data).rechunk(schunks), sidx]
    out_ind = ("o", *sidx) if out_time else sidx
    arr = dsa.blockwise(block, out_ind, *args, dtype=dtype, concatenate=False,
                        new_axes={"o": n_out} if out_time else {},
                        meta=np.empty((0,) * len(out_ind), dtype=dtype),
                        token=getattr(func, "__name__", "kernel").strip("<>"))
    return keep_coord_attrs(xr.DataArray(arr, dims=dims, coords=coords),
                            *time_inputs, *[x for x in static_inputs if is_xr(x)])


# --------------------------------------------------------------------------- element-wise


class Quiet:
    """Call a compiled ufunc with floating-point warnings silenced.

    The numba kernels guard every invalid operation with explicit branches, but LLVM may
    evaluate both sides of a branch in SIMD loops and raise spurious FP flags (e.g. 0·inf in
    a discarded lane); results are unaffected.
    """

    def __init__(self, uf):
        self.uf = uf
        self.__name__ = getattr(uf, "__name__", "kernel")  # dask key prefix (no object id)

    def __call__(self, *args):
        with np.errstate(all="ignore"):
            return self.uf(*args)

    def __dask_tokenize__(self):  # deterministic graph keys: equal calls are shared
        return ("carbonsink.flux._Quiet", self.uf.__name__)


def elementwise(uf, *args):
    """Apply a compiled element-wise kernel to numpy, dask or xarray arguments (lazy for dask).

    The output dtype follows the ufunc's loops (float32 only if all inputs are float32).
    """
    if any(is_xr(a) for a in args):
        return keep_coord_attrs(xr.apply_ufunc(lambda *a: elementwise(uf, *a), *args,
                                               dask="allowed", keep_attrs=False), *args)
    if any(is_dask(a) for a in args):
        from dask.array.core import elemwise
        return elemwise(Quiet(uf), *args, dtype=float_dtype(*args))
    return Quiet(uf)(*args)
