"""The results folder: recognising it, locking it, and turning its faults into clear errors.

A **carbonsink results folder** is a folder holding ``.carbonsink/results-folder.json``
(the marker written by the first run into it), or, from versions before the marker,
``.carbonsink/`` step manifests (JSON files with ``step`` and ``key``). carbonsink writes
into a folder only when it is new, empty or a results folder; any other non-empty folder
is refused unless the user passes ``--force`` (``force=True``), so that a run never
deletes or overwrites files it did not write.

While a run writes, it holds an exclusive lock (``flock``) on ``.carbonsink/lock``;
``.carbonsink/lock.json`` names the holder (pid, study, start time). A second run into the folder waits up to
``CARBONSINK_LOCK_WAIT`` seconds (default 5) and then stops with a message naming the
holder, so two runs can never interleave their outputs. The lock dies with its process
(also after ``kill -9``).

:func:`check_output_folder` finds every folder problem a run would meet without writing
anything; ``carbonsink check`` and ``carbonsink run`` both call it first.
:func:`output_fault` turns an ``OSError`` met while writing (read-only file system,
permission denied, disk full, a file where a folder should be) into a one-line
:class:`OutputFolderError` naming the path and the fix.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..errors import ConfigError

__all__ = ["STATE_DIR", "MARKER", "OutputFolderError", "RunInterrupted", "is_results_folder",
           "check_output_folder", "FolderLock", "output_fault", "stop_on_signals",
           "write_marker", "lock_wait_seconds"]

STATE_DIR = ".carbonsink"
MARKER = "results-folder.json"
LOCK_NAME = "lock"
#: free space below which a run is refused before it starts [bytes]
MIN_FREE_BYTES = 1 << 19


class OutputFolderError(ConfigError):
    """The results folder cannot be used (not writable, full, busy, foreign, a file ...)."""


class RunInterrupted(KeyboardInterrupt):
    """A run stopped by SIGTERM or SIGHUP (handled like SIGINT / Ctrl-C)."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"stopped by {signal.Signals(signum).name}")


def lock_wait_seconds() -> float:
    try:
        return max(0.0, float(os.environ.get("CARBONSINK_LOCK_WAIT", "5")))
    except ValueError:
        return 5.0


# --------------------------------------------------------------------------- recognising


def is_results_folder(out: Path) -> bool:
    """True when ``out`` holds carbonsink's state folder (marker or step manifests)."""
    state = Path(out) / STATE_DIR
    if (state / MARKER).is_file():
        return True
    if not state.is_dir():
        return False
    for p in state.glob("*.json"):
        try:
            man = json.loads(p.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(man, dict) and "step" in man and "key" in man:
            return True
    return False


def write_marker(out: Path, status: str, study: Any = None) -> None:
    """Write ``.carbonsink/results-folder.json`` (status: running, failed, interrupted,
    complete) atomically."""
    from .. import __version__
    from ..io.atomic import atomic_write

    info = {"carbonsink": __version__, "status": status, "pid": os.getpid(),
            "updated": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    if study is not None:
        info.update(study=getattr(study, "name", None),
                    study_sha256=getattr(study, "sha256", None))
    with atomic_write(Path(out) / STATE_DIR / MARKER) as tmp:
        Path(tmp).write_text(json.dumps(info, indent=1))


# --------------------------------------------------------------------------- checking


def _first_existing(p: Path) -> Path:
    q = p
    while not q.exists() and not q.is_symlink():
        if q.parent == q:
            break
        q = q.parent
    return q


def _fix(what: str) -> str:
    return f"choose another folder ({what})"


def check_output_folder(out: Path, *, force: bool = False, what: str = "outputs.dir") -> None:
    """Raise :class:`OutputFolderError` for every problem a run would meet writing ``out``.

    Writes nothing. ``what`` names where the folder was given (``outputs.dir`` in the
    study file, or ``--out``) for the messages.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputFolderError(f"{what}: {out} is a file, not a folder. Fix: {_fix(what)} or "
                                "move the file away")
    anc = _first_existing(out)
    if anc != out:
        if not anc.is_dir():
            raise OutputFolderError(f"{what}: cannot create {out}: {anc} is a file, not a "
                                    f"folder. Fix: {_fix(what)}")
        if not os.access(anc, os.W_OK | os.X_OK):
            raise OutputFolderError(f"{what}: cannot create {out}: {anc} is not writable "
                                    f"({_why_not_writable(anc)}). Fix: {_fix(what)} or make "
                                    f"{anc} writable")
    else:
        for d in (out, out / STATE_DIR):
            if d.is_dir() and not os.access(d, os.W_OK | os.X_OK):
                raise OutputFolderError(f"{what}: {d} is not writable ({_why_not_writable(d)})."
                                        f" Fix: make it writable (chmod u+w) or {_fix(what)}")
        if not force and not is_results_folder(out) and _non_empty(out):
            raise OutputFolderError(
                f"{what}: {out} is not empty and is not a carbonsink results folder (no "
                f"{STATE_DIR}/{MARKER}); carbonsink does not write over files it did not "
                f"write. Fix: {_fix(what)}, or pass --force to write into it anyway")
    try:
        st = os.statvfs(anc if anc.is_dir() else anc.parent)
        free = st.f_bavail * st.f_frsize
    except OSError:
        free = None
    if free is not None and free < MIN_FREE_BYTES:
        raise OutputFolderError(f"{what}: the disk holding {out} is full ({free} bytes free). "
                                f"Fix: free disk space or {_fix(what)}")
    holder = FolderLock.holder_if_busy(out)
    if holder is not None:
        raise OutputFolderError(_busy_message(out, holder))


def _non_empty(out: Path) -> bool:
    try:
        return any(True for _ in out.iterdir())
    except OSError:
        return False


def _why_not_writable(p: Path) -> str:
    try:
        st = os.statvfs(p)
        if st.f_flag & os.ST_RDONLY:
            return "read-only file system"
    except OSError:
        pass
    return "permission denied"


def _busy_message(out: Path, holder: dict) -> str:
    who = []
    if holder.get("pid"):
        who.append(f"pid {holder['pid']}")
    if holder.get("study"):
        who.append(f"study '{holder['study']}'")
    if holder.get("study_file"):
        who.append(f"study file {holder['study_file']}")
    if holder.get("started"):
        who.append(f"started {holder['started']}")
    text = ", ".join(who) or "holder unknown"
    return (f"results folder {out} is in use by another carbonsink run ({text}). Fix: wait "
            "for it to finish, or give this run another results folder (outputs.dir / --out)")


# --------------------------------------------------------------------------- locking


class FolderLock:
    """Exclusive ``flock`` on ``<out>/.carbonsink/lock`` naming its holder."""

    def __init__(self, out: Path, info: dict[str, Any]):
        self.out = Path(out)
        self.info = info
        self._fd: int | None = None

    @property
    def path(self) -> Path:
        return self.out / STATE_DIR / LOCK_NAME

    @property
    def info_path(self) -> Path:
        return self.out / STATE_DIR / (LOCK_NAME + ".json")

    @staticmethod
    def _read_holder(out: Path) -> dict:
        try:
            data = json.loads((Path(out) / STATE_DIR / (LOCK_NAME + ".json")).read_text())
            return data if isinstance(data, dict) else {}
        except (OSError, ValueError):
            return {}

    @classmethod
    def holder_if_busy(cls, out: Path) -> dict | None:
        """The holder's info when another process holds the lock, else None (no writes)."""
        import fcntl

        path = Path(out) / STATE_DIR / LOCK_NAME
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return cls._read_holder(out)
            except OSError:
                return None
            fcntl.flock(fd, fcntl.LOCK_UN)
            return None
        finally:
            os.close(fd)

    def acquire(self, wait: float | None = None) -> None:
        """Take the lock, waiting up to ``wait`` seconds (default
        :func:`lock_wait_seconds`); then name the holder in ``lock.json``. The lock file is
        held open read-only, so it does not keep the file system busy."""
        import fcntl

        from ..io.atomic import atomic_write

        wait = lock_wait_seconds() if wait is None else wait
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o644)
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = self._read_holder(self.out)
                    os.close(fd)
                    raise OutputFolderError(_busy_message(self.out, holder)) from None
                time.sleep(0.2)
        self._fd = fd
        try:
            with atomic_write(self.info_path) as tmp:
                Path(tmp).write_text(json.dumps(
                    {**self.info, "pid": os.getpid(),
                     "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}))
        except BaseException:
            self.release()
            raise

    def release(self) -> None:
        import fcntl

        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            self.info_path.unlink()
        with contextlib.suppress(OSError):
            fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None


# --------------------------------------------------------------------------- faults

_FIXES = {
    errno.ENOSPC: "free disk space or choose a folder on another disk",
    errno.EDQUOT: "free space within your disk quota or choose another folder",
    errno.EROFS: "the file system is read-only: choose a writable folder",
    errno.EACCES: "make the folder writable (chmod u+w) or choose another folder",
    errno.EPERM: "make the folder writable (chmod u+w) or choose another folder",
    errno.ENOTDIR: "a file stands where a folder is needed: move it away or choose another "
                   "folder",
    errno.EEXIST: "move the existing file away or choose another folder",
    errno.EISDIR: "a folder stands where a file is needed: move it away or choose another "
                  "folder",
    errno.ENAMETOOLONG: "choose a folder with a shorter path",
    errno.EMFILE: "raise the open-file limit (ulimit -n) and rerun",
}


def _os_error_in(exc: BaseException) -> OSError | None:
    seen = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno is not None:
            return e
        e = e.__cause__ or e.__context__
    return None


def _inside(p: Path, folder: Path) -> bool:
    try:
        Path(os.path.abspath(p)).relative_to(os.path.abspath(folder))
        return True
    except ValueError:
        return False


def output_fault(exc: BaseException, out: Path, what: str = "outputs.dir"
                 ) -> OutputFolderError | None:
    """A one-line :class:`OutputFolderError` for an ``OSError`` met writing ``out`` (or
    found in ``exc``'s chain), else None."""
    os_err = _os_error_in(exc)
    if os_err is None:
        return None
    path = Path(os_err.filename) if os_err.filename else None
    known = os_err.errno in _FIXES
    if not known and (path is None or not _inside(path, out)):
        return None
    if path is not None and not _inside(path, out) and os_err.errno not in (
            errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return None  # e.g. an input that cannot be read: not an output-folder fault
    reason = os_err.strerror or os.strerror(os_err.errno)
    target = path if path is not None else out
    fix = _FIXES.get(os_err.errno, "check the folder and rerun")
    return OutputFolderError(f"cannot write {target}: {reason} (results folder {out}, "
                             f"{what}). Fix: {fix}; then rerun (finished steps are kept)")


# --------------------------------------------------------------------------- signals


@contextlib.contextmanager
def stop_on_signals() -> Iterator[None]:
    """Within the block, SIGTERM and SIGHUP raise :class:`RunInterrupted` (a
    ``KeyboardInterrupt``) like SIGINT does, so that the run stops the same way: temporaries
    removed, no report left over. A second signal during that cleanup is ignored. A signal
    the process ignores (``nohup`` ignores SIGHUP) stays ignored. Only in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def handler(signum, frame):
        if fired:
            return
        fired.append(signum)
        raise RunInterrupted(signum)

    old: dict[int, Any] = {}
    for name in ("SIGTERM", "SIGHUP"):
        sig = getattr(signal, name, None)
        if sig is None:
            continue
        prev = signal.getsignal(sig)
        if prev is signal.SIG_IGN:
            continue
        old[sig] = prev
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, prev in old.items():
            signal.signal(sig, prev if prev is not None else signal.SIG_DFL)


def link_identical_files(stores: list[Path]) -> int:
    """Replace files that are byte-identical across ``stores`` by hard links to one copy.

    The annual and growing-season cubes of the combinations sharing a model hold that
    model's fluxes chunk for chunk (a combination cube is complete on its own, so it opens
    in any tool without carbonsink): ``npp`` is the same in every combination of an NPP
    model, ``rh`` in every combination of an Rh model that does not depend on NPP. Candidates
    are files at the same path inside stores of the same name and of equal size; they are
    linked only when their contents are equal (compared byte for byte: for the 12 cubes of
    the 1.2 M-pixel benchmark study 1.5 s instead of 4.3 s for BLAKE2 digests of every
    candidate on two threads), each link made atomically (a new link renamed onto the
    file). A file system without hard links keeps the copies. Rewriting a store later
    replaces its files, never the shared copy. Returns the bytes saved.
    """
    groups: dict[tuple[str, str, int], list[tuple[Path, tuple[int, int]]]] = {}
    for store in map(Path, stores):
        if not store.is_dir():
            continue
        for f in store.rglob("*"):
            if f.is_file() and not f.name.startswith("."):  # chunks, not metadata
                st = f.stat()
                key = (store.name, f.relative_to(store).as_posix(), st.st_size)
                groups.setdefault(key, []).append((f, (st.st_dev, st.st_ino)))
    saved = 0
    for (_, _, size), fs in groups.items():
        if len(fs) < 2:
            continue
        # the distinct contents met so far (a file, its inode and its bytes; usually one:
        # the model's chunk, and a few when equal sizes hold different fluxes)
        kept: list[tuple[Path, tuple[int, int], bytes]] = []
        for f, ino in fs:
            if any(ino == k_ino for _, k_ino, _ in kept):
                continue  # already this file (a link made before)
            data = f.read_bytes()
            src = next(((k, k_ino) for k, k_ino, k_data in kept if k_data == data), None)
            if src is None:
                kept.append((f, ino, data))
                continue
            tmp = f.with_name(f".{f.name}.link")
            try:
                if tmp.exists():
                    tmp.unlink()
                os.link(src[0], tmp)
                os.replace(tmp, f)
            except OSError:
                with contextlib.suppress(OSError):
                    tmp.unlink()
                return saved  # no hard links here: keep the copies
            saved += size
    return saved


def disk_bytes(files) -> int:
    """Bytes that ``files`` occupy, each hard-linked file counted once."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for f in files:
        try:
            st = Path(f).stat()
        except OSError:
            continue
        if (st.st_dev, st.st_ino) in seen:
            continue
        seen.add((st.st_dev, st.st_ino))
        total += st.st_size
    return total
