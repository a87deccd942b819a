"""run_chain: every model once, needs, store, echo, options; same numbers as the model functions."""

import warnings

import numpy as np
import pytest
import xarray as xr

from carbonsink.errors import InputError, InvalidArgumentError, UnknownModelError
from carbonsink.flux import SEED_000, npp, rh, run_chain, run_combinations
from carbonsink.flux import registry as reg
from carbonsink.flux.nep import nep as nep_fn


@pytest.fixture
def counting_models():
    calls = []

    @reg.register_model("npp", "t_npp", inputs=("tas",))
    def _n(inputs, *, needs, scale=1.0):
        calls.append(("npp", "t_npp"))
        v = (inputs["tas"] * 0 + 10.0 * scale).assign_attrs(units="g C m-2 month-1")
        return xr.Dataset({"npp": v})

    @reg.register_model("rh", "t_rh", inputs=("tas",))
    def _r(inputs, *, needs, level=2.0):
        calls.append(("rh", "t_rh"))
        return xr.Dataset({"rh": (inputs["tas"] * 0 + level).assign_attrs(units="g C m-2 month-1")})

    @reg.register_model("rh", "t_frac", inputs=(), needs=("npp",))
    def _f(inputs, *, needs, share=0.25):
        calls.append(("rh", "t_frac"))
        out = needs["npp"] * share
        out.attrs = {"units": needs["npp"].attrs["units"], "parameters": '{"share": %s}' % share}
        return xr.Dataset({"rh": out})

    yield calls
    for kind, name in (("npp", "t_npp"), ("rh", "t_rh"), ("rh", "t_frac")):
        reg.unregister_model(kind, name)


def test_shared_models_run_once(inputs, counting_models):
    res = run_chain(["t_npp+t_rh", "t_npp+pei", "modis+t_rh"], inputs)
    assert counting_models.count(("npp", "t_npp")) == 1
    assert counting_models.count(("rh", "t_rh")) == 1
    np.testing.assert_array_equal(res["t_npp+t_rh"].nep.values, 8.0)
    xr.testing.assert_identical(res["t_npp+t_rh"].npp, res["t_npp+pei"].npp)


def test_rh_that_needs_npp_runs_per_npp_model(inputs, counting_models):
    seen = {}

    def store(key, ds, meta):
        seen[key] = meta
        return ds

    res = run_chain(["t_npp+t_frac", "modis+t_frac", "modis+pei"], inputs, store=store,
                    options={"t_npp": {"scale": 2.0}, "t_frac": {"share": 0.5}})
    assert counting_models.count(("rh", "t_frac")) == 2
    assert set(seen) == {"npp_t_npp", "rh_t_frac@t_npp", "npp_modis", "rh_t_frac@modis",
                         "rh_pei"}
    assert seen["rh_t_frac@modis"]["needs"] == {"npp": "npp_modis"}
    assert seen["rh_t_frac@modis"]["options"] == {"share": 0.5}
    a, b = res["t_npp+t_frac"], res["modis+t_frac"]
    np.testing.assert_array_equal(a.rh.values, 10.0)  # 0.5 * (10 * 2)
    np.testing.assert_array_equal(b.rh.values, 0.5 * b.npp.values)
    np.testing.assert_array_equal(b.nep.values, b.npp.values - b.rh.values)


def test_store_called_once_per_output_and_its_result_used(inputs, counting_models):
    keys = []

    def store(key, ds, meta):
        keys.append((key, meta["kind"], meta["name"]))
        if meta["kind"] == "rh":
            ds = ds.copy()
            ds["rh"] = ds["rh"] + 1.0
        return ds

    res = run_chain(["t_npp+t_rh", "t_npp+gsmsr_shi"], inputs, store=store)
    assert keys == [("npp_t_npp", "npp", "t_npp"), ("rh_t_rh", "rh", "t_rh"),
                    ("rh_gsmsr_shi", "rh", "gsmsr_shi")]
    np.testing.assert_array_equal(res["t_npp+t_rh"].rh.values, 3.0)
    np.testing.assert_array_equal(res["t_npp+t_rh"].nep.values, 7.0)
    ref = rh.shi2015(rh.gsmsr(inputs["tas"], inputs["pr"], inputs["soc"])) + 1.0
    np.testing.assert_array_equal(res["t_npp+gsmsr_shi"].rh.values, ref.values)


def test_echo_and_errors_before_running(inputs, counting_models):
    lines = []
    run_chain(["t_npp+t_frac"], inputs, echo=lines.append)
    assert lines == ["NPP model 't_npp'", "Rh model 't_frac' (on NPP 't_npp')"]
    counting_models.clear()
    small = {"tas": inputs["tas"]}
    with pytest.raises(InputError, match="'pr' is required by t_npp\\+pei"):
        run_chain(["t_npp+t_rh", "t_npp+pei"], small)
    with pytest.raises(InvalidArgumentError, match="unknown option 'levl' for Rh model 't_rh'"):
        run_chain(["t_npp+t_rh"], small, options={"t_rh": {"levl": 1}})
    with pytest.raises(InvalidArgumentError, match="option groups"):
        run_chain(["t_npp+t_rh"], small, options={"t_rhh": {}})
    with pytest.raises(UnknownModelError, match="valid names are"):
        run_chain(["t_npp+nope"], small)
    assert counting_models == []


def test_kind_qualified_options_for_given(inputs):
    from flux_helpers import modis_composite_starts

    starts = modis_composite_starts([2003, 2004, 2005])
    g = xr.DataArray(np.ones((len(starts), 6, 5)), dims=("time", "y", "x"),
                     coords={"time": starts, "y": inputs["tas"].y, "x": inputs["tas"].x},
                     attrs={"units": "g C m-2"}, name="npp")
    rh_m = run_chain(["modis+gsmsr_bl"], inputs)["modis+gsmsr_bl"].rh.rename("rh")
    res = run_chain(["given+given"], {"npp": g, "rh": rh_m},
                    options={"npp.given": {"split": "start"}, "mode": "paper"})
    assert '"split": "start"' in res["given+given"].npp.attrs["parameters"]
    assert '"split"' not in res["given+given"].rh.attrs["parameters"]  # monthly: no split


def test_run_combinations_same_numbers_as_the_model_functions(inputs):
    res = run_combinations(SEED_000, inputs)
    npps = {"modis": npp.modis_monthly(inputs["npp_annual"], inputs["gpp_8day"]),
            "casa": npp.casa(inputs["ndvi"], inputs["tas"], inputs["sol"], inputs["landcover"],
                             pr=inputs["pr"])}
    rs = rh.gsmsr(inputs["tas"], inputs["pr"], inputs["soc"])
    rhs = {"pei": rh.pei2009(inputs["tas"], inputs["pr"]),
           "gsmsr_bl": rh.bond_lamberty2004(rs), "gsmsr_shi": rh.shi2015(rs)}
    for name in SEED_000:
        n, r = name.split("+")
        ds = res[name]
        np.testing.assert_array_equal(ds.npp.values, npps[n].values)
        np.testing.assert_array_equal(ds.rh.values, rhs[r].values)
        np.testing.assert_array_equal(ds.nep.values, nep_fn(npps[n], rhs[r]).values)
        if r != "pei":
            np.testing.assert_array_equal(ds.rs.values, rs.values)
        assert ds.attrs["time_step"] == "month" and ds.attrs["combination"] == name


def test_annual_side_aggregates_the_other(inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        res = run_chain(["casa+pei", "casa+gsmsr_bl"], inputs,
                        options={"pei": {"mode": "paper"}, "gsmsr_bl": {"scaling": "direct"}})
    a = res["casa+pei"]
    assert a.attrs["time_step"] == "year" and a.npp.attrs["units"] == "g C m-2 yr-1"
    monthly = res["casa+gsmsr_bl"]
    assert monthly.attrs["time_step"] == "month" and monthly.rh_gt_rs.dtype == bool
    np.testing.assert_allclose(a.npp.values, monthly.npp.resample(time="YS").sum(skipna=False).values,
                               rtol=1e-12)
    np.testing.assert_array_equal(a.nep.values, a.npp.values - a.rh.values)
