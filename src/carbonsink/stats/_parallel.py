"""Run a numba kernel over pixel ranges on a few threads.

The kernels are compiled with ``nogil=True`` and process a half-open pixel
range ``[start, stop)`` of 2-D ``(pixels, time)`` arrays, writing into
preallocated outputs.  For NumPy input the ranges are spread over a small
thread pool; for dask input each chunk is already a task of the dask
scheduler, so the kernel runs on the calling thread only (no nested
parallelism, no oversubscription).  Numba's own ``parallel=True`` is not used
because its default threading layer refuses concurrent launches from several
dask worker threads.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

_lock = threading.Lock()
_pool: ThreadPoolExecutor | None = None
_pool_size = 0
_num_threads: int | None = None

#: minimum number of pixels handed to one task
MIN_PIXELS_PER_TASK = 2048


def get_num_threads() -> int:
    """Number of threads used for NumPy-backed input (default: usable CPU cores)."""
    if _num_threads is not None:
        return _num_threads
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - non-Linux
        return max(1, os.cpu_count() or 1)


def set_num_threads(n: int | None) -> None:
    """Set the number of threads for NumPy-backed input (``None`` = all cores)."""
    global _num_threads
    if n is not None and int(n) < 1:
        raise ValueError(f"number of threads must be >= 1, got {n}")
    _num_threads = None if n is None else int(n)


def _get_pool(n: int) -> ThreadPoolExecutor:
    global _pool, _pool_size
    with _lock:
        if _pool is None or _pool_size != n:
            if _pool is not None:
                _pool.shutdown(wait=False)
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="carbonsink-stats")
            _pool_size = n
        return _pool


def run_ranges(func, npix: int, threads: int | None) -> None:
    """Call ``func(start, stop)`` over ``[0, npix)`` split into ranges, on ``threads`` threads."""
    nthreads = get_num_threads() if threads is None else max(1, int(threads))
    if nthreads == 1 or npix < 2 * MIN_PIXELS_PER_TASK:
        func(0, npix)
        return
    ntasks = min(nthreads * 4, max(1, npix // MIN_PIXELS_PER_TASK))
    bounds = [npix * i // ntasks for i in range(ntasks + 1)]
    pool = _get_pool(nthreads)
    futures = [pool.submit(func, bounds[i], bounds[i + 1]) for i in range(ntasks)
               if bounds[i + 1] > bounds[i]]
    for f in futures:
        f.result()
