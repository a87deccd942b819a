"""The one engine of area-weighted sums over regions, zones and classes (private).

Every regional, zonal and per-class summary (:func:`carbonsink.regions.summarise`,
:func:`carbonsink.analysis.summaries.class_series`) reduces a field ``F (…, y, x)`` with cell
weights ``A (y, x)`` [m2] to three sums per group and per step of the other dimensions
(carbonsink docs/methods.md §1.6)::

    area[t, g]  = Σ_{cells of g, F valid} A          (valid area)
    sum[t, g]   = Σ_{cells of g, F valid} A · F      (weighted sum)
    count[t, g] = Σ_{cells of g, F valid} 1          (valid cells)

A group is either a **label** (an integer index per cell, ``-1`` = in no group, constant or
varying along the other dimensions, e.g. the land-cover class of each year) or a **share**
(a stack ``(zone, y, x)`` of the fraction of each cell inside each zone; a border cell counts
with its area times its share). A cell with NaN weight adds to ``count`` only.

One compiled (numba) pass per spatial block reads each value once and keeps no temporaries;
blocks are tasks of the dask scheduler whose partial sums (a few numbers per group) are added
at the end, so memory is bounded by the block, never by the region. The result stays lazy
until the caller computes it, so several summaries compute in one pass.
"""

from __future__ import annotations

import numba as nb
import numpy as np
import xarray as xr

__all__ = ["grouped_sums", "class_area_sums", "STATISTICS"]

#: the three sums of :func:`grouped_sums`, in order along its ``statistic`` dimension
STATISTICS = ("area", "sum", "count")

_JIT = dict(nogil=True, cache=True)


@nb.njit(**_JIT)
def _label_sums(f, w, code, n):  # pragma: no cover - compiled
    """The three sums of every label, each cell added in pixel order.

    The sums of the current label are held in local variables while consecutive valid cells
    share it (labels come in spatial runs: one region, zones, land-cover patches), and are
    stored back when the label changes: the same additions in the same order as adding to
    ``out`` cell by cell, so the same sums bit for bit, but without a load and store through
    memory per cell (2.0 instead of 3.0 ns per value for one label, 2.7 instead of 3.2 for
    the ten land-cover classes of the 1.2 M-pixel benchmark study).
    """
    nt, npix = f.shape
    out = np.zeros((3, nt, n))
    varying = code.shape[0] > 1
    for t in range(nt):
        row = t if varying else 0
        cur = -1
        s_area = 0.0
        s_sum = 0.0
        s_count = 0.0
        for p in range(npix):
            g = code[row, p]
            if g < 0 or g >= n:
                continue
            v = f[t, p]
            if np.isnan(v):
                continue
            if g != cur:
                if cur >= 0:
                    out[0, t, cur] = s_area
                    out[1, t, cur] = s_sum
                    out[2, t, cur] = s_count
                cur = g
                s_area = out[0, t, g]
                s_sum = out[1, t, g]
                s_count = out[2, t, g]
            s_count += 1.0
            a = w[p]
            if np.isnan(a):
                continue
            s_area += a
            s_sum += a * v
        if cur >= 0:
            out[0, t, cur] = s_area
            out[1, t, cur] = s_sum
            out[2, t, cur] = s_count
    return out


@nb.njit(**_JIT)
def class_area_sums(cv, codes, zone, area, fill, nz):  # pragma: no cover - compiled
    """Area of each (block, zone, class): ``out[b, zone[p], i] += area[p]`` for the cells
    whose value ``cv[b, p]`` equals ``codes[i]`` (not NaN, not ``fill``, finite area).

    The cells are added in the order of ``np.bincount`` over the flattened (b, p) indices, so
    the sums are those of that formulation, bit for bit, in one pass without temporaries.
    """
    nb_, npix = cv.shape
    k = codes.shape[0]
    out = np.zeros((nb_, nz, k))
    for b in range(nb_):
        for p in range(npix):
            v = cv[b, p]
            if v != v or v == fill:
                continue
            a = area[p]
            if not np.isfinite(a):
                continue
            for i in range(k):
                if codes[i] == v:
                    out[b, zone[p], i] += a
                    break
    return out


@nb.njit(**_JIT)
def _share_sums(f, w, share):  # pragma: no cover - compiled
    nt, npix = f.shape
    nz = share.shape[0]
    out = np.zeros((3, nt, nz))
    for t in range(nt):
        for p in range(npix):
            v = f[t, p]
            if np.isnan(v):
                continue
            a = w[p]
            for z in range(nz):
                s = share[z, p]
                if not s > 0.0:  # 0 or NaN: outside the zone
                    continue
                out[2, t, z] += 1.0
                if np.isnan(a):
                    continue
                out[0, t, z] += a * s
                out[1, t, z] += a * s * v
    return out


def _block(f, w, code, share, n):
    """Sums of one block: ``f (…, by, bx)``, ``w (by, bx)``, ``code (…, by, bx)`` or
    ``(by, bx)`` or None, ``share (zone, by, bx)`` or None → ``(3, steps, groups)``."""
    f = np.asarray(f)
    if f.dtype.kind != "f":
        f = f.astype(np.float64)
    by, bx = f.shape[-2:]
    f2 = np.ascontiguousarray(f.reshape(-1, by * bx))
    w1 = np.ascontiguousarray(np.asarray(w, dtype=np.float64).reshape(by * bx))
    parts = []
    if code is not None:
        c = np.asarray(code)
        if c.dtype.kind not in "iu":
            c = c.astype(np.int64)
        c2 = np.ascontiguousarray(c.reshape(-1, by * bx))  # any integer type: no copy
        parts.append(_label_sums(f2, w1, c2, n))
    if share is not None:
        s2 = np.ascontiguousarray(np.asarray(share, dtype=np.float64).reshape(-1, by * bx))
        parts.append(_share_sums(f2, w1, s2))
    return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=2)


def _block_part(f, w, code, share, n):
    """:func:`_block` of one spatial block as a ``(1, 1, 3, steps, groups)`` array (the
    block's place in the grid of blocks first). The dimensions other than space are one
    block each, which blockwise passes as (nested) one-element lists: unwrapped here, not
    concatenated (dask's ``concatenate=True`` copies every block into a new array, even a
    single one: 2.3 s of the two summary steps at 600 x 600 pixels)."""
    return _block(_single(f), w, _single(code), _single(share), n)[None, None]


def _single(x):
    while isinstance(x, list):
        if len(x) != 1:  # the callers rechunk those dimensions whole
            raise ValueError("grouped_sums: a non-spatial dimension in several blocks")
        x = x[0]
    return x


def _add_blocks(parts):
    """Sum of the partial sums ``(by, bx, 3, steps, groups)`` over the blocks, added in
    row-major block order."""
    return np.sum(parts.reshape(-1, *parts.shape[2:]), axis=0)


def grouped_sums(da: xr.DataArray, weight: xr.DataArray, dims: tuple[str, str], *,
                 codes: xr.DataArray | None = None, n_groups: int = 1,
                 shares: xr.DataArray | None = None) -> xr.DataArray:
    """Lazy ``(statistic, *other dims of da, group)`` sums (:data:`STATISTICS`) of ``da`` over
    the cells of each group: first the ``n_groups`` labels of ``codes`` (integer index
    ``0 … n_groups − 1`` per cell, ``−1`` = none; ``(y, x)`` or varying along other dimensions
    of ``da``; ``None`` = every cell in group 0), then the zones of ``shares``
    (``(zone, y, x)``, if given).

    ``weight (y, x)`` is the cell weight (e.g. area [m2]); all arrays must be on the grid of
    ``da`` (same coordinates). float64 results; with dask input the sums are taken per spatial
    block (one task each, the other dimensions whole) and then added.
    """
    import dask.array as dsa

    ydim, xdim = dims
    other = [d for d in da.dims if d not in dims]

    def bare(x):
        return x.drop_vars([c for c in x.coords if c not in x.dims], errors="ignore")

    f = bare(da).transpose(*other, ydim, xdim)
    if codes is None and shares is None:
        codes = xr.zeros_like(bare(weight), dtype=np.int64)
        n_groups = 1
    if codes is not None:
        codes = bare(codes)
        extra = [d for d in codes.dims if d not in dims]
        if set(extra) - set(other):
            raise ValueError(f"grouped_sums: the labels have dimensions {extra} that the data "
                             f"({da.dims}) lack")
        if extra:  # labels that vary along the other dimensions: one label plane per step
            codes = codes.broadcast_like(f.isel({ydim: 0, xdim: 0}, drop=True))
            codes = codes.transpose(*other, ydim, xdim)
        else:
            codes = codes.transpose(ydim, xdim)
    if shares is not None:
        shares = bare(shares).transpose("zone", ydim, xdim)
    w = bare(weight).transpose(ydim, xdim)
    n_out = (n_groups if codes is not None else 0) + (
        shares.sizes["zone"] if shares is not None else 0)
    lead = [da.sizes[d] for d in other]
    out_dims = ("statistic", *other, "group")
    coords = {"statistic": list(STATISTICS)}
    coords.update({d: da[d].values for d in other if d in da.coords})
    shape = (3, *lead, n_out)

    arrays = [x for x in (f, w, codes, shares) if x is not None]
    if not any(isinstance(x.data, dsa.Array) for x in arrays):
        res = _block(f.values, w.values, None if codes is None else codes.values,
                     None if shares is None else shares.values, n_groups)
        return xr.DataArray(res.reshape(shape), dims=out_dims, coords=coords)

    # one task per spatial block, the other dimensions whole: a blockwise layer (built
    # lazily, fused with the reads of the block) whose blocks are the partial sums, added
    # in one task in the order of the blocks
    fd = dsa.asarray(f.data)
    lead_whole = tuple(-1 for _ in other)
    fd = fd.rechunk(lead_whole + fd.chunks[-2:])
    space = fd.chunks[-2:]
    lead_ix = tuple(f"l{i}" for i in range(len(other)))
    args = [fd, lead_ix + ("y", "x"), dsa.asarray(w.data).rechunk(space), ("y", "x")]
    if codes is not None:
        cd = dsa.asarray(codes.data)
        cd = cd.rechunk(tuple(-1 for _ in range(cd.ndim - 2)) + space)
        args += [cd, lead_ix[len(lead_ix) - (cd.ndim - 2):] + ("y", "x")]
    else:
        args += [None, None]
    if shares is not None:
        args += [dsa.asarray(shares.data).rechunk((-1, *space)), ("zone", "y", "x")]
    else:
        args += [None, None]
    nsteps = int(np.prod(lead)) if lead else 1
    parts = dsa.blockwise(_block_part, ("y", "x", "s", "t", "g"), *args, n_groups, None,
                          new_axes={"s": 3, "t": nsteps, "g": n_out},
                          adjust_chunks={"y": 1, "x": 1},
                          dtype=np.float64, meta=np.empty((0,) * 5, np.float64))
    arr = parts.rechunk(-1).map_blocks(_add_blocks, drop_axis=[0, 1], dtype=np.float64,
                                       meta=np.empty((0,) * 3, np.float64))
    return xr.DataArray(arr.reshape(shape), dims=out_dims, coords=coords)
