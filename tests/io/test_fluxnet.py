"""Tests of the FLUXNET2015 / ONEFlux reader (carbonsink.io.fluxnet)."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from carbonsink.errors import InputError
from carbonsink.testing import SHARED_DATA_HINT, shared_data_dir
from carbonsink.io.fluxnet import (
    parse_fluxnet_name,
    read_fluxnet,
    read_sites,
    to_monthly,
    umol_co2_to_g_c,
)


FLUXNET = shared_data_dir() / "fluxnet2015"
needs_fluxnet = pytest.mark.skipif(
    not FLUXNET.is_dir(),
    reason=f"shared FLUXNET2015 data not found at {FLUXNET} ({SHARED_DATA_HINT})")
MM_FILES = sorted((FLUXNET / "MM").glob("FLX_*_MM_*.csv")) if FLUXNET.is_dir() else []
DD_HA2 = FLUXNET / "DD" / "FLX_CN-Ha2_FLUXNET2015_FULLSET_DD_2003-2005_1-4.csv"


def _raw_columns(path: Path, *names: str) -> dict[str, np.ndarray]:
    """Columns of a CSV read with the csv module (independent of the reader)."""
    with open(path, newline="") as fh:
        rows = list(csv.DictReader(fh))
    out = {}
    for name in names:
        vals = np.array([float(r[name]) for r in rows])
        vals[vals == -9999] = np.nan
        out[name] = vals
    out["TIMESTAMP"] = np.array([r["TIMESTAMP"] for r in rows])
    return out


# --------------------------------------------------------------------------- real files


@needs_fluxnet
def test_all_seven_monthly_files_present():
    sites = sorted(parse_fluxnet_name(p).site for p in MM_FILES)
    assert sites == ["CN-Cha", "CN-Cng", "CN-Dan", "CN-Din", "CN-Du3", "CN-Ha2", "CN-Qia"]


@needs_fluxnet
@pytest.mark.parametrize("path", MM_FILES, ids=lambda p: parse_fluxnet_name(p).site)
def test_read_monthly_file(path):
    meta = parse_fluxnet_name(path)
    ds = read_fluxnet(path)
    n_months = 12 * (meta.last_year - meta.first_year + 1)
    assert ds.sizes["time"] == n_months
    assert ds.attrs["site"] == meta.site and ds.attrs["resolution"] == "MM"
    time = pd.DatetimeIndex(ds["time"].values)
    assert (time.day == 1).all() and time[0] == pd.Timestamp(f"{meta.first_year}-01-01")
    assert ds["nee"].attrs["units"] == "g C m-2 month-1"
    assert ds["nep"].attrs["units"] == "g C m-2 month-1"
    assert ds["gpp"].attrs["units"] == "g C m-2 month-1"
    assert ds["pr"].attrs["units"] == "mm month-1"
    assert ds["sol"].attrs["units"] == "MJ m-2 month-1"
    assert ds["tas"].attrs["units"] == "degC"

    raw = _raw_columns(path, "NEE_VUT_REF", "NEE_VUT_REF_QC", "GPP_NT_VUT_REF", "TA_F", "P_F",
                       "SW_IN_F")
    days = np.array([pd.Period(t, "M").days_in_month for t in
                     pd.to_datetime(raw["TIMESTAMP"], format="%Y%m")])
    np.testing.assert_allclose(ds["nee"].values, raw["NEE_VUT_REF"] * days, rtol=1e-12)
    np.testing.assert_allclose(ds["nep"].values, -raw["NEE_VUT_REF"] * days, rtol=1e-12)
    np.testing.assert_allclose(ds["gpp"].values, raw["GPP_NT_VUT_REF"] * days, rtol=1e-12)
    np.testing.assert_allclose(ds["pr"].values, raw["P_F"] * days, rtol=1e-12)
    np.testing.assert_allclose(ds["sol"].values, raw["SW_IN_F"] * days * 86400 / 1e6,
                               rtol=1e-12)
    np.testing.assert_array_equal(ds["tas"].values, raw["TA_F"])
    np.testing.assert_array_equal(ds["nee_qc"].values, raw["NEE_VUT_REF_QC"])
    assert np.nanmin(ds["nee_qc"].values) >= 0 and np.nanmax(ds["nee_qc"].values) <= 1


@needs_fluxnet
def test_leap_february_uses_29_days():
    path = next(p for p in MM_FILES if "CN-Dan" in p.name)  # 2004-2005, 2004 is a leap year
    ds = read_fluxnet(path)
    raw = _raw_columns(path, "NEE_VUT_REF")
    i = list(raw["TIMESTAMP"]).index("200402")
    assert ds["nee"].values[i] == pytest.approx(raw["NEE_VUT_REF"][i] * 29)


@needs_fluxnet
def test_daily_file_read_in_daily_units():
    ds = read_fluxnet(DD_HA2)
    assert ds.attrs["resolution"] == "DD" and ds.attrs["site"] == "CN-Ha2"
    assert ds.sizes["time"] == 365 + 366 + 365  # 2003, 2004 (leap), 2005
    assert ds["nee"].attrs["units"] == "g C m-2 d-1"
    assert ds["pr"].attrs["units"] == "mm d-1"
    assert ds["sol"].attrs["units"] == "MJ m-2 d-1"


@needs_fluxnet
def test_daily_aggregation_matches_oneflux_monthly_file():
    """DD -> months reproduces ONEFlux's own MM file of CN-Ha2.

    Meteorology agrees to the rounding of the files. NEE/GPP differ slightly
    (max 0.60 / 1.42 g C m-2 month-1, mean 0.10 / 0.28) because ONEFlux picks
    the VUT 'REF' ensemble member separately at each resolution, so MM
    NEE_VUT_REF is not exactly the mean of DD NEE_VUT_REF.
    """
    mm = read_fluxnet(next(p for p in MM_FILES if "CN-Ha2" in p.name))
    agg = to_monthly(read_fluxnet(DD_HA2))
    assert agg.attrs["resolution"] == "MM" and agg.attrs["aggregated_from"] == "DD"
    np.testing.assert_array_equal(agg["time"].values, mm["time"].values)
    assert agg["nee"].attrs["units"] == "g C m-2 month-1"
    np.testing.assert_allclose(agg["tas"].values, mm["tas"].values, atol=1e-3)
    np.testing.assert_allclose(agg["pr"].values, mm["pr"].values, atol=0.02)
    np.testing.assert_allclose(agg["sol"].values, mm["sol"].values, atol=2e-3)
    np.testing.assert_allclose(agg["reco"].values, mm["reco"].values, atol=1e-3)
    np.testing.assert_allclose(agg["nee_qc"].values, mm["nee_qc"].values, atol=5e-3)
    dnee = np.abs(agg["nee"].values - mm["nee"].values)
    assert dnee.max() < 1.0 and dnee.mean() < 0.2
    np.testing.assert_allclose(agg["nep"].values, -agg["nee"].values)
    dgpp = np.abs(agg["gpp"].values - mm["gpp"].values)
    assert dgpp.max() < 2.0 and dgpp.mean() < 0.5
    assert (agg["coverage"].values == 1.0).all()


@needs_fluxnet
def test_read_sites_file():
    sites = read_sites(FLUXNET / "sites_cn.csv")
    assert len(sites) == 11
    assert {parse_fluxnet_name(p).site for p in MM_FILES} <= set(sites.index)
    assert sites.loc["CN-Ha2", "lat"] == pytest.approx(37.6086)
    assert sites.loc["CN-Ha2", "lon"] == pytest.approx(101.3269)
    assert sites.loc["CN-Ha2", "igbp"] == "WET"
    assert sites.loc["CN-Cha", "mat"] == pytest.approx(2.16)
    assert np.isnan(sites.loc["CN-Cng", "map"])


# --------------------------------------------------------------------------- synthetic files


def _write(path: Path, header: list[str], rows: list[list]) -> Path:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return path


MM_HEADER = ["TIMESTAMP", "TA_F", "P_F", "SW_IN_F", "VPD_F", "NEE_VUT_REF", "NEE_VUT_REF_QC",
             "GPP_NT_VUT_REF", "RECO_NT_VUT_REF"]


def test_missing_values_become_nan(tmp_path):
    rows = [[f"2001{m:02d}", 5.0, 1.0, 100.0, 3.0, -1.0, 0.9, 2.0, 1.0] for m in range(1, 13)]
    rows[2][5] = -9999       # NEE missing in March
    rows[3][6] = "-9999.0"   # QC missing in April
    rows[4][1] = -9999       # TA missing in May
    path = _write(tmp_path / "FLX_XX-Abc_FLUXNET2015_SUBSET_MM_2001-2001_1-4.csv", MM_HEADER,
                  rows)
    ds = read_fluxnet(path)
    assert np.isnan(ds["nee"].values[2]) and np.isnan(ds["nep"].values[2])
    assert np.isnan(ds["nee_qc"].values[3])
    assert np.isnan(ds["tas"].values[4])
    assert np.isfinite(ds["nee"].values[[0, 1, 3, 4]]).all()
    assert not (ds.to_array().values == -9999).any()
    assert ds["nep"].values[0] == pytest.approx(31.0)        # -(-1 g C m-2 d-1) x 31 d
    assert ds["nep"].values[1] == pytest.approx(28.0)        # 2001 is not a leap year


def test_resolution_from_timestamp_when_name_has_none(tmp_path):
    rows = [[f"2001{m:02d}", 5.0, 1.0, 100.0, 3.0, -1.0, 0.9, 2.0, 1.0] for m in range(1, 13)]
    path = _write(tmp_path / "tower_CN-Xyz_monthly.csv", MM_HEADER, rows)
    ds = read_fluxnet(path)
    assert ds.attrs["resolution"] == "MM" and ds.attrs["site"] == "CN-Xyz"
    yy = _write(tmp_path / "some_file.csv", ["TIMESTAMP", "NEE_VUT_REF"], [["2001", -100.0]])
    ds = read_fluxnet(yy, site="XX-Yyy")
    assert ds.attrs["resolution"] == "YY"
    assert ds["nep"].attrs["units"] == "g C m-2 yr-1" and ds["nep"].values[0] == 100.0


def test_not_a_fluxnet_file_names_file_and_columns(tmp_path):
    path = _write(tmp_path / "FLX_XX-Abc_FLUXNET2015_SUBSET_MM_2001-2001_1-4.csv",
                  ["date", "temperature"], [["2001-01", 3.0]])
    with pytest.raises(InputError) as err:
        read_fluxnet(path)
    msg = str(err.value)
    assert path.name in msg and "'TIMESTAMP'" in msg and "'NEE_VUT_REF'" in msg
    with pytest.raises(InputError, match="not found"):
        read_fluxnet(tmp_path / "nope.csv")
    with pytest.raises(InputError, match="missing column"):
        read_sites(path)


def test_mislabelled_resolution_is_an_input_error(tmp_path):
    rows = [["20010101", 5.0, 1.0, 100.0, 3.0, -1.0, 0.9, 2.0, 1.0]]
    path = _write(tmp_path / "FLX_XX-Abc_FLUXNET2015_SUBSET_MM_2001-2001_1-4.csv", MM_HEADER,
                  rows)
    with pytest.raises(InputError, match="do not match"):
        read_fluxnet(path)


DD_HEADER = ["TIMESTAMP", "TA_F", "P_F", "SW_IN_F", "NEE_VUT_REF", "NEE_VUT_REF_QC"]


def test_daily_coverage_rule(tmp_path):
    days = pd.date_range("2001-01-01", "2001-03-31", freq="D")
    rows = []
    for d in days:
        nee = -1.0 if d.month == 1 else (-2.0 if d.month == 2 else float(d.day))
        qc = 1.0 if d.month != 3 else 0.5
        rows.append([d.strftime("%Y%m%d"), float(d.month), 2.0, 100.0, nee, qc])
    # February: 2 of 28 days missing (coverage 0.929); January: 4 missing (0.871)
    for i in (1, 2, 3, 4):
        rows[i][4] = -9999
        rows[i][5] = -9999
    for i in (31 + 5, 31 + 6):
        rows[i][4] = -9999
        rows[i][5] = -9999
    path = _write(tmp_path / "FLX_XX-Abc_FLUXNET2015_FULLSET_DD_2001-2001_1-4.csv", DD_HEADER,
                  rows)
    m = to_monthly(read_fluxnet(path), min_coverage=0.9)
    assert list(pd.DatetimeIndex(m["time"].values).month) == [1, 2, 3]
    assert np.isnan(m["nee"].values[0])                        # 27/31 < 0.9
    assert m["coverage"].values[0] == pytest.approx(27 / 31)
    assert m["nee"].values[1] == pytest.approx(-2.0 * 28)       # gaps filled by the mean
    assert m["nee"].values[2] == pytest.approx(sum(range(1, 32)))  # complete: the sum
    assert m["nep"].values[2] == pytest.approx(-sum(range(1, 32)))
    assert m["pr"].values[2] == pytest.approx(62.0) and m["pr"].attrs["units"] == "mm month-1"
    assert m["sol"].values[2] == pytest.approx(31 * 8.64)
    assert m["tas"].values[2] == pytest.approx(3.0)
    assert m["nee_qc"].values[1] == pytest.approx(26 / 28)      # missing days count as bad
    assert m["nee_qc"].values[2] == pytest.approx(0.5)
    m_all = to_monthly(read_fluxnet(path), min_coverage=0.8)
    assert m_all["nee"].values[0] == pytest.approx(-31.0)


def test_umol_to_gc_conversion():
    assert umol_co2_to_g_c(1.0, 1800) == pytest.approx(0.0216198, abs=5e-8)
    assert umol_co2_to_g_c(1.0, 86400) == pytest.approx(1.03775, abs=5e-6)
    np.testing.assert_allclose(umol_co2_to_g_c([2.0, -1.0], 3600), [0.0864792, -0.0432396],
                               rtol=1e-6)


def test_half_hourly_file_and_monthly_aggregation(tmp_path):
    start = pd.date_range("2001-02-01", "2001-02-28 23:30", freq="30min")
    rows = []
    for i, t in enumerate(start):
        end = t + pd.Timedelta(minutes=30)
        qc = 0 if i % 4 == 0 else (1 if i % 4 == 1 else 2)   # half the records good
        rows.append([t.strftime("%Y%m%d%H%M"), end.strftime("%Y%m%d%H%M"), 4.0, 0.1, 200.0,
                     1.0, qc])
    header = ["TIMESTAMP_START", "TIMESTAMP_END", "TA_F", "P_F", "SW_IN_F", "NEE_VUT_REF",
              "NEE_VUT_REF_QC"]
    path = _write(tmp_path / "FLX_XX-Abc_FLUXNET2015_FULLSET_HH_2001-2001_1-4.csv", header,
                  rows)
    ds = read_fluxnet(path)
    assert ds.attrs["resolution"] == "HH"
    assert ds["nee"].attrs["units"] == "g C m-2 d-1"
    np.testing.assert_allclose(ds["nee"].values, 1.037750, rtol=1e-5)
    np.testing.assert_allclose(ds["pr"].values, 4.8)  # 0.1 mm per half hour
    m = to_monthly(ds)
    assert m.sizes["time"] == 1
    assert m["nee"].values[0] == pytest.approx(0.0216198 * 48 * 28, rel=1e-5)
    assert m["pr"].values[0] == pytest.approx(0.1 * 48 * 28)
    assert m["nee_qc"].values[0] == pytest.approx(0.5)
    # the same file without the resolution in its name: detected from the 30-min step
    renamed = _write(tmp_path / "XX-Abc_halfhourly.csv", header, rows)
    assert read_fluxnet(renamed).attrs["resolution"] == "HH"
