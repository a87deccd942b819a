import dask.array as dsa
import numpy as np
import pytest
import xarray as xr

from carbonsink.cube import GridSpec, align_all, pixel_area, regrid
from carbonsink.errors import AlignmentError, InvalidArgumentError

from cube_helpers import make_cube

FINE = GridSpec("EPSG:4326", 0.05, (100.0, 35.0, 105.0, 45.0))
ALBERS = "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +ellps=WGS84 +units=m +no_defs"


def _total(da):
    return (da * pixel_area(da)).sum(("y", "x")).values


@pytest.mark.parametrize("res", [0.1, 0.25])
def test_average_conserves_area_weighted_total_on_nested_grid(res):
    da = make_cube(FINE, nt=2, seed=1)
    # a NaN patch that exactly fills coarse cells (partial NaN cells are averaged over valid cells)
    da[0, :10, :10] = np.nan
    coarse = GridSpec("EPSG:4326", res, FINE.bounds)
    out = regrid(da, coarse)
    assert out.shape == (2,) + coarse.shape
    t_fine = np.nansum((da * pixel_area(da)).values, axis=(1, 2))
    t_coarse = np.nansum((out * pixel_area(out)).values, axis=(1, 2))
    np.testing.assert_allclose(t_coarse, t_fine, rtol=1e-6)
    # the same at the first time step, checked cell by cell by hand
    f = int(round(res / 0.05))
    a = pixel_area(FINE).values
    v = da.values[1]
    hand = (v * a)[:f, f:2 * f].sum() / a[:f, f:2 * f].sum()
    assert out.values[1, 0, 1] == pytest.approx(hand, rel=1e-9)
    assert np.isnan(out.values[0, 0, 0])


def test_area_weighting_differs_from_plain_mean_on_latlon():
    # north row 0, south row 1 of one 0.1 deg cell at 60N: weighted mean is below 0.5
    g = GridSpec("EPSG:4326", 0.05, (10.0, 60.0, 10.1, 60.1))
    da = g.template(fill=0.0)
    da[1, :] = 1.0
    da.attrs["units"] = "1"
    out = regrid(da.rename("ndvi"), GridSpec("EPSG:4326", 0.1, g.bounds))
    a = pixel_area(g).values[:, 0]
    assert out.values[0, 0] == pytest.approx(a[1] / a.sum(), rel=1e-9)
    assert out.values[0, 0] > 0.5  # the southern row is larger


def test_mode_for_categorical_keeps_dtype_and_nodata():
    g = GridSpec("EPSG:4326", 0.05, (100.0, 40.0, 100.5, 40.5))
    classes = np.full(g.shape, 10, dtype="uint8")
    classes[:5, :5] = 1       # block (0,0): all forest
    classes[5:, 5:8] = 12     # block (1,1): 15 cropland, 10 grassland
    classes[0, 9] = 255       # a nodata cell in block (0,1) is ignored
    lc = xr.DataArray(classes, dims=("y", "x"), coords=g.coords(), name="landcover",
                      attrs={"units": "1"}).rio.write_crs("EPSG:4326").rio.write_nodata(255)
    out = regrid(lc, GridSpec("EPSG:4326", 0.25, g.bounds))
    assert out.attrs["regrid_method"] == "mode"
    assert out.dtype == np.uint8
    np.testing.assert_array_equal(out.values, [[1, 10], [10, 12]])
    assert out.rio.nodata == 255
    with pytest.raises(InvalidArgumentError, match="categorical"):
        regrid(lc, GridSpec("EPSG:4326", 0.25, g.bounds), method="average")


def test_reproject_latlon_to_albers_and_sinusoidal():
    g = GridSpec("EPSG:4326", 0.05, (100.0, 35.0, 110.0, 45.0))
    lat = xr.DataArray(g.y, dims="y")
    field = (lat + 0.0 * xr.DataArray(g.x, dims="x")).transpose("y", "x")
    da = xr.DataArray(field.values, dims=("y", "x"), coords=g.coords(), name="tas",
                      attrs={"units": "degC"}).rio.write_crs("EPSG:4326")
    import pyproj

    for crs, bounds in [(ALBERS, (-300e3, 4.1e6, 300e3, 4.6e6)),
                        ("+proj=sinu +R=6371007.181 +units=m +no_defs",
                         (8.8e6, 4.2e6, 9.0e6, 4.7e6))]:
        tgt = GridSpec(crs, 25000.0, bounds)
        out = regrid(da, tgt)
        assert out.rio.crs is not None and pyproj.CRS(out.rio.crs) == pyproj.CRS(crs)
        assert out.attrs["units"] == "degC"
        xx, yy = np.meshgrid(tgt.x, tgt.y)
        _, lat_c = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform(xx, yy)
        inside = np.isfinite(out.values)
        assert inside.mean() > 0.9
        # the average of a field linear in latitude is the latitude of the cell centre
        np.testing.assert_allclose(out.values[inside], lat_c[inside], atol=0.02)


def test_reproject_roughly_conserves_total_into_albers():
    g = GridSpec("EPSG:4326", 0.05, (100.0, 35.0, 110.0, 45.0))
    da = make_cube(g, nt=1, seed=3).isel(time=0)
    tgt = GridSpec(ALBERS, 10000.0, (-200e3, 4.2e6, 200e3, 4.6e6))
    out = regrid(da, tgt)
    assert np.isfinite(out.values).all()
    # regional means over the target area agree (the source field is random, sub-cell noise)
    a = pixel_area(out)
    m_tgt = float((out * a).sum() / a.sum())
    back = regrid(out, g)
    w = pixel_area(g).where(back.notnull())
    m_src = float((da * w).sum() / w.sum())
    assert m_tgt == pytest.approx(m_src, rel=2e-3)


def test_regrid_is_lazy_and_matches_numpy(no_compute):
    da = make_cube(FINE, nt=4, seed=5)
    coarse = GridSpec("EPSG:4326", 0.25, (101.0, 36.0, 104.0, 44.0))
    ref = regrid(da, coarse)
    lazy_in = da.chunk({"time": 1, "y": 50, "x": 50})
    with no_compute():
        out = regrid(lazy_in, coarse)
        assert isinstance(out.data, dsa.Array)
        # time whole, space chunked
        assert out.chunks[0] == (4,)
    np.testing.assert_array_equal(out.values, ref.values)
    assert out.attrs == ref.attrs
    np.testing.assert_array_equal(out["time"].values, da["time"].values)


def test_output_coords_crs_attrs_and_orientation():
    da = make_cube(FINE, nt=2)
    tgt = GridSpec("EPSG:4326", 0.5, (101.0, 36.0, 104.0, 44.0))
    out = regrid(da, tgt)
    np.testing.assert_array_equal(out["x"].values, tgt.x)
    np.testing.assert_array_equal(out["y"].values, tgt.y)
    assert out.rio.crs.to_epsg() == 4326
    assert out.rio.transform() == tgt.transform
    assert out.attrs["units"] == "g C m-2 month-1" and out.attrs["long_name"] == "test field"
    assert out.name == "npp"
    south_up = da.isel(y=slice(None, None, -1))
    np.testing.assert_allclose(regrid(south_up, tgt).values, out.values, rtol=1e-12)


def test_sub_window_of_same_lattice_is_exact_slice():
    da = make_cube(FINE, nt=2)
    sub = GridSpec("EPSG:4326", 0.05, (101.0, 36.0, 102.0, 37.5))
    out = regrid(da, sub)
    ref = da.sel(x=slice(101.0, 102.0), y=slice(37.5, 36.0))
    np.testing.assert_array_equal(out.values, ref.values)


def test_integer_continuous_input_becomes_float_with_nan_nodata():
    g = GridSpec("EPSG:4326", 0.05, (0.0, 0.0, 0.1, 0.1))
    v = np.array([[10, 20], [30, -9999]], dtype="int16")
    da = xr.DataArray(v, dims=("y", "x"), coords=g.coords(), name="npp",
                      attrs={"units": "g C m-2 yr-1"}).rio.write_crs(4326).rio.write_nodata(-9999)
    out = regrid(da, GridSpec("EPSG:4326", 0.1, g.bounds))
    assert out.dtype == np.float64
    a = pixel_area(g).values
    hand = (10 * a[0, 0] + 20 * a[0, 1] + 30 * a[1, 0]) / (a[0, 0] + a[0, 1] + a[1, 0])
    assert out.values[0, 0] == pytest.approx(hand, rel=1e-12)


def test_errors_no_crs_no_overlap_bad_method():
    da = make_cube(FINE, nt=1)
    bare = da.drop_vars("spatial_ref")
    bare.attrs.pop("grid_mapping", None)
    with pytest.raises(AlignmentError, match=r"'npp' has no CRS.*crs:"):
        regrid(bare, GridSpec("EPSG:4326", 0.1, (100, 35, 101, 36)))
    with pytest.raises(AlignmentError, match="does not overlap"):
        regrid(da, GridSpec("EPSG:4326", 0.1, (-60, -30, -50, -20)))
    with pytest.raises(InvalidArgumentError, match="unknown resampling method"):
        regrid(da, GridSpec("EPSG:4326", 0.1, (100, 35, 101, 36)), method="spline-ish")


def test_align_all_uses_per_variable_methods_and_input_grid():
    coarse = GridSpec("EPSG:4326", 0.25, FINE.bounds)
    npp = make_cube(FINE, nt=2)
    lc = xr.DataArray(np.tile(np.array([1, 10], dtype="uint8"), (coarse.shape[0], coarse.shape[1] // 2)),
                      dims=("y", "x"), coords=coarse.coords(), name="landcover",
                      attrs={"units": "1"}).rio.write_crs(4326)
    tas = make_cube(FINE, nt=2, name="tas", units="degC")
    out = align_all({"npp": npp, "landcover": lc, "tas": tas}, "landcover",
                    methods={"tas": "bilinear"})
    assert set(out) == {"npp", "landcover", "tas"}
    assert out["npp"].attrs["regrid_method"] == "average"
    assert out["tas"].attrs["regrid_method"] == "bilinear"
    np.testing.assert_array_equal(out["landcover"].values, lc.values)
    assert all(GridSpec.from_dataarray(v) == coarse for v in out.values())
    with pytest.raises(InvalidArgumentError, match="unknown inputs"):
        align_all({"npp": npp}, coarse, methods={"gpp": "average"})


def test_boolean_mask_regrids_to_mask_or_fraction():
    g = GridSpec("EPSG:4326", 0.05, (0.0, 0.0, 0.2, 0.1))
    m = xr.DataArray(np.array([[1, 1, 1, 0], [1, 1, 0, 0]], dtype=bool), dims=("y", "x"),
                     coords=g.coords(), name="land").rio.write_crs(4326)
    coarse = GridSpec("EPSG:4326", 0.1, g.bounds)
    out = regrid(m, coarse, method="nearest")
    assert out.dtype == bool and out.shape == (1, 2)
    frac = regrid(m, coarse, method="average")
    a = pixel_area(g).values
    assert frac.values[0, 0] == pytest.approx(1.0)
    # fine cells of the second coarse cell: [[1, 0], [0, 0]] -> area share of the one True cell
    assert frac.values[0, 1] == pytest.approx(a[0, 2] / (a[0, 2] + a[0, 3] + a[1, 2] + a[1, 3]),
                                              rel=1e-9)


def test_single_column_grid_uses_stored_transform():
    g = GridSpec("EPSG:4326", 10.0, (0.0, 0.0, 10.0, 70.0))
    da = g.template(fill=1.0)
    assert GridSpec.from_dataarray(da) == g
    bare = da.drop_vars("spatial_ref").rio.write_crs(4326)
    with pytest.raises(AlignmentError, match="single row or column"):
        GridSpec.from_dataarray(bare)
