"""Fixtures shared by every test folder."""

from __future__ import annotations

from pathlib import Path

import pytest

from carbonsink.testing import SHARED_DATA_HINT, shared_data_dir


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real-data folder (../shared/data); skips the test with a reason when absent."""
    d = shared_data_dir()
    if not d.is_dir():
        pytest.skip(f"real test data not found at {d}: {SHARED_DATA_HINT}")
    return d
