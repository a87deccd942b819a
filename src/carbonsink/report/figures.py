"""Publication figures (matplotlib, Agg backend, PNG written atomically)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import xarray as xr  # noqa: E402

from ..io.atomic import atomic_write  # noqa: E402

__all__ = ["timeseries_figure", "map_figure"]

_SYNTHETIC_NOTE = "SYNTHETIC demo data — not real observations"


def _save(fig, path: Path, metadata: dict[str, str] | None = None) -> None:
    """Save atomically; ``metadata`` (e.g. provenance) goes into the PNG text chunks."""
    fmt = Path(path).suffix.lstrip(".").lower()
    meta = {"Software": "carbonsink", **(metadata or {})} if fmt == "png" else None
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format=fmt, metadata=meta)
    plt.close(fig)


def timeseries_figure(table: pd.DataFrame, path: str | Path, *, value="mean_g_C_m2_yr",
                      by="combination", title: str = "", synthetic: bool = False,
                      ylabel: str = "NEP [g C m$^{-2}$ yr$^{-1}$]",
                      metadata: dict[str, str] | None = None) -> Path:
    """Line plot of a tidy yearly table, one line per ``by`` group."""
    fig, ax = plt.subplots(figsize=(7.5, 4))
    for key, grp in table.groupby(by, sort=True):
        grp = grp.sort_values("year")
        ax.plot(grp["year"], grp[value], marker="o", ms=3, lw=1.3, label=str(key))
    ax.axhline(0, color="0.6", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("year")
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    if synthetic:
        ax.text(0.01, 0.01, _SYNTHETIC_NOTE, transform=ax.transAxes, fontsize=7, color="firebrick")
    _save(fig, Path(path), metadata)
    return Path(path)


def map_figure(da: xr.DataArray, path: str | Path, *, title: str = "", cmap: str = "RdYlGn",
               synthetic: bool = False, center_zero: bool = True,
               metadata: dict[str, str] | None = None) -> Path:
    """Map of a 2-D (y, x) field with a colour bar labelled with its units."""
    values = np.asarray(da.values, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 5))
    x, y = da["x"].values, da["y"].values
    dx = float(abs(x[1] - x[0])) if x.size > 1 else 1.0
    dy = float(abs(y[1] - y[0])) if y.size > 1 else 1.0
    extent = [x.min() - dx / 2, x.max() + dx / 2, y.min() - dy / 2, y.max() + dy / 2]
    finite = values[np.isfinite(values)]
    kw = {}
    if center_zero and finite.size and finite.min() < 0 < finite.max():
        lim = float(np.nanpercentile(np.abs(finite), 99))
        kw = {"vmin": -lim, "vmax": lim}
    origin = "upper" if y.size > 1 and y[0] > y[-1] else "lower"
    im = ax.imshow(values, extent=extent, origin=origin, cmap=cmap, interpolation="nearest", **kw)
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label(f"{da.attrs.get('long_name', da.name or '')} [{da.attrs.get('units', '?')}]",
                 fontsize=8)
    crs = getattr(da.rio, "crs", None) if hasattr(da, "rio") else None
    geographic = crs is None or crs.is_geographic
    ax.set_xlabel("longitude [°E]" if geographic else "x [m]")
    ax.set_ylabel("latitude [°N]" if geographic else "y [m]")
    ax.set_title(title, fontsize=10)
    if synthetic:
        ax.text(0.01, 0.01, _SYNTHETIC_NOTE, transform=ax.transAxes, fontsize=7, color="firebrick")
    _save(fig, Path(path), metadata)
    return Path(path)
