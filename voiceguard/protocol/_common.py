"""Pieces shared by both protocol modules: decoding, field readers, ``UnknownEvent``, ``dumps``.

Nothing here is specific to one peer. The field readers turn every malformed value into a
:class:`~voiceguard.errors.RemoteProtocolError` that names the peer, the message type, the dotted
path of the field and what was wrong, and never the value of an audio payload.
"""

from __future__ import annotations

import binascii
import json
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal, TypeAlias, TypeGuard, final

from voiceguard.errors import LocalProtocolError, RemoteProtocolError

__all__ = ("UnknownEvent", "dumps")

#: The two peers, as :class:`~voiceguard.errors.RemoteProtocolError` names them.
Peer: TypeAlias = Literal["realtime", "twilio"]
REALTIME: Final[Peer] = "realtime"
TWILIO: Final[Peer] = "twilio"

#: Longest decimal string accepted where a number arrives as a string (Twilio). Longer strings are
#: refused before ``int()`` sees them (it is slow on huge strings, and raises past 4300 digits).
MAX_DIGITS: Final = 18
#: Longest value quoted in an error message; longer values are cut.
_MAX_QUOTED: Final = 40
#: One encoder for every message: ``json.dumps`` with options builds a new one per call.
_encode: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode
#: Text that JSON carries as it is inside a string: the base64 alphabet.
_BASE64_TEXT: Final = re.compile(r"[A-Za-z0-9+/=]*")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class UnknownEvent:
    """A message whose type voiceguard does not model. Parsing it never fails.

    Both :func:`~voiceguard.protocol.parse_realtime_event` and
    :func:`~voiceguard.protocol.parse_twilio_message` return it, so a new event type added by either
    service passes through a bridge instead of crashing it.

    Attributes:
        type: The message's ``type`` (OpenAI Realtime) or ``event`` (Twilio) string.
        raw: The whole message as decoded.
    """

    type: str
    raw: Mapping[str, Any]


def dumps(message: Mapping[str, Any]) -> str:
    """Serialise a message built by this package as compact JSON text, ready for a text frame.

    Args:
        message: A JSON-ready mapping, e.g. the result of
            :func:`~voiceguard.protocol.response_cancel`.

    Returns:
        The JSON text, without insignificant whitespace.

    Raises:
        LocalProtocolError: If the message is not JSON-serialisable (a non-string key, a value of
            an unsupported type, NaN or infinity).
    """
    if type(message) is dict and len(message) == 2:
        # The hot path, once per caller frame: an append whose audio is plain base64 needs no
        # escaping, so its JSON text is put together directly (the same text as the encoder's).
        audio = message.get("audio")
        if (
            type(audio) is str
            and message.get("type") == "input_audio_buffer.append"
            and next(iter(message)) == "type"
            and _BASE64_TEXT.fullmatch(audio) is not None
        ):
            return '{"type":"input_audio_buffer.append","audio":"' + audio + '"}'
    try:
        return _encode(message)
    except (TypeError, ValueError, RecursionError) as exc:
        raise LocalProtocolError(f"message is not JSON-serialisable: {exc}") from None


# --------------------------------------------------------------------------------------------
# Decoding a frame into a mapping


def load_message(peer: Peer, message: object) -> Mapping[str, Any]:
    """Decode *message* (JSON text as ``str``/``bytes``, or a mapping) into a mapping."""
    if isinstance(message, Mapping):
        return message
    if isinstance(message, (str, bytes, bytearray, memoryview)):
        text: str | bytes | bytearray = (
            bytes(message) if isinstance(message, memoryview) else message
        )
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            # The decoder's message gives a position, never the text itself.
            where = f"{exc.msg} at line {exc.lineno} column {exc.colno}"
            raise error(peer, None, None, f"not JSON: {where}") from None
        except UnicodeDecodeError:
            raise error(peer, None, None, f"not UTF-8 text (length {len(text)})") from None
        except (ValueError, RecursionError):  # e.g. nested deeper than the decoder can go
            raise error(peer, None, None, f"not JSON (length {len(text)})") from None
        if not isinstance(data, dict):
            raise error(peer, None, None, f"expected a JSON object, got {json_type(data)}")
        return data
    raise error(peer, None, None, f"expected JSON text or a mapping, got {type(message).__name__}")


def dump_model(peer: Peer, model: object) -> Mapping[str, Any]:
    """Turn a pydantic event (e.g. from the ``openai`` SDK) into the mapping it was built from.

    ``exclude_unset`` keeps "absent" apart from "null" (the SDK builds its models from the wire
    dict, so the set fields are exactly the keys that arrived); ``by_alias`` gives wire names.
    """
    dump: Callable[..., object] = model.model_dump  # type: ignore[attr-defined]
    try:
        try:
            data = dump(mode="json", by_alias=True, exclude_unset=True, warnings=False)
        except TypeError:
            # Not pydantic v2 (or a look-alike without these options): take the plain dump.
            data = dump()
    except Exception as exc:  # foreign code: whatever it raises is the peer's malformed event
        raise error(peer, None, None, f"model_dump() failed ({type(exc).__name__})") from None
    if not isinstance(data, Mapping):
        raise error(peer, None, None, f"model_dump() returned {type(data).__name__}, not a mapping")
    return data


# --------------------------------------------------------------------------------------------
# Field readers


def json_type(value: object) -> str:
    """Name *value*'s type the way JSON would (used in error messages)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "an array"
    return type(value).__name__


def quote(value: object) -> str:
    """``repr`` of a non-audio value for an error message, cut to a bounded length."""
    if isinstance(value, str) and len(value) > _MAX_QUOTED:
        return f"{value[:_MAX_QUOTED]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= _MAX_QUOTED else text[: _MAX_QUOTED - 3] + "..."


def error(
    peer: Peer, message_type: str | None, field: str | None, problem: str
) -> RemoteProtocolError:
    """The :class:`~voiceguard.errors.RemoteProtocolError` to raise for *peer*."""
    return RemoteProtocolError(
        peer=peer,
        message_type=message_type,
        field=field,
        problem=problem,
    )


if sys.version_info >= (3, 11):

    def b64decode(text: str) -> bytes:
        """Strict base64 decoding: alphabet, padding and length are all checked."""
        return binascii.a2b_base64(text, strict_mode=True)

else:  # pragma: no cover - Python 3.10 has no strict_mode
    import base64

    def b64decode(text: str) -> bytes:
        """Strict base64 decoding: alphabet, padding and length are all checked."""
        if len(text) % 4:  # validate=True alone lets excess padding through ("AAA==")
            raise binascii.Error("Incorrect length")
        return base64.b64decode(text, validate=True)


def _is_mapping(value: object) -> TypeGuard[Mapping[str, Any]]:
    return type(value) is dict or isinstance(value, Mapping)


def _is_int(value: object) -> TypeGuard[int]:
    return type(value) is int or (isinstance(value, int) and not isinstance(value, bool))


@final
class Fields:
    """Typed access to the fields of one decoded message (or one object nested in it).

    Absent keys and ``null`` values are the same thing to the ``opt_*`` readers: pydantic models
    dump their unset optional fields as ``None``.
    """

    __slots__ = ("data", "message_type", "peer", "prefix")

    def __init__(
        self, peer: Peer, message_type: str, data: Mapping[str, Any], prefix: str = ""
    ) -> None:
        self.peer = peer
        self.message_type = message_type
        self.data = data
        self.prefix = prefix

    def error(self, key: str, problem: str) -> RemoteProtocolError:
        """The RemoteProtocolError to raise about field *key* of this object."""
        return RemoteProtocolError(
            peer=self.peer,
            message_type=self.message_type,
            field=self.prefix + key,
            problem=problem,
        )

    def _wrong(self, key: str, value: object, expected: str) -> RemoteProtocolError:
        if value is None:
            return self.error(
                key, "missing" if key not in self.data else f"expected {expected}, got null"
            )
        return self.error(key, f"expected {expected}, got {json_type(value)}")

    # strings

    def req_str(self, key: str) -> str:
        """A required string."""
        value = self.data.get(key)
        if isinstance(value, str):
            return value
        raise self._wrong(key, value, "a string")

    def opt_str(self, key: str) -> str | None:
        """An optional string (absent or null gives None)."""
        value = self.data.get(key)
        if value is None or isinstance(value, str):
            return value
        raise self.error(key, f"expected a string, got {json_type(value)}")

    def str_or(self, key: str, default: str) -> str:
        """A string that defaults to *default* when absent or null."""
        value = self.opt_str(key)
        return default if value is None else value

    # numbers

    def req_int(self, key: str) -> int:
        """A required non-negative integer (a JSON number, never a boolean)."""
        value = self.data.get(key)
        if _is_int(value):
            if value < 0:
                raise self.error(key, f"must not be negative, got {value}")
            return int(value)
        raise self._wrong(key, value, "an integer")

    def opt_int(self, key: str) -> int | None:
        """An optional non-negative integer."""
        if self.data.get(key) is None:
            return None
        return self.req_int(key)

    def opt_float(self, key: str) -> float | None:
        """An optional finite number (integers are accepted)."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
            if number - number != 0.0:  # NaN or infinity
                raise self.error(key, f"expected a finite number, got {value!r}")
            return number
        raise self.error(key, f"expected a number, got {json_type(value)}")

    def req_numeric_str(self, key: str) -> int:
        """A non-negative integer that arrives as a decimal string (Twilio); an int is accepted."""
        value = self.data.get(key)
        if isinstance(value, str):
            if 0 < len(value) <= MAX_DIGITS and value.isascii() and value.isdigit():
                return int(value)
            raise self.error(
                key, f"expected a non-negative decimal integer string, got {quote(value)}"
            )
        if _is_int(value):
            if value < 0:
                raise self.error(key, f"must not be negative, got {value}")
            return int(value)
        raise self._wrong(key, value, "a decimal integer string")

    def opt_numeric_str(self, key: str) -> int | None:
        """Like :meth:`req_numeric_str`, but absent or null gives None."""
        if self.data.get(key) is None:
            return None
        return self.req_numeric_str(key)

    # booleans

    def bool_or(self, key: str, default: bool) -> bool:
        """A boolean that defaults to *default* when absent or null."""
        value = self.data.get(key)
        if value is None:
            return default
        if isinstance(value, bool):
            return value
        raise self.error(key, f"expected a boolean, got {json_type(value)}")

    # containers

    def req_obj(self, key: str) -> Fields:
        """A required nested object, as a reader whose errors carry the dotted path."""
        value = self.data.get(key)
        if _is_mapping(value):
            return Fields(self.peer, self.message_type, value, f"{self.prefix}{key}.")
        raise self._wrong(key, value, "an object")

    def opt_obj(self, key: str) -> Fields | None:
        """An optional nested object."""
        if self.data.get(key) is None:
            return None
        return self.req_obj(key)

    def opt_mapping(self, key: str) -> Mapping[str, Any] | None:
        """An optional nested object, returned as it is."""
        value = self.data.get(key)
        if value is None or _is_mapping(value):
            return value
        raise self.error(key, f"expected an object, got {json_type(value)}")

    def req_mapping(self, key: str) -> Mapping[str, Any]:
        """A required nested object, returned as it is."""
        value = self.data.get(key)
        if _is_mapping(value):
            return value
        raise self._wrong(key, value, "an object")

    def req_list(self, key: str) -> list[Any] | tuple[Any, ...]:
        """A required array."""
        value = self.data.get(key)
        if isinstance(value, (list, tuple)):
            return value
        raise self._wrong(key, value, "an array")

    def item(self, key: str, index: int, value: object) -> Fields:
        """Element *index* of the array *key*, which must be an object."""
        path = f"{key}.{index}"
        if _is_mapping(value):
            return Fields(self.peer, self.message_type, value, f"{self.prefix}{path}.")
        raise self.error(path, f"expected an object, got {json_type(value)}")

    # audio

    def req_base64(self, key: str) -> tuple[str, bytes]:
        """A required base64 string: returns it as received and decoded.

        The error message gives the length of a bad payload, never its contents.
        """
        value = self.data.get(key)
        if not isinstance(value, str):
            raise self._wrong(key, value, "a base64 string")
        try:
            return value, b64decode(value)
        except ValueError:  # binascii.Error, or non-ASCII characters
            raise self.error(key, f"not valid base64 (length {len(value)})") from None
