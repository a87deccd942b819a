"""Command-line interface: ``carbonsink run | check | demo | validate | models | analyses |
variables``."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from . import __version__
from .errors import CarbonsinkError


def _fail(exc: Exception) -> None:
    click.secho(f"error: {exc}", fg="red", err=True)
    sys.exit(2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="carbonsink")
def main() -> None:
    """carbonsink: NPP, Rh and NEP of terrestrial vegetation from gridded data."""


@main.command()
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="results folder (default: outputs.dir of the study, relative to the file)")
@click.option("--force", is_flag=True, help="rerun every step even if its outputs are current")
def run(study: Path, out_dir: Path | None, force: bool) -> None:
    """Run STUDY (a YAML study file) and write a results folder with index.html."""
    from .pipeline import run_study

    t0 = time.perf_counter()
    try:
        ctx = run_study(study, out_dir, force=force, echo=click.echo)
    except CarbonsinkError as exc:
        _fail(exc)
    click.echo(f"finished in {time.perf_counter() - t0:.1f} s; open {ctx.out_dir / 'index.html'}")


@main.command()
@click.argument("study", type=click.Path(dir_okay=False, path_type=Path))
def check(study: Path) -> None:
    """Validate STUDY: schema, input files, CRS, units and period coverage (computes nothing)."""
    from .pipeline import check as check_fn

    try:
        for line in check_fn(study):
            click.echo(line)
    except CarbonsinkError as exc:
        _fail(exc)
    click.secho(f"{study}: OK", fg="green")


@main.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=Path("carbonsink-demo"), show_default=True,
              help="folder for the synthetic inputs and the results")
@click.option("--force", is_flag=True, help="rerun every step")
@click.option("--scheduler", default=None, help="dask.distributed scheduler address (optional)")
def demo(out_dir: Path, force: bool, scheduler: str | None) -> None:
    """Run the built-in demo (synthetic data, all six NPP x Rh combinations; no downloads)."""
    from .pipeline import run_demo

    t0 = time.perf_counter()
    try:
        ctx = run_demo(out_dir, echo=click.echo, force=force, scheduler=scheduler)
    except CarbonsinkError as exc:
        _fail(exc)
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
@click.option("--qc-min", type=float, default=0.8, show_default=True,
              help="minimum fraction of good-quality data for a month to count")
@click.option("--soc", type=float, default=None,
              help="soil organic carbon density at the towers [kg C m-2] for GSMSR")
@click.option("--sites", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="site metadata CSV (id, lat, lon, ...)")
def validate(files, out_dir, npp_cube, npp_series, cue, qc_min, soc, sites) -> None:
    """Validate NEP combinations against FLUXNET2015/ONEFlux tower FILES."""
    from .analysis.validation import run_validation_cli

    try:
        df = run_validation_cli(list(files), out_dir, npp_cube=npp_cube, npp_series=npp_series,
                                cue=cue, qc_min=qc_min, soc=soc, sites=sites)
    except CarbonsinkError as exc:
        _fail(exc)
    click.echo(df.to_string(index=False))
    click.echo(f"tables and figures written to {out_dir}")


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
