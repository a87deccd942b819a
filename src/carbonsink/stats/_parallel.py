"""Thread settings of the compiled kernels (moved to :mod:`carbonsink._engine`).

Kept so that ``carbonsink.stats.get_num_threads`` / ``set_num_threads`` and old imports
keep working; the thread pool is shared by the flux and statistics kernels.
"""

from __future__ import annotations

from .._engine import MIN_PIXELS_PER_TASK, get_num_threads, run_ranges, set_num_threads

__all__ = ["MIN_PIXELS_PER_TASK", "get_num_threads", "set_num_threads", "run_ranges"]
