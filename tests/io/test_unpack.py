"""Packed Zarr variables are decoded in one compiled pass (carbonsink.io._unpack): the values
must be bit-identical to xarray's own CF decoding, for fill values, missing_value, offsets and
the integer types the pipeline writes; cases it does not cover fall back to xarray."""

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.io import read_cube
from carbonsink.io._unpack import unpack


def _store(tmp_path, raw, attrs, name="v"):
    t = np.arange(raw.shape[0])
    ds = xr.Dataset({name: (("time", "y", "x"), raw, attrs)},
                    coords={"time": ("time", t, {"units": "days since 2001-01-01"}),
                            "y": np.arange(raw.shape[1], 0, -1) + 0.5,
                            "x": np.arange(raw.shape[2]) + 100.5})
    p = tmp_path / "c.zarr"
    ds.to_zarr(p, mode="w")
    return p


def _xarray_decoded(p, name="v"):
    ds = xr.open_dataset(p, engine="zarr", mask_and_scale=False, decode_times=False)
    var = ds[name].variable.copy(deep=False)
    var.attrs = dict(var.attrs)
    for k in ("scale_factor", "add_offset"):
        if k in var.attrs:
            var.attrs[k] = np.float32(var.attrs[k])
    return xr.conventions.decode_cf_variable(name, var, mask_and_scale=True,
                                             decode_times=False).values


def _bits(a):
    return np.asarray(a, dtype=np.float32).view(np.int32)


@pytest.mark.parametrize("dtype", ["int16", "int8", "uint16"])
@pytest.mark.parametrize("attrs", [
    {"scale_factor": 0.1, "_FillValue": 7},
    {"scale_factor": 0.0001, "add_offset": 0.5, "_FillValue": 3},
    {"scale_factor": 0.25, "add_offset": -1.0, "_FillValue": 0, "missing_value": 5},
    {"scale_factor": 0.01},
])
def test_bit_identical_to_xarray(tmp_path, dtype, attrs, monkeypatch):
    import carbonsink.io._unpack as mod

    calls = []
    monkeypatch.setattr(mod, "unpack", lambda raw, **kw: calls.append(1) or unpack(raw, **kw))
    rng = np.random.default_rng(0)
    info = np.iinfo(dtype)
    raw = rng.integers(max(info.min, -20000), min(info.max, 20000), (7, 9, 11)).astype(dtype)
    for k in ("_FillValue", "missing_value"):
        if k in attrs and info.min <= attrs[k] <= info.max:
            raw.flat[rng.choice(raw.size, 40, replace=False)] = attrs[k]
    if any(k in attrs and not info.min <= attrs[k] <= info.max
           for k in ("_FillValue", "missing_value")):
        pytest.skip(f"fill value outside {dtype}")
    attrs = {k: (np.dtype(dtype).type(v) if k in ("_FillValue", "missing_value") else v)
             for k, v in attrs.items()}
    p = _store(tmp_path, raw, {**attrs, "units": "1"})
    want = _xarray_decoded(p)
    got = read_cube(p, crs="EPSG:4326")["v"]
    assert got.dtype == np.float32
    np.testing.assert_array_equal(_bits(got.values), _bits(want))
    assert calls, "the fused decoding was not used"
    if "_FillValue" in attrs:
        assert np.isnan(got.values).sum() >= 1
    # lazily sliced: the same values as slicing the decoded array
    sub = read_cube(p, crs="EPSG:4326", chunks=None)["v"].isel(time=slice(2, 5), x=[1, 4])
    np.testing.assert_array_equal(_bits(sub.values), _bits(want[2:5][:, :, [1, 4]]))


def test_unpack_hand_values():
    raw = np.array([[-32767, 0, 10], [123, -5, -32767]], dtype=np.int16)
    out = unpack(raw, fills=[-32767], scale=np.float32(0.5), offset=np.float32(1.0), add=True)
    np.testing.assert_array_equal(out, np.array([[np.nan, 1.0, 6.0], [62.5, -1.5, np.nan]],
                                                dtype=np.float32))
    out = unpack(raw[:, ::2], fills=[], scale=np.float32(2.0), offset=np.float32(0.0),
                 add=False)  # non-contiguous input, no fill
    np.testing.assert_array_equal(out, np.array([[-65534, 20], [246, -65534]], np.float32))


def test_unsigned_attribute_falls_back_to_xarray(tmp_path):
    raw = np.array([[[-1, 0, 5]]], dtype=np.int8)
    p = _store(tmp_path, raw, {"scale_factor": 0.5, "_Unsigned": "true", "units": "1"})
    got = read_cube(p, crs="EPSG:4326")["v"].values
    np.testing.assert_array_equal(got, np.array([[[127.5, 0.0, 2.5]]], dtype=np.float32))


@pytest.mark.parametrize("attrs", [
    {"scale_factor": np.float32(0.1), "add_offset": np.float32(0.0), "_FillValue": np.int16(-32767)},
    {"scale_factor": 0.01, "_FillValue": -32767},
    {"scale_factor": np.float64(0.0001), "add_offset": np.float64(-2.5), "_FillValue": 0},
])
@pytest.mark.parametrize("lazy", [False, True])
def test_write_packs_the_bytes_xarray_would(tmp_path, attrs, lazy):
    """write_zarr packs slice by slice: the stored integers and attributes are those of
    xarray's CF encoding (values at the rounding edges, NaN, out-of-range magnitudes)."""
    import json

    import carbonsink.io._unpack as mod
    from carbonsink.io import write_zarr

    rng = np.random.default_rng(5)
    v = (rng.normal(0, 300, (6, 40, 50))).astype(np.float32)
    v[0, 0, :8] = [0.05, 0.15, -0.05, 0.25, 1e-9, -0.35, 2.5, 3.5]  # halves: round to even
    v[rng.random(v.shape) < 0.1] = np.nan
    t = np.array(["2001-01-01", "2002-01-01", "2003-01-01", "2004-01-01", "2005-01-01",
                  "2006-01-01"], dtype="datetime64[ns]")
    ds = xr.Dataset({"v": (("time", "y", "x"), v, {"units": "1"})},
                    coords={"time": ("time", t),
                            "y": np.arange(40, 0, -1) + 0.5, "x": np.arange(50) + 100.5})
    ds = ds.rio.write_crs("EPSG:4326")
    ds["v"].encoding = {"dtype": np.dtype("int16"), **attrs}
    if lazy:
        ds = ds.chunk({"time": -1, "y": 20, "x": 25})
    import carbonsink.io.netcdf as nc

    with pytest.MonkeyPatch.context() as mp:  # the reference: xarray's own CF encoding
        mp.setattr(nc, "_packed_variable", lambda var: None)
        ref = write_zarr(ds, tmp_path / "ref.zarr")
    calls = []
    orig = mod.pack
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(mod, "pack", lambda b, **kw: calls.append(1) or orig(b, **kw))
        out = write_zarr(ds, tmp_path / "ours.zarr")
    assert calls, "the slice-wise packing was not used"
    got = xr.open_dataset(out, engine="zarr", mask_and_scale=False)["v"]
    want = xr.open_dataset(ref, engine="zarr", mask_and_scale=False)["v"]
    assert got.dtype == want.dtype == np.int16
    np.testing.assert_array_equal(got.values, want.values)
    for k in ("scale_factor", "add_offset", "_FillValue"):
        assert (k in got.attrs) == (k in want.attrs)
        if k in want.attrs:
            assert float(got.attrs[k]) == float(want.attrs[k])
    meta = json.loads((out / "v" / ".zarray").read_text())
    assert meta["dtype"] == "<i2"
    # and it decodes back to the values within half a step
    back = read_cube(out)["v"].values
    step, off = float(attrs["scale_factor"]), float(attrs.get("add_offset", 0.0))
    assert np.all(np.isnan(back[np.isnan(v)]))
    ok = np.abs((v - off) / step) < 32000  # representable in int16 (NaN: False)
    assert ok.sum() > 20
    tol = step * 0.5 + 4 * np.finfo(np.float32).eps * (np.abs(v[ok]) + abs(off))
    assert np.all(np.abs(back[ok] - v[ok]) <= tol)


@pytest.mark.parametrize("scale_type", [np.float32, np.float64])
def test_netcdf_packed_input_decoded_as_xarray_does(tmp_path, scale_type, monkeypatch):
    """A NetCDF input packed with a float32 scale is decoded in one pass, bit-identical to
    xarray; with a float64 scale xarray's decoding (to float64) is kept."""
    import carbonsink.io._unpack as mod
    import carbonsink.io.netcdf as nc
    from carbonsink.io import read_netcdf

    rng = np.random.default_rng(2)
    raw = rng.integers(-3000, 3000, (24, 8, 9)).astype(np.int16)
    raw[rng.random(raw.shape) < 0.1] = -32768
    t = pd.date_range("2001-01-01", periods=24, freq="MS")
    ds = xr.Dataset({"tas": (("time", "lat", "lon"), raw,
                             {"units": "degC", "scale_factor": scale_type(0.01),
                              "add_offset": scale_type(1.5), "_FillValue": np.int16(-32768)})},
                    coords={"time": t, "lat": np.arange(8) + 30.5, "lon": np.arange(9) + 100.5})
    p = tmp_path / "c.nc"
    ds.to_netcdf(p)
    calls = []
    orig = mod.unpack
    monkeypatch.setattr(mod, "unpack", lambda r, **kw: calls.append(1) or orig(r, **kw))
    got = read_netcdf(p, "tas")
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(nc, "_decode_packed_float32", lambda d, *a, **k: d)
        want = read_netcdf(p, "tas")
    assert got.dtype == want.dtype == (np.float32 if scale_type is np.float32 else np.float64)
    gv, wv = got.values, want.values
    assert np.array_equal(gv.view(np.int32 if gv.dtype == np.float32 else np.int64),
                          wv.view(np.int32 if wv.dtype == np.float32 else np.int64))
    assert got.encoding.get("scale_factor") == want.encoding.get("scale_factor")
    assert got.attrs == want.attrs
    assert bool(calls) == (scale_type is np.float32)


def _numpy_pack(block, *, to, scale, offset, fill, inplace):
    """xarray's own CF encoding of ``block`` (the reference of pack): a numpy block is
    encoded in place (``x -= offset``), a dask block by promoting operations."""
    import dask.array as dsa

    data = block if inplace else dsa.from_array(block, chunks=-1)
    enc = {"dtype": np.dtype(to), "_FillValue": fill}
    if scale is not None:
        enc["scale_factor"] = scale
    if offset is not None:
        enc["add_offset"] = offset
    var = xr.Variable(("t", "y", "x"), data, encoding=enc)
    return np.asarray(xr.conventions.encode_cf_variable(var).values)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("scale,offset", [
    (0.01, None), (np.float32(0.1), np.float32(2.0)), (np.float64(0.0001), np.float64(-2.5)),
    (0.25, 0.5), (np.float32(0.002), 0.3), (None, np.float32(1.5))])
@pytest.mark.parametrize("inplace", [True, False])
def test_compiled_pack_equals_the_numpy_chain(dtype, scale, offset, inplace):
    """The one-pass packing gives the bytes of xarray's CF encoding for every combination of
    block type, scalar types (Python, float32, float64) and in-place (numpy) or promoting
    (dask) arithmetic, including halves (round to even) and NaN; it is the path taken when
    every value fits the integers, and a block with one value that does not is packed by
    numpy."""
    import carbonsink.io._unpack as mod

    rng = np.random.default_rng(7)
    sc = 1.0 if scale is None else float(scale)
    off = 0.0 if offset is None else float(offset)
    v = (off + rng.normal(0, 2000 * sc, (5, 30, 40))).astype(dtype)
    v.flat[:6] = [off + sc * k for k in (0.5, 1.5, -0.5, -2.5, 3.5, 0.49999)]
    v[rng.random(v.shape) < 0.05] = np.nan
    kw = dict(to=np.int16, scale=scale, offset=offset, fill=-32767)
    want = _numpy_pack(v, inplace=inplace, **kw)
    out = np.empty(v.shape, np.int16)
    assert mod._pack_compiled(v, out, inplace=inplace, scale=scale, offset=offset,
                              fill=-32767), "the compiled path was not taken"
    np.testing.assert_array_equal(out, want)
    np.testing.assert_array_equal(mod.pack(v, inplace=inplace, **kw), want)
    big = v.copy()
    big[1, 2, 3] = off + sc * 40000.0  # beyond int16: numpy decides the whole block
    assert not mod._pack_compiled(big, np.empty(v.shape, np.int16), inplace=inplace, **{
        k: kw[k] for k in ("scale", "offset", "fill")})
    np.testing.assert_array_equal(mod.pack(big, inplace=inplace, **kw),
                                  _numpy_pack(big, inplace=inplace, **kw))
