"""Tables (CSV / Parquet), atomic_write and the read_input dispatcher."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from _io_helpers import no_temp_left, write_tif

from carbonsink.errors import InputError
from carbonsink.io import atomic_write, read_input, read_table, sidecar_path, write_table

META = {"carbonsink_version": "0.1.0", "study_hash": "abc", "units": {"npp": "Tg C yr-1"},
        "models": ["casa", "pei2009"]}


def _table():
    return pd.DataFrame({"region": ["Nei Mongol", "Gansu", "Qinghai"],
                         "year": [2001, 2001, 2001],
                         "npp": [123.5, np.nan, 45.25]})


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_table_round_trip(tmp_path, suffix):
    df = _table()
    out = write_table(df, tmp_path / "tables" / f"regional{suffix}", metadata=META)
    back = read_table(out)
    pd.testing.assert_frame_equal(back, df, check_dtype=False)
    assert back.attrs == META
    assert no_temp_left(tmp_path)


def test_csv_is_plain_with_sidecar(tmp_path):
    out = write_table(_table(), tmp_path / "r.csv", metadata=META)
    text = out.read_text()
    assert text.splitlines()[0] == "region,year,npp"  # no comment lines
    side = sidecar_path(out)
    assert side.name == "r.csv.meta.json"
    assert json.loads(side.read_text())["study_hash"] == "abc"
    # rewriting without metadata removes the stale sidecar
    write_table(_table(), out)
    assert not side.exists()


def test_parquet_schema_metadata_and_index(tmp_path):
    df = _table().set_index(["region", "year"])
    df.attrs["source"] = "regions.summarise"
    out = write_table(df, tmp_path / "r.parquet", metadata={"study_hash": "abc"})
    raw = pq.read_schema(out).metadata[b"carbonsink"]
    assert json.loads(raw) == {"source": "regions.summarise", "study_hash": "abc"}
    back = read_table(out)
    assert list(back.columns) == ["region", "year", "npp"]  # index written as columns


def test_table_errors_and_atomicity(tmp_path):
    with pytest.raises(ValueError, match=r"\.xlsx"):
        write_table(_table(), tmp_path / "r.xlsx")
    target = tmp_path / "r.parquet"
    write_table(_table(), target, metadata={"run": 1})
    bad = pd.DataFrame({"x": [1, "a", object()]})  # cannot be converted to Arrow
    with pytest.raises((pa.ArrowTypeError, pa.ArrowInvalid)):
        write_table(bad, target, metadata={"run": 2})
    assert read_table(target).attrs == {"run": 1}
    assert no_temp_left(tmp_path)
    with pytest.raises(InputError, match="file not found"):
        read_table(tmp_path / "none.csv")


def test_atomic_write_file(tmp_path):
    target = tmp_path / "a" / "b.txt"
    with atomic_write(target) as tmp:
        assert tmp.parent == target.parent and tmp.name.startswith(".b.tmp-")
        assert tmp.suffix == ".txt"
        tmp.write_text("one")
        assert not target.exists()
    assert target.read_text() == "one"
    with pytest.raises(KeyError):
        with atomic_write(target) as tmp:
            tmp.write_text("half")
            raise KeyError("interrupted")
    assert target.read_text() == "one"
    assert no_temp_left(tmp_path)
    with pytest.raises(FileExistsError):
        with atomic_write(target, overwrite=False) as tmp:
            tmp.write_text("x")
    with pytest.raises(FileNotFoundError, match="nothing was written"):
        with atomic_write(tmp_path / "empty.txt"):
            pass
    assert not (tmp_path / "empty.txt").exists()


def test_atomic_write_directory(tmp_path):
    target = tmp_path / "store.zarr"
    for n in (1, 2):
        with atomic_write(target) as tmp:
            tmp.mkdir()
            (tmp / "part").write_text(str(n))
            assert not (target / "part").exists() or (target / "part").read_text() == "1"
        assert (target / "part").read_text() == str(n)
    with pytest.raises(RuntimeError):
        with atomic_write(target) as tmp:
            tmp.mkdir()
            (tmp / "part").write_text("3")
            raise RuntimeError("failed")
    assert (target / "part").read_text() == "2"
    assert no_temp_left(tmp_path)


def test_read_input_errors(tmp_path):
    with pytest.raises(InputError, match=r"file not found: .*x\.tif; check inputs\.<name>\.path"):
        read_input(tmp_path / "x.tif")
    with pytest.raises(InputError, match=r"no file matches the pattern .*NDVI_\*\.tif"):
        read_input(str(tmp_path / "NDVI_*.tif"), date_pattern=r"(?P<year>\d{4})")
    odd = tmp_path / "data.grb"
    odd.write_bytes(b"GRIB")
    with pytest.raises(InputError, match=r"unknown format '\.grb'.*\.tif"):
        read_input(odd)
    a = write_tif(tmp_path / "a_2001.tif", np.zeros((2, 2), "float32"))
    b = write_tif(tmp_path / "b_2002.tif", np.zeros((2, 2), "float32"))
    with pytest.raises(InputError, match="no date_pattern"):
        read_input([a, b])
    (tmp_path / "c.nc").write_bytes(b"")
    with pytest.raises(InputError, match="mix formats"):
        read_input([a, tmp_path / "c.nc"])
    with pytest.raises(InputError, match="give sds"):
        (tmp_path / "m.hdf").write_bytes(b"")
        read_input(tmp_path / "m.hdf")


def test_read_input_directory_of_geotiffs(tmp_path):
    d = tmp_path / "ndvi"
    d.mkdir()
    for y in (2003, 2001, 2002):
        write_tif(d / f"ndvi_{y}.tif", np.full((2, 3), y, "float32"), tags={"units": "1"})
    (d / "README.txt").write_text("not data")
    da = read_input(d, date_pattern=r"(?P<year>\d{4})", variable="ndvi", frequency="year")
    assert da.dims == ("time", "y", "x") and da.name == "ndvi"
    assert da.values[:, 0, 0].tolist() == [2001.0, 2002.0, 2003.0]
    assert da.attrs["units"] == "1" and da.rio.crs.to_epsg() == 4326
