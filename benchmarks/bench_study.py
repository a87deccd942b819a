"""Whole-study benchmark: ``carbonsink run`` at several sizes, beside the I/O floor.

For each size N (N x N pixels, monthly 2001-2021 = 252 months, the demo's synthetic inputs
made by ``carbonsink.demo``, six NPP x Rh combinations, the default analyses, report) this
runs, in one process after the other on the same machine:

* **floor** — a plain xarray script that reads every input once and writes the same volume
  of Zarr the run writes (the speed limit set by reading and writing);
* **run** — ``carbonsink.pipeline.run_study`` exactly as ``carbonsink run`` executes it.

Reported per size: wall time, per-step time, cores busy (process CPU / wall), the CPU time
of the run's process and of the figure process it starts, peak RSS of the run's process,
output size and file count. Each measurement runs in a fresh subprocess so peak RSS is per
run. Results: ``benchmarks/results/study.md`` (+ .json).

Usage: ``python benchmarks/bench_study.py --sizes 300 600 1200x1000`` (``N`` is N x N pixels,
``NXxNY`` a rectangle of NX columns and NY rows).

``--variants default png-only no-figures`` also runs the same study with lighter figure
settings (``outputs.figure_formats: [png]``; ``outputs.figures: false``), one after the other
on the same inputs, beside the same floor: what the figures cost, and the fastest setting a
user can choose. The floor writes the volume of the first variant's run.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

OUT = Path(__file__).parent / "results"

#: what both measured scripts start with: imports and the peak-RSS reading
_PRELUDE = r"""
import json, os, sys, time
from pathlib import Path
def hwm():
    # VmHWM: peak RSS of this process image (ru_maxrss would include the parent's RSS at
    # fork time, which Linux keeps across execve)
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    return float("nan")
"""

_RUN = _PRELUDE + r"""
from carbonsink.pipeline import run_study
from carbonsink.pipeline.runner import product_sizes
from carbonsink.pipeline.outdir import disk_bytes
t0 = time.perf_counter(); c0 = time.process_time()
k0 = os.times().children_user + os.times().children_system
ctx = run_study(sys.argv[1], sys.argv[2], echo=lambda s: None)
wall = time.perf_counter() - t0
# CPU of the child processes the run has ended (the figure process)
kids = os.times().children_user + os.times().children_system - k0
files = [p for p in Path(sys.argv[2]).rglob("*") if p.is_file()]
print(json.dumps({"wall": wall, "cpu": time.process_time() - c0, "cpu_children": kids,
                  "peak_rss_gb": hwm(),
                  "steps": {k: round(v["seconds"], 2) for k, v in ctx.stats.items()},
                  "cores": {k: round(v["cores_busy"], 2) for k, v in ctx.stats.items()},
                  "step_rss": {k: round(v["peak_rss_gb"], 2) for k, v in ctx.stats.items()},
                  "products": product_sizes(ctx),
                  "bytes": disk_bytes(files), "files": len(files)}))
"""

_FLOOR = _PRELUDE + r"""
import xarray as xr, yaml
from carbonsink.io import read_input
study = yaml.safe_load(Path(sys.argv[1]).read_text())
base = Path(sys.argv[1]).parent
target = int(sys.argv[3])
out = Path(sys.argv[2]); out.mkdir(parents=True, exist_ok=True)
t0 = time.perf_counter(); c0 = time.process_time()
arrays = {}
for role, inp in study["inputs"].items():
    da = read_input(base / inp["path"], variable=inp.get("variable"), units=inp.get("units"),
                    date_pattern=inp.get("date_pattern"), band_dates=inp.get("band_dates"),
                    frequency=inp.get("frequency"),
                    crs=inp.get("crs"), chunks="file")
    arrays[role] = da.astype("float32")
written, i = 0, 0
names = [r for r in arrays if "time" in arrays[r].dims]
while written < target:
    role = names[i % len(names)]
    ds = arrays[role].to_dataset(name=role).drop_vars("spatial_ref", errors="ignore")
    p = out / f"copy_{i}.zarr"
    ds.to_zarr(p, mode="w")
    written += sum(f.stat().st_size for f in p.rglob("*") if f.is_file())
    i += 1
print(json.dumps({"wall": time.perf_counter() - t0, "cpu": time.process_time() - c0,
                  "peak_rss_gb": hwm(), "bytes": written}))
"""


#: study changes of each ``--variants`` name (keys of ``outputs``)
VARIANTS = {"default": {}, "png-only": {"figure_formats": ["png"]},
            "no-figures": {"figures": False}}


def _variant_study(study: Path, name: str) -> Path:
    """``study`` with the output settings of variant ``name`` (a sibling YAML file)."""
    import yaml

    if not VARIANTS[name]:
        return study
    d = yaml.safe_load(study.read_text())
    d["outputs"].update(VARIANTS[name])
    p = study.with_name(f"study_{name}.yaml")
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return p


def _subprocess(code: str, *args: str) -> dict:
    res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-3000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


#: largest grid the demo generator builds in memory here (it holds every input at once)
GENERATE_MAX = 600 * 600


def _tile_inputs(src: Path, dst: Path, nx: int, ny: int) -> None:
    """The demo inputs of ``src`` repeated in space to ``ny`` x ``nx`` cells (same files,
    encodings and chunking; one variable at a time), for regions the generator cannot hold
    in memory. The values repeat; for speed, memory and volume that does not matter."""
    import math

    import numpy as np
    import rasterio
    import xarray as xr
    from rasterio.transform import from_origin

    dst.mkdir(parents=True, exist_ok=True)
    for f in src.rglob("*"):
        if f.is_dir():
            continue
        rel = f.relative_to(src)
        out = dst / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        if f.suffix == ".nc":
            ds = xr.open_dataset(f, decode_cf=False)
            y, x = ds["y"].values, ds["x"].values
            dy, dx = y[1] - y[0], x[1] - x[0]
            new = {"y": y[0] + dy * np.arange(ny), "x": x[0] + dx * np.arange(nx)}
            enc, data_vars = {}, {}
            for v in ds.data_vars:
                var = ds[v]
                attrs = dict(var.attrs)
                e = {}
                if "_FillValue" in attrs:
                    e["_FillValue"] = attrs.pop("_FillValue")
                if {"y", "x"} <= set(var.dims):
                    a = var.values
                    reps = [1] * (a.ndim - 2) + [math.ceil(ny / a.shape[-2]),
                                                 math.ceil(nx / a.shape[-1])]
                    a = np.tile(a, reps)[..., :ny, :nx]
                    ch = var.encoding.get("chunksizes")
                    if ch:
                        full = a.shape[-2:] if ch[-2:] == tuple(var.shape[-2:]) else ch[-2:]
                        e["chunksizes"] = tuple(ch[:-2]) + tuple(min(c, n) for c, n in
                                                                 zip(full, a.shape[-2:]))
                    e.update(zlib=True, complevel=1, shuffle=True)
                    data_vars[v] = (var.dims, a, attrs)
                else:
                    data_vars[v] = (var.dims, var.values, attrs)
                enc[v] = e
            coords = {c: (ds[c].dims, new[c] if c in new else ds[c].values, ds[c].attrs)
                      for c in ds.coords}
            xr.Dataset(data_vars, coords=coords, attrs=ds.attrs).to_netcdf(out, encoding=enc)
            ds.close()
        elif f.suffix == ".tif":
            with rasterio.open(f) as r:
                prof = dict(r.profile)
                a = r.read()
                t = r.transform
                tags = r.tags()
                btags = [r.tags(i) for i in range(1, r.count + 1)]
                scales, offsets = r.scales, r.offsets
            a = np.tile(a, (1, math.ceil(ny / a.shape[1]), math.ceil(nx / a.shape[2])))
            a = a[:, :ny, :nx]
            prof.update(height=ny, width=nx, transform=from_origin(t.c, t.f, t.a, -t.e))
            with rasterio.open(out, "w", **prof) as w:
                w.write(a)
                w.update_tags(**tags)
                for i, bt in enumerate(btags, 1):
                    w.update_tags(i, **bt)
                w.scales, w.offsets = scales, offsets
        else:
            shutil.copy(f, out)


def _inputs(folder: Path, nx: int, ny: int | None = None) -> Path:
    import yaml

    from carbonsink.demo import generate, write_demo_inputs
    from carbonsink.pipeline.demo_study import demo_study_dict

    from carbonsink.demo.generate import RES, SOUTH, WEST

    ny = nx if ny is None else ny
    gx, gy = nx, ny
    while gx * gy > GENERATE_MAX:
        gx, gy = -(-gx // 2), -(-gy // 2)
    base = folder if (gx, gy) == (nx, ny) else folder.with_name(folder.name + "_generated")
    inputs = write_demo_inputs(base, data=generate(ny=gy, nx=gx), write_truth=False)
    north = SOUTH + gy * RES
    if base != folder:  # repeat the generated inputs in space (see _tile_inputs)
        _tile_inputs(base, folder, nx, ny)
        shutil.rmtree(base)
        inputs = {k: (folder / Path(v).relative_to(base) if isinstance(v, (str, Path))
                      and str(v).startswith(str(base)) else v) for k, v in inputs.items()}
    study = demo_study_dict(inputs)
    study["grid"]["bounds"] = [WEST, round(north - ny * RES, 6), round(WEST + nx * RES, 6),
                               round(north, 6)]
    study["outputs"]["dir"] = "results"
    p = folder / "study.yaml"
    p.write_text(yaml.safe_dump(study, sort_keys=False))
    return p


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", nargs="+", default=["300", "600", "1200x1000"])
    ap.add_argument("--no-floor", action="store_true", help="run only carbonsink (no floor)")
    ap.add_argument("--variants", nargs="+", default=["default"], choices=list(VARIANTS),
                    help="output settings to run, one after the other (see the module doc)")
    ap.add_argument("--out", default="study", help="stem of the results files")
    ap.add_argument("--tmp", default=None, help="folder for the generated inputs and results "
                                                 "(default: the system temp folder)")
    args = ap.parse_args()
    rows = []
    for size in args.sizes:
        nx, _, ny = str(size).partition("x")
        nx, ny = int(nx), int(ny or nx)
        with tempfile.TemporaryDirectory(prefix=f"bench_study_{size}_", dir=args.tmp) as tmp:
            t0 = time.perf_counter()
            study = _inputs(Path(tmp) / "inputs", nx, ny)
            gen = time.perf_counter() - t0
            runs = {}
            for name in args.variants:
                out = Path(tmp) / f"results_{name}"
                runs[name] = _subprocess(_RUN, str(_variant_study(study, name)), str(out))
                shutil.rmtree(out)  # disk: one variant's outputs at a time
            first = runs[args.variants[0]]
            floor = None if args.no_floor else _subprocess(
                _FLOOR, str(study), str(Path(tmp) / "floor"), str(first["bytes"]))
            for name, run in runs.items():
                rows.append({"pixels": nx * ny, "size": f"{nx} x {ny}", "variant": name,
                             "generate_s": round(gen, 1), "run": run, "floor": floor})
                print(json.dumps(rows[-1]), flush=True)
    (OUT / f"{args.out}.json").write_text(json.dumps(rows, indent=1))
    lines = ["# Whole study: `carbonsink run` vs the read-inputs-write-outputs floor", "",
             f"Synthetic demo inputs (monthly 2001-2021), six combinations, default analyses "
             f"and report; {platform.machine()}, 2 cores, measured one after the other.", "",
             "| pixels | variant | run wall [s] | floor wall [s] | run / floor | cores busy "
             "| CPU: run + figure process [s] | peak RSS [GB] | output [GB] | files |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        run, fl = r["run"], r["floor"]
        fw, ratio = (f"{fl['wall']:.1f}", f"{run['wall'] / fl['wall']:.2f}") if fl else ("—", "—")
        lines.append(f"| {r['pixels']:,} | {r['variant']} | {run['wall']:.1f} "
                     f"| {fw} | {ratio} | {run['cpu'] / run['wall']:.2f} | {run['cpu']:.1f} + "
                     f"{run['cpu_children']:.1f} | "
                     f"{run['peak_rss_gb']:.2f} | {run['bytes'] / 1e9:.2f} | {run['files']} |")
    lines += ["", "Per step: time [s] (cores busy, peak RSS so far [GB]); *before the steps* is "
              "the run's wall time outside every step (reading and checking the study and "
              "its inputs, planning, the run summary):", ""]
    for r in rows:
        run = r["run"]
        steps = ", ".join(f"{k} {v} ({run['cores'][k]}, {run['step_rss'][k]})"
                          for k, v in run["steps"].items())
        rest = run["wall"] - sum(run["steps"].values())
        lines.append(f"* {r['pixels']:,} pixels ({r['size']}), {r['variant']}: "
                     f"before the steps {rest:.2f}, {steps}")
    for r in rows:
        lines += ["", f"Products on disk, {r['pixels']:,} pixels, "
                      f"{r['variant']}:", "", "```",
                  r["run"]["products"], "```"]
    (OUT / f"{args.out}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
