"""``voiceguard tour``: the classic races, played through a naive bridge and through the guards.

Each :class:`Race` is a scripted call against a strict model of the Realtime server in full turn
control (``create_response`` and ``interrupt_response`` off): one response at a time, a cancel only
while a response is active, and messages that take a network latency to cross. The same script is
played twice by :func:`play_race`, by a naive client that sends whatever its logic asks for, and by
one that asks the guards first. Time is virtual: the tour is deterministic and takes no real time.

A race is not a simulator scenario (:class:`voiceguard.sim.Scenario`, played by real bridges over
real protocol messages): it exercises the guards alone, against a toy model of the server.

.. versionchanged:: 0.2.0
   ``Scenario``, ``run_scenario``, ``SCENARIOS`` and ``Outcome`` are now :class:`Race`,
   :func:`play_race`, :data:`RACES` and :class:`RaceOutcome`; the old names still work, with a
   :class:`DeprecationWarning`, for one release.
"""

from __future__ import annotations

import heapq
import itertools
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal

from typing_extensions import assert_never

from voiceguard._deprecated import warn_deprecated
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import (
    CreateOrigin,
    CreatePolicy,
    CreateRequest,
    ResponseCreateGuard,
)
from voiceguard.core.state import CallState
from voiceguard.decisions import Decision, Verdict
from voiceguard.protocol.realtime import (
    parse_realtime_event,
    response_cancel,
    response_create,
    session_update,
)

__all__ = ("RACES", "Race", "RaceOutcome", "play_race", "render", "summary_rows")

LATENCY = 0.03  # seconds, each way
Intent = Literal["turn_end", "barge_in", "watchdog", "tool_result", "greeting", "hang_up"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Race:
    """A scripted call that provokes one race: what the bot's logic wants, and when."""

    name: str
    title: str
    intents: Sequence[tuple[float, Intent]]
    #: Seconds of audio each response generates, in order of creation.
    response_lengths: Sequence[float] = (3.0,)
    #: What a naive bridge gets wrong here, in one line.
    problem: str = ""


@dataclass(slots=True, kw_only=True)
class RaceOutcome:
    """What one client did in one race."""

    sent: Counter[str] = field(default_factory=Counter)
    server_errors: Counter[str] = field(default_factory=Counter)
    decisions: Counter[str] = field(default_factory=Counter)
    creates_after_hang_up: int = 0
    lost_requests: int = 0


class _StrictServer:
    """The Realtime server's rules for the default conversation, in full turn control."""

    def __init__(self, lengths: Sequence[float]) -> None:
        self.active: str | None = None
        self.lengths = list(lengths)
        self.count = 0
        self.errors: Counter[str] = Counter()

    def receive(self, message: dict[str, Any], now: float) -> list[tuple[float, dict[str, Any]]]:
        kind = message["type"]
        if kind == "response.create":
            if self.active is not None:
                return [(now, self._error("conversation_already_has_active_response"))]
            self.count += 1
            response_id = f"resp_{self.count}"
            item_id = f"item_{self.count}"
            self.active = response_id
            length = self.lengths[min(self.count - 1, len(self.lengths) - 1)]
            audio_ends = now + length / 4  # generated four times faster than real time
            return [
                (now, {"type": "response.created", "response": _response(response_id)}),
                (
                    now,
                    {
                        "type": "response.output_item.added",
                        "response_id": response_id,
                        "output_index": 0,
                        "item": {"id": item_id, "type": "message", "role": "assistant"},
                    },
                ),
                (audio_ends, {"type": "_finish", "response_id": response_id, "item_id": item_id}),
            ]
        if kind == "response.cancel":
            if self.active is None:
                return [(now, self._error("response_cancel_not_active"))]
            response_id, self.active = self.active, None
            return [
                (now, {"type": "response.done", "response": _response(response_id, "cancelled")})
            ]
        return []

    def finish(
        self, response_id: str, item_id: str, now: float
    ) -> list[tuple[float, dict[str, Any]]]:
        if self.active != response_id:
            return []  # cancelled meanwhile
        self.active = None
        return [
            (
                now,
                {
                    "type": "response.output_audio.done",
                    "response_id": response_id,
                    "item_id": item_id,
                    "output_index": 0,
                    "content_index": 0,
                },
            ),
            # The real server sends a few more *.done events in between.
            (now + 0.02, {"type": "response.done", "response": _response(response_id)}),
        ]

    def _error(self, code: str) -> dict[str, Any]:
        self.errors[code] += 1
        return {
            "type": "error",
            "error": {"type": "invalid_request_error", "code": code, "message": code},
        }


def _response(response_id: str, status: str = "in_progress") -> dict[str, Any]:
    return {"id": response_id, "object": "realtime.response", "status": status, "output": []}


#: What the bot's logic asks the create guard for, by intent.
_CREATE_REQUESTS: Final = {
    "turn_end": CreateRequest(label="turn"),
    "greeting": CreateRequest(greeting=True, label="greeting"),
    "tool_result": CreateRequest(label="tool_result"),
    "watchdog": CreateRequest(
        origin=CreateOrigin.AUTOMATIC, policy=CreatePolicy.DROP, label="watchdog"
    ),
}


class _Client:
    """Decides what to send for each intent and each event; naive or guarded."""

    def __init__(self, *, guarded: bool, outcome: RaceOutcome) -> None:
        self.guarded = guarded
        self.outcome = outcome
        self.state = CallState(call_sid="CA_tour")
        self.state.observe(
            parse_realtime_event({"type": "session.updated", "event_id": "event_0", **_session()})
        )
        self.cancels = CancelArbiter(self.state, on_decision=self._count)
        self.creates = ResponseCreateGuard(self.state, on_decision=self._count)
        self.hung_up = False
        self.bot_speaking_until = 0.0

    def _count(self, decision: Decision) -> None:
        if decision.verdict is not Verdict.ALLOW:
            self.outcome.decisions[f"{decision.verdict.value} {decision.reason.value}"] += 1

    def intent(self, intent: Intent, now: float) -> list[dict[str, Any]]:
        match intent:
            case "hang_up":
                self.hung_up = True
                self.state.begin_hangup()
                return []
            case "barge_in":
                if not self.guarded:
                    return [response_cancel()]
                decision = self.cancels.request(now)
                return [response_cancel(decision.response_id)] if decision.allowed else []
            case "turn_end" | "greeting" | "tool_result" | "watchdog":
                return self._create(_CREATE_REQUESTS[intent], now)
            case unexpected:
                assert_never(unexpected)

    def _create(self, request: CreateRequest, now: float) -> list[dict[str, Any]]:
        if not self.guarded:
            return [response_create()]
        return [response_create()] if self.creates.request(request, now).allowed else []

    def receive(self, message: dict[str, Any], now: float) -> list[dict[str, Any]]:
        event = parse_realtime_event(message)
        if self.guarded:
            self.state.observe(event)
            out: list[dict[str, Any]] = []
            released_cancel = self.cancels.release(now)
            if released_cancel is not None and released_cancel.allowed:
                out.append(response_cancel(released_cancel.response_id))
            if self.creates.release(now) is not None:
                out.append(response_create())
            return out
        return []


def _session() -> dict[str, Any]:
    update = session_update()
    return {"session": update["session"]}


def play_race(race: Race, *, guarded: bool) -> RaceOutcome:
    """Play *race* with a naive or a guarded client.

    Args:
        race: The scripted call.
        guarded: Ask the guards before sending (True), or send whatever the logic asks for.

    Returns:
        What the client sent and what the server made of it.
    """
    outcome = RaceOutcome()
    server = _StrictServer(race.response_lengths)
    client = _Client(guarded=guarded, outcome=outcome)
    sequence = itertools.count()
    ids = itertools.count(1)
    queue: list[tuple[float, int, str, Any]] = []

    def push(at: float, kind: str, payload: Any) -> None:
        heapq.heappush(queue, (at, next(sequence), kind, payload))

    for at, intent in race.intents:
        push(at, "intent", intent)

    def client_sends(messages: list[dict[str, Any]], now: float) -> None:
        for message in messages:
            kind = message["type"]
            outcome.sent[kind] += 1
            if kind == "response.create" and client.hung_up:
                outcome.creates_after_hang_up += 1
            push(now + LATENCY, "to_server", message)

    while queue:
        now, _, kind, payload = heapq.heappop(queue)
        if kind == "intent":
            client_sends(client.intent(payload, now), now)
        elif kind == "to_client":
            client_sends(client.receive(payload, now), now)
        else:
            replies = (
                server.receive(payload, now)
                if kind == "to_server"
                else server.finish(payload["response_id"], payload["item_id"], now)
            )
            for at, reply in replies:
                if reply["type"] == "_finish":
                    push(at, "finish", reply)
                else:
                    push(at + LATENCY, "to_client", {"event_id": f"event_{next(ids)}", **reply})
    outcome.server_errors = server.errors
    if guarded:
        outcome.lost_requests = len(client.creates.pending())
    return outcome


#: The races ``voiceguard tour`` plays, in order.
RACES: tuple[Race, ...] = (
    Race(
        name="speech-burst",
        title="speech_started burst while the bot speaks",
        intents=((0.0, "turn_end"), (0.5, "barge_in"), (0.52, "barge_in"), (0.55, "barge_in")),
        problem="one cancel per speech_started; the 2nd and 3rd find nothing active",
    ),
    Race(
        name="cancel-after-done",
        title="barge-in while the finished response still plays",
        intents=((0.0, "turn_end"), (2.0, "barge_in")),
        problem="response.done arrived long ago; the audio is only still playing on the phone",
    ),
    Race(
        name="cancel-races-done",
        title="barge-in between output_audio.done and response.done",
        intents=((0.0, "turn_end"), (0.815, "barge_in")),
        problem="the cancel crosses response.done on the wire",
    ),
    Race(
        name="watchdog",
        title="watchdog fires while a long response runs",
        intents=((0.0, "turn_end"), (3.0, "watchdog")),
        response_lengths=(16.0,),
        problem="the watchdog's response.create collides with the running response",
    ),
    Race(
        name="tool-during-greeting",
        title="tool result arrives during the greeting",
        intents=((0.0, "greeting"), (0.3, "tool_result")),
        response_lengths=(4.0, 2.0),
        problem="the tool result's response.create is rejected and its answer never comes",
    ),
    Race(
        name="create-after-hang-up",
        title="a late turn end after the goodbye started",
        intents=((0.0, "turn_end"), (0.1, "hang_up"), (2.0, "turn_end")),
        problem="the bot starts a new answer over its own goodbye",
    ),
)


def summary_rows(races: Sequence[Race] = RACES) -> list[dict[str, Any]]:
    """Play every race both ways; one row of plain data per race.

    Args:
        races: The races to play.

    Returns:
        One row per race (its name under ``"scenario"``, as ``voiceguard tour --json``
        prints it), with what each client did.
    """
    rows = []
    for race in races:
        naive = play_race(race, guarded=False)
        guarded = play_race(race, guarded=True)
        rows.append(
            {
                "scenario": race.name,
                "title": race.title,
                "problem": race.problem,
                "naive": _as_dict(naive),
                "guarded": _as_dict(guarded),
            }
        )
    return rows


def _as_dict(outcome: RaceOutcome) -> dict[str, Any]:
    return {
        "sent": dict(outcome.sent),
        "server_errors": dict(outcome.server_errors),
        "creates_after_hang_up": outcome.creates_after_hang_up,
        "guard_decisions": dict(outcome.decisions),
    }


def render(rows: list[dict[str, Any]]) -> str:
    """The rows as a table a person reads at a glance.

    Args:
        rows: What :func:`summary_rows` returned.

    Returns:
        The table, and a last line with each client's problems added up.
    """

    def problems(side: dict[str, Any]) -> int:
        return int(sum(side["server_errors"].values()) + side["creates_after_hang_up"])

    def describe(side: dict[str, Any]) -> str:
        parts = [f"{code}" for code in side["server_errors"]]
        if side["creates_after_hang_up"]:
            parts.append("create after hang-up")
        return ", ".join(parts) or "-"

    header = (
        "scenario",
        "naive: problems",
        "guarded: problems",
        "guarded: sent",
        "guarded: what the guards did",
    )
    body = []
    for row in rows:
        naive, guarded = row["naive"], row["guarded"]
        did = ", ".join(f"{k} x{v}" for k, v in guarded["guard_decisions"].items()) or "-"
        body.append(
            (
                row["scenario"],
                f"{problems(naive)}  {describe(naive)}",
                f"{problems(guarded)}  {describe(guarded)}",
                ", ".join(f"{k} x{v}" for k, v in sorted(guarded["sent"].items())) or "-",
                did,
            )
        )
    widths = [max(len(r[i]) for r in (header, *body)) for i in range(len(header))]
    line = "  ".join("-" * w for w in widths)

    def join(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [join(header), line, *(join(r) for r in body)]
    total_naive = sum(problems(r["naive"]) for r in rows)
    total_guarded = sum(problems(r["guarded"]) for r in rows)
    out += [line, f"problems: naive {total_naive}, guarded {total_guarded}"]
    return "\n".join(out)


#: The names of 0.1, which said "scenario" for what the simulator calls a scenario too.
_RENAMED: Final = {
    "SCENARIOS": "RACES",
    "Scenario": "Race",
    "Outcome": "RaceOutcome",
    "run_scenario": "play_race",
}


def __getattr__(name: str) -> object:
    if name in _RENAMED:
        new = _RENAMED[name]
        warn_deprecated(
            f"voiceguard.demo.tour.{name}", f"use {new} (a race is not a voiceguard.sim scenario)"
        )
        return globals()[new]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
