"""A study on a dask cluster whose workers do not share the client's temporary directory, and
a worker killed in the middle of a run (issue 15, "Distributed").

The small heterogeneous study of ``pipeline_helpers`` (10 x 10 cells, 24 months, two
combinations) runs on a ``LocalCluster`` of two worker processes; its tables must be
byte-identical (CSV) to those of a local run of the same study and its cubes numerically equal.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from pipeline_helpers import study_dict

from carbonsink.cli import _guarded
from carbonsink.errors import CarbonsinkError
from carbonsink.io.atomic import is_temporary
from carbonsink.pipeline import run_study

distributed = pytest.importorskip(
    "distributed", reason="dask.distributed is not installed: no cluster to run a study on")

pytestmark = pytest.mark.slow

OUTPUTS = {"dir": "results", "formats": ["zarr", "csv", "parquet"], "monthly": "models",
           "figures": False}


def _study(folder: Path, scheduler: str | None, name: str) -> Path:
    d = study_dict(outputs=dict(OUTPUTS))
    if scheduler:
        d["dask"] = {"scheduler": scheduler}
    p = folder / name
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def _files(root: Path) -> set[str]:
    return {str(Path(dp, f).relative_to(root)) for dp, _, fs in os.walk(root) for f in fs}


def _assert_same_results(local: Path, other: Path) -> None:
    """CSV tables byte-identical, Parquet tables equal, every cube numerically equal."""
    tables = sorted(p.name for p in (local / "tables").glob("*.csv"))
    assert tables and tables == sorted(p.name for p in (other / "tables").glob("*.csv"))
    for name in tables:
        same = (other / "tables" / name).read_bytes() == (local / "tables" / name).read_bytes()
        assert same, f"{name} differs from the local run"
        pq = name.replace(".csv", ".parquet")
        pd.testing.assert_frame_equal(pd.read_parquet(other / "tables" / pq),
                                      pd.read_parquet(local / "tables" / pq))
    cubes = sorted(str(p.relative_to(local)) for p in local.glob("cubes/**/*.zarr"))
    assert len(cubes) >= 9
    assert cubes == sorted(str(p.relative_to(other)) for p in other.glob("cubes/**/*.zarr"))
    for rel in cubes:
        a, b = xr.open_zarr(local / rel), xr.open_zarr(other / rel)
        assert set(a.data_vars) == set(b.data_vars), rel
        for v in a.data_vars:
            np.testing.assert_array_equal(a[v].values, b[v].values, err_msg=f"{rel}:{v}")


@pytest.fixture(scope="module")
def inputs(hetero_inputs, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("dist_inputs")
    for item in hetero_inputs.iterdir():
        (shutil.copytree if item.is_dir() else shutil.copy)(item, folder / item.name)
    return folder


@pytest.fixture(scope="module")
def local_results(inputs) -> Path:
    """The same study run without a scheduler (the reference)."""
    run_study(_study(inputs, None, "local.yaml"), inputs / "local_results", echo=lambda m: None)
    return inputs / "local_results"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """Two worker processes, one thread each, whose TMPDIR and local directory are their own
    folder (never the client's temporary directory)."""
    worker_tmp = tmp_path_factory.mktemp("worker_tmp")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, env={"TMPDIR": str(worker_tmp)},
                                  local_directory=str(worker_tmp)) as cl:
        cl.worker_tmp = worker_tmp
        yield cl


def _write_log_hook() -> list[str]:
    """Install (once per process) an audit hook recording every path opened for writing,
    created (``mkdir``) or renamed onto; return this process's log, emptied. Run in the
    workers with ``client.run`` (they import this module: spawned processes get the client's
    ``sys.path``)."""
    import os
    import sys

    log = getattr(sys, "_carbonsink_write_log", None)
    if log is None:
        log = sys._carbonsink_write_log = []
        write_flags = os.O_WRONLY | os.O_RDWR | os.O_CREAT

        def hook(event, args):
            if event == "open":
                path, mode, flags = args
                writes = any(c in mode for c in "wax+") if isinstance(mode, str) \
                    else bool((flags or 0) & write_flags)
            elif event in ("os.mkdir", "os.rename"):
                path, writes = args[1] if event == "os.rename" else args[0], True
            else:
                return
            if writes and isinstance(path, (str, bytes, os.PathLike)):
                log.append(os.path.abspath(os.fsdecode(path)))

        sys.addaudithook(hook)
    log.clear()
    return log


def _written_paths() -> list[str]:
    import sys

    return list(getattr(sys, "_carbonsink_write_log", []))


def _worker_info(cluster) -> dict[str, tuple[int, str]]:
    with distributed.Client(cluster.scheduler_address, timeout="20s") as c:
        c.wait_for_workers(2, timeout=30)
        return c.run(lambda: (os.getpid(), tempfile.gettempdir()))


def test_workers_without_the_client_temp_dir_write_only_the_output_folder(
        inputs, local_results, cluster, tmp_path, monkeypatch):
    """The client's temporary directory is a folder the workers are not told about (their
    TMPDIR is another one) and stays empty; the workers write only into the results folder,
    given relative to the client's working directory (the workers run elsewhere)."""
    client_tmp = tmp_path / "client_tmp"
    client_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(client_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(client_tmp))
    assert tempfile.gettempdir() == str(client_tmp)
    workers = _worker_info(cluster)
    assert len(workers) == 2
    for _, wtmp in workers.values():
        assert Path(wtmp) == cluster.worker_tmp and Path(wtmp) != client_tmp
    client_cwd = tmp_path / "client_cwd"
    client_cwd.mkdir()
    monkeypatch.chdir(client_cwd)
    study = _study(inputs, cluster.scheduler_address, "cluster.yaml")
    worker_before = _files(cluster.worker_tmp)
    inputs_before = _files(inputs)

    lines: list[str] = []
    t0 = time.perf_counter()
    with distributed.Client(cluster.scheduler_address, timeout="20s") as c:
        c.run(_write_log_hook)
        client_log = _write_log_hook()
        ctx = run_study(study, "results", echo=lines.append)
        worker_logs = c.run(_written_paths)
    client_written = list(client_log)
    print(f"cluster run: {time.perf_counter() - t0:.1f} s")
    assert any("using dask cluster" in line for line in lines)
    out = client_cwd / "results"
    assert ctx.out_dir.resolve() == out.resolve()
    assert (out / "index.html").is_file()
    assert json.loads((out / ".carbonsink" / "results-folder.json").read_text())[
        "status"] == "complete"
    # the workers wrote into the results folder (and their own scratch space) only
    assert len(worker_logs) == 2
    written = [w for log in worker_logs.values() for w in log]
    in_out = [w for w in written if Path(w).is_relative_to(out.resolve())]
    assert any(".zarr" in w for w in in_out), "the workers wrote no Zarr chunk"
    elsewhere = [w for w in written if w not in in_out
                 and not Path(w).is_relative_to(cluster.worker_tmp)
                 and "__pycache__" not in Path(w).parts]  # numba / bytecode caches
    assert not elsewhere, elsewhere
    # nothing under the client's temporary directory, nothing of carbonsink with the workers
    assert not [w for w in client_written + written if Path(w).is_relative_to(client_tmp)]
    assert _files(client_tmp) == set()
    new_worker_files = _files(cluster.worker_tmp) - worker_before
    assert not [f for f in new_worker_files if ".zarr" in f or "results" in f
                or any(is_temporary(part) for part in Path(f).parts)], new_worker_files
    # nothing beside the inputs, every output inside the results folder
    assert _files(inputs) == inputs_before
    assert sorted(os.listdir(client_cwd)) == ["results"]
    assert not [f for f in _files(out) if any(is_temporary(p) for p in Path(f).parts)]
    for step, paths in ctx.outputs.items():
        for p in paths:
            assert Path(p).resolve().is_relative_to(out.resolve()), (step, p)
    _assert_same_results(local_results, out)


def _run_in_thread(study: Path, out: Path) -> tuple[threading.Thread, dict]:
    box: dict = {"lines": []}

    def target():
        try:
            box["ctx"] = run_study(study, out, echo=box["lines"].append)
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            box["error"] = exc

    th = threading.Thread(target=target, daemon=True)
    th.start()
    return th, box


def _kill_a_busy_worker_during_flux(cluster, out: Path, th: threading.Thread,
                                    timeout: float = 40.0) -> int:
    """Wait until the flux step writes (``cubes/models`` exists) and a worker is running a
    task, then SIGKILL that worker process; returns its pid."""
    pids = {addr: pid for addr, (pid, _) in _worker_info(cluster).items()}
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end and th.is_alive():
        if (out / "cubes" / "models").is_dir():
            busy = [a for a, ts in cluster.scheduler.workers.items() if ts.processing]
            if busy and busy[0] in pids:
                os.kill(pids[busy[0]], signal.SIGKILL)
                return pids[busy[0]]
        time.sleep(0.01)
    pytest.fail("the flux step did not start (or ended) before a worker could be killed")


def _wait_for_workers(cluster, n: int = 2) -> None:
    with distributed.Client(cluster.scheduler_address, timeout="20s") as c:
        c.wait_for_workers(n, timeout=30)


def test_worker_killed_mid_run_is_retried(inputs, local_results, cluster, tmp_path):
    """With dask's default retries (``allowed-failures``), the tasks of a worker killed during
    the flux step are recomputed elsewhere: the run completes with the local run's results."""
    _wait_for_workers(cluster)
    out = tmp_path / "results"
    t0 = time.perf_counter()
    th, box = _run_in_thread(_study(inputs, cluster.scheduler_address, "retry.yaml"), out)
    killed = _kill_a_busy_worker_during_flux(cluster, out, th)
    th.join(60)
    print(f"run with worker {killed} killed: {time.perf_counter() - t0:.1f} s")
    assert not th.is_alive(), "the run hangs after a worker was killed"
    assert "error" not in box, repr(box.get("error"))
    assert (out / "index.html").is_file()
    _assert_same_results(local_results, out)
    _wait_for_workers(cluster)  # the nanny restarts the killed worker


def test_worker_killed_without_retries_fails_cleanly_and_rerun_resumes(
        inputs, local_results, cluster, tmp_path, monkeypatch, capsys):
    """With retries off, the killed worker's tasks are lost: the run stops with a carbonsink
    error naming the scheduler and the rerun, leaves no report, no flux record and no
    temporaries, and the rerun resumes (prepare kept) to the local run's results."""
    from carbonsink.pipeline.runner import DaskClusterError

    _wait_for_workers(cluster)
    out = tmp_path / "results"
    study = _study(inputs, cluster.scheduler_address, "noretry.yaml")
    old = cluster.scheduler.allowed_failures
    cluster.scheduler.allowed_failures = 0
    try:
        t0 = time.perf_counter()
        th, box = _run_in_thread(study, out)
        killed = _kill_a_busy_worker_during_flux(cluster, out, th)
        th.join(60)
        print(f"run with worker {killed} killed, no retries: {time.perf_counter() - t0:.1f} s")
    finally:
        cluster.scheduler.allowed_failures = old
    assert not th.is_alive(), "the run hangs after a worker was killed"
    exc = box.get("error")
    assert isinstance(exc, DaskClusterError) and isinstance(exc, CarbonsinkError), repr(exc)
    msg = str(exc)
    assert cluster.scheduler_address in msg and "rerun" in msg and "flux" in msg, msg
    assert type(exc.__cause__).__name__ == "KilledWorker"
    # the command line prints it as one line, without a traceback (exit code 2)
    monkeypatch.delenv("CARBONSINK_DEBUG", raising=False)
    with pytest.raises(SystemExit) as stop:
        _guarded(lambda: (_ for _ in ()).throw(exc))
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.startswith("error: step 'flux'"), err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1
    # nothing finished-looking: no report, no record of the failed step, no temporaries
    assert not (out / "index.html").exists()
    state = out / ".carbonsink"
    assert (state / "prepare.json").is_file() and not (state / "flux.json").exists()
    assert json.loads((state / "results-folder.json").read_text())["status"] == "failed"
    assert not [f for f in _files(out) if any(is_temporary(p) for p in Path(f).parts)]
    prepared = json.loads((state / "prepare.json").read_text())["outputs"]
    left = sorted(str(p.relative_to(out)) for p in out.glob("cubes/**/*.zarr"))
    assert left == sorted(p for p in prepared if p.endswith(".zarr")), left  # no flux cube

    _wait_for_workers(cluster)
    lines: list[str] = []
    t0 = time.perf_counter()
    run_study(study, out, echo=lines.append)
    print(f"rerun: {time.perf_counter() - t0:.1f} s")
    assert any("read, convert and align inputs: up to date, skipped" in line for line in lines)
    assert (out / "index.html").is_file()
    _assert_same_results(local_results, out)
