"""Canonical variables and unit conversion.

carbonsink works in a fixed set of *canonical variables* (``npp``, ``tas``,
``pr`` ...), each with canonical units, a long name and a plausible range.
Inputs arrive in whatever the product ships (0.1 °C, K, 0.1 mm, mm d-1,
W m-2 monthly means, kg C m-2, t C ha-1, MODIS digital numbers ...) and are
converted once, at the boundary, by :func:`to_units` / :func:`to_canonical`.

Unit strings follow UDUNITS conventions as written in CF files
(``"g C m-2 month-1"``, ``"kg m-2 s-1"``, ``"degC"``), with two additions:

* a standalone ``C`` token means "carbon" and is ignored dimensionally
  (``g C m-2`` is a mass per area of carbon);
* a leading number is a scale factor (``"0.1 degC"``, ``"0.1 mm month-1"``,
  ``"0.0001 kg C m-2 yr-1"``): the stored value times the factor is the
  quantity in the remaining units.

``month-1`` and ``yr-1`` are *calendar-period* units: a flux "per month" is a
total over the calendar month of the time step (its true day count, leap
years included). Converting a rate (``W m-2``, ``mm d-1``, ``kg m-2 s-1``) to a
per-period total multiplies by the period length taken from the ``time``
coordinate, whose values are period starts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import pint
import xarray as xr

from .errors import InvalidArgumentError, UnitError, UnknownVariableError

__all__ = [
    "Variable",
    "VARIABLES",
    "get_variable",
    "canonical_units",
    "parse_units",
    "to_units",
    "to_canonical",
    "ensure_units",
    "units_compatible",
    "period_of",
    "ureg",
]

ureg = pint.UnitRegistry(autoconvert_offset_to_baseunit=True)
ureg.define("fraction = [] = frac")
ureg.define("percent_ = 0.01 fraction")

_PERIOD_TOKENS = {"month": "month", "mon": "month", "months": "month",
                  "yr": "year", "year": "year", "years": "year", "a": "year"}
_TEMPERATURE_ALIASES = {
    "°c": "degC", "degc": "degC", "deg_c": "degC", "celsius": "degC",
    "degrees_celsius": "degC", "degree_celsius": "degC", "c": "degC",
    "k": "kelvin", "kelvin": "kelvin", "degk": "kelvin",
}
_DIMENSIONLESS = {"", "1", "-", "none", "unitless", "dimensionless", "fraction", "ratio", "index",
                  "class", "category", "dn"}
_WATER_VARIABLES = {"pr", "pet", "eet"}


@dataclass(frozen=True)
class Variable:
    """A canonical carbonsink variable.

    ``units`` are the canonical units of a monthly cube; ``kind`` is
    ``"flux"`` (summed over time, per-period units), ``"state"`` (averaged)
    or ``"categorical"`` (mode / nearest, never averaged).
    ``valid_range`` is the plausible range in canonical units (per month for
    fluxes); values outside it are suspicious, not necessarily wrong.
    """

    name: str
    units: str
    long_name: str
    kind: str
    valid_range: tuple[float, float]
    standard_name: str | None = None
    aliases: tuple[str, ...] = field(default_factory=tuple)

    @property
    def is_flux(self) -> bool:
        return self.kind == "flux"

    @property
    def resampling(self) -> str:
        """Spatial resampling method when coarsening (carbonsink docs/methods.md §1.5)."""
        return "mode" if self.kind == "categorical" else "average"


_VARS = [
    Variable("npp", "g C m-2 month-1", "net primary production", "flux", (-200.0, 1500.0),
             "net_primary_productivity_of_biomass_expressed_as_carbon", ("NPP", "Npp")),
    Variable("gpp", "g C m-2 month-1", "gross primary production", "flux", (0.0, 2500.0),
             "gross_primary_productivity_of_biomass_expressed_as_carbon", ("GPP", "Gpp")),
    Variable("rs", "g C m-2 month-1", "soil respiration", "flux", (0.0, 1000.0),
             None, ("Rs", "RS")),
    Variable("rh", "g C m-2 month-1", "soil heterotrophic respiration", "flux", (0.0, 800.0),
             "heterotrophic_respiration_carbon_flux", ("Rh", "RH", "HR")),
    Variable("nep", "g C m-2 month-1", "net ecosystem production", "flux", (-800.0, 1500.0),
             None, ("NEP",)),
    Variable("ndvi", "1", "normalized difference vegetation index", "state", (-1.0, 1.0),
             "normalized_difference_vegetation_index", ("NDVI",)),
    Variable("tas", "degC", "near-surface air temperature (monthly mean)", "state", (-70.0, 50.0),
             "air_temperature", ("TEM", "tem", "t2m", "TA", "temperature")),
    Variable("pr", "mm month-1", "precipitation", "flux", (0.0, 3000.0),
             "precipitation_amount", ("PRE", "pre", "precip", "P")),
    Variable("sol", "MJ m-2 month-1", "surface downwelling shortwave radiation", "flux",
             (0.0, 1300.0), "surface_downwelling_shortwave_flux_in_air",
             ("SOL", "rsds", "ssrd", "srad", "solar_radiation")),
    Variable("pet", "mm month-1", "potential evapotranspiration", "flux", (0.0, 800.0),
             "water_potential_evaporation_amount", ("PET",)),
    Variable("eet", "mm month-1", "estimated actual evapotranspiration", "flux", (0.0, 800.0),
             "water_evapotranspiration_amount", ("EET", "aet", "AET")),
    Variable("hurs", "%", "near-surface relative humidity (monthly mean)", "state",
             (0.0, 100.0), "relative_humidity", ("RHU", "rhu", "rh_air", "relative_humidity")),
    Variable("sund", "h month-1", "sunshine duration", "flux", (0.0, 450.0),
             "duration_of_sunshine", ("SSD", "ssd", "sunshine", "sunshine_duration")),
    Variable("soc", "kg C m-2", "soil organic carbon density (0-20 cm)", "state", (0.0, 300.0),
             None, ("SOC", "Ds", "soc_density")),
    Variable("landcover", "1", "land-cover class code", "categorical", (0.0, 255.0),
             "area_type", ("LC", "lc", "LC_Type1", "land_cover")),
]

VARIABLES: dict[str, Variable] = {v.name: v for v in _VARS}


def get_variable(name: str) -> Variable:
    """Return the canonical :class:`Variable` called ``name`` (or an alias)."""
    if name in VARIABLES:
        return VARIABLES[name]
    for var in _VARS:
        if name in var.aliases:
            return var
    raise UnknownVariableError("variable", name, VARIABLES)


def canonical_units(name: str, period: str | None = "month") -> str:
    """Canonical units of variable ``name`` for a time step of ``period``.

    ``period`` is ``"month"`` (default), ``"year"`` or ``None`` for a flux
    summed over some other period (e.g. a growing season): per-period flux
    units then lose their period token.
    """
    var = get_variable(name)
    if not var.is_flux or period == "month":
        return var.units
    base = var.units.replace(" month-1", "")
    if period is None:
        return base
    if period == "year":
        return base + " yr-1"
    raise InvalidArgumentError(f"period must be 'month', 'year' or None, got {period!r}")


# --------------------------------------------------------------------------- parsing

_TOKEN_RE = re.compile(r"^([A-Za-z_%°µ][A-Za-z_%°µ0-9]*?)(?:\^|\*\*)?(-?\d+)?$")


@dataclass(frozen=True)
class ParsedUnits:
    """A unit string split into ``factor × pint units × per-period``."""

    text: str
    factor: float
    units: pint.Unit
    period: str | None  # "month", "year" or None

    @property
    def dimensionality(self):
        return self.units.dimensionality


@lru_cache(maxsize=512)
def parse_units(text: str | None) -> ParsedUnits:
    """Parse a UDUNITS-style unit string.

    Raises :class:`~carbonsink.errors.InvalidArgumentError` (a ``ValueError``) if unreadable.
    """
    if text is None:
        raise InvalidArgumentError("no units")
    raw = str(text).strip()
    factor = 1.0
    m = re.match(r"^([-+]?\d*\.?\d+(?:[eE][-+]?\d+)?)(?:\s+|\s*\*\s*|$)(.*)$", raw)
    if m and m.group(1):
        factor = float(m.group(1))
        raw = m.group(2).strip()
    if raw.lower() in _DIMENSIONLESS:
        return ParsedUnits(str(text), factor, ureg.dimensionless, None)
    if raw.lower() in ("%", "percent"):
        return ParsedUnits(str(text), factor * 0.01, ureg.dimensionless, None)
    if raw.lower() in _TEMPERATURE_ALIASES:
        return ParsedUnits(str(text), factor, ureg.Unit(_TEMPERATURE_ALIASES[raw.lower()]), None)
    tokens = [t for t in re.split(r"[\s.·]+|(?<=[a-zA-Z0-9])\*(?!\*)", raw) if t]
    parts: list[str] = []
    period: str | None = None
    for i, tok in enumerate(tokens):
        if tok == "/":
            raise InvalidArgumentError(f"'/' is not supported in {text!r}; write e.g. 'm-2' "
                                       "instead")
        if "/" in tok:
            num, _, den = tok.partition("/")
            sub = []
            if num and num != "1":
                sub.append(_pint_token(num, 1, text))
            sub.append(_pint_token(den, -1, text))
            parts.extend(s for s in sub if s)
            continue
        mt = _TOKEN_RE.match(tok)
        if not mt:
            raise InvalidArgumentError(f"cannot read unit token {tok!r} in {text!r}")
        name, exp = mt.group(1), int(mt.group(2)) if mt.group(2) else 1
        if name == "C" and i > 0:  # "g C m-2": carbon marker, not coulomb
            continue
        if name.lower() in _PERIOD_TOKENS and exp == -1 and period is None:
            period = _PERIOD_TOKENS[name.lower()]
            continue
        parts.append(_pint_token(name, exp, text))
    expr = " * ".join(p for p in parts if p) or "dimensionless"
    try:
        unit = ureg.Unit(expr)
    except Exception as exc:  # pint raises several error types
        raise InvalidArgumentError(f"cannot read units {text!r}: {exc}") from exc
    return ParsedUnits(str(text), factor, unit, period)


_NAME_MAP = {"d": "day", "day": "day", "days": "day", "h": "hour", "hr": "hour", "s": "second",
             "sec": "second", "min": "minute", "ha": "hectare", "t": "tonne", "Mg": "megagram",
             "mon": "month", "yr": "year", "a": "year", "degC": "degC", "°C": "degC",
             "K": "kelvin", "W": "watt", "J": "joule", "MJ": "megajoule", "kJ": "kilojoule",
             "Pa": "pascal", "hPa": "hectopascal", "kPa": "kilopascal", "mol": "mole",
             "umol": "micromole", "µmol": "micromole", "km2": "km**2"}


def _pint_token(name: str, exp: int, text: str) -> str:
    pint_name = _NAME_MAP.get(name, name)
    try:
        ureg.Unit(pint_name)
    except Exception as exc:
        raise InvalidArgumentError(f"unknown unit {name!r} in {text!r}") from exc
    return f"{pint_name}**{exp}" if exp != 1 else pint_name


# --------------------------------------------------------------------------- conversion


def period_of(units: str) -> str | None:
    """Return ``"month"``, ``"year"`` or ``None`` for a unit string."""
    return parse_units(units).period


def units_compatible(found: str | None, expected: str, *, variable: str | None = None,
                     ignore_period: bool = False) -> bool:
    """True if ``found`` can be converted to ``expected``."""
    try:
        _linear_transform(found, expected, variable, ignore_period=ignore_period)
    except (ValueError, UnitError):
        return False
    return True


def _linear_transform(found: str | None, expected: str, variable: str | None,
                      ignore_period: bool = False) -> tuple[float, float, int]:
    """Return ``(a, b, period_power)``: target = a·source + b, then × seconds**power.

    ``period_power`` is +1 when a rate must be multiplied by the period length
    in seconds, −1 when a per-period total must be divided by it, 0 otherwise.
    """
    name = variable or "?"
    try:
        src = parse_units(found)
    except ValueError as exc:
        raise UnitError(name, expected, found, fix=f"{exc}; use UDUNITS strings such as "
                        "'g C m-2 month-1', 'degC', 'mm month-1'") from None
    dst = parse_units(expected)
    su, du = src.units, dst.units
    power = 0
    if src.period != dst.period and not ignore_period:
        if src.period is None and dst.period is not None and \
                su.dimensionality == du.dimensionality:
            pass  # an amount per time step ("0.1 mm" of monthly precipitation)
        elif src.period is None and dst.period is not None:
            du = du / ureg.second  # source is a rate: compare with target per second
            power = 1
        elif src.period is not None and dst.period is None:
            su = su / ureg.second
            power = -1
        else:
            raise UnitError(name, expected, found,
                            fix=f"a per-{src.period} total cannot be converted to per-"
                                f"{dst.period} by a unit change; aggregate in time with "
                                "carbonsink.cube.temporal instead")
    extra = 1.0
    if su.dimensionality != du.dimensionality:
        # water: kg m-2 of water is 1 mm
        water = ureg.Unit("kilogram / meter ** 2")
        if (variable in _WATER_VARIABLES or variable is None) and \
                (su / water).dimensionality == (du / ureg.millimeter).dimensionality:
            su = su / water * ureg.millimeter
        elif (variable in _WATER_VARIABLES or variable is None) and \
                (su / ureg.millimeter).dimensionality == (du / water).dimensionality:
            su = su / ureg.millimeter * water
        else:
            raise UnitError(name, expected, found)
    q0 = ureg.Quantity(0.0, su).to(du).magnitude
    q1 = ureg.Quantity(1.0, su).to(du).magnitude
    a = (q1 - q0) * src.factor / dst.factor * extra
    b = q0 / dst.factor
    return a, b, power


def packing_after_conversion(encoding: dict, found: str | None, expected: str, *,
                             variable: str | None = None) -> dict | None:
    """The integer packing of values converted from ``found`` to ``expected`` units.

    ``encoding`` describes how the source stores the values (xarray's CF keys ``dtype``,
    ``scale_factor``, ``add_offset``, ``_FillValue``: value = scale × integer + offset). A
    conversion target = a·source + b keeps every converted value on the lattice
    ``scale·a × integer + (offset·a + b)``, so the same integers store the converted values
    (within float32 rounding). Returns those CF keys, or None when the source is not stored as
    integers of at most 16 bits or the conversion multiplies by the period length (a rate to a
    per-month total: the factor changes from month to month).
    """
    dtype = encoding.get("dtype")
    if dtype is None or np.dtype(dtype).kind not in "iu" or np.dtype(dtype).itemsize > 2:
        return None
    try:
        a, b, power = _linear_transform(found, expected, variable)
    except (ValueError, UnitError):
        return None
    if power:
        return None
    s = float(encoding.get("scale_factor", 1.0))
    o = float(encoding.get("add_offset", 0.0))
    dt = np.dtype(dtype)
    fill = encoding.get("_FillValue")
    info = np.iinfo(dt)
    if fill is None or not np.isfinite(fill) or not info.min <= fill <= info.max:
        # NaN (masked cells) needs an integer: the end of the type's range
        fill = info.min if dt.kind == "i" else info.max
    return {"dtype": dt, "scale_factor": np.float32(s * a),
            "add_offset": np.float32(o * a + b), "_FillValue": dt.type(fill)}


def _period_seconds(da: xr.DataArray, period: str, time_dim: str) -> xr.DataArray:
    if time_dim not in da.coords:
        raise UnitError(str(da.name), f"per-{period}", da.attrs.get("units"),
                        fix=f"converting a rate to a per-{period} total needs a '{time_dim}' "
                            "coordinate holding the period start dates")
    t = da[time_dim]
    if not np.issubdtype(t.dtype, np.datetime64) and t.dtype != object:
        raise UnitError(str(da.name), f"per-{period}", da.attrs.get("units"),
                        fix=f"coordinate '{time_dim}' must hold dates (period starts)")
    if period == "month":
        days = t.dt.days_in_month
    else:
        days = xr.where(t.dt.is_leap_year, 366, 365)
    return (days * 86400.0).astype("float64")


def to_units(x: Any, units: str, *, variable: str | None = None, found: str | None = None,
             time_dim: str = "time", ignore_period: bool = False):
    """Convert ``x`` to ``units``.

    ``x`` is a DataArray whose ``units`` attribute says what it holds (or
    ``found`` overrides it), or a numpy array / scalar with ``found`` given.
    Lazy (dask-backed) input stays lazy. Returns the same type with the
    ``units`` attribute set to ``units``. Raises :class:`UnitError` naming the
    variable, the expected and the found units.
    """
    name = variable or (getattr(x, "name", None) if isinstance(x, xr.DataArray) else None)
    src = found if found is not None else (x.attrs.get("units") if isinstance(x, xr.DataArray)
                                           else None)
    if src is None or (isinstance(src, str) and src.strip() == "" and
                       parse_units(units).units != ureg.dimensionless):
        raise UnitError(str(name), units, None)
    a, b, power = _linear_transform(src, units, variable or (str(name) if name else None),
                                    ignore_period=ignore_period)
    if isinstance(x, xr.DataArray):
        attrs = dict(x.attrs)
        out = x
        if power:
            period = parse_units(units).period if power == 1 else parse_units(src).period
            secs = _period_seconds(x, period, time_dim)
            out = out * secs if power == 1 else out / secs
        if a != 1.0:
            out = out * a
        if b != 0.0:
            out = out + b
        out = out.astype(np.result_type(x.dtype, np.float32)) if x.dtype.kind in "iub" else out
        attrs["units"] = units
        out.attrs = attrs
        out.name = x.name
        if "scale_factor" in out.encoding:
            out.encoding.pop("scale_factor", None)
        return out
    if power:
        raise UnitError(str(name), units, src,
                        fix="per-period conversion needs an xarray object with a time coordinate")
    arr = np.asarray(x, dtype=float) if not hasattr(x, "dask") else x
    return arr * a + b


def to_canonical(da: xr.DataArray, variable: str, *, period: str | None = "month",
                 units: str | None = None, time_dim: str = "time") -> xr.DataArray:
    """Convert ``da`` to the canonical units of ``variable``.

    ``units`` overrides ``da.attrs['units']`` (what the study file says the
    file holds). The result has ``units``, ``long_name`` and ``standard_name``
    attributes and is named ``variable``.
    """
    var = get_variable(variable)
    target = canonical_units(var.name, period)
    if period is not None and var.is_flux:
        found = units if units is not None else da.attrs.get("units")
        try:
            fp = parse_units(found).period if found else None
        except ValueError:
            fp = None
        if fp is not None and fp != period:
            # e.g. an annual MODIS product for a monthly variable: keep its own period
            target = canonical_units(var.name, fp)
    out = to_units(da, target, variable=var.name, found=units, time_dim=time_dim)
    out.name = var.name
    out.attrs.setdefault("long_name", var.long_name)
    if var.standard_name:
        out.attrs.setdefault("standard_name", var.standard_name)
    return out


def ensure_units(x: Any, units: str, name: str, *, time_dim: str = "time"):
    """Model-boundary check used by flux functions.

    numpy arrays and scalars are taken to be in ``units`` already (the units
    documented in brackets in the model's docstring). xarray objects must carry
    a ``units`` attribute compatible with ``units`` and are converted;
    a missing or incompatible attribute raises :class:`UnitError`.
    """
    if isinstance(x, xr.DataArray):
        if "units" not in x.attrs:
            raise UnitError(name, units, None,
                            fix=f"set {name}.attrs['units'] (e.g. '{units}') before calling")
        if x.attrs["units"] == units:
            return x
        return to_units(x, units, variable=name, time_dim=time_dim)
    return x
