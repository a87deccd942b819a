"""Publication figures with matplotlib's object API (no pyplot, no global backend switch).

Every function builds a :class:`matplotlib.figure.Figure`; with ``path`` it is also saved
(atomically, provenance in the PNG text chunks) by :func:`save_figure`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..io.atomic import atomic_write

__all__ = ["timeseries_figure", "map_figure", "save_figure", "new_figure", "SYNTHETIC_NOTE"]

SYNTHETIC_NOTE = "SYNTHETIC demo data — not real observations"
DPI = 110


def new_figure(figsize=(7.5, 4)) -> tuple[Figure, object]:
    """A figure with one axes, attached to the Agg canvas (thread-safe, no pyplot state)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


def save_figure(fig: Figure, path: str | Path, metadata: dict[str, str] | None = None, *,
                dpi: int = DPI) -> Path:
    """Save ``fig`` atomically; ``metadata`` (e.g. provenance) goes into PNG text chunks."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = path.suffix.lstrip(".").lower()
    meta = {"Software": "carbonsink", **(metadata or {})} if fmt == "png" else None
    with atomic_write(path) as tmp:
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format=fmt, metadata=meta)
    return path


def _synthetic(ax) -> None:
    ax.text(0.01, 0.01, SYNTHETIC_NOTE, transform=ax.transAxes, fontsize=7, color="firebrick")


def timeseries_figure(table: pd.DataFrame, path: str | Path | None = None, *, value="value",
                      by="combination", x="year", title: str = "", synthetic: bool = False,
                      ylabel: str = "NEP [g C m$^{-2}$ yr$^{-1}$]",
                      metadata: dict[str, str] | None = None) -> Figure:
    """Line plot of a tidy table, one line per ``by`` group (``x`` on the horizontal axis)."""
    fig, ax = new_figure((7.5, 4))
    for key, grp in table.groupby(by, sort=True):
        grp = grp.sort_values(x)
        ax.plot(grp[x], grp[value], marker="o", ms=3, lw=1.3, label=str(key))
    ax.axhline(0, color="0.6", lw=0.8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2, frameon=False)
    if synthetic:
        _synthetic(ax)
    if path is not None:
        save_figure(fig, path, metadata)
    return fig


def map_figure(da: xr.DataArray, path: str | Path | None = None, *, title: str = "",
               cmap: str = "RdYlGn", synthetic: bool = False, center_zero: bool = True,
               metadata: dict[str, str] | None = None) -> Figure:
    """Map of a 2-D (y, x) field with a colour bar labelled with its units."""
    values = np.asarray(da.values, dtype=float)
    fig, ax = new_figure((6, 5))
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
        _synthetic(ax)
    if path is not None:
        save_figure(fig, path, metadata)
    return fig
