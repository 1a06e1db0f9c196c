"""A rolling restart: SIGTERM to ``voiceguard serve`` while calls are live; count the calls lost.

Usage::

    python benchmarks/rolling_restart.py [--json] [--calls 20] [--seconds 12] [--workers 1]
                                         [--drain-timeout 900]

Method: a :class:`~voiceguard.sim.realtime.RealtimeSimulator` listens on 127.0.0.1 as the model;
``python -m voiceguard serve`` runs as a user runs it; ``--calls`` simulated Twilio callers
(:class:`~voiceguard.sim.caller.CallerSimulator`) call it at once, each speaking twice and
hanging up after ``--seconds``. A third of the way into the calls the server's own process
(not its group: as Kubernetes and ``docker stop`` send it) gets SIGTERM. A call is **lost**
when it ended before its caller hung up (the server closed it) or failed; with
``--drain-timeout`` shorter than what is left of the calls, they are **wound up** instead (a
goodbye, then the hang-up), which is counted apart. Also reported: how long the server took to
exit after the SIGTERM, its exit status, and whether a stream opened during the drain was
refused with 1012.

Target: 0 calls lost of 20.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from typing import Any

import _bench
import anyio

_LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")
HOST = "127.0.0.1"


async def run(calls: int, seconds: float, workers: int, drain_timeout: float) -> dict[str, Any]:
    from voiceguard.sim.caller import CallerSimulator, CallRecord, HangUp, Speak  # noqa: PLC0415
    from voiceguard.sim.realtime import RealtimeSimulator, Reply  # noqa: PLC0415
    from voiceguard.transports import TransportClosed  # noqa: PLC0415
    from voiceguard.transports.websocket import connect_websocket, serve_websocket  # noqa: PLC0415

    simulator = RealtimeSimulator(
        replies=[Reply(text="Hello!", duration=0.8), Reply(text="Nine to five.", duration=1.2)]
    )

    async def handle(transport: Any) -> None:
        request = transport.request
        await simulator.serve_connection(transport, path=request.path, headers=request.headers)

    out: dict[str, Any] = {}
    async with anyio.create_task_group() as tg:
        model_port = await tg.start(
            lambda task_status: serve_websocket(
                handle, host=HOST, port=0, subprotocols=("realtime",), task_status=task_status
            )
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEGUARD_")}
        env |= {"OPENAI_API_KEY": "sk-local", "PYTHONUNBUFFERED": "1"}
        log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
        server = subprocess.Popen(
            [
                sys.executable, "-m", "voiceguard", "serve", "--port", "0",
                "--realtime-url", f"ws://{HOST}:{model_port}/v1/realtime?model=gpt-realtime",
                "--workers", str(workers), "--drain-timeout", f"{drain_timeout:g}",
            ],
            stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
        )  # fmt: skip
        try:
            port = 0
            with anyio.fail_after(30):
                while not port:
                    log.seek(0)
                    if match := _LISTENING.search(log.read().decode(errors="replace")):
                        port = int(match.group(2))
                    await anyio.sleep(0.05)
            await anyio.sleep(1.0 + 0.5 * workers)  # every worker up
            url = f"ws://{HOST}:{port}/media-stream"
            records: list[CallRecord] = []
            failures: list[str] = []

            async def one_call() -> None:
                script: list[Speak | HangUp] = [
                    Speak(at=1.0, duration=0.8),
                    Speak(at=seconds / 2, duration=0.8),
                    HangUp(at=seconds),
                ]
                try:
                    with anyio.fail_after(seconds + drain_timeout + 60):
                        records.append(await CallerSimulator(script=script).call(url))
                except Exception as exc:
                    failures.append(repr(exc))

            refused: int | None = None
            async with anyio.create_task_group() as calls_tg:
                for _ in range(calls):
                    calls_tg.start_soon(one_call)
                await anyio.sleep(seconds / 3)
                server.send_signal(signal.SIGTERM)
                sigterm_at = time.monotonic()
                await anyio.sleep(1.5)  # the supervisor passes it on within 0.5 s
                try:
                    async with connect_websocket(url) as ws:
                        await ws.receive()
                except TransportClosed as exc:
                    refused = exc.code
                except OSError:
                    refused = None  # not even accepted
            with anyio.fail_after(drain_timeout + 90):
                while server.poll() is None:
                    await anyio.sleep(0.05)
            exit_after = time.monotonic() - sigterm_at
        finally:
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()
            log.close()
            tg.cancel_scope.cancel()
    ran_out = [r for r in records if r.ended_by == "caller"]
    wound_up = [r for r in records if r.ended_by == "bot" and drain_timeout < seconds]
    lost = calls - len(ran_out) - len(wound_up)
    stats = simulator.statistics()
    out |= {
        "calls": calls,
        "workers": workers,
        "seconds": seconds,
        "drain_timeout_s": drain_timeout,
        "calls_ran_to_their_end": len(ran_out),
        "calls_wound_up": len(wound_up),
        "calls_lost": lost,
        "failures": failures,
        "server_exit_status": server.returncode,
        "server_exit_after_sigterm_s": exit_after,
        "stream_during_drain_closed_with": refused,
        "model_protocol_errors": stats.errors_total,
        "target_calls_lost": 0,
        "command": _bench.command(),
        "machine": _bench.machine(),
    }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--calls", type=int, default=20, help="live calls (default 20)")
    parser.add_argument("--seconds", type=float, default=12.0, help="call length (default 12)")
    parser.add_argument("--workers", type=int, default=1, help="server workers (default 1)")
    parser.add_argument(
        "--drain-timeout", type=float, default=900.0, help="the server's (default 900)"
    )
    args = parser.parse_args()
    result = anyio.run(run, args.calls, args.seconds, args.workers, args.drain_timeout)
    text = (
        f"rolling restart: {result['calls']} live calls, {result['workers']} worker(s), "
        f"SIGTERM a third of the way in\n"
        f"  ran to their end:  {result['calls_ran_to_their_end']}\n"
        f"  wound up:          {result['calls_wound_up']}\n"
        f"  lost:              {result['calls_lost']}  (target 0: "
        f"{'met' if result['calls_lost'] == 0 else 'NOT met'})\n"
        f"  server exited {result['server_exit_status']} "
        f"{result['server_exit_after_sigterm_s']:.1f} s after the SIGTERM; a stream during the "
        f"drain was closed with {result['stream_during_drain_closed_with']}"
    )
    _bench.emit(result, args.json, text)


if __name__ == "__main__":
    main()
