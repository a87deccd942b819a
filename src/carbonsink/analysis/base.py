"""Analyses as plug-ins: :class:`Analysis`, :func:`register_analysis`, :class:`AnalysisResult`.

An analysis is one class in one module, registered with an explicit decorator::

    from pydantic import BaseModel
    from carbonsink.analysis import Analysis, AnalysisResult, register_analysis

    @register_analysis
    class MeanNEP(Analysis):
        name = "mean_nep"                       # the key under `analyses:` in the study
        title = "Multi-year mean NEP"
        requires = ("annual",)                  # products it reads (see REQUIREMENTS)

        class Options(BaseModel):               # validated by `carbonsink check`
            model_config = {"extra": "forbid"}
            variable: str = "nep"

        def run(self, ctx, options):
            res = AnalysisResult()
            for exp, combo in ctx.runs():
                ds = ctx.cube("annual", combo, exp)
                ...
                res.add_table("mean_nep", tidy_frame)
            res.section(self).text("...").table(res.tables["mean_nep"], "mean_nep")
            return res

The pipeline builds one step per analysis named in the study (ordered by
``after``), calls :meth:`Analysis.run` with a context that reads the results
folder lazily, writes every table (CSV/Parquet), dataset (Zarr/NetCDF, plus
COG maps of the variables listed in ``maps``) and figure (PNG) of the result
where the product catalog says, and gives the report the sections. Nothing in
the pipeline, the study schema or the report names an analysis.

From Python, the same analysis runs on in-memory data with
:class:`MemoryContext` and :func:`run_analysis`.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pandas as pd
import xarray as xr
from pydantic import BaseModel, ConfigDict, ValidationError

from ..errors import InputError, InvalidArgumentError, UnknownAnalysisError
from ..report.sections import Section

__all__ = ["Analysis", "AnalysisResult", "AnalysisContext", "MemoryContext", "CubeProduct",
           "NoOptions", "register_analysis", "get_analysis", "analysis_names", "ANALYSES",
           "run_analysis", "tidy", "TIDY_COLUMNS", "REQUIREMENTS", "BASE_EXPERIMENT",
           "validate_options", "describe_analyses", "DRIVERS"]

#: the columns every result table starts with (one long schema; units never in column names)
TIDY_COLUMNS = ("experiment", "combination", "zone", "variable", "statistic", "units", "value")

#: what an analysis may declare in ``requires``
REQUIREMENTS = {
    "monthly": "monthly NPP, Rh and NEP cubes per combination",
    "annual": "annual NPP, Rh and NEP cubes per combination",
    "growing_season": "growing-season NPP, Rh and NEP cubes per combination",
    "inputs": "the aligned input cubes (climate drivers, static layers)",
    "drivers": "annual and growing-season series of the climate inputs (ctx.drivers())",
    "zones": "labelled zones (study key zones:)",
    "landcover": "a land-cover input (inputs.landcover)",
    "area": "true pixel areas and the region mask",
    "experiments": "two or more experiments of the study (experiments:)",
}

#: the experiment name of a study without ``experiments:``
BASE_EXPERIMENT = "base"

#: the pseudo-combination under which the climate driver series are stored
DRIVERS = "drivers"

ANALYSES: dict[str, type["Analysis"]] = {}

#: modules of carbonsink.analysis that hold no analysis (not imported for discovery)
_NOT_ANALYSES = ("base",)
_loaded = False


class NoOptions(BaseModel):
    """An analysis without options."""

    model_config = ConfigDict(extra="forbid")


def tidy(df: pd.DataFrame, **fixed: Any) -> pd.DataFrame:
    """Return ``df`` in the long schema: :data:`TIDY_COLUMNS` (missing ones filled from ``fixed``,
    else empty), key columns (year, class, ...) after ``zone``, then variable, statistic,
    units, value."""
    df = df.copy()
    for k, v in fixed.items():
        df[k] = v
    for c in TIDY_COLUMNS:
        if c not in df.columns:
            df[c] = "" if c != "value" else float("nan")
    keys = [c for c in df.columns if c not in TIDY_COLUMNS]
    order = ["experiment", "combination", "zone", *keys, "variable", "statistic", "units",
             "value"]
    out = df[order].reset_index(drop=True)
    out["value"] = out["value"].astype("float64")
    return out


@dataclass
class CubeProduct:
    """A dataset an analysis returns: written as ``cubes/[<experiment>/][<combination>/]<name>``;
    the variables in ``maps`` are also written as Cloud-Optimized GeoTIFF
    ``maps/[<experiment>/][<combination>/]<name>_<variable>.tif``."""

    name: str
    data: xr.Dataset
    combination: str | None = None
    experiment: str | None = None
    maps: tuple[str, ...] = ()
    map_prefix: str | None = None  # file-name prefix of the maps (default "<name>_")


@dataclass
class AnalysisResult:
    """What :meth:`Analysis.run` returns: tidy tables, datasets, figures and report sections."""

    tables: dict[str, pd.DataFrame] = field(default_factory=dict)
    datasets: list[CubeProduct] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)  # name -> matplotlib Figure
    sections: list[Section] = field(default_factory=list)

    def add_table(self, name: str, df: pd.DataFrame) -> pd.DataFrame:
        missing = [c for c in TIDY_COLUMNS if c not in df.columns]
        if missing:
            raise InvalidArgumentError(
                f"result table '{name}' lacks the columns {missing} of the long schema "
                f"{list(TIDY_COLUMNS)}; build it with carbonsink.analysis.tidy()")
        if name in self.tables:
            self.tables[name] = pd.concat([self.tables[name], df], ignore_index=True)
        else:
            self.tables[name] = df
        return self.tables[name]

    def add_dataset(self, name: str, data: xr.Dataset, *, combination: str | None = None,
                    experiment: str | None = None, maps: Iterable[str] = (),
                    map_prefix: str | None = None) -> None:
        self.datasets.append(CubeProduct(name, data, combination, experiment, tuple(maps),
                                         map_prefix))

    def add_figure(self, name: str, figure: Any) -> None:
        self.figures[name] = figure

    def section(self, analysis: "Analysis | None" = None, *, title: str | None = None,
                id: str | None = None, template: str | None = None) -> Section:
        """A new section appended to the result (defaults from ``analysis``)."""
        name = analysis.name if analysis is not None else (id or "section")
        sec = Section(id=id or name, title=title or (analysis.title if analysis else name),
                      template=template or (analysis.template if analysis else "generic"),
                      analysis=analysis.name if analysis is not None else None)
        self.sections.append(sec)
        return sec


class AnalysisContext:
    """What an analysis may read. Subclasses: :class:`MemoryContext` (in-memory data) and the
    pipeline's context (the results folder, lazily)."""

    combinations: list[str]
    experiments: list[str]
    zone: str = "study area"
    synthetic: bool = False
    growing_season_months: tuple[int, ...] = (5, 6, 7, 8, 9)
    study: Any = None
    base_dir: Path = Path(".")

    def echo(self, msg: str) -> None:  # progress messages
        pass

    def runs(self) -> list[tuple[str, str]]:
        """Every (experiment, combination) pair, in order."""
        return [(e, c) for e in self.experiments for c in self.combinations]

    def cube(self, product: str, combination: str, experiment: str | None = None
             ) -> xr.Dataset | None:
        """The ``product`` cube (monthly | annual | growing_season) of a run, or None.
        Interface method: MemoryContext and the pipeline's context implement it."""
        raise NotImplementedError(f"{type(self).__name__} does not implement cube()")

    def variable_runs(self, product: str, variable: str, who: str):
        """Yield ``(experiment, combination, DataArray)`` of ``variable`` in the ``product``
        cube of every run that has one; a cube without the variable is an InputError naming
        the analysis ``who``."""
        for exp, combo in self.runs():
            ds = self.cube(product, combo, exp)
            if ds is None:
                continue
            if variable not in ds:
                raise InputError(f"{who}: the {product} cube of '{combo}' has no variable "
                                 f"'{variable}' (found {list(ds.data_vars)})")
            yield exp, combo, ds[variable]

    def inputs(self, experiment: str | None = None) -> dict[str, xr.DataArray]:
        """The aligned inputs (role -> DataArray, with ``area``). Interface method."""
        raise NotImplementedError(f"{type(self).__name__} does not implement inputs()")

    def store(self, product: CubeProduct) -> xr.Dataset:
        """Write ``product`` now and return it re-opened lazily (so that tables derived from
        it do not recompute it). In memory: the dataset itself, computed."""
        return product.data.compute()

    def store_many(self, products: list[CubeProduct]) -> list[xr.Dataset]:
        """:meth:`store` for several products computed in one pass (inputs they share are
        read once, every thread busy). In memory: the datasets, computed together; a
        context that overrides only :meth:`store` has it called for each product."""
        import dask

        if type(self).store is not AnalysisContext.store:
            return [self.store(p) for p in products]

        (done,) = dask.compute([p.data for p in products])
        return list(done)

    @property
    def area(self) -> xr.DataArray:
        return self.inputs()["area"]

    def zones(self) -> xr.DataArray | None:
        """Labelled zones (y, x; int, 0 = none; names in attr ``zone_names``) or None."""
        return self.inputs().get("zones")

    def zone_fractions(self) -> xr.DataArray | None:
        """Shares (zone, y, x) of each cell inside each zone when the study asks for
        fractional zones, else None; :func:`carbonsink.regions.summarise` takes either."""
        return self.inputs().get("zone_fractions")

    def drivers(self, product: str = "annual", experiment: str | None = None
                ) -> xr.Dataset | None:
        """Annual (``product="annual"``) or growing-season (``"growing_season"``) series of the
        climate inputs, on the years and mask of the flux cubes, or None."""
        return self.cube(product, DRIVERS, experiment)

    def table(self, name: str) -> pd.DataFrame | None:
        """A table written by an analysis that ran before (see ``after``), or None."""
        return None

    def resolve(self, path: str | Path) -> Path:
        p = Path(path).expanduser()
        return p if p.is_absolute() else self.base_dir / p


class MemoryContext(AnalysisContext):
    """An analysis context over in-memory (or lazy) xarray objects.

    ``cubes`` maps ``(product, combination)`` or ``(product, combination, experiment)`` to a
    Dataset (``product`` = monthly | annual | growing_season); ``inputs`` maps role → DataArray
    and must hold ``area`` (e.g. from :func:`carbonsink.cube.pixel_area`).
    """

    def __init__(self, cubes: Mapping[tuple, xr.Dataset], inputs: Mapping[str, xr.DataArray],
                 *, tables: Mapping[str, pd.DataFrame] | None = None, zone: str = "study area",
                 synthetic: bool = False, growing_season_months=(5, 6, 7, 8, 9),
                 base_dir: str | Path = ".", echo: Callable[[str], None] | None = None,
                 zones: xr.DataArray | None = None):
        self._cubes: dict[tuple, xr.Dataset] = {}
        for key, ds in cubes.items():
            product, combo, *rest = key
            self._cubes[(product, combo, rest[0] if rest else BASE_EXPERIMENT)] = ds
        self._inputs = dict(inputs)
        if zones is not None:
            self._inputs["zones"] = zones
        if "area" not in self._inputs:
            raise InputError("MemoryContext: inputs must contain 'area' (pixel areas, e.g. "
                             "carbonsink.cube.pixel_area(cube))")
        self._tables = dict(tables or {})
        self.combinations = list(dict.fromkeys(k[1] for k in self._cubes if k[1] != DRIVERS))
        self.experiments = list(dict.fromkeys(k[2] for k in self._cubes)) or [BASE_EXPERIMENT]
        self.zone = zone
        self.synthetic = synthetic
        self.growing_season_months = tuple(growing_season_months)
        self.base_dir = Path(base_dir)
        self._echo = echo

    def echo(self, msg: str) -> None:
        if self._echo is not None:
            self._echo(msg)

    def cube(self, product, combination, experiment=None):
        return self._cubes.get((product, combination, experiment or self.experiments[0]))

    def inputs(self, experiment=None):
        return dict(self._inputs)

    def table(self, name):
        return self._tables.get(name)


class Analysis:
    """Base class of the analyses (subclass it and decorate with :func:`register_analysis`).

    Class attributes: ``name`` (key under ``analyses:``), ``title``, ``description``,
    ``requires`` (keys of :data:`REQUIREMENTS`), ``after`` (analyses whose tables it reads;
    they run first), ``Options`` (a pydantic model; ``extra="forbid"`` recommended),
    ``template`` (the report partial, default ``generic``), ``template_dir`` (a folder with
    ``sections/<template>.html.j2`` when the partial is not one of the package's),
    ``default`` (run when a study lists no analyses), ``order`` (position in listings and
    in the default study; built-ins use 10–90), ``draws_maps`` (the analysis draws per-pixel
    map figures: the pipeline runs it before the analyses that do not, see
    :func:`carbonsink.pipeline.steps.build_steps`).
    """

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    description: ClassVar[str] = ""
    requires: ClassVar[tuple[str, ...]] = ("annual",)
    after: ClassVar[tuple[str, ...]] = ()
    Options: ClassVar[type[BaseModel]] = NoOptions
    template: ClassVar[str] = "generic"
    template_dir: ClassVar[str | Path | None] = None
    default: ClassVar[bool] = False
    order: ClassVar[int] = 100  # position among the analyses (listing, default study order)
    #: draws per-pixel maps (about a second of the figure process each): run early, so the
    #: figure process saves them while the analyses without maps compute
    draws_maps: ClassVar[bool] = False

    def run(self, ctx: AnalysisContext, options: BaseModel) -> AnalysisResult:
        """Compute the analysis; every registered analysis overrides it."""
        raise NotImplementedError(f"analysis '{self.name}' does not implement run()")

    def check(self, study: Any, options: BaseModel) -> list[str]:
        """Extra checks for ``carbonsink check`` (files the options name, ...): return
        messages, raise :class:`~carbonsink.errors.InputError` on a problem. Default: none."""
        return []

    def files(self, study: Any, options: BaseModel) -> list[Path]:
        """Files the analysis reads besides the study's products (for rerun keys)."""
        return []


def register_analysis(cls: type[Analysis]) -> type[Analysis]:
    """Class decorator: register ``cls`` under ``cls.name`` (replacing an earlier one)."""
    if not (isinstance(cls, type) and issubclass(cls, Analysis)):
        raise InvalidArgumentError("register_analysis decorates subclasses of "
                                   "carbonsink.analysis.Analysis")
    if not cls.name or not cls.name.replace("_", "").isalnum() or cls.name[0].isdigit():
        raise InvalidArgumentError(f"analysis name {cls.name!r} must be a non-empty identifier "
                                   "(letters, digits, underscores)")
    bad = sorted(set(cls.requires) - set(REQUIREMENTS))
    if bad:
        raise InvalidArgumentError(f"analysis '{cls.name}': unknown requirement(s) {bad}; "
                                   f"valid: {', '.join(REQUIREMENTS)}")
    if not cls.title:
        cls.title = cls.name.replace("_", " ")
    ANALYSES[cls.name] = cls
    return cls


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    import pkgutil

    from .. import analysis as _pkg

    # every module of carbonsink.analysis registers its analyses on import: adding a module
    # is all it takes to add an analysis
    for mod in sorted(pkgutil.iter_modules(_pkg.__path__), key=lambda m: m.name):
        if not mod.name.startswith("_") and mod.name not in _NOT_ANALYSES:
            importlib.import_module(f"carbonsink.analysis.{mod.name}")
    try:  # third-party analyses: entry points of group "carbonsink.analyses"
        from importlib.metadata import entry_points

        for ep in entry_points(group="carbonsink.analyses"):
            ep.load()
    except Exception:  # pragma: no cover - a broken plug-in must not break the built-ins
        pass


def analysis_names() -> list[str]:
    """Names of every registered analysis."""
    _load_builtins()
    return sorted(ANALYSES, key=lambda n: (ANALYSES[n].order, n))


def get_analysis(name: str) -> Analysis:
    """An instance of the analysis registered as ``name`` (UnknownAnalysisError lists the
    valid names)."""
    _load_builtins()
    if name not in ANALYSES:
        raise UnknownAnalysisError("analysis", str(name), ANALYSES)
    return ANALYSES[name]()


def validate_options(name: str, options: Mapping[str, Any] | BaseModel | None) -> BaseModel:
    """Validate ``options`` against the analysis's ``Options`` model.

    Raises :class:`~carbonsink.errors.InvalidArgumentError` naming the option, what was
    found and the allowed keys/values.
    """
    an = get_analysis(name)
    if isinstance(options, an.Options):
        return options
    try:
        return an.Options.model_validate(dict(options or {}))
    except ValidationError as exc:
        allowed = ", ".join(an.Options.model_fields) or "(none)"
        lines = []
        for err in exc.errors():
            loc = ".".join(str(p) for p in err["loc"]) or "(options)"
            if err["type"] == "extra_forbidden":
                lines.append(f"{loc}: unknown option; allowed options: {allowed}")
            else:
                lines.append(f"{loc}: {err['msg']}")
        raise InvalidArgumentError(f"analysis '{name}': " + "; ".join(lines)) from None


def run_analysis(name: str, ctx: AnalysisContext, **options: Any) -> AnalysisResult:
    """Run the registered analysis ``name`` on ``ctx`` with keyword ``options``."""
    an = get_analysis(name)
    return an.run(ctx, validate_options(name, options))


def describe_analyses() -> list[dict[str, Any]]:
    """Name, title, requirements and options (with defaults) of every analysis."""
    out = []
    for name in analysis_names():
        cls = ANALYSES[name]
        opts = {}
        for k, f in cls.Options.model_fields.items():
            default = None if f.is_required() else f.get_default(call_default_factory=True)
            ann = f.annotation.__name__ if isinstance(f.annotation, type) else str(f.annotation)
            opts[k] = {"type": ann.replace("typing.", ""), "default": default,
                       "required": f.is_required(), "description": f.description or ""}
        out.append({"name": name, "title": cls.title, "description": cls.description,
                    "requires": list(cls.requires), "after": list(cls.after),
                    "default": cls.default, "options": opts})
    return out
