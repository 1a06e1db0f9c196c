"""The ``voiceguard demo`` command: its options, its progress lines and its exit status.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import argparse
import errno
import json
import signal
import sys
from pathlib import Path

import anyio
import anyio.abc

from voiceguard.demo.measures import BRIDGES, RunOutcome
from voiceguard.demo.report import DemoReport, run_label
from voiceguard.demo.run import MAX_REPETITIONS, run_demo
from voiceguard.observe.trace import trace_dir_problem
from voiceguard.sim.call_command import stdout_is_closed
from voiceguard.sim.scenarios import SCENARIOS

__all__ = ("add_demo_command",)


def _repetitions(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_REPETITIONS:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: an integer from 1 to {MAX_REPETITIONS} "
            "(how many times each scenario is played)"
        )
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 2**31 - 1:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not allowed; allowed: an integer from 0 to {2**31 - 1}"
        )
    return value


def _missing_server_extra() -> str | None:
    """The first package of the server extra that is not installed, or None."""
    import importlib.util  # noqa: PLC0415

    for name in ("starlette", "uvicorn", "websockets"):
        if importlib.util.find_spec(name) is None:
            return name
    return None


def _demo_command(args: argparse.Namespace) -> int:
    missing = _missing_server_extra()
    if missing is not None:
        print(
            f"voiceguard demo needs the server extra ({missing} is missing): "
            "pip install 'voiceguard[server]'",
            file=sys.stderr,
        )
        return 2
    if args.trace is not None and (problem := trace_dir_problem(args.trace)) is not None:
        print(f"voiceguard demo: --trace {args.trace}: {problem}", file=sys.stderr)
        return 2
    if stdout_is_closed():
        # The results are printed after the 30 s run: found now, the run is not wasted.
        raise BrokenPipeError(errno.EPIPE, "standard output is closed")
    import logging  # noqa: PLC0415

    # The table is the demo's output; the bridges' and servers' own logs would drown it.
    for name in ("voiceguard", "uvicorn", "websockets"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    names = tuple(args.scenario) if args.scenario else tuple(SCENARIOS)
    total = len(names) * args.calls * len(BRIDGES)
    width = len(str(total))
    print(
        f"voiceguard demo: {len(names)} scenario{'s' if len(names) != 1 else ''}"
        f"{f' x {args.calls}' if args.calls > 1 else ''} through a naive bridge and the guarded "
        "reference server, both at once, in real time on 127.0.0.1 (about 30 s) ...",
        file=sys.stderr,
        flush=True,
    )

    def progress(outcome: RunOutcome, done: int, total: int) -> None:
        label = run_label(outcome, args.calls)
        print(
            f"[{done:>{width}}/{total}] {label:<32} {outcome.bridge:<8} {outcome.summary()}",
            file=sys.stderr,
            flush=True,
        )

    interrupted = False

    async def watch_interrupt(
        scope: anyio.CancelScope, *, task_status: anyio.abc.TaskStatus[None]
    ) -> None:
        # Ctrl+C cancels the run here, before the reference server sees it: uvicorn takes
        # SIGINT while it serves, stops, and the calls still running would then fail in every
        # way there is. (A signal receiver hears it even then.)
        nonlocal interrupted
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            task_status.started()
            async for _ in signals:
                interrupted = True
                scope.cancel()
                return

    async def main() -> DemoReport | None:
        report: DemoReport | None = None
        async with anyio.create_task_group() as tg:
            if sys.platform != "win32":  # no signal receivers there; Ctrl+C raises as usual
                await tg.start(watch_interrupt, tg.cancel_scope)
            report = await run_demo(
                names,
                repetitions=args.calls,
                seed=args.seed,
                progress=progress,
                trace_dir=args.trace,
                phone=args.phone,
            )
            tg.cancel_scope.cancel()
        return report

    try:
        report = anyio.run(main, backend="asyncio")
    except BaseException as exc:
        if not (interrupted or isinstance(exc, KeyboardInterrupt)):
            raise
        report = None
    if report is None:
        print("voiceguard demo: interrupted", file=sys.stderr)
        return 130
    if args.json:
        print(json.dumps(report.to_json(), indent=2))
    else:
        print()
        print(report.render())
    if args.trace:
        first = Path(args.trace) / (names[0] + "-0.jsonl")
        if not first.is_file():
            print(
                f"voiceguard demo: --trace {args.trace}: the traces were not written "
                f"({first.name} is missing)",
                file=sys.stderr,
            )
            return 1
        print(
            f"traces of the guarded calls are in {args.trace}; replay one with: "
            f"voiceguard replay {first} --timeline timeline.html",
            file=sys.stderr,
        )
    return 0 if report.ok else 1


def add_demo_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``voiceguard demo`` with the command line's subcommands.

    Args:
        commands: The subcommands of the ``voiceguard`` parser.
    """
    demo = commands.add_parser(
        "demo",
        help="run the scenario library through a naive bridge and the guarded server, "
        "side by side (no key, no network)",
        description=(
            "Start a simulated OpenAI Realtime server, the guarded reference server, a naive "
            "bridge written like the popular Twilio sample, and simulated callers, all on "
            "127.0.0.1; play every scenario through both bridges at once, in real time over "
            "real sockets; print what each bridge did to the calls, side by side. No API key and "
            "no network needed. Exits 0 when the guarded bridge had no problem, 1 when it had. "
            "Needs: pip install 'voiceguard[server]'."
        ),
    )
    demo.add_argument(
        "--calls",
        type=_repetitions,
        default=1,
        metavar="N",
        help=f"play each scenario N times through each bridge, 1 to {MAX_REPETITIONS} (default: 1)",
    )
    demo.add_argument(
        "--scenario",
        action="append",
        choices=list(SCENARIOS),
        metavar="NAME",
        help="play only this scenario (repeatable); one of: " + ", ".join(SCENARIOS),
    )
    demo.add_argument(
        "--phone",
        choices=("twilio", "telnyx", "plivo", "vonage"),
        default="twilio",
        help="whose media streams the callers speak; both bridges take them (default: twilio)",
    )
    demo.add_argument(
        "--json", action="store_true", help="print the results as JSON (progress stays on stderr)"
    )
    demo.add_argument(
        "--seed",
        type=_seed,
        default=0,
        help="vary the generated audio, line noise and ids; 0 plays the scenarios as defined "
        "(default: 0)",
    )
    demo.add_argument(
        "--trace",
        metavar="DIR",
        help="write a trace of each guarded call to DIR (<scenario>-<call>.jsonl, audio kept), "
        "for voiceguard replay",
    )
    demo.set_defaults(handler=_demo_command)
