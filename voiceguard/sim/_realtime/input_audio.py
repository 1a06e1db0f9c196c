"""The input audio buffer of one connection and the server VAD that listens to it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final, final

from typing_extensions import assert_never

from voiceguard.audio import FRAME_BYTES
from voiceguard.protocol import AudioCommit, ClientEventError
from voiceguard.sim._codec import to_ulaw
from voiceguard.sim._realtime.context import Context
from voiceguard.sim._realtime.conversation import Conversation, Item
from voiceguard.sim._realtime.outbox import Outbox
from voiceguard.sim._realtime.responses import Responses
from voiceguard.sim._realtime.session import Session
from voiceguard.sim.vad import EnergyVad, VadSpeechStarted, VadSpeechStopped

__all__ = ("InputAudio",)

#: The least audio a commit accepts.
_COMMIT_MIN_MS: Final = 100


def _new_vad(turn_detection: Mapping[str, Any] | None) -> EnergyVad | None:
    if turn_detection is None:
        return None
    threshold = turn_detection.get("threshold")
    prefix = turn_detection.get("prefix_padding_ms")
    silence = turn_detection.get("silence_duration_ms")
    return EnergyVad(
        threshold=0.5 if not isinstance(threshold, (int, float)) else min(1.0, max(0.0, threshold)),
        prefix_padding_ms=300 if not isinstance(prefix, int) else min(10_000, max(0, prefix)),
        silence_duration_ms=500 if not isinstance(silence, int) else min(10_000, max(0, silence)),
    )


@final
class InputAudio:
    """The audio appended so far, the uncommitted buffer, and the VAD's turns.

    Times are counted in ms of all audio appended this session, as the real server counts them.
    """

    __slots__ = (
        "_appended_ms",
        "_buffer_start_ms",
        "_context",
        "_conversation",
        "_outbox",
        "_pending",
        "_responses",
        "_session",
        "_speech_item_id",
        "_vad",
        "_vad_offset_ms",
    )

    def __init__(
        self,
        context: Context,
        outbox: Outbox,
        session: Session,
        conversation: Conversation,
        responses: Responses,
    ) -> None:
        self._context = context
        self._outbox = outbox
        self._session = session
        self._conversation = conversation
        self._responses = responses
        self._vad = _new_vad(session.turn_detection)
        self._vad_offset_ms = 0
        self._appended_ms = 0.0
        self._buffer_start_ms = 0.0
        self._pending = b""
        self._speech_item_id: str | None = None

    def reset_vad(self) -> None:
        """Start the VAD afresh (new settings, a commit, a clear)."""
        self._vad = _new_vad(self._session.turn_detection)
        self._vad_offset_ms = int(self._appended_ms)
        self._pending = b""
        self._speech_item_id = None

    def append(self, audio: bytes) -> None:
        """Answer an ``input_audio_buffer.append``: count the audio and let the VAD hear it."""
        fmt = self._session.format("input")
        if len(audio) % fmt.sample_width:
            raise ClientEventError(
                "invalid_value",
                "Invalid 'audio': not a whole number of samples.",
                param="audio",
            )
        self._appended_ms += len(audio) / fmt.bytes_per_ms
        if self._vad is None:
            return
        data = self._pending + to_ulaw(audio, fmt)
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        if not whole:
            return
        for vad_event in self._vad.push(data[:whole]):
            match vad_event:
                case VadSpeechStarted():
                    self._speech_started(self._vad_offset_ms + vad_event.audio_start_ms)
                case VadSpeechStopped():
                    self._speech_stopped(self._vad_offset_ms + vad_event.audio_end_ms)
                case _:
                    assert_never(vad_event)
            if self._context.dropping:
                return

    def _speech_started(self, audio_start_ms: int) -> None:
        self._speech_item_id = self._context.new_id("item_")
        self._outbox.emit(
            {
                "type": "input_audio_buffer.speech_started",
                "audio_start_ms": audio_start_ms,
                "item_id": self._speech_item_id,
            }
        )
        td = self._session.turn_detection or {}
        responses = self._responses
        if td.get("interrupt_response", True) and responses.active is not None:
            responses.finish(responses.active, status="cancelled", reason="turn_detected")

    def _speech_stopped(self, audio_end_ms: int) -> None:
        item_id = self._speech_item_id or self._context.new_id("item_")
        self._speech_item_id = None
        self._outbox.emit(
            {
                "type": "input_audio_buffer.speech_stopped",
                "audio_end_ms": audio_end_ms,
                "item_id": item_id,
            }
        )
        self._commit_item(item_id)
        self._buffer_start_ms = float(audio_end_ms)
        td = self._session.turn_detection or {}
        if td.get("create_response", True):
            responses = self._responses
            if responses.active is not None:
                responses.reject_create(responses.active, None)
            else:
                responses.create(None, None)

    def commit(self, event: AudioCommit) -> None:
        """Answer an ``input_audio_buffer.commit``."""
        buffered = self._appended_ms - self._buffer_start_ms
        if buffered < _COMMIT_MIN_MS:
            raise ClientEventError(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least "
                f"{_COMMIT_MIN_MS}ms of audio, but buffer only has {buffered:.2f}ms of audio.",
                event_id=event.event_id,
            )
        item_id = self._speech_item_id or self._context.new_id("item_")
        self._commit_item(item_id)
        self._buffer_start_ms = self._appended_ms
        self.reset_vad()

    def clear(self) -> None:
        """Answer an ``input_audio_buffer.clear``."""
        self._buffer_start_ms = self._appended_ms
        self.reset_vad()
        self._outbox.emit({"type": "input_audio_buffer.cleared"})

    def _commit_item(self, item_id: str) -> None:
        conversation = self._conversation
        previous = conversation.last_id()
        self._outbox.emit(
            {
                "type": "input_audio_buffer.committed",
                "previous_item_id": previous,
                "item_id": item_id,
            }
        )
        item = Item(id=item_id, type="message", role="user", content="input_audio")
        conversation.add(item, previous)
