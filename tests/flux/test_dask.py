"""numpy / xarray / dask give identical results; dask inputs stay lazy."""

import numpy as np
import pytest
import xarray as xr
from flux_helpers import chunked, make_inputs

from carbonsink.flux import SEED_000, npp, rh, run_combinations, water


def _lazy(x):
    return isinstance(x, xr.DataArray) and hasattr(x.data, "dask")


CASES = {
    "pei2009": lambda d: rh.pei2009(d["tas"], d["pr"]),
    "pei2009_days": lambda d: rh.pei2009(d["tas"], d["pr"], days_in_month=True),
    "gsmsr": lambda d: rh.gsmsr(d["tas"], d["pr"], d["soc"], beta=-0.006),
    "bond_lamberty_ratio": lambda d: rh.bond_lamberty2004(
        rh.gsmsr(d["tas"], d["pr"], d["soc"])),
    "bond_lamberty_annualised": lambda d: rh.bond_lamberty2004(
        rh.gsmsr(d["tas"], d["pr"], d["soc"]), "annualised_rate"),
    "shi2015": lambda d: rh.shi2015(rh.gsmsr(d["tas"], d["pr"], d["soc"])),
    "thornthwaite": lambda d: water.thornthwaite_pet(d["tas"]),
    "thornthwaite_dl": lambda d: water.thornthwaite_pet(d["tas"], daylength_correction=True,
                                                        lat=d["tas"].y),
    "zhou_zhang": lambda d: water.zhou_zhang_eet(d["pr"], water.thornthwaite_pet(d["tas"])),
    "wepsilon": lambda d: npp.wepsilon(d["pr"] * 0.5, d["pr"] - 10),
    "topt": lambda d: npp.optimum_temperature(d["ndvi"], d["tas"]),
    "bounds": lambda d: npp.ndvi_percentile_bounds(d["ndvi"], d["landcover"]),
    "modis": lambda d: npp.modis_monthly(d["npp_annual"], d["gpp_8day"]),
    "casa": lambda d: npp.casa(d["ndvi"], d["tas"], d["sol"], d["landcover"], pr=d["pr"]),
    "casa_paper": lambda d: npp.casa(d["ndvi"], d["tas"], d["sol"], d["landcover"],
                                     pr=d["pr"], mode="paper"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_dask_lazy_and_identical(case, no_compute):
    inp = make_inputs()
    ci = chunked(inp)
    lazy = CASES[case](ci)  # raising scheduler active: any compute fails here
    assert _lazy(lazy)
    import dask
    with dask.config.set(scheduler="synchronous"):
        got = lazy.compute()
    expected = CASES[case](inp)
    assert not _lazy(expected)
    np.testing.assert_array_equal(got.values, expected.values)
    assert got.dims == expected.dims
    # counts of flagged values are only taken for in-memory input
    counts = {k for k in expected.attrs if k.startswith("n_")}
    assert {k: v for k, v in got.attrs.items() if k not in counts} == \
        {k: v for k, v in expected.attrs.items() if k not in counts}
    for k in counts:
        assert got.attrs[k] == "not counted (lazy input)"


def test_seed_000_chain_lazy(no_compute):
    res = run_combinations(SEED_000, chunked(make_inputs()))
    for ds in res.values():
        for v in ds.data_vars.values():
            assert _lazy(v)


def test_float32_preserved():
    inp = make_inputs(dtype=np.float32)
    res = run_combinations(SEED_000, inp)
    for ds in res.values():
        for name in ("npp", "rh", "nep"):
            assert ds[name].dtype == np.float32, (ds.attrs["combination"], name)
    ref = run_combinations(SEED_000, make_inputs())
    for k in res:
        np.testing.assert_allclose(res[k].nep.values, ref[k].nep.values, rtol=2e-4, atol=2e-3)


def test_numpy_matches_xarray_for_elementwise_models():
    inp = make_inputs()
    t, p, s = inp["tas"], inp["pr"], inp["soc"]
    np.testing.assert_array_equal(rh.pei2009(t, p).values, rh.pei2009(t.values, p.values))
    np.testing.assert_array_equal(
        rh.gsmsr(t, p, s).values,
        rh.gsmsr(t.values, p.values, s.values, time=t.time.values))
    rs = rh.gsmsr(t, p, s)
    np.testing.assert_array_equal(rh.bond_lamberty2004(rs).values,
                                  rh.bond_lamberty2004(rs.values, time=rs.time.values))
    np.testing.assert_array_equal(rh.bond_lamberty2004(rs).values, rh.bond_lamberty2004(rs.values))
