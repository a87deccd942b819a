"""Study-file schema: valid files load, bad ones give errors naming the key and allowed values."""

import textwrap

import pytest

from carbonsink.errors import ConfigError
from carbonsink.pipeline.config import load_study, parse_study

BASE = {
    "name": "t",
    "period": {"start": "2001-01", "end": "2002-12"},
    "grid": {"crs": "EPSG:4326", "resolution": 0.1, "bounds": [100, 30, 101, 31]},
    "inputs": {"tas": {"path": "tas.nc", "units": "degC"}},
}


def with_(**kw):
    d = {**BASE}
    d.update(kw)
    return d


def test_minimal_study_loads_with_defaults(tmp_path):
    p = tmp_path / "s.yaml"
    p.write_text(textwrap.dedent("""
        name: t
        period: {start: 2001, end: 2002}
        grid: {crs: "EPSG:4326", resolution: 0.1, bounds: [100, 30, 101, 31]}
        inputs:
          tas: {path: tas.nc, units: degC}
    """))
    cfg = load_study(p)
    assert cfg.period.start_month == "2001-01" and cfg.period.end_month == "2002-12"
    assert cfg.models.combination_names() == "all"
    assert cfg.resolve("tas.nc") == tmp_path / "tas.nc"
    assert len(cfg.sha256) == 64
    assert "zarr" in cfg.outputs.formats


def test_unknown_key_names_key_and_allowed_keys():
    with pytest.raises(ConfigError) as err:
        parse_study(with_(modles={}))
    msg = str(err.value)
    assert "modles" in msg and "allowed keys" in msg and "models" in msg
    assert "base_dir" not in msg


def test_unknown_nested_key_and_literal_values():
    bad = with_(inputs={"tas": {"path": "a.nc", "colour": "red"}},
                outputs={"formats": ["tiff"]})
    with pytest.raises(ConfigError) as err:
        parse_study(bad)
    msg = str(err.value)
    assert "inputs.tas.colour" in msg and "date_pattern" in msg
    assert "outputs.formats.0" in msg and "'zarr'" in msg and "'parquet'" in msg


def test_unknown_input_role_lists_roles():
    with pytest.raises(ConfigError, match="unknown input role.*'foo'.*allowed roles: tas"):
        parse_study(with_(inputs={"foo": {"path": "x.tif"}}))


def test_grid_must_be_given_one_way():
    with pytest.raises(ConfigError, match="exactly one of"):
        parse_study(with_(grid={"crs": "EPSG:4326", "resolution": 0.1, "bounds": [0, 0, 1, 1],
                                "template": "t.tif"}))
    with pytest.raises(ConfigError, match="grid.like names input 'ndvi'"):
        parse_study(with_(grid={"like": "ndvi"}))
    with pytest.raises(ConfigError, match="xmin < xmax"):
        parse_study(with_(grid={"crs": "EPSG:4326", "resolution": 0.1, "bounds": [1, 0, 0, 1]}))


def test_period_and_missing_keys():
    with pytest.raises(ConfigError, match="period: required key is missing"):
        parse_study({k: v for k, v in BASE.items() if k != "period"})
    with pytest.raises(ConfigError, match="start 2003-01 is after end"):
        parse_study(with_(period={"start": "2003-01", "end": "2002-12"}))
    with pytest.raises(ConfigError, match="not a date"):
        parse_study(with_(period={"start": "spring", "end": "2002-12"}))


def test_bad_regex_and_missing_year_group():
    with pytest.raises(ConfigError, match="named group 'year'"):
        parse_study(with_(inputs={"ndvi": {"path": "n_*.tif", "date_pattern": r"(\d{4})"}}))
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        parse_study(with_(inputs={"ndvi": {"path": "n_*.tif", "date_pattern": "(?P<year"}}))


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="study file not found"):
        load_study(tmp_path / "nope.yaml")
    p = tmp_path / "bad.yaml"
    p.write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_study(p)
    p.write_text("- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_study(p)
