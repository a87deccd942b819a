"""Which compressor for the cubes: ratio and speed of Blosc codecs on carbonsink's own data.

The demo's synthetic inputs (200 x 200 pixels, monthly 2001-2021) go through the model chain
(MODIS NPP, GSMSR-BL Rh, NEP) and the annual aggregation; each float32 cube is encoded with
every candidate codec (one 252 x 200 x 200 chunk, as the pipeline stores pixel series) and
the compression ratio and encode / decode speeds [MB/s of raw data, one core] are reported;
the inputs also as the 16-bit integers the pipeline stores when the source is packed.
Results: ``benchmarks/results/codecs.md``.

Usage: ``python benchmarks/bench_codecs.py``.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
from numcodecs import Blosc

OUT = Path(__file__).parent / "results"

CANDIDATES = [("lz4", 5, Blosc.SHUFFLE), ("lz4", 5, Blosc.BITSHUFFLE),
              ("zstd", 1, Blosc.SHUFFLE), ("zstd", 3, Blosc.SHUFFLE),
              ("zstd", 1, Blosc.BITSHUFFLE)]


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


def main() -> None:
    rows = []
    for name, arr in _arrays().items():
        raw = arr.tobytes()
        for cname, level, shuffle in CANDIDATES:
            codec = Blosc(cname=cname, clevel=level, shuffle=shuffle, blocksize=0)
            codec.encode(raw[: 1 << 16])  # warm up
            t0 = time.perf_counter()
            enc = codec.encode(raw)
            te = time.perf_counter() - t0
            t0 = time.perf_counter()
            codec.decode(enc)
            td = time.perf_counter() - t0
            rows.append((name, f"{cname} {level} {'bit' if shuffle == 2 else 'byte'}shuffle",
                         len(raw) / len(enc), len(raw) / te / 1e6, len(raw) / td / 1e6))
    lines = ["# Compressors for the cubes", "",
             "One chunk per cube (200 x 200 pixels, all steps; float32, or int16 for packed "
             "inputs), demo data; Blosc (numcodecs), one core. The pipeline uses LZ4 for "
             "float32 and zstd 1 for 16-bit integers.", "",
             "| cube | codec | ratio | encode [MB/s] | decode [MB/s] |", "|---|---|---|---|---|"]
    lines += [f"| {n} | {c} | {r:.2f} | {e:.0f} | {d:.0f} |" for n, c, r, e, d in rows]
    (OUT / "codecs.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
