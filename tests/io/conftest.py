"""Fixtures for the io tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from _io_helpers import SHARED_DATA


@pytest.fixture
def shared_data() -> Path:
    """The real-data folder; skips the test with a reason when it is absent."""
    if not SHARED_DATA.exists():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (see shared/data/README.md)")
    return SHARED_DATA
