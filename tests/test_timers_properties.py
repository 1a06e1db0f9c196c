"""Properties of call scopes over many calls, in virtual time (invariant 3 of the design page).

* Interleaved calls with random arm / cancel / restart / rebind / end sequences: no callback runs
  after its scope started closing, none runs for another call or an older identity, every call
  leaves zero pending timers and zero tasks, and what fired is exactly what a model predicts.
* 10,000 sequential calls: memory stays flat (tracemalloc) and no task is left over.

Virtual time only (trio's ``MockClock``): these runs cover hours of call time. An asyncio smoke
of the interleaving runs with real delays of a few milliseconds and checks the safety properties
only (real time jitters, so exact fire times are not compared).
"""

from __future__ import annotations

import gc
import random
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import anyio
import pytest
import trio.testing
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voiceguard.decisions import Reason
from voiceguard.errors import CallScopeError
from voiceguard.runtime.scope import CallIdentity, CallScope, CallScopedTimer, CallScopeState
from voiceguard.runtime.timers import HangupFallback, IdleLadder, ResponseWatchdog

OpKind = Literal["start", "restart", "cancel", "rebind"]
OP_KINDS: tuple[OpKind, ...] = ("start", "start", "restart", "restart", "cancel", "rebind")
CALL_SIDS = ("CA0", "CA1", "CA2")
# Each timer's delays end in its own fraction of a second; operations happen on whole seconds.
# So no fire ever ties with an operation, or with another timer of the same call, and the model
# below can predict every outcome exactly.
FRACTIONS = (0.25, 0.5, 0.75)
HANGUP_TIMER = 2


@dataclass(frozen=True)
class Op:
    """One thing a call does to one of its timers, ``at`` whole seconds after it started."""

    at: int
    kind: OpKind
    timer: int
    delay: int


@dataclass(frozen=True)
class CallScript:
    """One call: when it starts, what it does, when it ends and how."""

    call_sid: str
    start: int
    ops: tuple[Op, ...]
    end: int
    hangup_timer: bool  # timer 2's callback closes the scope, like a hang-up fallback
    explicit_close: bool  # end with scope.close() instead of leaving the block

    def delay(self, op: Op) -> float:
        return op.delay + FRACTIONS[op.timer]


@dataclass
class Expected:
    fired: list[tuple[int, float]] = field(default_factory=list)  # (timer, seconds after start)
    armed: int = 0
    restarted: int = 0
    cancelled: int = 0
    stale: int = 0
    start_errors: int = 0


def model(script: CallScript) -> Expected:
    """What a call must do, computed without any event loop."""
    expected = Expected()
    pending: dict[int, tuple[float, int]] = {}  # timer -> (deadline, generation armed for)
    generation = 0

    def fire_until(until: float) -> bool:
        """Fire what is due before *until*; True if a hang-up ended the call."""
        while True:
            due = sorted((deadline, timer) for timer, (deadline, _) in pending.items())
            if not due or due[0][0] >= until:
                return False
            deadline, timer = due[0]
            armed_generation = pending.pop(timer)[1]
            if armed_generation != generation:
                expected.stale += 1
                continue
            expected.fired.append((timer, deadline))
            if timer == HANGUP_TIMER and script.hangup_timer:
                return True

    hung_up = False
    for op in script.ops:
        if fire_until(op.at):
            hung_up = True
            break
        if op.kind == "start":
            if op.timer in pending:
                expected.start_errors += 1
            else:
                pending[op.timer] = (op.at + script.delay(op), generation)
                expected.armed += 1
        elif op.kind == "restart":
            if op.timer in pending:
                expected.restarted += 1
            else:
                expected.armed += 1
            pending[op.timer] = (op.at + script.delay(op), generation)
        elif op.kind == "cancel":
            if pending.pop(op.timer, None) is not None:
                expected.cancelled += 1
        else:
            generation += 1
    if not hung_up:
        fire_until(script.end)
    expected.cancelled += len(pending)  # cancelled by the end of the call
    return expected


@dataclass
class Observed:
    violations: list[str] = field(default_factory=list)
    fired: list[tuple[int, float]] = field(default_factory=list)
    start_errors: int = 0


async def run_call(index: int, script: CallScript, unit: float, observed: Observed) -> CallScope:
    """Run one call from its script; record what its timers did and every broken rule."""
    await anyio.sleep(script.start * unit)
    scope = CallScope(call_sid=script.call_sid, stream_sid=f"MZ{index}")
    armed_for: dict[int, CallIdentity] = {}
    ended = False
    start = 0.0

    def callback(timer: int) -> Callable[[], None]:
        def fire() -> None:
            where = f"call {index} timer {timer}"
            if ended:
                observed.violations.append(f"{where}: fired after its call ended")
            if scope.state is not CallScopeState.OPEN or scope.closing:
                observed.violations.append(f"{where}: fired in a {scope.state.value} scope")
            if scope.identity != armed_for[timer]:
                observed.violations.append(f"{where}: fired for {scope.identity}")
            observed.fired.append((timer, (anyio.current_time() - start) / unit))
            if timer == HANGUP_TIMER and script.hangup_timer:
                scope.close()

        return fire

    async with scope:
        start = anyio.current_time()
        timers: list[CallScopedTimer] = [
            scope.timer(f"t{i}", 1 * unit, callback(i)) for i in range(len(FRACTIONS))
        ]
        for op in script.ops:
            await anyio.sleep_until(start + op.at * unit)
            if scope.closing:
                # On asyncio a task whose sleep has ended runs on until its next checkpoint even
                # if a hang-up closed the call meanwhile: arming now would raise CallScopeError.
                break
            timer = timers[op.timer]
            if op.kind == "start":
                try:
                    timer.start(script.delay(op) * unit)
                except CallScopeError:
                    observed.start_errors += 1
                else:
                    armed_for[op.timer] = scope.identity
            elif op.kind == "restart":
                timer.restart(script.delay(op) * unit)
                armed_for[op.timer] = scope.identity
            elif op.kind == "cancel":
                timer.cancel()
            else:
                scope.rebind(call_sid=script.call_sid, stream_sid=f"MZ{index}")
        await anyio.sleep_until(start + script.end * unit)
        if script.explicit_close:
            scope.close()
            await anyio.sleep_forever()
    ended = True

    stats = scope.statistics()
    where = f"call {index}"
    if scope.pending_timers() != () or stats.pending != 0:
        observed.violations.append(f"{where}: left pending timers {scope.pending_timers()}")
    if stats.tasks != 0:
        observed.violations.append(f"{where}: left {stats.tasks} tasks")
    if stats.armed != stats.fired + stats.cancelled + stats.suppressed_total:
        observed.violations.append(f"{where}: armings do not add up: {stats}")
    if set(stats.suppressed) - {Reason.STALE_CALL, Reason.CLOSING}:
        observed.violations.append(f"{where}: unexpected suppressions {stats.suppressed}")
    return scope


async def run_calls(
    scripts: Sequence[CallScript], unit: float
) -> tuple[list[Observed], list[CallScope]]:
    """Run all calls at once, interleaved in one event loop."""
    observed = [Observed() for _ in scripts]
    scopes: list[CallScope | None] = [None] * len(scripts)

    async def one(index: int) -> None:
        scopes[index] = await run_call(index, scripts[index], unit, observed[index])

    baseline = len(anyio.get_running_tasks())
    async with anyio.create_task_group() as calls:
        for index in range(len(scripts)):
            calls.start_soon(one, index)
    assert len(anyio.get_running_tasks()) == baseline, "tasks were left over"
    return observed, [scope for scope in scopes if scope is not None]


def check_exactly(
    scripts: Sequence[CallScript], observed: list[Observed], scopes: list[CallScope]
) -> None:
    """Virtual time: every call did exactly what the model says."""
    for index, (script, seen, scope) in enumerate(zip(scripts, observed, scopes, strict=True)):
        assert seen.violations == [], (index, script)
        expected = model(script)
        assert [(t, round(at, 6)) for t, at in seen.fired] == expected.fired, (index, script)
        stats = scope.statistics()
        assert stats.armed == expected.armed, (index, script)
        assert stats.restarted == expected.restarted, (index, script)
        assert stats.fired == len(expected.fired), (index, script)
        assert stats.cancelled == expected.cancelled, (index, script)
        assert stats.suppressed.get(Reason.STALE_CALL, 0) == expected.stale, (index, script)
        assert stats.suppressed.get(Reason.CLOSING, 0) == 0, (index, script)
        assert seen.start_errors == expected.start_errors, (index, script)


def run_virtual(scripts: Sequence[CallScript]) -> None:
    observed, scopes = anyio.run(
        run_calls,
        scripts,
        1.0,
        backend="trio",
        backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)},
    )
    check_exactly(scripts, observed, scopes)


# --- scripts ------------------------------------------------------------------------------------


@st.composite
def call_scripts(draw: st.DrawFn) -> CallScript:
    gaps = draw(st.lists(st.integers(1, 4), max_size=10))
    ats = [sum(gaps[: i + 1]) for i in range(len(gaps))]
    ops: list[Op] = []
    for at in ats:
        kind = draw(st.sampled_from(OP_KINDS))
        timer = draw(st.integers(0, len(FRACTIONS) - 1))
        ops.append(Op(at=at, kind=kind, timer=timer, delay=draw(st.integers(0, 8))))
    return CallScript(
        call_sid=draw(st.sampled_from(CALL_SIDS)),
        start=draw(st.integers(0, 20)),
        ops=tuple(ops),
        end=(ats[-1] if ats else 0) + draw(st.integers(1, 10)),
        hangup_timer=draw(st.booleans()),
        explicit_close=draw(st.booleans()),
    )


def random_script(rng: random.Random, spread: int) -> CallScript:
    ats: list[int] = []
    for _ in range(rng.randint(0, 12)):
        ats.append((ats[-1] if ats else 0) + rng.randint(1, 4))
    ops = tuple(
        Op(
            at=at,
            kind=rng.choice(OP_KINDS),
            timer=rng.randrange(len(FRACTIONS)),
            delay=rng.randint(0, 8),
        )
        for at in ats
    )
    return CallScript(
        call_sid=rng.choice(CALL_SIDS),
        start=rng.randint(0, spread),
        ops=ops,
        end=(ats[-1] if ats else 0) + rng.randint(1, 10),
        hangup_timer=rng.random() < 0.5,
        explicit_close=rng.random() < 0.5,
    )


# --- tests --------------------------------------------------------------------------------------


def test_model_of_a_known_script() -> None:
    # t0 armed at 1 for 2.25 s; rebind at 2 makes it stale; t1 armed at 3 fires at 4.5; t2 (the
    # hang-up) armed at 4 fires at 5.75 and ends the call; t1 restarted at 5 is cancelled.
    script = CallScript(
        call_sid="CA1",
        start=0,
        ops=(
            Op(at=1, kind="start", timer=0, delay=2),
            Op(at=2, kind="rebind", timer=0, delay=0),
            Op(at=3, kind="start", timer=1, delay=1),
            Op(at=4, kind="start", timer=2, delay=1),
            Op(at=5, kind="restart", timer=1, delay=3),
            Op(at=7, kind="start", timer=0, delay=0),
        ),
        end=9,
        hangup_timer=True,
        explicit_close=False,
    )
    expected = model(script)
    assert expected.fired == [(1, 4.5), (2, 5.75)]
    assert (expected.armed, expected.cancelled, expected.stale) == (4, 1, 1)
    run_virtual([script])


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.lists(call_scripts(), min_size=25, max_size=25))
def test_interleaved_calls_never_leak_timers(scripts: list[CallScript]) -> None:
    # 40 examples of 25 interleaved calls: 1,000 calls, each checked against the model.
    run_virtual(scripts)


def test_a_thousand_calls_at_once() -> None:
    rng = random.Random(20_240_611)
    scripts = [random_script(rng, spread=120) for _ in range(1_000)]
    run_virtual(scripts)


@pytest.mark.realtime
def test_interleaved_calls_on_asyncio_smoke() -> None:
    rng = random.Random(7)
    scripts = [random_script(rng, spread=10) for _ in range(30)]
    observed, scopes = anyio.run(run_calls, scripts, 0.004, backend="asyncio")
    assert [seen.violations for seen in observed] == [[] for _ in scripts]
    assert len(scopes) == len(scripts)
    assert all(scope.statistics().pending == 0 for scope in scopes)


# --- 10,000 sequential calls --------------------------------------------------------------------


async def one_realistic_call(index: int, log: list[int]) -> CallScope:
    """A short call of one of four kinds; together they use every ready-made timer."""
    async with CallScope(call_sid=f"CA{index}", stream_sid=f"MZ{index}") as scope:
        watchdog = ResponseWatchdog(scope, lambda: log.append(1))
        ladder = IdleLadder(scope, log.append, scope.close)
        ladder.bot_activity()  # the greeting played
        kind = index % 4
        if kind == 0:  # a turn answered in time; the caller hangs up, the ladder is pending
            watchdog.arm()
            await anyio.sleep(1.0)
            watchdog.disarm()
            await anyio.sleep(1.0)
        elif kind == 1:  # a lost turn: the watchdog fires; the caller hangs up
            watchdog.arm()
            await anyio.sleep(4.0)
        elif kind == 2:  # the bot says goodbye; the mark is lost; the fallback hangs up
            HangupFallback(scope, scope.close).arm()
            await anyio.sleep_forever()
        else:  # a tool call, then silence: the ladder prompts twice and hangs up
            ladder.pause()
            await anyio.sleep(20.0)
            ladder.resume()
            await anyio.sleep_forever()
    return scope


def test_ten_thousand_sequential_calls_leave_nothing_behind() -> None:
    calls = 10_000
    warm_up = 1_000
    traced = 1_000  # tracemalloc makes trio several times slower: trace the last calls only

    async def main() -> tuple[int, int, int, int]:
        log: list[int] = []
        leftovers = 0
        baseline = len(anyio.get_running_tasks())
        objects_before = 0
        for index in range(calls):
            if index == warm_up:
                gc.collect()
                objects_before = len(gc.get_objects())
            if index == calls - traced:
                gc.collect()
                tracemalloc.start()
            scope = await one_realistic_call(index, log)
            log.clear()
            stats = scope.statistics()
            leftovers += stats.pending + stats.tasks + len(anyio.get_running_tasks()) - baseline
            assert stats.armed == stats.fired + stats.cancelled + stats.suppressed_total, stats
            del scope
        gc.collect()
        # Bytes allocated while tracing and still alive: an upper bound of the growth.
        traced_growth = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        gc.collect()
        return leftovers, baseline, traced_growth, len(gc.get_objects()) - objects_before

    try:
        leftovers, baseline, growth, more_objects = anyio.run(
            main,
            backend="trio",
            backend_options={"clock": trio.testing.MockClock(autojump_threshold=0)},
        )
    finally:
        tracemalloc.stop()
    assert leftovers == 0
    assert baseline >= 1
    # About 20 kB when nothing leaks (allocator and interpreter caches); one leaked object a call
    # shows as about 60 kB over the traced calls.
    assert growth < 48 * 1024, f"memory grew by {growth} bytes over {traced} calls"
    # A leaked object a call would show as 9,000 objects.
    assert more_objects < 500, f"{more_objects} more objects after {calls - warm_up} calls"
