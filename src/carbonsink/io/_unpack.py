"""Packed integers to float32 and back without whole-block temporaries (private;
:func:`read_cube`, :func:`write_zarr`).

A variable stored as integers with ``scale_factor`` / ``add_offset`` and a fill value is
decoded by xarray's CF coders as a chain of whole-array operations (mask to NaN, cast,
multiply, add), each with a temporary of the block's size: for a tile of 966 eight-day
composites x 200 x 200 cells that is four passes over 155 MB. :func:`unpack` does the same
arithmetic in one pass per value, with the same float32 operations in the same order
(``float32(v) * scale`` then ``+ offset``, a fill value becomes NaN), so the result is
bit-identical to xarray's decoding (tests/io/test_unpack.py).

Writing, xarray's CF encoding makes a float copy, subtracts the offset, divides by the scale,
puts the fill value where NaN, rounds and casts: six whole-block arrays. :func:`pack` does the
same per value in one compiled pass: each operation in the type NumPy would use and rounded to
the type NumPy would store (one IEEE operation in float64 rounded to float32 is the float32
operation), so the stored integers are the same bytes (tests/io/test_unpack.py). A block with
a value the target integers cannot hold (or ±inf) is packed by exactly those numpy operations
instead, slice by slice, so that even those casts are NumPy's.
"""

from __future__ import annotations

import numba as nb
import numpy as np

__all__ = ["unpack", "pack"]

#: values per slice of :func:`pack` (a few hundred kB of float32: the cache, not RAM)
_SLICE = 1 << 17


@nb.njit(nogil=True, cache=True)
def _unpack(raw, f0, f1, masked, scale, offset, add, out):  # pragma: no cover - compiled
    # branch-free body (the loop vectorises): the fill test selects, it does not jump
    for i in range(raw.size):
        v = raw[i]
        x = np.float32(v) * scale
        if add:
            x = x + offset
        out[i] = np.float32(np.nan) if masked and (v == f0 or v == f1) else x


def unpack(raw: np.ndarray, *, fills, scale: np.float32, offset: np.float32,
           add: bool) -> np.ndarray:
    """float32 values of the packed integers ``raw``: NaN where ``raw`` equals one of
    ``fills`` (at most two: ``_FillValue`` and ``missing_value``), else
    ``float32(raw) * scale (+ offset if add)`` (CF packing, float32 arithmetic as netCDF
    readers do for a float32 ``scale_factor``)."""
    fills = [int(f) for f in fills]
    if len(fills) > 2:
        raise ValueError("unpack: at most two fill values")
    a = np.ascontiguousarray(raw)
    out = np.empty(a.shape, dtype=np.float32)
    f0 = fills[0] if fills else 0
    f1 = fills[-1] if fills else 0
    _unpack(a.reshape(-1), a.dtype.type(f0), a.dtype.type(f1), bool(fills), np.float32(scale),
            np.float32(offset), bool(add), out.reshape(-1))
    return out


@nb.njit(nogil=True, cache=True)
def _pack(flat, out, has_off, off, round1, has_scale, scale, round2, fill, lo, hi
          ):  # pragma: no cover - compiled
    # every operation in float64, rounded to float32 where NumPy's would be float32 (the
    # float32 result of one IEEE operation); branch-free so that the loop vectorises.
    # False when a value is beyond the integers' range (or infinite): numpy decides those
    bad = False
    for i in range(flat.size):
        x = np.float64(flat[i])
        if has_off:
            x = x - off
            if round1:
                x = np.float64(np.float32(x))
        if has_scale:
            x = x / scale
            if round2:
                x = np.float64(np.float32(x))
        r = np.rint(x)
        nan = r != r
        bad |= (not nan) and not (lo <= r <= hi)
        out[i] = fill if nan else min(max(r, lo), hi)
    return not bad


def _pack_compiled(a: np.ndarray, out: np.ndarray, *, scale, offset, fill, inplace: bool
                   ) -> bool:
    """:func:`pack` in one compiled pass; False (``out`` unusable) where the numpy
    operations must decide (values beyond the integer range, ±inf, unusual types)."""
    d0 = a.dtype
    to = out.dtype
    if d0 not in (np.float32, np.float64) or to.kind not in "iu":
        return False
    try:
        fill_i = int(fill)
    except (TypeError, ValueError, OverflowError):
        return False
    info = np.iinfo(to)
    if not info.min <= fill_i <= info.max or np.result_type(d0, fill) not in (np.float32,
                                                                               np.float64):
        return False
    # the types NumPy computes and stores each step in: ``x -= offset`` on a numpy block
    # computes in result_type(x, offset) and stores in x's type; ``x = x - offset`` (dask)
    # stores in the result type (Python scalars are weak: the array's type)
    s1 = d0
    w1 = np.result_type(d0, offset) if offset is not None else d0
    if offset is not None and not inplace:
        s1 = w1
    w2 = np.result_type(s1, scale) if scale is not None else s1
    s2 = d0 if inplace else w2
    if w1 not in (np.float32, np.float64) or w2 not in (np.float32, np.float64):
        return False
    off = float(w1.type(offset)) if offset is not None else 0.0
    sc = float(w2.type(scale)) if scale is not None else 1.0
    # a step computed in float32 is also stored in float32 (w = float32 only if s is), so
    # rounding each step to its stored type is NumPy's arithmetic
    return bool(_pack(a.reshape(-1), out.reshape(-1), offset is not None, off,
                      s1 == np.float32, scale is not None, sc, s2 == np.float32, fill_i,
                      float(info.min), float(info.max)))


def pack(block: np.ndarray, *, to, scale, offset, fill, inplace: bool = True) -> np.ndarray:
    """The integers (dtype ``to``) CF packing stores for the floats ``block``, as xarray's
    encoding computes them: ``x = float copy of block; x -= offset; x /= scale; NaN ->
    fill; round half to even; cast`` (``scale``/``offset`` None: that step is skipped; the
    scalars keep their types, so the arithmetic is the same), in one compiled pass (or, for
    a block with values beyond the integers' range, with those numpy operations one
    cache-sized slice at a time). ``inplace``: the subtraction and division keep the block's
    float type, as they do on a numpy array; ``False``: they promote as on a dask array,
    whose ``-=`` is ``x = x - offset`` (a float64 ``scale_factor`` then makes the arithmetic
    float64)."""
    a = np.ascontiguousarray(block)
    out = np.empty(a.shape, dtype=to)
    if _pack_compiled(a, out, scale=scale, offset=offset, fill=fill, inplace=inplace):
        return out
    flat = a.reshape(-1)
    dst = out.reshape(-1)
    for i in range(0, flat.size, _SLICE):
        x = flat[i:i + _SLICE].astype(a.dtype, copy=True)
        if offset is not None:
            if inplace:
                x -= offset
            else:
                x = x - offset
        if scale is not None:
            if inplace:
                x /= scale
            else:
                x = x / scale
        x = np.where(np.isnan(x), fill, x)
        dst[i:i + _SLICE] = np.round(x).astype(to)
    return out
