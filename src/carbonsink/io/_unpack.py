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
puts the fill value where NaN, rounds and casts: six whole-block arrays. :func:`pack` applies
exactly those numpy operations, with the same scalars, to slices of the block that fit in the
processor's cache, so the stored integers are the same bytes (tests/io/test_unpack.py).
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


def pack(block: np.ndarray, *, to, scale, offset, fill, inplace: bool = True) -> np.ndarray:
    """The integers (dtype ``to``) CF packing stores for the floats ``block``, as xarray's
    encoding computes them: ``x = float copy of block; x -= offset; x /= scale; NaN ->
    fill; round half to even; cast`` (``scale``/``offset`` None: that step is skipped; the
    scalars keep their types, so the arithmetic is the same), one cache-sized slice at a
    time. ``inplace``: the subtraction and division keep the block's float type, as they do
    on a numpy array; ``False``: they promote as on a dask array, whose ``-=`` is ``x = x -
    offset`` (a float64 ``scale_factor`` then makes the arithmetic float64)."""
    a = np.ascontiguousarray(block)
    flat = a.reshape(-1)
    out = np.empty(a.shape, dtype=to)
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
