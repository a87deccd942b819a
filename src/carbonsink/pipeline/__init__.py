"""Study files and the step runner behind ``carbonsink run`` / ``check`` / ``demo``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

from .catalog import Catalog
from .config import StudyConfig, load_study, parse_study
from .runner import RunContext, Step, run_steps
from .steps import build_steps

__all__ = ["StudyConfig", "load_study", "parse_study", "run_study", "check", "run_demo",
           "RunContext", "Step", "build_steps", "Catalog"]


def _as_config(study: str | Path | StudyConfig) -> StudyConfig:
    return study if isinstance(study, StudyConfig) else load_study(study)


def _out_dir(cfg: StudyConfig, out_dir: str | Path | None) -> tuple[Path, str]:
    if out_dir is not None:
        return Path(out_dir), "--out"
    return cfg.resolve(cfg.outputs.dir), "outputs.dir"


def run_study(study: str | Path | StudyConfig, out_dir: str | Path | None = None, *,
              force: bool = False, echo: Callable[[str], None] = print,
              lock_wait: float | None = None) -> RunContext:
    """Run every step of a study; returns the run context (outputs, timings, skipped steps).

    The results go to ``out_dir`` (default: ``outputs.dir`` relative to the study file).

    * Everything :func:`check` checks is checked first (same function, same messages):
      nothing is written for a study, input, grid, region, model-option, scheduler or
      results-folder problem.
    * The folder must be new, empty or a carbonsink results folder
      (:mod:`carbonsink.pipeline.outdir`); ``force=True`` writes into another folder anyway
      and reruns every step.
    * The run holds a lock on the folder; another run into it waits ``lock_wait`` seconds
      (default ``CARBONSINK_LOCK_WAIT`` or 5) and then stops naming the holder.
    * Temporaries left by a killed run are removed; SIGTERM and SIGHUP stop the run like
      SIGINT (:class:`KeyboardInterrupt`), removing temporaries and the unfinished step's
      outputs; a failing run leaves no ``index.html`` describing older results.
    * Write faults (read-only, disk full, permission denied ...) become a one-line
      :class:`~carbonsink.pipeline.outdir.OutputFolderError` naming the path and the fix.
    """
    from ..io.atomic import remove_temporaries
    from .outdir import FolderLock, RunInterrupted, output_fault, stop_on_signals, write_marker
    from .preflight import preflight

    from ..io.netcdf import bounded_chunk_cache
    from ..report.figures import FigureSaver

    cfg = _as_config(study)
    out, what = _out_dir(cfg, out_dir)
    # figures are saved by a second process while the run computes (forked here, before any
    # computation starts a thread); every step waits for its own figures before it is done
    with stop_on_signals(), FigureSaver(), bounded_chunk_cache():
        preflight(cfg, out, force=force, what=what)  # validate before the first write
        lock = FolderLock(out, {"study": cfg.name, "study_sha256": cfg.sha256,
                                "study_file": str(study) if not isinstance(study, StudyConfig)
                                else None})
        ctx = RunContext(cfg=cfg, out_dir=out, echo=echo, force=force, what=what)
        try:
            lock.acquire(lock_wait)
            try:
                removed = remove_temporaries(out)
                if removed:
                    echo(f"removed {len(removed)} temporaries left by an interrupted run")
                write_marker(out, "running", cfg)
                run_steps(ctx, build_steps(cfg))
                write_marker(out, "complete", cfg)
            except BaseException as exc:
                with contextlib.suppress(Exception):
                    remove_temporaries(out)
                with contextlib.suppress(Exception):
                    write_marker(out, "interrupted" if isinstance(exc, KeyboardInterrupt)
                                 else "failed", cfg)
                raise
            finally:
                lock.release()
        except RunInterrupted:
            raise
        except OSError as exc:
            fault = output_fault(exc, out, what)
            if fault is None:
                raise
            raise fault from None
        except Exception as exc:
            from ..errors import CarbonsinkError

            fault = None if isinstance(exc, CarbonsinkError) else output_fault(exc, out, what)
            if fault is None:
                raise
            raise fault from None
    return ctx


def check(study: str | Path | StudyConfig, out_dir: str | Path | None = None, *,
          force: bool = False) -> list[str]:
    """Check everything ``run`` checks before computing, without computing or writing.

    The study, every input's metadata, the grid and its overlap with the inputs, the region
    and zones, the model options (the model chain is built lazily), the dask scheduler and
    the results folder (``out_dir``, default ``outputs.dir``) — with the same messages as
    :func:`run_study`. Returns a list of informational lines.
    """
    from .preflight import preflight

    cfg = _as_config(study)
    out, what = _out_dir(cfg, out_dir)
    return preflight(cfg, out, force=force, what=what)


def run_demo(out_dir: str | Path = "carbonsink-demo", *, echo: Callable[[str], None] = print,
             force: bool = False, scheduler: str | None = None) -> RunContext:
    """Generate the synthetic demo inputs into ``out_dir/inputs`` and run the demo study."""
    from .demo_study import write_demo_study
    from .outdir import check_output_folder

    out = Path(out_dir)
    # the demo writes its inputs and study file first: the folder must be usable for that
    check_output_folder(out / "results", force=force, what="--out")
    study_path = write_demo_study(out, scheduler=scheduler)
    echo(f"demo inputs (synthetic) and study file written to {study_path.parent}")
    ctx = run_study(study_path, out / "results", force=force, echo=echo)
    return ctx
