"""The timeline as files: an HTML page with a decision table, an SVG, or a PNG by Chromium.

:func:`write_timeline` writes :func:`~voiceguard.observe._timeline.render_timeline`'s drawing as
``.svg``, as ``.html`` (:func:`timeline_html`: the SVG plus a table of the decisions), or as
``.png`` (the page photographed by headless Chromium, :func:`screenshot_html`). Re-exported by
:mod:`voiceguard.observe.replay`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from voiceguard.observe._decisions import ReplayResult, TraceDecision, start_time
from voiceguard.observe._timeline import FONT, VERDICT_COLOURS, WIDTH, esc, render_timeline
from voiceguard.observe.trace import Trace

__all__ = ("find_chromium", "screenshot_html", "timeline_html", "write_timeline")


def timeline_html(trace: Trace, result: ReplayResult | None = None) -> str:
    """The timeline in a self-contained HTML page, with the decisions as a table below it.

    .. versionadded:: 0.1.0
    """
    svg = render_timeline(trace, result)
    t0 = start_time(trace)
    decisions = (
        result.replayed
        if result is not None
        else [TraceDecision.from_record(r) for r in trace.decisions()]
    )
    differing = (
        {id(d.replayed) for d in result.differences if d.replayed is not None}
        if result is not None
        else set()
    )
    rows = []
    for d in decisions:
        colour = VERDICT_COLOURS.get(d.verdict, "#757575")
        mark = "≠" if id(d) in differing else ""
        rows.append(
            f"<tr><td class=n>{d.t - t0:.3f}</td><td>{esc(d.guard)}</td><td>{esc(d.action)}</td>"
            f'<td style="color:{colour};font-weight:600">{esc(d.verdict)}</td>'
            f"<td>{esc(d.reason)}</td><td>{esc(d.response_id or d.item_id or '')}</td>"
            f"<td>{esc(d.detail)}</td><td>{mark}</td></tr>"
        )
    return (
        "<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
        f"<title>voiceguard timeline: {esc(trace.call_sid or trace.path.name)}</title>"
        "<style>body{margin:16px;" + FONT + ";color:#212121}"
        "table{border-collapse:collapse;font-size:13px;margin-top:18px}"
        "td,th{padding:3px 10px;border-bottom:1px solid #eee;text-align:left}"
        "td.n{text-align:right;font-variant-numeric:tabular-nums}"
        "th{background:#f5f5f5}</style></head><body>\n"
        f"{svg}\n<table><tr><th>s</th><th>guard</th><th>action</th><th>verdict</th>"
        "<th>reason</th><th>id</th><th>detail</th><th></th></tr>\n"
        + "\n".join(rows)
        + "\n</table></body></html>\n"
    )


def find_chromium() -> str | None:
    """The path of a Chromium or Chrome executable, or None."""
    for name in ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable"):
        found = shutil.which(name)
        if found is not None:
            return found
    return None


def screenshot_html(
    page: str | os.PathLike[str],
    png: str | os.PathLike[str],
    *,
    width: int,
    height: int,
    timeout: float = 60.0,
) -> None:
    """Photograph an HTML file with headless Chromium.

    Raises:
        RuntimeError: If no Chromium is installed, or it fails (with its output).
    """
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError(
            "drawing a PNG needs Chromium (Debian/Ubuntu: apt-get install chromium); "
            "or write the timeline as .svg or .html, which need nothing"
        )
    with tempfile.TemporaryDirectory(prefix="voiceguard-chromium-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={profile}",
            f"--window-size={width},{height}",
            f"--screenshot={Path(png).resolve()}",
            Path(page).resolve().as_uri(),
        ]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise RuntimeError(f"Chromium could not draw the PNG: {exc}") from None
    if done.returncode != 0 or not Path(png).exists():
        raise RuntimeError(
            f"Chromium could not draw the PNG (exit {done.returncode}): {done.stderr[-500:]}"
        )


def write_timeline(
    path: str | os.PathLike[str], trace: Trace, result: ReplayResult | None = None
) -> Path:
    """Write the timeline to *path*: ``.svg``, ``.html`` or ``.png`` (by its suffix).

    Returns:
        The path written.

    Raises:
        ValueError: For another suffix.
        RuntimeError: For ``.png`` without Chromium (the message says what to install).

    .. versionadded:: 0.1.0
    """
    target = Path(path)
    suffix = target.suffix.lower()
    if suffix == ".svg":
        target.write_text(render_timeline(trace, result), encoding="utf-8")
    elif suffix in (".html", ".htm"):
        target.write_text(timeline_html(trace, result), encoding="utf-8")
    elif suffix == ".png":
        svg = render_timeline(trace, result)
        height = int(float(svg.split('height="', 1)[1].split('"', 1)[0])) + 2
        page = (
            "<!DOCTYPE html><html><head><meta charset=utf-8><style>html,body{margin:0;"
            f"background:#fff}}</style></head><body>{svg}</body></html>"
        )
        with tempfile.TemporaryDirectory(prefix="voiceguard-timeline-") as tmp:
            html_path = Path(tmp) / "timeline.html"
            html_path.write_text(page, encoding="utf-8")
            screenshot_html(html_path, target, width=WIDTH, height=height)
    else:
        raise ValueError(
            f"timeline file {str(target)!r}: unknown suffix {suffix or '(none)'!r}; "
            "use .html, .svg or .png"
        )
    return target
