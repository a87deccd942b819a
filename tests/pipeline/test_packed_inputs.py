"""Aligned inputs are stored as their source stores them (the same integers, scale and offset
in canonical units) when they are sliced from the source lattice; resampled or derived
inputs stay float32, and results equal those of float32 storage within float32 rounding."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
import yaml
import zarr
from pipeline_helpers import demo_study_file

from carbonsink.io import read_cube
from carbonsink.units import packing_after_conversion


def test_packing_after_conversion_follows_the_unit_conversion():
    enc = {"dtype": np.dtype("int16"), "scale_factor": np.float32(0.01), "add_offset": 0.0,
           "_FillValue": np.int16(-9999)}
    same = packing_after_conversion(enc, "degC", "degC", variable="tas")
    assert same["dtype"] == np.int16 and same["_FillValue"] == -9999
    assert same["scale_factor"] == np.float32(0.01) and same["add_offset"] == 0
    # Kelvin integers: the offset moves, the integers stay
    k = packing_after_conversion({"dtype": "int16", "scale_factor": 0.1}, "K", "degC",
                                 variable="tas")
    assert k["scale_factor"] == np.float32(0.1)
    assert k["add_offset"] == np.float32(-273.15)
    assert k["_FillValue"] == np.iinfo("int16").min  # none declared: the type's end
    # "0.1 mm" integers of monthly precipitation, no scale in the file
    pr = packing_after_conversion({"dtype": "int16"}, "0.1 mm", "mm month-1", variable="pr")
    assert pr["scale_factor"] == np.float32(0.1) and pr["add_offset"] == 0
    # a rate turned into a monthly total: the factor changes with the month, no packing
    assert packing_after_conversion({"dtype": "int16"}, "mm d-1", "mm month-1",
                                    variable="pr") is None
    # floats and wide integers are not packed
    assert packing_after_conversion({"dtype": "float32"}, "degC", "degC") is None
    assert packing_after_conversion({"dtype": "int32"}, "degC", "degC") is None
    assert packing_after_conversion({}, "degC", "degC") is None
    # a declared fill outside the type's range falls back to the type's end
    u8 = packing_after_conversion({"dtype": "uint8", "_FillValue": -1.0}, "1", "1")
    assert u8["_FillValue"] == 255


def _demo_study(folder, n=12):
    return demo_study_file(folder, n, analyses={"regional_summary": {}},
                           outputs={"dir": "results", "formats": ["zarr", "csv"],
                                    "figures": False})


def _rechunk_file(path, chunksizes) -> str:
    """Rewrite the NetCDF file of the demo's 8-day composites with its 3-D variable stored in
    chunks of ``chunksizes`` (same integers and packing); returns the variable's name."""
    with xr.open_dataset(path, mask_and_scale=False) as ds:
        raw = ds.load()
    var = next(v for v in raw.data_vars if raw[v].ndim == 3)
    enc = {k: raw[var].encoding[k] for k in ("dtype", "zlib") if k in raw[var].encoding}
    path.unlink()
    raw.to_netcdf(path, encoding={var: {**enc, "chunksizes": tuple(chunksizes)}})
    return var


def _tiles_of_12(study) -> None:
    """Set the study's tiles to 12 x 12 cells (``dask.chunks``)."""
    cfg = yaml.safe_load(study.read_text())
    cfg["dask"] = {"chunks": {"y": 12, "x": 12}}
    study.write_text(yaml.safe_dump(cfg, sort_keys=False))


@pytest.fixture(scope="module")
def packed_and_float(tmp_path_factory):
    """The same demo study run twice: packed aligned inputs (the default) and float32."""
    from carbonsink.pipeline import run_study, steps

    folder = tmp_path_factory.mktemp("packed")
    study = _demo_study(folder)
    run_study(study, folder / "packed", echo=lambda s: None)
    mp = pytest.MonkeyPatch()
    mp.setattr(steps, "packing_after_conversion", lambda *a, **k: None)
    mp.setattr(steps, "_READ_CACHE", {})  # read again, without the packing
    try:
        run_study(study, folder / "float", echo=lambda s: None)
    finally:
        mp.undo()
    return folder


def test_on_grid_packed_inputs_keep_the_source_integers(packed_and_float):
    packed = packed_and_float / "packed" / "cubes"
    flt = packed_and_float / "float" / "cubes"
    raw = xr.open_zarr(packed / "inputs_monthly.zarr", mask_and_scale=False)
    src = xr.open_dataset(packed_and_float / "inputs" / "climate.nc", mask_and_scale=False)
    assert raw["tas"].dtype == src["tas"].dtype == np.int16
    assert raw["tas"].attrs["scale_factor"] == pytest.approx(src["tas"].attrs["scale_factor"])
    np.testing.assert_array_equal(raw["tas"].values, src["tas"].values[:36])
    assert raw["ndvi"].dtype == np.int16  # GeoTIFF series with a GDAL scale
    raw8 = xr.open_zarr(packed / "inputs_8day.zarr", mask_and_scale=False)
    assert raw8["gpp_8day"].dtype == np.int16
    assert xr.open_zarr(packed / "inputs_static.zarr", mask_and_scale=False)["area"].dtype \
        == np.float64
    # decoded: float32, equal to the float32 copy within float32 rounding, same gaps
    for group in ("monthly", "8day", "annual"):
        a = xr.open_zarr(packed / f"inputs_{group}.zarr")
        b = xr.open_zarr(flt / f"inputs_{group}.zarr")
        for v in (v for v in b.data_vars if v != "spatial_ref"):
            assert b[v].dtype == np.float32
            got = read_cube(packed / f"inputs_{group}.zarr")[v]
            assert got.dtype == np.float32, v
            np.testing.assert_allclose(got.values, b[v].values, rtol=2e-7, atol=0, err_msg=v)
            np.testing.assert_array_equal(a[v].isnull().values, b[v].isnull().values)
    # decoding stays lazy (a whole input is never loaded to change its type)
    lazy = read_cube(packed / "inputs_monthly.zarr")["tas"]
    assert lazy.chunks is not None and lazy.dtype == np.float32
    size = {k: sum(f.stat().st_size for f in (d / "inputs_monthly.zarr").rglob("*"))
            for k, d in (("packed", packed), ("float", flt))}
    assert size["packed"] < 0.8 * size["float"]  # tiny stores: metadata weighs in


def test_results_from_packed_inputs_are_float32_and_equal_within_rounding(packed_and_float):
    for combo in ("modis+pei", "casa+gsmsr_bl"):
        for product in ("annual", "growing_season"):
            a = xr.open_zarr(packed_and_float / "packed" / "cubes" / combo / f"{product}.zarr")
            b = xr.open_zarr(packed_and_float / "float" / "cubes" / combo / f"{product}.zarr")
            for v in ("npp", "rh", "nep"):
                assert a[v].dtype == np.float32, (combo, product, v)
                np.testing.assert_allclose(a[v].values, b[v].values, rtol=1e-5, atol=1e-3,
                                           err_msg=f"{combo} {product} {v}")


def test_an_input_chunked_finer_than_the_tiles_is_aligned_unchanged(tmp_path):
    """A NetCDF chunked in space more finely than the study's tiles (the 8-day GPP file of a
    large region) is staged in its own chunks; the aligned cube holds its values."""
    from carbonsink.pipeline import run_study

    study = _demo_study(tmp_path, n=24)
    gpp_file = tmp_path / "inputs" / "modis_gpp_8day.nc"
    var = _rechunk_file(gpp_file, (46, 5, 7))
    _tiles_of_12(study)
    run_study(study, echo=lambda s: None)
    cube = read_cube(tmp_path / "inputs" / "results" / "cubes" / "inputs_8day.zarr")
    with xr.open_dataset(gpp_file) as src:
        ref = src[var].values.astype(np.float64) * 1000.0  # kg C m-2 -> g C m-2
    got = cube["gpp_8day"].values.astype(np.float64)
    assert got.shape == ref.shape
    np.testing.assert_array_equal(np.isnan(got), np.isnan(ref))
    np.testing.assert_allclose(got, ref, rtol=2e-6, atol=1e-9)


def _spy_scratch(monkeypatch):
    """Record (dtype, compressor, packed) of every variable of the scratch stores written."""
    import json

    import carbonsink.io as cio

    seen: dict[str, tuple] = {}
    orig = cio.write_zarr

    def spy(obj, path, **kw):
        out = orig(obj, path, **kw)
        if kw.get("scratch"):
            for meta in out.glob("*/.zarray"):
                z = json.loads(meta.read_text())
                seen[meta.parent.name] = (
                    z["dtype"], z["compressor"]["cname"],
                    "scale_factor" in json.loads((meta.parent / ".zattrs").read_text()))
        return out

    monkeypatch.setattr(cio, "write_zarr", spy)
    return seen


def test_scratch_of_packed_inputs_holds_their_integers(tmp_path, monkeypatch):
    """Prepare's pass-1 copy of a packed input read in short time blocks (a NetCDF chunked
    in 6 composites x 5 x 7 cells) stores the packed integers with LZ4 (half the bytes of
    float32, faster to compress); the cube written from it has the source's integers (the
    test above) and whole series per tile."""
    from carbonsink.pipeline import run_study

    study = _demo_study(tmp_path, n=24)
    gpp_file = tmp_path / "inputs" / "modis_gpp_8day.nc"
    _rechunk_file(gpp_file, (6, 5, 7))
    _tiles_of_12(study)
    seen = _spy_scratch(monkeypatch)
    run_study(study, echo=lambda s: None)
    assert seen.get("gpp_8day") == ("<i2", "lz4", True), seen
    out = tmp_path / "inputs" / "results" / "cubes"
    assert not (out / "_scratch").exists()
    z = zarr.open_group(str(out / "inputs_8day.zarr"), mode="r")
    assert z["gpp_8day"].chunks == (z["gpp_8day"].shape[0], 12, 12)  # series contiguous


def test_inputs_in_year_blocks_are_written_in_one_pass(tmp_path, monkeypatch):
    """Monthly inputs read in 12-month file blocks that split into the study's tiles are
    written once, chunked (12 months, tile), and composites read in the file's chunks
    (46 x 5 x 7 cells, finer than the tiles) in those chunks, without a scratch store; the
    cubes hold the same values, attributes and packing as the two-pass cubes (whole series
    per tile), and the fluxes computed from them are identical."""
    from carbonsink.pipeline import run_study, steps

    kw = dict(analyses={}, outputs={"dir": "results", "formats": ["zarr"], "figures": False})
    seen = _spy_scratch(monkeypatch)
    study = demo_study_file(tmp_path / "a", 24, **kw)
    # composites stored in chunks of 46 x 5 x 7 cells, smaller than the tiles in space
    gpp_file = study.parent / "modis_gpp_8day.nc"
    _rechunk_file(gpp_file, (46, 5, 7))
    _tiles_of_12(study)
    run_study(study, tmp_path / "one", echo=lambda s: None)
    assert not seen, seen  # nothing staged through scratch
    monkeypatch.setattr(steps, "_MIN_TIME_BLOCK", 10 ** 6)  # the two-pass path
    run_study(study, tmp_path / "two", echo=lambda s: None)
    assert {"tas", "pr", "ndvi", "gpp_8day"} <= set(seen), seen
    one = zarr.open_group(str(tmp_path / "one" / "cubes" / "inputs_monthly.zarr"), mode="r")
    two = zarr.open_group(str(tmp_path / "two" / "cubes" / "inputs_monthly.zarr"), mode="r")
    assert set(one.array_keys()) == set(two.array_keys())
    for v in one.array_keys():
        a, b = one[v], two[v]
        np.testing.assert_array_equal(a[...], b[...])
        assert a.dtype == b.dtype and dict(a.attrs) == dict(b.attrs), v
        if v in ("tas", "pr", "sol", "pet", "ndvi"):
            assert a.chunks == (12, 12, 12) and b.chunks == (b.shape[0], 12, 12), v
    assert one["tas"].dtype == np.int16
    one8 = zarr.open_group(str(tmp_path / "one" / "cubes" / "inputs_8day.zarr"), mode="r")
    two8 = zarr.open_group(str(tmp_path / "two" / "cubes" / "inputs_8day.zarr"), mode="r")
    assert one8["gpp_8day"].chunks == (46, 5, 7)  # the file's chunks, written once
    assert two8["gpp_8day"].chunks == (two8["gpp_8day"].shape[0], 12, 12)
    np.testing.assert_array_equal(one8["gpp_8day"][...], two8["gpp_8day"][...])
    assert dict(one8["gpp_8day"].attrs) == dict(two8["gpp_8day"].attrs)
    rels = sorted(p.relative_to(tmp_path / "one")
                  for p in (tmp_path / "one" / "cubes").glob("*+*/*.zarr"))
    assert rels
    for rel in rels:
        a = xr.open_zarr(tmp_path / "one" / rel)
        b = xr.open_zarr(tmp_path / "two" / rel)
        for v in ("npp", "rh", "nep"):
            np.testing.assert_array_equal(a[v].values, b[v].values)
