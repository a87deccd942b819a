"""The combination runner: every model once, in dependency order, then NEP — docs/methods.md §4.1.

:func:`run_chain` is what users, the pipeline and the benchmarks call::

    res = run_chain(["modis+pei", "casa+gsmsr_bl", "nep_given"], inputs,
                    options={"modis": {"split": "start"}, "mode": "paper"},
                    store=write_and_reopen, echo=print)

* Each model runs once.  A model without ``needs`` is shared by every
  combination using it (key ``"npp_modis"``, ``"rh_pei"``); an Rh model that
  needs NPP runs once per NPP model it is combined with (``"rh_century@modis"``).
* ``options`` are keyed by model name (``"gsmsr_bl": {...}``), or by
  ``"<kind>.<name>"`` to tell apart models of different kinds with one name
  (``"npp.given"``, ``"rh.given"``); ``"mode"`` applies to every model that
  accepts it.  Options are validated before anything runs.
* ``store(key, ds, meta)`` receives each model output before it is used and
  returns what is used instead (the pipeline writes Zarr and re-opens it
  lazily, so memory stays bounded); ``meta`` has ``kind``, ``name``,
  ``options``, ``key`` and ``needs`` (kind -> key of the model output used).
* ``echo(str)`` reports each model as it starts.

A combination ``"npp+rh"`` gives ``Dataset(npp, rh, nep [, rs, rh_gt_rs])``
with NEP = NPP − Rh exactly (:func:`carbonsink.flux.nep.nep`).  When one side is
annual (Pei with ``mode="paper"``, a given annual product) the other is
aggregated to calendar-year totals
(:func:`carbonsink.cube.temporal.to_annual`, ``min_valid_fraction=1.0``) and
the Dataset attribute ``time_step`` is ``"year"`` (else ``"month"``).  A direct
NEP combination ``"nep_<X>"`` gives ``Dataset(nep)`` (plus what the model
provides).  Dataset attributes: ``combination``, ``npp_model`` and
``rh_model`` (or ``nep_model``), ``parameters`` (JSON), ``time_step``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import xarray as xr

from ..errors import InputError, InvalidArgumentError
from ..units import period_of
from . import registry as reg
from .registry import Combination, Model

__all__ = ["run_chain", "run_model", "resolve_combinations", "model_key", "SEED_000"]

#: the six NPP × Rh combinations of seed paper 000
SEED_000 = ("modis+pei", "modis+gsmsr_bl", "modis+gsmsr_shi",
            "casa+pei", "casa+gsmsr_bl", "casa+gsmsr_shi")

Store = Callable[[str, xr.Dataset, dict], xr.Dataset]


# --------------------------------------------------------------------------- helpers


def _available(inputs: Mapping[str, Any] | xr.Dataset | None) -> set[str]:
    if inputs is None:
        return set()
    return {str(k) for k in inputs if inputs[k] is not None}


def resolve_combinations(names: Iterable[str | Combination] | str,
                         inputs: Mapping[str, Any] | xr.Dataset | None = None,
                         options: Mapping[str, Any] | None = None) -> list[Combination]:
    """Combinations from names, ``"seed_000"`` (the six of paper 000) or ``"all"``.

    ``"all"`` is every registered combination whose inputs are all present in
    ``inputs`` (every registered combination when ``inputs`` is None).
    """
    if isinstance(names, Combination):
        return [names]
    if isinstance(names, str):
        if names == "seed_000":
            names = SEED_000
        elif names == "all":
            every = reg.combination_names()
            if inputs is None:
                names = every
            else:
                avail = _available(inputs)
                names = [n for n in every if not reg.missing_inputs([n], avail, options)]
                if not names:
                    raise InputError("no registered combination can run with the inputs given "
                                     f"({', '.join(sorted(avail)) or 'none'}); see "
                                     "carbonsink.flux.registry.describe_models()")
        else:
            names = [names]
    out, seen = [], set()
    for n in names:
        c = reg.get_combination(n)
        if c.name not in seen:
            seen.add(c.name)
            out.append(c)
    return out


def _check_groups(options: Mapping[str, Any] | None) -> dict[str, Any]:
    options = dict(options or {})
    valid = {"mode"}
    for kind in reg.KINDS:
        for name in reg.model_names(kind):
            valid |= {name, f"{kind}.{name}"}
    bad = sorted(set(options) - valid)
    if bad:
        raise InvalidArgumentError(
            f"unknown option groups {bad}; options are keyed by model name (or "
            f"'<kind>.<name>'), plus 'mode': {', '.join(sorted(valid))}")
    for k, v in options.items():
        if k != "mode" and v is not None and not isinstance(v, Mapping):
            raise InvalidArgumentError(f"options['{k}'] must be a mapping of option -> value, "
                                       f"got {type(v).__name__}")
    return options


def _options_for(model: Model, options: Mapping[str, Any]) -> dict[str, Any]:
    """Validated keyword options of ``model`` from a mapping keyed by model name."""
    accepted = reg._option_params(model)
    out: dict[str, Any] = {}
    if "mode" in options and (accepted is None or "mode" in accepted):
        out["mode"] = options["mode"]
    for key in (model.name, f"{model.kind}.{model.name}"):
        out.update(options.get(key) or {})
    return reg.validate_options(model.kind, model.name, out)


def _raise_missing(missing: Mapping[str, list[str]]) -> None:
    lines = [f"input '{role}' is required by {', '.join(combos)}"
             for role, combos in missing.items()]
    raise InputError("the models need inputs that were not given:\n  - " + "\n  - ".join(lines)
                     + "\nFix: give them under these canonical names (study file "
                       "inputs.<name>)")


def model_key(model: Model, needs: Mapping[str, str] | None = None) -> str:
    """``"<kind>_<name>"`` plus ``"@<name>"`` of each needed model (``"rh_century@modis"``)."""
    key = f"{model.kind}_{model.name}"
    for kind in model.needs:
        dep = (needs or {}).get(kind)
        if dep is not None:
            key += "@" + dep.split("_", 1)[1]
    return key


def _call(model: Model, inputs, needs: Mapping[str, xr.DataArray], opts: Mapping[str, Any]):
    ds = model.func(inputs, needs=dict(needs), **opts)
    if isinstance(ds, xr.DataArray):
        ds = ds.to_dataset(name=model.kind)
    if not isinstance(ds, xr.Dataset) or model.kind not in ds:
        raise InvalidArgumentError(f"{model.label} returned no variable '{model.kind}' "
                                   "(a model function must return an xarray.Dataset with it)")
    ds[model.kind].attrs[f"{model.kind}_model"] = model.name
    ds.attrs[f"{model.kind}_model"] = model.name
    return ds


def run_model(kind: str, name: str, inputs: Mapping[str, Any] | xr.Dataset, *,
              options: Mapping[str, Any] | None = None,
              needs: Mapping[str, xr.DataArray] | None = None) -> xr.Dataset:
    """Run one registered model → its Dataset (variable ``kind`` [+ extras]).

    ``options`` are the model's own keyword options (validated); ``needs``
    the outputs of other models it needs (default: the input of that role,
    e.g. ``inputs["npp"]``).  Missing inputs raise :class:`InputError`.
    """
    model = reg.get_model(kind, name)
    opts = reg.validate_options(kind, name, options)
    avail = _available(inputs)
    roles = reg._required_roles(model, avail, opts)
    missing = [r for r in roles if r not in avail]
    if missing:
        raise InputError(f"{model.label} needs inputs {missing}; give them under these "
                         "canonical names (study file inputs.<name>)")
    got = dict(needs or {})
    for n in model.needs:
        if n not in got:
            if n not in avail:
                raise InputError(f"{model.label} needs the output of an {n.upper()} model; pass "
                                 f"needs={{'{n}': ...}} or an input '{n}'")
            got[n] = inputs[n]
    return _call(model, inputs, got, opts)


# --------------------------------------------------------------------------- combining


def _period(da: xr.DataArray) -> str | None:
    units = da.attrs.get("units", "")
    try:
        return period_of(units)
    except ValueError:
        return "year" if "yr-1" in units else ("month" if "month-1" in units else None)


def _to_annual(da: xr.DataArray, name: str) -> xr.DataArray:
    from ..cube.temporal import to_annual

    if "time" not in da.dims or _period(da) == "year":
        return da
    if da.dtype == bool:  # a monthly flag becomes the number of flagged months
        out = to_annual(da.astype("int16"), how="sum", min_valid_fraction=1.0)
        out.attrs = {**da.attrs, "units": "1",
                     "long_name": f"months with {da.attrs.get('long_name', name)}"}
        out.name = da.name
        return out
    return to_annual(da, min_valid_fraction=1.0, variable=name)


def _params(da: xr.DataArray) -> Any:
    raw = da.attrs.get("parameters")
    try:
        return json.loads(raw) if raw is not None else None
    except (TypeError, ValueError):
        return raw


def _pair(name: str, npp_ds: xr.Dataset, rh_ds: xr.Dataset, npp_name: str,
          rh_name: str) -> xr.Dataset:
    from .nep import nep as _nep

    npp_da, rh_da = npp_ds["npp"], rh_ds["rh"]
    extra = {k: v for k, v in rh_ds.data_vars.items() if k != "rh"}
    extra.update({k: v for k, v in npp_ds.data_vars.items()
                  if k not in ("npp", "rh", "nep") and k not in extra})
    annual = "year" in (_period(npp_da), _period(rh_da))
    if annual:
        npp_da = _to_annual(npp_da, "npp")
        rh_da = _to_annual(rh_da, "rh")
        extra = {k: _to_annual(v, str(k)) for k, v in extra.items()}
    n = _nep(npp_da, rh_da)
    n.attrs["npp_model"], n.attrs["rh_model"] = npp_name, rh_name
    ds = xr.Dataset({"npp": npp_da, "rh": rh_da, "nep": n, **extra})
    ds.attrs = {"combination": name, "npp_model": npp_name, "rh_model": rh_name,
                "parameters": n.attrs["parameters"],
                "time_step": "year" if annual else "month",
                "methods_section": "carbonsink docs/methods.md §4.1"}
    return ds


def _direct(name: str, nep_ds: xr.Dataset, nep_name: str) -> xr.Dataset:
    ds = nep_ds.copy()
    per = _period(ds["nep"])
    ds.attrs = {"combination": name, "nep_model": nep_name,
                "parameters": json.dumps({"nep": _params(ds["nep"])}, sort_keys=True),
                "time_step": "year" if per == "year" else "month",
                "methods_section": "carbonsink docs/methods.md §4.1"}
    return ds


# --------------------------------------------------------------------------- the runner


def run_chain(combinations: Iterable[str | Combination] | str,
              inputs: Mapping[str, Any] | xr.Dataset, *,
              options: Mapping[str, Any] | None = None, store: Store | None = None,
              echo: Callable[[str], Any] | None = None) -> dict[str, xr.Dataset]:
    """Run ``combinations`` on ``inputs``; every model once → ``{combination: Dataset}``.

    ``combinations``: names (``"modis+pei"``, ``"nep_given"``), ``"seed_000"``
    or ``"all"`` (every registered combination whose inputs are given).
    Unknown names raise :class:`UnknownModelError`, unknown options
    :class:`InvalidArgumentError`, missing inputs :class:`InputError` — all
    before any model runs.  See the module docstring for ``options``,
    ``store`` and ``echo``.
    """
    if inputs is None:
        raise InputError("run_chain needs inputs (a mapping of canonical names to DataArrays)")
    combos = resolve_combinations(combinations, inputs, options)
    options = _check_groups(options)
    opts: dict[tuple[str, str], dict[str, Any]] = {}
    for c in combos:
        for m in c.models:
            if (m.kind, m.name) not in opts:
                opts[(m.kind, m.name)] = _options_for(m, options)
    missing = reg.missing_inputs(combos, _available(inputs), options)
    if missing:
        _raise_missing(missing)
    store = store or (lambda key, ds, meta: ds)
    done: dict[str, xr.Dataset] = {}

    def run(kind: str, combo: Combination, stack: tuple[str, ...] = ()) -> tuple[str, xr.Dataset]:
        model: Model = getattr(combo, kind)
        if kind in stack:
            raise InvalidArgumentError(f"combination '{combo.name}': models need each other "
                                       f"in a cycle ({' -> '.join((*stack, kind))})")
        deps = {n: run(n, combo, (*stack, kind)) for n in model.needs}
        key = model_key(model, {n: k for n, (k, _) in deps.items()})
        if key not in done:
            o = opts[(model.kind, model.name)]
            if echo is not None:
                on = "".join(f" (on {d[0].split('_', 1)[0].upper()} "
                             f"'{d[0].split('_', 1)[1]}')" for d in deps.values())
                echo(f"{model.label}{on}")
            ds = _call(model, inputs, {n: d[n] for n, (_, d) in deps.items()}, o)
            meta = {"kind": model.kind, "name": model.name, "options": dict(o), "key": key,
                    "needs": {n: k for n, (k, _) in deps.items()}}
            ds = store(key, ds, meta)
            if not isinstance(ds, xr.Dataset) or model.kind not in ds:
                raise InvalidArgumentError(f"store({key!r}) must return the Dataset with "
                                           f"variable '{model.kind}'")
            done[key] = ds
        return key, done[key]

    out: dict[str, xr.Dataset] = {}
    for c in combos:
        if c.nep is not None:
            _, nep_ds = run("nep", c)
            out[c.name] = _direct(c.name, nep_ds, c.nep.name)
        else:
            if "npp" in c.rh.needs and "rh" in c.npp.needs:
                run("rh", c)  # raises the cycle error
            first = ("rh", "npp") if "rh" in c.npp.needs else ("npp", "rh")
            res = {k: run(k, c)[1] for k in first}
            out[c.name] = _pair(c.name, res["npp"], res["rh"], c.npp.name, c.rh.name)
    return out

