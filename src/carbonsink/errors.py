"""Exception hierarchy of carbonsink.

Every error says what was expected, what was found, which file or variable is
concerned and, where possible, how to fix it.

::

    CarbonsinkError
      ├── UnitError                       wrong or missing units
      ├── AlignmentError                  inputs cannot be put on one grid
      ├── InsufficientDataError           too few valid values / period not covered
      ├── InputError (ValueError)         an input file or array is missing or malformed
      ├── InvalidArgumentError (ValueError)  a bad argument value to a library function
      ├── ConfigError                     the study file only
      └── UnknownNameError (KeyError)     an unknown name; lists the valid ones
            ├── UnknownModelError
            ├── UnknownVariableError
            └── UnknownAnalysisError

Library code raises the specific classes; so ``except ValueError`` and
``except KeyError`` work as a Python user expects.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["CarbonsinkError", "UnitError", "AlignmentError", "InsufficientDataError",
           "InputError", "InvalidArgumentError", "ConfigError", "UnknownNameError",
           "UnknownModelError", "UnknownVariableError", "UnknownAnalysisError"]


class CarbonsinkError(Exception):
    """Base class of all carbonsink errors (never raised bare by library code)."""


class UnitError(CarbonsinkError, ValueError):
    """A variable has a missing or incompatible ``units`` attribute."""

    def __init__(self, variable: str, expected: str, found: str | None, fix: str | None = None):
        self.variable = variable
        self.expected = expected
        self.found = found
        found_txt = "no 'units' attribute" if found in (None, "") else f"'{found}'"
        msg = f"variable '{variable}': expected units compatible with '{expected}', found {found_txt}"
        if fix is None:
            fix = (
                "set the units in the study file (inputs.<name>.units) or as the "
                "DataArray attribute 'units'"
            )
        super().__init__(f"{msg}. Fix: {fix}.")


class AlignmentError(CarbonsinkError, ValueError):
    """Inputs cannot be put on one grid (no CRS, no overlap, bad resolution ...)."""


class InsufficientDataError(CarbonsinkError, ValueError):
    """Too few valid values, or the requested period is not covered."""


class InputError(CarbonsinkError, ValueError):
    """An input file or array is missing, unreadable or malformed."""


class InvalidArgumentError(CarbonsinkError, ValueError):
    """A library function got an argument value it cannot use (names the argument and the
    allowed values)."""


class ConfigError(CarbonsinkError):
    """The study file is invalid (raised only while reading or checking a study)."""


class UnknownNameError(CarbonsinkError, KeyError):
    """A name (model, variable, analysis, combination ...) is not in its registry.

    ``valid`` lists the names that would have been accepted.
    """

    kind_default = "name"

    def __init__(self, kind: str | None, name: str, valid: Iterable[str]):
        self.kind = kind or self.kind_default
        self.name = name
        self.valid = sorted(str(v) for v in valid)
        super().__init__(f"unknown {self.kind} '{name}'; valid names are: "
                         f"{', '.join(self.valid) if self.valid else '(none registered)'}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]


class UnknownModelError(UnknownNameError):
    """A model or combination name is not in its registry."""

    kind_default = "model"


class UnknownVariableError(UnknownNameError):
    """A variable name is not a canonical carbonsink variable."""

    kind_default = "variable"


class UnknownAnalysisError(UnknownNameError):
    """An analysis name is not registered."""

    kind_default = "analysis"
