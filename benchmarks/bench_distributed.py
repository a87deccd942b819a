"""The same study on the local threaded scheduler and on a local dask.distributed cluster.

The 600 x 600 x 252 study of ``bench_study.py`` (six combinations, default analyses,
report) runs twice, one after the other on the same machine: with the local threaded
scheduler (2 threads), then with ``dask: {scheduler: <address>}`` on a ``LocalCluster`` of
2 worker processes with 1 thread each. Reported: wall time and per-step time of each, the
ratio, and whether every table (CSV) and every cube agree (tables byte-identical, cubes
numerically identical). Results: ``benchmarks/results/distributed.md`` (+ .json).

Usage: ``python benchmarks/bench_distributed.py [--size 600] [--tmp DIR]``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results"
sys.path.insert(0, str(Path(__file__).parent))


def _run(study: Path, out: Path, scheduler: str | None) -> dict:
    import yaml

    from carbonsink.pipeline import run_study

    d = yaml.safe_load(study.read_text())
    if scheduler:
        d["dask"] = {**d.get("dask", {}), "scheduler": scheduler}
    p = study.with_name(f"study_{'cluster' if scheduler else 'local'}.yaml")
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    t0 = time.perf_counter()
    ctx = run_study(p, out, echo=lambda s: None)
    return {"wall": round(time.perf_counter() - t0, 1),
            "steps": {k: round(v["seconds"], 1) for k, v in ctx.stats.items()}}


def _compare(a: Path, b: Path) -> dict:
    import numpy as np
    import xarray as xr

    tables = sorted(p.relative_to(a) for p in (a / "tables").glob("*.csv"))
    differ = [str(t) for t in tables if (a / t).read_bytes() != (b / t).read_bytes()]
    cubes = sorted(p.relative_to(a) for p in (a / "cubes").rglob("*.zarr"))
    cube_diff = []
    for c in cubes:
        x, y = xr.open_zarr(a / c), xr.open_zarr(b / c)
        for v in x.data_vars:
            if not np.array_equal(x[v].values, y[v].values, equal_nan=True):
                cube_diff.append(f"{c}:{v}")
    return {"tables": len(tables), "tables_differing": differ, "cubes": len(cubes),
            "cube_variables_differing": cube_diff}


def main() -> None:
    from bench_study import _inputs
    from distributed import Client, LocalCluster

    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=600)
    ap.add_argument("--tmp", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_distributed_", dir=args.tmp) as tmp:
        study = _inputs(Path(tmp) / "inputs", args.size)
        local = _run(study, Path(tmp) / "local", None)
        with LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster):
            dist = _run(study, Path(tmp) / "cluster", cluster.scheduler_address)
        same = _compare(Path(tmp) / "local", Path(tmp) / "cluster")
    row = {"pixels": args.size ** 2, "local": local, "cluster": dist,
           "ratio": round(dist["wall"] / local["wall"], 2), "agreement": same}
    (OUT / "distributed.json").write_text(json.dumps(row, indent=1))
    lines = ["# The same study: local threads vs a local 2-worker dask.distributed cluster", "",
             f"{args.size} x {args.size} x 252 months, six combinations, default analyses, "
             "report; 2 cores; local = threaded scheduler (2 threads), cluster = LocalCluster "
             "(2 processes x 1 thread), run one after the other.", "",
             "| | wall [s] | " + " | ".join(local["steps"]) + " |",
             "|---|---|" + "---|" * len(local["steps"])]
    for name, r in (("local", local), ("cluster", dist)):
        lines.append(f"| {name} | {r['wall']} | " +
                     " | ".join(str(r["steps"].get(k, "")) for k in local["steps"]) + " |")
    lines += ["", f"Cluster / local: {row['ratio']}.", "",
              f"Tables byte-identical: {same['tables'] - len(same['tables_differing'])} of "
              f"{same['tables']}{' (differing: ' + ', '.join(same['tables_differing']) + ')' if same['tables_differing'] else ''}; "
              f"cubes numerically identical: {same['cubes']} stores"
              f"{', differing variables: ' + ', '.join(same['cube_variables_differing']) if same['cube_variables_differing'] else ''}."]
    (OUT / "distributed.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
