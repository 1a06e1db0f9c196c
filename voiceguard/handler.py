"""MediaHandler: one guarded call between Twilio and the Realtime API, on anyio.

The handler is a thin pump around :class:`~voiceguard.BridgeCore`: it reads both peers, feeds the
core, carries out the actions the core returns, wakes the core at its deadlines, and maps the
core's timer requests to call-scoped timers. Everything of the call runs inside one
:class:`~voiceguard.timers.CallScope`, so when the call ends (Twilio ``stop``, either socket
closing, a hang-up, too many malformed messages), every task and timer of the call ends with it and
nothing of it can act in another call.

It speaks over :class:`~voiceguard.sim.transport.Transport` objects (whole text messages): a real
WebSocket on either side, or an in-memory pair in tests.
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager, suppress
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, TypeAlias, final

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from voiceguard.bridge import (
    BridgeAction,
    BridgeCore,
    HangUp,
    NoteActivity,
    SendToModel,
    SendToPhone,
    StartTimer,
    StopTimer,
)
from voiceguard.call_timers import HangupFallback, IdleLadder, MaxCallDuration, ResponseWatchdog
from voiceguard.config import HandlerConfig
from voiceguard.errors import RemoteProtocolError
from voiceguard.guards._record import DecisionCounts
from voiceguard.guards.calibration import CalibrationStatistics
from voiceguard.playout import PlayoutStatistics
from voiceguard.protocol import (
    RealtimeError,
    StreamStarted,
    StreamStopped,
    dumps,
    parse_realtime_event,
    parse_twilio_message,
)
from voiceguard.protocol.twilio import Connected, MediaReceived, TwilioEvent
from voiceguard.sim.transport import NORMAL_CLOSURE, Transport, TransportClosed
from voiceguard.state import CallStateStatistics
from voiceguard.timers import CallScope, CallScopeStatistics

__all__ = ("CallSummary", "MediaHandler", "ModelConnector")

logger = logging.getLogger("voiceguard.handler")

#: Opens the model connection for a call, once Twilio's ``start`` has arrived: an async context
#: manager yielding a :class:`~voiceguard.sim.transport.Transport` to the Realtime API.
ModelConnector: TypeAlias = Callable[[StreamStarted], AbstractAsyncContextManager[Transport]]

#: Action batches waiting to be sent; a slow peer holds the readers back instead of growing memory.
_QUEUE_DEPTH: Final = 64
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


@final
class MediaHandler:
    """Runs one call: Twilio on *phone*, the Realtime API through *connect_model*.

    Args:
        phone: The Twilio Media Streams connection.
        connect_model: Opens the model connection once the stream has started (so no model
            session is opened for a caller that never starts a stream).
        config: The bridge's behaviour and the call's limits.

    Call :meth:`run` once; it returns when the call is over. One call's failure stays in its own
    :meth:`run`: the caller (the server) logs it and goes on with the other calls.
    """

    def __init__(
        self,
        phone: Transport,
        connect_model: ModelConnector,
        *,
        config: HandlerConfig | None = None,
    ) -> None:
        self._phone = phone
        self._connect_model = connect_model
        self._config = config if config is not None else HandlerConfig()
        self._core = BridgeCore(config=self._config.bridge)
        self._bad: Counter[str] = Counter()
        self._model_errors: Counter[str] = Counter()
        self._ended_by = ""
        self._wake = anyio.Event()
        self._sleeping_until = math.inf  # the deadline the ticker sleeps until (-inf: busy)
        self._model: Transport | None = None
        self._scope: CallScope | None = None
        self._watchdog: ResponseWatchdog | None = None
        self._fallback: HangupFallback | None = None
        self._idle: IdleLadder | None = None
        self._outbox: MemoryObjectSendStream[list[BridgeAction]] | None = None
        self._ran = False

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
        start = await self._await_start()
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
        with anyio.CancelScope(shield=True):
            await self._close_phone()
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
            self._watchdog = ResponseWatchdog(
                scope, self._on_watchdog, config=self._config.watchdog
            )
            self._fallback = HangupFallback(scope, self._on_fallback, config=self._config.hangup)
            self._idle = IdleLadder(
                scope, self._on_idle_prompt, self._on_idle_hangup, config=self._config.idle
            )
            limits = MaxCallDuration(
                scope,
                self._on_max_duration,
                self._on_max_duration_hard,
                config=self._config.max_duration,
            )
            limits.start()
            scope.on_close(self._final_sends)
            scope.start_soon(self._sender, inbox, name="sender")
            await self._emit(self._core.on_phone(start, anyio.current_time()))
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
            await self._emit(core.on_phone(event, anyio.current_time()))
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
            await self._emit(core.on_model(event, anyio.current_time()))

    async def _tick(self) -> None:
        core = self._core
        while True:
            wake = self._wake = anyio.Event()
            now = anyio.current_time()
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
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
        if isinstance(action, SendToPhone):
            try:
                await self._phone.send(dumps(action.message))
            except TransportClosed:
                self._end("phone closed")
                return False
        elif isinstance(action, SendToModel):
            model = self._model
            assert model is not None
            try:
                await model.send(dumps(action.message))
            except TransportClosed as exc:
                self._end(f"model closed ({exc.code})")
                return False
        elif isinstance(action, StartTimer):
            timer = self._watchdog if action.timer == "watchdog" else self._fallback
            assert timer is not None
            timer.arm()
        elif isinstance(action, StopTimer):
            timer = self._watchdog if action.timer == "watchdog" else self._fallback
            assert timer is not None
            timer.disarm()
        elif isinstance(action, NoteActivity):
            idle = self._idle
            assert idle is not None
            if self._core.state.hangup_pending:
                idle.cancel()
            elif action.who == "caller":
                idle.caller_activity()
            else:
                idle.bot_activity()
        elif isinstance(action, HangUp):
            logger.info("hanging up: %s", action.reason, extra=self._extra())
            self._end(f"hang-up: {action.reason}")
            return False
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

    async def _on_watchdog(self) -> None:
        await self._emit(self._core.on_watchdog(anyio.current_time()))

    async def _on_idle_prompt(self, number: int) -> None:
        await self._emit(self._core.on_idle_prompt(number, anyio.current_time()))

    async def _on_idle_hangup(self) -> None:
        await self._emit(self._core.on_idle_hangup(anyio.current_time()))

    async def _on_max_duration(self) -> None:
        await self._emit(self._core.on_max_duration(anyio.current_time()))

    async def _on_max_duration_hard(self) -> None:
        await self._emit(self._core.on_max_duration_hard(anyio.current_time()))

    async def _on_fallback(self) -> None:
        await self._emit(self._core.on_hangup_fallback(anyio.current_time()))

    async def _final_sends(self) -> None:
        """Run under the scope's shielded grace: stop the bot on the phone, cancel what runs."""
        for action in self._core.close(anyio.current_time()):
            if isinstance(action, SendToPhone) and not self._ended_by.startswith("phone"):
                with suppress(TransportClosed):
                    await self._phone.send(dumps(action.message))
            elif isinstance(action, SendToModel) and self._model is not None:
                with suppress(TransportClosed):
                    await self._model.send(dumps(action.message))

    # ------------------------------------------------------------------ helpers

    def _parse_phone(self, text: str) -> TwilioEvent | None:
        try:
            return parse_twilio_message(text)
        except RemoteProtocolError as exc:
            self._count_bad("twilio", str(exc))
            return None

    def _count_bad(self, peer: str, what: str) -> None:
        self._bad[peer] += 1
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
        state = self._core.state
        return {"call_sid": state.call_sid, "stream_sid": state.stream_sid, **fields}

    def _summary(
        self, start: StreamStarted | None, duration: float, scope: CallScope | None
    ) -> CallSummary:
        core = self._core
        started = start is not None
        return CallSummary(
            call_sid=start.call_sid if start is not None else None,
            stream_sid=start.stream_sid if start is not None else None,
            ended_by=self._ended_by or "ended",
            duration=duration,
            bad_messages=MappingProxyType(dict(self._bad)),
            model_errors=MappingProxyType(dict(self._model_errors)),
            state=core.state.statistics() if started else None,
            cancels=core.cancels.statistics() if started else None,
            creates=core.creates.statistics() if started else None,
            gate=core.gate.statistics() if started else None,
            playout=core.playout.statistics() if started else None,
            timers=scope.statistics() if scope is not None else None,
        )
