import geopandas as gpd
import numpy as np
import pyproj
import pytest
import xarray as xr
from shapely.geometry import Polygon, box

from carbonsink.cube import GridSpec, clip, pixel_area, region_mask
from carbonsink.errors import AlignmentError, InputError, UnknownNameError

from cube_helpers import make_cube

G = GridSpec("EPSG:4326", 0.1, (100.0, 30.0, 101.0, 31.0))


def _regions(tmp_path, suffix, crs="EPSG:4326"):
    gdf = gpd.GeoDataFrame(
        {"name": ["A", "B"], "code": [1, 2]},
        geometry=[box(100.2, 30.2, 100.6, 30.5), box(100.62, 30.62, 100.78, 30.92)], crs=crs)
    p = tmp_path / f"regions{suffix}"
    gdf.to_file(p)
    return p


@pytest.mark.parametrize("suffix", [".geojson", ".gpkg", ".shp"])
def test_region_mask_from_files(tmp_path, suffix):
    p = _regions(tmp_path, suffix)
    m = region_mask(G, p, attribute="name", values="A")
    assert m.dtype == bool and m.dims == ("y", "x")
    # centres inside [100.2, 100.6] x [30.2, 30.5]: 4 columns x 3 rows
    assert int(m.sum()) == 12
    assert bool(m.sel(x=100.25, y=30.25, method="nearest"))
    assert not bool(m.sel(x=100.15, y=30.25, method="nearest"))
    assert m.attrs["region"] == "A" and m.rio.crs.to_epsg() == 4326
    both = region_mask(G, p, attribute="code", values=[1, 2])
    assert int(both.sum()) == 12 + 2 * 3
    assert int(region_mask(G, p).sum()) == int(both.sum())  # no selection: all features


def test_all_touched_grows_the_mask(tmp_path):
    p = _regions(tmp_path, ".geojson")
    m = region_mask(G, p, "name", "B")
    touched = region_mask(G, p, "name", "B", all_touched=True)
    assert int(touched.sum()) > int(m.sum())
    assert bool((touched | m).equals(touched))


def test_unknown_attribute_and_value(tmp_path):
    p = _regions(tmp_path, ".gpkg")
    with pytest.raises(UnknownNameError, match=r"no attribute 'province'.*name, code"):
        region_mask(G, p, attribute="province", values="A")
    with pytest.raises(UnknownNameError, match=r"no feature with name = 'C'.*A, B"):
        region_mask(G, p, attribute="name", values=["A", "C"])
    # case-insensitive fallback
    assert int(region_mask(G, p, "name", "a").sum()) == 12
    with pytest.raises(InputError, match="does not exist"):
        region_mask(G, tmp_path / "nope.geojson")


@pytest.mark.filterwarnings("ignore:.crs. was not provided")
def test_vector_without_crs(tmp_path):
    gdf = gpd.GeoDataFrame({"name": ["A"]}, geometry=[box(100.2, 30.2, 100.6, 30.5)])
    p = tmp_path / "nocrs.shp"
    gdf.to_file(p)
    with pytest.raises(AlignmentError, match="no CRS"):
        region_mask(G, p)


def test_polygons_are_reprojected_to_grid_crs():
    albers = "+proj=aea +lat_1=25 +lat_2=47 +lat_0=0 +lon_0=105 +ellps=WGS84 +units=m +no_defs"
    poly = Polygon([(103, 38), (107, 38), (107, 41), (103, 41)])
    gdf = gpd.GeoDataFrame({"name": ["sq"]}, geometry=[poly.segmentize(0.05)], crs="EPSG:4326")
    tgt = GridSpec(albers, 5000.0, (-300e3, 4.0e6, 300e3, 4.5e6))
    m = region_mask(tgt, gdf)
    area = float(pixel_area(tgt).where(m).sum())
    geod = pyproj.Geod(ellps="WGS84")
    ref = abs(geod.geometry_area_perimeter(poly.segmentize(0.01))[0])
    assert area == pytest.approx(ref, rel=0.01)


def test_region_mask_on_dataarray_follows_its_orientation(tmp_path):
    p = _regions(tmp_path, ".geojson")
    da = make_cube(G, nt=1).isel(y=slice(None, None, -1))
    m = region_mask(da, p, "name", "A")
    np.testing.assert_array_equal(m["y"].values, da["y"].values)
    ref = region_mask(G, p, "name", "A")
    np.testing.assert_array_equal(m.values, ref.values[::-1])


def test_clip_keeps_attrs_crs_and_can_drop(tmp_path, no_compute):
    p = _regions(tmp_path, ".geojson")
    da = make_cube(G, nt=2).chunk({"time": -1, "y": 5, "x": 5})
    m = region_mask(G, p, "name", "A")
    with no_compute():
        out = clip(da, m)
    assert out.attrs == da.attrs and out.rio.crs == da.rio.crs
    assert int(out.isel(time=0).notnull().sum()) == 12
    np.testing.assert_array_equal(out.values[:, m.values], da.values[:, m.values])
    small = clip(da, m, drop=True)
    assert small.shape == (2, 3, 4)
    assert small.rio.transform().c == pytest.approx(100.2)
    assert np.isfinite(small.values).all()


def test_clip_rejects_mask_on_another_grid(tmp_path):
    p = _regions(tmp_path, ".geojson")
    da = make_cube(G, nt=1)
    other = region_mask(GridSpec("EPSG:4326", 0.05, G.bounds), p)
    with pytest.raises(AlignmentError, match="not on the grid"):
        clip(da, other)


def test_clip_integer_categories_use_nodata():
    lc = xr.DataArray(np.full(G.shape, 7, dtype="uint8"), dims=("y", "x"), coords=G.coords(),
                      name="landcover").rio.write_crs(4326).rio.write_nodata(255)
    m = G.template(fill=0.0).astype(bool)
    m[:2] = True
    out = clip(lc, m)
    assert out.dtype == np.uint8
    assert (out.values[2:] == 255).all() and (out.values[:2] == 7).all()


# --------------------------------------------------------------------- real boundaries


def test_nei_mongol_area_from_pixel_areas(provinces):
    g = GridSpec("EPSG:4326", 0.05, (97.0, 37.0, 127.0, 54.0))
    m = region_mask(g, provinces, attribute="name", values="Nei Mongol")
    area_km2 = float(pixel_area(g).where(m).sum()) / 1e6
    ref = float(gpd.read_file(provinces).set_index("name").loc["Nei Mongol", "area_km2_geodesic"])
    assert 1.1e6 < area_km2 < 1.2e6
    assert area_km2 == pytest.approx(ref, rel=0.005)


def test_unknown_province_lists_names(provinces):
    g = GridSpec("EPSG:4326", 0.5, (73.0, 18.0, 135.0, 54.0))
    with pytest.raises(UnknownNameError) as err:
        region_mask(g, provinces, attribute="name", values="Inner Mongolia")
    msg = str(err.value)
    assert "Inner Mongolia" in msg and "Nei Mongol" in msg and "Xizang" in msg


def test_several_provinces(provinces):
    g = GridSpec("EPSG:4326", 0.1, (73.0, 25.0, 105.0, 50.0))
    a = pixel_area(g)
    m1 = region_mask(g, provinces, "name", "Qinghai")
    m2 = region_mask(g, provinces, "name", "Gansu")
    m12 = region_mask(g, provinces, "name", ["Qinghai", "Gansu"])
    assert not bool((m1 & m2).any())
    assert float(a.where(m12).sum()) == pytest.approx(float(a.where(m1).sum() + a.where(m2).sum()))
