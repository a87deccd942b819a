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


def test_a_forked_process_does_not_wait_for_the_parents_dask_threads(tmp_path):
    """A failed write in a forked process (the figure saver) returns at once: the dask
    thread pool it inherited has no threads of its own (waiting on it would hang)."""
    import multiprocessing as mp

    import dask

    from carbonsink.io.atomic import quiesce_dask_threads

    dask.compute(dask.delayed(sum)([1, 2]), scheduler="threads")  # the pool has threads
    assert quiesce_dask_threads(timeout=5)
    ctx = mp.get_context("fork")
    proc = ctx.Process(target=_fail_a_write, args=(str(tmp_path / "x.zarr"),))
    proc.start()
    proc.join(60)
    alive = proc.is_alive()
    if alive:
        proc.kill()
    assert not alive and proc.exitcode == 0
    assert list(tmp_path.iterdir()) == []


def _fail_a_write(path):
    from carbonsink.io.atomic import atomic_write

    try:
        with atomic_write(path) as tmp:
            tmp.mkdir()
            raise ValueError("failed")
    except ValueError:
        pass
