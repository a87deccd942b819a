"""NetCDF-4 variables read chunk by chunk on every thread, outside the HDF5 library.

The HDF5 library is not thread-safe, so xarray's NetCDF reader holds one process-wide lock
around every read, decompression included: reading a study's climate fields (whole-grid
chunks of 12 months, deflated) keeps one core busy however many threads read. For the
common layout (chunked storage, only the ``deflate`` and ``shuffle`` filters, numeric
native-endian values: what ``ncks``, CDO, xarray and netCDF-C write with compression) this
reader asks HDF5 once, under its lock (via h5py), where each chunk's bytes lie in the file,
then reads and decodes chunks itself: ``os.pread``, ``zlib.decompress`` (which releases the
interpreter lock) and the byte unshuffle, on any number of threads. The values are those
netCDF-C returns, bit for bit (``tests/io/test_h5chunks.py``); chunks never written read
as the variable's fill value, as in HDF5. Any other layout (contiguous, other filters,
groups, big-endian, strings, compound types), or a file h5py cannot read, keeps xarray's
reader.
"""

from __future__ import annotations

import functools
import os
import zlib
from typing import Any

import numpy as np
from xarray.backends.common import BackendArray
from xarray.backends.netCDF4_ import NetCDF4DataStore
from xarray.core import indexing

__all__ = ["HDF5ChunkArray", "DirectNetCDF4Store"]

_DEFLATE, _SHUFFLE = 1, 2  # HDF5 filter identifiers (H5Z_FILTER_DEFLATE, H5Z_FILTER_SHUFFLE)


class HDF5ChunkArray(BackendArray):
    """A chunked HDF5 dataset of ``path`` read by byte offset (see the module docstring).

    ``index`` maps each written chunk's origin (element coordinates) to ``(byte offset,
    stored size, filter mask)``; ``filters`` are the HDF5 filter identifiers in pipeline
    order (write order; a set bit ``i`` of a chunk's mask means filter ``i`` was skipped).
    """

    def __init__(self, path: str, name: str, shape: tuple[int, ...], dtype: np.dtype,
                 chunks: tuple[int, ...], fill: Any, filters: tuple[int, ...],
                 index: dict[tuple[int, ...], tuple[int, int, int]]) -> None:
        self.path, self.name = path, name
        self.shape, self.dtype, self.chunks = tuple(shape), np.dtype(dtype), tuple(chunks)
        self.fill, self.filters, self.index = fill, tuple(filters), index

    @classmethod
    def of(cls, path: str, name: str) -> HDF5ChunkArray | None:
        """The reader of variable ``name`` (in the root group) of the NetCDF-4 file ``path``,
        or None where its layout is not one this reader decodes. Built once per file version
        and variable (a study opens a file once per input role, and a packed variable twice)."""
        try:
            st = os.stat(path)
        except OSError:
            return None
        return _reader(cls, str(path), name, st.st_size, st.st_mtime_ns)

    @classmethod
    def _build(cls, path: str, name: str) -> HDF5ChunkArray | None:
        try:
            import h5py
        except ImportError:  # pragma: no cover - h5py is a dependency
            return None
        try:
            with h5py.File(path, "r") as f:
                d = f.get(name)
                if not isinstance(d, h5py.Dataset) or d.chunks is None:
                    return None
                dtype = d.dtype
                if dtype.kind not in "iuf" or not dtype.isnative or d.ndim == 0:
                    return None
                plist = d.id.get_create_plist()
                filters = tuple(plist.get_filter(i)[0] for i in range(plist.get_nfilters()))
                if filters not in ((), (_DEFLATE,), (_SHUFFLE, _DEFLATE)):
                    return None
                index = {}
                for i in range(d.id.get_num_chunks()):
                    info = d.id.get_chunk_info(i)
                    index[tuple(info.chunk_offset)] = (int(info.byte_offset), int(info.size),
                                                       int(info.filter_mask))
                return cls(str(path), name, d.shape, dtype, d.chunks, d.fillvalue, filters,
                           index)
        except (OSError, ValueError, KeyError, TypeError, RuntimeError):
            return None

    def __dask_tokenize__(self):
        return ("carbonsink.HDF5ChunkArray", self.path, self.name, self.shape, str(self.dtype),
                self.chunks, tuple(sorted(self.index.items())))

    def __getitem__(self, key):
        return indexing.explicit_indexing_adapter(key, self.shape,
                                                  indexing.IndexingSupport.BASIC, self._getitem)

    def _getitem(self, key: tuple) -> np.ndarray:
        spans, steps, drop = [], [], []
        for ax, (k, n) in enumerate(zip(key, self.shape)):
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                if step < 0:  # pragma: no cover - BASIC support gives positive steps
                    raise IndexError("negative steps are not supported")
                stop = max(start, stop)
                # the elements picked: start, start + step, ... < stop
                last = start + (max(0, (stop - start - 1)) // step) * step
                spans.append((start, last + 1 if stop > start else start))
                steps.append(step)
            else:
                i = int(k) + (n if int(k) < 0 else 0)
                spans.append((i, i + 1))
                steps.append(1)
                drop.append(ax)
        box = np.full([b - a for a, b in spans], self.fill, dtype=self.dtype)
        if box.size:
            ranges = [range((a // c) * c, b, c) for (a, b), c in zip(spans, self.chunks)]
            fd = os.open(self.path, os.O_RDONLY)
            try:
                for origin in np.ndindex(*[len(r) for r in ranges]):
                    origin = tuple(r[i] for r, i in zip(ranges, origin))
                    where = self.index.get(origin)
                    if where is None:
                        continue  # never written: the fill value
                    chunk = self._decode(fd, *where)
                    src, dst = [], []
                    for o, c, (a, b) in zip(origin, self.chunks, spans):
                        lo, hi = max(a, o), min(b, o + c)
                        src.append(slice(lo - o, hi - o))
                        dst.append(slice(lo - a, hi - a))
                    box[tuple(dst)] = chunk[tuple(src)]
            finally:
                os.close(fd)
        out = box[tuple(slice(None, None, s) for s in steps)]
        return out.reshape([m for ax, m in enumerate(out.shape) if ax not in drop])

    def _decode(self, fd: int, offset: int, size: int, mask: int) -> np.ndarray:
        n = int(np.prod(self.chunks))
        item = self.dtype.itemsize
        data: Any = os.pread(fd, size, offset)
        if len(data) != size:
            raise OSError(f"{self.path}: {self.name}: a chunk ends past the end of the file "
                          "(truncated file?)")
        for i in reversed(range(len(self.filters))):  # undo the filters in reverse order
            if mask & (1 << i):
                continue  # this filter was skipped for this chunk
            if self.filters[i] == _DEFLATE:
                data = zlib.decompress(data, bufsize=n * item)
            else:  # shuffle: byte k of every value was stored in plane k
                planes = np.frombuffer(data, np.uint8).reshape(item, -1)
                values = np.empty((planes.shape[1], item), np.uint8)
                for k in range(item):
                    values[:, k] = planes[k]
                data = values
        arr = np.frombuffer(data, np.uint8) if not isinstance(data, np.ndarray) else data
        arr = arr.reshape(-1).view(self.dtype)
        if arr.size != n:
            raise OSError(f"{self.path}: {self.name}: a chunk decodes to {arr.size} values, "
                          f"expected {n} (corrupt file?)")
        return arr.reshape(self.chunks)


@functools.lru_cache(maxsize=256)
def _reader(cls, path: str, name: str, size: int, mtime_ns: int) -> HDF5ChunkArray | None:
    """:meth:`HDF5ChunkArray._build`, cached by file version (size and modification time):
    the chunk index is read from the file once."""
    return cls._build(path, name)


#: filters (netCDF4's ``Variable.filters()`` keys) that rule the reader out without asking h5py
_OTHER_FILTERS = ("fletcher32", "szip", "zstd", "bzip2", "blosc")


class DirectNetCDF4Store(NetCDF4DataStore):
    """xarray's NetCDF-4 store whose variables, where :class:`HDF5ChunkArray` decodes their
    layout, are read by it (metadata and everything else as xarray reads them)."""

    def open_store_variable(self, name: str, var):
        import xarray as xr

        v = super().open_store_variable(name, var)
        if self._group is not None or not str(self._filename) or var.chunking() == "contiguous":
            return v  # (coordinates and other contiguous variables: nothing to decompress)
        filters = var.filters() or {}
        if any(filters.get(k) for k in _OTHER_FILTERS):
            return v
        arr = HDF5ChunkArray.of(self._filename, name)
        if arr is None or arr.shape != v.shape or arr.dtype != v.dtype:
            return v
        return xr.Variable(v.dims, indexing.LazilyIndexedArray(arr), v.attrs, v.encoding)
