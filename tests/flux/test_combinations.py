"""Model registry, combinations and NEP (METHODS §4.1)."""

import json

import numpy as np
import pytest
import xarray as xr


from carbonsink.errors import (AlignmentError, InputError, InvalidArgumentError, UnitError,
                               UnknownModelError)
from carbonsink.flux import (COMBINATIONS, NEP_MODELS, NPP_MODELS, RH_MODELS, SEED_000, annual,
                             get_combination, register_rh_model, run_combination,
                             run_combinations, run_npp, run_rh)
from carbonsink.flux import nep as nep_mod


def test_registry_contains_seed_000():
    assert set(SEED_000) <= set(COMBINATIONS)
    assert len(COMBINATIONS) == len(NPP_MODELS) * len(RH_MODELS) + len(NEP_MODELS) >= 6
    assert "nep_given" in COMBINATIONS and "given+pei" in COMBINATIONS
    c = get_combination("modis+gsmsr_bl")
    assert c.npp.name == "modis" and c.rh.name == "gsmsr_bl"


@pytest.mark.parametrize("bad", ["modis+foo", "modis", "casa+pei+shi", "", "MODIS+pei"])
def test_unknown_combination_lists_valid_names(bad):
    with pytest.raises(UnknownModelError) as exc:
        get_combination(bad)
    msg = str(exc.value)
    for name in SEED_000:
        assert name in msg
    with pytest.raises(UnknownModelError, match="valid names are"):
        run_combination(bad, {})


@pytest.mark.parametrize("name", SEED_000)
def test_each_combination_nep_exact_and_attrs(inputs, name):
    ds = run_combination(name, inputs)
    npp_name, rh_name = name.split("+")
    assert np.array_equal(ds.nep.values, ds.npp.values - ds.rh.values, equal_nan=True)
    for v in ("npp", "rh", "nep"):
        assert ds[v].attrs["units"] == "g C m-2 month-1"
        assert "long_name" in ds[v].attrs
    assert ds.nep.attrs["npp_model"] == npp_name and ds.nep.attrs["rh_model"] == rh_name
    assert ds.attrs["combination"] == name
    params = json.loads(ds.attrs["parameters"])
    assert set(params) == {"npp", "rh"} and params["npp"] and params["rh"]
    if rh_name.startswith("gsmsr"):
        assert "rs" in ds and ds.rs.attrs["beta_status"].startswith("unresolved")
        np.testing.assert_array_less(ds.rh.values, ds.rs.values + 1e-12)  # Rh <= Rs
    assert ds.sizes["time"] == 36


def test_options_routing(inputs):
    a = run_combination("modis+gsmsr_bl", inputs)
    b = run_combination("modis+gsmsr_bl", inputs, gsmsr_bl={"beta": -0.006},
                        modis={"split": "start"}, casa={"c": 1.19})  # casa ignored here
    assert json.loads(b.rs.attrs["parameters"])["beta"] == -0.006
    assert json.loads(b.npp.attrs["parameters"])["split"] == "start"
    assert not np.allclose(a.rs.values, b.rs.values)
    with pytest.warns(RuntimeWarning, match="Rh > Rs"):
        c = run_combination("modis+gsmsr_bl", inputs, options={"mode": "paper"})
    assert "rh_gt_rs" in c and c.rh_gt_rs.dtype == bool
    assert json.loads(c.rh.attrs["parameters"])["scaling"] == "direct"
    with pytest.raises(InvalidArgumentError, match="valid options"):
        run_combination("modis+pei", inputs, pei={"beta": 1})
    with pytest.raises(InvalidArgumentError, match="option groups"):
        run_combination("modis+pei", inputs, pie={"b": 1})


def test_missing_input_named(inputs):
    del inputs["soc"]
    with pytest.raises(InputError, match="soc"):
        run_combination("modis+gsmsr_shi", inputs)


def test_run_combinations_share_models(inputs):
    res = run_combinations("seed_000", inputs)
    assert list(res) == list(SEED_000)
    assert res["modis+pei"].npp is not None
    xr.testing.assert_identical(res["modis+pei"].npp, res["modis+gsmsr_shi"].npp)
    xr.testing.assert_identical(res["casa+pei"].rh, res["modis+pei"].rh)
    # "all": every registered combination whose inputs are given (no given products here)
    assert list(run_combinations("all", inputs)) == [c for c in COMBINATIONS if "given" not in c]


def test_register_new_rh_model(inputs):
    @register_rh_model("constant", inputs=("tas",))
    def _const(inp, **opts):
        r = xr.zeros_like(inp["tas"]) + 5.0
        r.attrs = {"units": "g C m-2 month-1", "model": "constant", "parameters": "{}"}
        return xr.Dataset({"rh": r})

    try:
        assert "casa+constant" in COMBINATIONS
        ds = run_combination("modis+constant", inputs)
        np.testing.assert_allclose(ds.nep.values, ds.npp.values - 5.0)
    finally:
        RH_MODELS.pop("constant")
    assert "modis+constant" not in COMBINATIONS


def test_pei_paper_mode_gives_annual_nep(inputs):
    ds = run_combination("modis+pei", inputs, pei={"mode": "paper"})
    assert ds.nep.attrs["units"] == "g C m-2 yr-1" and ds.sizes["time"] == 3
    np.testing.assert_allclose(ds.npp.values, inputs["npp_annual"].values, rtol=1e-12)
    monthly = run_combination("modis+pei", inputs)
    assert float(annual(monthly.rh).mean()) > 3 * float(ds.rh.mean())


def test_annual_sums_and_nan_policy(inputs):
    ds = run_combination("modis+gsmsr_bl", inputs)
    ya = annual(ds)
    assert ya.nep.attrs["units"] == "g C m-2 yr-1" and ya.sizes["time"] == 3
    np.testing.assert_allclose(ya.npp.values, inputs["npp_annual"].values, rtol=1e-12)
    np.testing.assert_allclose(ya.nep.values, ya.npp.values - ya.rh.values, rtol=1e-12)
    partial = annual(ds.nep.isel(time=slice(0, 30)))
    assert np.isnan(partial.isel(time=2)).all()
    gap = ds.nep.copy()
    gap[5, 0, 0] = np.nan
    assert np.isnan(annual(gap)[0, 0, 0]) and np.isfinite(annual(gap)[1, 0, 0])


def test_nep_units_alignment():
    t = xr.DataArray(np.arange(4.0), dims="time",
                     coords={"time": np.array(["2003-01", "2003-02", "2003-03", "2003-04"],
                                              dtype="datetime64[ns]")})
    n = t.assign_attrs(units="g C m-2 month-1", model="a")
    r = (t.isel(time=slice(1, 4)) / 1000).assign_attrs(units="kg C m-2 month-1", model="b")
    out = nep_mod.nep(n, r)
    assert out.sizes["time"] == 3
    np.testing.assert_allclose(out.values, n.values[1:] - r.values * 1000)
    assert out.attrs["npp_model"] == "a" and out.attrs["rh_model"] == "b"
    with pytest.raises(UnitError):
        nep_mod.nep(n, r.assign_attrs(units="g C m-2 yr-1"))
    sp = xr.DataArray(np.ones((4, 2)), dims=("time", "x"), coords={"time": t.time, "x": [0, 1]},
                      attrs={"units": "g C m-2 month-1"})
    with pytest.raises(AlignmentError, match="'x'"):
        nep_mod.nep(sp, sp.assign_coords(x=[5, 6]))
    np.testing.assert_array_equal(nep_mod.nep(np.array([3.0]), np.array([1.0])), [2.0])


def test_run_npp_and_run_rh(inputs):
    n = run_npp("modis", inputs, split="start")
    assert n.attrs["npp_model"] == "modis" and n.attrs["model"] == "modis_monthly"
    r = run_rh("gsmsr_shi", inputs, beta=-0.006, clip_to_rs=False)
    assert set(r.data_vars) == {"rh", "rs"} and r.attrs["rh_model"] == "gsmsr_shi"
    assert json.loads(r.rh.attrs["parameters"])["clip_to_rs"] is False
    with pytest.raises(UnknownModelError, match="casa, given, modis"):
        run_npp("miami", inputs)
    with pytest.raises(UnknownModelError, match="century, given, gsmsr_bl, gsmsr_shi, pei"):
        run_rh("roth_c", inputs)
