"""Study files and the step runner behind ``carbonsink run`` / ``check`` / ``demo``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from .config import StudyConfig, load_study, parse_study
from .runner import RunContext, Step, run_steps
from .catalog import Catalog
from .steps import build_steps, check_study

__all__ = ["StudyConfig", "load_study", "parse_study", "run_study", "check", "run_demo",
           "RunContext", "Step", "build_steps", "Catalog"]


def _as_config(study: str | Path | StudyConfig) -> StudyConfig:
    return study if isinstance(study, StudyConfig) else load_study(study)


def run_study(study: str | Path | StudyConfig, out_dir: str | Path | None = None, *,
              force: bool = False, echo: Callable[[str], None] = print) -> RunContext:
    """Run every step of a study; returns the run context (outputs, timings, skipped steps).

    The results go to ``out_dir`` (default: ``outputs.dir`` relative to the study file).
    Inputs are validated before anything is written; a failing step leaves no
    ``index.html`` and no half-written file.
    """
    cfg = _as_config(study)
    out = Path(out_dir) if out_dir is not None else cfg.resolve(cfg.outputs.dir)
    check_study(cfg)  # validate before the first write
    ctx = RunContext(cfg=cfg, out_dir=out, echo=echo, force=force)
    index = out / "index.html"
    if index.exists() and force:
        index.unlink()
    try:
        return run_steps(ctx, build_steps(cfg))
    except BaseException:
        if index.exists() and "report" not in ctx.timings:
            index.unlink()  # an older report must not pass for this run's result
        raise


def check(study: str | Path | StudyConfig) -> list[str]:
    """Validate a study's inputs, grid, units and period coverage without computing."""
    return check_study(_as_config(study))


def run_demo(out_dir: str | Path = "carbonsink-demo", *, echo: Callable[[str], None] = print,
             force: bool = False, scheduler: str | None = None) -> RunContext:
    """Generate the synthetic demo inputs into ``out_dir/inputs`` and run the demo study."""
    from .demo_study import write_demo_study

    out = Path(out_dir)
    study_path = write_demo_study(out, scheduler=scheduler)
    echo(f"demo inputs (synthetic) and study file written to {study_path.parent}")
    ctx = run_study(study_path, out / "results", force=force, echo=echo)
    return ctx
