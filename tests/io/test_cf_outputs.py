"""Cubes written by a study are CF-compliant (issue 13, item 5).

Every ``units`` parses in UDUNITS (cf-units) with its intended meaning (no coulomb),
CF standard names are present and consistent with the units, period totals carry
``time_bnds`` and ``cell_methods``, NPP converts to kg m-2 s-1 with cf-units using the
month lengths from ``time_bnds``, and ``read_cube`` restores the carbonsink units.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr

cf_units = pytest.importorskip("cf_units")
cf_xarray = pytest.importorskip("cf_xarray")

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "pipeline"))
from pipeline_helpers import (write_modis_like, write_pr_series, write_soc,  # noqa: E402
                              write_study, write_tas)

from carbonsink.io import read_cube, write_netcdf, write_zarr  # noqa: E402
from carbonsink.io.netcdf import CF_STANDARD_NAMES, cf_units_string  # noqa: E402
from carbonsink.pipeline import run_study  # noqa: E402

NEP_STD = ("surface_net_downward_mass_flux_of_carbon_dioxide_expressed_as_carbon_due_to_"
           "all_land_processes_excluding_anthropogenic_land_use_change")


@pytest.fixture(scope="module")
def study_cubes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cfstudy")
    write_tas(folder / "tas.nc")
    write_pr_series(folder / "pr")
    write_soc(folder / "soc.tif")
    write_modis_like(folder)
    study = write_study(folder, synthetic=True,
                        outputs={"dir": "results", "formats": ["zarr", "netcdf"],
                                 "monthly": "all"})
    run_study(study, echo=lambda s: None)
    cubes = sorted(p for p in (folder / "results" / "cubes").rglob("*")
                   if p.suffix in (".zarr", ".nc"))
    assert cubes, "the study wrote no cubes"
    return folder, cubes


def _open(p: Path) -> xr.Dataset:
    return xr.open_dataset(p, engine="zarr" if p.suffix == ".zarr" else None,
                           decode_coords="all", chunks=None)


def _no_coulomb(u: str) -> bool:
    # a carbon flux read as coulomb would carry the ampere (C = A s)
    return "A" not in cf_units.Unit(u).definition.replace("mA", "")


def test_units_parse_and_standard_names(study_cubes):
    _, cubes = study_cubes
    seen_std = set()
    checked = 0
    for p in cubes:
        ds = _open(p)
        for name, v in ds.variables.items():
            u = v.attrs.get("units")
            if u is None:
                continue
            unit = cf_units.Unit(u)                    # raises if UDUNITS cannot parse it
            assert not unit.is_unknown(), (p, name, u)
            assert _no_coulomb(u), (p, name, u)
            checked += 1
            if "carbonsink_units" in v.attrs:
                assert " C " in f" {v.attrs['carbonsink_units']} "
                assert "carbon" in v.attrs["long_name"]
            std = v.attrs.get("standard_name")
            if std in {s for s, _ in CF_STANDARD_NAMES.values()}:
                canonical = dict(CF_STANDARD_NAMES.values())[std]
                assert unit.is_convertible(cf_units.Unit(canonical)), (p, name, u, std)
                seen_std.add(std)
        # cf-xarray finds the standard names and the time bounds
        if "npp" in ds and "standard_name" in ds["npp"].attrs:
            assert ds.cf["net_primary_productivity_of_biomass_expressed_as_carbon"].name == "npp"
            assert ds.cf.bounds["time"] == ["time_bnds"]
    assert checked > 20
    assert {"net_primary_productivity_of_biomass_expressed_as_carbon",
            "heterotrophic_respiration_carbon_flux", NEP_STD, "air_temperature",
            "soil_mass_content_of_carbon"} <= seen_std


def test_period_totals_have_bounds_and_cell_methods(study_cubes):
    folder, _ = study_cubes
    cubes = folder / "results" / "cubes" / "modis+pei"
    for fname, step in (("monthly.zarr", "month"), ("annual.zarr", "year")):
        ds = _open(cubes / fname)
        assert (ds["time"].attrs.get("bounds") or ds["time"].encoding["bounds"]) == "time_bnds"
        b = ds["time_bnds"].values
        np.testing.assert_array_equal(b[:, 0], ds["time"].values)
        np.testing.assert_array_equal(b[:-1, 1], ds["time"].values[1:])
        for v in ("npp", "rh", "nep"):
            # "time: sum" once (the annual cubes add carbonsink's "(annual)" comment)
            assert ds[v].attrs["cell_methods"].startswith("time: sum")
            assert ds[v].attrs["cell_methods"].count("time:") == 1
            assert ds[v].attrs["units"] == ("g m-2 month-1" if step == "month"
                                            else "g m-2 yr-1")
    # a growing-season total (May-Sep) on an annual axis gets no year-long bounds
    gs = _open(cubes / "growing_season.zarr")
    assert "time_bnds" not in gs.variables
    assert gs["npp"].attrs["cell_methods"] == "time: sum over May-Sep"   # carbonsink's own
    assert gs["npp"].attrs["units"] == "g m-2"
    # a monthly mean state is not a sum
    inp = _open(folder / "results" / "cubes" / "inputs_monthly.zarr")
    assert "cell_methods" not in inp["tas"].attrs
    assert inp["pr"].attrs["cell_methods"] == "time: sum"


def test_npp_converts_to_kg_m2_s1_with_time_bounds(study_cubes):
    folder, _ = study_cubes
    ds = _open(folder / "results" / "cubes" / "modis+pei" / "monthly.zarr")
    npp = ds["npp"].isel(y=0, x=0)
    unit = cf_units.Unit(npp.attrs["units"])                     # g m-2 month-1
    per_month = unit * cf_units.Unit("month")                    # g m-2 in one month
    kg = per_month.convert(npp.values.astype(np.float64), cf_units.Unit("kg m-2"))
    seconds = ((ds["time_bnds"].values[:, 1] - ds["time_bnds"].values[:, 0])
               / np.timedelta64(1, "s")).astype(np.float64)
    flux = kg / seconds                                          # kg m-2 s-1
    days = pd.DatetimeIndex(ds["time"].values).days_in_month.values
    # hand value: the constant daily NPP of the helper study (1 g C m-2 d-1 -> days g/month)
    np.testing.assert_allclose(npp.values, days * 1.0, rtol=1e-5)
    np.testing.assert_allclose(flux, 1.0e-3 / 86400.0, rtol=1e-5)
    assert (cf_units.Unit("kg m-2 s-1").convert(flux, cf_units.Unit("g m-2 d-1"))
            == pytest.approx(1.0, rel=1e-5))


def test_read_cube_restores_carbonsink_units(study_cubes):
    folder, _ = study_cubes
    cubes = folder / "results" / "cubes"
    m = read_cube(cubes / "modis+pei" / "monthly.zarr")
    a = read_cube(cubes / "modis+pei" / "annual.nc")
    assert m["nep"].attrs["units"] == "g C m-2 month-1"
    assert a["nep"].attrs["units"] == "g C m-2 yr-1"
    assert "carbonsink_units" not in m["nep"].attrs
    assert m["nep"].attrs["long_name"].endswith("(as carbon)") is False
    assert "time_bnds" not in m.variables
    assert read_cube(cubes / "inputs_static.zarr")["soc"].attrs["units"] == "kg C m-2"


def test_synthetic_provenance_on_every_cube(study_cubes):
    _, cubes = study_cubes
    for p in cubes:
        assert "synthetic" in _open(p).attrs.get("carbonsink_synthetic", ""), p


def test_writer_round_trip_and_trend_units(tmp_path):
    t = pd.date_range("2001-01-01", periods=3, freq="YS")
    ds = xr.Dataset(
        {"npp": (("time", "y", "x"), np.full((3, 2, 2), 400.0),
                 {"units": "g C m-2 yr-1", "long_name": "net primary production"}),
         "total": (("time",), np.array([1.0, 2.0, 3.0]), {"units": "Tg C yr-1"})},
        coords={"time": t, "y": [1.0, 0.0], "x": [0.0, 1.0]}).rio.write_crs(4326)
    trend = xr.Dataset({"npp": (("y", "x"), np.ones((2, 2)), {"units": "g C m-2 yr-2"})},
                       coords={"y": [1.0, 0.0], "x": [0.0, 1.0]}).rio.write_crs(4326)
    for writer, suffix in ((write_zarr, ".zarr"), (write_netcdf, ".nc")):
        p = writer(ds, tmp_path / f"a{suffix}")
        raw = _open(p)
        assert raw["npp"].attrs["units"] == "g m-2 yr-1"
        assert raw["total"].attrs["units"] == "Tg yr-1"
        assert raw["total"].attrs["cell_methods"] == "time: sum"
        assert cf_units.Unit(raw["total"].attrs["units"]).convert(1.0, "kg yr-1") == 1e9
        back = read_cube(p)
        assert back["npp"].attrs["units"] == "g C m-2 yr-1"
        assert back["npp"].attrs["long_name"] == "net primary production"
        np.testing.assert_array_equal(back["npp"].values, ds["npp"].values)
        # the caller's dataset is not modified
        assert ds["npp"].attrs["units"] == "g C m-2 yr-1"
        q = writer(trend, tmp_path / f"trend{suffix}")
        tr = _open(q)
        assert tr["npp"].attrs["units"] == "g m-2 yr-2"
        assert "standard_name" not in tr["npp"].attrs       # a trend is not the flux
        assert "cell_methods" not in tr["npp"].attrs


@pytest.mark.parametrize("given, expected", [
    ("g C m-2 month-1", "g m-2 month-1"), ("Tg C yr-1", "Tg yr-1"), ("kg C m-2", "kg m-2"),
    ("µmol CO2 m-2 s-1", "umol m-2 s-1"), ("degC", "degC"), ("%", "%"), ("1", "1"),
    ("mm month-1", "mm month-1"), ("km2", "km2"), ("C", "C")])
def test_cf_units_string(given, expected):
    assert cf_units_string(given) == expected
    cf_units.Unit(expected)
