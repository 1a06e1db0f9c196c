"""Timers that wait, in virtual time: the seed's three cases, cross-call leaks, shutdown grace.

Each test runs twice: on trio under ``MockClock(autojump_threshold=0)`` with the production
delays (a 6 s fallback takes no real time), and on asyncio as a smoke test with every delay scaled
down to a few real milliseconds (marked ``realtime``). Delays are written as ``n * unit``.
"""

from __future__ import annotations

import logging
from typing import Any

import anyio
import pytest
import trio.testing

from voiceguard.config import CallScopeConfig
from voiceguard.decisions import Reason
from voiceguard.runtime.scope import CallScope, CallScopeState

pytestmark = pytest.mark.anyio


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
    return 1.0 if anyio_backend != "asyncio" else 0.01


@pytest.fixture
def virtual(anyio_backend: Any) -> bool:
    """True when the clock is virtual, so times can be compared exactly."""
    return bool(anyio_backend != "asyncio")


class Handler:
    """The seed's shape: one object per process whose call SID changes from call to call."""

    def __init__(self) -> None:
        self.call_sid: str | None = None
        self.hung_up: list[str | None] = []

    def hang_up(self) -> None:
        self.hung_up.append(self.call_sid)


# --- the seed's three cases ---------------------------------------------------------------------


async def test_fallback_fires_for_its_own_call(unit: float, virtual: bool) -> None:
    handler = Handler()
    async with CallScope(call_sid="CA1", stream_sid="MZ1") as scope:
        handler.call_sid = "CA1"
        start = anyio.current_time()
        fired_at: list[float] = []

        def fallback() -> None:
            fired_at.append(anyio.current_time() - start)
            handler.hang_up()

        timer = scope.call_later("hangup_fallback", 6 * unit, fallback)
        assert timer.deadline == pytest.approx(start + 6 * unit)
        await anyio.sleep(5 * unit)
        assert timer.pending
        assert handler.hung_up == []
        await anyio.sleep(2 * unit)
        assert handler.hung_up == ["CA1"]
        if virtual:
            assert fired_at == [pytest.approx(6.0)]
    assert scope.statistics().fired == 1


async def test_fallback_is_ignored_after_the_call_sid_changed(unit: float) -> None:
    handler = Handler()
    async with CallScope(call_sid="CA1", stream_sid="MZ1") as scope:
        handler.call_sid = "CA1"
        timer = scope.call_later("hangup_fallback", 6 * unit, handler.hang_up)
        await anyio.sleep(2 * unit)
        # The reused handler moves on to the next call while the timer is pending.
        handler.call_sid = "CA2"
        scope.rebind(call_sid="CA2", stream_sid="MZ2")
        await anyio.sleep(6 * unit)
        assert handler.hung_up == []
        assert timer.last_decision is not None
        assert timer.last_decision.reason is Reason.STALE_CALL
    assert scope.statistics().suppressed == {Reason.STALE_CALL: 1}


async def test_fallback_is_ignored_while_closing(unit: float, virtual: bool) -> None:
    # Two timers are due at the same moment; the first to run hangs up (closes the scope). The
    # other must not run: it is either cancelled (its task had not woken yet) or, if it had
    # already woken, stopped by the closing check.
    ran: list[str] = []
    async with CallScope(call_sid="CA1") as scope:

        def hang_up(name: str) -> None:
            ran.append(name)
            scope.close()

        scope.call_later("hangup_fallback", 6 * unit, lambda: hang_up("fallback"))
        scope.call_later("max_duration", 6 * unit, lambda: hang_up("max_duration"))
        await anyio.sleep_forever()
    assert len(ran) == 1
    stats = scope.statistics()
    assert stats.fired == 1
    assert stats.cancelled + stats.suppressed.get(Reason.CLOSING, 0) == 1
    assert set(stats.suppressed) <= {Reason.CLOSING}
    assert stats.pending == 0
    if virtual:
        assert anyio.current_time() == pytest.approx(6.0)


# --- cross-call leaks ---------------------------------------------------------------------------


@pytest.mark.parametrize("next_call_sid", ["CA2", "CA1"], ids=["new-sid", "same-sid"])
async def test_nothing_of_call_a_runs_during_call_b(unit: float, next_call_sid: str) -> None:
    handler = Handler()

    async with CallScope(call_sid="CA1", stream_sid="MZ1") as call_a:
        handler.call_sid = "CA1"
        fallback_a = call_a.call_later("hangup_fallback", 6 * unit, handler.hang_up)
        call_a.call_later("response_watchdog", 3 * unit, handler.hang_up)
        await anyio.sleep(1 * unit)  # the caller hangs up before the goodbye played
    assert call_a.pending_timers() == ()
    assert not fallback_a.pending

    async with CallScope(call_sid=next_call_sid, stream_sid="MZ2") as call_b:
        handler.call_sid = next_call_sid
        fallback_b = call_b.timer("hangup_fallback", 6 * unit, handler.hang_up)
        await anyio.sleep(10 * unit)  # past every deadline of call A
        assert handler.hung_up == []
        fallback_b.start()
        await anyio.sleep(7 * unit)
    assert handler.hung_up == [next_call_sid]  # B's own fallback, once

    stats_a = call_a.statistics()
    assert (stats_a.armed, stats_a.fired, stats_a.cancelled, stats_a.pending) == (2, 0, 2, 0)
    assert stats_a.tasks == 0
    assert fallback_a.last_decision is None  # never even reached its deadline


async def test_concurrent_calls_keep_their_timers_apart(unit: float) -> None:
    fired: list[tuple[str, str | None]] = []

    async def call(label: str, call_sid: str, delay: float, lasts: float) -> None:
        async with CallScope(call_sid=call_sid) as scope:
            scope.call_later(
                "hangup_fallback",
                delay * unit,
                lambda: fired.append((label, scope.identity.call_sid)),
            )
            await anyio.sleep(lasts * unit)

    async with anyio.create_task_group() as calls:
        calls.start_soon(call, "A", "CA1", 6, 2)  # ends before its fallback
        calls.start_soon(call, "B", "CA1", 4, 10)  # same SID (a retried stream), fires
        calls.start_soon(call, "C", "CA3", 8, 12)  # fires
    assert sorted(fired) == [("B", "CA1"), ("C", "CA3")]


# --- the timer API over time ----------------------------------------------------------------------


async def test_restart_moves_the_deadline_both_ways(unit: float, virtual: bool) -> None:
    fired_at: list[float] = []
    async with CallScope(call_sid="CA1") as scope:
        start = anyio.current_time()
        timer = scope.call_later(
            "watchdog", 3 * unit, lambda: fired_at.append(anyio.current_time() - start)
        )
        await anyio.sleep(2 * unit)
        timer.restart()  # a new turn ended: 3 s from now
        if virtual:
            assert timer.deadline == start + 5
        await anyio.sleep(2 * unit)
        timer.restart(10 * unit)
        await anyio.sleep(1 * unit)
        timer.restart(1 * unit)  # earlier than the pending deadline: wakes the sleeping task
        await anyio.sleep(3 * unit)
    assert len(fired_at) == 1
    if virtual:
        assert fired_at == [pytest.approx(6.0)]
    stats = scope.statistics()
    assert (stats.armed, stats.restarted, stats.fired) == (1, 3, 1)


async def test_cancel_while_sleeping(unit: float) -> None:
    fired: list[int] = []
    async with CallScope(call_sid="CA1") as scope:
        timer = scope.call_later("watchdog", 3 * unit, lambda: fired.append(1))
        await anyio.sleep(1 * unit)
        assert timer.cancel()
        await anyio.sleep(5 * unit)
        assert scope.statistics().tasks == 0
    assert fired == []


async def test_timer_callback_ends_the_call(unit: float, virtual: bool) -> None:
    steps: list[str] = []
    async with CallScope(call_sid="CA1") as scope:
        scope.call_later("hangup_fallback", 6 * unit, scope.close)
        scope.call_later("idle", 30 * unit, lambda: steps.append("idle"))
        try:
            await anyio.sleep_forever()
        finally:
            steps.append("body cancelled")
    assert steps == ["body cancelled"]
    assert scope.state is CallScopeState.CLOSED
    if virtual:
        assert anyio.current_time() == pytest.approx(6.0)


async def test_async_callback_is_cancelled_with_its_call(unit: float) -> None:
    steps: list[str] = []

    async def say_goodbye() -> None:
        steps.append("goodbye started")
        await anyio.sleep(10 * unit)
        steps.append("goodbye finished")  # pragma: no cover - the call ends first

    async with CallScope(call_sid="CA1") as scope:
        scope.call_later("max_duration", 1 * unit, say_goodbye)
        await anyio.sleep(3 * unit)
    assert steps == ["goodbye started"]
    assert scope.statistics().tasks == 0


async def test_shutdown_grace_bounds_the_final_sends(
    unit: float, virtual: bool, caplog: pytest.LogCaptureFixture
) -> None:
    sent: list[str] = []

    async def send_clear() -> None:
        sent.append("clear")

    async def cancel_on_dead_socket() -> None:
        await anyio.sleep(60 * unit)  # the peer never answers
        sent.append("cancel")  # pragma: no cover

    config = CallScopeConfig(shutdown_grace=1 * unit)
    async with CallScope(call_sid="CA1", config=config) as scope:
        scope.on_close(lambda: sent.append("never reached"))
        scope.on_close(cancel_on_dead_socket)
        scope.on_close(send_clear)
        start = anyio.current_time()
    assert sent == ["clear"]
    if virtual:
        assert anyio.current_time() - start == pytest.approx(1.0)
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert "2 of 3 close callbacks did not finish" in warning.getMessage()
