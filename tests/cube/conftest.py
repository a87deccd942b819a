"""Fixtures for the cube tests: shared real data, dask laziness, synthetic cubes."""

from __future__ import annotations

from pathlib import Path

import dask
import pytest

from cube_helpers import make_cube


def _shared_file(shared_data: Path, relative: str, what: str) -> Path:
    p = shared_data / relative
    if not p.exists():
        pytest.skip(f"{what} not found at {p}")
    return p


@pytest.fixture(scope="session")
def provinces(shared_data) -> Path:
    return _shared_file(shared_data, "boundaries/china_provinces_dcw-gmt-2.1.1_simplified0.01deg"
                        ".geojson", "province boundaries")


@pytest.fixture(scope="session")
def mcd12c1(shared_data) -> Path:
    return _shared_file(shared_data, "landcover/MCD12C1.A2019001.006.2020220162300.tif",
                        "MCD12C1 land cover")


def _raise_on_compute(dsk, keys, **kwargs):
    raise AssertionError("dask graph was computed although the operation should stay lazy")


def no_compute_ctx():
    """A context in which any dask compute fails (``with no_compute_ctx(): ...``)."""
    return dask.config.set(scheduler=_raise_on_compute)


@pytest.fixture
def no_compute():
    """Factory of contexts in which any dask compute fails: ``with no_compute(): ...``."""
    return no_compute_ctx


@pytest.fixture
def cube_factory():
    return make_cube
