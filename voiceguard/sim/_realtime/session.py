"""The session configuration of one connection: its defaults, partial updates, validation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, Literal, final

from voiceguard.protocol import PCM24K, PCMA, PCMU, AudioFormat, ClientEventError, SessionUpdate
from voiceguard.sim._realtime.context import Context

__all__ = ("Session", "copy_json")

_VAD_TYPES: Final = ("server_vad", "semantic_vad")
_FORMATS: Final[Mapping[str, AudioFormat]] = {
    "audio/pcmu": PCMU,
    "audio/pcma": PCMA,
    "audio/pcm": PCM24K,
    "g711_ulaw": PCMU,
    "g711_alaw": PCMA,
    "pcm16": PCM24K,
}
_MERGED_OBJECTS: Final = frozenset({"audio", "input", "output"})
#: The ``audio/pcm`` rates xAI takes (its docs: configurable from 8 to 48 kHz).
_XAI_PCM_RATES: Final = (8000, 16000, 22050, 24000, 32000, 44100, 48000)
#: Fields of OpenAI's GA session that xAI's session does not have: ignored, not refused (what
#: clients that send them observe); a GA-shaped update so leaves turn detection as it was.
_XAI_IGNORED: Final = ("type", "model", "output_modalities")


def _xai_update(update: Mapping[str, Any]) -> dict[str, Any]:
    """An update as xAI applies it: OpenAI-only fields and the GA places of ``voice`` and
    ``turn_detection`` (under ``session.audio``) have no effect."""
    kept = {k: v for k, v in update.items() if k not in _XAI_IGNORED}
    audio = kept.get("audio")
    if isinstance(audio, Mapping):
        audio = {k: dict(v) if isinstance(v, Mapping) else v for k, v in audio.items()}
        for direction, key in (("input", "turn_detection"), ("output", "voice")):
            part = audio.get(direction)
            if isinstance(part, dict):
                part.pop(key, None)
        kept["audio"] = audio
    return kept


def copy_json(value: Any) -> Any:
    """A deep copy of a JSON value (mappings become dicts)."""
    if isinstance(value, Mapping):
        return {k: copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [copy_json(v) for v in value]
    return value


def _merge(base: Mapping[str, Any], update: Mapping[str, Any], depth: int = 0) -> dict[str, Any]:
    """A partial session update: nested ``audio``/``input``/``output`` objects merge; the rest
    (``turn_detection`` included) is replaced."""
    merged: dict[str, Any] = dict(copy_json(base))
    for key, value in update.items():
        if (
            key in _MERGED_OBJECTS
            and depth < 2
            and isinstance(value, Mapping)
            and isinstance(merged.get(key), Mapping)
        ):
            merged[key] = _merge(merged[key], value, depth + 1)
        else:
            merged[key] = copy_json(value)
    return merged


def _turn_detection_defaults(kind: object) -> dict[str, Any]:
    return {
        "type": kind,
        "threshold": 0.5,
        "prefix_padding_ms": 300,
        "silence_duration_ms": 500,
        "idle_timeout_ms": None,
        "create_response": True,
        "interrupt_response": True,
    }


@final
class Session:
    """The session as the server keeps it (GA shape, or beta shape on a beta connection).

    Attributes:
        data: The whole session object, as ``session.created`` / ``session.updated`` send it.
    """

    __slots__ = ("_context", "data")

    def __init__(self, context: Context) -> None:
        self._context = context
        self.data: dict[str, Any] = self._default()

    def _default(self) -> dict[str, Any]:
        context = self._context
        settings = context.settings
        td = _turn_detection_defaults("server_vad")
        if context.xai:
            td.update(threshold=0.85, prefix_padding_ms=333)  # xAI's documented defaults
            return {
                "id": context.new_id("sess_"),
                "object": "realtime.session",
                "model": settings.model,
                "modalities": ["audio"],
                "instructions": "",
                "voice": settings.voice,
                "turn_detection": td,
                "tools": [],
                "audio": {
                    "input": {"format": {"type": "audio/pcm", "rate": 24000}},
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}},
                },
            }
        if context.beta:
            return {
                "id": context.new_id("sess_"),
                "object": "realtime.session",
                "model": settings.model,
                "expires_at": 0,
                "modalities": ["audio", "text"],
                "instructions": "",
                "voice": settings.voice,
                "input_audio_format": "pcm16",
                "output_audio_format": "pcm16",
                "input_audio_transcription": None,
                "turn_detection": td,
                "tools": [],
                "tool_choice": "auto",
                "temperature": 0.8,
                "max_response_output_tokens": "inf",
            }
        return {
            "type": "realtime",
            "object": "realtime.session",
            "id": context.new_id("sess_"),
            "model": settings.model,
            "output_modalities": ["audio"],
            "instructions": "",
            "tools": [],
            "tool_choice": "auto",
            "max_output_tokens": "inf",
            "tracing": None,
            "truncation": "auto",
            "prompt": None,
            "expires_at": 0,
            "include": None,
            "audio": {
                "input": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "transcription": None,
                    "noise_reduction": None,
                    "turn_detection": td,
                },
                "output": {
                    "format": {"type": "audio/pcm", "rate": 24000},
                    "voice": settings.voice,
                    "speed": 1.0,
                },
            },
        }

    @property
    def turn_detection(self) -> Mapping[str, Any] | None:
        """The turn detection settings; None when turn detection is off."""
        if self._context.beta or self._context.xai:
            td = self.data.get("turn_detection")
        else:
            td = self.data["audio"]["input"].get("turn_detection")
        if not isinstance(td, Mapping) or td.get("type") is None:  # xAI: {"type": null}
            return None
        return td

    def format(self, direction: Literal["input", "output"]) -> AudioFormat:
        """The input or output audio format."""
        if self._context.beta:
            value = self.data.get(f"{direction}_audio_format")
            return _FORMATS.get(value if isinstance(value, str) else "", PCM24K)
        fmt = self.data["audio"][direction].get("format")
        kind = fmt.get("type") if isinstance(fmt, Mapping) else None
        return _FORMATS.get(kind if isinstance(kind, str) else "", PCM24K)

    def text_only(self, overrides: Mapping[str, Any] | None) -> bool:
        """Whether a response with these overrides has text output only."""
        key = "modalities" if self._context.beta or self._context.xai else "output_modalities"
        modalities = (overrides or {}).get(key, self.data.get(key))
        return isinstance(modalities, list) and "audio" not in modalities

    @property
    def voice(self) -> Any:
        """The output voice."""
        voice = self._context.settings.voice
        if self._context.beta or self._context.xai:
            return self.data.get("voice", voice)
        return self.data["audio"]["output"].get("voice", voice)

    def update(self, event: SessionUpdate) -> bool:
        """Apply a ``session.update`` (a partial update, validated whole).

        Returns:
            Whether the turn detection changed.

        Raises:
            ClientEventError: If the update or the session it gives is invalid.
        """
        update = event.session
        if self._context.xai:
            update = _xai_update(update)
        elif not self._context.beta:
            kind = update.get("type")
            if kind is None:
                raise ClientEventError(
                    "missing_required_parameter",
                    "Missing required parameter: 'session.type'.",
                    param="session.type",
                    event_id=event.event_id,
                )
            if kind != "realtime":
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid value: '{kind}'. Supported values are: 'realtime'.",
                    param="session.type",
                    event_id=event.event_id,
                )
        merged = _merge(self.data, update)
        self._validate(merged, event.event_id)
        old_td = self.turn_detection
        self.data = merged
        new_td = self.turn_detection
        if new_td is not None:
            filled = _turn_detection_defaults(new_td.get("type"))
            filled.update(new_td)
            if self._context.beta or self._context.xai:
                self.data["turn_detection"] = filled
            else:
                self.data["audio"]["input"]["turn_detection"] = filled
        return old_td != self.turn_detection

    def _validate(self, session: Mapping[str, Any], event_id: str | None) -> None:
        def bad(param: str, value: object, allowed: Sequence[str]) -> ClientEventError:
            names = ", ".join(f"'{a}'" for a in allowed)
            return ClientEventError(
                "invalid_value",
                f"Invalid value: '{value}'. Supported values are: {names}.",
                param=param,
                event_id=event_id,
            )

        if self._context.beta:
            for key in ("input_audio_format", "output_audio_format"):
                value = session.get(key)
                if value not in ("pcm16", "g711_ulaw", "g711_alaw"):
                    raise bad(f"session.{key}", value, ("pcm16", "g711_ulaw", "g711_alaw"))
            td = session.get("turn_detection")
            td_param = "session.turn_detection"
        else:
            audio = session.get("audio")
            if not isinstance(audio, Mapping):
                raise bad("session.audio", audio, ("an object",))
            rates = _XAI_PCM_RATES if self._context.xai else (24000,)
            for direction in ("input", "output"):
                part = audio.get(direction)
                fmt = part.get("format") if isinstance(part, Mapping) else None
                kind = fmt.get("type") if isinstance(fmt, Mapping) else None
                if kind not in ("audio/pcm", "audio/pcmu", "audio/pcma"):
                    raise bad(
                        f"session.audio.{direction}.format.type",
                        kind,
                        ("audio/pcm", "audio/pcmu", "audio/pcma"),
                    )
                if kind == "audio/pcm" and isinstance(fmt, Mapping):
                    rate = fmt.get("rate", 24000)
                    if rate not in rates:
                        allowed = tuple(str(r) for r in rates)
                        raise bad(f"session.audio.{direction}.format.rate", rate, allowed)
            if self._context.xai:
                td = session.get("turn_detection")
                td_param = "session.turn_detection"
                if isinstance(td, Mapping) and td.get("type") is None:
                    td = None  # {"type": null}: manual turns
            else:
                inp = audio.get("input")
                td = inp.get("turn_detection") if isinstance(inp, Mapping) else None
                td_param = "session.audio.input.turn_detection"
        if td is not None:
            if not isinstance(td, Mapping) or td.get("type") not in _VAD_TYPES:
                kind = td.get("type") if isinstance(td, Mapping) else td
                raise bad(f"{td_param}.type", kind, _VAD_TYPES)
            threshold = td.get("threshold")
            if threshold is not None and not (
                isinstance(threshold, (int, float)) and 0.0 <= threshold <= 1.0
            ):
                raise ClientEventError(
                    "invalid_value",
                    f"Invalid '{td_param}.threshold': expected a number from 0 to 1.",
                    param=f"{td_param}.threshold",
                    event_id=event_id,
                )
            for key in ("create_response", "interrupt_response"):
                value = td.get(key)
                if value is not None and not isinstance(value, bool):
                    raise ClientEventError(
                        "invalid_type",
                        f"Invalid type for '{td_param}.{key}': expected a boolean.",
                        param=f"{td_param}.{key}",
                        event_id=event_id,
                    )
