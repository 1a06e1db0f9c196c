"""The checks every configuration class runs on its values (raising a clear ConfigError)."""

from __future__ import annotations

import math

from voiceguard.errors import ConfigError

__all__ = ("check_bool", "check_number", "check_optional_number", "check_type")


def check_number(
    owner: object,
    name: str,
    value: object,
    *,
    low: float,
    high: float,
    unit: str = "",
    integer: bool = False,
    low_open: bool = False,
) -> None:
    """Raise ConfigError unless ``low <= value <= high`` (``low < value`` when *low_open*).

    ``bool`` is refused where a number is expected, and so is NaN.
    """
    field = f"{type(owner).__name__}.{name}"
    kind = "an integer" if integer else "a number"
    low_op = "<" if low_open else "<="
    allowed = f"{kind}, {low:g} {low_op} value <= {high:g}" + (f" ({unit})" if unit else "")
    if integer:
        ok_type = isinstance(value, int) and not isinstance(value, bool)
    else:
        ok_type = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not ok_type:
        raise ConfigError(field, value, allowed)
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number):
        raise ConfigError(field, value, allowed)
    too_low = number <= low if low_open else number < low
    if too_low or number > high:
        raise ConfigError(field, value, allowed)


def check_optional_number(
    owner: object, name: str, value: object, *, low: float, high: float, unit: str = ""
) -> None:
    """Like :func:`check_number`, but ``None`` (meaning "off") is allowed too."""
    if value is None:
        return
    try:
        check_number(owner, name, value, low=low, high=high, unit=unit)
    except ConfigError as exc:
        raise ConfigError(exc.field, exc.value, f"None (off) or {exc.allowed}") from None


def check_bool(owner: object, name: str, value: object) -> None:
    if not isinstance(value, bool):
        raise ConfigError(f"{type(owner).__name__}.{name}", value, "True or False")


def check_type(owner: object, name: str, value: object, kind: type) -> None:
    """Raise ConfigError unless *value* is an instance of *kind* (a nested configuration)."""
    if not isinstance(value, kind):
        raise ConfigError(f"{type(owner).__name__}.{name}", value, f"a {kind.__name__}")
