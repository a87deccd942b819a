"""carbonsink.plausibility: unit slips, fill values, negatives, inf, codes, empty inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from carbonsink.errors import InputError
from carbonsink.plausibility import PlausibilityWarning, check_values
from carbonsink.units import to_canonical

T = pd.date_range("2001-01-01", periods=24, freq="MS")
RNG = np.random.default_rng(42)


def _da(values, units, lazy=True):
    da = xr.DataArray(np.asarray(values, dtype="float64"), dims=("time", "y", "x"),
                      coords={"time": T[: np.shape(values)[0]]}, attrs={"units": units})
    return da.chunk({"y": 5}) if lazy else da


TAS = 8 + 12 * RNG.standard_normal((24, 20, 20))
PR = RNG.gamma(2.0, 30.0, (24, 20, 20))


def test_plausible_fields_pass_and_report_shares():
    tas = _da(TAS, "degC")
    rep = check_values(tas, "tas", name="inputs.tas")
    assert rep.ok and rep.n_sampled == 12 * 400 and rep.n_steps == 12
    # hand-computed: share of the 12 sampled steps outside [-70, 50]
    idx = np.unique(np.linspace(0, 23, 12).round().astype(int))
    sub = TAS[idx]
    assert rep.share_out_of_range == pytest.approx(np.mean((sub < -70) | (sub > 50)))
    assert "inputs.tas:" in rep.summary() and "outside [-70, 50] degC" in rep.summary()
    for da, var in ((_da(PR, "mm month-1"), "pr"),
                    (_da(RNG.uniform(-0.1, 0.9, (24, 20, 20)), "1"), "ndvi"),
                    (_da(RNG.normal(20, 40, (24, 20, 20)), "g C m-2 month-1"), "npp"),
                    (_da(RNG.normal(-5, 30, (24, 20, 20)), "g C m-2 month-1"), "nep")):
        assert check_values(da, var).ok, var


def test_kelvin_labelled_celsius_and_back():
    with pytest.raises(InputError, match=r"inputs\.tas .*100\.0 % of the sampled values.*"
                                         r"median 2\d\d\.\d.*kelvin labelled as degC.*"
                                         r'inputs\.tas\.units: "K"'):
        check_values(_da(TAS + 273.15, "degC"), "tas", name="inputs.tas", source_units="degC")
    wrong = to_canonical(_da(TAS, "K"), "tas")  # degC values declared K
    with pytest.raises(InputError, match=r'degC labelled as kelvin.*units: "degC"'):
        check_values(wrong, "tas", name="inputs.tas", source_units="K")


def test_metres_labelled_mm_and_double_scaled_ndvi():
    pr_m = to_canonical(_da(PR / 1000.0, "mm"), "pr")
    with pytest.raises(InputError, match=r'1000 times too small.*inputs\.pr\.units: "m"'):
        check_values(pr_m, "pr", name="inputs.pr", source_units="mm")
    ndvi = _da(RNG.uniform(0.05, 0.8, (24, 20, 20)) * 1e-4, "1")
    with pytest.raises(InputError, match=r"100\.0 % .*10000 times too small.*"
                                         r'inputs\.ndvi\.units: "1"'):
        check_values(ndvi, "ndvi", name="inputs.ndvi", source_units="0.0001")
    raw = _da(RNG.uniform(-1000, 9000, (24, 20, 20)), "1")
    with pytest.raises(InputError, match=r'10000 times too large.*units: "0.0001"'):
        check_values(raw, "ndvi", name="inputs.ndvi", source_units="1")


def test_daily_rate_labelled_monthly():
    per_day = _da(PR * 30.4375, "mm month-1")  # monthly totals declared "mm d-1"
    with pytest.raises(InputError, match=r'30 times too large.*units: "mm month-1"'):
        check_values(per_day, "pr", name="inputs.pr", source_units="mm d-1")


def test_undeclared_fill_value_in_file_units_with_share():
    v = TAS.copy()
    v[:, :3, :] = -9999.0          # 3 of 20 rows: 15 % of every step
    with pytest.raises(InputError, match=r"15\.0 % of the sampled values: the exact value\(s\) "
                                         r"-9999 .*undeclared fill"):
        check_values(_da(v, "degC"), "tas", name="inputs.tas")
    # stored as "0.1 mm": -9999 is -999.9 mm after conversion, still named as -9999
    p = np.round(PR * 10)
    p[:, :, :2] = -9999.0          # 2 of 20 columns: 10 %
    da = to_canonical(_da(p, "0.1 mm"), "pr")
    rep = check_values(da, "pr", how="report", source_units="0.1 mm")
    (f,) = rep.findings
    assert f.kind == "fill_value" and f.share == pytest.approx(0.10)
    assert "-9999" in f.found


def test_negative_precipitation_share():
    v = PR.copy()
    neg = np.zeros(v.shape, bool)
    neg[:, 0, :4] = True           # 4 of 400 cells: 1 %
    v[neg] = -RNG.uniform(1, 50, neg.sum())
    rep = check_values(_da(v, "mm month-1"), "pr", how="report")
    (f,) = rep.findings
    assert f.kind == "negative" and f.share == pytest.approx(0.01)
    with pytest.raises(InputError, match=r"1\.0 % of the sampled values: 48 negative values"):
        check_values(_da(v, "mm month-1"), "pr", name="inputs.pr")
    # NPP may be negative
    assert check_values(_da(v, "g C m-2 month-1"), "npp").ok


def test_infinite_values_and_empty_input():
    v = PR.copy()
    v[:, 5, 5] = np.inf
    v[:, 6, 6] = -np.inf
    with pytest.raises(InputError, match=r"0\.5 % of the sampled values: 24 of 4800 sampled "
                                         r"values are \+inf or -inf"):
        check_values(_da(v, "mm month-1"), "pr", name="inputs.pr")
    with pytest.raises(InputError, match=r"inputs\.soc .*100\.0 % .*no valid value"):
        check_values(_da(np.full((1, 4, 4), np.nan), "kg C m-2"), "soc", name="inputs.soc")
    # the sample may miss sparse data: the whole input is then looked at
    sparse = np.full((24, 50, 50), np.nan)
    sparse[3, 1, 1] = 5.0
    assert not any(f.kind == "empty" for f in
                   check_values(_da(sparse, "kg C m-2"), "soc", sample=1000, how="report")
                   .findings)


def test_unknown_land_cover_codes():
    lc = RNG.integers(1, 18, (2, 20, 20)).astype(float)
    lc[:, 0, :] = 42               # 20 of 400 cells: 5 %
    codes = range(1, 18)
    with pytest.raises(InputError, match=r"5\.0 % of the sampled values: class codes 42 are "
                                         r"not codes of the land-cover scheme.*inputs\.landcover"
                                         r"\.scheme"):
        check_values(_da(lc, "1"), "landcover", name="inputs.landcover", codes=codes)
    lc[:, 0, :] = 5
    assert check_values(_da(lc, "1"), "landcover", codes=codes).ok


def test_warn_mode_and_sample_bound():
    with pytest.warns(PlausibilityWarning, match="kelvin labelled as degC"):
        rep = check_values(_da(TAS + 273.15, "degC"), "tas", how="warn")
    assert not rep.ok and rep.findings[0].kind == "unit_slip"
    big = _da(RNG.normal(5, 10, (24, 300, 300)), "degC")
    rep = check_values(big, "tas", sample=10_000)
    assert rep.n_sampled <= 10_000 and rep.n_steps == 12 and rep.ok


def test_annual_fluxes_use_the_annual_range():
    npp_y = _da(RNG.uniform(100, 900, (2, 10, 10)), "g C m-2 yr-1")
    rep = check_values(npp_y, "npp")
    assert rep.ok and rep.valid_range == (-2400.0, 18000.0)


def test_implausibly_small_without_a_typical_factor():
    tiny = _da(RNG.uniform(0.1, 0.8, (24, 20, 20)) * 1e-8, "1")
    rep = check_values(tiny, "ndvi", how="report", source_units="0.0001")
    (f,) = rep.findings
    assert f.kind == "too_small" and f.share == 1.0 and "below the least plausible 0.01" in f.found


# --------------------------------------------------------------------------- chunk budget
# 8-day-like layout: chunks deep in time (24 steps) and small in space (8 x 10 cells), 8 x 8
# spatial chunks; float64, so one chunk is 24 * 8 * 10 * 8 = 15360 bytes

SHAPE, CHUNKS = (48, 64, 80), (24, 8, 10)
COLUMN = 48 * 8 * 10 * 8        # bytes of one spatial chunk over both time chunks


def _recording(values, units, chunks=CHUNKS):
    """A lazy input that records the location of every chunk it computes (decompresses)."""
    import dask.array as dsa

    seen = []

    def load(block, block_info=None):
        seen.append(tuple(block_info[0]["chunk-location"]))
        return block

    arr = dsa.from_array(np.asarray(values, dtype="float64"), chunks=chunks)
    arr = arr.map_blocks(load, dtype="float64", meta=np.array((), dtype="float64"))
    da = xr.DataArray(arr, dims=("time", "y", "x"), attrs={"units": units},
                      coords={"time": pd.date_range("2001-01-01", periods=values.shape[0],
                                                    freq="8D")})
    return da, seen


def _cost(locations, chunks=CHUNKS, item=8):
    """Bytes of the distinct chunks at ``locations`` (hand count from the chunk sizes)."""
    sizes = [np.diff(np.r_[0, np.cumsum(np.broadcast_to(c, (n // c,)))]) for n, c in
             zip(SHAPE, chunks)]
    return sum(int(np.prod([sizes[a][i] for a, i in enumerate(loc)])) * item
               for loc in set(locations))


def _chunk_of(idx, size):
    return set((np.asarray(idx) // size).tolist())


def test_deep_time_small_space_chunks_bounded_and_spread(monkeypatch):
    from carbonsink import plausibility as pl

    budget = 7 * COLUMN + 100    # room for 7 spatial chunks over the 2 time chunks
    monkeypatch.setattr(pl, "SAMPLE_BLOCK_BYTES", budget)
    values = RNG.gamma(2.0, 30.0, SHAPE)
    da, seen = _recording(values, "mm month-1")
    # the strided subset alone (no confinement) would touch every chunk: 2 x 64 chunks
    stride = int(np.ceil((64 * 80 / 100) ** 0.5))
    assert _chunk_of(range(0, 64, stride), 8) == set(range(8))
    assert _chunk_of(range(0, 80, stride), 10) == set(range(8))
    assert 2 * 64 * 24 * 8 * 10 * 8 > budget

    rep = check_values(da, "pr", sample=1200)
    assert rep.ok and rep.n_steps == 12
    # chunks really computed: within the budget, both time chunks, several distant tiles
    assert seen and _cost(seen) <= budget
    assert {t for t, _, _ in seen} == {0, 1}
    rows, cols = {r for _, r, _ in seen}, {c for _, _, c in seen}
    assert {0, 7} <= rows and {0, 7} <= cols and len(rows) * len(cols) >= 4
    # 7 tiles (a Latin hypercube of chunks: 7 distinct chunk rows and columns), each with the
    # same cells, a 3 x 4 grid within 100 // 7 = 14 cells per step (hand count)
    assert len(set(seen)) == 2 * 7 and len(rows) == len(cols) == 7
    assert rep.n_sampled == 12 * 7 * 3 * 4
    # the selected cells lie in those tiles and the values are those cells' (pointwise)
    index, n = pl._sample_index(da, 1200, "time")
    y, x = np.asarray(index["y"]), np.asarray(index["x"])
    assert {(r, c) for _, r, c in seen} == set(zip((y // 8).tolist(), (x // 10).tolist()))
    got, _ = pl._sample(da, 1200, "time")
    np.testing.assert_array_equal(got, values[index["time"]][:, y, x].ravel())


def test_confined_sample_still_detects_slips_and_edge_fill(monkeypatch):
    from carbonsink import plausibility as pl

    monkeypatch.setattr(pl, "SAMPLE_BLOCK_BYTES", 7 * COLUMN + 100)
    pr = RNG.gamma(2.0, 30.0, SHAPE)
    # metres labelled mm over the whole field
    da, seen = _recording(pr / 1000.0, "mm month-1")
    with pytest.raises(InputError, match=r'1000 times too small.*inputs\.pr\.units: "m"'):
        check_values(da, "pr", name="inputs.pr", source_units="mm", sample=1200)
    assert _cost(seen) <= pl.SAMPLE_BLOCK_BYTES
    # an undeclared fill value over the last chunk row (the grid's southern edge)
    v = pr.copy()
    v[:, 56:, :] = -9999.0
    da, seen = _recording(v, "mm month-1")
    rep = check_values(da, "pr", how="report", sample=1200)
    y = pl._sample_index(da, 1200, "time")[0]["y"]
    (f,) = rep.findings
    assert f.kind == "fill_value" and f.share == pytest.approx(np.mean(np.asarray(y) >= 56))
    assert _cost(seen) <= pl.SAMPLE_BLOCK_BYTES


def test_one_spatial_chunk_when_even_one_exceeds_the_budget(monkeypatch):
    from carbonsink import plausibility as pl

    monkeypatch.setattr(pl, "SAMPLE_BLOCK_BYTES", 1000)   # less than any chunk
    da, seen = _recording(RNG.gamma(2.0, 30.0, SHAPE), "mm month-1")
    rep = check_values(da, "pr", sample=1200)
    # the least any sample reads: one (middle) spatial chunk in each of the 2 time chunks
    assert set(seen) == {(0, 3, 3), (1, 3, 3)} and _cost(seen) == COLUMN
    assert rep.n_sampled == 12 * 80 and rep.ok


def test_whole_grid_chunks_and_numpy_inputs_keep_the_strided_sample(monkeypatch):
    from carbonsink import plausibility as pl

    values = RNG.normal(5, 10, (24, 60, 60))
    expected = {"time": np.unique(np.linspace(0, 23, 12).round().astype(int))}
    # monthly layout: 12 steps x the whole grid per chunk, within the default budget
    monthly = _da(values, "degC", lazy=False).chunk({"time": 12, "y": 60, "x": 60})
    for da in (monthly, _da(values, "degC", lazy=False)):
        index, n = pl._sample_index(da, 1200, "time")
        assert n == 12 and np.array_equal(index["time"], expected["time"])
        assert index["y"] == slice(None, None, 6) and index["x"] == slice(None, None, 6)
    # a tight budget cannot confine a single spatial chunk: the strided subset is kept
    monkeypatch.setattr(pl, "SAMPLE_BLOCK_BYTES", 1000)
    index, _ = pl._sample_index(monthly, 1200, "time")
    assert index["y"] == slice(None, None, 6) and index["x"] == slice(None, None, 6)
    index, _ = pl._sample_index(_da(values, "degC", lazy=False), 1200, "time")
    assert index["y"] == slice(None, None, 6)


def test_samples_read_together_equal_those_read_one_by_one(monkeypatch):
    """read_samples reads the samples of several inputs in one computation: the same values
    and step counts as each input's own read, and check_values gives the same report from
    them (here with chunks deep in time, so the confined Latin-hypercube sample is used)."""
    from carbonsink import plausibility as P

    monkeypatch.setattr(P, "SAMPLE_BLOCK_BYTES", 4 * 4 * 6 * 6 * 8)
    deep = _da(RNG.gamma(2.0, 30.0, (24, 36, 36)), "mm month-1").chunk(
        {"time": 12, "y": 6, "x": 6})
    inputs = [(_da(TAS, "degC"), "tas"), (_da(PR, "mm month-1", lazy=False), "pr"),
              (deep, "pr"), (_da(TAS[0][None], "degC").isel(time=0), "tas")]
    together = P.read_samples([da for da, _ in inputs], sample=1000)
    for (da, var), (values, n_steps) in zip(inputs, together):
        alone, n_alone = P._sample(da, 1000, "time")
        np.testing.assert_array_equal(values, alone)
        assert n_steps == n_alone and values.dtype == np.float64
        a = check_values(da, var, sample=1000, how="report")
        b = check_values(da, var, sample=1000, how="report", sampled=(values, n_steps))
        assert a.summary() == b.summary() and a.findings == b.findings
    assert together[2][0].size < deep.size  # bounded, not the whole input


def test_short_time_chunks_are_sampled_over_the_seasons():
    """8-day GPP stored 6 composites (48 days) per chunk: the sample reads 4 of the 23
    chunks; picked by time of year as well as by position, they cover the year, so a flux
    near zero in winter and large in summer is not taken for a unit slip (chunks picked by
    position only -- first, last, between -- all fell in December-February here and read
    as "1000 times too small")."""
    from carbonsink import plausibility as pl

    time = pd.DatetimeIndex([f"{y}-01-01" for y in (2001, 2002, 2003)])
    time = pd.DatetimeIndex(np.concatenate(
        [pd.date_range(t, periods=46, freq="8D").values for t in time]))
    doy = time.day_of_year.to_numpy()
    season = np.clip(np.sin(np.pi * (doy - 60) / 240.0), 0, None) ** 2  # 0 Nov-Feb
    gpp = (40.0 * season)[:, None, None] * RNG.uniform(0.5, 1.5, (time.size, 12, 12))
    da = xr.DataArray(gpp, dims=("time", "y", "x"), coords={"time": time},
                      attrs={"units": "g C m-2"}).chunk({"time": 6, "y": 12, "x": 12})
    steps = pl._sample_steps(da, "time")
    chunks = set((steps // 6).tolist())
    assert len(chunks) == pl.CHUNKS_SAMPLED and steps.size >= 8
    months = set(time[steps].month)
    assert {m for m in months if m in (5, 6, 7, 8, 9)}, months  # the growing season is read
    assert {(m % 12) // 3 for m in months} == {0, 1, 2, 3}  # all four seasons
    rep = check_values(da, "gpp", name="inputs.gpp_8day", how="report")
    assert rep.ok, rep.message()
    # 12-month chunks: each month of the year sampled once across the 4 chunks read
    yearly = xr.DataArray(np.zeros((120, 2, 2)), dims=("time", "y", "x"),
                          coords={"time": pd.date_range("2001-01-01", periods=120,
                                                        freq="MS")}).chunk({"time": 12})
    s = pl._sample_steps(yearly, "time")
    assert len(set((s // 12).tolist())) == pl.CHUNKS_SAMPLED
    assert sorted(set((s % 12).tolist())) == list(range(12))
