"""Soak: many calls through the reference handler, one after another and all at once.

In virtual time (trio's MockClock, in-memory transports) the handler plays a rotating mix of calls
(a question and its answer, a barge-in, a goodbye with ``end_call``, an echoing line). Every call
must keep the architecture page's invariants (zero protocol errors at the model and at Twilio, no
call cut by another, no false barge-in, no truncate past what was heard, silence after a clear, no
timer left pending); after the run no task, timer or connection of any call is left, every handler
and call scope has been freed, and the process's resident memory grew by a bounded amount.

In real time, calls go over real sockets through ``voiceguard serve``; afterwards the server has no
call running and no more open file descriptors than before.

CI runs a reduced size; the full soak (2,000 sequential calls, two waves of 200 concurrent calls,
and 200 real-time calls through the server) is documented in docs/faults.md::

    VOICEGUARD_SOAK=full pytest tests/test_soak.py -s
"""

from __future__ import annotations

import contextlib
import gc
import os
import weakref
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Final

import anyio
import pytest
import trio
import trio.testing
from server_harness import ModelRouter, ServerProcess

from voiceguard.demo.measures import cut_by_another_call as _cut_by_another_call
from voiceguard.protocol import StreamStarted
from voiceguard.runtime.handler import CallSummary, MediaHandler
from voiceguard.runtime.scope import CallScope
from voiceguard.sim.caller import CallerSimulator, CallRecord, EchoPath, HangUp, Speak
from voiceguard.sim.measures import false_barge_ins, truncations_beyond_heard
from voiceguard.sim.realtime import FunctionCall, RealtimeSimulator, Reply
from voiceguard.sim.scenarios import SCENARIOS, ScenarioRun
from voiceguard.transports import MemoryTransport, Transport, memory_pair

FULL: Final = os.environ.get("VOICEGUARD_SOAK", "") == "full"
SEQUENTIAL: Final = 2000 if FULL else 100
CONCURRENT: Final = 200 if FULL else 30
REAL_TIME_CALLS: Final = 200 if FULL else 12
#: Resident memory a run may add after its warm-up (the first tenth of its calls).
RSS_GROWTH_LIMIT: Final = 32 * 2**20


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def open_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


# ============================================================================================
# The mix of calls


def mix(number: int) -> tuple[RealtimeSimulator, CallerSimulator, str]:
    """Call *number*'s model, caller and the expected end, in a rotating mix of four kinds."""
    kind = number % 4
    seed = number
    if kind == 0:  # a question and its answer
        sim = RealtimeSimulator(
            replies=[Reply(text="Hello!", duration=0.8), Reply(text="Sure.", duration=1.0)],
            seed=seed,
        )
        caller = CallerSimulator(script=[Speak(at=1.4, duration=0.6), HangUp(at=4.6)], seed=seed)
        return sim, caller, "twilio stop"
    if kind == 1:  # the caller talks over a long answer
        sim = RealtimeSimulator(
            replies=[
                Reply(text="Hello!", duration=0.8),
                Reply(text="A long answer.", duration=4.0),
                Reply(text="Of course.", duration=0.8),
            ],
            seed=seed,
        )
        caller = CallerSimulator(
            script=[
                Speak(at=1.4, duration=0.6),
                Speak(after_heard=2.0, duration=1.2, level_dbfs=-15.0),
                HangUp(at=8.0),
            ],
            seed=seed,
        )
        return sim, caller, "twilio stop"
    if kind == 2:  # the bot says goodbye and hangs up
        sim = RealtimeSimulator(
            replies=[
                Reply(text="Hello!", duration=0.8),
                Reply(text="Bye!", duration=0.8, function_call=FunctionCall(name="end_call")),
            ],
            seed=seed,
        )
        caller = CallerSimulator(script=[Speak(at=1.4, duration=0.6), HangUp(at=30.0)], seed=seed)
        return sim, caller, "hang-up: goodbye played"
    # an echoing line during the greeting
    sim = RealtimeSimulator(replies=[Reply(text="Hello, thanks for calling!", duration=2.0)])
    caller = CallerSimulator(
        script=[HangUp(at=3.0)], echo=EchoPath(delay=0.12, return_loss_db=8.0), seed=seed
    )
    return sim, caller, "twilio stop"


class Soak:
    """Runs calls of the mix through the handler and checks each one as it ends."""

    def __init__(self) -> None:
        self.ended: list[str] = []
        self.freed: list[weakref.ref[Any]] = []

    async def call(self, number: int) -> None:
        sim, caller, expected_end = mix(number)
        caller_end, bot_end = memory_pair(latency=0.02, names=("caller", "bot"))

        @contextlib.asynccontextmanager
        async def connect(start: StreamStarted) -> AsyncIterator[Transport]:
            async with sim.connect(latency=0.0251) as model:
                yield model

        handler = MediaHandler(bot_end, connect)
        self.freed.append(weakref.ref(handler))
        summaries: list[CallSummary] = []
        records: list[CallRecord] = []

        async def run_handler() -> None:
            summaries.append(await handler.run())

        async def run_caller() -> None:
            records.append(await caller.run(caller_end))

        async with anyio.create_task_group() as tg:
            tg.start_soon(run_handler)
            tg.start_soon(run_caller)
        (summary,) = summaries
        (record,) = records
        self.check(number, summary, record, sim, bot_end=bot_end, expected_end=expected_end)

    def check(
        self,
        number: int,
        summary: CallSummary,
        record: CallRecord,
        sim: RealtimeSimulator,
        *,
        bot_end: MemoryTransport,
        expected_end: str,
    ) -> None:
        where = f"call {number}"
        stats = sim.statistics()
        own = sim.connections
        assert summary.ended_by == expected_end, where
        assert stats.errors_by_code == {}, where  # invariants 1 and 2
        assert stats.connections_open == 0, where
        assert bot_end.closed, where
        assert record.protocol_errors == [], where
        assert summary.timers is not None and summary.timers.pending == 0, where  # invariant 3
        assert summary.timers.tasks == 0, where
        assert not _cut_by_another_call(record, own), where  # invariant 3
        assert false_barge_ins(record, own) == 0, where  # invariant 4
        assert truncations_beyond_heard(record, own) == 0, where  # invariant 5
        for cleared_at in record.clears:  # invariant 6
            assert record.heard_between(cleared_at + 0.04, cleared_at + 0.1) <= 0.02, where
        self.ended.append(summary.ended_by)

    def assert_all_freed(self) -> None:
        gc.collect()
        alive = [ref for ref in self.freed if ref() is not None]
        assert alive == [], f"{len(alive)} handlers outlived their calls"
        scopes = [o for o in gc.get_objects() if isinstance(o, CallScope)]
        assert scopes == [], f"{len(scopes)} call scopes outlived their calls"


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


@pytest.mark.anyio
async def test_sequential_calls_leak_nothing() -> None:
    soak = Soak()
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    warm_up = max(SEQUENTIAL // 10, 4)
    rss_after_warm_up = 0
    with anyio.fail_after(SEQUENTIAL * 60):
        for number in range(SEQUENTIAL):
            if number == warm_up:
                gc.collect()
                rss_after_warm_up = resident_bytes()
            await soak.call(number)
    assert len(soak.ended) == SEQUENTIAL
    assert trio.lowlevel.current_statistics().tasks_living == tasks_before
    soak.assert_all_freed()
    growth = resident_bytes() - rss_after_warm_up
    print(f"\nsoak: {SEQUENTIAL} sequential calls; RSS after warm-up +{growth / 2**20:.1f} MiB")
    assert growth < RSS_GROWTH_LIMIT


@pytest.mark.anyio
async def test_concurrent_calls_leak_nothing_and_stay_apart() -> None:
    """Two waves of concurrent calls: the second may not need more memory than the first."""
    soak = Soak()
    tasks_before = trio.lowlevel.current_statistics().tasks_living
    resident: list[int] = []
    with anyio.fail_after(1200):
        for wave in range(2):
            async with anyio.create_task_group() as tg:
                for number in range(wave * CONCURRENT, (wave + 1) * CONCURRENT):
                    tg.start_soon(soak.call, number)
                    await anyio.sleep(0.013)  # staggered, so the calls' events interleave
            assert trio.lowlevel.current_statistics().tasks_living == tasks_before
            soak.assert_all_freed()
            resident.append(resident_bytes())
    assert len(soak.ended) == 2 * CONCURRENT
    growth = resident[1] - resident[0]
    print(
        f"\nsoak: 2 waves of {CONCURRENT} concurrent calls; RSS after the first wave "
        f"{resident[0] / 2**20:.1f} MiB, after the second {growth / 2**20:+.1f} MiB"
    )
    assert growth < RSS_GROWTH_LIMIT


# ============================================================================================
# Real time, real sockets, the real server


@pytest.mark.realtime
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.anyio
async def test_real_time_calls_through_the_server_leave_no_socket(
    anyio_backend: str, tmp_path: Path
) -> None:
    async with (
        ModelRouter.running() as router,
        ServerProcess.running(["--realtime-url", router.url], log_dir=tmp_path) as server,
    ):
        router.use(
            RealtimeSimulator(
                replies=[Reply(text="Hi!", duration=0.6), Reply(text="Sure.", duration=0.6)],
                audio_speed=8.0,
            )
        )
        await server.get("/healthz")  # the server's own sockets and imports are settled
        fds_before = open_fds(server.process.pid)
        records: list[CallRecord] = []

        async def one(number: int) -> None:
            caller = CallerSimulator(
                script=[Speak(after_heard=0.6, duration=0.4), HangUp(at=3.0)], seed=number
            )
            records.append(await caller.call(server.media_url))

        with anyio.fail_after(120 + REAL_TIME_CALLS):
            async with anyio.create_task_group() as tg:
                for number in range(REAL_TIME_CALLS):
                    tg.start_soon(one, number)
                    await anyio.sleep(0.05)
            while router.simulator.statistics().connections_open:
                await anyio.sleep(0.05)
            health = (await server.get("/healthz")).json()
            while health["active_calls"]:
                await anyio.sleep(0.05)
                health = (await server.get("/healthz")).json()
        stats = router.simulator.statistics()
        assert stats.connections_total == REAL_TIME_CALLS
        # A hang-up's last cancel may cross the answer's response.done on a loaded machine:
        # the one race no client can close; any other error is the bridge's.
        run = ScenarioRun(
            scenario=SCENARIOS["cancel-races-done"],
            simulator=router.simulator,
            calls=tuple(records),
            leftover_tasks=0,
        )
        assert run.error_codes(crossed=False) == []
        assert all(record.protocol_errors == [] for record in records)
        assert all(record.ended_by == "caller" for record in records)
        unheard = [round(r.heard_seconds, 2) for r in records if r.heard_seconds <= 0.3]
        assert unheard == [], "calls in which the greeting was not heard"
        metrics = (await server.get("/metrics")).text
        assert f'voiceguard_calls_ended_total{{reason="twilio stop"}} {REAL_TIME_CALLS}.0' in (
            metrics
        )
        # The server closes the connections of the last HTTP requests as they finish; a leaked
        # socket never closes.
        with anyio.move_on_after(10):
            while open_fds(server.process.pid) > fds_before:
                await anyio.sleep(0.05)
        assert open_fds(server.process.pid) <= fds_before
