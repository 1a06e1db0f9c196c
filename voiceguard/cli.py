"""The ``voiceguard`` command line."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Final

from voiceguard._version import __version__
from voiceguard.demo.tour import RACES, render, summary_rows

__all__ = ("main",)

#: The exit status of a command whose standard output was closed under it (``voiceguard tour |
#: head -1``): what a shell reports for a tool that SIGPIPE ended, 128 + 13.
_CLOSED_STDOUT_STATUS: Final = 141
#: The exit status after Ctrl+C, 128 + SIGINT, as a shell reports it.
_INTERRUPTED_STATUS: Final = 130


def _tour(args: argparse.Namespace) -> int:
    chosen = RACES
    if args.scenario:
        chosen = tuple(race for race in RACES if race.name in args.scenario)
    rows = summary_rows(chosen)
    if args.json:
        print(json.dumps({"scenarios": rows}, indent=2, sort_keys=True))
    else:
        print(
            "Each scenario is one scripted call against a strict model of the OpenAI Realtime\n"
            "server (full turn control, 30 ms network latency each way), played by a naive bridge\n"
            "and by one that asks the guards first. Virtual time: it takes no real time.\n"
        )
        for race in chosen:
            print(f"  {race.name:<22} {race.title}: {race.problem}")
        print()
        print(render(rows))
    guarded_problems = sum(
        sum(row["guarded"]["server_errors"].values()) + row["guarded"]["creates_after_hang_up"]
        for row in rows
    )
    return 0 if guarded_problems == 0 else 1


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(
            f"--port {text!r}: allowed: an integer from 0 to 65535 (0 picks a free port)"
        )
    return value


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0.1 <= value <= 100.0:
        raise argparse.ArgumentTypeError(
            f"--audio-speed {text!r}: allowed: a number from 0.1 to 100 (times real time)"
        )
    return value


def _simulate_model(args: argparse.Namespace) -> int:
    try:
        import websockets  # noqa: F401, PLC0415 - only this command needs it
    except ImportError:
        print(
            "voiceguard simulate-model needs the websockets package: pip install 'voiceguard[sim]'",
            file=sys.stderr,
        )
        return 2
    import asyncio  # noqa: PLC0415 - keeps `voiceguard tour` free of the event loop import

    import anyio  # noqa: PLC0415

    from voiceguard.sim.realtime import RealtimeSimulator  # noqa: PLC0415

    if args.scenario is not None:
        from voiceguard.sim.scenarios import SCENARIOS  # noqa: PLC0415

        scenario = SCENARIOS.get(args.scenario)
        if scenario is None:
            print(
                f"voiceguard simulate-model: --scenario {args.scenario!r} is not allowed; "
                "allowed: one of " + ", ".join(SCENARIOS),
                file=sys.stderr,
            )
            return 2
        given = [
            option
            for option, value in (
                ("--beta", args.beta),
                ("--seed", args.seed),
                ("--audio-speed", args.audio_speed),
            )
            if value not in (None, False)
        ]
        if given:
            print(
                f"voiceguard simulate-model: {given[0]} with --scenario is not allowed; "
                "allowed: a scenario (its model brings its own replies, faults and audio speed) "
                "or those options, not both",
                file=sys.stderr,
            )
            return 2
        simulator = scenario.simulator_for(args.provider)
        what = f"scenario {scenario.name}'s model side"
    else:
        simulator = RealtimeSimulator(
            beta=True if args.beta else None,
            seed=0 if args.seed is None else args.seed,
            audio_speed=4.0 if args.audio_speed is None else args.audio_speed,
            provider=args.provider,
        )
        what = "default replies"
    provider = simulator.provider

    async def serve() -> None:
        async with simulator.running(host=args.host, port=args.port) as address:
            mode = (
                "beta event names"
                if args.beta
                else "GA event names; beta for clients sending OpenAI-Beta: realtime=v1"
            )
            root = f"ws://{address.host}:{address.port}"
            path = provider.paths[0]
            print(
                f"RealtimeSimulator listening on {root}{path} "
                f"({provider.title}; {what}; {mode})\n"
                f"  voiceguard serve --model-provider {provider.name} "
                f"--realtime-url '{root}{path}?model=...'\n"
                f'  openai SDK: AsyncOpenAI(api_key="any", '
                f'websocket_base_url="{root}{path.removesuffix("/realtime")}")\n'
                "  Press Ctrl+C to stop.",
                flush=True,
            )
            await anyio.sleep_forever()

    try:
        anyio.run(serve)
    except (KeyboardInterrupt, asyncio.CancelledError):  # Python 3.10 cancels the main task
        print("stopped", flush=True)
    except Exception as exc:
        # The listening socket is bound inside the simulator's task group, so a busy port
        # arrives as a group around the OSError.
        error = _sole(exc, OSError)
        if error is None or isinstance(error, BrokenPipeError):
            raise  # a closed stdout is main's to handle, anything else is a bug to show
        print(
            f"voiceguard simulate-model: cannot listen on {args.host}:{args.port}: {error}",
            file=sys.stderr,
        )
        return 1
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of the ``voiceguard`` command."""
    parser = argparse.ArgumentParser(
        prog="voiceguard",
        description=(
            "Guards that keep Twilio <-> OpenAI Realtime phone voice agents free of the races "
            "between the two: false barge-ins, cancel and create errors, leaking timers."
        ),
    )
    parser.add_argument("--version", action="version", version=f"voiceguard {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND")
    tour = commands.add_parser(
        "tour",
        help="play the classic races through a naive bridge and through the guards",
        description=(
            "Play scripted calls that provoke the classic races (cancel after done, create while "
            "a response runs, a tool result during the greeting, ...) through a naive bridge and "
            "through the guards, and print what each got wrong. Exits 0 when the guarded bridge "
            "had no problem."
        ),
    )
    tour.add_argument(
        "--scenario",
        action="append",
        choices=[race.name for race in RACES],
        metavar="NAME",
        help="run only this scenario (repeatable); one of: " + ", ".join(r.name for r in RACES),
    )
    tour.add_argument("--json", action="store_true", help="print the results as JSON")
    tour.set_defaults(handler=_tour)
    simulate = commands.add_parser(
        "simulate-model",
        help="run a local OpenAI Realtime server simulator until interrupted",
        description=(
            "Run voiceguard's RealtimeSimulator on its own, so any bot in any language can be "
            "tested against it: it speaks the OpenAI Realtime WebSocket protocol at /v1/realtime "
            "(and /realtime), accepts any bearer key, detects speech in the audio you append, "
            "and answers with generated speech-like audio. Point the openai SDK at it with "
            "websocket_base_url=ws://HOST:PORT/v1. Needs: pip install 'voiceguard[sim]'."
        ),
    )
    simulate.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)"
    )
    simulate.add_argument(
        "--port",
        type=_port,
        default=8765,
        help="TCP port, 0 to 65535; 0 picks a free one (default: 8765)",
    )
    simulate.add_argument(
        "--provider",
        choices=("openai", "azure", "xai"),
        default="openai",
        help="speak this provider's dialect: its path (Azure: /openai/v1/realtime), the key it "
        "takes (Azure: api-key too) and its session shape (xAI's) (default: openai)",
    )
    simulate.add_argument(
        "--beta",
        action="store_true",
        help="always use beta event names (default: GA, beta only for clients that send "
        "OpenAI-Beta: realtime=v1)",
    )
    from voiceguard.sim.scenarios import SCENARIOS  # noqa: PLC0415 - as `voiceguard call` lists them

    simulate.add_argument(
        "--scenario",
        metavar="NAME",
        help="serve this scenario's model side (its scripted replies and faults) to every "
        "connection, to play with `voiceguard call URL --scenario NAME`; one of: "
        + ", ".join(SCENARIOS),
    )
    simulate.add_argument(
        "--seed", type=int, default=None, help="seed of ids and generated audio (default: 0)"
    )
    simulate.add_argument(
        "--audio-speed",
        type=_speed,
        default=None,
        help="how many times faster than real time audio is generated, 0.1 to 100 (default: 4)",
    )
    simulate.set_defaults(handler=_simulate_model)
    from voiceguard.server import add_serve_command  # noqa: PLC0415 - its one registration

    add_serve_command(commands)
    from voiceguard.demo import add_demo_command  # noqa: PLC0415 - its one registration

    add_demo_command(commands)
    from voiceguard.sim.call_command import add_call_command  # noqa: PLC0415 - one registration

    add_call_command(commands)
    from voiceguard.observe.replay import add_replay_command  # noqa: PLC0415 - its one registration

    add_replay_command(commands)
    return parser


def _leaves(exc: BaseException) -> tuple[BaseException, ...]:
    """The exceptions in *exc*, through any exception groups (anyio's task groups raise them).

    Read by their ``exceptions``, as the groups have no builtin name on Python 3.10.
    """
    inner = getattr(exc, "exceptions", None)
    if isinstance(inner, tuple) and inner and all(isinstance(e, BaseException) for e in inner):
        return tuple(leaf for e in inner for leaf in _leaves(e))
    return (exc,)


def _sole(exc: BaseException, kind: type[BaseException]) -> BaseException | None:
    """*exc* if it is a *kind*, or the first of a group made only of *kind*s; else None."""
    leaves = _leaves(exc)
    return leaves[0] if all(isinstance(leaf, kind) for leaf in leaves) else None


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's flush at exit does not fail again
    on the closed pipe (the Python docs' note on SIGPIPE)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return  # not a real file (a test's capture): nothing will flush to the pipe
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _flush_stdout() -> None:
    # Here, not at exit: a closed pipe raises where it can still be handled.
    if sys.stdout is not None:
        sys.stdout.flush()


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:
        # argparse would report them with the top-level usage; the subcommand's is the one
        # that lists the options meant.
        (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        where = commands.choices.get(args.command, parser) if args.command else parser
        where.error(f"unrecognized arguments: {' '.join(extras)}")
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.handler(args)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    A closed standard output (``voiceguard tour | head -1``) ends the command quietly with
    status 141, as SIGPIPE ends other tools; Ctrl+C ends it with status 130 and one line on
    stderr (the servers, which run until Ctrl+C, stop with status 0 instead).
    """
    try:
        try:
            status = _run(argv)
        except SystemExit:
            _flush_stdout()  # what --help and --version printed
            raise
        _flush_stdout()
        return status
    except BaseException as exc:  # a group too: the commands run anyio task groups
        if _sole(exc, BrokenPipeError) is not None:
            _silence_stdout()
            return _CLOSED_STDOUT_STATUS
        if _sole(exc, KeyboardInterrupt) is not None:
            command = " ".join(["voiceguard", *_command_of(argv)])
            print(f"{command}: interrupted", file=sys.stderr)
            return _INTERRUPTED_STATUS
        raise


def _command_of(argv: Sequence[str] | None) -> list[str]:
    """The subcommand named in *argv* (for the interrupted line), if one was."""
    words = sys.argv[1:] if argv is None else list(argv)
    return [word for word in words if not word.startswith("-")][:1]


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
