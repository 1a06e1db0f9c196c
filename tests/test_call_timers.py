"""The ready-made call timers: hang-up fallback, response watchdog, idle ladder, max duration.

Async tests run on trio in virtual time with the production delays, and on asyncio as a smoke
test with every delay scaled down to real milliseconds (marked ``realtime``).
"""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
import trio.testing

from voiceguard.config import (
    CallScopeConfig,
    HangupFallbackConfig,
    IdleLadderConfig,
    MaxCallDurationConfig,
    ResponseWatchdogConfig,
)
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import CallScopeError, ConfigError
from voiceguard.runtime.scope import CallScope, CallScopeState
from voiceguard.runtime.timers import HangupFallback, IdleLadder, MaxCallDuration, ResponseWatchdog


@pytest.fixture(
    params=[
        pytest.param("trio-virtual", id="trio-virtual"),
        pytest.param("asyncio-realtime", id="asyncio-realtime", marks=pytest.mark.realtime),
    ]
)
def anyio_backend(request: pytest.FixtureRequest) -> Any:
    """Virtual time on trio; a scaled-down real-time smoke on asyncio."""
    if request.param == "trio-virtual":
        return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})
    return "asyncio"


@pytest.fixture
def unit(anyio_backend: Any) -> float:
    """Seconds of real or virtual time per second of the scenario."""
    return 1.0 if anyio_backend != "asyncio" else 0.005


@pytest.fixture
def virtual(anyio_backend: Any) -> bool:
    """True when the clock is virtual, so times can be compared exactly."""
    return bool(anyio_backend != "asyncio")


def allowed(name: str) -> Decision:
    return Decision(action=Action.TIMER, verdict=Verdict.ALLOW, reason=Reason.OK, detail=name)


def refused(name: str, reason: Reason) -> Decision:
    return Decision(action=Action.TIMER, verdict=Verdict.SUPPRESS, reason=reason, detail=name)


class Clock:
    """Records when things happen, in scenario seconds since the call started."""

    def __init__(self, unit: float) -> None:
        self.unit = unit
        self.start = anyio.current_time()
        self.events: list[tuple[str, float]] = []

    def now(self) -> float:
        return (anyio.current_time() - self.start) / self.unit

    def record(self, what: str) -> None:
        self.events.append((what, self.now()))

    def names(self) -> list[str]:
        return [name for name, _ in self.events]

    async def at(self, seconds: float) -> None:
        await anyio.sleep_until(self.start + seconds * self.unit)


# --- configuration ------------------------------------------------------------------------------


def test_config_defaults() -> None:
    assert CallScopeConfig() == CallScopeConfig(shutdown_grace=1.0, timer_error_ends_call=False)
    assert HangupFallbackConfig().delay == 6.0
    assert ResponseWatchdogConfig().delay == 3.0
    assert IdleLadderConfig() == IdleLadderConfig(prompt_delays=(15.0, 10.0), hangup_delay=10.0)
    assert MaxCallDurationConfig() == MaxCallDurationConfig(limit=1500.0, hard_limit=1560.0)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: CallScopeConfig(shutdown_grace=-1), r"CallScopeConfig.shutdown_grace = -1"),
        (lambda: CallScopeConfig(shutdown_grace=31), r"0 <= value <= 30 \(seconds\)"),
        (
            lambda: CallScopeConfig(timer_error_ends_call=1),  # type: ignore[arg-type]
            r"allowed: True or False",
        ),
        (lambda: HangupFallbackConfig(delay=0), r"HangupFallbackConfig.delay = 0 .* 0 < value"),
        (lambda: HangupFallbackConfig(delay=math.nan), r"HangupFallbackConfig.delay = nan"),
        (lambda: ResponseWatchdogConfig(delay=61), r"ResponseWatchdogConfig.delay = 61"),
        (lambda: ResponseWatchdogConfig(delay=True), r"ResponseWatchdogConfig.delay = True"),
        (
            lambda: IdleLadderConfig(prompt_delays=[15.0]),  # type: ignore[arg-type]
            r"IdleLadderConfig.prompt_delays = \[15.0\] .* a tuple of at most 5 numbers",
        ),
        (
            lambda: IdleLadderConfig(prompt_delays=(1.0,) * 6),
            r"IdleLadderConfig.prompt_delays = .* a tuple of at most 5",
        ),
        (
            lambda: IdleLadderConfig(prompt_delays=(15.0, -1.0)),
            r"IdleLadderConfig.prompt_delays\[1\] = -1.0",
        ),
        (
            lambda: IdleLadderConfig(hangup_delay=0),
            r"IdleLadderConfig.hangup_delay = 0 .* None \(never hang up\) or a number, 0 < value",
        ),
        (
            lambda: IdleLadderConfig(prompt_delays=(), hangup_delay=None),
            r"IdleLadderConfig.hangup_delay = None .* when prompt_delays is empty",
        ),
        (lambda: MaxCallDurationConfig(limit=0), r"MaxCallDurationConfig.limit = 0"),
        (
            lambda: MaxCallDurationConfig(limit=600, hard_limit=599),
            r"MaxCallDurationConfig.hard_limit = 599 .* limit \(600\) <= value <= 86400",
        ),
    ],
)
def test_config_validation(make: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        make()


def test_configs_without_a_hard_limit_or_prompts_are_valid() -> None:
    assert MaxCallDurationConfig(hard_limit=None).hard_limit is None
    assert IdleLadderConfig(prompt_delays=(), hangup_delay=30).prompt_delays == ()
    assert IdleLadderConfig(hangup_delay=None).hangup_delay is None


# --- hang-up fallback ---------------------------------------------------------------------------


@pytest.mark.anyio
async def test_fallback_hangs_up_when_the_mark_never_comes(unit: float, virtual: bool) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        fallback = HangupFallback(scope, config=HangupFallbackConfig(delay=6 * unit))
        assert fallback.arm() == allowed("hangup_fallback")
        assert fallback.pending
        await anyio.sleep_forever()  # the default action closes the call
    assert scope.state is CallScopeState.CLOSED
    if virtual:
        assert clock.now() == pytest.approx(6.0)
    assert fallback.timer.last_decision == allowed("hangup_fallback")


@pytest.mark.anyio
async def test_fallback_disarmed_by_the_goodbye_mark(unit: float) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        fallback = HangupFallback(
            scope, lambda: clock.record("fallback"), config=HangupFallbackConfig(delay=6 * unit)
        )
        fallback.arm()
        await clock.at(4)
        assert fallback.disarm() is True  # the mark came back
        assert fallback.disarm() is False
        await clock.at(20)
    assert clock.events == []


@pytest.mark.anyio
async def test_second_arm_is_refused_and_keeps_the_first_deadline(
    unit: float, virtual: bool
) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        fallback = HangupFallback(
            scope, lambda: clock.record("fallback"), config=HangupFallbackConfig(delay=6 * unit)
        )
        fallback.arm()
        await clock.at(4)
        assert fallback.arm() == refused("hangup_fallback", Reason.HANGUP_PENDING)
        await clock.at(20)
    assert clock.names() == ["fallback"]
    if virtual:
        assert clock.events == [("fallback", 6.0)]
    assert scope.statistics().refused == {Reason.HANGUP_PENDING: 1}


@pytest.mark.anyio
async def test_fallback_of_an_ended_call_never_runs_in_the_next(unit: float) -> None:
    hung_up: list[str] = []
    async with CallScope(call_sid="CA1") as call_a:
        HangupFallback(
            call_a, lambda: hung_up.append("A"), config=HangupFallbackConfig(delay=6 * unit)
        ).arm()
        await anyio.sleep(1 * unit)  # the caller hangs up first
    async with CallScope(call_sid="CA2") as call_b:
        HangupFallback(call_b, lambda: hung_up.append("B"), config=HangupFallbackConfig())
        await anyio.sleep(30 * unit)
    assert hung_up == []
    assert call_a.statistics().cancelled == 1


@pytest.mark.anyio
async def test_arming_while_closing_is_refused_not_raised(unit: float) -> None:
    async with CallScope(call_sid="CA1") as scope:
        fallback = HangupFallback(scope, config=HangupFallbackConfig(delay=6 * unit))
        watchdog = ResponseWatchdog(scope, lambda: None)
        duration = MaxCallDuration(scope, lambda: None)
        ladder = IdleLadder(scope, lambda n: None)
        scope.close()
        assert fallback.arm() == refused("hangup_fallback", Reason.CLOSING)
        assert watchdog.arm() == refused("response_watchdog", Reason.CLOSING)
        assert duration.start() == refused("max_call_duration", Reason.CLOSING)
        assert ladder.caller_activity() is False
        assert ladder.bot_activity() is False
    assert fallback.arm() == refused("hangup_fallback", Reason.SCOPE_CLOSED)
    assert scope.statistics().refused == {Reason.CLOSING: 5, Reason.SCOPE_CLOSED: 1}


@pytest.mark.anyio
async def test_arming_before_the_call_is_entered_raises() -> None:
    scope = CallScope(call_sid="CA1")
    watchdog = ResponseWatchdog(scope, lambda: None)
    with pytest.raises(CallScopeError, match=r"cannot arm timer 'response_watchdog': .* not been"):
        watchdog.arm()


# --- response watchdog ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_watchdog_fires_once_for_an_unanswered_turn(unit: float, virtual: bool) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        watchdog = ResponseWatchdog(
            scope,
            lambda: clock.record("retry"),
            config=ResponseWatchdogConfig(delay=3 * unit),
        )
        await clock.at(2)
        assert watchdog.arm() == allowed("response_watchdog")  # the caller's turn ended
        await clock.at(20)
    assert clock.names() == ["retry"]
    if virtual:
        assert clock.events == [("retry", 5.0)]


@pytest.mark.anyio
async def test_watchdog_disarmed_by_response_created_is_a_no_op(unit: float) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        watchdog = ResponseWatchdog(
            scope,
            lambda: clock.record("retry"),
            config=ResponseWatchdogConfig(delay=3 * unit),
        )
        assert watchdog.disarm() is False  # not armed: nothing happens
        watchdog.arm()
        await clock.at(1)
        assert watchdog.disarm() is True  # response.created
        assert not watchdog.pending
        await clock.at(10)
    assert clock.events == []


@pytest.mark.anyio
async def test_watchdog_rearmed_by_a_newer_turn_waits_for_that_turn(
    unit: float, virtual: bool
) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        watchdog = ResponseWatchdog(
            scope,
            lambda: clock.record("retry"),
            config=ResponseWatchdogConfig(delay=3 * unit),
        )
        watchdog.arm()
        await clock.at(2)
        watchdog.arm()
        await clock.at(20)
    assert clock.names() == ["retry"]
    if virtual:
        assert clock.events == [("retry", 5.0)]
    assert scope.statistics().restarted == 1


# --- idle ladder --------------------------------------------------------------------------------


def ladder_config(unit: float) -> IdleLadderConfig:
    return IdleLadderConfig(prompt_delays=(15 * unit, 10 * unit), hangup_delay=10 * unit)


@pytest.mark.anyio
async def test_silence_climbs_prompt_prompt_hang_up(unit: float, virtual: bool) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)

        def hang_up() -> None:
            clock.record("hang up")
            scope.close()

        ladder = IdleLadder(
            scope, lambda n: clock.record(f"prompt {n}"), hang_up, config=ladder_config(unit)
        )
        assert not ladder.pending  # armed by the first activity
        assert ladder.bot_activity()  # the greeting finished playing
        await anyio.sleep_forever()
    assert clock.names() == ["prompt 1", "prompt 2", "hang up"]
    if virtual:
        assert [at for _, at in clock.events] == [15.0, 25.0, 35.0]
    assert ladder.finished
    assert ladder.rung == 2


@pytest.mark.anyio
async def test_caller_speech_resets_the_ladder(unit: float, virtual: bool) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        ladder = IdleLadder(
            scope,
            lambda n: clock.record(f"prompt {n}"),
            lambda: clock.record("hang up"),
            config=ladder_config(unit),
        )
        ladder.bot_activity()
        await clock.at(17)  # prompt 1 at 15
        assert ladder.rung == 1
        assert ladder.caller_activity()  # "yes, I'm here"
        assert ladder.rung == 0
        await clock.at(60)
    assert clock.names() == ["prompt 1", "prompt 1", "prompt 2", "hang up"]
    if virtual:
        assert [at for _, at in clock.events] == [15.0, 32.0, 42.0, 52.0]


@pytest.mark.anyio
async def test_the_bot_saying_the_prompt_does_not_reset_the_ladder(
    unit: float, virtual: bool
) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        ladder = IdleLadder(
            scope,
            lambda n: clock.record(f"prompt {n}"),
            lambda: clock.record("hang up"),
            config=ladder_config(unit),
        )
        ladder.bot_activity()
        await clock.at(17)
        ladder.bot_activity()  # the prompt (said from 15 to 17) finished playing
        await clock.at(60)
    assert clock.names() == ["prompt 1", "prompt 2", "hang up"]
    if virtual:
        assert [at for _, at in clock.events] == [15.0, 27.0, 37.0]


@pytest.mark.anyio
async def test_noise_rejected_by_the_gate_does_not_reset_the_ladder(
    unit: float, virtual: bool
) -> None:
    noise = Decision(action=Action.BARGE_IN, verdict=Verdict.SUPPRESS, reason=Reason.ECHO_SUSPECTED)
    speech = Decision(action=Action.BARGE_IN, verdict=Verdict.ALLOW, reason=Reason.OK)
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        ladder = IdleLadder(
            scope,
            lambda n: clock.record(f"prompt {n}"),
            lambda: clock.record("hang up"),
            config=ladder_config(unit),
        )
        ladder.bot_activity()
        for second in range(1, 35, 3):  # a noisy line: speech_started every 3 s
            await clock.at(second)
            assert ladder.caller_activity(noise) is False
        await clock.at(40)  # the hang-up is due at 35: a margin for a loaded machine
        assert clock.names() == ["prompt 1", "prompt 2", "hang up"]
        assert ladder.finished
        assert ladder.caller_activity(speech) is False  # too late: the hang-up has started
    if virtual:
        assert [at for _, at in clock.events] == [15.0, 25.0, 35.0]


@pytest.mark.anyio
async def test_tool_calls_pause_the_ladder(unit: float, virtual: bool) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        ladder = IdleLadder(
            scope,
            lambda n: clock.record(f"prompt {n}"),
            lambda: clock.record("hang up"),
            config=ladder_config(unit),
        )
        ladder.caller_activity()
        await clock.at(5)
        ladder.pause()  # a slow CRM lookup
        ladder.pause()  # and a second tool call, at the same time
        assert (ladder.paused, ladder.pending) == (True, False)
        await clock.at(40)  # longer than the whole ladder
        ladder.caller_activity()  # the caller speaks during the tool call: no rung is armed
        assert (ladder.paused, ladder.pending) == (True, False)
        ladder.resume()
        assert (ladder.paused, ladder.pending) == (True, False)
        await clock.at(45)
        ladder.resume()  # both done: the bottom rung starts its full delay
        assert (ladder.paused, ladder.pending) == (False, True)
        await clock.at(85)
    assert clock.names() == ["prompt 1", "prompt 2", "hang up"]
    if virtual:
        assert [at for _, at in clock.events] == [60.0, 70.0, 80.0]


@pytest.mark.anyio
async def test_resume_without_pause_raises() -> None:
    async with CallScope(call_sid="CA1") as scope:
        ladder = IdleLadder(scope, lambda n: None)
        with pytest.raises(
            CallScopeError,
            match=r"IdleLadder 'idle_ladder': resume\(\) without a matching pause\(\)",
        ):
            ladder.resume()


@pytest.mark.anyio
async def test_cancelled_ladder_waits_for_the_next_activity(unit: float) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        ladder = IdleLadder(
            scope, lambda n: clock.record(f"prompt {n}"), config=ladder_config(unit)
        )
        ladder.bot_activity()
        await clock.at(5)
        assert ladder.cancel() is True  # a hang-up is pending
        ladder.pause()
        ladder.resume()  # resuming does not re-arm a cancelled ladder
        assert not ladder.pending
        await clock.at(60)
    assert clock.events == []


@pytest.mark.anyio
async def test_ladder_without_hang_up_only_prompts(unit: float, virtual: bool) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        ladder = IdleLadder(
            scope,
            lambda n: clock.record(f"prompt {n}"),
            config=IdleLadderConfig(prompt_delays=(15 * unit,), hangup_delay=None),
        )
        ladder.bot_activity()
        await clock.at(20)
        assert not ladder.finished
        assert not ladder.pending
        assert ladder.bot_activity()  # nothing left to arm until the caller speaks
        assert not ladder.pending
    assert clock.names() == ["prompt 1"]


@pytest.mark.anyio
async def test_async_prompt_and_a_failing_prompt_keep_the_ladder_going(unit: float) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)

        async def prompt(n: int) -> None:
            clock.record(f"prompt {n}")
            if n == 1:
                raise OSError("model socket closed")

        ladder = IdleLadder(
            scope, prompt, lambda: clock.record("hang up"), config=ladder_config(unit)
        )
        ladder.bot_activity()
        await clock.at(60)
    assert clock.names() == ["prompt 1", "prompt 2", "hang up"]
    assert scope.statistics().failed == 1


# --- maximum call duration ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_polite_then_hard_limit(unit: float, virtual: bool) -> None:
    # The production limits in virtual time; a hundredth of them in the real-time smoke.
    minute = 60 * unit if virtual else 0.6 * unit
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        duration = MaxCallDuration(
            scope,
            lambda: clock.record("goodbye"),
            config=MaxCallDurationConfig(limit=25 * minute, hard_limit=26 * minute),
        )
        assert duration.start() == allowed("max_call_duration")
        assert duration.start() == allowed("max_call_duration")  # counts from the first start
        assert duration.hard_timer is not None
        assert [t.name for t in scope.pending_timers()] == [
            "max_call_duration",
            "max_call_duration.hard",
        ]
        await anyio.sleep_forever()  # the caller does not let the bot hang up
    assert clock.names() == ["goodbye"]
    if virtual:
        assert clock.events == [("goodbye", 1500.0)]
        assert clock.now() == pytest.approx(1560.0)
    assert scope.statistics().armed == 2


@pytest.mark.anyio
async def test_polite_limit_only(unit: float) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)

        async def goodbye() -> None:
            clock.record("goodbye")
            scope.close()

        duration = MaxCallDuration(
            scope, goodbye, config=MaxCallDurationConfig(limit=60 * unit, hard_limit=None)
        )
        assert duration.hard_timer is None
        duration.start()
        await anyio.sleep_forever()
    assert clock.names() == ["goodbye"]


@pytest.mark.anyio
async def test_cancelled_limits_never_fire(unit: float) -> None:
    async with CallScope(call_sid="CA1") as scope:
        clock = Clock(unit)
        duration = MaxCallDuration(
            scope,
            lambda: clock.record("goodbye"),
            lambda: clock.record("hard"),
            config=MaxCallDurationConfig(limit=10 * unit, hard_limit=20 * unit),
        )
        duration.start()
        assert duration.pending
        assert duration.cancel() is True
        assert duration.cancel() is False
        await clock.at(30)
    assert clock.events == []


# --- all of them in one call ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_finished_call_leaves_no_timer_behind(unit: float) -> None:
    async with CallScope(call_sid="CA1") as scope:
        HangupFallback(scope, config=HangupFallbackConfig(delay=6 * unit)).arm()
        ResponseWatchdog(scope, lambda: None, config=ResponseWatchdogConfig(delay=3 * unit)).arm()
        IdleLadder(scope, lambda n: None, config=ladder_config(unit)).bot_activity()
        MaxCallDuration(scope, lambda: None).start()
        assert len(scope.pending_timers()) == 5
        await anyio.sleep(1 * unit)
    stats = scope.statistics()
    assert scope.pending_timers() == ()
    assert (stats.armed, stats.cancelled, stats.pending, stats.tasks) == (5, 5, 0, 0)
