"""Carbon fluxes: NPP models, Rh models, NEP and their combinations (METHODS §2–§4).

Modules
-------
:mod:`.npp`          MODIS downscaling, CASA (and its components), Miami, Thornthwaite Memorial
:mod:`.water`        Thornthwaite PET, Zhou–Zhang regional EET/PET
:mod:`.rh`           Pei 2009, GSMSR, Bond-Lamberty 2004, Shi 2015
:mod:`.nep`          NEP = NPP − Rh
:mod:`.combinations` registry of NPP × Rh model combinations (``"modis+gsmsr_bl"`` ...)

All model functions accept numpy arrays (in the documented units; time on
axis 0), xarray DataArrays with a ``units`` attribute (converted at the
boundary; :class:`~carbonsink.errors.UnitError` otherwise) and dask-backed
DataArrays (kept lazy).
"""

from . import combinations, nep, npp, rh, water
from .combinations import (COMBINATIONS, NPP_MODELS, RH_MODELS, SEED_000, annual,
                           get_combination, register_npp_model, register_rh_model,
                           run_combination, run_combinations, run_npp, run_rh)
from .nep import nep as compute_nep

__all__ = [
    "npp", "rh", "water", "nep", "combinations",
    "COMBINATIONS", "NPP_MODELS", "RH_MODELS", "SEED_000", "get_combination",
    "register_npp_model", "register_rh_model", "run_combination", "run_combinations",
    "run_npp", "run_rh", "annual", "compute_nep",
]
