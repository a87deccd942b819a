"""Which compressor for the cubes: ratio and speed of Blosc codecs on carbonsink's own data.

The demo's synthetic inputs (200 x 200 pixels, monthly 2001-2021) go through the model chain
(MODIS NPP, GSMSR-BL Rh, NEP) and the annual aggregation; each float32 cube is encoded with
every candidate codec (one 252 x 200 x 200 chunk, as the pipeline stores pixel series) and
the compression ratio and encode / decode speeds [MB/s of raw data, one core] are reported;
the inputs also as the 16-bit integers the pipeline stores when the source is packed.
Results: ``benchmarks/results/codecs.md``.

Usage: ``python benchmarks/bench_codecs.py [--store RESULTS/cubes/inputs_monthly.zarr]``;
``--store`` adds the packed chunks of a prepared study (e.g. the 1.2 M-pixel study of
``bench_study.py``): every 16-bit variable, up to six of its chunks.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from numcodecs import Blosc

OUT = Path(__file__).parent / "results"

#: (codec, level, shuffle, Blosc block size [bytes]; 0 = Blosc's choice)
CANDIDATES = [("lz4", 5, Blosc.SHUFFLE, 0), ("lz4", 5, Blosc.BITSHUFFLE, 0),
              ("zstd", 1, Blosc.SHUFFLE, 0), ("zstd", 3, Blosc.SHUFFLE, 0),
              ("zstd", 1, Blosc.BITSHUFFLE, 0), ("zstd", 1, Blosc.SHUFFLE, 1 << 18),
              ("zstd", 1, Blosc.BITSHUFFLE, 1 << 18)]
#: steps per chunk of the packed inputs (the pipeline stores them in 12-month chunks)
PACKED_STEPS = 12


def _arrays() -> dict[str, np.ndarray]:
    from carbonsink.cube.temporal import to_annual
    from carbonsink.demo import generate
    from carbonsink.flux.chain import run_chain

    d = generate(ny=200, nx=200)
    inputs = {k: v for k, v in d.items() if hasattr(v, "dims")}
    res = run_chain(["modis+gsmsr_bl"], inputs)["modis+gsmsr_bl"]
    out = {"tas (input)": inputs["tas"], "ndvi (input)": inputs["ndvi"],
           "npp monthly (model)": res["npp"], "rh monthly (model)": res["rh"],
           "nep annual (product)": to_annual(res["nep"])}
    arrays = {k: np.ascontiguousarray(v.values.astype("float32")) for k, v in out.items()}
    # the aligned inputs as the pipeline stores them when the source is packed (the demo's
    # files: tas in 0.01 degC and NDVI in 1e-4 integers)
    for name, scale in (("tas", 0.01), ("ndvi", 1e-4)):
        v = arrays[f"{name} (input)"]
        arrays[f"{name} (input, int16 packed)"] = np.ascontiguousarray(
            np.where(np.isfinite(v), np.round(v / scale), -32768).astype("int16"))
    return arrays


def _time(codec, chunks) -> tuple[float, float, float]:
    """(ratio, encode MB/s, decode MB/s) of ``codec`` over ``chunks`` (raw bytes each)."""
    codec.encode(chunks[0][: 1 << 16])  # warm up
    size = sum(len(c) for c in chunks)
    t0 = time.perf_counter()
    enc = [codec.encode(c) for c in chunks]
    te = time.perf_counter() - t0
    t0 = time.perf_counter()
    for e in enc:
        codec.decode(e)
    td = time.perf_counter() - t0
    return size / sum(len(e) for e in enc), size / te / 1e6, size / td / 1e6


def _store_chunks(store: Path) -> dict[str, np.ndarray]:
    """Up to six chunks (as stored: 16-bit integers) of every packed variable of a Zarr store."""
    import zarr

    out = {}
    group = zarr.open_group(str(store), mode="r")
    for name, arr in group.arrays():
        if arr.dtype != np.int16 or arr.ndim != 3:
            continue
        ct, cy, cx = arr.chunks
        parts = [np.asarray(arr[0:ct, y:y + cy, x:x + cx])
                 for y in range(0, min(arr.shape[1], 3 * cy), cy)
                 for x in range(0, min(arr.shape[2], 2 * cx), cx)]
        out[f"{name} ({store.name}, stored chunks)"] = parts
    return out


#: real grids of ../shared/data (when present), packed as the pipeline packs such inputs
SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
REAL = [("climate_cru/cru_ts4.00_tas_iberia_monthly_1981-2010.nc", 0.01, "CRU tas"),
        ("climate_cru/cru_ts4.00_pr_iberia_monthly_1981-2010.nc", 0.1, "CRU pr"),
        ("ndvi_gimms/gimms3g_v0_ndvi_kilimanjaro_semimonthly_1981-2013.nc", 1e-4,
         "GIMMS NDVI")]


def _real_chunks() -> dict[str, list[np.ndarray]]:
    import xarray as xr

    out = {}
    for rel, scale, label in REAL:
        path = SHARED / rel
        if not path.exists():
            continue
        with xr.open_dataset(path) as ds:
            v = ds[next(iter(ds.data_vars))].values.astype(np.float32)
        packed = np.where(np.isfinite(v), np.round(v / scale), -32768).astype(np.int16)
        out[f"{label} (real, {'x'.join(map(str, v.shape[1:]))} cells, int16 packed)"] = [
            packed[i:i + PACKED_STEPS] for i in range(0, len(packed), PACKED_STEPS)]
    return out


def main() -> None:
    import argparse

    import numcodecs

    ap = argparse.ArgumentParser()
    ap.add_argument("--store", type=Path, help="a prepared study's packed inputs store")
    args = ap.parse_args()

    numcodecs.blosc.use_threads = False  # as in dask's worker threads: one core per chunk
    rows = []
    sets = {}
    for name, arr in _arrays().items():
        # packed inputs in the pipeline's 12-step chunks, floats as one whole-series chunk
        step = PACKED_STEPS if arr.dtype == np.int16 else arr.shape[0]
        sets[name] = [np.ascontiguousarray(arr[i:i + step]).tobytes()
                      for i in range(0, arr.shape[0], step)]
    sets.update({k: [np.ascontiguousarray(c).tobytes() for c in v]
                 for k, v in _real_chunks().items()})
    if args.store is not None:
        sets.update({k: [np.ascontiguousarray(c).tobytes() for c in v]
                     for k, v in _store_chunks(args.store).items()})
    for name, chunks in sets.items():
        for cname, level, shuffle, block in CANDIDATES:
            codec = Blosc(cname=cname, clevel=level, shuffle=shuffle, blocksize=block)
            r, e, d = _time(codec, chunks)
            rows.append((name, f"{cname} {level} {'bit' if shuffle == 2 else 'byte'}shuffle"
                         + (f", {block >> 10} KiB blocks" if block else ""), r, e, d))
    lines = ["# Compressors for the cubes", "",
             "Demo data (200 x 200 pixels, monthly 2001-2021): float32 cubes as one chunk of "
             "all steps, the packed 16-bit inputs in the pipeline's 12-month chunks; Blosc "
             "(numcodecs), one core (Blosc's own threads off, as in dask's workers). The "
             "pipeline uses LZ4 for float32 and zstd 1 with byte shuffle (Blosc's block size) "
             "for 16-bit integers: 256 KiB blocks were 5-20 % faster but 2-9 % larger on the "
             "study's inputs; bit shuffle is smaller on those but not on every real grid, "
             "and no faster.", "",
             "| cube | codec | ratio | encode [MB/s] | decode [MB/s] |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {c} | {r:.2f} | {e:.0f} | {d:.0f} |" for n, c, r, e, d in rows]
    (OUT / "codecs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
