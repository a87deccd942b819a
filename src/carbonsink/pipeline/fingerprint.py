"""Content fingerprints of the files a pipeline step reads.

A step's key (see :mod:`carbonsink.pipeline.runner`) must change whenever
anything it reads changes, including an edit that keeps a file's size and
modification time (a polygon coordinate changed in place, a template raster
swapped for another of the same size). Each file therefore enters the key
through a digest of its *content* (XXH3, 128 bits: a change of any byte changes it; not a
cryptographic hash, which this key does not need: 0.4 s instead of 4.2 s for the 1.6 GB of
inputs of the 1.2 M-pixel benchmark study, SHA-256 on two threads).

Hashing large inputs on every run would be slow, so digests are cached in the
results folder (``.carbonsink/digests.json``) under the file's absolute path
together with its size, modification time [ns], status-change time [ns] and
inode number. Any write to a file changes its status-change time (the
operating system sets it; ``touch -d`` or ``os.utime`` cannot set it back), so
a cached digest is reused only for a file that has not been written since.

Besides the file itself, its *sidecars* are fingerprinted: the files of the
same folder whose name starts with the file's stem and a dot (``region.dbf``
and ``region.prj`` of ``region.shp``; ``soc.tif.aux.xml`` of ``soc.tif``),
since GDAL reads them too. A folder (a Zarr store) contributes every file
below it.
"""

from __future__ import annotations

import glob as _glob
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import xxhash

__all__ = ["DigestCache", "fingerprints", "option_files"]

_CHUNK = 1 << 20


#: prefix of the digests :func:`_file_digest` gives (a cached digest without it is from an
#: earlier carbonsink and computed again)
DIGEST_PREFIX = "xxh3_128:"


def _file_digest(path: Path) -> str:
    """``xxh3_128:<hex>``: the XXH3 128-bit digest of the content of ``path``."""
    h = xxhash.xxh3_128()
    with open(path, "rb") as fh:
        while chunk := fh.read(_CHUNK):
            h.update(chunk)
    return DIGEST_PREFIX + h.hexdigest()


class DigestCache:
    """Content digests of files (:func:`_file_digest`), cached by (size, mtime [ns],
    ctime [ns], inode).

    ``path`` is the JSON file holding the cache (``None``: in memory only). The
    cache is read when created and written by :meth:`save` (atomically).
    """

    def __init__(self, path: Path | None = None):
        self.path = path
        self._data: dict[str, list] = {}
        self._dirty = False
        if path is not None and path.is_file():
            try:
                data = json.loads(path.read_text())
                if isinstance(data, dict):
                    self._data = data
            except (OSError, ValueError):
                self._data = {}

    def _lookup(self, path: Path) -> tuple[str, list, str | None] | None:
        """``(key, stamp, cached digest or None)`` of ``path``; None when it cannot be
        stat'ed."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        stamp = [st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
        key = str(Path(path).absolute())
        hit = self._data.get(key)
        current = isinstance(hit, list) and len(hit) == 5 and hit[:4] == stamp and \
            str(hit[4]).startswith(DIGEST_PREFIX)
        return key, stamp, hit[4] if current else None

    def digest(self, path: Path) -> str | None:
        """Content digest of the file ``path`` (``None`` when it cannot be read)."""
        found = self._lookup(path)
        if found is None:
            return None
        key, stamp, cached = found
        if cached is not None:
            return cached
        try:
            digest = _file_digest(Path(path))
        except OSError:
            return None
        self._data[key] = [*stamp, digest]
        self._dirty = True
        return digest

    def prefetch(self, paths: list[Path], workers: int | None = None) -> None:
        """Compute the digests of ``paths`` that are not cached yet, on ``workers`` threads
        (default: one per core; the file reads release the interpreter lock, so reading one
        file overlaps hashing another: a first run at 1.2 M pixels digests its 1.6 GB of
        inputs in about 0.4 s on this project's 2-core test machine)."""
        from concurrent.futures import ThreadPoolExecutor

        todo: dict[str, tuple[list, Path]] = {}
        for path in paths:
            found = self._lookup(path)
            if found is not None and found[2] is None:
                todo[found[0]] = (found[1], Path(path))
        workers = workers or os.cpu_count() or 1
        if len(todo) < 2 or workers < 2:
            return  # digest() computes them one by one
        # the largest files first, so that no thread is left with a big file at the end
        order = sorted(todo, key=lambda k: -todo[k][0][0])

        def one(key: str) -> str | None:
            try:
                return _file_digest(todo[key][1])
            except OSError:
                return None

        with ThreadPoolExecutor(min(workers, len(order)),
                                thread_name_prefix="carbonsink-digest") as pool:
            for key, digest in zip(order, pool.map(one, order)):
                if digest is not None:
                    self._data[key] = [*todo[key][0], digest]
                    self._dirty = True

    def save(self) -> None:
        """Write the cache (only when it changed; errors are ignored: it is only a cache)."""
        if self.path is None or not self._dirty:
            return
        from ..io.atomic import atomic_write

        try:
            with atomic_write(self.path) as tmp:
                Path(tmp).write_text(json.dumps(self._data, sort_keys=True))
            self._dirty = False
        except OSError:
            pass


def _sidecars(path: Path, listing: dict[Path, list[str]]) -> list[Path]:
    folder = path.parent
    if folder not in listing:
        try:
            listing[folder] = sorted(os.listdir(folder))
        except OSError:
            listing[folder] = []
    prefix = path.name.split(".")[0] + "."
    return [folder / n for n in listing[folder]
            if n != path.name and n.startswith(prefix) and not n.startswith(".")
            and (folder / n).is_file()]


def _expand(pattern: str | os.PathLike, listing: dict[Path, list[str]]
            ) -> list[tuple[str, bool]]:
    """The files ``pattern`` stands for, as ``(path, exists)``: a path or the matches of a
    glob pattern, with their sidecars, and for a folder every file below it; a missing path
    (or a pattern matching nothing) as ``(pattern, False)``."""
    text = os.path.expanduser(str(pattern))
    matches = sorted(_glob.glob(text)) if _glob.has_magic(text) else [text]
    out: list[tuple[str, bool]] = []
    for m in matches or [text]:
        p = Path(m)
        if p.is_dir():
            for dirpath, dirnames, filenames in os.walk(p):
                dirnames.sort()
                for name in sorted(filenames):
                    out.append((str(Path(dirpath) / name), True))
            continue
        if not p.exists():
            out.append((str(p), False))
            continue
        out.append((str(p), True))
        out.extend((str(side), True) for side in _sidecars(p, listing))
    return out


def fingerprints(items: list[tuple[str, str | os.PathLike]], cache: DigestCache,
                 listing: dict[Path, list[str]] | None = None) -> list:
    """``[[role, path, digest], ...]`` for every ``(role, path or glob pattern)`` of
    ``items``: each path or match of a pattern, its sidecars and, for a folder, every file
    below it; a missing path (or a pattern matching nothing) gives ``[role, pattern, None]``.
    The digests not in ``cache`` yet are computed in parallel first
    (:meth:`DigestCache.prefetch`)."""
    listing = {} if listing is None else listing
    expanded = [(role, _expand(pattern, listing)) for role, pattern in items]
    cache.prefetch([Path(f) for _, files in expanded for f, ok in files if ok])
    return [[role, f, cache.digest(Path(f)) if ok else None]
            for role, files in expanded for f, ok in files]


def option_files(options: Any, resolve) -> list[Path]:
    """Existing files named by the text values anywhere in ``options`` (e.g. the
    ``lc_table`` of ``models.options.casa``): each value is tried as given and resolved
    against the study folder by ``resolve``."""
    found: list[Path] = []

    def walk(v: Any) -> None:
        if isinstance(v, Mapping):
            for x in v.values():
                walk(x)
        elif isinstance(v, (list, tuple)):
            for x in v:
                walk(x)
        elif isinstance(v, str) and v and len(v) < 4096 and "\n" not in v:
            for cand in {Path(v).expanduser(), resolve(v)}:
                try:
                    if cand.is_file():
                        found.append(cand)
                except OSError:
                    pass

    walk(options)
    return sorted(set(found))
