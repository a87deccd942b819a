"""Run the steps of a study: progress, skip-if-current, provenance, atomic completion.

Each step declares which part of the study it depends on. Its *key* is a hash
of the carbonsink version, that part of the study, the keys of the steps it
depends on and the content digests of every file it reads (inputs, grid
template, region and zone layers, files named in model options, the files an
analysis declares; see :mod:`carbonsink.pipeline.fingerprint`). After a step
has written all its outputs (each atomically), a manifest
``<results>/.carbonsink/<step>.json`` records the key and the outputs. A rerun
skips a step whose manifest key matches and whose outputs all exist; any
change upstream changes the key and reruns the step.

Before the first step that has to run, the previous report (``index.html``
and the report manifest, which only carbonsink writes) is removed, so a
report never describes older results than the cubes beside it; a step's
manifest is removed before the step runs and written after its last output;
if a step fails (or the run is stopped), the outputs it had already finished
are removed too. ``index.html`` is written last, so a results folder without
it never looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._memory import release_memory
from ..errors import ConfigError
from .config import StudyConfig
from .fingerprint import DigestCache, fingerprints, option_files

__all__ = ["Step", "RunContext", "run_steps", "step_key", "study_files", "DaskClusterError"]


class DaskClusterError(ConfigError):
    """A fault of the dask cluster (``dask.scheduler``) stopped a step: a worker died while
    running tasks more often than dask retries them (``KilledWorker``), or the connection to
    the scheduler or a worker was lost. The step's outputs are removed like those of any
    failing step; the message names the scheduler and the fix (rerun)."""


@dataclass
class Step:
    name: str
    title: str
    func: Callable[["RunContext"], list[Path]]
    depends: tuple[str, ...] = ()
    config_keys: tuple[str, ...] = ()  # study keys the step reads ("outputs.formats")
    uses_input_files: bool = False
    files: Callable[[StudyConfig], list[Path]] | None = None  # other files it reads


@dataclass
class RunContext:
    cfg: StudyConfig
    out_dir: Path
    echo: Callable[[str], None] = print
    force: bool = False
    client: Any = None
    crs: Any = None  # CRS of the study grid, set once the prepare step has written it
    keys: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    outputs: dict[str, list[Path]] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    stats: dict[str, dict[str, float]] = field(default_factory=dict)  # step -> run summary
    progress: bool = True  # dask progress lines with ETA during long steps
    sections: dict[str, list[Any]] = field(default_factory=dict)  # step -> report sections
    step_names: list[str] = field(default_factory=list)
    catalog: Any = None  # the product catalog (carbonsink.pipeline.catalog.Catalog)
    digests: Any = None  # DigestCache of the input files (in .carbonsink/digests.json)
    what: str = "outputs.dir"  # where the results folder was given (for messages)

    def __post_init__(self):
        if self.catalog is None:
            from .catalog import Catalog

            self.catalog = Catalog(self.out_dir, self.cfg.outputs.formats,
                                   list(self.cfg.experiments) if self.cfg.experiments else None)

    def path(self, *parts: str) -> Path:
        p = self.out_dir.joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p

    @property
    def state_dir(self) -> Path:
        d = self.out_dir / ".carbonsink"
        d.mkdir(parents=True, exist_ok=True)
        return d


def study_files(cfg: StudyConfig, step: Step) -> list[tuple[str, str]]:
    """``(role, path or glob)`` of every file ``step`` reads that the study names: inputs (and
    experiment inputs), grid template, region and zone layers for the step that reads the
    inputs; files named in ``models.options`` (e.g. ``casa.lc_table``) for steps that read the
    model options; region and zone layers for steps that read the region; ``step.files``."""
    out: list[tuple[str, str]] = []
    keys = set(step.config_keys)
    reads_region = step.uses_input_files or "region" in keys
    if step.uses_input_files:
        for role, inp in sorted(cfg.inputs.items()):
            out.append((f"inputs.{role}", str(cfg.resolve(inp.path))))
        for name, exp in sorted((cfg.experiments or {}).items()):
            for role, inp in sorted(exp.inputs.items()):
                out.append((f"experiments.{name}.inputs.{role}", str(cfg.resolve(inp.path))))
        if cfg.grid.template is not None:
            out.append(("grid.template", str(cfg.resolve(cfg.grid.template))))
    if reads_region:
        if cfg.region is not None:
            out.append(("region", str(cfg.resolve(cfg.region.path))))
        zones = getattr(cfg, "zones", None)
        if zones is not None and getattr(zones, "path", None):
            out.append(("zones", str(cfg.resolve(zones.path))))
    if any(k == "models" or k.startswith("models.") for k in keys):
        for f in option_files(cfg.models.options, cfg.resolve):
            out.append(("models.options", str(f)))
    if step.files is not None:
        out += [("files", str(f)) for f in step.files(cfg)]
    return out


def step_key(ctx: RunContext, step: Step) -> str:
    """SHA-256 of what ``step`` depends on: the carbonsink version, its study keys (plus
    ``zones`` wherever ``region`` is read), the keys of its upstream steps and the content
    digests of every file it reads (:func:`study_files`, with sidecars)."""
    from .. import __version__

    data = ctx.cfg.model_dump(mode="json")

    def pick(key: str):
        node = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    keys = list(step.config_keys)
    if ("region" in keys or step.uses_input_files) and "zones" not in keys:
        keys.append("zones")
    if ctx.digests is None:
        ctx.digests = DigestCache(None)
    files = fingerprints(study_files(ctx.cfg, step), ctx.digests)
    payload = {
        "version": __version__,
        "step": step.name,
        "config": {k: pick(k) for k in keys},
        "upstream": {d: ctx.keys.get(d) for d in step.depends},
        "files": files,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def _manifest_path(ctx: RunContext, step: Step) -> Path:
    return ctx.state_dir / f"{step.name}.json"


def _is_current(ctx: RunContext, step: Step, key: str) -> tuple[list[Path], list] | None:
    mp = _manifest_path(ctx, step)
    if ctx.force or not mp.exists():
        return None
    try:
        man = json.loads(mp.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if man.get("key") != key:
        return None
    outs = [ctx.out_dir / p for p in man.get("outputs", [])]
    if not all(p.exists() for p in outs):
        return None
    return outs, man.get("sections", [])


def _write_manifest(ctx: RunContext, step: Step, key: str, outputs: list[Path],
                    seconds: float) -> None:
    from ..io.atomic import atomic_write

    rel = [str(Path(p).resolve().relative_to(ctx.out_dir.resolve())) for p in outputs]
    man = {"step": step.name, "key": key, "outputs": rel, "seconds": round(seconds, 3),
           "study_sha256": ctx.cfg.sha256,
           "sections": [s.to_dict() for s in ctx.sections.get(step.name, [])]}
    with atomic_write(_manifest_path(ctx, step)) as tmp:
        Path(tmp).write_text(json.dumps(man, indent=1))


@contextlib.contextmanager
def dask_client(cfg: StudyConfig, timeout: str = "20s") -> Iterator[Any]:
    """A ``dask.distributed`` client for ``dask.scheduler`` (None without it); an unreachable
    scheduler is a :class:`ConfigError` naming the address and the fix."""
    if not cfg.dask.scheduler:
        yield None
        return
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ConfigError("dask.scheduler is set but dask.distributed is not installed") \
            from exc
    try:
        client = Client(cfg.dask.scheduler, timeout=timeout, set_as_default=True)
    except (OSError, TimeoutError, ValueError, TypeError) as exc:
        raise ConfigError(
            f"dask.scheduler: cannot reach the dask scheduler at {cfg.dask.scheduler!r}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}. Fix: start the "
            "cluster first or remove dask.scheduler to run locally") from None
    try:
        yield client
    finally:
        client.close()


_dask_client = dask_client  # the former private name


def _cluster_faults() -> tuple[type[BaseException], ...]:
    """The ``dask.distributed`` exceptions that mean lost work, not a carbonsink error."""
    try:
        from distributed import KilledWorker
        from distributed.client import FutureCancelledError
        from distributed.comm.core import CommClosedError
    except ImportError:  # pragma: no cover - distributed is a dependency
        return ()
    return (KilledWorker, CommClosedError, FutureCancelledError)


def _wait_until_idle(client: Any, timeout: float = 15.0) -> None:
    """Wait (at most ``timeout`` s) until no worker of ``client``'s cluster runs a task, so
    that a task still running after a failed compute cannot write into a temporary the
    failing step has removed; the caller removes the temporaries afterwards."""
    t_end = time.monotonic() + timeout
    while time.monotonic() < t_end:
        try:
            if not any(client.processing().values()):
                return
        except Exception:  # noqa: BLE001 - the cluster is gone: nothing runs any more
            return
        time.sleep(0.1)


def _cluster_error(ctx: RunContext, step: Step, exc: BaseException) -> DaskClusterError:
    first = (str(exc).splitlines() or [""])[0][:400]
    return DaskClusterError(
        f"step '{step.name}' ({step.title}) stopped: the dask cluster at "
        f"{ctx.cfg.dask.scheduler} lost its work ({type(exc).__name__}: {first}). The outputs "
        f"of the unfinished step were removed and no report was written. Fix: check the "
        f"workers (a worker killed or out of memory; `distributed.scheduler.allowed-failures` "
        f"sets how often dask retries) and rerun the same command: finished steps are kept")


def _retire_report(ctx: RunContext, steps: list[Step]) -> None:
    """Remove the previous report (outputs of the last step as its manifest lists them, and
    the manifest): only files carbonsink wrote are listed there."""
    last = steps[-1]
    mp = _manifest_path(ctx, last)
    if not mp.exists():
        return
    try:
        man = json.loads(mp.read_text())
        outs = [ctx.out_dir / p for p in man.get("outputs", [])]
    except (OSError, ValueError, AttributeError):
        outs = []
    mp.unlink()
    for p in outs:
        if p.is_file() and not p.is_symlink():
            p.unlink()


def _remove_outputs(paths: list[Path]) -> None:
    import shutil

    for p in paths:
        with contextlib.suppress(OSError):
            if p.is_dir() and not p.is_symlink():
                shutil.rmtree(p)
            elif p.exists() or p.is_symlink():
                p.unlink()


def _size(paths: list[Path]) -> int:
    """Bytes on disk of ``paths`` (files or folders), hard-linked files counted once."""
    from .outdir import disk_bytes

    files: list[Path] = []
    for p in paths:
        p = Path(p)
        try:
            if p.is_dir():
                files += [f for f in p.rglob("*") if f.is_file()]
            elif p.exists():
                files.append(p)
        except OSError:
            pass
    return disk_bytes(files)


def _peak_rss_gb() -> float:
    """Peak resident memory of this process so far [GB] (VmHWM; ru_maxrss elsewhere)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024 ** 2
    except OSError:
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2  # kB on Linux


class _Progress:
    """Dask (local scheduler) progress lines with an ETA, at most one every ``every`` s."""

    def __init__(self, echo: Callable[[str], None], every: float = 10.0):
        from dask.callbacks import Callback

        outer = self

        class _CB(Callback):
            def _start_state(self, dsk, state):
                outer.total += len(state["ready"]) + len(state["waiting"]) + \
                    len(state["running"]) + len(state["finished"])

            def _posttask(self, key, result, dsk, state, worker_id):
                outer.done += 1
                outer.tick()

        self.echo, self.every = echo, every
        self.total = self.done = 0
        self.t0 = self.last = time.perf_counter()
        self.cb = _CB()

    def tick(self) -> None:
        now = time.perf_counter()
        if now - self.last < self.every or self.total == 0:
            return
        self.last = now
        frac = min(self.done / self.total, 1.0)
        eta = (now - self.t0) * (1 - frac) / frac if frac > 0 else float("nan")
        self.echo(f"      {100 * frac:.0f} % of {self.total} tasks so far, "
                  f"{now - self.t0:.0f} s elapsed, about {eta:.0f} s left in these")

    def __enter__(self):
        self.cb.__enter__()
        return self

    def __exit__(self, *exc):
        self.cb.__exit__(*exc)


def summary_table(ctx: RunContext) -> str:
    """The run summary: time, cores busy, peak memory and output size per step."""
    lines = [f"{'step':28s} {'time [s]':>9s} {'cores busy':>10s} {'peak RSS [GB]':>13s} "
             f"{'outputs [MB]':>12s}"]
    rows = sorted(ctx.stats.items(), key=lambda kv: kv[0].startswith("figures ("))
    for name, st in rows:
        lines.append(f"{name[:28]:28s} {st['seconds']:9.1f} {st['cores_busy']:10.2f} "
                     f"{st['peak_rss_gb']:13.2f} {st['output_mb']:12.1f}")
    total = sum(st["output_mb"] for st in ctx.stats.values())
    lines.append(f"{'total':28s} {sum(st['seconds'] for st in ctx.stats.values()):9.1f} "
                 f"{'':10s} {max([st['peak_rss_gb'] for st in ctx.stats.values()] or [0]):13.2f}"
                 f" {total:12.1f}")
    return "\n".join(lines)


def product_sizes(ctx: RunContext) -> str:
    """Size on disk of every product of the results folder, largest first, grouped as the
    catalog names them (a cube of a combination, a model's monthly cube, the maps of a
    combination, the tables, the figures), with the total. A file shared by hard links
    (identical model chunks of several combinations' cubes) counts once, for the first
    product in path order, so the total is the space the folder takes."""
    out = ctx.out_dir
    groups: dict[str, list[int]] = {}
    seen: set[tuple[int, int]] = set()
    for p in sorted(out.rglob("*")):
        if not p.is_file() or ".carbonsink" in p.parts:
            continue
        rel = p.relative_to(out).parts
        store = next((i for i, part in enumerate(rel) if part.endswith(".zarr")), None)
        if store is not None:  # a Zarr store is one product
            name = "/".join(rel[:store + 1])
        elif rel[0] == "cubes":
            name = "/".join(rel[:3] if rel[1] == "models" else rel[:2])
        elif rel[0] == "maps" and len(rel) > 2:
            name = "/".join(rel[:2]) + "/"
        else:
            name = rel[0] + ("/" if len(rel) > 1 else "")
        g = groups.setdefault(name, [0, 0])
        st = p.stat()
        if (st.st_dev, st.st_ino) not in seen:  # a hard-linked file counts once
            seen.add((st.st_dev, st.st_ino))
            g[0] += st.st_size
        g[1] += 1
    lines = [f"{'product':58s} {'size [MB]':>10s} {'files':>7s}"]
    for name, (size, n) in sorted(groups.items(), key=lambda kv: -kv[1][0]):
        lines.append(f"{name[:58]:58s} {size / 1e6:10.1f} {n:7d}")
    lines.append(f"{'total':58s} {sum(g[0] for g in groups.values()) / 1e6:10.1f} "
                 f"{sum(g[1] for g in groups.values()):7d}")
    if len(seen) < sum(g[1] for g in groups.values()):
        lines.append("(files shared by hard links between cubes count once, for the first "
                     "product)")
    return "\n".join(lines)


def run_steps(ctx: RunContext, steps: list[Step]) -> RunContext:
    """Run ``steps`` in order with progress messages, skipping current ones.

    Before the first step that runs, the previous report is retired; a failing (or
    interrupted) step leaves no manifest and none of the outputs it had finished.
    """
    from ..io.atomic import track_commits
    from ..report.figures import abandon_figures, figure_tag, flush_figures
    from ..report.sections import Section

    n = len(steps)
    ctx.step_names = [s.name for s in steps]
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    if ctx.digests is None:
        ctx.digests = DigestCache(ctx.state_dir / "digests.json")
    retired = False
    pending: list[tuple] = []  # steps run, whose figures may still be being saved

    def settle(wait: bool = True) -> None:
        """Record as done the pending steps whose figures are all written (with ``wait``:
        wait for every figure first); a figure that fails removes its step's outputs (the
        step reruns next time)."""
        if not pending:
            return
        w0 = time.perf_counter()
        try:
            cpu, busy = flush_figures(wait)
        except BaseException:
            abandon_figures()
            for _, _, _, _, committed in pending:
                _remove_outputs(committed)
            pending[:] = []
            raise
        done = [p for p in pending if p[0].name not in busy]
        pending[:] = [p for p in pending if p[0].name in busy]
        wait = time.perf_counter() - w0 if wait else 0.0
        if cpu:
            # one row for the figure process: the time the run waited for it, and the cores
            # it kept busy on average over the steps it ran beside and that wait
            span = sum(d for _, _, _, d, _ in done) + wait
            fig = ctx.stats.setdefault("figures (second process)", {
                "seconds": 0.0, "cores_busy": 0.0, "peak_rss_gb": 0.0, "output_mb": 0.0,
                "cpu": 0.0, "span": 0.0})
            fig["seconds"] += wait
            fig["cpu"] += sum(cpu.values())
            fig["span"] += span
            fig["cores_busy"] = fig["cpu"] / fig["span"] if fig["span"] > 0 else 0.0
            fig["peak_rss_gb"] = _peak_rss_gb()
        for step, key, outputs, dt, committed in done:
            st = ctx.stats[step.name]
            st["output_mb"] = _size(outputs) / 1e6
            try:
                _write_manifest(ctx, step, key, outputs, dt)
            except BaseException:
                _remove_outputs(committed)
                raise

    with dask_client(ctx.cfg) as client:
        ctx.client = client
        if client is not None:
            ctx.echo(f"using dask cluster at {ctx.cfg.dask.scheduler}")
        for i, step in enumerate(steps, 1):
            key = step_key(ctx, step)
            ctx.keys[step.name] = key
            current = _is_current(ctx, step, key)
            if current is not None:
                ctx.echo(f"[{i}/{n}] {step.title}: up to date, skipped")
                ctx.skipped.append(step.name)
                ctx.outputs[step.name] = current[0]
                ctx.sections[step.name] = [Section.from_dict(d) for d in current[1]]
                continue
            if not retired:
                _retire_report(ctx, steps)
                retired = True
            mp = _manifest_path(ctx, step)
            if mp.exists():
                mp.unlink()
            if step.name == "report":
                settle()  # the report links every figure: all are written first
            ctx.echo(f"[{i}/{n}] {step.title} ...")
            release_memory()
            t0 = time.perf_counter()
            c0 = time.process_time()
            progress = _Progress(ctx.echo) if (ctx.progress and client is None) else None
            figure_tag(step.name)
            with track_commits() as committed:
                try:
                    if progress is not None:
                        with progress:
                            outputs = step.func(ctx)
                    else:
                        outputs = step.func(ctx)
                except BaseException as exc:
                    figure_tag(None)
                    with contextlib.suppress(BaseException):
                        settle()  # the steps before this one stay done
                    abandon_figures()  # figures of the failed step are not kept
                    faults = _cluster_faults() if client is not None else ()
                    if faults and isinstance(exc, faults):
                        _wait_until_idle(client)
                        _remove_outputs(committed)
                        raise _cluster_error(ctx, step, exc) from exc
                    _remove_outputs(committed)
                    raise
            figure_tag(None)
            dt = time.perf_counter() - t0
            ctx.timings[step.name] = dt
            ctx.stats[step.name] = {
                "seconds": dt,
                "cores_busy": (time.process_time() - c0) / dt if dt > 0 else 0.0,
                "peak_rss_gb": _peak_rss_gb(),
                "output_mb": _size(outputs) / 1e6}
            ctx.outputs[step.name] = outputs
            # the step is recorded as done (manifest) once its figures, saved by a second
            # process while the next steps compute, are all written (settle)
            pending.append((step, key, outputs, dt, committed))
            settle(wait=False)  # steps without figures still being saved are done now
            ctx.echo(f"[{i}/{n}] {step.title}: done in {dt:.1f} s ({len(outputs)} outputs)")
        settle()
    ctx.digests.save()
    return ctx
