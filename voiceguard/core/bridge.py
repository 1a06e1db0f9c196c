"""BridgeCore: the reference bridge, a thin driver of the turn engine (sans-IO).

One :class:`BridgeCore` per call. It speaks for the bot: on Twilio's ``start`` it configures the
session in full turn control (``audio/pcmu`` both ways, ``server_vad`` with
``interrupt_response`` and ``create_response`` off, the ``end_call`` tool) and greets the caller
under the greeting lock; it forwards the caller's audio to the model untouched; and it hands
everything else to the :class:`~voiceguard.core.turns.TurnEngine`, which holds the whole
barge-in and turn policy (the same engine the middleware drives for an existing bot) and paces
the model's audio to the phone with a mark per chunk.

It does no I/O and never reads a clock. Feed it every message of both peers
(:meth:`BridgeCore.on_phone`, :meth:`BridgeCore.on_model`) and wake it at
:meth:`BridgeCore.next_deadline` (:meth:`BridgeCore.on_tick`); each returns the
:data:`BridgeAction` list to carry out, in order. The anyio media handler is a pump around it,
and a test can drive it with literal timestamps.
"""

from __future__ import annotations

from typing import Final, TypeAlias, final

from voiceguard._deprecated import warn_deprecated
from voiceguard.config import BridgeConfig, TurnConfig
from voiceguard.core.actions import Deliver, EndCall, SendToModel, SendToPhone, TurnAction
from voiceguard.core.guards.calibration import CalibrationGate
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import CreateRequest, ResponseCreateGuard
from voiceguard.core.playout import PlayoutBuffer
from voiceguard.core.record import DecisionCounts, DecisionSink, TimerSink
from voiceguard.core.state import CallState
from voiceguard.core.turns import TurnEngine
from voiceguard.decisions import CreatePolicy
from voiceguard.protocol.realtime import (
    RealtimeServerEvent,
    end_call_tool,
    input_audio_append,
    session_update,
)
from voiceguard.protocol.twilio import (
    MarkPlayed,
    MediaReceived,
    StreamStarted,
    StreamStopped,
    TwilioEvent,
)

__all__ = (
    "BridgeAction",
    "BridgeCore",
    "Deliver",
    "EndCall",
    "SendToModel",
    "SendToPhone",
)

#: What :class:`BridgeCore` asks its runtime to do (it never asks for a
#: :class:`~voiceguard.core.actions.Deliver`: no bot sits in between).
BridgeAction: TypeAlias = TurnAction


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

    Attributes:
        engine: The call's :class:`~voiceguard.core.turns.TurnEngine`.
    """

    __slots__ = ("_config", "engine")

    def __init__(
        self,
        *,
        config: BridgeConfig | None = None,
        state: CallState | None = None,
        on_decision: DecisionSink | None = None,
        on_timer: TimerSink | None = None,
        turns: TurnConfig | None = None,
    ) -> None:
        self._config = config if config is not None else BridgeConfig()
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
                return engine.mark_played(event.name, now) or []
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
        actions: list[BridgeAction] = [
            SendToModel(
                message=session_update(
                    instructions=cfg.instructions,
                    voice=cfg.voice,
                    tools=[end_call_tool()],
                    prefix_padding_ms=cfg.calibration.prefix_padding_ms,
                    silence_duration_ms=cfg.silence_duration_ms,
                    input_transcription_model=cfg.input_transcription_model,
                )
            )
        ]
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
        return self.engine.model_event(event, now)

    # ------------------------------------------------------------------ time and the end

    def next_deadline(self) -> float | None:
        """When :meth:`on_tick` has work next (playout, a gate re-check, a barge-in to confirm,
        a lost create, the call's own timers)."""
        return self.engine.next_deadline()

    def on_tick(self, now: float) -> list[BridgeAction]:
        """Do what is due at *now*."""
        return self.engine.on_tick(now)

    def close(self, now: float) -> list[BridgeAction]:
        """The call ends: the final sends (stop the bot on the phone, cancel what runs)."""
        return self.engine.close(now)

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
        return self.engine.end_call("caller silent")

    def on_max_duration(self, now: float) -> list[BridgeAction]:
        """Deprecated: the time limits are deadlines of the engine (:meth:`on_tick`)."""
        _deprecated("on_max_duration")
        return []

    def on_max_duration_hard(self, now: float) -> list[BridgeAction]:
        """Deprecated: ends the call (the time limits are deadlines of the engine)."""
        _deprecated("on_max_duration_hard")
        return self.engine.end_call("maximum call duration")

    def on_hangup_fallback(self, now: float) -> list[BridgeAction]:
        """Deprecated: ends the call (the fallback is a deadline of the engine)."""
        _deprecated("on_hangup_fallback")
        return self.engine.end_call("hang-up fallback")


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
