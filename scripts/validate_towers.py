#!/usr/bin/env python
"""Regenerate ``docs/validation/`` with ``carbonsink validate`` on the shared FLUXNET2015 towers.

Runs exactly the command line printed below (the CLI is the single source of the
committed outputs): every FLUXNET CSV under ``<shared data>/fluxnet2015`` — the
monthly (MM) files of the seven Chinese towers and the daily (DD) file of CN-Ha2,
aggregated to months as its own record — with NPP = 0.5 × tower GPP (negative GPP
clipped at 0), the reference rows ``cue+no_rh``, ranking by NSE, Σ Rh / Σ RECO
flagged above 1, and the SOC density for GSMSR sampled from the real 0–30 cm SOC
grid (Sanderman et al. 2017) at the tower coordinates of ``sites_cn.csv`` and
converted to 0–20 cm with an exponential depth profile fitted per tower to the
0–30 and 0–100 cm grids (``--soc-depth-rule exponential``; Jobbágy & Jackson 2000).

Writes ``towers_metrics.csv`` (+ ``.meta.json`` with every option applied),
``towers_monthly.csv``, ``towers.md`` and ``figures/*.png``.

Usage::

    python scripts/validate_towers.py [--data DIR] [--out DIR] [--depth-rule exponential]

``--data`` defaults to ``$CARBONSINK_SHARED_DATA`` or ``../shared/data`` beside
the repository.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

from carbonsink.io.fluxnet import parse_fluxnet_name

REPO = Path(__file__).resolve().parents[1]


def default_data() -> Path:
    env = os.environ.get("CARBONSINK_SHARED_DATA")
    return (Path(env) if env else REPO / ".." / "shared" / "data").resolve()


def fluxnet_files(folder: Path) -> list[Path]:
    """Every FLUXNET CSV under ``folder``: monthly files first, then the others."""
    files = [p for p in sorted(folder.rglob("*.csv")) if parse_fluxnet_name(p).resolution]
    order = {"MM": 0, "DD": 1, "HH": 2, "HR": 3}
    return sorted(files, key=lambda p: (order.get(parse_fluxnet_name(p).resolution, 9), p.name))


def cli_args(data: Path, out: Path, depth_rule: str) -> list[str]:
    soc = data / "soc"
    args = ["validate", *map(str, fluxnet_files(data / "fluxnet2015")),
            "--out", str(out), "--sites", str(data / "fluxnet2015" / "sites_cn.csv"),
            "--cue", "0.5", "--qc-min", "0.8", "--rank-by", "nse",
            "--rh-reco-threshold", "1",
            "--soc-grid", str(soc / "SOCS_0_30cm_year_2010AD_10km.tif"),
            "--soc-grid-depth", "30", "--soc-grid-units", "Mg C ha-1",
            "--soc-depth-rule", depth_rule, "--format", "csv"]
    if depth_rule == "exponential":
        args += ["--soc-deep-grid", str(soc / "SOCS_0_100cm_year_2010AD_10km.tif"),
                 "--soc-deep-depth", "100"]
    return args


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=default_data(),
                        help="shared data folder (with fluxnet2015/ and soc/)")
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "validation")
    parser.add_argument("--depth-rule", choices=["exponential", "proportional"],
                        default="exponential")
    args = parser.parse_args(argv)
    if not (args.data / "fluxnet2015").is_dir():
        print(f"FLUXNET data folder not found: {args.data / 'fluxnet2015'} (use --data or "
              "CARBONSINK_SHARED_DATA)", file=sys.stderr)
        return 2
    from carbonsink.cli import main as cli

    argv_cli = cli_args(args.data, args.out, args.depth_rule)
    print("carbonsink " + " ".join(shlex.quote(a) for a in argv_cli), flush=True)
    return cli.main(argv_cli, prog_name="carbonsink", standalone_mode=False) or 0


if __name__ == "__main__":
    sys.exit(main())
