"""Server events on their way to the client: beta names, faults, the error records, the log."""

from __future__ import annotations

import heapq
import math
from collections import Counter
from collections.abc import Mapping
from typing import Any, Final, final

import anyio

from voiceguard.protocol import ClientEventError, dumps
from voiceguard.sim._realtime.context import Context
from voiceguard.sim._realtime.records import EmittedError, LoggedEvent
from voiceguard.transports import Transport, on_grid

__all__ = ("Outbox", "redact")

_BETA_NAMES: Final[Mapping[str, str]] = {
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "conversation.item.added": "conversation.item.created",
}


def redact(message: Mapping[str, Any]) -> dict[str, Any]:
    """The message with base64 audio replaced by its decoded length (for logs)."""
    out = dict(message)
    for key in ("delta", "audio"):
        value = out.get(key)
        if isinstance(value, str) and (
            key == "audio" or str(out.get("type", "")).endswith("audio.delta")
        ):
            out[key] = f"<{len(value) * 3 // 4 - value[-2:].count('=')} bytes>"
    return out


@final
class Outbox:
    """The server events queued for the client, each with the time it is due."""

    __slots__ = ("_context", "_fault_counts", "_queue")

    def __init__(self, context: Context) -> None:
        self._context = context
        self._queue: list[tuple[float, int, dict[str, Any]]] = []
        self._fault_counts: Counter[str] = Counter()

    def emit(self, event: dict[str, Any]) -> None:
        """Queue a server event (GA name); faults and the beta renaming apply here."""
        context = self._context
        beta = context.beta
        event_type = event["type"]
        wire_type = _BETA_NAMES.get(event_type, event_type) if beta else event_type
        if beta and event_type == "conversation.item.done":
            return  # the beta API has no item.done
        event = {"type": wire_type, "event_id": context.new_id("event_"), **event}
        event["type"] = wire_type
        now = anyio.current_time()
        if event_type == "error":
            error = event["error"]
            context.record.errors.append(
                EmittedError(
                    time=now,
                    code=error.get("code"),
                    message=error["message"],
                    param=error.get("param"),
                    client_event_id=error.get("event_id"),
                )
            )
            context.counters.errors[error.get("code") or "null"] += 1
        settings = context.settings
        delay = settings.latency
        copies = 1
        self._fault_counts[event_type] += 1
        occurrence = self._fault_counts[event_type]
        for fault in settings.faults:
            if fault.event_type not in (event_type, wire_type):
                continue
            if fault.occurrences is not None and occurrence not in fault.occurrences:
                continue
            if fault.action == "drop":
                return
            if fault.action == "delay":
                delay += fault.seconds
            else:
                copies += 1
        for _ in range(copies):
            heapq.heappush(self._queue, (on_grid(now + delay), context.next_in_order(), event))

    def error(self, exc: ClientEventError) -> None:
        """Queue the ``error`` event (``invalid_request_error``) that refuses a client event."""
        self.emit(
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "code": exc.code,
                    "message": exc.message,
                    "param": exc.param,
                    "event_id": exc.event_id,
                },
            }
        )

    def next_due(self) -> float:
        """When the first queued event is due (infinity when none is queued)."""
        return self._queue[0][0] if self._queue else math.inf

    async def flush(self, transport: Transport) -> None:
        """Send (and log) every event that is due."""
        log = self._context.record.log
        queue = self._queue
        while queue and queue[0][0] <= (now := anyio.current_time()):
            _, _, event = heapq.heappop(queue)
            log.append(
                LoggedEvent(time=now, direction="sent", type=event["type"], event=redact(event))
            )
            await transport.send(dumps(event))
