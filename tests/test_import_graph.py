"""The import graph of carbonsink follows the data flow (DESIGN "Open architecture").

Every module of ``src/carbonsink`` is parsed with :mod:`ast`; each import (absolute
or relative, at module level or inside a function, plus ``importlib.import_module``
calls with a literal ``carbonsink.`` prefix) becomes an edge between top-level
subpackages/modules of carbonsink. Checked:

* no import cycle between packages;
* layering — a package imports only packages of lower rank; equal rank only within
  the same package (so flux and stats stay independent of each other). The modules
  of rank 0 are the shared foundation and may import each other (the cycle check
  still applies to them). The root ``carbonsink/__init__.py`` is exempt, but it
  must stay light: it imports rank-0 modules only.
"""

from __future__ import annotations

import ast
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import carbonsink

PACKAGE_DIR = Path(carbonsink.__file__).resolve().parent
ROOT = "__init__"  # the root package itself (``import carbonsink``, ``from carbonsink import x``)

RANKS: dict[str, int] = {
    "errors": 0, "units": 0, "plausibility": 0, "_xrutil": 0, "_engine": 0, "_grouped": 0,
    "_memory": 0, "_version": 0, "_constants": 0,
    "_time": 0, ROOT: 0,
    "io": 1,
    "cube": 2,
    "flux": 3, "stats": 3,
    "regions": 4,
    "report": 5,
    "analysis": 6,
    "demo": 7, "testing": 7,
    "pipeline": 8,
    "cli": 9,
}
FOUNDATION = {name for name, rank in RANKS.items() if rank == 0}


@dataclass(frozen=True)
class Edge:
    src: str       # top-level unit of the importing module
    dst: str       # top-level unit imported
    path: str      # importing file, relative to src/carbonsink
    line: int
    target: str    # the imported module as written (resolved to absolute)

    def __str__(self) -> str:
        return (f"{self.src} -> {self.dst}  (src/carbonsink/{self.path}:{self.line} "
                f"imports {self.target})")


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _top_level_units() -> set[str]:
    out = set()
    for p in PACKAGE_DIR.iterdir():
        if p.suffix == ".py":
            out.add(p.stem)
        elif p.is_dir() and (p / "__init__.py").exists():
            out.add(p.name)
    return out


def _unit_of(rel: Path) -> str:
    """Top-level subpackage or module of a file (``io/netcdf.py`` -> ``io``)."""
    return rel.with_suffix("").parts[0]


def _dotted(rel: Path) -> tuple[list[str], bool]:
    parts = ["carbonsink", *rel.with_suffix("").parts]
    if parts[-1] == "__init__":
        return parts[:-1], True
    return parts, False


def _resolve(module: str | None, level: int, here: list[str], is_pkg: bool) -> str:
    if not level:
        return module or ""
    base = here if is_pkg else here[:-1]
    base = base[:len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _literal_prefix(node: ast.AST) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant):
        return str(node.values[0].value)
    return None


def _targets(node: ast.AST, here: list[str], is_pkg: bool, units: set[str]) -> list[str]:
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if isinstance(node, ast.ImportFrom):
        mod = _resolve(node.module, node.level, here, is_pkg)
        if mod == "carbonsink":  # from carbonsink import units / __version__
            return [f"carbonsink.{a.name}" if a.name in units else "carbonsink" for a in node.names]
        return [mod]
    if isinstance(node, ast.Call) and node.args:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
        if name == "import_module":
            prefix = _literal_prefix(node.args[0])
            if prefix and prefix.startswith("carbonsink"):
                return [prefix.rstrip(".")]
    return []


def import_edges() -> list[Edge]:
    units = _top_level_units()
    edges = []
    for path in _modules():
        rel = path.relative_to(PACKAGE_DIR)
        here, is_pkg = _dotted(rel)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            for t in _targets(node, here, is_pkg, units):
                parts = t.split(".")
                if parts[0] != "carbonsink":
                    continue
                dst = parts[1] if len(parts) > 1 else ROOT
                edges.append(Edge(_unit_of(rel), dst, rel.as_posix(), node.lineno, t))
    return sorted(edges, key=lambda e: (e.path, e.line, e.dst))


def _cycles(edges: list[Edge]) -> list[list[str]]:
    """Strongly connected components with more than one package (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for e in edges:
        if e.src != e.dst:
            graph[e.src].add(e.dst)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(set(graph) | {d for ds in graph.values() for d in ds}):
        if v not in index:
            visit(v)
    return out


# --------------------------------------------------------------------------- tests


def test_parser_sees_the_package():
    edges = import_edges()
    assert len(_modules()) > 20
    # known edges of every kind: absolute, relative, and inside a function
    found = {(e.src, e.dst) for e in edges}
    assert ("units", "errors") in found
    assert ("io", "errors") in found
    assert ("cli", "pipeline") in found


def test_every_unit_has_a_rank():
    unranked = sorted(_top_level_units() - set(RANKS))
    assert not unranked, (f"new top-level modules/packages {unranked}: give them a rank in "
                          "tests/test_import_graph.py (and a place in docs/ARCHITECTURE.md)")


def test_no_import_cycle_between_packages():
    edges = [e for e in import_edges() if e.src != ROOT]
    cycles = _cycles(edges)
    if cycles:
        lines = []
        for comp in cycles:
            lines.append("cycle between " + ", ".join(comp) + ":")
            lines += [f"  {e}" for e in edges if e.src in comp and e.dst in comp and e.src != e.dst]
        raise AssertionError("\n".join(lines))


def _violation(e: Edge) -> str | None:
    if e.src == ROOT or e.src == e.dst:
        return None
    if e.src not in RANKS or e.dst not in RANKS:
        return "unranked"
    rs, rd = RANKS[e.src], RANKS[e.dst]
    if rd < rs:
        return None
    if rd == rs and e.src in FOUNDATION and e.dst in FOUNDATION:
        return None
    if rd == rs:
        return f"same rank {rs}, different packages"
    return f"upward: rank {rs} imports rank {rd}"


def test_layering():
    bad = [(e, why) for e in import_edges() if (why := _violation(e))]
    assert not bad, ("imports against the layering (io < cube < flux|stats < regions < report "
                     "< analysis < demo|testing < pipeline < cli):\n"
                     + "\n".join(f"  {e}: {why}" for e, why in bad))


def test_flux_and_stats_are_independent():
    edges = [e for e in import_edges() if {e.src, e.dst} == {"flux", "stats"}]
    assert not edges, "\n".join(map(str, edges))


def test_root_package_imports_only_the_foundation():
    """``import carbonsink`` stays light: no io, cube, flux ... at import time."""
    heavy = [e for e in import_edges() if e.src == ROOT and e.path == "__init__.py"
             and e.dst not in FOUNDATION]
    assert not heavy, "\n".join(map(str, heavy))


def test_checker_flags_bad_edges():
    assert _violation(Edge("report", "pipeline", "report/x.py", 1, "carbonsink.pipeline"))
    assert _violation(Edge("flux", "stats", "flux/x.py", 1, "carbonsink.stats"))
    assert _violation(Edge("io", "cube", "io/x.py", 1, "carbonsink.cube"))
    assert _violation(Edge("cube", "io", "cube/x.py", 1, "carbonsink.io")) is None
    assert _violation(Edge("units", "errors", "units.py", 1, "carbonsink.errors")) is None
    cyc = [Edge("report", "pipeline", "a", 1, "x"), Edge("pipeline", "report", "b", 1, "y"),
           Edge("pipeline", "io", "c", 1, "z")]
    assert _cycles(cyc) == [["pipeline", "report"]]


def test_resolve_relative_imports():
    here, is_pkg = _dotted(Path("io/netcdf.py"))
    assert _resolve("errors", 2, here, is_pkg) == "carbonsink.errors"
    assert _resolve("_common", 1, here, is_pkg) == "carbonsink.io._common"
    here, is_pkg = _dotted(Path("flux/__init__.py"))
    assert _resolve("npp", 1, here, is_pkg) == "carbonsink.flux.npp"
    assert _resolve(None, 2, here, is_pkg) == "carbonsink"
