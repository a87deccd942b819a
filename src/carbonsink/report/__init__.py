"""Figures and the HTML report (render only; no computation happens here)."""

from .figures import map_figure, timeseries_figure
from .html import write_index

__all__ = ["map_figure", "timeseries_figure", "write_index"]
