"""The one registry of flux models (NPP, Rh, NEP) and their combinations — docs/methods.md §4.1.

A *model* is one function plus one registry entry declaring its kind
(``"npp"``, ``"rh"`` or ``"nep"``), the input roles it reads (canonical
names: ``tas``, ``pr``, ``sol``, ``ndvi``, ``soc``, ``landcover``,
``npp_annual``, ``gpp_8day``, ``pet``, ``eet``, ``npp``, ``rh``, ``nep``), the
outputs of other models it ``needs`` (a soil-pool Rh model needs NPP) and the
public model functions whose keyword arguments are its options::

    @register_model("rh", "century", inputs=("tas", "pr", "soc"), needs=("npp",),
                    functions=(century,), description="...")
    def _century(inputs, *, needs, **options):
        return xr.Dataset({"rh": century(inputs["tas"], ..., npp=needs["npp"], **options)})

Combinations (the units of :func:`carbonsink.flux.chain.run_chain`):

* ``"<npp model>+<rh model>"`` for every NPP model × every Rh model
  (``"modis+pei"``, ``"given+gsmsr_bl"`` ...);
* ``"nep_<nep model>"`` for every direct NEP model (``"nep_given"``).

This module imports nothing heavy: the built-in models (``flux.combinations``,
``flux.given``) are imported on the first look-up, and no kernel is compiled by
listing models or their options.
"""

from __future__ import annotations

import ast
import functools
import importlib
import inspect
import numbers
import textwrap
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgumentError, UnknownModelError

__all__ = ["KINDS", "Model", "Combination", "register_model", "unregister_model", "get_model",
           "model_names", "model_options", "validate_options", "missing_inputs",
           "get_combination", "combination_names", "describe_models", "RESERVED_OPTIONS",
           "ModelView", "NEP_PREFIX", "option_choices"]

#: model kinds, in dependency order of a combination
KINDS = ("npp", "rh", "nep")
_LABEL = {"npp": "NPP", "rh": "Rh", "nep": "NEP"}
#: prefix of the combination formed by a direct NEP model ("nep_given")
NEP_PREFIX = "nep_"
#: keyword arguments of model functions that are not user options (set by the model wrapper)
RESERVED_OPTIONS = frozenset({"time_dim", "time", "npp_time", "gpp_time"})


@dataclass(frozen=True)
class Model:
    """A registered model.

    ``func(inputs, *, needs, **options) -> xr.Dataset`` returns a Dataset with
    a variable named ``kind`` (plus extras such as ``rs``, ``rh_gt_rs``);
    ``inputs`` maps input roles to DataArrays, ``needs`` maps the kinds in
    :attr:`needs` to the DataArrays produced by the other models of the
    combination.  ``conditional_inputs(available, options) -> roles`` (optional)
    adds roles required only in some cases (CASA needs ``pr`` unless both
    ``eet`` and ``pet`` are given).
    """

    kind: str
    name: str
    func: Callable[..., Any]
    inputs: tuple[str, ...]
    optional_inputs: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()
    functions: tuple[Callable, ...] = ()
    description: str = ""
    conditional_inputs: Callable[[set, Mapping], Iterable[str]] | None = None

    @property
    def label(self) -> str:
        return f"{_LABEL.get(self.kind, self.kind)} model '{self.name}'"


@dataclass(frozen=True)
class Combination:
    """A named combination: ``npp`` + ``rh`` models, or one direct ``nep`` model."""

    name: str
    npp: Model | None = None
    rh: Model | None = None
    nep: Model | None = None

    @property
    def models(self) -> tuple[Model, ...]:
        return tuple(m for m in (self.npp, self.rh, self.nep) if m is not None)


# kind -> name -> Model (insertion order = registration order)
_REGISTRY: dict[str, dict[str, Model]] = {k: {} for k in KINDS}
_BUILTINS = ("carbonsink.flux.combinations", "carbonsink.flux.given", "carbonsink.flux.century")
_builtins_state = {"loaded": False}
_lock = threading.RLock()


def _ensure_builtins() -> None:
    """Import the modules that register the built-in models (once, on first look-up)."""
    if _builtins_state["loaded"]:
        return
    with _lock:
        if _builtins_state["loaded"]:
            return
        _builtins_state["loaded"] = True  # set first: the modules call back into the registry
        for mod in _BUILTINS:
            importlib.import_module(mod)


def _ordered(kind: str) -> list[str]:
    """Names of ``kind``: built-ins in the order of their modules in ``_BUILTINS`` (whatever
    module was imported first), then the others in registration order."""
    items = list(_REGISTRY[kind].items())

    def rank(pair):
        i, (_, m) = pair
        mod = getattr(m.func, "__module__", "")
        return (_BUILTINS.index(mod) if mod in _BUILTINS else len(_BUILTINS), i)

    return [name for _, (name, _) in sorted(enumerate(items), key=rank)]


def _check_kind(kind: str) -> str:
    if kind not in KINDS:
        raise InvalidArgumentError(f"model kind must be one of {', '.join(KINDS)}; got {kind!r}")
    return kind


def _check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "+" in name or "@" in name or \
            name != name.strip():
        raise InvalidArgumentError(f"invalid model name {name!r}: a non-empty string without "
                                   "'+', '@' or surrounding spaces")
    return name


def register_model(kind: str, name: str, *, inputs: Iterable[str],
                   optional_inputs: Iterable[str] = (), needs: Iterable[str] = (),
                   functions: Iterable[Callable] = (), description: str = "",
                   conditional_inputs: Callable[[set, Mapping], Iterable[str]] | None = None):
    """Decorator registering ``func(inputs, *, needs, **options) -> Dataset`` as model
    ``name`` of ``kind`` (``"npp"``, ``"rh"`` or ``"nep"``).

    ``inputs`` are the required input roles, ``optional_inputs`` roles read when
    present, ``needs`` the kinds of the other models whose output it uses
    (``("npp",)`` for an Rh model driven by NPP), ``functions`` the public model
    functions whose keyword arguments are the valid options.  Registering an
    existing (kind, name) replaces it.  Returns ``func`` unchanged.
    """
    _check_kind(kind)
    _check_name(name)
    needs = tuple(needs)
    for n in needs:
        if n not in ("npp", "rh") or n == kind:
            raise InvalidArgumentError(f"{_LABEL[kind]} model '{name}': needs={needs!r} is not "
                                       "valid; an NPP model may need 'rh', an Rh model 'npp'")
    if kind == "nep" and needs:
        raise InvalidArgumentError(f"NEP model '{name}' cannot need other models' outputs "
                                   "(a direct NEP model forms its own combination)")

    def deco(func):
        model = Model(kind, name, func, tuple(inputs), tuple(optional_inputs), needs,
                      tuple(functions), description, conditional_inputs)
        with _lock:
            _REGISTRY[kind][name] = model
        return func
    return deco


def unregister_model(kind: str, name: str) -> Model:
    """Remove and return model ``name`` of ``kind`` (UnknownModelError if absent)."""
    model = get_model(kind, name)
    with _lock:
        del _REGISTRY[kind][name]
    return model


def get_model(kind: str, name: str) -> Model:
    """The registered :class:`Model`; :class:`UnknownModelError` lists the valid names."""
    _check_kind(kind)
    _ensure_builtins()
    try:
        return _REGISTRY[kind][name]
    except (KeyError, TypeError):
        raise UnknownModelError(f"{_LABEL[kind]} model", str(name), _REGISTRY[kind]) from None


def model_names(kind: str) -> list[str]:
    """Names of the registered models of ``kind``, in registration order."""
    _check_kind(kind)
    _ensure_builtins()
    return _ordered(kind)


# --------------------------------------------------------------------------- options


def _option_params(model: Model) -> dict[str, Any] | None:
    """Accepted options -> default (None = any option accepted)."""
    out: dict[str, Any] = {}
    funcs = model.functions
    if not funcs:  # no declared model functions: the wrapper's own keyword parameters
        params = inspect.signature(model.func).parameters
        if any(p.kind == p.VAR_KEYWORD for p in params.values()):
            named = [p for n, p in params.items() if p.kind == p.KEYWORD_ONLY and n != "needs"]
            if not named:
                return None
        funcs = (model.func,)
    for f in funcs:
        for pname, p in inspect.signature(f).parameters.items():
            if pname in RESERVED_OPTIONS or pname in ("needs", "inputs") or \
                    pname in model.inputs or pname in model.optional_inputs:
                continue
            if p.kind == p.KEYWORD_ONLY or (p.kind == p.POSITIONAL_OR_KEYWORD and
                                            p.default is not p.empty):
                out.setdefault(pname, None if p.default is p.empty else p.default)
    return out


def model_options(kind: str, name: str) -> dict[str, Any]:
    """Accepted option names of a model and their defaults (from the function signatures).

    A model registered without ``functions`` whose wrapper takes ``**options``
    accepts any option: its dict is empty.
    """
    return dict(_option_params(get_model(kind, name)) or {})


def validate_options(kind: str, name: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Return ``options`` as a dict; an option the model does not accept raises
    :class:`InvalidArgumentError` naming the model and listing the valid options."""
    model = get_model(kind, name)
    options = dict(options or {})
    accepted = _option_params(model)
    if accepted is None:
        return options
    bad = sorted(k for k in options if k not in accepted)
    if bad:
        valid = ", ".join(sorted(accepted)) or "(none)"
        raise InvalidArgumentError(
            f"unknown option{'s' if len(bad) > 1 else ''} {', '.join(repr(b) for b in bad)} "
            f"for {model.label}; valid options: {valid}")
    _validate_values(model, options, accepted)
    return options


# --------------------------------------------------------------------------- option values


def _resolve_call(node: ast.Call, env: Mapping[str, Any]) -> Any:
    """The object a call node refers to (``f(...)`` or ``mod.f(...)``), or None."""
    func = node.func
    if isinstance(func, ast.Name):
        return env.get(func.id)
    if isinstance(func, ast.Attribute) and isinstance(func.value, ast.Name):
        return getattr(env.get(func.value.id), func.attr, None)
    return None


def _literal_strings(node: ast.AST) -> tuple[str, ...] | None:
    try:
        value = ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return None
    if isinstance(value, (tuple, list)) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _choice_calls(func: Callable, depth: int, seen: set) -> dict[str, tuple[str, ...]]:
    """``{option: accepted values}`` of every ``choice("option", value, (...))`` call in the
    body of ``func`` and of the carbonsink.flux functions it calls (``depth`` levels)."""
    from . import _util

    func = inspect.unwrap(func)
    if func in seen or not inspect.isfunction(func):
        return {}
    seen.add(func)
    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return {}
    env = func.__globals__
    out: dict[str, tuple[str, ...]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        target = _resolve_call(node, env)
        if target is _util.choice:
            if len(node.args) >= 3 and isinstance(node.args[0], ast.Constant) and \
                    isinstance(node.args[0].value, str):
                values = _literal_strings(node.args[2])
                if values is not None:
                    out.setdefault(node.args[0].value, values)
        elif depth > 0 and inspect.isfunction(target) and \
                getattr(target, "__module__", "").startswith("carbonsink.flux"):
            for k, v in _choice_calls(target, depth - 1, seen).items():
                out.setdefault(k, v)
    return out


def option_choices(kind: str, name: str) -> dict[str, tuple[str, ...]]:
    """Accepted values of the string options of a model, ``{option: (values, ...)}``.

    Read from the model functions' own validation (their
    ``carbonsink.flux._util.choice("option", value, (...))`` calls and those of the
    flux helpers they call, e.g. ``check_mode``), so the registry and the functions
    cannot disagree; nothing is computed.  Options validated otherwise are absent.
    """
    return dict(_model_choices(get_model(kind, name)))


@functools.lru_cache(maxsize=256)
def _model_choices(model: Model) -> dict[str, tuple[str, ...]]:
    """:func:`option_choices` of one registered model, read from its source once per process
    (parsing the functions' source takes ~50 ms a model and a study validates every model's
    options several times; a model registered again is a new :class:`Model`, hence a new
    entry). Callers get a copy."""
    accepted = _option_params(model) or {}
    out: dict[str, tuple[str, ...]] = {}
    for f in model.functions or (model.func,):
        for k, v in _choice_calls(f, 3, set()).items():
            if k in accepted:
                out.setdefault(k, v)
    return out


_SIMPLE_TYPES = {"float": "a number", "int": "an integer", "bool": "true or false",
                 "str": "a string"}


def _annotations(model: Model) -> dict[str, tuple[str, ...]]:
    """Option -> annotation tokens (``"float | None"`` -> ``("float", "None")``)."""
    out: dict[str, tuple[str, ...]] = {}
    for f in model.functions or (model.func,):
        try:
            params = inspect.signature(f).parameters
        except (TypeError, ValueError):
            continue
        for pname, p in params.items():
            ann = p.annotation
            if ann is p.empty:
                continue
            text = ann if isinstance(ann, str) else getattr(ann, "__name__", str(ann))
            out.setdefault(pname, tuple(t.strip() for t in text.split("|")))
    return out


def _type_ok(value: Any, tokens: tuple[str, ...]) -> bool:
    if value is None:
        return "None" in tokens
    for t in tokens:
        if t == "float" and isinstance(value, numbers.Real) and not isinstance(value, bool):
            return True
        if t == "int" and isinstance(value, numbers.Real) and not isinstance(value, bool) and \
                float(value).is_integer():
            return True
        if t == "bool" and isinstance(value, bool):
            return True
        if t == "str" and isinstance(value, str):
            return True
    return False


def _validate_values(model: Model, options: Mapping[str, Any],
                     accepted: Mapping[str, Any]) -> None:
    """Check option values against the choices of the model functions and the simple types
    (number, integer, bool, string) of their annotations, before anything is computed."""
    choices = option_choices(model.kind, model.name)
    types = _annotations(model)
    for key, value in options.items():
        default = accepted.get(key)
        if value is None and default is None:
            continue
        if key in choices and isinstance(value, str):
            if value not in choices[key]:
                raise InvalidArgumentError(
                    f"{key}={value!r} is not valid for {model.label}; choose one of: "
                    + ", ".join(repr(v) for v in choices[key]))
            continue
        tokens = types.get(key, ())
        simple = [t for t in tokens if t != "None"]
        if not simple or any(t not in _SIMPLE_TYPES for t in simple):
            continue  # Any, tuples, mappings ...: checked by the model function itself
        if not _type_ok(value, tokens):
            want = " or ".join(_SIMPLE_TYPES[t] for t in simple)
            extra = (f"; choose one of: {', '.join(repr(v) for v in choices[key])}"
                     if key in choices else "")
            raise InvalidArgumentError(f"{key}={value!r} is not valid for {model.label}: "
                                       f"expected {want}{extra}")


# --------------------------------------------------------------------------- combinations


def combination_names() -> list[str]:
    """Every valid combination: ``npp+rh`` for all NPP × Rh models, then ``nep_<X>``."""
    _ensure_builtins()
    pairs = [f"{n}+{r}" for n in _ordered("npp") for r in _ordered("rh")]
    return pairs + [f"{NEP_PREFIX}{x}" for x in _ordered("nep")]


def get_combination(name: str | Combination) -> Combination:
    """The :class:`Combination` called ``"npp+rh"`` or ``"nep_<X>"``.

    :class:`UnknownModelError` lists every valid name otherwise.
    """
    if isinstance(name, Combination):
        return name
    _ensure_builtins()
    if isinstance(name, str):
        if name.count("+") == 1:
            n, r = name.split("+")
            if n in _REGISTRY["npp"] and r in _REGISTRY["rh"]:
                return Combination(name, npp=_REGISTRY["npp"][n], rh=_REGISTRY["rh"][r])
        elif name.startswith(NEP_PREFIX) and name[len(NEP_PREFIX):] in _REGISTRY["nep"]:
            return Combination(name, nep=_REGISTRY["nep"][name[len(NEP_PREFIX):]])
    raise UnknownModelError("combination", str(name), combination_names())


def _required_roles(model: Model, available: set[str], options: Mapping[str, Any]) -> list[str]:
    roles = list(model.inputs)
    if model.conditional_inputs is not None:
        roles += [r for r in model.conditional_inputs(available, options) if r not in roles]
    return roles


def _flat_options(model: Model, options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Options of one model from a study-style mapping keyed by model name (no validation)."""
    options = options or {}
    out: dict[str, Any] = {}
    if "mode" in options and not isinstance(options["mode"], Mapping):
        out["mode"] = options["mode"]
    for key in (model.name, f"{model.kind}.{model.name}"):
        grp = options.get(key)
        if isinstance(grp, Mapping):
            out.update(grp)
    return out


def missing_inputs(combinations: Iterable[str | Combination] | str, available: Iterable[str],
                   options: Mapping[str, Any] | None = None) -> dict[str, list[str]]:
    """Input roles the combinations need that are not in ``available``.

    Returns ``{role: [combination names needing it]}`` (empty when nothing is
    missing).  Outputs of other models in the same combination (``needs``) are
    not inputs.  ``options`` are keyed by model name as for
    :func:`~carbonsink.flux.chain.run_chain` and reach conditional rules.
    """
    if isinstance(combinations, (str, Combination)):
        combinations = [combinations]
    available = set(available)
    need: dict[str, list[str]] = {}
    for c in combinations:
        combo = get_combination(c)
        for m in combo.models:
            for role in _required_roles(m, available, _flat_options(m, options)):
                if role not in available and combo.name not in need.setdefault(role, []):
                    need[role].append(combo.name)
    return {r: v for r, v in sorted(need.items()) if v}


def describe_models() -> list[dict[str, Any]]:
    """One dict per registered model (kind, name, inputs, optional_inputs, needs,
    options {name: default}, description), for listings such as ``carbonsink models``."""
    _ensure_builtins()
    out = []
    for kind in KINDS:
        for name, m in ((n, _REGISTRY[kind][n]) for n in _ordered(kind)):
            accepted = _option_params(m)
            out.append({"kind": kind, "name": name, "inputs": list(m.inputs),
                        "optional_inputs": list(m.optional_inputs), "needs": list(m.needs),
                        "options": dict(accepted) if accepted is not None else {},
                        "any_options": accepted is None, "description": m.description})
    return out


# --------------------------------------------------------------------------- legacy views


class ModelView(MutableMapping):
    """Live ``name -> Model`` view of one kind of the registry (``NPP_MODELS``, ``RH_MODELS``)."""

    def __init__(self, kind: str):
        self.kind = _check_kind(kind)

    def __getitem__(self, name: str) -> Model:
        _ensure_builtins()
        return _REGISTRY[self.kind][name]

    def __setitem__(self, name: str, model: Model) -> None:
        _check_name(name)
        if not isinstance(model, Model):
            raise InvalidArgumentError("register models with register_model(...) or assign "
                                       "a carbonsink.flux.registry.Model")
        if model.kind != self.kind or model.name != name:
            model = Model(self.kind, name, model.func, model.inputs, model.optional_inputs,
                          model.needs, model.functions, model.description,
                          model.conditional_inputs)
        _ensure_builtins()
        with _lock:
            _REGISTRY[self.kind][name] = model

    def __delitem__(self, name: str) -> None:
        _ensure_builtins()
        with _lock:
            del _REGISTRY[self.kind][name]

    def __iter__(self) -> Iterator[str]:
        _ensure_builtins()
        return iter(_ordered(self.kind))

    def __len__(self) -> int:
        _ensure_builtins()
        return len(_REGISTRY[self.kind])

    def __repr__(self) -> str:
        return f"{self.kind.upper()}_MODELS({list(self)})"
