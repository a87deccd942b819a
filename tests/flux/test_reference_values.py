"""Worked values of METHODS §12.1 (and §2.2 worked CASA example), to the printed precision."""

import numpy as np
import pytest
from flux_helpers import EXAMPLE_DAYS, EXAMPLE_P, example_t

from carbonsink.flux import npp, rh, water


def r(x, nd):
    return round(float(x), nd)


@pytest.mark.parametrize("t,p,expected", [(10, 50, 16.285), (0, 0, 3.069), (-20, 2, 1.993),
                                          (20, 100, 29.697)])
def test_pei_monthly(t, p, expected):
    assert r(rh.pei2009(t, p), 3) == expected


def test_pei_typo_value_only_by_explicit_override():
    assert r(rh.pei2009(10, 50, b=0.913), 0) == 28329
    assert r(rh.pei2009(10, 50, mode="recommended"), 3) == 16.285


def test_pei_annual_sum_vs_single_annual_evaluation():
    t, p = example_t(), EXAMPLE_P
    assert r(rh.pei2009(t, p).sum(), 2) == 163.76
    assert r(rh.pei2009_annual(t.mean(), p.sum()), 2) == 19.70
    assert r(rh.pei2009(t.mean(), p.sum(), mode="paper"), 2) == 19.70


@pytest.mark.parametrize("beta,expected", [(-0.006, 1.994), (-0.0006, 2.474)])
def test_gsmsr_daily(beta, expected):
    assert r(rh.gsmsr_daily(20, 80, 3, beta=beta), 3) == expected  # P 8 cm = 80 mm


@pytest.mark.parametrize("beta", [-0.006, -0.0006])
def test_gsmsr_zero_climate(beta):
    assert r(rh.gsmsr_daily(0, 0, 3, beta=beta), 3) == 0.495


@pytest.mark.parametrize("beta,expected", [(-0.006, 361.5), (-0.0006, 406.9)])
def test_gsmsr_annual_example_climate(beta, expected):
    rs = rh.gsmsr(example_t(), EXAMPLE_P, 3, beta=beta, days_in_month=EXAMPLE_DAYS)
    assert r(rs.sum(), 1) == expected


def test_bond_lamberty_annual():
    out = rh.bond_lamberty2004(500.0, period="year")
    assert r(out, 1) == 316.3
    assert r(out / 500.0, 3) == 0.633
    assert r(rh.BL_CROSSOVER_RS, 2) == 91.70


def test_bond_lamberty_example_year():
    rs = rh.gsmsr(example_t(), EXAMPLE_P, 3, beta=-0.006, days_in_month=EXAMPLE_DAYS)
    assert r(rs.sum(), 1) == 361.5
    assert r(rh.bond_lamberty2004(rs.sum(), period="year"), 1) == 249.6
    assert r(rh.bond_lamberty2004(rs, "annual_ratio").sum(), 1) == 249.6
    assert r(rh.bond_lamberty2004(rs, "annualised_rate").sum(), 1) == 239.1
    with pytest.warns(RuntimeWarning, match="Rh > Rs"):
        assert r(rh.bond_lamberty2004(rs, "direct").sum(), 1) == 467.7


def test_shi():
    rs = np.array([0.0, 100.0, 333.94, 500.0])
    with pytest.warns(RuntimeWarning, match="333.9"):
        out = rh.shi2015(rs, clip_to_rs=False)
    assert [r(v, 2) for v in out] == [4.89, 56.00, 105.25, 80.44]
    assert r(rh.SHI_VERTEX_RS, 1) == 333.9
    # Rh = Rs crossover at 11.93
    assert r(rh.shi2015(11.93, clip_to_rs=False), 2) == 11.93


def test_tepsilon1():
    assert [r(v, 3) for v in npp.tepsilon1(np.array([20.0, 0.0, 30.0]))] == [1.0, 0.8, 0.95]


def test_tepsilon2_ratios():
    d = np.array([-13.0, -11.6, 0.0, 10.0, 11.0])
    ratio = npp.tepsilon2(20 + d, 20.0) / npp.tepsilon2(20.0, 20.0)
    assert [r(v, 3) for v in ratio] == [0.422, 0.501, 1.0, 0.585, 0.500]
    # METHODS prints the normalising constant as 1/[(1+e^-2)(1+e^-3)]; the value 1.19186 is
    # (1+e^-2)(1+e^-3), the C that makes Tε2(Topt) = 1 (GEOS-Chem CASA uses 1.1919)
    assert r((1 + np.exp(-2)) * (1 + np.exp(-3)), 5) == 1.19186
    assert r(npp.tepsilon2(20.0, 20.0, c=1.19186), 5) == 1.0
    assert r(npp.tepsilon2(20.0, 20.0), 4) == 0.9912


@pytest.mark.parametrize("p,ep,rn,eet,pet,we", [(50, 80, 71.18, 43.18, 61.59, 0.851),
                                                (10, 120, 84.54, 9.99, 64.99, 0.577)])
def test_zhou_zhang(p, ep, rn, eet, pet, we):
    assert r(water.zhou_zhang_rn(p, ep), 2) == rn
    assert r(water.zhou_zhang_eet(p, ep), 2) == eet
    assert r(water.zhou_zhang_pet(p, ep), 2) == pet
    e, q = water.zhou_zhang_eet(p, ep), water.zhou_zhang_pet(p, ep)
    assert r(npp.wepsilon(e, q), 3) == we


def test_thornthwaite_example_climate():
    t = example_t()
    hi = water.thornthwaite_heat_index(t)
    assert r(hi, 2) == 32.06
    assert r(water.thornthwaite_exponent(hi), 4) == 1.0099
    ep = water.thornthwaite_pet(t)  # unadjusted (China CASA form)
    assert r(ep[6], 1) == 101.6  # July


def test_miami_and_thornthwaite_memorial():
    assert r(npp.miami(10, 600), 1) == 985.8
    assert r(npp.miami(10, 600, carbon_fraction=0.45), 1) == 443.6
    assert r(npp.thornthwaite_memorial(10, 600), 1) == 934.8


def test_casa_worked_example():
    f = npp.fpar_ndvi_sr(0.6, 0.023, 0.634)
    assert r(f, 3) == 0.859
    a = npp.apar(600.0, f)
    assert r(a, 1) == 257.7
    eps = npp.light_use_efficiency(18.0, 20.0, 0.8, 0.542)
    assert r(eps, 3) == 0.415
    assert r(a * eps, 1) == 106.9
