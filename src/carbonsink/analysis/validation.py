"""Validation of modelled NEP against eddy-covariance towers (METHODS.md §5).

At each tower the Rh models are driven by the tower's own monthly
meteorology (``TA_F`` → ``tas``, ``P_F`` → ``pr``), NPP is taken from one or
more *NPP sources*, and NEP = NPP − Rh of every NPP source × Rh model
combination is compared with the tower's NEP = −NEE on the months whose NEE
quality fraction (``NEE_VUT_REF_QC``) is at least ``qc_min``.

NPP sources (``npp=`` of :func:`validate_towers`):

``"cue"`` (default)
    NPP = CUE × tower GPP (``GPP_NT_VUT_REF``), CUE = 0.5 by default. **An
    approximation**: the carbon-use efficiency varies between ecosystems
    (about 0.3–0.7) and with season, and because tower GPP and NEE come from
    the same flux measurements (GPP is partitioned from NEE), the comparison is
    *not* an independent test of NPP — it mainly evaluates the Rh models and
    the seasonal NPP/GPP coupling.
a DataArray with spatial dims and a CRS (a study's NPP cube)
    sampled at the tower's lon/lat (from ``sites``) after transforming the
    coordinates into the cube CRS: ``npp_method="nearest"`` pixel, or
    ``"window"``: mean of the ``window`` × ``window`` pixels around it (NaN
    ignored).
a DataArray with dims ``(time,)`` or ``(time, site)``
    a user-supplied NPP series (per site when it has a ``site`` dim).
a mapping ``{label: source}``
    several sources at once, e.g. ``{"modis": cube1, "casa": cube2}`` gives
    the six combinations of seed 000 (two NPP models × three Rh models).

CASA cannot be run at the towers: it needs NDVI (FPAR), which the FLUXNET
files do not have. MODIS NPP at the towers can only come from a cube.

Rh models (``rh_models=``) run through the flux registry
(:func:`carbonsink.flux.run_rh`); every registered model that needs only
``tas``, ``pr`` and ``soc`` can run at a tower — built in:

``pei``         Pei et al. (2009) from tas and pr (§3.1, :func:`carbonsink.flux.rh.pei2009`)
``gsmsr_bl``    GSMSR soil respiration (§3.2) → Rh by Bond-Lamberty et al. (2004) (§3.3)
``gsmsr_shi``   GSMSR soil respiration → Rh by Shi (2015) (§3.4)

Combinations are named ``"<NPP label>+<Rh model>"`` like the registry's
(``cue+pei``; with ``npp={"modis": ..., "casa": ...}`` exactly the six
``SEED_000`` names ``modis+pei`` … ``casa+gsmsr_shi``).

GSMSR needs the SOC density (0–20 cm, kg C m-2) at the tower. FLUXNET files
do not carry it; unless ``soc=`` gives a value (one for all sites, or a
``{site: value}`` mapping), ``DEFAULT_SOC`` = 3.0 kg C m-2 is **assumed** (the
example density of METHODS §3.2 and §12.1) and the table says so in
``soc_source``.

Metrics (METHODS §5.2, model M vs observation O on paired months): ``n``,
``bias`` = mean(M − O), ``rel_bias`` = Σ(M − O)/ΣO, ``rmse``, ``r`` (Pearson),
``r2`` = r² (R²_r, what seed 000 most likely reported), ``nse`` = 1 −
Σ(O − M)²/Σ(O − Ō)² (R²_1:1, Nash–Sutcliffe), ``slope``/``intercept`` of the
OLS fit M = a + b·O. Fewer than ``min_n`` = 12 pairs → metrics NaN and a
``flag``.

Ranking: within each site (and data source), combinations are ranked by
``r2`` (highest first; ties broken by the lower ``rmse``) — seed 000 chose its
combination by the agreement (correlation) of modelled and observed NEP in its
Figure 3. ``rank_by="rmse"``, ``"nse"`` or ``"abs_bias"`` rank by those
instead. A pooled ``"all sites"`` row per combination uses the paired months
of all sites together (one record per site; a monthly file is preferred when
a site also comes as an aggregated daily file).
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from .. import __version__
from ..errors import (AlignmentError, InputError, InvalidArgumentError, UnitError,
                      UnknownModelError)
from ..io.atomic import atomic_write
from ..io.fluxnet import read_fluxnet, read_sites, to_monthly
from ..io.tables import write_table
from ..units import canonical_units, parse_units, to_units

__all__ = [
    "DEFAULT_CUE",
    "DEFAULT_QC_MIN",
    "DEFAULT_SOC",
    "METRIC_NAMES",
    "MIN_PAIRS",
    "POOLED",
    "TOWER_INPUTS",
    "NppSource",
    "metrics",
    "npp_at_site",
    "npp_from_cue",
    "tower_rh_models",
    "tower_rh",
    "tower_nep",
    "validate_towers",
    "pooled_selection",
    "write_outputs",
    "read_npp_series_csv",
    "run_validation_cli",
    "plot_scatter",
    "plot_timeseries",
]

DEFAULT_QC_MIN = 0.8
DEFAULT_CUE = 0.5
DEFAULT_SOC = 3.0  # kg C m-2, an assumption (see module docstring)
MIN_PAIRS = 12
METRIC_NAMES = ("n", "bias", "rel_bias", "rmse", "r", "r2", "nse", "slope", "intercept")
POOLED = "all sites"
_NPP_UNITS = canonical_units("npp")  # g C m-2 month-1


# --------------------------------------------------------------------------- metrics


def metrics(model: Any, obs: Any, *, min_n: int = MIN_PAIRS) -> dict[str, float | int | str]:
    """Agreement metrics of ``model`` (M) against ``obs`` (O), METHODS §5.2.

    Pairs where either value is NaN are dropped. Returns a dict with ``n``,
    ``bias``, ``rel_bias``, ``rmse``, ``r``, ``r2`` (= r²), ``nse`` (R²_1:1),
    ``slope``, ``intercept`` (OLS of M on O), ``obs_mean``, ``model_mean`` and
    ``flag`` ("" when all metrics are defined). With fewer than ``min_n``
    pairs every metric but ``n`` is NaN and ``flag`` says why; ``r``, ``r2``,
    ``slope`` and ``intercept`` are NaN (flagged) when O or M is constant,
    ``nse`` when O is constant, ``rel_bias`` when ΣO = 0.
    """
    m = np.asarray(model, dtype=float).ravel()
    o = np.asarray(obs, dtype=float).ravel()
    if m.shape != o.shape:
        raise InvalidArgumentError(f"model and obs differ in length: {m.size} vs {o.size}")
    ok = np.isfinite(m) & np.isfinite(o)
    m, o = m[ok], o[ok]
    n = int(m.size)
    out: dict[str, float | int | str] = {k: math.nan for k in METRIC_NAMES}
    out.update(n=n, obs_mean=math.nan, model_mean=math.nan, flag="")
    if n < min_n:
        out["flag"] = f"n={n} < {min_n} pairs: metrics not computed"
        return out
    flags = []
    diff = m - o
    om, mm = float(o.mean()), float(m.mean())
    out.update(obs_mean=om, model_mean=mm)
    out["bias"] = float(diff.mean())
    out["rmse"] = float(np.sqrt(np.mean(diff ** 2)))
    so = float(o.sum())
    if so != 0.0:
        out["rel_bias"] = float(diff.sum() / so)
    else:
        flags.append("sum(obs) = 0: rel_bias undefined")
    do, dm = o - om, m - mm
    sxx, syy, sxy = float(do @ do), float(dm @ dm), float(do @ dm)
    if sxx > 0:
        out["nse"] = 1.0 - float(diff @ diff) / sxx
        out["slope"] = sxy / sxx
        out["intercept"] = mm - out["slope"] * om
    else:
        flags.append("constant obs: nse, slope, r undefined")
    if sxx > 0 and syy > 0:
        r = sxy / math.sqrt(sxx * syy)
        r = max(-1.0, min(1.0, r))
        out["r"], out["r2"] = r, r * r
    elif sxx > 0:
        flags.append("constant model: r undefined")
    out["flag"] = "; ".join(flags)
    return out


# --------------------------------------------------------------------------- NPP at a tower


def _month_start(index: pd.Index) -> pd.DatetimeIndex:
    idx = pd.DatetimeIndex(index)
    return idx.to_period("M").to_timestamp().as_unit("ns")


def _as_monthly_npp(da: xr.DataArray, what: str) -> xr.DataArray:
    """Check units (monthly NPP) and put the time coordinate on month starts."""
    if "units" not in da.attrs:
        raise UnitError("npp", _NPP_UNITS, None,
                        fix=f"set the 'units' attribute of the {what} (e.g. 'g C m-2 month-1')")
    try:
        period = parse_units(da.attrs["units"]).period
    except ValueError:
        period = None
    if period == "year":
        raise UnitError("npp", _NPP_UNITS, da.attrs["units"],
                        fix=f"the {what} is annual; validation needs monthly NPP (downscale "
                            "it first, e.g. with carbonsink.flux.npp.modis_monthly)")
    out = to_units(da, _NPP_UNITS, variable="npp")
    if "time" not in out.dims:
        raise InputError(f"{what}: NPP needs a 'time' dimension (months); found dims {out.dims}")
    out = out.assign_coords(time=_month_start(out.indexes["time"]))
    if out.indexes["time"].has_duplicates:
        raise InputError(f"{what}: more than one NPP value per month; pass monthly NPP")
    return out


def npp_at_site(cube: xr.DataArray, lon: float, lat: float, *, method: str = "nearest",
                window: int = 3) -> xr.DataArray:
    """NPP series of a gridded cube at the site ``lon``/``lat`` (degrees, WGS84).

    The cube needs a CRS (rioxarray, ``cube.rio.crs``) and spatial dims; the
    site coordinates are transformed into that CRS with pyproj.
    ``method="nearest"`` takes the pixel containing (nearest to) the site,
    ``"window"`` the mean of the ``window`` × ``window`` pixels centred on it
    (cut at the cube edge; NaN pixels ignored). A site more than half a pixel
    outside the cube raises :class:`AlignmentError`. Returns a ``(time,)``
    DataArray in g C m-2 month-1 with attrs ``npp_extraction``, ``pixel_x``,
    ``pixel_y``.
    """
    import rioxarray  # noqa: F401  (registers the .rio accessor)
    from pyproj import Transformer

    if method not in ("nearest", "window"):
        raise InvalidArgumentError(f"method must be 'nearest' or 'window', got {method!r}")
    if method == "window" and (window < 1 or window % 2 == 0):
        raise InvalidArgumentError(f"window must be an odd positive number of pixels, "
                                   f"got {window}")
    crs = cube.rio.crs
    if crs is None:
        raise AlignmentError("NPP cube has no CRS: cannot locate the tower. Fix: set it with "
                             "cube.rio.write_crs(...) or crs= in the study inputs")
    xdim, ydim = cube.rio.x_dim, cube.rio.y_dim
    tr = Transformer.from_crs("EPSG:4326", crs, always_xy=True)
    x, y = tr.transform(float(lon), float(lat))
    xs = np.asarray(cube[xdim].values, dtype=float)
    ys = np.asarray(cube[ydim].values, dtype=float)
    ix, iy = int(np.argmin(np.abs(xs - x))), int(np.argmin(np.abs(ys - y)))
    dx = abs(float(xs[1] - xs[0])) if xs.size > 1 else abs(float(cube.rio.resolution()[0]))
    dy = abs(float(ys[1] - ys[0])) if ys.size > 1 else abs(float(cube.rio.resolution()[1]))
    if abs(xs[ix] - x) > dx / 2 * (1 + 1e-9) or abs(ys[iy] - y) > dy / 2 * (1 + 1e-9):
        raise AlignmentError(f"site at lon {lon}, lat {lat} (x={x:.6g}, y={y:.6g} in the cube "
                             f"CRS) lies outside the NPP cube (x {xs.min():.6g}..{xs.max():.6g}, "
                             f"y {ys.min():.6g}..{ys.max():.6g}). Fix: use a cube that covers "
                             "the tower or drop the site")
    if method == "nearest":
        out = cube.isel({xdim: ix, ydim: iy})
        how = "nearest pixel"
    else:
        h = window // 2
        sub = cube.isel({xdim: slice(max(ix - h, 0), ix + h + 1),
                         ydim: slice(max(iy - h, 0), iy + h + 1)})
        out = sub.mean(dim=[xdim, ydim], skipna=True, keep_attrs=True)
        how = f"{window}x{window} window mean"
    out = out.drop_vars([c for c in out.coords if c != "time"])
    out.attrs = dict(cube.attrs)
    out.attrs.update(npp_extraction=how, pixel_x=float(xs[ix]), pixel_y=float(ys[iy]))
    return _as_monthly_npp(out.load(), "NPP cube")


def npp_from_cue(ds: xr.DataArray | xr.Dataset, cue: float = DEFAULT_CUE) -> xr.DataArray:
    """NPP = ``cue`` × tower GPP (an approximation; see the module docstring)."""
    if not 0.0 < cue <= 1.0:
        raise InvalidArgumentError(f"cue must be in (0, 1], got {cue}")
    gpp = ds["gpp"] if isinstance(ds, xr.Dataset) else ds
    gpp = to_units(gpp, _NPP_UNITS, variable="gpp")
    out = gpp * cue
    out.attrs = {"units": _NPP_UNITS, "long_name": f"NPP = {cue:g} x tower GPP",
                 "npp_extraction": f"CUE {cue:g} x {gpp.attrs.get('fluxnet_variable', 'GPP')}"}
    out.name = "npp"
    return out


@dataclass(frozen=True)
class NppSource:
    """Where NPP at a tower comes from: ``kind`` is "cue", "cube" or "series"."""

    label: str
    kind: str
    data: xr.DataArray | None = None
    cue: float = DEFAULT_CUE
    method: str = "nearest"
    window: int = 3

    def describe(self) -> str:
        if self.kind == "cue":
            return f"CUE {self.cue:g} x tower GPP (approximation)"
        if self.kind == "cube":
            how = "nearest pixel" if self.method == "nearest" else \
                f"{self.window}x{self.window} window mean"
            return f"NPP cube '{self.label}' at the tower ({how})"
        return f"user-supplied NPP series '{self.label}'"

    def at_site(self, ds: xr.Dataset, site: str, meta: pd.DataFrame | None) -> xr.DataArray:
        """Monthly NPP (g C m-2 month-1) at ``site`` on the months of ``ds``."""
        if self.kind == "cue":
            if "gpp" not in ds:
                raise InputError(f"{ds.attrs.get('source', site)}: no GPP column "
                                 f"({ds.attrs.get('gpp_variable') or 'GPP_NT_VUT_REF'}) for "
                                 "NPP = CUE x GPP. Fix: supply an NPP cube or series")
            npp = npp_from_cue(ds, self.cue)
        elif self.kind == "cube":
            if meta is None or site not in meta.index or \
                    not np.isfinite(meta.loc[site, ["lat", "lon"]].astype(float)).all():
                raise InputError(f"site {site}: no lat/lon in the site metadata, needed to "
                                 f"sample the NPP cube '{self.label}'. Fix: pass sites= "
                                 "(a FLUXNET site list)")
            npp = npp_at_site(self.data, float(meta.loc[site, "lon"]),
                              float(meta.loc[site, "lat"]), method=self.method,
                              window=self.window)
        else:
            series = self.data
            if "site" in series.dims:
                sites = [str(s) for s in series["site"].values]
                if site not in sites:
                    raise InputError(f"NPP series '{self.label}' has no site {site} "
                                     f"(it has {', '.join(sites)})")
                series = series.isel(site=sites.index(site))
            extra = [d for d in series.dims if d != "time"]
            if extra:
                raise InputError(f"NPP series '{self.label}' must have dims (time,) or "
                                 f"(time, site); found {series.dims}")
            npp = _as_monthly_npp(series.drop_vars(
                [c for c in series.coords if c != "time"]), f"NPP series '{self.label}'")
        return npp.reindex(time=ds["time"].values)


def _npp_sources(npp: Any, *, cue: float, method: str, window: int) -> list[NppSource]:
    def one(label: str, spec: Any) -> NppSource:
        if spec is None or (isinstance(spec, str) and spec == "cue"):
            return NppSource(label, "cue", cue=cue)
        if isinstance(spec, (int, float)) and not isinstance(spec, bool):
            return NppSource(label, "cue", cue=float(spec))
        if isinstance(spec, xr.DataArray):
            spatial = {"x", "y", "lon", "lat", "longitude", "latitude"} & set(spec.dims)
            if spatial:
                return NppSource(label, "cube", spec, method=method, window=window)
            return NppSource(label, "series", spec)
        raise TypeError(f"NPP source '{label}': expected 'cue', a CUE value or a DataArray, "
                        f"got {type(spec).__name__}")

    if isinstance(npp, Mapping):
        if not npp:
            raise InvalidArgumentError("npp mapping is empty")
        return [one(str(k), v) for k, v in npp.items()]
    if npp is None or isinstance(npp, str) or isinstance(npp, (int, float)):
        if isinstance(npp, str) and npp != "cue":
            raise InvalidArgumentError(f"npp must be 'cue', a DataArray or a mapping, "
                                       f"got {npp!r}")
        return [one("cue", npp)]
    if isinstance(npp, xr.DataArray):
        source = one("npp", npp)
        label = "cube" if source.kind == "cube" else "series"
        return [NppSource(label, source.kind, npp, method=method, window=window)]
    raise TypeError(f"npp: expected 'cue', a DataArray or a mapping, got {type(npp).__name__}")


# --------------------------------------------------------------------------- Rh at a tower


#: canonical inputs available at a tower for the Rh models (soc from ``soc=``)
TOWER_INPUTS = ("tas", "pr", "soc")


def tower_rh_models() -> list[str]:
    """Registered Rh models (:data:`carbonsink.flux.RH_MODELS`) that can run at a
    tower, i.e. that need only ``tas``, ``pr`` and ``soc``."""
    from ..flux import combinations as comb

    return [name for name, m in comb.RH_MODELS.items() if set(m.inputs) <= set(TOWER_INPUTS)]


def _check_rh_models(rh_models: Iterable[str] | None) -> list[str]:
    valid = tower_rh_models()
    names = valid if rh_models is None else list(rh_models)
    for name in names:
        if name not in valid:
            raise UnknownModelError("tower Rh model", name, valid)
    return names


def tower_rh(ds: xr.Dataset, *, soc: float = DEFAULT_SOC, rh_models: Iterable[str] | None = None,
             rh_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """Rh of each model from the tower's monthly ``tas`` (degC) and ``pr`` (mm month-1).

    ``ds`` is a monthly dataset from :func:`carbonsink.io.fluxnet.read_fluxnet`
    (or :func:`~carbonsink.io.fluxnet.to_monthly`). The models run through the
    flux registry (:func:`carbonsink.flux.run_rh`): ``pei``, ``gsmsr_bl``,
    ``gsmsr_shi`` (default: every registered model needing only tas, pr and
    soc). ``soc`` is the SOC density (kg C m-2) for GSMSR. ``rh_options`` are
    keyed by model name as in the study file (``{"gsmsr_bl": {"beta": -0.006},
    "mode": "paper"}``); the model functions' defaults apply otherwise.
    Returns a Dataset with ``rh_<model>`` (g C m-2 month-1) and, for models
    that compute soil respiration, ``rs_<model>``.
    """
    from ..flux import combinations as comb

    names = _check_rh_models(rh_models)
    options = dict(rh_options or {})
    bad = sorted(set(options) - set(comb.RH_MODELS) - {"mode"})
    if bad:
        err = UnknownModelError("Rh option group", ", ".join(bad), [*comb.RH_MODELS, "mode"])
        err.args = (f"unknown Rh option groups {bad}; options are keyed by Rh model name: "
                    + ", ".join(sorted(comb.RH_MODELS)) + " (or 'mode')",)
        raise err
    missing = [v for v in ("tas", "pr") if v not in ds]
    if missing:
        raise InputError(f"{ds.attrs.get('source', 'tower data')}: no {', '.join(missing)} "
                         "(TA_F, P_F) to drive the Rh models")
    if ds.attrs.get("resolution", "MM") != "MM":
        raise InputError(f"{ds.attrs.get('source', 'tower data')}: Rh models need monthly "
                         "data; aggregate with carbonsink.io.fluxnet.to_monthly first")
    tas = ds["tas"].drop_vars([c for c in ds["tas"].coords if c != "time"])
    pr = ds["pr"].drop_vars([c for c in ds["pr"].coords if c != "time"])
    soc_da = xr.full_like(tas, float(soc))
    soc_da.attrs = {"units": "kg C m-2", "long_name": "soil organic carbon density (0-20 cm)"}
    inputs = {"tas": tas, "pr": pr, "soc": soc_da}
    out: dict[str, xr.DataArray] = {}
    for name in names:
        opts = dict(options.get(name) or {})
        if "mode" in options:
            opts.setdefault("mode", options["mode"])
        res = comb.run_rh(name, inputs, **opts)
        out[f"rh_{name}"] = to_units(res["rh"], canonical_units("rh"), variable="rh")
        if "rs" in res:
            out[f"rs_{name}"] = res["rs"]
    result = xr.Dataset(out)
    result.attrs.update(site=ds.attrs.get("site", ""), soc=float(soc))
    return result


# --------------------------------------------------------------------------- NEP and metrics


def tower_nep(ds: xr.Dataset, *, npp: Any = "cue", sites: pd.DataFrame | None = None,
              rh_models: Iterable[str] | None = None, qc_min: float = DEFAULT_QC_MIN,
              cue: float = DEFAULT_CUE, soc: float = DEFAULT_SOC, npp_method: str = "nearest",
              window: int = 3, rh_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Long monthly table of observed and modelled NEP at one tower.

    One row per month × combination with columns ``site, data, time,
    npp_label, npp_source, rh_model, combination, obs_nep, nee_qc, qc_ok,
    qc_min, npp, rh, nep`` (fluxes in g C m-2 month-1). ``qc_ok`` is True where
    ``nee_qc >= qc_min`` and the observation exists. ``ds`` must be monthly.
    """
    site = str(ds.attrs.get("site", ""))
    sources = npp if isinstance(npp, list) and all(isinstance(s, NppSource) for s in npp) \
        else _npp_sources(npp, cue=cue, method=npp_method, window=window)
    rh = tower_rh(ds, soc=soc, rh_models=rh_models, rh_options=rh_options)
    names = _check_rh_models(rh_models)
    time = pd.DatetimeIndex(ds["time"].values)
    obs = ds["nep"].values.astype(float)
    qc = ds["nee_qc"].values.astype(float) if "nee_qc" in ds else np.full(obs.shape, np.nan)
    qc_ok = np.isfinite(obs) & np.isfinite(qc) & (qc >= qc_min)
    data_label = ds.attrs.get("resolution", "MM")
    if ds.attrs.get("aggregated_from"):
        data_label = f"{ds.attrs['aggregated_from']}->MM"
    from ..flux import nep as nepmod

    frames = []
    for src in sources:
        npp_da = src.at_site(ds, site, sites)
        npp_da = npp_da.drop_vars([c for c in npp_da.coords if c != "time"])
        npp_vals = npp_da.values.astype(float)
        for name in names:
            rh_da = rh[f"rh_{name}"]
            rh_vals = rh_da.values.astype(float)
            nep_vals = nepmod.nep(npp_da, rh_da).reindex(time=ds["time"].values).values
            frames.append(pd.DataFrame({
                "site": site, "data": data_label, "time": time,
                "npp_label": src.label, "npp_source": src.describe(), "rh_model": name,
                "combination": f"{src.label}+{name}", "obs_nep": obs, "nee_qc": qc,
                "qc_ok": qc_ok, "qc_min": qc_min, "npp": npp_vals, "rh": rh_vals,
                "nep": nep_vals.astype(float),
            }))
    return pd.concat(frames, ignore_index=True)


def _rank(table: pd.DataFrame, rank_by: str) -> pd.Series:
    key = {"r2": ("r2", False), "nse": ("nse", False), "rmse": ("rmse", True),
           "abs_bias": ("abs_bias", True)}
    if rank_by not in key:
        raise InvalidArgumentError(f"rank_by must be one of {', '.join(key)}, got {rank_by!r}")
    col, ascending = key[rank_by]
    t = table.assign(abs_bias=table["bias"].abs())
    tie = "rmse" if col != "rmse" else "abs_bias"
    ranks = pd.Series(pd.NA, index=table.index, dtype="Int64")
    for _, grp in t.groupby(["site", "data"], sort=False):
        valid = grp[np.isfinite(grp[col].astype(float))]
        ordered = valid.sort_values([col, tie], ascending=[ascending, True], kind="mergesort")
        ranks.loc[ordered.index] = np.arange(1, len(ordered) + 1)
    return ranks


def pooled_selection(monthly: pd.DataFrame) -> pd.DataFrame:
    """Rows of ``monthly`` with one data source per site (for pooled metrics).

    A site present more than once (e.g. its MM file and its DD file aggregated
    to months) contributes its monthly-file record (``data == "MM"``), else
    its first one.
    """
    chosen = []
    for site, grp in monthly.groupby("site", sort=False):
        datas = list(dict.fromkeys(grp["data"]))
        chosen.append((site, "MM" if "MM" in datas else datas[0]))
    keep = pd.MultiIndex.from_frame(monthly[["site", "data"]]).isin(
        pd.MultiIndex.from_tuples(chosen, names=["site", "data"]))
    return monthly[keep]


def _metrics_table(monthly: pd.DataFrame, meta: pd.DataFrame | None, *, qc_min: float,
                   min_n: int, soc_info: Mapping[str, tuple[float, str]],
                   rank_by: str) -> pd.DataFrame:
    rows = []
    keys = ["site", "data", "npp_label", "npp_source", "rh_model", "combination"]
    for key, grp in monthly.groupby(keys, sort=False):
        sel = grp[grp["qc_ok"]]
        row = dict(zip(keys, key))
        row["n_months"] = int(len(grp))
        row["n_sites"] = 1
        row.update(metrics(sel["nep"], sel["obs_nep"], min_n=min_n))
        rows.append(row)
    # pooled: one record per site, all sites together
    pooled_src = pooled_selection(monthly)
    if pooled_src["site"].nunique() > 1:
        for key, grp in pooled_src.groupby(keys[2:], sort=False):
            sel = grp[grp["qc_ok"]]
            row = dict(zip(keys[2:], key))
            row.update(site=POOLED, data="pooled", n_months=int(len(grp)),
                       n_sites=int(sel["site"].nunique()))
            row.update(metrics(sel["nep"], sel["obs_nep"], min_n=min_n))
            rows.append(row)
    table = pd.DataFrame(rows)
    table["igbp"] = [meta.loc[s, "igbp"] if meta is not None and s in meta.index else ""
                     for s in table["site"]]
    socs = {v[0] for v in soc_info.values()}
    srcs = {v[1] for v in soc_info.values()}
    pooled_soc = (socs.pop() if len(socs) == 1 else np.nan,
                  srcs.pop() if len(srcs) == 1 else "per site")
    table["soc"] = [soc_info.get(s, pooled_soc)[0] for s in table["site"]]
    table["soc_source"] = [soc_info.get(s, pooled_soc)[1] for s in table["site"]]
    table["qc_min"] = qc_min
    table["rank"] = _rank(table, rank_by)
    table["rank_by"] = rank_by
    cols = ["site", "igbp", "data", "npp_source", "rh_model", "combination", "rank",
            *METRIC_NAMES, "obs_mean", "model_mean", "n_months", "n_sites", "qc_min", "soc",
            "soc_source", "rank_by", "flag"]
    table = table[cols]
    order = {s: i for i, s in enumerate(dict.fromkeys(table["site"]))}
    data_order = {d: i for i, d in enumerate(dict.fromkeys(table["data"]))}
    table = table.assign(_o=table["site"].map(order), _d=table["data"].map(data_order),
                         _r=table["rank"].fillna(10**6))
    table = table.sort_values(["_o", "_d", "_r", "combination"], kind="mergesort")
    return table.drop(columns=["_o", "_d", "_r"]).reset_index(drop=True)


def _soc_for(site: str, soc: float | Mapping[str, float] | None) -> tuple[float, str]:
    if soc is None:
        return DEFAULT_SOC, f"assumed default {DEFAULT_SOC:g} kg C m-2 (no site value)"
    if isinstance(soc, Mapping):
        if site not in soc:
            raise InputError(f"soc mapping has no value for site {site} (it has "
                             f"{', '.join(map(str, soc))}). Fix: add the site or pass one "
                             "value for all sites")
        return float(soc[site]), "user, per site"
    return float(soc), "user, all sites"


def _load_sites(sites: str | os.PathLike | pd.DataFrame | None) -> pd.DataFrame | None:
    if sites is None or isinstance(sites, pd.DataFrame):
        return sites
    return read_sites(sites)


def _load_tower(item: str | os.PathLike | xr.Dataset, min_coverage: float) -> xr.Dataset:
    ds = item if isinstance(item, xr.Dataset) else read_fluxnet(item)
    res = ds.attrs.get("resolution")
    if res == "YY":
        raise InputError(f"{ds.attrs.get('source', item)}: yearly (YY) files cannot be "
                         "validated month by month. Fix: pass the MM, DD or HH file of the site")
    return to_monthly(ds, min_coverage=min_coverage) if res != "MM" else ds


def validate_towers(fluxnet_files: Sequence[str | os.PathLike | xr.Dataset], sites=None,
                    npp: Any = "cue", combos: Iterable[str] | None = None,
                    qc_min: float = DEFAULT_QC_MIN, out_dir: str | os.PathLike | None = None, *,
                    cue: float = DEFAULT_CUE, soc: float | Mapping[str, float] | None = None,
                    npp_method: str = "nearest", window: int = 3, min_n: int = MIN_PAIRS,
                    rank_by: str = "r2", min_coverage: float = 0.9,
                    rh_options: Mapping[str, Any] | None = None,
                    figures: bool = True, return_monthly: bool = False):
    """Validate NEP combinations against FLUXNET towers; return the metrics table.

    Parameters
    ----------
    fluxnet_files
        FLUXNET2015/ONEFlux CSV files (MM, DD, HH or HR; non-monthly ones are
        aggregated with :func:`carbonsink.io.fluxnet.to_monthly` and labelled
        ``data = "DD->MM"``) or datasets from ``read_fluxnet``.
    sites
        Site list (path or DataFrame from :func:`~carbonsink.io.fluxnet.read_sites`);
        needed to sample an NPP cube, and for the ``igbp`` column.
    npp
        NPP source(s), see the module docstring (default ``"cue"``).
    combos
        Combinations to keep: names ``"<npp label>+<rh model>"`` or just Rh
        model names (``pei``, ``gsmsr_bl``, ``gsmsr_shi``);
        default all.
    qc_min
        Months with ``NEE_VUT_REF_QC`` below this are excluded (default 0.8).
    out_dir
        If given, writes ``towers_metrics.csv/.parquet``,
        ``towers_monthly.csv/.parquet`` and PNG figures in ``figures/``
        (atomically).
    cue, soc, npp_method, window, min_n, rank_by, min_coverage
        See the module docstring.
    rh_options
        Rh model options keyed by model name, as in the study file
        (``{"gsmsr_bl": {"beta": -0.006}}``); see :func:`tower_rh`.

    Returns
    -------
    DataFrame with one row per site (and data source) × combination plus
    pooled ``"all sites"`` rows: ``site, igbp, data, npp_source, rh_model,
    combination, rank, n, bias, rel_bias, rmse, r, r2, nse, slope,
    intercept, obs_mean, model_mean, n_months, n_sites, qc_min, soc,
    soc_source, rank_by, flag``. With ``return_monthly=True`` a tuple
    ``(metrics, monthly)``.
    """
    if not fluxnet_files:
        raise InputError("validate_towers: no FLUXNET files given")
    if not 0.0 <= qc_min <= 1.0:
        raise InvalidArgumentError(f"qc_min must be in [0, 1], got {qc_min}")
    meta = _load_sites(sites)
    sources = _npp_sources(npp, cue=cue, method=npp_method, window=window)
    rh_names, wanted = _parse_combos(combos, sources)
    frames, soc_info, sources_read = [], {}, []
    for item in fluxnet_files:
        ds = _load_tower(item, min_coverage)
        sources_read.append(str(ds.attrs.get("source", item)))
        site = str(ds.attrs["site"])
        soc_value, soc_source = _soc_for(site, soc)
        soc_info[site] = (soc_value, soc_source)
        frames.append(tower_nep(ds, npp=sources, sites=meta, rh_models=rh_names, qc_min=qc_min,
                                soc=soc_value, rh_options=rh_options))
    keys = [(f["site"].iloc[0], f["data"].iloc[0]) for f in frames]
    dupes = sorted({k for k in keys if keys.count(k) > 1})
    if dupes:
        raise InputError("the same site and data record was given more than once: "
                         + ", ".join(f"{s} ({d})" for s, d in dupes)
                         + ". Fix: pass each FLUXNET file once")
    monthly = pd.concat(frames, ignore_index=True)
    if wanted is not None:
        monthly = monthly[monthly["combination"].isin(wanted)].reset_index(drop=True)
    table = _metrics_table(monthly, meta, qc_min=qc_min, min_n=min_n, soc_info=soc_info,
                           rank_by=rank_by)
    provenance = {
        "carbonsink_version": __version__,
        "created_by": "carbonsink.analysis.validation.validate_towers (METHODS.md section 5)",
        "fluxnet_files": sources_read,
        "npp_sources": {s.label: s.describe() for s in sources},
        "rh_models": rh_names, "rh_options": dict(rh_options or {}),
        "qc_min": qc_min, "min_n": min_n, "rank_by": rank_by, "min_coverage": min_coverage,
        "soc_kg_C_m-2": {site: {"value": v, "source": src} for site, (v, src) in soc_info.items()},
        "units": {c: _NPP_UNITS for c in ("bias", "rmse", "intercept", "obs_mean",
                                          "model_mean", "obs_nep", "npp", "rh", "nep")},
    }
    table.attrs = dict(provenance)
    monthly.attrs = dict(provenance)
    if out_dir is not None:
        write_outputs(table, monthly, out_dir, figures=figures)
    return (table, monthly) if return_monthly else table


def _parse_combos(combos: Iterable[str] | None, sources: list[NppSource]
                  ) -> tuple[list[str], set[str] | None]:
    rh_valid = tower_rh_models()
    if combos is None:
        return rh_valid, None
    labels = [s.label for s in sources]
    valid = {f"{lab}+{rh}" for lab in labels for rh in rh_valid}
    wanted: set[str] = set()
    for c in combos:
        if c in rh_valid:
            wanted.update(f"{lab}+{c}" for lab in labels)
        elif c in valid:
            wanted.add(c)
        else:
            raise UnknownModelError("tower combination", c, sorted(valid | set(rh_valid)))
    rh_names = [rh for rh in rh_valid if any(w.endswith(f"+{rh}") for w in wanted)]
    return rh_names, wanted


# --------------------------------------------------------------------------- outputs


def write_outputs(table: pd.DataFrame, monthly: pd.DataFrame, out_dir: str | os.PathLike, *,
                  figures: bool = True, dpi: int = 80) -> list[Path]:
    """Write the metrics and monthly tables (CSV + JSON sidecar, Parquet; atomic, with the
    tables' ``attrs`` as provenance metadata) and the figures (PNG)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for name, df in (("towers_metrics", table), ("towers_monthly", monthly)):
        for suffix in (".csv", ".parquet"):
            written.append(write_table(df, out / f"{name}{suffix}"))
    if figures:
        fig_dir = out / "figures"
        for label in dict.fromkeys(monthly["npp_label"]):
            sub = monthly[monthly["npp_label"] == label]
            written.append(plot_scatter(sub, fig_dir / f"scatter_{_safe(label)}.png", dpi=dpi))
        for (site, data), grp in monthly.groupby(["site", "data"], sort=False):
            suffix = "" if data == "MM" else f"_from_{_safe(data.split('->')[0])}"
            written.append(plot_timeseries(grp, fig_dir / f"timeseries_{_safe(site)}{suffix}.png",
                                           dpi=dpi))
    return written


def _safe(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in str(text))


def _save_figure(fig, path: Path, dpi: int) -> Path:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png", bbox_inches="tight")
    return path


def plot_scatter(monthly: pd.DataFrame, path: str | os.PathLike, *, dpi: int = 80) -> Path:
    """Modelled vs observed monthly NEP, one panel per combination, 1:1 line.

    Uses the QC-passed months (``qc_ok``) of ``monthly`` (from
    :func:`tower_nep`), one record per site (:func:`pooled_selection`);
    points are coloured by site; each panel states n, R²_r, NSE and RMSE of
    the pooled points.
    """
    from matplotlib.figure import Figure

    monthly = pooled_selection(monthly)
    data = monthly[monthly["qc_ok"] & np.isfinite(monthly["nep"])]
    combos = list(dict.fromkeys(monthly["combination"]))
    sites = list(dict.fromkeys(monthly["site"]))
    fig = Figure(figsize=(3.2 * len(combos), 3.3))
    axes = fig.subplots(1, len(combos), squeeze=False)[0]
    cmap = _site_colours(sites)
    vals = np.concatenate([data["nep"].values, data["obs_nep"].values]) if len(data) else \
        np.array([-1.0, 1.0])
    lo, hi = float(np.nanmin(vals)), float(np.nanmax(vals))
    pad = 0.05 * (hi - lo or 1.0)
    lo, hi = lo - pad, hi + pad
    for ax, combo in zip(axes, combos):
        sub = data[data["combination"] == combo]
        for site in sites:
            s = sub[sub["site"] == site]
            if len(s):
                ax.scatter(s["obs_nep"], s["nep"], s=9, color=cmap[site], label=site, alpha=0.8,
                           linewidths=0)
        ax.plot([lo, hi], [lo, hi], color="0.3", lw=0.8, ls="--")
        ax.axhline(0, color="0.85", lw=0.6)
        ax.axvline(0, color="0.85", lw=0.6)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_aspect("equal")
        m = metrics(sub["nep"], sub["obs_nep"], min_n=3)
        ax.set_title(combo, fontsize=8)
        ax.text(0.03, 0.97, f"n={m['n']}  R²={m['r2']:.2f}\nNSE={m['nse']:.2f}  "
                f"RMSE={m['rmse']:.1f}", transform=ax.transAxes, va="top", fontsize=7)
        ax.set_xlabel("tower NEP = -NEE [g C m$^{-2}$ month$^{-1}$]", fontsize=7)
        ax.tick_params(labelsize=7)
    axes[0].set_ylabel("model NEP [g C m$^{-2}$ month$^{-1}$]", fontsize=7)
    axes[-1].legend(fontsize=6, frameon=False, loc="lower right", markerscale=1.2)
    return _save_figure(fig, Path(path), dpi)


def plot_timeseries(monthly: pd.DataFrame, path: str | os.PathLike, *, dpi: int = 80) -> Path:
    """Monthly observed (−NEE) and modelled NEP at one tower, one line per combination.

    Observed months failing the QC threshold are drawn as open circles.
    """
    from matplotlib.figure import Figure

    site = str(monthly["site"].iloc[0])
    data = str(monthly["data"].iloc[0])
    fig = Figure(figsize=(7.0, 2.8))
    ax = fig.subplots()
    obs = monthly.drop_duplicates("time").sort_values("time")
    ax.plot(obs["time"], obs["obs_nep"], color="k", lw=1.2, label="tower -NEE", zorder=3)
    good = obs[obs["qc_ok"]]
    bad = obs[~obs["qc_ok"]]
    ax.scatter(good["time"], good["obs_nep"], s=10, color="k", zorder=4)
    if len(bad):
        ax.scatter(bad["time"], bad["obs_nep"], s=14, facecolors="white", edgecolors="k",
                   zorder=4, label=f"QC < {_qc_of(monthly)}")
    for combo, grp in monthly.groupby("combination", sort=False):
        grp = grp.sort_values("time")
        ax.plot(grp["time"], grp["nep"], lw=0.9, label=combo)
    ax.axhline(0, color="0.7", lw=0.6)
    ax.set_ylabel("NEP [g C m$^{-2}$ month$^{-1}$]", fontsize=8)
    ax.set_title(f"{site} ({data}): {monthly['npp_source'].iloc[0]}"
                 if monthly["npp_label"].nunique() == 1 else f"{site} ({data})", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=6, frameon=False, ncol=3, loc="best")
    return _save_figure(fig, Path(path), dpi)


def _qc_of(monthly: pd.DataFrame) -> str:
    if "qc_min" in monthly.columns and len(monthly):
        return f"{float(monthly['qc_min'].iloc[0]):g}"
    return "threshold"


def _site_colours(sites: list[str]) -> dict[str, Any]:
    from matplotlib import colormaps

    cmap = colormaps["tab10"]
    return {s: cmap(i % 10) for i, s in enumerate(sites)}


# --------------------------------------------------------------------------- CLI entry


def _expand_paths(paths: Iterable[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.csv") if _is_fluxnet_name(q))
            if not found:
                raise InputError(f"{p}: no FLUXNET CSV files (FLX_/AMF_..._<res>_...csv) found")
            files.extend(found)
        else:
            files.append(p)
    return files


def _is_fluxnet_name(path: Path) -> bool:
    from ..io.fluxnet import parse_fluxnet_name

    meta = parse_fluxnet_name(path)
    return meta.site is not None and meta.resolution in ("HH", "HR", "DD", "MM")


def read_npp_series_csv(path: str | os.PathLike, *, units: str = _NPP_UNITS) -> xr.DataArray:
    """Read a CSV of monthly NPP per site (columns ``site, time, npp``) as a
    ``(time, site)`` DataArray; ``time`` is any date in the month (``2003-01``
    or ``2003-01-01``); ``npp`` is in ``units`` (default g C m-2 month-1).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: NPP series file not found")
    df = pd.read_csv(path, dtype={"site": str, "time": str})
    missing = [c for c in ("site", "time", "npp") if c not in df.columns]
    if missing:
        raise InputError(f"{path}: NPP series CSV lacks column(s) {', '.join(missing)} "
                         "(expected site, time, npp)")
    time = pd.to_datetime(df["time"].str.strip(), errors="coerce", format="mixed")
    if time.isna().any():
        raise InputError(f"{path}: unreadable dates in 'time', e.g. "
                         f"{df.loc[time.isna(), 'time'].iloc[0]!r}")
    df = df.assign(time=_month_start(pd.Index(time)))
    if df.duplicated(["site", "time"]).any():
        raise InputError(f"{path}: more than one NPP value for a site and month")
    table = df.pivot(index="time", columns="site", values="npp").sort_index()
    da = xr.DataArray(table.to_numpy(dtype=float), dims=("time", "site"),
                      coords={"time": table.index.values, "site": table.columns.astype(str)},
                      attrs={"units": units}, name="npp")
    return da


def run_validation_cli(paths: Iterable[str | os.PathLike], out_dir: str | os.PathLike,
                       npp_cube=None, npp_series=None, cue: float = DEFAULT_CUE,
                       qc_min: float = DEFAULT_QC_MIN, soc: float | None = None,
                       sites=None, **kwargs) -> pd.DataFrame:
    """What ``carbonsink validate`` runs: read, validate, write tables and figures.

    ``paths`` are FLUXNET files (or folders searched for them). NPP comes from
    ``npp_cube`` (a path read with :func:`carbonsink.io.read_input`, variable
    ``npp``, or a DataArray) and/or ``npp_series`` (a CSV for
    :func:`read_npp_series_csv`, or a DataArray); if neither is given, from
    ``cue`` × tower GPP. Writes ``towers_metrics.csv/.parquet``,
    ``towers_monthly.csv/.parquet`` and ``figures/*.png`` in ``out_dir`` and
    returns the metrics table. Further keyword arguments go to
    :func:`validate_towers`.
    """
    files = _expand_paths(paths)
    sources: dict[str, Any] = {}
    if npp_cube is not None:
        cube = npp_cube
        if not isinstance(cube, xr.DataArray):
            from ..io import read_input

            cube = read_input(npp_cube, variable="npp")
        sources[str(cube.attrs.get("npp_model") or "cube")] = cube
    if npp_series is not None:
        series = npp_series if isinstance(npp_series, xr.DataArray) else \
            read_npp_series_csv(npp_series)
        sources["user"] = series
    npp = sources if sources else "cue"
    return validate_towers(files, sites=sites, npp=npp, qc_min=qc_min, out_dir=out_dir, cue=cue,
                           soc=soc, **kwargs)
