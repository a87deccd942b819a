import numpy as np
import pytest
import rasterio
import xarray as xr
from affine import Affine

from carbonsink.cube import GridSpec, as_grid
from carbonsink.errors import AlignmentError, InputError, InvalidArgumentError


def test_shape_transform_and_centres():
    g = GridSpec("EPSG:4326", 0.5, (100.0, 30.0, 102.0, 31.0))
    assert g.shape == (2, 4)
    assert g.transform == Affine(0.5, 0, 100.0, 0, -0.5, 31.0)
    np.testing.assert_allclose(g.x, [100.25, 100.75, 101.25, 101.75])
    np.testing.assert_allclose(g.y, [30.75, 30.25])
    assert g.is_geographic


def test_rectangular_resolution():
    g = GridSpec("EPSG:4326", (0.5, 0.25), (0, 0, 2, 1))
    assert g.shape == (4, 4)
    assert g.dx == 0.5 and g.dy == 0.25


def test_bounds_not_multiple_expand_outward_to_lattice():
    with pytest.warns(UserWarning, match="expanded outward"):
        g = GridSpec("EPSG:4326", 0.25, (73.1, 18.05, 134.9, 53.6))
    assert g.bounds == (73.0, 18.0, 135.0, 53.75)
    assert g.shape == (143, 248)


def test_exact_extent_with_off_lattice_origin_is_kept():
    # MODIS sinusoidal tile h25v05: origin not a multiple of the cell size
    size = 1111950.5197665 / 2400
    x0, y0 = -20015109.354 + 25 * 1111950.5197665, 10007554.677 - 5 * 1111950.5197665
    g = GridSpec("+proj=sinu +R=6371007.181 +units=m", size, (x0, y0 - 1111950.5197665,
                                                             x0 + 1111950.5197665, y0))
    assert g.shape == (2400, 2400)
    assert g.bounds[0] == x0


@pytest.mark.parametrize("kwargs, match", [
    (dict(crs="EPSG:999999", resolution=1, bounds=(0, 0, 1, 1)), "not a valid CRS"),
    (dict(crs="EPSG:4326", resolution=-1, bounds=(0, 0, 1, 1)), None),
    (dict(crs="EPSG:4326", resolution=0, bounds=(0, 0, 1, 1)), "positive"),
    (dict(crs="EPSG:4326", resolution=1, bounds=(2, 0, 1, 1)), "xmin < xmax"),
])
def test_invalid_specs(kwargs, match):
    if match is None:  # negative resolution is taken as its absolute value
        assert GridSpec(**kwargs).resolution == (1.0, 1.0)
        return
    with pytest.raises(InvalidArgumentError, match=match):
        GridSpec(**kwargs)


def test_template_carries_crs_and_transform():
    g = GridSpec("EPSG:4326", 0.1, (100, 30, 101, 31))
    t = g.template()
    assert t.dims == ("y", "x") and t.shape == (10, 10)
    assert t.rio.crs.to_epsg() == 4326
    assert t.rio.transform() == g.transform
    assert np.isnan(t.values).all()
    lazy = g.template(fill=0.0, chunks={"y": 5, "x": 5})
    assert lazy.chunks == ((5, 5), (5, 5))
    assert GridSpec.from_dataarray(t) == g


def _write_tif(path, crs, transform, shape=(4, 6)):
    with rasterio.open(path, "w", driver="GTiff", width=shape[1], height=shape[0], count=1,
                       dtype="float32", crs=crs, transform=transform) as dst:
        dst.write(np.ones((1,) + shape, dtype="float32"))


def test_from_raster(tmp_path):
    p = tmp_path / "t.tif"
    _write_tif(p, "EPSG:32650", Affine(1000, 0, 400000, 0, -1000, 4500000))
    g = GridSpec.from_raster(p)
    assert g.shape == (4, 6)
    assert g.bounds == (400000, 4496000, 406000, 4500000)
    assert g.crs.to_epsg() == 32650
    assert as_grid(p) == g


def test_from_raster_errors(tmp_path):
    p = tmp_path / "nocrs.tif"
    _write_tif(p, None, Affine(1, 0, 0, 0, -1, 4))
    with pytest.raises(AlignmentError, match="no CRS"):
        GridSpec.from_raster(p)
    with pytest.raises(InputError, match="does not exist"):
        GridSpec.from_raster(tmp_path / "missing.tif")


def test_from_dataarray_south_up_and_no_crs():
    g = GridSpec("EPSG:4326", 0.5, (10, 40, 12, 42))
    da = g.template(fill=1.0)
    flipped = da.isel(y=slice(None, None, -1))
    assert GridSpec.from_dataarray(flipped) == g
    assert g.matches(da) and not g.matches(flipped)
    bare = xr.DataArray(np.ones(g.shape), dims=("y", "x"), coords={"y": g.y, "x": g.x}, name="tas")
    with pytest.raises(AlignmentError, match=r"'tas' has no CRS.*crs:"):
        GridSpec.from_dataarray(bare)


def test_as_grid_variants():
    g = GridSpec("EPSG:4326", 1.0, (0, 0, 3, 2))
    assert as_grid({"crs": "EPSG:4326", "resolution": 1.0, "bounds": [0, 0, 3, 2]}) == g
    inputs = {"npp": g.template(fill=1.0)}
    assert as_grid("npp", inputs=inputs) == g
    with pytest.raises(InvalidArgumentError, match="neither an input name"):
        as_grid("tas", inputs=inputs)
    with pytest.raises(InvalidArgumentError, match="lacks"):
        as_grid({"crs": "EPSG:4326"})


def test_window_of_sub_grid():
    big = GridSpec("EPSG:4326", 0.05, (100, 30, 110, 40))
    sub = GridSpec("EPSG:4326", 0.05, (101, 31, 102, 32.5))
    rows, cols = big.window_of(sub)
    assert (rows.start, rows.stop, cols.start, cols.stop) == (150, 180, 20, 40)
    assert big.window_of(GridSpec("EPSG:4326", 0.1, (101, 31, 102, 32))) is None
    assert big.window_of(GridSpec("EPSG:4326", 0.05, (99, 31, 102, 32))) is None
