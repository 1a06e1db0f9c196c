"""The charts of ``bargein_quality.py --plot DIR`` (the top of docs/performance.md).

Drawn from the benchmark's own results (the same numbers as its tables and ``--json``), with
matplotlib, the ``bench`` extra: ``pip install '.[bench]'``.

* ``bargein_strategies.png``: false and missed barge-ins of each strategy, stacked (their sum is
  the "false + missed" column), and the delay from the caller's onset (median, p95).
* ``bargein_conditions.png``: the per-condition breakdown, false % and missed % of each strategy
  in each band, as two heat maps.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

STRATEGIES_PNG = "bargein_strategies.png"
CONDITIONS_PNG = "bargein_conditions.png"

_FALSE = "#c0392b"
_MISSED = "#e69f00"
_OURS = "voiceguard"


def plot(
    results: dict[str, dict[str, Any]],
    breakdown: dict[str, dict[str, dict[str, dict[str, Any]]]],
    *,
    events: dict[str, int],
    calls: int,
    out: Path,
) -> list[Path]:
    """Write both charts into *out*; return their paths."""
    import matplotlib  # noqa: PLC0415 - the bench extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    corpus = (
        f"{calls} calls, {sum(events.values())} speech_started events "
        f"({events['echo']} echo, {events['noise']} noise, {events['real']} real)"
    )
    return [
        _strategies(plt, results, corpus, out / STRATEGIES_PNG),
        _conditions(plt, breakdown, corpus, out / CONDITIONS_PNG),
    ]


def _strategies(plt: Any, results: dict[str, dict[str, Any]], corpus: str, path: Path) -> Path:
    names = list(results)[::-1]  # the first strategy on top
    false = [100 * results[n]["false_rate"] for n in names]
    missed = [100 * results[n]["missed_rate"] for n in names]
    fig, (rates, delays) = plt.subplots(
        1, 2, figsize=(10, 3.4), gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True
    )
    rows = range(len(names))
    rates.barh(rows, false, color=_FALSE, label="false barge-ins (echo, noise acted on)")
    rates.barh(rows, missed, left=false, color=_MISSED, label="missed barge-ins (caller ignored)")
    for row, (f, m) in enumerate(zip(false, missed, strict=True)):
        rates.text(f + m + 1.5, row, f"{f + m:.1f} %", va="center", fontsize=9)
    rates.set_yticks(list(rows), names)
    rates.set_xlim(0, 125)
    rates.set_xlabel("false + missed barge-ins (% of their events; lower is better)")
    rates.legend(loc="lower right", fontsize=8, frameon=False)
    rates.set_title("Barge-in errors per strategy", fontsize=11, loc="left")
    medians = [results[n]["median_delay_ms"] or 0 for n in names]
    p95 = [results[n]["p95_delay_ms"] or 0 for n in names]
    delays.barh(rows, medians, color="#4a7fc1", label="median")
    delays.scatter(p95, list(rows), color="#1b2f4f", marker="|", s=200, label="p95", zorder=3)
    for row, (m, p) in enumerate(zip(medians, p95, strict=True)):
        delays.text(p * 1.15, row, f"{m:.0f} ms (p95 {p:.0f})", va="center", fontsize=8)
    delays.set_xscale("log")
    delays.set_xlim(30, 30000)
    delays.set_yticks(list(rows), [""] * len(names))
    delays.set_xlabel("delay from the caller's onset (ms, log)")
    delays.legend(loc="lower right", fontsize=8, frameon=False)
    delays.set_title("When a real barge-in is acted on", fontsize=11, loc="left")
    for axis in (rates, delays):
        axis.spines[["top", "right"]].set_visible(False)
        for label in axis.get_yticklabels():
            if label.get_text() == _OURS:
                label.set_fontweight("bold")
    fig.suptitle(corpus, fontsize=9, x=0.01, ha="left", color="#555555")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _conditions(
    plt: Any, breakdown: dict[str, dict[str, dict[str, dict[str, Any]]]], corpus: str, path: Path
) -> Path:
    labels: list[str] = []
    false: list[list[float]] = []
    missed: list[list[float]] = []
    names: list[str] = []
    boundaries: list[int] = []  # rows where a new condition starts
    for group, bands in breakdown.items():
        if labels:
            boundaries.append(len(labels))
        for band, per in bands.items():
            names = list(per)
            first = per[names[0]]
            labels.append(
                f"{group}: {band}  ({first['events_false_candidates']} / {first['events_real']})"
            )
            # A band without events of a kind has no rate: drawn blank, not as 0 %.
            nothing = float("nan")
            false.append(
                [
                    100 * per[n]["false_rate"] if first["events_false_candidates"] else nothing
                    for n in names
                ]
            )
            missed.append(
                [100 * per[n]["missed_rate"] if first["events_real"] else nothing for n in names]
            )
    fig, axes = plt.subplots(1, 2, figsize=(11, 7.2), sharey=True, constrained_layout=True)
    for axis, values, title, cmap in (
        (axes[0], false, "false barge-ins (%)", "Reds"),
        (axes[1], missed, "missed barge-ins (%)", "Oranges"),
    ):
        colours = plt.get_cmap(cmap).with_extremes(bad="#eeeeee")
        image = axis.imshow(values, cmap=colours, vmin=0, vmax=100, aspect="auto")
        for row, line in enumerate(values):
            for column, value in enumerate(line):
                axis.text(
                    column,
                    row,
                    "no events" if math.isnan(value) else f"{value:.1f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if value > 55 else "#555555" if math.isnan(value) else "black",
                )
        axis.set_xticks(range(len(names)), names, fontsize=9)
        axis.xaxis.tick_top()
        for label in axis.get_xticklabels():
            if label.get_text() == _OURS:
                label.set_fontweight("bold")
        axis.set_title(title, fontsize=11)
        for boundary in boundaries:
            axis.axhline(boundary - 0.5, color="white", linewidth=2)
        fig.colorbar(image, ax=axis, shrink=0.5, pad=0.02)
    axes[0].set_yticks(range(len(labels)), labels, fontsize=8)
    fig.suptitle(
        f"Per condition (events in the band: echo+noise / real). {corpus}",
        fontsize=9,
        x=0.01,
        ha="left",
        color="#555555",
    )
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
