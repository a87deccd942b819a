"""The one model registry: look-ups, options, missing inputs, errors (METHODS §4.1)."""

import subprocess
import sys

import pytest
import xarray as xr

from carbonsink.errors import InvalidArgumentError, UnknownModelError
from carbonsink.flux import NPP_MODELS, RH_MODELS, register_npp_model
from carbonsink.flux import registry as reg


def test_builtin_models_and_kinds():
    assert reg.model_names("npp") == ["modis", "casa", "given"]
    assert reg.model_names("rh") == ["pei", "gsmsr_bl", "gsmsr_shi", "given", "century"]
    assert reg.model_names("nep") == ["given"]
    m = reg.get_model("rh", "gsmsr_bl")
    assert (m.kind, m.name, m.inputs) == ("rh", "gsmsr_bl", ("tas", "pr", "soc"))
    assert NPP_MODELS["casa"] is reg.get_model("npp", "casa")
    assert list(RH_MODELS) == reg.model_names("rh")


def test_unknown_names_are_key_errors_listing_valid_names():
    with pytest.raises(UnknownModelError, match="unknown NPP model 'miami'.*casa, given, modis"):
        reg.get_model("npp", "miami")
    with pytest.raises(KeyError):
        reg.get_model("rh", "roth_c")
    with pytest.raises(UnknownModelError) as exc:
        reg.get_combination("nep_modis")
    assert "nep_given" in str(exc.value) and "modis+pei" in str(exc.value)
    with pytest.raises(InvalidArgumentError, match="kind"):
        reg.get_model("gpp", "modis")


def test_combinations_naming():
    c = reg.get_combination("given+pei")
    assert c.npp.name == "given" and c.rh.name == "pei" and c.nep is None
    d = reg.get_combination("nep_given")
    assert d.nep is reg.get_model("nep", "given") and d.npp is None and d.rh is None
    names = reg.combination_names()
    assert names[-1] == "nep_given" and "casa+gsmsr_shi" in names
    assert len(names) == 3 * 5 + 1


def test_model_options_from_signatures():
    opts = reg.model_options("rh", "gsmsr_bl")
    assert opts["beta"] is not None and "scaling" in opts and "mode" in opts
    assert "time_dim" not in opts
    assert reg.model_options("npp", "given") == {"split": "days", "period_days": 8,
                                                 "min_valid_fraction": 1.0}
    assert reg.validate_options("rh", "pei", {"mode": "paper"}) == {"mode": "paper"}
    with pytest.raises(InvalidArgumentError, match=r"unknown option 'bogus' for Rh model 'pei'; "
                                                   r"valid options: .*mode"):
        reg.validate_options("rh", "pei", {"bogus": 1})
    with pytest.raises(ValueError):  # InvalidArgumentError is a ValueError
        reg.validate_options("npp", "modis", {"time_dim": "t"})


def test_missing_inputs_with_casa_rule():
    got = reg.missing_inputs(["casa+pei", "modis+gsmsr_bl"], {"tas", "ndvi", "sol", "landcover"})
    assert got == {"gpp_8day": ["modis+gsmsr_bl"], "npp_annual": ["modis+gsmsr_bl"],
                   "pr": ["casa+pei", "modis+gsmsr_bl"], "soc": ["modis+gsmsr_bl"]}
    # CASA takes its water stress from eet + pet when both are given: pr only for Pei then
    got = reg.missing_inputs(["casa+pei"], {"tas", "ndvi", "sol", "landcover", "eet", "pet"})
    assert got == {"pr": ["casa+pei"]}
    got = reg.missing_inputs(["casa+given"], {"tas", "ndvi", "sol", "landcover", "eet", "pet"})
    assert got == {"rh": ["casa+given"]}
    assert reg.missing_inputs("nep_given", {"nep"}) == {}
    assert reg.missing_inputs("nep_given", set()) == {"nep": ["nep_given"]}


def test_register_model_with_needs_and_views():
    @reg.register_model("rh", "frac_npp", inputs=(), needs=("npp",), description="test")
    def _frac(inputs, *, needs, share=0.5):
        return xr.Dataset({"rh": needs["npp"] * share})

    try:
        assert "frac_npp" in RH_MODELS and "modis+frac_npp" in reg.combination_names()
        assert reg.model_options("rh", "frac_npp") == {"share": 0.5}
        assert reg.missing_inputs(["modis+frac_npp"], {"npp_annual", "gpp_8day"}) == {}
        desc = {(d["kind"], d["name"]): d for d in reg.describe_models()}
        assert desc[("rh", "frac_npp")]["needs"] == ["npp"]
        assert desc[("rh", "frac_npp")]["options"] == {"share": 0.5}
    finally:
        reg.unregister_model("rh", "frac_npp")
    assert "frac_npp" not in RH_MODELS
    with pytest.raises(InvalidArgumentError):
        reg.register_model("nep", "x", inputs=(), needs=("npp",))
    with pytest.raises(InvalidArgumentError):
        reg.register_model("npp", "a+b", inputs=())


def test_legacy_decorator_registers_in_the_one_registry():
    @register_npp_model("const_npp", inputs=("tas",))
    def _c(inp, **opts):
        return xr.zeros_like(inp["tas"])

    try:
        m = reg.get_model("npp", "const_npp")
        assert m.kind == "npp" and m.inputs == ("tas",)
        assert reg.validate_options("npp", "const_npp", {"anything": 1}) == {"anything": 1}
    finally:
        NPP_MODELS.pop("const_npp")
    with pytest.raises(UnknownModelError):
        reg.get_model("npp", "const_npp")


def test_describe_models_lists_every_model():
    desc = reg.describe_models()
    assert {(d["kind"], d["name"]) for d in desc} >= {("npp", "modis"), ("npp", "casa"),
                                                     ("rh", "pei"), ("nep", "given")}
    casa = next(d for d in desc if d["name"] == "casa")
    assert casa["inputs"] == ["ndvi", "tas", "sol", "landcover"]
    assert casa["options"]["mode"] == "recommended" and casa["description"]


def test_registry_import_is_cheap():
    out = subprocess.run([sys.executable, "-c", "import sys, carbonsink.flux.registry; "
                          "print('numba' in sys.modules, 'carbonsink.flux.npp' in sys.modules)"],
                         capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "False"]


def test_cli_models_lists_kinds_and_naming_rule():
    from click.testing import CliRunner

    from carbonsink.cli import main

    res = CliRunner().invoke(main, ["models"])
    assert res.exit_code == 0, res.output
    for text in ("NPP models", "Rh models", "NEP models", "modis", "gsmsr_shi", "given",
                 "nep_given", "<npp>+<rh>"):
        assert text in res.output
