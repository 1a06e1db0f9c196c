"""The ``voiceguard`` command line."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence

from voiceguard._tour import SCENARIOS, render, summary_rows
from voiceguard._version import __version__

__all__ = ("main",)


def _tour(args: argparse.Namespace) -> int:
    chosen = SCENARIOS
    if args.scenario:
        chosen = tuple(s for s in SCENARIOS if s.name in args.scenario)
    rows = summary_rows(chosen)
    if args.json:
        print(json.dumps({"scenarios": rows}, indent=2, sort_keys=True))
    else:
        print(
            "Each scenario is one scripted call against a strict model of the OpenAI Realtime\n"
            "server (full turn control, 30 ms network latency each way), played by a naive bridge\n"
            "and by one that asks the guards first. Virtual time: it takes no real time.\n"
        )
        for scenario in chosen:
            print(f"  {scenario.name:<22} {scenario.title}: {scenario.problem}")
        print()
        print(render(rows))
    guarded_problems = sum(
        sum(row["guarded"]["server_errors"].values()) + row["guarded"]["creates_after_hang_up"]
        for row in rows
    )
    return 0 if guarded_problems == 0 else 1


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
        choices=[s.name for s in SCENARIOS],
        metavar="NAME",
        help="run only this scenario (repeatable); one of: " + ", ".join(s.name for s in SCENARIOS),
    )
    tour.add_argument("--json", action="store_true", help="print the results as JSON")
    tour.set_defaults(handler=_tour)
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
