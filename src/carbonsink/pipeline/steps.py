"""The steps of ``carbonsink run``: io -> cube -> flux -> regions -> report.

Every step reads what the previous step wrote (lazily, from Zarr), so a rerun
can skip finished steps and memory stays bounded by the chunk size.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from ..errors import AlignmentError, ConfigError
from ..units import canonical_units, to_canonical
from .config import INPUT_ROLES, StudyConfig
from .provenance import flat_attrs, provenance
from .runner import RunContext, Step

__all__ = ["STEPS", "read_inputs", "target_grid", "check_study", "selected_combinations"]

_FREQ_PERIOD = {"month": "month", "year": "year", "8day": None, "static": None}
_GROUPS = ("monthly", "annual", "8day", "static")
MIN_TREND_YEARS = 10
_GROUP_OF_FREQ = {"month": "monthly", "year": "annual", "8day": "8day", "static": "static"}


# --------------------------------------------------------------------------- helpers


def selected_combinations(cfg: StudyConfig) -> list[str]:
    """Names of the NPP × Rh combinations the study asks for (validated).

    ``all`` means the six combinations of seed paper 000.
    """
    from ..flux import combinations as comb

    if cfg.models.combinations == "all":
        return list(comb.SEED_000)
    for name in cfg.models.combinations:
        comb.get_combination(name)  # raises UnknownModelError listing the valid names
    return list(cfg.models.combinations)


def model_options(cfg: StudyConfig, model: str) -> dict[str, Any]:
    """Keyword options of one model: ``models.options.<model>`` plus a global ``mode``."""
    from ..flux import combinations as comb

    opts = cfg.models.options
    valid = set(comb.NPP_MODELS) | set(comb.RH_MODELS) | {"mode"}
    bad = sorted(set(opts) - valid)
    if bad:
        raise ConfigError(f"models.options: unknown model(s) {bad}; options are keyed by model "
                          f"name: {', '.join(sorted(valid))}")
    out: dict[str, Any] = {}
    if "mode" in opts:
        out["mode"] = opts["mode"]
    out.update(opts.get(model) or {})
    reg = comb.NPP_MODELS.get(model) or comb.RH_MODELS.get(model)
    if reg is not None and reg.functions:
        accepted = {name for f in reg.functions
                    for name, p in inspect.signature(f).parameters.items()
                    if p.kind == p.KEYWORD_ONLY or p.default is not p.empty}
        accepted -= {"time", "time_dim"}
        bad = sorted(set(out) - accepted)
        if bad:
            raise ConfigError(f"models.options.{model}: unknown option(s) {bad}; valid options: "
                              f"{', '.join(sorted(accepted))}")
    return out


def target_grid(cfg: StudyConfig, arrays: dict[str, xr.DataArray] | None = None):
    """The study's target :class:`~carbonsink.cube.GridSpec`."""
    from ..cube import GridSpec

    g = cfg.grid
    if g.template is not None:
        path = cfg.resolve(g.template)
        if not path.exists():
            raise ConfigError(f"grid.template file not found: {path}")
        return GridSpec.from_raster(path)
    if g.like is not None:
        if arrays is None or g.like not in arrays:
            raise ConfigError(f"grid.like: input '{g.like}' is not available")
        return GridSpec.from_dataarray(arrays[g.like])
    return GridSpec(crs=g.crs, resolution=g.resolution, bounds=tuple(g.bounds))


def _time_slice(da: xr.DataArray, cfg: StudyConfig, freq: str, role: str) -> xr.DataArray:
    from ..cube.temporal import check_period

    if freq == "static" or "time" not in da.dims:
        return da
    y0, y1 = cfg.period.years
    if freq == "month":
        start, end, f = cfg.period.start_month + "-01", cfg.period.end_month + "-01", "MS"
    elif freq == "year":
        start, end, f = f"{y0}-01-01", f"{y1}-01-01", "YS"
    else:  # 8-day composites: every composite of the covered years
        start, end, f = f"{y0}-01-01", f"{y1}-12-31", "8D"
    da = da.sel(time=slice(start, end))
    check_period(da.rename(role), start, end, f)
    return da


def read_inputs(cfg: StudyConfig) -> dict[str, xr.DataArray]:
    """Read every input (lazily), in canonical units, cut to the study period."""
    from ..io import read_input

    out: dict[str, xr.DataArray] = {}
    for role, inp in cfg.inputs.items():
        variable, default_freq = INPUT_ROLES[role]
        freq = inp.frequency or default_freq
        da = read_input(cfg.resolve(inp.path), variable=inp.variable, units=inp.units,
                        date_pattern=inp.date_pattern, band_dates=inp.band_dates,
                        frequency=freq, crs=inp.crs, product=inp.product,
                        chunks={"y": cfg.dask.chunks.get("y", 256),
                                "x": cfg.dask.chunks.get("x", 256)})
        if freq == "static" and "time" in da.dims:
            if da.sizes["time"] != 1:
                raise ConfigError(f"inputs.{role}: a static input must have one time step, "
                                  f"found {da.sizes['time']}; set frequency accordingly")
            da = da.isel(time=0, drop=True)
        da = to_canonical(da, variable, period=_FREQ_PERIOD[freq],
                          units=inp.units if inp.units else None)
        if freq == "8day":
            expected = canonical_units(variable, None)
            if da.attrs["units"] != expected:
                da = to_canonical(da, variable, period=None)
        da.attrs["carbonsink_input"] = str(inp.path)
        out[role] = _time_slice(da, cfg, freq, role)
    return out


def _frequency(cfg: StudyConfig, role: str) -> str:
    return cfg.inputs[role].frequency or INPUT_ROLES[role][1]


def check_study(cfg: StudyConfig) -> list[str]:
    """Validate inputs, grids, units and period coverage without computing anything."""
    from ..cube import GridSpec  # noqa: F401  (import errors surface here)

    messages = []
    arrays = read_inputs(cfg)
    grid = target_grid(cfg, arrays)
    messages.append(f"target grid: {grid.shape[0]} x {grid.shape[1]} cells, CRS {grid.crs}")
    for role, da in arrays.items():
        if da.rio.crs is None:
            raise AlignmentError(f"input '{role}' ({cfg.inputs[role].path}) has no CRS; "
                                 f"fix: give inputs.{role}.crs in the study file")
        t = f"{da.sizes['time']} steps" if "time" in da.dims else "static"
        messages.append(f"input {role}: {da.attrs.get('units')} , {t}, CRS {da.rio.crs}")
    missing = _missing_for_models(cfg, arrays)
    if missing:
        raise ConfigError(missing)
    combos = selected_combinations(cfg)
    from ..flux import combinations as comb

    for name in combos:
        c = comb.get_combination(name)
        model_options(cfg, c.npp.name)
        model_options(cfg, c.rh.name)
    messages.append(f"combinations: {', '.join(combos)}")
    return messages


def _missing_for_models(cfg: StudyConfig, arrays: dict[str, Any]) -> str | None:
    from ..flux import combinations as comb

    need: dict[str, set[str]] = {}
    for name in selected_combinations(cfg):
        c = comb.get_combination(name)
        for role in (*c.npp.inputs, *c.rh.inputs):
            need.setdefault(role, set()).add(name)
        if c.npp.name == "casa" and not ("eet" in arrays and "pet" in arrays):
            need.setdefault("pr", set()).add(name)
        if c.npp.name == "casa" and cfg.landcover_scheme == "clcd" and \
                "lc_table" not in (cfg.models.options.get("casa") or {}):
            return ("CASA maps IGBP land-cover codes to its vegetation types; with "
                    "inputs.landcover.scheme clcd give models.options.casa.lc_table "
                    "(a CLCD code -> vegetation type table)")
    missing = {r: sorted(c) for r, c in need.items() if r not in arrays}
    if not missing:
        return None
    lines = [f"inputs.{r} is required by {', '.join(c)}" for r, c in sorted(missing.items())]
    return "the study's models need inputs it does not give:\n  - " + "\n  - ".join(lines)


# --------------------------------------------------------------------------- writers


def _write_dataset(ctx: RunContext, ds: xr.Dataset, stem: str, step: str,
                   models: dict | None = None, parameters: dict | None = None) -> list[Path]:
    from ..io import write_netcdf, write_zarr

    ds = ds.copy()
    if ds.rio.crs is None:
        crs = _grid_crs(ctx)
        if crs is None:
            raise AlignmentError(f"output {stem}: lost its CRS and the study grid has none")
        ds = ds.rio.write_crs(crs)
    ds.attrs.update(flat_attrs(provenance(ctx.cfg, step, models=models, parameters=parameters)))
    outs = []
    fmts = ctx.cfg.outputs.formats
    if "zarr" in fmts or "netcdf" not in fmts:
        p = ctx.path("cubes", stem + ".zarr")
        write_zarr(ds, p)
        outs.append(p)
    if "netcdf" in fmts:
        p = ctx.path("cubes", stem + ".nc")
        write_netcdf(ds, p)
        outs.append(p)
    return outs


def _cube_path(ctx: RunContext, stem: str) -> Path | None:
    """The written cube ``cubes/<stem>`` (Zarr preferred, else NetCDF), or None."""
    for ext in (".zarr", ".nc"):
        p = ctx.out_dir / "cubes" / (stem + ext)
        if p.exists():
            return p
    return None


def _grid_crs(ctx: RunContext):
    """CRS of the study grid, as written by the prepare step."""
    if ctx.crs is None:
        for g in _GROUPS:
            if _cube_path(ctx, f"inputs_{g}") is not None:
                ctx.crs = _open_cube(ctx, f"inputs_{g}").rio.crs
                break
    return ctx.crs


def _open_cube(ctx: RunContext, stem: str) -> xr.Dataset:
    from ..io import read_cube

    path = _cube_path(ctx, stem)
    return read_cube(path if path is not None else ctx.out_dir / "cubes" / (stem + ".zarr"))


def read_result_table(out_dir: Path, stem: str) -> pd.DataFrame | None:
    """A table of a results folder (``tables/<stem>``, Parquet preferred), or None."""
    from ..io.tables import read_table

    for ext in (".parquet", ".csv"):
        p = Path(out_dir) / "tables" / (stem + ext)
        if p.exists():
            return read_table(p)
    return None


def _write_table(ctx: RunContext, df: pd.DataFrame, stem: str, step: str) -> list[Path]:
    from ..io import write_table

    meta = flat_attrs(provenance(ctx.cfg, step))
    outs = []
    fmts = [f for f in ctx.cfg.outputs.formats if f in ("csv", "parquet")] or ["csv"]
    for fmt in fmts:
        p = ctx.path("tables", f"{stem}.{fmt}")
        write_table(df, p, metadata=meta)
        outs.append(p)
    return outs


# --------------------------------------------------------------------------- steps


def step_prepare(ctx: RunContext) -> list[Path]:
    """Read every input, convert units, regrid onto the target grid, mask to the region."""
    from ..cube import pixel_area, regrid, region_mask

    cfg = ctx.cfg
    arrays = read_inputs(cfg)
    grid = target_grid(cfg, arrays)
    missing = _missing_for_models(cfg, arrays)
    if missing:
        raise ConfigError(missing)
    mask = None
    if cfg.region is not None:
        mask = region_mask(grid, cfg.resolve(cfg.region.path), attribute=cfg.region.attribute,
                           values=cfg.region.values)
    groups: dict[str, dict[str, xr.DataArray]] = {g: {} for g in _GROUPS}
    for role, da in arrays.items():
        method = cfg.inputs[role].resampling
        variable = INPUT_ROLES[role][0]
        out = regrid(da, grid, method=method, variable=variable)
        if mask is not None:
            out = out.where(mask)
        out.name = role
        groups[_GROUP_OF_FREQ[_frequency(cfg, role)]][role] = out
    area = pixel_area(grid)
    static = groups["static"]
    static["area"] = area
    if mask is not None:
        static["region_mask"] = mask.astype("uint8").assign_attrs(
            long_name="1 inside the study region", units="1")
    outs: list[Path] = []
    for g in _GROUPS:
        if not groups[g]:
            continue
        ds = xr.Dataset(groups[g])
        ds = ds.chunk({d: -1 if d == "time" else cfg.dask.chunks.get(d, 256) for d in ds.dims})
        outs += _write_dataset(ctx, ds, f"inputs_{g}", "prepare")
    return outs


def load_prepared(ctx: RunContext) -> dict[str, xr.DataArray]:
    """The aligned inputs as a flat mapping role -> lazy DataArray."""
    out: dict[str, xr.DataArray] = {}
    for g in _GROUPS:
        if _cube_path(ctx, f"inputs_{g}") is not None:
            ds = _open_cube(ctx, f"inputs_{g}")
            for name, da in ds.data_vars.items():
                out[str(name)] = da
    return out


def _vegetation_mask(ctx: RunContext, inputs: dict[str, xr.DataArray],
                     time: xr.DataArray) -> xr.DataArray | None:
    """True where fluxes are meaningful: not water / snow (and user-chosen classes)."""
    from ..cube import landcover_mask

    if "landcover" not in inputs:
        return None
    lc = inputs["landcover"]
    keep = landcover_mask(lc, mask_classes=tuple(ctx.cfg.models.mask_classes),
                          scheme=ctx.cfg.landcover_scheme)
    if "time" in keep.dims:
        years = keep["time"].dt.year
        keep = keep.assign_coords(time=years.values).rename(time="year")
        idx = np.searchsorted(keep["year"].values, time.dt.year.values, side="right") - 1
        idx = np.clip(idx, 0, keep.sizes["year"] - 1)
        keep = keep.isel(year=xr.DataArray(idx, dims="time")).drop_vars("year")
        keep = keep.assign_coords(time=time.values)
    return keep


def step_flux(ctx: RunContext) -> list[Path]:
    """NPP and Rh models once each, NEP for every selected combination; monthly + annual cubes."""
    from ..cube.temporal import growing_season, to_annual
    from ..flux import combinations as comb
    from ..flux.nep import nep as nep_fn

    cfg = ctx.cfg
    inputs = load_prepared(ctx)
    combos = [comb.get_combination(c) for c in selected_combinations(cfg)]
    outs: list[Path] = []
    for m in sorted({c.npp.name for c in combos}):
        ctx.echo(f"      NPP model '{m}'")
        opts = model_options(cfg, m)
        ds = comb.run_npp(m, inputs, **opts).to_dataset(name="npp")
        outs += _write_dataset(ctx, ds, f"models/npp_{m}", "flux", models={"npp": m},
                               parameters=opts)
    for r in sorted({c.rh.name for c in combos}):
        ctx.echo(f"      Rh model '{r}'")
        opts = model_options(cfg, r)
        ds = comb.run_rh(r, inputs, **opts)
        outs += _write_dataset(ctx, ds, f"models/rh_{r}", "flux", models={"rh": r},
                               parameters=opts)
    for c in combos:
        npp = _open_cube(ctx, f"models/npp_{c.npp.name}")["npp"]
        rhds = _open_cube(ctx, f"models/rh_{c.rh.name}")
        params = {"npp": model_options(cfg, c.npp.name), "rh": model_options(cfg, c.rh.name)}
        models = {"combination": c.name, "npp": c.npp.name, "rh": c.rh.name}
        ctx.echo(f"      combination '{c.name}'")
        annual_rh = "yr-1" in rhds["rh"].attrs.get("units", "")
        if annual_rh:  # e.g. Pei in mode="paper": one annual evaluation (001/003)
            npp = to_annual(npp, min_valid_fraction=1.0)
        cube = xr.Dataset({"npp": npp, "rh": rhds["rh"], "nep": nep_fn(npp, rhds["rh"])})
        for extra in ("rs", "rh_gt_rs"):
            if extra in rhds and not annual_rh:
                cube[extra] = rhds[extra]
        keep = _vegetation_mask(ctx, inputs, cube["time"])
        if keep is not None:
            with xr.set_options(keep_attrs=True):
                cube = cube.where(keep) if "rh_gt_rs" not in cube else \
                    cube.drop_vars("rh_gt_rs").where(keep).assign(rh_gt_rs=cube["rh_gt_rs"])
        cube.attrs["combination"] = c.name
        if annual_rh:
            outs += _write_dataset(ctx, cube, f"{c.name}/annual", "flux", models=models,
                                   parameters=params)
            continue
        outs += _write_dataset(ctx, cube, f"{c.name}/monthly", "flux", models=models,
                               parameters=params)
        monthly = _open_cube(ctx, f"{c.name}/monthly")
        fluxes = monthly[[v for v in ("npp", "rh", "nep", "rs") if v in monthly]]
        annual = to_annual(fluxes, min_valid_fraction=1.0)
        outs += _write_dataset(ctx, annual, f"{c.name}/annual", "flux", models=models,
                               parameters=params)
        gs = growing_season(fluxes, months=tuple(cfg.outputs.growing_season_months))
        outs += _write_dataset(ctx, gs, f"{c.name}/growing_season", "flux", models=models,
                               parameters=params)
    return outs


def step_maps(ctx: RunContext) -> list[Path]:
    """Cloud-Optimized GeoTIFFs of multi-year mean annual NPP, Rh and NEP per combination."""
    from ..io import write_cog

    outs: list[Path] = []
    if "cog" not in ctx.cfg.outputs.formats:
        return outs
    for name in selected_combinations(ctx.cfg):
        annual = _open_cube(ctx, f"{name}/annual")
        for v in ("npp", "rh", "nep"):
            mean = annual[v].mean("time", skipna=False)
            mean.attrs = {**annual[v].attrs,
                          "long_name": f"multi-year mean annual {annual[v].attrs.get('long_name', v)}",
                          **flat_attrs(provenance(ctx.cfg, "maps",
                                                  models={"combination": name}))}
            mean = mean.rio.write_crs(annual[v].rio.crs) if annual[v].rio.crs else mean
            p = ctx.path("maps", name, f"{v}_mean_annual.tif")
            write_cog(mean, p)
            outs.append(p)
    return outs


def step_summaries(ctx: RunContext) -> list[Path]:
    """Area-weighted regional series and per-land-cover-class means (tidy tables)."""
    from ..cube import reclassify
    from ..regions import per_class_summary, regional_mean, regional_total

    cfg = ctx.cfg
    inputs = load_prepared(ctx)
    area = inputs["area"]
    rows = []
    gs_rows = []
    class_rows = []
    for name in selected_combinations(cfg):
        annual = _open_cube(ctx, f"{name}/annual")
        gs = _open_cube(ctx, f"{name}/growing_season") \
            if _cube_path(ctx, f"{name}/growing_season") is not None else None
        for v in ("npp", "rh", "nep"):
            mean = regional_mean(annual[v], area).compute()
            total = regional_total(annual[v], area, units="Tg C").compute()
            for t, mv, tv in zip(annual["time"].dt.year.values, mean.values, total.values,
                                 strict=True):
                rows.append({"combination": name, "variable": v, "year": int(t),
                             "mean_g_C_m2_yr": float(mv), "total_Tg_C_yr": float(tv)})
            if gs is None:
                continue
            gmean = regional_mean(gs[v], area).compute()
            for t, mv in zip(gs["time"].dt.year.values, gmean.values, strict=True):
                gs_rows.append({"combination": name, "variable": v, "year": int(t),
                                "season_total_g_C_m2": float(mv),
                                "monthly_mean_g_C_m2_month": float(mv) / len(
                                    cfg.outputs.growing_season_months)})
        if "landcover" in inputs and "landcover_summary" in cfg.analyses:
            lc = inputs["landcover"]
            lc_last = lc.isel(time=-1) if "time" in lc.dims else lc
            classes = reclassify(lc_last, scheme=cfg.landcover_scheme, to="7class")
            nep_mean = annual["nep"].mean("time", skipna=False)
            df = per_class_summary(nep_mean, classes, area)
            df.insert(0, "combination", name)
            df.insert(1, "variable", "nep_mean_annual")
            class_rows.append(df)
    outs = _write_table(ctx, pd.DataFrame(rows), "regional_annual", "summaries")
    outs += _write_table(ctx, pd.DataFrame(gs_rows), "regional_growing_season", "summaries")
    if class_rows:
        outs += _write_table(ctx, pd.concat(class_rows, ignore_index=True),
                             "landcover_nep", "summaries")
    if "sink_classes" in cfg.analyses:
        outs += _sink_class_table(ctx, area)
    return outs


def _sink_class_table(ctx: RunContext, area: xr.DataArray) -> list[Path]:
    from ..stats import class_area_shares, sink_source_classes

    frames = []
    for name in selected_combinations(ctx.cfg):
        annual = _open_cube(ctx, f"{name}/annual")
        nep_mean = annual["nep"].mean("time", skipna=False)
        classes = sink_source_classes(nep_mean)
        df = class_area_shares(classes, area)
        df.insert(0, "combination", name)
        frames.append(df)
    return _write_table(ctx, pd.concat(frames, ignore_index=True), "sink_source_area", "summaries")


def step_trends(ctx: RunContext) -> list[Path]:
    """Per-pixel Sen/Mann–Kendall and OLS trends of annual NEP, class maps and area shares.

    Also the OLS trend of each area-weighted regional annual series (METHODS §6.1–6.3).
    """
    from ..io import write_cog
    from ..regions import regional_mean
    from ..stats import class_area_shares, mann_kendall, ols_trend, sen_mk_classes
    from ..stats import ols_six_classes

    cfg = ctx.cfg
    if "trends" not in cfg.analyses:
        return []
    y0, y1 = cfg.period.years
    if y1 - y0 + 1 < MIN_TREND_YEARS:
        ctx.echo(f"      trends skipped: the study period has {y1 - y0 + 1} years, the "
                 f"Mann–Kendall test needs at least {MIN_TREND_YEARS} (METHODS §1.3)")
        return []
    inputs = load_prepared(ctx)
    area = inputs["area"]
    outs: list[Path] = []
    shares, regional = [], []
    for name in selected_combinations(cfg):
        annual = _open_cube(ctx, f"{name}/annual")
        nep = annual["nep"]
        mk = mann_kendall(nep, "time")
        ols = ols_trend(nep, "time")
        classes9 = sen_mk_classes(mk)
        classes6 = ols_six_classes(ols)
        ds = xr.Dataset({
            **{f"sen_{k}": v for k, v in mk.data_vars.items()},
            **{f"ols_{k}": v for k, v in ols.data_vars.items()},
            "sen_mk_class": classes9, "ols_class": classes6})
        models = {"combination": name, "statistics": ["mann_kendall", "ols_trend"]}
        outs += _write_dataset(ctx, ds, f"{name}/nep_trend", "trends", models=models)
        written = _open_cube(ctx, f"{name}/nep_trend")
        for var, label in (("sen_mk_class", "Sen/MK nine classes (seed 001)"),
                           ("ols_class", "OLS six classes (seed 003)")):
            df = class_area_shares(written[var], area)
            df.insert(0, "combination", name)
            df.insert(1, "scheme", label)
            shares.append(df)
        if "cog" in cfg.outputs.formats:
            prov = flat_attrs(provenance(cfg, "trends", models=models))
            for var in ("sen_slope", "sen_mk_class", "ols_slope", "ols_p"):
                da = written[var]
                da = da.assign_attrs(**prov)
                p = ctx.path("maps", name, f"nep_{var}.tif")
                write_cog(da, p)
                outs.append(p)
        for v in ("npp", "rh", "nep"):
            series = regional_mean(annual[v], area).compute()
            tr = ols_trend(series, "time").compute()
            tm = mann_kendall(series, "time").compute()
            regional.append({"combination": name, "variable": v,
                             "ols_slope_g_C_m2_yr2": float(tr["slope"]),
                             "ols_p": float(tr["p"]), "ols_r2": float(tr["r2"]),
                             "sen_slope_g_C_m2_yr2": float(tm["slope"]),
                             "mk_z": float(tm["z"]), "mk_p": float(tm["p"]),
                             "n_years": int(tr["n"])})
    outs += _write_table(ctx, pd.concat(shares, ignore_index=True), "nep_trend_classes",
                         "trends")
    outs += _write_table(ctx, pd.DataFrame(regional), "regional_trends", "trends")
    return outs


def step_figures(ctx: RunContext) -> list[Path]:
    from ..report.figures import map_figure, timeseries_figure

    if not ctx.cfg.outputs.figures:
        return []
    meta = flat_attrs(provenance(ctx.cfg, "figures"))
    outs = []
    table = read_result_table(ctx.out_dir, "regional_annual")
    p = ctx.path("figures", "nep_regional_annual.png")
    timeseries_figure(table[table.variable == "nep"], p, synthetic=ctx.cfg.synthetic,
                      title=f"{ctx.cfg.name}: area-weighted mean annual NEP", metadata=meta)
    outs.append(p)
    for name in selected_combinations(ctx.cfg):
        annual = _open_cube(ctx, f"{name}/annual")
        p = ctx.path("figures", f"{name}_nep_mean_map.png")
        map_figure(annual["nep"].mean("time", skipna=False).compute(), p,
                   title=f"{name}: mean annual NEP", synthetic=ctx.cfg.synthetic,
                   metadata={**meta, "carbonsink_combination": name})
        outs.append(p)
        if _cube_path(ctx, f"{name}/nep_trend") is not None:
            slope = _open_cube(ctx, f"{name}/nep_trend")["sen_slope"].compute()
            p = ctx.path("figures", f"{name}_nep_sen_slope_map.png")
            map_figure(slope, p, title=f"{name}: Theil–Sen trend of annual NEP",
                       cmap="RdBu", synthetic=ctx.cfg.synthetic,
                       metadata={**meta, "carbonsink_combination": name})
            outs.append(p)
    return outs


def step_report(ctx: RunContext) -> list[Path]:
    from ..report.html import write_index

    p = ctx.out_dir / "index.html"
    write_index(ctx, p)
    return [p]


STEPS: list[Step] = [
    Step("prepare", "read, convert and align inputs", step_prepare,
         config_keys=("period", "grid", "region", "inputs", "outputs.formats", "dask.chunks"),
         uses_input_files=True),
    Step("flux", "NPP, Rh and NEP for every combination", step_flux, depends=("prepare",),
         config_keys=("models", "outputs", "period")),
    Step("maps", "maps (Cloud-Optimized GeoTIFF)", step_maps, depends=("flux",),
         config_keys=("outputs.formats",)),
    Step("summaries", "regional and per-class summaries", step_summaries, depends=("flux",),
         config_keys=("analyses", "outputs")),
    Step("trends", "trends and significance classes", step_trends, depends=("flux",),
         config_keys=("analyses", "outputs.formats")),
    Step("figures", "figures", step_figures, depends=("summaries", "maps", "trends"),
         config_keys=("outputs", "name", "synthetic")),
    Step("report", "HTML report", step_report,
         depends=("prepare", "flux", "maps", "summaries", "trends", "figures"),
         config_keys=("name", "description", "synthetic", "outputs")),
]
