"""Plot one corpus call with the gate's decisions (the figure of docs/calibration.md).

Usage::

    pip install matplotlib
    python benchmarks/plot_example_call.py [--case call0123] [--out FILE.png]

Without ``--case`` it picks the first ordinary call that has echo events and a real barge-in
during the bot's speech. Panels: the bot's audio as handed to the phone; the caller channel with
its parts (echo of the bot, caller speech, line noise) coloured from the corpus's clean tracks;
frame energies with the gate's noise floor and its echo prediction; and every ``speech_started``
with its label and the gate's decision, plus the late barge-ins the gate reports inside a
suppressed segment (labelled with the segment's event).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "corpus"))

import corpus  # noqa: E402

from voiceguard.audio import decode_ulaw  # noqa: E402
from voiceguard.core.guards.calibration import CalibrationGate  # noqa: E402

FRAME = 160


def pick(cases: list[dict[str, Any]]) -> dict[str, Any]:
    for case in cases:
        events = case["events"]
        cond = case["condition"]
        if (
            cond["kind"] == "ordinary"
            and 8 <= cond["erl_db"] <= 16
            and sum(e["label"] == "echo" for e in events) >= 2
            and any(e["label"] == "real" and e["bot_active"] for e in events)
            and case["duration_ms"] <= 16000
        ):
            return case
    return cases[0]


def main() -> None:
    import matplotlib  # noqa: PLC0415  (optional dependency, only needed for the figure)

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--case", default=None)
    parser.add_argument(
        "--out", default=str(HERE.parent / "docs" / "_static" / "calibration_example.png")
    )
    args = parser.parse_args()
    cases = corpus.load_cases()
    case = next(c for c in cases if c["id"] == args.case) if args.case else pick(cases)
    rendered = corpus.render(case)
    n_frames = len(rendered.bot_frames)
    gate = CalibrationGate()
    floor = np.full(n_frames, np.nan)
    echo_pred = np.full(n_frames, np.nan)
    decisions: list[tuple[float, dict[str, Any], str]] = []
    by_detect = {e["detected_ms"]: e for e in case["events"]}
    stops = {e["stopped_ms"] for e in case["events"] if e["stopped_ms"]}
    pending: dict[str, Any] | None = None
    segment: dict[str, Any] | None = None
    for i in range(n_frames):
        now = (i + 1) * 0.02
        if rendered.bot_frames[i]:
            gate.push_outbound(rendered.outbound[i * FRAME : (i + 1) * FRAME], now)
        gate.push_inbound(rendered.inbound[i * FRAME : (i + 1) * FRAME], now)
        late = gate.poll_barge_in(now)
        if late is not None and segment is not None:
            decisions.append((now, segment, f"{late.verdict.value} {late.reason.value} (late)"))
        stats = gate.statistics()
        if stats.calibrated and stats.noise_floor_dbfs is not None:
            floor[i] = stats.noise_floor_dbfs
        deadline = gate.next_deadline()
        if pending is not None and deadline is not None and now >= deadline - 1e-9:
            d = gate.recheck(now)
            decisions.append((now, pending, f"{d.verdict.value} {d.reason.value}"))
            if not d.deferred:
                pending = None
        event = by_detect.get((i + 1) * 20)
        if event is not None:
            d = gate.judge_speech_started(now, audio_start_ms=event["audio_start_ms"])
            decisions.append((now, event, f"{d.verdict.value} {d.reason.value}"))
            pending = event if d.deferred else None
            segment = event
        if (i + 1) * 20 in stops:
            gate.speech_stopped(now)
            pending = segment = None
    stats = gate.statistics()
    out_db = corpus.frame_db(decode_ulaw(rendered.outbound).astype(np.float64))
    if stats.echo_delay_ms is not None and stats.echo_return_loss_db is not None:
        shift = round(stats.echo_delay_ms / 20)
        echo_pred[shift:] = out_db[: n_frames - shift] - stats.echo_return_loss_db
        echo_pred[echo_pred < -75] = np.nan
    in_db = corpus.frame_db(decode_ulaw(rendered.inbound).astype(np.float64))
    t_frames = (np.arange(n_frames) + 0.5) * 0.02
    t = np.arange(len(rendered.caller)) / corpus.RATE
    outbound = decode_ulaw(rendered.outbound)

    fig, axes = plt.subplots(3, 1, figsize=(11, 7.5), sharex=True)
    cond = case["condition"]
    fig.suptitle(
        f"{case['id']}: echo delay {cond['delay_ms']} ms, echo return loss {cond['erl_db']} dB, "
        f"noise {cond['noise_dbfs']} dBFS, caller {cond['caller_dbfs']} dBFS",
        fontsize=10,
    )
    axes[0].plot(t, outbound, color="tab:blue", lw=0.4)
    axes[0].set_ylabel("bot (outbound)")
    axes[1].plot(t, rendered.noise, color="0.6", lw=0.4, label="line noise")
    axes[1].plot(t, rendered.echo, color="tab:orange", lw=0.4, label="echo of the bot")
    axes[1].plot(t, rendered.caller, color="tab:green", lw=0.4, label="caller speech")
    axes[1].set_ylabel("caller channel")
    axes[1].legend(loc="upper right", fontsize=7, ncol=3)
    axes[2].plot(t_frames, in_db, color="k", lw=0.7, label="caller channel energy")
    axes[2].plot(t_frames, floor, color="tab:purple", lw=1.2, label="gate: noise floor")
    axes[2].plot(
        t_frames, echo_pred, color="tab:orange", lw=0.8, alpha=0.8, label="gate: predicted echo"
    )
    axes[2].set_ylabel("dBFS")
    axes[2].set_ylim(-80, 0)
    axes[2].set_xlabel("seconds")
    axes[2].legend(loc="lower right", fontsize=7, ncol=3)
    colours = {"ALLOW": "tab:green", "SUPPRESS": "tab:red", "DEFER": "tab:olive"}
    for k, (when, event, text) in enumerate(decisions):
        verdict = text.split()[0]
        for ax in axes:
            ax.axvline(when, color=colours[verdict], lw=0.8, ls="--")
        axes[2].annotate(
            f"{event['label']}: {text}",
            (when, -5 - 9 * (k % 3)),
            fontsize=7,
            color=colours[verdict],
            rotation=0,
            ha="left",
        )
    fig.tight_layout()
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out} ({case['id']})")


if __name__ == "__main__":
    main()
