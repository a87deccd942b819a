#!/usr/bin/env python
"""Speed and memory of the expanding-window slopes of the resilience analysis (issue 10).

A ``size x size`` float32 grid (default 2000 x 2000) of annual NPP for 38 years (1981–2018),
dask-backed with ``--chunk`` x ``--chunk`` spatial chunks (default 500) and the whole time axis
in one chunk, generated lazily per chunk (trend + noise, 2 % NaN), so the grid never exists
in memory at once. Timed: the code the ``resilience`` analysis runs —
:func:`carbonsink.analysis.resilience.resilience_dataset` (expanding-window OLS slopes
[1981, t] for t = 2000 … 2018 by :func:`carbonsink.stats.window_slopes`, slope and
maintenance surfaces) reduced to the per-year counts N⁺/N⁻ by
:func:`~carbonsink.analysis.resilience.maintained_counts`; and, separately, the slopes of all
37 expanding windows [1981, t], t = 1982 … 2018 (reduced to their sum, so the 37 slope grids
are never held at once). Dask threaded scheduler with ``--workers`` threads (default 2).
Peak memory: the process's maximum resident set size (includes the Python/numpy baseline).
Target: < 30 s on 2 cores, memory bounded by the chunk, not the grid.

Usage::

    python benchmarks/bench_resilience.py                     # writes results/resilience.md
    python benchmarks/bench_resilience.py --size 1000 --no-write
"""

from __future__ import annotations

import argparse
import datetime as _dt
import os
import platform
import resource
import time
from pathlib import Path

import dask
import dask.array as dsa
import numpy as np
import pandas as pd
import xarray as xr

from carbonsink.analysis.resilience import maintained_counts, resilience_dataset
from carbonsink.stats import expanding_slopes

HERE = Path(__file__).resolve().parent
TARGET = 30.0  # seconds
YEARS = np.arange(1981, 2019)


def _block(block_info=None):
    loc = block_info[None]["array-location"]
    shape = block_info[None]["chunk-shape"]
    seed = loc[1][0] * 100003 + loc[2][0]
    rng = np.random.default_rng(seed)
    k = (np.arange(shape[0], dtype=np.float32) - 19.0)[:, None, None]
    rate = rng.normal(1.5, 3.0, shape[1:]).astype(np.float32)
    v = 300.0 + rate * k + rng.normal(0.0, 25.0, shape).astype(np.float32)
    v[rng.random(shape) < 0.02] = np.nan
    return v


def make_npp(size: int, chunk: int) -> xr.DataArray:
    data = dsa.map_blocks(_block, dtype=np.float32,
                          chunks=((YEARS.size,), (chunk,) * (size // chunk),
                                  (chunk,) * (size // chunk)))
    t = pd.date_range(f"{YEARS[0]}-01-01", periods=YEARS.size, freq="YS")
    return xr.DataArray(data, dims=("time", "y", "x"),
                        coords={"time": t, "y": np.arange(size), "x": np.arange(size)},
                        name="npp", attrs={"units": "g C m-2 yr-1"})


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=2000)
    ap.add_argument("--chunk", type=int, default=500)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-write", action="store_true")
    args = ap.parse_args()
    if args.size % args.chunk:
        raise SystemExit("--size must be a multiple of --chunk")

    load = os.getloadavg()
    npp = make_npp(args.size, args.chunk)
    rss0 = _rss_mb()
    rows = []
    with dask.config.set(scheduler="threads", num_workers=args.workers):
        t0 = time.perf_counter()
        ds = resilience_dataset(npp, t_ref=2000)
        counts = maintained_counts(ds["maintenance"])
        t_res = time.perf_counter() - t0
        rss1 = _rss_mb()
        t0 = time.perf_counter()
        s = expanding_slopes(npp)
        total = float(s.sum().compute())
        t_all = time.perf_counter() - t0
        rss2 = _rss_mb()
    npix = args.size * args.size
    chunk_mb = YEARS.size * args.chunk ** 2 * 4 / 2 ** 20
    grid_mb = YEARS.size * npix * 4 / 2 ** 20
    rows.append(("resilience_dataset + maintained_counts (19 windows [1981, t], t = 2000…2018)",
                 t_res, rss1))
    rows.append((f"expanding_slopes, all 37 windows (sum of slopes {total:.4g})", t_all, rss2))
    n_pos = counts.n_positive.tolist()
    lines = [
        "# Benchmark: expanding-window slopes (resilience, issue 10)",
        "",
        f"Date: {_dt.datetime.now().isoformat(timespec='seconds')}; host {platform.node()}, "
        f"{os.cpu_count()} CPUs visible, load average before the run "
        f"{load[0]:.2f}/{load[1]:.2f}/{load[2]:.2f} (machine shared with other users).",
        "",
        f"Grid {args.size} x {args.size} float32, {YEARS.size} years (1981–2018), dask chunks "
        f"{args.chunk} x {args.chunk} x {YEARS.size} (input chunk {chunk_mb:.0f} MB; whole "
        f"input {grid_mb:.0f} MB, generated lazily per chunk), threaded scheduler, "
        f"{args.workers} workers. Baseline RSS before computing {rss0:.0f} MB.",
        "",
        "| what | wall time [s] | peak RSS of the process [MB] | target |",
        "|---|---|---|---|",
    ]
    for what, t, rss in rows:
        lines.append(f"| {what} | {t:.2f} | {rss:.0f} | < {TARGET:.0f} s: "
                     f"{'met' if t < TARGET else 'NOT met'} |")
    lines += ["", f"N⁺ per year (2000…2018): {n_pos[:3]} … {n_pos[-2:]} (sanity output).", "",
              "Run: `python benchmarks/bench_resilience.py` "
              f"(`--size {args.size} --chunk {args.chunk} --workers {args.workers}`)."]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.no_write:
        out = HERE / "results" / "resilience.md"
        out.write_text(text)
        print(f"written {out}")


if __name__ == "__main__":
    main()
