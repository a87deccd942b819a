"""Everything ``carbonsink run`` can reject before computing, checked without computing.

:func:`preflight` is called by both ``carbonsink check`` and ``carbonsink run`` (before its
first write), so a study that ``run`` rejects early is rejected by ``check`` with the same
message. It checks, in this order:

1. that every file the study names is a local file of its expected format (no GDAL/OGR
   VRT, no URL or ``/vsi…`` path: nothing may be fetched over the network at run time);
2. every input, read lazily one by one (errors name the real key, e.g. ``inputs.tas``);
3. :func:`carbonsink.pipeline.steps.check_study`: grid, CRS, units, period coverage, models,
   model options, analyses;
4. the alignment of every input (and experiment input) onto the study grid, the region
   mask and the zones, as lazy graphs (grid/CRS overlap, region selection);
5. the model chain built lazily on those inputs (option *values* such as ``mode``);
6. the dask scheduler, when ``dask.scheduler`` is given (a connection is opened and closed);
7. the results folder (:func:`carbonsink.pipeline.outdir.check_output_folder`).

Nothing is written and no chunk of data is computed (small vector layers are rasterised
and grid templates read, as ``run`` does).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CarbonsinkError, ConfigError
from .config import StudyConfig

__all__ = ["preflight", "check_local_files", "SCHEDULER_TIMEOUT"]

#: how long ``check``/``run`` wait for the dask scheduler before giving up
SCHEDULER_TIMEOUT = "10s"


def _relabel(exc: CarbonsinkError, key: str) -> CarbonsinkError:
    """Put the real study key (``inputs.tas``) where a message has a placeholder."""
    if exc.args and isinstance(exc.args[0], str) and "inputs.<name>" in exc.args[0]:
        exc.args = (exc.args[0].replace("inputs.<name>", key), *exc.args[1:])
    return exc


def check_local_files(cfg: StudyConfig) -> None:
    """Every file the study names must be local and of its expected format (no VRT, URL or
    ``/vsi…`` indirection that could reach the network)."""
    from ..io.dispatch import check_local_input, check_local_raster, check_local_vector

    for role, inp in cfg.inputs.items():
        check_local_input(cfg.resolve(inp.path), key=f"inputs.{role}.path")
    for name, exp in (cfg.experiments or {}).items():
        for role, inp in exp.inputs.items():
            check_local_input(cfg.resolve(inp.path),
                              key=f"experiments.{name}.inputs.{role}.path")
    if cfg.grid.template is not None:
        check_local_raster(cfg.resolve(cfg.grid.template), key="grid.template")
    if cfg.region is not None:
        check_local_vector(cfg.resolve(cfg.region.path), key="region.path")
    zones = getattr(cfg, "zones", None)
    if zones is not None and getattr(zones, "path", None):
        check_local_vector(cfg.resolve(zones.path), key="zones.path")


def _read_each_input(cfg: StudyConfig) -> None:
    from .steps import read_input_role

    for role, inp in cfg.inputs.items():
        try:
            read_input_role(cfg, role, inp)
        except CarbonsinkError as exc:
            raise _relabel(exc, f"inputs.{role}") from None
    for name, exp in (cfg.experiments or {}).items():
        for role, inp in exp.inputs.items():
            try:
                read_input_role(cfg, role, inp)
            except CarbonsinkError as exc:
                raise _relabel(exc, f"experiments.{name}.inputs.{role}") from None


def _dry_prepare(cfg: StudyConfig) -> dict[str, Any]:
    """What the prepare step builds, as lazy graphs: aligned inputs, area, region, zones."""
    from ..cube import pixel_area, region_mask
    from .steps import _align, read_inputs, target_grid

    arrays = read_inputs(cfg)
    grid = target_grid(cfg, arrays)
    mask = None
    if cfg.region is not None:
        mask = region_mask(grid, cfg.resolve(cfg.region.path), attribute=cfg.region.attribute,
                           values=cfg.region.values)
        if not bool(mask.values.any()):
            raise ConfigError(f"region: no cell of the study grid ({grid.shape[0]} x "
                              f"{grid.shape[1]} cells, CRS {grid.crs}) lies inside the selected "
                              f"polygons of {cfg.region.path}. Fix: check region.values and "
                              "that the grid bounds cover the region")
    groups = _align(cfg, arrays, cfg.inputs, grid, mask)
    zones = getattr(cfg, "zones", None)
    if zones is not None:
        from . import steps

        if hasattr(steps, "_zones"):
            steps._zones(cfg, grid, mask)
    for name, exp in (cfg.experiments or {}).items():
        if exp.inputs:
            _align(cfg, read_inputs(cfg, exp.inputs), exp.inputs, grid, mask)
    flat: dict[str, Any] = {}
    for g in groups.values():
        flat.update(g)
    flat["area"] = pixel_area(grid)
    if mask is not None:
        flat["region_mask"] = mask
    return flat


def _dry_chain(cfg: StudyConfig, inputs: dict[str, Any]) -> None:
    """Build the model chain lazily (no store, nothing computed): option values are checked
    where the models check them."""
    from ..flux.chain import run_chain
    from .steps import chain_options, selected_combinations

    import warnings

    # a 2 x 2 window of the first two years of each input checks the same options with a
    # graph of a few tasks that reads two file blocks of each input, not all of them
    small = {}
    first = min((v["time"].values[0] for v in inputs.values()
                 if hasattr(v, "dims") and "time" in v.dims and v.sizes["time"]), default=None)
    for k, v in inputs.items():
        if hasattr(v, "dims"):
            v = v.isel({d: slice(0, 2) for d in ("y", "x") if d in v.dims})
            if first is not None and "time" in v.dims:
                try:
                    end = np.datetime64(f"{int(str(first)[:4]) + 1}-12-31T23:59:59")
                    part = v.sel(time=slice(None, end))
                    v = part if part.sizes["time"] else v
                except (TypeError, ValueError, KeyError):  # e.g. a cftime axis: keep it all
                    pass
            if v.chunks is not None:
                v = v.chunk({d: -1 for d in v.dims})
        small[k] = v
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*Increasing number of chunks.*")
            run_chain(selected_combinations(cfg), small, options=chain_options(cfg),
                      store=lambda key, ds, meta: ds, echo=lambda m: None)
    except CarbonsinkError as exc:
        msg = str(exc.args[0]) if exc.args else str(exc)
        raise ConfigError(f"{_option_key(cfg, msg)}: {msg}") from None
    except (TypeError, AttributeError, ValueError) as exc:
        msg = (str(exc).splitlines() or [""])[0]
        raise ConfigError(f"{_option_key(cfg, msg)}: the models cannot be built with these "
                          f"options ({type(exc).__name__}: {msg}). Fix: check the option values"
                          " (carbonsink models lists each model's options and defaults)") \
            from None


def _option_key(cfg: StudyConfig, msg: str) -> str:
    """The key path of the model option a message is about (``models.options.pei.mode``),
    else ``models.options``."""
    for model, opts in (cfg.models.options or {}).items():
        if not isinstance(opts, dict):
            continue
        for name, value in opts.items():
            if f"{name}={value!r}" in msg or f"{name}: {value!r}" in msg or (
                    f"'{name}'" in msg and repr(value) in msg):
                return f"models.options.{model}.{name}"
    return "models.options"


def _check_scheduler(cfg: StudyConfig) -> None:
    from .runner import dask_client

    if not cfg.dask.scheduler:
        return
    with dask_client(cfg, timeout=SCHEDULER_TIMEOUT):
        pass


def preflight(cfg: StudyConfig, out_dir: Path | None = None, *, force: bool = False,
              what: str = "outputs.dir") -> list[str]:
    """Raise every error a run of ``cfg`` into ``out_dir`` meets before computing; return
    the messages of :func:`~carbonsink.pipeline.steps.check_study`. Writes nothing."""
    import dask

    from .outdir import check_output_folder
    from .steps import check_study

    check_local_files(cfg)
    _read_each_input(cfg)
    messages = check_study(cfg)
    with dask.config.set({"array.slicing.split_large_chunks": False}):
        inputs = _dry_prepare(cfg)
        _dry_chain(cfg, inputs)
    _check_scheduler(cfg)
    if out_dir is not None:
        check_output_folder(Path(out_dir), force=force, what=what)
    return messages
