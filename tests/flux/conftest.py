"""Fixtures of the flux tests (helpers live in flux_helpers.py)."""

import pytest
from flux_helpers import make_inputs, raising_scheduler


@pytest.fixture
def inputs():
    return make_inputs()


@pytest.fixture
def no_compute():
    import dask

    with dask.config.set(scheduler=raising_scheduler):
        yield
