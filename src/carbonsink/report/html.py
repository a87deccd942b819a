"""The offline HTML report (``index.html``): renders what it is given, nothing more.

:func:`render_report` receives the study summary, the provenance record, the
sections the analyses returned (with the paths of their written figures and
tables) and the list of products; it renders ``templates/index.html.j2`` with one
partial per section kind (``templates/sections/<kind>.html.j2``). Figures are
linked relatively, so the folder can be moved or zipped; no network is used.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2

from ..io.atomic import atomic_write
from .sections import Section

__all__ = ["render_report"]


def _env(template_dirs: Iterable[str | Path] = ()) -> jinja2.Environment:
    loaders: list[jinja2.BaseLoader] = [jinja2.FileSystemLoader(str(d)) for d in template_dirs]
    loaders.append(jinja2.PackageLoader("carbonsink.report", "templates"))
    env = jinja2.Environment(loader=jinja2.ChoiceLoader(loaders),
                             autoescape=jinja2.select_autoescape(["html", "j2"]),
                             undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)

    def fmt(v: Any) -> str:
        if v is None:
            return "–"
        if isinstance(v, float):
            return f"{v:.6g}"
        return str(v)

    env.filters["fmt"] = fmt
    return env


def render_report(path: str | Path, *, study: Mapping[str, Any], provenance: Mapping[str, Any],
                  sections: Sequence[Section], products: Mapping[str, Sequence[str]] | None = None,
                  run_info: Mapping[str, Any] | None = None,
                  template_dirs: Iterable[str | Path] = ()) -> Path:
    """Render ``index.html`` at ``path``.

    Parameters
    ----------
    study
        ``name``, ``description``, ``synthetic``, ``period``, ``grid``, ``combinations``,
        ``experiments``, ``models`` (what the header shows).
    provenance
        The provenance record (version, study hash, time ...), shown as a table.
    sections
        :class:`~carbonsink.report.sections.Section` objects in order; each is rendered by
        ``sections/<section.template>.html.j2`` (searched first in ``template_dirs``).
    products
        Relative paths of the written products by kind (``cubes``, ``maps``, ``tables``,
        ``figures``), listed at the end.
    run_info
        Extra key/value pairs for the provenance table (models and parameters, timings).
    """
    env = _env(template_dirs)
    parts = []
    for sec in sections:
        tpl = env.get_template(f"sections/{sec.template}.html.j2")
        parts.append({"id": sec.id, "title": sec.title,
                      "html": tpl.render(section=sec, study=study)})
    html = env.get_template("index.html.j2").render(
        study=study, prov=dict(provenance), sections=parts,
        products={k: sorted(set(v)) for k, v in (products or {}).items()},
        run_info={k: (v if isinstance(v, str) else json.dumps(v, sort_keys=True, default=str))
                  for k, v in (run_info or {}).items()})
    path = Path(path)
    with atomic_write(path) as tmp:
        Path(tmp).write_text(html, encoding="utf-8")
    return path

