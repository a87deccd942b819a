import numpy as np
import pyproj
import pytest

from carbonsink.cube import R_AUTHALIC, GridSpec, is_equal_area, pixel_area


def test_01deg_cell_at_35N_is_101_28_km2():
    g = GridSpec("EPSG:4326", 0.1, (110.0, 34.95, 110.1, 35.05))
    a = pixel_area(g)
    assert a.attrs["units"] == "m2"
    assert a.values[0, 0] / 1e6 == pytest.approx(101.28, abs=0.01)
    # the formula by hand
    phi_n, phi_s = np.radians(35.05), np.radians(34.95)
    hand = R_AUTHALIC ** 2 * np.radians(0.1) * (np.sin(phi_n) - np.sin(phi_s))
    assert a.values[0, 0] == pytest.approx(hand, rel=1e-12)


def test_global_1deg_grid_sums_to_sphere():
    a = pixel_area(GridSpec("EPSG:4326", 1.0, (-180, -90, 180, 90)))
    assert a.shape == (180, 360)
    assert float(a.sum()) == pytest.approx(4 * np.pi * R_AUTHALIC ** 2, rel=1e-12)
    # symmetric about the equator, largest at the equator
    np.testing.assert_allclose(a.values[:90], a.values[::-1][:90], rtol=1e-12)
    assert a.values[89, 0] > a.values[0, 0] * 50


@pytest.mark.parametrize("ncells, km2", [(2400, 0.214659), (1200, 0.858635)])
def test_modis_sinusoidal_cells(ncells, km2):
    size = 1111950.5197665 / ncells
    g = GridSpec("+proj=sinu +R=6371007.181 +units=m +no_defs", size, (0, 0, size * 10, size * 10))
    a = pixel_area(g).values
    assert np.all(a == a[0, 0])
    assert a[0, 0] / 1e6 == pytest.approx(km2, abs=5e-7)


def test_albers_constant_area():
    crs = "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +ellps=WGS84 +units=m"
    assert is_equal_area(crs)
    a = pixel_area(GridSpec(crs, 1000.0, (0, 3e6, 5000, 3.004e6)))
    assert np.all(a.values == 1e6)


@pytest.mark.parametrize("crs, bounds, res", [
    ("EPSG:32650", (400000, 4400000, 405000, 4404000), 1000.0),
    ("EPSG:3857", (12e6, 5e6, 12.004e6, 5.003e6), 1000.0),
])
def test_non_equal_area_projection_matches_geodesic_polygons(crs, bounds, res):
    assert not is_equal_area(crs)
    g = GridSpec(crs, res, bounds)
    a = pixel_area(g).values
    tr = pyproj.Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    geod = pyproj.Geod(ellps="WGS84")
    for i, j in [(0, 0), (1, 3), (g.shape[0] - 1, g.shape[1] - 1)]:
        x0 = bounds[0] + j * res
        y1 = bounds[3] - i * res
        xs = [x0, x0 + res, x0 + res, x0]
        ys = [y1, y1, y1 - res, y1 - res]
        lon, lat = tr.transform(xs, ys)
        oracle = abs(geod.polygon_area_perimeter(lon, lat)[0])
        assert a[i, j] == pytest.approx(oracle, rel=1e-6)
    # Web Mercator cells are much smaller than their projected size at ~40N
    if crs == "EPSG:3857":
        assert a.max() < 0.7 * res * res


def test_is_equal_area_names():
    for crs in ["ESRI:102025", "EPSG:3035", "ESRI:54009", "EPSG:8857", "EPSG:6933"]:
        assert is_equal_area(crs), crs
    for crs in ["EPSG:4326", "EPSG:32650", "EPSG:3857"]:
        assert not is_equal_area(crs), crs


def test_pixel_area_of_dataarray_keeps_dims_and_chunks():
    g = GridSpec("EPSG:4326", 0.5, (100, 30, 104, 34))
    da = g.template(fill=1.0).rename({"y": "lat", "x": "lon"})
    da = da.rio.set_spatial_dims(x_dim="lon", y_dim="lat").isel(lat=slice(None, None, -1))
    da = da.chunk({"lat": 4, "lon": 4})
    a = pixel_area(da)
    assert a.dims == ("lat", "lon")
    assert a.chunks == ((4, 4), (4, 4))
    np.testing.assert_array_equal(a["lat"].values, da["lat"].values)
    ref = pixel_area(g).values[::-1]
    np.testing.assert_allclose(a.values, ref, rtol=1e-14)
    assert a.rio.crs.to_epsg() == 4326
