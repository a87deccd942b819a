#!/usr/bin/env python
"""Validate the NEP combinations against every FLUXNET2015 file in the shared data.

Reads every FLUXNET CSV under ``<shared data>/fluxnet2015`` — the monthly
(MM) SUBSET files of the seven Chinese towers and the daily (DD) FULLSET file
of CN-Ha2, aggregated to months and compared with the MM file of the same
site as a consistency check — runs the Rh models with each tower's own
monthly meteorology, takes NPP = CUE × tower GPP (no gridded MODIS/CASA NPP
at the towers is available here), and writes

* ``docs/validation/towers_metrics.csv``  metrics per site × combination (+ pooled rows),
  with its provenance sidecar ``towers_metrics.csv.meta.json``
* ``docs/validation/towers.md``           the same table with the settings and notes
* ``docs/validation/figures/*.png``       scatter of all towers, time series per tower

Usage::

    python scripts/validate_towers.py [--data DIR] [--out DIR] [--cue 0.5] [--qc-min 0.8]

``--data`` defaults to ``$CARBONSINK_SHARED_DATA/fluxnet2015`` or
``../shared/data/fluxnet2015`` beside the repository.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd

from carbonsink import __version__
from carbonsink.analysis.validation import (
    DEFAULT_SOC,
    POOLED,
    plot_scatter,
    plot_timeseries,
    tower_rh,
    validate_towers,
)
from carbonsink.io.atomic import atomic_write
from carbonsink.io.fluxnet import parse_fluxnet_name, read_fluxnet, read_sites, to_monthly
from carbonsink.io.tables import write_table

REPO = Path(__file__).resolve().parents[1]


def default_data() -> Path:
    env = os.environ.get("CARBONSINK_SHARED_DATA")
    base = Path(env) if env else REPO / ".." / "shared" / "data"
    return (base / "fluxnet2015").resolve()


def fluxnet_files(data: Path) -> list[Path]:
    """Every FLUXNET CSV under ``data``: monthly files first, then the others."""
    files = [p for p in sorted(data.rglob("*.csv")) if parse_fluxnet_name(p).resolution]
    order = {"MM": 0, "DD": 1, "HH": 2, "HR": 3}
    return sorted(files, key=lambda p: (order.get(parse_fluxnet_name(p).resolution, 9), p.name))


def dd_vs_mm(files: list[Path]) -> pd.DataFrame:
    """Monthly aggregates of each DD file against the MM file of the same site."""
    mm = {parse_fluxnet_name(p).site: p for p in files if parse_fluxnet_name(p).resolution == "MM"}
    rows = []
    for path in files:
        meta = parse_fluxnet_name(path)
        if meta.resolution != "DD" or meta.site not in mm:
            continue
        agg = to_monthly(read_fluxnet(path))
        ref = read_fluxnet(mm[meta.site])
        agg, ref = agg.sel(time=ref["time"]), ref
        for var in ("nee", "gpp", "reco", "tas", "pr", "sol", "nee_qc"):
            d = agg[var].values - ref[var].values
            rows.append({"site": meta.site, "variable": var, "units": ref[var].attrs["units"],
                         "months": int(np.isfinite(d).sum()),
                         "max_abs_diff": float(np.nanmax(np.abs(d))),
                         "mean_abs_diff": float(np.nanmean(np.abs(d))),
                         "mm_mean": float(np.nanmean(ref[var].values))})
    return pd.DataFrame(rows)


def model_parameters(path: Path) -> list[tuple[str, str, str]]:
    """(variable, model, parameters JSON) of the Rh outputs as run at one tower."""
    rh = tower_rh(read_fluxnet(path), soc=DEFAULT_SOC)
    return [(name, str(da.attrs.get("model", "")), str(da.attrs.get("parameters", "")))
            for name, da in rh.data_vars.items()]


def _fmt(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)) or \
            value is pd.NA:
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(df: pd.DataFrame, columns: list[str], digits: dict[str, int]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "|".join("---" for _ in columns) + "|"]
    for _, row in df.iterrows():
        lines.append("| " + " | ".join(_fmt(row[c], digits.get(c, 3)) for c in columns) + " |")
    return "\n".join(lines)


def write_markdown(path: Path, table: pd.DataFrame, consistency: pd.DataFrame, files: list[Path],
                   figures: list[str], args: argparse.Namespace) -> None:
    cols = ["site", "igbp", "data", "combination", "rank", "n", "bias", "rel_bias", "rmse", "r",
            "r2", "nse", "slope", "intercept", "flag"]
    digits = {"bias": 1, "rmse": 1, "intercept": 1, "rel_bias": 2, "r": 3, "r2": 3, "nse": 3,
              "slope": 3}
    best = table[(table["rank"] == 1)][["site", "data", "combination", "r2", "rmse"]]
    rmse_diff = r2_diff = float("nan")
    dd = table[table["data"].str.endswith("->MM")]
    if len(dd):
        pair = dd.merge(table[table["data"] == "MM"], on=["site", "combination"],
                        suffixes=("_dd", "_mm"))
        rmse_diff = float((pair["rmse_dd"] - pair["rmse_mm"]).abs().max())
        r2_diff = float((pair["r2_dd"] - pair["r2_mm"]).abs().max())
    params = "\n".join(f"  - `{name}`: {model} `{par}`" for name, model, par in
                       model_parameters(files[0]))
    pooled = table[table["site"] == POOLED]
    text = f"""# Tower validation: NEP combinations against FLUXNET2015 (Chinese sites)

Produced by `scripts/validate_towers.py` (carbonsink {__version__}); do not edit by hand —
rerun the script. Metrics per site and combination: `towers_metrics.csv`.

## Data

{len(files)} FLUXNET2015 files from the shared data folder (FLUXNET2015 release, CC-BY-4.0;
Pastorello et al. 2020, Sci Data 7:225):

{chr(10).join(f"- `{p.name}`" for p in files)}

Tower NEP = −NEE_VUT_REF; the monthly (MM) values are mean daily fluxes (g C m-2 d-1) and are
multiplied by the days in the month. The daily (DD) file of CN-Ha2 is aggregated to months
(sum of daily values, months with < 90 % of the days present are dropped; monthly QC = the
month's fraction of good-quality days) and validated as its own record (`data = DD->MM`).
Only months with `NEE_VUT_REF_QC` ≥ {args.qc_min:g} enter the metrics; at least 12 such months
are required, else the metrics are empty and `flag` says why.

## Settings and assumptions

- **NPP at the towers = CUE × tower GPP** (`GPP_NT_VUT_REF`, night-time partitioning) with
  CUE = {args.cue:g}. No gridded MODIS or CASA NPP could be obtained on these machines, so the
  two NPP models of seed 000 (MODIS downscaled, CASA) cannot be evaluated here: MODIS NPP at a
  tower needs the product's pixel, and CASA needs NDVI, which the tower files lack. CUE × GPP
  is an approximation (CUE ranges about 0.3–0.7 between ecosystems), and because GPP is
  partitioned from the same NEE measurements, this is **not an independent test of NPP**: the
  table mainly compares the three Rh models under a shared NPP. Supplying a study NPP cube
  (`carbonsink validate --npp-cube`, or `npp={{"modis": cube, "casa": cube}}` in
  `validate_towers`) gives all six combinations of seed 000.
- **Rh models** (carbonsink.flux.rh, defaults): Pei et al. (2009) with 30-day months;
  GSMSR (β = −0.0006 as printed in seed 000, unresolved, METHODS §3.2) followed by
  Bond-Lamberty et al. (2004) with the annual-ratio scaling, or by Shi (2015) clipped to
  Rh ≤ Rs. Drivers: the tower's monthly TA_F (°C) and P_F (× days → mm month-1).
- Model parameters as run (from the output attributes):
{params}
- **SOC density for GSMSR**: no site values are available; a constant {DEFAULT_SOC:g} kg C m-2
  (0–20 cm) is **assumed** at every tower (`soc_source` column).
- **Metrics** (METHODS §5.2, model M vs tower O): bias = mean(M − O), rel_bias = Σ(M − O)/ΣO,
  RMSE, r (Pearson), r2 = r² (R²_r), nse = 1 − Σ(O − M)²/Σ(O − Ō)² (R²_1:1), slope and
  intercept of the OLS fit M = a + b·O. Units g C m-2 month-1.
- **Rank**: within each site and data record, by r2 (highest first; ties by RMSE), as seed 000
  picked its combination by the agreement of modelled and observed NEP (its Figure 3). The
  `all sites` rows pool the QC-passed months of the seven towers (the MM record of CN-Ha2,
  not also its DD copy).

## Results

{markdown_table(table, cols, digits)}

Best combination per site (rank 1):

{markdown_table(best, ["site", "data", "combination", "r2", "rmse"], digits)}

Pooled over all towers:

{markdown_table(pooled, ["combination", "rank", "n", "bias", "rmse", "r2", "nse", "slope"],
                digits)}

## Consistency: CN-Ha2 daily file aggregated to months vs the monthly file

{markdown_table(consistency, ["site", "variable", "units", "months", "max_abs_diff",
                              "mean_abs_diff", "mm_mean"],
                {"max_abs_diff": 4, "mean_abs_diff": 4, "mm_mean": 3})}

Meteorology and RECO agree to the rounding of the files. NEE and GPP differ slightly because
ONEFlux selects the VUT "REF" member of the USTAR ensemble separately at each temporal
resolution, so the MM `NEE_VUT_REF` is not exactly the monthly mean of the DD `NEE_VUT_REF`.
The metrics of the two CN-Ha2 records differ accordingly: largest RMSE difference
{rmse_diff:.3f} g C m-2 month-1, largest r2 difference {r2_diff:.4f} (see the table).

## Figures

{chr(10).join(f"- `figures/{f}`" for f in figures)}
"""
    with atomic_write(path) as tmp:
        tmp.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="folder with the FLUXNET2015 files and sites_cn.csv")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "validation")
    parser.add_argument("--cue", type=float, default=0.5)
    parser.add_argument("--qc-min", type=float, default=0.8)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"FLUXNET data folder not found: {args.data} (use --data or "
              "CARBONSINK_SHARED_DATA)", file=sys.stderr)
        return 2
    files = fluxnet_files(args.data)
    sites = read_sites(args.data / "sites_cn.csv")
    table, monthly = validate_towers(files, sites=sites, npp="cue", cue=args.cue,
                                     qc_min=args.qc_min, return_monthly=True)
    out = args.out
    fig_dir = out / "figures"
    figures = [plot_scatter(monthly, fig_dir / "scatter_all_towers.png").name]
    for site, grp in monthly[monthly["data"] == "MM"].groupby("site", sort=False):
        figures.append(plot_timeseries(grp, fig_dir / f"timeseries_{site}.png").name)
    write_table(table, out / "towers_metrics.csv")
    consistency = dd_vs_mm(files)
    write_markdown(out / "towers.md", table, consistency, files, figures, args)
    with pd.option_context("display.width", 200, "display.max_columns", 20,
                           "display.max_rows", 200):
        print(table[["site", "data", "combination", "rank", "n", "bias", "rel_bias", "rmse",
                     "r", "r2", "nse", "slope", "intercept"]].round(3).to_string(index=False))
        print()
        print(consistency.round(4).to_string(index=False))
    print(f"\nwrote {out / 'towers_metrics.csv'}, {out / 'towers.md'} and {len(figures)} figures")
    return 0


if __name__ == "__main__":
    sys.exit(main())
