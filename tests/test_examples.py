"""Every example study file parses against the current study schema (its analyses and
options are registered and valid). Running them needs the demo inputs (see examples/README)."""

from pathlib import Path

import pytest

from carbonsink.pipeline import load_study

EXAMPLES = sorted((Path(__file__).parents[1] / "examples").glob("*.yaml"))


def test_there_are_examples_for_every_paper():
    names = " ".join(p.name for p in EXAMPLES)
    for paper in ("000", "001", "002", "003", "004"):
        assert paper in names


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_parses(path):
    cfg = load_study(path)
    assert cfg.name
    assert cfg.analyses, f"{path.name} names no analyses"
