"""Barge-in quality on the labelled corpora: voiceguard's CalibrationGate against the anchors.

Usage::

    python benchmarks/bargein_quality.py            # tables, tuning corpus and held-out
    python benchmarks/bargein_quality.py --json     # the same numbers as JSON
    python benchmarks/bargein_quality.py --plot docs/_static   # and the two charts of the docs

``--plot DIR`` also draws the strategy comparison and the per-condition chart into
``DIR/bargein_strategies.png`` and ``DIR/bargein_conditions.png`` (needs matplotlib, the
``bench`` extra; see ``_bargein_charts.py``). Progress goes to stderr.

Two corpora are scored side by side: the tuning corpus (``benchmarks/corpus``) and the held-out
draw (``benchmarks/corpus/heldout``: another seed, other voices, other texts). Every strategy sees
the same calls and the same ``speech_started`` events (raised by :class:`voiceguard.sim.EnergyVad`
with server_vad defaults, labelled by the generator as ``echo``, ``noise``, ``real`` or
``backchannel``). For each event a strategy either acts on it (treats it as a barge-in) at some
moment or never does.

* false barge-ins: share of ``echo`` and ``noise`` events acted on;
* missed barge-ins: share of ``real`` events never acted on;
* backchannels that stop the bot, and short real barge-ins ("stop", "wait") that do: per
  utterance: a strategy that acts on the utterance's own event, or on any event while it
  sounds, stops the bot (see ``_bargein_scoring.utterance_outcomes``; for voiceguard the turn
  engine must also confirm, as modelled by ``_bargein_scoring.engine_confirms_paused``: the
  engine's confirmation time, and the segment as the VAD would see it once the bot paused);
* decision delay: for acted ``real`` events, the moment of acting minus the caller's true speech
  onset (the VAD's own detection lag included); "added" delay is the moment of acting minus the
  moment the event arrived;
* per condition (``_bargein_scoring.CONDITIONS``): false and missed per band of the line, per
  background kind and level, canceller residue, delay drift, language and caller.

Strategies (each modelled as the anchors document it; see ``docs/performance.md``):

* ``naive``: act on every ``speech_started`` (the Twilio sample with server VAD defaults).
* ``seed``: ignore ``speech_started`` until a calibration flag is set; the flag is set after a
  fixed 1 s of caller audio (a fixed-window RMS calibration).
* ``livekit``: ignore everything for 3 s after the bot first starts speaking (AEC warm-up), then
  act once speech has lasted 0.5 s (``min_duration``).
* ``pipecat``: mute the caller until the bot's first utterance has finished
  (``MuteUntilFirstBotCompleteUserMuteStrategy``), then act once speech has lasted 0.2 s.
* ``voiceguard``: :class:`voiceguard.core.guards.calibration.CalibrationGate` with its default
  configuration, fed every 20 ms inbound frame, the outbound frames the bot plays, and the
  events; deferred judgements are rechecked at the first frame at or after ``retry_at``.

Pause to listen: when the gate defers with ``Reason.ECHO_UNCERTAIN`` the bot pauses from the
next frame: its frames are not played, so they are not pushed to the gate and their echo is not
in the inbound (re-rendered from the outbound as played: the echo is causal). The pause ends at
the gate's next final decision: ALLOW is a barge-in, SUPPRESS (or the segment's end) lets the
bot play on. An echo or noise event paused and then suppressed is a listening pause, counted
with its length, not a false barge-in. The VAD events stay those labelled on the unpaused call.

The false and missed rates count only what a strategy decides about each ``speech_started``
(voiceguard: its judgement and rechecks). Late barge-ins (``CalibrationGate.poll_barge_in``,
polled after every inbound frame) are scored in a separate table: hidden caller utterances
(inside a VAD segment opened by echo or noise, caught by a late barge-in after their onset),
``real`` events recovered late, and spurious late barge-ins (while the clean caller track is
silent for 200 ms).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "corpus"))

import corpus  # noqa: E402
from _bargein_scoring import (  # noqa: E402
    Acts,
    Late,
    Row,
    breakdown,
    late_outcome,
    score,
    summarize_late,
    utterance_outcomes,
)

from voiceguard.config import CalibrationConfig  # noqa: E402
from voiceguard.core.guards.calibration import CalibrationGate  # noqa: E402
from voiceguard.decisions import Reason  # noqa: E402

FRAME = 160
#: The reason of a deferral that pauses the bot (absent in gates without the pause to listen).
ECHO_UNCERTAIN = getattr(Reason, "ECHO_UNCERTAIN", None)
CORPORA = {"tuning": corpus.MAIN, "held-out": corpus.HELDOUT}
Strategy = Callable[[dict[str, Any], corpus.Store], Acts]


def _first_bot(case: dict[str, Any], store: corpus.Store) -> tuple[int, int]:
    """Start and end (ms) of the bot's first utterance."""
    turn = case["bot"][0]
    end = turn["start_ms"] + store.clip_ms(turn["clip"])
    return turn["start_ms"], min(end, turn.get("stop_ms", 10**9))


def _lasting(event: dict[str, Any], at_ms: int) -> bool:
    """True if the VAD segment of *event* is still going at *at_ms*."""
    stopped = event["speech_end_ms"]
    return stopped is None or stopped >= at_ms


def naive(case: dict[str, Any], _store: corpus.Store) -> Acts:
    """Act on every event."""
    return [e["detected_ms"] for e in case["events"]]


def seed(case: dict[str, Any], _store: corpus.Store) -> Acts:
    """Act on every event after a fixed 1 s calibration."""
    return [e["detected_ms"] if e["detected_ms"] >= 1000 else None for e in case["events"]]


def _min_duration(case: dict[str, Any], muted_until: int, muted_from: int, min_ms: int) -> Acts:
    """Act once speech has lasted ``min_ms``, deaf from ``muted_from`` to ``muted_until``."""
    acts: Acts = []
    for e in case["events"]:
        at = max(e["detected_ms"], e["speech_onset_ms"] + min_ms)
        if muted_from <= at < muted_until:
            at = muted_until
        acts.append(at if _lasting(e, at) else None)
    return acts


def livekit(case: dict[str, Any], store: corpus.Store) -> Acts:
    """3 s of AEC warm-up after the bot first speaks, then 0.5 s of speech."""
    start, _end = _first_bot(case, store)
    return _min_duration(case, muted_until=start + 3000, muted_from=start, min_ms=500)


def pipecat(case: dict[str, Any], store: corpus.Store) -> Acts:
    """Deaf until the bot's first utterance ends, then 0.2 s of speech."""
    _start, end = _first_bot(case, store)
    return _min_duration(case, muted_until=end, muted_from=0, min_ms=200)


@dataclass(slots=True)
class GateRun:
    """The voiceguard strategy on one call."""

    acts: Acts
    late: Late = field(default_factory=list)
    late_from: list[float | None] = field(default_factory=list)  # per late barge-in: its start
    late_echo_known: list[bool] = field(default_factory=list)  # ... and the echo path learnt
    act_echo_known: list[bool] = field(default_factory=list)  # per event: that, when acted on
    pauses: list[tuple[int, int, bool]] = field(default_factory=list)  # (event, ms, allowed)


def run_voiceguard(
    config: CalibrationConfig, case: dict[str, Any], rendered: corpus.Rendered
) -> GateRun:
    """The gate on one call: its decision time per event, its late barge-ins, its pauses."""
    gate = CalibrationGate(config)
    events = case["events"]
    run = GateRun([None] * len(events), act_echo_known=[False] * len(events))
    by_detect = {e["detected_ms"]: i for i, e in enumerate(events)}
    by_stop = {e["stopped_ms"]: i for i, e in enumerate(events) if e["stopped_ms"]}
    pending: int | None = None
    segment: int | None = None  # the event whose VAD segment is open
    paused: tuple[int, int] | None = None  # (event, ms) of the pause to listen under way
    bot = rendered.bot_frames
    muted = np.zeros(len(bot), dtype=bool)
    inbound, outbound = rendered.inbound, rendered.outbound

    def settle(t_ms: int, allowed: bool) -> None:
        nonlocal paused, inbound
        if paused is not None:
            run.pauses.append((paused[0], t_ms - paused[1], allowed))
            paused = None
            inbound = rendered.inbound_with(muted)  # the bot plays on from the next frame

    def decided(j: int, decision: Any, t_ms: int) -> None:
        nonlocal paused, inbound
        if decision.allowed and run.acts[j] is None:
            run.acts[j] = t_ms
            run.act_echo_known[j] = gate.statistics().echo_delay_ms is not None
        if ECHO_UNCERTAIN is not None and decision.deferred and decision.reason is ECHO_UNCERTAIN:
            if paused is None:
                paused = (j, t_ms)
                future = muted.copy()
                future[t_ms // 20 :] |= bot[t_ms // 20 :]
                inbound = rendered.inbound_with(future)
        elif not decision.deferred:
            settle(t_ms, decision.allowed)

    for i in range(len(bot)):
        t_ms = (i + 1) * 20
        now = t_ms / 1000
        if bot[i] and paused is not None:
            muted[i] = True
        elif bot[i]:
            gate.push_outbound(outbound[i * FRAME : (i + 1) * FRAME], now)
        gate.push_inbound(inbound[i * FRAME : (i + 1) * FRAME], now)
        if gate.poll_barge_in(now) is not None and segment is not None:
            run.late.append((t_ms, segment))
            run.late_from.append(gate.late_speech_from_ms())
            run.late_echo_known.append(gate.statistics().echo_delay_ms is not None)
            settle(t_ms, True)
        deadline = gate.next_deadline()
        if pending is not None and deadline is not None and now >= deadline - 1e-9:
            decided(pending, gate.recheck(now), t_ms)
            if gate.next_deadline() is None:
                pending = None
        j = by_detect.get(t_ms)
        if j is not None:
            decision = gate.judge_speech_started(now, audio_start_ms=events[j]["audio_start_ms"])
            pending = j if decision.deferred else None
            segment = j
            decided(j, decision, t_ms)
        if t_ms in by_stop:
            # Settles a deferral (a segment listened to is judged on what the pause let
            # through) and ends the watch of the segment.
            settled = gate.speech_stopped(now)
            if settled is not None and pending is not None:
                decided(pending, settled, t_ms)
            settle(t_ms, False)
            pending = None
            segment = None
    return run


VOICEGUARD = CalibrationConfig()
STRATEGIES: dict[str, Strategy | None] = {
    "naive": naive,
    "seed": seed,
    "livekit": livekit,
    "pipecat": pipecat,
    "voiceguard": None,  # run_voiceguard, which also yields late barge-ins and pauses
}


def _share(outcomes: list[tuple[str, bool]], role: str) -> dict[str, Any]:
    """How many utterances of ``role`` stopped the bot, of how many."""
    of = [stopped for r, stopped in outcomes if r == role]
    return {"stopped": sum(of), "of": len(of), "rate": sum(of) / len(of) if of else 0.0}


def _pauses(runs: list[tuple[dict[str, Any], GateRun]]) -> dict[str, Any]:
    """The pauses to listen of the voiceguard strategy, by the label of their event."""
    out: dict[str, Any] = {"available": ECHO_UNCERTAIN is not None}
    for name, labels, allowed in (
        ("listening_pauses", ("echo", "noise"), False),
        ("false_after_pause", ("echo", "noise"), True),
        ("real_allowed_after_pause", ("real",), True),
        ("real_suppressed_after_pause", ("real",), False),
        ("backchannel_pauses", ("backchannel",), None),
    ):
        ms = [
            ms
            for case, run in runs
            for j, ms, ok in run.pauses
            if case["events"][j]["label"] in labels and (allowed is None or ok == allowed)
        ]
        out[name] = {"count": len(ms), "median_ms": statistics.median(ms) if ms else None}
    return out


def evaluate(store: corpus.Store, limit: int | None, label: str) -> dict[str, Any]:
    """Every strategy on one corpus: rates, breakdown, utterances, late barge-ins, pauses."""
    cases = store.cases()[:limit]
    index = store.index()
    started = time.perf_counter()
    rows: dict[str, list[Row]] = {name: [] for name in STRATEGIES}
    utterances: dict[str, list[tuple[str, bool]]] = {name: [] for name in STRATEGIES}
    outcomes: list[dict[str, Any]] = []
    runs: list[tuple[dict[str, Any], GateRun]] = []
    for k, case in enumerate(cases):
        if k % 100 == 0:
            print(f"{label}: call {k}/{len(cases)}", file=sys.stderr)
        rendered = corpus.render(case, store=store)
        for name, strategy in STRATEGIES.items():
            late: Late | None = None
            gate: GateRun | None = None
            if strategy is None:
                run = gate = run_voiceguard(VOICEGUARD, case, rendered)
                acts, late = run.acts, run.late
                outcomes.append(
                    late_outcome(
                        case,
                        rendered=rendered,
                        index=index,
                        clip_ms=store.clip_ms,
                        acts=acts,
                        late=late,
                    )
                )
                runs.append((case, run))
            else:
                acts = strategy(case, store)
            rows[name].extend(
                (case["condition"], e, a) for e, a in zip(case["events"], acts, strict=True)
            )
            utterances[name] += utterance_outcomes(
                case,
                index=index,
                clip_ms=store.clip_ms,
                acts=acts,
                late=late,
                gate=gate,
            )
    results = {name: score(r) for name, r in rows.items()}
    for name, result in results.items():
        result["backchannels"] = _share(utterances[name], "backchannel")
        result["short_barge_ins"] = _share(utterances[name], "short")
    labels = [e["label"] for c in cases for e in c["events"]]
    suppressed = sum(a is None and e["label"] != "real" for _c, e, a in rows["voiceguard"])
    return {
        "strategies": results,
        "breakdown": breakdown(rows),
        "events": {k: labels.count(k) for k in ("echo", "noise", "real", "backchannel")},
        "calls": len(cases),
        "minutes": round(sum(c["duration_ms"] for c in cases) / 60000, 1),
        "late_barge_ins": summarize_late(outcomes, suppressed),
        "pauses": _pauses(runs),
        "seconds": round(time.perf_counter() - started, 1),
    }


def main() -> None:
    """Score both corpora; print tables or JSON; draw the charts on request."""
    parser = argparse.ArgumentParser(description="barge-in quality of each strategy")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--limit", type=int, default=None, help="only the first N calls of each")
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="also draw bargein_strategies.png and bargein_conditions.png into DIR "
        "(needs matplotlib, the bench extra)",
    )
    args = parser.parse_args()
    started = time.perf_counter()
    results = {name: evaluate(store, args.limit, name) for name, store in CORPORA.items()}
    print(f"both corpora scored in {time.perf_counter() - started:.1f} s", file=sys.stderr)
    charts: list[Path] = []
    if args.plot is not None:
        from _bargein_charts import plot  # noqa: PLC0415 - matplotlib, only for the charts

        charts = plot(results, out=args.plot)
    if args.json:
        main_corpus = results["tuning"]
        payload = {**main_corpus, "corpora": results, "charts": [str(p) for p in charts]}
        print(json.dumps(payload, indent=2))
        return
    from _bargein_tables import print_tables  # noqa: PLC0415 - the text report only

    print_tables(results)
    for path in charts:
        print(f"\nchart written to {path}")


if __name__ == "__main__":
    main()
