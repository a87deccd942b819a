"""The report: renders sections handed to it (figures, tables, text) into an offline HTML page.

It computes nothing and imports nothing above itself (no analysis, no pipeline).
"""

from .figures import map_figure, save_figure, timeseries_figure
from .html import render_report
from .sections import FigureRef, Section, TableRef, Text, table_view

__all__ = ["render_report", "Section", "Text", "FigureRef", "TableRef", "table_view",
           "timeseries_figure", "map_figure", "save_figure"]
