"""``voiceguard call``: a simulated Twilio caller against any bot's media stream URL.

It plays :class:`~voiceguard.sim.caller.CallerSimulator` (Twilio's side of a ``<Connect><Stream>``
and the person calling) against a ``ws://`` or ``wss://`` URL, so a bot in any language can be
tried without a phone: a scenario of the library (only its caller's side: the scenario's model
side is the bot's own model) or a short script given on the command line. It prints, per call,
what the caller heard and what the simulated Twilio saw the bot do, in the table style of
``voiceguard demo``; ``--json`` prints the same as JSON.

The script syntax, one option per step, in the order given (*WHEN* is seconds since the stream
started, or ``heard=S``: once the caller has heard *S* seconds of the bot's audio in all):

* ``--say WHEN[:DURATION[:LEVEL]]``: :class:`~voiceguard.sim.caller.Speak`, e.g. ``--say 1.0:0.8``
  (at 1 s, for 0.8 s), ``--say heard=3:0.8`` (after 3 s of the bot: a barge-in into its
  greeting), ``--say heard=6:0.18:-12`` (a loud 180 ms cough); LEVEL in dBFS, default -20.
* ``--press WHEN:DIGIT``: :class:`~voiceguard.sim.caller.PressDigit`, e.g. ``--press 2.5:#``.
* ``--hang-up WHEN``: :class:`~voiceguard.sim.caller.HangUp`, e.g. ``--hang-up 6``.

``--check`` judges the scenario's own rules (its
:attr:`~voiceguard.sim.scenarios.Scenario.expectations`) that the caller's records alone decide:
each rule is run against the calls' records with a model side that raises when it is looked at,
and with 0 and then 1 leftover bot task; a rule that looks at the model side, or whose answer
changes with the bot's tasks (which the caller cannot see), is listed as not judged rather than
guessed. When a step of a call's script never ran (``Speak(after_heard=3.0)`` against a 2 s
greeting: listed in the output), no rule is judged: the calls were not the scenario's.

Register it with :func:`add_call_command`; :func:`main` runs it on its own (``main(argv)``). Its
parts are in ``voiceguard.sim._call``: reading the options into calls (``plan``), making them
(``dial``), and judging and printing what happened (``report``).

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import select
import sys
import textwrap
import time
from collections.abc import Sequence
from typing import Any, Final

import anyio

from voiceguard.sim._call.dial import play_plan
from voiceguard.sim._call.plan import MAX_CALLS, Refused, plan_calls
from voiceguard.sim._call.report import build_report, render
from voiceguard.sim.caller import CallRecord
from voiceguard.sim.scenarios import SCENARIOS

__all__ = ("MAX_CALLS", "add_call_command", "main", "stdout_is_closed")

_PROG: Final = "voiceguard call"
#: The exit status when stdout was closed under the command, as a shell reports SIGPIPE: 128 + 13.
_CLOSED_STDOUT_STATUS: Final = 141
_STEP_HELP: Final = (
    "WHEN is seconds since the stream started, or heard=S: once the caller has heard S seconds "
    "of the bot's audio"
)


# ============================================================================================
# The script's options


class _StepAction(argparse.Action):
    """Collects ``--say``, ``--press`` and ``--hang-up`` in one list, in the order given."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        steps = list(getattr(namespace, self.dest, None) or [])
        steps.append((option_string or self.option_strings[0], str(values)))
        setattr(namespace, self.dest, steps)


# ============================================================================================
# The command


def stdout_is_closed() -> bool:
    """Whether stdout is a pipe that nobody reads any more (``voiceguard call ... | true``):
    a command that would print only after a long run asks first."""
    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
    except (AttributeError, ValueError, OSError):  # no poll() (Windows), or not a real file
        return False
    poller.register(fd, select.POLLOUT)
    return any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0))


def _silence_stdout() -> None:
    """Point stdout at the null device, so the interpreter's flush at exit does not fail again
    on the closed pipe (the Python docs' note on SIGPIPE)."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, ValueError, OSError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _run(args: argparse.Namespace) -> int:
    try:
        import websockets  # noqa: F401, PLC0415 - only this command needs it
    except ImportError:
        print(
            f"{_PROG} needs the websockets package: pip install 'voiceguard[sim]'",
            file=sys.stderr,
        )
        return 2
    try:
        plan = plan_calls(args)
    except Refused as exc:
        print(f"{_PROG}: {exc}", file=sys.stderr)
        return 2
    if stdout_is_closed():
        return _CLOSED_STDOUT_STATUS  # nobody would read the report: make no calls
    # The report says what was skipped and refused; the simulator's own log lines would repeat it.
    for name in ("voiceguard", "websockets"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
    total = len(plan.callers)

    def connected(number: int) -> None:
        if number == 0:  # said once the bot answered, so that an error stays one line
            print(
                f"{_PROG}: {plan.what}, {total} call{'s' if total != 1 else ''} to {plan.url}, "
                "in real time ...",
                file=sys.stderr,
                flush=True,
            )

    def ended(number: int, record: CallRecord) -> None:
        at = "-" if record.ended_at is None else f"{record.ended_at:.1f} s"
        print(
            f"[{number + 1}/{total}] {record.call_sid}: heard {record.heard_seconds:.2f} s, "
            f"{len(record.clears)} clears, ended by {record.ended_by} at {at}",
            file=sys.stderr,
            flush=True,
        )

    records: list[CallRecord] = []
    failure: str | None = None

    async def play() -> None:
        nonlocal failure
        try:
            await play_plan(plan, records, connected, ended)
        except Refused as exc:
            failure = str(exc)

    began = time.monotonic()
    try:
        anyio.run(play, backend="asyncio")
    except (KeyboardInterrupt, asyncio.CancelledError):  # anyio's Runner backport on 3.10
        print(f"{_PROG}: interrupted", file=sys.stderr)
        return 130
    report = build_report(plan, records, time.monotonic() - began)
    if records:
        try:
            if args.json:
                print(json.dumps(report, indent=2), flush=True)
            else:
                print(f"\n{render(report)}", flush=True)
        except BrokenPipeError:  # `voiceguard call ... | head -3`: quiet, as SIGPIPE would be
            _silence_stdout()
            return _CLOSED_STDOUT_STATUS
    if failure is not None:
        print(f"{_PROG}: {failure}", file=sys.stderr)
        return 2
    if args.json and report["model_side"]:
        print(report["model_side"], file=sys.stderr)
    return 0 if report["ok"] else 1


_DESCRIPTION: Final = textwrap.fill(
    "Call a bot's Twilio media stream (any ws:// or wss:// URL, a bot in any language) as "
    "Twilio and a simulated caller would: connected, start (with your custom parameters), "
    "20 ms media frames of the caller's speech and line noise, marks echoed when their audio "
    "has played, clear honoured, dtmf and stop. Play a scenario of the library (only its "
    "caller's side: your bot talks to its own model) or a script given here. Prints per call "
    "the bot audio heard, marks, clears (barge-ins acted on), when the call ended and by whom, "
    "and the messages Twilio would have refused. Exits 0, 1 when the bot sent a message Twilio "
    "would refuse (or, with --check, broke a rule), 2 when it could not be called. Real time; "
    "needs: pip install 'voiceguard[sim]'.",
    width=78,
)
_EPILOG: Final = """\
examples:
  voiceguard call ws://127.0.0.1:5050/media-stream --scenario cancel-races-done --check
  voiceguard call ws://127.0.0.1:5050/media-stream --say heard=3:0.8 --hang-up 10
  voiceguard call wss://bot.example.com/media-stream --parameter lang=en \\
      --header 'X-Twilio-Signature: ...' --say 1.0:0.8 --hang-up 8

A scenario plays only the caller's side: your bot's model plays the other side.
To play the whole scenario, point your bot at the scenario's model:
  voiceguard simulate-model --port 8765 --scenario cancel-races-done
"""


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "url", metavar="URL", help="the bot's media stream, e.g. ws://127.0.0.1:5050/media-stream"
    )
    parser.add_argument(
        "--scenario",
        metavar="NAME",
        help="play this scenario's callers; one of: " + ", ".join(SCENARIOS),
    )
    parser.add_argument(
        "--phone",
        choices=("twilio", "telnyx", "plivo", "vonage"),
        default="twilio",
        help="whose media-stream protocol the calls speak (default: twilio)",
    )
    parser.add_argument(
        "--say",
        dest="script",
        action=_StepAction,
        metavar="WHEN[:DURATION[:LEVEL]]",
        help=f"the caller speaks (repeatable): e.g. 1.0:0.8, heard=3:0.8; {_STEP_HELP}; "
        "DURATION in seconds (default 1.5), LEVEL in dBFS (default -20)",
    )
    parser.add_argument(
        "--press",
        dest="script",
        action=_StepAction,
        metavar="WHEN:DIGIT",
        help="the caller presses a key (repeatable): e.g. 2.5:#",
    )
    parser.add_argument(
        "--hang-up",
        dest="script",
        action=_StepAction,
        metavar="WHEN",
        help="the caller hangs up: e.g. 6 or heard=3.6",
    )
    parser.add_argument(
        "--echo",
        metavar="DELAY[:LOSS]",
        help="the line echoes the bot's voice back DELAY seconds later, LOSS dB quieter "
        "(e.g. 0.1:6, a speakerphone; default: no echo); scripts only",
    )
    parser.add_argument(
        "--max-duration",
        metavar="SECONDS",
        help="the caller hangs up after this long whatever the script says (default: 60); "
        "scripts only",
    )
    parser.add_argument(
        "--header",
        action="append",
        metavar="'NAME: VALUE'",
        help="a header of the WebSocket upgrade request (repeatable), e.g. "
        "'X-Twilio-Signature: ...'",
    )
    parser.add_argument(
        "--parameter",
        action="append",
        metavar="NAME=VALUE",
        help="a start.customParameters entry, as TwiML <Parameter> gives (repeatable)",
    )
    parser.add_argument(
        "--calls",
        metavar="N",
        help=f"make N calls, one after the other, 1 to {MAX_CALLS} (default: the scenario's, or 1)",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="judge the scenario's rules that the caller's side alone decides (the others are "
        "listed as not judged)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print the results as JSON (progress stays on stderr)"
    )
    parser.set_defaults(handler=_run)


def add_call_command(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``voiceguard call`` with the command line's subcommands.

    Args:
        commands: The subcommands of the ``voiceguard`` parser.
    """
    call = commands.add_parser(
        "call",
        help="call a bot's media stream URL as a simulated Twilio caller (a scenario or a script)",
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(call)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``voiceguard call`` on its own; returns the exit status.

    Args:
        argv: The arguments after ``call`` (``sys.argv[1:]`` when None).
    """
    parser = argparse.ArgumentParser(
        prog=_PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _arguments(parser)
    args = parser.parse_args(argv)
    status: int = args.handler(args)
    return status
