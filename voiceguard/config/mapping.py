"""Configurations to and from plain data (what a JSON file or a trace header holds).

The JSON itself is read and written at the edges (``voiceguard replay --config``, the trace
files); these functions only map dataclasses to mappings and back, checking every field.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Mapping
from typing import Any, TypeVar

from voiceguard.errors import ConfigError

__all__ = ("config_from_mapping", "config_to_mapping")

_C = TypeVar("_C")


def config_to_mapping(config: object) -> dict[str, Any]:
    """A configuration as plain data: nested sections as mappings, tuples as lists when dumped.

    .. versionadded:: 0.2.0
    """
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise TypeError(f"not a configuration: {type(config).__name__}")
    return dataclasses.asdict(config)


def config_from_mapping(data: Mapping[str, Any], base: _C) -> _C:
    """*base* with the fields named in *data* replaced, recursively into nested sections.

    Only the fields given change: ``{"calibration": {"speech_margin_db": 8}}`` over a
    :class:`~voiceguard.BridgeConfig` changes one. Lists become tuples.

    Raises:
        ConfigError: For data that is not a mapping, an unknown field (named with its path, e.g.
            ``BridgeConfig.calibration.margin``) or a value out of range.

    .. versionadded:: 0.2.0
    """
    where = type(base).__name__
    if not isinstance(data, Mapping):
        raise ConfigError(where, data, f"an object of {where} fields")
    built: _C = _build(data, where, base)
    return built


def _build(data: Mapping[str, Any], where: str, base: Any) -> Any:
    names = {f.name for f in dataclasses.fields(base)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}", data[unknown[0]], _a_field_of(base, unknown[0]))
    values: dict[str, Any] = {}
    for name, given in data.items():
        current = getattr(base, name)
        value = given
        if dataclasses.is_dataclass(current) and not isinstance(current, type):
            if not isinstance(given, Mapping):
                raise ConfigError(f"{where}.{name}", given, "an object of its fields")
            value = _build(given, f"{where}.{name}", current)
        elif isinstance(given, list):
            value = tuple(given)
        values[name] = value
    try:
        return dataclasses.replace(base, **values)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(where, dict(data), str(exc)) from None


def _a_field_of(base: Any, name: object) -> str:
    """What is allowed instead of the unknown field *name*: the fields, the closest first."""
    fields = [f.name for f in dataclasses.fields(base)]
    close = difflib.get_close_matches(str(name), fields, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"a field of {type(base).__name__}{hint}: {', '.join(fields)}"
