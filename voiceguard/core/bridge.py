"""BridgeCore: the reference bridge, a thin driver of the turn engine (sans-IO).

One :class:`BridgeCore` per call. It speaks for the bot: on Twilio's ``start`` it configures the
session in full turn control (``audio/pcmu`` both ways, ``server_vad`` with
``interrupt_response`` and ``create_response`` off, the ``end_call`` tool) and greets the caller
under the greeting lock; it forwards the caller's audio to the model untouched; and it hands
everything else to the :class:`~voiceguard.core.turns.TurnEngine`, which holds the whole
barge-in and turn policy (the same engine the middleware drives for an existing bot) and paces
the model's audio to the phone with a mark per chunk.

With tools (:mod:`voiceguard.tools`) it also answers the model's function calls: once the
response that made them is done, it asks for each to run
(:class:`~voiceguard.core.actions.RunTool`), and when the last result is in
(:meth:`BridgeCore.tool_result`) it sends the results and one guarded ``response.create``. A
call cut off by a barge-in (``incomplete``) is not run.

It does no I/O and never reads a clock. Feed it every message of both peers
(:meth:`BridgeCore.on_phone`, :meth:`BridgeCore.on_model`) and wake it at
:meth:`BridgeCore.next_deadline` (:meth:`BridgeCore.on_tick`); each returns the
:data:`BridgeAction` list to carry out, in order. The anyio media handler is a pump around it,
and a test can drive it with literal timestamps.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, TypeAlias, final

from voiceguard._deprecated import warn_deprecated
from voiceguard.config import BridgeConfig, TurnConfig
from voiceguard.core.actions import (
    Deliver,
    EndCall,
    RunTool,
    SendToModel,
    SendToPhone,
    TurnAction,
)
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import CreateRequest, ResponseCreateGuard
from voiceguard.core.playout import PlayoutBuffer
from voiceguard.core.record import DecisionCounts, DecisionSink, TimerSink
from voiceguard.core.state import CallState
from voiceguard.core.turns import TurnEngine
from voiceguard.decisions import CreatePolicy
from voiceguard.protocol.realtime import (
    PROVIDERS,
    ModelProvider,
    RealtimeServerEvent,
    ResponseDone,
    end_call_tool,
    function_arguments,
    function_call_output,
    input_audio_append,
    session_update,
    tool_error_output,
)
from voiceguard.protocol.twilio import (
    MarkPlayed,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    TwilioEvent,
)
from voiceguard.tools import Tool, check_tools

__all__ = (
    "BridgeAction",
    "BridgeCore",
    "Deliver",
    "EndCall",
    "RunTool",
    "SendToModel",
    "SendToPhone",
)

#: What :class:`BridgeCore` asks its runtime to do: the turn engine's actions (never a
#: :class:`~voiceguard.core.actions.Deliver`: no bot sits in between) and the tools to run.
BridgeAction: TypeAlias = TurnAction | RunTool


@final
class BridgeCore:
    """The decisions of one guarded Twilio <-> Realtime call.

    Args:
        config: What the bridge says and how it reacts.
        state: The call's state (one is made when omitted).
        on_decision: Receives every decision of the call's guards (the calibration gate's
            judgements of ``speech_started``, the cancel arbiter's and the create guard's), in
            the order they are made: for metrics and call traces.
        on_timer: Told of each of the call's own timers as it fires (the lost-create watch,
            the idle ladder, the time limits, the hang-up fallback): for call traces.
        turns: The turn engine's settings, with the call's timers (the media handler passes
            :meth:`HandlerConfig.turns() <voiceguard.HandlerConfig.turns>`); by default
            :meth:`BridgeConfig.turns() <voiceguard.BridgeConfig.turns>` (a watchdog and a
            hang-up fallback, no idle ladder, no time limit).
        tools: The tools the model may call (offered in the session beside ``end_call``).
        provider: Who serves the model (the shape of the session update); None: OpenAI.

    Raises:
        ToolError: If *tools* holds something else than :class:`~voiceguard.tools.Tool`, or
            two of the same name.

    Attributes:
        engine: The call's :class:`~voiceguard.core.turns.TurnEngine`.
    """

    __slots__ = ("_answered", "_config", "_provider", "_running", "_tools", "engine")

    def __init__(
        self,
        *,
        config: BridgeConfig | None = None,
        state: CallState | None = None,
        on_decision: DecisionSink | None = None,
        on_timer: TimerSink | None = None,
        turns: TurnConfig | None = None,
        tools: Sequence[Tool] = (),
        provider: ModelProvider | None = None,
    ) -> None:
        self._config = config if config is not None else BridgeConfig()
        self._provider = provider if provider is not None else PROVIDERS["openai"]
        self._tools = {t.name: t for t in check_tools(tools)}
        self._running: set[str] = set()  # the call ids of the tools running
        self._answered: list[TurnAction] = []  # results waiting for the last one
        self.engine = TurnEngine(
            turns if turns is not None else self._config.turns(),
            state=state,
            on_decision=on_decision,
            on_timer=on_timer,
        )

    # ------------------------------------------------------------------ facts

    @property
    def config(self) -> BridgeConfig:
        """The bridge's configuration."""
        return self._config

    @property
    def state(self) -> CallState:
        """The call's :class:`~voiceguard.CallState`."""
        return self.engine.state

    @property
    def cancels(self) -> CancelArbiter:
        """The call's :class:`~voiceguard.CancelArbiter`."""
        return self.engine.cancels

    @property
    def creates(self) -> ResponseCreateGuard:
        """The call's :class:`~voiceguard.ResponseCreateGuard`."""
        return self.engine.creates

    @property
    def gate(self) -> CalibrationGate:
        """The call's :class:`~voiceguard.CalibrationGate`."""
        return self.engine.gate

    @property
    def playout(self) -> PlayoutBuffer:
        """The call's :class:`~voiceguard.PlayoutBuffer`."""
        return self.engine.playout

    @property
    def stream_sid(self) -> str | None:
        """The Twilio stream, once ``start`` arrived."""
        return self.engine.stream_sid

    @property
    def hung_up(self) -> bool:
        """True once an :class:`~voiceguard.core.actions.EndCall` was returned."""
        return self.engine.hung_up

    @property
    def false_interruptions(self) -> int:
        """Barge-ins allowed, then found false (the speech vanished) and the bot resumed."""
        return self.engine.false_interruptions

    def barge_in_statistics(self) -> DecisionCounts:
        """The calibration gate's judgements of ``speech_started`` as this bridge acted on them.

        Deferrals, final verdicts and late barge-ins, each counted once.
        """
        return self.engine.barge_in_statistics()

    # ------------------------------------------------------------------ the peers

    def on_phone(self, event: TwilioEvent, now: float) -> list[BridgeAction]:
        """Take one message from Twilio; return what to do."""
        engine = self.engine
        match event:
            case MediaReceived():
                # The payload passes through untouched: no decode and re-encode on the way.
                forward: BridgeAction = SendToModel(message=input_audio_append(event.payload))
                return [forward, *engine.caller_audio(event.audio, now)]
            case MarkPlayed():
                return [*(engine.mark_played(event.name, now) or ())]
            case StreamStarted():
                engine.stream_started(call_sid=event.call_sid, stream_sid=event.stream_sid, now=now)
                return self._start(now)
            case StreamStopped():
                engine.stream_stopped(now)
                return []
            case _:
                return []

    def _start(self, now: float) -> list[BridgeAction]:
        cfg = self._config
        update = session_update(
            instructions=cfg.instructions,
            voice=cfg.voice,
            tools=[end_call_tool(), *(t.definition() for t in self._tools.values())],
            prefix_padding_ms=cfg.calibration.prefix_padding_ms,
            silence_duration_ms=cfg.silence_duration_ms,
            input_transcription_model=cfg.input_transcription_model,
        )
        update = self._provider.adapt_session_update(update)
        actions: list[BridgeAction] = [SendToModel(message=update)]
        if cfg.greeting is not None:
            greeting = CreateRequest(
                greeting=True,
                policy=CreatePolicy.DROP,
                response={"instructions": cfg.greeting},
                label="greeting",
            )
            actions += self.engine.create(greeting, now)[1]
        return actions

    def on_model(self, event: RealtimeServerEvent, now: float) -> list[BridgeAction]:
        """Take one event from the Realtime API; return what to do."""
        out: list[BridgeAction] = [*self.engine.model_event(event, now)]
        if isinstance(event, ResponseDone):
            out += self._function_calls(event, now)
        return out

    @property
    def tools_running(self) -> int:
        """How many of the model's function calls are running now."""
        return len(self._running)

    def tool_result(self, call_id: str, output: str, now: float) -> list[BridgeAction]:
        """A tool asked for by :class:`~voiceguard.core.actions.RunTool` finished with *output*
        (its result, or an error, as a string for the model). When it is the last of its
        response's calls, the results go to the model with one ``response.create``.

        A result for a call not running (the call ended, or it came twice) is ignored.

        .. versionadded:: 0.2.0
        """
        if call_id not in self._running:
            return []
        self._running.discard(call_id)
        self._answered.append(SendToModel(message=function_call_output(call_id, output)))
        return self._answer(now) if not self._running else []

    def _function_calls(self, event: ResponseDone, now: float) -> list[BridgeAction]:
        """The function calls of a finished response: the tools to run, or answers at once."""
        hangup = self.engine.config.hangup_tools
        calls = [
            item
            for item in event.output
            if item.item_type == "function_call" and item.name not in hangup and item.call_id
        ]
        if not calls:
            return []
        out: list[BridgeAction] = []
        for item in calls:
            assert item.call_id is not None
            if not (
                item.status == "completed" or (item.status is None and event.status == "completed")
            ):
                continue  # cut off (a barge-in): the caller moved on
            tool = self._tools.get(item.name or "")
            arguments = function_arguments(item.arguments)
            if tool is None or arguments is None:
                problem = (
                    f"no tool named {item.name!r}"
                    if tool is None
                    else "the arguments are not a JSON object"
                )
                error = function_call_output(item.call_id, tool_error_output(problem))
                self._answered.append(SendToModel(message=error))
                continue
            self._running.add(item.call_id)
            out.append(RunTool(tool=tool, call_id=item.call_id, arguments=arguments))
        if not self._running:
            out += self._answer(now)
        return out

    def _answer(self, now: float) -> list[BridgeAction]:
        """Every call of the response answered: the results, then the model goes on."""
        results, self._answered = self._answered, []
        engine = self.engine
        engine.tool_finished()  # the caller no longer waits for a tool (the idle ladder runs)
        if not results:
            return []
        request = CreateRequest(policy=CreatePolicy.DEFER, label="tool_result")
        return [*results, *engine.create(request, now)[1]]

    # ------------------------------------------------------------------ time and the end

    def next_deadline(self) -> float | None:
        """When :meth:`on_tick` has work next (playout, a gate re-check, a barge-in to confirm,
        a lost create, the call's own timers)."""
        return self.engine.next_deadline()

    def on_tick(self, now: float) -> list[BridgeAction]:
        """Do what is due at *now*."""
        return [*self.engine.on_tick(now)]

    def close(self, now: float) -> list[BridgeAction]:
        """The call ends: the final sends (stop the bot on the phone, cancel what runs)."""
        return [*self.engine.close(now)]

    def wind_up(self, now: float, *, within: float, instructions: str | None = None) -> None:
        """End the call soon (its server drains): the bot says goodbye at once (with
        *instructions*, else :attr:`~voiceguard.TurnConfig.time_limit_goodbye`), hangs up once
        the goodbye played, and by ``now + within`` at the latest. Call :meth:`on_tick` after
        it (the goodbye is due at *now*). Only the first call counts.

        Raises:
            ValueError: If *within* is negative or not a finite number.

        .. versionadded:: 0.2.0
        """
        self.engine.wind_up(now, within=within, instructions=instructions)

    # ------------------------------------------------------------------ 0.1 timer entry points

    def on_watchdog(self, now: float) -> list[BridgeAction]:
        """Deprecated: the engine's own deadline handles a lost create (:meth:`on_tick`)."""
        _deprecated("on_watchdog")
        return []

    def on_idle_prompt(self, number: int, now: float) -> list[BridgeAction]:
        """Deprecated: the idle ladder is a deadline of the engine (:meth:`on_tick`)."""
        _deprecated("on_idle_prompt")
        return []

    def on_idle_hangup(self, now: float) -> list[BridgeAction]:
        """Deprecated: ends the call (the idle ladder is a deadline of the engine)."""
        _deprecated("on_idle_hangup")
        return [*self.engine.end_call("caller silent")]

    def on_max_duration(self, now: float) -> list[BridgeAction]:
        """Deprecated: the time limits are deadlines of the engine (:meth:`on_tick`)."""
        _deprecated("on_max_duration")
        return []

    def on_max_duration_hard(self, now: float) -> list[BridgeAction]:
        """Deprecated: ends the call (the time limits are deadlines of the engine)."""
        _deprecated("on_max_duration_hard")
        return [*self.engine.end_call("maximum call duration")]

    def on_hangup_fallback(self, now: float) -> list[BridgeAction]:
        """Deprecated: ends the call (the fallback is a deadline of the engine)."""
        _deprecated("on_hangup_fallback")
        return [*self.engine.end_call("hang-up fallback")]


def _deprecated(name: str) -> None:
    warn_deprecated(
        f"BridgeCore.{name}",
        "the call's timers are deadlines of the turn engine, handled by on_tick()",
        stacklevel=3,
    )


_RENAMED: Final = {"HangUp": EndCall}
#: Action types of 0.1 that the bridge no longer returns (its timers are engine deadlines).
_GONE: Final = frozenset({"StartTimer", "StopTimer", "NoteActivity", "TimerName"})


def __getattr__(name: str) -> object:
    if name in _RENAMED:
        warn_deprecated(
            f"voiceguard.core.bridge.{name}", "the action is EndCall (voiceguard.EndCall)"
        )
        return _RENAMED[name]
    if name in _GONE:
        import voiceguard.core._legacy as legacy  # noqa: PLC0415 - deprecated names

        warn_deprecated(
            f"voiceguard.core.bridge.{name}",
            "the bridge's timers are deadlines of the turn engine; it never returns one",
        )
        return getattr(legacy, name)
    raise AttributeError(f"module 'voiceguard.core.bridge' has no attribute {name!r}")
