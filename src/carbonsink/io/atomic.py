"""Atomic writes: write to a temporary path beside the target, then rename.

A reader (or a pipeline rerun that skips finished steps) must never see a
half-written output that looks finished. Every carbonsink writer therefore
writes into a temporary file or directory *in the same directory* as the
target (so the final rename stays on one file system and is atomic) and only
renames it onto the target once the write has completed. If the write fails,
the temporary path is removed and the target is left as it was.

The temporary name starts with a dot and contains ``.tmp-`` so that
unfinished outputs are hidden and easy to recognise; it keeps the target's
suffixes (``.tif``, ``.nc``, ``.zarr`` ...) because some drivers choose the
format from the file name.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "temp_path_for", "TEMP_MARKER", "is_temporary", "remove_temporaries",
           "track_commits", "quiesce_dask_threads"]

TEMP_MARKER = ".tmp-"
#: names of the temporaries :func:`temp_path_for` and :func:`_commit` create (and nothing else)
_TEMP_NAME = re.compile(r"^\..*\.tmp-(old-)?[0-9a-f]{12}(\.[^/]*)?$")
_TRACKERS: list[list[Path]] = []
_TRACK_LOCK = threading.Lock()


def is_temporary(name: str) -> bool:
    """True when ``name`` (a file or folder name) is one of carbonsink's write temporaries."""
    return bool(_TEMP_NAME.match(name))


def remove_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Remove every carbonsink write temporary under ``folder`` (left by a killed run).

    Only names of the exact form carbonsink creates (``.<name>.tmp-<12 hex>[suffix]`` and
    ``.<name>.tmp-old-<12 hex>``) are removed; the search does not descend into them.
    Returns the paths removed. Call it only while no other run writes into ``folder``.
    """
    removed: list[Path] = []
    root = Path(folder)
    if not root.is_dir():
        return removed
    for dirpath, dirnames, filenames in os.walk(root):
        for name in list(dirnames):
            if is_temporary(name):
                dirnames.remove(name)
                _remove(Path(dirpath) / name)
                removed.append(Path(dirpath) / name)
            elif name.endswith(".zarr"):
                dirnames.remove(name)  # chunks of a finished store: nothing to look at
        for name in filenames:
            if is_temporary(name):
                _remove(Path(dirpath) / name)
                removed.append(Path(dirpath) / name)
    return removed


@contextlib.contextmanager
def track_commits() -> Iterator[list[Path]]:
    """Collect the targets :func:`atomic_write` completes inside the ``with`` block.

    The pipeline uses it to find (and remove) the outputs a failing step had already
    finished, so a failed step leaves no product behind that looks current.
    """
    seen: list[Path] = []
    with _TRACK_LOCK:
        _TRACKERS.append(seen)
    try:
        yield seen
    finally:
        with _TRACK_LOCK:
            _TRACKERS.remove(seen)


def temp_path_for(path: str | os.PathLike) -> Path:
    """Return a fresh, unused temporary path in the same directory as ``path``."""
    target = Path(path)
    suffix = "".join(target.suffixes[-2:]) if target.suffixes else ""
    stem = target.name[: len(target.name) - len(suffix)] if suffix else target.name
    return target.with_name(f".{stem}{TEMP_MARKER}{uuid.uuid4().hex[:12]}{suffix}")


#: longest wait for the tasks dask's threads are still running when a write fails [s]
QUIESCE_TIMEOUT = 300.0


def quiesce_dask_threads(timeout: float = QUIESCE_TIMEOUT) -> bool:
    """Wait until the threads of dask's local thread pools have finished the tasks they are
    running; returns False if they did not within ``timeout`` seconds.

    When a computation is interrupted (Ctrl-C, SIGTERM, an error in one task), dask stops
    handing out tasks but does not stop the ones its threads are running: a task storing a
    chunk into a temporary Zarr store would recreate the store after it was removed. A
    failed write therefore waits for them before removing its temporaries. Each pool gets
    one task per thread that waits on a common barrier, so the barrier opens only when
    every thread is free. Called from a thread of such a pool it returns at once (it cannot
    wait for itself), as it does for a pool without live threads (one inherited by a forked
    process)."""
    try:
        import dask.threaded as dt
    except ImportError:  # pragma: no cover - dask is a dependency
        return True
    me = threading.current_thread()
    pools = [dt.default_pool] + [p for ps in list(dt.pools.values()) for p in ps.values()]
    ok = True
    for pool in {id(p): p for p in pools if p is not None}.values():
        threads = list(getattr(pool, "_threads", ()))
        alive = [t for t in threads if t.is_alive()]
        # no thread of its own (a pool inherited by a forked process has only the parent's
        # dead threads, and would never run the barrier's tasks): nothing runs there
        if me in threads or not alive or len(alive) != len(threads) \
                or getattr(pool, "_shutdown", False):
            continue
        n = len(alive)
        barrier = threading.Barrier(n)

        def _wait(b=barrier):
            try:
                b.wait(timeout)
            except threading.BrokenBarrierError:
                pass

        try:
            futures = [pool.submit(_wait) for _ in range(n)]
        except RuntimeError:  # shut down meanwhile
            continue
        for f in futures:
            try:
                f.result(timeout=timeout + 5)
            except Exception:  # noqa: BLE001 - a broken barrier or a timeout: not idle
                ok = False
        ok = ok and not barrier.broken
    return ok


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def _fsync_file(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _commit(tmp: Path, target: Path) -> None:
    """Move the finished ``tmp`` onto ``target`` (file or directory)."""
    if tmp.is_dir():
        if target.exists() or target.is_symlink():
            # os.replace cannot overwrite a non-empty directory: move the old
            # output aside first, then swap in the new one, then delete the old.
            old = target.with_name(f".{target.name}{TEMP_MARKER}old-{uuid.uuid4().hex[:12]}")
            os.replace(target, old)
            try:
                os.replace(tmp, target)
            except BaseException:
                os.replace(old, target)
                raise
            _remove(old)
        else:
            os.replace(tmp, target)
    else:
        _fsync_file(tmp)
        if target.is_dir() and not target.is_symlink():
            old = target.with_name(f".{target.name}{TEMP_MARKER}old-{uuid.uuid4().hex[:12]}")
            os.replace(target, old)
            os.replace(tmp, target)
            _remove(old)
        else:
            os.replace(tmp, target)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, *, overwrite: bool = True) -> Iterator[Path]:
    """Context manager yielding a temporary path to write ``path`` atomically.

    Write the file (or create and fill the directory, e.g. a Zarr store) at
    the yielded path. On normal exit it is renamed onto ``path`` (replacing
    an existing output); if the block raises, the temporary path is removed
    and the exception propagates, leaving ``path`` untouched.

    Missing parent directories are created. With ``overwrite=False`` an
    existing ``path`` raises :class:`FileExistsError` before anything is
    written.

    Example::

        with atomic_write("out/table.csv") as tmp:
            df.to_csv(tmp, index=False)
    """
    target = Path(path)
    if not overwrite and (target.exists() or target.is_symlink()):
        raise FileExistsError(f"output exists and overwrite=False: {target}")
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path_for(target)
    try:
        yield tmp
        if not (tmp.exists() or tmp.is_symlink()):
            raise FileNotFoundError(
                f"atomic write of {target}: nothing was written to the temporary path {tmp}")
        _commit(tmp, target)
        with _TRACK_LOCK:
            for seen in _TRACKERS:
                seen.append(target)
    except BaseException:
        # tasks still running on dask's threads may write into ``tmp`` after its removal
        if threading.current_thread() is threading.main_thread():
            quiesce_dask_threads()
        _remove(tmp)
        raise
