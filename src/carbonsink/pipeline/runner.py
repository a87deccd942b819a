"""Run the steps of a study: progress, skip-if-current, provenance, atomic completion.

Each step declares which part of the study it depends on. Its *key* is a hash
of the carbonsink version, that part of the study, the keys of the steps it
depends on and the size/modification time of the input files. After a step
has written all its outputs (each atomically), a manifest
``<results>/.carbonsink/<step>.json`` records the key and the outputs. A rerun
skips a step whose manifest key matches and whose outputs all exist; any
change upstream changes the key and reruns the step. ``index.html`` is written
last, so a results folder without it never looks finished.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from .config import StudyConfig

__all__ = ["Step", "RunContext", "run_steps"]


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
    sections: dict[str, list[Any]] = field(default_factory=dict)  # step -> report sections
    step_names: list[str] = field(default_factory=list)
    catalog: Any = None  # the product catalog (carbonsink.pipeline.catalog.Catalog)

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


def _stat(role: str, pattern: str) -> list:
    import glob

    fp = []
    for f in sorted(glob.glob(pattern)) or [pattern]:
        try:
            st = os.stat(f)
            fp.append([role, f, st.st_size, int(st.st_mtime)])
        except OSError:
            fp.append([role, f, None, None])
    return fp


def _input_fingerprint(cfg: StudyConfig) -> list:
    fp = []
    for role, inp in sorted(cfg.inputs.items()):
        fp += _stat(role, str(cfg.resolve(inp.path)))
    for name, exp in sorted((cfg.experiments or {}).items()):
        for role, inp in sorted(exp.inputs.items()):
            fp += _stat(f"{name}.{role}", str(cfg.resolve(inp.path)))
    if cfg.region is not None:
        p = cfg.resolve(cfg.region.path)
        fp.append(["region", str(p), p.stat().st_size if p.exists() else None])
    return fp


def step_key(ctx: RunContext, step: Step) -> str:
    from .. import __version__

    data = ctx.cfg.model_dump(mode="json")

    def pick(key: str):
        node = data
        for part in key.split("."):
            node = node.get(part) if isinstance(node, dict) else None
        return node

    payload = {
        "version": __version__,
        "step": step.name,
        "config": {k: pick(k) for k in step.config_keys},
        "upstream": {d: ctx.keys.get(d) for d in step.depends},
        "inputs": _input_fingerprint(ctx.cfg) if step.uses_input_files else None,
        "files": [x for f in (step.files(ctx.cfg) if step.files else [])
                  for x in _stat("file", str(f))],
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
def _dask_client(cfg: StudyConfig) -> Iterator[Any]:
    if not cfg.dask.scheduler:
        yield None
        return
    try:
        from distributed import Client
    except ImportError as exc:  # pragma: no cover - distributed is a dependency
        raise ConfigError("dask.scheduler is set but dask.distributed is not installed") \
            from exc
    try:
        client = Client(cfg.dask.scheduler, timeout="20s", set_as_default=True)
    except OSError as exc:
        raise ConfigError(
            f"cannot reach the dask scheduler at {cfg.dask.scheduler} (dask.scheduler in the "
            f"study file): {exc}. Fix: start the cluster first or remove dask.scheduler to run "
            "locally") from None
    try:
        yield client
    finally:
        client.close()


def run_steps(ctx: RunContext, steps: list[Step]) -> RunContext:
    """Run ``steps`` in order with progress messages, skipping current ones."""
    from ..report.sections import Section

    n = len(steps)
    ctx.step_names = [s.name for s in steps]
    ctx.out_dir.mkdir(parents=True, exist_ok=True)
    with _dask_client(ctx.cfg) as client:
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
            ctx.echo(f"[{i}/{n}] {step.title} ...")
            t0 = time.perf_counter()
            outputs = step.func(ctx)
            dt = time.perf_counter() - t0
            ctx.timings[step.name] = dt
            ctx.outputs[step.name] = outputs
            _write_manifest(ctx, step, key, outputs, dt)
            ctx.echo(f"[{i}/{n}] {step.title}: done in {dt:.1f} s ({len(outputs)} outputs)")
    return ctx
