"""Exception hierarchy of carbonsink.

Every error says what was expected, what was found, which file or variable is
concerned and, where possible, how to fix it.
"""

from __future__ import annotations

from collections.abc import Iterable


class CarbonsinkError(Exception):
    """Base class of all carbonsink errors."""


class UnitError(CarbonsinkError):
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


class AlignmentError(CarbonsinkError):
    """Inputs cannot be put on one grid (no CRS, no overlap, bad resolution ...)."""


class InsufficientDataError(CarbonsinkError):
    """Too few valid values, or the requested period is not covered."""


class InputError(CarbonsinkError):
    """An input file is missing, unreadable or malformed."""


class ConfigError(CarbonsinkError):
    """The study file is invalid."""


class UnknownModelError(CarbonsinkError, KeyError):
    """A model or combination name is not in its registry."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind = kind
        self.name = name
        self.valid = sorted(valid)
        super().__init__(f"unknown {kind} '{name}'; valid names are: {', '.join(self.valid)}")

    def __str__(self) -> str:  # KeyError would otherwise repr() the message
        return self.args[0]
