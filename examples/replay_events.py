"""Replay a call's Realtime events through the guards and print every decision.

Paste the events your bridge logged (one JSON object per line, as received from the Realtime API)
into a file, add a line ``{"intent": "barge_in"}`` (or ``turn_end``, ``watchdog``, ``tool_result``,
``greeting``, ``hang_up``) wherever your bot wanted to cancel or create, and run::

    .venv/bin/python examples/replay_events.py examples/data/cancel_race.jsonl

Each line may carry ``"t"``: monotonic seconds (default: 20 ms after the previous line). The output
says, for each intent, what the guards decided and why, and what the state saw on the way.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from voiceguard import (
    CallState,
    CancelArbiter,
    CreateOrigin,
    CreatePolicy,
    CreateRequest,
    Decision,
    RemoteProtocolError,
    ResponseCreateGuard,
)
from voiceguard.protocol import parse_realtime_event

REQUESTS = {
    "turn_end": CreateRequest(label="turn_end"),
    "tool_result": CreateRequest(label="tool_result"),
    "greeting": CreateRequest(greeting=True, label="greeting"),
    "watchdog": CreateRequest(
        origin=CreateOrigin.AUTOMATIC,
        policy=CreatePolicy.DROP,
        require_playback_idle=True,
        label="watchdog",
    ),
}


def read_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.strip() and not line.lstrip().startswith("#"):
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                raise SystemExit(f"{path}:{number}: not JSON: {exc.msg}") from None


def replay(path: Path) -> list[str]:
    """Replay *path*; return the printed lines."""
    out: list[str] = []
    state = CallState(call_sid=path.stem)
    cancels = CancelArbiter(state)
    creates = ResponseCreateGuard(state)
    now = 0.0

    def show(at: float, what: str, decision: Decision) -> None:
        out.append(f"{at:8.3f}  {what:<12} {decision}")

    for number, record in read_lines(path):
        now = float(record.pop("t", now + 0.02))
        intent = record.get("intent")
        if intent is None:
            try:
                event = parse_realtime_event(record)
            except RemoteProtocolError as exc:
                raise SystemExit(f"{path}:{number}: {exc}") from None
            state.observe(event)
            if (cancel := cancels.release(now)) is not None:
                show(now, "cancel", cancel)
            if (released := creates.release(now)) is not None:
                show(now, "create", released.decision)
        elif intent == "barge_in":
            show(now, "barge_in", cancels.request(now))
        elif intent == "hang_up":
            state.begin_hangup()
            out.append(f"{now:8.3f}  hang_up      (hang-up started)")
        elif intent in REQUESTS:
            show(now, intent, creates.request(REQUESTS[intent], now))
        else:
            raise SystemExit(f"{path}:{number}: unknown intent {intent!r}")
    stats = state.statistics()
    out.append(
        f"sent: {stats.creates_sent} create, {stats.cancels_sent} cancel; "
        f"anomalies: {dict(stats.anomalies) or 'none'}"
    )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "events", type=Path, help="a JSON Lines file of Realtime events and intents"
    )
    args = parser.parse_args(argv)
    if not args.events.is_file():
        parser.error(f"no such file: {args.events}")
    print("\n".join(replay(args.events)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
