"""Benchmark: the CLM5 CENTURY-type Rh model (flux.century) on SIZE × SIZE pixels × MONTHS.

Target of issue 12: 1000 × 1000 pixels × 40 years monthly in < 5 min on 2 cores.
Inputs are synthetic float32 dask arrays (tas with a seasonal cycle and a per-pixel offset,
monthly NPP litter input, precipitation and PET so that the P/PET water scalar is active),
chunked over space with time whole; every chunk refers to one in-memory block, so no
generation or disk time is measured. Spin-up: the default (``spinup="mean"``: steady state
of the cycle-mean forcing, then 3 cycles of the first SPINUP_YEARS years; default the whole
record). Rh and the pools after spin-up are materialised chunk by chunk into a null sink.

Usage: python benchmarks/bench_century.py [--size 1000] [--years 40] [--chunk 125]
       [--workers 2] [--spinup-years N]
"""

from __future__ import annotations

import argparse
import os
import platform
import threading
import time

import dask
import dask.array as da
import numpy as np
import pandas as pd
import psutil
import xarray as xr

from carbonsink.flux.century import century


class NullSink:
    def __init__(self):
        self.total = 0.0
        self.lock = threading.Lock()

    def __setitem__(self, key, value):
        s = float(np.nansum(value[..., :1]))
        with self.lock:
            self.total += s


def inputs(size: int, years: int, chunk: int):
    nt = 12 * years
    time = pd.date_range("1979-01-01", periods=nt, freq="MS")
    m = np.arange(nt)
    season = np.sin(2 * np.pi * (m - 3) / 12).astype("float32")
    rng = np.random.default_rng(0)
    off = rng.uniform(-8, 8, (chunk, chunk)).astype("float32")
    tas_b = (2 + 14 * season[:, None, None] + off[None]).astype("float32")
    npp_b = np.clip(40 * season[:, None, None] + 0 * off[None], 0, None).astype("float32")
    pr_b = (40 + 30 * season[:, None, None] + 0 * off[None]).astype("float32")
    pet_b = (60 + 50 * season[:, None, None] + 0 * off[None]).astype("float32")
    n = size // chunk

    def tile(b):
        row = da.concatenate([da.from_array(b, chunks=b.shape)] * n, axis=2)
        return da.concatenate([row] * n, axis=1)

    coords = {"time": time}
    out = {}
    for name, b, u in (("tas", tas_b, "degC"), ("npp", npp_b, "g C m-2 month-1"),
                       ("pr", pr_b, "mm month-1"), ("pet", pet_b, "mm month-1")):
        out[name] = xr.DataArray(tile(b), dims=("time", "y", "x"), coords=coords,
                                 attrs={"units": u}, name=name)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--years", type=int, default=40)
    ap.add_argument("--chunk", type=int, default=125)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--spinup-years", type=int, default=None)
    a = ap.parse_args()
    inp = inputs(a.size, a.years, a.chunk)
    # compile outside the timing
    small = {k: v[:24, :2, :2].compute() for k, v in inp.items()}
    century(small["tas"], small["npp"], pr=small["pr"], pet=small["pet"])
    ds = century(inp["tas"], inp["npp"], pr=inp["pr"], pet=inp["pet"],
                 spinup_years=a.spinup_years)
    proc = psutil.Process(os.getpid())
    peak = [proc.memory_info().rss]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], proc.memory_info().rss)
            time.sleep(0.05)

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    with dask.config.set(scheduler="threads", num_workers=a.workers):
        da.store([ds["rh"].data, ds["soil_c_spinup"].data], [NullSink(), NullSink()],
                 lock=False)
    wall = time.perf_counter() - t0
    stop.set()
    th.join()
    pm = a.size * a.size * 12 * a.years
    spin_years = a.years if a.spinup_years is None else min(a.spinup_years, a.years)
    print(f"century: {a.size}x{a.size} pixels x {12 * a.years} months "
          f"(spin-up: mean steady state + 3 cycles of {spin_years} years), "
          f"{a.workers} workers, chunk {a.chunk}: {wall:.1f} s, "
          f"{pm / wall / 1e6:.1f} M pixel-months/s, peak RSS {peak[0] / 2**30:.2f} GiB, "
          f"load average {os.getloadavg()[0]:.2f}, {platform.processor() or platform.machine()}")


if __name__ == "__main__":
    main()
