"""Configuration of the turn engine and of the two ways into it.

* :class:`TurnConfig`: the turn engine's own (the one barge-in and turn policy).
* :class:`BridgeConfig` and :class:`HandlerConfig`: the reference bridge and media handler.
* :class:`GuardConfig`: the middleware around an existing bot.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, final

from voiceguard.audio import FRAME_BYTES
from voiceguard.config._checks import check_bool, check_number, check_optional_number, check_type
from voiceguard.config.backchannel import BackchannelConfig
from voiceguard.config.guards import (
    CalibrationConfig,
    CancelConfig,
    CreateConfig,
    PlayoutConfig,
    StateConfig,
)
from voiceguard.config.timers import (
    CallScopeConfig,
    HangupFallbackConfig,
    IdleLadderConfig,
    MaxCallDurationConfig,
    ResponseWatchdogConfig,
)
from voiceguard.decisions import CreatePolicy
from voiceguard.errors import ConfigError, ToolError
from voiceguard.tools import Tool, check_tools

__all__ = ("BridgeConfig", "GuardConfig", "HandlerConfig", "TurnConfig")

_IDLE_PROMPT: Final = "The caller has been silent for a while. Briefly ask if they are still there."
_TIME_LIMIT_GOODBYE: Final = (
    "The call has reached its time limit. Say a short, friendly goodbye, then call end_call."
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class TurnConfig:
    """Configuration of the turn engine, the one barge-in and turn policy of voiceguard.

    Both ways in drive the same engine: the reference bridge builds this from its
    :class:`BridgeConfig` and :class:`HandlerConfig` (:meth:`HandlerConfig.turns`), the middleware
    from its :class:`GuardConfig` (:meth:`GuardConfig.turns`). Build one yourself only to drive
    the engine from a bridge of your own.

    Attributes:
        turn_control: The engine decides every cancel and every create: the session's server
            cancel (``interrupt_response``) and answer (``create_response``) are off, each
            ``speech_started`` is judged, a real barge-in pauses the bot at once and is confirmed
            (cancel and truncate) or found false (the bot resumes), echo and noise turns are
            dropped. False is observer mode: the server keeps its defaults and the engine only
            guards what is sent and keeps the call's state. Default on.
        answer_turns: Send ``response.create`` when a real caller turn is committed (in turn
            control). Off for a bot that answers its turns itself. Default on.
        delete_echo_turns: Delete from the conversation a committed caller turn that was echo or
            noise (it is never answered either way). Default on.
        transcript_wait: When the session transcribes the caller (``input_audio_transcription``),
            how long (seconds) a committed caller turn judged to be echo or noise waits for its
            transcript before it is deleted: words that are not the bot's own make it the
            caller's turn, answered (:attr:`~voiceguard.Reason.CALLER_WORDS`). None: judge by
            the audio alone. Default 3 s.
        backchannel: Short acknowledgements ("uh-huh", "okay") that resume the paused bot
            instead of stopping it (:class:`~voiceguard.BackchannelConfig`).
        confirm_barge_in: Seconds the caller's speech must go on after an allowed
            ``speech_started`` before the response is cancelled; until then the bot is only
            paused. Default 0.6 s.
        min_barge_in_speech: Speech shorter than this (seconds, from the VAD's segment minus its
            padding and silence) that ends before the confirmation is a false interruption: the
            bot resumes. Default 0.2 s.
        silence_duration_ms: The server VAD's ``silence_duration_ms`` until the session reports
            its own. Default 500 ms (the server's default).
        response_timeout: Seconds a ``response.create`` may wait for its ``response.created``;
            then it counts as lost and the turn's create is sent once more (one re-send per
            turn, whoever sends it: a bot's own watchdog create counts). None: wait for ever.
            Default 3 s.
        hangup_tools: The model's function tools that end the call (``end_call``).
        hangup_fallback: Seconds from the goodbye's last audio being handed to the phone to
            hanging up if its mark never comes back. None: wait for the mark. Default 6 s.
        idle: The idle ladder (prompt, prompt, hang up on a silent caller), or None for none.
            Silence is counted only while nothing else happens (never while the bot's audio
            plays, a response runs or a tool runs). Default none.
        idle_prompt: Instructions of each idle prompt.
        max_duration: The call's polite and hard time limits, or None for none. Default none.
        time_limit_goodbye: Instructions of the goodbye at the polite time limit.
        bot_create_policy: What happens to a bot's ``response.create`` that cannot go now:
            held until it can (:attr:`~voiceguard.CreatePolicy.DEFER`) or dropped.
        state: The call state's bounds.
        cancel: The cancel arbiter's cooldown.
        create: The create guard's queue bound and time to live.
        calibration: The calibration gate's thresholds.
        playout: The playout's chunk size and lead.

    .. versionadded:: 0.2.0
    """

    turn_control: bool = True
    answer_turns: bool = True
    delete_echo_turns: bool = True
    transcript_wait: float | None = 3.0
    backchannel: BackchannelConfig = field(default_factory=BackchannelConfig)
    confirm_barge_in: float = 0.6
    min_barge_in_speech: float = 0.2
    silence_duration_ms: int = 500
    response_timeout: float | None = 3.0
    hangup_tools: tuple[str, ...] = ("end_call",)
    hangup_fallback: float | None = 6.0
    idle: IdleLadderConfig | None = None
    idle_prompt: str = _IDLE_PROMPT
    max_duration: MaxCallDurationConfig | None = None
    time_limit_goodbye: str = _TIME_LIMIT_GOODBYE
    bot_create_policy: CreatePolicy = CreatePolicy.DEFER
    state: StateConfig = field(default_factory=StateConfig)
    cancel: CancelConfig = field(default_factory=CancelConfig)
    create: CreateConfig = field(default_factory=CreateConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    playout: PlayoutConfig = field(default_factory=PlayoutConfig)

    def __post_init__(self) -> None:
        for name in ("turn_control", "answer_turns", "delete_echo_turns"):
            check_bool(self, name, getattr(self, name))
        _check_barge_in(self)
        check_number(
            self,
            "silence_duration_ms",
            self.silence_duration_ms,
            low=0,
            high=10_000,
            integer=True,
            unit="ms",
        )
        check_optional_number(
            self, "response_timeout", self.response_timeout, low=0.1, high=600.0, unit="seconds"
        )
        check_optional_number(
            self, "hangup_fallback", self.hangup_fallback, low=0.1, high=120.0, unit="seconds"
        )
        _check_tools(self, self.hangup_tools)
        for name in ("idle_prompt", "time_limit_goodbye"):
            _check_text(self, name, getattr(self, name))
        if self.idle is not None:
            check_type(self, "idle", self.idle, IdleLadderConfig)
        if self.max_duration is not None:
            check_type(self, "max_duration", self.max_duration, MaxCallDurationConfig)
        check_type(self, "bot_create_policy", self.bot_create_policy, CreatePolicy)
        for name, kind in _SECTIONS:
            check_type(self, name, getattr(self, name), kind)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class GuardConfig:
    """How the middleware (:class:`~voiceguard.middleware.GuardedCall`) treats the bot it wraps.

    Attributes:
        turn_control: Take turn control (the default): every ``session.update`` the bot sends
            goes out with ``interrupt_response`` and ``create_response`` off (a session that
            still has them on is corrected), and the guard does what the reference server does.
            It judges each ``speech_started``; the bot sees only real speech (echo and noise are
            hidden from it, with their whole turn, and deleted). A real barge-in over the bot is
            handled as the reference server handles it: with the phone socket wrapped the guard
            pauses the phone itself (Twilio ``clear``), then either confirms it (``response.cancel``
            and ``conversation.item.truncate`` to what was heard; the bot's own
            ``speech_started`` handler runs only now) or finds it false and plays the unheard
            audio again from where the caller stopped hearing it. Each real caller turn is
            answered with a ``response.create`` (see ``answer_turns``). False is *observer
            mode*, for bots that keep the server defaults: events pass as they are, the
            redundant client cancel is suppressed (``SERVER_CANCELS``), truncates and creates
            are still guarded.
        answer_turns: In turn control, send ``response.create`` when a real caller turn is
            committed, in place of the server (what ``create_response`` did). Only for a bot
            that left that to the server: one whose ``session.update`` sets
            ``create_response: false`` answers its turns itself, and so does every bot when this
            is False.
        delete_echo_turns: In turn control, delete (``conversation.item.delete``) a committed
            caller turn that was only echo or noise, so the model never reads it.
        transcript_wait: When the session transcribes the caller (``input_audio_transcription``),
            how long (seconds) a committed caller turn judged to be echo or noise waits for its
            transcript before it is deleted: words that are not the bot's own make it the
            caller's turn, answered (:attr:`~voiceguard.Reason.CALLER_WORDS`). None: judge by
            the audio alone. Default 3 s.
        backchannel: Short acknowledgements ("uh-huh", "okay") that resume the paused bot
            instead of stopping it (:class:`~voiceguard.BackchannelConfig`).
        confirm_barge_in: Seconds the caller's speech must go on before a barge-in is confirmed
            (cancelled and truncated). Default 0.6 s, as the reference server.
        min_barge_in_speech: A barge-in whose speech ends sooner than this (seconds) is a false
            interruption: the bot's answer goes on. Default 0.2 s.
        create_policy: What happens to a ``response.create`` of the bot that cannot go now:
            :attr:`~voiceguard.CreatePolicy.DEFER` (held, sent after ``response.done``) or
            :attr:`~voiceguard.CreatePolicy.DROP`.
        lost_create_timeout: Seconds after which a ``response.create`` that got no
            ``response.created`` counts as lost: the guard forgets it (else every later create
            would wait for it forever) and the turn's create is sent once more, once (a create
            of the bot's own watchdog for the same turn counts as that re-send). None: never.
        hangup_tools: Names of the model's function tools that end the call (``end_call``):
            once the model calls one, no new response starts.
        hang_up: With the phone socket wrapped, close it once the goodbye after a hang-up tool
            has played (or ``hangup_fallback`` seconds after it was all handed to the phone),
            which ends a Twilio call. Default on.
        hangup_fallback: See ``hang_up``. Default 6 s.
        state: Bounds of the call's :class:`~voiceguard.CallState`.
        cancel: The :class:`~voiceguard.CancelArbiter`'s cooldown.
        create: The :class:`~voiceguard.ResponseCreateGuard`'s queue bound and time to live.
        calibration: The :class:`~voiceguard.CalibrationGate`'s thresholds.
    """

    turn_control: bool = True
    answer_turns: bool = True
    delete_echo_turns: bool = True
    transcript_wait: float | None = 3.0
    backchannel: BackchannelConfig = field(default_factory=BackchannelConfig)
    confirm_barge_in: float = 0.6
    min_barge_in_speech: float = 0.2
    create_policy: CreatePolicy = CreatePolicy.DEFER
    lost_create_timeout: float | None = 3.0
    hangup_tools: tuple[str, ...] = ("end_call",)
    hang_up: bool = True
    hangup_fallback: float | None = 6.0
    state: StateConfig = field(default_factory=StateConfig)
    cancel: CancelConfig = field(default_factory=CancelConfig)
    create: CreateConfig = field(default_factory=CreateConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)

    def __post_init__(self) -> None:
        for name in ("turn_control", "answer_turns", "delete_echo_turns", "hang_up"):
            check_bool(self, name, getattr(self, name))
        _check_barge_in(self)
        check_type(self, "create_policy", self.create_policy, CreatePolicy)
        check_optional_number(
            self, "lost_create_timeout", self.lost_create_timeout, low=0.1, high=600.0, unit="s"
        )
        check_optional_number(
            self, "hangup_fallback", self.hangup_fallback, low=0.1, high=120.0, unit="seconds"
        )
        _check_tools(self, self.hangup_tools)
        for name, kind in _SECTIONS[:4]:
            check_type(self, name, getattr(self, name), kind)

    def turns(self) -> TurnConfig:
        """The turn engine's configuration for the wrapped bot.

        The phone gets the bot's audio as the bot hands it over (a playout lead of
        ``math.inf``): the guard changes the bot's audio flow only to pause it on a barge-in.
        """
        return TurnConfig(
            turn_control=self.turn_control,
            answer_turns=self.answer_turns,
            delete_echo_turns=self.delete_echo_turns,
            transcript_wait=self.transcript_wait,
            backchannel=self.backchannel,
            confirm_barge_in=self.confirm_barge_in,
            min_barge_in_speech=self.min_barge_in_speech,
            response_timeout=self.lost_create_timeout,
            hangup_tools=self.hangup_tools,
            hangup_fallback=self.hangup_fallback,
            bot_create_policy=self.create_policy,
            state=self.state,
            cancel=self.cancel,
            create=self.create,
            calibration=self.calibration,
            playout=PlayoutConfig(lead=math.inf),
        )


_SECTIONS: Final = (
    ("state", StateConfig),
    ("cancel", CancelConfig),
    ("create", CreateConfig),
    ("calibration", CalibrationConfig),
    ("playout", PlayoutConfig),
)


def _check_barge_in(owner: object) -> None:
    check_type(owner, "backchannel", getattr(owner, "backchannel"), BackchannelConfig)  # noqa: B009
    check_optional_number(
        owner,
        "transcript_wait",
        getattr(owner, "transcript_wait"),  # noqa: B009 - every turn config has it
        low=0,
        high=60,
        unit="seconds",
    )
    check_number(
        owner,
        "confirm_barge_in",
        getattr(owner, "confirm_barge_in"),  # noqa: B009 - both configs have it
        low=0,
        high=5,
        unit="seconds",
    )
    check_number(
        owner,
        "min_barge_in_speech",
        getattr(owner, "min_barge_in_speech"),  # noqa: B009
        low=0,
        high=5,
        unit="seconds",
    )


def _check_tools(owner: object, tools: object) -> None:
    if not isinstance(tools, tuple) or not all(isinstance(n, str) and n for n in tools):
        raise ConfigError(
            f"{type(owner).__name__}.hangup_tools", tools, "a tuple of function names"
        )


def _check_text(owner: object, name: str, value: object) -> None:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{type(owner).__name__}.{name}", value, "a non-empty string")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeConfig:
    """Configuration of :class:`~voiceguard.BridgeCore`, the reference bridge's decisions.

    Attributes:
        instructions: The model's instructions for the call (``session.instructions``).
        voice: The model's voice, or ``None`` for the server's default.
        input_transcription_model: Transcribe the caller's audio with this model (e.g.
            ``"gpt-4o-transcribe"``), so that a turn the gate took for echo is judged again by
            its words (see ``transcript_wait``); ``None``: no transcription. Default none.
        greeting: Instructions for the greeting the bot says first, or ``None`` to wait for the
            caller to speak first.
        silence_duration_ms: The server VAD's ``silence_duration_ms``: how long the caller must
            be silent for the turn to end. Default 500 ms (the server's default).
        confirm_barge_in: Seconds the caller's speech must go on after an allowed
            ``speech_started`` before the response is cancelled. Until then the bot is only
            paused (its audio is cleared from the phone at once), so a false interruption can
            resume it. Default 0.6 s.
        min_barge_in_speech: Speech shorter than this (seconds, from the server VAD's segment
            minus its padding and silence) that ends before the confirmation is taken for a
            false interruption (a cough, a click) and the bot resumes. Default 0.2 s.
        delete_echo_turns: Delete from the conversation a caller turn the gate judged to be echo
            or noise (it is never answered either way). Default on.
        transcript_wait: When the session transcribes the caller (``input_audio_transcription``),
            how long (seconds) a committed caller turn judged to be echo or noise waits for its
            transcript before it is deleted: words that are not the bot's own make it the
            caller's turn, answered (:attr:`~voiceguard.Reason.CALLER_WORDS`). None: judge by
            the audio alone. Default 3 s.
        backchannel: Short acknowledgements ("uh-huh", "okay") that resume the paused bot
            instead of stopping it (:class:`~voiceguard.BackchannelConfig`).
        idle_prompt: Instructions for the response that asks a silent caller whether they are
            still there (each prompt of the idle ladder).
        time_limit_goodbye: Instructions for the goodbye at the call's polite time limit (the
            model is asked to call ``end_call`` after it).
        calibration: The calibration gate's configuration.
        cancel: The cancel arbiter's configuration.
        create: The create guard's configuration.
        playout: The playout buffer's configuration.
    """

    instructions: str | None = None
    voice: str | None = None
    input_transcription_model: str | None = None
    greeting: str | None = "Greet the caller briefly and ask how you can help."
    silence_duration_ms: int = 500
    confirm_barge_in: float = 0.6
    min_barge_in_speech: float = 0.2
    delete_echo_turns: bool = True
    transcript_wait: float | None = 3.0
    backchannel: BackchannelConfig = field(default_factory=BackchannelConfig)
    idle_prompt: str = _IDLE_PROMPT
    time_limit_goodbye: str = _TIME_LIMIT_GOODBYE
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    cancel: CancelConfig = field(default_factory=CancelConfig)
    create: CreateConfig = field(default_factory=CreateConfig)
    playout: PlayoutConfig = field(default_factory=PlayoutConfig)

    def __post_init__(self) -> None:
        for name in ("instructions", "voice", "greeting", "input_transcription_model"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise ConfigError(f"{type(self).__name__}.{name}", value, "a string or None")
        for name in ("idle_prompt", "time_limit_goodbye"):
            value = getattr(self, name)
            if not isinstance(value, str) or not value.strip():
                raise ConfigError(f"{type(self).__name__}.{name}", value, "a non-empty string")
        check_number(
            self,
            "silence_duration_ms",
            self.silence_duration_ms,
            low=0,
            high=10_000,
            integer=True,
            unit="ms",
        )
        check_bool(self, "delete_echo_turns", self.delete_echo_turns)
        _check_barge_in(self)
        for name, kind in (
            ("calibration", CalibrationConfig),
            ("cancel", CancelConfig),
            ("create", CreateConfig),
            ("playout", PlayoutConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(
                    f"{type(self).__name__}.{name}", getattr(self, name), f"a {kind.__name__}"
                )

    def turns(
        self,
        *,
        watchdog: ResponseWatchdogConfig | None = None,
        hangup: HangupFallbackConfig | None = None,
        idle: IdleLadderConfig | None = None,
        max_duration: MaxCallDurationConfig | None = None,
    ) -> TurnConfig:
        """The turn engine's configuration for the reference bridge (full turn control).

        Args:
            watchdog: The response watchdog (a lost create is sent once more after its delay);
                its defaults when omitted.
            hangup: The hang-up fallback; its defaults when omitted.
            idle: The idle ladder, or None for none.
            max_duration: The call's time limits, or None for none.
        """
        return TurnConfig(
            turn_control=True,
            answer_turns=True,
            delete_echo_turns=self.delete_echo_turns,
            transcript_wait=self.transcript_wait,
            backchannel=self.backchannel,
            confirm_barge_in=self.confirm_barge_in,
            min_barge_in_speech=self.min_barge_in_speech,
            silence_duration_ms=self.silence_duration_ms,
            response_timeout=(watchdog or ResponseWatchdogConfig()).delay,
            hangup_fallback=(hangup or HangupFallbackConfig()).delay,
            idle=idle,
            idle_prompt=self.idle_prompt,
            max_duration=max_duration,
            time_limit_goodbye=self.time_limit_goodbye,
            calibration=self.calibration,
            cancel=self.cancel,
            create=self.create,
            playout=self.playout,
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class HandlerConfig:
    """Configuration of :class:`~voiceguard.MediaHandler`: the bridge and the call's limits.

    Attributes:
        bridge: What the bridge says and how it reacts.
        scope: The call scope's shutdown grace and timer error policy.
        watchdog: The response watchdog's delay.
        hangup: The hang-up fallback's delay.
        idle: The idle ladder's rungs (prompt, prompt, hang up on a silent caller).
        max_duration: The call's polite and hard time limits.
        start_timeout: Seconds to wait for Twilio's ``start`` before giving up on the stream
            (no model session is opened before it). Twilio sends ``connected`` and ``start``
            as soon as the stream opens, so a stream silent for longer is not Twilio. Default
            3 s.
        model_timeout: Seconds the model gets to open its session: the WebSocket handshake
            and its first event (``session.created``). Past it the call ends with ``"model
            timeout"``, after the apology. Default 5 s.
        apology: What the caller hears when the model cannot be reached (connection refused,
            handshake failed, no first event in time): True plays a short spoken apology
            (English, "Sorry, we cannot take your call right now. Please try again later.");
            bytes play your own clip (8 kHz mu-law, whole 20 ms frames); False plays nothing.
        max_audio_burst: Seconds of caller audio a call may receive ahead of real time (a
            network stall is followed by a burst); frames beyond it are dropped and counted as
            malformed, so a caller flooding audio ends its own call, never another's. Default
            2 s.
        max_bad_messages: Malformed messages (from both peers together) a call tolerates; past
            this the call ends. Each one is logged and counted. Default 100.
        tools: The tools the model may call (:mod:`voiceguard.tools`): offered in the session
            beside ``end_call``; each call runs inside the call's scope within the tool's
            timeout, and its result goes to the model with one guarded ``response.create``.
            Default none.
    """

    bridge: BridgeConfig = field(default_factory=BridgeConfig)
    scope: CallScopeConfig = field(default_factory=CallScopeConfig)
    watchdog: ResponseWatchdogConfig = field(default_factory=ResponseWatchdogConfig)
    hangup: HangupFallbackConfig = field(default_factory=HangupFallbackConfig)
    idle: IdleLadderConfig = field(default_factory=IdleLadderConfig)
    max_duration: MaxCallDurationConfig = field(default_factory=MaxCallDurationConfig)
    start_timeout: float = 3.0
    model_timeout: float = 5.0
    apology: bool | bytes = field(default=True, repr=False)
    max_audio_burst: float = 2.0
    max_bad_messages: int = 100
    tools: tuple[Tool, ...] = field(default=(), compare=False)

    def __post_init__(self) -> None:
        for name, kind in (
            ("bridge", BridgeConfig),
            ("scope", CallScopeConfig),
            ("watchdog", ResponseWatchdogConfig),
            ("hangup", HangupFallbackConfig),
            ("idle", IdleLadderConfig),
            ("max_duration", MaxCallDurationConfig),
        ):
            if not isinstance(getattr(self, name), kind):
                raise ConfigError(
                    f"{type(self).__name__}.{name}", getattr(self, name), f"a {kind.__name__}"
                )
        check_number(
            self,
            "start_timeout",
            self.start_timeout,
            low=0,
            high=600,
            unit="seconds",
            low_open=True,
        )
        for name, high in (("model_timeout", 120), ("max_audio_burst", 60)):
            check_number(
                self, name, getattr(self, name), low=0, high=high, unit="seconds", low_open=True
            )
        apology: object = self.apology
        if not isinstance(apology, (bool, bytes)) or (
            isinstance(apology, bytes) and (not apology or len(apology) % FRAME_BYTES)
        ):
            raise ConfigError(
                f"{type(self).__name__}.apology",
                f"{len(apology)} bytes" if isinstance(apology, bytes) else apology,
                f"True, False, or 8 kHz mu-law audio of whole {FRAME_BYTES}-byte (20 ms) frames",
            )
        check_number(
            self, "max_bad_messages", self.max_bad_messages, low=0, high=1_000_000, integer=True
        )
        tools: object = self.tools
        if not isinstance(tools, tuple):
            if not isinstance(tools, (list, Sequence)) or isinstance(tools, str):
                raise ConfigError(f"{type(self).__name__}.tools", tools, "a sequence of Tools")
            object.__setattr__(self, "tools", tuple(tools))
        try:
            check_tools(self.tools)
        except ToolError as exc:
            raise ConfigError(f"{type(self).__name__}.tools", self.tools, str(exc)) from None

    def turns(self) -> TurnConfig:
        """The turn engine's configuration of the handler's calls (the bridge and its timers)."""
        return self.bridge.turns(
            watchdog=self.watchdog,
            hangup=self.hangup,
            idle=self.idle,
            max_duration=self.max_duration,
        )
