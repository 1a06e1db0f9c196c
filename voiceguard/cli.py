"""The ``voiceguard`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from voiceguard._version import __version__
from voiceguard.demo.tour import RACES, render, summary_rows

__all__ = ("main",)


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
    import anyio  # noqa: PLC0415 - keeps `voiceguard tour` free of the event loop import

    from voiceguard.sim.realtime import RealtimeSimulator  # noqa: PLC0415

    simulator = RealtimeSimulator(
        beta=True if args.beta else None, seed=args.seed, audio_speed=args.audio_speed
    )

    async def serve() -> None:
        async with simulator.running(host=args.host, port=args.port) as address:
            mode = (
                "beta event names"
                if args.beta
                else "GA event names; beta for clients sending OpenAI-Beta: realtime=v1"
            )
            print(
                f"RealtimeSimulator listening on ws://{address.host}:{address.port}/v1/realtime "
                f"({mode})\n"
                f'  openai SDK: AsyncOpenAI(api_key="any", '
                f'websocket_base_url="{address.base_url}")\n'
                "  Press Ctrl+C to stop.",
                flush=True,
            )
            await anyio.sleep_forever()

    try:
        anyio.run(serve)
    except KeyboardInterrupt:
        print("stopped", flush=True)
    except OSError as exc:
        print(
            f"voiceguard simulate-model: cannot listen on {args.host}:{args.port}: {exc}",
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
        "--beta",
        action="store_true",
        help="always use beta event names (default: GA, beta only for clients that send "
        "OpenAI-Beta: realtime=v1)",
    )
    simulate.add_argument(
        "--seed", type=int, default=0, help="seed of ids and generated audio (default: 0)"
    )
    simulate.add_argument(
        "--audio-speed",
        type=_speed,
        default=4.0,
        help="how many times faster than real time audio is generated, 0.1 to 100 (default: 4)",
    )
    simulate.set_defaults(handler=_simulate_model)
    from voiceguard.server import add_serve_command  # noqa: PLC0415 - its one registration

    add_serve_command(commands)
    from voiceguard.demo import add_demo_command  # noqa: PLC0415 - its one registration

    add_demo_command(commands)
    from voiceguard.observe.replay import add_replay_command  # noqa: PLC0415 - its one registration

    add_replay_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    status: int = args.handler(args)
    return status


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
