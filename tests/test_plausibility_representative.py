"""carbonsink.plausibility: the chunk-confined sample is representative of the whole grid.

Analytic case: 240 steps x 600 x 750 cells of 1.0 in dask chunks of 240 x 75 x 75 (8 x 10
spatial chunks, 10.8 MB each in float64), with NaN (or out-of-range values) in a frame along
all four sides plus an interior block. The exact shares are counted by hand below; the
reported shares must be within 2 percentage points of them whatever the byte budget, while
the chunks computed stay within ``SAMPLE_BLOCK_BYTES``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink import plausibility as pl
from carbonsink.plausibility import check_values

NT, NY, NX = 240, 600, 750
CT, CY, CX = 240, 75, 75
CHUNK_BYTES = CT * CY * CX * 8          # one float64 chunk: 10.8 MB


def _mask(fy: int, fx: int) -> np.ndarray:
    """A frame ``fy`` rows / ``fx`` columns wide along the four sides + a 60 x 100 block."""
    m = np.zeros((NY, NX), bool)
    m[:fy], m[NY - fy:], m[:, :fx], m[:, NX - fx:] = True, True, True, True
    m[250:310, 300:400] = True
    return m


# hand counts: cells outside the frame's inner rectangle, plus the interior block
TRUTH = {
    # 15 % frame: 90 of 600 rows and 112 of 750 columns on each side
    (90, 112): (NY * NX - (NY - 180) * (NX - 224) + 60 * 100) / (NY * NX),   # 0.52240
    # 5 % frame: 30 rows and 37 columns on each side
    (30, 37): (NY * NX - (NY - 60) * (NX - 74) + 60 * 100) / (NY * NX),      # 0.20213
}


def _lazy(mask: np.ndarray, fill: float = np.nan):
    """Lazy (time, y, x) field of 1.0 with ``fill`` where ``mask``, recording each chunk
    location it computes (decompresses)."""
    import dask.array as dsa

    seen = []

    def load(block, block_info=None):
        seen.append(tuple(block_info[0]["chunk-location"]))
        return block

    m = dsa.from_array(mask, chunks=(CY, CX))[None]
    ones = dsa.ones((NT, NY, NX), chunks=(CT, CY, CX), dtype="float64")
    arr = dsa.where(m, fill, ones).map_blocks(load, dtype="float64",
                                              meta=np.array((), dtype="float64"))
    da = xr.DataArray(arr, dims=("time", "y", "x"), attrs={"units": "g C m-2 month-1"},
                      coords={"time": pd.date_range("2001-01-01", periods=NT, freq="8D")})
    return da, seen


def test_truth_is_the_hand_count():
    for (fy, fx), share in TRUTH.items():
        assert _mask(fy, fx).mean() == pytest.approx(share, abs=1e-12)
    assert TRUTH[(90, 112)] == pytest.approx(0.5224, abs=1e-4)


def _west(width: int = 112) -> np.ndarray:
    """Missing values in a band along the western edge (all rows, the first ``width``
    columns): a pattern varying along one dimension, like the demo's GPP."""
    m = np.zeros((NY, NX), bool)
    m[:, :width] = True
    return m


@pytest.mark.parametrize("frame", sorted(TRUTH))
def test_confined_share_missing_of_a_frame_is_unbiased_and_within_budget(frame):
    """Default budget (24 spatial chunks of the 80): within 2 points of the hand count (the
    former first-and-last-chunk design reported 0.668 for 0.522 and 0.340 for 0.202)."""
    budget = pl.SAMPLE_BLOCK_BYTES
    assert budget // CHUNK_BYTES == 24
    da, seen = _lazy(_mask(*frame))
    rep = check_values(da, "gpp", how="report")
    # the confined path is taken (not every one of the 80 spatial chunks is read) ...
    assert seen and len(set(seen)) < 80
    # ... and the chunks computed stay within the byte budget (hand count: distinct chunks)
    assert len(set(seen)) * CHUNK_BYTES <= budget
    assert rep.n_steps == 12 and rep.n_sampled >= 0.95 * pl.DEFAULT_SAMPLE
    assert abs(rep.share_missing - TRUTH[frame]) <= 0.02, (rep.share_missing, TRUTH[frame])


@pytest.mark.parametrize("blocks", [7, 12, None])   # None: the default budget (24 chunks)
def test_confined_share_missing_of_an_edge_band_is_unbiased(monkeypatch, blocks):
    """A band of 112 of 750 columns along the western edge: exact share 112/750 = 0.1493
    (the former design reported 0.495 with 7 chunks, 0.333 with 12, 0.171 with 24)."""
    if blocks is not None:
        monkeypatch.setattr(pl, "SAMPLE_BLOCK_BYTES", blocks * CHUNK_BYTES + 100)
    da, seen = _lazy(_west())
    rep = check_values(da, "gpp", how="report")
    assert seen and len(set(seen)) * CHUNK_BYTES <= pl.SAMPLE_BLOCK_BYTES
    assert rep.n_sampled >= 0.95 * pl.DEFAULT_SAMPLE
    assert abs(rep.share_missing - 112 / 750) <= 0.02, rep.share_missing


def test_confined_out_of_range_share_is_unbiased(monkeypatch):
    """The western band holds negative GPP (out of range) instead of NaN, 7 chunks read:
    the out-of-range share and the share of the "negative" finding follow the grid, not the
    edge chunks (the former design reported 0.495 for 0.149)."""
    monkeypatch.setattr(pl, "SAMPLE_BLOCK_BYTES", 7 * CHUNK_BYTES + 100)
    truth = 112 / 750
    da, seen = _lazy(_west(), fill=-5.0)
    rep = check_values(da, "gpp", how="report")
    assert len(set(seen)) * CHUNK_BYTES <= pl.SAMPLE_BLOCK_BYTES
    assert rep.share_missing == 0.0
    assert abs(rep.share_out_of_range - truth) <= 0.02, (rep.share_out_of_range, truth)
    (f,) = rep.findings
    assert f.kind == "negative" and abs(f.share - truth) <= 0.02


@pytest.mark.parametrize("blocks", [7, 12, 24])
def test_tiles_are_a_latin_hypercube_of_chunks_and_self_weighting(monkeypatch, blocks):
    """T tiles: each of the T equal strata of each dimension holds exactly one tile and
    1/T of the sampled cells; every tile lies in one chunk; the first and the last chunk
    row and column are tiles (a stratum is at most two chunks wide)."""
    monkeypatch.setattr(pl, "SAMPLE_BLOCK_BYTES", blocks * CHUNK_BYTES + 100)
    da, _ = _lazy(_west())
    index, _ = pl._sample_index(da, pl.DEFAULT_SAMPLE, "time")
    y, x = np.asarray(index["y"]), np.asarray(index["x"])
    assert index["y"].dims == index["x"].dims == (pl._CELL,)
    tiles = set(zip((y // CY).tolist(), (x // CX).tolist()))
    assert len(tiles) <= blocks
    for pos, n_cells, size in ((y, NY, CY), (x, NX, CX)):
        assert {0, n_cells // size - 1} <= set((pos // size).tolist())
    # tile i: the i-th equal block of the sample, in one chunk, the chunk of the middle cell
    # of stratum i along y and of its lattice stratum along x (a permutation of 0 .. T-1)
    lattice = pl._lattice(blocks, 2)
    assert np.array_equal(lattice[:, 0], np.arange(blocks))
    assert np.array_equal(np.sort(lattice[:, 1]), np.arange(blocks))
    per_tile = y.size // blocks
    assert y.size == per_tile * blocks and per_tile >= 0.95 * pl.DEFAULT_SAMPLE / 12 / blocks
    for i in range(blocks):
        ys, xs = y[i * per_tile:(i + 1) * per_tile], x[i * per_tile:(i + 1) * per_tile]
        for p, s, n_cells, size in ((ys, i, NY, CY), (xs, lattice[i, 1], NX, CX)):
            mid = (s * n_cells / blocks + (s + 1) * n_cells / blocks - 1) // 2
            assert set((p // size).tolist()) == {int(mid // size)}
