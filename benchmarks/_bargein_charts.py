"""The charts of ``bargein_quality.py --plot DIR`` (the barge-in section of docs/performance.md).

Drawn from the benchmark's own results (the same numbers as its tables and ``--json``), with
matplotlib, the ``bench`` extra: ``pip install '.[bench]'``.

* ``bargein_strategies.png``: per strategy and corpus, false and missed barge-ins stacked (their
  sum is the "false + missed" column), backchannels that stop the bot and short barge-ins that do.
* ``bargein_conditions.png``: voiceguard per condition band, a grouped bar chart: false % and
  missed % on the tuning corpus and on the held-out corpus, side by side.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

STRATEGIES_PNG = "bargein_strategies.png"
CONDITIONS_PNG = "bargein_conditions.png"

_FALSE = ("#c0392b", "#e8a39b")  # tuning, held-out
_MISSED = ("#e69f00", "#f3d08a")
_OURS = "voiceguard"


def plot(results: dict[str, dict[str, Any]], *, out: Path) -> list[Path]:
    """Write both charts into *out*; return their paths."""
    import matplotlib  # noqa: PLC0415 - the bench extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    out.mkdir(parents=True, exist_ok=True)
    caption = "; ".join(
        f"{name}: {r['calls']} calls, {sum(r['events'].values())} speech_started"
        for name, r in results.items()
    )
    return [
        _strategies(plt, results, caption, out / STRATEGIES_PNG),
        _conditions(plt, results, caption, out / CONDITIONS_PNG),
    ]


def _strategies(plt: Any, results: dict[str, dict[str, Any]], caption: str, path: Path) -> Path:
    """False + missed per strategy and corpus, and the share of utterances stopping the bot."""
    corpora = list(results)
    names = list(results[corpora[0]]["strategies"])[::-1]  # the first strategy on top
    fig, (rates, words) = plt.subplots(
        1, 2, figsize=(11, 4.2), gridspec_kw={"width_ratios": [3, 2]}, constrained_layout=True
    )
    height = 0.38
    for c, name in enumerate(corpora):
        per = results[name]["strategies"]
        rows = [k + (0.2 if c == 0 else -0.2) for k in range(len(names))]
        false = [100 * per[n]["false_rate"] for n in names]
        missed = [100 * per[n]["missed_rate"] for n in names]
        rates.barh(rows, false, height, color=_FALSE[c], label=f"false ({name})")
        rates.barh(rows, missed, height, left=false, color=_MISSED[c], label=f"missed ({name})")
        for row, f, m in zip(rows, false, missed, strict=True):
            rates.text(f + m + 1.5, row, f"{f + m:.1f} %", va="center", fontsize=7)
        bc = [100 * per[n]["backchannels"]["rate"] for n in names]
        short = [100 * per[n]["short_barge_ins"]["rate"] for n in names]
        words.barh([r + height / 4 for r in rows], bc, height / 2, color=("#7b3294", "#c2a5cf")[c])
        words.barh(
            [r - height / 4 for r in rows], short, height / 2, color=("#008837", "#a6dba0")[c]
        )
    rates.set_yticks(range(len(names)), names)
    rates.set_xlim(0, 130)
    rates.set_xlabel("false + missed barge-ins (% of their events; lower is better)")
    rates.legend(loc="lower right", fontsize=7, frameon=False)
    rates.set_title("Barge-in errors (upper bar: tuning, lower: held-out)", fontsize=10, loc="left")
    words.set_yticks(range(len(names)), [""] * len(names))
    words.set_xlim(0, 100)
    words.set_xlabel("% of utterances that stop the bot")
    words.set_title("Backchannels (purple) and short barge-ins (green)", fontsize=10, loc="left")
    for axis in (rates, words):
        axis.spines[["top", "right"]].set_visible(False)
        for label in axis.get_yticklabels():
            if label.get_text() == _OURS:
                label.set_fontweight("bold")
    fig.suptitle(caption, fontsize=8, x=0.01, ha="left", color="#555555")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def _conditions(plt: Any, results: dict[str, dict[str, Any]], caption: str, path: Path) -> Path:
    """Voiceguard's false and missed rate per condition band, both corpora, grouped bars."""
    corpora = list(results)
    first = results[corpora[0]]["breakdown"]
    labels = [f"{group}: {band}" for group, bands in first.items() for band in bands]
    fig, axis = plt.subplots(figsize=(10, 0.32 * len(labels) + 1.5), constrained_layout=True)
    width = 0.2
    for c, name in enumerate(corpora):
        bands = [
            per[_OURS] for bands in results[name]["breakdown"].values() for per in bands.values()
        ]
        for kind, colours, offset in (("false", _FALSE, -1.5), ("missed", _MISSED, 0.5)):
            key, count = (
                f"{kind}_rate",
                "events_false_candidates" if kind == "false" else "events_real",
            )
            values = [100 * b[key] if b[count] else 0.0 for b in bands]
            rows = [k + (offset + c) * width for k in range(len(labels))]
            axis.barh(rows, values, width, color=colours[c], label=f"{kind} ({name})")
    axis.set_yticks(range(len(labels)), labels, fontsize=7)
    axis.invert_yaxis()
    axis.set_xlabel("% (false: of echo and noise events; missed: of real events)")
    axis.legend(loc="lower right", fontsize=8)
    axis.spines[["top", "right"]].set_visible(False)
    axis.set_title("voiceguard per condition, tuning and held-out corpus", fontsize=10, loc="left")
    fig.suptitle(caption, fontsize=8, x=0.01, ha="left", color="#555555")
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
