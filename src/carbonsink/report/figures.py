"""Publication figures with matplotlib's object API (no pyplot, no global backend switch).

Every function builds a :class:`matplotlib.figure.Figure`; with ``path`` it is also saved
(atomically, provenance in the PNG text chunks) by :func:`save_figure`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from matplotlib.transforms import ScaledTranslation

from ..io.atomic import atomic_write

__all__ = ["timeseries_figure", "map_figure", "save_figure", "new_figure", "SYNTHETIC_NOTE",
           "FigureSaver", "flush_figures", "abandon_figures", "figure_tag",
           "categorical_map_figure", "trend_series_figure", "area_share_figure",
           "FIGURE_FORMATS", "DPI"]

SYNTHETIC_NOTE = "SYNTHETIC demo data — not real observations"
#: resolution of raster figures [dots per inch] (print resolution)
DPI = 200
#: zlib level of PNG figures: 3 writes maps of a million pixels in two thirds of the time of
#: Pillow's default (6) and no larger (measured: 0.18 s and 552 kB against 0.27 s and 599 kB)
PNG_COMPRESS_LEVEL = 3
#: formats :func:`save_figure` can write
FIGURE_FORMATS = ("png", "svg", "pdf")


def new_figure(figsize=(7.5, 4)) -> tuple[Figure, object]:
    """A figure with one axes, attached to the Agg canvas (thread-safe, no pyplot state)."""
    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig, fig.add_subplot(1, 1, 1)


class FigureSaver:
    """Saves figures in separate processes (``workers``, default 2) while the caller goes on
    computing.

    Rendering a map at print resolution (PNG and SVG) takes about half a second of one core;
    a study draws dozens. Inside ``with FigureSaver() as saver:`` every :func:`save_figure`
    pickles the figure to the saver's process (forked when the saver is entered, before any
    computation starts) and returns at once; :meth:`flush` waits for the figures queued so
    far, re-raises the first error and returns the CPU seconds the saving process spent (the
    pipeline calls it at the end of every step, so a finished step has all its files). Each
    file is still written atomically. Without an active saver, figures are saved inline.
    """

    def __init__(self, workers: int = 2) -> None:
        self.workers = max(1, int(workers))
        self._pool = None
        self._futures: list = []
        self._paths: dict = {}  # tag -> the files its queued figures write
        self._prev: FigureSaver | None = None

    def _start(self) -> None:
        """Fork the saving process now (enter the saver before any computation starts: only
        then does the process have no other threads whose locks a fork could copy); where
        ``fork`` does not exist figures are saved inline."""
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        if "fork" not in multiprocessing.get_all_start_methods():
            return
        self._pool = ProcessPoolExecutor(max_workers=self.workers,
                                         mp_context=multiprocessing.get_context("fork"),
                                         initializer=_saver_init)
        for f in [self._pool.submit(float, 0) for _ in range(self.workers)]:
            f.result()  # start them while this is the only thread

    def submit(self, fig: Figure, path: Path, metadata, dpi: int, formats) -> None:
        import pickle

        if self._pool is None:
            _save_now(fig, path, metadata, dpi=dpi, formats=formats)
            return
        blob = pickle.dumps(fig)
        primary = path.suffix.lstrip(".").lower()
        self._paths.setdefault(_TAG, []).extend(
            [path] + [path.with_suffix("." + f.lower().lstrip("."))
                      for f in (formats or ()) if f.lower().lstrip(".") != primary])
        self._futures.append((_TAG, self._pool.submit(_save_pickled, blob, str(path),
                                                      metadata, dpi, tuple(formats or ()))))

    def abandon(self) -> None:
        """Wait for the queued figures and delete them (the step that drew them failed, so
        nothing of it may look finished)."""
        futures, self._futures = self._futures, []
        paths, self._paths = self._paths, {}
        for _, f in futures:
            try:
                f.result()
            except BaseException:  # noqa: BLE001 - the step's own error is what matters
                pass
        for p in (p for ps in paths.values() for p in ps):
            p.unlink(missing_ok=True)

    def flush(self, wait: bool = True) -> tuple[dict, set]:
        """Collect the queued figures that are written (all of them with ``wait``); returns
        the saving CPU seconds by tag (see :func:`figure_tag`) and the tags whose figures are
        still being saved. The first error is raised after the others have finished (the
        files stay listed for :meth:`abandon`)."""
        remaining, cpu, first = [], {}, None
        for tag, f in self._futures:
            if not wait and not f.done():
                remaining.append((tag, f))
                continue
            try:
                cpu[tag] = cpu.get(tag, 0.0) + f.result()
            except BaseException as exc:  # noqa: BLE001 - re-raised below, after waiting
                first = first or exc
        self._futures = remaining
        if first is not None:
            raise first
        busy = {t for t, _ in remaining}
        self._paths = {t: p for t, p in self._paths.items() if t in busy}
        return cpu, busy

    def __enter__(self) -> FigureSaver:
        global _SAVER
        self._start()
        self._prev, _SAVER = _SAVER, self
        return self

    def __exit__(self, *exc) -> None:
        global _SAVER
        _SAVER = self._prev
        try:
            if exc[0] is None:
                self.flush()
            else:
                self.abandon()
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True, cancel_futures=True)
                self._pool = None


#: the active :class:`FigureSaver` (None: save inline)
_SAVER: FigureSaver | None = None
#: what the figures queued now belong to (the pipeline's step name)
_TAG: str | None = None


def figure_tag(tag: str | None) -> None:
    """Label the figures queued from now on (``flush`` reports CPU seconds per label)."""
    global _TAG
    _TAG = tag


def abandon_figures() -> None:
    """Wait for and delete the figures the active :class:`FigureSaver` has queued."""
    if _SAVER is not None:
        _SAVER.abandon()


def flush_figures(wait: bool = True) -> tuple[dict, set]:
    """:meth:`FigureSaver.flush` of the active saver (none: ``({}, set())``)."""
    return _SAVER.flush(wait) if _SAVER is not None else ({}, set())


#: scheduling priority of the saving processes relative to the run's (``os.nice``): they
#: use the cores the run leaves idle, and do not slow the run's own work when it needs them
SAVER_NICENESS = 10


def _saver_init() -> None:
    """In the saving process: Ctrl-C is for the run (the parent stops the saver), SIGTERM
    ends the process quietly, and the process ends by itself when the run's process is gone
    (killed with SIGKILL, say), so no orphan keeps running or holds the run's output pipes.
    The process runs at a lower priority (:data:`SAVER_NICENESS`): the run's steps, on the
    critical path, get a core when they need it; the figures take the idle time."""
    import contextlib
    import os
    import signal
    import threading
    import time

    with contextlib.suppress(OSError, AttributeError):  # (no os.nice: Windows, saves inline)
        os.nice(SAVER_NICENESS)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(0)

    threading.Thread(target=watch, daemon=True, name="carbonsink-figure-watch").start()


def _save_pickled(blob: bytes, path: str, metadata, dpi: int, formats) -> float:
    import pickle
    import time

    c0 = time.process_time()
    fig = pickle.loads(blob)
    FigureCanvasAgg(fig)
    _save_now(fig, Path(path), metadata, dpi=dpi, formats=formats)
    return time.process_time() - c0


def save_figure(fig: Figure, path: str | Path, metadata: dict[str, str] | None = None, *,
                dpi: int = DPI, formats: Sequence[str] | None = None) -> Path:
    """Save ``fig`` atomically and return ``path``.

    The format is the suffix of ``path``; ``formats`` (e.g. ``("png", "svg")``) also writes the
    same figure beside it in each further format (``path`` with that suffix). PNG is raster at
    ``dpi`` [dots per inch; default :data:`DPI` = 200, print resolution], SVG and PDF are
    vector. ``metadata`` (e.g. provenance) goes into the PNG text chunks; SVG and PDF carry
    it as one JSON ``Description`` entry. Inside a :class:`FigureSaver` the figure is saved by
    the saver's process and this returns at once.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    primary = path.suffix.lstrip(".").lower()
    wanted = [primary] + [f.lower().lstrip(".") for f in (formats or ()) if
                          f.lower().lstrip(".") != primary]
    bad = [f for f in wanted if f not in FIGURE_FORMATS]
    if bad:
        from ..errors import InvalidArgumentError

        raise InvalidArgumentError(f"save_figure: unsupported format(s) {bad} for {path}; "
                                   f"choose from {', '.join(FIGURE_FORMATS)}")
    if _SAVER is not None:
        _SAVER.submit(fig, path, metadata, dpi, formats)
        return path
    return _save_now(fig, path, metadata, dpi=dpi, formats=formats)


def _save_now(fig: Figure, path: Path, metadata, *, dpi: int, formats) -> Path:
    import json

    primary = path.suffix.lstrip(".").lower()
    wanted = [primary] + [f.lower().lstrip(".") for f in (formats or ()) if
                          f.lower().lstrip(".") != primary]
    bbox = _tight_bbox(fig, dpi)
    for fmt in dict.fromkeys(wanted):
        target = path if fmt == primary else path.with_suffix(f".{fmt}")
        if fmt == "png":
            meta = {"Software": "carbonsink", **(metadata or {})}
        else:
            meta = {"Creator": "carbonsink"}
            if metadata:
                meta["Description" if fmt == "svg" else "Subject"] = json.dumps(
                    metadata, sort_keys=True, default=str)
        with atomic_write(target) as tmp:
            fig.savefig(tmp, dpi=dpi, bbox_inches=bbox, format=fmt, metadata=meta,
                        **({"pil_kwargs": {"compress_level": PNG_COMPRESS_LEVEL}}
                           if fmt == "png" else {}))
    return path


def _tight_bbox(fig: Figure, dpi: float):
    """The box [inches] ``savefig(bbox_inches="tight")`` crops ``fig`` to at ``dpi``: the
    tight box of every artist, padded by ``savefig.pad_inches``.

    Computed from the artists' extents without drawing the figure, so saving with it draws
    once; ``"tight"`` draws twice (once only to place the artists), which for a map of a
    million pixels resamples the image twice (about 0.2 s a format).
    """
    import matplotlib as mpl

    orig = fig.dpi
    fig.dpi = dpi
    try:
        canvas = fig.canvas if isinstance(fig.canvas, FigureCanvasAgg) else FigureCanvasAgg(fig)
        bbox = fig.get_tightbbox(canvas.get_renderer())
    finally:
        fig.dpi = orig
    return bbox.padded(mpl.rcParams["savefig.pad_inches"])


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


def _raster(ax, da: xr.DataArray, values: np.ndarray, **kw):
    """``imshow`` of a (y, x) field on its cell edges, north up whatever the y order."""
    x, y = da["x"].values, da["y"].values
    dx = float(abs(x[1] - x[0])) if x.size > 1 else 1.0
    dy = float(abs(y[1] - y[0])) if y.size > 1 else 1.0
    extent = [x.min() - dx / 2, x.max() + dx / 2, y.min() - dy / 2, y.max() + dy / 2]
    origin = "upper" if y.size > 1 and y[0] > y[-1] else "lower"
    return ax.imshow(values, extent=extent, origin=origin, interpolation="nearest", **kw)


def _finish_map(fig, ax, da: xr.DataArray, title: str, synthetic: bool, path, metadata):
    """Axis labels from the CRS, title, synthetic note; saved when ``path`` is given."""
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


def map_figure(da: xr.DataArray, path: str | Path | None = None, *, title: str = "",
               cmap: str = "RdYlGn", synthetic: bool = False, center_zero: bool = True,
               metadata: dict[str, str] | None = None) -> Figure:
    """Map of a 2-D (y, x) field with a colour bar labelled with its units."""
    values = np.asarray(da.values, dtype=float)
    fig, ax = new_figure((6, 5))
    finite = values[np.isfinite(values)]
    kw = {}
    if center_zero and finite.size and finite.min() < 0 < finite.max():
        lim = float(np.nanpercentile(np.abs(finite), 99))
        kw = {"vmin": -lim, "vmax": lim}
    im = _raster(ax, da, values, cmap=cmap, **kw)
    cb = fig.colorbar(im, ax=ax, shrink=0.85)
    cb.set_label(f"{da.attrs.get('long_name', da.name or '')} [{da.attrs.get('units', '?')}]",
                 fontsize=8)
    return _finish_map(fig, ax, da, title, synthetic, path, metadata)


# --------------------------------------------------------------------------- class maps


def _legend_from(classes: xr.DataArray, labels, colors):
    from ..io.geotiff import _class_legend, class_palette

    if labels is not None:
        lab = {int(k): str(v) for k, v in dict(labels).items()}
    else:
        got = _class_legend(classes)
        if got is None:
            from ..errors import InvalidArgumentError

            raise InvalidArgumentError(
                f"categorical_map_figure: '{classes.name}' has no flag_values/labels; pass "
                "labels={code: name} (class maps of carbonsink.stats carry them)")
        lab = dict(zip(*got))
    pal = class_palette(list(lab), list(lab.values()))
    pal.update({int(k): str(v) for k, v in dict(colors or {}).items()})
    return lab, pal


def _shares_mapping(shares) -> dict[int, float]:
    if shares is None:
        return {}
    if isinstance(shares, pd.DataFrame):
        col = "share_percent" if "share_percent" in shares else "value"
        return {int(c): float(v) for c, v in zip(shares["class"], shares[col])}
    return {int(k): float(v) for k, v in dict(shares).items()}


def categorical_map_figure(classes: xr.DataArray, path: str | Path | None = None, *,
                           labels: Mapping[int, str] | None = None,
                           colors: Mapping[int, str] | None = None,
                           shares: Mapping[int, float] | pd.DataFrame | None = None,
                           zones: xr.DataArray | None = None, title: str = "",
                           synthetic: bool = False, legend_title: str = "",
                           metadata: dict[str, str] | None = None) -> Figure:
    """Map of a class map ``(y, x)`` with a legend of class names and their area shares.

    Classes and names come from ``labels`` (``{code: name}``) or the map's CF
    ``flag_values`` with ``labels``/``flag_meanings`` (every map of
    :mod:`carbonsink.stats.classes`); colours from ``colors`` or
    :func:`carbonsink.io.geotiff.class_palette` (the colour table of the COG written by
    :func:`carbonsink.io.write_cog`, so figure and file agree). ``shares`` (``{code:
    percent}`` or a :func:`carbonsink.stats.class_area_shares` table) are shown in the legend
    as ``name (12.3 %)``; every class is listed, also those with no area. ``zones`` (labels,
    0 = none) draws the zone borders. Fill values (−128) and NaN are left blank.
    """
    from matplotlib.colors import BoundaryNorm, ListedColormap
    from matplotlib.patches import Patch

    lab, pal = _legend_from(classes, labels, colors)
    codes = sorted(lab)
    share = _shares_mapping(shares)
    values = np.asarray(classes.values, dtype=float)
    values = np.where(np.isin(values, codes), values, np.nan)
    fig, ax = new_figure((7.8, 5))
    cmap = ListedColormap([pal[c] for c in codes])
    bounds = [codes[0] - 0.5] + [c + 0.5 for c in codes]
    _raster(ax, classes, np.ma.masked_invalid(values), cmap=cmap,
            norm=BoundaryNorm(bounds, cmap.N))
    if zones is not None:
        z = np.asarray(zones.values, dtype=float)
        levels = np.unique(z[np.isfinite(z)])
        if levels.size > 1:
            zx, zy = zones["x"].values, zones["y"].values
            ax.contour(zx, zy, z, levels=(levels[:-1] + levels[1:]) / 2, colors="0.2",
                       linewidths=0.7)
    handles = []
    for c in codes:
        text = lab[c] + (f" ({share[c]:.1f} %)" if c in share and np.isfinite(share[c])
                         else "")
        handles.append(Patch(facecolor=pal[c], edgecolor="0.4", linewidth=0.4, label=text))
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7,
              frameon=False, title=legend_title or None, title_fontsize=8)
    return _finish_map(fig, ax, classes, title, synthetic, path, metadata)


def _ols_fit(t: np.ndarray, v: np.ndarray):
    """OLS line of ``v`` on ``t`` [years] (docs/methods.md §6.1): slope, intercept (at t = 0)
    and the two-sided t-test p, by :func:`carbonsink.stats.ols_trend` on the valid years (a
    perfect line has p = 0, a constant series p = 1)."""
    from ..stats import ols_trend

    t = np.asarray(t, dtype=np.float64)
    v = np.asarray(v, dtype=np.float64)
    ok = np.isfinite(t) & np.isfinite(v)
    if ok.sum() < 3 or np.ptp(t[ok]) == 0:
        return np.nan, np.nan, np.nan
    fit = ols_trend(xr.DataArray(v[ok], dims="time", coords={"time": t[ok]}), "time",
                    min_valid=3)
    slope = float(fit["slope"])
    # ols_trend's intercept is the line's value at the first valid year
    return slope, float(fit["intercept"]) - slope * float(t[ok][0]), float(fit["p"])


def _per_year(units: str) -> str:
    """Units of a slope per year: ``g C m-2 yr-1`` → ``g C m-2 yr-2``, ``%`` → ``% yr-1``."""
    u = units.strip()
    for suffix in (" yr-1", " a-1", " year-1"):
        if u.endswith(suffix):
            return u[: -len(suffix)] + " yr-2"
    return f"{u} yr-1"


def _p_text(p: float) -> str:
    if not np.isfinite(p):
        return ""
    return "p < 0.01" if p < 0.01 else f"p = {p:.2f}"


def trend_series_figure(table: pd.DataFrame, path: str | Path | None = None, *,
                        x: str = "year", value: str = "value", by: str | None = None,
                        panel: str | None = None, units: str = "", ylabel: str = "",
                        title: str = "", ncols: int = 3, synthetic: bool = False,
                        metadata: dict[str, str] | None = None) -> Figure:
    """Time series with the fitted OLS line and its slope (003 Fig. 2/4 style).

    One panel per value of ``panel`` (e.g. ``zone``; the whole table in one panel when
    None), one line per value of ``by`` (e.g. ``combination``) in each panel. Each series is
    drawn with markers and its least-squares line ``y = a + b·t`` (docs/methods.md §6.1; the
    fit and t-test of :func:`carbonsink.stats.ols_trend`), and the legend gives ``b`` in
    ``units`` per year with the t-test p.
    """
    panels = list(dict.fromkeys(table[panel])) if panel else [None]
    n = len(panels)
    cols = max(1, min(ncols, n))
    rows = int(np.ceil(n / cols))
    lines = max((table[by].nunique() if by else 1), 1)
    legend_in = 0.5 + 0.115 * (lines + 1)  # year axis gap + title + one row per line
    fig = Figure(figsize=(4.2 * cols, (3.1 + legend_in) * rows))
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False)
    slope_units = f" {_per_year(units)}" if units else " per year"
    for i, key in enumerate(panels):
        ax = axes[i // cols][i % cols]
        sub = table if key is None else table[table[panel] == key]
        groups = [(None, sub)] if by is None else list(sub.groupby(by, sort=False))
        for j, (g, grp) in enumerate(groups):
            grp = grp.sort_values(x)
            t = grp[x].to_numpy(dtype=float)
            v = grp[value].to_numpy(dtype=float)
            colour = f"C{j % 10}"
            ax.plot(t, v, marker="o", ms=2.5, lw=1.0, color=colour)
            b, a, p = _ols_fit(t, v)
            name = "" if g is None else f"{g}: "
            if np.isfinite(b):
                ptext = _p_text(p)
                ax.plot(t, a + b * t, ls="--", lw=1.0, color=colour,
                        label=f"{name}{b:+.3g}{slope_units}" + (f" ({ptext})" if ptext
                                                                  else ""))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_title("" if key is None else str(key), fontsize=9)
        ax.set_xlabel(x, fontsize=8)
        ax.set_ylabel(ylabel or (f"[{units}]" if units else value), fontsize=8)
        ax.tick_params(labelsize=7)
        # below the panel, under the year axis (inside it, the legend of six combinations
        # hid the lines); the figure is taller by the legend's height (legend_in)
        ax.legend(fontsize=6, frameon=False, title="OLS slope", title_fontsize=6,
                  loc="upper center", bbox_to_anchor=(0.5, 0.0), borderaxespad=0.0,
                  bbox_transform=ax.transAxes + ScaledTranslation(0.0, -0.42,
                                                                  fig.dpi_scale_trans))
        if synthetic and i == 0:
            _synthetic(ax)
    for k in range(n, rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    if path is not None:
        save_figure(fig, path, metadata)
    return fig


def area_share_figure(table: pd.DataFrame, path: str | Path | None = None, *,
                      bar: str | Sequence[str] = "zone", category: str = "class_name",
                      code: str | None = "class", value: str = "value",
                      colors: Mapping[object, str] | None = None, title: str = "",
                      xlabel: str = "area share [%]", synthetic: bool = False,
                      metadata: dict[str, str] | None = None) -> Figure:
    """Horizontal stacked bars of area shares: one bar per value of ``bar`` (e.g. zone, or
    zone and combination), one segment per class (``category``), in the order of ``code``.

    ``colors`` maps a class code (or name) to a colour, default
    :func:`carbonsink.io.geotiff.class_palette` of the codes, so the bars match the class
    maps. Shares are drawn as given (each bar of a complete table sums to 100 %).
    """
    from ..io.geotiff import class_palette

    bars = [bar] if isinstance(bar, str) else list(bar)
    df = table.copy()
    df["_bar"] = df[bars].astype(str).agg(" | ".join, axis=1)
    if code is not None and code in df:
        cats = (df[[code, category]].drop_duplicates().sort_values(code))
        order = list(cats[category])
        pal = class_palette(list(cats[code]), order)
        cmap = {name: pal[int(c)] for c, name in zip(cats[code], cats[category])}
    else:
        order = list(dict.fromkeys(df[category]))
        cmap = {name: f"C{i % 10}" for i, name in enumerate(order)}
    for k, v in dict(colors or {}).items():
        cmap[k] = v
    wide = df.pivot_table(index="_bar", columns=category, values=value, aggfunc="sum",
                          sort=False).reindex(columns=order).fillna(0.0)
    fig, ax = new_figure((8.0, 0.9 + 0.32 * len(wide)))
    left = np.zeros(len(wide))
    ypos = np.arange(len(wide))[::-1]
    for name in order:
        vals = wide[name].to_numpy()
        ax.barh(ypos, vals, left=left, color=cmap.get(name, "0.5"), edgecolor="white",
                linewidth=0.3, label=name)
        left += vals
    ax.set_yticks(ypos, [str(i) for i in wide.index], fontsize=7)
    ax.set_xlim(0, max(100.0, float(left.max()) if left.size else 100.0))
    ax.set_xlabel(xlabel, fontsize=8)
    ax.tick_params(axis="x", labelsize=7)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=7, frameon=False)
    ax.set_title(title, fontsize=10)
    if synthetic:
        _synthetic(ax)
    if path is not None:
        save_figure(fig, path, metadata)
    return fig
