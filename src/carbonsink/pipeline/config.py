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
}

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
    growing_season_months: list[int] = Field(default_factory=lambda: [5, 6, 7, 8, 9])

    @field_validator("growing_season_months")
    @classmethod
    def _months(cls, v: list[int]) -> list[int]:
        if not v or any(m < 1 or m > 12 for m in v):
            raise ValueError("growing_season_months must be month numbers 1..12")
        return v


class DaskConfig(_Strict):
    scheduler: str | None = Field(None, description="dask.distributed scheduler address")
    chunks: dict[str, int] = Field(default_factory=lambda: {"y": 256, "x": 256})


class StudyConfig(_Strict):
    name: str
    description: str = ""
    synthetic: bool = False
    period: PeriodConfig
    grid: GridConfig
    region: RegionConfig | None = None
    inputs: dict[str, InputConfig]
    models: ModelsConfig = Field(default_factory=ModelsConfig)
    experiments: dict[str, ExperimentConfig] | None = None
    analyses: dict[str, dict[str, Any] | None] | None = Field(
        None, description="analysis name -> options (a plain list of names is accepted); "
                          "default: the default analyses whose inputs exist")
    outputs: OutputsConfig = Field(default_factory=OutputsConfig)
    dask: DaskConfig = Field(default_factory=DaskConfig)

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
    """Validate a study mapping (as read from YAML)."""
    if not isinstance(data, dict):
        raise ConfigError(f"invalid study file {source}: the top level must be a mapping of keys "
                          "(name, period, grid, inputs, ...)")
    try:
        cfg = StudyConfig(**data, base_dir=Path(base_dir), sha256=sha256)
    except ValidationError as exc:
        raise ConfigError(_format_errors(exc, source)) from None
    return cfg


def load_study(path: str | Path) -> StudyConfig:
    """Read and validate a YAML study file. Paths inside are relative to its folder."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"study file not found: {path}")
    raw = path.read_bytes()
    try:
        data = yaml.safe_load(raw)
    except yaml.YAMLError as exc:
        raise ConfigError(f"study file {path} is not valid YAML: {exc}") from None
    return parse_study(data, base_dir=path.resolve().parent, source=str(path),
                       sha256=hashlib.sha256(raw).hexdigest())
