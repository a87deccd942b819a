"""What the report renders: sections made of text, figures and tables.

An analysis returns :class:`Section` objects; the pipeline writes the figures
and tables they refer to and hands the report a list of :class:`Section`
whose blocks point at the written files (paths relative to the results
folder). Sections are plain data (JSON round trip with :meth:`Section.to_dict`
/ :meth:`Section.from_dict`) so that a rerun that skips an analysis can still
render its section.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import pandas as pd

__all__ = ["Section", "Text", "FigureRef", "TableRef", "table_view"]

#: rows shown in an embedded table before it is cut (the full table is linked)
MAX_ROWS = 60


@dataclass
class Text:
    """A paragraph (plain text; rendered escaped)."""

    text: str
    kind: str = "text"


@dataclass
class FigureRef:
    """A figure: ``name`` is the key of the figure in the analysis result; ``path`` is filled in
    once it is written (relative to the results folder)."""

    name: str
    caption: str = ""
    path: str | None = None
    kind: str = "figure"


@dataclass
class TableRef:
    """A table: ``name`` is the result table it comes from (linked as CSV/Parquet); ``columns``
    and ``rows`` are the embedded view (at most :data:`MAX_ROWS` rows)."""

    name: str
    caption: str = ""
    columns: list[str] = field(default_factory=list)
    rows: list[list[Any]] = field(default_factory=list)
    truncated: int = 0
    paths: list[str] = field(default_factory=list)
    kind: str = "table"


_BLOCKS = {"text": Text, "figure": FigureRef, "table": TableRef}


def table_view(df: pd.DataFrame, *, name: str, caption: str = "", digits: int = 4,
               max_rows: int = MAX_ROWS) -> TableRef:
    """An embedded view of ``df`` (rounded, at most ``max_rows`` rows) for a section."""
    view = df.head(max_rows).copy()
    for c in view.columns:
        if pd.api.types.is_float_dtype(view[c]):
            view[c] = view[c].round(digits)
    rows = [[None if (isinstance(v, float) and v != v) else
             (v.item() if hasattr(v, "item") else v) for v in row]
            for row in view.itertuples(index=False, name=None)]
    return TableRef(name=name, caption=caption, columns=[str(c) for c in view.columns],
                    rows=rows, truncated=max(0, len(df) - max_rows))


@dataclass
class Section:
    """One section of the report (usually one per analysis).

    ``template`` names the partial that renders it: a file
    ``templates/sections/<template>.html.j2`` of the report package, or of a
    folder given to :func:`carbonsink.report.render_report` (``template_dirs``).
    ``blocks`` are rendered in order by the ``generic`` partial.
    """

    id: str
    title: str
    blocks: list[Text | FigureRef | TableRef] = field(default_factory=list)
    template: str = "generic"
    analysis: str | None = None
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)

    # builders -------------------------------------------------------------------------
    def text(self, text: str) -> "Section":
        self.blocks.append(Text(text))
        return self

    def figure(self, name: str, caption: str = "") -> "Section":
        self.blocks.append(FigureRef(name, caption))
        return self

    def table(self, df: pd.DataFrame, name: str, caption: str = "", **kw) -> "Section":
        self.blocks.append(table_view(df, name=name, caption=caption, **kw))
        return self

    # serialisation --------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Section":
        blocks = []
        for b in d.get("blocks", []):
            b = dict(b)
            blocks.append(_BLOCKS[b.get("kind", "text")](**b))
        return cls(**{**d, "blocks": blocks})

    @property
    def figures(self) -> list[FigureRef]:
        return [b for b in self.blocks if isinstance(b, FigureRef)]

    @property
    def tables(self) -> list[TableRef]:
        return [b for b in self.blocks if isinstance(b, TableRef)]
