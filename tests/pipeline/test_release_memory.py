"""release_memory hands freed heap memory back to the system between steps (glibc)."""

from __future__ import annotations

import ctypes.util
import gc
import sys

import numpy as np
import pytest

from carbonsink._memory import release_memory


def _rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not ctypes.util.find_library("c"),
                    reason="malloc_trim is a glibc function (Linux)")
def test_release_memory_returns_freed_heap_pages():
    # many small arrays live on the heap (below glibc's mmap threshold); keep every second
    # one so the freed pages sit between live ones and free() alone cannot return them
    arrays = [np.ones(8_000) for _ in range(8_000)]  # 64 kB each, 512 MB
    kept = arrays[::2]
    del arrays
    gc.collect()
    before = _rss_mb()
    release_memory()
    after = _rss_mb()
    assert len(kept) == 4_000
    assert before - after > 120, (before, after)  # 256 MB freed in 64 kB holes
