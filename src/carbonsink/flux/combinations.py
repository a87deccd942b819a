"""Registry of NPP and Rh models and their NEP combinations — METHODS §4.1.

A *combination* is named ``"<npp model>+<rh model>"``; every registered NPP
model combines with every registered Rh model.  Built in:

* NPP: ``"modis"`` (:func:`.npp.modis_monthly`), ``"casa"`` (:func:`.npp.casa`)
* Rh: ``"pei"`` (:func:`.rh.pei2009`), ``"gsmsr_bl"`` (:func:`.rh.gsmsr` +
  :func:`.rh.bond_lamberty2004`), ``"gsmsr_shi"`` (:func:`.rh.gsmsr` +
  :func:`.rh.shi2015`)

so that the six combinations of seed paper 000 (:data:`SEED_000`) are
``modis+pei``, ``modis+gsmsr_bl``, ``modis+gsmsr_shi``, ``casa+pei``,
``casa+gsmsr_bl`` and ``casa+gsmsr_shi``.  New models are added with the
:func:`register_npp_model` / :func:`register_rh_model` decorators.

Inputs are a mapping (or Dataset) of DataArrays with canonical names:
``npp_annual`` (yearly), ``gpp_8day`` (composites), ``ndvi``, ``tas``,
``sol``, ``pr``, ``pet``, ``eet`` (optional), ``soc``, ``landcover``.
Options are keyword arguments of the model functions, given per model name
(``{"modis": {"split": "start"}, "gsmsr_bl": {"beta": -0.006}}``); the key
``"mode"`` applies to every model that accepts it.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import xarray as xr

from ..errors import ConfigError, InputError, UnknownModelError
from . import npp as _npp
from . import rh as _rh
from .nep import nep as _nep

__all__ = ["NPPModel", "RHModel", "Combination", "NPP_MODELS", "RH_MODELS", "COMBINATIONS",
           "SEED_000", "register_npp_model", "register_rh_model", "get_combination",
           "combination_names", "run_npp", "run_rh", "run_combination", "run_combinations",
           "annual"]


@dataclass(frozen=True)
class NPPModel:
    """A registered NPP model: ``func(inputs, **options) -> DataArray`` (monthly npp)."""

    name: str
    func: Callable[..., xr.DataArray]
    inputs: tuple[str, ...]
    functions: tuple[Callable, ...] = field(default=())
    description: str = ""


@dataclass(frozen=True)
class RHModel:
    """A registered Rh model: ``func(inputs, **options) -> Dataset`` (rh [, rs])."""

    name: str
    func: Callable[..., xr.Dataset]
    inputs: tuple[str, ...]
    functions: tuple[Callable, ...] = field(default=())
    description: str = ""


@dataclass(frozen=True)
class Combination:
    name: str
    npp: NPPModel
    rh: RHModel


NPP_MODELS: dict[str, NPPModel] = {}
RH_MODELS: dict[str, RHModel] = {}

#: the six NPP × Rh combinations of seed paper 000
SEED_000 = ("modis+pei", "modis+gsmsr_bl", "modis+gsmsr_shi",
            "casa+pei", "casa+gsmsr_bl", "casa+gsmsr_shi")


def register_npp_model(name: str, *, inputs: Iterable[str], functions: Iterable[Callable] = (),
                       description: str = ""):
    """Decorator registering ``func(inputs, **options) -> DataArray`` as NPP model ``name``.

    ``inputs`` lists the required canonical input names; ``functions`` the
    model functions whose keyword arguments are valid options.
    """
    if "+" in name:
        raise ValueError("model names must not contain '+'")

    def deco(func):
        NPP_MODELS[name] = NPPModel(name, func, tuple(inputs), tuple(functions), description)
        return func
    return deco


def register_rh_model(name: str, *, inputs: Iterable[str], functions: Iterable[Callable] = (),
                      description: str = ""):
    """Decorator registering ``func(inputs, **options) -> Dataset(rh[, rs])`` as Rh model."""
    if "+" in name:
        raise ValueError("model names must not contain '+'")

    def deco(func):
        RH_MODELS[name] = RHModel(name, func, tuple(inputs), tuple(functions), description)
        return func
    return deco


def combination_names() -> list[str]:
    """All valid combination names (every NPP model × every Rh model)."""
    return [f"{n}+{r}" for n in NPP_MODELS for r in RH_MODELS]


class _Combinations(Mapping):
    """Live read-only view ``name -> Combination`` over the two model registries."""

    def __getitem__(self, name: str) -> Combination:
        return get_combination(name)

    def __iter__(self) -> Iterator[str]:
        return iter(combination_names())

    def __len__(self) -> int:
        return len(NPP_MODELS) * len(RH_MODELS)

    def __repr__(self) -> str:
        return f"COMBINATIONS({combination_names()})"


COMBINATIONS = _Combinations()


def get_combination(name: str) -> Combination:
    """Return the :class:`Combination` called ``"npp+rh"``.

    Raises :class:`UnknownModelError` listing every valid name otherwise.
    """
    if isinstance(name, str) and name.count("+") == 1:
        n, r = name.split("+")
        if n in NPP_MODELS and r in RH_MODELS:
            return Combination(name, NPP_MODELS[n], RH_MODELS[r])
    raise UnknownModelError("combination", str(name), combination_names())


# --------------------------------------------------------------------------- options


def _accepted(funcs: Iterable[Callable]) -> dict[str, list[Callable]]:
    acc: dict[str, list[Callable]] = {}
    for f in funcs:
        for pname, p in inspect.signature(f).parameters.items():
            if p.kind == p.KEYWORD_ONLY or (p.kind == p.POSITIONAL_OR_KEYWORD and
                                            p.default is not p.empty):
                acc.setdefault(pname, []).append(f)
    return acc


_RESERVED = {"time_dim", "time", "npp_time", "gpp_time"}


def _route(model: str, funcs: tuple[Callable, ...], options: Mapping[str, Any]):
    """Split ``options`` over ``funcs`` by their signatures; unknown keys -> ConfigError."""
    acc = _accepted(funcs)
    per = {f: {} for f in funcs}
    for key, val in options.items():
        if key not in acc or key in _RESERVED:
            valid = sorted(k for k in acc if k not in _RESERVED)
            raise ConfigError(f"option '{key}' is not valid for model '{model}'; valid options: "
                              + ", ".join(valid))
        for f in acc[key]:
            per[f][key] = val
    return per


def _need(inputs: Mapping[str, Any], names: Iterable[str], model: str) -> None:
    missing = [n for n in names if n not in inputs or inputs[n] is None]
    if missing:
        raise InputError(f"model '{model}' needs inputs {missing}; give them under these "
                         "canonical names (study file inputs.<name>)")


def _get(inputs: Mapping[str, Any], name: str):
    return inputs[name] if name in inputs else None


# --------------------------------------------------------------------------- built-ins


@register_npp_model("modis", inputs=("npp_annual", "gpp_8day"),
                    functions=(_npp.modis_monthly,),
                    description="MOD17A3HGF annual NPP downscaled by 8-day GPP (METHODS §2.1)")
def _modis(inputs, **opts):
    (kw,) = _route("modis", (_npp.modis_monthly,), opts).values()
    return _npp.modis_monthly(inputs["npp_annual"], inputs["gpp_8day"], **kw)


@register_npp_model("casa", inputs=("ndvi", "tas", "sol", "landcover"),
                    functions=(_npp.casa,), description="CASA light-use efficiency (METHODS §2.2)")
def _casa(inputs, **opts):
    (kw,) = _route("casa", (_npp.casa,), opts).values()
    has_grids = _get(inputs, "eet") is not None and _get(inputs, "pet") is not None
    if not has_grids:
        _need(inputs, ["pr"], "casa")
    return _npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"],
                     pr=_get(inputs, "pr"),
                     eet=inputs["eet"] if has_grids else None,
                     pet=inputs["pet"] if has_grids else None, **kw)


def _annual_mean_sum(tas: xr.DataArray, pr: xr.DataArray):
    tas_y = tas.resample(time="YS").mean(skipna=False)
    pr_m = _rh.prep(pr, "mm month-1", "pr")
    pr_y = pr_m.resample(time="YS").sum(skipna=False)
    pr_y.attrs["units"] = "mm yr-1"
    tas_y.attrs["units"] = "degC"
    return tas_y, pr_y


@register_rh_model("pei", inputs=("tas", "pr"), functions=(_rh.pei2009,),
                   description="Pei et al. 2009 empirical Rh (METHODS §3.1)")
def _pei(inputs, **opts):
    (kw,) = _route("pei", (_rh.pei2009,), opts).values()
    if kw.get("mode") == "paper":  # 001/003: one evaluation with annual T and P
        tas = _rh.prep(inputs["tas"], "degC", "tas")
        tas_y, pr_y = _annual_mean_sum(tas, inputs["pr"])
        return xr.Dataset({"rh": _rh.pei2009(tas_y, pr_y, **kw)})
    return xr.Dataset({"rh": _rh.pei2009(inputs["tas"], inputs["pr"], **kw)})


def _gsmsr(inputs, kw):
    return _rh.gsmsr(inputs["tas"], inputs["pr"], inputs["soc"], **kw)


@register_rh_model("gsmsr_bl", inputs=("tas", "pr", "soc"),
                   functions=(_rh.gsmsr, _rh.bond_lamberty2004),
                   description="GSMSR Rs + Bond-Lamberty 2004 Rs->Rh (METHODS §3.2-3.3)")
def _gsmsr_bl(inputs, **opts):
    per = _route("gsmsr_bl", (_rh.gsmsr, _rh.bond_lamberty2004), opts)
    rs = _gsmsr(inputs, per[_rh.gsmsr])
    rh = _rh.bond_lamberty2004(rs, **per[_rh.bond_lamberty2004])
    out = xr.Dataset({"rh": rh, "rs": rs})
    if json.loads(rh.attrs["parameters"])["scaling"] == "direct":
        flag = rh > rs
        flag.attrs = {"long_name": "Rh > Rs (direct monthly Bond-Lamberty, METHODS §3.3)",
                      "units": "1"}
        out["rh_gt_rs"] = flag
    return out


@register_rh_model("gsmsr_shi", inputs=("tas", "pr", "soc"), functions=(_rh.gsmsr, _rh.shi2015),
                   description="GSMSR Rs + Shi 2015 quadratic Rs->Rh (METHODS §3.2, 3.4)")
def _gsmsr_shi(inputs, **opts):
    per = _route("gsmsr_shi", (_rh.gsmsr, _rh.shi2015), opts)
    rs = _gsmsr(inputs, per[_rh.gsmsr])
    rh = _rh.shi2015(rs, **per[_rh.shi2015])
    return xr.Dataset({"rh": rh, "rs": rs})


# --------------------------------------------------------------------------- running


def _model_options(model: str, options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    out: dict[str, Any] = {}
    if "mode" in options:
        out["mode"] = options["mode"]
    out.update(options.get(model) or {})
    return out


def _check_option_keys(options: Mapping[str, Any] | None) -> None:
    valid = set(NPP_MODELS) | set(RH_MODELS) | {"mode"}
    bad = sorted(set(options or {}) - valid)
    if bad:
        raise ConfigError(f"unknown option groups {bad}; options are keyed by model name: "
                          + ", ".join(sorted(valid)))


def run_npp(model: str, inputs: Mapping[str, Any] | xr.Dataset, **opts) -> xr.DataArray:
    """Monthly NPP of registered model ``model`` [g C m-2 month-1].

    ``opts`` are keyword arguments of the model function(s). The result's
    attrs carry ``npp_model`` (the registry name) besides the function's own
    ``model`` and ``parameters``.
    """
    if model not in NPP_MODELS:
        raise UnknownModelError("NPP model", model, NPP_MODELS)
    m = NPP_MODELS[model]
    _need(inputs, m.inputs, model)
    out = m.func(inputs, **opts)
    out.attrs["npp_model"] = model
    return out


def run_rh(model: str, inputs: Mapping[str, Any] | xr.Dataset, **opts) -> xr.Dataset:
    """Rh (and Rs where the model has it) of registered Rh model ``model``.

    Returns a Dataset with ``rh`` [g C m-2 month-1] (``g C m-2 yr-1`` for Pei in
    ``mode="paper"``) and, for the GSMSR chains, ``rs``; attrs ``rh_model``.
    """
    if model not in RH_MODELS:
        raise UnknownModelError("Rh model", model, RH_MODELS)
    m = RH_MODELS[model]
    _need(inputs, m.inputs, model)
    ds = m.func(inputs, **opts)
    ds["rh"].attrs["rh_model"] = model
    ds.attrs["rh_model"] = model
    return ds


def _combine(name: str, npp_da: xr.DataArray, rh_ds: xr.Dataset) -> xr.Dataset:
    rh_da = rh_ds["rh"]
    if "yr-1" in rh_da.attrs.get("units", "") and "month-1" in npp_da.attrs.get("units", ""):
        npp_da = annual(npp_da)  # Pei paper mode: NEP at the annual step (001/003)
        extra = {k: v for k, v in rh_ds.data_vars.items() if k != "rh"}
        extra = {k: annual(v) for k, v in extra.items()}
    else:
        extra = {k: v for k, v in rh_ds.data_vars.items() if k != "rh"}
    n = _nep(npp_da, rh_da)
    nppm, rhm = npp_da.attrs["npp_model"], rh_da.attrs["rh_model"]
    n.attrs["npp_model"], n.attrs["rh_model"] = nppm, rhm
    ds = xr.Dataset({"npp": npp_da, "rh": rh_da, "nep": n, **extra})
    ds.attrs = {"combination": name, "npp_model": nppm, "rh_model": rhm,
                "parameters": n.attrs["parameters"],
                "methods_section": "carbonsink METHODS.md §4.1"}
    return ds


def run_combination(name: str, inputs: Mapping[str, Any] | xr.Dataset, *,
                    options: Mapping[str, Any] | None = None, **opts) -> xr.Dataset:
    """Run combination ``"npp+rh"`` → Dataset(npp, rh, nep [, rs, rh_gt_rs]) at the monthly step.

    ``options`` (or keyword arguments) are keyed by model name, e.g.
    ``run_combination("modis+gsmsr_bl", inputs, modis={"split": "start"},
    gsmsr_bl={"beta": -0.006})``; ``mode="paper"`` applies to both models.
    Groups for models outside this combination are ignored (one options
    mapping can serve every combination).  NEP = NPP − Rh exactly; every
    variable carries units and model attrs, the Dataset ``combination``,
    ``npp_model``, ``rh_model`` and ``parameters`` (JSON).
    """
    combo = get_combination(name)
    merged = {**dict(options or {}), **opts}
    _check_option_keys(merged)
    npp_da = run_npp(combo.npp.name, inputs, **_model_options(combo.npp.name, merged))
    rh_ds = run_rh(combo.rh.name, inputs, **_model_options(combo.rh.name, merged))
    return _combine(name, npp_da, rh_ds)


def run_combinations(names: Iterable[str] | str = SEED_000,
                     inputs: Mapping[str, Any] | xr.Dataset | None = None, *,
                     options: Mapping[str, Any] | None = None) -> dict[str, xr.Dataset]:
    """Run several combinations, computing each NPP and each Rh model only once.

    ``names``: an iterable of combination names, ``"all"`` (every registered
    pair) or ``"seed_000"`` (the six of paper 000, the default).  Returns
    ``{name: Dataset}`` as :func:`run_combination` would.
    """
    if inputs is None:
        raise InputError("run_combinations needs inputs")
    if isinstance(names, str):
        names = combination_names() if names == "all" else (
            SEED_000 if names == "seed_000" else [names])
    combos = [get_combination(n) for n in names]
    _check_option_keys(options)
    npps: dict[str, xr.DataArray] = {}
    rhs: dict[str, xr.Dataset] = {}
    out = {}
    for c in combos:
        if c.npp.name not in npps:
            npps[c.npp.name] = run_npp(c.npp.name, inputs, **_model_options(c.npp.name, options))
        if c.rh.name not in rhs:
            rhs[c.rh.name] = run_rh(c.rh.name, inputs, **_model_options(c.rh.name, options))
        out[c.name] = _combine(c.name, npps[c.npp.name], rhs[c.rh.name])
    return out


def annual(x: xr.DataArray | xr.Dataset, *, time_dim: str = "time"):
    """Calendar-year sums of monthly fluxes [… yr-1] (METHODS §1.2–1.3).

    A year is NaN where any of its months is NaN or where the record has fewer
    than 12 months for it. Boolean flags (``rh_gt_rs``) become month counts.
    Variables whose units are not per-month are returned unchanged.
    """
    if isinstance(x, xr.Dataset):
        ds = xr.Dataset({k: annual(v, time_dim=time_dim) for k, v in x.data_vars.items()})
        ds.attrs = dict(x.attrs)
        return ds
    units = x.attrs.get("units", "")
    if x.dtype == bool:
        out = x.astype(np.int16).resample({time_dim: "YS"}).sum()
        out.attrs = {**x.attrs, "units": "1", "long_name": f"months with {x.attrs.get('long_name', x.name)}"}
        return out
    if "month-1" not in units:
        return x
    r = x.resample({time_dim: "YS"})
    total = r.sum(skipna=False)
    n = x[time_dim].resample({time_dim: "YS"}).count()
    out = total.where(n == 12)
    out.attrs = {**x.attrs, "units": units.replace("month-1", "yr-1")}
    out.name = x.name
    return out
