"""What voiceguard's middleware costs a bot: the popular sample's bridge, with and without it.

Usage::

    python benchmarks/middleware_cost.py [--json] [--runs 7] [--seconds 20]
                                         [--calls 10] [--rounds 3] [--smoke]

The bot is the bridge of ``examples/twilio_sample_before.py`` (the popular Twilio sample) and
the same bridge with the three lines of ``examples/twilio_sample_guarded.py`` (a
:class:`~voiceguard.middleware.GuardedCall`, ``call.phone(ws)``, ``call.model(...)``); for
scale, the reference server's :class:`~voiceguard.MediaHandler` plays the same calls. Each call
is a :class:`~voiceguard.sim.caller.CallerSimulator` (a clean line at -65 dBFS, a 1.2 s turn at
4 s and every 5 s after, some of them into the bot's answer) against a
:class:`~voiceguard.sim.realtime.RealtimeSimulator`, over in-memory transports, simulators and
bot in this one process, so a figure is simulators plus bot and only the differences between
the bots are the bots' own. Two measures, the bots interleaved in each:

* **virtual clock**: one call at a time on trio's virtual clock (no waiting), ``--runs`` runs
  of each bot, the median of the process CPU per call-second;
* **real time**: ``--calls`` concurrent calls of ``--seconds`` on asyncio (uvloop when
  installed, as ``voiceguard serve`` runs), ``--rounds`` rounds of each bot, the median.

Beside the CPU, the messages through the bot per call-second, counted at the two simulators:
the middleware paces the bot's audio (100 ms a message, each with a mark), so it does not send
what the sample sends.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys
import time
from collections.abc import Callable, Coroutine
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import _bench
import anyio
from bridge_cpu import scripted_caller

EXAMPLES = _bench.ROOT / "examples"
Bot = Callable[[Any, Any], Coroutine[Any, Any, object]]


def _example(name: str) -> ModuleType:
    """The module of ``examples/<name>.py``."""
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _bots() -> dict[str, Bot]:
    from voiceguard import MediaHandler  # noqa: PLC0415

    def handler(twilio: Any, connect_model: Any) -> Coroutine[Any, Any, object]:
        @asynccontextmanager
        async def connect(_start: object) -> Any:
            async with connect_model() as model:
                yield model

        return MediaHandler(twilio, connect).run()

    return {
        "sample": _example("twilio_sample_before").bridge,
        "sample + middleware": _example("twilio_sample_guarded").bridge,
        "MediaHandler": handler,
    }


async def _calls(bot: Bot, calls: int, seconds: float) -> dict[str, float]:
    """*calls* concurrent calls against *bot*; the messages through it, counted at the peers."""
    from voiceguard.sim.realtime import RealtimeSimulator  # noqa: PLC0415
    from voiceguard.transports import memory_pair  # noqa: PLC0415

    simulator = RealtimeSimulator(seed=1)
    callers = [scripted_caller(number, seconds) for number in range(calls)]

    async def one(caller: Any) -> None:
        caller_end, bot_end = memory_pair(names=("caller", "bot"))
        async with anyio.create_task_group() as tg:
            tg.start_soon(bot, bot_end, simulator.connect)
            await caller.run(caller_end)
            await anyio.sleep(0.5)  # the bot's work for the call ends after the caller's
            tg.cancel_scope.cancel()

    async with anyio.create_task_group() as tg:
        for caller in callers:
            tg.start_soon(one, caller)
            await anyio.sleep(0.05)
    records = [record for caller in callers for record in caller.records]
    phone = sum(len(r.sent) + len(r.received) for r in records)
    model = sum(len(c.log) for c in simulator.connections)
    return {"messages_per_call_second": (phone + model) / (calls * seconds)}


def _timed(run: Callable[[], dict[str, float]], call_seconds: float) -> dict[str, float]:
    began = time.process_time()
    outcome = run()
    outcome["cpu_ms_per_call_second"] = 1000 * (time.process_time() - began) / call_seconds
    return outcome


def measure(bots: dict[str, Bot], *, runs: int, seconds: float, calls: int, rounds: int) -> Any:
    """Both measures, the bots interleaved (the order turns each time); per bot the samples."""
    from trio.testing import MockClock  # noqa: PLC0415 - a dev dependency

    backend = {"use_uvloop": importlib.util.find_spec("uvloop") is not None}
    virtual: dict[str, list[dict[str, float]]] = {name: [] for name in bots}
    real: dict[str, list[dict[str, float]]] = {name: [] for name in bots}
    for number in range(max(runs, rounds) + 1):  # the first pass warms up
        order = list(bots) if number % 2 else list(bots)[::-1]
        for name in order:
            if number <= runs:
                outcome = _timed(
                    lambda n=name: anyio.run(  # type: ignore[misc]
                        _calls,
                        bots[n],
                        1,
                        seconds,
                        backend="trio",
                        backend_options={"clock": MockClock(autojump_threshold=0)},
                    ),
                    seconds,
                )
                if number:
                    virtual[name].append(outcome)
            if 0 < number <= rounds:
                outcome = _timed(
                    lambda n=name: anyio.run(  # type: ignore[misc]
                        _calls, bots[n], calls, seconds, backend="asyncio", backend_options=backend
                    ),
                    calls * seconds,
                )
                real[name].append(outcome)
                print(
                    f"  round {number}/{rounds} {name:>20}: "
                    f"{outcome['cpu_ms_per_call_second']:.2f} ms CPU per call-second",
                    file=sys.stderr,
                    flush=True,
                )
    return virtual, real


def _summary(samples: dict[str, list[dict[str, float]]]) -> dict[str, dict[str, float]]:
    return {
        name: {
            key: _bench.median([s[key] for s in runs])
            for key in ("cpu_ms_per_call_second", "messages_per_call_second")
        }
        for name, runs in samples.items()
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="what the middleware costs a bot")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--runs", type=int, default=7, help="virtual-clock runs per bot")
    parser.add_argument("--seconds", type=float, default=20.0, help="call length (default 20)")
    parser.add_argument("--calls", type=int, default=10, help="concurrent real-time calls")
    parser.add_argument("--rounds", type=int, default=3, help="real-time rounds per bot")
    parser.add_argument("--smoke", action="store_true", help="a tiny run, to check it works")
    args = parser.parse_args()
    if args.smoke:
        args.runs, args.seconds, args.calls, args.rounds = 1, 4.0, 2, 1
    virtual, real = measure(
        _bots(), runs=args.runs, seconds=args.seconds, calls=args.calls, rounds=args.rounds
    )
    result: dict[str, Any] = {
        "method": (
            "process CPU per call-second of simulators + bot in one process, over in-memory "
            "transports; virtual clock (one call at a time) and real time (concurrent calls "
            "on asyncio); medians, bots interleaved"
        ),
        "seconds": args.seconds,
        "virtual_clock": {"runs": args.runs, "bots": _summary(virtual)},
        "real_time": {"calls": args.calls, "rounds": args.rounds, "bots": _summary(real)},
        "machine": _bench.machine(),
        "command": _bench.command(),
    }
    for measure_name in ("virtual_clock", "real_time"):
        bots = result[measure_name]["bots"]
        base = bots["sample"]["cpu_ms_per_call_second"]
        result[measure_name]["middleware_ms_per_call_second"] = (
            bots["sample + middleware"]["cpu_ms_per_call_second"] - base
        )
        result[measure_name]["ratio_to_sample"] = {
            name: bot["cpu_ms_per_call_second"] / base for name, bot in bots.items()
        }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    for measure_name, title in (
        ("virtual_clock", f"virtual clock, one {args.seconds:g} s call, {args.runs} runs"),
        ("real_time", f"real time, {args.calls} calls of {args.seconds:g} s, {args.rounds} rounds"),
    ):
        part = result[measure_name]
        rows = [
            [
                name,
                f"{bot['cpu_ms_per_call_second']:.2f}",
                f"{part['ratio_to_sample'][name]:.2f}x",
                f"{bot['messages_per_call_second']:.0f}",
            ]
            for name, bot in part["bots"].items()
        ]
        print(f"\n{title} (simulators included):")
        print(_bench.table(["bot", "ms CPU/call-s", "vs sample", "messages/call-s"], rows))
        print(f"the middleware: {part['middleware_ms_per_call_second']:+.2f} ms per call-second")
    machine = result["machine"]
    print(
        f"\n{machine['cpu']}, {machine['cores']} cores, Python {machine['python']}, "
        f"numpy {machine['numpy']}\ncommand: {result['command']}"
    )


if __name__ == "__main__":
    main()
