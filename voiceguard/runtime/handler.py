"""MediaHandler: one guarded call between Twilio and the Realtime API, on anyio.

The handler is a thin pump around :class:`~voiceguard.BridgeCore`: it reads both peers, feeds the
core, carries out the actions the core returns, wakes the core at its deadlines, and maps the
core's timer requests to call-scoped timers. Everything of the call runs inside one
:class:`~voiceguard.runtime.scope.CallScope`, so when the call ends (Twilio ``stop``, either socket
closing, a hang-up, too many malformed messages), every task and timer of the call ends with it and
nothing of it can act in another call.

It speaks over :class:`~voiceguard.transports.base.Transport` objects (whole text messages): a real
WebSocket on either side, or an in-memory pair in tests.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Final, Literal, TypeAlias, final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream
from typing_extensions import assert_never

from voiceguard.audio import FRAME_BYTES
from voiceguard.config import HandlerConfig
from voiceguard.core.actions import Deliver, EndCall, SendToModel, SendToPhone
from voiceguard.core.bridge import BridgeAction, BridgeCore
from voiceguard.core.guards.calibration import CalibrationStatistics
from voiceguard.core.playout import PlayoutStatistics
from voiceguard.core.record import DecisionCounts, TimerSink
from voiceguard.core.state import CallStateStatistics
from voiceguard.errors import RemoteProtocolError
from voiceguard.observe.metrics import CallMetrics, call_metrics
from voiceguard.observe.trace import TraceRecorder
from voiceguard.protocol import (
    RealtimeError,
    SpeechStarted,
    StreamStarted,
    StreamStopped,
    dumps,
    parse_realtime_event,
    parse_twilio_message,
)
from voiceguard.protocol.twilio import Connected, MediaReceived, TwilioEvent
from voiceguard.runtime.scope import CallScope, CallScopeStatistics
from voiceguard.transports import NORMAL_CLOSURE, Transport, TransportClosed

__all__ = ("CallSummary", "MediaHandler", "ModelConnector")

logger = logging.getLogger("voiceguard.handler")

#: Opens the model connection for a call, once Twilio's ``start`` has arrived: an async context
#: manager yielding a :class:`~voiceguard.transports.base.Transport` to the Realtime API.
ModelConnector: TypeAlias = Callable[[StreamStarted], AbstractAsyncContextManager[Transport]]

#: Action batches waiting to be sent; a slow peer holds the readers back instead of growing memory.
_QUEUE_DEPTH: Final = 64
#: Messages sent once per audio frame: logged at DEBUG only, never above.
_FRAME_MESSAGES: Final = frozenset({"media", "mark", "input_audio_buffer.append"})
#: Sent messages that change what the caller hears or the model does: logged at INFO.
_INTERVENTIONS: Final = frozenset(
    {"clear", "response.cancel", "conversation.item.truncate", "conversation.item.delete"}
)
#: A deadline that does not move after a tick is retried after this long (never a busy loop).
_STUCK_DEADLINE_RETRY: Final = 0.005


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallSummary:
    """What happened in one call, for logs, metrics and tests.

    Attributes:
        call_sid: Twilio's call SID, if the stream started.
        stream_sid: Twilio's stream SID, if the stream started.
        ended_by: Why the call ended (``"twilio stop"``, ``"phone closed"``,
            ``"model closed"``, ``"hang-up: goodbye played"``, ...).
        duration: Seconds from Twilio's ``start`` to the end.
        bad_messages: Malformed messages per peer (``"twilio"``, ``"realtime"``).
        model_errors: ``error`` events from the model, per code.
        state: The call state's counters.
        cancels: The cancel arbiter's decisions.
        creates: The create guard's decisions.
        gate: The calibration gate's statistics.
        playout: The playout buffer's counters.
        timers: The call scope's timer statistics (``pending`` is 0 after every call).
        metrics: The call's guarded actions counted for metrics (barge-ins, cancels, creates,
            timers, truncations, reaction latencies); None if the stream never started.
    """

    call_sid: str | None
    stream_sid: str | None
    ended_by: str
    duration: float
    bad_messages: MappingProxyType[str, int]
    model_errors: MappingProxyType[str, int]
    state: CallStateStatistics | None
    cancels: DecisionCounts | None
    creates: DecisionCounts | None
    gate: CalibrationStatistics | None
    playout: PlayoutStatistics | None
    timers: CallScopeStatistics | None
    metrics: CallMetrics | None = None


@final
class MediaHandler:
    """Runs one call: Twilio on *phone*, the Realtime API through *connect_model*.

    Args:
        phone: The Twilio Media Streams connection.
        connect_model: Opens the model connection once the stream has started (so no model
            session is opened for a caller that never starts a stream). It may refuse the
            call by raising :class:`~voiceguard.errors.RemoteProtocolError` (e.g. for bad
            custom parameters): the call then ends with ``"start refused: ..."``.
        config: The bridge's behaviour and the call's limits.
        trace: Records the call (every message in and out, every decision) to a JSON Lines
            file; see :mod:`voiceguard.observe.trace`. None records nothing.

    Call :meth:`run` once; it returns when the call is over. One call's failure stays in its own
    :meth:`run`: the caller (the server) logs it and goes on with the other calls.
    """

    def __init__(
        self,
        phone: Transport,
        connect_model: ModelConnector,
        *,
        config: HandlerConfig | None = None,
        trace: TraceRecorder | None = None,
    ) -> None:
        self._phone = phone
        self._connect_model = connect_model
        self._config = config if config is not None else HandlerConfig()
        self._trace = trace
        self._start_text = ""
        self._reacting_since: float | None = None
        self._reactions: list[float] = []
        self._unheard_at_truncation: list[float] = []
        if trace is not None:
            trace.set_config(self._config.bridge)
        self._core = BridgeCore(
            config=self._config.bridge,
            on_decision=trace.decision if trace is not None else None,
            on_timer=_timer_records(trace) if trace is not None else None,
            turns=self._config.turns(),
        )
        self._bad: Counter[str] = Counter()
        self._model_errors: Counter[str] = Counter()
        self._ended_by = ""
        self._wake = anyio.Event()
        self._sleeping_until = math.inf  # the deadline the ticker sleeps until (-inf: busy)
        self._model: Transport | None = None
        self._scope: CallScope | None = None
        self._outbox: MemoryObjectSendStream[list[BridgeAction]] | None = None
        self._ran = False
        self._start: StreamStarted | None = None

    @property
    def core(self) -> BridgeCore:
        """The call's decisions (its guards and their statistics)."""
        return self._core

    async def run(self) -> CallSummary:
        """Run the call to its end and return its summary.

        Raises:
            RuntimeError: If called twice.
        """
        if self._ran:
            raise RuntimeError("MediaHandler.run() may be called once; make a handler per call")
        self._ran = True
        start = self._start = await self._await_start()
        if start is None:
            with anyio.CancelScope(shield=True):
                await self._close_phone()
            return self._summary(None, 0.0, None)
        began = anyio.current_time()
        scope = CallScope(
            call_sid=start.call_sid, stream_sid=start.stream_sid, config=self._config.scope
        )
        try:
            async with self._connect_model(start) as model:
                self._model = model
                await self._run_call(start, scope, model)
        except TransportClosed as exc:
            self._end(f"model connection failed: {exc}")
        except OSError as exc:
            self._end(f"model connection failed: {exc}")
        except RemoteProtocolError as exc:  # the connector refused the start (its parameters)
            self._count_bad(exc.peer, str(exc))
            self._end(f"start refused: {exc}")
        with anyio.CancelScope(shield=True):
            await self._close_phone()
        if self._trace is not None:
            gate = self._core.gate.statistics()
            self._trace.end(
                anyio.current_time(),
                ended_by=self._ended_by or "ended",
                gate={
                    "noise_floor_dbfs": gate.noise_floor_dbfs,
                    "echo_delay_ms": gate.echo_delay_ms,
                    "echo_return_loss_db": gate.echo_return_loss_db,
                    "echo_confidence": gate.echo_confidence,
                },
            )
        return self._summary(start, anyio.current_time() - began, scope)

    async def _run_call(self, start: StreamStarted, scope: CallScope, model: Transport) -> None:
        outbox, inbox = anyio.create_memory_object_stream[list[BridgeAction]](_QUEUE_DEPTH)
        self._outbox = outbox
        with outbox, inbox:
            await self._run_scope(start, scope, model, inbox)
        self._outbox = None

    async def _run_scope(
        self,
        start: StreamStarted,
        scope: CallScope,
        model: Transport,
        inbox: MemoryObjectReceiveStream[list[BridgeAction]],
    ) -> None:
        async with scope:
            self._scope = scope
            scope.on_close(self._final_sends)
            scope.start_soon(self._sender, inbox, name="sender")
            now = anyio.current_time()
            if self._trace is not None:
                self._trace.start(
                    self._start_text, now, call_sid=start.call_sid, stream_sid=start.stream_sid
                )
            await self._emit(self._core.on_phone(start, now))
            scope.start_soon(self._read_phone, name="phone reader")
            scope.start_soon(self._read_model, model, name="model reader")
            scope.start_soon(self._tick, name="ticker")
            await anyio.sleep_forever()

    # ------------------------------------------------------------------ before the stream

    async def _await_start(self) -> StreamStarted | None:
        """Read Twilio until ``start``; nothing is opened before it."""
        with anyio.move_on_after(self._config.start_timeout):
            while True:
                try:
                    text = await self._phone.receive()
                except TransportClosed:
                    self._end("phone closed before start")
                    return None
                event = self._parse_phone(text)
                if isinstance(event, StreamStarted):
                    self._start_text = text
                    return event
                if isinstance(event, StreamStopped):
                    self._end("twilio stop before start")
                    return None
                if isinstance(event, MediaReceived):
                    self._count_bad("twilio", "media before start")
                elif event is not None and not isinstance(event, Connected):
                    logger.debug("ignored before start: %s", type(event).__name__)
                if self._too_many_bad():
                    return None
        self._end(f"no start within {self._config.start_timeout:g} s")
        return None

    # ------------------------------------------------------------------ the call's tasks

    async def _read_phone(self) -> None:
        core = self._core
        while True:
            try:
                text = await self._phone.receive()
            except TransportClosed:
                self._end("phone closed")
                return
            event = self._parse_phone(text)
            if event is None:
                if self._too_many_bad():
                    return
                continue
            if isinstance(event, StreamStarted):
                self._count_bad("twilio", "a second start")
                continue
            now = anyio.current_time()
            if self._trace is not None:
                self._trace.received("phone", text, now)
            await self._emit(core.on_phone(event, now))
            if isinstance(event, StreamStopped):
                self._end("twilio stop")
                return

    async def _read_model(self, model: Transport) -> None:
        core = self._core
        while True:
            try:
                text = await model.receive()
            except TransportClosed as exc:
                self._end(f"model closed ({exc.code})")
                return
            try:
                event = parse_realtime_event(text, audio_format=core.state.audio_format)
            except RemoteProtocolError as exc:
                self._count_bad("realtime", str(exc))
                if self._too_many_bad():
                    return
                continue
            if isinstance(event, RealtimeError):
                self._model_errors[event.code or event.error_type] += 1
                logger.warning(
                    "model error %s: %s",
                    event.code or event.error_type,
                    event.message,
                    extra=self._extra(code=event.code),
                )
            now = anyio.current_time()
            if self._trace is not None:
                self._trace.received("model", text, now)
            if isinstance(event, SpeechStarted):
                self._reacting_since = now
            await self._emit(core.on_model(event, now))

    async def _tick(self) -> None:
        core = self._core
        while True:
            wake = self._wake = anyio.Event()
            now = anyio.current_time()
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                if self._trace is not None:
                    self._trace.tick(now)
                await self._emit(core.on_tick(now))
                after = core.next_deadline()
                if after is not None and after <= now:
                    await anyio.sleep(_STUCK_DEADLINE_RETRY)
                continue
            timeout = math.inf if deadline is None else deadline - now
            self._sleeping_until = math.inf if deadline is None else deadline
            with anyio.move_on_after(timeout):
                await wake.wait()
            self._sleeping_until = -math.inf

    async def _sender(self, inbox: MemoryObjectReceiveStream[list[BridgeAction]]) -> None:
        async for batch in inbox:
            for action in batch:
                if not await self._carry_out(action):
                    return

    async def _carry_out(self, action: BridgeAction) -> bool:
        """Do one action; False when the call is over."""
        match action:
            case SendToPhone():
                try:
                    await self._phone.send(dumps(action.message))
                except TransportClosed:
                    self._end("phone closed")
                    return False
                self._sent("phone", action.message)
            case SendToModel():
                model = self._model
                assert model is not None
                try:
                    await model.send(dumps(action.message))
                except TransportClosed as exc:
                    self._end(f"model closed ({exc.code})")
                    return False
                self._sent("model", action.message)
            case EndCall():
                logger.info("hanging up: %s", action.reason, extra=self._extra())
                self._runtime_action("hang_up", reason=action.reason)
                self._end(f"hang-up: {action.reason}")
                return False
            case Deliver():
                pass  # no bot sits between the reference bridge and the model
            case _:
                assert_never(action)
        return True

    async def _emit(self, actions: list[BridgeAction]) -> None:
        # The ticker is woken only when the core's next deadline moved before the one it sleeps
        # until: most messages (every caller frame) leave it unchanged, and a wake-up per frame
        # was a good part of a call's CPU.
        deadline = self._core.next_deadline()
        if deadline is not None and deadline < self._sleeping_until:
            self._wake.set()
        if actions and self._outbox is not None:
            await self._outbox.send(actions)

    async def _final_sends(self) -> None:
        """Run under the scope's shielded grace: stop the bot on the phone, cancel what runs."""
        now = anyio.current_time()
        if self._trace is not None:
            self._trace.close_call(now)
        for action in self._core.close(now):
            if isinstance(action, SendToPhone) and not self._ended_by.startswith("phone"):
                with suppress(TransportClosed):
                    await self._phone.send(dumps(action.message))
                self._sent("phone", action.message, final=True)
            elif isinstance(action, SendToModel) and self._model is not None:
                with suppress(TransportClosed):
                    await self._model.send(dumps(action.message))
                self._sent("model", action.message, final=True)

    def _sent(
        self, peer: Literal["phone", "model"], message: Mapping[str, Any], *, final: bool = False
    ) -> None:
        """Log, trace and measure a message just sent (audio frames: DEBUG at most)."""
        kind = message.get("type") or message.get("event")
        trace = self._trace
        if kind in _FRAME_MESSAGES:
            if trace is not None:
                trace.sent(peer, message, anyio.current_time())
            if logger.isEnabledFor(logging.DEBUG):
                extra = self._extra(peer=peer, sent=kind)
                logger.debug("sent %s to the %s", kind, peer, extra=extra)
            return
        now = anyio.current_time()
        if trace is not None:
            trace.sent(peer, message, now)
        extra = self._extra(
            peer=peer,
            sent=kind,
            response_id=message.get("response_id"),
            item_id=message.get("item_id"),
            t=now,
        )
        if kind == "clear" and not final and self._reacting_since is not None:
            self._reactions.append(now - self._reacting_since)
            self._reacting_since = None
        elif kind == "conversation.item.truncate":
            item = self._core.state.current_item
            end_ms = message.get("audio_end_ms")
            same = item is not None and item.item_id == message.get("item_id")
            if item is not None and same and isinstance(end_ms, int):
                self._unheard_at_truncation.append(max(0.0, item.sent_ms - end_ms))
        level = logging.INFO if kind in _INTERVENTIONS else logging.DEBUG
        logger.log(level, "sent %s to the %s", kind, peer, extra=extra)

    def _runtime_action(self, what: str, **fields: object) -> None:
        if self._trace is not None:
            self._trace.action(what, anyio.current_time(), **fields)
        logger.debug("%s %s", what, fields, extra=self._extra(action=what))

    # ------------------------------------------------------------------ helpers

    def _parse_phone(self, text: str) -> TwilioEvent | None:
        try:
            return parse_phone_message(text)
        except RemoteProtocolError as exc:
            self._count_bad("twilio", str(exc))
            return None

    def _count_bad(self, peer: str, what: str) -> None:
        self._bad[peer] += 1
        if self._trace is not None:
            self._trace.bad("phone" if peer == "twilio" else "model", what, anyio.current_time())
        logger.warning("malformed %s message: %s", peer, what, extra=self._extra(peer=peer))

    def _too_many_bad(self) -> bool:
        if sum(self._bad.values()) > self._config.max_bad_messages:
            self._end(f"more than {self._config.max_bad_messages} malformed messages")
            return True
        return False

    def _end(self, reason: str) -> None:
        if not self._ended_by:
            self._ended_by = reason
            logger.info("call ending: %s", reason, extra=self._extra())
        if self._scope is not None:
            self._scope.close()

    async def _close_phone(self) -> None:
        with anyio.move_on_after(self._config.scope.shutdown_grace):
            with suppress(TransportClosed):
                await self._phone.aclose(NORMAL_CLOSURE, self._ended_by[:100])

    def _extra(self, **fields: object) -> dict[str, object]:
        start = self._start  # names the call even before the core has seen its start
        return {
            "call_sid": start.call_sid if start is not None else None,
            "stream_sid": start.stream_sid if start is not None else None,
            **fields,
        }

    def _summary(
        self, start: StreamStarted | None, duration: float, scope: CallScope | None
    ) -> CallSummary:
        return call_summary(
            self._core if start is not None else None,
            start=start,
            ended_by=self._ended_by or "ended",
            duration=duration,
            bad=self._bad,
            model_errors=self._model_errors,
            scope=scope,
            reactions=self._reactions,
            unheard_at_truncation=self._unheard_at_truncation,
        )


def _timer_records(trace: TraceRecorder) -> TimerSink:
    def record(name: str, now: float, number: int | None) -> None:
        trace.timer(name, now, number=number)

    return record


def parse_phone_message(text: str) -> TwilioEvent:
    """Parse one Twilio message, and check that a media frame is whole 20 ms frames of audio.

    Raises:
        RemoteProtocolError: Naming the message, the field and the problem.
    """
    event = parse_twilio_message(text)
    if isinstance(event, MediaReceived) and (not event.audio or len(event.audio) % FRAME_BYTES):
        # Twilio sends whole 20 ms frames; the calibration gate measures nothing else.
        raise RemoteProtocolError(
            peer="twilio",
            message_type="media",
            field="media.payload",
            problem=f"{len(event.audio)} bytes of audio; "
            f"expected a positive multiple of {FRAME_BYTES} (20 ms frames)",
        )
    return event


def call_summary(
    core: BridgeCore | None,
    *,
    start: StreamStarted | None,
    ended_by: str,
    duration: float,
    bad: Mapping[str, int],
    model_errors: Mapping[str, int],
    scope: CallScope | None,
    reactions: Sequence[float],
    unheard_at_truncation: Sequence[float],
) -> CallSummary:
    """The :class:`CallSummary` of a call; *core* is None for a call that never started."""
    return CallSummary(
        call_sid=start.call_sid if start is not None else None,
        stream_sid=start.stream_sid if start is not None else None,
        ended_by=ended_by,
        duration=duration,
        bad_messages=MappingProxyType(dict(bad)),
        model_errors=MappingProxyType(dict(model_errors)),
        state=core.state.statistics() if core is not None else None,
        cancels=core.cancels.statistics() if core is not None else None,
        creates=core.creates.statistics() if core is not None else None,
        gate=core.gate.statistics() if core is not None else None,
        playout=core.playout.statistics() if core is not None else None,
        timers=scope.statistics() if scope is not None else None,
        metrics=call_metrics(
            core,
            barge_in_reactions=reactions,
            unheard_at_truncation=unheard_at_truncation,
        )
        if core is not None
        else None,
    )
