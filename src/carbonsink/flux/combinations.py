"""Built-in NPP and Rh models and the combination API — carbonsink docs/methods.md §4.1.

Models live in ONE registry (:mod:`carbonsink.flux.registry`) and combinations
run through ONE runner (:func:`carbonsink.flux.chain.run_chain`); this module
registers the built-in computed models and keeps the historic API as thin
wrappers over both.

A *combination* is named ``"<npp model>+<rh model>"`` (every NPP model combines
with every Rh model) or ``"nep_<nep model>"`` for a direct NEP model.  Built in:

* NPP: ``"modis"`` (:func:`.npp.modis_monthly`), ``"casa"`` (:func:`.npp.casa`),
  ``"given"`` (a given product, :mod:`.given`)
* Rh: ``"pei"`` (:func:`.rh.pei2009`), ``"gsmsr_bl"`` (:func:`.rh.gsmsr` +
  :func:`.rh.bond_lamberty2004`), ``"gsmsr_shi"`` (:func:`.rh.gsmsr` +
  :func:`.rh.shi2015`), ``"given"``
* NEP: ``"given"`` (combination ``"nep_given"``)

so that the six combinations of seed paper 000 (:data:`SEED_000`) are
``modis+pei``, ``modis+gsmsr_bl``, ``modis+gsmsr_shi``, ``casa+pei``,
``casa+gsmsr_bl`` and ``casa+gsmsr_shi``.  New models are added with
:func:`carbonsink.flux.registry.register_model` (or the older
:func:`register_npp_model` / :func:`register_rh_model` decorators).

Inputs are a mapping (or Dataset) of DataArrays with canonical names:
``npp_annual`` (yearly), ``gpp_8day`` (composites), ``ndvi``, ``tas``,
``sol``, ``pr``, ``pet``, ``eet`` (optional), ``soc``, ``landcover``, and
``npp``, ``rh``, ``nep`` for given products.  Options are keyword arguments of
the model functions, given per model name (``{"modis": {"split": "start"},
"gsmsr_bl": {"beta": -0.006}}``, ``"npp.given"`` to pick one kind); the key
``"mode"`` applies to every model that accepts it.  Unknown options raise
:class:`~carbonsink.errors.InvalidArgumentError`.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import xarray as xr

from ..errors import InputError, InvalidArgumentError
from . import npp as _npp
from . import rh as _rh
from .chain import SEED_000, run_chain, run_model
from .registry import (RESERVED_OPTIONS, Combination, Model, ModelView, combination_names,
                       get_combination, register_model)

__all__ = ["NPPModel", "RHModel", "Model", "Combination", "NPP_MODELS", "RH_MODELS",
           "NEP_MODELS", "COMBINATIONS", "SEED_000", "register_npp_model", "register_rh_model",
           "register_model", "get_combination", "combination_names", "run_npp", "run_rh",
           "run_combination", "run_combinations", "annual"]

#: the registered models are :class:`~carbonsink.flux.registry.Model` (historic names kept)
NPPModel = RHModel = Model

#: live views ``name -> Model`` of the one registry, by kind
NPP_MODELS = ModelView("npp")
RH_MODELS = ModelView("rh")
NEP_MODELS = ModelView("nep")


def _legacy(kind: str, name: str, inputs: Iterable[str], functions: Iterable[Callable],
            description: str):
    def deco(func):
        if kind == "npp":
            def run(inp, *, needs=None, **opts):
                return xr.Dataset({"npp": func(inp, **opts)})
        else:
            def run(inp, *, needs=None, **opts):
                return func(inp, **opts)
        run.__wrapped_model__ = func
        if not functions:  # the options are those of the registered function itself
            run.__signature__ = inspect.signature(func)
        register_model(kind, name, inputs=inputs, functions=functions,
                       description=description)(run)
        return func
    return deco


def register_npp_model(name: str, *, inputs: Iterable[str], functions: Iterable[Callable] = (),
                       description: str = ""):
    """Decorator registering ``func(inputs, **options) -> DataArray`` (monthly npp) as NPP
    model ``name`` (older form of ``register_model("npp", ...)``).

    ``inputs`` lists the required canonical input names; ``functions`` the
    model functions whose keyword arguments are valid options.
    """
    return _legacy("npp", name, tuple(inputs), tuple(functions), description)


def register_rh_model(name: str, *, inputs: Iterable[str], functions: Iterable[Callable] = (),
                      description: str = ""):
    """Decorator registering ``func(inputs, **options) -> Dataset(rh[, rs])`` as Rh model
    ``name`` (older form of ``register_model("rh", ...)``)."""
    return _legacy("rh", name, tuple(inputs), tuple(functions), description)


class _Combinations(Mapping):
    """Live read-only view ``name -> Combination`` over the registry."""

    def __getitem__(self, name: str) -> Combination:
        return get_combination(name)

    def __iter__(self) -> Iterator[str]:
        return iter(combination_names())

    def __len__(self) -> int:
        return len(combination_names())

    def __repr__(self) -> str:
        return f"COMBINATIONS({combination_names()})"


COMBINATIONS = _Combinations()


# --------------------------------------------------------------------------- options


def _accepted(funcs: Iterable[Callable]) -> dict[str, list[Callable]]:
    acc: dict[str, list[Callable]] = {}
    for f in funcs:
        for pname, p in inspect.signature(f).parameters.items():
            if p.kind == p.KEYWORD_ONLY or (p.kind == p.POSITIONAL_OR_KEYWORD and
                                            p.default is not p.empty):
                acc.setdefault(pname, []).append(f)
    return acc


_RESERVED = set(RESERVED_OPTIONS)


def _route(model: str, funcs: tuple[Callable, ...], options: Mapping[str, Any]):
    """Split ``options`` over ``funcs`` by their signatures; unknown keys ->
    :class:`InvalidArgumentError`."""
    acc = _accepted(funcs)
    per = {f: {} for f in funcs}
    for key, val in options.items():
        if key not in acc or key in _RESERVED:
            valid = sorted(k for k in acc if k not in _RESERVED)
            raise InvalidArgumentError(f"option '{key}' is not valid for model '{model}'; "
                                       "valid options: " + ", ".join(valid))
        for f in acc[key]:
            per[f][key] = val
    return per


def _get(inputs: Mapping[str, Any], name: str):
    return inputs[name] if name in inputs else None


# --------------------------------------------------------------------------- built-ins


@register_model("npp", "modis", inputs=("npp_annual", "gpp_8day"),
                functions=(_npp.modis_monthly,),
                description="MOD17A3HGF annual NPP downscaled by 8-day GPP (docs/methods.md §2.1)")
def _modis(inputs, *, needs=None, **opts):
    (kw,) = _route("modis", (_npp.modis_monthly,), opts).values()
    return xr.Dataset({"npp": _npp.modis_monthly(inputs["npp_annual"], inputs["gpp_8day"], **kw)})


def _casa_water_inputs(available: set, options: Mapping[str, Any]) -> tuple[str, ...]:
    """CASA's Wε: from user ``eet`` and ``pet`` grids if both are given, else from ``pr``."""
    return () if {"eet", "pet"} <= set(available) else ("pr",)


@register_model("npp", "casa", inputs=("ndvi", "tas", "sol", "landcover"),
                optional_inputs=("pr", "eet", "pet"), functions=(_npp.casa,),
                conditional_inputs=_casa_water_inputs,
                description="CASA light-use efficiency (docs/methods.md §2.2); water stress from "
                            "eet+pet if given, else from pr")
def _casa(inputs, *, needs=None, **opts):
    (kw,) = _route("casa", (_npp.casa,), opts).values()
    has_grids = _get(inputs, "eet") is not None and _get(inputs, "pet") is not None
    if not has_grids and _get(inputs, "pr") is None:
        raise InputError("model 'casa' needs inputs ['pr'] (or both 'eet' and 'pet'); give "
                         "them under these canonical names (study file inputs.<name>)")
    return xr.Dataset({"npp": _npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"],
                                        inputs["landcover"], pr=_get(inputs, "pr"),
                                        eet=inputs["eet"] if has_grids else None,
                                        pet=inputs["pet"] if has_grids else None, **kw)})


def _annual_mean_sum(tas: xr.DataArray, pr: xr.DataArray):
    tas_y = tas.resample(time="YS").mean(skipna=False)
    pr_m = _rh.prep(pr, "mm month-1", "pr")
    pr_y = pr_m.resample(time="YS").sum(skipna=False)
    pr_y.attrs["units"] = "mm yr-1"
    tas_y.attrs["units"] = "degC"
    return tas_y, pr_y


@register_model("rh", "pei", inputs=("tas", "pr"), functions=(_rh.pei2009,),
                description="Pei et al. 2009 empirical Rh (docs/methods.md §3.1); annual with "
                            "mode='paper'")
def _pei(inputs, *, needs=None, **opts):
    (kw,) = _route("pei", (_rh.pei2009,), opts).values()
    if kw.get("mode") == "paper":  # 001/003: one evaluation with annual T and P
        tas = _rh.prep(inputs["tas"], "degC", "tas")
        tas_y, pr_y = _annual_mean_sum(tas, inputs["pr"])
        return xr.Dataset({"rh": _rh.pei2009(tas_y, pr_y, **kw)})
    return xr.Dataset({"rh": _rh.pei2009(inputs["tas"], inputs["pr"], **kw)})


def _gsmsr(inputs, kw):
    return _rh.gsmsr(inputs["tas"], inputs["pr"], inputs["soc"], **kw)


@register_model("rh", "gsmsr_bl", inputs=("tas", "pr", "soc"),
                functions=(_rh.gsmsr, _rh.bond_lamberty2004),
                description="GSMSR Rs + Bond-Lamberty 2004 Rs->Rh (docs/methods.md §3.2-3.3)")
def _gsmsr_bl(inputs, *, needs=None, **opts):
    per = _route("gsmsr_bl", (_rh.gsmsr, _rh.bond_lamberty2004), opts)
    rs = _gsmsr(inputs, per[_rh.gsmsr])
    rh = _rh.bond_lamberty2004(rs, **per[_rh.bond_lamberty2004])
    out = xr.Dataset({"rh": rh, "rs": rs})
    if json.loads(rh.attrs["parameters"])["scaling"] == "direct":
        flag = rh > rs
        flag.attrs = {"long_name": "Rh > Rs (direct monthly Bond-Lamberty, docs/methods.md §3.3)",
                      "units": "1"}
        out["rh_gt_rs"] = flag
    return out


@register_model("rh", "gsmsr_shi", inputs=("tas", "pr", "soc"),
                functions=(_rh.gsmsr, _rh.shi2015),
                description="GSMSR Rs + Shi 2015 quadratic Rs->Rh (docs/methods.md §3.2, 3.4)")
def _gsmsr_shi(inputs, *, needs=None, **opts):
    per = _route("gsmsr_shi", (_rh.gsmsr, _rh.shi2015), opts)
    rs = _gsmsr(inputs, per[_rh.gsmsr])
    rh = _rh.shi2015(rs, **per[_rh.shi2015])
    return xr.Dataset({"rh": rh, "rs": rs})


from . import given as _given  # noqa: E402,F401  (registers the "given" models)

# --------------------------------------------------------------------------- running


def run_npp(model: str, inputs: Mapping[str, Any] | xr.Dataset, **opts) -> xr.DataArray:
    """NPP of registered model ``model`` [g C m-2 month-1; yr-1 for an annual given product].

    ``opts`` are keyword arguments of the model function(s). The result's
    attrs carry ``npp_model`` (the registry name) besides the function's own
    ``model`` and ``parameters``.
    """
    return run_model("npp", model, inputs, options=opts)["npp"]


def run_rh(model: str, inputs: Mapping[str, Any] | xr.Dataset, *,
           npp: xr.DataArray | None = None, **opts) -> xr.Dataset:
    """Rh (and Rs where the model has it) of registered Rh model ``model``.

    Returns a Dataset with ``rh`` [g C m-2 month-1] (``g C m-2 yr-1`` for Pei in
    ``mode="paper"``) and, for the GSMSR chains, ``rs``; attrs ``rh_model``.
    An Rh model that needs NPP takes ``npp`` (default ``inputs["npp"]``).
    """
    return run_model("rh", model, inputs, options=opts,
                     needs={"npp": npp} if npp is not None else None)


def run_combination(name: str, inputs: Mapping[str, Any] | xr.Dataset, *,
                    options: Mapping[str, Any] | None = None, **opts) -> xr.Dataset:
    """Run combination ``"npp+rh"`` (or ``"nep_X"``) → Dataset(npp, rh, nep [, rs, rh_gt_rs]).

    ``options`` (or keyword arguments) are keyed by model name, e.g.
    ``run_combination("modis+gsmsr_bl", inputs, modis={"split": "start"},
    gsmsr_bl={"beta": -0.006})``; ``mode="paper"`` applies to every model
    that accepts it.  Groups for models outside this combination are ignored
    (one options mapping can serve every combination).  NEP = NPP − Rh exactly;
    every variable carries units and model attrs, the Dataset ``combination``,
    ``npp_model``, ``rh_model``, ``parameters`` (JSON) and ``time_step``
    (``"month"``, or ``"year"`` when one side is annual).  See
    :func:`carbonsink.flux.chain.run_chain`.
    """
    get_combination(name)
    merged = {**dict(options or {}), **opts}
    return run_chain([name], inputs, options=merged)[name]


def run_combinations(names: Iterable[str] | str = SEED_000,
                     inputs: Mapping[str, Any] | xr.Dataset | None = None, *,
                     options: Mapping[str, Any] | None = None) -> dict[str, xr.Dataset]:
    """Run several combinations, computing each model only once
    (:func:`carbonsink.flux.chain.run_chain`).

    ``names``: an iterable of combination names, ``"all"`` (every registered
    combination whose inputs are given) or ``"seed_000"`` (the six of paper
    000, the default).  Returns ``{name: Dataset}`` as :func:`run_combination`
    would.
    """
    if inputs is None:
        raise InputError("run_combinations needs inputs")
    return run_chain(names, inputs, options=options)


def annual(x: xr.DataArray | xr.Dataset, *, time_dim: str = "time"):
    """Deprecated: use :func:`carbonsink.cube.temporal.to_annual` (the one aggregator).

    Calls ``to_annual(x, min_valid_fraction=1.0, dim=time_dim)`` per variable, so the rule
    is the one of :mod:`carbonsink.cube.temporal`: boolean flags → number of months with
    the flag (units ``"1"``); per-day rates integrated with the true days of each month;
    per-month fluxes summed (``… yr-1``); states averaged. A year is NaN where any of its
    months is NaN or missing. Variables without ``time_dim`` or already annual
    (``… yr-1``) are returned unchanged.
    """
    import warnings

    from ..cube.temporal import to_annual

    warnings.warn("carbonsink.flux.combinations.annual is deprecated; use "
                  "carbonsink.cube.temporal.to_annual", DeprecationWarning, stacklevel=2)

    def _one(v: xr.DataArray, name: str) -> xr.DataArray:
        units = str(v.attrs.get("units", ""))
        if time_dim not in v.dims or (v.dtype != bool and "yr-1" in units.split()):
            return v
        return to_annual(v, min_valid_fraction=1.0, dim=time_dim, variable=name)

    if isinstance(x, xr.Dataset):
        ds = xr.Dataset({k: _one(v, str(k)) for k, v in x.data_vars.items()})
        ds.attrs = dict(x.attrs)
        return ds
    return _one(x, str(x.name) if x.name is not None else None)
