"""Builders of the messages voiceguard sends to Twilio, and of the TwiML that starts a stream."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final
from urllib.parse import urlsplit

from voiceguard.errors import LocalProtocolError
from voiceguard.protocol._common import quote

__all__ = ("clear_message", "connect_stream_twiml", "mark_message", "media_message")


def _check_str(what: str, name: str, value: object, *, empty: bool = False) -> str:
    if not isinstance(value, str) or (not empty and not value):
        kind = "a string" if empty else "a non-empty string"
        raise LocalProtocolError(f"{what}: {name} must be {kind}, got {quote(value)}")
    return value


def media_message(stream_sid: str, payload_b64: str) -> dict[str, Any]:
    """Build a ``media`` message: audio for Twilio to play to the caller.

    Args:
        stream_sid: The stream's ``streamSid`` (from :class:`StreamStarted`).
        payload_b64: Base64 raw µ-law at 8000 Hz, no file header: e.g. an
            :attr:`AudioDelta.payload <voiceguard.protocol.AudioDelta.payload>` of a ``pcmu``
            session, passed through. It is not decoded here (this runs for every frame).

    Returns:
        ``{"event": "media", "streamSid": ..., "media": {"payload": ...}}``.

    Raises:
        LocalProtocolError: If *stream_sid* is not a non-empty string or *payload_b64* is not a
            string.
    """
    return {
        "event": "media",
        "streamSid": _check_str("media", "stream_sid", stream_sid),
        "media": {"payload": _check_str("media", "payload_b64", payload_b64, empty=True)},
    }


def mark_message(stream_sid: str, name: str) -> dict[str, Any]:
    """Build a ``mark`` message; Twilio echoes it once the audio sent before it has played.

    Args:
        stream_sid: The stream's ``streamSid``.
        name: The mark's name; make it unique per chunk to learn the playback position.

    Returns:
        ``{"event": "mark", "streamSid": ..., "mark": {"name": ...}}``.

    Raises:
        LocalProtocolError: If *stream_sid* or *name* is not a non-empty string.
    """
    return {
        "event": "mark",
        "streamSid": _check_str("mark", "stream_sid", stream_sid),
        "mark": {"name": _check_str("mark", "name", name)},
    }


def clear_message(stream_sid: str) -> dict[str, Any]:
    """Build a ``clear`` message: drop all buffered audio; Twilio echoes every pending mark.

    Args:
        stream_sid: The stream's ``streamSid``.

    Returns:
        ``{"event": "clear", "streamSid": ...}``.

    Raises:
        LocalProtocolError: If *stream_sid* is not a non-empty string.
    """
    return {"event": "clear", "streamSid": _check_str("clear", "stream_sid", stream_sid)}


# --------------------------------------------------------------------------------------------
# TwiML

_TEXT_ESCAPES: Final = str.maketrans({"&": "&amp;", "<": "&lt;", ">": "&gt;"})
_ATTR_ESCAPES: Final = str.maketrans(
    {
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        '"': "&quot;",
        "'": "&apos;",
        "\t": "&#9;",
        "\n": "&#10;",
        "\r": "&#13;",
    }
)


def _xml_safe(name: str, value: object, *, empty: bool = True) -> str:
    """Check that *value* is a string XML 1.0 can hold (no control characters, no surrogates)."""
    text = _check_str("TwiML", name, value, empty=empty)
    for char in text:
        code = ord(char)
        if (
            (code < 0x20 and char not in "\t\n\r")
            or 0xD800 <= code <= 0xDFFF
            or code
            in (
                0xFFFE,
                0xFFFF,
            )
        ):
            raise LocalProtocolError(
                f"TwiML: {name} contains U+{code:04X}, which XML cannot represent"
            )
    return text


def _check_stream_url(url: object) -> str:
    text = _check_str("TwiML", "url", url)
    if any(char.isspace() or ord(char) < 0x20 for char in text):
        raise LocalProtocolError(f"TwiML: url must not contain whitespace, got {quote(text)}")
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise LocalProtocolError(f"TwiML: url is not a valid URL ({exc}): {quote(text)}") from None
    if parts.scheme.lower() != "wss":
        raise LocalProtocolError(
            f"TwiML: url must start with wss:// (Twilio error 31920), got {quote(text)}"
        )
    if not parts.hostname:
        raise LocalProtocolError(f"TwiML: url has no host: {quote(text)}")
    if "?" in text:
        raise LocalProtocolError(
            "TwiML: url must not have a query string (Twilio error 31920); pass values as "
            f"parameters, which arrive in start.customParameters. Got {quote(text)}"
        )
    if "#" in text:
        raise LocalProtocolError(f"TwiML: url must not have a fragment, got {quote(text)}")
    if port is not None and port != 443:
        raise LocalProtocolError(
            "TwiML: Twilio connects to wss:// on port 443 only (Twilio error 31910), "
            f"got port {port}"
        )
    return text


def connect_stream_twiml(
    url: str,
    *,
    parameters: Mapping[str, str] = {},
    say: str | None = None,
) -> str:
    """Build the TwiML that connects a call to a bidirectional Media Stream.

    The result looks like (on one line)::

        <?xml version="1.0" encoding="UTF-8"?><Response><Say>Hello</Say><Connect>
        <Stream url="wss://example.com/media-stream"><Parameter name="token" value="abc"/>
        </Stream></Connect></Response>

    Nothing follows ``<Connect>``, so the call ends when the server closes the stream.

    Args:
        url: The ``wss://`` URL of the media stream WebSocket, without a query string (Twilio
            refuses one, error 31920) and on port 443.
        parameters: Values to pass to the stream as ``<Parameter>`` elements; they arrive in
            :attr:`StreamStarted.custom_parameters`.
        say: Text for Twilio to speak (``<Say>``) before connecting, if any.

    Returns:
        The TwiML document, XML-escaped.

    Raises:
        LocalProtocolError: If the URL is not ``wss://``, has a query string, a fragment or a port
            other than 443, or a text holds a character XML cannot represent.
    """
    stream_url = _check_stream_url(url)
    if not isinstance(parameters, Mapping):
        raise LocalProtocolError(f"TwiML: parameters must be a mapping, got {quote(parameters)}")
    elements = []
    for name, value in parameters.items():
        name_attr = _xml_safe("parameter name", name, empty=False).translate(_ATTR_ESCAPES)
        value_attr = _xml_safe(f"parameter {name!r}", value).translate(_ATTR_ESCAPES)
        elements.append(f'<Parameter name="{name_attr}" value="{value_attr}"/>')
    stream_open = f'<Stream url="{stream_url.translate(_ATTR_ESCAPES)}"'
    stream = f"{stream_open}>{''.join(elements)}</Stream>" if elements else f"{stream_open}/>"
    said = "" if say is None else f"<Say>{_xml_safe('say', say).translate(_TEXT_ESCAPES)}</Say>"
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        f"<Response>{said}<Connect>{stream}</Connect></Response>"
    )
