"""The error contract of carbonsink (DESIGN: "Errors people can catch").

* library code raises the specific classes of :mod:`carbonsink.errors`, never a bare
  ``CarbonsinkError``; ``ConfigError`` is reserved for the study file (``pipeline/``
  and ``cli.py``) — checked statically over the source tree;
* bad argument values are ``ValueError`` and carbonsink errors at once; unknown names
  are ``KeyError`` and list the valid names, with a plain (unquoted) ``str()``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

import carbonsink
from carbonsink import errors
from carbonsink.errors import (
    AlignmentError,
    CarbonsinkError,
    ConfigError,
    InputError,
    InsufficientDataError,
    InvalidArgumentError,
    UnitError,
    UnknownAnalysisError,
    UnknownModelError,
    UnknownNameError,
    UnknownVariableError,
)

PACKAGE_DIR = Path(carbonsink.__file__).resolve().parent


# --------------------------------------------------------------------------- static checks


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE_DIR.rglob("*.py") if "__pycache__" not in p.parts)


def _is_study_code(rel: Path) -> bool:
    """Modules allowed to raise ConfigError: the study-file reader and the CLI."""
    return rel.parts[0] == "pipeline" or rel.as_posix() == "cli.py"


def _error_name(node: ast.AST) -> str | None:
    """'ConfigError' for ``ConfigError``, ``errors.ConfigError`` or a call of either."""
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _offences() -> list[str]:
    out = []
    for path in _modules():
        rel = path.relative_to(PACKAGE_DIR)
        if rel.as_posix() == "errors.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        seen: set[int] = set()
        for node in ast.walk(tree):
            # every construction (``raise X(...)``, ``err = X(...); raise err``, a helper
            # returning ``X(...)``) and every ``raise X`` of the class itself
            if isinstance(node, ast.Call):
                name = _error_name(node)
            elif isinstance(node, ast.Raise) and node.exc is not None \
                    and not isinstance(node.exc, ast.Call):
                name = _error_name(node.exc)
            else:
                continue
            if name == "CarbonsinkError":
                why = "constructs/raises bare CarbonsinkError (use a specific class)"
            elif name == "ConfigError" and not _is_study_code(rel):
                why = "raises ConfigError outside pipeline/ and cli.py (study file only)"
            else:
                continue
            if node.lineno in seen:
                continue
            seen.add(node.lineno)
            out.append((rel.as_posix(), node.lineno, why))
    return [f"src/carbonsink/{f}:{line}: {why}" for f, line, why in sorted(out)]


def test_source_tree_is_scanned():
    rels = {p.relative_to(PACKAGE_DIR).as_posix() for p in _modules()}
    assert {"errors.py", "units.py", "cli.py", "io/netcdf.py", "cube/grid.py"} <= rels


def test_no_bare_carbonsink_error_and_config_error_only_for_the_study():
    offences = _offences()
    assert not offences, "error-class violations:\n" + "\n".join(offences)


def test_static_check_catches_violations(tmp_path):
    """The AST check recognises the forms it must reject."""
    src = ("from .errors import CarbonsinkError, ConfigError\n"
           "from . import errors\n"
           "def f():\n"
           "    raise CarbonsinkError('x')\n"
           "def g():\n"
           "    err = errors.ConfigError('y')\n"
           "    raise err\n")
    tree = ast.parse(src)
    names = [_error_name(n) for n in ast.walk(tree) if isinstance(n, ast.Call)]
    assert "CarbonsinkError" in names and "ConfigError" in names


# --------------------------------------------------------------------------- hierarchy


@pytest.mark.parametrize("cls", [UnitError, AlignmentError, InsufficientDataError, InputError,
                                 InvalidArgumentError])
def test_value_errors(cls):
    assert issubclass(cls, CarbonsinkError) and issubclass(cls, ValueError)


@pytest.mark.parametrize("cls", [UnknownModelError, UnknownVariableError, UnknownAnalysisError])
def test_unknown_name_errors_are_key_errors(cls):
    assert issubclass(cls, UnknownNameError)
    assert issubclass(cls, KeyError) and issubclass(cls, CarbonsinkError)
    assert not issubclass(cls, ValueError)


def test_config_error_is_its_own_branch():
    assert issubclass(ConfigError, CarbonsinkError)
    assert not issubclass(ConfigError, (ValueError, KeyError))


def test_all_lists_every_class():
    classes = {n for n, v in vars(errors).items()
               if isinstance(v, type) and issubclass(v, CarbonsinkError)}
    assert classes == set(errors.__all__)


def test_unknown_name_str_is_the_plain_message():
    exc = UnknownNameError("land-cover scheme", "esa", ["igbp", "clcd"])
    assert str(exc) == "unknown land-cover scheme 'esa'; valid names are: clcd, igbp"
    assert exc.kind == "land-cover scheme" and exc.name == "esa"
    assert exc.valid == ["clcd", "igbp"]
    # the default kinds of the subclasses
    assert str(UnknownVariableError(None, "x", [])).startswith("unknown variable 'x'; ")
    assert str(UnknownModelError(None, "x", ["a"])) == "unknown model 'x'; valid names are: a"
    assert "(none registered)" in str(UnknownAnalysisError(None, "x", []))


# --------------------------------------------------------------------------- behaviour


def _check_unknown(exc_info, cls, name, some_valid):
    exc = exc_info.value
    assert isinstance(exc, KeyError) and isinstance(exc, cls)
    msg = str(exc)
    assert not msg.startswith(("'", '"')), f"str() of a KeyError subclass is quoted: {msg}"
    assert name in msg and "valid names are" in msg
    assert some_valid in exc.valid and some_valid in msg


def test_get_variable_unknown_is_key_error_listing_names():
    from carbonsink import units

    with pytest.raises(KeyError) as info:
        units.get_variable("nope")
    _check_unknown(info, UnknownVariableError, "'nope'", "npp")
    assert info.value.kind == "variable"


def test_unknown_variable_is_caught_as_key_error():
    from carbonsink import units

    try:
        units.canonical_units("not_a_variable")
    except KeyError as exc:
        assert isinstance(exc, UnknownVariableError)
    else:  # pragma: no cover
        pytest.fail("no error")


def test_unknown_landcover_names():
    from carbonsink.cube import class_labels, landcover_table

    with pytest.raises(UnknownNameError) as info:
        landcover_table("esa")
    _check_unknown(info, UnknownNameError, "'esa'", "igbp")
    with pytest.raises(KeyError) as info:
        class_labels("9class")
    _check_unknown(info, UnknownNameError, "'9class'", "7class")


def test_unknown_combination_is_unknown_model():
    from carbonsink.flux import get_combination

    with pytest.raises(KeyError) as info:
        get_combination("nope+nope")
    _check_unknown(info, UnknownModelError, "nope+nope", "modis+pei")


def _cube(nt: int = 12) -> xr.DataArray:
    rng = np.random.default_rng(0)
    da = xr.DataArray(rng.normal(size=(nt, 3, 4)).astype("float64"), dims=("time", "y", "x"),
                      coords={"time": np.arange(2000, 2000 + nt), "y": [2.5, 1.5, 0.5],
                              "x": [0.5, 1.5, 2.5, 3.5]},
                      name="npp", attrs={"units": "g C m-2 yr-1"})
    return da.rio.write_crs("EPSG:4326")


def _bad_argument(exc_info, *words):
    exc = exc_info.value
    assert isinstance(exc, ValueError) and isinstance(exc, CarbonsinkError), type(exc).__mro__
    assert isinstance(exc, InvalidArgumentError), type(exc).__mro__
    for w in words:
        assert w in str(exc)


def test_regrid_bad_method():
    from carbonsink.cube import GridSpec, regrid

    with pytest.raises(ValueError) as info:
        regrid(_cube(), GridSpec("EPSG:4326", 1.0, (0, 0, 4, 3)), method="bogus")
    _bad_argument(info, "'bogus'", "average", "nearest")


def test_gridspec_bad_resolution():
    from carbonsink.cube import GridSpec

    with pytest.raises(ValueError) as info:
        GridSpec("EPSG:4326", 0, (0, 0, 1, 1))
    _bad_argument(info, "resolution", "positive")


def test_canonical_units_bad_period():
    from carbonsink.units import canonical_units

    with pytest.raises(ValueError) as info:
        canonical_units("npp", period="decade")
    _bad_argument(info, "'decade'", "'month'", "'year'")


def test_unreadable_units_are_value_errors():
    from carbonsink.units import parse_units

    with pytest.raises(ValueError) as info:
        parse_units("g / m2")
    _bad_argument(info, "'/'")


def test_date_pattern_without_year():
    from carbonsink.io.geotiff import parse_date

    with pytest.raises(ValueError) as info:
        parse_date("NDVI_2001.tif", r"NDVI_(\d{4})")
    _bad_argument(info, "named group 'year'")


def test_validation_bad_arguments():
    from carbonsink.analysis.validation import metrics

    with pytest.raises(ValueError) as info:
        metrics([1.0, 2.0], [1.0])
    _bad_argument(info, "differ in length")


def test_demo_grid_too_small():
    from carbonsink.demo import generate

    with pytest.raises(ValueError) as info:
        generate(ny=2, nx=2)
    _bad_argument(info, "4 x 4")


def test_mann_kendall_bad_variant():
    from carbonsink.stats import MK_VARIANTS, mann_kendall

    with pytest.raises(ValueError) as info:
        mann_kendall(_cube(), variant="bogus")
    _bad_argument(info, "'bogus'", next(iter(MK_VARIANTS)))


def test_ols_trend_bad_dim():
    """A bad argument to a stats function is a carbonsink ValueError too."""
    from carbonsink.stats import ols_trend

    with pytest.raises(CarbonsinkError) as info:
        ols_trend(_cube(), dim="year")
    assert isinstance(info.value, (ValueError, KeyError)), type(info.value).__mro__
    assert "year" in str(info.value)
