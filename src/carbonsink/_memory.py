"""Handing freed memory back to the system between passes over a region.

glibc keeps the heap pages of freed arrays for reuse; after a pass over a large region the
resident memory of the process then stays near that pass's high-water mark, and fragments
left by many tiles add up as the region grows. :func:`release_memory` (``malloc_trim``)
returns those pages, so each pass starts from the memory it really holds (README, "Speed,
memory and disk of a whole study").

:func:`computed_in_batches` computes several lazy results per dask computation while
bounding the bytes of results held at once (per-region maps of many combinations).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys

__all__ = ["release_memory", "computed_in_batches", "BATCH_BYTES"]

#: bytes of computed results a batch of :func:`computed_in_batches` holds at most
BATCH_BYTES = 256 << 20

_TRIM = None


def _malloc_trim():
    global _TRIM
    if _TRIM is None:
        _TRIM = False
        if sys.platform.startswith("linux"):
            try:
                _TRIM = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
            except (OSError, AttributeError):  # not glibc (e.g. musl): nothing to do
                _TRIM = False
    return _TRIM


def release_memory() -> None:
    """Return the heap pages of freed arrays to the system (glibc ``malloc_trim(0)``; a no-op
    on other platforms). Called by the pipeline before each step and by the Zarr writers
    after each computation (every pass of the prepare step, every block of a region written
    block by block): the arrays of the previous pass are gone, but without it glibc keeps
    their pages (at 1.2 million
    pixels 0.23 GB after the input checks alone, ~0.1 GB over the flux step's blocks)."""
    trim = _malloc_trim()
    if trim:
        trim(0)


def _nbytes(obj) -> int:
    if isinstance(obj, dict):
        return sum(_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(_nbytes(v) for v in obj)
    # looked up on the type: a dask Delayed answers any attribute with another Delayed
    return int(obj.nbytes) if hasattr(type(obj), "nbytes") else 0


def computed_in_batches(items, budget: int | None = None):
    """Yield ``(tag, computed)`` for ``(tag, lazy)`` items, in order: several lazy objects
    (xarray objects, dicts or lists of them, dask Delayed) per ``dask.compute`` (their inputs
    read together, every thread busy), but no more than ``budget`` bytes of results
    (:data:`BATCH_BYTES`; objects without a size count 0) held at a time, so that the memory
    of per-region results (maps of every combination and experiment) does not add up."""
    import dask

    budget = BATCH_BYTES if budget is None else int(budget)
    batch, size = [], 0
    for item in [*items, None]:
        if item is not None:
            batch.append(item)
            size += _nbytes(item[1])
        if batch and (item is None or size >= budget):
            for (tag, _), done in zip(batch, dask.compute(*[b[1] for b in batch])):
                yield tag, done
            batch, size = [], 0
