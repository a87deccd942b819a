"""Provenance recorded on every output: who made it, from which study, with which models."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from typing import Any

__all__ = ["provenance", "flat_attrs"]


def provenance(cfg, step: str, *, models: dict[str, Any] | None = None,
               parameters: dict[str, Any] | None = None) -> dict[str, Any]:
    """Provenance record of an output produced by ``step`` of study ``cfg``."""
    from .. import __version__

    rec: dict[str, Any] = {
        "carbonsink_version": __version__,
        "study_name": cfg.name,
        "study_sha256": cfg.sha256,
        "step": step,
        "created_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
    }
    if cfg.synthetic:
        rec["synthetic"] = "true: carbonsink synthetic demo data, not real observations"
    if models:
        rec["models"] = models
    if parameters:
        rec["parameters"] = parameters
    return rec


def flat_attrs(rec: dict[str, Any], prefix: str = "carbonsink_") -> dict[str, str]:
    """Flatten a provenance record into string attributes (netCDF/Zarr/GeoTIFF tags)."""
    out: dict[str, str] = {}
    for key, value in rec.items():
        name = key if key.startswith(prefix) else prefix + key
        out[name] = value if isinstance(value, str) else json.dumps(value, sort_keys=True,
                                                                    default=str)
    return out
