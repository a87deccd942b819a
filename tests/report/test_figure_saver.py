"""Figures saved by a second process (FigureSaver) equal figures saved inline."""

import numpy as np
import pytest
import xarray as xr

from carbonsink.report import figures as F


def _map():
    da = xr.DataArray(np.arange(400.0).reshape(20, 20), dims=("y", "x"),
                      coords={"y": np.arange(20)[::-1] * 0.1, "x": np.arange(20) * 0.1},
                      attrs={"units": "g C m-2 yr-1"})
    return F.map_figure(da, title="test")


def _assert_same_picture(got, want):
    """Byte-identical PNGs; or, rarely, one text label a few pixels to one side.

    In about one save in 40 here, the forked saving process draws one label (seen: the x-axis
    label) a few pixels off: matplotlib's glyph placement in the forked process differs at
    random (text metrics and draw positions are the same; not the garbage collector, not the
    saver's watch thread; cause not found). Then the pictures must still have the same size,
    mode and PNG text chunks, and differ in at most 0.5 % of the pixels, all within one band
    of text height (a wrong map, colour bar or layout differs far more).
    """
    if got.read_bytes() == want.read_bytes():
        return
    from PIL import Image

    with Image.open(got) as g, Image.open(want) as w:
        assert (g.size, g.mode, g.text) == (w.size, w.mode, w.text)
        a = np.asarray(g.convert("RGBA"), dtype=int)
        b = np.asarray(w.convert("RGBA"), dtype=int)
    rows, cols = np.nonzero(np.abs(a - b).sum(axis=-1))
    assert rows.size <= 0.005 * a.shape[0] * a.shape[1]
    assert rows.max() - rows.min() < 40


def test_saved_by_second_process_equals_inline(tmp_path):
    F.save_figure(_map(), tmp_path / "inline.png", {"k": "v"})
    with F.FigureSaver() as saver:
        F.figure_tag("step")
        F.save_figure(_map(), tmp_path / "bg.png", {"k": "v"}, formats=("png", "svg"))
        cpu, busy = saver.flush()
        F.figure_tag(None)
    _assert_same_picture(tmp_path / "bg.png", tmp_path / "inline.png")
    assert (tmp_path / "bg.svg").exists()
    assert set(cpu) == {"step"} and cpu["step"] > 0 and busy == set()
    assert F._SAVER is None


def test_abandon_removes_and_errors_surface(tmp_path):
    with F.FigureSaver() as saver:
        F.save_figure(_map(), tmp_path / "a.png")
        saver.abandon()
        assert not (tmp_path / "a.png").exists()
        F.save_figure(_map(), tmp_path / "good.png")
        F.save_figure(_map(), tmp_path / "bad.png", {"k": 1})  # PNG text must be str
        with pytest.raises(AttributeError):
            saver.flush()
        saver.abandon()  # the whole failed batch goes
        assert not (tmp_path / "good.png").exists() and not (tmp_path / "bad.png").exists()


def test_saving_processes_run_at_a_lower_priority():
    import os

    if not hasattr(os, "nice"):
        pytest.skip("no process priorities on this platform")
    with F.FigureSaver(workers=2) as saver:
        if saver._pool is None:
            pytest.skip("figures are saved inline here (no fork)")
        niceness = {saver._pool.submit(os.nice, 0).result() for _ in range(4)}
    mine = os.nice(0)
    assert niceness == {min(mine + F.SAVER_NICENESS, 19)}
