"""Statistics of regional annual series (002 Table 2 style), for every zone at once.

:func:`series_statistics` takes a long table of yearly values (one series per combination of
its key columns, e.g. experiment × combination × zone × variable × statistic) and returns,
per series: the multi-year mean, the lowest and highest values with their years, the
cumulative sum, the OLS slope with its t-test p and the Theil–Sen slope with the
Mann–Kendall p (docs/methods.md §6.1–6.3 of the carbonsink docs; Sen 1968, Mann 1945, Kendall 1975),
and the means of chosen periods (decades) with the differences between consecutive periods.
The trend kernels run over all series at once (one array ``(series, year)``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import InvalidArgumentError
from ..stats import mann_kendall, ols_trend

__all__ = ["series_statistics", "decade_periods"]


def decade_periods(years: Sequence[int], length: int = 10,
                   start: int | None = None) -> list[tuple[int, int]]:
    """Consecutive periods of ``length`` years from ``start`` (default: the first year) that lie
    wholly inside ``years``; e.g. 2001–2021 → [(2001, 2010), (2011, 2020)]."""
    if length < 1:
        raise InvalidArgumentError(f"decade length must be >= 1 year, got {length}")
    y0, y1 = int(min(years)), int(max(years))
    s = y0 if start is None else int(start)
    out = []
    while s + length - 1 <= y1:
        if s >= y0:
            out.append((s, s + length - 1))
        s += length
    return out


def _slope_units(units: str) -> str:
    u = units.strip()
    for suffix in (" yr-1", " a-1"):
        if u.endswith(suffix):
            return u[: -len(suffix)] + " yr-2"
    return f"{u} yr-1" if u not in ("", "1") else "yr-1"


def _cumulative_units(units: str) -> str:
    u = units.strip()
    return u[: -len(" yr-1")] if u.endswith(" yr-1") else u


def series_statistics(df: pd.DataFrame, *, keys: Sequence[str], year: str = "year",
                      periods: Sequence[tuple[int, int]] | None = None,
                      min_years: int = 4) -> pd.DataFrame:
    """Per-series summary statistics of a long yearly table (tidy output).

    Parameters
    ----------
    df
        Columns ``keys`` (identify a series), ``year``, ``units`` and ``value``.
    keys
        The columns that identify one series; ``statistic`` of the input (e.g. ``mean``,
        ``total``) should be among them and is renamed ``of`` in the output.
    periods
        ``[(first_year, last_year), ...]`` whose means are reported (statistic
        ``period_mean``) with the differences between consecutive periods
        (``period_difference``, later minus earlier); default: whole decades from the first
        year (:func:`decade_periods`).
    min_years
        Series with fewer valid years get NaN trends.

    Returns
    -------
    DataFrame with the key columns (``statistic`` → ``of``), ``period`` (``""`` or
    ``"2001-2010"`` / ``"2011-2020 minus 2001-2010"``), ``statistic``, ``units``, ``value``.
    Statistics: ``multi_year_mean``, ``min``, ``year_of_min``, ``max``, ``year_of_max``,
    ``cumulative``, ``ols_slope``, ``ols_p``, ``sen_slope``, ``mk_p``, ``n_years``,
    ``period_mean``, ``period_difference``.
    """
    keys = list(keys)
    if df.empty:
        return pd.DataFrame(columns=[*(k if k != "statistic" else "of" for k in keys), "period",
                                     "statistic", "units", "value"])
    wide = df.pivot_table(index=keys, columns=year, values="value", aggfunc="first",
                          dropna=False, sort=False)
    units = df.groupby(keys, sort=False)["units"].first().reindex(wide.index)
    years = np.asarray(wide.columns, dtype=int)
    order = np.argsort(years)
    years, values = years[order], wide.to_numpy(dtype=float)[:, order]
    n = values.shape[0]
    valid = np.isfinite(values)
    nvalid = valid.sum(axis=1)
    with np.errstate(invalid="ignore"):
        mean = np.where(nvalid > 0, np.nansum(values, axis=1) / np.maximum(nvalid, 1), np.nan)
    lo = np.where(valid, values, np.inf)
    hi = np.where(valid, values, -np.inf)
    imin, imax = lo.argmin(axis=1), hi.argmax(axis=1)
    rows = np.arange(n)
    vmin = np.where(nvalid > 0, values[rows, imin], np.nan)
    vmax = np.where(nvalid > 0, values[rows, imax], np.nan)
    ymin = np.where(nvalid > 0, years[imin], np.nan)
    ymax = np.where(nvalid > 0, years[imax], np.nan)
    cum = np.where(nvalid > 0, np.nansum(values, axis=1), np.nan)
    da = xr.DataArray(values, dims=("series", "time"), coords={"time": years.astype(float)})
    if len(years) >= min_years:
        mv = min(len(years), max(min_years, 3))
        ols = ols_trend(da, "time", min_valid=mv).compute()
        mk = mann_kendall(da, "time", min_valid=mv).compute()
        ols_slope, ols_p = ols["slope"].values, ols["p"].values
        sen_slope, mk_p = mk["slope"].values, mk["p"].values
    else:
        ols_slope = ols_p = sen_slope = mk_p = np.full(n, np.nan)
    plist = decade_periods(years) if periods is None else [tuple(map(int, p)) for p in periods]
    pmeans = []
    for a, b in plist:
        sel = (years >= a) & (years <= b)
        if not sel.any():
            raise InvalidArgumentError(f"period {a}-{b} lies outside the years "
                                       f"{years.min()}-{years.max()}")
        with np.errstate(invalid="ignore"):
            pmeans.append(np.nanmean(np.where(valid[:, sel], values[:, sel], np.nan), axis=1)
                          if valid[:, sel].any() else np.full(n, np.nan))
    index = wide.index.to_frame(index=False).rename(columns={"statistic": "of"})
    out = []

    def block(stat, vals, unit_fn=None, period=""):
        f = index.copy()
        f["period"] = period
        f["statistic"] = stat
        f["units"] = [unit_fn(u) if unit_fn else u for u in units.values] if unit_fn != "1" \
            else "1"
        f["value"] = np.asarray(vals, dtype=float)
        out.append(f)

    block("multi_year_mean", mean)
    block("min", vmin)
    block("year_of_min", ymin, "1")
    block("max", vmax)
    block("year_of_max", ymax, "1")
    block("cumulative", cum, _cumulative_units)
    block("ols_slope", ols_slope, _slope_units)
    block("ols_p", ols_p, "1")
    block("sen_slope", sen_slope, _slope_units)
    block("mk_p", mk_p, "1")
    block("n_years", nvalid, "1")
    for (a, b), pm in zip(plist, pmeans, strict=True):
        block("period_mean", pm, period=f"{a}-{b}")
    for i in range(1, len(plist)):
        (a0, b0), (a1, b1) = plist[i - 1], plist[i]
        block("period_difference", pmeans[i] - pmeans[i - 1],
              period=f"{a1}-{b1} minus {a0}-{b0}")
    return pd.concat(out, ignore_index=True)
