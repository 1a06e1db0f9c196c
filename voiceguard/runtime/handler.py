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
from collections import Counter
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, suppress
from typing import Any, Final, Literal, TypeAlias, final

import anyio
from typing_extensions import assert_never

from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS
from voiceguard.config import HandlerConfig
from voiceguard.core.actions import Deliver, EndCall, RunTool, SendToModel, SendToPhone
from voiceguard.core.bridge import BridgeAction, BridgeCore
from voiceguard.core.record import DecisionSink, TimerSink
from voiceguard.core.state import CallState
from voiceguard.decisions import Decision
from voiceguard.errors import RemoteProtocolError
from voiceguard.observe.trace import TraceRecorder
from voiceguard.protocol import (
    ModelProvider,
    RealtimeError,
    SpeechStarted,
    StreamStarted,
    StreamStopped,
    dumps,
    parse_realtime_event,
)
from voiceguard.protocol.twilio import TwilioEvent
from voiceguard.runtime._clock import Alarm, loop_clock
from voiceguard.runtime._model_session import ModelSession, log_model_error
from voiceguard.runtime._phone_in import (
    PhoneChecks,
    PhoneInput,
    await_start,
    default_apology,
    parse_phone_message,
)
from voiceguard.runtime._sends import OrderedSends
from voiceguard.runtime._tools import answer_tool
from voiceguard.runtime.scope import CallScope
from voiceguard.runtime.summary import CallMeasures, CallSummary, call_summary, trace_gate
from voiceguard.transports import NORMAL_CLOSURE, Transport, TransportClosed

__all__ = ("CallSummary", "MediaHandler", "ModelConnector")

logger = logging.getLogger("voiceguard.handler")

#: Opens the model connection for a call, once Twilio's ``start`` has arrived: an async context
#: manager yielding a :class:`~voiceguard.transports.base.Transport` to the Realtime API.
ModelConnector: TypeAlias = Callable[[StreamStarted], AbstractAsyncContextManager[Transport]]

#: Action batches waiting while another task sends; past this many, a slow peer holds the
#: readers back instead of growing memory (see OrderedSends).
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
        on_decision: Called with every decision of the call's guards, in the order they are
            made, inside the call (after the trace has it): keep it quick (count, append, log),
            as for :class:`~voiceguard.middleware.GuardedCall`'s. None calls nothing.

            .. versionadded:: 0.2.0
        provider: Who serves the model (the session update's shape); None: OpenAI.

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
        on_decision: DecisionSink | None = None,
        provider: ModelProvider | None = None,
    ) -> None:
        self._phone = phone
        self._connect_model = connect_model
        self._config = config if config is not None else HandlerConfig()
        self._trace = trace
        self._start_text = ""
        self._measures = CallMeasures()
        if trace is not None:
            trace.set_config(self._config.bridge)
            trace.set_tools(self._config.tools)
        self._core = BridgeCore(
            config=self._config.bridge,
            on_decision=_decisions_to(trace, on_decision),
            on_timer=_timer_records(trace) if trace is not None else None,
            turns=self._config.turns(),
            tools=self._config.tools,
            provider=provider,
        )
        self._bad: Counter[str] = Counter()
        self._model_errors: Counter[str] = Counter()
        self._ended_by = ""
        self._alarm = Alarm()  # the ticker's sleep until the next deadline
        self._model: Transport | None = None
        self._scope: CallScope | None = None
        # Actions are carried out by the task whose event caused them, in the order decided.
        self._sends = OrderedSends(self._carry_out, depth=_QUEUE_DEPTH)
        self._ran = False
        self._start: StreamStarted | None = None
        self._phone_in: PhoneInput | None = None
        self._first_model_text: str | None = None
        self._session: ModelSession | None = None
        self._apologised = False
        self._wind_up: tuple[float, str | None] | None = None
        self._now = anyio.current_time  # the loop's own clock once the call runs (loop_clock)

    @property
    def core(self) -> BridgeCore:
        """The call's decisions (its guards and their statistics)."""
        return self._core

    def wind_up(self, *, within: float, instructions: str | None = None) -> None:
        """End the call soon and politely (a server that drains before it stops): a goodbye at
        once (*instructions*, else :attr:`~voiceguard.TurnConfig.time_limit_goodbye`), the
        hang-up once it played, by *within* seconds from now at the latest. Before ``start`` it
        takes effect at the start, with what is left of *within*. Only the first call counts.

        .. versionadded:: 0.2.0
        """
        if self._wind_up is None:
            self._wind_up = (anyio.current_time() + within, instructions)
            if self._sends.open:  # the call runs: now
                self._apply_wind_up()

    def _apply_wind_up(self) -> None:
        assert self._wind_up is not None
        by, instructions = self._wind_up
        now = anyio.current_time()
        self._core.wind_up(now, within=max(0.0, by - now), instructions=instructions)
        self._alarm.wake()  # the goodbye is due now

    async def run(self) -> CallSummary:
        """Run the call to its end and return its summary.

        Raises:
            RuntimeError: If called twice.
        """
        if self._ran:
            raise RuntimeError("MediaHandler.run() may be called once; make a handler per call")
        self._ran = True
        self._now = loop_clock()
        checks = PhoneChecks(self._parse_phone, self._count_bad, self._too_many_bad)
        got = await await_start(self._phone, timeout=self._config.start_timeout, checks=checks)
        start = None
        if isinstance(got, str):
            self._end(got)
        else:
            start, self._start_text = got
            self._start = start
        if start is None:
            with anyio.CancelScope(shield=True):
                await self._close_phone()
            return self._summary(None, 0.0, None)
        began = anyio.current_time()
        scope = CallScope(
            call_sid=start.call_sid, stream_sid=start.stream_sid, config=self._config.scope
        )
        phone_in = self._phone_in = PhoneInput(
            self._phone,
            start,
            checks=checks,
            max_audio_burst=self._config.max_audio_burst,
            clock=self._now,
        )
        async with anyio.create_task_group() as reading:
            # One reader of the phone from here on: a stop during the handshake ends the call.
            reading.start_soon(phone_in.pump, name="phone pump")
            try:
                await self._call_model(start, scope)
                if self._session is not None and self._session.failed:
                    await self._apologise(start)
            finally:
                phone_in.close()
                reading.cancel_scope.cancel()
        with anyio.CancelScope(shield=True):
            await self._close_phone()
        if self._trace is not None:
            gate = trace_gate(self._core.gate.statistics())
            self._trace.end(anyio.current_time(), ended_by=self._ended_by or "ended", gate=gate)
            if self._trace.error is not None:
                logger.warning("trace not written: %s", self._trace.error, extra=self._extra())
        return self._summary(start, anyio.current_time() - began, scope)

    async def _call_model(self, start: StreamStarted, scope: CallScope) -> None:
        """Open the call's model session in time, run the call over it, or say why not."""
        assert self._phone_in is not None
        session = self._session = ModelSession(
            self._connect_model,
            self._phone_in,
            timeout=self._config.model_timeout,
            end=self._end,
            count_bad=self._count_bad,
            extra=self._extra,
        )

        async def run(model: Transport, first: str) -> None:
            if (refused := session.refusal(first)) is not None:  # the apology follows
                self._model_errors[refused] += 1
                return
            self._first_model_text = first
            self._model = model
            await self._run_call(start, scope, model)

        async def silent() -> None:  # apologise before the model socket's slow close
            await self._apologise(start)
            with anyio.CancelScope(shield=True):
                await self._close_phone()

        await session.run(start, run, silent)

    async def _apologise(self, start: StreamStarted) -> None:
        """Tell the caller the call cannot be taken (the model is unreachable)."""
        apology = self._config.apology
        if apology is not False and self._phone_in is not None and not self._apologised:
            self._apologised = True
            audio = default_apology() if apology is True else apology
            self._runtime_action("apologise", seconds=len(audio) / FRAME_BYTES * FRAME_SECONDS)
            await self._phone_in.play(start.stream_sid, audio)

    async def _run_call(self, start: StreamStarted, scope: CallScope, model: Transport) -> None:
        phone_in = self._phone_in
        assert phone_in is not None
        async with scope:
            self._scope = scope
            self._sends.start()
            scope.on_close(self._final_sends)
            now = anyio.current_time()
            if self._trace is not None:
                sids = {"call_sid": start.call_sid, "stream_sid": start.stream_sid}
                self._trace.start(self._start_text, now, **sids)
            await self._emit(self._core.on_phone(start, now))
            if self._wind_up is not None:  # asked before the start
                self._apply_wind_up()
            scope.start_soon(self._read_model, model, name="model reader")
            scope.start_soon(self._tick, name="ticker")
            # The phone's one reader (PhoneInput.pump) feeds the call from here on, in its task.
            phone_in.on_gone = lambda: self._end(phone_in.gone or "phone closed")
            try:
                await phone_in.deliver(self._phone_message)
                if phone_in.gone is not None:
                    self._end(phone_in.gone)
                await anyio.sleep_forever()
            finally:
                self._sends.stop()

    # ------------------------------------------------------------------ the call's tasks

    async def _phone_message(self, text: str, event: TwilioEvent) -> bool:
        """One phone message of the running call; False once the call is over."""
        if not self._sends.open:
            return False
        now = self._now()
        if self._trace is not None:
            self._trace.received("phone", text, now)
        await self._emit(self._core.on_phone(event, now))
        if isinstance(event, StreamStopped):
            self._end("twilio stop")
            return False
        return True

    async def _read_model(self, model: Transport) -> None:
        core = self._core
        first = self._first_model_text  # read while the session opened
        while True:
            if first is not None:
                text, first = first, None
            else:
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
                log_model_error(event, self._extra(code=event.code))
            now = self._now()
            if self._trace is not None:
                self._trace.received("model", text, now)
            if isinstance(event, SpeechStarted):
                self._measures.speech_started(now)
            await self._emit(core.on_model(event, now))

    async def _tick(self) -> None:
        core = self._core
        while True:
            now = self._now()
            deadline = core.next_deadline()
            if deadline is not None and deadline <= now:
                if self._trace is not None:
                    self._trace.tick(now)
                await self._emit(core.on_tick(now))
                after = core.next_deadline()
                if after is not None and after <= now:
                    await anyio.sleep(_STUCK_DEADLINE_RETRY)
                continue
            await self._alarm.sleep(deadline, now)

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
            case RunTool():  # in the call's scope: it ends with the call
                assert self._scope is not None
                self._scope.start_soon(self._answer, action, name=f"tool {action.tool.name}")
            case Deliver():
                pass  # no bot sits between the reference bridge and the model
            case _:
                assert_never(action)
        return True

    async def _answer(self, action: RunTool) -> None:
        trace, extra = self._trace, self._extra()
        await answer_tool(action, self._core, self._emit, clock=self._now, trace=trace, extra=extra)

    async def _emit(self, actions: list[BridgeAction]) -> None:
        # The ticker wakes only when the core's next deadline moved before the one it sleeps
        # until: most messages (every caller frame) leave it as it was (a wake-up per frame cost).
        deadline = self._core.next_deadline()
        if deadline is not None and deadline < self._alarm.until:
            self._alarm.wake()
        await self._sends.send(actions)

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
        measures = None if final else self._measures
        state = self._core.state
        _record_sent(
            peer, message, trace=self._trace, measures=measures, state=state, extra=self._extra
        )

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
            self._sends.stop()
            self._scope.close()

    async def _close_phone(self) -> None:
        refused = self._session.refused if self._session is not None else None
        code = refused.close_code if refused is not None else NORMAL_CLOSURE
        with anyio.move_on_after(self._config.scope.shutdown_grace), suppress(TransportClosed):
            await self._phone.aclose(code, self._ended_by[:100])

    def _extra(self, **fields: object) -> dict[str, object]:
        start = self._start  # names the call even before the core has seen its start
        sids = (start.call_sid, start.stream_sid) if start is not None else (None, None)
        return {"call_sid": sids[0], "stream_sid": sids[1], **fields}

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
            reactions=self._measures.reactions,
            unheard_at_truncation=self._measures.unheard_at_truncation,
        )


def _record_sent(
    peer: Literal["phone", "model"],
    message: Mapping[str, Any],
    *,
    trace: TraceRecorder | None,
    measures: CallMeasures | None,
    state: CallState,
    extra: Callable[..., dict[str, object]],
) -> None:
    """Log and trace a message just sent, and measure it (unless *measures* is None)."""
    kind = message.get("type") or message.get("event")
    if kind in _FRAME_MESSAGES:
        if trace is not None:
            trace.sent(peer, message, anyio.current_time())
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("sent %s to the %s", kind, peer, extra=extra(peer=peer, sent=kind))
        return
    now = anyio.current_time()
    if trace is not None:
        trace.sent(peer, message, now)
    fields = extra(
        peer=peer,
        sent=kind,
        response_id=message.get("response_id"),
        item_id=message.get("item_id"),
        t=now,
    )
    if measures is not None:
        measures.sent(kind, message, now, state.current_item)
    level = logging.INFO if kind in _INTERVENTIONS else logging.DEBUG
    logger.log(level, "sent %s to the %s", kind, peer, extra=fields)


def _timer_records(trace: TraceRecorder) -> TimerSink:
    def record(name: str, now: float, number: int | None) -> None:
        trace.timer(name, now, number=number)

    return record


def _decisions_to(trace: TraceRecorder | None, sink: DecisionSink | None) -> DecisionSink | None:
    """One sink for the bridge: the trace's, then the caller's, either, or none."""
    if trace is None or sink is None:
        return sink if trace is None else trace.decision
    record = trace.decision

    def both(decision: Decision) -> None:
        record(decision)
        sink(decision)

    return both
