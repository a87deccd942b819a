"""Figures of the report: categorical maps with class names and shares, time series with
the fitted OLS line, area-share bars, print resolution and SVG."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import xarray as xr
from PIL import Image

from carbonsink.errors import InvalidArgumentError
from carbonsink.report.figures import (DPI, area_share_figure, categorical_map_figure,
                                       map_figure, save_figure, trend_series_figure)
from carbonsink.stats import ols_four_classes


def _classes():
    rng = np.random.default_rng(0)
    slope = xr.DataArray(rng.normal(0, 1, (6, 8)), dims=("y", "x"),
                         coords={"y": np.arange(6.0)[::-1], "x": np.arange(8.0)})
    p = xr.full_like(slope, 0.01).where(slope.x < 4, 0.5)
    return ols_four_classes(slope, p).rio.write_crs(4326)


def test_categorical_legend_lists_every_class_with_its_share():
    c = _classes()
    shares = {-2: 12.5, -1: 37.5, 0: 0.0, 1: 30.0, 2: 20.0}
    fig = categorical_map_figure(c, shares=shares, title="t")
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["significant decrease (SD) (12.5 %)", "insignificant decrease (ID) (37.5 %)",
                     "no change (0.0 %)", "insignificant increase (II) (30.0 %)",
                     "significant increase (SI) (20.0 %)"]
    # a class_area_shares-like table works the same way; labels override the map's
    df = pd.DataFrame({"class": [-2, 2], "share_percent": [40.0, 60.0]})
    fig = categorical_map_figure(c, shares=df, labels={-2: "down", 2: "up"})
    texts = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert texts == ["down (40.0 %)", "up (60.0 %)"]
    with pytest.raises(InvalidArgumentError, match="flag_values"):
        categorical_map_figure(xr.DataArray(np.zeros((2, 2)), dims=("y", "x"),
                                            coords={"y": [1.0, 0.0], "x": [0.0, 1.0]}))


def test_trend_series_figure_draws_the_ols_line_with_its_slope():
    years = np.arange(2000, 2012)
    rows = []
    for zone, b in (("A", 2.0), ("B", -0.5)):
        rows += [{"zone": zone, "year": y, "value": 10 + b * (y - 2000)} for y in years]
    fig = trend_series_figure(pd.DataFrame(rows), panel="zone", units="g C m-2 yr-1")
    axes = [ax for ax in fig.axes if ax.get_visible()]
    assert [ax.get_title() for ax in axes] == ["A", "B"]
    for ax, b in zip(axes, (2.0, -0.5)):
        (fit,) = [ln for ln in ax.get_lines() if ln.get_linestyle() == "--"]
        x, y = fit.get_data()
        assert (y[-1] - y[0]) / (x[-1] - x[0]) == pytest.approx(b)
        label = ax.get_legend().get_texts()[0].get_text()
        assert label.startswith(f"{b:+.3g} g C m-2 yr-2") and "p < 0.01" in label


def test_trend_line_fit_matches_scipy_linregress():
    """The figures' OLS line and p (no scipy.stats import in the run) against the oracle."""
    from scipy.stats import linregress

    from carbonsink.report.figures import _ols_fit

    rng = np.random.default_rng(3)
    t = np.arange(2001.0, 2022.0)
    for b, noise in ((0.8, 5.0), (-0.05, 1.0), (0.0, 2.0), (3.0, 0.5)):
        v = 100.0 + b * (t - 2001) + rng.normal(0, noise, t.size)
        v[[2, 9]] = np.nan  # gaps are dropped, as in linregress on the valid years
        ok = np.isfinite(v)
        ref = linregress(t[ok], v[ok])
        slope, intercept, p = _ols_fit(t, v)
        assert slope == pytest.approx(ref.slope, rel=1e-10)
        assert intercept == pytest.approx(ref.intercept, rel=1e-9)
        assert p == pytest.approx(ref.pvalue, rel=1e-8, abs=1e-300)
    assert _ols_fit(t, 2.0 + 0.5 * t)[2] == 0.0  # a perfect line
    assert _ols_fit(t, np.full(t.size, 7.0))[:3:2] == (0.0, 1.0)  # constant: slope 0, p 1
    assert np.isnan(_ols_fit(t[:2], t[:2])[0])  # fewer than 3 years: no line


def test_area_share_bars_stack_to_100_percent():
    rows = []
    for zone, s in (("A", (10.0, 90.0)), ("B", (55.0, 45.0))):
        rows += [{"zone": zone, "class": -1, "class_name": "source", "value": s[0]},
                 {"zone": zone, "class": 1, "class_name": "sink", "value": s[1]}]
    fig = area_share_figure(pd.DataFrame(rows))
    ax = fig.axes[0]
    widths = {}
    for patch in ax.patches:
        widths.setdefault(round(patch.get_y(), 6), []).append(patch.get_width())
    assert sorted(sum(w) for w in widths.values()) == pytest.approx([100.0, 100.0])
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["source", "sink"]


def test_save_figure_print_resolution_and_svg(tmp_path):
    fig = map_figure(_classes().astype(float).assign_attrs(units="1"))
    out = save_figure(fig, tmp_path / "m.png", {"carbonsink_version": "x"},
                      formats=("png", "svg"))
    assert out == tmp_path / "m.png" and DPI >= 200
    with Image.open(out) as im:
        assert im.info["dpi"][0] == pytest.approx(DPI, abs=1)
        assert im.info["carbonsink_version"] == "x"
    svg = (tmp_path / "m.svg").read_text()
    assert svg.lstrip().startswith("<?xml") and "carbonsink_version" in svg
    # the older call (path and metadata only) still writes one PNG
    save_figure(fig, tmp_path / "n.png", {"a": "b"})
    assert (tmp_path / "n.png").exists() and not (tmp_path / "n.svg").exists()
    with pytest.raises(InvalidArgumentError, match="unsupported format"):
        save_figure(fig, tmp_path / "m.png", formats=("gif",))


@pytest.mark.parametrize("kind", ["map", "classes", "series"])
def test_saved_figure_is_the_tight_crop_drawn_once(tmp_path, kind):
    """save_figure crops to the box matplotlib's bbox_inches="tight" finds, computed without
    its extra draw: the pixels equal matplotlib's own tight output (a colour bar, a legend
    outside the axes, several panels)."""
    import io

    if kind == "map":
        fig = map_figure(_classes().astype(float).assign_attrs(units="1"), title="m")
    elif kind == "classes":
        fig = categorical_map_figure(_classes(), shares={-2: 50.0, 2: 50.0}, title="c",
                                     legend_title="class (area share)")
    else:
        rows = [{"zone": z, "year": y, "value": y * b, "units": "g"}
                for z, b in (("A", 1.0), ("B", -2.0)) for y in range(2000, 2012)]
        fig = trend_series_figure(pd.DataFrame(rows), panel="zone", units="g")
    save_figure(fig, tmp_path / "f.png")
    ref = io.BytesIO()
    fig.savefig(ref, dpi=DPI, bbox_inches="tight", format="png")
    with Image.open(tmp_path / "f.png") as ours, Image.open(ref) as theirs:
        a, b = np.asarray(ours), np.asarray(theirs)
    assert a.shape == b.shape
    np.testing.assert_array_equal(a, b)
