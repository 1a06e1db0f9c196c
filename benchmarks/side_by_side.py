"""Side by side: ``voiceguard serve`` against the bridges it must beat, in one run.

Usage::

    python benchmarks/side_by_side.py [--json] [--calls 20,50,100] [--seconds 15] [--repeats 2]
                                      [--bridges voiceguard,guards-off,naive,hand-written]
                                      [--plot docs/_static/side_by_side.png] [--smoke]

Four servers, each measured exactly as ``load.py`` measures ``voiceguard serve`` (its own
process on 127.0.0.1, the model simulator and the callers in processes of their own, real-time
Twilio calls with turns and barge-ins, the server's CPU from ``/proc``, delays on the shared
monotonic clock):

* **voiceguard**: ``python -m voiceguard serve`` with its defaults (the guards on);
* **guards-off**: the same server with each call's guards allowing everything
  (``_serve_variant.py guards-off``): what the guards themselves cost;
* **naive**: the same server running the popular sample's bridge
  (:class:`voiceguard.demo.NaiveBridge`, ``_serve_variant.py naive``);
* **hand-written**: ``handwritten_bridge.py``, a small correct bridge on plain ``websockets``
  (pacing, marks, truncation, nothing else): what a careful engineer writes by hand.

Rounds are interleaved (every bridge at one size, then the next size; the bridges' order turns
at each repeat) so that drifting load on a shared machine hits them alike; each figure is the
median over ``--repeats``. Reported per bridge and size: server CPU per call-second, forwarding
delay p50/p99 (caller frame sent -> its append at the model), barge-in reaction p50/p99
(``speech_started`` sent by the model -> the ``clear`` at the caller) and how many were
measured (a bridge that never clears the phone shows none), the server's resident
memory when idle and per call; and the ratios the targets are stated in.

Targets (at 50 calls unless said): voiceguard CPU <= 0.8x the hand-written bridge and <= 5 ms
per call-second; voiceguard / guards-off <= 1.05x; at 100 calls p99 forwarding <= 20 ms and
barge-in p99 <= 40 ms; idle RSS <= 45 MiB and <= 300 KiB per call. Linux only (``/proc``).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import _bench
import load

HERE = Path(__file__).resolve().parent
BRIDGES: dict[str, list[str]] = {
    "voiceguard": [sys.executable, "-m", "voiceguard", "serve"],
    "guards-off": [sys.executable, str(HERE / "_serve_variant.py"), "guards-off"],
    "naive": [sys.executable, str(HERE / "_serve_variant.py"), "naive"],
    "hand-written": [sys.executable, str(HERE / "handwritten_bridge.py")],
}
TARGETS = {
    "cpu_vs_hand_written": 0.8,
    "cpu_ms_at_50": 5.0,
    "guards_on_vs_off": 1.05,
    "forwarding_p99_ms_at_100": 20.0,
    "barge_in_p99_ms_at_100": 40.0,
    "idle_rss_mib": 45.0,
    "kib_per_call": 300.0,
}
_FIGURES = {
    "cpu": ("server_cpu_ms_per_call_second",),
    "fwd_p50": ("forwarding_delay_ms", "p50"),
    "fwd_p99": ("forwarding_delay_ms", "p99"),
    "barge_p50": ("barge_in_reaction_ms", "p50"),
    "barge_p99": ("barge_in_reaction_ms", "p99"),
    "barges": ("barge_in_reaction_ms", "count"),
    "idle_mib": ("server_idle_rss_mib",),
    "kib_per_call": ("server_memory_per_call_kb",),
    "lost": ("frames_not_forwarded",),
    "failed": ("calls_failed",),
}


def _figure(outcome: dict[str, Any], path: tuple[str, ...]) -> float:
    value: Any = outcome
    for key in path:
        value = value[key]
    return float(value)


def summarise(runs: dict[tuple[str, int], list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Medians per bridge and size: ``{bridge: {str(calls): {figure: median}}}``."""
    out: dict[str, dict[str, Any]] = {}
    for (bridge, calls), outcomes in runs.items():
        medians = {
            name: _bench.median([_figure(o, path) for o in outcomes])
            for name, path in _FIGURES.items()
        }
        out.setdefault(bridge, {})[str(calls)] = {**medians, "rounds": len(outcomes)}
    return out


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, float]]:
    """CPU ratios per size: voiceguard against the hand-written bridge and against guards-off."""
    out: dict[str, dict[str, float]] = {}
    pairs = {
        "voiceguard / hand-written": ("voiceguard", "hand-written"),
        "voiceguard / guards-off": ("voiceguard", "guards-off"),
        "naive / hand-written": ("naive", "hand-written"),
    }
    for name, (top, bottom) in pairs.items():
        if top not in summary or bottom not in summary:
            continue
        for calls, figures in summary[top].items():
            if calls in summary[bottom]:
                out.setdefault(name, {})[calls] = figures["cpu"] / summary[bottom][calls]["cpu"]
    return out


def verdicts(summary: dict[str, dict[str, Any]], ratio: dict[str, dict[str, float]]) -> list[str]:
    """Each target: met or not, with its figure (skipped when its sizes were not run)."""
    lines: list[str] = []
    ours = summary.get("voiceguard", {})

    def line(name: str, value: float | None, limit: float, unit: str = "") -> None:
        if value is None:
            return
        mark = "met" if value <= limit else "NOT met"
        lines.append(f"{name}: {value:.2f}{unit} (target <= {limit:g}{unit}): {mark}")

    line(
        "voiceguard / hand-written CPU at 50 calls",
        ratio.get("voiceguard / hand-written", {}).get("50"),
        TARGETS["cpu_vs_hand_written"],
        "x",
    )
    line(
        "voiceguard CPU per call-second at 50 calls",
        ours.get("50", {}).get("cpu"),
        TARGETS["cpu_ms_at_50"],
        " ms",
    )
    line(
        "voiceguard / guards-off CPU at 50 calls",
        ratio.get("voiceguard / guards-off", {}).get("50"),
        TARGETS["guards_on_vs_off"],
        "x",
    )
    at_100 = ours.get("100", {})
    line(
        "forwarding p99 at 100 calls",
        at_100.get("fwd_p99"),
        TARGETS["forwarding_p99_ms_at_100"],
        " ms",
    )
    line(
        "barge-in p99 at 100 calls",
        at_100.get("barge_p99"),
        TARGETS["barge_in_p99_ms_at_100"],
        " ms",
    )
    if ours:
        line(
            "idle RSS",
            _bench.median([f["idle_mib"] for f in ours.values()]),
            TARGETS["idle_rss_mib"],
            " MiB",
        )
        line(
            "memory per call (largest size)",
            ours[max(ours, key=int)]["kib_per_call"],
            TARGETS["kib_per_call"],
            " KiB",
        )
    return lines


def plot(summary: dict[str, dict[str, Any]], path: Path) -> None:
    """CPU, forwarding p99 and barge-in p99 against concurrent calls, a line per bridge."""
    import matplotlib  # noqa: PLC0415 - the bench extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8), constrained_layout=True)
    panels = (
        ("cpu", "server CPU per call-second (ms)", False, None),
        ("fwd_p99", "forwarding delay p99 (ms)", True, TARGETS["forwarding_p99_ms_at_100"]),
        ("barge_p99", "barge-in reaction p99 (ms)", True, TARGETS["barge_in_p99_ms_at_100"]),
    )
    for axis, (figure, title, log, target) in zip(axes, panels, strict=True):
        for (bridge, sizes), marker in zip(summary.items(), "osD^", strict=False):
            n = sorted(sizes, key=int)
            axis.plot(
                [int(c) for c in n], [sizes[c][figure] for c in n], marker + "-", label=bridge
            )
        if target is not None:
            axis.axhline(target, color="grey", linestyle="--", label=f"target {target:g} ms")
        if log:
            axis.set_yscale("log")
        axis.set_xlabel("concurrent calls")
        axis.set_title(title)
    axes[0].set_ylim(bottom=0)
    axes[0].legend()
    axes[1].legend(fontsize="small")
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(
        description="voiceguard serve beside the guards-off, naive and hand-written bridges"
    )
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument("--calls", default="20,50,100", help="concurrent calls (comma list)")
    parser.add_argument("--seconds", type=float, default=15.0, help="call length (default 15)")
    parser.add_argument("--repeats", type=int, default=2, help="rounds per bridge and size")
    parser.add_argument(
        "--bridges", default=",".join(BRIDGES), help=f"comma list of {', '.join(BRIDGES)}"
    )
    parser.add_argument("--plot", type=Path, help="save a PNG chart here (needs matplotlib)")
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 2 calls for 3 s")
    args = parser.parse_args()
    bridges = [b.strip() for b in args.bridges.split(",") if b.strip()]
    unknown = [b for b in bridges if b not in BRIDGES]
    if unknown or not bridges:
        parser.error(
            f"unknown bridge {unknown[0] if unknown else '(none)'}; choose from "
            f"{', '.join(BRIDGES)}"
        )
    sizes = [int(n) for n in args.calls.split(",")]
    if args.smoke:
        sizes, args.seconds, args.repeats = [2], 3.0, 1
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {}
    failed: list[dict[str, Any]] = []
    total = args.repeats * len(sizes) * len(bridges)
    done = 0
    with tempfile.TemporaryDirectory(prefix="voiceguard-side-") as workdir:
        for repeat in range(args.repeats):
            order = bridges[repeat % len(bridges) :] + bridges[: repeat % len(bridges)]
            for calls in sizes:
                for bridge in order:
                    done += 1
                    label = f"[{done}/{total}] {bridge} "
                    try:
                        outcome = load.run_round(
                            calls,
                            args.seconds,
                            Path(workdir),
                            1,
                            progress=not args.json,
                            server_command=BRIDGES[bridge],
                            label=label,
                        )
                    except RuntimeError as exc:
                        print(f"  {label}N={calls}: failed: {exc}", file=sys.stderr, flush=True)
                        failed.append({"bridge": bridge, "calls": calls, "error": str(exc)[-800:]})
                        continue
                    runs.setdefault((bridge, calls), []).append(outcome)
                    if not args.json:
                        d = outcome["forwarding_delay_ms"]
                        print(
                            f"  {label}N={calls}: "
                            f"{outcome['server_cpu_ms_per_call_second']:.2f} ms CPU/call-s, "
                            f"forwarding p99 {d['p99']:.1f} ms, barge-in p99 "
                            f"{outcome['barge_in_reaction_ms']['p99']:.1f} ms",
                            file=sys.stderr,
                            flush=True,
                        )
    summary = summarise(runs)
    ratio = ratios(summary)
    result: dict[str, Any] = {
        "method": (
            "each bridge as its own server process on 127.0.0.1 (load.py's callers and model "
            "simulator), interleaved rounds, medians over repeats"
        ),
        "seconds": args.seconds,
        "repeats": args.repeats,
        "bridges": summary,
        "cpu_ratios": ratio,
        "targets": TARGETS,
        "verdicts": verdicts(summary, ratio),
        "failed_rounds": failed,
    }
    if args.plot is not None:
        plot(summary, args.plot)
        result["plot"] = str(args.plot)
    rows = [
        [
            bridge,
            int(calls),
            f["cpu"],
            f["fwd_p50"],
            f["fwd_p99"],
            f["barge_p50"],
            f["barge_p99"],
            int(f["barges"]),
            f["idle_mib"],
            f["kib_per_call"],
            int(f["lost"]),
        ]
        for bridge, sizes_ in summary.items()
        for calls, f in sorted(sizes_.items(), key=lambda kv: int(kv[0]))
    ]
    text = _bench.table(
        [
            "bridge",
            "calls",
            "ms CPU/call-s",
            "fwd p50 ms",
            "fwd p99 ms",
            "barge p50 ms",
            "barge p99 ms",
            "barge-ins",
            "idle MiB",
            "KiB/call",
            "frames lost",
        ],
        rows,
    )
    for name, per_size in ratio.items():
        text += (
            "\n"
            + name
            + " CPU: "
            + ", ".join(
                f"{r:.2f}x at {c}" for c, r in sorted(per_size.items(), key=lambda kv: int(kv[0]))
            )
        )
    text += "\n\n" + "\n".join(result["verdicts"])
    _bench.emit(result, args.json, text)


if __name__ == "__main__":
    main()
