"""Event tables: for each message type, its event class and the spec of its fields.

Every peer's parser (OpenAI Realtime server events, client events, Twilio messages) is a table
keyed by the wire type. An :class:`EventSpec` names the types it covers (a GA name and its beta
aliases), the frozen class it builds, and its fields in the order they are read; :func:`read_event`
is the one generic reader. A field is read by a *kind*: one of the readers below (a required
string, an optional string, a count of ms, a mapping, ...) or, for fields that need real logic
(audio formats, the session, an audio payload), a reader of its own.

The order of the fields is the order of the checks, so a message with several faults always
reports the same one: the first in the spec.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Generic, NamedTuple, TypeAlias, TypeVar, final

from voiceguard.audio import AudioFormat
from voiceguard.protocol._common import Fields

__all__ = (
    "EventSpec",
    "FieldReader",
    "FieldSpec",
    "array",
    "attr",
    "attrs",
    "check",
    "count",
    "decimal",
    "event",
    "mapping",
    "nested",
    "optional_count",
    "optional_decimal",
    "optional_mapping",
    "optional_string",
    "read_event",
    "string",
    "string_or_empty",
    "table",
)

E = TypeVar("E")

#: A field reader: the value of field *key* of an object, given the audio format that audio
#: payloads must fit (None where there is none to check against).
FieldReader: TypeAlias = Callable[[Fields, str, "AudioFormat | None"], Any]

# How the value a field reader returns is used.
_VALUE: Final = 0  # the attribute *name* (or nothing, for a field that is only checked)
_OBJECT: Final = 1  # a nested object (a Fields, or None): later fields may be read within it
_SEVERAL: Final = 2  # a mapping of several attributes


class FieldSpec(NamedTuple):
    """One field of an event spec (build it with :func:`attr`, :func:`check`, :func:`nested` or
    :func:`attrs`).

    Attributes:
        name: The attribute of the event class it fills, or None.
        read: The field reader.
        key: The wire key.
        within: The path of the nested object (opened by an earlier :func:`nested` field) it is
            read from, or None for the top level of the message.
        shape: How the value is used (a value, a nested object, several attributes).
        path: The dotted path of the field, under which a nested object is known to later fields.
    """

    name: str | None
    read: FieldReader
    key: str
    within: str | None
    shape: int
    path: str


def _path(key: str, within: str | None) -> str:
    return key if within is None else f"{within}.{key}"


def attr(
    name: str, kind: FieldReader, *, key: str | None = None, within: str | None = None
) -> FieldSpec:
    """A field read by *kind* into attribute *name*.

    Args:
        name: The attribute; also the wire key unless *key* is given.
        kind: The field reader.
        key: The wire key, when it differs from *name*.
        within: The nested object it is read from, if not the top level. Inside an optional
            object that is absent, the attribute is None.

    Returns:
        The field spec.
    """
    wire = name if key is None else key
    return FieldSpec(name, kind, wire, within, _VALUE, _path(wire, within))


def check(kind: FieldReader, key: str, *, within: str | None = None) -> FieldSpec:
    """A field that is read (and so checked) by *kind* but kept in no attribute.

    Args:
        kind: The field reader.
        key: The wire key.
        within: The nested object it is read from, if not the top level.

    Returns:
        The field spec.
    """
    return FieldSpec(None, kind, key, within, _VALUE, _path(key, within))


def nested(
    key: str, *, name: str | None = None, optional: bool = False, within: str | None = None
) -> FieldSpec:
    """A nested object, which later fields may be read from (``within=`` its dotted path).

    Args:
        key: The wire key.
        name: The attribute that keeps the object as received, if any.
        optional: Whether the object may be absent or null.
        within: The nested object it is read from, if not the top level.

    Returns:
        The field spec.
    """
    kind = _optional_object if optional else _object
    return FieldSpec(name, kind, key, within, _OBJECT, _path(key, within))


def attrs(
    read: Callable[[Fields, str, AudioFormat | None], Mapping[str, Any]],
    key: str,
    *,
    within: str | None = None,
) -> FieldSpec:
    """A field whose reader fills several attributes (e.g. an audio payload's text and bytes).

    Args:
        read: The reader; it returns a mapping of attribute names to values.
        key: The wire key.
        within: The nested object it is read from, if not the top level.

    Returns:
        The field spec.
    """
    return FieldSpec(None, read, key, within, _SEVERAL, _path(key, within))


@final
@dataclass(frozen=True, slots=True)
class EventSpec(Generic[E]):
    """How one kind of message is read (build it with :func:`event`).

    Attributes:
        types: The wire types it covers: the GA name first, then its beta aliases.
        cls: The event class.
        fields: The fields, in the order they are read and checked.
        fast: A reader for a well-formed message that skips the field specs, or None.
    """

    types: tuple[str, ...]
    cls: Callable[..., E]
    fields: tuple[FieldSpec, ...]
    fast: Callable[[Mapping[str, Any], AudioFormat | None], E | None] | None = None


def event(
    types: str | tuple[str, ...],
    cls: Callable[..., E],
    *fields: FieldSpec,
    fast: Callable[[Mapping[str, Any], AudioFormat | None], E | None] | None = None,
) -> EventSpec[E]:
    """An event spec.

    Args:
        types: The wire type, or the GA type and its beta aliases.
        cls: The event class, called with the attributes as keywords.
        *fields: The fields, in the order they are read and checked.
        fast: A reader for a well-formed message that skips the field specs (on the hot path);
            it returns None for anything else, which the field specs then read and report.

    Returns:
        The event spec.
    """
    return EventSpec((types,) if isinstance(types, str) else types, cls, fields, fast)


def table(specs: Iterable[EventSpec[E]]) -> dict[str, EventSpec[E]]:
    """Every type of *specs* (GA names and aliases) mapped to its spec.

    Raises:
        ValueError: If two specs claim the same type.
    """
    result: dict[str, EventSpec[E]] = {}
    for spec in specs:
        for event_type in spec.types:
            if event_type in result:
                raise ValueError(f"{event_type!r} is in two event specs")
            result[event_type] = spec
    return result


def read_event(spec: EventSpec[E], f: Fields, audio_format: AudioFormat | None) -> E:
    """Read the event *spec* describes from the message *f*.

    Args:
        spec: The event spec.
        f: The message's fields.
        audio_format: The format audio payloads must fit, or None.

    Returns:
        The event.

    Raises:
        RemoteProtocolError: From the field readers, for the first field (in spec order) that is
            missing or malformed.
    """
    values: dict[str, Any] = {}
    scopes: dict[str, Fields | None] = {}
    for name, read, key, within, shape, path in spec.fields:
        scope = f if within is None else scopes[within]
        if scope is None:  # inside an optional object that is absent
            if name is not None:
                values[name] = None
            if shape == _OBJECT:
                scopes[path] = None
            continue
        value = read(scope, key, audio_format)
        if shape == _VALUE:
            if name is not None:
                values[name] = value
        elif shape == _OBJECT:
            scopes[path] = value
            if name is not None:
                values[name] = None if value is None else value.data
        else:
            values.update(value)
    return spec.cls(**values)


# --------------------------------------------------------------------------------------------
# Kinds: the field readers shared by every table


def string(f: Fields, key: str, _audio_format: AudioFormat | None) -> str:
    """A required string."""
    return f.req_str(key)


def optional_string(f: Fields, key: str, _audio_format: AudioFormat | None) -> str | None:
    """An optional string (absent or null gives None)."""
    return f.opt_str(key)


def string_or_empty(f: Fields, key: str, _audio_format: AudioFormat | None) -> str:
    """A string that is empty when absent or null."""
    return f.str_or(key, "")


def count(f: Fields, key: str, _audio_format: AudioFormat | None) -> int:
    """A required non-negative integer (ms, an index)."""
    return f.req_int(key)


def optional_count(f: Fields, key: str, _audio_format: AudioFormat | None) -> int | None:
    """An optional non-negative integer."""
    return f.opt_int(key)


def decimal(f: Fields, key: str, _audio_format: AudioFormat | None) -> int:
    """A required non-negative integer that arrives as a decimal string (Twilio)."""
    return f.req_numeric_str(key)


def optional_decimal(f: Fields, key: str, _audio_format: AudioFormat | None) -> int | None:
    """An optional non-negative integer that arrives as a decimal string (Twilio)."""
    return f.opt_numeric_str(key)


def mapping(f: Fields, key: str, _audio_format: AudioFormat | None) -> Mapping[str, Any]:
    """A required object, kept as received."""
    return f.req_mapping(key)


def optional_mapping(
    f: Fields, key: str, _audio_format: AudioFormat | None
) -> Mapping[str, Any] | None:
    """An optional object, kept as received."""
    return f.opt_mapping(key)


def array(f: Fields, key: str, _audio_format: AudioFormat | None) -> list[Any] | tuple[Any, ...]:
    """A required array."""
    return f.req_list(key)


def _object(f: Fields, key: str, _audio_format: AudioFormat | None) -> Fields:
    return f.req_obj(key)


def _optional_object(f: Fields, key: str, _audio_format: AudioFormat | None) -> Fields | None:
    return f.opt_obj(key)
