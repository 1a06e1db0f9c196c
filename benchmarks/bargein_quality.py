"""Barge-in quality on the labelled corpus: voiceguard's CalibrationGate against the anchors.

Usage::

    python benchmarks/bargein_quality.py            # table + per-condition breakdown
    python benchmarks/bargein_quality.py --json     # the same numbers as JSON
    python benchmarks/bargein_quality.py --plot docs/_static   # and the two charts of the docs

``--plot DIR`` also draws the strategy comparison and the per-condition breakdown into
``DIR/bargein_strategies.png`` and ``DIR/bargein_conditions.png`` (needs matplotlib, the
``bench`` extra; see ``_bargein_charts.py``).

Every strategy sees the same calls (``benchmarks/corpus``) and the same ``speech_started`` events
(raised by :class:`voiceguard.sim.EnergyVad` with server_vad defaults, labelled by the generator as
``echo``, ``noise`` or ``real``). For each event a strategy either acts on it (treats it as a
barge-in) at some moment or never does.

* false barge-ins: share of ``echo`` and ``noise`` events acted on;
* missed barge-ins: share of ``real`` events never acted on;
* decision delay: for acted ``real`` events, the moment of acting minus the caller's true speech
  onset (the VAD's own detection lag included); "added" delay is the moment of acting minus the
  moment the event arrived.

Strategies (each modelled as the anchors document it; see ``docs/performance.md``):

* ``naive``: act on every ``speech_started`` (the Twilio sample with server VAD defaults).
* ``seed``: ignore ``speech_started`` until a calibration flag is set; the flag is set after a
  fixed 1 s of caller audio (a fixed-window RMS calibration).
* ``livekit``: ignore everything for 3 s after the bot first starts speaking (AEC warm-up), then
  act once speech has lasted 0.5 s (``min_duration``).
* ``pipecat``: mute the caller until the bot's first utterance has finished
  (``MuteUntilFirstBotCompleteUserMuteStrategy``), then act once speech has lasted 0.2 s
  (Silero ``start_secs``).
* ``voiceguard``: :class:`voiceguard.core.guards.calibration.CalibrationGate` with its default
  configuration, fed every 20 ms inbound frame, the outbound frames while the bot talks, and the
  events; deferred judgements are rechecked at the first frame at or after ``retry_at``.

The false and missed rates count only what a strategy decides about each ``speech_started``
(voiceguard: its judgement and rechecks). Late barge-ins (``CalibrationGate.poll_barge_in``,
polled after every inbound frame) are scored in a separate table:

* hidden caller utterances: utterances that begin inside a VAD segment opened by echo or noise,
  so the server raises no ``speech_started`` of their own; caught when a late barge-in of that
  segment comes after the utterance's true onset (first frame of the clean caller track within
  25 dB of the caller's level) and before the utterance ends; delay from that onset;
* recovered: ``real`` events suppressed at the event and allowed late inside their segment;
* spurious: late barge-ins while the clean caller track is silent (no caller frame within the
  last 200 ms): a false barge-in a bridge acting on them would make.

``--corpus DIR`` runs on another corpus directory (``cases.json`` and ``clips/``), e.g. one made
by ``generate.py --seed N`` in a copy of ``benchmarks/corpus`` for a held-out figure.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "corpus"))

import corpus  # noqa: E402

from voiceguard.config import CalibrationConfig  # noqa: E402
from voiceguard.core.guards.calibration import CalibrationGate  # noqa: E402

FRAME = 160
Acts = list[int | None]  # per event: the ms at which the strategy acted, or None
Late = list[tuple[int, int]]  # late barge-ins: (ms, index of the event whose segment it is in)


def _first_bot(case: dict[str, Any]) -> tuple[int, int]:
    """Start and end (ms) of the bot's first utterance."""
    turn = case["bot"][0]
    end = turn["start_ms"] + round(len(corpus.load_clip(turn["clip"])) * 1000 / corpus.RATE)
    return turn["start_ms"], min(end, turn.get("stop_ms", 10**9))


def _lasting(event: dict[str, Any], at_ms: int) -> bool:
    """True if the VAD segment of *event* is still going at *at_ms*."""
    stopped = event["speech_end_ms"]
    return stopped is None or stopped >= at_ms


def naive(case: dict[str, Any], _rendered: corpus.Rendered) -> Acts:
    return [e["detected_ms"] for e in case["events"]]


def seed(case: dict[str, Any], _rendered: corpus.Rendered) -> Acts:
    return [e["detected_ms"] if e["detected_ms"] >= 1000 else None for e in case["events"]]


def _min_duration(case: dict[str, Any], muted_until: int, muted_from: int, min_ms: int) -> Acts:
    acts: Acts = []
    for e in case["events"]:
        at = max(e["detected_ms"], e["speech_onset_ms"] + min_ms)
        if muted_from <= at < muted_until:
            at = muted_until
        acts.append(at if _lasting(e, at) else None)
    return acts


def livekit(case: dict[str, Any], _rendered: corpus.Rendered) -> Acts:
    start, _end = _first_bot(case)
    return _min_duration(case, muted_until=start + 3000, muted_from=start, min_ms=500)


def pipecat(case: dict[str, Any], _rendered: corpus.Rendered) -> Acts:
    _start, end = _first_bot(case)
    return _min_duration(case, muted_until=end, muted_from=0, min_ms=200)


def run_voiceguard(
    config: CalibrationConfig, case: dict[str, Any], rendered: corpus.Rendered
) -> tuple[Acts, Late]:
    """The gate on one call: its decision time per event, and its late barge-ins."""
    gate = CalibrationGate(config)
    events = case["events"]
    acts: Acts = [None] * len(events)
    late: Late = []
    by_detect = {e["detected_ms"]: i for i, e in enumerate(events)}
    by_stop = {e["stopped_ms"]: i for i, e in enumerate(events) if e["stopped_ms"]}
    pending: int | None = None
    segment: int | None = None  # the event whose VAD segment is open
    inbound, outbound, bot = rendered.inbound, rendered.outbound, rendered.bot_frames
    for i in range(len(bot)):
        t_ms = (i + 1) * 20
        now = t_ms / 1000
        if bot[i]:
            gate.push_outbound(outbound[i * FRAME : (i + 1) * FRAME], now)
        gate.push_inbound(inbound[i * FRAME : (i + 1) * FRAME], now)
        if gate.poll_barge_in(now) is not None and segment is not None:
            late.append((t_ms, segment))
        deadline = gate.next_deadline()
        if pending is not None and deadline is not None and now >= deadline - 1e-9:
            if gate.recheck(now).allowed:
                acts[pending] = t_ms
            if gate.next_deadline() is None:
                pending = None
        j = by_detect.get(t_ms)
        if j is not None:
            decision = gate.judge_speech_started(now, audio_start_ms=events[j]["audio_start_ms"])
            pending = j if decision.deferred else None
            segment = j
            if decision.allowed:
                acts[j] = t_ms
        if t_ms in by_stop:
            gate.speech_stopped(now)  # settles a deferral, ends the watch of the segment
            pending = None
            segment = None
    return acts, late


def make_voiceguard(config: CalibrationConfig) -> Callable[[dict[str, Any], corpus.Rendered], Acts]:
    def run(case: dict[str, Any], rendered: corpus.Rendered) -> Acts:
        return run_voiceguard(config, case, rendered)[0]

    return run


VOICEGUARD = CalibrationConfig()
STRATEGIES: dict[str, Callable[[dict[str, Any], corpus.Rendered], Acts]] = {
    "naive": naive,
    "seed": seed,
    "livekit": livekit,
    "pipecat": pipecat,
    "voiceguard": make_voiceguard(VOICEGUARD),
}

BANDS: dict[str, list[tuple[str, Callable[[dict[str, Any]], bool]]]] = {
    "echo return loss": [
        ("3-10 dB", lambda c: c["erl_db"] < 10),
        ("10-20 dB", lambda c: 10 <= c["erl_db"] < 20),
        ("20-30 dB", lambda c: c["erl_db"] >= 20),
    ],
    "echo delay": [
        ("40-200 ms", lambda c: c["delay_ms"] < 200),
        ("200-400 ms", lambda c: 200 <= c["delay_ms"] < 400),
        ("400-600 ms", lambda c: c["delay_ms"] >= 400),
    ],
    "line noise": [
        ("-70..-58 dBFS", lambda c: c["noise_dbfs"] < -58),
        ("-58..-47 dBFS", lambda c: -58 <= c["noise_dbfs"] < -47),
        ("-47..-35 dBFS", lambda c: c["noise_dbfs"] >= -47),
    ],
    "caller level": [
        ("-40..-30 dBFS", lambda c: c["caller_dbfs"] < -30),
        ("-30..-20 dBFS", lambda c: -30 <= c["caller_dbfs"] < -20),
        ("-20..-10 dBFS", lambda c: c["caller_dbfs"] >= -20),
    ],
    "non-linearity": [
        ("none", lambda c: c["nonlinearity"] == "none"),
        ("clipping", lambda c: c["nonlinearity"] == "clip"),
        ("AGC", lambda c: c["nonlinearity"] == "agc"),
    ],
    "call kind": [
        ("ordinary", lambda c: c["kind"] == "ordinary"),
        ("caller first", lambda c: c["kind"] == "caller_first"),
        ("silence only", lambda c: c["kind"] == "silence_only"),
    ],
}


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def score(rows: list[tuple[dict[str, Any], dict[str, Any], int | None]]) -> dict[str, Any]:
    """Rates and delays over (case condition, event, act time) rows."""
    bad = [(e, a) for _c, e, a in rows if e["label"] != "real"]
    real = [(e, a) for _c, e, a in rows if e["label"] == "real"]
    delays = [a - e["true_onset_ms"] for e, a in real if a is not None]
    added = [a - e["detected_ms"] for e, a in real if a is not None]
    return {
        "false_rate": sum(a is not None for _e, a in bad) / len(bad) if bad else 0.0,
        "missed_rate": sum(a is None for _e, a in real) / len(real) if real else 0.0,
        "median_delay_ms": statistics.median(delays) if delays else None,
        "p95_delay_ms": _percentile(delays, 0.95),
        "median_added_delay_ms": statistics.median(added) if added else None,
        "events_false_candidates": len(bad),
        "events_real": len(real),
    }


def late_outcome(
    case: dict[str, Any], rendered: corpus.Rendered, acts: Acts, late: Late
) -> dict[str, Any]:
    """Score one call's late barge-ins (see the module documentation)."""
    events = case["events"]
    caller_db = corpus.frame_db(rendered.caller)
    active = caller_db > case["condition"]["caller_dbfs"] - corpus.CALLER_ACTIVE_BELOW_DB
    end_ms = case["duration_ms"]
    hidden: list[int | None] = []  # per hidden utterance: delay of the late barge-in, or None
    for utt in case["caller"]:
        frames = np.flatnonzero(active[utt["start_ms"] // 20 :])
        if frames.size == 0:
            continue
        onset = utt["start_ms"] + int(frames[0]) * 20
        length = round(len(corpus.load_clip(utt["clip"])) * 1000 / corpus.RATE)
        segment = next(
            (
                k
                for k, e in enumerate(events)
                if e["label"] != "real"
                and e["speech_onset_ms"] <= onset < (e["speech_end_ms"] or end_ms)
            ),
            None,
        )
        if segment is None:
            continue
        caught = [t for t, k in late if k == segment and onset <= t <= utt["start_ms"] + length]
        hidden.append(caught[0] - onset if caught else None)
    recovered = [
        t - events[k]["true_onset_ms"]
        for t, k in late
        if events[k]["label"] == "real" and acts[k] is None
    ]
    spurious = sum(not active[max(0, t // 20 - 10) : t // 20].any() for t, _k in late)
    return {"hidden": hidden, "recovered": recovered, "spurious": spurious, "late": len(late)}


def main() -> None:
    parser = argparse.ArgumentParser(description="barge-in quality of each strategy")
    parser.add_argument("--json", action="store_true", help="print JSON instead of tables")
    parser.add_argument("--limit", type=int, default=None, help="only the first N calls")
    parser.add_argument(
        "--corpus", type=Path, default=None, help="corpus directory (cases.json and clips/)"
    )
    parser.add_argument(
        "--plot",
        type=Path,
        default=None,
        metavar="DIR",
        help="also draw bargein_strategies.png and bargein_conditions.png into DIR "
        "(needs matplotlib, the bench extra)",
    )
    args = parser.parse_args()
    if args.corpus is not None:
        corpus.CASES_FILE = args.corpus / "cases.json"
        corpus.CLIPS_DIR = args.corpus / "clips"
    cases = corpus.load_cases()[: args.limit]
    started = time.perf_counter()
    rows: dict[str, list[tuple[dict[str, Any], dict[str, Any], int | None]]] = {
        name: [] for name in STRATEGIES
    }
    outcomes: list[dict[str, Any]] = []
    for case in cases:
        rendered = corpus.render(case)
        for name, strategy in STRATEGIES.items():
            if name == "voiceguard":
                acts, late = run_voiceguard(VOICEGUARD, case, rendered)
                outcomes.append(late_outcome(case, rendered, acts, late))
            else:
                acts = strategy(case, rendered)
            rows[name].extend(
                (case["condition"], e, a) for e, a in zip(case["events"], acts, strict=True)
            )
    elapsed = time.perf_counter() - started
    hidden = [d for o in outcomes for d in o["hidden"]]
    caught = [d for d in hidden if d is not None]
    recovered = [d for o in outcomes for d in o["recovered"]]
    suppressed = sum(a is None and e["label"] != "real" for _c, e, a in rows["voiceguard"])
    late_summary = {
        "hidden_utterances": len(hidden),
        "hidden_caught": len(caught),
        "hidden_median_delay_ms": statistics.median(caught) if caught else None,
        "hidden_p95_delay_ms": _percentile([float(d) for d in caught], 0.95),
        "missed_events_recovered_late": len(recovered),
        "recovered_median_delay_ms": statistics.median(recovered) if recovered else None,
        "late_barge_ins": sum(o["late"] for o in outcomes),
        "spurious_late_barge_ins": sum(o["spurious"] for o in outcomes),
        "echo_noise_segments_suppressed": suppressed,
    }
    results = {name: score(r) for name, r in rows.items()}
    breakdown = {
        group: {
            band: {name: score([row for row in r if test(row[0])]) for name, r in rows.items()}
            for band, test in bands
        }
        for group, bands in BANDS.items()
    }
    labels = [e["label"] for c in cases for e in c["events"]]
    events = {k: labels.count(k) for k in ("echo", "noise", "real")}
    charts: list[Path] = []
    if args.plot is not None:
        from _bargein_charts import plot  # noqa: PLC0415 - matplotlib, only for the charts

        charts = plot(results, breakdown, events=events, calls=len(cases), out=args.plot)
    if args.json:
        print(
            json.dumps(
                {
                    "strategies": results,
                    "breakdown": breakdown,
                    "events": events,
                    "calls": len(cases),
                    "late_barge_ins": late_summary,
                    **({"charts": [str(path) for path in charts]} if charts else {}),
                },
                indent=2,
            )
        )
        return
    print(
        f"{len(cases)} calls, {len(labels)} speech_started events "
        f"({labels.count('echo')} echo, {labels.count('noise')} noise, "
        f"{labels.count('real')} real), {elapsed:.1f} s\n"
    )
    print(
        "| strategy | false barge-ins | missed barge-ins | false + missed "
        "| median delay | p95 delay | median added delay |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in results.items():

        def ms(v: float | None) -> str:
            return "-" if v is None else f"{v:.0f} ms"

        print(
            f"| {name} | {100 * r['false_rate']:.1f} % | {100 * r['missed_rate']:.1f} % | "
            f"{100 * (r['false_rate'] + r['missed_rate']):.1f} % | {ms(r['median_delay_ms'])} | "
            f"{ms(r['p95_delay_ms'])} | {ms(r['median_added_delay_ms'])} |"
        )
    ls = late_summary

    def ms2(v: float | None) -> str:
        return "-" if v is None else f"{v:.0f} ms"

    share = 100 * ls["hidden_caught"] / max(1, ls["hidden_utterances"])
    print(
        "\nLate barge-ins of voiceguard (CalibrationGate.poll_barge_in; not counted above)\n\n"
        "| hidden caller utterances | caught late | median delay | p95 delay "
        "| missed events recovered late | median delay | spurious late barge-ins |\n"
        "|---:|---:|---:|---:|---:|---:|---:|\n"
        f"| {ls['hidden_utterances']} "
        f"| {ls['hidden_caught']} ({share:.0f} %) "
        f"| {ms2(ls['hidden_median_delay_ms'])} | {ms2(ls['hidden_p95_delay_ms'])} "
        f"| {ls['missed_events_recovered_late']} | {ms2(ls['recovered_median_delay_ms'])} "
        f"| {ls['spurious_late_barge_ins']} of {ls['late_barge_ins']} "
        f"({ls['echo_noise_segments_suppressed']} echo/noise segments watched) |"
    )
    print("\nPer condition: false % / missed % (events: echo+noise / real)\n")
    names = list(STRATEGIES)
    print("| condition | band | " + " | ".join(names) + " | events |")
    print("|---|---|" + "---:|" * (len(names) + 1))
    for group, bands in breakdown.items():
        for band, per in bands.items():
            cells = [
                f"{100 * per[n]['false_rate']:.1f} / {100 * per[n]['missed_rate']:.1f}"
                for n in names
            ]
            count = per[names[0]]
            print(
                f"| {group} | {band} | "
                + " | ".join(cells)
                + f" | {count['events_false_candidates']} / {count['events_real']} |"
            )
    for path in charts:
        print(f"\nchart written to {path}")


if __name__ == "__main__":
    main()
