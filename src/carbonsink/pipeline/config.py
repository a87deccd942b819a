"""The YAML study file: schema, loading and validation.

A study names its inputs (files, variables, units), the region, the period,
the target grid, the models, the analyses and the outputs. Validation errors
are :class:`~carbonsink.errors.ConfigError` messages that name the offending
key and, where the set is closed, the allowed values.

Example::

    name: inner-mongolia
    period: {start: 2001-01, end: 2021-12}
    grid: {crs: "EPSG:4326", resolution: 0.05, bounds: [110, 41, 117.5, 48.5]}
    region: {path: provinces.geojson, attribute: name, values: ["Nei Mongol"]}
    inputs:
      tas: {path: climate.nc, variable: tas, units: degC}
      ndvi: {path: "ndvi/NDVI_*.tif", date_pattern: "NDVI_(?P<year>\\d{4})(?P<month>\\d{2})",
             units: "0.0001"}
    models: {combinations: all}
    outputs: {formats: [zarr, cog, csv]}
"""

from __future__ import annotations

import hashlib
import re
from datetime import date
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..errors import ConfigError

__all__ = [
    "StudyConfig",
    "ExperimentConfig",
    "ZonesConfig",
    "DRIVER_ROLES",
    "InputConfig",
    "GridConfig",
    "RegionConfig",
    "ModelsConfig",
    "OutputsConfig",
    "DaskConfig",
    "load_study",
    "parse_study",
    "INPUT_ROLES",
]

#: input role -> (canonical variable, expected time step)
INPUT_ROLES: dict[str, tuple[str, str]] = {
    "tas": ("tas", "month"),
    "pr": ("pr", "month"),
    "sol": ("sol", "month"),
    "pet": ("pet", "month"),
    "eet": ("eet", "month"),
    "ndvi": ("ndvi", "month"),
    "soc": ("soc", "static"),
    "landcover": ("landcover", "year"),
    "npp_annual": ("npp", "year"),
    "gpp_8day": ("gpp", "8day"),
    "npp": ("npp", "month"),
    "rh": ("rh", "month"),
    "nep": ("nep", "month"),
    "hurs": ("hurs", "month"),
    "sund": ("sund", "month"),
}

#: monthly climate inputs summarised as annual and growing-season driver series
DRIVER_ROLES = ("tas", "pr", "sol", "pet", "eet", "hurs", "sund")

#: roles an experiment may hold constant or swap (anything with a time axis)
HOLD_METHODS = ("climatology", "scalar_mean")
_NAME_RE = r"^[A-Za-z][A-Za-z0-9_-]*$"

OUTPUT_FORMATS = ("zarr", "netcdf", "cog", "csv", "parquet")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InputConfig(_Strict):
    """One input file (or a glob of one-file-per-time-step GeoTIFFs)."""

    path: str
    variable: str | None = Field(None, description="variable name inside the file")
    units: str | None = Field(None, description="units of the stored values; overrides the file")
    date_pattern: str | None = Field(
        None, description="regex with named groups year, month, day or doy for file-name dates")
    band_dates: list[str] | None = None
    frequency: Literal["month", "year", "8day", "static"] | None = None
    crs: str | None = Field(None, description="CRS when the file has none (e.g. EPSG:4326)")
    resampling: Literal["average", "mode", "nearest", "bilinear"] | None = None
    product: str | None = None
    scheme: Literal["igbp", "mcd12c1", "clcd"] | None = Field(
        None, description="land-cover legend (landcover input only); default igbp")

    @field_validator("date_pattern")
    @classmethod
    def _valid_regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                rx = re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from None
            if "year" not in rx.groupindex:
                raise ValueError("date_pattern needs a named group 'year', e.g. "
                                 "'NDVI_(?P<year>\\d{4})(?P<month>\\d{2})'")
        return v


class GridConfig(_Strict):
    """Target grid: ``crs`` + ``resolution`` + ``bounds``, a ``template`` raster, or ``like``."""

    crs: str | None = None
    resolution: float | tuple[float, float] | None = None
    bounds: tuple[float, float, float, float] | None = None
    template: str | None = None
    like: str | None = Field(None, description="use the grid of this input")

    @model_validator(mode="after")
    def _one_way(self):
        explicit = [self.crs, self.resolution, self.bounds]
        ways = sum([all(v is not None for v in explicit), self.template is not None,
                    self.like is not None])
        if ways != 1:
            raise ValueError("give exactly one of: crs + resolution + bounds, template, like")
        if self.bounds is not None and not (self.bounds[0] < self.bounds[2]
                                            and self.bounds[1] < self.bounds[3]):
            raise ValueError("bounds must be [xmin, ymin, xmax, ymax] with xmin < xmax, "
                             "ymin < ymax")
        return self


class RegionConfig(_Strict):
    path: str
    attribute: str | None = None
    values: list[str] | None = None
    min_coverage: float = Field(0.95, ge=0.0, le=1.0, description=(
        "least share of the region's area every input must cover with valid data; check and "
        "run fail below it"))
    fractional: bool = Field(False, description=(
        "border cells count with the share of their area inside the region (totals along "
        "borders); default: a cell is in the region when its centre is"))
    oversample: int = Field(5, ge=1, le=20, description="sub-cells per side for fractional")

    @field_validator("values", mode="before")
    @classmethod
    def _listify(cls, v: Any):
        return [v] if isinstance(v, str) else v


class ZonesConfig(_Strict):
    """Labelled zones (provinces, ecological subzones ...) from a polygon layer: every table
    gains one block per zone."""

    path: str
    attribute: str = Field(..., description="attribute holding the zone names")
    values: list[str] | None = Field(None, description="keep only these zones")
    label: str = Field("zone", description="what a zone is, e.g. province")
    all_touched: bool = False
    fractional: bool = Field(False, description=(
        "zone totals count border cells with the share of their area inside each zone"))
    oversample: int = Field(5, ge=1, le=20)

    @field_validator("values", mode="before")
    @classmethod
    def _listify(cls, v: Any):
        return [v] if isinstance(v, str) else v


class PeriodConfig(_Strict):
    start: str
    end: str

    @field_validator("start", "end", mode="before")
    @classmethod
    def _as_month(cls, v: Any) -> str:
        if isinstance(v, date):
            return f"{v.year:04d}-{v.month:02d}"
        if isinstance(v, int):
            return f"{v:04d}"
        s = str(v)
        if not re.fullmatch(r"\d{4}(-\d{2})?(-\d{2})?", s):
            raise ValueError(f"'{s}' is not a date; use YYYY, YYYY-MM or YYYY-MM-DD")
        return s

    @model_validator(mode="after")
    def _ordered(self):
        if self.start_month > self.end_month:
            raise ValueError(f"start {self.start} is after end {self.end}")
        return self

    @property
    def start_month(self) -> str:
        return self.start[:7] if len(self.start) >= 7 else f"{self.start}-01"

    @property
    def end_month(self) -> str:
        return self.end[:7] if len(self.end) >= 7 else f"{self.end}-12"

    @property
    def years(self) -> tuple[int, int]:
        return int(self.start[:4]), int(self.end[:4])


def _listify(v: Any) -> Any:
    return [v] if isinstance(v, str) else v


class ModelsConfig(_Strict):
    """Which models run: ``combinations`` (``all`` = the six of seed 000, or a list of
    ``"<npp>+<rh>"`` / ``"nep_<model>"`` names), or the models of each kind (``npp``, ``rh``,
    ``nep``; every NPP model is combined with every Rh model, each NEP model stands alone)."""

    combinations: Literal["all"] | list[str] | None = None
    npp: list[str] | None = None
    rh: list[str] | None = None
    nep: list[str] | None = None
    options: dict[str, dict[str, Any]] = Field(default_factory=dict)
    mask_classes: list[str] = Field(default_factory=lambda: ["water", "snow_ice"])

    @field_validator("npp", "rh", "nep", mode="before")
    @classmethod
    def _as_list(cls, v: Any) -> Any:
        return _listify(v)

    @model_validator(mode="after")
    def _one_way(self):
        kinds = [self.npp, self.rh, self.nep]
        if self.combinations is not None and any(k is not None for k in kinds):
            raise ValueError("give either combinations or the models of each kind "
                             "(npp, rh, nep), not both")
        if (self.npp is None) != (self.rh is None):
            raise ValueError("npp and rh models come in pairs: give both models.npp and "
                             "models.rh (or models.nep alone for a given NEP product)")
        return self

    def combination_names(self) -> list[str] | Literal["all"]:
        if self.combinations is not None:
            return self.combinations
        if self.npp is None and self.nep is None:
            return "all"
        names = [f"{n}+{r}" for n in (self.npp or []) for r in (self.rh or [])]
        names += [f"nep_{n}" for n in (self.nep or [])]
        return names


class ExperimentConfig(_Strict):
    """A named variant of the study: hold drivers constant and/or swap inputs."""

    description: str = ""
    hold: dict[str, Literal["climatology", "scalar_mean"]] = Field(
        default_factory=dict, description="input role -> climatology | scalar_mean")
    hold_period: PeriodConfig | None = Field(
        None, description="period of the climatology/mean (default: the study period)")
    inputs: dict[str, InputConfig] = Field(
        default_factory=dict, description="inputs replaced in this experiment")


class OutputsConfig(_Strict):
    dir: str = "results"
    formats: list[Literal["zarr", "netcdf", "cog", "csv", "parquet"]] = Field(
        default_factory=lambda: ["zarr", "cog", "csv", "parquet"])
    figures: bool = True
    figure_formats: list[Literal["png", "svg", "pdf"]] = Field(
        default_factory=lambda: ["png", "svg"],
        description="formats of every figure (PNG at 200 dpi for the report; SVG/PDF vector)")
    growing_season_months: list[int] = Field(default_factory=lambda: [5, 6, 7, 8, 9])
    monthly: Literal["none", "models", "all"] = Field(
        "none", description="monthly cubes kept: none (the default; an analysis that needs "
                            "months runs the models again from the aligned inputs, lazily); "
                            "models (NPP per NPP model, Rh per Rh model; monthly NEP is "
                            "derived from them on demand; a rerun with a changed option reads "
                            "the unchanged models back); all (also NPP, Rh and NEP per "
                            "combination)")

    @field_validator("growing_season_months")
    @classmethod
    def _months(cls, v: list[int]) -> list[int]:
        if not v or any(m < 1 or m > 12 for m in v):
            raise ValueError("growing_season_months must be month numbers 1..12")
        return v


class DaskConfig(_Strict):
    scheduler: str | None = Field(None, description="dask.distributed scheduler address")
    chunks: dict[str, int] = Field(
        default_factory=lambda: {"y": 200, "x": 200},
        description="largest spatial tile [cells]; every cube is stored with the whole time "
                    "axis in one chunk and space in balanced tiles of at most this size; peak "
                    "memory grows with the tile, not with the region (README, Memory)")


class ChecksConfig(_Strict):
    """How ``check`` and ``run`` treat implausible input values (carbonsink.plausibility)."""

    plausibility: Literal["raise", "warn", "off"] = Field(
        "raise", description="raise: stop with an error; warn: report and go on; off: skip")
    plausibility_sample: int = Field(
        200_000, ge=1000, description="largest number of values read per input for the checks")


class StudyConfig(_Strict):
    name: str
    description: str = ""
    synthetic: bool = False
    period: PeriodConfig
    grid: GridConfig
    region: RegionConfig | None = None
    zones: ZonesConfig | None = None
    inputs: dict[str, InputConfig]
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    experiments: dict[str, ExperimentConfig] | None = None
    analyses: dict[str, dict[str, Any] | None] | None = Field(
        None, description="analysis name -> options (a plain list of names is accepted); "
                          "default: the default analyses whose inputs exist")
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    dask: DaskConfig = Field(default_factory=DaskConfig)
    checks: ChecksConfig = Field(default_factory=ChecksConfig)

    # set by load_study, not by the user
    base_dir: Path = Field(default=Path("."), exclude=True)
    sha256: str = Field(default="", exclude=True)

    @field_validator("analyses", mode="before")
    @classmethod
    def _analyses_mapping(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if isinstance(v, list):
            out: dict[str, Any] = {}
            for item in v:
                if isinstance(item, dict) and len(item) == 1:
                    out.update(item)
                elif isinstance(item, str):
                    out[item] = {}
                else:
                    raise ValueError("list items must be analysis names or {name: options}")
            return out
        return v

    @field_validator("analyses")
    @classmethod
    def _known_analyses(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return None
        from ..analysis.base import analysis_names, validate_options
        from ..errors import InvalidArgumentError

        valid = analysis_names()
        unknown = [k for k in v if k not in valid]
        if unknown:
            raise ValueError(f"unknown analysis {unknown}; valid analyses: {', '.join(valid)}")
        out = {}
        for name, opts in v.items():
            try:
                out[name] = validate_options(name, opts or {}).model_dump(mode="json")
            except InvalidArgumentError as exc:
                raise ValueError(str(exc)) from None
        return out

    @field_validator("experiments")
    @classmethod
    def _experiment_names(cls, v: dict[str, Any] | None) -> dict[str, Any] | None:
        if v is None:
            return None
        if not v:
            raise ValueError("experiments is empty; remove it or name at least one experiment")
        for name in v:
            if not re.match(_NAME_RE, name) or name in ("inputs", "models"):
                raise ValueError(f"experiment name '{name}' must start with a letter and hold "
                                 "only letters, digits, '_' and '-' (and not be 'inputs' or "
                                 "'models')")
        return v

    @model_validator(mode="after")
    def _experiment_roles(self):
        for name, exp in (self.experiments or {}).items():
            for role in exp.hold:
                if role not in self.inputs and role not in exp.inputs:
                    raise ValueError(f"experiments.{name}.hold: '{role}' is not an input of the "
                                     f"study (inputs: {', '.join(self.inputs)})")
                freq = (exp.inputs.get(role) or self.inputs[role]).frequency or \
                    INPUT_ROLES.get(role, ("", "month"))[1]
                if freq != "month":
                    raise ValueError(f"experiments.{name}.hold.{role}: only monthly inputs can be "
                                     f"held at a climatology (this one is '{freq}')")
            unknown = sorted(set(exp.inputs) - set(INPUT_ROLES))
            if unknown:
                raise ValueError(f"experiments.{name}.inputs: unknown input role(s) {unknown}; "
                                 f"allowed roles: {', '.join(INPUT_ROLES)}")
        return self

    @property
    def experiment_names(self) -> list[str]:
        from ..analysis.base import BASE_EXPERIMENT

        return list(self.experiments) if self.experiments else [BASE_EXPERIMENT]

    @field_validator("inputs")
    @classmethod
    def _known_roles(cls, v: dict[str, InputConfig]) -> dict[str, InputConfig]:
        unknown = sorted(set(v) - set(INPUT_ROLES))
        if unknown:
            raise ValueError(f"unknown input role(s) {unknown}; allowed roles: "
                             f"{', '.join(INPUT_ROLES)}")
        return v

    @model_validator(mode="after")
    def _scheme_only_for_landcover(self):
        for role, inp in self.inputs.items():
            if inp.scheme is not None and role != "landcover":
                raise ValueError(f"inputs.{role}.scheme: a legend applies to the landcover "
                                 "input only")
        return self

    @property
    def landcover_scheme(self) -> str:
        lc = self.inputs.get("landcover")
        return (lc.scheme if lc is not None and lc.scheme else "igbp")

    @model_validator(mode="after")
    def _grid_like_exists(self):
        if self.grid.like is not None and self.grid.like not in self.inputs:
            raise ValueError(f"grid.like names input '{self.grid.like}', which is not among "
                             f"the inputs ({', '.join(self.inputs)})")
        return self

    def resolve(self, p: str) -> Path:
        path = Path(p).expanduser()
        return path if path.is_absolute() else (self.base_dir / path)


def _format_errors(exc: ValidationError, source: str) -> str:
    lines = [f"invalid study file {source}:"]
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
        msg = err["msg"]
        if err["type"] == "extra_forbidden":
            parent = _model_at(err["loc"][:-1])
            allowed = ", ".join(k for k in parent.model_fields
                                if k not in ("base_dir", "sha256")) if parent else ""
            msg = f"unknown key '{err['loc'][-1]}'" + (f"; allowed keys: {allowed}" if allowed
                                                       else "")
        elif err["type"] == "missing":
            msg = "required key is missing"
        lines.append(f"  - {loc}: {msg}")
    return "\n".join(lines)


def _model_at(loc: tuple) -> type[BaseModel] | None:
    model: type[BaseModel] | None = StudyConfig
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int) or part not in model.model_fields:
            if model is StudyConfig and loc and loc[0] == "inputs":
                model = InputConfig
                continue
            continue
        ann = model.model_fields[part].annotation
        candidates = [ann, *getattr(ann, "__args__", ())]
        model = next((c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)),
                     None)
    return model


def parse_study(data: dict, *, base_dir: Path | str = ".", source: str = "<dict>",
                sha256: str = "") -> StudyConfig:
    """Validate a study mapping (as read from YAML).

    Keys the study may not set (``base_dir``, ``sha256``: filled in by carbonsink) and
    non-text keys are refused with a :class:`ConfigError`; every message is truncated to a
    readable length (:data:`MAX_MESSAGE_CHARS`).
    """
    if not isinstance(data, dict):
        raise ConfigError(f"invalid study file {source}: the top level must be a mapping of keys "
                          "(name, period, grid, inputs, ...)")
    _check_top_level_keys(data, source)
    try:
        cfg = StudyConfig.model_validate({**data, "base_dir": Path(base_dir), "sha256": sha256})
    except ValidationError as exc:
        raise ConfigError(truncate_message(_format_errors(exc, source))) from None
    except (TypeError, RecursionError) as exc:  # pragma: no cover - pydantic reports these
        raise ConfigError(truncate_message(f"invalid study file {source}: {exc}")) from None
    return cfg


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a YAML study file. Paths inside are relative to its folder.

    The file is bounded: at most :data:`MAX_STUDY_BYTES` bytes, and at most
    :data:`MAX_STUDY_NODES` values once YAML aliases (``*name``) are expanded, so a small
    file that references an anchor over and over ("billion laughs") is refused before it is
    built; recursive aliases and very deep nesting are refused too.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}" + (
            " (it is a folder; give the YAML file inside it)" if path.is_dir() else ""))
    try:
        size = path.stat().st_size
        if size > MAX_STUDY_BYTES:
            raise ConfigError(f"study file {path} is {size} bytes; a study file holds at most "
                              f"{MAX_STUDY_BYTES} bytes. Fix: list the input files with a glob "
                              "pattern instead of one by one")
        raw = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read the study file {path}: {exc.strerror or exc}. Fix: "
                          "check that the file exists and is readable") from None
    data = bounded_yaml_load(raw, str(path))
    return parse_study(data, base_dir=path.resolve().parent, source=str(path),
                       sha256=hashlib.sha256(raw).hexdigest())


# --------------------------------------------------------------------------- bounded YAML

#: largest study file read [bytes]
MAX_STUDY_BYTES = 1 << 20
#: most values (mapping keys, values and list items, counted after alias expansion)
MAX_STUDY_NODES = 20_000
#: deepest nesting of mappings and lists
MAX_STUDY_DEPTH = 64
#: longest error message about a study file [characters]; longer ones are cut
MAX_MESSAGE_CHARS = 2000
#: longest line of such a message [characters]
MAX_LINE_CHARS = 300
#: keys carbonsink fills in itself; a study file may not set them
RESERVED_KEYS = ("base_dir", "sha256")


def truncate_message(text: str, limit: int = MAX_MESSAGE_CHARS,
                     line_limit: int = MAX_LINE_CHARS) -> str:
    """``text`` with each line cut to ``line_limit`` and the whole to ``limit`` characters.

    A cut is marked with ``...`` and the number of characters or lines left out, so a
    message about a huge value stays readable.
    """
    lines = []
    for line in str(text).splitlines() or [""]:
        if len(line) > line_limit:
            line = f"{line[:line_limit]}... ({len(line) - line_limit} more characters)"
        lines.append(line)
    out: list[str] = []
    used = 0
    for i, line in enumerate(lines):
        if used + len(line) + 1 > limit:
            out.append(f"... ({len(lines) - i} more lines)")
            break
        out.append(line)
        used += len(line) + 1
    return "\n".join(out)


def _check_top_level_keys(data: dict, source: str) -> None:
    bad = [k for k in data if not isinstance(k, str)]
    allowed = ", ".join(k for k in StudyConfig.model_fields if k not in RESERVED_KEYS)
    if bad:
        raise ConfigError(truncate_message(
            f"invalid study file {source}:\n  - (top level): key {bad[0]!r} is not a name; "
            f"allowed keys: {allowed}"))
    reserved = [k for k in data if k in RESERVED_KEYS]
    if reserved:
        raise ConfigError(
            f"invalid study file {source}:\n  - {reserved[0]}: unknown key '{reserved[0]}' "
            f"(carbonsink sets it itself); allowed keys: {allowed}")


def _expanded_size(node: Any, source: str) -> int:
    """Number of YAML nodes of ``node`` once every alias is expanded (shared nodes counted at
    each use, memoised so that the count itself stays cheap); refuses cycles and deep
    nesting."""
    memo: dict[int, int] = {}
    active: set[int] = set()

    def size(n: Any, depth: int) -> int:
        key = id(n)
        if key in memo:
            return memo[key]
        if key in active:
            raise ConfigError(f"study file {source}: an alias (*name) refers to the mapping or "
                              "list that contains it; a study must be a finite tree. Fix: "
                              "remove the recursive alias")
        if depth > MAX_STUDY_DEPTH:
            raise ConfigError(f"study file {source}: nesting deeper than {MAX_STUDY_DEPTH} "
                              "levels; fix: flatten the study file")
        total = 1
        if isinstance(n, yaml.MappingNode):
            active.add(key)
            for k, v in n.value:
                total += size(k, depth + 1) + size(v, depth + 1)
                if total > MAX_STUDY_NODES:
                    break
            active.discard(key)
        elif isinstance(n, yaml.SequenceNode):
            active.add(key)
            for v in n.value:
                total += size(v, depth + 1)
                if total > MAX_STUDY_NODES:
                    break
            active.discard(key)
        memo[key] = total
        return total

    return size(node, 0)


def bounded_yaml_load(raw: bytes | str, source: str = "<string>") -> Any:
    """Parse one YAML document safely and within bounds.

    Like :func:`yaml.safe_load`, but the composed document is measured *before* Python
    objects are built: more than :data:`MAX_STUDY_NODES` values after alias expansion,
    recursive aliases or nesting deeper than :data:`MAX_STUDY_DEPTH` raise a
    :class:`ConfigError` instead of exhausting memory.
    """
    loader_cls = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    loader = loader_cls(raw)
    try:
        try:
            node = loader.get_single_node()
        except RecursionError:
            raise ConfigError(f"study file {source}: nesting too deep to read; fix: flatten "
                              "the study file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(truncate_message(f"study file {source} is not valid YAML: {exc}")) \
                from None
        if node is None:
            return None
        n = _expanded_size(node, source)
        if n > MAX_STUDY_NODES:
            raise ConfigError(f"study file {source} expands to more than {MAX_STUDY_NODES} "
                              "values (YAML aliases *name repeat what an anchor &name holds); "
                              "fix: write the values out instead of nesting aliases")
        try:
            return loader.construct_document(node)
        except RecursionError:
            raise ConfigError(f"study file {source}: nesting too deep to read; fix: flatten "
                              "the study file") from None
        except yaml.YAMLError as exc:
            raise ConfigError(truncate_message(f"study file {source} is not valid YAML: {exc}")) \
                from None
    finally:
        loader.dispose()
