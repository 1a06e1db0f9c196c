"""What ``voiceguard call`` reports: each call's record as JSON, the table, and ``--check``.

:func:`judge` runs a scenario's rules against the calls' records alone (the caller's side);
:func:`build_report` gathers everything as JSON-ready data, and :func:`render` prints it in the
table style of ``voiceguard demo``.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, NoReturn, cast, final

from voiceguard.sim._call.plan import Plan
from voiceguard.sim.caller import CallerSimulator, CallRecord, Speak
from voiceguard.sim.scenarios import Scenario, ScenarioRun

if TYPE_CHECKING:
    from voiceguard.sim.realtime import RealtimeSimulator

__all__ = ("build_report", "judge", "render")

#: Calls side by side in one block of the table.
_CALLS_PER_BLOCK: Final = 6
#: Protocol errors listed per call (the count is always complete).
_ERRORS_LISTED: Final = 5


class _ModelSideUnseen(Exception):
    """A scenario rule looked at the model's side, which the caller cannot see."""


@final
class _UnseenModel:
    """Stands in for the scenario's model simulator in ``--check``: the bot talks to its own
    model, out of the caller's sight, so any look at it raises."""

    def __getattr__(self, name: str) -> NoReturn:
        raise _ModelSideUnseen(name)


# ============================================================================================
# The scenario's rules, as far as the caller's side decides them


def judge(scenario: Scenario, records: Sequence[CallRecord]) -> list[dict[str, Any]]:
    """Each rule of *scenario*: held (True or False) when the caller's records decide it, else
    why it is not judged.

    A rule's verdict is about the call the scenario scripts: when a step of the script never ran
    (the bot said less than the script waits for), the calls were not that call, so no rule is
    judged (a rule about a barge-in would be "broken" by a caller who never barged in).
    """
    skipped = any(record.skipped for record in records)
    unseen = cast("RealtimeSimulator", _UnseenModel())
    runs = [
        ScenarioRun(
            scenario=scenario,
            simulator=unseen,
            calls=tuple(records),
            leftover_tasks=leftover,
            started_at=records[0].started_at if records else 0.0,
        )
        for leftover in (0, 1)
    ]
    verdicts: list[dict[str, Any]] = []
    for rule in scenario.expectations:
        verdict: dict[str, Any] = {"rule": rule.describe(), "held": None, "why_not_judged": None}
        try:
            answers = {bool(rule.holds(run)) for run in runs}
        except _ModelSideUnseen:
            verdict["why_not_judged"] = "needs the model's side"
        except Exception as exc:  # a rule is the scenario's code: report, never crash
            verdict["why_not_judged"] = f"failed on these records ({type(exc).__name__}: {exc})"
        else:
            if len(answers) != 1:
                verdict["why_not_judged"] = "needs the bot's own tasks, which the caller cannot see"
            elif skipped:
                verdict["why_not_judged"] = "the script did not play out (see the skipped steps)"
            else:
                verdict["held"] = answers.pop()
        verdicts.append(verdict)
    return verdicts


# ============================================================================================
# The report


def _call_json(number: int, caller: CallerSimulator, record: CallRecord) -> dict[str, Any]:
    scripted = sum(1 for step in caller.script if isinstance(step, Speak))
    return {
        "call": number + 1,
        "call_sid": record.call_sid,
        "stream_sid": record.stream_sid,
        "heard": round(record.heard_seconds, 2),
        "marks": {
            "played": sum(1 for m in record.marks if not m.cleared),
            "cleared": sum(1 for m in record.marks if m.cleared),
        },
        "clears": len(record.clears),
        "clear_times": [round(t, 3) for t in record.clears],
        "spoke": [[round(start, 3), round(end, 3)] for start, end in record.spoke],
        "scripted_speech": scripted,
        "ended_at": None if record.ended_at is None else round(record.ended_at, 2),
        "ended_by": record.ended_by,
        "protocol_errors": list(record.protocol_errors),
        "skipped": list(record.skipped),
    }


#: What the verdicts of ``--check`` take for granted (the caller cannot see the model).
_ASSUMPTION: Final = (
    "the bot's model played the scenario's model side (its replies and faults): the rules are "
    "about the call the scenario scripts"
)


def _hint(scenario: Scenario) -> str:
    return (
        f"Only the caller's side of {scenario.name} was played: its model side (scripted "
        "replies, faults) is whatever model your bot talks to. For the whole scenario, point "
        f"your bot at `voiceguard simulate-model --scenario {scenario.name}` (it serves that "
        "model side to every connection): otherwise script steps timed on the bot's audio may "
        "not line up, and the rules --check judges hold only for the scenario's own model."
    )


def build_report(plan: Plan, records: Sequence[CallRecord], wall_seconds: float) -> dict[str, Any]:
    calls = [
        _call_json(n, c, r) for n, (c, r) in enumerate(zip(plan.callers, records, strict=False))
    ]
    rules = None
    if plan.check and plan.scenario is not None:
        rules = judge(plan.scenario, records)
    broken = rules is not None and any(v["held"] is False for v in rules)
    errors = any(c["protocol_errors"] for c in calls)
    return {
        "ok": not (broken or errors),
        "url": plan.url,
        "scenario": None if plan.scenario is None else plan.scenario.name,
        "wall_seconds": round(wall_seconds, 1),
        "calls": calls,
        "check": None if rules is None else {"assumes": _ASSUMPTION, "rules": rules},
        "model_side": None if plan.scenario is None else _hint(plan.scenario),
    }


def _table(calls: Sequence[Mapping[str, Any]]) -> list[str]:
    def seconds(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f} s"

    labels = (
        "bot audio heard",
        "marks echoed: played / flushed by a clear",
        "clears (barge-ins acted on)",
        "caller spoke",
        "call ended at",
        "ended by",
        "protocol errors in what the bot sent",
    )
    lines: list[str] = []
    for first in range(0, len(calls), _CALLS_PER_BLOCK):
        block = calls[first : first + _CALLS_PER_BLOCK]
        columns = [
            [
                f"call {c['call']}",
                f"{c['heard']:.2f} s",
                f"{c['marks']['played']} / {c['marks']['cleared']}",
                str(c["clears"]),
                f"{len(c['spoke'])} of {c['scripted_speech']}",
                seconds(c["ended_at"]),
                str(c["ended_by"] or "-"),
                str(len(c["protocol_errors"])),
            ]
            for c in block
        ]
        rows = [("", *(col[0] for col in columns))]
        rows += [(label, *(col[i + 1] for col in columns)) for i, label in enumerate(labels)]
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        if first:
            lines.append("")
        for row in rows:
            cells = [row[0].ljust(widths[0])] + [
                cell.rjust(width) for cell, width in zip(row[1:], widths[1:], strict=True)
            ]
            lines.append(("  " + "   ".join(cells)).rstrip())
    return lines


def render(report: Mapping[str, Any]) -> str:
    calls: list[dict[str, Any]] = report["calls"]
    what = f"scenario {report['scenario']}" if report["scenario"] else "a script"
    lines = [
        f"{what}, {len(calls)} call{'s' if len(calls) != 1 else ''} to {report['url']}, "
        f"in real time ({report['wall_seconds']:.1f} s)",
        "",
        *_table(calls),
        "",
        "  heard: the bot's audio as the phone played it, 20 ms a frame; a clear flushes the rest.",
        "  ended by: caller when the script (or its time limit) hung up, bot when the bot closed "
        "the stream.",
    ]
    for call in calls:
        notes = list(call["skipped"])
        errors: list[str] = call["protocol_errors"]
        notes += [f"Twilio would refuse: {e}" for e in errors[:_ERRORS_LISTED]]
        if len(errors) > _ERRORS_LISTED:
            notes.append(f"... and {len(errors) - _ERRORS_LISTED} more refused messages")
        if notes:
            lines.append("")
            lines.append(f"call {call['call']} ({call['call_sid']}):")
            lines.extend(f"  {note}" for note in notes)
    check: list[dict[str, Any]] | None = report["check"] and report["check"]["rules"]
    if check is not None:
        judgeable = [v for v in check if v["why_not_judged"] is None]
        lines.append("")
        lines.extend(
            textwrap.wrap(
                f"{report['scenario']}: {len(judgeable)} of its {len(check)} rules can be judged "
                "from the caller's side, if your bot's model played the scenario's model side:",
                width=100,
                subsequent_indent="  ",
            )
        )
        width = max(len(v["rule"]) for v in check)
        for verdict in check:
            if verdict["why_not_judged"] is not None:
                result = f"not judged: {verdict['why_not_judged']}"
            else:
                result = "held" if verdict["held"] else "BROKEN"
            lines.append(f"  {verdict['rule'].ljust(width)}   {result}")
    if report["model_side"]:
        lines.append("")
        lines.append(textwrap.fill(report["model_side"], width=100, break_on_hyphens=False))
    refused = sum(len(c["protocol_errors"]) for c in calls)
    broken = sum(1 for v in check or () if v["held"] is False)
    judged = sum(1 for v in check or () if v["held"] is not None)
    lines.append("")
    if report["ok"]:
        lines.append(
            "The bot sent nothing Twilio would refuse"
            + ("." if check is None else f", and broke no rule ({judged} judged).")
        )
    else:
        faults = []
        if refused:
            faults.append(
                f"sent {refused} message{'s' if refused != 1 else ''} Twilio would refuse"
            )
        if broken:
            faults.append(f"broke {broken} rule{'s' if broken != 1 else ''} ({judged} judged)")
        lines.append(f"The bot {' and '.join(faults)}: see above.")
    return "\n".join(lines)
