"""Fixtures of the pipeline tests (helpers live in pipeline_helpers.py)."""

from pathlib import Path

import pytest
from pipeline_helpers import write_modis_like, write_pr_series, write_soc, write_tas


@pytest.fixture(scope="module")
def hetero_inputs(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("hetero")
    write_tas(folder / "tas.nc")
    write_pr_series(folder / "pr")
    write_soc(folder / "soc.tif")
    write_modis_like(folder)
    return folder
