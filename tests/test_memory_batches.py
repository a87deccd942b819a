"""computed_in_batches: every lazy object computed, in order, with no more than the budget
of results per dask computation."""

import dask
import numpy as np
import xarray as xr

from carbonsink._memory import computed_in_batches


def test_batches_keep_order_and_the_budget():
    calls = []

    def counting(dsk, keys, **kw):
        calls.append(len(keys))
        return dask.threaded.get(dsk, keys, **kw)

    arrays = [xr.DataArray(np.full((10, 10), float(i))).chunk(5) for i in range(7)]
    items = [(i, {"a": a}) for i, a in enumerate(arrays)]  # 800 bytes each
    with dask.config.set(scheduler=counting):
        out = list(computed_in_batches(items, budget=2000))
    assert [t for t, _ in out] == list(range(7))
    for i, (_, d) in enumerate(out):
        assert isinstance(d["a"].data, np.ndarray) and float(d["a"][0, 0]) == i
    assert len(calls) == 3  # 3 + 3 + 1 items: a batch closes once it holds >= 2000 bytes
    # a delayed object (no size) rides along with the next batch
    delayed = dask.delayed(sum)([1, 2, 3])
    got = list(computed_in_batches([("d", delayed), ("x", arrays[2])]))
    assert got[0] == ("d", 6) and float(got[1][1][0, 0]) == 2.0
