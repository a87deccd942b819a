"""Command-line interface: ``carbonsink run | check | demo | validate | models | analyses |
variables``.

Errors reach the user as one ``error: ...`` message (exit code 2), never as a Python
traceback: study-file, input and results-folder problems are carbonsink errors naming the
key or path and the fix; a run stopped by SIGINT, SIGTERM or SIGHUP exits with 128 + the
signal number; any other exception (a bug) is reported in one line with the hint to rerun
with ``--debug`` (or ``CARBONSINK_DEBUG=1``), which shows the traceback.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

import click

from . import __version__
from .errors import CarbonsinkError

#: longest error message printed [characters]
MAX_ERROR_CHARS = 2000


def _debug_on(ctx: click.Context | None = None, flag: bool = False) -> bool:
    if flag or os.environ.get("CARBONSINK_DEBUG", "").strip() not in ("", "0"):
        return True
    while ctx is not None:
        if ctx.obj and ctx.obj.get("debug"):
            return True
        ctx = ctx.parent
    return False


def _short(text: str) -> str:
    from .pipeline.config import truncate_message

    return truncate_message(text, limit=MAX_ERROR_CHARS)


def _fail(exc: Exception) -> None:
    click.secho(f"error: {_short(str(exc.args[0]) if exc.args else str(exc))}", fg="red",
                err=True)
    sys.exit(2)


def _guarded(func, *, debug: bool = False):
    """Call ``func()``; turn every exception into a one-line error (unless debugging)."""
    ctx = click.get_current_context(silent=True)
    debug = _debug_on(ctx, debug)
    try:
        return func()
    except CarbonsinkError as exc:
        if debug:
            raise
        _fail(exc)
    except KeyboardInterrupt as exc:
        signum = getattr(exc, "signum", signal.SIGINT)
        name = signal.Signals(signum).name
        click.secho(f"error: stopped by {name}; temporaries and the outputs of the unfinished "
                    "step were removed and no report is left; rerun the same command to resume "
                    "(finished steps are kept)", fg="red", err=True)
        sys.exit(128 + int(signum))
    except (click.exceptions.Exit, click.ClickException, SystemExit):
        raise
    except Exception as exc:
        if debug:
            raise
        first = (str(exc).splitlines() or [""])[0]
        click.secho(f"error: unexpected {type(exc).__name__}: {_short(first)} (this is probably "
                    "a bug in carbonsink; rerun with --debug or CARBONSINK_DEBUG=1 to see the "
                    "traceback, and report it)", fg="red", err=True)
        sys.exit(1)


_debug_option = click.option("--debug", is_flag=True,
                             help="show the Python traceback of an unexpected error")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="carbonsink")
@click.option("--debug", is_flag=True, help="show Python tracebacks (also CARBONSINK_DEBUG=1)")
@click.pass_context
def main(ctx: click.Context, debug: bool) -> None:
    """carbonsink: NPP, Rh and NEP of terrestrial vegetation from gridded data."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug


@main.command()
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="results folder (default: outputs.dir of the study, relative to the file)")
@click.option("--force", is_flag=True, help="rerun every step even if its outputs are current, "
              "and write into a non-empty folder that is not a carbonsink results folder")
@click.option("--quiet", "-q", is_flag=True,
              help="print only errors and the final line (for scripts)")
@_debug_option
def run(study: Path, out_dir: Path | None, force: bool, quiet: bool, debug: bool) -> None:
    """Run STUDY (a YAML study file) and write a results folder with index.html."""
    from .pipeline import run_study

    t0 = time.perf_counter()
    echo = (lambda s: None) if quiet else click.echo
    ctx = _guarded(lambda: run_study(study, out_dir, force=force, echo=echo), debug=debug)
    _summary(ctx, quiet)
    click.echo(f"finished in {time.perf_counter() - t0:.1f} s; open {ctx.out_dir / 'index.html'}")


def _summary(ctx, quiet: bool) -> None:
    from .pipeline.runner import summary_table

    if ctx.stats and not quiet:
        from .pipeline.runner import product_sizes

        click.echo("run summary (steps run now):")
        click.echo(summary_table(ctx))
        click.echo("products on disk:")
        click.echo(product_sizes(ctx))


@main.command()
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="results folder to check (default: outputs.dir of the study)")
@click.option("--force", is_flag=True, help="accept a non-empty folder that is not a carbonsink "
              "results folder (as run --force does)")
@_debug_option
def check(study: Path, out_dir: Path | None, force: bool, debug: bool) -> None:
    """Check STUDY as run would before computing: schema, inputs, CRS, units, period, grid,
    region, model options, dask scheduler and results folder (computes and writes nothing)."""
    from .pipeline import check as check_fn

    lines = _guarded(lambda: check_fn(study, out_dir, force=force), debug=debug)
    for line in lines:
        click.echo(line)
    click.secho(f"{study}: OK", fg="green")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("carbonsink-demo"), show_default=True,
              help="folder for the synthetic inputs and the results")
@click.option("--force", is_flag=True, help="rerun every step")
@click.option("--scheduler", default=None, help="dask.distributed scheduler address (optional)")
@click.option("--quiet", "-q", is_flag=True, help="print only errors and the final line")
@_debug_option
def demo(out_dir: Path, force: bool, scheduler: str | None, quiet: bool, debug: bool) -> None:
    """Run the built-in demo (synthetic data, all six NPP x Rh combinations; no downloads)."""
    from .pipeline import run_demo

    t0 = time.perf_counter()
    echo = (lambda s: None) if quiet else click.echo
    ctx = _guarded(lambda: run_demo(out_dir, echo=echo, force=force, scheduler=scheduler),
                   debug=debug)
    _summary(ctx, quiet)
    click.echo(f"demo finished in {time.perf_counter() - t0:.1f} s; open "
               f"{ctx.out_dir / 'index.html'}")


@main.command()
@click.argument("files", nargs=-1, required=True,
                type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("validation"), show_default=True)
@click.option("--npp-cube", type=click.Path(exists=True, path_type=Path), default=None,
              help="monthly NPP cube (Zarr/NetCDF, variable 'npp') to sample at the towers")
@click.option("--npp-series", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="CSV with columns site, time, npp [g C m-2 month-1]")
@click.option("--cue", type=float, default=0.5, show_default=True,
              help="carbon-use efficiency for NPP = CUE x tower GPP (approximation)")
@click.option("--clip-negative-gpp/--no-clip-negative-gpp", default=True, show_default=True,
              help="set negative partitioned GPP to 0 before NPP = CUE x GPP")
@click.option("--qc-min", type=float, default=0.8, show_default=True,
              help="minimum fraction of good-quality data for a month to count")
@click.option("--rank-by", type=click.Choice(["nse", "rmse", "r2", "abs_bias", "ilamb"]),
              default="nse", show_default=True,
              help="metric ranking the combinations at each tower (ties by RMSE)")
@click.option("--rh-reco-threshold", type=float, default=1.0, show_default=True,
              help="flag sum(Rh)/sum(RECO) above this")
@click.option("--no-reference", is_flag=True,
              help="leave out the reference rows '<npp>+no_rh' (Rh = 0, NEP = NPP)")
@click.option("--soc", type=float, default=None,
              help="SOC density of 0-20 cm at every tower [kg C m-2] for GSMSR")
@click.option("--soc-table", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="CSV with columns site, soc [kg C m-2 of 0-20 cm]")
@click.option("--soc-grid", type=click.Path(exists=True, path_type=Path), default=None,
              help="SOC stock grid (GeoTIFF/NetCDF) sampled at the towers (needs --sites and "
                   "--soc-grid-depth)")
@click.option("--soc-grid-depth", type=float, default=None,
              help="bottom of the SOC grid's layer [cm], e.g. 30 for a 0-30 cm stock")
@click.option("--soc-grid-units", default=None,
              help="units of the SOC grid if the file has none, e.g. 'Mg C ha-1'")
@click.option("--soc-depth-rule", type=click.Choice(["proportional", "exponential"]),
              default="proportional", show_default=True,
              help="conversion of the grid layer to GSMSR's 0-20 cm: uniform density "
                   "(20/depth) or an exponential profile fitted with --soc-deep-grid")
@click.option("--soc-deep-grid", type=click.Path(exists=True, path_type=Path), default=None,
              help="deeper SOC stock grid (e.g. 0-100 cm) for --soc-depth-rule exponential")
@click.option("--soc-deep-depth", type=float, default=None,
              help="bottom of the deep grid's layer [cm], e.g. 100")
@click.option("--sites", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="site metadata CSV (id, lat, lon, ...)")
@click.option("--format", "formats", type=click.Choice(["csv", "parquet"]), multiple=True,
              default=("csv", "parquet"), show_default=True, help="table formats (repeatable)")
def validate(files, out_dir, npp_cube, npp_series, cue, clip_negative_gpp, qc_min, rank_by,
             rh_reco_threshold, no_reference, soc, soc_table, soc_grid, soc_grid_depth,
             soc_grid_units, soc_depth_rule, soc_deep_grid, soc_deep_depth, sites,
             formats) -> None:
    """Validate NEP combinations against FLUXNET2015/ONEFlux tower FILES.

    Writes towers_metrics and towers_monthly tables (with a .meta.json of every option
    applied), towers.md and figures/*.png. Without --soc, --soc-table or --soc-grid the
    GSMSR combinations are skipped (no SOC constant is assumed).
    """
    import warnings

    from .analysis.validation import run_validation_cli

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UserWarning)
            df = run_validation_cli(
                list(files), out_dir, npp_cube=npp_cube, npp_series=npp_series, cue=cue,
                qc_min=qc_min, soc=soc, sites=sites, soc_table=soc_table, soc_grid=soc_grid,
                soc_grid_depth=soc_grid_depth, soc_grid_units=soc_grid_units,
                soc_depth_rule=soc_depth_rule, soc_deep_grid=soc_deep_grid,
                soc_deep_depth=soc_deep_depth, rank_by=rank_by,
                rh_reco_threshold=rh_reco_threshold, clip_negative_gpp=clip_negative_gpp,
                reference=not no_reference, formats=tuple(f".{f}" for f in formats))
    except CarbonsinkError as exc:
        _fail(exc)
    for w in caught:
        click.secho(f"warning: {w.message}", fg="yellow", err=True)
    cols = [c for c in ("site", "data", "combination", "rank", "n", "nse", "rmse", "r2", "bias",
                        "skill_vs_reference", "rh_reco_ratio", "rh_exceeds_reco", "flag")
            if c in df.columns]
    click.echo(df[cols].to_string(index=False))
    click.echo(f"tables, towers.md and figures written to {out_dir}")


@main.command()
def models() -> None:
    """List the NPP, Rh and NEP models (inputs, needs, options) and the combination names."""
    from .flux.chain import SEED_000
    from .flux.registry import combination_names, describe_models

    desc = describe_models()
    for kind, label in (("npp", "NPP"), ("rh", "Rh"), ("nep", "NEP")):
        click.echo(f"{label} models:")
        for d in (d for d in desc if d["kind"] == kind):
            click.echo(f"  {d['name']:10s} {d['description']}")
            click.echo(f"  {'':10s} inputs: {', '.join(d['inputs']) or '-'}"
                       + (f"; optional: {', '.join(d['optional_inputs'])}"
                          if d["optional_inputs"] else "")
                       + (f"; needs: {', '.join(d['needs'])}" if d["needs"] else ""))
            opts = ", ".join(f"{k}={v!r}" for k, v in d["options"].items())
            if d.get("any_options"):
                opts = "(any keyword)"
            click.echo(f"  {'':10s} options: {opts or '-'}")
    click.echo("combinations: '<npp>+<rh>' for every NPP x Rh model, and 'nep_<nep>' for every "
               "NEP model")
    click.echo("combinations of seed 000: " + ", ".join(SEED_000))
    click.echo("valid combinations: " + ", ".join(combination_names()))


@main.command()
def analyses() -> None:
    """List the registered analyses (the keys under `analyses:`) with their options."""
    from .analysis import describe_analyses

    for d in describe_analyses():
        flag = " (default)" if d["default"] else ""
        click.echo(f"{d['name']}{flag}: {d['title']}")
        if d["description"]:
            click.echo(f"    {d['description']}")
        click.echo(f"    requires: {', '.join(d['requires']) or '-'}"
                   + (f"; after: {', '.join(d['after'])}" if d["after"] else ""))
        for k, o in d["options"].items():
            default = "required" if o["required"] else f"default {o['default']!r}"
            extra = f"  {o['description']}" if o["description"] else ""
            click.echo(f"    {k}: {o['type']}, {default}{extra}")
    click.echo("In a study: analyses: {name: {option: value}} (or a list of names).")


@main.command()
def variables() -> None:
    """List the canonical variables with units and plausible ranges."""
    from .units import VARIABLES

    for v in VARIABLES.values():
        click.echo(f"{v.name:10s} {v.units:18s} {v.kind:12s} {v.valid_range!s:18s} {v.long_name}")


if __name__ == "__main__":  # pragma: no cover
    main()
