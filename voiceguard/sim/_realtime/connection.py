"""One connection to the simulator: its receive loop, and client events dispatched to the parts
of its server state."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any, final

import anyio
from typing_extensions import assert_never

from voiceguard.protocol import (
    AudioAppend,
    AudioClear,
    AudioCommit,
    ClientEvent,
    ClientEventError,
    ItemCreate,
    ItemDelete,
    ItemRetrieve,
    ItemTruncate,
    OutputAudioClear,
    ResponseCancel,
    ResponseCreate,
    SessionUpdate,
    parse_client_event,
)
from voiceguard.sim._realtime.context import Context, Settings
from voiceguard.sim._realtime.conversation import Conversation
from voiceguard.sim._realtime.input_audio import InputAudio
from voiceguard.sim._realtime.outbox import Outbox, redact
from voiceguard.sim._realtime.records import ConnectionRecord, Counters, LoggedEvent
from voiceguard.sim._realtime.responses import Responses
from voiceguard.sim._realtime.script import Reply
from voiceguard.sim._realtime.session import Session, copy_json
from voiceguard.transports import MemoryTransport, Transport, TransportClosed

__all__ = ("Connection",)


class _Drop(Exception):
    """Raised inside the loop when a scripted fault drops the connection."""


def _receive_ready(transport: Transport) -> str | None:
    """A message that has already arrived on an in-memory transport, else None."""
    if isinstance(transport, MemoryTransport):
        return transport.receive_nowait()
    return None


def _loads_for_log(text: str) -> Mapping[str, Any]:
    data = json.loads(text)
    return data if isinstance(data, dict) else {}


def client_type(event: ClientEvent) -> str:
    """The wire type of a parsed client event."""
    match event:
        case SessionUpdate():
            return "session.update"
        case AudioAppend():
            return "input_audio_buffer.append"
        case AudioCommit():
            return "input_audio_buffer.commit"
        case AudioClear():
            return "input_audio_buffer.clear"
        case ItemCreate():
            return "conversation.item.create"
        case ItemTruncate():
            return "conversation.item.truncate"
        case ItemDelete():
            return "conversation.item.delete"
        case ItemRetrieve():
            return "conversation.item.retrieve"
        case ResponseCreate():
            return "response.create"
        case ResponseCancel():
            return "response.cancel"
        case OutputAudioClear():
            return "output_audio_buffer.clear"
        case _:
            assert_never(event)


@final
class Connection:
    """One connection's server state and event loop (sans-IO parts plus one receive loop)."""

    __slots__ = (
        "_context",
        "_conversation",
        "_input",
        "_outbox",
        "_responses",
        "_session",
        "_transport",
    )

    def __init__(
        self,
        settings: Settings,
        counters: Counters,
        reply: Callable[[int], Reply],
        transport: Transport,
        record: ConnectionRecord,
    ) -> None:
        self._transport = transport
        self._context = context = Context(settings, counters, record, reply)
        self._outbox = outbox = Outbox(context)
        self._session = session = Session(context)
        self._conversation = conversation = Conversation(context, outbox)
        self._responses = responses = Responses(context, outbox, session, conversation)
        self._input = InputAudio(context, outbox, session, conversation, responses)

    async def run(self) -> None:
        """Serve the connection until the client closes it or a scripted fault drops it."""
        transport = self._transport
        outbox = self._outbox
        responses = self._responses
        if self._context.xai:  # xAI: the conversation first (its docs' first message)
            conversation = {"id": self._context.new_id("conv_"), "object": "realtime.conversation"}
            outbox.emit({"type": "conversation.created", "conversation": conversation})
        outbox.emit({"type": "session.created", "session": copy_json(self._session.data)})
        try:
            while True:
                # Messages that have arrived go first, so that a message and a timer due at the
                # same instant are handled in the same order on every run.
                while (ready := _receive_ready(transport)) is not None:
                    self._on_message(ready)
                responses.run_timers(anyio.current_time())
                await outbox.flush(transport)
                if self._context.dropping:
                    raise _Drop
                deadline = min(responses.next_due(), outbox.next_due())
                with anyio.CancelScope(deadline=deadline):
                    text = await transport.receive()
                    self._on_message(text)
        except TransportClosed:
            pass
        except _Drop:
            self._context.record.dropped = True
            await transport.abort()
        finally:
            responses.close()

    def _on_message(self, text: str) -> None:
        now = anyio.current_time()
        log = self._context.record.log
        try:
            event = parse_client_event(text)
        except ClientEventError as exc:
            log.append(
                LoggedEvent(
                    time=now,
                    direction="received",
                    type=exc.event_type or "<invalid>",
                    event={"error": exc.message},
                )
            )
            self._outbox.error(exc)
            return
        log.append(
            LoggedEvent(
                time=now,
                direction="received",
                type=client_type(event),
                event=redact(_loads_for_log(text)),
            )
        )
        try:
            self._dispatch(event)
        except ClientEventError as exc:
            if exc.event_id is None:
                exc.event_id = event.event_id
            self._outbox.error(exc)

    def _dispatch(self, event: ClientEvent) -> None:
        match event:
            case SessionUpdate():
                if self._session.update(event):
                    self._input.reset_vad()
                self._outbox.emit(
                    {"type": "session.updated", "session": copy_json(self._session.data)}
                )
            case AudioAppend():
                self._input.append(event.audio)
            case AudioCommit():
                self._input.commit(event)
            case AudioClear():
                self._input.clear()
            case ItemCreate():
                self._conversation.create(event)
            case ItemTruncate():
                self._conversation.truncate(event)
            case ItemDelete():
                self._conversation.delete(event)
            case ItemRetrieve():
                self._conversation.retrieve(event.item_id, event.event_id)
            case ResponseCreate():
                self._responses.create(event.response, event.event_id)
            case ResponseCancel():
                self._responses.cancel(event)
            case OutputAudioClear():
                raise ClientEventError(
                    None,
                    "output_audio_buffer.clear is only supported for WebRTC and SIP sessions.",
                )
            case _:
                assert_never(event)
