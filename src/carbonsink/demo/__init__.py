"""Built-in synthetic demo data for carbonsink (no downloads).

Everything produced here is **synthetic** and labelled so (``source`` =
"carbonsink synthetic demo data (not real observations)", ``synthetic`` =
"true"). The recipe — every variable's formula, units and prescribed trend —
is :func:`recipe` (the docstring of :mod:`carbonsink.demo.generate`).

* :func:`generate` — dict of canonical DataArrays (tas, pr, sol, pet, ndvi,
  soc, npp_annual, gpp_8day, landcover), deterministic for a seed.
* :func:`write_demo_inputs` — writes them as NetCDF / GeoTIFF files and
  returns the ``inputs:`` mapping of a study file.
* :func:`truth` / ``TRUTH`` — the prescribed trends, couplings and land-cover
  transitions that analyses should recover (``TRUTH`` is the default-seed
  truth, computed lazily on first access).
"""

from __future__ import annotations

from typing import Any

from .generate import (
    DEFAULT_SEED,
    IGBP_NAMES,
    SYNTHETIC_SOURCE,
    DemoTruth,
    dataset_attrs,
    generate,
    generate_with_truth,
    recipe,
    truth,
    write_demo_inputs,
)

__all__ = [
    "DEFAULT_SEED",
    "IGBP_NAMES",
    "SYNTHETIC_SOURCE",
    "DemoTruth",
    "TRUTH",
    "dataset_attrs",
    "generate",
    "generate_with_truth",
    "recipe",
    "truth",
    "write_demo_inputs",
]


def __getattr__(name: str) -> Any:
    if name == "TRUTH":  # lazily: generating takes a few seconds
        return truth()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
