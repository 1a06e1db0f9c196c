"""Bridge CPU per call-second: guards on, guards off, and the naive sample-style bridge.

Usage::

    python benchmarks/bridge_cpu.py [--json] [--calls 10] [--seconds 20] [--repeats 5] [--smoke]

Method: each bridge runs alone in a child process (this script with ``--serve``), listening on
127.0.0.1 for Twilio media streams
(:func:`voiceguard.transports.websocket.serve_websocket`) and opening one model connection per
call (:func:`voiceguard.transports.websocket.connect_websocket`), so
all three use the same transports and differ only in the bridge:

* **guards on**: :class:`voiceguard.MediaHandler` with its defaults;
* **guards off**: the same handler with its calibration gate, cancel arbiter and create guard
  replaced by ones that allow everything (``benchmarks/_unguarded.py``);
* **naive**: :class:`voiceguard.demo.NaiveBridge`, the popular sample's bridge.

This process plays the other side: a :class:`~voiceguard.sim.realtime.RealtimeSimulator` and
``--calls`` concurrent :class:`~voiceguard.sim.caller.CallerSimulator` calls of ``--seconds``
each, in real time (a clean line with -65 dBFS noise; the caller speaks every 5 s, sometimes
into the bot's answer). The child's CPU time (``resource.getrusage``, user + system) from just
before the first call to just after the last, divided by the call-seconds, is the bridge's CPU per
call-second. The bridges take turns (on, off, naive, on, off, naive, ...) so that drifting load
on a shared machine hits all three alike; the median of ``--repeats`` rounds is reported.

A second, quieter measure of the same difference: one call at a time in this process, over
in-memory transports on trio's virtual clock (no sockets, no waiting), simulators and bridge
together; ``--virtual-runs`` interleaved runs per bridge, medians. The simulators' share is the
same for all three, so the differences between the bridges are the bridges' own.

Target: guards on <= 1.05x guards off.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import time
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import _bench
import anyio

BRIDGES = ("guards on", "guards off", "naive")
TARGET_RATIO = 1.05
_HOST = "127.0.0.1"


# ------------------------------------------------------------------ the child: one bridge


def serve(kind: str, model_url: str, profile: Path | None = None) -> None:
    """Serve media streams with bridge *kind* until stdin closes; answer ``cpu`` lines.

    With *profile*, the whole run is profiled with cProfile and the statistics saved there.
    """
    from _unguarded import unguarded_handler  # noqa: PLC0415

    from voiceguard import MediaHandler  # noqa: PLC0415
    from voiceguard.demo import NaiveBridge  # noqa: PLC0415
    from voiceguard.transports.websocket import connect_websocket, serve_websocket  # noqa: PLC0415

    headers = {"Authorization": "Bearer benchmark"}

    @asynccontextmanager
    async def connect(_start: object) -> Any:
        async with connect_websocket(model_url, headers=headers) as model:
            yield model

    naive = NaiveBridge()

    async def handle(phone: Any) -> None:
        if kind == "naive":
            await naive(phone, lambda: connect_websocket(model_url, headers=headers))
        elif kind == "guards off":
            await unguarded_handler(phone, connect).run()
        else:
            await MediaHandler(phone, connect).run()

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                lambda task_status: serve_websocket(
                    handle, host=_HOST, port=0, task_status=task_status
                )
            )
            print(f"listening {port}", flush=True)
            stdin = anyio.wrap_file(sys.stdin)
            async for line in stdin:
                if line.strip() == "cpu":
                    usage = resource.getrusage(resource.RUSAGE_SELF)
                    print(f"cpu {usage.ru_utime:.6f} {usage.ru_stime:.6f}", flush=True)
            tg.cancel_scope.cancel()

    if profile is None:
        anyio.run(main)
        return
    import cProfile  # noqa: PLC0415

    with cProfile.Profile() as profiler:
        anyio.run(main)
    profiler.dump_stats(profile)


# ------------------------------------------------------------------ the parent: callers and model


class Child:
    def __init__(self, kind: str, model_url: str, profile: Path | None = None) -> None:
        extra = [] if profile is None else ["--profile", str(profile)]
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", kind, "--model-url", model_url, *extra],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parent,
        )
        line = self._line()
        if not line.startswith("listening "):
            raise RuntimeError(f"bridge {kind!r} did not start: {line!r}")
        self.port = int(line.split()[1])

    def _line(self) -> str:
        assert self.process.stdout is not None
        return self.process.stdout.readline().strip()

    def cpu(self) -> tuple[float, float]:
        """The child's user and system CPU seconds so far."""
        assert self.process.stdin is not None
        self.process.stdin.write("cpu\n")
        self.process.stdin.flush()
        _, user, system = self._line().split()
        return float(user), float(system)

    def close(self) -> None:
        assert self.process.stdin is not None
        self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def scripted_caller(number: int, seconds: float) -> Any:
    """Call *number*: a clean line at -65 dBFS, a 1.2 s turn at 4 s and every 5 s after."""
    from voiceguard.sim.caller import CallerSimulator, HangUp, Speak  # noqa: PLC0415

    turns = [
        Speak(at=at, duration=1.2, text="a caller turn") for at in range(4, int(seconds) - 1, 5)
    ]
    return CallerSimulator(script=[*turns, HangUp(at=seconds)], seed=number, noise_dbfs=-65.0)


async def _round(
    kind: str,
    calls: int,
    seconds: float,
    simulator: Any,
    model_url: str,
    *,
    profile: Path | None = None,
) -> dict[str, float]:
    child = await anyio.to_thread.run_sync(Child, kind, model_url, profile)
    callers = [scripted_caller(number, seconds) for number in range(calls)]
    known = len(simulator.connections)
    try:
        before = await anyio.to_thread.run_sync(child.cpu)
        began = time.monotonic()
        async with anyio.create_task_group() as tg:
            for caller in callers:
                tg.start_soon(caller.call, f"ws://{_HOST}:{child.port}/media-stream")
                await anyio.sleep(0.05)
        await anyio.sleep(0.5)  # the bridge's work for the last call ends after the caller's
        after = await anyio.to_thread.run_sync(child.cpu)
        wall = time.monotonic() - began
    finally:
        await anyio.to_thread.run_sync(child.close)
    user, system = after[0] - before[0], after[1] - before[1]
    records = [record for caller in callers for record in caller.records]
    # Messages through the bridge, both ways, counted at the peers.
    phone = sum(len(r.sent) + len(r.received) for r in records)
    model = sum(len(c.log) for c in simulator.connections[known:])
    return {
        "messages_per_call_second": (phone + model) / (calls * seconds),
        "phone_messages_per_call_second": phone / (calls * seconds),
        "model_messages_per_call_second": model / (calls * seconds),
        "clears_per_call": sum(len(r.clears) for r in records) / calls,
        "cpu_s": user + system,
        "user_s": user,
        "system_s": system,
        "call_seconds": calls * seconds,
        "cpu_ms_per_call_second": 1000 * (user + system) / (calls * seconds),
        "user_ms_per_call_second": 1000 * user / (calls * seconds),
        "system_ms_per_call_second": 1000 * system / (calls * seconds),
        "wall_s": wall,
    }


async def _run(args: argparse.Namespace) -> dict[str, list[dict[str, float]]]:
    from voiceguard.sim.realtime import RealtimeSimulator  # noqa: PLC0415

    results: dict[str, list[dict[str, float]]] = {kind: [] for kind in BRIDGES}
    simulator = RealtimeSimulator(seed=1)
    async with simulator.running(host=_HOST) as address:
        url = f"ws://{address.host}:{address.port}/v1/realtime?model=gpt-realtime"
        for number in range(args.repeats):
            for kind in BRIDGES:
                profile = None
                if args.profile is not None and number == 0:
                    profile = args.profile.with_name(
                        f"{args.profile.stem}-{kind.replace(' ', '-')}{args.profile.suffix}"
                    )
                outcome = await _round(
                    kind, args.calls, args.seconds, simulator, url, profile=profile
                )
                results[kind].append(outcome)
                if not args.json:
                    print(
                        f"  round {number + 1}/{args.repeats} {kind:>10}: "
                        f"{outcome['cpu_ms_per_call_second']:.2f} ms CPU per call-second",
                        file=sys.stderr,
                        flush=True,
                    )
    return results


async def _virtual_call(kind: str, seconds: float) -> None:
    """One call in memory on the virtual clock: simulators and bridge in this process."""
    from _unguarded import unguarded_handler  # noqa: PLC0415

    from voiceguard import MediaHandler  # noqa: PLC0415
    from voiceguard.demo import NaiveBridge  # noqa: PLC0415
    from voiceguard.sim.realtime import RealtimeSimulator  # noqa: PLC0415
    from voiceguard.transports import memory_pair  # noqa: PLC0415

    simulator = RealtimeSimulator(seed=1)
    caller = scripted_caller(0, seconds)

    @asynccontextmanager
    async def connect(_start: object) -> Any:
        async with simulator.connect() as model:
            yield model

    caller_end, bot_end = memory_pair(names=("caller", "bot"))
    async with anyio.create_task_group() as tg:
        if kind == "naive":
            tg.start_soon(NaiveBridge(), bot_end, simulator.connect)
        elif kind == "guards off":
            tg.start_soon(unguarded_handler(bot_end, connect).run)
        else:
            tg.start_soon(MediaHandler(bot_end, connect).run)
        await caller.run(caller_end)
        tg.cancel_scope.cancel()  # the naive bridge's unscoped hang-up sleep, if any


def virtual(runs: int, seconds: float) -> dict[str, float]:
    """CPU per call-second of simulators + bridge in one process, runs interleaved; medians."""
    from trio.testing import MockClock  # noqa: PLC0415 - a dev dependency

    samples: dict[str, list[float]] = {kind: [] for kind in BRIDGES}
    for number in range(runs + 1):  # the first round warms up
        order = BRIDGES if number % 2 else BRIDGES[::-1]
        for kind in order:
            began = time.process_time()
            anyio.run(
                _virtual_call,
                kind,
                seconds,
                backend="trio",
                backend_options={"clock": MockClock(autojump_threshold=0)},
            )
            if number:
                samples[kind].append(1000 * (time.process_time() - began) / seconds)
    return {kind: _bench.median(values) for kind, values in samples.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description="bridge CPU per call-second, side by side")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--calls", type=int, default=10, help="concurrent calls (default 10)")
    parser.add_argument("--seconds", type=float, default=20.0, help="call length (default 20)")
    parser.add_argument("--repeats", type=int, default=5, help="rounds (default 5)")
    parser.add_argument(
        "--virtual-runs",
        type=int,
        default=10,
        help="interleaved in-process runs of one call on the virtual clock (default 10)",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check it works")
    parser.add_argument(
        "--profile",
        type=Path,
        help="profile each bridge's first round with cProfile; PATH gets the bridge's name",
    )
    parser.add_argument("--serve", choices=BRIDGES, help=argparse.SUPPRESS)
    parser.add_argument("--model-url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.model_url, args.profile)
        return
    if args.smoke:
        args.calls, args.seconds, args.repeats, args.virtual_runs = 1, 1.5, 1, 1
    in_process = virtual(args.virtual_runs, args.seconds)
    results = anyio.run(_run, args)
    per_call_second = {
        kind: _bench.median([r["cpu_ms_per_call_second"] for r in rounds])
        for kind, rounds in results.items()
    }
    split = {
        kind: {
            part: _bench.median([r[f"{part}_ms_per_call_second"] for r in rounds])
            for part in ("user", "system")
        }
        for kind, rounds in results.items()
    }
    messages = {
        kind: _bench.median([r["messages_per_call_second"] for r in rounds])
        for kind, rounds in results.items()
    }
    ratio = per_call_second["guards on"] / per_call_second["guards off"]
    result = {
        "method": (
            "bridge child process CPU (getrusage user+system) over concurrent simulated calls, "
            "divided by call-seconds; median of rounds, bridges interleaved"
        ),
        "calls": args.calls,
        "seconds": args.seconds,
        "repeats": args.repeats,
        "cpu_ms_per_call_second": per_call_second,
        "user_system_ms_per_call_second": split,
        "messages_per_call_second": messages,
        "us_cpu_per_message": {k: 1000 * per_call_second[k] / messages[k] for k in BRIDGES},
        "ratio_on_to_off": ratio,
        "ratio_on_to_off_user": split["guards on"]["user"] / split["guards off"]["user"],
        "ratio_naive_to_off": per_call_second["naive"] / per_call_second["guards off"],
        "target_ratio": TARGET_RATIO,
        "target_met": ratio <= TARGET_RATIO,
        "rounds": results,
        "in_process_ms_per_call_second": in_process,
        "in_process_difference_on_off_ms": in_process["guards on"] - in_process["guards off"],
        "pid": os.getpid(),
    }
    rows = [
        [
            kind,
            per_call_second[kind],
            f"{per_call_second[kind] / per_call_second['guards off']:.3f}x",
            split[kind]["user"],
            split[kind]["system"],
            messages[kind],
            1000 * per_call_second[kind] / messages[kind],
            f"{per_call_second[kind] / 10:.2f} %",
        ]
        for kind in BRIDGES
    ]
    text = _bench.table(
        [
            "bridge",
            "ms CPU per call-second",
            "vs guards off",
            "user ms",
            "system ms",
            "messages per call-s",
            "us CPU per message",
            "of a core per call",
        ],
        rows,
    )
    text += (
        f"\n\n{args.calls} concurrent calls of {args.seconds:g} s, median of {args.repeats} "
        f"rounds. Target: guards on <= {TARGET_RATIO}x guards off: "
        f"{'met' if result['target_met'] else 'NOT met'} ({ratio:.3f}x)"
    )
    text += (
        f"\n\nIn one process on the virtual clock (simulators + bridge, one {args.seconds:g} s "
        f"call, median of {args.virtual_runs} interleaved runs), ms CPU per call-second: "
        + ", ".join(f"{kind} {value:.2f}" for kind, value in in_process.items())
        + f"; guards on - guards off = {result['in_process_difference_on_off_ms']:.2f} ms"
    )
    _bench.emit(result, args.json, text)


if __name__ == "__main__":
    main()
