"""The responses of one connection: create and cancel, and each response's timeline.

A response's timeline is a generator that emits events and yields the seconds to wait before
its next step; the connection runs the steps that are due (see :meth:`Responses.run_timers`).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Generator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, final

import anyio

from voiceguard.protocol import ClientEventError, ResponseCancel
from voiceguard.sim._realtime.context import Context
from voiceguard.sim._realtime.conversation import Conversation, Item
from voiceguard.sim._realtime.outbox import Outbox
from voiceguard.sim._realtime.output import ResponseOutput
from voiceguard.sim._realtime.script import Reply
from voiceguard.sim._realtime.session import Session
from voiceguard.transports import on_grid

__all__ = ("Response", "Responses")

_RATE_LIMITS: Final = (
    {"name": "requests", "limit": 5000, "remaining": 4999, "reset_seconds": 0.012},
    {"name": "tokens", "limit": 400000, "remaining": 395000, "reset_seconds": 0.75},
)


@dataclass(slots=True, kw_only=True)
class Response:
    """One response and where its timeline is."""

    id: str
    number: int
    reply: Reply
    default_conversation: bool
    metadata: Mapping[str, Any] | None
    text_only: bool
    items: list[Item] = field(default_factory=list)
    steps: Generator[float, None, None] | None = None
    current: Item | None = None
    part_open: bool = False
    transcript_sent: str = ""
    audio_sent_ms: int = 0
    done: bool = False
    running: bool = False


@final
class Responses:
    """Every response of a connection, the active one of the default conversation, and the
    timers of their timelines.

    Attributes:
        active: The response in progress in the default conversation, if any.
    """

    __slots__ = (
        "_context",
        "_conversation",
        "_conversation_id",
        "_count",
        "_outbox",
        "_output",
        "_responses",
        "_session",
        "_timers",
        "active",
    )

    def __init__(
        self, context: Context, outbox: Outbox, session: Session, conversation: Conversation
    ) -> None:
        self._context = context
        self._outbox = outbox
        self._session = session
        self._conversation = conversation
        self._responses: dict[str, Response] = {}
        self._timers: list[tuple[float, int, Response]] = []
        self._count = 0
        self._conversation_id = context.new_id("conv_")
        self._output = ResponseOutput(context, outbox, session, conversation)
        self.active: Response | None = None

    # -------------------------------------------------------------------------------- timers

    def next_due(self) -> float:
        """When the next step of a timeline is due (infinity when none is)."""
        return self._timers[0][0] if self._timers else math.inf

    def run_timers(self, now: float) -> None:
        """Run every step that is due (none once the connection is being dropped)."""
        timers = self._timers
        while timers and timers[0][0] <= now and not self._context.dropping:
            due, _, response = heapq.heappop(timers)
            self._advance(response, due)

    def _advance(self, response: Response, due: float) -> None:
        """Take the next step of *response*, due at *due*: the one after it is due *delay* later
        than this one was, not than it ran (a simulator that ran late, its event loop busy,
        catches up instead of drifting behind, as a model's own servers would)."""
        if response.done or response.steps is None:
            return
        response.running = True
        try:
            delay = next(response.steps)
        except StopIteration:
            return
        finally:
            response.running = False
        heapq.heappush(
            self._timers, (on_grid(due + delay), self._context.next_in_order(), response)
        )

    def close(self) -> None:
        """Stop every timeline (the connection is over)."""
        for response in list(self._responses.values()):
            if response.steps is not None:
                response.steps.close()

    # -------------------------------------------------------------------------------- wire

    def _wire(self, response: Response, status: str) -> dict[str, Any]:
        session = self._session
        output_format = session.format("output")
        wire: dict[str, Any] = {
            "object": "realtime.response",
            "id": response.id,
            "status": status,
            "status_details": None,
            "output": [self._conversation.wire(item) for item in response.items],
            "metadata": response.metadata,
            "usage": None,
        }
        if self._context.beta:
            wire["modalities"] = ["text"] if response.text_only else ["audio", "text"]
            wire["voice"] = session.voice
            wire["output_audio_format"] = session.data.get("output_audio_format")
            wire["max_output_tokens"] = "inf"
        else:
            wire["conversation_id"] = (
                self._conversation_id if response.default_conversation else None
            )
            wire["output_modalities"] = ["text"] if response.text_only else ["audio"]
            wire["max_output_tokens"] = "inf"
            wire["audio"] = {"output": {"format": output_format.to_wire(), "voice": session.voice}}
        return wire

    # -------------------------------------------------------------------------------- requests

    def reject_create(self, active: Response, event_id: str | None) -> None:
        """Refuse a create while *active* is in progress."""
        self._outbox.error(
            ClientEventError(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {active.id}. Wait "
                "until the response is finished before creating a new one.",
                event_id=event_id,
            )
        )

    def create(self, overrides: Mapping[str, Any] | None, event_id: str | None) -> None:
        """Start a response (``response.create``, or server VAD at the end of a turn)."""
        context = self._context
        default = (overrides or {}).get("conversation", "auto") != "none"
        if default and self.active is not None:
            self.reject_create(self.active, event_id)
            return
        number = self._count
        self._count += 1
        reply = context.reply(number)
        if reply.lost:
            context.counters.lost += 1
            return
        metadata = (overrides or {}).get("metadata")
        response = Response(
            id=context.new_id("resp_"),
            number=number,
            reply=reply,
            default_conversation=default,
            metadata=metadata if isinstance(metadata, Mapping) else None,
            text_only=self._session.text_only(overrides),
        )
        self._responses[response.id] = response
        if default:
            self.active = response
        context.counters.created += 1
        emit = self._outbox.emit
        emit({"type": "response.created", "response": self._wire(response, "in_progress")})
        emit({"type": "rate_limits.updated", "rate_limits": [dict(r) for r in _RATE_LIMITS]})
        response.steps = self._steps(response)
        heapq.heappush(
            self._timers, (on_grid(anyio.current_time()), context.next_in_order(), response)
        )

    def cancel(self, event: ResponseCancel) -> None:
        """Answer a ``response.cancel``."""
        target = self.active
        if event.response_id is not None:
            candidate = self._responses.get(event.response_id)
            target = candidate if candidate is not None and not candidate.done else None
        if target is None or target.done:
            raise ClientEventError(
                "response_cancel_not_active",
                "Cancellation failed: no active response found",
                event_id=event.event_id,
            )
        self.finish(target, status="cancelled", reason="client_cancelled")

    # -------------------------------------------------------------------------------- timeline

    def _steps(self, response: Response) -> Generator[float, None, None]:
        """The response's timeline: emits events, yields seconds to wait before the next step."""
        context = self._context
        settings = context.settings
        reply = response.reply
        if reply.stall:
            yield math.inf
            return
        yield settings.first_audio_delay
        output_index = 0
        seconds = reply.audio_seconds()
        if seconds > 0 or reply.text:
            item = Item(
                id=context.new_id("item_"),
                type="message",
                role="assistant",
                status="in_progress",
                content="output_text" if response.text_only else "output_audio",
                transcript="",
                text="",
                in_conversation=response.default_conversation,
            )
            response.items.append(item)
            response.current = item
            self._output.item_started(response, item, output_index)
            if response.text_only:
                yield from self._output.text(response, item, output_index)
            else:
                yield from self._output.audio(response, item, output_index, seconds)
            self._output.item_finished(response, item, output_index, "completed")
            output_index += 1
        if reply.function_call is not None:
            call = reply.function_call
            item = Item(
                id=context.new_id("item_"),
                type="function_call",
                status="in_progress",
                name=call.name,
                call_id=context.new_id("call_")[:21],
                arguments="",
                in_conversation=response.default_conversation,
            )
            response.items.append(item)
            response.current = item
            self._output.item_started(response, item, output_index)
            yield settings.delta_seconds
            item.arguments = call.arguments
            common = {
                "response_id": response.id,
                "item_id": item.id,
                "output_index": output_index,
                "call_id": item.call_id,
            }
            emit = self._outbox.emit
            emit(
                {
                    "type": "response.function_call_arguments.delta",
                    **common,
                    "delta": call.arguments,
                }
            )
            emit(
                {
                    "type": "response.function_call_arguments.done",
                    **common,
                    "name": call.name,
                    "arguments": call.arguments,
                }
            )
            self._output.item_finished(response, item, output_index, "completed")
        final = reply.status
        reason = {"completed": None, "incomplete": "max_output_tokens", "failed": None}[final]
        self.finish(response, status=final, reason=reason)

    def finish(self, response: Response, *, status: str, reason: str | None) -> None:
        """End *response* with *status* (``response.done``); a finished one stays finished."""
        if response.done:
            return
        response.done = True
        if response.steps is not None and not response.running:
            response.steps.close()
        current = response.current
        if current is not None:
            self._output.item_finished(
                response, current, response.items.index(current), "incomplete"
            )
        counters = self._context.counters
        wire = self._wire(response, status)
        if status == "cancelled":
            wire["status_details"] = {"type": "cancelled", "reason": reason}
            counters.cancelled += 1
        elif status == "incomplete":
            wire["status_details"] = {"type": "incomplete", "reason": reason}
        elif status == "failed":
            wire["status_details"] = {
                "type": "failed",
                "error": {"type": "server_error", "code": "server_error", "message": "simulated"},
            }
        else:
            counters.completed += 1
        wire["usage"] = {
            "total_tokens": 120 + response.audio_sent_ms // 50,
            "input_tokens": 100,
            "output_tokens": 20 + response.audio_sent_ms // 50,
        }
        if self.active is response:
            self.active = None
        self._outbox.emit({"type": "response.done", "response": wire})
