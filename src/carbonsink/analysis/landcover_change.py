"""Land-cover change and the carbon sink: transition matrices, Sankey chains and the NEP
change of converted versus stable pixels, as a registered analysis.

Land transfer matrix (seed 000, Table 4; seed 001, §3.2.4 and its Sankey diagram of the
2000 → 2011 → 2022 maps after Cuba 2015): for two land-cover maps ``c₁``, ``c₂`` on one
grid with true pixel areas ``A`` (carbonsink docs/methods.md §1.6),

    M[i, j] = Σ_x A_x · [c₁(x) = i] · [c₂(x) = j]          [km²]

over the pixels classified on both dates. Row sums are the class areas on the first date,
column sums those on the second; the changed share is ``100 · Σ_{i≠j} M[i, j] / Σ M`` [%];
the class area change is ``100 · (Σ_i M[i, k] − Σ_j M[k, j]) / Σ_j M[k, j]`` [%] (relative
to the first date) and the share change ``100 · (Σ_i M[i, k] − Σ_j M[k, j]) / Σ M``
[percentage points of the total area, the numbers 001 prints].

Flux change per transition (any flux ``F``: NPP, Rh, NEP), with ``b_x`` the flux before
(mean over the years of the first date) and ``a_x`` after (years of the second date), over
the pixels valid on both dates:

    mean_before[i, j] = Σ_{x∈(i,j)} A_x b_x / Σ_{x∈(i,j)} A_x   (mean_after likewise)
    change[i, j]      = mean_after[i, j] − mean_before[i, j]
    contribution[i, j] = Σ_{x∈(i,j)} A_x (a_x − b_x) / Σ_x A_x

so that Σ_{i,j} contribution = ΔR, the change of the area-weighted regional mean; the
stable part is the sum over ``i = j``, the converted part over ``i ≠ j``, and the two add
up to ΔR exactly (to floating-point rounding). Totals (``Tg C yr-1``) split the same way.

Everything is vectorised: each pixel gets one integer code (zone, class on each date,
year) and area-weighted sums come from ``numpy.bincount`` (block by block for dask
input) — no loop over pixels.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np
import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..cube.area import pixel_area
from ..cube.landcover import TARGETS, reclassify
from ..cube.mask import match_grid
from ..errors import InputError, InsufficientDataError, InvalidArgumentError
from ..regions import total_factor
from .base import Analysis, AnalysisResult, register_analysis, tidy

__all__ = ["LandcoverChange", "transition_matrix", "transition_chain", "transition_table",
           "square_matrix", "class_area_change", "changed_share", "transition_flux_change",
           "contribution_summary", "sankey_layout", "sankey_figure", "heatmap_figure",
           "group_sums", "class_codes", "zone_index", "CLASS_COLORS"]

#: colours of the 7- and 8-class schemes (Sankey, bars, heat map)
CLASS_COLORS = {"forest": "#1b7837", "shrub": "#8c9e3a", "grassland": "#b8e186",
                "cropland": "#f1b6da", "wetland": "#5ab4ac", "urban": "#d73027",
                "impervious": "#d73027", "water": "#4575b4", "barren": "#d9c89e"}
_KM2 = 1e-6  # m² → km²


# --------------------------------------------------------------------------- vectorised core


def class_codes(classes: xr.DataArray, labels: Mapping[int, str] | None = None
                ) -> tuple[list[int], dict[int, str]]:
    """Class codes and names of a reclassified map: ``labels``, else the CF ``flag_values`` /
    ``flag_meanings`` written by :func:`carbonsink.cube.reclassify`."""
    if labels is not None:
        lab = {int(k): str(v) for k, v in labels.items()}
        return sorted(lab), lab
    fv, fm = classes.attrs.get("flag_values"), classes.attrs.get("flag_meanings")
    if fv is None or fm is None:
        raise InputError(f"'{classes.name}' carries no class labels (flag_values / "
                         "flag_meanings); reclassify it with carbonsink.cube.reclassify or "
                         "pass labels={code: name}")
    codes = [int(v) for v in np.atleast_1d(fv)]
    names = str(fm).split()
    if len(codes) != len(names):
        raise InputError(f"'{classes.name}': {len(codes)} flag_values but {len(names)} "
                         "flag_meanings")
    return codes, dict(zip(codes, names))


def _index(da: xr.DataArray, codes: Sequence[int]) -> xr.DataArray:
    """Position of each value in ``codes`` (int64), −1 for any other value or NaN."""
    codes = np.asarray(codes, dtype=np.int64)
    lut = np.full(int(codes.max()) + 2 if codes.size else 1, -1, dtype=np.int64)
    lut[codes] = np.arange(codes.size)

    def _lookup(b):
        b = np.asarray(b)
        if b.dtype.kind == "f":
            ok = np.isfinite(b)
            b = np.where(ok, b, -1)
        b = b.astype(np.int64)
        inside = (b >= 0) & (b < lut.size)
        return np.where(inside, lut[np.clip(b, 0, lut.size - 1)], -1)

    out = xr.apply_ufunc(_lookup, da.drop_vars("spatial_ref", errors="ignore"),
                         dask="parallelized", output_dtypes=[np.int64])
    return out


def zone_index(zones: xr.DataArray | None) -> tuple[xr.DataArray | None, list[int], list[str]]:
    """Zone labels → (index 0..Z−1 per pixel, labels, names) with label 0 = "in no zone"
    as index 0 (so that the whole region is the sum over all indices)."""
    if zones is None:
        return None, [0], []
    names = json.loads(zones.attrs.get("zone_names", "{}"))
    labels = sorted({int(k) for k in names} | {0})
    idx = _index(zones, labels)
    return idx, labels, [names.get(str(lab), str(lab)) for lab in labels[1:]]


def _bincount_block(code: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    c = np.asarray(code).ravel()
    w = np.asarray(weight, dtype=np.float64).ravel()
    ok = (c >= 0) & np.isfinite(w)
    return np.bincount(c[ok], weights=w[ok], minlength=n)[:n]


def group_sums(code: xr.DataArray, n: int, weights: Mapping[str, xr.DataArray]
               ) -> dict[str, np.ndarray]:
    """Σ weight over the pixels of each group: ``out[k][g] = Σ_{code = g} weights[k]``.

    ``code`` holds integer group indices 0..n−1 (−1 = in no group); each weight is broadcast
    against it (NaN weights add nothing). ``numpy.bincount`` per array, or per dask block
    (summed), all weights computed in one pass.
    """
    import dask
    import dask.array as dsa

    out = {}
    for name, w in weights.items():
        c, ww = xr.broadcast(code, w)
        ww = ww.transpose(*c.dims)
        cd, wd = c.data, ww.data
        if isinstance(cd, dsa.Array) or isinstance(wd, dsa.Array):
            cd = dsa.asarray(cd)
            wd = dsa.asarray(wd).rechunk(cd.chunks)
            parts = [dask.delayed(_bincount_block)(a, b, n)
                     for a, b in zip(cd.to_delayed().ravel(), wd.to_delayed().ravel())]
            out[name] = dask.delayed(np.sum)(parts, axis=0)
        else:
            out[name] = _bincount_block(cd, wd, n)
    (computed,) = dask.compute(out)
    return {k: np.asarray(v, dtype=np.float64) for k, v in computed.items()}


def _area_m2(area: xr.DataArray | None, like: xr.DataArray) -> xr.DataArray:
    if area is None:
        area = pixel_area(like)
    units = area.attrs.get("units", "m2")
    factor = {"m2": 1.0, "km2": 1e6, "m^2": 1.0, "km^2": 1e6}.get(str(units).strip())
    if factor is None:
        raise InvalidArgumentError(f"area must be in m2 or km2, found units '{units}'")
    area = match_grid(area, like, "area").drop_vars("spatial_ref", errors="ignore")
    return area * factor if factor != 1.0 else area


def _prep_maps(maps: Sequence[xr.DataArray], labels):
    codes, names = class_codes(maps[0], labels)
    for m in maps[1:]:
        c, _ = class_codes(m, labels if labels is not None else names)
        if c != codes:
            raise InvalidArgumentError("land-cover maps use different classifications; "
                                       "reclassify them to one scheme first")
    return codes, names


# --------------------------------------------------------------------------- transitions


def transition_chain(maps: Sequence[xr.DataArray], area: xr.DataArray | None = None, *,
                     dates: Sequence[Any] | None = None, labels: Mapping[int, str] | None = None,
                     mask: xr.DataArray | None = None, zones: xr.DataArray | None = None
                     ) -> list[xr.DataArray]:
    """Area-weighted transition matrices between consecutive maps, plus first → last.

    Parameters
    ----------
    maps : two or more reclassified land-cover maps ``(y, x)`` on one grid (class codes
        with CF ``flag_values``/``flag_meanings``, e.g. from :func:`carbonsink.cube.reclassify`;
        0 = no class).
    area : cell areas [m2] (default :func:`carbonsink.cube.pixel_area`).
    dates : labels of the maps (default 1, 2, ...), e.g. years.
    labels : ``{code: name}`` instead of the flag attributes.
    mask : optional boolean keep-mask ``(y, x)`` (e.g. the study region).
    zones : optional zone labels ``(y, x)`` (int, 0 = no zone, attribute ``zone_names``).

    Returns
    -------
    list of DataArrays ``(zone, from_class, to_class)`` [km2]: ``len(maps) − 1`` consecutive
    matrices, then (for three or more maps) the first → last matrix. Every matrix counts the
    same pixels — those classified on *all* dates and inside ``mask`` — so the column sums of
    one step equal the row sums of the next (seed 001, Sankey of 2000 → 2011 → 2022).
    ``zone`` is ``"all"`` (every pixel) followed by the zone names.
    """
    if len(maps) < 2:
        raise InvalidArgumentError(f"transition_chain needs two or more maps, got {len(maps)}")
    dates = list(dates) if dates is not None else list(range(1, len(maps) + 1))
    if len(dates) != len(maps):
        raise InvalidArgumentError(f"{len(dates)} dates for {len(maps)} maps")
    like = maps[0]
    maps = [match_grid(m, like, "land-cover map").drop_vars("spatial_ref", errors="ignore")
            for m in maps]
    codes, names = _prep_maps(maps, labels)
    k = len(codes)
    idx = [_index(m, codes) for m in maps]
    common = idx[0] >= 0
    for i in idx[1:]:
        common = common & (i >= 0)
    if mask is not None:
        common = common & match_grid(mask, like, "mask").drop_vars(
            "spatial_ref", errors="ignore").astype(bool)
    zidx, zlabels, znames = zone_index(
        match_grid(zones, like, "zones") if zones is not None else None)
    nz = len(zlabels)
    w = _area_m2(area, like) * _KM2
    pairs = [(a, a + 1) for a in range(len(maps) - 1)]
    if len(maps) > 2:
        pairs.append((0, len(maps) - 1))
    weights, n = {}, nz * k * k
    zpart = zidx if zidx is not None else xr.zeros_like(idx[0])
    for a, b in pairs:
        code = ((zpart * k + idx[a]) * k + idx[b]).where(common, -1)
        weights[f"{a}-{b}"] = (code, w)
    sums = {}
    for key, (code, ww) in weights.items():
        sums.update({key: group_sums(code, n, {"a": ww})["a"]})
    out = []
    coords_zone = ["all", *znames]
    for a, b in pairs:
        arr = sums[f"{a}-{b}"].reshape(nz, k, k)
        full = np.concatenate([arr.sum(axis=0, keepdims=True), arr[1:]], axis=0)
        m = xr.DataArray(full, dims=("zone", "from_class", "to_class"),
                         coords={"zone": coords_zone, "from_class": codes, "to_class": codes,
                                 "from_name": ("from_class", [names[c] for c in codes]),
                                 "to_name": ("to_class", [names[c] for c in codes])},
                         name="transition_area",
                         attrs={"units": "km2", "long_name": "area-weighted land-cover "
                                "transition matrix (rows: first date, columns: second date)",
                                "date_from": str(dates[a]), "date_to": str(dates[b]),
                                "classification": str(like.attrs.get("classification", ""))})
        out.append(m)
    return out


def transition_matrix(lc_from: xr.DataArray, lc_to: xr.DataArray,
                      area: xr.DataArray | None = None, *, labels: Mapping[int, str] | None = None,
                      mask: xr.DataArray | None = None, zones: xr.DataArray | None = None,
                      dates: Sequence[Any] | None = None) -> xr.DataArray:
    """Area-weighted land-cover transition matrix ``M[i, j] = Σ A·[c₁ = i]·[c₂ = j]`` [km2]
    (seed 000, Table 4), dims ``(zone, from_class, to_class)``; see :func:`transition_chain`
    for the arguments. Without ``zones`` the zone dimension has the one entry ``"all"``."""
    return transition_chain([lc_from, lc_to], area, dates=dates, labels=labels, mask=mask,
                            zones=zones)[0]


def _one_zone(matrix: xr.DataArray, zone: str | None = None) -> xr.DataArray:
    if "zone" in matrix.dims:
        return matrix.sel(zone=zone if zone is not None else matrix["zone"].values[0])
    return matrix


def transition_table(matrix: xr.DataArray) -> pd.DataFrame:
    """Tidy rows of a transition matrix: keys ``date_from, date_to, from_class, from_name,
    to_class, to_name`` (and ``zone``), statistics ``area`` [km2 and 1e4 km2] and ``share``
    [% of the area of the zone]; ``variable`` = ``landcover``."""
    rows = []
    zones = matrix["zone"].values if "zone" in matrix.dims else [None]
    for z in zones:
        m = _one_zone(matrix, z)
        total = float(m.sum())
        df = m.to_dataframe(name="value").reset_index()
        base = pd.DataFrame({
            "date_from": matrix.attrs.get("date_from", ""), "date_to": matrix.attrs.get(
                "date_to", ""), "from_class": df["from_class"].astype(int),
            "from_name": df["from_name"], "to_class": df["to_class"].astype(int),
            "to_name": df["to_name"], "variable": "landcover"})
        if z is not None:
            base.insert(0, "zone", z)
        v = df["value"].to_numpy()
        rows += [base.assign(statistic="area", units="km2", value=v),
                 base.assign(statistic="area", units="1e4 km2", value=v / 1e4),
                 base.assign(statistic="share", units="%",
                             value=100.0 * v / total if total > 0 else np.nan)]
    return pd.concat(rows, ignore_index=True)


def square_matrix(matrix: xr.DataArray, units: Literal["km2", "1e4 km2"] = "km2", *,
                  zone: str | None = None, sums: bool = True) -> pd.DataFrame:
    """The matrix as a square table (rows: first date, columns: second date, class names),
    with a ``Sum`` row and column (the class areas of each date), in ``units``."""
    m = _one_zone(matrix, zone)
    scale = {"km2": 1.0, "1e4 km2": 1e-4}.get(units)
    if scale is None:
        raise InvalidArgumentError(f"units must be 'km2' or '1e4 km2', found {units!r}")
    df = pd.DataFrame(m.values * scale, index=list(m["from_name"].values),
                      columns=list(m["to_name"].values))
    df.index.name = f"{matrix.attrs.get('date_from', 'from')} \\ " \
                    f"{matrix.attrs.get('date_to', 'to')}"
    if sums:
        df["Sum"] = df.sum(axis=1)
        df.loc["Sum"] = df.sum(axis=0)
    return df


def changed_share(matrix: xr.DataArray, zone: str | None = None) -> float:
    """Share of the area whose class changed: ``100 · Σ_{i≠j} M / Σ M`` [%]."""
    m = _one_zone(matrix, zone).values
    total = m.sum()
    return float(100.0 * (total - np.trace(m)) / total) if total > 0 else float("nan")


def class_area_change(matrix: xr.DataArray, zone: str | None = None) -> pd.DataFrame:
    """Per class: area on each date [km2] (row and column sums), change [km2], change
    relative to the first date [%] and change of the class's share of the total area
    [percentage points, %]."""
    m = _one_zone(matrix, zone)
    a1, a2 = m.values.sum(axis=1), m.values.sum(axis=0)
    total = a1.sum()
    with np.errstate(invalid="ignore", divide="ignore"):
        rel = np.where(a1 > 0, 100.0 * (a2 - a1) / a1, np.nan)
    return pd.DataFrame({"class": m["from_class"].values.astype(int),
                         "class_name": m["from_name"].values, "area_from": a1,
                         "area_to": a2, "area_change": a2 - a1,
                         "area_change_percent": rel,
                         "share_from": 100.0 * a1 / total, "share_to": 100.0 * a2 / total,
                         "share_change": 100.0 * (a2 - a1) / total})


# --------------------------------------------------------------------------- flux change


def transition_flux_change(lc_from: xr.DataArray, lc_to: xr.DataArray,
                           before: xr.DataArray, after: xr.DataArray,
                           area: xr.DataArray | None = None, *,
                           labels: Mapping[int, str] | None = None,
                           mask: xr.DataArray | None = None, zones: xr.DataArray | None = None,
                           nonvegetated: Literal["exclude", "zero"] = "exclude",
                           total_units: str = "Tg C") -> pd.DataFrame:
    """Flux before and after, and its change, for each from → to class pair.

    Parameters
    ----------
    lc_from, lc_to : reclassified maps ``(y, x)`` of the two dates.
    before, after : the flux ``(y, x)`` around each date (e.g. annual NEP of the year, or a
        mean over a few years) [e.g. g C m-2 yr-1]; same units.
    area : cell areas [m2] (default :func:`carbonsink.cube.pixel_area`).
    nonvegetated : ``"exclude"`` (default) — only pixels with a valid flux on both dates;
        ``"zero"`` — a classified pixel without flux (MODIS fill over barren, urban) counts
        as 0 (no uptake), so conversions to or from such classes enter the balance.

    Returns
    -------
    DataFrame with ``zone, from_class, from_name, to_class, to_name, statistic, units,
    value``; statistics ``area`` [km2, pixels used], ``mean_before``, ``mean_after``,
    ``change`` [flux units], ``contribution`` [flux units: Σ_pair A(a−b) / Σ_all A, the
    pair's part of the regional mean change] and ``total_change`` [``total_units`` with the
    flux's period: Σ_pair A(a−b)]. Contributions of all pairs add up to the change of the
    regional mean (see the module docstring; :func:`contribution_summary`).
    """
    if nonvegetated not in ("exclude", "zero"):
        raise InvalidArgumentError(f"nonvegetated must be 'exclude' or 'zero', found "
                                   f"{nonvegetated!r}")
    units = before.attrs.get("units")
    if after.attrs.get("units", units) != units:
        raise InvalidArgumentError(f"before [{units}] and after [{after.attrs.get('units')}] "
                                   "must have the same units")
    factor, tot_units = total_factor(units, total_units, str(before.name or "flux"))
    like = lc_from
    lc_from = match_grid(lc_from, like, "lc_from").drop_vars("spatial_ref", errors="ignore")
    lc_to = match_grid(lc_to, like, "lc_to").drop_vars("spatial_ref", errors="ignore")
    b = match_grid(before, like, "before").drop_vars("spatial_ref", errors="ignore")
    a = match_grid(after, like, "after").drop_vars("spatial_ref", errors="ignore")
    codes, names = _prep_maps([lc_from, lc_to], labels)
    k = len(codes)
    i1, i2 = _index(lc_from, codes), _index(lc_to, codes)
    ok = (i1 >= 0) & (i2 >= 0)
    if mask is not None:
        ok = ok & match_grid(mask, like, "mask").drop_vars("spatial_ref",
                                                           errors="ignore").astype(bool)
    if nonvegetated == "zero":
        b, a = b.fillna(0.0), a.fillna(0.0)
    ok = ok & b.notnull() & a.notnull()
    zidx, zlabels, znames = zone_index(
        match_grid(zones, like, "zones") if zones is not None else None)
    nz = len(zlabels)
    zpart = zidx if zidx is not None else xr.zeros_like(i1)
    code = ((zpart * k + i1) * k + i2).where(ok, -1)
    w = _area_m2(area, like)
    s = group_sums(code, nz * k * k, {"area": w, "before": w * b, "after": w * a})
    arr = {key: v.reshape(nz, k, k) for key, v in s.items()}
    frames = []
    for zi, zname in enumerate(["all", *znames]):
        sel = (lambda v: v.sum(axis=0)) if zi == 0 else (lambda v, zi=zi: v[zi])
        ar, sb, sa = sel(arr["area"]), sel(arr["before"]), sel(arr["after"])
        total_area = ar.sum()
        with np.errstate(invalid="ignore", divide="ignore"):
            mb = np.where(ar > 0, sb / ar, np.nan)
            ma = np.where(ar > 0, sa / ar, np.nan)
            contrib = (sa - sb) / total_area if total_area > 0 else np.full_like(ar, np.nan)
        fr, to = np.meshgrid(np.arange(k), np.arange(k), indexing="ij")
        base = pd.DataFrame({"zone": zname, "from_class": np.asarray(codes)[fr.ravel()],
                             "from_name": [names[codes[i]] for i in fr.ravel()],
                             "to_class": np.asarray(codes)[to.ravel()],
                             "to_name": [names[codes[j]] for j in to.ravel()]})
        keep = ar.ravel() > 0
        for stat, val, u in (("area", ar * _KM2, "km2"), ("mean_before", mb, units),
                             ("mean_after", ma, units), ("change", ma - mb, units),
                             ("contribution", contrib, units),
                             ("total_change", (sa - sb) * factor, tot_units)):
            frames.append(base[keep].assign(statistic=stat, units=u, value=val.ravel()[keep]))
    out = pd.concat(frames, ignore_index=True)
    out.attrs["nonvegetated"] = nonvegetated
    return out


def contribution_summary(flux_change: pd.DataFrame) -> pd.DataFrame:
    """Split the regional change into stable (from = to) and converted (from ≠ to) pixels.

    From the table of :func:`transition_flux_change`: per zone (and any other key column),
    rows ``component`` ∈ {stable, converted, total} with statistics ``contribution`` [flux
    units; stable + converted = total = change of the regional mean], ``total_change``
    [e.g. Tg C yr-1], ``area`` [km2], and for ``total`` also ``regional_mean_before`` /
    ``regional_mean_after``.
    """
    df = flux_change
    keys = [c for c in df.columns if c not in ("from_class", "from_name", "to_class",
                                               "to_name", "statistic", "units", "value")]
    df = df.assign(component=np.where(df["from_class"] == df["to_class"], "stable",
                                      "converted"))
    add = df[df.statistic.isin(["contribution", "total_change", "area"])]
    parts = add.groupby([*keys, "component", "statistic", "units"], sort=False,
                        dropna=False)["value"].sum().reset_index()
    tot = add.groupby([*keys, "statistic", "units"], sort=False,
                      dropna=False)["value"].sum().reset_index().assign(component="total")
    # regional means before/after from the pair means and areas
    piv = df[df.statistic.isin(["area", "mean_before", "mean_after"])].pivot_table(
        index=[*keys, "from_class", "to_class"], columns="statistic", values="value",
        dropna=False).reset_index()
    units = df.loc[df.statistic == "mean_before", "units"]
    u = units.iloc[0] if len(units) else ""
    rows = []
    for key, grp in piv.groupby(keys, sort=False, dropna=False):
        key = key if isinstance(key, tuple) else (key,)
        grp = grp[grp["area"] > 0]
        a = grp["area"].to_numpy()
        for stat, col in (("regional_mean_before", "mean_before"),
                          ("regional_mean_after", "mean_after")):
            rows.append({**dict(zip(keys, key)), "component": "total", "statistic": stat,
                         "units": u, "value": float((a * grp[col]).sum() / a.sum())})
    out = pd.concat([parts, tot, pd.DataFrame(rows)], ignore_index=True)
    return out[[*keys, "component", "statistic", "units", "value"]]


# --------------------------------------------------------------------------- Sankey


def sankey_layout(matrices: Sequence[xr.DataArray], dates: Sequence[Any] | None = None, *,
                  zone: str | None = None, gap: float = 0.02, min_share: float = 0.0
                  ) -> dict[str, pd.DataFrame]:
    """Geometry of a Sankey diagram over consecutive transition matrices (Cuba 2015; seed
    001, Fig. 5): stacked class bars per date and one band per from → to flow.

    Parameters
    ----------
    matrices : consecutive matrices (``transition_chain(...)[:len(maps) − 1]``).
    dates : labels of the ``len(matrices) + 1`` dates (default from the matrices' attrs).
    gap : vertical gap between classes as a fraction of the column height.
    min_share : flows smaller than this share of the total area [%] are not drawn (their
        area stays in the bars).

    Returns
    -------
    ``{"nodes": DataFrame(column, date, class, name, value, y0, y1),
    "flows": DataFrame(step, from_class, from_name, to_class, to_name, value, share,
    y0_from, y1_from, y0_to, y1_to)}``; ``value`` in km2; heights are fractions of the total
    area (bars of one column span ``1 − gap·(n − 1)`` for ``n`` non-empty classes). The
    value of every flow is the matrix entry, node values are the matrix row sums (first
    date) and column sums.
    """
    mats = [_one_zone(m, zone) for m in matrices]
    if not mats:
        raise InvalidArgumentError("sankey_layout needs at least one matrix")
    if dates is None:
        dates = [mats[0].attrs.get("date_from", "1")] + \
                [m.attrs.get("date_to", str(i + 2)) for i, m in enumerate(mats)]
    codes = [int(c) for c in mats[0]["from_class"].values]
    names = dict(zip(codes, mats[0]["from_name"].values))
    columns = [mats[0].values.sum(axis=1)] + [m.values.sum(axis=0) for m in mats]
    total = float(columns[0].sum())
    if total <= 0:
        raise InsufficientDataError("sankey_layout: the matrices hold no area")
    nodes, tops = [], []
    for ci, col in enumerate(columns):
        present = col > 0
        npresent = int(present.sum())
        scale = (1.0 - gap * max(npresent - 1, 0)) / col.sum()
        y, top = 1.0, {}
        for k, c in enumerate(codes):  # first class on top
            h = col[k] * scale
            top[c] = y
            nodes.append({"column": ci, "date": str(dates[ci]), "class": c, "name": names[c],
                          "value": float(col[k]), "y0": y - h, "y1": y})
            if present[k]:
                y -= h + gap
        tops.append((top, scale))
    flows = []
    for si, m in enumerate(mats):
        (top_l, sc_l), (top_r, sc_r) = tops[si], tops[si + 1]
        out_y = dict(top_l)
        in_y = dict(top_r)
        v = m.values
        # outgoing bands leave in the order of the target classes, incoming bands arrive
        # in the order of the source classes: no band crosses itself at a bar
        order_in = {}
        for j, cj in enumerate(codes):
            y = in_y[cj]
            for i, ci in enumerate(codes):
                h = v[i, j] * sc_r
                order_in[(i, j)] = (y - h, y)
                y -= h
        for i, ci in enumerate(codes):
            y = out_y[ci]
            for j, cj in enumerate(codes):
                val = float(v[i, j])
                h = val * sc_l
                y0f, y1f = y - h, y
                y -= h
                if val <= 0 or 100.0 * val / total < min_share:
                    continue
                y0t, y1t = order_in[(i, j)]
                flows.append({"step": si, "date_from": str(dates[si]),
                              "date_to": str(dates[si + 1]), "from_class": ci,
                              "from_name": names[ci], "to_class": cj, "to_name": names[cj],
                              "value": val, "share": 100.0 * val / total,
                              "y0_from": y0f, "y1_from": y1f, "y0_to": y0t, "y1_to": y1t})
    return {"nodes": pd.DataFrame(nodes), "flows": pd.DataFrame(flows)}


def _color(name: str, i: int) -> str:
    from matplotlib import colormaps

    return CLASS_COLORS.get(name, colormaps["tab10"](i % 10))


def sankey_figure(layout: Mapping[str, pd.DataFrame], *, title: str = "",
                  synthetic: bool = False, bar_width: float = 0.12):
    """Draw a :func:`sankey_layout` with matplotlib patches (offline PNG/SVG): stacked class
    bars per date labelled with their share of the area [%], bands as cubic Bézier paths."""
    from matplotlib.patches import PathPatch, Rectangle
    from matplotlib.path import Path as MPath

    from ..report.figures import new_figure

    nodes, flows = layout["nodes"], layout["flows"]
    ncol = int(nodes["column"].max()) + 1
    fig, ax = new_figure((2.6 + 2.4 * ncol, 5.2))
    order = list(dict.fromkeys(nodes["name"]))
    colors = {n: _color(n, i) for i, n in enumerate(order)}
    xs = {c: float(c) for c in range(ncol)}
    for _, f in flows.iterrows():
        x0 = xs[int(f["step"])] + bar_width / 2
        x1 = xs[int(f["step"]) + 1] - bar_width / 2
        xm = (x0 + x1) / 2
        verts = [(x0, f["y1_from"]), (xm, f["y1_from"]), (xm, f["y1_to"]), (x1, f["y1_to"]),
                 (x1, f["y0_to"]), (xm, f["y0_to"]), (xm, f["y0_from"]), (x0, f["y0_from"]),
                 (x0, f["y1_from"])]
        codes = [MPath.MOVETO, MPath.CURVE4, MPath.CURVE4, MPath.CURVE4, MPath.LINETO,
                 MPath.CURVE4, MPath.CURVE4, MPath.CURVE4, MPath.CLOSEPOLY]
        ax.add_patch(PathPatch(MPath(verts, codes), facecolor=colors[f["from_name"]],
                               edgecolor="none", alpha=0.45 if f["from_class"] != f["to_class"]
                               else 0.25))
    totals = nodes.groupby("column")["value"].sum()
    for _, n in nodes.iterrows():
        if n["value"] <= 0:
            continue
        x = xs[int(n["column"])]
        ax.add_patch(Rectangle((x - bar_width / 2, n["y0"]), bar_width, n["y1"] - n["y0"],
                               facecolor=colors[n["name"]], edgecolor="white", lw=0.6))
        share = 100.0 * n["value"] / totals[n["column"]]
        if n["y1"] - n["y0"] > 0.03:
            ax.text(x + bar_width / 2 + 0.02, (n["y0"] + n["y1"]) / 2,
                    f"{n['name']} {share:.1f}%", va="center", fontsize=7)
    for c in range(ncol):
        date = nodes.loc[nodes["column"] == c, "date"].iloc[0]
        ax.text(xs[c], -0.05, str(date), ha="center", va="top", fontsize=9, weight="bold")
    ax.set_xlim(-0.3, ncol - 1 + 0.6)
    ax.set_ylim(-0.1, 1.02)
    ax.set_axis_off()
    ax.set_title(title, fontsize=10)
    if synthetic:
        from ..report.figures import _synthetic

        _synthetic(ax)
    return fig


def heatmap_figure(matrix: xr.DataArray, *, zone: str | None = None, title: str = "",
                   synthetic: bool = False):
    """Heat map of a transition matrix [10⁴ km²] with the values written in the cells
    (logarithmic colours, rows: first date, columns: second date)."""
    from matplotlib.colors import LogNorm

    from ..report.figures import new_figure

    sq = square_matrix(matrix, "1e4 km2", zone=zone, sums=False)
    fig, ax = new_figure((6.4, 5.4))
    vals = sq.to_numpy()
    pos = vals[vals > 0]
    norm = LogNorm(vmin=max(pos.min(), pos.max() * 1e-5), vmax=pos.max()) if pos.size else None
    im = ax.imshow(np.where(vals > 0, vals, np.nan), cmap="YlGnBu", norm=norm)
    for (i, j), v in np.ndenumerate(vals):
        if v > 0:
            ax.text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=6.5,
                    color="black" if norm is None or norm(v) < 0.6 else "white")
    ax.set_xticks(range(vals.shape[1]), sq.columns, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(vals.shape[0]), sq.index, fontsize=8)
    ax.set_xlabel(f"class in {matrix.attrs.get('date_to', '')}")
    ax.set_ylabel(f"class in {matrix.attrs.get('date_from', '')}")
    cb = fig.colorbar(im, ax=ax, shrink=0.8)
    cb.set_label("area [10$^4$ km$^2$]", fontsize=8)
    ax.set_title(title, fontsize=10)
    if synthetic:
        from ..report.figures import _synthetic

        _synthetic(ax)
    return fig


# --------------------------------------------------------------------------- the analysis


def _map_of_year(lc: xr.DataArray, year: int) -> xr.DataArray:
    years = np.asarray(lc["time"].dt.year.values, dtype=int)
    if year not in years:
        raise InvalidArgumentError(
            f"no land-cover map of {year}; maps exist for {', '.join(map(str, years))}. "
            "Fix: choose dates among them (analyses.landcover_change.dates)")
    return lc.isel(time=int(np.flatnonzero(years == year)[0])).drop_vars("time")


def _window_years(avail: np.ndarray, date: int, window: int, side: str) -> list[int]:
    lo, hi = (date, date + window - 1) if side == "before" else (date - window + 1, date)
    sel = [int(y) for y in avail if lo <= y <= hi]
    if not sel:  # no flux in the window: the `window` flux years nearest to the date
        sel = sorted(int(y) for y in sorted(avail, key=lambda y: (abs(y - date), y))[:window])
    return sel


def _region_mask(inputs) -> xr.DataArray | None:
    m = inputs.get("region_mask")
    return m.astype(bool) if m is not None else None


@register_analysis
class LandcoverChange(Analysis):
    name = "landcover_change"
    title = "Land-cover change and the carbon sink"
    description = ("Area-weighted land-cover transition matrices between chosen dates "
                   "(seed 000 Table 4, seed 001 Sankey), class area changes, and the NPP, Rh "
                   "and NEP change per transition with the part of the regional NEP change "
                   "from converted versus stable pixels.")
    requires = ("annual", "landcover", "area")
    order = 25
    draws_maps = True

    class Options(BaseModel):
        model_config = ConfigDict(extra="forbid")
        dates: list[int] | None = Field(
            None, description="years of the land-cover maps to compare, in order (two or "
                              "more, e.g. [2000, 2011, 2022]); default first and last map")
        scheme: str = Field("7class", description="target classes: 7class (001), 8class "
                                                  "(000, with shrub) or a column of table")
        table: str | None = Field(None, description="user reclassification table (CSV)")
        overrides: dict[int, str] | None = Field(
            None, description="source code -> class name, e.g. {8: forest}")
        variables: list[Literal["npp", "rh", "nep"]] = Field(
            default_factory=lambda: ["npp", "rh", "nep"])
        window: int = Field(1, ge=1, description="years averaged at each date for the flux "
                                                 "before/after")
        nonvegetated: Literal["exclude", "zero"] = Field(
            "exclude", description="pixels without flux (barren, urban): leave out, or count "
                                   "as 0")
        min_share: float = Field(0.0, ge=0, description="Sankey: hide flows below this share "
                                                        "of the area [%]")

        @field_validator("dates")
        @classmethod
        def _two(cls, v):
            if v is not None and (len(v) < 2 or len(set(v)) != len(v)):
                raise ValueError("dates: give two or more distinct years")
            return v

    def check(self, study, options):
        if options.scheme not in TARGETS and options.table is None:
            raise InputError(f"analyses.landcover_change.scheme '{options.scheme}' is neither "
                             f"{' nor '.join(TARGETS)}; give table: with a column of that name")
        return []

    def files(self, study, options):
        from pathlib import Path

        if options.table is None or study is None:
            return []
        p = Path(options.table)
        return [p if p.is_absolute() else Path(study.base_dir) / p]

    def _classes(self, ctx, lc, options):
        scheme = getattr(ctx.study, "landcover_scheme", "igbp") if ctx.study else \
            lc.attrs.get("scheme", "igbp")
        table = str(ctx.resolve(options.table)) if options.table else None
        return reclassify(lc, scheme=scheme, to=options.scheme, overrides=options.overrides,
                          table=table), scheme

    def run(self, ctx, options) -> AnalysisResult:
        res = AnalysisResult()
        sec = res.section(self)
        zones = ctx.zones()
        exp0 = ctx.experiments[0]
        done_maps: dict[str, Any] = {}
        for exp in ctx.experiments:
            inputs = ctx.inputs(exp)
            if "landcover" not in inputs:
                continue
            lc = inputs["landcover"]
            if "time" not in lc.dims or lc.sizes["time"] < 2:
                sec.text("The land-cover input holds one map: no transitions to analyse. "
                         "Give yearly maps (inputs.landcover with frequency: year).")
                return res
            classes, src_scheme = self._classes(ctx, lc, options)
            years = np.asarray(lc["time"].dt.year.values, dtype=int)
            dates = options.dates or [int(years.min()), int(years.max())]
            maps = [_map_of_year(classes, d) for d in dates]
            mask = _region_mask(inputs)
            mats = transition_chain(maps, ctx.area, dates=dates, mask=mask, zones=zones)
            keys = dict(experiment=exp, combination="", scheme=options.scheme)
            for m in mats:
                for z in m["zone"].values:
                    zname = ctx.zone if z == "all" else z
                    tab = transition_table(m.sel(zone=[z])).drop(columns="zone")
                    res.add_table("landcover_transitions", tidy(tab, zone=zname, **keys))
                    cc = class_area_change(m, zone=z)
                    long = cc.melt(id_vars=["class", "class_name"], var_name="statistic",
                                   value_name="value")
                    long["units"] = np.where(long.statistic.str.startswith("area_change_p") |
                                             long.statistic.str.startswith("share"), "%", "km2")
                    long.insert(0, "date_to", m.attrs["date_to"])
                    long.insert(0, "date_from", m.attrs["date_from"])
                    res.add_table("landcover_class_change",
                                  tidy(long.assign(variable="landcover"), zone=zname, **keys))
                    summ = pd.DataFrame({
                        "date_from": m.attrs["date_from"], "date_to": m.attrs["date_to"],
                        "variable": "landcover",
                        "statistic": ["total_area", "changed_area", "changed_share"],
                        "units": ["km2", "km2", "%"],
                        "value": [float(m.sel(zone=z).sum()),
                                  float(m.sel(zone=z).sum()) - float(np.trace(
                                      m.sel(zone=z).values)), changed_share(m, z)]})
                    res.add_table("landcover_change_summary", tidy(summ, zone=zname, **keys))
            if exp == exp0:
                done_maps = {"mats": mats, "dates": dates, "src": src_scheme}
            # flux change per transition, for the first and last date
            d1, d2 = dates[0], dates[-1]
            for combo in ctx.combinations:
                annual = ctx.cube("annual", combo, exp)
                if annual is None:
                    continue
                avail = np.asarray(annual["time"].dt.year.values, dtype=int)
                yb = _window_years(avail, d1, options.window, "before")
                ya = _window_years(avail, d2, options.window, "after")
                sel_y = annual["time"].dt.year
                for v in options.variables:
                    if v not in annual:
                        continue
                    da = annual[v]
                    b = da.sel(time=sel_y.isin(yb)).mean("time", skipna=False,
                                                         keep_attrs=True)
                    a = da.sel(time=sel_y.isin(ya)).mean("time", skipna=False,
                                                         keep_attrs=True)
                    fc = transition_flux_change(maps[0], maps[-1], b, a, ctx.area, mask=mask,
                                                zones=zones, nonvegetated=options.nonvegetated)
                    fc["zone"] = fc["zone"].replace({"all": ctx.zone})
                    period = dict(date_from=str(d1), date_to=str(d2),
                                  years_before=f"{yb[0]}-{yb[-1]}",
                                  years_after=f"{ya[0]}-{ya[-1]}")
                    fck = fc.assign(**period)
                    lead = ["zone", *period]
                    fck = fck[[*lead, *[c for c in fck.columns if c not in lead]]]
                    res.add_table("landcover_transition_flux",
                                  tidy(fck.assign(variable=v), experiment=exp,
                                       combination=combo, scheme=options.scheme,
                                       nonvegetated=options.nonvegetated))
                    cs = contribution_summary(fck)
                    res.add_table("landcover_change_contributions",
                                  tidy(cs.assign(variable=v), experiment=exp,
                                       combination=combo, scheme=options.scheme,
                                       nonvegetated=options.nonvegetated))
        self._report(ctx, res, sec, options, done_maps)
        return res

    def _report(self, ctx, res, sec, options, done) -> None:
        if not done:
            sec.text("No land-cover input: nothing to analyse.")
            return
        mats, dates = done["mats"], done["dates"]
        chain = " → ".join(map(str, dates))
        cons = mats[: len(dates) - 1]
        full = mats[-1]
        sec.text(f"Land cover reclassified from {done['src']} to the {options.scheme} scheme; "
                 f"transitions {chain} weighted by true pixel areas (docs/methods.md §1.6) "
                 "over the pixels classified on every date. Rows: class on the first date, columns: "
                 "class on the second; row sums are the first date's class areas, column sums "
                 "the second's.")
        shares = ", ".join(f"{m.attrs['date_from']}–{m.attrs['date_to']}: "
                           f"{changed_share(m):.2f} %" for m in mats)
        sec.text(f"Share of the area whose class changed: {shares}.")
        layout = sankey_layout(cons, dates, min_share=options.min_share)
        res.add_figure("landcover_sankey", sankey_figure(
            layout, title=f"Land-cover transitions {chain}", synthetic=ctx.synthetic))
        sec.figure("landcover_sankey", f"Sankey diagram of the land-cover transitions {chain}: "
                   "stacked bars give the class shares of each date, bands the area that "
                   "moved from one class to another (Cuba 2015; seed 001 Fig. 5)")
        sq = square_matrix(full, "1e4 km2").round(4).reset_index()
        sec.table(sq, "landcover_transitions",
                  caption=f"Land transfer matrix {full.attrs['date_from']} → "
                          f"{full.attrs['date_to']} [10⁴ km²] (seed 000 Table 4 layout)")
        res.add_figure("landcover_transition_heatmap", heatmap_figure(
            full, title=f"Transition matrix {full.attrs['date_from']} → "
                        f"{full.attrs['date_to']}", synthetic=ctx.synthetic))
        sec.figure("landcover_transition_heatmap", "Transition matrix as a heat map [10⁴ km²]")
        cc = class_area_change(full)
        sec.table(cc.round(3), "landcover_class_change",
                  caption="Class areas [km²], change relative to the first date [%] and change "
                          "of the share of the total area [percentage points]")
        from ..report.figures import new_figure

        fig, ax = new_figure((7.5, 3.8))
        x = np.arange(len(cc))
        wdt = 0.8 / len(dates)
        areas = [mats[0].sel(zone="all").values.sum(axis=1)] + \
                [m.sel(zone="all").values.sum(axis=0) for m in cons]
        for i, (d, a) in enumerate(zip(dates, areas)):
            ax.bar(x + (i - (len(dates) - 1) / 2) * wdt, a / 1e4, wdt, label=str(d))
        ax.set_xticks(x, cc["class_name"], rotation=30, ha="right", fontsize=8)
        ax.set_ylabel("area [10$^4$ km$^2$]")
        ax.legend(fontsize=8, frameon=False)
        ax.set_title("Class areas per date", fontsize=10)
        if ctx.synthetic:
            from ..report.figures import _synthetic

            _synthetic(ax)
        res.add_figure("landcover_class_areas", fig)
        sec.figure("landcover_class_areas", "Class areas on each date")
        cs = res.tables.get("landcover_change_contributions")
        if cs is not None and not cs.empty:
            view = cs[(cs.zone == ctx.zone) & (cs.statistic == "contribution")]
            view = view.pivot_table(index=["combination", "variable"], columns="component",
                                    values="value", sort=False).reset_index()
            sec.text(f"Change of the regional mean flux between {dates[0]} and {dates[-1]} "
                     "split into the part from pixels whose class stayed (stable) and from "
                     "converted pixels: contribution = Σ_pair A·(after − before) / Σ A; "
                     f"pixels without flux on either date: {options.nonvegetated}.")
            sec.table(view, "landcover_change_contributions",
                      caption="Contributions to the change of the regional mean "
                              f"[{cs[cs.statistic == 'contribution']['units'].iloc[0]}]")
            tf = res.tables["landcover_transition_flux"]
            first = tf["combination"].iloc[0]
            conv = tf[(tf.zone == ctx.zone) & (tf.combination == first) &
                      (tf.variable == "nep") & (tf.from_class != tf.to_class)]
            if not conv.empty:
                pv = conv.pivot_table(index=["from_name", "to_name"], columns="statistic",
                                      values="value", sort=False).reset_index()
                cols = [c for c in ("from_name", "to_name", "area", "mean_before", "mean_after",
                                    "change", "contribution") if c in pv.columns]
                sec.table(pv[cols], "landcover_transition_flux",
                          caption=f"NEP per conversion ({first}): area [km²], mean before and "
                                  "after and change [g C m⁻² yr⁻¹]")
