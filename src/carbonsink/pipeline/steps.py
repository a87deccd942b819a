"""The steps of ``carbonsink run``, built from the study.

prepare → flux → maps → one step per analysis (ordered by what each needs, those that draw
maps first) → report; the report shows the analyses in study order (:func:`build_steps`).

Every step reads what the previous steps wrote (lazily, through the product
catalog), so a rerun can skip current steps and memory stays bounded by the
chunk size. The flux step calls :func:`carbonsink.flux.chain.run_chain`, the
same function users call; each analysis step calls the registered
:class:`~carbonsink.analysis.Analysis`; the report step only renders.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr
import xxhash

from .._memory import computed_in_batches
from ..analysis.base import DRIVERS, AnalysisContext, get_analysis
from ..errors import AlignmentError, CarbonsinkError, ConfigError, InputError
from ..cube.grid import GridSpec, as_grid
from ..units import canonical_units, packing_after_conversion, to_canonical
from .catalog import INPUT_GROUPS, Catalog
from .config import INPUT_ROLES, InputConfig, StudyConfig
from .provenance import flat_attrs, provenance
from .runner import RunContext, Step

__all__ = ["build_steps", "read_inputs", "target_grid", "check_study", "selected_combinations",
           "selected_analyses", "PipelineContext", "read_result_table"]

_FREQ_PERIOD = {"month": "month", "year": "year", "8day": None, "static": None}
_GROUP_OF_FREQ = {"month": "monthly", "year": "annual", "8day": "8day", "static": "static"}
_FLUX_VARS = ("npp", "rh", "nep", "rs")
#: lazily opened cubes of this process (see open_cube)
_OPEN_CACHE: dict[tuple, xr.Dataset] = {}
#: encoding key of a read input: how its aligned copy can be stored (integers, scale, offset)
_PACKING = "carbonsink_packing"
#: the CF encoding keys of that packing
_PACK_KEYS = ("dtype", "scale_factor", "add_offset", "_FillValue")


# --------------------------------------------------------------------------- study helpers


def selected_combinations(cfg: StudyConfig) -> list[str]:
    """Names of the combinations the study asks for (validated; ``all`` = the six of 000)."""
    from ..flux import combinations as comb

    names = cfg.models.combination_names()
    if names == "all":
        return list(comb.SEED_000)
    for name in names:
        comb.get_combination(name)  # raises UnknownModelError listing the valid names
    return list(names)


def _combination_models(name: str) -> list[tuple[str, str]]:
    from ..flux import combinations as comb

    c = comb.get_combination(name)
    return [(kind, m.name) for kind in ("npp", "rh", "nep")
            if (m := getattr(c, kind, None)) is not None]


def model_options(cfg: StudyConfig, kind: str, model: str) -> dict[str, Any]:
    """Options of one model (``models.options.<model>`` plus a global ``mode``), validated
    against the model's function signatures."""
    from ..errors import InvalidArgumentError
    from ..flux import registry

    opts = cfg.models.options
    valid = {"mode"} | {n for k in ("npp", "rh", "nep") for n in registry.model_names(k)} | \
        {f"{k}.{n}" for k in ("npp", "rh", "nep") for n in registry.model_names(k)}
    bad = sorted(set(opts) - valid)
    if bad:
        raise ConfigError(f"models.options: unknown model(s) {bad}; options are keyed by model "
                          f"name: {', '.join(sorted(valid))}")
    out: dict[str, Any] = {}
    accepted = registry.model_options(kind, model)
    if "mode" in opts and "mode" in accepted:
        out["mode"] = opts["mode"]
    out.update(opts.get(model) or {})
    out.update(opts.get(f"{kind}.{model}") or {})
    key = f"{kind}.{model}" if f"{kind}.{model}" in opts else model
    try:
        registry.validate_options(kind, model, out)
    except InvalidArgumentError as exc:
        raise ConfigError(f"models.options.{key}: {exc}") from None
    return out


def chain_options(cfg: StudyConfig) -> dict[str, Any]:
    """The ``options`` mapping handed to :func:`~carbonsink.flux.chain.run_chain`.

    CASA gets ``bounds_first=True`` (unless the study sets it): the flux step computes the
    region block by block, and whole-region NDVI bounds computed lazily would be recomputed
    for every block."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in cfg.models.options.items()}
    if any("casa" == m for c in selected_combinations(cfg) for _, m in _combination_models(c)):
        casa = out.setdefault("casa", {})
        if isinstance(casa, dict):
            casa.setdefault("bounds_first", True)
    return out


def selected_analyses(cfg: StudyConfig, available: set[str] | None = None) -> dict[str, dict]:
    """``{name: options}`` of the analyses to run, in study order.

    Without ``analyses:`` in the study: every default analysis whose requirements the
    study's inputs meet (e.g. ``landcover_summary`` only with a land-cover input).
    """
    from ..analysis.base import ANALYSES, analysis_names, validate_options

    if cfg.analyses is not None:
        return dict(cfg.analyses)
    roles = set(cfg.inputs) if available is None else available
    out = {}
    for name in analysis_names():
        cls = ANALYSES[name]
        if not cls.default:
            continue
        if "landcover" in cls.requires and "landcover" not in roles:
            continue
        if "experiments" in cls.requires and len(cfg.experiment_names) < 2:
            continue
        out[name] = validate_options(name, {}).model_dump(mode="json")
    return out


def _ordered_analyses(cfg: StudyConfig, maps_first: bool = False) -> list[str]:
    """Analyses in an order where each runs after those it reads (``after``, moved no
    earlier than that needs): the study order (the report's), or with ``maps_first`` the
    order the pipeline runs them in, where the analyses that draw per-pixel maps
    (``Analysis.draws_maps``), each preceded by the analyses it reads, come before the
    others."""
    chosen = selected_analyses(cfg)
    rank = {n: i for i, n in enumerate(chosen)}
    done: list[str] = []
    visiting: list[str] = []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            raise ConfigError("analyses: circular 'after' dependencies among "
                              f"{visiting[visiting.index(name):]}")
        visiting.append(name)
        for dep in sorted((d for d in get_analysis(name).after if d in chosen), key=rank.get):
            visit(dep)
        visiting.pop()
        done.append(name)

    first = [n for n in chosen if maps_first and get_analysis(n).draws_maps]
    for name in first + [n for n in chosen if n not in first]:
        visit(name)
    return done


def report_order(cfg: StudyConfig) -> list[str]:
    """The steps in the order the report presents their sections: prepare, flux, the
    analyses in study order, maps, report (the run order, :func:`build_steps`, differs)."""
    return ["prepare", "flux", *_ordered_analyses(cfg), "maps", "report"]


def _check_analysis_requirements(cfg: StudyConfig) -> None:
    for name in selected_analyses(cfg):
        an = get_analysis(name)
        if "landcover" in an.requires and "landcover" not in cfg.inputs:
            raise ConfigError(f"analyses.{name} needs a land-cover input; give inputs.landcover "
                              "or remove the analysis")
        if "experiments" in an.requires and len(cfg.experiment_names) < 2:
            raise ConfigError(f"analyses.{name} compares experiments; define at least two under "
                              "experiments:")
        for dep in an.after:
            if dep not in selected_analyses(cfg):
                raise ConfigError(f"analyses.{name} reads the results of '{dep}'; add "
                                  f"analyses.{dep} to the study")


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


def _frequency(inp: InputConfig, role: str) -> str:
    return inp.frequency or INPUT_ROLES[role][1]


#: lazily read inputs of this process, by what they were read from (see read_input_role)
_READ_CACHE: dict[tuple, xr.DataArray] = {}


def _read_key(cfg: StudyConfig, role: str, inp: InputConfig) -> tuple | None:
    from ..io._common import expand_paths

    try:
        files = expand_paths(cfg.resolve(inp.path))
    except Exception:  # noqa: BLE001 - the read below reports it properly
        return None
    stats = tuple((str(f), f.stat().st_size, f.stat().st_mtime_ns) for f in files
                  if f.is_file())
    return (role, inp.model_dump_json(), cfg.period.model_dump_json() if cfg.period else None,
            stats)


def read_input_role(cfg: StudyConfig, role: str, inp: InputConfig) -> xr.DataArray:
    """Read one input (lazily), in canonical units, cut to the study period.

    The lazy result is kept for this process, keyed by the files' paths, sizes and
    modification times, so preflight, check and prepare open a series of hundreds of
    GeoTIFFs once, not three times."""
    key = _read_key(cfg, role, inp)
    if key is not None and key in _READ_CACHE:
        return _READ_CACHE[key].copy()
    da = _read_input_role(cfg, role, inp)
    if key is not None:
        if len(_READ_CACHE) > 64:
            _READ_CACHE.clear()
        _READ_CACHE[key] = da
    return da.copy()


def _read_input_role(cfg: StudyConfig, role: str, inp: InputConfig) -> xr.DataArray:
    from ..io import read_input

    variable, _ = INPUT_ROLES[role]
    freq = _frequency(inp, role)
    da = read_input(cfg.resolve(inp.path), variable=inp.variable, units=inp.units,
                    date_pattern=inp.date_pattern, band_dates=inp.band_dates,
                    frequency=freq, crs=inp.crs, product=inp.product, chunks="file")
    if freq == "static" and "time" in da.dims:
        if da.sizes["time"] != 1:
            raise ConfigError(f"inputs.{role}: a static input must have one time step, "
                              f"found {da.sizes['time']}; set frequency accordingly")
        da = da.isel(time=0, drop=True)
    source_units = inp.units or da.attrs.get("units")
    source_encoding = dict(da.encoding)
    da = to_canonical(da, variable, period=_FREQ_PERIOD[freq],
                      units=inp.units if inp.units else None)
    if freq == "8day":
        expected = canonical_units(variable, None)
        if da.attrs["units"] != expected:
            da = to_canonical(da, variable, period=None)
    da.attrs["carbonsink_input"] = str(inp.path)
    if source_units:  # what the stored values were declared in (plausibility fixes)
        da.attrs["carbonsink_source_units"] = str(source_units)
    da = _time_slice(da, cfg, freq, role)
    pack = packing_after_conversion(source_encoding, source_units, da.attrs["units"],
                                    variable=variable) if source_units else None
    if pack is not None:  # how the aligned copy can store the values (see _align)
        da.encoding[_PACKING] = pack
    return da


def read_inputs(cfg: StudyConfig, inputs: dict[str, InputConfig] | None = None
                ) -> dict[str, xr.DataArray]:
    """Read every input (lazily), in canonical units, cut to the study period."""
    return {role: read_input_role(cfg, role, inp)
            for role, inp in (cfg.inputs if inputs is None else inputs).items()}


def check_study(cfg: StudyConfig) -> list[str]:
    """Validate inputs, grids, units, period coverage, models and analyses (computes nothing)."""
    messages = []
    arrays = read_inputs(cfg)
    synthetic = sorted(r for r, da in arrays.items()
                       if str(da.attrs.get("synthetic", "")).lower().startswith("true"))
    if synthetic and not cfg.synthetic:
        # synthetic inputs (e.g. written by carbonsink.demo) label every output SYNTHETIC, as
        # `synthetic: true` in the study would; the study object is frozen, so set it directly
        object.__setattr__(cfg, "synthetic", True)
        messages.append(f"inputs {', '.join(synthetic)} are synthetic (carbonsink.demo): every "
                        "output is labelled SYNTHETIC")
    grid = target_grid(cfg, arrays)
    messages.append(f"target grid: {grid.shape[0]} x {grid.shape[1]} cells, CRS {grid.crs}")
    for role, da in arrays.items():
        if da.rio.crs is None:
            raise AlignmentError(f"input '{role}' ({cfg.inputs[role].path}) has no CRS; "
                                 f"fix: give inputs.{role}.crs in the study file")
        t = f"{da.sizes['time']} steps" if "time" in da.dims else "static"
        messages.append(f"input {role}: {da.attrs.get('units')} , {t}, CRS {da.rio.crs}")
    for name, exp in (cfg.experiments or {}).items():
        for role, inp in exp.inputs.items():
            da = read_input_role(cfg, role, inp)
            if da.rio.crs is None:
                raise AlignmentError(f"experiments.{name}.inputs.{role} ({inp.path}) has no CRS; "
                                     f"fix: give experiments.{name}.inputs.{role}.crs")
        messages.append(f"experiment {name}: " + ", ".join(
            [f"{r} held at {h}" for r, h in exp.hold.items()] +
            [f"{r} from {i.path}" for r, i in exp.inputs.items()]) or "as the study")
    missing = _missing_for_models(cfg, set(arrays))
    if missing:
        raise ConfigError(missing)
    if cfg.checks.plausibility != "off":  # sampled values vs each variable's plausible range
        from ..cube.landcover import landcover_table
        from ..errors import InputError
        from ..plausibility import check_values, read_samples

        checked = [(f"inputs.{r}", r, cfg.inputs[r], da) for r, da in arrays.items()] + [
            (f"experiments.{n}.inputs.{r}", r, i, read_input_role(cfg, r, i))
            for n, e in (cfg.experiments or {}).items() for r, i in e.inputs.items()]
        samples = read_samples([c[3] for c in checked], sample=cfg.checks.plausibility_sample)
        lines = []
        for (key, role, inp, da), sampled in zip(checked, samples):
            codes = None
            if INPUT_ROLES[role][0] == "landcover":  # + the no-class codes of cube.landcover
                scheme = inp.scheme or "igbp"
                codes = [row["code"] for row in landcover_table(scheme)] + \
                    list({"igbp": (0, 255), "mcd12c1": (255,)}.get(scheme, ()))
            try:
                rep = check_values(da, INPUT_ROLES[role][0], name=key, key=key, codes=codes,
                                   how=cfg.checks.plausibility,
                                   sample=cfg.checks.plausibility_sample, sampled=sampled)
            except InputError as exc:
                raise ConfigError(f"{exc}\n(checks.plausibility: warn reports this and goes "
                                  "on)") from None
            lines.append(rep.summary().replace("inputs.", "", 1) if key == f"inputs.{role}"
                         else rep.summary())
            if not rep.ok:
                messages.append(f"WARNING {rep.message()}")
        messages.append("plausibility (share of sampled values outside the plausible range): "
                        + "; ".join(lines))
    if cfg.region is not None:
        mask = _check_region(cfg, grid)
        messages += _check_coverage(cfg, arrays, grid, mask)
    combos = selected_combinations(cfg)
    for name in combos:
        for kind, model in _combination_models(name):
            model_options(cfg, kind, model)
    messages.append(f"combinations: {', '.join(combos)}")
    _check_analysis_requirements(cfg)
    for name, opts in selected_analyses(cfg).items():
        an = get_analysis(name)
        messages += an.check(cfg, an.Options.model_validate(opts))
    messages.append("analyses: " + (", ".join(_ordered_analyses(cfg)) or "(none)"))
    return messages


def _sampled(da: xr.DataArray) -> xr.DataArray:
    """First, middle and last time step (for coverage: fill patterns rarely change)."""
    if "time" not in da.dims or da.sizes["time"] <= 3:
        return da
    n = da.sizes["time"]
    return da.isel(time=sorted({0, n // 2, n - 1}))


def input_fractions(cfg: StudyConfig, arrays: dict[str, xr.DataArray], grid
                    ) -> dict[str, xr.DataArray]:
    """Valid-area fraction of every gridded input on the study grid (sampled in time)."""
    from ..cube import valid_fraction

    out = {}
    for role, da in arrays.items():
        if da.rio.crs is None:
            continue
        out[role] = valid_fraction(_sampled(da), grid, variable=role)
    return out


def region_coverage(cfg: StudyConfig, fractions: dict[str, xr.DataArray], area: xr.DataArray,
                    mask: xr.DataArray) -> dict[str, float]:
    """Share of the region's area covered by valid data of each input."""
    import dask

    w = area.where(mask)
    total = w.sum()
    shares = {role: (w * f.drop_vars("spatial_ref", errors="ignore")).sum() / total
              for role, f in fractions.items()}
    (shares,) = dask.compute(shares)
    return {k: float(v) for k, v in shares.items()}


def _check_region(cfg: StudyConfig, grid):
    """Open the region file, check attribute and values (listing the valid ones)."""
    from ..cube import region_mask
    from ..errors import InputError, UnknownNameError

    r = cfg.region
    path = cfg.resolve(r.path)
    try:
        mask = region_mask(grid, path, attribute=r.attribute, values=r.values)
    except UnknownNameError as exc:
        key = "region.attribute" if exc.kind == "attribute" else "region.values"
        raise ConfigError(f"{key}: {exc}") from None
    except (InputError, AlignmentError) as exc:
        raise ConfigError(f"region.path: {exc}") from None
    if not bool(mask.any()):
        raise ConfigError(f"region: the selected polygons of {path} cover no cell of the study "
                          "grid; fix grid.bounds or region.values")
    return mask


def _check_coverage(cfg: StudyConfig, arrays, grid, mask) -> list[str]:
    from ..cube import pixel_area

    fr = input_fractions(cfg, arrays, grid)
    cov = region_coverage(cfg, fr, pixel_area(grid), mask)
    low = {k: v for k, v in cov.items() if v < cfg.region.min_coverage}
    if low:
        parts = ", ".join(f"inputs.{k} covers {100 * v:.1f} %" for k, v in sorted(low.items()))
        raise ConfigError(
            f"the inputs do not cover the region with valid data: {parts} of the region's "
            f"area (region.min_coverage is {100 * cfg.region.min_coverage:.0f} %). Fix: give "
            "inputs that cover the region, choose a smaller region, or lower "
            "region.min_coverage (totals then use the covered area only)")
    return ["region coverage: " + ", ".join(f"{k} {100 * v:.1f} %" for k, v in cov.items())]


def _missing_for_models(cfg: StudyConfig, available: set[str]) -> str | None:
    from ..flux import registry

    combos = selected_combinations(cfg)
    for name in combos:
        if name.startswith("casa+") and cfg.landcover_scheme == "clcd" and \
                "lc_table" not in (cfg.models.options.get("casa") or {}):
            return ("CASA maps IGBP land-cover codes to its vegetation types; with "
                    "inputs.landcover.scheme clcd give models.options.casa.lc_table "
                    "(a CLCD code -> vegetation type table)")
    missing = registry.missing_inputs(combos, available, cfg.models.options)
    if not missing:
        return None
    lines = [f"inputs.{r} is required by {', '.join(c)}" for r, c in sorted(missing.items())]
    return "the study's models need inputs it does not give:\n  - " + "\n  - ".join(lines)


# --------------------------------------------------------------------------- writers


def _grid_crs(ctx: RunContext):
    if ctx.crs is None:
        for g in INPUT_GROUPS:
            p = ctx.catalog.input_cube(g)
            if p is not None:
                from ..io import read_cube

                ctx.crs = read_cube(p).rio.crs
                break
    return ctx.crs


def _cube_ready(ctx: RunContext, ds: xr.Dataset, step: str, *, experiment: str | None = None,
                models: dict | None = None, parameters: dict | None = None,
                disk_chunks: dict | None = None, analysis: bool = False) -> xr.Dataset:
    """``ds`` as it is written: CRS, experiment coordinate, provenance, study chunks
    (``analysis``: :func:`analysis_chunks`; ``disk_chunks``: chunk sizes replacing them for
    the dimensions it names)."""
    ds = ds.copy()
    if ds.rio.crs is None:
        crs = _grid_crs(ctx)
        if crs is None:
            raise AlignmentError(f"output of step {step}: lost its CRS and the study grid has "
                                 "none")
        ds = ds.rio.write_crs(crs)
    if ctx.cfg.experiments and experiment:
        ds = ds.assign_coords(experiment=experiment)
        ds["experiment"].attrs["long_name"] = "experiment of the study"
    rec = provenance(ctx.cfg, step, models=models, parameters=parameters)
    if ctx.cfg.experiments and experiment:
        rec["experiment"] = experiment
    ds.attrs.update(flat_attrs(rec))
    return _chunked(ctx.cfg, ds, disk_chunks, analysis=analysis)


def write_cube(ctx: RunContext, ds: xr.Dataset, name: str, step: str, *,
               combination: str | None = None, experiment: str | None = None,
               models: dict | None = None, parameters: dict | None = None,
               disk_chunks: dict | None = None) -> list[Path]:
    """Write ``ds`` where the catalog says, with CRS, experiment coordinate and provenance
    (``disk_chunks``: chunk sizes on disk replacing the study's for the dimensions named;
    default time whole, space in the study's tiles)."""
    batch = CubeBatch(ctx)
    batch.add(ds, name, step, combination=combination, experiment=experiment, models=models,
              parameters=parameters, disk_chunks=disk_chunks)
    return batch.write()


def block_tiles(ctx: RunContext) -> int:
    """Tiles computed at once by the flux step: one per thread (local threads, or the
    threads of the dask cluster's workers), so every thread has work while memory stays
    bounded by the block (README, "Speed, memory and disk")."""
    threads = os.cpu_count() or 1
    client = getattr(ctx, "client", None)
    if client is not None:
        try:
            threads = sum(client.nthreads().values()) or threads
        except Exception:  # noqa: BLE001 - a cluster that cannot tell: the local count
            pass
    return max(2, threads)


class CubeBatch:
    """Cubes written together: one dask computation for all their Zarr stores (shared lazy
    inputs read once, every thread busy), each store committed atomically when all are done.
    ``blocked``: computed block by block of the region (:func:`block_tiles` tiles at a time),
    so peak memory does not grow with the region (the flux step). ``analysis``: cubes of the
    analyses, written in :func:`analysis_chunks` (the chunks they are read in).

    ``add`` takes the arguments of :func:`write_cube`; ``write`` returns the paths written.
    """

    def __init__(self, ctx: RunContext, *, blocked: bool = False, analysis: bool = False):
        self.ctx = ctx
        self.blocked = blocked
        self.analysis = analysis and not blocked
        self.items: list[tuple[xr.Dataset, Path]] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, ds: xr.Dataset, name: str, step: str, *, combination: str | None = None,
            experiment: str | None = None, models: dict | None = None,
            parameters: dict | None = None, disk_chunks: dict | None = None) -> None:
        ready = _cube_ready(self.ctx, ds, step, experiment=experiment, models=models,
                            parameters=parameters, disk_chunks=disk_chunks,
                            analysis=self.analysis)
        for p in self.ctx.catalog.cube_targets(name, combination=combination,
                                               experiment=experiment):
            self.items.append((ready, p))

    def blocks(self, datasets: list[xr.Dataset]) -> list[tuple[slice, slice]] | None:
        """Blocks of the region computed one after the other (:func:`block_tiles` tiles
        each), or None for a grid of one block."""
        from ..io.netcdf import spatial_blocks

        grid = next((ds for ds in datasets if {"y", "x"} <= set(ds.dims)), None)
        if grid is None:
            return None
        ch = study_chunks(self.ctx.cfg, {"y": grid.sizes["y"], "x": grid.sizes["x"]})
        out = spatial_blocks(grid.sizes["y"], grid.sizes["x"], ch["y"], ch["x"],
                             block_tiles(self.ctx))
        return out if len(out) > 1 else None

    def write(self) -> list[Path]:
        from ..io import write_netcdf, write_zarr_many

        zarr = [(ds, p) for ds, p in self.items if p.suffix == ".zarr"]
        for _, p in self.items:
            p.parent.mkdir(parents=True, exist_ok=True)
        if zarr:
            write_zarr_many(zarr, blocks=self.blocks([ds for ds, _ in zarr])
                            if self.blocked else None)
        for ds, p in self.items:
            if p.suffix != ".zarr":
                write_netcdf(ds, p)
        outs = [p for _, p in self.items]
        self.items = []
        return outs


def open_cube(ctx: RunContext, name: str, *, combination: str | None = None,
              experiment: str | None = None) -> xr.Dataset | None:
    from ..io import read_cube

    p = ctx.catalog.cube(name, combination=combination, experiment=experiment)
    if p is None:
        return None
    return _open_chunked(ctx.cfg, p, analysis=True)


def _open_chunked(cfg: StudyConfig, p: Path, *, analysis: bool) -> xr.Dataset:
    """The store ``p`` opened lazily with the study's chunks (:func:`_chunked`), cached.

    Opening a cube (metadata, time axis, CRS) costs ~0.1 s whatever its size, and the steps
    open the same cubes (and the prepared inputs) dozens of times: the lazy Dataset is kept
    while the store is the same (a rewritten store is a new directory: another inode). Its
    dask arrays are named from that identity (path, inode, modification time) instead of a
    hash of each variable's backend array (a pickle of it, per variable and open)."""
    from ..io import read_cube

    st = p.stat()
    ident = (str(p), st.st_ino, st.st_mtime_ns)
    key = ident + (tuple(sorted(cfg.dask.chunks.items())), analysis)
    ds = _OPEN_CACHE.get(key)
    if ds is None:
        raw = read_cube(p, chunks=None)
        same = {str(v): t for v in raw.data_vars
                if (t := variable_identity(p, str(v))) is not None}
        ds = _chunked(cfg, raw, analysis=analysis, token="{}-{}-{}".format(*ident),
                      var_tokens=same)
        if len(_OPEN_CACHE) > 256:
            _OPEN_CACHE.clear()
        _OPEN_CACHE[key] = ds
    return ds.copy()


def variable_identity(store: Path, name: str) -> str | None:
    """A digest of what variable ``name`` of the Zarr (v2) ``store`` holds: its metadata
    (``.zarray``, ``.zattrs``) and, for each chunk file, its name, device, inode, size and
    modification time. Stores whose chunk files are hard links of each other (the model
    fluxes every combination of a model holds: :func:`_share_model_chunks`) give the same
    digest, so :func:`_open_chunked` names their dask arrays alike and a computation over
    several combinations reads and reduces those chunks once. None (the store's own
    identity is used) for another layout (nested chunk directories, Zarr v3) or an
    unreadable directory (a NetCDF file)."""
    d = store / name
    try:
        meta = [(d / ".zarray").read_bytes(),
                (d / ".zattrs").read_bytes() if (d / ".zattrs").exists() else b""]
        files = []
        with os.scandir(d) as entries:
            for e in entries:
                if e.name.startswith("."):
                    continue
                if not e.is_file(follow_symlinks=False):
                    return None
                st = e.stat(follow_symlinks=False)
                files.append((e.name, st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns))
    except OSError:
        return None
    return "var-" + xxhash.xxh3_128_hexdigest(repr((meta, sorted(files))).encode())


def write_table(ctx: RunContext, df: pd.DataFrame, name: str, step: str) -> list[Path]:
    from ..io import write_table as _write

    meta = flat_attrs(provenance(ctx.cfg, step))
    outs = []
    for p in ctx.catalog.table_targets(name):
        p.parent.mkdir(parents=True, exist_ok=True)
        _write(df, p, metadata=meta)
        outs.append(p)
    return outs


def read_result_table(out_dir: Path, stem: str) -> pd.DataFrame | None:
    """A table of a results folder (``tables/<stem>``, Parquet preferred), or None."""
    from ..io.tables import read_table

    p = Catalog(out_dir).table(stem)
    return read_table(p) if p is not None else None


# --------------------------------------------------------------------------- contexts


class PipelineContext(AnalysisContext):
    """The :class:`~carbonsink.analysis.AnalysisContext` of a run: reads the results folder."""

    def __init__(self, ctx: RunContext, step: str = "analysis",
                 parameters: dict | None = None):
        self._ctx = ctx
        self._step = step
        self._parameters = parameters
        self.outputs: list[Path] = []
        cfg = ctx.cfg
        self.study = cfg
        self.combinations = selected_combinations(cfg)
        self.experiments = cfg.experiment_names
        self.synthetic = cfg.synthetic
        self.growing_season_months = tuple(cfg.outputs.growing_season_months)
        self.zone = zone_label(cfg)
        self.base_dir = cfg.base_dir
        self._inputs: dict[str | None, dict[str, xr.DataArray]] = {}

    def echo(self, msg: str) -> None:
        self._ctx.echo(f"      {msg}")

    def _exp(self, experiment: str | None) -> str | None:
        return experiment if self._ctx.cfg.experiments else None

    def cube(self, product, combination, experiment=None):
        exp = self._exp(experiment or self.experiments[0])
        if combination == DRIVERS and product in ("annual", "growing_season"):
            ds = open_cube(self._ctx, product, combination=combination, experiment=exp) \
                if drivers_stored(self._ctx.cfg) else None
            if ds is None:  # not stored by this study's flux step: derived from the inputs
                cubes = driver_cubes(self._ctx.cfg, self.inputs(exp))
                ds = cubes[product] if cubes is not None else None
            return ds
        ds = open_cube(self._ctx, product, combination=combination, experiment=exp)
        if ds is None and product == "monthly" and combination in self.combinations:
            ds = monthly_combination(self._ctx, combination, exp)
        return ds

    def inputs(self, experiment=None):
        exp = self._exp(experiment)
        if exp not in self._inputs:
            self._inputs[exp] = load_prepared(self._ctx, exp)
        return dict(self._inputs[exp])

    def table(self, name):
        return read_result_table(self._ctx.out_dir, name)

    @property
    def area(self) -> xr.DataArray:
        """Valid cell area [m2]: pixel area × the valid-area fraction of the inputs."""
        from ..cube import valid_area

        inp = self.inputs()
        if "valid_fraction" in inp:
            return valid_area(inp["area"], inp["valid_fraction"])
        return inp["area"]

    def zone_fractions(self):
        """Zone × y × x shares of each cell inside each zone (``zones.fractional``), or None."""
        return self.inputs().get("zone_fractions")

    def store(self, product):
        return self.store_many([product])[0]

    def store_many(self, products):
        self.outputs += _write_products(self._ctx, products, self._step, self._parameters)
        return [open_cube(self._ctx, p.name, combination=p.combination,
                          experiment=self._exp(p.experiment)) for p in products]


def _write_products(ctx: RunContext, products, step: str, parameters: dict | None
                    ) -> list[Path]:
    """Write the cubes of ``products`` in one computation, then their maps (COG)."""
    batch = CubeBatch(ctx, analysis=True)
    for prod in products:
        exp = prod.experiment if ctx.cfg.experiments else None
        batch.add(prod.data, prod.name, step, combination=prod.combination, experiment=exp,
                  models={"analysis": step, **({"combination": prod.combination}
                                               if prod.combination else {})},
                  parameters=parameters)
    outs = batch.write()
    if "cog" in ctx.cfg.outputs.formats and any(prod.maps for prod in products):
        with MapWriter(ctx) as writer:  # the maps of all products side by side
            for prod in products:
                if not prod.maps:
                    continue
                exp = prod.experiment if ctx.cfg.experiments else None
                written = open_cube(ctx, prod.name, combination=prod.combination,
                                    experiment=exp)
                outs += writer.write(written, prod.maps,
                                     prefix=prod.map_prefix if prod.map_prefix is not None
                                     else f"{prod.name}_",
                                     combination=prod.combination, experiment=exp, step=step)
    return outs


def zone_label(cfg: StudyConfig) -> str:
    """Name of the study region as it appears in the tables' ``zone`` column."""
    if cfg.region is not None and cfg.region.values:
        return ", ".join(cfg.region.values)
    if cfg.region is not None:
        return Path(cfg.region.path).stem
    return "study area"


# --------------------------------------------------------------------------- prepare


def _sliced_from_file(da: xr.DataArray, role: str, grid) -> bool:
    """Whether the study grid is a window of the input's own lattice (aligning it slices
    the file's values, no resampling)."""
    return da.rio.crs is not None and GridSpec.from_dataarray(da, name=role).window_of(
        as_grid(grid)) is not None


def _align(cfg: StudyConfig, arrays: dict[str, xr.DataArray], inputs: dict[str, InputConfig],
           grid, mask) -> dict[str, dict[str, xr.DataArray]]:
    from ..cube import regrid

    groups: dict[str, dict[str, xr.DataArray]] = {g: {} for g in INPUT_GROUPS}
    for role, da in arrays.items():
        variable = INPUT_ROLES[role][0]
        # chunks=None: keep the file-order blocks of the read (see _write_inputs)
        out = regrid(da, grid, method=inputs[role].resampling, variable=variable, chunks=None)
        if mask is not None:
            out = out.where(mask)
        out.name = role
        pack = da.encoding.get(_PACKING)
        if pack is not None and _sliced_from_file(da, role, grid):
            # sliced from the source lattice, values unchanged: stored as the source stores
            # them (the same integers, scale and offset in the canonical units), about half
            # the size of float32 and exact within float32 rounding
            out.encoding.update(pack)
        groups[_GROUP_OF_FREQ[_frequency(inputs[role], role)]][role] = out
    return groups


def study_chunks(cfg: StudyConfig, sizes) -> dict[str, int]:
    """The one chunking of every cube the pipeline writes and opens: the whole time axis in one
    chunk (pixel series contiguous on disk, as the statistics read them) and space in tiles of
    at most ``dask.chunks`` pixels, balanced (300 rows in tiles of 200 → 2 x 150, so both cores
    get equal work); other dimensions whole. Peak memory is bounded by the tile size times the
    number of threads, whatever the region's size (README, "Memory")."""
    out: dict[str, int] = {}
    for d, n in sizes.items():
        if d in ("y", "x"):
            c = max(1, int(cfg.dask.chunks.get(str(d), 200)))
            out[str(d)] = -(-int(n) // -(-int(n) // c)) if n else -1
        else:
            out[str(d)] = -1
    return out


#: largest factor :func:`analysis_chunks` widens the study's tiles by, along each dimension
MAX_TILE_FACTOR = 8


def analysis_chunks(cfg: StudyConfig, sizes) -> dict[str, int]:
    """The chunks the analyses read cubes with and write their own cubes in: the study's
    tiles (:func:`study_chunks`) joined ``k`` by ``k``, ``k = ⌊√(months / steps)⌋`` (at most
    :data:`MAX_TILE_FACTOR`) for a cube of ``steps`` time steps in a study of ``months``
    months, so a chunk holds about as many values as a tile of the monthly cube.

    An annual cube of 21 years then reads in tiles of 3 x 3 study tiles, a map (no time) in
    tiles of 8 x 8: each chunk costs the same fixed scheduling and Zarr overhead (about 3 ms
    of the interpreter lock) for 9 or 64 times the values (measured: the 18 annual cubes of
    a 1.2 M-pixel study read in 1.4 s instead of 2.5 s). The joined tiles
    are whole multiples of the study's, so a cube the flux step wrote in study tiles is read
    without splitting its chunks; memory per chunk stays that of a monthly tile."""
    import math

    base = study_chunks(cfg, sizes)
    steps = int(sizes.get("time", 1)) or 1
    y0, y1 = cfg.period.years
    months = 12 * (y1 - y0 + 1)
    k = max(1, min(MAX_TILE_FACTOR, math.isqrt(max(1, months // steps))))
    out = dict(base)
    for d in ("y", "x"):
        c = base.get(d, -1)
        if c > 0 and k > 1:
            tiles = -(-int(sizes[d]) // c)
            out[d] = c * -(-tiles // -(-tiles // k))  # balanced groups of whole tiles
    return out


def _chunked(cfg: StudyConfig, ds: xr.Dataset, disk_chunks: dict | None = None, *,
             analysis: bool = False, token: str | None = None,
             var_tokens: dict[str, str] | None = None) -> xr.Dataset:
    """``ds`` chunked for the steps (``analysis``) or the flux step; ``token``: a string that
    identifies the data of ``ds`` (xarray then names the dask arrays from it and each
    variable's name instead of hashing the data); ``var_tokens``: for some data variables,
    a string that identifies that variable's data alone (:func:`variable_identity`: equal
    data in two stores, equal dask names)."""
    chunks = (analysis_chunks if analysis else study_chunks)(cfg, ds.sizes)
    chunks.update({d: int(c) for d, c in (disk_chunks or {}).items() if d in chunks})
    own = {v: t for v, t in (var_tokens or {}).items() if v in ds.data_vars}
    if not own:
        return ds.chunk(chunks, token=token)
    out = ds.drop_vars(list(own)).chunk(chunks, token=token)
    for v, t in own.items():
        # named "xarray-<variable>-<hash of t and the chunks>" whatever the store
        out[v] = ds[[v]].chunk({d: c for d, c in chunks.items() if d in ds[v].dims},
                               token=t)[v]
    return out[list(ds.data_vars)]  # the store's order of variables (attrs, encoding kept)


#: threads of the local scheduler per core in the prepare step: its tasks wait on file
#: reads and on locks (GDAL's; the HDF5 library's for NetCDF layouts that io._h5chunks does
#: not read itself), so with one thread per core a core idles while its thread waits. With
#: two per core (1.2 M pixels, 2 cores; measured before io._h5chunks, when every NetCDF read
#: took the HDF5 lock) the step took 45-48 s instead of 50-53 s (alternating runs of the
#: step), cores busy 1.6 instead of 1.45, the same peak memory
PREPARE_THREADS_PER_CORE = 2


def local_threads() -> int:
    """Threads of dask's local scheduler: its ``num_workers`` setting, else one per core."""
    import dask

    return max(1, int(dask.config.get("num_workers", None) or os.cpu_count() or 1))


def prepare_threads() -> int:
    """Threads of the local scheduler in the prepare step: :data:`PREPARE_THREADS_PER_CORE`
    per thread of the usual pool (:func:`local_threads`)."""
    return PREPARE_THREADS_PER_CORE * local_threads()


def step_prepare(ctx: RunContext) -> list[Path]:
    """Read every input, convert units, regrid onto the target grid, mask to the region; the
    inputs each experiment changes (held at a climatology or swapped) are written beside.

    On the local scheduler it runs with :func:`prepare_threads` threads (reads wait on
    locks and files more than they compute); a dask cluster keeps its own workers."""
    import dask

    if ctx.client is not None:
        return _prepare(ctx)
    with dask.config.set(num_workers=prepare_threads()):
        return _prepare(ctx)


def _prepare(ctx: RunContext) -> list[Path]:
    from ..cube import pixel_area, region_mask

    cfg = ctx.cfg
    arrays = read_inputs(cfg)
    grid = target_grid(cfg, arrays)
    missing = _missing_for_models(cfg, set(arrays))
    if missing:
        raise ConfigError(missing)
    mask = None
    region_frac = None
    if cfg.region is not None and cfg.region.fractional:
        from ..cube import polygon_fractions

        region_frac = polygon_fractions(grid, cfg.resolve(cfg.region.path),
                                        cfg.region.attribute, cfg.region.values,
                                        oversample=cfg.region.oversample)
        mask = (region_frac > 0).assign_attrs(long_name="cells that overlap the region")
    elif cfg.region is not None:
        mask = region_mask(grid, cfg.resolve(cfg.region.path), attribute=cfg.region.attribute,
                           values=cfg.region.values)
    groups = _align(cfg, arrays, cfg.inputs, grid, mask)
    # the time-resolved inputs first: for an input sliced from its file's lattice the valid
    # fraction is taken from the copy pass 1 wrote (LZ4 chunks in the study's tiles), not by
    # decompressing its file blocks again (the 8-day composites at 1.2 M pixels: 9 s)
    sliced = {r for r, da in arrays.items() if _sliced_from_file(da, r, grid)}
    validity: dict[str, xr.DataArray] = {}
    outs: list[Path] = []
    for g in INPUT_GROUPS:
        if g != "static" and groups[g]:
            outs += _write_inputs(ctx, xr.Dataset(groups[g]), f"inputs_{g}",
                                  fractions=validity, of=sliced, grid=grid)
    static = groups["static"]
    static["area"] = pixel_area(grid)
    direct = input_fractions(cfg, {r: a for r, a in arrays.items() if r not in validity}, grid)
    fractions = {r: validity[r] if r in validity else direct[r] for r in arrays
                 if r in validity or r in direct}
    if fractions:
        frac = None
        for f in fractions.values():
            f = f.drop_vars("spatial_ref", errors="ignore")
            frac = f if frac is None else np.minimum(frac, f)
        static["valid_fraction"] = frac.assign_attrs(
            units="1", long_name="valid-area fraction (smallest over the inputs)",
            description="share of the cell area covered by valid data of every input; "
                        "regional means and totals weight by area x valid_fraction",
            inputs=", ".join(fractions))
    if region_frac is not None:
        vf = static.get("valid_fraction")
        rf = region_frac.drop_vars("spatial_ref", errors="ignore")
        static["region_fraction"] = region_frac
        static["valid_fraction"] = (rf if vf is None else vf * rf).assign_attrs(
            units="1", long_name="valid-area fraction times the share of the cell inside the "
                                 "region", description="regional means and totals weight by "
                                                       "area x valid_fraction")
    if mask is not None:
        static["region_mask"] = mask.astype("uint8").assign_attrs(
            long_name="1 inside the study region", units="1")
    if cfg.zones is not None:
        static["zones"] = _zones(cfg, grid, mask)
        if cfg.zones.fractional:
            from ..cube import polygon_fractions

            z = cfg.zones
            zf = polygon_fractions(grid, cfg.resolve(z.path), z.attribute, z.values,
                                   by_value=True, oversample=z.oversample, label=z.label)
            zattrs = dict(zf.attrs)
            if region_frac is not None:
                # the weights already hold the region fraction (valid_fraction): store the
                # share of the cell's in-region part that lies in each zone
                rf = region_frac.drop_vars("spatial_ref", errors="ignore")
                zf = (np.minimum(zf, rf) / rf.where(rf > 0)).fillna(0)
            elif mask is not None:
                zf = zf.where(mask, 0)
            static["zone_fractions"] = zf.astype("float32").assign_attrs(zattrs)
    outs += _write_inputs(ctx, xr.Dataset(static), "inputs_static")
    for name, exp in (cfg.experiments or {}).items():
        outs += _prepare_experiment(ctx, name, exp, grid, mask)
    return outs


def _zones(cfg: StudyConfig, grid, mask) -> xr.DataArray:
    """The study's zones rasterised once on the study grid (0 outside the region)."""
    from ..cube import zone_labels

    z = cfg.zones
    zones = zone_labels(grid, cfg.resolve(z.path), z.attribute, z.values,
                        all_touched=z.all_touched, label=z.label)
    if mask is not None:
        zones = zones.where(mask, 0).astype("int32").assign_attrs(zones.attrs)
    return zones


def _prepare_experiment(ctx: RunContext, name: str, exp, grid, mask) -> list[Path]:
    from ..cube.temporal import hold_constant

    cfg = ctx.cfg
    if not exp.hold and not exp.inputs:
        return []
    groups = _align(cfg, read_inputs(cfg, exp.inputs), exp.inputs, grid, mask) \
        if exp.inputs else {g: {} for g in INPUT_GROUPS}
    base = None
    for role, how in exp.hold.items():
        if role in groups["monthly"]:
            da = groups["monthly"][role]
        else:
            if base is None:
                base = load_prepared(ctx, None)
            da = base[role]
        period = None
        if exp.hold_period is not None:
            period = (exp.hold_period.start_month + "-01", exp.hold_period.end_month + "-01")
        held = hold_constant(da, how, period=period)
        held.attrs["long_name"] = (f"{da.attrs.get('long_name', role)} held at its "
                                   f"{'calendar-month climatology' if how == 'climatology' else 'mean'}"
                                   f" (experiment {name})")
        held.name = role
        groups["monthly"][role] = held
    outs: list[Path] = []
    for g in INPUT_GROUPS:
        if groups[g]:
            outs += _write_inputs(ctx, xr.Dataset(groups[g]), f"inputs_{g}", experiment=name)
    return outs


#: staged inputs read in time blocks of at least this many steps are written in those blocks
#: (one pass); smaller blocks go through a scratch store joined into whole series
_MIN_TIME_BLOCK = 12


def _write_inputs(ctx: RunContext, ds: xr.Dataset, name: str,
                  experiment: str | None = None, *,
                  fractions: dict[str, xr.DataArray] | None = None, of=(),
                  grid=None) -> list[Path]:
    """Write aligned inputs read in file order as cubes, reading each input byte once and
    with memory bounded by one file block and one tile.

    Inputs are read in the order they are stored (``chunks="file"``: a NetCDF chunk of 12
    months x the whole grid, twelve monthly GeoTIFFs), because reading a spatial tile of all
    time steps would decompress every time block once per tile (the cost grows with the
    square of the region's side).

    Read in blocks of at least 12 steps, the inputs are written in one pass as a cube chunked
    by (file time block, the study's tiles), or by the file's own chunks where these are
    smaller than the tiles in space (a NetCDF chunk of 242 composites x 125 x 150 cells):
    each value is compressed once, and :func:`load_prepared` joins a tile's blocks into its
    whole series without decompressing anything twice. Inputs read in shorter blocks (or
    in different layouts) go in two passes: pass 1 writes them to a scratch store in those
    chunks (packed inputs as their packed integers, LZ4-compressed), pass 2 joins each
    tile's time blocks into one time-contiguous chunk (:func:`study_chunks`). The scratch
    store lives in the output folder (workers of a dask cluster see it) and is removed
    afterwards.

    ``fractions``: for each staged input named in ``of`` (inputs sliced from their file's
    lattice, so the staged values are the file's), its valid fraction on ``grid``
    (:func:`input_fractions`, the same sampled steps) is computed from the staged values
    (the cube, or the scratch store before it is removed) into ``fractions[role]``. Cells
    outside the region (masked when staged) get 0.
    """
    import shutil

    from ..io import read_cube, write_zarr

    cfg = ctx.cfg
    timed = [v for v in ds.data_vars if "time" in ds[v].dims and ds[v].chunks is not None
             and len(ds[v].chunks[ds[v].dims.index("time")]) > 1]
    if not timed:
        return write_cube(ctx, ds, name, "prepare", experiment=experiment)
    tiles = study_chunks(cfg, {d: n for d, n in ds.sizes.items() if d in ("y", "x")})
    packs = {v: {k: x for k, x in ds[v].encoding.items() if k in _PACK_KEYS}
             for v in ds.data_vars if "scale_factor" in ds[v].encoding}
    todo = [str(v) for v in timed if v in of] if fractions is not None else []
    staged_in: dict[str, dict[str, int]] = {}  # variable -> the chunks it is staged in
    for v in ds.data_vars:
        da = ds[v]
        tc = da.chunks[da.dims.index("time")][0] if "time" in da.dims and da.chunks else -1
        # a file whose chunks are smaller than the study's tiles in space (a NetCDF chunk of
        # 242 composites x 125 x 150 cells) is staged in its own chunks: gathering pieces of
        # several file chunks into each tile here makes the scheduler hold many of them
        space = tiles
        if da.chunks is not None and all(
                d in da.dims and max(da.chunks[da.dims.index(d)]) < tiles[d]
                for d in ("y", "x")):
            space = {d: da.chunks[da.dims.index(d)][0] for d in ("y", "x")}
        staged_in[v] = {**{d: -1 for d in da.dims}, **space,
                        **({"time": tc} if "time" in da.dims else {})}
    layouts = {tuple(staged_in[v][d] for d in ("time", "y", "x")) for v in timed}
    if len(layouts) == 1 and next(iter(layouts))[0] >= min(_MIN_TIME_BLOCK, ds.sizes["time"]):
        # the file's time blocks (12 months; 242 composites) in the study's tiles, or in the
        # file's own smaller spatial chunks, are written as the cube's chunks: one pass,
        # each input byte read once and each value compressed once. load_prepared reads a
        # tile's whole series from them (a concatenation of its blocks; a tile across
        # smaller chunks reads each of them)
        outs = write_cube(ctx, ds, name, "prepare", experiment=experiment,
                          disk_chunks=dict(zip(("time", "y", "x"), layouts.pop())))
        if todo:
            cube = next(p for p in outs if p.suffix in (".zarr", ".nc"))
            _fractions_from(read_cube(cube, chunks=None), todo, grid, fractions)
        return outs
    stage = {}
    for v in ds.data_vars:
        stage[v] = ds[v].chunk(staged_in[v])
        # a packed input is staged as its packed integers (LZ4; half the bytes of float32
        # and 4x faster to compress), read back decoded, and packed again into the cube:
        # the same integers (pack(unpack(i)) = i for the file's own packing)
        stage[v].encoding = {**{k: x for k, x in ds[v].encoding.items()
                                if k not in _PACK_KEYS}, **packs.get(v, {})}
    scratch = ctx.out_dir / "cubes" / "_scratch" / (
        f"{name}{'@' + experiment if experiment else ''}.zarr")
    scratch.parent.mkdir(parents=True, exist_ok=True)
    try:
        staged = xr.Dataset(stage, attrs=ds.attrs)
        if staged.rio.crs is None and ds.rio.crs is not None:
            staged = staged.rio.write_crs(ds.rio.crs)
        write_zarr(staged, scratch, scratch=True)
        back = read_cube(scratch, chunks=None)
        for v in back.data_vars:  # what the CF round trip does not carry
            if v in ds:
                back[v].attrs = {**ds[v].attrs, **back[v].attrs}
                back[v].encoding.update(packs.get(v, {}))
        if todo:
            _fractions_from(back, todo, grid, fractions)
        return write_cube(ctx, back, name, "prepare", experiment=experiment)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
        if scratch.parent.is_dir() and not any(scratch.parent.iterdir()):
            scratch.parent.rmdir()


def _fractions_from(staged: xr.Dataset, roles: list[str], grid, fractions: dict) -> None:
    """Valid fractions on ``grid`` of the staged ``roles`` into ``fractions``, from the same
    sampled steps as :func:`input_fractions`."""
    import dask

    from ..cube import valid_fraction

    done = dask.compute(*[valid_fraction(_sampled(staged[v]), grid, variable=v)
                          for v in roles])
    fractions.update(zip(roles, done))


def load_prepared(ctx: RunContext, experiment: str | None = None) -> dict[str, xr.DataArray]:
    """The aligned inputs (role -> lazy DataArray); with ``experiment``, its changes applied."""
    out: dict[str, xr.DataArray] = {}
    for g in INPUT_GROUPS:
        p = ctx.catalog.input_cube(g)
        if p is not None:
            for n, da in _open_chunked(ctx.cfg, p, analysis=False).data_vars.items():
                out[str(n)] = da
    if experiment is not None and ctx.cfg.experiments:
        for g in INPUT_GROUPS:
            p = ctx.catalog.input_cube(g, experiment)
            if p is not None:
                for n, da in _open_chunked(ctx.cfg, p, analysis=False).data_vars.items():
                    out[str(n)] = da.drop_vars("experiment", errors="ignore")
    return out


# --------------------------------------------------------------------------- flux


def _vegetation_mask(cfg: StudyConfig, inputs: dict[str, xr.DataArray],
                     time: xr.DataArray) -> xr.DataArray | None:
    """True where fluxes are meaningful: not water / snow (and user-chosen classes)."""
    from ..cube import landcover_mask

    if "landcover" not in inputs:
        return None
    lc = inputs["landcover"]
    keep = landcover_mask(lc, mask_classes=tuple(cfg.models.mask_classes),
                          scheme=cfg.landcover_scheme)
    if "time" in keep.dims:
        years = keep["time"].dt.year
        keep = keep.assign_coords(time=years.values).rename(time="year")
        idx = np.searchsorted(keep["year"].values, time.dt.year.values, side="right") - 1
        idx = np.clip(idx, 0, keep.sizes["year"] - 1)
        keep = keep.isel(year=xr.DataArray(idx, dims="time")).drop_vars("year")
        keep = keep.assign_coords(time=time.values)
        if keep.chunks is not None:  # the indexing makes a chunk per year: time whole
            keep = keep.chunk({"time": -1})
    return keep


def _cache_key(*parts: Any) -> str:
    import hashlib
    import json

    from .. import __version__

    blob = json.dumps([__version__, *parts], sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def _cached(ctx: RunContext, name: str, key: str, *, combination: str | None = None,
            experiment: str | None = None) -> xr.Dataset | None:
    """The written cube ``name`` if it was made with cache key ``key``, else None (always None
    with ``--force``)."""
    if ctx.force:
        return None
    ds = open_cube(ctx, name, combination=combination, experiment=experiment)
    if ds is not None and ds.attrs.get("carbonsink_cache_key") == key:
        return ds
    return None


def _model_store(ctx: RunContext, experiment: str | None, batch: CubeBatch,
                 keys: dict[str, str], reused: list[str]):
    """The ``store`` of :func:`~carbonsink.flux.chain.run_chain`: each model's monthly cube is
    queued in ``batch`` (``outputs.monthly: models|all``) and returned lazily, so models,
    NEP, the aggregations and every write run in one computation that reads each input chunk
    once; a model whose options, inputs and upstream models are unchanged since the last run
    is read back instead of recomputed (per-model caching)."""
    cfg = ctx.cfg
    keep = cfg.outputs.monthly != "none"

    def store(key: str, ds: xr.Dataset, meta: dict) -> xr.Dataset:
        kind, name = meta.get("kind"), meta.get("name")
        opts = meta.get("options") or {}
        ck = _cache_key("model", ctx.keys.get("prepare"), experiment, kind, name, opts,
                        {n: keys.get(k) for n, k in (meta.get("needs") or {}).items()})
        keys[key] = ck
        stem = ctx.catalog.model_cube_name(key)
        if keep:
            old = _cached(ctx, stem, ck, experiment=experiment)
            if old is not None:
                reused.append(key)
                return old
        ds = ds.copy()
        ds.attrs["carbonsink_cache_key"] = ck
        if keep:
            batch.add(ds, stem, "flux", experiment=experiment, models={kind: name},
                      parameters=opts)
        return ds

    return store


def _flux_experiment(ctx: RunContext, experiment: str | None) -> list[Path]:
    from ..cube.temporal import growing_season, to_annual
    from ..flux.chain import run_chain

    cfg = ctx.cfg
    inputs = load_prepared(ctx, experiment)
    batch = CubeBatch(ctx, blocked=True)
    outs: list[Path] = []
    keys: dict[str, str] = {}
    reused: list[str] = []
    _write_drivers(ctx, inputs, experiment, batch)
    combos = selected_combinations(cfg)
    results = run_chain(combos, inputs, options=chain_options(cfg),
                        store=_model_store(ctx, experiment, batch, keys, reused),
                        echo=lambda m: ctx.echo(f"      {m}"))
    if reused:
        ctx.echo(f"      unchanged models reused: {', '.join(reused)}")
    products = ["annual", "growing_season"] + (["monthly"] if cfg.outputs.monthly == "all"
                                               else [])
    for name in combos:
        cube = results[name]
        models = {k: v for k, v in {"combination": name,
                                    "npp": cube.attrs.get("npp_model"),
                                    "rh": cube.attrs.get("rh_model"),
                                    "nep": cube.attrs.get("nep_model")}.items() if v}
        params = {kind: model_options(cfg, kind, m) for kind, m in _combination_models(name)}
        annual_step = cube.attrs.get("time_step") == "year"
        ck = _cache_key("combination", name, [keys.get(k) for k in _chain_keys(name)],
                        cfg.models.mask_classes,
                        cfg.landcover_scheme, cfg.outputs.growing_season_months,
                        cfg.outputs.monthly, cfg.outputs.formats, annual_step)
        wanted = ["annual"] if annual_step else products
        done = [_cached(ctx, p, ck, combination=name, experiment=experiment) for p in wanted]
        if all(d is not None for d in done):
            ctx.echo(f"      combination '{name}': unchanged, reused")
            for p in wanted:
                outs.extend(ctx.catalog.cube_targets(p, combination=name, experiment=experiment))
            continue
        ctx.echo(f"      combination '{name}'")
        if annual_step:
            cube = cube[[v for v in ("npp", "rh", "nep") if v in cube]]
        cube.attrs["combination"] = name
        cube.attrs["carbonsink_cache_key"] = ck
        kw = dict(combination=name, experiment=experiment, models=models, parameters=params)
        if annual_step:
            batch.add(_masked(cfg, inputs, cube), "annual", "flux", **kw)
            continue
        if "monthly" in products:
            batch.add(_masked(cfg, inputs, cube), "monthly", "flux", **kw)
        fluxes = cube[[v for v in _FLUX_VARS if v in cube]]
        fluxes = fluxes.drop_vars("experiment", errors="ignore")
        fluxes.attrs["carbonsink_cache_key"] = ck
        # the vegetation mask follows the yearly land cover, so it is constant within each
        # calendar year, and the annual and growing-season periods lie within one (seasons
        # crossing New Year are not supported): masking the yearly values equals masking the
        # months first (a masked month makes its period NaN), at a twelfth of the work
        annual = _masked(cfg, inputs, to_annual(fluxes, min_valid_fraction=1.0))
        annual.attrs["carbonsink_cache_key"] = ck
        batch.add(annual, "annual", "flux", **kw)
        gs = _masked(cfg, inputs, growing_season(
            fluxes, months=tuple(cfg.outputs.growing_season_months)))
        gs.attrs["carbonsink_cache_key"] = ck
        batch.add(gs, "growing_season", "flux", **kw)
    if len(batch):
        ctx.echo(f"      computing and writing {len(batch)} cubes in one pass")
    outs += batch.write()
    if cfg.outputs.monthly == "none":
        _remove_scratch(ctx, experiment)
    _share_model_chunks(ctx, combos, experiment)
    return outs


def _share_model_chunks(ctx: RunContext, combos: list[str], experiment: str | None) -> None:
    """The combinations of one model hold its annual and growing-season fluxes chunk for
    chunk: keep one copy on disk (hard links, see
    :func:`~carbonsink.pipeline.outdir.link_identical_files`); every cube stays complete."""
    from .outdir import link_identical_files

    stores = [p for name in combos for prod in ("annual", "growing_season")
              for p in ctx.catalog.cube_targets(prod, combination=name, experiment=experiment)
              if p.suffix == ".zarr"]
    saved = link_identical_files(stores)
    if saved:
        ctx.echo(f"      {saved / 1e6:.0f} MB of identical model chunks shared between "
                 "combinations (hard links)")


def _chain_keys(name: str) -> list[str]:
    """The run_chain keys of the models of combination ``name`` (``npp_modis``, ``rh_pei``,
    ``rh_century@modis``)."""
    from ..flux import combinations as comb
    from ..flux.chain import model_key

    c = comb.get_combination(name)
    out: dict[str, str] = {}
    for kind in ("npp", "nep", "rh"):
        m = getattr(c, kind, None)
        if m is not None:
            out[kind] = model_key(m, {n: out[n] for n in m.needs if n in out})
    return sorted(out.values())


def _masked(cfg: StudyConfig, inputs: dict[str, xr.DataArray], cube: xr.Dataset) -> xr.Dataset:
    keep = _vegetation_mask(cfg, inputs, cube["time"])
    if keep is None:
        return cube
    # mask the time-resolved fluxes only: flags (rh_gt_rs) and static layers (soil pools
    # after spin-up) are kept as they are, not broadcast over time
    with xr.set_options(keep_attrs=True):
        masked = {v: cube[v].where(keep) for v in cube.data_vars
                  if "time" in cube[v].dims and cube[v].dtype != bool}
    return cube.assign(masked)


def _remove_scratch(ctx: RunContext, experiment: str | None) -> None:
    import shutil

    stem = ctx.catalog.cube_stem("_scratch", experiment=experiment)
    p = ctx.out_dir / "cubes" / stem
    if p.is_dir():
        shutil.rmtree(p)


def monthly_combination(ctx: RunContext, name: str, experiment: str | None) -> xr.Dataset | None:
    """Monthly NPP, Rh and NEP of a combination, derived lazily on demand, masked like the
    stored annual cubes: from the stored model cubes (``outputs.monthly: models``), or by
    running the models again from the aligned inputs (``outputs.monthly: none``, the
    default: nothing monthly is stored, an analysis that needs months computes them)."""
    from ..flux.chain import run_chain

    cfg = ctx.cfg
    inputs = load_prepared(ctx, experiment)
    stored = cfg.outputs.monthly != "none"

    def store(key, ds, meta):
        if not stored:
            return ds
        old = open_cube(ctx, ctx.catalog.model_cube_name(key), experiment=experiment)
        if old is None:
            raise InputError(f"the monthly cube of model '{key}' is missing from "
                             f"{ctx.out_dir / 'cubes'}; run the study again with --force")
        return old

    cube = run_chain([name], inputs, options=chain_options(cfg), store=store)[name]
    if cube.attrs.get("time_step") == "year":
        return None
    cube = _masked(cfg, inputs, cube)
    cube.attrs["combination"] = name
    return cube


def drivers_stored(cfg: StudyConfig) -> bool:
    """Whether the flux step stores the driver cubes: when an analysis of the study reads
    them throughout (``requires`` holds ``"drivers"``: attribution, correlation); otherwise
    they are derived from the aligned inputs when asked for (:func:`driver_cubes`)."""
    from ..analysis.base import ANALYSES

    return any("drivers" in getattr(ANALYSES.get(name), "requires", ())
               for name in selected_analyses(cfg))


def driver_cubes(cfg: StudyConfig, inputs: dict[str, xr.DataArray]
                 ) -> dict[str, xr.Dataset] | None:
    """Annual and growing-season series of the monthly climate inputs (means for states such as
    temperature, sums for fluxes such as precipitation), masked like the flux cubes (lazy), or
    None without monthly climate inputs."""
    from ..cube.temporal import growing_season, to_annual
    from .config import DRIVER_ROLES

    roles = [r for r in DRIVER_ROLES if r in inputs and "time" in inputs[r].dims
             and _frequency(cfg.inputs.get(r) or InputConfig(path=""), r) == "month"]
    if not roles:
        return None
    monthly = xr.Dataset({r: inputs[r] for r in roles})
    keep = _vegetation_mask(cfg, inputs, monthly["time"])
    if keep is not None:
        with xr.set_options(keep_attrs=True):
            monthly = monthly.where(keep)
    return {"annual": to_annual(monthly, min_valid_fraction=1.0),
            "growing_season": growing_season(
                monthly, months=tuple(cfg.outputs.growing_season_months))}


def _write_drivers(ctx: RunContext, inputs: dict[str, xr.DataArray],
                   experiment: str | None, batch: CubeBatch) -> None:
    """The driver cubes stored under the pseudo-combination ``drivers`` (when
    :func:`drivers_stored`), so analyses correlate matched series."""
    from ..analysis.base import DRIVERS

    cubes = driver_cubes(ctx.cfg, inputs) if drivers_stored(ctx.cfg) else None
    if cubes is None:
        return
    models = {"drivers": [str(v) for v in cubes["annual"].data_vars]}
    for product, ds in cubes.items():
        batch.add(ds, product, "flux", combination=DRIVERS, experiment=experiment,
                  models=models)


def step_flux(ctx: RunContext) -> list[Path]:
    """NPP, Rh (and NEP) models once each, NEP for every combination; per experiment."""
    outs: list[Path] = []
    for exp in (ctx.cfg.experiments or {None: None}):
        if exp is not None:
            ctx.echo(f"      experiment '{exp}'")
        outs += _flux_experiment(ctx, exp)
    return outs


# --------------------------------------------------------------------------- analyses


def run_analysis_step(ctx: RunContext, name: str) -> list[Path]:
    """Run analysis ``name`` on the results folder and write what it returns."""
    from ..report.figures import save_figure

    an = get_analysis(name)
    opts = an.Options.model_validate(selected_analyses(ctx.cfg)[name])
    actx = PipelineContext(ctx, name, opts.model_dump(mode="json"))
    result = an.run(actx, opts)
    outs: list[Path] = list(actx.outputs)
    written_tables: dict[str, list[str]] = {}
    for tname, df in result.tables.items():
        paths = write_table(ctx, df, tname, name)
        outs += paths
        written_tables[tname] = [ctx.catalog.rel(p) for p in paths]
    if result.datasets:
        outs += _write_products(ctx, result.datasets, name, opts.model_dump(mode="json"))
    figure_paths: dict[str, str] = {}
    if ctx.cfg.outputs.figures:
        meta = flat_attrs(provenance(ctx.cfg, name))
        for fname, fig in result.figures.items():
            p = ctx.catalog.figure(fname)
            p.parent.mkdir(parents=True, exist_ok=True)
            save_figure(fig, p, meta, formats=ctx.cfg.outputs.figure_formats)
            outs += [p.with_suffix(f".{f}") for f in ctx.cfg.outputs.figure_formats
                     if f != "png"]
            outs.append(p)
            figure_paths[fname] = ctx.catalog.rel(p)
    ctx.sections[name] = [_resolve_section(s, figure_paths, written_tables, an)
                          for s in result.sections]
    return outs


def _resolve_section(sec, figures: dict[str, str], tables: dict[str, list[str]], an):
    from ..report.sections import FigureRef, TableRef

    for b in sec.blocks:
        if isinstance(b, FigureRef) and b.path is None:
            b.path = figures.get(b.name)
        elif isinstance(b, TableRef) and not b.paths:
            b.paths = tables.get(b.name, [])
    if an.template_dir is not None:
        sec.data.setdefault("template_dir", str(an.template_dir))
    return sec


class MapWriter:
    """Writes map layers as COGs on a pool of threads shared by every call of :meth:`write`
    (GDAL compresses without the interpreter lock), so the maps of several products or
    combinations are written side by side while the caller goes on; leaving the ``with``
    block waits for all of them and raises the first error. The computed layers waiting to
    be written hold at most :data:`carbonsink._memory.BATCH_BYTES`."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self._pool = None
        self._pending: list = []  # (future, bytes)

    def __enter__(self) -> MapWriter:
        from concurrent.futures import ThreadPoolExecutor

        self._pool = ThreadPoolExecutor(max_workers=local_threads(),
                                        thread_name_prefix="carbonsink-cog")
        return self

    def _wait(self, keep_bytes: int) -> None:
        while self._pending and sum(b for _, b in self._pending) > keep_bytes:
            fut, _ = self._pending.pop(0)
            fut.result()

    def write(self, ds: xr.Dataset, variables, *, prefix: str = "",
              combination: str | None = None, experiment: str | None = None,
              step: str = "maps") -> list[Path]:
        """Queue the layers ``variables`` of ``ds`` (computed together: the cube is read
        once) as ``maps/<combination>/<prefix><variable>.tif``; returns their paths."""
        import dask

        from .._memory import BATCH_BYTES
        from ..io import write_cog

        ctx = self.ctx
        prov = flat_attrs(provenance(ctx.cfg, step, models={"combination": combination}
                                     if combination else None))
        layers = [ds[var].drop_vars("experiment", errors="ignore").assign_attrs(**prov)
                  for var in variables]
        layers = list(dask.compute(*layers))
        outs = [ctx.catalog.map(f"{prefix}{var}", combination=combination,
                                experiment=experiment) for var in variables]
        for p in outs:
            p.parent.mkdir(parents=True, exist_ok=True)
        for da, p in zip(layers, outs):
            self._pending.append((self._pool.submit(write_cog, da, p), int(da.nbytes)))
        self._wait(BATCH_BYTES)
        return outs

    def __exit__(self, *exc) -> None:
        try:
            first = None
            for fut, _ in self._pending:
                try:
                    fut.result()
                except BaseException as e:  # noqa: BLE001 - re-raised after the others
                    first = first or e
            self._pending = []
            if first is not None and exc[0] is None:
                raise first
        finally:
            self._pool.shutdown(wait=True)


def write_maps(ctx: RunContext, ds: xr.Dataset, variables, *, prefix: str = "",
               combination: str | None = None, experiment: str | None = None,
               step: str = "maps") -> list[Path]:
    """The layers ``variables`` of ``ds`` as COGs (:class:`MapWriter`), written when this
    returns."""
    with MapWriter(ctx) as writer:
        return writer.write(ds, variables, prefix=prefix, combination=combination,
                            experiment=experiment, step=step)


# --------------------------------------------------------------------------- maps, report


def step_maps(ctx: RunContext) -> list[Path]:
    """Cloud-Optimized GeoTIFFs and figures of multi-year mean annual NPP, Rh and NEP."""
    from ..report.figures import map_figure, save_figure
    from ..report.sections import Section

    cfg = ctx.cfg
    outs: list[Path] = []
    sec = Section(id="maps", title="Multi-year mean maps")
    sec.text("Multi-year mean of the annual totals per combination (pixels with a missing year "
             "are left empty). The Cloud-Optimized GeoTIFFs open in QGIS with their CRS.")
    meta = flat_attrs(provenance(cfg, "maps"))
    lazy = []
    for exp in cfg.experiment_names:
        e = exp if cfg.experiments else None
        for name in selected_combinations(cfg):
            annual = open_cube(ctx, "annual", combination=name, experiment=e)
            if annual is None:
                continue
            means = xr.Dataset()
            for v in ("npp", "rh", "nep"):
                if v not in annual:
                    continue
                mean = annual[v].mean("time", skipna=False)
                mean.attrs = {**annual[v].attrs, "long_name": "multi-year mean annual "
                              f"{annual[v].attrs.get('long_name', v)}"}
                if annual[v].rio.crs:
                    mean = mean.rio.write_crs(annual[v].rio.crs)
                means[f"{v}_mean_annual"] = mean
            lazy.append(((exp, e, name), means))
    # the means of several combinations per computation (each cube read once, both cores
    # busy), then the maps and figure of each (the maps written side by side)
    with MapWriter(ctx) as writer:
        for (exp, e, name), means in computed_in_batches(lazy):
            if cfg.outputs.figures and "nep_mean_annual" in means:
                # the figure first: the figure process draws it while the maps are written
                label = f"{name}" + (f" ({exp})" if cfg.experiments else "")
                fig = map_figure(means["nep_mean_annual"], title=f"{label}: mean annual NEP",
                                 synthetic=cfg.synthetic)
                p = ctx.catalog.figure(f"{name}_nep_mean_map", experiment=e)
                save_figure(fig, p, {**meta, "carbonsink_combination": name},
                            formats=cfg.outputs.figure_formats)
                outs += [p.with_suffix(f".{f}") for f in cfg.outputs.figure_formats
                         if f != "png"]
                outs.append(p)
                sec.figure(p.stem, caption=f"{label}: multi-year mean annual NEP")
                sec.blocks[-1].path = ctx.catalog.rel(p)
            if "cog" in cfg.outputs.formats:
                outs += writer.write(means, list(means.data_vars), combination=name,
                                     experiment=e)
    ctx.sections["maps"] = [sec]
    return outs


def _grid_text(cfg: StudyConfig) -> str:
    try:
        g = target_grid(cfg)
        return f"{g.shape[0]} × {g.shape[1]} cells, CRS {g.crs}, resolution {g.resolution}"
    except CarbonsinkError:  # grid.like needs the inputs; the report does not re-read them
        return f"the grid of input '{cfg.grid.like}'"


def _summary_text(ctx: RunContext) -> str:
    from .runner import summary_table

    return summary_table(ctx) if ctx.stats else "(every step was up to date)"


def _sizes_by_kind(ctx: RunContext, rel: list[str]) -> dict[str, float]:
    from .runner import _size

    by_kind: dict[str, list[Path]] = {}
    for r in rel:
        by_kind.setdefault(Catalog.kind_of(r), []).append(ctx.out_dir / r)
    # per kind at once: a file shared by hard links between cubes counts once
    return {k: round(_size(paths) / 1e6, 2) for k, paths in by_kind.items()}


def step_report(ctx: RunContext) -> list[Path]:
    """Render ``index.html`` from the sections the analyses returned (computes nothing)."""
    import json

    from ..report.html import render_report
    from .runner import product_sizes

    cfg = ctx.cfg
    rank = {name: i for i, name in enumerate(report_order(cfg))}
    sections = [s for step in sorted(ctx.step_names, key=lambda n: rank.get(n, len(rank)))
                if step in ctx.sections for s in ctx.sections[step]]
    rel = sorted({ctx.catalog.rel(p) for step, paths in ctx.outputs.items()
                  if step != "report" for p in paths})
    products: dict[str, list[str]] = {"tables": [], "figures": [], "maps": [], "cubes": []}
    for r in rel:
        products.setdefault(Catalog.kind_of(r), []).append(r)
    products.pop("other", None)
    template_dirs = sorted({s.data["template_dir"] for s in sections
                            if "template_dir" in s.data})
    study = {"name": cfg.name, "description": cfg.description, "synthetic": cfg.synthetic,
             "period": f"{cfg.period.start} – {cfg.period.end}", "grid": _grid_text(cfg),
             "zone": zone_label(cfg), "combinations": selected_combinations(cfg),
             "experiments": cfg.experiment_names,
             "methods": "carbonsink docs/methods.md (equations, units, defaults, references) "
                        "and the model docstrings"}
    run_info = {
        "models and parameters": json.dumps({"combinations": selected_combinations(cfg),
                                             "options": cfg.models.options}, sort_keys=True),
        "analyses": json.dumps(selected_analyses(cfg), sort_keys=True),
        "step timings [s]": json.dumps({k: round(v, 2) for k, v in ctx.timings.items()}),
        "run summary (steps run now)": _summary_text(ctx),
        "output size by kind [MB]": json.dumps(_sizes_by_kind(ctx, rel), sort_keys=True),
        "products on disk (before this report)": product_sizes(ctx),
    }
    if cfg.experiments:
        run_info["experiments"] = json.dumps(
            {k: v.model_dump(mode="json") for k, v in cfg.experiments.items()}, sort_keys=True)
    p = ctx.out_dir / "index.html"
    render_report(p, study=study, provenance=provenance(cfg, "report"), sections=sections,
                  products=products, run_info=run_info, template_dirs=template_dirs)
    return [p]


# --------------------------------------------------------------------------- the steps


def _analysis_step(name: str) -> Step:
    an = get_analysis(name)

    def func(ctx: RunContext) -> list[Path]:
        return run_analysis_step(ctx, name)

    def files(cfg: StudyConfig) -> list[Path]:
        return an.files(cfg, an.Options.model_validate(selected_analyses(cfg)[name]))

    return Step(name, an.title, func, depends=("flux", *an.after),
                config_keys=(f"analyses.{name}", "outputs", "name", "synthetic", "experiments",
                             "region"),
                files=files)


def build_steps(cfg: StudyConfig) -> list[Step]:
    """The steps of ``cfg`` in the order they run: prepare → flux → maps → one per analysis
    → report.

    Figures are saved by a second process while the next steps compute, and the report
    waits for all of them. So the steps that draw per-pixel maps (about a second of that
    process each; dozens per study) run first: the mean maps, then the analyses that draw
    maps (``Analysis.draws_maps``), then the others (tables and line figures), during which
    the figure process catches up. At 600 x 600 pixels the report then waited 0.5 s for the
    figures instead of 7.5-8 s (same-hour runs). Each analysis still runs
    after those in its ``after``; the report keeps the study order (:func:`report_order`).
    """
    steps = [
        Step("prepare", "read, convert and align inputs", step_prepare,
             config_keys=("period", "grid", "region", "inputs", "outputs.formats",
                          "dask.chunks", "experiments"),
             uses_input_files=True),
        Step("flux", "NPP, Rh and NEP for every combination", step_flux, depends=("prepare",),
             config_keys=("models", "outputs", "period", "experiments")),
        Step("maps", "maps (Cloud-Optimized GeoTIFF) and mean-map figures", step_maps,
             depends=("flux",), config_keys=("outputs", "name", "synthetic", "experiments")),
    ]
    steps += [_analysis_step(name) for name in _ordered_analyses(cfg, maps_first=True)]
    steps.append(Step("report", "HTML report", step_report,
                      depends=tuple(s.name for s in steps),
                      config_keys=("name", "description", "synthetic", "outputs", "models",
                                   "analyses", "experiments")))
    return steps
