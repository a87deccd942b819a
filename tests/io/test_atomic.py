"""carbonsink.io.atomic: a failed write leaves no temporary, even with dask tasks running."""

from __future__ import annotations

import pytest


def test_failed_write_waits_for_tasks_still_running_on_dask_threads(tmp_path):
    """A computation that fails while another task is still writing into the temporary
    store (an interrupted flux step) leaves no temporary behind: the failed write waits for
    the running task before removing the store (without the wait the task recreates it)."""
    import threading
    import time

    import dask

    from carbonsink.io.atomic import atomic_write, is_temporary

    started = threading.Event()
    target = tmp_path / "cube.zarr"

    with pytest.raises(RuntimeError, match="one task failed"):
        with atomic_write(target) as tmp:
            tmp.mkdir()

            def writer():
                started.set()
                time.sleep(1.0)  # still running when the other task fails
                (tmp / "var" / "0.0").parent.mkdir(parents=True, exist_ok=True)
                (tmp / "var" / "0.0").write_bytes(b"chunk")
                return 1

            def failing():
                started.wait(10)
                raise RuntimeError("one task failed")

            dask.compute(dask.delayed(writer)(), dask.delayed(failing)(), scheduler="threads")
    time.sleep(1.5)  # any task still running would have written by now
    assert not target.exists()
    assert [p for p in tmp_path.iterdir() if is_temporary(p.name)] == []
