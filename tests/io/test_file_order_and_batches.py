"""Reading in file order (chunks="file") and writing several cubes in one computation, by
blocks of the region (write_zarr_many)."""

import numpy as np
import pandas as pd
import pytest
import rasterio
import xarray as xr
from rasterio.transform import from_origin

from carbonsink.io import read_cube, read_input, write_zarr, write_zarr_many
from carbonsink.io._common import file_chunks
from carbonsink.io.netcdf import spatial_blocks


def _cube(ny=30, nx=40, nt=24, seed=0):
    rng = np.random.default_rng(seed)
    t = pd.date_range("2001-01-01", periods=nt, freq="MS")
    y = 40 - (np.arange(ny) + 0.5) * 0.1
    x = 110 + (np.arange(nx) + 0.5) * 0.1
    a = rng.normal(10, 3, (nt, ny, nx)).astype("float32")
    a[:, :3, :4] = np.nan
    ds = xr.Dataset({"npp": (("time", "y", "x"), a, {"units": "g C m-2 month-1"}),
                     "rh": (("time", "y", "x"), a * 0.5, {"units": "g C m-2 month-1"})},
                    coords={"time": t, "y": y, "x": x,
                            "ndays": ("time", np.arange(nt, dtype="int32") + 1)})
    return ds.rio.write_crs("EPSG:4326")


def test_blocks_cover_the_grid_once():
    blocks = spatial_blocks(30, 40, 8, 16, 4)
    cover = np.zeros((30, 40), int)
    for ys, xs in blocks:
        cover[ys, xs] += 1
        assert ys.start % 8 == 0 and xs.start % 16 == 0  # aligned with the chunks
    assert (cover == 1).all() and len(blocks) > 1


@pytest.mark.parametrize("blocks", [None, "blocks"])
def test_write_many_equals_write_one_by_one(tmp_path, blocks):
    ds = _cube().chunk({"time": -1, "y": 8, "x": 16})
    annual = ds.resample(time="YS").sum()
    b = spatial_blocks(30, 40, 8, 16, 4) if blocks else None
    write_zarr_many([(ds, tmp_path / "m.zarr"), (annual, tmp_path / "a.zarr")], blocks=b)
    write_zarr(ds, tmp_path / "m1.zarr")
    write_zarr(annual, tmp_path / "a1.zarr")
    for name in ("m", "a"):
        got, want = read_cube(tmp_path / f"{name}.zarr"), read_cube(tmp_path / f"{name}1.zarr")
        xr.testing.assert_identical(got.load(), want.load())
    # the non-spatial coordinate is written with the metadata, not lost by the blocks
    assert (read_cube(tmp_path / "m.zarr")["ndays"].values == np.arange(24) + 1).all()
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_write_many_computes_the_stores_together(tmp_path):
    # without blocks the stores are still one computation: the chunk of each store waits
    # for the chunk of the other to start (computed one store after the other, the first
    # would wait in vain and the barrier break)
    import threading

    import dask

    barrier = threading.Barrier(2, timeout=20)

    def meet(block):
        if block.size:
            barrier.wait()
        return block

    ds = _cube().chunk({"time": -1, "y": -1, "x": -1})
    stores = []
    for name in ("a", "b"):
        one = ds[["npp"]].copy()
        one["npp"] = one["npp"].copy(data=one["npp"].data.map_blocks(
            meet, dtype="float32", token=f"meet-{name}"))
        stores.append((one, tmp_path / f"{name}.zarr"))
    with dask.config.set(scheduler="threads", num_workers=2):
        write_zarr_many(stores)
    for name in ("a", "b"):
        np.testing.assert_array_equal(read_cube(tmp_path / f"{name}.zarr")["npp"].values,
                                      ds["npp"].values)


def test_write_many_failure_leaves_no_target(tmp_path):
    ds = _cube().chunk({"time": -1, "y": 8, "x": 16})

    def boom(block):
        raise RuntimeError("disk gone")

    bad = ds.copy()
    bad["npp"] = bad["npp"].copy(data=bad["npp"].data.map_blocks(boom, dtype="float32"))
    with pytest.raises(RuntimeError):
        write_zarr_many([(ds, tmp_path / "ok.zarr"), (bad, tmp_path / "bad.zarr")],
                        blocks=spatial_blocks(30, 40, 8, 16, 4))
    assert list(tmp_path.iterdir()) == []  # nothing finished-looking, no temporaries


def test_file_chunks_follow_the_file():
    # a NetCDF chunk of 12 months x the whole grid is read whole, once
    assert file_chunks((252, 300, 300), ("time", "y", "x"), (12, 300, 300), "int16") == \
        {"time": 12, "y": 300, "x": 300}
    # one step per file (GeoTIFF series): a few files per chunk, whole grid
    assert file_chunks((252, 300, 300), ("time", "y", "x"), None, "float32") == \
        {"time": 12, "y": 300, "x": 300}
    # a contiguous 2 GB variable is split along time into ~64 MB pieces
    c = file_chunks((252, 2000, 2000), ("time", "y", "x"), (252, 2000, 2000), "float32")
    assert c["y"] == 2000 and 1 <= c["time"] <= 5


def test_read_in_file_order_equals_default(tmp_path):
    ds = _cube(nt=36)
    enc = {"npp": {"chunksizes": (12, 30, 40), "zlib": True}}
    ds[["npp"]].drop_vars("ndays").to_netcdf(tmp_path / "c.nc", encoding=enc)
    a = read_input(tmp_path / "c.nc", variable="npp", frequency="month", chunks="file")
    b = read_input(tmp_path / "c.nc", variable="npp", frequency="month")
    assert a.chunks[0] == (12, 12, 12) and a.chunks[1] == (30,)
    assert b.chunks[0] == (36,)
    xr.testing.assert_identical(a.compute(), b.compute())
    # a GeoTIFF series: files grouped along time, each file read whole
    for i, t in enumerate(pd.date_range("2001-01-01", periods=14, freq="MS")):
        with rasterio.open(tmp_path / f"N_{t:%Y%m}.tif", "w", driver="GTiff", height=30,
                           width=40, count=1, dtype="int16", nodata=-3000, crs="EPSG:4326",
                           transform=from_origin(110, 40, 0.1, 0.1)) as dst:
            dst.write((np.arange(1200).reshape(30, 40) + i).astype("int16"), 1)
    kw = dict(variable="ndvi", frequency="month", date_pattern=r"N_(?P<year>\d{4})(?P<month>\d{2})")
    a = read_input(str(tmp_path / "N_*.tif"), chunks="file", **kw)
    b = read_input(str(tmp_path / "N_*.tif"), **kw)
    assert a.chunks[0] == (12, 2) and a.chunks[1] == (30,)
    xr.testing.assert_identical(a.compute(), b.compute())
