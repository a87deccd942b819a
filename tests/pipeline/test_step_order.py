"""Run order of the steps (map-drawing steps first, ``after`` respected) against the
report's order (study order)."""

from __future__ import annotations

import pytest
import yaml
from pipeline_helpers import study_dict

from carbonsink.analysis import Analysis, AnalysisResult, register_analysis
from carbonsink.analysis.base import ANALYSES
from carbonsink.errors import ConfigError
from carbonsink.pipeline import load_study
from carbonsink.pipeline.steps import build_steps, report_order


def _register(name: str, draws_maps: bool, after: tuple[str, ...] = ()) -> None:
    cls = type(name, (Analysis,), {"name": name, "draws_maps": draws_maps, "after": after,
                                   "run": lambda self, ctx, options: AnalysisResult()})
    register_analysis(cls)


@pytest.fixture
def probes():
    # t_map_a draws maps but reads t_table_b; t_map_c draws maps; t_table_b, t_table_d don't
    _register("t_map_a", True, after=("t_table_b",))
    _register("t_table_b", False)
    _register("t_map_c", True)
    _register("t_table_d", False)
    yield
    for n in ("t_map_a", "t_table_b", "t_map_c", "t_table_d"):
        ANALYSES.pop(n, None)


def _cfg(tmp_path, analyses):
    d = study_dict()
    d["analyses"] = {n: {} for n in analyses}
    p = tmp_path / "study.yaml"
    p.write_text(yaml.safe_dump(d, sort_keys=False))
    return load_study(p)


def test_map_drawing_steps_run_first_and_the_report_keeps_study_order(tmp_path, probes):
    study = ["t_table_d", "t_map_a", "t_table_b", "t_map_c"]
    cfg = _cfg(tmp_path, study)
    run = [s.name for s in build_steps(cfg)]
    # maps right after flux; the analyses that draw maps before the others, except where
    # `after` forbids it (t_map_a reads t_table_b, so t_table_b runs before it)
    assert run == ["prepare", "flux", "maps", "t_table_b", "t_map_a", "t_map_c", "t_table_d",
                   "report"]
    for i, name in enumerate(run):
        for dep in build_steps(cfg)[i].depends:
            assert run.index(dep) < i, (name, dep)
    # the report: study order (only moved where `after` requires), maps after the analyses
    assert report_order(cfg) == ["prepare", "flux", "t_table_d", "t_table_b", "t_map_a",
                                 "t_map_c", "maps", "report"]


def test_study_order_is_kept_when_no_analysis_draws_maps(tmp_path, probes):
    cfg = _cfg(tmp_path, ["t_table_d", "t_table_b"])
    assert [s.name for s in build_steps(cfg)][3:5] == ["t_table_d", "t_table_b"]
    assert report_order(cfg)[2:4] == ["t_table_d", "t_table_b"]


def test_builtin_map_analyses_run_before_the_summaries(tmp_path):
    cfg = _cfg(tmp_path, ["regional_summary", "trends", "sink_classes"])
    assert [s.name for s in build_steps(cfg)] == [
        "prepare", "flux", "maps", "trends", "sink_classes", "regional_summary", "report"]
    assert report_order(cfg)[2:5] == ["regional_summary", "trends", "sink_classes"]


def test_circular_after_is_a_config_error(tmp_path):
    _register("t_loop_a", True, after=("t_loop_b",))
    _register("t_loop_b", False, after=("t_loop_a",))
    try:
        cfg = _cfg(tmp_path, ["t_loop_a", "t_loop_b"])
        with pytest.raises(ConfigError, match="circular"):
            build_steps(cfg)
    finally:
        ANALYSES.pop("t_loop_a", None)
        ANALYSES.pop("t_loop_b", None)
