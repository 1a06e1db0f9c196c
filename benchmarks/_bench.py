"""Shared helpers of the benchmark scripts: machine description, medians, tables, JSON output."""

from __future__ import annotations

import json
import math
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict[str, Any]:
    """Where the figures come from: CPU model, cores, Python, numpy, OS."""
    import numpy  # noqa: PLC0415 - numpy is a dependency of voiceguard anyway

    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "numpy": numpy.__version__,
        "system": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
    }


def command() -> str:
    """The command line that produced this run, as a user would type it."""
    try:
        shown = str(Path(sys.argv[0]).resolve().relative_to(ROOT))
    except (ValueError, OSError):  # outside the repository, or its directory is gone
        shown = sys.argv[0]
    return " ".join(["python", shown, *sys.argv[1:]])


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values)) if values else float("nan")


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (NaN for no values)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(fraction * len(ordered) + 0.5)))
    return float(ordered[rank - 1])


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A plain-text table, right-aligned numbers."""
    cells = [[str(h) for h in headers]] + [[_cell(v) for v in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for index, row in enumerate(cells):
        lines.append(
            "  ".join(
                cell.ljust(width) if i == 0 else cell.rjust(width)
                for i, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
        if index == 0:
            lines.append("  ".join("-" * width for width in widths))
    return "\n".join(lines)


def _cell(value: object) -> str:
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.3g}" if abs(value) < 10 else f"{value:.1f}"
    return str(value)


def emit(result: dict[str, Any], as_json: bool, text: str) -> None:
    """Print *result* as JSON, or the human table *text* followed by the command."""
    result.setdefault("command", command())
    result.setdefault("machine", machine())
    if as_json:
        print(json.dumps(result, indent=2))
        return
    info = result["machine"]
    print(text)
    print(
        f"\n{info['cpu']}, {info['cores']} cores, Python {info['python']}, "
        f"numpy {info['numpy']}\ncommand: {result['command']}"
    )
