"""Per-province summaries: one pass over labelled zones vs one region mask per province.

A 150 x 150 grid (the demo's size) spanning China, 21 years of annual NEP; the 34 provinces of
../shared/data/boundaries. Measured side by side in one run:

* ``loop``: what a user wrote before — for each province, rasterise its mask
  (``cube.region_mask``, re-reading the boundary file) and compute the regional mean and total;
* ``zones``: ``cube.zone_labels`` once, then ``regions.summarise(..., zones=...)`` (one pass).

Writes ``benchmarks/results/zones.md``. Usage: ``python benchmarks/bench_zones.py``.
"""

from __future__ import annotations

import platform
import time
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr

from carbonsink.cube import GridSpec, pixel_area, region_mask, zone_labels, zone_names
from carbonsink.regions import regional_mean, regional_total, summarise
from carbonsink.testing import shared_data_dir

OUT = Path(__file__).parent / "results" / "zones.md"


def main() -> None:
    shared = shared_data_dir()
    if shared is None:
        raise SystemExit("../shared/data not found: the benchmark needs the province boundaries")
    path = shared / "boundaries" / "china_provinces_dcw-gmt-2.1.1_simplified0.01deg.geojson"
    res = 62.0 / 150
    grid = GridSpec(crs="EPSG:4326", resolution=res, bounds=(73.0, 54.0 - 150 * res, 135.0, 54.0))
    area = pixel_area(grid)
    rng = np.random.default_rng(0)
    t = pd.date_range("2001", periods=21, freq="YS")
    nep = xr.DataArray(rng.normal(100, 30, (21, *grid.shape)), dims=("time", "y", "x"),
                       coords={"time": t, "y": area["y"], "x": area["x"]}, name="nep",
                       attrs={"units": "g C m-2 yr-1"})
    rows = []
    for rep in range(3):
        t0 = time.perf_counter()
        zones = zone_labels(grid, path, "name", label="province")
        t1 = time.perf_counter()
        df = summarise(nep, area, zones=zones)
        t2 = time.perf_counter()
        names = zone_names(zones)
        loop = {}
        for name in names.values():
            m = region_mask(grid, path, "name", name)
            loop[name] = (regional_mean(nep, area, mask=m).values,
                          regional_total(nep, area, mask=m).values)
        t3 = time.perf_counter()
        rows.append({"rep": rep, "zone_labels_s": t1 - t0, "summarise_s": t2 - t1,
                     "zones_total_s": t2 - t0, "loop_s": t3 - t2})
    # same numbers (cells claimed by two overlapping simplified provinces aside)
    nm = df[(df.zone == "Nei Mongol") & (df.statistic == "total")]["value"].values
    diff = float(np.max(np.abs(nm - loop["Nei Mongol"][1]) / np.abs(loop["Nei Mongol"][1])))
    tab = pd.DataFrame(rows)
    best = tab.min()
    text = [
        "# Per-province summaries: zones in one pass vs a mask per province",
        "",
        f"150 x 150 grid over China ({res:.3f} deg), 21 annual steps, {len(names)} provinces;"
        f" {platform.processor() or platform.machine()}, 2 cores, machine shared (best of 3).",
        "",
        "| method | seconds |",
        "|---|---|",
        f"| `zone_labels` (rasterise all 34 once) | {best['zone_labels_s']:.3f} |",
        f"| `summarise(..., zones=...)` mean + total, all provinces | {best['summarise_s']:.3f} |",
        f"| **zones total** | **{best['zones_total_s']:.3f}** |",
        f"| loop: `region_mask` + mean + total per province | {best['loop_s']:.3f} |",
        "",
        f"Speed-up {best['loop_s'] / best['zones_total_s']:.1f}x. Nei Mongol total, one pass vs "
        f"loop: max relative difference {diff:.2e} (cells whose centre lies in two overlapping "
        "simplified provinces count once in the zone map, in both province masks).",
        "",
        "All repetitions:",
        "",
        tab.round(3).to_markdown(index=False),
    ]
    OUT.write_text("\n".join(text) + "\n")
    print("\n".join(text))


if __name__ == "__main__":
    main()
