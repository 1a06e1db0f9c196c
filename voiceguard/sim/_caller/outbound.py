"""The messages a bot sends to Twilio (``media``, ``mark``, ``clear``), read as Twilio would."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import TypeAlias

from voiceguard.protocol._common import b64decode

__all__ = ("Clear", "Mark", "Media", "Outbound", "Refused", "parse_outbound")


@dataclass(frozen=True, slots=True)
class Media:
    """``media``: audio to play (mu-law)."""

    audio: bytes


@dataclass(frozen=True, slots=True)
class Mark:
    """``mark``: echo this name once the audio queued before it has played."""

    name: str


@dataclass(frozen=True, slots=True)
class Clear:
    """``clear``: empty the playout buffer."""


#: A message a bot sends to Twilio.
Outbound: TypeAlias = Media | Mark | Clear


class Refused(Exception):
    """A message Twilio would refuse (it logs an error and carries on)."""


def parse_outbound(text: str, stream_sid: str) -> Outbound:
    """Read one message from the bot as Twilio would.

    Raises:
        Refused: If Twilio would refuse it.
    """
    try:
        data = json.loads(text)
    except (ValueError, RecursionError):
        raise Refused(f"not JSON (length {len(text)})") from None
    if not isinstance(data, dict):
        raise Refused("not a JSON object")
    event = data.get("event")
    if event not in ("media", "mark", "clear"):
        raise Refused(f"unknown event {event!r}"[:80])
    if data.get("streamSid") != stream_sid:
        raise Refused(f"{event}: streamSid does not match the stream")
    if event == "clear":
        return Clear()
    body = data.get(event)
    if not isinstance(body, dict):
        raise Refused(f"{event}: field {event!r} missing or not an object")
    if event == "mark":
        name = body.get("name")
        if not isinstance(name, str) or not name:
            raise Refused("mark: field 'mark.name' missing or not a string")
        return Mark(name)
    payload = body.get("payload")
    if not isinstance(payload, str):
        raise Refused("media: field 'media.payload' missing or not a string")
    try:
        return Media(b64decode(payload))
    except ValueError:
        raise Refused(f"media: payload is not valid base64 (length {len(payload)})") from None
