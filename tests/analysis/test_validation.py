"""Tests of the tower validation (carbonsink.analysis.validation)."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from scipy import stats

from carbonsink.analysis.validation import (
    POOLED,
    metrics,
    npp_at_site,
    run_validation_cli,
    tower_nep,
    tower_rh,
    validate_towers,
)
from carbonsink.errors import (AlignmentError, InputError, UnitError,
                               UnknownModelError)
from carbonsink.flux import rh as rhmod
from carbonsink.testing import SHARED_DATA_HINT, shared_data_dir
from carbonsink.io.fluxnet import read_fluxnet, read_sites
from carbonsink.io.tables import read_table


FLUXNET = shared_data_dir() / "fluxnet2015"
needs_fluxnet = pytest.mark.skipif(
    not FLUXNET.is_dir(),
    reason=f"shared FLUXNET2015 data not found at {FLUXNET} ({SHARED_DATA_HINT})")


# --------------------------------------------------------------------------- metrics


def test_metrics_hand_computed():
    # O = [1, 2, 3], M = [2, 2, 5]: M - O = [1, 0, 2]
    m = metrics([2.0, 2.0, 5.0], [1.0, 2.0, 3.0], min_n=3)
    assert m["n"] == 3 and m["flag"] == ""
    assert m["bias"] == pytest.approx(1.0)
    assert m["rel_bias"] == pytest.approx(3.0 / 6.0)
    assert m["rmse"] == pytest.approx(math.sqrt(5.0 / 3.0))
    assert m["nse"] == pytest.approx(1.0 - 5.0 / 2.0)        # Σ(O-M)² = 5, Σ(O-Ō)² = 2
    assert m["slope"] == pytest.approx(1.5)                   # Sxy = 3, Sxx = 2
    assert m["intercept"] == pytest.approx(0.0)               # 3 - 1.5·2
    assert m["r"] == pytest.approx(3.0 / math.sqrt(2.0 * 6.0))
    assert m["r2"] == pytest.approx(0.75)
    assert m["obs_mean"] == pytest.approx(2.0) and m["model_mean"] == pytest.approx(3.0)


def test_metrics_against_scipy_and_numpy():
    rng = np.random.default_rng(42)
    obs = rng.normal(20.0, 15.0, 40)
    model = 0.8 * obs + 5.0 + rng.normal(0.0, 6.0, 40)
    obs_nan, model_nan = obs.copy(), model.copy()
    obs_nan[[3, 17]] = np.nan
    model_nan[[5]] = np.nan
    m = metrics(model_nan, obs_nan)
    ok = np.isfinite(obs_nan) & np.isfinite(model_nan)
    o, mo = obs[ok], model[ok]
    lr = stats.linregress(o, mo)
    assert m["n"] == 37
    assert m["slope"] == pytest.approx(lr.slope, rel=1e-12)
    assert m["intercept"] == pytest.approx(lr.intercept, rel=1e-10)
    assert m["r"] == pytest.approx(lr.rvalue, rel=1e-12)
    assert m["r"] == pytest.approx(np.corrcoef(mo, o)[0, 1], rel=1e-12)
    assert m["r2"] == pytest.approx(lr.rvalue ** 2, rel=1e-12)
    assert m["bias"] == pytest.approx(np.mean(mo - o))
    assert m["rmse"] == pytest.approx(np.sqrt(np.mean((mo - o) ** 2)))
    assert m["rel_bias"] == pytest.approx(np.sum(mo - o) / np.sum(o))
    assert m["nse"] == pytest.approx(1 - np.sum((o - mo) ** 2) / np.sum((o - o.mean()) ** 2))


def test_nse_analytic_cases():
    obs = np.linspace(-20.0, 60.0, 24)
    perfect = metrics(obs, obs)
    assert perfect["nse"] == pytest.approx(1.0) and perfect["r2"] == pytest.approx(1.0)
    assert perfect["slope"] == pytest.approx(1.0) and perfect["intercept"] == pytest.approx(0.0)
    assert perfect["bias"] == 0.0 and perfect["rmse"] == 0.0
    mean_model = metrics(np.full_like(obs, obs.mean()), obs)
    assert mean_model["nse"] == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(mean_model["r"]) and "constant model" in mean_model["flag"]
    assert mean_model["slope"] == pytest.approx(0.0)
    # a linear transform keeps r² = 1 but not the NSE
    scaled = metrics(2.0 * obs + 1.0, obs)
    assert scaled["r2"] == pytest.approx(1.0) and scaled["nse"] < 0.0


def test_metrics_need_twelve_pairs():
    obs = np.arange(14.0)
    model = obs + 1.0
    model[[0, 1, 2]] = np.nan
    m = metrics(model, obs)
    assert m["n"] == 11 and "n=11 < 12" in m["flag"]
    assert all(math.isnan(m[k]) for k in ("bias", "rmse", "r", "r2", "nse", "slope"))
    m12 = metrics(np.append(model, 20.0), np.append(obs, 19.0))
    assert m12["n"] == 12 and m12["flag"] == "" and m12["bias"] == pytest.approx(1.0)
    zero = metrics(np.arange(12.0), np.arange(12.0) - 5.5)
    assert math.isnan(zero["rel_bias"]) and "sum(obs) = 0" in zero["flag"]
    with pytest.raises(ValueError, match="differ in length"):
        metrics([1.0, 2.0], [1.0])


# --------------------------------------------------------------------------- NPP from a cube


SITE_LON, SITE_LAT = 101.3269, 37.6086  # CN-Ha2


def _cube(crs: str, ix: int, iy: int, *, res: float, nx: int = 9, ny: int = 8,
          units: str = "g C m-2 month-1", start: str = "2003-01-01") -> xr.DataArray:
    """A (time, y, x) cube built so that the site lies inside pixel (iy, ix)."""
    from pyproj import Transformer

    x0, y0 = Transformer.from_crs("EPSG:4326", crs, always_xy=True).transform(SITE_LON, SITE_LAT)
    # site 0.3 pixel right of and 0.2 pixel below the centre of pixel (iy, ix); y descending
    xs = x0 - 0.3 * res + (np.arange(nx) - ix) * res
    ys = y0 + 0.2 * res - (np.arange(ny) - iy) * res
    time = pd.date_range(start, periods=24, freq="MS")
    jj, ii = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    base = (jj * 10.0 + ii) ** 2
    values = np.stack([base + 1000.0 * t for t in range(time.size)])
    da = xr.DataArray(values, dims=("time", "y", "x"), coords={"time": time, "y": ys, "x": xs},
                      name="npp", attrs={"units": units})
    return da.rio.write_crs(crs)


@pytest.mark.parametrize("crs,res", [("EPSG:32647", 1000.0), ("EPSG:4326", 0.05),
                                     ("ESRI:54008", 463.3127)])  # UTM 47N, lat/lon, sinusoidal
def test_npp_nearest_pixel_and_window(crs, res):
    iy, ix = 4, 3
    cube = _cube(crs, ix, iy, res=res)
    near = npp_at_site(cube, SITE_LON, SITE_LAT, method="nearest")
    np.testing.assert_allclose(near.values, cube.values[:, iy, ix])
    assert near.dims == ("time",) and near.attrs["units"] == "g C m-2 month-1"
    win = npp_at_site(cube, SITE_LON, SITE_LAT, method="window", window=3)
    np.testing.assert_allclose(win.values, cube.values[:, iy - 1:iy + 2, ix - 1:ix + 2]
                               .mean(axis=(1, 2)))
    assert not np.allclose(win.values, near.values)
    assert "3x3" in win.attrs["npp_extraction"]


def test_npp_window_ignores_nan_and_is_cut_at_edge():
    cube = _cube("EPSG:32647", 0, 0, res=1000.0)
    cube[:, 1, 1] = np.nan
    win = npp_at_site(cube, SITE_LON, SITE_LAT, method="window", window=3)
    block = cube.values[:, 0:2, 0:2]   # corner pixel: 2x2 of the 3x3 window exist
    np.testing.assert_allclose(win.values, np.nanmean(block, axis=(1, 2)))


def test_npp_cube_units_crs_and_extent_errors():
    cube = _cube("EPSG:32647", 3, 4, res=1000.0, units="kg C m-2 month-1")
    got = npp_at_site(cube, SITE_LON, SITE_LAT)
    np.testing.assert_allclose(got.values, cube.values[:, 4, 3] * 1000.0)
    with pytest.raises(AlignmentError, match="outside the NPP cube"):
        npp_at_site(cube, SITE_LON + 1.0, SITE_LAT)
    no_crs = xr.DataArray(cube.values, dims=cube.dims,
                          coords={k: cube[k].values for k in ("time", "y", "x")},
                          attrs={"units": "g C m-2 month-1"})
    with pytest.raises(AlignmentError, match="no CRS"):
        npp_at_site(no_crs, SITE_LON, SITE_LAT)
    annual = _cube("EPSG:32647", 3, 4, res=1000.0, units="g C m-2 yr-1")
    with pytest.raises(UnitError, match="annual"):
        npp_at_site(annual, SITE_LON, SITE_LAT)
    unitless = _cube("EPSG:32647", 3, 4, res=1000.0)
    del unitless.attrs["units"]
    with pytest.raises(UnitError):
        npp_at_site(unitless, SITE_LON, SITE_LAT)


# --------------------------------------------------------------------------- synthetic towers

MM_HEADER = ["TIMESTAMP", "TA_F", "P_F", "SW_IN_F", "NEE_VUT_REF", "NEE_VUT_REF_QC",
             "GPP_NT_VUT_REF", "RECO_NT_VUT_REF"]


def _tower_file(folder: Path, site: str, qc: list[float], *, years=(2001, 2002),
                phase: float = 0.0) -> Path:
    months = pd.date_range(f"{years[0]}-01-01", f"{years[1]}-12-01", freq="MS")
    rows = []
    for i, t in enumerate(months):
        season = math.sin(2 * math.pi * (t.month - 4 + phase) / 12)
        ta = 5 + 15 * season
        p = max(0.0, 1.5 + 1.5 * season)             # mm d-1
        gpp = max(0.0, 4.0 * season + 0.3)           # g C m-2 d-1
        nee = -0.45 * gpp + 0.8 + 0.1 * math.cos(i)   # g C m-2 d-1
        rows.append([t.strftime("%Y%m"), ta, p, 150.0, nee, qc[i % len(qc)], gpp, gpp * 0.6])
    path = folder / f"FLX_{site}_FLUXNET2015_SUBSET_MM_{years[0]}-{years[1]}_1-4.csv"
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(MM_HEADER)
        w.writerows(rows)
    return path


def _sites_file(folder: Path) -> Path:
    path = folder / "sites.csv"
    path.write_text("SITE_ID,SITE_NAME,LOCATION_LAT,LOCATION_LONG,IGBP,MAT,MAP\n"
                    f"XX-Aaa,A,{SITE_LAT},{SITE_LON},GRA,1.0,400\n"
                    f"XX-Bbb,B,{SITE_LAT + 0.02},{SITE_LON + 0.03},WET,,\n")
    return path


def test_tower_rh_uses_the_flux_models(tmp_path):
    ds = read_fluxnet(_tower_file(tmp_path, "XX-Aaa", [1.0]))
    rh = tower_rh(ds, soc=4.0)
    np.testing.assert_allclose(rh["rh_pei"].values,
                               rhmod.pei2009(ds["tas"], ds["pr"]).values)
    soc = xr.full_like(ds["tas"], 4.0).assign_attrs(units="kg C m-2")
    rs = rhmod.gsmsr(ds["tas"], ds["pr"], soc)
    np.testing.assert_allclose(rh["rs_gsmsr_bl"].values, rs.values)
    np.testing.assert_allclose(rh["rh_gsmsr_bl"].values, rhmod.bond_lamberty2004(rs).values)
    np.testing.assert_allclose(rh["rh_gsmsr_shi"].values, rhmod.shi2015(rs).values)
    assert all(rh[v].attrs["units"] == "g C m-2 month-1" for v in rh.data_vars)
    # Pei (METHODS §3.1) written out: 0.22·[exp(0.0912·T) + ln(0.3145·P + 1)]·30·0.465
    t, p = ds["tas"].values, ds["pr"].values
    np.testing.assert_allclose(rh["rh_pei"].values,
                               0.22 * (np.exp(0.0912 * t) + np.log(0.3145 * p + 1)) * 30 * 0.465)
    with pytest.raises(UnknownModelError, match="valid names"):
        tower_rh(ds, rh_models=["lloyd_taylor"])
    # options keyed by model name reach the model functions
    opt = tower_rh(ds, soc=4.0, rh_models=["gsmsr_bl"], rh_options={"gsmsr_bl": {"beta": -0.006}})
    rs6 = rhmod.gsmsr(ds["tas"], ds["pr"], soc, beta=-0.006)
    np.testing.assert_allclose(opt["rh_gsmsr_bl"].values, rhmod.bond_lamberty2004(rs6).values)
    assert not np.allclose(opt["rh_gsmsr_bl"].values, rh["rh_gsmsr_bl"].values)
    assert list(opt.data_vars) == ["rh_gsmsr_bl", "rs_gsmsr_bl"]
    with pytest.raises(UnknownModelError, match="keyed by Rh model name"):
        tower_rh(ds, rh_options={"gsmsr": {"beta": -0.006}})


def test_qc_threshold_excludes_months(tmp_path):
    qc = [1.0, 0.79, 0.8, 0.5, 0.95, 0.9]     # 4 of every 6 months pass 0.8 (0.8 included)
    path = _tower_file(tmp_path, "XX-Aaa", qc, years=(2001, 2003))
    table = validate_towers([path], qc_min=0.8, figures=False)
    assert set(table["n"]) == {24} and set(table["n_months"]) == {36}
    loose = validate_towers([path], qc_min=0.5, figures=False)
    assert set(loose["n"]) == {36}
    strict = validate_towers([path], qc_min=0.95, figures=False)
    assert set(strict["n"]) == {12}
    # the kept months are exactly those with QC >= threshold
    _, monthly = validate_towers([path], qc_min=0.8, figures=False, return_monthly=True)
    one = monthly[monthly["combination"] == "cue+pei"]
    np.testing.assert_array_equal(one["qc_ok"].values, one["nee_qc"].values >= 0.8)
    sel = one[one["qc_ok"]]
    row = table[table["combination"] == "cue+pei"].iloc[0]
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((sel["nep"] - sel["obs_nep"]) ** 2)))


def test_nep_is_npp_minus_rh_and_cue_npp(tmp_path):
    path = _tower_file(tmp_path, "XX-Aaa", [1.0])
    ds = read_fluxnet(path)
    monthly = tower_nep(ds, npp="cue", cue=0.4, soc=3.0)
    np.testing.assert_allclose(monthly["nep"], monthly["npp"] - monthly["rh"])
    pei = monthly[monthly["rh_model"] == "pei"]
    np.testing.assert_allclose(pei["npp"].values, 0.4 * ds["gpp"].values)
    np.testing.assert_allclose(pei["obs_nep"].values, -ds["nee"].values)
    assert pei["npp_source"].iloc[0].startswith("CUE 0.4 x tower GPP")


def test_user_series_and_combination_filter(tmp_path):
    paths = [_tower_file(tmp_path, "XX-Aaa", [1.0]), _tower_file(tmp_path, "XX-Bbb", [1.0],
                                                                  phase=1.0)]
    time = pd.date_range("2001-01-01", periods=24, freq="MS")
    series = xr.DataArray(np.stack([np.linspace(0, 50, 24), np.linspace(10, 30, 24)], axis=1),
                          dims=("time", "site"),
                          coords={"time": time + pd.Timedelta(days=14),   # mid-month stamps
                                  "site": ["XX-Aaa", "XX-Bbb"]},
                          attrs={"units": "g C m-2 month-1"})
    table, monthly = validate_towers(paths, npp={"user": series}, combos=["gsmsr_shi"],
                                     soc=4.0, figures=False, return_monthly=True)
    assert set(table["combination"]) == {"user+gsmsr_shi", "user+no_rh"}   # + reference
    b = monthly[(monthly["site"] == "XX-Bbb") & (monthly["rh_model"] == "gsmsr_shi")]
    np.testing.assert_allclose(b["npp"].values, np.linspace(10, 30, 24))
    ref = monthly[(monthly["site"] == "XX-Bbb") & (monthly["rh_model"] == "no_rh")]
    np.testing.assert_allclose(ref["nep"].values, np.linspace(10, 30, 24))   # NEP = NPP
    assert (ref["rh"] == 0).all() and ref["reference"].all()
    assert table.loc[table["site"] == "XX-Aaa", "npp_source"].iloc[0] == "user-supplied NPP series 'user'"
    with pytest.raises(UnknownModelError):
        validate_towers(paths, combos=["cue+casa"], figures=False)
    with pytest.raises(InputError, match="no site XX-Ccc"):
        validate_towers([_tower_file(tmp_path, "XX-Ccc", [1.0])], npp={"user": series},
                        soc=4.0, figures=False)


def test_two_npp_cubes_give_six_combinations_and_ranking(tmp_path):
    paths = [_tower_file(tmp_path, "XX-Aaa", [1.0]),
             _tower_file(tmp_path, "XX-Bbb", [1.0, 0.5], phase=1.0)]
    sites = read_sites(_sites_file(tmp_path))
    modis = _cube("EPSG:32647", 4, 4, res=2000.0, start="2001-01-01") * 1e-3 + 20.0
    modis = modis.assign_attrs(units="g C m-2 month-1").rio.write_crs("EPSG:32647")
    casa = (modis * 0.5).assign_attrs(units="g C m-2 month-1").rio.write_crs("EPSG:32647")
    table = validate_towers(paths, sites=sites, npp={"modis": modis, "casa": casa},
                            soc=3.0, figures=False)
    per_site = table[table["site"] != POOLED]
    assert per_site.groupby("site")["combination"].nunique().tolist() == [8, 8]
    assert set(per_site["combination"]) == {f"{n}+{r}" for n in ("modis", "casa")
                                            for r in ("pei", "gsmsr_bl",
                                                      "gsmsr_shi", "no_rh")}
    assert set(table["igbp"]) == {"GRA", "WET", ""}
    for _, grp in table.groupby("site"):
        ranked = grp.sort_values("rank")
        assert ranked["rank"].tolist() == list(range(1, 9))
        assert ranked["nse"].is_monotonic_decreasing          # default: NSE
    pooled = table[table["site"] == POOLED]
    assert len(pooled) == 8 and set(pooled["n_sites"]) == {2}
    n_sites = per_site.groupby("combination")["n"].sum()
    assert (pooled.set_index("combination")["n"] == n_sites.loc[pooled["combination"]]).all()
    assert set(table["soc"]) == {3.0} and table["soc_source"].str.contains("user").all()
    by_rmse = validate_towers(paths, sites=sites, npp={"modis": modis}, rank_by="rmse",
                              soc=3.0, figures=False)
    for _, grp in by_rmse.groupby("site"):
        assert grp.sort_values("rank")["rmse"].is_monotonic_increasing
    with pytest.raises(InputError, match="lat/lon"):
        validate_towers(paths, npp={"modis": modis}, soc=3.0, figures=False)


def test_cli_entry_writes_tables_and_figures(tmp_path):
    data = tmp_path / "towers"
    data.mkdir()
    _tower_file(data, "XX-Aaa", [1.0])
    _tower_file(data, "XX-Bbb", [1.0], phase=1.0)
    npp_csv = tmp_path / "npp.csv"
    rows = ["site,time,npp"] + [f"{s},2001-{m:02d},{10 + m}" for s in ("XX-Aaa", "XX-Bbb")
                                for m in range(1, 13)]
    npp_csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "out"
    table = run_validation_cli([data], out, npp_series=npp_csv, soc=5.0,
                               sites=_sites_file(tmp_path))
    assert set(table["combination"]) == {"user+pei", "user+gsmsr_bl", "user+gsmsr_shi",
                                         "user+no_rh"}
    assert set(table.loc[table["site"] != POOLED, "n"]) == {12}    # NPP only for 2001
    assert set(table["soc"]) == {5.0}
    back = pd.read_csv(out / "towers_metrics.csv")
    assert list(back.columns) == list(table.columns) and len(back) == len(table)
    np.testing.assert_allclose(back["rmse"], table["rmse"], rtol=1e-5)
    pq = read_table(out / "towers_metrics.parquet")
    np.testing.assert_allclose(pq["r2"], table["r2"])
    assert pq.attrs["qc_min"] == 0.8 and pq.attrs["npp_sources"] == {
        "user": "user-supplied NPP series 'user'"}
    assert read_table(out / "towers_metrics.csv").attrs["soc_kg_C_m-2"]["XX-Aaa"]["value"] == 5.0
    pngs = sorted(p.name for p in (out / "figures").glob("*.png"))
    assert pngs == ["scatter_user.png", "timeseries_XX-Aaa.png", "timeseries_XX-Bbb.png"]
    assert all((out / "figures" / p).stat().st_size < 150_000 for p in pngs)
    assert not list(out.rglob(".*tmp-*"))
    assert "ranked by nse" in (out / "towers.md").read_text()
    with pytest.warns(UserWarning, match="skipped: no SOC"):
        cue_table = run_validation_cli([data], tmp_path / "out2", cue=0.3, figures=False)
    assert cue_table["npp_source"].str.startswith("CUE 0.3").all()
    assert set(cue_table["rh_model"]) == {"pei", "no_rh"}   # GSMSR skipped without SOC


def test_cli_entry_with_netcdf_npp_cube(tmp_path):
    _tower_file(tmp_path, "XX-Aaa", [1.0])
    _tower_file(tmp_path, "XX-Bbb", [1.0], phase=1.0)
    cube = _cube("EPSG:32647", 4, 4, res=2000.0, start="2001-01-01") * 1e-3 + 20.0
    cube = cube.assign_attrs(units="g C m-2 month-1", npp_model="modis")
    cube = cube.rio.write_crs("EPSG:32647").rename("npp")
    cube.to_dataset().to_netcdf(tmp_path / "npp.nc")
    sites = read_sites(_sites_file(tmp_path))
    table, monthly = run_validation_cli([tmp_path], tmp_path / "out", npp_cube=tmp_path / "npp.nc",
                                        sites=sites, soc=3.0, figures=False,
                                        return_monthly=True)
    assert set(table["combination"]) == {"modis+pei", "modis+gsmsr_bl", "modis+gsmsr_shi",
                                         "modis+no_rh"}
    expected = npp_at_site(cube, float(sites.loc["XX-Bbb", "lon"]),
                           float(sites.loc["XX-Bbb", "lat"]))
    got = monthly[(monthly["site"] == "XX-Bbb") & (monthly["rh_model"] == "pei")]["npp"]
    np.testing.assert_allclose(got.values, expected.values)


def test_same_file_twice_is_rejected(tmp_path):
    path = _tower_file(tmp_path, "XX-Aaa", [1.0])
    with pytest.raises(InputError, match="more than once"):
        validate_towers([path, path], soc=3.0, figures=False)


def test_yearly_file_is_rejected(tmp_path):
    path = tmp_path / "FLX_XX-Aaa_FLUXNET2015_SUBSET_YY_2001-2002_1-4.csv"
    path.write_text("TIMESTAMP,NEE_VUT_REF,TA_F,P_F\n2001,-100,5,400\n2002,-90,6,420\n")
    with pytest.raises(InputError, match="YY"):
        validate_towers([path], figures=False)


# --------------------------------------------------------------------------- real towers


@needs_fluxnet
def test_real_towers_table():
    files = sorted((FLUXNET / "MM").glob("FLX_*_MM_*.csv")) + \
        sorted((FLUXNET / "DD").glob("FLX_*_DD_*.csv"))
    table, monthly = validate_towers(files, sites=FLUXNET / "sites_cn.csv", figures=False,
                                     soc=3.0, return_monthly=True)
    sites = table.loc[table["site"] != POOLED, "site"].unique().tolist()
    assert sites == ["CN-Cha", "CN-Cng", "CN-Dan", "CN-Din", "CN-Du3", "CN-Ha2", "CN-Qia"]
    assert len(table) == (7 + 1 + 1) * 4      # 7 MM sites, CN-Ha2 from DD, pooled; 3 Rh + ref
    # QC-passed month counts (NEE_VUT_REF_QC >= 0.8) read from the files
    expected_n = {"CN-Cha": 28, "CN-Cng": 37, "CN-Dan": 21, "CN-Din": 30, "CN-Du3": 9,
                  "CN-Ha2": 29, "CN-Qia": 36}
    mm = table[table["data"] == "MM"]
    assert mm.groupby("site")["n"].first().to_dict() == expected_n
    du3 = mm[mm["site"] == "CN-Du3"]
    assert du3["r2"].isna().all() and du3["flag"].str.contains("n=9 < 12").all()
    pooled = table[table["site"] == POOLED]
    assert set(pooled["n"]) == {sum(expected_n.values())}   # the DD copy is not pooled twice
    # DD aggregated to months agrees with the MM file of the same site
    ha2 = table[table["site"] == "CN-Ha2"].set_index(["data", "combination"])["rmse"]
    for combo in ("cue+pei", "cue+gsmsr_bl", "cue+gsmsr_shi"):
        assert ha2[("DD->MM", combo)] == pytest.approx(ha2[("MM", combo)], abs=0.3)

    # independent recomputation of one row from the CSV (numpy + scipy only)
    path = next(p for p in files if "CN-Qia" in p.name)
    raw = pd.read_csv(path)
    days = pd.to_datetime(raw["TIMESTAMP"].astype(str), format="%Y%m").dt.days_in_month
    obs = -raw["NEE_VUT_REF"] * days
    npp = 0.5 * raw["GPP_NT_VUT_REF"].clip(lower=0) * days     # negative GPP clipped
    rh = 0.22 * (np.exp(0.0912 * raw["TA_F"]) + np.log(0.3145 * raw["P_F"] * days + 1)) \
        * 30 * 0.465
    ok = raw["NEE_VUT_REF_QC"] >= 0.8
    model, o = (npp - rh)[ok].to_numpy(), obs[ok].to_numpy()
    lr = stats.linregress(o, model)
    row = table[(table["site"] == "CN-Qia") & (table["combination"] == "cue+pei")].iloc[0]
    assert row["n"] == ok.sum()
    assert row["bias"] == pytest.approx(np.mean(model - o))
    assert row["rmse"] == pytest.approx(np.sqrt(np.mean((model - o) ** 2)))
    assert row["r2"] == pytest.approx(lr.rvalue ** 2)
    assert row["slope"] == pytest.approx(lr.slope)
    assert row["intercept"] == pytest.approx(lr.intercept)
    assert row["nse"] == pytest.approx(1 - np.sum((o - model) ** 2) / np.sum((o - o.mean()) ** 2))
