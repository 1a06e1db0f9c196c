"""Helpers of the server tests: ``voiceguard serve`` as a subprocess, and a model-side router.

``ServerProcess`` starts ``voiceguard serve`` as a user would (``python -m voiceguard serve``,
port 0, the listening URL read from its output) and kills its whole process group when done.
``ModelRouter`` listens on 127.0.0.1 as the Realtime API and hands each connection to the
``RealtimeSimulator`` a test chooses, so one server process serves tests that need different
scripted models; it also records the headers each connection came with. ``play_scenario`` plays
a scenario of the library against any bridge listening for media streams, in real time, as
``voiceguard call --scenario NAME --check`` plays it, and
``check_scenario_run`` checks its rules and the invariants from the outside.
"""

from __future__ import annotations

import os
import re
import resource
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager, suppress
from pathlib import Path
from typing import Final

import anyio
import anyio.abc
import httpx

from voiceguard.cli import build_parser
from voiceguard.demo.measures import cut_by_another_call
from voiceguard.protocol import PhoneDialect, model_provider
from voiceguard.sim._call.dial import play_plan
from voiceguard.sim._call.plan import plan_calls
from voiceguard.sim._call.report import build_report, render
from voiceguard.sim.caller import CallRecord
from voiceguard.sim.measures import false_barge_ins, truncations_beyond_heard
from voiceguard.sim.realtime import RealtimeSimulator, handshake_refusal
from voiceguard.sim.scenarios import Scenario, ScenarioRun
from voiceguard.transports.websocket import (
    HandshakeRejected,
    WebSocketRequest,
    WebSocketTransport,
    serve_websocket,
)

#: The API key every test server gets; no log line may contain it.
API_KEY: Final = "sk-test-VOICEGUARD-SECRET-0123456789abcdef"
_LISTENING: Final = re.compile(r"listening on http://([0-9.]+):(\d+)")
_START_TIMEOUT: Final = 20.0
_STOP_TIMEOUT: Final = 5.0


class ModelRouter:
    """A Realtime endpoint on 127.0.0.1 that serves each connection with :attr:`simulator`."""

    def __init__(self, provider: str = "openai") -> None:
        self.provider = model_provider(provider)
        self.simulator = RealtimeSimulator(provider=provider)
        self.port = 0
        self.requests: list[WebSocketRequest] = []

    @property
    def url(self) -> str:
        """The provider's endpoint shape, on this router (Azure: a deployment in ``?model=``)."""
        model = {"openai": "gpt-realtime", "azure": "my-realtime", "xai": "grok-voice-latest"}
        path = self.provider.paths[0]
        return f"ws://127.0.0.1:{self.port}{path}?model={model[self.provider.name]}"

    def use(self, simulator: RealtimeSimulator) -> RealtimeSimulator:
        assert simulator.provider == self.provider, "a simulator of the router's provider"
        self.simulator = simulator
        return simulator

    def _accept(self, request: WebSocketRequest) -> None:
        self.requests.append(request)
        refusal = handshake_refusal(self.provider, request.path, request.headers)
        if refusal is not None:
            raise HandshakeRejected(*refusal)

    async def _handle(self, transport: WebSocketTransport) -> None:
        request = transport.request
        assert request is not None
        await self.simulator.serve_connection(transport, path=request.path, headers=request.headers)

    @classmethod
    @asynccontextmanager
    async def running(cls, provider: str = "openai") -> AsyncIterator[ModelRouter]:
        router = cls(provider)
        async with anyio.create_task_group() as tg:
            router.port = await tg.start(
                lambda task_status: serve_websocket(
                    router._handle,
                    host="127.0.0.1",
                    port=0,
                    accept=router._accept,
                    subprotocols=("realtime",),
                    task_status=task_status,
                )
            )
            try:
                yield router
            finally:
                tg.cancel_scope.cancel()


class ServerProcess:
    """A running ``voiceguard serve`` subprocess."""

    def __init__(self, process: subprocess.Popen[bytes], stdout: Path, stderr: Path) -> None:
        self.process = process
        self.stdout_path = stdout
        self.stderr_path = stderr
        self.port = 0

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def media_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/media-stream"

    def output(self) -> str:
        """Everything the server printed and logged so far (stdout, then stderr)."""
        return self.stdout_path.read_text(errors="replace") + self.stderr_path.read_text(
            errors="replace"
        )

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http_url, timeout=5.0) as client:
            return await client.get(path)

    async def post(
        self,
        path: str,
        *,
        data: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.http_url, timeout=5.0) as client:
            if content is not None:
                return await client.post(path, content=content, headers=headers)
            return await client.post(path, data=data, headers=headers)

    async def _wait_listening(self) -> None:
        with anyio.fail_after(_START_TIMEOUT):
            while True:
                match = _LISTENING.search(self.stdout_path.read_text(errors="replace"))
                if match:
                    self.port = int(match.group(2))
                    break
                if self.process.poll() is not None:
                    raise RuntimeError(f"voiceguard serve exited early:\n{self.output()}")
                await anyio.sleep(0.05)
            # The socket listens before the app runs; wait until it answers.
            while True:
                try:
                    if (await self.get("/healthz")).status_code in (200, 503):
                        return
                except httpx.TransportError:
                    pass
                await anyio.sleep(0.05)

    async def stop(self) -> None:
        """Stop the server and every worker it started (its own process group), waiting for it
        without blocking the event loop: a server drains for about two seconds, and the calls
        of the other scenarios played at the same time must go on in real time meanwhile (a
        blocking wait froze their callers and models for as long)."""
        with anyio.CancelScope(shield=True):
            if self.process.poll() is None:
                try:
                    os.killpg(self.process.pid, signal.SIGTERM)
                except ProcessLookupError:
                    return
                await self._exited()
            with suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)
            await self._exited()

    async def _exited(self) -> None:
        """Until the process has exited (and is reaped), or :data:`_STOP_TIMEOUT` passed."""
        with anyio.move_on_after(_STOP_TIMEOUT):
            while self.process.poll() is None:
                await anyio.sleep(0.02)

    @classmethod
    @asynccontextmanager
    async def running(
        cls,
        args: Sequence[str],
        *,
        log_dir: Path,
        env: Mapping[str, str] | None = None,
        max_open_files: int | None = None,
    ) -> AsyncIterator[ServerProcess]:
        environ = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("VOICEGUARD_", "TWILIO_", "OPENAI_", "AZURE_", "XAI_"))
        }
        environ["OPENAI_API_KEY"] = API_KEY
        environ["PYTHONUNBUFFERED"] = "1"
        environ.update(env or {})
        log_dir.mkdir(parents=True, exist_ok=True)
        stdout = log_dir / "stdout.txt"
        stderr = log_dir / "stderr.txt"
        with stdout.open("wb") as out, stderr.open("wb") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "voiceguard", "serve", "--port", "0", *args],
                stdout=out,
                stderr=err,
                env=environ,
                start_new_session=True,
                preexec_fn=None if max_open_files is None else _limit_files(max_open_files),  # noqa: PLW1509 - before any thread
            )
        server = cls(process, stdout, stderr)
        try:
            await server._wait_listening()
            yield server
        finally:
            await server.stop()


def _limit_files(limit: int) -> Callable[[], None]:
    """Set the child's soft and hard limits on open files (it cannot raise them again)."""

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    return limit_files


async def play_scenario(
    scenario: Scenario,
    media_url: str,
    router: ModelRouter,
    *,
    phone: str | PhoneDialect = "twilio",
) -> ScenarioRun:
    """Play *scenario* in real time, its model behind *router*, its callers to *media_url* as
    ``voiceguard call URL --scenario NAME --check`` plays them (the command's own parser, plan,
    calls and report); what the command judged from the caller's side must hold too. A
    *phone* dialect of one's own (a Vonage caller at 16 kHz) replaces the named one's."""
    simulator = router.use(scenario.simulator_for(router.provider.name))
    name = phone if isinstance(phone, str) else phone.name
    argv = ["call", media_url, "--scenario", scenario.name, "--check", "--phone", name]
    args = build_parser().parse_args(argv)
    plan = plan_calls(args)
    if not isinstance(phone, str):
        for caller in plan.callers:
            caller.phone = phone
    started = anyio.current_time()
    records: list[CallRecord] = []
    with anyio.fail_after(90):
        await play_plan(plan, records)
        # The bridge closes the model connection right after the phone's.
        while simulator.statistics().connections_open:
            await anyio.sleep(0.02)
    report = build_report(plan, records, anyio.current_time() - started)
    assert report["check"] is not None
    broken = [verdict for verdict in report["check"]["rules"] if verdict["held"] is False]
    assert broken == [], f"voiceguard call --check, {scenario.name}: {broken}"
    shown = render(report)
    assert report["ok"], f"voiceguard call, {scenario.name}: {shown}"
    assert f"scenario {scenario.name}" in shown
    return ScenarioRun(
        scenario=scenario,
        simulator=simulator,
        calls=tuple(records),
        leftover_tasks=0,
        started_at=started,
    )


def check_scenario_run(run: ScenarioRun) -> None:
    """The scenario's rules and the invariants, checked from the outside, call by call."""
    broken = run.violations()
    assert broken == (), f"{run.scenario.name}: {broken}"
    stats = run.simulator.statistics()
    errors = [(e.code, round(e.time, 3)) for c in run.simulator.connections for e in c.errors]
    assert stats.errors_by_code == {}, f"{run.scenario.name}: the model answered {errors}"
    assert stats.connections_total == run.scenario.calls
    connections = run.simulator.connections
    assert len(connections) == len(run.calls)
    for record, connection in zip(run.calls, connections, strict=True):
        own = [connection]
        assert record.protocol_errors == []
        assert not cut_by_another_call(record, own)
        assert false_barge_ins(record, own) == 0
        assert truncations_beyond_heard(record, own) == 0
        for cleared_at in record.clears:
            # The clear stops the bot at once; a resumed pause (a false interruption, a pause to
            # listen that found echo) may play on 0.1 s later at the earliest.
            assert record.heard_between(cleared_at + 0.04, cleared_at + 0.1) <= 0.02
