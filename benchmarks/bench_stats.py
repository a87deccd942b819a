#!/usr/bin/env python
"""Speed and memory of carbonsink.stats against peers and plain NumPy (issue 4).

Builds a ``size x size x ntime`` float32 cube (default 2000 x 2000 x 24) with
``nan`` (5 %) all-NaN pixels plus three driver cubes, then times every
statistic, all outputs including p-values:

* ``carbonsink``  — the public xarray API on NumPy-backed input (``--threads``
  threads, default 2), all pixels; and the same on dask-backed input
  (500 x 500 chunks, threaded scheduler) for a few statistics;
* ``numpy``       — a plain NumPy-vectorised version written for this benchmark
  (whole-array operations along the time axis; run on a block of pixels);
* peers           — pymannkendall, scipy.stats loops, pingouin, nolds (Python
  loops over a subset of pixels) and xskillscore (vectorised, on a sub-cube);
  rates are reported per pixel.

Peak memory is the tracemalloc peak of NumPy allocations during a second run
of the same call (outputs + temporaries; the input cube is not counted).

Usage::

    python benchmarks/bench_stats.py                 # full size, writes results
    python benchmarks/bench_stats.py --size 300 --no-write   # quick check
"""

from __future__ import annotations

import argparse
import csv
import datetime as _dt
import json
import os
import platform
import sys
import time
import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import scipy.special as sps
import scipy.stats as ss
import xarray as xr

import carbonsink.stats as cs

HERE = Path(__file__).resolve().parent
TARGETS = {  # million pixels per second on 2 cores, T = 24 (issue 4)
    "Theil-Sen + MK": 2.0,
    "OLS + p": 5.0,
    "partial corr (3 drivers)": 2.0,
    "Hurst R/S": 1.0,
    "Spearman": 1.0,
}


# --------------------------------------------------------------------------- data


def make_cube(ny, nx, nt, nan_frac, seed, trend=0.05):
    rng = np.random.default_rng(seed)
    data = rng.standard_normal((nt, ny, nx), dtype=np.float32)
    data += np.float32(trend) * np.arange(nt, dtype=np.float32)[:, None, None]
    data[:, rng.random((ny, nx)) < nan_frac] = np.nan
    return xr.DataArray(data, dims=("time", "y", "x"),
                        coords={"time": np.arange(2000, 2000 + nt)}, name="nep",
                        attrs={"units": "g C m-2 yr-1"})


# --------------------------------------------------------------------------- plain NumPy versions


def np_ols(Y, t):
    """OLS slope, intercept, stderr, t, p, r2 along the last axis (NaN-aware)."""
    ok = np.isfinite(Y)
    n = ok.sum(-1).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        tm = (ok * t).sum(-1) / n
        ym = np.where(ok, Y, 0).sum(-1) / n
        dt = np.where(ok, t - tm[:, None], 0.0)
        dy = np.where(ok, Y - ym[:, None], 0.0)
        stt = (dt * dt).sum(-1)
        sty = (dt * dy).sum(-1)
        syy = (dy * dy).sum(-1)
        b = sty / stt
        se = np.sqrt(np.maximum(syy - b * sty, 0) / (n - 2) / stt)
        tt = b / se
        p = 2 * sps.stdtr(n - 2, -np.abs(tt))
        r2 = sty * sty / (stt * syy)
    return b, ym - b * tm, se, tt, p, r2


def np_mk(Y, t):
    """Sen slope/intercept, S, Var(S) with ties, Z, p, tau (NaN-aware pairs)."""
    T = Y.shape[-1]
    i, j = np.triu_indices(T, 1)
    D = Y[:, j] - Y[:, i]
    with np.errstate(invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        s = np.nansum(np.sign(D), axis=-1)
        slope = np.nanmedian(D / (t[j] - t[i]), axis=-1)
        n = np.isfinite(Y).sum(-1).astype(np.float64)
        eq = (Y[:, :, None] == Y[:, None, :]).sum(-1).astype(np.float64)
        ties = np.where(np.isfinite(Y), (eq - 1) * (2 * eq + 5), 0).sum(-1)
        var = (n * (n - 1) * (2 * n + 5) - ties) / 18
        z = np.where(s > 0, s - 1, np.where(s < 0, s + 1, 0)) / np.sqrt(var)
        p = 2 * sps.ndtr(-np.abs(z))
        tmed = np.nanmedian(np.where(np.isfinite(Y), t, np.nan), axis=-1)
        intercept = np.nanmedian(Y, axis=-1) - tmed * slope
        tau = s / (0.5 * n * (n - 1))
    return slope, intercept, s, var, z, p, tau


def np_pearson(X, Y):
    with np.errstate(invalid="ignore", divide="ignore"):
        xa = X - X.mean(-1, keepdims=True)
        ya = Y - Y.mean(-1, keepdims=True)
        r = (xa * ya).sum(-1) / np.sqrt((xa * xa).sum(-1) * (ya * ya).sum(-1))
        n = X.shape[-1]
        tt = r * np.sqrt((n - 2) / (1 - r * r))
        p = 2 * sps.stdtr(n - 2, -np.abs(tt))
    return r, p


def np_spearman(X, Y):
    rx = ss.rankdata(X, axis=-1).astype(np.float64)
    ry = ss.rankdata(Y, axis=-1).astype(np.float64)
    bad = ~np.isfinite(X).all(-1) | ~np.isfinite(Y).all(-1)
    r, p = np_pearson(rx, ry)
    r[bad] = np.nan
    p[bad] = np.nan
    return r, p


def np_partial(Y, drivers):
    V = np.stack([Y] + drivers, axis=1).astype(np.float64)   # (P, V, T)
    V -= V.mean(-1, keepdims=True)
    C = np.einsum("pvt,pwt->pvw", V, V)
    bad = ~np.isfinite(C).all(axis=(1, 2))
    C[bad] = np.eye(C.shape[1])
    P = np.linalg.inv(C)
    d = np.sqrt(np.einsum("pvv->pv", P))
    r = -P[:, 0, 1:] / (d[:, :1] * d[:, 1:])
    df = Y.shape[-1] - 2 - (len(drivers) - 1)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = 2 * sps.stdtr(df, -np.abs(r * np.sqrt(df / (1 - r * r))))
    r[bad] = np.nan
    p[bad] = np.nan
    return r, p


def np_hurst(Y, tau_min=3):
    T = Y.shape[-1]
    lx, ly, ok = [], [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        for tau in range(tau_min, T + 1):
            seg = Y[:, :tau]
            dev = seg - seg.mean(-1, keepdims=True)
            cum = np.cumsum(dev, axis=-1)
            R = cum.max(-1) - cum.min(-1)
            S = np.sqrt((dev * dev).mean(-1))
            good = (R > 0) & (S > 0)
            lx.append(np.full(Y.shape[0], np.log(tau)))
            ly.append(np.where(good, np.log(R / S), 0.0))
            ok.append(good)
        lx, ly, ok = np.array(lx), np.array(ly), np.array(ok)
        m = ok.sum(0)
        xm = (lx * ok).sum(0) / m
        ym = (ly * ok).sum(0) / m
        dx = np.where(ok, lx - xm, 0)
        h = (dx * (ly - ym)).sum(0) / (dx * dx).sum(0)
    h[m < 3] = np.nan
    return h


def np_cv(Y):
    with np.errstate(invalid="ignore", divide="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        m = np.nanmean(Y, -1)
        cv = np.nanstd(Y, -1, ddof=1) / m
    cv[m <= 0] = np.nan
    return cv


# --------------------------------------------------------------------------- measuring


_LAST_CPU = [0.0]


def timed(fn):
    """Wall seconds of ``fn()`` (computing lazy results); CPU seconds kept in _LAST_CPU."""
    c0 = time.process_time()
    t0 = time.perf_counter()
    res = fn()
    if isinstance(res, (xr.Dataset, xr.DataArray)) and (
            getattr(res, "chunks", None) or
            (isinstance(res, xr.Dataset) and any(v.chunks for v in res.data_vars.values()))):
        res = res.compute()
    wall = time.perf_counter() - t0
    _LAST_CPU[0] = time.process_time() - c0
    return wall, res


def traced_peak(fn):
    tracemalloc.start()
    try:
        res = fn()
        if hasattr(res, "compute"):
            res.compute()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def pixels_flat(da, npix, seed=0):
    """(npix, T) float64 rows of valid pixels of a (time, y, x) cube."""
    arr = np.moveaxis(np.asarray(da.values), 0, -1).reshape(-1, da.sizes["time"])
    rows = np.flatnonzero(np.isfinite(arr).all(-1))
    pick = np.random.default_rng(seed).choice(rows, size=min(npix, rows.size), replace=False)
    return arr[np.sort(pick)].astype(np.float64)


# --------------------------------------------------------------------------- main


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=2000, help="ny = nx of the cube")
    ap.add_argument("--ntime", type=int, default=24)
    ap.add_argument("--nan", type=float, default=0.05, help="fraction of all-NaN pixels")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--peer-pixels", type=int, default=400)
    ap.add_argument("--numpy-pixels", type=int, default=200_000)
    ap.add_argument("--repeat", type=int, default=3,
                    help="carbonsink timings: best of this many runs (the machine may be shared)")
    ap.add_argument("--no-memory", action="store_true", help="skip the tracemalloc runs")
    ap.add_argument("--no-peers", action="store_true")
    ap.add_argument("--no-write", action="store_true", help="do not write benchmarks/results")
    ap.add_argument("--out", default=str(HERE / "results" / "stats"))
    args = ap.parse_args(argv)

    cs.set_num_threads(args.threads)
    import dask

    dask.config.set(scheduler="threads", num_workers=args.threads)
    ny = nx = args.size
    T = args.ntime
    npix = ny * nx
    print(f"building {ny} x {nx} x {T} float32 cube with {args.nan:.0%} NaN pixels "
          "+ 3 driver cubes ...", flush=True)
    nep = make_cube(ny, nx, T, args.nan, 1)
    drivers = {nm: make_cube(ny, nx, T, args.nan, 10 + i, trend=0.0).rename(nm)
               for i, nm in enumerate(("tas", "pr", "sol"))}
    t_years = np.arange(T, dtype=np.float64)
    rows = []
    load_before = [os.getloadavg()[0]]

    def rec(stat, impl, n, seconds, peak=None, note=""):
        rate = n / seconds if seconds > 0 else float("inf")
        target = TARGETS.get(stat)
        cpu = _LAST_CPU[0]
        row = {"statistic": stat, "implementation": impl, "pixels": n,
               "seconds": round(seconds, 4), "Mpixels_per_s": round(rate / 1e6, 4),
               "cpu_seconds": round(cpu, 4),
               "Mpixels_per_cpu_s": round(n / cpu / 1e6, 4) if cpu > 0 else None,
               "load1_before": round(load_before[0], 2),
               "peak_MB": None if peak is None else round(peak / 2**20, 1),
               "target_Mpixels_per_s": target if impl.startswith("carbonsink") else None,
               "met": (rate / 1e6 >= target) if (target and impl.startswith("carbonsink"))
               else None, "note": note}
        rows.append(row)
        peak_txt = "" if peak is None else f"{peak / 2**20:9.1f} MB"
        print(f"{stat:26s} {impl:34s} {n:>9d} px {seconds:9.3f} s "
              f"{rate / 1e6:10.4f} Mpx/s cpu {cpu:8.3f} s {peak_txt}", flush=True)
        load_before[0] = os.getloadavg()[0]

    # -------- carbonsink on all pixels (warm-up first: JIT load / compile)
    small = nep.isel(y=slice(0, 4))
    small_d = {k: v.isel(y=slice(0, 4)) for k, v in drivers.items()}
    ours = {
        "Theil-Sen + MK": lambda a, d: cs.mann_kendall(a),
        "OLS + p": lambda a, d: cs.ols_trend(a),
        "partial corr (3 drivers)": lambda a, d: cs.partial_correlation(a, d),
        "Hurst R/S": lambda a, d: cs.hurst_rs(a),
        "Spearman": lambda a, d: cs.spearman(a, d["tas"]),
        "Pearson": lambda a, d: cs.pearson(a, d["tas"]),
        "CV": lambda a, d: cs.coefficient_of_variation(a),
        "MK Hamed-Rao": lambda a, d: cs.mann_kendall(a, variant="hamed_rao"),
    }
    def best_of(fn):
        runs = []
        for _ in range(max(1, args.repeat)):
            sec, _ = timed(fn)
            runs.append((sec, _LAST_CPU[0]))
        sec, cpu = min(runs)
        _LAST_CPU[0] = cpu
        return sec

    for stat, fn in ours.items():
        fn(small, small_d)
        sec = best_of(lambda: fn(nep, drivers))
        peak = None if args.no_memory else traced_peak(lambda: fn(nep, drivers))
        rec(stat, f"carbonsink ({args.threads} threads)", npix, sec, peak)
    chunked = nep.chunk({"y": 500, "x": 500})
    chunked_d = {k: v.chunk({"y": 500, "x": 500}) for k, v in drivers.items()}
    for stat in ("Theil-Sen + MK", "OLS + p", "partial corr (3 drivers)"):
        ours[stat](small.chunk({"x": 100}), {k: v.chunk({"x": 100}) for k, v in
                                             small_d.items()}).compute()   # warm-up
        sec = best_of(lambda: ours[stat](chunked, chunked_d))
        rec(stat, f"carbonsink dask ({args.threads} workers)", npix, sec)

    # natural breaks: exact on 1e6 values
    vals = np.asarray(cs.coefficient_of_variation(nep + 10).values).ravel()
    vals = vals[np.isfinite(vals)][:1_000_000].astype(np.float64)
    cs.natural_breaks(vals[:1000], 5)
    sec = best_of(lambda: cs.natural_breaks(vals, 5, method="exact"))
    rec("natural breaks exact k=5", "carbonsink", vals.size, sec,
        note="values, not pixels; target < 2 s for 1e6 values")
    sec, _ = timed(lambda: cs.natural_breaks(vals[:100_000], 5, method="exact"))
    rec("natural breaks exact k=5", "carbonsink", 100_000, sec, note="values")

    # -------- plain NumPy versions on a block of valid pixels
    Y = pixels_flat(nep, args.numpy_pixels, 0).astype(np.float32)
    Xd = [pixels_flat(drivers[k], args.numpy_pixels, 0).astype(np.float32)
          for k in ("tas", "pr", "sol")]
    m = min(Y.shape[0], *(x.shape[0] for x in Xd))
    Y, Xd = Y[:m], [x[:m] for x in Xd]
    numpy_impls = {
        "Theil-Sen + MK": lambda: [np_mk(Y[k:k + 20_000], t_years) for k in range(0, m, 20_000)],
        "OLS + p": lambda: np_ols(Y, t_years),
        "partial corr (3 drivers)": lambda: np_partial(Y, Xd),
        "Hurst R/S": lambda: np_hurst(Y),
        "Spearman": lambda: np_spearman(Y, Xd[0]),
        "Pearson": lambda: np_pearson(Y, Xd[0]),
        "CV": lambda: np_cv(Y),
    }
    for stat, fn in numpy_impls.items():
        sec, _ = timed(fn)
        rec(stat, "numpy vectorised (1 thread)", m, sec,
            note="plain NumPy/scipy.special whole-array version")

    # -------- peers
    notes = []
    if not args.no_peers:
        P = pixels_flat(nep, args.peer_pixels, 1)
        D = [pixels_flat(drivers[k], args.peer_pixels, 1) for k in ("tas", "pr", "sol")]
        k = min(P.shape[0], *(d.shape[0] for d in D))
        P, D = P[:k], [d[:k] for d in D]
        try:
            import pymannkendall as pmk

            sec, _ = timed(lambda: [pmk.original_test(P[i]) for i in range(k)])
            rec("Theil-Sen + MK", "pymannkendall.original_test loop", k, sec)
            sec, _ = timed(lambda: [pmk.hamed_rao_modification_test(P[i]) for i in range(k)])
            rec("MK Hamed-Rao", "pymannkendall hamed_rao loop", k, sec)
        except ImportError:
            notes.append("pymannkendall not installed: skipped")
        sec, _ = timed(lambda: [(ss.theilslopes(P[i], t_years), ss.kendalltau(t_years, P[i]))
                                for i in range(k)])
        rec("Theil-Sen + MK", "scipy theilslopes+kendalltau loop", k, sec)
        sec, _ = timed(lambda: [ss.linregress(t_years, P[i]) for i in range(k)])
        rec("OLS + p", "scipy.stats.linregress loop", k, sec)
        sec, _ = timed(lambda: [ss.spearmanr(P[i], D[0][i]) for i in range(k)])
        rec("Spearman", "scipy.stats.spearmanr loop", k, sec)
        sec, _ = timed(lambda: [ss.pearsonr(P[i], D[0][i]) for i in range(k)])
        rec("Pearson", "scipy.stats.pearsonr loop", k, sec)
        try:
            import pandas as pd
            import pingouin as pg

            kk = min(k, 60)

            def pg_loop():
                for i in range(kk):
                    df = pd.DataFrame({"y": P[i], "a": D[0][i], "b": D[1][i], "c": D[2][i]})
                    for x, cov in (("a", ["b", "c"]), ("b", ["a", "c"]), ("c", ["a", "b"])):
                        pg.partial_corr(df, x="y", y=x, covar=cov)

            sec, _ = timed(pg_loop)
            rec("partial corr (3 drivers)", "pingouin.partial_corr loop", kk, sec,
                note="3 calls per pixel")
        except ImportError:
            notes.append("pingouin not installed: skipped")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                import nolds

            kk = min(k, 200)
            sec, _ = timed(lambda: [nolds.hurst_rs(P[i], fit="poly") for i in range(kk)])
            rec("Hurst R/S", "nolds.hurst_rs loop", kk, sec,
                note="nolds' own R/S variant (log-spaced block sizes)")
        except Exception as exc:  # nolds 0.6 fails to import on some Pythons
            notes.append(f"nolds unavailable ({type(exc).__name__}): skipped")
        try:
            import hurst

            hurst.compute_Hc(P[0], kind="random_walk")
        except ImportError:
            notes.append("hurst package not installed: skipped")
        except ValueError as exc:
            notes.append(f"hurst package cannot run on T = {T} series: {exc}")
        try:
            import xskillscore as xs

            sub = nep.isel(y=slice(0, 200), x=slice(0, 200))
            subd = drivers["tas"].isel(y=slice(0, 200), x=slice(0, 200))
            nsub = sub.sizes["y"] * sub.sizes["x"]
            sec, _ = timed(lambda: (xs.pearson_r(sub, subd, dim="time", skipna=True),
                                    xs.pearson_r_p_value(sub, subd, dim="time", skipna=True)))
            rec("Pearson", "xskillscore pearson_r + p_value", nsub, sec)
            sec, _ = timed(lambda: (xs.spearman_r(sub, subd, dim="time", skipna=True),
                                    xs.spearman_r_p_value(sub, subd, dim="time", skipna=True)))
            rec("Spearman", "xskillscore spearman_r + p_value", nsub, sec)
        except ImportError:
            notes.append("xskillscore not installed: skipped")
        try:
            import jenkspy

            sec, _ = timed(lambda: jenkspy.jenks_breaks(vals[:100_000], n_classes=5))
            rec("natural breaks exact k=5", "jenkspy.jenks_breaks", 100_000, sec, note="values")
        except ImportError:
            notes.append("jenkspy not installed: skipped")

    # -------- report
    meta = {"date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "cube": f"{ny} x {nx} x {T} float32, {args.nan:.0%} all-NaN pixels",
            "threads": args.threads, "cpu_count": os.cpu_count(), "repeat": args.repeat,
            "python": sys.version.split()[0], "platform": platform.platform(),
            "numpy": np.__version__, "notes": notes}
    print("\n".join(notes))
    if not args.no_write:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        with open(out.with_suffix(".csv"), "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=list(rows[0]))
            w.writeheader()
            w.writerows(rows)
        with open(out.with_suffix(".json"), "w") as f:
            json.dump({"meta": meta, "rows": rows}, f, indent=1)
        lines = [f"# carbonsink.stats benchmark ({meta['date']})", "",
                 f"Cube {meta['cube']}; {args.threads} threads on a {os.cpu_count()}-core "
                 f"machine; Python {meta['python']}, NumPy {meta['numpy']}; carbonsink rows are "
                 f"the best of {args.repeat} runs.", "",
                 "Columns: wall seconds and M pixels per wall second; CPU seconds of the "
                 "process and M pixels per CPU second (load-independent cost); peak MB = "
                 "tracemalloc peak of NumPy allocations in a second run; load = 1-min load "
                 "average before the run (other processes share the machine).", "",
                 "| statistic | implementation | pixels | seconds | M pixels/s | CPU s | "
                 "M px/CPU-s | load | peak MB | target M/s | met |",
                 "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r in rows:
            lines.append(
                f"| {r['statistic']} | {r['implementation']} | {r['pixels']} | {r['seconds']} | "
                f"{r['Mpixels_per_s']} | {r['cpu_seconds']} | {r['Mpixels_per_cpu_s']} | "
                f"{r['load1_before']} | {'' if r['peak_MB'] is None else r['peak_MB']} | "
                f"{'' if r['target_Mpixels_per_s'] is None else r['target_Mpixels_per_s']} | "
                f"{'' if r['met'] is None else ('yes' if r['met'] else 'NO')} |")
        if notes:
            lines += ["", "Notes:", *[f"- {n}" for n in notes]]
        out.with_suffix(".md").write_text("\n".join(lines) + "\n")
        print(f"wrote {out.with_suffix('.md')}, .csv, .json")
    return rows


if __name__ == "__main__":
    main()
