"""One server across cores: ``voiceguard serve --workers 2`` counts as one server.

Every worker's ``/metrics`` shows the whole server's metrics, moving as the guards decide (not
when a call ends); ``--max-calls`` and ``/healthz`` are the whole server's, admission included,
atomically across processes; a worker that dies leaves the live counts. The server runs as a
user starts it (a subprocess), the model is the project's ``RealtimeSimulator`` behind
``ModelRouter`` and each call a ``CallerSimulator``, on 127.0.0.1. A scrape's worker is known by
asking ``/healthz`` (which names the worker's pid) on the same connection.

In-process: a decision counter of ``create_app`` moves while its call runs, and over every
scenario of the library (in virtual time) the live counts end where the end-of-call counting
they replace ended.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator, Mapping
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
import httpx
import pytest
import trio.testing
import websockets.asyncio.client
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from server_harness import API_KEY, ModelRouter, ServerProcess

from voiceguard import MediaHandler
from voiceguard.decisions import Reason, Verdict
from voiceguard.protocol import StreamStarted
from voiceguard.runtime.handler import CallSummary
from voiceguard.server import ServerConfig, create_app, serving
from voiceguard.server.capacity import SharedCalls
from voiceguard.server.metrics import ServerMetrics
from voiceguard.sim import SCENARIOS, ConnectModel, run_scenario
from voiceguard.sim.caller import CallerSimulator, CallRecord, HangUp, Speak
from voiceguard.sim.realtime import RealtimeSimulator, Reply
from voiceguard.transports import Transport, TransportClosed
from voiceguard.transports.production import RealtimeConnection

pytestmark = pytest.mark.anyio

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
GREETING = Reply(text="Hello, how can I help?", duration=0.8)
ANSWER = Reply(text="We are open from nine to five.", duration=0.8)
CALLS = 6  # the server's --max-calls, and the calls that fill it
STARTED = ("voiceguard_calls_started_total", ())
ACTIVE = ("voiceguard_calls_active", ())
GREETED = (
    "voiceguard_guard_decisions_total",
    (("guard", "response_create_guard"), ("reason", "FORCED_GREETING"), ("verdict", "ALLOW")),
)
CREATES_SENT = ("voiceguard_creates_total", (("outcome", "sent"),))
AT_CAPACITY = (
    "voiceguard_requests_refused_total",
    (("endpoint", "/media-stream"), ("reason", "capacity")),
)


@pytest.fixture
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn); so do its tests (but the one in virtual time).

    No fixture here outlives its test: anyio runs every test on the event loop a longer-lived
    async fixture holds, whatever backend the test asks for.
    """
    return "asyncio"


def parse(text: str) -> Samples:
    """Every sample of a Prometheus text page, by name and sorted labels."""
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


class WorkerConnection:
    """A keep-alive HTTP/1.1 connection to the server, which stays with the worker that
    accepted it: its ``/healthz`` names the worker (blocking: call it in a thread)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self._buffer = b""
        _, health = self.get("/healthz")
        self.pid = int(health["worker"]["pid"])

    def get(self, path: str) -> tuple[int, Any]:
        """The status and body (JSON, or a Prometheus page parsed) of ``GET path``."""
        self.sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        while b"\r\n\r\n" not in self._buffer:
            self._receive()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        status_line, *fields = head.decode("latin-1").split("\r\n")
        length = next(
            int(f.split(":")[1]) for f in fields if f.lower().startswith("content-length")
        )
        self._buffer = rest
        while len(self._buffer) < length:
            self._receive()
        body, self._buffer = self._buffer[:length], self._buffer[length:]
        text = body.decode()
        return int(status_line.split()[1]), parse(text) if path == "/metrics" else json.loads(text)

    def _receive(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        self._buffer += data


async def connected(port: int) -> WorkerConnection:
    return await anyio.to_thread.run_sync(WorkerConnection, port)


@asynccontextmanager
async def each_worker(server: ServerProcess) -> AsyncIterator[dict[int, WorkerConnection]]:
    """A connection to each of the two workers (new connections until both answered)."""
    found: dict[int, WorkerConnection] = {}
    try:
        with anyio.fail_after(10):
            while len(found) < 2:
                connection = await connected(server.port)
                if connection.pid in found:
                    connection.sock.close()
                else:
                    found[connection.pid] = connection
        yield found
    finally:
        for connection in found.values():
            connection.sock.close()


async def scrape(connection: WorkerConnection) -> tuple[int, Any, Samples]:
    """One worker's ``/healthz`` (status, body) and ``/metrics``."""
    status, health = await anyio.to_thread.run_sync(connection.get, "/healthz")
    _, page = await anyio.to_thread.run_sync(connection.get, "/metrics")
    return status, health, page


async def stream_on(server: ServerProcess, pid: int | None = None) -> tuple[int, Transport]:
    """A media stream accepted by worker *pid* (any worker if None): the upgrade goes on a
    connection whose ``/healthz`` that worker answered."""
    with anyio.fail_after(10):
        while True:
            connection = await connected(server.port)
            if pid is None or connection.pid == pid:
                break
            connection.sock.close()
    ws = await websockets.asyncio.client.connect(
        server.media_url, sock=connection.sock, compression=None, open_timeout=5
    )
    return connection.pid, RealtimeConnection(ws)


async def refused(server: ServerProcess, pid: int) -> tuple[int, str]:
    """A media stream (with a start) accepted by worker *pid*: its close code and reason."""
    _, stream = await stream_on(server, pid)
    stream_sid = "MZ" + "f" * 32
    start = {
        "event": "start",
        "sequenceNumber": "1",
        "streamSid": stream_sid,
        "start": {
            "accountSid": "AC" + "0" * 32,
            "streamSid": stream_sid,
            "callSid": "CA" + "f" * 32,
            "tracks": ["inbound"],
            "customParameters": {},
            "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
        },
    }
    with anyio.fail_after(5):
        with suppress(TransportClosed):  # a full server closes at once, or at the start
            await stream.send(json.dumps(start))
        with pytest.raises(TransportClosed) as closed:
            await stream.receive()
    await stream.aclose()
    return closed.value.code, closed.value.reason


@asynccontextmanager
async def calls_running(
    server: ServerProcess, per_worker: int, *, speak_at: float, hang_up_at: float
) -> AsyncIterator[list[CallRecord]]:
    """*per_worker* calls on each of the two workers, in progress for the block; their records
    as they end."""
    records: list[CallRecord] = []

    async def one(stream: Transport, seed: int) -> None:
        caller = CallerSimulator(
            script=[Speak(at=speak_at, duration=0.5), HangUp(at=hang_up_at)], seed=seed
        )
        with anyio.fail_after(hang_up_at + 10):
            records.append(await caller.run(stream))

    async with anyio.create_task_group() as tg:
        placed: Counter[int] = Counter()
        with anyio.fail_after(20):
            while placed.total() < 2 * per_worker:
                pid, stream = await stream_on(server)
                if placed[pid] == per_worker:
                    await stream.aclose()  # that worker has its calls
                    continue
                placed[pid] += 1
                tg.start_soon(one, stream, placed.total())
        yield records


@pytest.fixture
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


@pytest.fixture
async def server(router: ModelRouter, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    args = ["--realtime-url", router.url, "--workers", "2", "--max-calls", str(CALLS)]
    args += ["--request-timeout", "1"]  # a silent connection is closed at the edge in 1 s
    async with ServerProcess.running(args, log_dir=tmp_path) as running:
        yield running


# ---------------------------------------------------------------------------------------------
# voiceguard serve --workers 2


async def test_every_worker_shows_the_whole_server_while_the_calls_run(
    server: ServerProcess, router: ModelRouter
) -> None:
    simulator = router.use(RealtimeSimulator(replies=[GREETING, ANSWER], audio_speed=8.0))
    assert "(2 workers, up to 6 calls)" in server.output()
    assert "workers share: " in server.output()
    async with calls_running(server, CALLS // 2, speak_at=4.0, hang_up_at=5.0) as records:
        async with each_worker(server) as workers:
            (first, second) = workers.values()
            with anyio.fail_after(5):  # every call started and greeted
                while (await scrape(first))[2].get(GREETED, 0) < CALLS:
                    await anyio.sleep(0.05)
            # Each worker has half the calls; each shows the whole server's calls and
            # decisions (as they were made: the calls go on), and says the server is full.
            for _ in range(10):
                for worker in (first, second):
                    status, health, page = await scrape(worker)
                    assert page[STARTED] == CALLS, (worker.pid, page[STARTED])
                    assert page[ACTIVE] == CALLS, (worker.pid, page[ACTIVE])
                    assert page[GREETED] == CALLS, worker.pid
                    assert page[CREATES_SENT] == CALLS, worker.pid
                    assert status == 503, (worker.pid, health)
                    assert health["status"] == "full"
                    assert health["active_calls"] == CALLS and health["max_calls"] == CALLS
                    assert health["worker"] == {
                        "pid": worker.pid,
                        "active_calls": CALLS // 2,
                        "pending_streams": 0,
                    }
            # A stream more is refused by either worker, though neither is full by itself.
            for worker in (first, second):
                assert await refused(server, worker.pid) == (1013, f"at capacity ({CALLS} calls)")
            assert (await scrape(first))[2][AT_CAPACITY] == 2
        assert not records  # all of it while the calls ran
    assert [record.ended_by for record in records] == ["caller"] * CALLS
    assert all(record.protocol_errors == [] for record in records)

    # After the calls: no call in progress on either worker, and each counted once.
    ended = ("voiceguard_calls_ended_total", (("reason", "twilio stop"),))
    async with each_worker(server) as workers:
        with anyio.fail_after(5):
            while (await scrape(next(iter(workers.values()))))[2].get(ended, 0) < CALLS:
                await anyio.sleep(0.05)
        for _ in range(10):
            for worker in workers.values():
                status, health, page = await scrape(worker)
                assert page[ACTIVE] == 0, worker.pid
                assert page[STARTED] == CALLS and page[ended] == CALLS, worker.pid
                assert page[CREATES_SENT] == 2 * CALLS, worker.pid  # greeting and answer
                assert status == 200 and health["active_calls"] == 0, health
    stats = simulator.statistics()
    assert stats.errors_total == 0, stats.errors_by_code
    assert stats.connections_total == CALLS

    # Connections that never send a request, closed at the edge, are the server's count too.
    silent = [await anyio.connect_tcp("127.0.0.1", server.port) for _ in range(4)]
    no_request = ("voiceguard_connections_closed_total", (("reason", "no request"),))
    async with each_worker(server) as workers:
        with anyio.fail_after(5):
            while (await scrape(next(iter(workers.values()))))[2][no_request] < 4:
                await anyio.sleep(0.1)
        for worker in workers.values():
            assert (await scrape(worker))[2][no_request] == 4, worker.pid
    for connection in silent:
        await connection.aclose()


async def test_a_dead_worker_leaves_the_live_counts(router: ModelRouter, tmp_path: Path) -> None:
    router.use(RealtimeSimulator(replies=[GREETING], audio_speed=8.0))
    args = ["--realtime-url", router.url, "--workers", "2", "--max-calls", "4"]
    async with (
        ServerProcess.running(args, log_dir=tmp_path) as server,
        calls_running(server, 2, speak_at=5.5, hang_up_at=6.0) as records,
    ):
        async with each_worker(server) as workers:
            with anyio.fail_after(5):
                while (await scrape(next(iter(workers.values()))))[2].get(ACTIVE, 0) < 4:
                    await anyio.sleep(0.05)
            victim, survivor = workers
        os.kill(victim, signal.SIGKILL)  # with its two calls
        # uvicorn's supervisor notices and starts another worker; ours forgets the dead one:
        # its calls leave the gauge and the limit (they are over: its sockets closed with it).
        with anyio.fail_after(10):
            while True:
                _, (status, health), page = await scrape_any(server)
                if page[ACTIVE] == 2 and health["active_calls"] == 2:
                    break
                await anyio.sleep(0.05)
        assert status == 200
        assert page[STARTED] == 4  # a dead worker's counters stay in the totals
        assert f"Child process [{victim}] died" in server.output()
        assert len(records) == 2  # the dead worker's callers were cut
        async with each_worker(server) as workers:
            assert victim not in workers and survivor in workers
            for _ in range(5):
                for worker in workers.values():
                    status, health, page = await scrape(worker)
                    assert page[ACTIVE] == 2 and health["active_calls"] == 2, worker.pid


async def scrape_any(server: ServerProcess) -> tuple[int, tuple[int, Any], Samples]:
    """``/healthz`` and ``/metrics`` of whichever worker takes a new connection."""
    connection = await connected(server.port)
    try:
        status, health, page = await scrape(connection)
    finally:
        connection.sock.close()
    return connection.pid, (status, health), page


def test_admission_is_atomic_across_processes(tmp_path: Path) -> None:
    # Four processes race for ten places; then they die without a word.
    holder = (
        "import sys\n"
        "from voiceguard.server.capacity import SharedCalls\n"
        "calls = SharedCalls(sys.argv[1])\n"
        "print(sum(calls.admit(10) for _ in range(10)), flush=True)\n"
        "sys.stdin.read()\n"
    )
    processes = [
        subprocess.Popen(
            [sys.executable, "-c", holder, str(tmp_path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    try:
        taken = [int(process.stdout.readline()) for process in processes if process.stdout]
        assert sum(taken) == 10, taken
        here = SharedCalls(tmp_path)
        assert here.totals().calls == 10
        assert not here.admit(10)
    finally:
        for process in processes:
            process.communicate(timeout=10)
    # Their files are left behind; the next reading drops the processes that are gone.
    assert here.totals().calls == 0
    assert here.admit(10)
    here.close()


# ---------------------------------------------------------------------------------------------
# In process: one app


async def test_a_decision_is_counted_while_its_call_runs() -> None:
    async with ModelRouter.running() as router:
        router.use(RealtimeSimulator(replies=[GREETING, ANSWER], audio_speed=8.0))
        app = create_app(ServerConfig(realtime_url=router.url, api_key=API_KEY, max_calls=2))
        async with serving(app) as port:
            records: list[CallRecord] = []
            base = f"http://127.0.0.1:{port}"
            async with httpx.AsyncClient(base_url=base) as http, anyio.create_task_group() as tg:

                async def one() -> None:
                    caller = CallerSimulator(script=[Speak(at=1.5, duration=0.5), HangUp(at=3.0)])
                    records.append(await caller.call(f"ws://127.0.0.1:{port}/media-stream"))

                tg.start_soon(one)
                with anyio.fail_after(5):  # the greeting's create, while the call runs
                    while (page := parse((await http.get("/metrics")).text)).get(GREETED) != 1:
                        await anyio.sleep(0.02)
                assert not records
                assert page[ACTIVE] == 1 and page[CREATES_SENT] == 1
                assert not any(name == "voiceguard_calls_ended_total" for name, _ in page)
                health = (await http.get("/healthz")).json()
                assert health == {  # one app, as before: no worker fields
                    "status": "ok",
                    "active_calls": 1,
                    "max_calls": 2,
                    "pending_streams": 0,
                }
                with anyio.fail_after(5):  # the answer's create, still within the call
                    while (page := parse((await http.get("/metrics")).text))[CREATES_SENT] < 2:
                        await anyio.sleep(0.02)
                assert not records
            (record,) = records
            assert record.ended_by == "caller"
            async with httpx.AsyncClient(base_url=base) as http:
                with anyio.fail_after(5):  # counted once both sockets closed
                    while (page := parse((await http.get("/metrics")).text))[ACTIVE]:
                        await anyio.sleep(0.02)
    assert page[CREATES_SENT] == 2  # not counted again at the end
    assert page["voiceguard_calls_ended_total", (("reason", "twilio stop"),)] == 1


# ---------------------------------------------------------------------------------------------
# The live counts end where the end-of-call counts ended


def counted_at_the_end(summary: CallSummary, refused: Mapping[str, int]) -> Samples:
    """What the end-of-call counting (``ServerMetrics.record`` before the decisions were counted
    as made: everything at the call's end) added for a call, as a Prometheus page shows it."""
    out: Samples = {}

    def add(name: str, labels: Mapping[str, str], value: float) -> None:
        key = (name, tuple(sorted(labels.items())))
        out[key] = out.get(key, 0.0) + value

    ended = summary.ended_by.split(" (")[0]  # the label of the scenarios' ends
    add("voiceguard_calls_ended_total", {"reason": ended}, 1)
    if summary.call_sid is not None:
        add("voiceguard_call_duration_seconds_count", {}, 1)
        add("voiceguard_call_duration_seconds_sum", {}, summary.duration)
    for peer, count in summary.bad_messages.items():
        add("voiceguard_bad_messages_total", {"peer": peer}, count)
    add("voiceguard_bad_messages_total", {"peer": "twilio"}, sum(refused.values()))
    for code, count in summary.model_errors.items():
        add("voiceguard_model_errors_total", {"code": code}, count)

    def decision(guard: str, verdict: Verdict, reason: Reason, count: int) -> None:
        labels = {"guard": guard, "verdict": verdict.value, "reason": reason.value}
        add("voiceguard_guard_decisions_total", labels, count)

    for guard, counts in (
        ("cancel_arbiter", summary.cancels),
        ("response_create_guard", summary.creates),
    ):
        assert counts is not None
        for (verdict, reason), count in counts.by_reason.items():
            decision(guard, verdict, reason, count)
    assert summary.gate is not None
    for reason, count in summary.gate.decisions.items():
        judged = Verdict.ALLOW if reason is Reason.OK else Verdict.SUPPRESS
        decision("calibration_gate", judged, reason, count)
    m = summary.metrics
    assert m is not None
    for name, outcomes in (
        (
            "voiceguard_barge_ins_total",
            {
                "allowed": m.barge_ins_allowed,
                "suppressed": m.barge_ins_suppressed,
                "false_resumed": m.barge_ins_false_resumed,
            },
        ),
        ("voiceguard_cancels_total", {"sent": m.cancels_sent, "suppressed": m.cancels_suppressed}),
        (
            "voiceguard_creates_total",
            {"sent": m.creates_sent, "deferred": m.creates_deferred, "dropped": m.creates_dropped},
        ),
        (
            "voiceguard_timers_total",
            {"armed": m.timers_armed, "fired": m.timers_fired, "suppressed": m.timers_suppressed},
        ),
    ):
        for outcome, count in outcomes.items():
            add(name, {"outcome": outcome}, count)
    add("voiceguard_truncations_total", {}, m.truncations)
    add("voiceguard_truncation_unheard_ms_count", {}, len(m.unheard_at_truncation_ms))
    add("voiceguard_truncation_unheard_ms_sum", {}, sum(m.unheard_at_truncation_ms))
    add("voiceguard_barge_in_reaction_seconds_count", {}, len(m.barge_in_reaction))
    add("voiceguard_barge_in_reaction_seconds_sum", {}, sum(m.barge_in_reaction))
    return {key: value for key, value in out.items() if value}


def what_moved(metrics: ServerMetrics) -> Samples:
    """The samples of *metrics* that are not 0 (buckets and timestamps left out, and the
    connections closed at the edge: the process's, moved by whatever test ran before)."""
    page = parse(generate_latest(metrics.registry).decode())
    return {
        (name, labels): value
        for (name, labels), value in page.items()
        if value
        and not name.endswith(("_created", "_bucket"))
        and name != "voiceguard_connections_closed_total"
    }


def deferrals_of_the_gate(samples: Samples) -> Iterator[tuple[str, tuple[tuple[str, str], ...]]]:
    for name, labels in samples:
        if ("guard", "calibration_gate") in labels and ("verdict", "DEFER") in labels:
            yield name, labels


@pytest.mark.parametrize(
    "anyio_backend",
    [pytest.param(("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)}), id="trio")],
)
@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_the_live_counts_end_where_the_end_of_call_counts_did(name: str) -> None:
    scenario = SCENARIOS[name]
    calls: list[tuple[CallSummary, Samples, Samples]] = []

    async def bridge(twilio: Transport, connect_model: ConnectModel) -> None:
        @asynccontextmanager
        async def connect(_start: StreamStarted) -> AsyncIterator[Transport]:
            async with connect_model() as model:
                yield model

        metrics = ServerMetrics()  # one per call: the call's own counts
        summary = await MediaHandler(twilio, connect, on_decision=metrics.decided).run()
        before_the_end = what_moved(metrics)
        metrics.record(summary, {})
        calls.append((summary, before_the_end, what_moved(metrics)))

    with anyio.fail_after(600):
        run = await run_scenario(scenario, bridge)
    assert run.violations() == ()
    assert len(calls) == scenario.calls
    for summary, before_the_end, live in calls:
        m = summary.metrics
        assert m is not None
        # Before the call's end was counted, every decision of its guards was: as its summary
        # counts them (and as the logs name them), with the outcomes they move.
        assert {
            (labels[0][1], labels[2][1], labels[1][1]): value  # guard, verdict, reason
            for (sample, labels), value in before_the_end.items()
            if sample == "voiceguard_guard_decisions_total"
        } == {
            (guard, verdict.value, reason.value): count
            for (guard, verdict, reason), count in m.decisions.items()
        }
        outcomes = {
            ("voiceguard_barge_ins_total", "allowed"): m.barge_ins_allowed,
            ("voiceguard_barge_ins_total", "suppressed"): m.barge_ins_suppressed,
            ("voiceguard_cancels_total", "sent"): m.cancels_sent,
            ("voiceguard_cancels_total", "suppressed"): m.cancels_suppressed,
            ("voiceguard_creates_total", "sent"): m.creates_sent,
            ("voiceguard_creates_total", "deferred"): m.creates_deferred,
            ("voiceguard_creates_total", "dropped"): m.creates_dropped,
        }
        for (sample, outcome), count in outcomes.items():
            assert before_the_end.get((sample, (("outcome", outcome),)), 0) == count
        assert not any(sample == "voiceguard_calls_ended_total" for sample, _ in before_the_end)
        # The totals at the end are those the end-of-call counting gave, but for the barge-in
        # gate's deferrals ("not yet, ask again"), which it did not count.
        deferrals = set(deferrals_of_the_gate(live))
        assert {key: value for key, value in live.items() if key not in deferrals} == (
            pytest.approx(counted_at_the_end(summary, {}))
        )
