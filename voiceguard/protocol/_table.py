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
from voiceguard.protocol._common import Fields, Peer

__all__ = (
    "AudioReader",
    "EventSpec",
    "FieldReader",
    "FieldSpec",
    "array",
    "attr",
    "attrs",
    "audio",
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

#: A field reader: the value of field *key* of an object (a kind below, or a reader of its own).
FieldReader: TypeAlias = Callable[[Fields, str], Any]
#: A reader of an audio field: it also gets the audio format the audio must fit (None where there
#: is none to check against).
AudioReader: TypeAlias = Callable[[Fields, str, "AudioFormat | None"], Any]

# How a field is read and what becomes of its value.
_VALUE: Final = 0  # read(fields, key): the attribute *name* (or nothing: the field is only checked)
_OBJECT: Final = 1  # read(fields, key): a nested object (Fields or None) for later fields
_AUDIO: Final = 2  # read(fields, key, audio_format): the attribute *name*
_SEVERAL: Final = 3  # read(fields, key, audio_format): a mapping of several attributes


class FieldSpec(NamedTuple):
    """One field of an event spec (build it with :func:`attr`, :func:`check`, :func:`nested`,
    :func:`audio` or :func:`attrs`).

    Attributes:
        name: The attribute of the event class it fills, or None.
        read: The field reader.
        key: The wire key.
        within: The path of the nested object (opened by an earlier :func:`nested` field) it is
            read from, or None for the top level of the message.
        shape: How it is read and what becomes of its value.
        path: The dotted path of the field, under which a nested object is known to later fields.
    """

    name: str | None
    read: Callable[..., Any]
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
    kind = Fields.opt_obj if optional else Fields.req_obj
    return FieldSpec(name, kind, key, within, _OBJECT, _path(key, within))


def audio(
    name: str, read: AudioReader, *, key: str | None = None, within: str | None = None
) -> FieldSpec:
    """An audio field: its reader also gets the audio format the audio must fit.

    Args:
        name: The attribute; also the wire key unless *key* is given.
        read: The reader.
        key: The wire key, when it differs from *name*.
        within: The nested object it is read from, if not the top level.

    Returns:
        The field spec.
    """
    wire = name if key is None else key
    return FieldSpec(name, read, wire, within, _AUDIO, _path(wire, within))


def attrs(read: AudioReader, key: str, *, within: str | None = None) -> FieldSpec:
    """A field whose reader fills several attributes (e.g. an audio payload's text and bytes).

    Args:
        read: The reader; it gets the audio format, and returns a mapping of attribute names to
            values.
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
        flat: When every field is a top-level attribute read by a kind (most events), the
            fields as (name, reader, key), read by a shorter loop; otherwise None.
    """

    types: tuple[str, ...]
    cls: Callable[..., E]
    fields: tuple[FieldSpec, ...]
    fast: Callable[[Mapping[str, Any], AudioFormat | None], E | None] | None = None
    flat: tuple[tuple[str, FieldReader, str], ...] | None = None


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
    flat = tuple(
        (spec.name, spec.read, spec.key)
        for spec in fields
        if spec.shape == _VALUE and spec.within is None and spec.name is not None
    )
    return EventSpec(
        (types,) if isinstance(types, str) else types,
        cls,
        fields,
        fast,
        flat if len(flat) == len(fields) else None,
    )


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


def read_event(
    spec: EventSpec[E],
    peer: Peer,
    message_type: str,
    data: Mapping[str, Any],
    audio_format: AudioFormat | None,
) -> E:
    """Read the event *spec* describes from the decoded message *data*.

    Args:
        spec: The event spec.
        peer: Who sent the message (named in errors).
        message_type: The message's type (named in errors).
        data: The decoded message.
        audio_format: The format audio payloads must fit, or None.

    Returns:
        The event.

    Raises:
        RemoteProtocolError: From the field readers, for the first field (in spec order) that is
            missing or malformed.
    """
    fast = spec.fast
    if fast is not None:
        ready = fast(data, audio_format)
        if ready is not None:
            return ready
    f = Fields(peer, message_type, data)
    values: dict[str, Any] = {}
    flat = spec.flat
    if flat is not None:
        for attribute, kind, wire in flat:
            values[attribute] = kind(f, wire)
        return spec.cls(**values)
    scopes: dict[str, Fields | None] = {}
    for name, read, key, within, shape, path in spec.fields:
        scope = f if within is None else scopes[within]
        if scope is None:  # inside an optional object that is absent
            if name is not None:
                values[name] = None
            if shape == _OBJECT:
                scopes[path] = None
        elif shape == _VALUE:
            value = read(scope, key)
            if name is not None:
                values[name] = value
        elif shape == _OBJECT:
            value = read(scope, key)
            scopes[path] = value
            if name is not None:
                values[name] = None if value is None else value.data
        elif shape == _AUDIO:
            values[name] = read(scope, key, audio_format)  # type: ignore[index]
        else:
            values.update(read(scope, key, audio_format))
    return spec.cls(**values)


# --------------------------------------------------------------------------------------------
# Kinds: the field readers every table shares (the readers of Fields, which name the field and
# the problem of a malformed value)

#: A required string.
string: Final[Callable[[Fields, str], str]] = Fields.req_str
#: An optional string (absent or null gives None).
optional_string: Final[Callable[[Fields, str], str | None]] = Fields.opt_str
#: A required non-negative integer (ms, an index).
count: Final[Callable[[Fields, str], int]] = Fields.req_int
#: An optional non-negative integer.
optional_count: Final[Callable[[Fields, str], int | None]] = Fields.opt_int
#: A required non-negative integer that arrives as a decimal string (Twilio).
decimal: Final[Callable[[Fields, str], int]] = Fields.req_numeric_str
#: An optional non-negative integer that arrives as a decimal string (Twilio).
optional_decimal: Final[Callable[[Fields, str], int | None]] = Fields.opt_numeric_str
#: A required object, kept as received.
mapping: Final[Callable[[Fields, str], Mapping[str, Any]]] = Fields.req_mapping
#: An optional object, kept as received.
optional_mapping: Final[Callable[[Fields, str], Mapping[str, Any] | None]] = Fields.opt_mapping
#: A required array.
array: Final[Callable[[Fields, str], list[Any] | tuple[Any, ...]]] = Fields.req_list


def string_or_empty(f: Fields, key: str) -> str:
    """A string that is empty when absent or null."""
    return f.str_or(key, "")
