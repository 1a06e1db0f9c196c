"""``voiceguard demo``'s orchestration: every scenario through both bridges, side by side.

With no API key and no network, the demo starts everything on 127.0.0.1: one
:class:`~voiceguard.sim.realtime.RealtimeSimulator` per scenario run, the reference server
(:func:`~voiceguard.server.create_app`, under uvicorn) as the guarded bridge, a
:class:`~voiceguard.demo.NaiveBridge` (written like the popular Twilio sample) as the
counter-example, and :class:`~voiceguard.sim.caller.CallerSimulator` callers. It plays every
scenario of :data:`~voiceguard.sim.scenarios.SCENARIOS` through both bridges at once, in real time
over real sockets, measures what each bridge did to the calls
(:class:`~voiceguard.demo.BridgeMeasures`) and prints them side by side
(:meth:`~voiceguard.demo.DemoReport.render`).

Run it with ``voiceguard demo``; from Python, ``report = await run_demo()``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import importlib
import json
import os
import time
from collections.abc import Callable, MutableMapping, Sequence
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, final

import anyio

from voiceguard.demo.bridges import NaiveBridge
from voiceguard.demo.measures import BRIDGES, RunOutcome
from voiceguard.demo.report import DemoReport
from voiceguard.demo.runs import CALL_PARAMETER, DEMO_HOST, CallRouter, DemoRun
from voiceguard.protocol import PHONES, PhoneDialect, StreamStarted, phone_dialect
from voiceguard.protocol._dialect import DialectTransport
from voiceguard.sim.caller import CallRecord
from voiceguard.sim.scenarios import SCENARIOS, ScenarioRun
from voiceguard.transports import NORMAL_CLOSURE, Transport, TransportClosed

if TYPE_CHECKING:
    from voiceguard.demo.bridges import guarded_bridge
    from voiceguard.demo.command import add_demo_command
    from voiceguard.demo.measures import BridgeMeasures
    from voiceguard.transports.websocket import WebSocketTransport

__all__ = (
    "MAX_REPETITIONS",
    "BridgeMeasures",
    "DemoReport",
    "NaiveBridge",
    "RunOutcome",
    "add_demo_command",
    "guarded_bridge",
    "run_demo",
)

#: ``--calls`` allows 1 to this many repetitions of each scenario.
MAX_REPETITIONS: Final = 20
#: Seconds each bridge gets after a run's last call to finish its work for the run's calls.
_GRACE: Final = 8.0
#: Seconds between the starts of two runs of the first batch.
_STAGGER: Final = 0.1
#: Runs played at the same time; more would overload the one event loop, and its lag would
#: show as the bridges' faults (20 at once on a loaded 2-core machine made the guarded bridge
#: miss a barge-in; 10 did not). The default demo (10 scenarios, 2 bridges) is two batches.
_CONCURRENT_RUNS: Final = 10
#: Names this module held before the demo was split by concern, and the modules that hold them
#: now (looked up lazily: ``voiceguard.demo.command`` imports this module).
_MOVED: Final = {
    "BridgeMeasures": "voiceguard.demo.measures",
    "add_demo_command": "voiceguard.demo.command",
    "guarded_bridge": "voiceguard.demo.bridges",
}

#: An ASGI application (what :func:`~voiceguard.server.create_app` returns is one).
_Asgi = Callable[
    [MutableMapping[str, Any], Callable[[], Any], Callable[[MutableMapping[str, Any]], Any]], Any
]


def _start_key(text: object, dialect: PhoneDialect = PHONES["twilio"]) -> str | None:
    """The routing key in the ``start`` message (in *dialect*'s words; Vonage's is its first
    message, ``websocket:connected``), or None for any other message."""
    if not isinstance(text, str):
        return None
    if dialect.line is not None:
        started = [m for m in dialect.line(False).incoming(text) if '"start"' in m]
        if not started:
            return None
        text = started[0]
    if '"start"' not in text:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        return None
    if isinstance(data, dict) and not dialect.is_twilio and dialect.line is None:
        data = dialect.from_phone(data)
    if not isinstance(data, dict) or data.get("event") != "start":
        return None
    start = data.get("start")
    params = start.get("customParameters") if isinstance(start, dict) else None
    key = params.get(CALL_PARAMETER) if isinstance(params, dict) else None
    return key if isinstance(key, str) else None


@final
class _Tap:
    """The naive bridge's end of a media stream: passes everything through and notes the call's
    routing key when Twilio's ``start`` goes by."""

    __slots__ = ("_calls", "_inner", "key")

    def __init__(self, inner: Transport, calls: CallRouter) -> None:
        self._inner = inner
        self._calls = calls
        self.key: str | None = None

    async def send(self, message: str) -> None:
        await self._inner.send(message)

    async def receive(self) -> str:
        text = await self._inner.receive()
        if self.key is None and (key := _start_key(text)) is not None:
            self.key = key
            self._calls.started(key)
        return text

    def __aiter__(self) -> _Tap:
        return self

    async def __anext__(self) -> str:
        try:
            return await self.receive()
        except TransportClosed:
            raise StopAsyncIteration from None

    async def aclose(self, code: int = NORMAL_CLOSURE, reason: str = "") -> None:
        await self._inner.aclose(code, reason)

    async def abort(self) -> None:
        await self._inner.abort()


def _naive_handler(
    calls: CallRouter, dialect: PhoneDialect = PHONES["twilio"]
) -> Callable[[WebSocketTransport], Any]:
    """The naive side's server: one :class:`NaiveBridge` shared by every call, as in the sample
    (in another phone provider's words, the same sample ported word for word)."""

    def fallback(owner: Transport, victim: Transport) -> None:
        # Whose leaked timer hung up which call: the report names the owner's scenario.
        if isinstance(owner, _Tap) and isinstance(victim, _Tap) and owner.key and victim.key:
            calls.cut(victim.key, owner.key)

    naive = NaiveBridge(on_fallback=fallback)

    async def handle(websocket: WebSocketTransport) -> None:
        phone = websocket if dialect.is_twilio else DialectTransport(websocket, dialect)
        tap = _Tap(phone, calls)
        try:
            await naive(tap, lambda: calls.connect_model(tap.key or ""))
        finally:
            if tap.key is not None:
                calls.finished(tap.key)

    return handle


def _guarded_app(calls: CallRouter, trace_dir: str | None = None, phone: str = "twilio") -> _Asgi:
    """The reference server's app, each call's model routed to its run's simulator."""
    from voiceguard.server import ServerConfig, create_app  # noqa: PLC0415 - the server extra

    def connect(start: StreamStarted) -> AbstractAsyncContextManager[Transport]:
        return calls.connect_model(start.custom_parameters.get(CALL_PARAMETER, ""))

    # The demo's audio is synthetic, so its traces keep it: they can be replayed.
    config = ServerConfig(max_calls=10_000, trace_dir=trace_dir, trace_audio=True, phone=phone)
    app: _Asgi = create_app(config, connect_model=connect)

    async def counted(
        scope: MutableMapping[str, Any],
        receive: Callable[[], Any],
        send: Callable[[MutableMapping[str, Any]], Any],
    ) -> None:
        # Notes when the server's work for a call starts and ends, for the run's bookkeeping.
        if scope.get("type") != "websocket":
            await app(scope, receive, send)
            return
        key: str | None = None

        async def tap() -> Any:
            nonlocal key
            message = await receive()
            if key is None and message.get("type") == "websocket.receive":
                key = _start_key(message.get("text"), config.phone_dialect)
                if key is not None:
                    calls.started(key)
            return message

        try:
            await app(scope, tap, send)
        finally:
            if key is not None:
                calls.finished(key)

    return counted


async def _play(run: DemoRun, media_url: str, phone: str = "twilio") -> RunOutcome:
    """Make the run's calls to the bridge at *media_url*; measure what the bridge did."""
    scenario = run.scenario
    records: list[CallRecord] = []
    async with run.simulator.running(host=DEMO_HOST) as address:
        run.port = address.port
        started_at = anyio.current_time()
        for number in range(scenario.calls):
            if number:
                await anyio.sleep(scenario.between_calls)
            records.append(await run.caller(number, phone=phone).call(media_url))
        with anyio.move_on_after(_GRACE):
            while run.running or run.simulator.statistics().connections_open:
                await anyio.sleep(0.05)
        # Measured before the simulator stops: it closes every connection when it stops.
        played = ScenarioRun(
            scenario=scenario,
            simulator=run.simulator,
            calls=tuple(records),
            leftover_tasks=run.running,
            started_at=started_at,
        )
        return run.measure(played)


async def run_demo(
    scenarios: Sequence[str] | None = None,
    *,
    repetitions: int = 1,
    seed: int = 0,
    progress: Callable[[RunOutcome, int, int], object] | None = None,
    trace_dir: str | os.PathLike[str] | None = None,
    phone: str = "twilio",
) -> DemoReport:
    """Play scenarios through the naive bridge and the guarded reference server, side by side.

    Everything runs in this event loop, on 127.0.0.1, in real time: the reference server
    (:func:`~voiceguard.server.create_app` under uvicorn), a :class:`NaiveBridge` served with
    :func:`~voiceguard.transports.websocket.serve_websocket`, and for each run a
    :class:`~voiceguard.sim.realtime.RealtimeSimulator` of its own and the scenario's callers.
    Up to 10 runs (each scenario through each bridge, each repetition) are played at the same
    time, so the default demo (20 runs) takes about as long as two of its longest scenarios
    (about 30 s); more runs wait for a free slot (``repetitions=N`` takes about *N* times as
    long). The callers
    carry a routing key in ``start.customParameters``, which both bridges' model connections use
    to reach their run's simulator.

    Needs the asyncio backend (uvicorn) and ``pip install 'voiceguard[server]'``.

    Args:
        scenarios: Names from :data:`~voiceguard.sim.scenarios.SCENARIOS`; None plays them all.
        repetitions: How many times each scenario is played through each bridge, 1 to 20.
        seed: Varies the generated audio, line noise and ids; repetition *r* uses ``seed + r``.
            0 plays the scenarios exactly as defined.
        progress: Called as ``progress(outcome, done, total)`` after each run.
        trace_dir: Write a trace of each guarded call there, with its audio (see
            :mod:`voiceguard.observe.trace`), named ``<scenario>-<call>.jsonl`` (``-r<N>`` added for
            repetition *N* > 0); replay one with ``voiceguard replay``.
        phone: Whose media streams the callers speak, ``"twilio"``, ``"telnyx"``, ``"plivo"``
            or ``"vonage"``: the reference server takes them with ``phone=``, the naive bridge
            through the same translation (its logic unchanged).

    Returns:
        Every run's outcome and each bridge's totals.

    Raises:
        ValueError: On an unknown scenario, a repetition count out of range or an unknown phone
            provider.
        ImportError: Without the server extra.
    """
    chosen = tuple(SCENARIOS) if scenarios is None else tuple(dict.fromkeys(scenarios))
    unknown = [name for name in chosen if name not in SCENARIOS]
    if unknown or not chosen:
        raise ValueError(
            f"scenarios = {list(scenarios or [])!r}; allowed: names from {', '.join(SCENARIOS)}"
        )
    count: object = repetitions  # checked as what it is: callers may not be type-checked
    if not (isinstance(count, int) and 1 <= count <= MAX_REPETITIONS):
        raise ValueError(
            f"repetitions = {repetitions!r}; allowed: an integer from 1 to {MAX_REPETITIONS}"
        )
    dialect = phone_dialect(phone)
    from voiceguard.server import serving  # noqa: PLC0415 - the server extra
    from voiceguard.transports.websocket import serve_websocket  # noqa: PLC0415 - optional dep

    runs = [
        DemoRun(
            scenario=SCENARIOS[name],
            bridge=bridge,
            repetition=repetition,
            seed=seed,
            number=number,
        )
        for number, (repetition, name, bridge) in enumerate(
            (r, n, b) for r in range(repetitions) for n in chosen for b in BRIDGES
        )
    ]
    calls = CallRouter(runs)
    outcomes: list[RunOutcome | None] = [None] * len(runs)
    done = 0
    limiter = anyio.CapacityLimiter(_CONCURRENT_RUNS)
    began = time.monotonic()

    async def play(index: int, url: str) -> None:
        nonlocal done
        async with limiter:
            if index < _CONCURRENT_RUNS:
                # Staggered starts: twenty calls opening in the same instant would compete for
                # the one event loop in their first, most timing-sensitive seconds (the echo).
                await anyio.sleep(index * _STAGGER)
            outcome = await _play(runs[index], url, dialect.name)
        outcomes[index] = outcome
        done += 1
        if progress is not None:
            progress(outcome, done, len(runs))

    async with anyio.create_task_group() as servers:
        naive_port = await servers.start(
            lambda task_status: serve_websocket(
                _naive_handler(calls, dialect), host=DEMO_HOST, port=0, task_status=task_status
            )
        )
        traces = None if trace_dir is None else Path(trace_dir)
        before = set(traces.glob("*.jsonl")) if traces is not None and traces.is_dir() else set()
        guarded_app = _guarded_app(calls, None if traces is None else str(traces), dialect.name)
        async with serving(guarded_app, host=DEMO_HOST) as guarded_port:
            urls = {
                "naive": f"ws://{DEMO_HOST}:{naive_port}/media-stream",
                "guarded": f"ws://{DEMO_HOST}:{guarded_port}/media-stream",
            }
            async with anyio.create_task_group() as players:
                for index, run in enumerate(runs):
                    players.start_soon(play, index, urls[run.bridge])
        servers.cancel_scope.cancel()
    if traces is not None:
        _name_traces(traces, calls, before)
    return DemoReport(
        scenarios=chosen,
        repetitions=repetitions,
        seed=seed,
        outcomes=tuple(o for o in outcomes if o is not None),
        wall_seconds=time.monotonic() - began,
    )


def _name_traces(directory: Path, calls: CallRouter, before: set[Path]) -> None:
    """Rename the traces written in this demo after their scenario and call number."""
    for path in sorted(set(directory.glob("*.jsonl")) - before):
        key = None
        with path.open(encoding="utf-8") as file:
            for _, line in zip(range(3), file, strict=False):
                record = json.loads(line) if line.strip() else {}
                if isinstance(record, dict) and record.get("k") == "in":
                    key = _start_key(json.dumps(record.get("msg")))
                    break
        if key is None:
            continue
        try:
            run = calls.run_of(key)
        except LookupError:
            continue
        number = key.rpartition(".")[2]
        suffix = f"-r{run.repetition}" if run.repetition else ""
        target = directory / f"{run.scenario.name}-{number}{suffix}.jsonl"
        if not target.exists():
            path.rename(target)


def __getattr__(name: str) -> object:
    if name in _MOVED:
        return getattr(importlib.import_module(_MOVED[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
