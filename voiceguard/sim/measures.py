"""What a bridge did to a call, measured from the simulators' records.

The measures behind ``voiceguard demo`` and the adoption examples, usable on any
:class:`~voiceguard.sim.scenarios.ScenarioRun`: protocol errors the model reported, false
barge-ins (the bot interrupted while the caller was silent: its own echo or line noise),
truncations past what the caller heard, and the scenario's own rules
(:func:`check_bridge`).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, final

from voiceguard.sim.caller import CallRecord
from voiceguard.sim.realtime import ConnectionRecord
from voiceguard.sim.scenarios import SCENARIOS, Bridge, Scenario, ScenarioRun, run_scenario

__all__ = (
    "TRUNCATE_SLACK_MS",
    "BridgeCheck",
    "check_bridge",
    "false_barge_ins",
    "render_checks",
    "truncations_beyond_heard",
)

#: How far past the audio heard a truncate may point (ms), for two 20 ms frames and rounding.
TRUNCATE_SLACK_MS: Final = 60
#: Bridge actions (a ``clear``, a cancelled response) this close together are one interruption.
_SAME_INTERRUPTION: Final = 1.0
#: An interruption this long after the caller stopped talking is still the caller's.
_SPEECH_TAIL: Final = 1.0
#: What a bridge stops this long before a call ends is the hang-up's clean-up.
_HANG_UP_FLUSH: Final = 0.5
#: A ``clear`` after which the caller hears the bot again this soon (s), uncancelled, was a pause.
_RESUMED_WITHIN: Final = 1.0
_AUDIO_DELTAS: Final = frozenset({"response.output_audio.delta", "response.audio.delta"})


def _caller_talking(record: CallRecord, at: float) -> bool:
    return any(start - 0.05 <= at <= end + _SPEECH_TAIL for start, end in record.spoke)


def false_barge_ins(record: CallRecord, own: Sequence[ConnectionRecord]) -> int:
    """Interruptions of the bot (a ``clear``, a cancelled response) while the caller was silent.

    Actions less than a second apart count as one interruption. What a bridge stops as the
    call ends (in its last half second) is the hang-up's clean-up, not an interruption: not
    counted. Nor is a pause the bot resumed from: a ``clear`` after which the caller hears the
    bot again within a second, with no response cancelled meanwhile (a guard pausing to listen
    whether the sound is its echo, then playing on from where it stopped).

    Args:
        record: The caller's record of the call.
        own: The model connections the bridge opened for this call.
    """
    cancels: list[float] = []
    for connection in own:
        for event in connection.sent("response.done"):
            response = event.event.get("response")
            if isinstance(response, Mapping) and response.get("status") == "cancelled":
                cancels.append(event.time - record.started_at)
    times = [at for at in record.clears if not _resumed(record, at, cancels)] + cancels
    ended = record.ended_at if record.ended_at is not None else math.inf
    count = 0
    previous = -math.inf
    for at in sorted(times):
        if at >= ended - _HANG_UP_FLUSH:
            break
        if at - previous > _SAME_INTERRUPTION and not _caller_talking(record, at):
            count += 1
        previous = at
    return count


def _resumed(record: CallRecord, cleared: float, cancels: Sequence[float]) -> bool:
    """True if the bot played on within a second of the ``clear`` at *cleared*, uncancelled."""
    again = next((h.time for h in record.heard if h.time > cleared), None)
    if again is None or again - cleared > _RESUMED_WITHIN:
        return False
    return not any(cleared <= at <= again + _RESUMED_WITHIN for at in cancels)


def truncations_beyond_heard(record: CallRecord, own: Sequence[ConnectionRecord]) -> int:
    """Truncates pointing past the audio of their item the caller could have heard by then.

    The caller heard at most the bot audio played between the item's first audio delta leaving
    the model and the truncate reaching it (an upper bound: earlier audio may still have been
    playing), so a truncate past that bound, by more than :data:`TRUNCATE_SLACK_MS`, is past
    what was heard.

    Args:
        record: The caller's record of the call.
        own: The model connections the bridge opened for this call.
    """
    count = 0
    for connection in own:
        first_audio: dict[str, float] = {}
        for event in connection.sent():
            if event.type in _AUDIO_DELTAS:
                first_audio.setdefault(str(event.event.get("item_id")), event.time)
        for event in connection.received("conversation.item.truncate"):
            end_ms = event.event.get("audio_end_ms")
            if not isinstance(end_ms, int):
                continue
            start = first_audio.get(str(event.event.get("item_id")))
            heard = (
                0.0
                if start is None
                else record.heard_between(start - record.started_at, event.time - record.started_at)
            )
            if end_ms > heard * 1000 + TRUNCATE_SLACK_MS:
                count += 1
    return count


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BridgeCheck:
    """One scenario played through a bridge, measured.

    Attributes:
        scenario: The scenario's name.
        protocol_errors: ``error`` events the model sent, by code (``"null"`` for none), leaving
            out cancels that crossed ``response.done`` on the wire (the one race no client can
            close, see :meth:`~voiceguard.sim.scenarios.ScenarioRun.crossed_cancels`).
        false_barge_ins: Interruptions of the bot while the caller was silent.
        truncations_beyond_heard: Truncates past what the caller heard.
        violations: The scenario's rules the bridge broke.
    """

    scenario: str
    protocol_errors: Mapping[str, int]
    false_barge_ins: int
    truncations_beyond_heard: int
    violations: tuple[str, ...]

    @classmethod
    def of(cls, run: ScenarioRun) -> BridgeCheck:
        """Measure *run* (model connections are matched to calls in order)."""
        falses = truncations = 0
        connections = run.connections
        for index, record in enumerate(run.calls):
            own = connections[index : index + 1]
            falses += false_barge_ins(record, own)
            truncations += truncations_beyond_heard(record, own)
        errors = Counter(code or "null" for code in run.error_codes(crossed=False))
        return cls(
            scenario=run.scenario.name,
            protocol_errors=dict(errors),
            false_barge_ins=falses,
            truncations_beyond_heard=truncations,
            violations=run.violations(),
        )

    @property
    def problems(self) -> int:
        """Protocol errors, false barge-ins and truncations beyond heard, together."""
        errors = sum(self.protocol_errors.values())
        return errors + self.false_barge_ins + self.truncations_beyond_heard


async def check_bridge(
    bridge: Bridge,
    scenarios: Iterable[Scenario] | None = None,
    *,
    provider: str = "openai",
    phone: str = "twilio",
) -> list[BridgeCheck]:
    """Play each scenario through *bridge*, one after the other, and measure it.

    Args:
        bridge: ``async def bridge(twilio, connect_model)``, as for
            :func:`~voiceguard.sim.scenarios.run_scenario`.
        scenarios: The scenarios; all of :data:`~voiceguard.sim.scenarios.SCENARIOS` by default.
        provider: Whose dialect the scenarios' model speaks: ``"openai"``, ``"azure"`` or
            ``"xai"``.
        phone: Whose media streams the scenarios' callers speak: ``"twilio"``, ``"telnyx"``,
            ``"plivo"`` or ``"vonage"``.

    Returns:
        One :class:`BridgeCheck` per scenario, in order. In virtual time (trio's ``MockClock``)
        this takes seconds, not the calls' length.
    """
    chosen = list(SCENARIOS.values()) if scenarios is None else list(scenarios)
    return [
        BridgeCheck.of(await run_scenario(scenario, bridge, provider=provider, phone=phone))
        for scenario in chosen
    ]


def render_checks(checks: Sequence[BridgeCheck]) -> str:
    """A table of *checks*, one scenario a line, and a total."""
    rows = [("scenario", "protocol errors", "false barge-ins", "truncated past heard", "rules")]
    for check in checks:
        errors = ", ".join(f"{n} {code}" for code, n in sorted(check.protocol_errors.items()))
        rows.append(
            (
                check.scenario,
                errors or "0",
                str(check.false_barge_ins),
                str(check.truncations_beyond_heard),
                f"{len(check.violations)} broken" if check.violations else "ok",
            )
        )
    total_errors = sum(sum(c.protocol_errors.values()) for c in checks)
    rows.append(
        (
            "total",
            str(total_errors),
            str(sum(c.false_barge_ins for c in checks)),
            str(sum(c.truncations_beyond_heard for c in checks)),
            f"{sum(len(c.violations) for c in checks)} broken",
        )
    )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    lines.insert(len(lines) - 1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
