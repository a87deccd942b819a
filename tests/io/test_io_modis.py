"""MODIS HDF4-EOS reader: decoding, georeferencing, mosaicking, laziness."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from _io_helpers import R, T, forbid_compute, modis_name, tile_corners, write_modis
from pyproj import CRS, Transformer

from carbonsink.errors import AlignmentError, InputError, UnknownNameError
from carbonsink.io import modis_grid, read_input, read_modis_hdf

N = 12  # pixels per tile side in the test files (real tiles: 2400 or 1200)


def _npp_raw(seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 20000, size=(N, N)).astype("int16")


def test_mod17a3hgf_npp_decoding(tmp_path):
    raw = _npp_raw()
    special = {(0, 0): -30000, (0, 1): 32700, (0, 2): 32701, (0, 3): 32761, (0, 4): 32767,
               (0, 5): -30001, (0, 6): 1234, (0, 7): -5}
    for (i, j), v in special.items():
        raw[i, j] = v
    p = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                    {"Npp_500m": raw, "Gpp_500m": raw.astype("uint16") + 1,
                     "Npp_QC_500m": np.zeros((N, N), "uint8")})
    da = read_modis_hdf(p, "Npp")
    assert da.dims == ("time", "y", "x") and da.shape == (1, N, N)
    assert da.attrs["units"] == "g C m-2 yr-1"
    assert da.attrs["modis_product"] == "MOD17A3HGF" and da.attrs["modis_sds"] == "Npp_500m"
    assert da.attrs["units_in_file"] == "kg C/m^2/year"
    assert da.dtype == np.float32
    v = da.values[0]
    assert v[0, 0] == pytest.approx(-3000.0)          # valid minimum
    assert v[0, 1] == pytest.approx(3270.0)           # valid maximum
    assert np.isnan(v[0, 2]) and np.isnan(v[0, 3]) and np.isnan(v[0, 4]) and np.isnan(v[0, 5])
    assert v[0, 6] == pytest.approx(123.4, abs=1e-4)  # 1234 x 0.0001 kg = 123.4 g
    assert v[0, 7] == pytest.approx(-0.5, abs=1e-6)   # negative NPP is valid
    expected = raw.astype("float64") * 0.1
    np.testing.assert_allclose(v[1:], expected[1:], rtol=1e-6)
    assert str(da.time.values[0])[:10] == "2019-01-01"
    assert da.time.dtype == np.dtype("datetime64[ns]")


def test_mod17a3hgf_gpp_uint16_range(tmp_path):
    gpp = np.full((N, N), 40000, dtype="uint16")  # > int16 range, valid for v061 Gpp
    gpp[0, 0] = 65500
    gpp[0, 1] = 65501
    gpp[0, 2] = 65535
    p = write_modis(tmp_path / modis_name("MOD17A3HGF", 2020, 1, 26, 4), "MOD17A3HGF",
                    {"Gpp_500m": gpp})
    da = read_modis_hdf(p, "Gpp", chunks=None)
    v = da.values[0]
    assert v[1, 1] == pytest.approx(4000.0)
    assert v[0, 0] == pytest.approx(6550.0)
    assert np.isnan(v[0, 1]) and np.isnan(v[0, 2])
    assert da.name == "Gpp"


def test_mod17a2h_gpp_8day(tmp_path):
    raw = np.full((N, N), 500, dtype="int16")
    raw[0, 0] = 32761   # non-vegetated code
    raw[0, 1] = 30001   # above the file's valid_range
    raw[0, 2] = -1      # negative GPP is invalid
    raw[0, 3] = 3000
    p = write_modis(tmp_path / modis_name("MOD17A2HGF", 2019, 9, 26, 4), "MOD17A2H",
                    {"Gpp_500m": raw, "PsnNet_500m": raw}, short="MOD17A2HGF",
                    begin="2019-01-09", end="2019-01-16")
    da = read_modis_hdf(p, "Gpp")
    assert da.attrs["units"] == "g C m-2"
    assert da.attrs["cell_methods"] == "time: sum"
    v = da.values[0]
    assert np.isnan(v[0, 0]) and np.isnan(v[0, 1]) and np.isnan(v[0, 2])
    assert v[0, 3] == pytest.approx(300.0)
    assert v[5, 5] == pytest.approx(50.0)
    assert str(da.time.values[0])[:10] == "2019-01-09"  # A2019009 = 9 January


def test_mod13a3_ndvi_divide_convention(tmp_path):
    raw = np.full((N, N), 5000, dtype="int16")
    raw[0, 0] = -3000   # fill
    raw[0, 1] = -2001   # below valid range
    raw[0, 2] = 10001   # above
    raw[0, 3] = -2000
    raw[0, 4] = 10000
    p = write_modis(tmp_path / modis_name("MOD13A3", 2019, 182, 26, 4), "MOD13A3",
                    {"1 km monthly NDVI": raw, "1 km monthly EVI": raw})
    da = read_modis_hdf(p, "NDVI")
    assert da.attrs["units"] == "1"
    assert da.attrs["modis_sds"] == "1 km monthly NDVI"
    v = da.values[0]
    assert np.isnan(v[0, :3]).all()
    assert v[0, 3] == pytest.approx(-0.2) and v[0, 4] == pytest.approx(1.0)
    assert v[3, 3] == pytest.approx(0.5)   # file says scale_factor=10000 -> divide
    assert str(da.time.values[0])[:10] == "2019-07-01"
    # the exact SDS name works as well as the alias
    same = read_modis_hdf(p, "1 km monthly NDVI")
    np.testing.assert_array_equal(same.values, da.values)


def test_sinusoidal_georeferencing_matches_modis_grid_formula(tmp_path):
    h, v = 26, 4
    p = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, h, v), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw()})
    da = read_modis_hdf(p, "Npp")
    crs = da.rio.crs
    assert CRS.from_user_input(crs).equals(CRS.from_proj4(
        "+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs"))
    # transform/bounds: the tile's corners
    ulx, uly, lrx, lry = tile_corners(h, v)
    left, bottom, right, top = da.rio.bounds()
    assert left == pytest.approx(ulx, abs=1e-3) and top == pytest.approx(uly, abs=1e-3)
    assert right == pytest.approx(lrx, abs=1e-3) and bottom == pytest.approx(lry, abs=1e-3)
    res = da.rio.resolution()
    assert res[0] == pytest.approx(T / N) and res[1] == pytest.approx(-T / N)
    # MODIS land grid formula for the centre of pixel (row i, col j) of tile (h, v)
    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    for i, j in [(0, 0), (5, 7), (N - 1, N - 1)]:
        x = (j + 0.5) * T / N + h * T - 18 * T
        y = 9 * T - v * T - (i + 0.5) * T / N
        lat = np.degrees(y / R)
        lon = np.degrees(x / (R * np.cos(np.radians(lat))))
        lon_p, lat_p = to_ll.transform(float(da.x[j]), float(da.y[i]))
        assert lat_p == pytest.approx(lat, abs=1e-9)
        assert lon_p == pytest.approx(lon, abs=1e-9)
    # h26v04 lies over northern China / Mongolia
    assert 40 < float(np.degrees(float(da.y.mean()) / R)) < 50


def test_mosaic_two_tiles_and_dates(tmp_path):
    a26, a27 = _npp_raw(1), _npp_raw(2)
    b26, b27 = _npp_raw(3), _npp_raw(4)
    files = []
    for year, (d26, d27) in [(2020, (b26, b27)), (2019, (a26, a27))]:
        files.append(write_modis(tmp_path / modis_name("MOD17A3HGF", year, 1, 27, 4),
                                 "MOD17A3HGF", {"Npp_500m": d27}, h=27, v=4))
        files.append(write_modis(tmp_path / modis_name("MOD17A3HGF", year, 1, 26, 4),
                                 "MOD17A3HGF", {"Npp_500m": d26}, h=26, v=4))
    da = read_modis_hdf(files, "Npp")
    assert da.shape == (2, N, 2 * N)
    assert [str(t)[:4] for t in da.time.values] == ["2019", "2020"]
    np.testing.assert_allclose(da.values[0, :, :N], a26 * 0.1, rtol=1e-6)
    np.testing.assert_allclose(da.values[0, :, N:], a27 * 0.1, rtol=1e-6)
    np.testing.assert_allclose(da.values[1, :, N:], b27 * 0.1, rtol=1e-6)
    # one regular grid across the seam
    dx = np.diff(da.x.values)
    np.testing.assert_allclose(dx, T / N, rtol=1e-9)
    left, bottom, right, top = da.rio.bounds()
    assert left == pytest.approx(tile_corners(26, 4)[0], abs=1e-3)
    assert right == pytest.approx(tile_corners(27, 4)[2], abs=1e-3)
    assert da.attrs["modis_tiles"] == "h26v04 h27v04"


def test_mosaic_diagonal_tiles_leaves_nan_gap(tmp_path):
    a, b = _npp_raw(5), _npp_raw(6)
    f1 = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                     {"Npp_500m": a}, h=26, v=4)
    f2 = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 27, 5), "MOD17A3HGF",
                     {"Npp_500m": b}, h=27, v=5)
    da = read_input(str(tmp_path / "*.hdf"), sds="Npp", variable="npp")
    assert da.name == "npp"
    assert da.shape == (1, 2 * N, 2 * N)
    v = da.values[0]
    np.testing.assert_allclose(v[:N, :N], a * 0.1, rtol=1e-6)
    np.testing.assert_allclose(v[N:, N:], b * 0.1, rtol=1e-6)
    assert np.isnan(v[:N, N:]).all() and np.isnan(v[N:, :N]).all()
    assert f1.exists() and f2.exists()


def test_missing_tile_for_one_date_is_nan(tmp_path):
    write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                {"Npp_500m": _npp_raw(1)}, h=26, v=4)
    write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 27, 4), "MOD17A3HGF",
                {"Npp_500m": _npp_raw(2)}, h=27, v=4)
    write_modis(tmp_path / modis_name("MOD17A3HGF", 2020, 1, 26, 4), "MOD17A3HGF",
                {"Npp_500m": _npp_raw(3)}, h=26, v=4)
    da = read_modis_hdf(sorted(tmp_path.glob("*.hdf")), "Npp")
    assert da.shape == (2, N, 2 * N)
    assert np.isnan(da.values[1, :, N:]).all()
    assert not np.isnan(da.values[1, :, :N]).any()


def test_reading_is_lazy_and_chunks_are_windows(tmp_path):
    for h in (26, 27):
        write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, h, 4), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw(h)}, h=h, v=4)
    with forbid_compute():
        da = read_modis_hdf(str(tmp_path / "*.hdf"), "Npp", chunks={"y": 4, "x": 6})
    assert da.chunks is not None
    assert da.chunks[0] == (1,) and set(da.chunks[1]) == {4} and set(da.chunks[2]) == {6}
    eager = read_modis_hdf(str(tmp_path / "*.hdf"), "Npp", chunks=None)
    assert eager.chunks is None
    np.testing.assert_array_equal(da.values, eager.values)
    # a window reads only its part
    np.testing.assert_array_equal(da.isel(y=slice(3, 9), x=slice(10, 15)).values,
                                  eager.values[:, 3:9, 10:15])


def test_date_from_core_metadata_when_name_has_none(tmp_path):
    p = write_modis(tmp_path / "npp_tile.hdf", "MOD17A3HGF", {"Npp_500m": _npp_raw()},
                    begin="2018-01-01", end="2018-12-31")
    da = read_modis_hdf(p, "Npp")
    assert str(da.time.values[0])[:10] == "2018-01-01"
    assert da.attrs["modis_product"] == "MOD17A3HGF"  # from CoreMetadata SHORTNAME


def test_missing_sds_lists_available(tmp_path):
    p = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw()})
    with pytest.raises(InputError, match=r"SDS 'Lai' not found.*Npp_500m"):
        read_modis_hdf(p, "Lai")


def test_scale_factor_that_contradicts_product_is_rejected(tmp_path):
    p = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw()},
                    attrs_override={"Npp_500m": {"scale": 0.001}})
    with pytest.raises(InputError, match="scale_factor=0.001"):
        read_modis_hdf(p, "Npp")


def test_duplicate_tile_and_mixed_products_are_errors(tmp_path):
    a = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw(), "Gpp_500m": _npp_raw().astype("uint16")})
    d = tmp_path / "copy"
    d.mkdir()
    b = write_modis(d / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw()})
    with pytest.raises(InputError, match="same tile and date"):
        read_modis_hdf([a, b], "Npp")
    c = write_modis(tmp_path / modis_name("MOD17A2H", 2019, 9, 27, 4), "MOD17A2H",
                    {"Gpp_500m": _npp_raw()}, h=27)
    with pytest.raises(InputError, match="one product"):
        read_modis_hdf([a, c], "Gpp_500m")


def test_not_hdf_and_missing_file(tmp_path):
    bad = tmp_path / "MOD17A3HGF.A2019001.h26v04.061.1.hdf"
    bad.write_bytes(b"this is not HDF4")
    with pytest.raises(InputError, match="HDF4"):
        read_modis_hdf(bad, "Npp")
    with pytest.raises(InputError, match="file not found"):
        read_modis_hdf(tmp_path / "nope.hdf", "Npp")
    with pytest.raises(UnknownNameError, match="unknown MODIS product 'MOD17A3X'.*MOD17A3HGF"):
        read_modis_hdf(bad, "Npp", product="MOD17A3X")


def test_unknown_product_decoded_from_attributes_with_warning(tmp_path):
    raw = np.full((N, N), 250, dtype="int16")
    raw[0, 0] = 32767
    p = write_modis(tmp_path / "MOD99X.A2019001.h26v04.061.1.hdf", "MOD17A2H",
                    {"Gpp_500m": raw}, short="MOD99X")
    with pytest.warns(UserWarning, match="no decoding table"):
        da = read_modis_hdf(p, "Gpp_500m")
    assert np.isnan(da.values[0, 0, 0])
    assert da.values[0, 1, 1] == pytest.approx(0.025)
    assert da.attrs["units"] == "kgC/m^2"  # the file's own units, unconverted


def test_modis_grid_parser_geo_projection():
    struct = """GROUP=GridStructure
\tGROUP=GRID_1
\t\tGridName="MOD12C1"
\t\tXDim=7200
\t\tYDim=3600
\t\tUpperLeftPointMtrs=(-180000000.000000,90000000.000000)
\t\tLowerRightMtrs=(180000000.000000,-90000000.000000)
\t\tProjection=GCTP_GEO
\t\tGROUP=DataField
\t\t\tOBJECT=DataField_1
\t\t\t\tDataFieldName="Majority_Land_Cover_Type_1"
\t\t\tEND_OBJECT=DataField_1
\t\tEND_GROUP=DataField
\tEND_GROUP=GRID_1
END_GROUP=GridStructure
END
"""
    g = modis_grid(struct, "Majority_Land_Cover_Type_1")
    assert g.bounds == (-180.0, -90.0, 180.0, 90.0)
    assert g.resolution == (0.05, 0.05)
    assert g.crs.to_epsg() == 4326
    y, x = g.coords()
    assert x[0] == pytest.approx(-179.975) and y[0] == pytest.approx(89.975)


def test_no_warnings_for_known_products(tmp_path):
    p = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw()})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_modis_hdf(p, "Npp").values


def test_modis_round_trips_through_writers(tmp_path):
    from carbonsink.io import read_geotiff, read_netcdf, write_cog, write_netcdf, write_zarr

    for h in (26, 27):
        write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, h, 4), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw(h)}, h=h, v=4)
    da = read_input(str(tmp_path / "*.hdf"), sds="Npp", variable="npp")
    sinu = CRS.from_proj4("+proj=sinu +lon_0=0 +x_0=0 +y_0=0 +R=6371007.181 +units=m +no_defs")
    nc = read_netcdf(write_netcdf(da, tmp_path / "out" / "npp.nc", attrs={"step": "io"}))
    zr = read_input(write_zarr(da, tmp_path / "out" / "npp.zarr"))
    cog = read_geotiff(write_cog(da.isel(time=0), tmp_path / "out" / "npp.tif"))
    for back in (nc, zr, cog):
        assert CRS.from_user_input(back.rio.crs).equals(sinu)
        assert back.attrs["units"] == "g C m-2 yr-1"
        assert back.rio.transform().almost_equals(da.rio.transform(), precision=1e-6)
        np.testing.assert_array_equal(np.squeeze(back.values), np.squeeze(da.values))
    assert nc.attrs["modis_product"] == "MOD17A3HGF"
    np.testing.assert_array_equal(nc.time.values, da.time.values)


def test_tiles_of_different_resolution_are_not_mosaicked(tmp_path):
    a = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 26, 4), "MOD17A3HGF",
                    {"Npp_500m": _npp_raw()}, h=26, v=4)
    fine = np.zeros((2 * N, 2 * N), "int16")
    b = write_modis(tmp_path / modis_name("MOD17A3HGF", 2019, 1, 27, 4), "MOD17A3HGF",
                    {"Npp_500m": fine}, h=27, v=4)
    with pytest.raises(AlignmentError, match="one product and resolution"):
        read_modis_hdf([a, b], "Npp")
