"""Content fingerprints of the files a step reads: digests computed in parallel equal the
XXH3-128 digest of the whole content, are cached, and are recomputed after a write."""

from __future__ import annotations

import hashlib
import os

import pytest
import xxhash

from carbonsink.pipeline import fingerprint as fp


def _files(tmp_path, n=7):
    paths = []
    for i in range(n):
        p = tmp_path / f"in_{i}.bin"
        p.write_bytes(os.urandom(1000 * (i + 1) ** 3))
        paths.append(p)
    return paths


def _xxh(p):
    """The XXH3-128 digest of the whole file at once (the cache streams it in 1 MiB pieces)."""
    return "xxh3_128:" + xxhash.xxh3_128(p.read_bytes()).hexdigest()


def test_a_digest_of_an_earlier_carbonsink_is_computed_again(tmp_path):
    """digests.json written by a carbonsink that used SHA-256 (no prefix): the unchanged file
    is hashed again (each step key then uses one kind of digest); a file larger than the
    1 MiB read size gives the digest of its whole content."""
    big = tmp_path / "big.bin"
    big.write_bytes(os.urandom(5 * (1 << 19) + 7))
    cache = fp.DigestCache(tmp_path / "digests.json")
    assert cache.digest(big) == _xxh(big)
    key = next(iter(cache._data))
    cache._data[key][4] = hashlib.sha256(big.read_bytes()).hexdigest()
    cache._dirty = True
    cache.save()
    again = fp.DigestCache(tmp_path / "digests.json")
    assert again._data[key][4] == hashlib.sha256(big.read_bytes()).hexdigest()
    assert again.digest(big) == _xxh(big)


def test_prefetch_gives_the_digest_of_each_file_and_caches_it(tmp_path, monkeypatch):
    paths = _files(tmp_path)
    cache = fp.DigestCache(tmp_path / "digests.json")
    cache.prefetch(paths, workers=3)
    calls = []
    monkeypatch.setattr(fp, "_file_digest",
                        lambda p: calls.append(p) or fp.DIGEST_PREFIX + "recomputed")
    for p in paths:
        assert cache.digest(p) == _xxh(p)
    assert calls == []  # every digest came from the prefetch
    cache.save()
    again = fp.DigestCache(tmp_path / "digests.json")
    again.prefetch(paths)
    assert calls == [] and again.digest(paths[0]) == cache.digest(paths[0])
    # a write changes the status-change time: that file alone is hashed again
    paths[2].write_bytes(b"changed")
    paths[4].write_bytes(b"changed too")
    again.prefetch(paths)
    assert sorted(calls) == [paths[2], paths[4]]
    assert again.digest(paths[2]) == again.digest(paths[4]) == fp.DIGEST_PREFIX + "recomputed"
    assert len(calls) == 2


def test_fingerprints_list_sidecars_folders_and_missing_paths(tmp_path):
    (tmp_path / "region.shp").write_bytes(b"shp")
    (tmp_path / "region.dbf").write_bytes(b"dbf")
    store = tmp_path / "cube.zarr"
    (store / "a").mkdir(parents=True)
    (store / "a" / "0").write_bytes(b"chunk")
    (store / "zarr.json").write_bytes(b"{}")
    for i in range(3):
        (tmp_path / f"ndvi_{i}.tif").write_bytes(bytes([i]) * 10)
    items = [("region", tmp_path / "region.shp"), ("cube", store),
             ("ndvi", str(tmp_path / "ndvi_*.tif")), ("gone", tmp_path / "missing.nc"),
             ("none", str(tmp_path / "nothing_*.tif"))]
    out = fp.fingerprints(items, fp.DigestCache(None))

    def sha(p):
        return _xxh(p)

    assert out == [
        ["region", str(tmp_path / "region.shp"), sha(tmp_path / "region.shp")],
        ["region", str(tmp_path / "region.dbf"), sha(tmp_path / "region.dbf")],
        ["cube", str(store / "zarr.json"), sha(store / "zarr.json")],
        ["cube", str(store / "a" / "0"), sha(store / "a" / "0")],
        *[["ndvi", str(tmp_path / f"ndvi_{i}.tif"), sha(tmp_path / f"ndvi_{i}.tif")]
          for i in range(3)],
        ["gone", str(tmp_path / "missing.nc"), None],
        ["none", str(tmp_path / "nothing_*.tif"), None],
    ]


@pytest.mark.parametrize("workers", [1, 2])
def test_prefetch_skips_unreadable_files(tmp_path, workers):
    paths = _files(tmp_path, 3)
    cache = fp.DigestCache(None)
    cache.prefetch([*paths, tmp_path / "missing.bin"], workers=workers)
    assert cache.digest(tmp_path / "missing.bin") is None
    assert cache.digest(paths[1]) == _xxh(paths[1])
