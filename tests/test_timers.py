"""CallScope and CallScopedTimer: the API, its misuse errors, statistics and logging.

These tests need no passing of time (timers with delay 0, or none at all), so they run on
asyncio and trio (conftest.py). Timers that wait are tested in virtual time in
test_timers_scenarios.py and test_timers_properties.py.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from typing import Any

import anyio
import anyio.abc
import pytest

from voiceguard.config import CallScopeConfig
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import CallScopeError, ConfigError
from voiceguard.runtime.scope import (
    CallIdentity,
    CallScope,
    CallScopedTimer,
    CallScopeState,
    CallScopeStatistics,
)

pytestmark = pytest.mark.anyio


def noop() -> None:
    """A timer callback that does nothing."""


def current(value: CallScopeState) -> CallScopeState:
    """Reads a property that changes, so that the type checker does not narrow it."""
    return value


# --- lifecycle --------------------------------------------------------------------------------


async def test_scope_moves_new_open_closing_closed() -> None:
    scope = CallScope(call_sid="CA1", stream_sid="MZ1")
    assert current(scope.state) is CallScopeState.NEW
    assert (scope.closing, scope.closed) == (False, False)
    async with scope as entered:
        assert entered is scope
        assert current(scope.state) is CallScopeState.OPEN
        assert (scope.closing, scope.closed) == (False, False)
        scope.close()
        assert current(scope.state) is CallScopeState.CLOSING
        assert (scope.closing, scope.closed) == (True, False)
    assert current(scope.state) is CallScopeState.CLOSED
    assert (scope.closing, scope.closed) == (True, True)


async def test_identity_and_rebind_counts_generations() -> None:
    scope = CallScope(call_sid="CA1", stream_sid="MZ1", generation=3)
    assert scope.identity == CallIdentity(call_sid="CA1", stream_sid="MZ1", generation=3)
    assert str(scope.identity) == "call CA1 stream MZ1 generation 3"
    async with scope:
        new = scope.rebind(call_sid="CA2", stream_sid="MZ2")
        assert new == CallIdentity(call_sid="CA2", stream_sid="MZ2", generation=4)
        assert scope.identity is new
        assert scope.rebind(call_sid="CA2", stream_sid="MZ3").generation == 5


def test_call_identity_is_frozen() -> None:
    identity = CallIdentity(call_sid="CA1")
    with pytest.raises(dataclasses.FrozenInstanceError):
        identity.call_sid = "CA2"  # type: ignore[misc]


async def test_close_before_entering_marks_the_scope_closed() -> None:
    scope = CallScope(call_sid="CA1")
    scope.close()
    assert scope.closed
    with pytest.raises(CallScopeError, match="has already closed and cannot be re-entered"):
        async with scope:
            pass


async def test_close_is_idempotent_and_ends_the_block_without_error() -> None:
    reached_after_checkpoint = False
    async with CallScope(call_sid="CA1") as scope:
        scope.close()
        scope.close()
        await anyio.sleep(0)
        reached_after_checkpoint = True
    assert not reached_after_checkpoint
    scope.close()
    assert scope.closed


async def test_body_exception_leaves_in_an_exception_group_and_cancels_timers() -> None:
    with pytest.RaisesGroup(pytest.RaisesExc(KeyError, match="boom")):
        async with CallScope(call_sid="CA1") as scope:
            scope.call_later("fallback", 60, noop)
            raise KeyError("boom")
    stats = scope.statistics()
    assert stats.cancelled == 1
    assert stats.pending == 0
    assert scope.pending_timers() == ()


# --- misuse: every CallScopeError and its message ----------------------------------------------


async def test_entering_an_open_scope_again_raises() -> None:
    async with CallScope(call_sid="CA1") as scope:
        with pytest.raises(
            CallScopeError,
            match=r"CallScope for call CA1 \(generation 0\) is already open: "
            r"a CallScope is entered once",
        ):
            async with scope:
                pass  # pragma: no cover
        assert scope.state is CallScopeState.OPEN


async def test_entering_a_closing_scope_raises() -> None:
    async with CallScope(call_sid="CA1") as scope:
        scope.close()
        with pytest.raises(CallScopeError, match="was already entered and is closing"):
            await scope.__aenter__()


async def test_reentering_after_exit_raises() -> None:
    scope = CallScope(call_sid="CA1")
    async with scope:
        pass
    with pytest.raises(
        CallScopeError,
        match=r"CallScope for call CA1 \(generation 0\) has already closed and cannot be "
        r"re-entered \(make a new CallScope for each call\)",
    ):
        async with scope:
            pass  # pragma: no cover


async def test_arming_on_a_closing_scope_raises() -> None:
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.timer("fallback", 6, noop)
        scope.close()
        with pytest.raises(
            CallScopeError,
            match=r"cannot start timer 'fallback': CallScope for call CA1 \(generation 0\) "
            r"is closing",
        ):
            timer.start()
        with pytest.raises(CallScopeError, match=r"cannot restart timer 'fallback': .* is closing"):
            timer.restart()
        with pytest.raises(CallScopeError, match=r"cannot start timer 'other': .* is closing"):
            scope.call_later("other", 1, noop)
        with pytest.raises(CallScopeError, match=r"cannot make timer 'new' on .* is closing"):
            scope.timer("new", 1, noop)
    assert scope.statistics().armed == 0


async def test_arming_on_a_closed_scope_raises() -> None:
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.timer("fallback", 6, noop)
    with pytest.raises(
        CallScopeError,
        match=r"cannot start timer 'fallback': CallScope for call CA1 \(generation 0\) has closed",
    ):
        timer.start()
    with pytest.raises(CallScopeError, match=r"cannot make timer 'new' on .* has closed"):
        scope.timer("new", 1, noop)


async def test_arming_before_entering_raises() -> None:
    scope = CallScope(call_sid="CA1")
    timer = scope.timer("fallback", 6, noop)  # making it is fine; arming is not
    with pytest.raises(
        CallScopeError,
        match=r"cannot start timer 'fallback': CallScope for call CA1 \(generation 0\) has not "
        r"been entered yet",
    ):
        timer.start()
    with pytest.raises(CallScopeError, match="has not been entered yet"):
        scope.decide_arm("fallback")


async def test_starting_a_pending_timer_raises_and_keeps_its_deadline() -> None:
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.call_later("watchdog", 3, noop)
        deadline = timer.deadline
        with pytest.raises(
            CallScopeError,
            match=r"timer 'watchdog' of CallScope for call CA1 \(generation 0\) is already "
            r"pending \(deadline .*\); use restart\(\) to re-arm it",
        ):
            timer.start()
        assert timer.deadline == deadline
        assert scope.statistics().armed == 1


async def test_a_replaced_timer_cannot_be_used() -> None:
    async with CallScope(call_sid="CA1") as scope:
        old = scope.call_later("fallback", 6, noop)
        new = scope.timer("fallback", 6, noop)
        assert old.replaced
        assert not new.replaced
        assert not old.pending
        assert old.cancel() is False
        with pytest.raises(
            CallScopeError,
            match=r"cannot start timer 'fallback': it was replaced by a newer timer of the same "
            r"name in CallScope for call CA1",
        ):
            old.start()
        with pytest.raises(
            CallScopeError, match="cannot restart timer 'fallback': it was replaced"
        ):
            old.restart()
        assert scope.statistics().cancelled == 1


def test_timers_are_made_by_a_scope_only() -> None:
    with pytest.raises(
        CallScopeError, match=r"make it with CallScope.timer\(\) or CallScope.call_later\(\)"
    ):
        CallScopedTimer()


async def test_rebind_of_a_closing_or_closed_scope_raises() -> None:
    async with CallScope(call_sid="CA1") as scope:
        scope.close()
        with pytest.raises(
            CallScopeError,
            match=r"cannot rebind CallScope for call CA1 \(generation 0\) to call CA2: the scope "
            r"is closing",
        ):
            scope.rebind(call_sid="CA2", stream_sid=None)
    with pytest.raises(CallScopeError, match="to call CA2: the scope has closed"):
        scope.rebind(call_sid="CA2", stream_sid=None)
    assert scope.identity.call_sid == "CA1"


async def test_tasks_and_close_callbacks_need_an_open_scope() -> None:
    async def task() -> None:
        await anyio.sleep_forever()  # pragma: no cover

    scope = CallScope(call_sid="CA1")
    with pytest.raises(CallScopeError, match=r"cannot start task 'pump': .* has not been entered"):
        scope.start_soon(task, name="pump")
    async with scope:
        scope.close()
        with pytest.raises(CallScopeError, match=r"cannot start task 'pump': .* is closing"):
            scope.start_soon(task, name="pump")
        with pytest.raises(CallScopeError, match=r"cannot start task .*task.*: .* is closing"):
            await scope.start(task)
        with pytest.raises(
            CallScopeError, match=r"cannot register a close callback on .*: the scope is closing"
        ):
            scope.on_close(noop)
    with pytest.raises(CallScopeError, match=r"cannot start task 'pump': .* has closed"):
        scope.start_soon(task, name="pump")
    with pytest.raises(CallScopeError, match="the scope has closed"):
        scope.on_close(noop)


@pytest.mark.parametrize("delay", [-1, math.nan, math.inf, True, "6", 86_401])
async def test_bad_delays_raise_config_error(delay: Any) -> None:
    async with CallScope(call_sid="CA1") as scope:
        with pytest.raises(ConfigError, match=r"CallScopedTimer.delay = .* is not allowed"):
            scope.timer("fallback", delay, noop)
        timer = scope.timer("fallback", 1, noop)
        with pytest.raises(ConfigError, match=r"CallScopedTimer.delay"):
            timer.start(delay)
        assert not timer.pending


async def test_empty_timer_name_raises_config_error() -> None:
    async with CallScope(call_sid="CA1") as scope:
        with pytest.raises(ConfigError, match=r"CallScope.timer\(name\) = '' is not allowed"):
            scope.timer("", 1, noop)


# --- firing, cancelling, restarting (no time passes: delay 0) ----------------------------------


async def test_sync_and_async_callbacks_fire_for_their_call() -> None:
    fired: list[str] = []

    async def async_callback() -> None:
        await anyio.sleep(0)
        fired.append("async")

    async with CallScope(call_sid="CA1") as scope:
        plain = scope.call_later("plain", 0, lambda: fired.append("plain"))
        coroutine = scope.call_later("async", 0, async_callback)
        assert scope.statistics().pending == 2
        await anyio.wait_all_tasks_blocked()
        assert sorted(fired) == ["async", "plain"]
        assert not plain.pending
        assert plain.deadline is None
        assert plain.last_decision == Decision(
            action=Action.TIMER, verdict=Verdict.ALLOW, reason=Reason.OK, detail="plain"
        )
        assert coroutine.last_decision is not None
        assert coroutine.last_decision.allowed
    stats = scope.statistics()
    assert (stats.armed, stats.fired, stats.cancelled, stats.suppressed_total) == (2, 2, 0, 0)


async def test_a_cancelled_timer_never_fires() -> None:
    fired: list[str] = []
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.call_later("fallback", 0, lambda: fired.append("fallback"))
        assert timer.cancel() is True
        assert timer.cancel() is False
        assert not timer.pending
        await anyio.wait_all_tasks_blocked()
        assert scope.statistics().tasks == 0
    assert fired == []
    assert timer.last_decision is None
    stats = scope.statistics()
    assert (stats.armed, stats.fired, stats.cancelled) == (1, 0, 1)


async def test_a_timer_can_be_started_again_after_it_fired() -> None:
    fired: list[int] = []
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.call_later("prompt", 0, lambda: fired.append(1))
        await anyio.wait_all_tasks_blocked()
        timer.start()
        await anyio.wait_all_tasks_blocked()
    assert fired == [1, 1]
    assert scope.statistics().fired == 2


async def test_restart_moves_a_pending_timer_in_place() -> None:
    fired: list[int] = []
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.call_later("watchdog", 60, lambda: fired.append(1))
        timer.restart(120)
        timer.restart(0)
        await anyio.wait_all_tasks_blocked()
    assert fired == [1]
    stats = scope.statistics()
    assert (stats.armed, stats.restarted, stats.fired, stats.cancelled) == (1, 2, 1, 0)


async def test_restart_of_an_idle_timer_starts_it() -> None:
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.timer("watchdog", 3, noop)
        timer.restart()
        assert timer.pending
        assert timer.identity == scope.identity
        stats = scope.statistics()
        assert (stats.armed, stats.restarted) == (1, 0)


async def test_making_a_timer_with_a_used_name_replaces_the_old_one() -> None:
    fired: list[str] = []
    async with CallScope(call_sid="CA1") as scope:
        scope.call_later("fallback", 0, lambda: fired.append("first"))
        scope.call_later("fallback", 0, lambda: fired.append("second"))
        assert [timer.name for timer in scope.pending_timers()] == ["fallback"]
        await anyio.wait_all_tasks_blocked()
    assert fired == ["second"]


async def test_due_timer_of_a_closing_scope_is_suppressed_with_closing() -> None:
    # The seed's "ignored while closing": the delay is up, but the call started closing first.
    fired: list[str] = []
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.call_later("fallback", 0, lambda: fired.append("fallback"))
        scope.close()
        assert not timer.pending
        assert scope.pending_timers() == ()
    assert fired == []
    assert timer.last_decision == Decision(
        action=Action.TIMER, verdict=Verdict.SUPPRESS, reason=Reason.CLOSING, detail="fallback"
    )
    assert scope.statistics().suppressed == {Reason.CLOSING: 1}


async def test_due_timer_after_rebind_is_suppressed_with_stale_call() -> None:
    # The seed's "ignored after the call SID changed".
    fired: list[str] = []
    async with CallScope(call_sid="CA1", stream_sid="MZ1") as scope:
        timer = scope.call_later("fallback", 0, lambda: fired.append("fallback"))
        assert timer.identity == CallIdentity(call_sid="CA1", stream_sid="MZ1")
        scope.rebind(call_sid="CA2", stream_sid="MZ2")
        await anyio.wait_all_tasks_blocked()
    assert fired == []
    assert timer.last_decision is not None
    assert timer.last_decision.reason is Reason.STALE_CALL
    assert scope.statistics().suppressed == {Reason.STALE_CALL: 1}


async def test_restart_after_rebind_arms_for_the_new_identity() -> None:
    fired: list[str | None] = []
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.call_later("watchdog", 60, lambda: fired.append(scope.identity.call_sid))
        scope.rebind(call_sid="CA2", stream_sid=None)
        timer.restart(0)
        assert timer.identity is not None
        assert timer.identity.call_sid == "CA2"
        await anyio.wait_all_tasks_blocked()
    assert fired == ["CA2"]


# --- introspection ------------------------------------------------------------------------------


async def test_pending_timers_soonest_first_and_empty_once_closing() -> None:
    async with CallScope(call_sid="CA1") as scope:
        scope.call_later("max_duration", 1500, noop)
        scope.call_later("watchdog", 3, noop)
        scope.call_later("fallback", 6, noop)
        scope.timer("idle", 15, noop)  # made, not armed
        assert [timer.name for timer in scope.pending_timers()] == [
            "watchdog",
            "fallback",
            "max_duration",
        ]
        assert scope.statistics().pending == 3
        scope.close()
        assert scope.pending_timers() == ()
        assert scope.statistics().pending == 0
    stats = scope.statistics()
    assert (stats.armed, stats.cancelled, stats.pending, stats.tasks) == (3, 3, 0, 0)


async def test_statistics_is_an_immutable_snapshot() -> None:
    async with CallScope(call_sid="CA1") as scope:
        before = scope.statistics()
        scope.call_later("watchdog", 3, noop)
        after = scope.statistics()
    assert isinstance(before, CallScopeStatistics)
    assert before.armed == 0
    assert after.armed == 1
    assert after.state is CallScopeState.OPEN
    with pytest.raises(dataclasses.FrozenInstanceError):
        after.armed = 5  # type: ignore[misc]
    with pytest.raises(TypeError):
        after.suppressed[Reason.CLOSING] = 1  # type: ignore[index]
    assert scope.statistics().state is CallScopeState.CLOSED


async def test_decide_arm_and_refuse_are_logged_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Decision] = []
    caplog.set_level(logging.DEBUG, logger="voiceguard.timers")
    async with CallScope(call_sid="CA1", stream_sid="MZ1", sink=seen.append) as scope:
        assert scope.decide_arm("watchdog") == Decision(
            action=Action.TIMER, verdict=Verdict.ALLOW, reason=Reason.OK, detail="watchdog"
        )
        refused = scope.refuse("fallback", Reason.HANGUP_PENDING)
        assert refused.suppressed
        assert refused.reason is Reason.HANGUP_PENDING
        scope.close()
        assert scope.decide_arm("watchdog").reason is Reason.CLOSING
    assert scope.decide_arm("watchdog").reason is Reason.SCOPE_CLOSED
    assert scope.statistics().refused == {
        Reason.HANGUP_PENDING: 1,
        Reason.CLOSING: 1,
        Reason.SCOPE_CLOSED: 1,
    }
    assert [decision.reason for decision in seen] == [
        Reason.HANGUP_PENDING,
        Reason.CLOSING,
        Reason.SCOPE_CLOSED,
    ]
    refusals = [record for record in caplog.records if "not armed" in record.getMessage()]
    assert [record.__dict__["reason"] for record in refusals] == [
        "HANGUP_PENDING",
        "CLOSING",
        "SCOPE_CLOSED",
    ]
    assert all(record.__dict__["call_sid"] == "CA1" for record in refusals)


async def test_suppressed_fire_is_logged_with_the_call_identity(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[Decision] = []
    caplog.set_level(logging.INFO, logger="voiceguard.timers")
    async with CallScope(call_sid="CA1", stream_sid="MZ1", sink=seen.append) as scope:
        scope.call_later("fallback", 0, noop)
        scope.rebind(call_sid="CA2", stream_sid="MZ2")
        await anyio.wait_all_tasks_blocked()
    (record,) = [r for r in caplog.records if "suppressed" in r.getMessage()]
    assert record.name == "voiceguard.timers"
    assert record.levelno == logging.INFO
    fields = {key: record.__dict__[key] for key in ("call_sid", "stream_sid", "generation")}
    # The record names the call the timer was armed for.
    assert fields == {"call_sid": "CA1", "stream_sid": "MZ1", "generation": 0}
    assert record.__dict__["timer"] == "fallback"
    assert record.__dict__["reason"] == "STALE_CALL"
    assert seen == [
        Decision(
            action=Action.TIMER,
            verdict=Verdict.SUPPRESS,
            reason=Reason.STALE_CALL,
            detail="fallback",
        )
    ]


# --- errors in callbacks ------------------------------------------------------------------------


async def test_failing_callback_is_logged_and_the_call_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    def broken() -> None:
        raise ValueError("prompt failed")

    async with CallScope(call_sid="CA1", stream_sid="MZ1") as scope:
        scope.call_later("prompt", 0, broken)
        await anyio.wait_all_tasks_blocked()
        assert scope.state is CallScopeState.OPEN
    stats = scope.statistics()
    assert (stats.fired, stats.failed) == (1, 1)
    (record,) = [r for r in caplog.records if "callback failed" in r.getMessage()]
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert record.__dict__["call_sid"] == "CA1"
    assert record.__dict__["timer"] == "prompt"


@pytest.mark.parametrize("per_timer", [True, False])
async def test_failing_callback_ends_the_call_when_configured(per_timer: bool) -> None:
    def broken() -> None:
        raise ValueError("hang-up failed")

    config = CallScopeConfig(timer_error_ends_call=not per_timer)
    with pytest.RaisesGroup(pytest.RaisesExc(ValueError, match="hang-up failed")):
        async with CallScope(call_sid="CA1", config=config) as scope:
            scope.call_later("hangup", 0, broken, error_ends_call=True if per_timer else None)
            scope.call_later("other", 60, noop)
            await anyio.sleep_forever()
    stats = scope.statistics()
    assert (stats.fired, stats.failed, stats.cancelled, stats.pending) == (1, 1, 1, 0)


# --- tasks and final sends ----------------------------------------------------------------------


async def test_child_tasks_are_counted_and_cancelled_with_the_call() -> None:
    events: list[str] = []

    async def pump(label: str) -> None:
        try:
            await anyio.sleep_forever()
        finally:
            events.append(f"{label} cancelled")

    async def ready(*, task_status: anyio.abc.TaskStatus[str]) -> None:
        task_status.started("ready")
        await anyio.sleep_forever()

    async with CallScope(call_sid="CA1") as scope:
        scope.start_soon(pump, "twilio")
        assert await scope.start(ready) == "ready"
        await anyio.wait_all_tasks_blocked()
        assert scope.statistics().tasks == 2
    assert events == ["twilio cancelled"]
    assert scope.statistics().tasks == 0


async def test_close_callbacks_run_last_first_after_cancel_and_survive_errors(
    caplog: pytest.LogCaptureFixture,
) -> None:
    events: list[str] = []

    async def send_clear() -> None:
        await anyio.sleep(0)  # a checkpoint: the grace period is shielded
        events.append("clear")

    def broken() -> None:
        raise OSError("socket gone")

    async def pump() -> None:
        try:
            await anyio.sleep_forever()
        finally:
            events.append("pump cancelled")

    async with CallScope(call_sid="CA1") as scope:
        scope.start_soon(pump)
        scope.on_close(lambda: events.append("log stats"))
        scope.on_close(broken)
        scope.on_close(send_clear)
        await anyio.wait_all_tasks_blocked()
    # The pump was cancelled first (it may clean up while the final sends wait on I/O); the
    # close callbacks ran last registered first, and a failing one did not stop the others.
    assert sorted(events) == ["clear", "log stats", "pump cancelled"]
    assert events.index("clear") < events.index("log stats")
    assert any("close callback" in r.getMessage() for r in caplog.records if r.exc_info)


async def test_grace_period_is_a_shielded_move_on_after() -> None:
    async with CallScope(call_sid="CA1", config=CallScopeConfig(shutdown_grace=0.5)) as scope:
        scope.close()
        with scope.grace_period() as grace:
            assert grace.shield
            assert grace.deadline == pytest.approx(anyio.current_time() + 0.5, abs=0.1)
            await anyio.sleep(0)  # not cancelled, although the scope is
        assert not grace.cancelled_caught
        with scope.grace_period(2) as longer:
            assert longer.deadline == pytest.approx(anyio.current_time() + 2, abs=0.1)
