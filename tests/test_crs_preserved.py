"""CRS is never silently lost: every model and statistic keeps the inputs' ``spatial_ref``."""

import pytest

from carbonsink import cube, demo, flux, stats


@pytest.fixture(scope="module")
def data():
    d = demo.generate(ny=12, nx=10, start=2001, end=2012)
    assert d["tas"].rio.crs.to_epsg() == 4326
    return d


def _epsg(obj):
    return obj.rio.crs.to_epsg() if obj.rio.crs is not None else None


def test_flux_models_keep_crs(data):
    d = data
    rs = flux.rh.gsmsr(d["tas"], d["pr"], d["soc"])
    outputs = {
        "pei2009": flux.rh.pei2009(d["tas"], d["pr"]),
        "gsmsr": rs,
        "bond_lamberty2004": flux.rh.bond_lamberty2004(rs),
        "shi2015": flux.rh.shi2015(rs),
        "modis_monthly": flux.npp.modis_monthly(d["npp_annual"], d["gpp_8day"]),
        "casa": flux.npp.casa(d["ndvi"], d["tas"], d["sol"], d["landcover"], pr=d["pr"]),
        "thornthwaite_pet": flux.water.thornthwaite_pet(d["tas"]),
    }
    outputs["nep"] = flux.nep.nep(outputs["modis_monthly"], outputs["pei2009"])
    outputs["annual"] = cube.temporal.to_annual(outputs["nep"])
    lost = [k for k, v in outputs.items() if _epsg(v) != 4326]
    assert lost == []


@pytest.mark.parametrize("lazy", [False, True])
def test_statistics_keep_crs(data, lazy):
    y = cube.temporal.to_annual(data["pr"])
    t = cube.temporal.to_annual(data["tas"])
    s = cube.temporal.to_annual(data["sol"])
    if lazy:
        y, t, s = (a.chunk({"y": 5}) for a in (y, t, s))
    mk = stats.mann_kendall(y, "time")
    h = stats.hurst_rs(y, "time")
    pc = stats.partial_correlation(y, {"tas": t, "sol": s}, dim="time")
    outputs = {
        "mann_kendall": mk,
        "ols_trend": stats.ols_trend(y, "time"),
        "sen_mk_classes": stats.sen_mk_classes(mk),
        "cv": stats.coefficient_of_variation(y, "time"),
        "hurst_rs": h,
        "persistence_classes": stats.persistence_classes(mk, h),
        "pearson": stats.pearson(y, t, "time"),
        "spearman": stats.spearman(y, t, "time"),
        "partial_correlation": pc,
        "dominant_driver": stats.dominant_driver(pc),
    }
    lost = [k for k, v in outputs.items() if _epsg(v) != 4326]
    assert lost == []
