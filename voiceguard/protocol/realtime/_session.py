"""Session configuration as the server reports it: audio formats, turn detection, and the
``session.created`` / ``session.updated`` events, with the field reader that reads them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, final

from voiceguard.audio import PCM24K, PCMA, PCMU, AudioFormat
from voiceguard.protocol._common import Fields, quote

__all__ = ("SessionCreated", "SessionUpdated", "TurnDetection", "session_attrs")

_G711_RATE: Final = 8000
_PCM_RATE: Final = 24000

_BETA_FORMATS: Final[Mapping[str, AudioFormat]] = {
    "g711_ulaw": PCMU,
    "g711_alaw": PCMA,
    "pcm16": PCM24K,
    # GA names given as bare strings are accepted too.
    "audio/pcmu": PCMU,
    "audio/pcma": PCMA,
    "audio/pcm": PCM24K,
}


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TurnDetection:
    """A session's turn detection (voice activity detection) settings.

    Attributes:
        type: ``"server_vad"`` or ``"semantic_vad"`` (kept as a string, so new kinds parse).
        interrupt_response: Whether the server cancels the active response itself when speech
            starts. True when the server did not say (the server default).
        create_response: Whether the server creates a response itself when speech stops. True when
            the server did not say (the server default).
        threshold: ``server_vad`` activation threshold (0 to 1), if given.
        prefix_padding_ms: Audio kept from before the detected speech, if given.
        silence_duration_ms: Silence that ends a turn, if given.
        eagerness: ``semantic_vad`` eagerness (``low``, ``medium``, ``high``, ``auto``), if given.
        idle_timeout_ms: ``server_vad`` idle timeout, if given.
    """

    type: str
    interrupt_response: bool = True
    create_response: bool = True
    threshold: float | None = None
    prefix_padding_ms: int | None = None
    silence_duration_ms: int | None = None
    eagerness: str | None = None
    idle_timeout_ms: int | None = None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionCreated:
    """``session.created``: the first event of a connection, with the default configuration.

    Attributes:
        event_id: The server's event id.
        session: The ``session`` object as received.
        turn_detection: The turn detection settings; None when turn detection is off (``null``)
            or not mentioned (see :attr:`turn_detection_present`). Read from
            ``session.audio.input.turn_detection`` (GA) or ``session.turn_detection`` (beta).
        turn_detection_present: Whether the session mentioned ``turn_detection`` at all, so that
            "off" (present, None) can be told from "not mentioned" (absent, None).
        input_format: Format of the audio the server expects, if the session says
            (``session.audio.input.format`` in GA, ``session.input_audio_format`` in beta).
        output_format: Format of the audio the server sends, if the session says
            (``session.audio.output.format`` in GA, ``session.output_audio_format`` in beta).
    """

    event_id: str
    session: Mapping[str, Any]
    turn_detection: TurnDetection | None
    turn_detection_present: bool
    input_format: AudioFormat | None
    output_format: AudioFormat | None


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SessionUpdated:
    """``session.updated``: the reply to ``session.update``, with the full configuration.

    Attributes:
        event_id: The server's event id.
        session: The ``session`` object as received.
        turn_detection: As in :class:`SessionCreated`.
        turn_detection_present: As in :class:`SessionCreated`.
        input_format: As in :class:`SessionCreated`.
        output_format: As in :class:`SessionCreated`.
    """

    event_id: str
    session: Mapping[str, Any]
    turn_detection: TurnDetection | None
    turn_detection_present: bool
    input_format: AudioFormat | None
    output_format: AudioFormat | None


def _audio_format(f: Fields, key: str) -> AudioFormat | None:
    """A GA format object (``{"type": "audio/pcm", "rate": 24000}``) or a beta format string."""
    value = f.data.get(key)
    if value is None:
        return None
    if isinstance(value, str):
        known = _BETA_FORMATS.get(value)
        if known is None:
            raise f.error(key, f"unsupported audio format {quote(value)}")
        return known
    fmt = f.req_obj(key)
    encoding = fmt.req_str("type")
    if encoding == "audio/pcm":
        rate = fmt.opt_int("rate")
        if rate is None or rate == _PCM_RATE:
            return PCM24K
        if rate == 0 or rate % 1000:
            raise fmt.error("rate", f"expected a positive multiple of 1000 Hz, got {rate}")
        return AudioFormat(encoding="audio/pcm", sample_rate=rate)
    if encoding in ("audio/pcmu", "audio/pcma"):
        rate = fmt.opt_int("rate")
        if rate is not None and rate != _G711_RATE:
            raise fmt.error("rate", f"{encoding} is always {_G711_RATE} Hz, got {rate}")
        return PCMU if encoding == "audio/pcmu" else PCMA
    raise fmt.error("type", f"unsupported audio format {quote(encoding)}")


def _turn_detection(f: Fields, key: str) -> TurnDetection | None:
    td = f.opt_obj(key)
    if td is None or ("type" in td.data and td.data["type"] is None):  # xAI: {"type": null}
        return None
    return TurnDetection(
        type=td.req_str("type"),
        interrupt_response=td.bool_or("interrupt_response", True),
        create_response=td.bool_or("create_response", True),
        threshold=td.opt_float("threshold"),
        prefix_padding_ms=td.opt_int("prefix_padding_ms"),
        silence_duration_ms=td.opt_int("silence_duration_ms"),
        eagerness=td.opt_str("eagerness"),
        idle_timeout_ms=td.opt_int("idle_timeout_ms"),
    )


def session_attrs(f: Fields, key: str, _format: AudioFormat | None) -> dict[str, Any]:
    """The attributes a ``session`` object gives :class:`SessionCreated` and
    :class:`SessionUpdated`: the session itself, its turn detection and its audio formats."""
    session = f.req_obj(key)
    audio = session.opt_obj("audio")
    audio_in = audio.opt_obj("input") if audio is not None else None
    audio_out = audio.opt_obj("output") if audio is not None else None
    # GA keeps these under session.audio.*, beta at the top of the session.
    if audio_in is not None and "turn_detection" in audio_in.data:
        present, turn_detection = True, _turn_detection(audio_in, "turn_detection")
    elif "turn_detection" in session.data:
        present, turn_detection = True, _turn_detection(session, "turn_detection")
    else:
        present, turn_detection = False, None
    input_format = None if audio_in is None else _audio_format(audio_in, "format")
    if input_format is None:
        input_format = _audio_format(session, "input_audio_format")
    output_format = None if audio_out is None else _audio_format(audio_out, "format")
    if output_format is None:
        output_format = _audio_format(session, "output_audio_format")
    return {
        "session": session.data,
        "turn_detection": turn_detection,
        "turn_detection_present": present,
        "input_format": input_format,
        "output_format": output_format,
    }
