"""Helpers for tests and benchmarks: where the real shared data lives.

The real data (FLUXNET towers, MODIS land cover, China boundaries, SRDB, CMIP
samples) is not shipped with carbonsink; developers and CI have it in
``../shared/data`` beside the project checkout. ``CARBONSINK_SHARED_DATA``
overrides that location.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["shared_data_dir", "SHARED_DATA_HINT"]

SHARED_DATA_HINT = ("set CARBONSINK_SHARED_DATA to the shared/data folder, or place it at "
                    "../shared/data beside the project checkout")


def shared_data_dir() -> Path:
    """The real-data folder (it may not exist: callers skip with a reason then)."""
    env = os.environ.get("CARBONSINK_SHARED_DATA")
    if env:
        return Path(env).expanduser().resolve()
    return (Path(__file__).resolve().parents[3] / ".." / "shared" / "data").resolve()
