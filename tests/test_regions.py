import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.cube import GridSpec, pixel_area, reclassify
from carbonsink.errors import AlignmentError, UnitError
from carbonsink.regions import per_class_summary, regional_mean, regional_total

# two rows of one column: a cell at 0-10N and one at 60-70N (very different areas)
G = GridSpec("EPSG:4326", 10.0, (0.0, 0.0, 10.0, 70.0))


def _fail(dsk, keys, **kwargs):
    raise AssertionError("computed although it should stay lazy")


def _field(values, units="g C m-2 yr-1", name="npp", grid=G, years=None):
    values = np.asarray(values, dtype="float64")
    if years is None:
        da = xr.DataArray(values, dims=("y", "x"), coords=grid.coords(), name=name,
                          attrs={"units": units})
    else:
        t = pd.date_range(f"{years[0]}-01-01", periods=len(years), freq="YS")
        da = xr.DataArray(values, dims=("time", "y", "x"), coords={"time": t, **grid.coords()},
                          name=name, attrs={"units": units})
    return da.rio.write_crs(4326).rio.write_transform(grid.transform)


def _areas():
    a = pixel_area(G).values[:, 0]
    return a[0], a[-1]  # northmost (60-70N), southmost (0-10N)


def test_regional_mean_is_area_weighted():
    v = np.zeros(G.shape)
    v[0, 0], v[-1, 0] = 100.0, 200.0  # 60-70N and 0-10N
    v[1:-1, 0] = np.nan
    da = _field(v)
    a_n, a_s = _areas()
    m = regional_mean(da, pixel_area(da))
    assert float(m) == pytest.approx((100 * a_n + 200 * a_s) / (a_n + a_s), rel=1e-12)
    assert float(m) > 150.0  # the southern cell is larger
    assert m.attrs["units"] == "g C m-2 yr-1"
    # area defaults to pixel_area(da)
    assert float(regional_mean(da)) == pytest.approx(float(m))


def test_regional_total_units_and_hand_value():
    v = np.full(G.shape, np.nan)
    v[-1, 0] = 500.0
    da = _field(v)
    a_s = _areas()[1]
    tot = regional_total(da, pixel_area(da))
    assert float(tot) == pytest.approx(500.0 * a_s / 1e12, rel=1e-12)
    assert tot.attrs["units"] == "Tg C yr-1"
    pg = regional_total(da, pixel_area(da), units="Pg C")
    assert float(pg) == pytest.approx(float(tot) / 1e3) and pg.attrs["units"] == "Pg C yr-1"
    month = regional_total(_field(v, units="g C m-2 month-1"), units="Tg C")
    assert month.attrs["units"] == "Tg C month-1"
    km2 = pixel_area(da) / 1e6
    km2.attrs["units"] = "km2"
    assert float(regional_total(da, km2)) == pytest.approx(float(tot), rel=1e-12)
    water = regional_total(_field(v, units="mm month-1", name="pr"), units="km3")
    assert float(water) == pytest.approx(500e-3 * a_s / 1e9) and water.attrs["units"] == "km3 month-1"


def test_regional_total_unit_errors():
    da = _field(np.ones(G.shape), units="degC", name="tas")
    with pytest.raises(UnitError, match="'tas'"):
        regional_total(da)
    nounits = _field(np.ones(G.shape))
    del nounits.attrs["units"]
    with pytest.raises(UnitError, match="no 'units'"):
        regional_total(nounits)
    with pytest.raises(UnitError, match="per month"):
        regional_total(_field(np.ones(G.shape)), units="Tg C month-1")
    area = pixel_area(G)
    del area.attrs["units"]
    with pytest.raises(UnitError, match="'area'"):
        regional_mean(_field(np.ones(G.shape)), area)


def test_mask_and_grid_mismatch():
    da = _field(np.arange(7.0).reshape(G.shape))
    mask = xr.zeros_like(da, dtype=bool)
    mask[-1, 0] = True
    assert float(regional_mean(da, mask=mask)) == 6.0
    other = pixel_area(GridSpec("EPSG:4326", 5.0, G.bounds))
    with pytest.raises(AlignmentError, match="not on the grid"):
        regional_mean(da, other)


def test_time_resolved_lazy_and_same_as_numpy():
    rng = np.random.default_rng(0)
    da = _field(rng.random((4,) + G.shape) * 100, years=[2001, 2002, 2003, 2004])
    da[1, 2, 0] = np.nan
    ref_m, ref_t = regional_mean(da), regional_total(da)
    lazy = da.chunk({"time": -1, "y": 3})
    with dask.config.set(scheduler=_fail):
        m, t = regional_mean(lazy, pixel_area(lazy)), regional_total(lazy, pixel_area(lazy))
        assert isinstance(m.data, dsa.Array) and isinstance(t.data, dsa.Array)
    assert m.dims == ("time",) and "spatial_ref" not in m.coords
    np.testing.assert_allclose(m.values, ref_m.values, rtol=1e-12)
    np.testing.assert_allclose(t.values, ref_t.values, rtol=1e-12)
    a = pixel_area(da).values
    hand = np.nansum(da.values[1] * a) / a[np.isfinite(da.values[1])].sum()
    assert m.values[1] == pytest.approx(hand, rel=1e-12)


def test_summarise_many_lazy_is_computed_with_other_work():
    """``compute=False`` builds the same tables without computing anything, and they come out
    of one ``dask.compute`` beside other lazy work."""
    from carbonsink.regions import summarise, summarise_many

    rng = np.random.default_rng(2)
    da = _field(rng.random((3,) + G.shape) * 50, years=[2001, 2002, 2003]).chunk({"y": 3})
    da2 = (da * 2).assign_attrs(units="g C m-2 yr-1")
    reqs = [dict(da=da, area=pixel_area(da), how=("mean", "total")),
            dict(da=da2, area=pixel_area(da2), how=("mean",))]
    with dask.config.set(scheduler=_fail):
        lazy = summarise_many(reqs, compute=False)
    tables, other = dask.compute(lazy, da.sum())
    for got, r in zip(tables, reqs):
        pd.testing.assert_frame_equal(got, summarise(**r))
    assert float(other) == pytest.approx(float(np.nansum(da.values)))


def test_per_class_summary_tidy_and_hand_values():
    g = GridSpec("EPSG:4326", 1.0, (100.0, 40.0, 103.0, 42.0))
    a = pixel_area(g).values
    igbp = xr.DataArray(np.array([[1, 1, 10], [10, 17, 10]], dtype="uint8"), dims=("y", "x"),
                        coords=g.coords(), name="landcover").rio.write_crs(4326)
    classes = reclassify(igbp, scheme="igbp", to="7class")
    npp = _field(np.array([[[100, 200, 50], [70, np.nan, 30]],
                           [[110, 210, 60], [80, np.nan, 40]]]), grid=g, years=[2001, 2002])
    df = per_class_summary(npp.chunk({"y": 1}), classes, pixel_area(g))
    assert list(df.columns[:6]) == ["class", "label", "time", "area_km2", "mean", "total"]
    forest = df[(df.label == "forest") & (df.time == pd.Timestamp("2001-01-01"))].iloc[0]
    assert forest.area_km2 == pytest.approx((a[0, 0] + a[0, 1]) / 1e6)
    assert forest["mean"] == pytest.approx((100 * a[0, 0] + 200 * a[0, 1]) / (a[0, 0] + a[0, 1]))
    assert forest.total == pytest.approx((100 * a[0, 0] + 200 * a[0, 1]) / 1e12)
    assert forest.total_units == "Tg C yr-1" and forest.mean_units == "g C m-2 yr-1"
    grass = df[(df.label == "grassland") & (df.time == pd.Timestamp("2002-01-01"))].iloc[0]
    assert grass["mean"] == pytest.approx((60 * a[0, 2] + 80 * a[1, 0] + 40 * a[1, 2]) /
                                          (a[0, 2] + a[1, 0] + a[1, 2]))
    water = df[df.label == "water"].iloc[0]
    assert water.area_km2 == 0.0 and np.isnan(water["mean"])  # its only cell is NaN
    assert set(df.label) == {"forest", "grassland", "cropland", "wetland", "urban", "water",
                             "barren"}
    # totals over classes = regional total
    tot = df.groupby("time").total.sum().values
    np.testing.assert_allclose(tot, regional_total(npp, pixel_area(g)).values, rtol=1e-12)
    # explicit labels restrict and name the classes
    raw = per_class_summary(npp, igbp, labels={1: "ENF", 10: "GRA"})
    assert set(raw.label) == {"ENF", "GRA"} and len(raw) == 4


def test_summarise_many_graph_holds_each_weight_map_once():
    """The graph of many summaries over in-memory weights and a mask (the pixel set of the
    regional summary) carries those maps once, not once per summary: a dask cluster is sent
    the pickled graph (it was 99 MiB, 36 copies of a label map, for six combinations at
    600 x 600)."""
    import cloudpickle

    from carbonsink.regions import summarise, summarise_many

    g = GridSpec("EPSG:4326", 0.05, (100.0, 30.0, 110.0, 40.0))  # 200 x 200 cells
    rng = np.random.default_rng(5)
    base = _field(np.zeros((4,) + g.shape), grid=g, years=[2001, 2002, 2003, 2004])
    area = pixel_area(g).load()  # in memory, as the analyses' weights are
    mask = xr.DataArray(rng.random(g.shape) > 0.1, dims=("y", "x"), coords=g.coords())
    # lazy data that, like the cubes read from Zarr, holds no array in the graph
    reqs = [dict(da=base.copy(data=dsa.random.default_rng(i).random(
                base.shape, chunks=(4, 50, 100)) * 100), area=area, mask=mask)
            for i in range(8)]
    lazy = summarise_many(reqs, compute=False)
    graph = dict(lazy.__dask_graph__())
    sent = sum(len(cloudpickle.dumps(task)) for task in graph.values())
    one_map = g.shape[0] * g.shape[1] * 8  # a float64 (or int64) map of the grid
    assert sent < 4 * one_map, f"{sent / one_map:.1f} grid maps in the graph"
    tables = lazy.compute()
    for got, r in zip(tables, reqs):  # the same tables as one summary at a time
        pd.testing.assert_frame_equal(got, summarise(**r))
