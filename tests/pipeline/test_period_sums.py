"""The flux step sums NEP of an NPP + Rh combination as Σ NPP − Σ Rh (no monthly NEP): the
same attributes and missing periods as summing the monthly NEP, values equal to float32
rounding; other fluxes (and a combination without both NPP and Rh) are summed as they are."""

import numpy as np
import pytest

from carbonsink.cube.temporal import growing_season, to_annual
from carbonsink.demo import generate
from carbonsink.flux.chain import run_chain
from carbonsink.pipeline.steps import _period_sums


@pytest.fixture(scope="module")
def fluxes():
    d = generate(ny=12, nx=15)
    inputs = {k: v for k, v in d.items() if hasattr(v, "dims")}
    ds = run_chain(["casa+gsmsr_bl"], inputs)["casa+gsmsr_bl"]
    ds = ds[["npp", "rh", "nep", "rs"]].load()
    ds["npp"][5, 2, 3] = np.nan  # a missing month of NPP only: that year's NEP is missing
    ds["nep"][5, 2, 3] = np.nan
    return ds


@pytest.mark.parametrize("aggregate", [
    lambda x: to_annual(x, min_valid_fraction=1.0),
    lambda x: growing_season(x, months=(5, 6, 7, 8, 9))])
def test_nep_of_the_sums_equals_the_sum_of_nep(fluxes, aggregate):
    got = _period_sums(fluxes, aggregate).compute()
    want = aggregate(fluxes).compute()
    assert list(got.data_vars) == list(want.data_vars)
    for v in want.data_vars:
        assert got[v].attrs == want[v].attrs
        assert got[v].dims == want[v].dims
        np.testing.assert_array_equal(np.isnan(got[v].values), np.isnan(want[v].values))
    for v in ("npp", "rh", "rs"):
        np.testing.assert_array_equal(got[v].values, want[v].values)
    scale = float(np.nanmax(np.abs(want["npp"].values)))
    np.testing.assert_allclose(got["nep"].values, want["nep"].values, rtol=0,
                               atol=4 * np.finfo(np.float32).eps * scale)
    assert np.isnan(got["nep"].values[0, 2, 3])


def test_nep_without_its_parts_is_summed_as_it_is(fluxes):
    only = fluxes[["nep"]]
    agg = lambda x: to_annual(x, min_valid_fraction=1.0)  # noqa: E731
    np.testing.assert_array_equal(_period_sums(only, agg)["nep"].values,
                                  agg(only)["nep"].values)
    direct = fluxes.copy()
    direct["nep"] = direct["nep"].assign_attrs(model="nep_given")  # a direct NEP model
    np.testing.assert_array_equal(_period_sums(direct, agg)["nep"].values,
                                  agg(direct)["nep"].values)
