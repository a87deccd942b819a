"""Reader for FLUXNET2015 / ONEFlux eddy-covariance files and site metadata.

FLUXNET2015 and the ONEFlux products (AmeriFlux, ICOS, ...) ship one CSV per
site and temporal resolution. The resolution is in the file name
(``FLX_CN-Ha2_FLUXNET2015_FULLSET_DD_2003-2005_1-4.csv``: ``HH`` half-hourly,
``HR`` hourly, ``DD`` daily, ``WW`` weekly, ``MM`` monthly, ``YY`` yearly) and
in the timestamp format (``TIMESTAMP`` = ``YYYY``, ``YYYYMM`` or ``YYYYMMDD``
for YY, MM and DD; ``TIMESTAMP_START``/``TIMESTAMP_END`` = ``YYYYMMDDHHMM``
for HH/HR). Missing values are ``-9999``.

Units in the files (carbonsink docs/methods.md §5.1; FLUXNET2015 variable list):

=================  ==========================  ===================  ==============
variable           HH / HR                     DD / MM              YY
=================  ==========================  ===================  ==============
NEE, GPP, RECO     µmol CO2 m-2 s-1            g C m-2 d-1 (mean    g C m-2 yr-1
                                               daily flux at MM)
TA_F               degC                        degC                 degC
P_F                mm per record               mm d-1               mm yr-1
SW_IN_F            W m-2                       W m-2                W m-2
VPD_F              hPa                         hPa                  hPa
NEE_*_QC           flag 0-3                    fraction 0-1         fraction 0-1
=================  ==========================  ===================  ==============

:func:`read_fluxnet` returns an :class:`xarray.Dataset` with dimension
``time`` (period starts) holding carbonsink's canonical variables:

* monthly (MM) files: ``nee``, ``gpp``, ``reco``, ``nep`` (= −NEE) in
  ``g C m-2 month-1`` (mean daily flux × days in the month), ``tas`` (degC),
  ``pr`` (``mm month-1``), ``sol`` (``MJ m-2 month-1``), ``vpd`` (hPa) and
  ``nee_qc`` (fraction of measured or good-quality gap-filled records);
* daily (DD) files: the same variables per day (``g C m-2 d-1``, ``mm d-1``,
  ``MJ m-2 d-1``); :func:`to_monthly` aggregates them to calendar months;
* half-hourly/hourly files: fluxes as mean rates in ``g C m-2 d-1``
  (µmol CO2 m-2 s-1 × 12.011e-6 g C µmol⁻¹ × 86400 s d⁻¹), precipitation as
  ``mm d-1``, radiation as ``MJ m-2 d-1``; the HH/HR quality flag is turned
  into a 0/1 good-quality indicator (flag 0 measured or 1 good gap-fill);
* yearly (YY) files: fluxes in ``g C m-2 yr-1``, ``pr`` in ``mm yr-1``,
  ``sol`` in ``MJ m-2 yr-1``.

Variables a file does not have are left out; only a timestamp and the NEE
column are required. Weekly (WW) files are not supported.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InputError, InvalidArgumentError
from ..units import to_units

__all__ = [
    "MISSING_VALUE",
    "MOLAR_MASS_C",
    "FluxnetName",
    "parse_fluxnet_name",
    "read_fluxnet",
    "read_sites",
    "to_monthly",
    "umol_co2_to_g_c",
]

MISSING_VALUE = -9999.0
#: g of carbon per mol of CO2 (12.011 g mol⁻¹), used for µmol CO2 → g C.
MOLAR_MASS_C = 12.011

_RESOLUTIONS = ("HH", "HR", "DD", "WW", "MM", "YY")
_RES_RE = re.compile(r"_(HH|HR|DD|WW|MM|YY)_", re.IGNORECASE)
_SITE_RE = re.compile(r"(?<![A-Za-z0-9])([A-Z]{2}-[A-Za-z0-9]{3})(?![A-Za-z0-9])")
_YEARS_RE = re.compile(r"_(\d{4})-(\d{4})(?:_|\.|$)")
_PRODUCT_RE = re.compile(r"_(FULLSET|SUBSET|ERAI|AUXMETEO|AUXNEE)_", re.IGNORECASE)

# Canonical output units per resolution for the non-carbon variables.
_PERIOD_SUFFIX = {"HH": " d-1", "HR": " d-1", "DD": " d-1", "MM": " month-1", "YY": " yr-1"}
_STEPS_PER_DAY = {"HH": 48, "HR": 24, "DD": 1}


@dataclass(frozen=True)
class _Column:
    """How one FLUXNET column becomes a canonical carbonsink variable."""

    name: str        # carbonsink name
    kind: str        # carbon | temperature | precipitation | radiation | vpd
    long_name: str


# The carbon columns are set per call (NEE/GPP/RECO variants); the others are fixed.
_MET_COLUMNS: dict[str, _Column] = {
    "TA_F": _Column("tas", "temperature", "air temperature, consolidated (TA_F)"),
    "P_F": _Column("pr", "precipitation", "precipitation, consolidated (P_F)"),
    "SW_IN_F": _Column("sol", "radiation", "incoming shortwave radiation, consolidated (SW_IN_F)"),
    "VPD_F": _Column("vpd", "vpd", "vapour pressure deficit, consolidated (VPD_F)"),
}


@dataclass(frozen=True)
class FluxnetName:
    """What a FLUXNET/ONEFlux file name says about its content."""

    site: str | None
    resolution: str | None
    product: str | None
    first_year: int | None
    last_year: int | None


def parse_fluxnet_name(path: str | Path) -> FluxnetName:
    """Parse site id, resolution, product and years from a FLUXNET file name.

    Works for FLUXNET2015 (``FLX_CN-Cha_FLUXNET2015_SUBSET_MM_2003-2005_1-4.csv``)
    and ONEFlux releases (``AMF_US-Ha1_FLUXNET_FULLSET_HH_1991-2020_3-5.csv``).
    Fields that cannot be found are ``None``.
    """
    name = Path(path).name
    site = _SITE_RE.search(name)
    res = _RES_RE.search(name)
    prod = _PRODUCT_RE.search(name)
    years = _YEARS_RE.search(name)
    return FluxnetName(
        site=site.group(1) if site else None,
        resolution=res.group(1).upper() if res else None,
        product=prod.group(1).upper() if prod else None,
        first_year=int(years.group(1)) if years else None,
        last_year=int(years.group(2)) if years else None,
    )


def umol_co2_to_g_c(flux, seconds: float):
    """Carbon amount (g C m-2) of a CO2 flux (µmol CO2 m-2 s-1) held for ``seconds``.

    ``flux × 12.011e-6 × seconds``: 0.0216198 g C m-2 per half hour (1800 s)
    and 1.03775 g C m-2 per day of a constant 1 µmol m-2 s-1 (carbonsink docs/methods.md §5.1).
    """
    factor = MOLAR_MASS_C * 1e-6 * float(seconds)
    if isinstance(flux, xr.DataArray):
        return flux * factor
    return np.asarray(flux, dtype=float) * factor


def _input_error(path: Path, what: str, fix: str) -> InputError:
    return InputError(f"{path}: {what}. Fix: {fix}.")


def _read_csv(path: Path) -> pd.DataFrame:
    if not path.is_file():
        raise _input_error(path, "file not found", "check the path to the FLUXNET CSV file")
    try:
        df = pd.read_csv(path, dtype={"TIMESTAMP": str, "TIMESTAMP_START": str,
                                      "TIMESTAMP_END": str},
                         na_values=["-9999", "-9999.0", "-9999.00", "-9999.000"],
                         low_memory=False)
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise _input_error(path, f"not a readable CSV file ({exc})",
                           "pass a FLUXNET2015/ONEFlux CSV file (FLX_<site>_..._<res>_...csv)"
                           ) from None
    return df


def _detect_resolution(path: Path, df: pd.DataFrame, from_name: str | None) -> str:
    if from_name is not None:
        return from_name
    if "TIMESTAMP" in df.columns:
        stamps = df["TIMESTAMP"].dropna().astype(str).str.strip()
        lengths = set(stamps.str.len()) if len(stamps) else set()
        by_len = {4: "YY", 6: "MM", 8: "DD"}
        if len(lengths) == 1 and next(iter(lengths)) in by_len:
            return by_len[next(iter(lengths))]
    if "TIMESTAMP_START" in df.columns:
        start = pd.to_datetime(df["TIMESTAMP_START"].astype(str).str.strip(),
                               format="%Y%m%d%H%M", errors="coerce").dropna()
        if len(start) > 1:
            step = (start.iloc[1:].values - start.iloc[:-1].values).min()
            minutes = step / np.timedelta64(1, "m")
            if minutes == 30:
                return "HH"
            if minutes == 60:
                return "HR"
            if minutes == 7 * 24 * 60:
                return "WW"
    raise _input_error(path, "cannot tell the temporal resolution from the file name or the "
                       "TIMESTAMP column", "pass resolution='MM' (or HH, HR, DD, YY)")


def _parse_time(path: Path, df: pd.DataFrame, resolution: str) -> pd.DatetimeIndex:
    fmt = {"YY": "%Y", "MM": "%Y%m", "DD": "%Y%m%d", "HH": "%Y%m%d%H%M", "HR": "%Y%m%d%H%M"}
    column = "TIMESTAMP" if resolution in ("YY", "MM", "DD") else "TIMESTAMP_START"
    if column not in df.columns:
        raise _input_error(path, f"missing timestamp column '{column}' for a {resolution} file "
                           f"(columns found: {', '.join(map(str, df.columns[:8]))}...)",
                           "pass a FLUXNET2015/ONEFlux CSV file")
    raw = df[column].astype(str).str.strip()
    time = pd.to_datetime(raw, format=fmt[resolution], errors="coerce")
    bad = raw[time.isna()]
    if len(bad):
        raise _input_error(path, f"{len(bad)} timestamp(s) in '{column}' do not match "
                           f"{fmt[resolution]!r} for a {resolution} file, e.g. {bad.iloc[0]!r}",
                           "check that the resolution in the file name matches its content "
                           "or pass resolution=")
    index = pd.DatetimeIndex(time, name="time").as_unit("ns")
    if index.has_duplicates or not index.is_monotonic_increasing:
        raise _input_error(path, f"timestamps in '{column}' are not strictly increasing",
                           "pass an unmodified FLUXNET file")
    return index


def _carbon_units(resolution: str) -> tuple[str, str]:
    """(units as read after any µmol conversion, canonical units) for carbon fluxes."""
    if resolution in ("HH", "HR", "DD"):
        return "g C m-2 d-1", "g C m-2 d-1"
    if resolution == "MM":
        return "g C m-2 d-1", "g C m-2 month-1"
    return "g C m-2 yr-1", "g C m-2 yr-1"


def read_fluxnet(path: str | Path, *, resolution: str | None = None, site: str | None = None,
                 nee: str = "NEE_VUT_REF", partitioning: str = "NT",
                 gpp: str | None = None, reco: str | None = None) -> xr.Dataset:
    """Read one FLUXNET2015/ONEFlux CSV file into canonical carbonsink variables.

    Parameters
    ----------
    path
        The CSV file. Resolution and site id are taken from its name
        (``..._<site>_..._<RES>_...``), else from the timestamp format.
    resolution
        Override: ``"HH"``, ``"HR"``, ``"DD"``, ``"MM"`` or ``"YY"``.
    site
        Override of the site id (required when the name holds none).
    nee
        NEE column (default ``NEE_VUT_REF``, the reference variable with
        variable USTAR threshold, carbonsink docs/methods.md §5.1); its ``<nee>_QC`` column gives
        ``nee_qc``.
    partitioning
        ``"NT"`` (night-time, Reichstein; default) or ``"DT"`` (daytime,
        Lasslop) for the GPP and RECO columns ``GPP_<p>_VUT_REF``,
        ``RECO_<p>_VUT_REF``; ``gpp=``/``reco=`` name other columns.

    Returns
    -------
    xarray.Dataset with dimension ``time`` (period starts) and variables among
    ``nee, nep, gpp, reco, nee_qc, tas, pr, sol, vpd`` (see the module
    docstring for units), a scalar ``site`` coordinate and attributes
    ``site``, ``resolution``, ``source``, ``product``, ``nee_variable``,
    ``gpp_variable``, ``reco_variable``.

    Raises
    ------
    InputError
        The file is missing, not a CSV, lacks the timestamp or NEE column
        (the message names the file and the missing columns), or is weekly.
    """
    path = Path(path)
    meta = parse_fluxnet_name(path)
    df = _read_csv(path)
    res = (resolution or "").upper() or _detect_resolution(path, df, meta.resolution)
    if res not in _RESOLUTIONS:
        raise _input_error(path, f"unknown resolution {res!r}",
                           f"use one of {', '.join(r for r in _RESOLUTIONS if r != 'WW')}")
    if res == "WW":
        raise _input_error(path, "weekly (WW) FLUXNET files are not supported",
                           "use the DD file of the site and carbonsink.io.fluxnet.to_monthly")
    partitioning = partitioning.upper()
    if partitioning not in ("NT", "DT"):
        raise InvalidArgumentError(f"partitioning must be 'NT' or 'DT', got {partitioning!r}")
    gpp_col = gpp or f"GPP_{partitioning}_VUT_REF"
    reco_col = reco or f"RECO_{partitioning}_VUT_REF"

    ts_col = "TIMESTAMP" if res in ("YY", "MM", "DD") else "TIMESTAMP_START"
    missing = [c for c in (ts_col, nee) if c not in df.columns]
    if missing:
        raise _input_error(path, "not a FLUXNET-like file: missing column(s) "
                           + ", ".join(repr(c) for c in missing),
                           "pass a FLUXNET2015/ONEFlux CSV file, or name the NEE column with "
                           "nee= and the resolution with resolution=")
    site_id = site or meta.site
    if site_id is None:
        raise _input_error(path, "no site id (such as CN-Ha2) in the file name", "pass site='CN-Xyz'")
    time = _parse_time(path, df, res)
    coords = {"time": time}

    # numeric columns; -9999 (also when it came through as a float) -> NaN
    def column(name: str) -> np.ndarray:
        values = pd.to_numeric(df[name], errors="coerce").to_numpy(dtype=float, copy=True)
        values[values == MISSING_VALUE] = np.nan
        return values

    data: dict[str, xr.DataArray] = {}
    read_units, canon_units = _carbon_units(res)
    for name, col, long_name in (("nee", nee, "net ecosystem exchange"),
                                 ("gpp", gpp_col, "gross primary production"),
                                 ("reco", reco_col, "ecosystem respiration")):
        if col not in df.columns:
            continue
        values = column(col)
        if res in ("HH", "HR"):  # µmol CO2 m-2 s-1 -> mean rate in g C m-2 d-1
            values = umol_co2_to_g_c(values, 86400.0)
        da = xr.DataArray(values, dims="time", coords=coords,
                          attrs={"units": read_units, "long_name": f"{long_name} ({col})",
                                 "fluxnet_variable": col})
        data[name] = to_units(da, canon_units, variable=name)
    data["nep"] = -data["nee"]
    data["nep"].attrs.update(long_name=f"net ecosystem production (-{nee})",
                             fluxnet_variable=f"-{nee}")

    qc_col = f"{nee}_QC"
    if qc_col in df.columns:
        qc = column(qc_col)
        if res in ("HH", "HR"):
            good = np.where(np.isnan(qc), np.nan, (qc <= 1).astype(float))
            qc = good
            desc = "1 where the record is measured or good-quality gap-filled (flag 0/1)"
        else:
            desc = "fraction of measured or good-quality gap-filled records"
        data["nee_qc"] = xr.DataArray(qc, dims="time", coords=coords,
                                      attrs={"units": "1", "long_name": f"{qc_col}: {desc}",
                                             "fluxnet_variable": qc_col})

    suffix = _PERIOD_SUFFIX[res]
    for col, spec in _MET_COLUMNS.items():
        if col not in df.columns:
            continue
        values = column(col)
        attrs = {"long_name": spec.long_name, "fluxnet_variable": col}
        if spec.kind == "temperature":
            da = xr.DataArray(values, dims="time", coords=coords, attrs={**attrs, "units": "degC"})
        elif spec.kind == "vpd":
            da = xr.DataArray(values, dims="time", coords=coords, attrs={**attrs, "units": "hPa"})
        elif spec.kind == "precipitation":
            if res in ("HH", "HR"):  # mm per record -> mm d-1
                values = values * _STEPS_PER_DAY[res]
            found = "mm yr-1" if res == "YY" else "mm d-1"
            da = xr.DataArray(values, dims="time", coords=coords, attrs={**attrs, "units": found})
            da = to_units(da, "mm" + suffix, variable="pr")
        else:  # radiation, W m-2 mean
            da = xr.DataArray(values, dims="time", coords=coords, attrs={**attrs, "units": "W m-2"})
            da = to_units(da, "MJ m-2" + suffix, variable="sol")
        data[spec.name] = da

    ds = xr.Dataset(data)
    ds = ds.assign_coords(site=site_id)
    ds.attrs.update(site=site_id, resolution=res, source=path.name,
                    product=meta.product or "", nee_variable=nee,
                    gpp_variable=gpp_col if "gpp" in ds else "",
                    reco_variable=reco_col if "reco" in ds else "",
                    missing_value=MISSING_VALUE)
    return ds


def to_monthly(ds: xr.Dataset, *, min_coverage: float = 0.9) -> xr.Dataset:
    """Aggregate a daily (DD) or sub-daily (HH/HR) dataset to calendar months.

    Rule, per variable and month: ``coverage`` = valid records / records the
    month should have (days × records per day). Months with coverage below
    ``min_coverage`` are NaN. Otherwise

    * fluxes (``nee, gpp, reco, nep``), ``pr`` and ``sol``: the mean daily
      value of the valid records × days in the month — the sum of the daily
      values when the month is complete, the gaps filled with the month's mean
      otherwise — in ``g C m-2 month-1``, ``mm month-1``, ``MJ m-2 month-1``;
    * ``tas`` and ``vpd``: the mean;
    * ``nee_qc``: the sum of the daily good-quality fractions over the days of
      the month (a missing record counts as not good), i.e. the fraction of
      good-quality records of the whole month.

    The result has ``resolution = "MM"``, ``aggregated_from`` and a
    ``coverage`` variable (of ``nee``). Monthly (MM) input is returned as is.
    """
    res = ds.attrs.get("resolution")
    if res == "MM":
        return ds
    if res not in _STEPS_PER_DAY:
        raise InputError(f"to_monthly: cannot aggregate resolution {res!r} to months; "
                         "pass a DD, HH or HR dataset from read_fluxnet")
    if not 0.0 <= min_coverage <= 1.0:
        raise InvalidArgumentError(f"min_coverage must be in [0, 1], got {min_coverage}")
    steps = _STEPS_PER_DAY[res]
    time = ds["time"].to_index()
    months = pd.date_range(time[0].to_period("M").to_timestamp(),
                           time[-1].to_period("M").to_timestamp(), freq="MS",
                           name="time").as_unit("ns")
    month_of = time.to_period("M").to_timestamp()
    expected = pd.Series(months.days_in_month * steps, index=months).astype(float)

    out: dict[str, xr.DataArray] = {}
    coverage_nee = None
    for name, da in ds.data_vars.items():
        series = pd.Series(da.values, index=month_of)
        grouped = series.groupby(level=0)
        mean = grouped.mean().reindex(months)
        count = grouped.count().reindex(months).fillna(0.0)
        coverage = count / expected
        attrs = dict(da.attrs)
        if name == "nee_qc":
            values = (series.fillna(0.0).groupby(level=0).sum().reindex(months).fillna(0.0)
                      / expected)
            attrs["long_name"] = (f"{attrs.get('fluxnet_variable', name)}: fraction of the "
                                  "month's records that are measured or good-quality gap-filled")
            out[name] = xr.DataArray(values.to_numpy(), dims="time", coords={"time": months},
                                     attrs=attrs)
            continue
        values = mean.where(coverage >= min_coverage)
        units = attrs.get("units", "")
        if units.endswith(" d-1"):
            values = values * months.days_in_month.to_numpy()
            attrs["units"] = units[: -len(" d-1")] + " month-1"
        out[name] = xr.DataArray(values.to_numpy(), dims="time", coords={"time": months},
                                 attrs=attrs)
        if name == "nee":
            coverage_nee = coverage
    if coverage_nee is not None:
        out["coverage"] = xr.DataArray(coverage_nee.to_numpy(), dims="time",
                                       coords={"time": months},
                                       attrs={"units": "1", "long_name": "fraction of the "
                                              "month's NEE records present"})
    result = xr.Dataset(out)
    if "site" in ds.coords:
        result = result.assign_coords(site=ds["site"].values)
    result.attrs.update(ds.attrs)
    result.attrs.update(resolution="MM", aggregated_from=res, min_coverage=min_coverage)
    return result


_SITE_COLUMNS = {"SITE_ID": "site", "SITE_NAME": "name", "LOCATION_LAT": "lat",
                 "LOCATION_LONG": "lon", "LOCATION_ELEV": "elev", "IGBP": "igbp",
                 "MAT": "mat", "MAP": "map"}


def read_sites(path: str | Path) -> pd.DataFrame:
    """Read a FLUXNET site list (``SITE_ID, SITE_NAME, LOCATION_LAT, LOCATION_LONG,
    LOCATION_ELEV, IGBP, MAT, MAP``).

    Returns a DataFrame indexed by ``site`` with columns ``name, lat, lon,
    elev, igbp, mat`` (mean annual temperature, degC) and ``map`` (mean
    annual precipitation, mm); absent optional columns are NaN. Raises
    :class:`InputError` naming the file and the missing columns when
    ``SITE_ID``, ``LOCATION_LAT`` or ``LOCATION_LONG`` is absent.
    """
    path = Path(path)
    df = _read_csv(path)
    missing = [c for c in ("SITE_ID", "LOCATION_LAT", "LOCATION_LONG") if c not in df.columns]
    if missing:
        raise _input_error(path, "not a FLUXNET site list: missing column(s) "
                           + ", ".join(repr(c) for c in missing),
                           "pass a CSV with SITE_ID, LOCATION_LAT, LOCATION_LONG "
                           "(and optionally SITE_NAME, IGBP, MAT, MAP)")
    out = pd.DataFrame({new: df[old] if old in df.columns else np.nan
                        for old, new in _SITE_COLUMNS.items()})
    for col in ("lat", "lon", "elev", "mat", "map"):
        out[col] = pd.to_numeric(out[col], errors="coerce").replace(MISSING_VALUE, np.nan)
    out["site"] = out["site"].astype(str).str.strip()
    if out["site"].duplicated().any():
        dup = out.loc[out["site"].duplicated(), "site"].tolist()
        raise _input_error(path, f"duplicate site ids {dup}", "keep one row per site")
    return out.set_index("site")
