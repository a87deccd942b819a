"""Land-cover classes: reclassification and masks (METHODS §1.3, §1.4).

The class tables are package data (``cube/data/landcover_classes.csv`` and
``landcover_targets.csv``) and can be replaced by a user CSV with the same
columns (``table=``). Schemes:

* ``"igbp"`` — MCD12Q1 ``LC_Type1``: 1–17, 17 = water; 0/255 unclassified.
* ``"mcd12c1"`` — MCD12C1 IGBP layer: 0 = water, 1–16; 255 fill.
* ``"clcd"`` — the 30 m China land-cover dataset (Yang & Huang 2021): 1–9.

Each source class has a ``group`` (forest, shrub, savanna, grassland,
wetland, cropland, urban, snow_ice, barren, water) used by
:func:`landcover_mask`, and target classes for ``"7class"`` (001) and
``"8class"`` (000-like). Codes that are not in the table (fill values,
unclassified) become class 0 = "no class" and are never kept by a mask.
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

__all__ = ["landcover_table", "reclassify", "landcover_mask", "class_labels", "GROUPS"]

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


def _targets(to: str) -> dict[str, int]:
    rows = [dict(r) for r in _package_rows("landcover_targets.csv")]
    names = sorted({r["target"] for r in rows})
    sel = {r["name"]: int(r["code"]) for r in rows if r["target"] == to}
    if not sel:
        raise UnknownNameError("target classification", to, names)
    return sel


def class_labels(to: str = "7class") -> dict[int, str]:
    """``{code: name}`` of a target classification (``"7class"``, ``"8class"``)."""
    return {c: n for n, c in _targets(to).items()}


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

    ``overrides`` maps source codes to target class names, e.g.
    ``{8: "forest"}`` for woody savannas as forest (METHODS §1.4 option).
    The result is ``uint8`` with CF ``flag_values``/``flag_meanings``
    attributes, nodata 0 and the CRS of ``lc``; lazy for dask input.
    """
    _check_int_codes(lc)
    rows = landcover_table(scheme, table)
    targets = _targets(to)
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
    not kept. METHODS §1.3: water and permanent snow/ice are always masked;
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
