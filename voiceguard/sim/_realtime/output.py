"""What a response streams: its output items, their content parts, and the audio, transcript
and text deltas."""

from __future__ import annotations

import base64
import math
from collections.abc import Generator
from typing import TYPE_CHECKING, Any, final

from voiceguard.sim._codec import from_ulaw
from voiceguard.sim._realtime.context import Context
from voiceguard.sim._realtime.conversation import Conversation, Item
from voiceguard.sim._realtime.outbox import Outbox
from voiceguard.sim._realtime.session import Session
from voiceguard.sim.signals import speech_like

if TYPE_CHECKING:
    from voiceguard.sim._realtime.responses import Response

__all__ = ("ResponseOutput",)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


@final
class ResponseOutput:
    """The events of a response's output, item by item (the timeline decides when)."""

    __slots__ = ("_context", "_conversation", "_outbox", "_session")

    def __init__(
        self, context: Context, outbox: Outbox, session: Session, conversation: Conversation
    ) -> None:
        self._context = context
        self._outbox = outbox
        self._session = session
        self._conversation = conversation

    def item_started(self, response: Response, item: Item, output_index: int) -> None:
        emit = self._outbox.emit
        conversation = self._conversation
        wire = conversation.wire(item)
        if item.type == "message":
            wire["content"] = []
        emit(
            {
                "type": "response.output_item.added",
                "response_id": response.id,
                "output_index": output_index,
                "item": wire,
            }
        )
        if response.default_conversation:
            previous = conversation.last_id()
            conversation.append(item)
            emit({"type": "conversation.item.added", "previous_item_id": previous, "item": wire})
        if item.type == "message":
            part = (
                {"type": "text", "text": ""}
                if response.text_only
                else {"type": "audio", "transcript": ""}
            )
            emit(
                {
                    "type": "response.content_part.added",
                    "response_id": response.id,
                    "item_id": item.id,
                    "output_index": output_index,
                    "content_index": 0,
                    "part": part,
                }
            )
            response.part_open = True

    def audio(
        self, response: Response, item: Item, output_index: int, seconds: float
    ) -> Generator[float, None, None]:
        context = self._context
        settings = context.settings
        emit = self._outbox.emit
        reply = response.reply
        audio = reply.audio
        if audio is None:
            audio = speech_like(
                seconds,
                level_dbfs=settings.audio_level_dbfs,
                seed=settings.seed * 7919 + context.record.index * 131 + response.number,
            )
        fmt = self._session.format("output")
        chunk = max(1, settings.delta_ms) * 8
        words = reply.text.split(" ") if reply.text else []
        total = max(1, math.ceil(len(audio) / chunk))
        common = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": output_index,
            "content_index": 0,
        }
        for index in range(total):
            piece = audio[index * chunk : (index + 1) * chunk]
            payload = _b64(from_ulaw(piece, fmt))
            emit({"type": "response.output_audio.delta", **common, "delta": payload})
            item.audio_ms += len(piece) // 8
            response.audio_sent_ms = item.audio_ms
            upto = math.ceil(len(words) * (index + 1) / total)
            said = len(response.transcript_sent.split(" ")) if response.transcript_sent else 0
            if upto > said:
                text = " ".join(words[said:upto])
                delta = text if not said else " " + text
                response.transcript_sent += delta
                item.transcript = response.transcript_sent
                emit({"type": "response.output_audio_transcript.delta", **common, "delta": delta})
            if (
                reply.drop_connection_after is not None
                and item.audio_ms >= reply.drop_connection_after * 1000
            ):
                context.dropping = True
                yield math.inf
                return
            yield len(piece) / 8000 / settings.audio_speed

    def text(
        self, response: Response, item: Item, output_index: int
    ) -> Generator[float, None, None]:
        common = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": output_index,
            "content_index": 0,
        }
        for word_index, word in enumerate(response.reply.text.split(" ")):
            delta = word if word_index == 0 else " " + word
            item.text = (item.text or "") + delta
            self._outbox.emit({"type": "response.output_text.delta", **common, "delta": delta})
            yield self._context.settings.delta_seconds

    def _close_part(self, response: Response, item: Item, output_index: int) -> None:
        if not response.part_open:
            return
        response.part_open = False
        emit = self._outbox.emit
        common = {
            "response_id": response.id,
            "item_id": item.id,
            "output_index": output_index,
            "content_index": 0,
        }
        if item.content == "output_text":
            emit({"type": "response.output_text.done", **common, "text": item.text or ""})
            part: dict[str, Any] = {"type": "text", "text": item.text or ""}
        else:
            emit({"type": "response.output_audio.done", **common})
            emit(
                {
                    "type": "response.output_audio_transcript.done",
                    **common,
                    "transcript": response.transcript_sent,
                }
            )
            part = {"type": "audio", "transcript": response.transcript_sent}
        emit({"type": "response.content_part.done", **common, "part": part})

    def item_finished(self, response: Response, item: Item, output_index: int, status: str) -> None:
        self._close_part(response, item, output_index)
        item.status = status
        wire = self._conversation.wire(item)
        emit = self._outbox.emit
        emit(
            {
                "type": "response.output_item.done",
                "response_id": response.id,
                "output_index": output_index,
                "item": wire,
            }
        )
        if response.default_conversation and item.id in self._conversation:
            emit({"type": "conversation.item.done", "previous_item_id": None, "item": wire})
        response.current = None
