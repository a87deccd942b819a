"""The chunks the analyses read and write cubes in: whole study tiles joined k x k, with k
from the number of time steps, so a chunk of an annual cube or a map holds about as many
values as a tile of the monthly cube and never splits a chunk the flux step wrote."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from carbonsink.pipeline.steps import MAX_TILE_FACTOR, analysis_chunks, study_chunks


def _cfg(tile=200, years=(2001, 2021)):
    return SimpleNamespace(dask=SimpleNamespace(chunks={"y": tile, "x": tile}),
                           period=SimpleNamespace(years=years))


@pytest.mark.parametrize("ny,nx,steps", [(1000, 1200, 21), (1000, 1200, 1), (1000, 1200, 252),
                                         (300, 300, 21), (4321, 777, 21), (50, 60, 1),
                                         (1000, 1200, 84)])
def test_joined_tiles_are_whole_multiples_and_bounded(ny, nx, steps):
    cfg = _cfg()
    sizes = {"time": steps, "y": ny, "x": nx} if steps > 1 else {"y": ny, "x": nx}
    base = study_chunks(cfg, sizes)
    got = analysis_chunks(cfg, sizes)
    k_expected = min(MAX_TILE_FACTOR, int((252 // steps) ** 0.5))
    for d, n in (("y", ny), ("x", nx)):
        assert got[d] % base[d] == 0  # whole study tiles: a flux cube's chunks stay whole
        k = got[d] // base[d]
        assert 1 <= k <= max(1, k_expected)
        tiles = -(-n // base[d])
        # as few chunks as k allows, in balanced groups
        assert -(-n // got[d]) == -(-tiles // max(1, k_expected))
    if "time" in sizes:
        assert got["time"] == -1  # pixel series whole
    if steps == 252:
        assert got == base  # the monthly cube keeps the study's tiles


def test_annual_cube_of_the_benchmark_study_and_maps():
    cfg = _cfg()
    assert analysis_chunks(cfg, {"time": 21, "y": 1000, "x": 1200}) == \
        {"time": -1, "y": 600, "x": 600}  # 3 x 3 tiles of 200
    assert analysis_chunks(cfg, {"y": 1000, "x": 1200}) == {"y": 1000, "x": 1200}  # 1 chunk
    # a short study: fewer months per step, smaller factor
    assert analysis_chunks(_cfg(years=(2001, 2003)), {"time": 3, "y": 1000, "x": 1200}) == \
        {"time": -1, "y": 600, "x": 600}
    assert analysis_chunks(_cfg(years=(2001, 2001)), {"time": 12, "y": 1000, "x": 1200}) == \
        study_chunks(_cfg(), {"time": 12, "y": 1000, "x": 1200})
