"""Carbon fluxes: NPP models, Rh models, NEP and their combinations (docs/methods.md §2–§4).

Modules
-------
:mod:`.npp`          MODIS downscaling, CASA (and its components), Miami, Thornthwaite Memorial
:mod:`.water`        Thornthwaite PET, Zhou–Zhang regional EET/PET
:mod:`.rh`           Pei 2009, GSMSR, Bond-Lamberty 2004, Shi 2015
:mod:`.nep`          NEP = NPP − Rh
:mod:`.given`        given NPP / Rh / NEP products as models (``"given"``)
:mod:`.registry`     the one model registry (kinds npp, rh, nep; inputs, needs, options)
:mod:`.chain`        :func:`run_chain`, the combination runner (``"modis+gsmsr_bl"``, ``"nep_given"``)
:mod:`.combinations` built-in models and the historic API (``run_combination(s)``, ``NPP_MODELS`` ...)

All model functions accept numpy arrays (in the documented units; time on
axis 0), xarray DataArrays with a ``units`` attribute (converted at the
boundary; :class:`~carbonsink.errors.UnitError` otherwise) and dask-backed
DataArrays (kept lazy).

Submodules and names are imported on first use, so ``import carbonsink.flux``
(or ``carbonsink.flux.registry``) is cheap.
"""

from __future__ import annotations

import importlib

_SUBMODULES = ("npp", "rh", "water", "nep", "combinations", "registry", "chain", "given")
_NAMES = {
    "COMBINATIONS": "combinations", "NPP_MODELS": "combinations", "RH_MODELS": "combinations",
    "NEP_MODELS": "combinations", "SEED_000": "chain", "annual": "combinations",
    "get_combination": "registry", "combination_names": "registry",
    "register_npp_model": "combinations", "register_rh_model": "combinations",
    "run_combination": "combinations", "run_combinations": "combinations",
    "run_npp": "combinations", "run_rh": "combinations",
    "Model": "registry", "Combination": "registry", "register_model": "registry",
    "get_model": "registry", "model_names": "registry", "model_options": "registry",
    "validate_options": "registry", "missing_inputs": "registry",
    "describe_models": "registry", "run_chain": "chain", "run_model": "chain",
}

__all__ = [
    "npp", "rh", "water", "nep", "combinations", "registry", "chain", "given",
    "COMBINATIONS", "NPP_MODELS", "RH_MODELS", "NEP_MODELS", "SEED_000", "get_combination",
    "combination_names", "register_npp_model", "register_rh_model", "run_combination",
    "run_combinations", "run_npp", "run_rh", "annual", "compute_nep",
    "Model", "Combination", "register_model", "get_model", "model_names", "model_options",
    "validate_options", "missing_inputs", "describe_models", "run_chain", "run_model",
]


def __getattr__(name: str):
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name == "compute_nep":
        value = importlib.import_module(".nep", __name__).nep
    elif name in _NAMES:
        value = getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
