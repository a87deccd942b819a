"""Identical model chunks of the combinations' cubes are stored once (hard links); every cube
stays complete, sizes count a shared file once, and rewriting one cube leaves the others."""

from __future__ import annotations

import os
import shutil

import numpy as np
import xarray as xr

from carbonsink.pipeline.outdir import disk_bytes, link_identical_files


def _store(path, geo=False, **arrays):
    """A cube of ``arrays`` (time, y, x) in 4 x 4 chunks; ``geo``: on a lon/lat grid with
    its CRS, as the pipeline's cubes."""
    import pandas as pd

    ds = xr.Dataset({k: (("time", "y", "x"), v) for k, v in arrays.items()})
    if geo:
        nt, ny, nx = next(iter(arrays.values())).shape
        ds = ds.assign_coords(time=pd.date_range("2001-01-01", periods=nt, freq="YS"),
                              y=41.0 - np.arange(ny) * 0.1, x=110.0 + np.arange(nx) * 0.1)
        ds = ds.rio.write_crs("EPSG:4326")
    ds.chunk({"time": -1, "y": 4, "x": 4}).to_zarr(path, mode="w", zarr_format=2,
                                                   consolidated=True)


def test_only_byte_identical_files_are_linked(tmp_path):
    rng = np.random.default_rng(0)
    npp = rng.random((5, 8, 8)).astype("float32") * 1000
    rh_a = rng.random((5, 8, 8)).astype("float32") * 1000
    rh_b = rh_a.copy()
    rh_b[0, 0, 0] += 1  # one chunk differs
    a, b = tmp_path / "a" / "annual.zarr", tmp_path / "b" / "annual.zarr"
    _store(a, npp=npp, rh=rh_a)
    _store(b, npp=npp, rh=rh_b)
    files = [f for s in (a, b) for f in s.rglob("*") if f.is_file()]
    before = disk_bytes(files)
    saved = link_identical_files([a, b])
    assert saved > 0
    assert disk_bytes(files) == before - saved
    for chunk in ("0.0.0", "0.0.1", "0.1.0", "0.1.1"):
        assert os.path.samefile(a / "npp" / chunk, b / "npp" / chunk)
    assert not os.path.samefile(a / "rh" / "0.0.0", b / "rh" / "0.0.0")  # differs
    assert os.path.samefile(a / "rh" / "0.1.1", b / "rh" / "0.1.1")
    assert not os.path.samefile(a / "npp" / ".zarray", b / "npp" / ".zarray")  # metadata
    for s, rh in ((a, rh_a), (b, rh_b)):
        ds = xr.open_zarr(s)
        np.testing.assert_array_equal(ds["npp"].values, npp)
        np.testing.assert_array_equal(ds["rh"].values, rh)
    assert link_identical_files([a, b]) == 0  # already shared
    # a store rewritten (as the pipeline does: a new store renamed onto the old) leaves the
    # other one intact
    new = tmp_path / "new.zarr"
    _store(new, npp=npp * 2, rh=rh_a)
    shutil.rmtree(a)
    new.rename(a)
    np.testing.assert_array_equal(xr.open_zarr(b)["npp"].values, npp)
    np.testing.assert_array_equal(xr.open_zarr(a)["npp"].values, npp * 2)


def test_files_of_equal_size_with_two_contents_link_to_their_own_copy(tmp_path):
    """Three stores whose chunk files all have one size (uncompressed) but two contents:
    the third links to the first, the second (different bytes) keeps its own file."""
    rng = np.random.default_rng(1)
    x = rng.random((3, 4, 4)).astype("float32")
    y = x + 1
    stores = [tmp_path / n / "annual.zarr" for n in ("a", "b", "c")]
    for st, v in zip(stores, (x, y, x)):
        xr.Dataset({"rh": (("time", "y", "x"), v)}).to_zarr(
            st, mode="w", zarr_format=2, consolidated=True, encoding={"rh": {"compressors": None}})
    a, b, c = (st / "rh" / "0.0.0" for st in stores)
    assert a.stat().st_size == b.stat().st_size == c.stat().st_size
    assert link_identical_files(stores) == a.stat().st_size
    assert os.path.samefile(a, c) and not os.path.samefile(a, b)
    for st, v in zip(stores, (x, y, x)):
        np.testing.assert_array_equal(xr.open_zarr(st)["rh"].values, v)


def test_a_run_shares_the_npp_chunks_of_the_combinations_of_one_npp_model(hetero_inputs,
                                                                           tmp_path):
    from carbonsink.pipeline import run_study
    from carbonsink.pipeline.runner import product_sizes

    from pipeline_helpers import write_study

    for f in hetero_inputs.iterdir():
        (shutil.copytree if f.is_dir() else shutil.copy)(f, tmp_path / f.name)
    study = write_study(tmp_path, analyses={"regional_summary": {}},
                        outputs={"dir": "results", "formats": ["zarr", "csv"]})
    lines: list[str] = []
    ctx = run_study(study, echo=lines.append)
    assert any("shared between combinations (hard links)" in line for line in lines)
    cubes = tmp_path / "results" / "cubes"
    for prod in ("annual", "growing_season"):
        a, b = cubes / "modis+pei" / f"{prod}.zarr", cubes / "modis+gsmsr_bl" / f"{prod}.zarr"
        shared = [c.name for c in (a / "npp").iterdir() if not c.name.startswith(".")
                  and os.path.samefile(c, b / "npp" / c.name)]
        assert shared, prod
        np.testing.assert_array_equal(xr.open_zarr(a)["npp"].values,
                                      xr.open_zarr(b)["npp"].values)
        assert not os.path.samefile(a / "nep" / "0.0.0", b / "nep" / "0.0.0")
    out = tmp_path / "results"
    listing = product_sizes(ctx).splitlines()
    assert "hard links" in listing[-1]
    total = float(next(x for x in listing if x.startswith("total")).split()[1]) * 1e6
    files = [f for f in out.rglob("*") if f.is_file() and ".carbonsink" not in f.parts]
    assert abs(total - disk_bytes(files)) < 0.1e6
    assert disk_bytes(files) < sum(f.stat().st_size for f in files)


def test_linked_variables_open_as_one_dask_array_and_are_read_once(tmp_path, monkeypatch):
    """Two cubes holding one variable's chunks as hard links open with the same dask name
    for it (one read in a computation over both); a variable that differs, or a store
    rewritten with new files, gets a name of its own."""
    import dask
    from xarray.backends.zarr import ZarrArrayWrapper

    from carbonsink.pipeline import load_study
    from carbonsink.pipeline.steps import _open_chunked, variable_identity

    from pipeline_helpers import write_study

    rng = np.random.default_rng(2)
    npp = rng.random((5, 8, 8)).astype("float32") * 1000
    rh_a = rng.random((5, 8, 8)).astype("float32")
    a, b = tmp_path / "a" / "annual.zarr", tmp_path / "b" / "annual.zarr"
    _store(a, geo=True, npp=npp, rh=rh_a)
    _store(b, geo=True, npp=npp, rh=rh_a + 1)
    assert variable_identity(a, "npp") != variable_identity(b, "npp")  # copies, not links
    link_identical_files([a, b])
    assert variable_identity(a, "npp") == variable_identity(b, "npp")
    assert variable_identity(a, "rh") != variable_identity(b, "rh")
    assert variable_identity(a, "missing") is None

    cfg = load_study(write_study(tmp_path))
    da_, db_ = (_open_chunked(cfg, s, analysis=True) for s in (a, b))
    assert da_["npp"].data.name == db_["npp"].data.name
    assert da_["rh"].data.name != db_["rh"].data.name
    assert list(da_.data_vars) == ["npp", "rh"]  # the store's order

    reads = []
    orig = ZarrArrayWrapper.__getitem__

    def counted(self, key):
        reads.append(key)
        return orig(self, key)

    monkeypatch.setattr(ZarrArrayWrapper, "__getitem__", counted)
    tot = dask.compute(da_["npp"].sum(), db_["npp"].sum(), da_["rh"].sum(), db_["rh"].sum())
    np.testing.assert_allclose(tot, [npp.sum()] * 2 + [rh_a.sum(), (rh_a + 1).sum()],
                               rtol=1e-5)
    chunks = len(da_["npp"].data.chunks[1]) * len(da_["npp"].data.chunks[2])
    assert len(reads) == 3 * chunks  # npp once, each rh once

    # a store rewritten (new files renamed onto the old) is a new identity
    new = tmp_path / "new.zarr"
    _store(new, geo=True, npp=npp * 2, rh=rh_a)
    shutil.rmtree(a)
    new.rename(a)
    assert variable_identity(a, "npp") != variable_identity(b, "npp")
    da2 = _open_chunked(cfg, a, analysis=True)
    assert da2["npp"].data.name != db_["npp"].data.name
    np.testing.assert_array_equal(da2["npp"].values, npp * 2)
