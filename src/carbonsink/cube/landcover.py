"""Land-cover classes: reclassification and masks (carbonsink docs/methods.md §1.3, §1.4).

The class tables are package data (``cube/data/landcover_classes.csv`` and
``landcover_targets.csv``) and can be replaced by a user CSV with the same
columns (``table=``). Schemes:

* ``"igbp"`` — MCD12Q1 ``LC_Type1``: 1–17, 17 = water; 0/255 unclassified.
* ``"mcd12c1"`` — MCD12C1 IGBP layer: 0 = water, 1–16; 255 fill.
* ``"clcd"`` — the 30 m China land-cover dataset (Yang & Huang 2021): 1–9.

Each source class has a ``group`` (forest, shrub, savanna, grassland,
wetland, cropland, urban, snow_ice, barren, water) used by
:func:`landcover_mask`, and target classes for ``"7class"`` (001) and
``"8class"`` (000-like, with shrub as its own class and impervious for urban).
Codes that are not in the table (fill values, unclassified) become class 0 =
"no class" and are never kept by a mask.

User reclassification tables: a CSV with the columns ``scheme, code, name,
short, group`` and one column per target classification. Its ``7class`` /
``8class`` columns must use the package's class names (see
:func:`class_labels`); any other column (e.g. ``mine``) defines a new target
classification whose classes are numbered 1, 2, ... in order of first
appearance in that column (``reclassify(lc, scheme="x", to="mine",
table="my.csv")``).

:func:`landcover_at` gives each time step of a flux cube the land cover of
its year (the latest map not after it) or of a fixed reference year.
"""

from __future__ import annotations

import csv
from functools import lru_cache
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from ..errors import InputError, UnknownNameError
from .._xrutil import keep_coord_attrs

__all__ = ["landcover_table", "reclassify", "landcover_mask", "class_labels", "landcover_at",
           "GROUPS", "TARGETS"]

#: the package's target classifications: 7-class (seed 001) and 8-class (seed 000, with shrub)
TARGETS = ("7class", "8class")

GROUPS = ("forest", "shrub", "savanna", "grassland", "wetland", "cropland", "urban",
          "snow_ice", "barren", "water")


def _read_csv(source) -> list[dict[str, str]]:
    with open(source, newline="", encoding="utf-8") as fh:
        return [{k.strip(): (v or "").strip() for k, v in row.items()} for row in csv.DictReader(fh)]


@lru_cache(maxsize=None)
def _package_rows(name: str) -> tuple[tuple[tuple[str, str], ...], ...]:
    path = resources.files("carbonsink.cube") / "data" / name
    with resources.as_file(path) as p:
        return tuple(tuple(r.items()) for r in _read_csv(p))


def landcover_table(scheme: str = "igbp", table: str | PathLike | None = None) -> list[dict]:
    """Rows (dicts with code, name, short, group, 7class, 8class) of one scheme."""
    if table is not None:
        p = Path(table)
        if not p.exists():
            raise InputError(f"land-cover table '{p}' does not exist")
        rows = _read_csv(p)
    else:
        rows = [dict(r) for r in _package_rows("landcover_classes.csv")]
    schemes = sorted({r.get("scheme", "") for r in rows})
    out = [r for r in rows if r.get("scheme") == scheme]
    if not out:
        raise UnknownNameError("land-cover scheme", scheme, [s for s in schemes if s])
    for r in out:
        r["code"] = int(r["code"])
    return out


def _targets(to: str, rows: list[dict] | None = None) -> dict[str, int]:
    """``{class name: code}`` of target classification ``to``: a package target, or a column
    of a user table (``rows``), numbered 1, 2, ... in order of first appearance."""
    pkg = [dict(r) for r in _package_rows("landcover_targets.csv")]
    sel = {r["name"]: int(r["code"]) for r in pkg if r["target"] == to}
    if sel:
        return sel
    if rows and to in rows[0] and to not in ("scheme", "code", "name", "short", "group"):
        names = [r[to] for r in rows if r.get(to)]
        return {n: i for i, n in enumerate(dict.fromkeys(names), start=1)}
    names = sorted({r["target"] for r in pkg})
    if rows:
        names += [c for c in rows[0] if c not in ("scheme", "code", "name", "short", "group")
                  and c not in names]
    raise UnknownNameError("target classification", to, names)


def class_labels(to: str = "7class", *, scheme: str | None = None,
                 table: str | PathLike | None = None) -> dict[int, str]:
    """``{code: name}`` of a target classification (``"7class"``, ``"8class"``, or a column
    of the user ``table`` of ``scheme``)."""
    rows = landcover_table(scheme, table) if (table is not None and scheme is not None) else None
    return {c: n for n, c in _targets(to, rows).items()}


def _apply_lut(block: np.ndarray, lut: np.ndarray) -> np.ndarray:
    b = np.asarray(block)
    if b.dtype.kind == "f":
        valid = np.isfinite(b)
        idx = np.where(valid, b, -1).astype(np.int64)
    else:
        idx = b.astype(np.int64)
    ok = (idx >= 0) & (idx < lut.size)
    return np.where(ok, lut[np.clip(idx, 0, lut.size - 1)], lut.dtype.type(0))


def _map(lc: xr.DataArray, lut: np.ndarray) -> xr.DataArray:
    out = xr.apply_ufunc(_apply_lut, lc, kwargs={"lut": lut}, dask="parallelized",
                         output_dtypes=[lut.dtype], keep_attrs=False)
    return keep_coord_attrs(out, lc)


def _check_int_codes(lc: xr.DataArray) -> None:
    if lc.dtype.kind not in "iufb":
        raise InputError(f"land cover '{lc.name}' must hold numeric class codes, found dtype "
                         f"{lc.dtype}")


def reclassify(lc: xr.DataArray, scheme: str = "igbp", to: str = "7class",
               overrides: dict[int, str] | None = None,
               table: str | PathLike | None = None) -> xr.DataArray:
    """Map source class codes to ``to`` classes (integer codes, 0 = no class).

    ``to`` is ``"7class"`` (the seven classes of Wang et al. 2025, seed 001: forest,
    grassland, cropland, wetland, urban, water, barren), ``"8class"`` (the classes of
    the land transfer matrix of seed 000, Table 4: forest, shrub, grassland, cropland,
    wetland, impervious, water, barren) or a column of a user ``table``.
    ``overrides`` maps source codes to target class names, e.g.
    ``{8: "forest"}`` for woody savannas as forest (carbonsink docs/methods.md §1.4 option).
    The result is ``uint8`` with CF ``flag_values``/``flag_meanings``
    attributes, nodata 0 and the CRS of ``lc``; lazy for dask input.
    """
    _check_int_codes(lc)
    rows = landcover_table(scheme, table)
    targets = _targets(to, rows)
    if to not in rows[0]:
        raise InputError(f"land-cover table for '{scheme}' has no '{to}' column")
    mapping = {r["code"]: r[to] for r in rows}
    for code, name in (overrides or {}).items():
        mapping[int(code)] = name
    bad = {n for n in mapping.values() if n not in targets}
    if bad:
        raise UnknownNameError(f"{to} class name(s)", ", ".join(sorted(bad)), targets)
    lut = np.zeros(max(mapping) + 1, dtype=np.uint8)
    for code, name in mapping.items():
        if code >= 0:
            lut[code] = targets[name]
    out = _map(lc, lut)
    ordered = sorted(targets.items(), key=lambda kv: kv[1])
    out.attrs = {
        "long_name": f"land-cover class ({to}, reclassified from {scheme})",
        "units": "1",
        "flag_values": np.array([c for _, c in ordered], dtype=np.uint8),
        "flag_meanings": " ".join(n for n, _ in ordered),
        "classification": to,
        "source_scheme": scheme,
    }
    if overrides:
        out.attrs["overrides"] = ", ".join(f"{k}->{v}" for k, v in sorted(overrides.items()))
    out.name = lc.name if lc.name is not None else "landcover"
    if lc.rio.crs is not None:
        out = out.rio.write_crs(lc.rio.crs)
    return out.rio.write_nodata(0)


def landcover_mask(lc: xr.DataArray, mask_classes: Any = ("water", "snow_ice"),
                   scheme: str = "igbp", table: str | PathLike | None = None) -> xr.DataArray:
    """Boolean keep-mask: True where the class is **not** in ``mask_classes``.

    ``mask_classes`` holds group names (``"water"``, ``"snow_ice"``,
    ``"barren"``, ``"urban"``, ...), short IGBP names (``"BAR"``) or integer
    codes of ``scheme``. Codes absent from the table (fill, unclassified) are
    not kept. carbonsink docs/methods.md §1.3: water and permanent snow/ice are always masked;
    add ``"barren"`` and ``"urban"`` to mask those as well.
    """
    _check_int_codes(lc)
    rows = landcover_table(scheme, table)
    if isinstance(mask_classes, (str, int)):
        mask_classes = (mask_classes,)
    drop: set[int] = set()
    for item in mask_classes:
        if isinstance(item, (int, np.integer)):
            hits = {r["code"] for r in rows if r["code"] == int(item)}
        else:
            key = str(item).casefold()
            hits = {r["code"] for r in rows
                    if r["group"].casefold() == key or r["short"].casefold() == key}
            if not hits and key in GROUPS:
                continue  # a known group that this scheme lacks: nothing to mask
        if not hits:
            groups = sorted({r["group"] for r in rows} | set(GROUPS))
            err = UnknownNameError("land-cover class", str(item), groups)
            err.args = (f"{err} (or the short names / codes of scheme '{scheme}')",)
            raise err
        drop |= hits
    lut = np.zeros(max(r["code"] for r in rows) + 1, dtype=bool)
    for r in rows:
        lut[r["code"]] = r["code"] not in drop
    out = _map(lc, lut)
    out.attrs = {"long_name": "land-cover keep mask (True = kept)", "units": "1",
                 "masked_classes": " ".join(map(str, mask_classes)), "scheme": scheme}
    out.name = "landcover_mask"
    if lc.rio.crs is not None:
        out = out.rio.write_crs(lc.rio.crs)
    return out


def landcover_at(lc: xr.DataArray, time: Any, *,
                 reference_year: int | str | None = None) -> xr.DataArray:
    """The land cover that applies to each time step of a flux cube.

    Parameters
    ----------
    lc : DataArray ``(time, y, x)`` of yearly land-cover maps (time = any date in the year
        of the map, e.g. Jan 1) or a single map ``(y, x)``; codes or reclassified classes.
    time : the time coordinate of the fluxes (datetimes, e.g. ``annual["time"]``).
    reference_year : None (default) — each step takes the map of its own year, or the
        latest map before it (steps before the first map take the first map); an integer
        year, ``"first"`` or ``"last"`` — every step takes that one map (a map of that
        year must exist).

    Returns
    -------
    DataArray ``(time, y, x)`` on the flux time axis (lazy for dask input) with attributes
    ``landcover_attribution`` (``"year of each step"`` or ``"reference year <y>"``) and
    ``landcover_map_years`` (the year of the map used at each step, comma separated).

    Raises
    ------
    InvalidArgumentError
        ``reference_year`` names a year without a map.
    """
    from ..errors import InvalidArgumentError

    tt = xr.DataArray(np.asarray(time), dims="time") if not isinstance(time, xr.DataArray) \
        else time
    tyears = np.asarray(_years_of(tt), dtype=int)
    attrs = dict(lc.attrs)
    if "time" not in lc.dims:
        out = lc.expand_dims(time=tt.values, axis=0)
        used = np.full(tyears.size, -1)
        attribution = "one map for all years"
    else:
        years = _years_of(lc["time"])
        order = np.argsort(years, kind="stable")
        lc, years = lc.isel(time=order), years[order]
        if reference_year is None:
            idx = np.clip(np.searchsorted(years, tyears, side="right") - 1, 0, years.size - 1)
            attribution = "year of each step"
        else:
            if reference_year == "first":
                ref = int(years[0])
            elif reference_year == "last":
                ref = int(years[-1])
            else:
                try:
                    ref = int(reference_year)
                except (TypeError, ValueError):
                    raise InvalidArgumentError(
                        f"reference_year must be a year, 'first', 'last' or None, found "
                        f"{reference_year!r}") from None
            if ref not in years:
                raise InvalidArgumentError(
                    f"reference_year {ref}: no land-cover map of that year; maps exist for "
                    f"{', '.join(map(str, years))}. Fix: choose one of them")
            idx = np.full(tyears.size, int(np.flatnonzero(years == ref)[0]))
            attribution = f"reference year {ref}"
        used = years[idx]
        out = lc.isel(time=xr.DataArray(idx, dims="time")).drop_vars("time", errors="ignore")
        out = out.assign_coords(time=tt.values)
    out.attrs = attrs
    out.attrs["landcover_attribution"] = attribution
    out.attrs["landcover_map_years"] = ",".join(str(int(y)) for y in used) \
        if (used >= 0).all() else "static"
    return out


def _years_of(t: xr.DataArray) -> np.ndarray:
    """Calendar years of a time coordinate (datetimes, cftime or plain integer years)."""
    if np.issubdtype(t.dtype, np.integer):
        return np.asarray(t.values, dtype=int)
    return np.asarray(t.dt.year.values, dtype=int)
