"""The study file of ``carbonsink demo``: synthetic inputs + every model combination."""

from __future__ import annotations

from pathlib import Path

import yaml

from ..io.atomic import atomic_write

__all__ = ["write_demo_study", "demo_study_dict"]


def demo_study_dict(inputs: dict, *, scheduler: str | None = None) -> dict:
    """The demo study mapping for the ``inputs`` section written by the demo generator."""
    from ..demo.generate import RES, SOUTH, WEST

    n = 150  # the default demo size (carbonsink.demo.generate)
    grid = {"crs": "EPSG:4326", "resolution": RES,
            "bounds": [WEST, SOUTH, round(WEST + n * RES, 6), round(SOUTH + n * RES, 6)]}
    study = {
        "name": "carbonsink-demo",
        "description": ("Built-in synthetic demo: a 150 x 150 region at 0.05 deg, monthly "
                        "2001-2021, all six NPP x Rh combinations of seed 000. SYNTHETIC data, "
                        "generated deterministically by carbonsink.demo (see its recipe)."),
        "synthetic": True,
        "period": {"start": "2001-01", "end": "2021-12"},
        "grid": grid,
        "inputs": inputs,
        "models": {"combinations": "all"},
        "outputs": {"dir": "../results", "formats": ["zarr", "cog", "csv", "parquet"]},
    }
    if scheduler:
        study["dask"] = {"scheduler": scheduler}
    return study


def write_demo_study(out_dir: str | Path, *, scheduler: str | None = None) -> Path:
    """Write the synthetic inputs to ``out_dir/inputs`` (if not already there) and the study.

    Returns the path of ``out_dir/inputs/study.yaml``.
    """
    from ..demo import write_demo_inputs

    inputs_dir = Path(out_dir) / "inputs"
    inputs_dir.mkdir(parents=True, exist_ok=True)
    marker = inputs_dir / "inputs.yaml"
    if marker.exists():
        inputs = yaml.safe_load(marker.read_text())
    else:
        inputs = write_demo_inputs(inputs_dir)
        with atomic_write(marker) as tmp:
            Path(tmp).write_text(yaml.safe_dump(inputs, sort_keys=False))
    study_path = inputs_dir / "study.yaml"
    text = yaml.safe_dump(demo_study_dict(inputs, scheduler=scheduler), sort_keys=False)
    if not study_path.exists() or study_path.read_text() != text:
        with atomic_write(study_path) as tmp:
            Path(tmp).write_text(text)
    return study_path
