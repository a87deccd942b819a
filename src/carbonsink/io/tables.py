"""Tidy tables: CSV and Parquet writers (atomic) and a matching reader.

Metadata (provenance: carbonsink version, study hash, models, parameters,
units of each column ...) travels with the table:

* **Parquet**: in the Arrow schema metadata under the key ``carbonsink``
  (JSON), so one file is self-describing.
* **CSV**: a plain, portable CSV (no comment lines that other tools would
  choke on) plus a JSON sidecar ``<file name>.meta.json`` (e.g.
  ``regional.csv.meta.json``) holding the metadata. The sidecar is written
  first and the CSV last, so a CSV that exists is always complete.

``DataFrame.attrs`` are merged into the metadata (``metadata=`` wins), and
:func:`read_table` puts the metadata back into ``DataFrame.attrs``.
A meaningful (non-default) index is written as columns, keeping the table tidy.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import InputError, InvalidArgumentError
from ._common import PathLike
from .atomic import atomic_write

__all__ = ["write_table", "read_table", "sidecar_path", "TABLE_SUFFIXES", "METADATA_KEY"]

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")
METADATA_KEY = b"carbonsink"


def sidecar_path(path: PathLike) -> Path:
    """The JSON metadata sidecar of a CSV table."""
    p = Path(path)
    return p.with_name(p.name + ".meta.json")


def _tidy(df: pd.DataFrame) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise TypeError(f"write_table needs a pandas DataFrame, got {type(df).__name__}")
    idx = df.index
    default = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and \
        idx.name is None
    if not default:
        names = [n if n is not None else f"level_{i}" for i, n in enumerate(idx.names)]
        if len(names) == 1 and idx.names[0] is None:
            names = ["index"]
        clash = set(names) & set(map(str, df.columns))
        if clash:
            raise InvalidArgumentError(f"index names {sorted(clash)} clash with columns; reset "
                                       "the index before writing")
        df = df.copy()
        df.index = df.index.set_names(names)
        df = df.reset_index()
    bad = [c for c in df.columns if not isinstance(c, str)]
    if bad:
        df = df.rename(columns={c: str(c) for c in bad})
    return df


def _metadata(df: pd.DataFrame, metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    meta: dict[str, Any] = dict(df.attrs)
    meta.update(metadata or {})
    return json.loads(json.dumps(meta, default=str))


def write_table(df: pd.DataFrame, path: PathLike, *,
                metadata: Mapping[str, Any] | None = None) -> Path:
    """Write a tidy table to ``.csv`` or ``.parquet`` atomically (temp + rename).

    ``metadata`` (JSON-serialisable; other values are stored as text) goes to
    the Parquet schema metadata or the CSV's ``.meta.json`` sidecar. Returns
    the path written.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in TABLE_SUFFIXES:
        raise InvalidArgumentError(f"write_table: unknown table format {path.suffix!r} for "
                                   f"{path}; use .csv or .parquet")
    table = _tidy(df)
    meta = _metadata(df, metadata)
    if suffix == ".csv":
        side = sidecar_path(path)
        if meta:
            with atomic_write(side) as tmp:
                tmp.write_text(json.dumps(meta, indent=2, sort_keys=True), encoding="utf-8")
        elif side.exists():
            side.unlink()  # a stale sidecar would describe another table
        with atomic_write(path) as tmp:
            table.to_csv(tmp, index=False)
        return path
    at = pa.Table.from_pandas(table, preserve_index=False)
    schema_meta = dict(at.schema.metadata or {})
    if meta:
        schema_meta[METADATA_KEY] = json.dumps(meta, sort_keys=True).encode("utf-8")
    at = at.replace_schema_metadata(schema_meta)
    with atomic_write(path) as tmp:
        pq.write_table(at, tmp)
    return path


def read_table(path: PathLike) -> pd.DataFrame:
    """Read a table written by :func:`write_table`; metadata goes to ``df.attrs``."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"file not found: {path}")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        df = pd.read_csv(path)
        side = sidecar_path(path)
        if side.exists():
            try:
                df.attrs.update(json.loads(side.read_text(encoding="utf-8")))
            except json.JSONDecodeError as exc:
                raise InputError(f"metadata sidecar {side} is not valid JSON ({exc})") from None
        return df
    if suffix in (".parquet", ".pq"):
        try:
            at = pq.read_table(path)
        except (pa.ArrowInvalid, OSError) as exc:
            raise InputError(f"cannot read Parquet file {path}: {exc}") from None
        df = at.to_pandas()
        raw = (at.schema.metadata or {}).get(METADATA_KEY)
        df.attrs = json.loads(raw.decode("utf-8")) if raw else {}
        return df
    raise InputError(f"unknown table format {path.suffix!r} for {path}; use .csv or .parquet")
