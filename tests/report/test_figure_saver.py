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


def test_saved_by_second_process_equals_inline(tmp_path):
    F.save_figure(_map(), tmp_path / "inline.png", {"k": "v"})
    with F.FigureSaver() as saver:
        F.figure_tag("step")
        F.save_figure(_map(), tmp_path / "bg.png", {"k": "v"}, formats=("png", "svg"))
        cpu, busy = saver.flush()
        F.figure_tag(None)
    assert (tmp_path / "bg.png").read_bytes() == (tmp_path / "inline.png").read_bytes()
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
