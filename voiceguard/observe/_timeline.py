"""The timeline of a call trace: one time axis, a lane per concern, drawn as SVG.

:func:`render_timeline` draws lanes for the bot's audio sent and heard, the caller's energy with the
echo estimate and noise floor, the server VAD, the responses, each guard's decisions coloured by
verdict, the actions sent and the timers, with a hover title on every mark. What each lane draws is
read from the trace first (:func:`~voiceguard.observe._timeline_data.read_timeline`). Re-exported
by :mod:`voiceguard.observe.replay`.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Final, final

from voiceguard.observe._decisions import ReplayResult
from voiceguard.observe._timeline_data import TimelineData, read_timeline
from voiceguard.observe.trace import Trace

__all__ = ("FONT", "VERDICT_COLOURS", "WIDTH", "esc", "render_timeline")

WIDTH: Final = 1500
_LEFT: Final = 190
_RIGHT: Final = 30
_TOP: Final = 86
FONT: Final = "font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif"
VERDICT_COLOURS: Final = {"ALLOW": "#2e7d32", "SUPPRESS": "#c62828", "DEFER": "#f9a825"}
_BOT: Final = "#1565c0"
_HEARD: Final = "#64b5f6"
_FLUSHED: Final = "#b0bec5"
_CALLER: Final = "#6a1b9a"
_ECHO: Final = "#ef6c00"
_FLOOR_DB: Final = -80.0
_GUARD_LANES: Final = (
    ("calibration_gate", "Calibration gate"),
    ("cancel_arbiter", "Cancel arbiter"),
    ("response_create_guard", "Create guard"),
)


@dataclass(slots=True)
class _Lane:
    key: str
    title: str
    height: float
    y: float = 0.0


def esc(text: object) -> str:
    """*text* escaped for SVG and HTML text and attributes."""
    return html.escape(str(text), quote=True)


def _nice_step(duration: float) -> float:
    for step in (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600):
        if duration / step <= 20:
            return float(step)
    return 1200.0


@final
class _Canvas:
    """The SVG being drawn: the time axis, the lanes, and the elements so far."""

    __slots__ = ("by_key", "duration", "height", "lanes", "out", "plot_w", "t0", "t_end")

    def __init__(self, data: TimelineData) -> None:
        self.t0 = data.t0
        self.t_end = data.t_end
        self.duration = max(self.t_end - self.t0, 0.5)
        self.plot_w = WIDTH - _LEFT - _RIGHT
        self.lanes = [
            _Lane("sent", "Bot audio sent", 46),
            _Lane("heard", "Bot audio heard", 46),
            _Lane("energy", "Caller energy (dBFS)", 150),
            _Lane("vad", "Server VAD", 30),
            _Lane("responses", "Responses", 30),
            *(_Lane(key, title, 30) for key, title in _GUARD_LANES),
            _Lane("actions", "Actions sent", 58),
            _Lane("timers", "Timers", 30),
        ]
        y = float(_TOP)
        for lane in self.lanes:
            lane.y = y
            y += lane.height + 10
        self.by_key = {lane.key: lane for lane in self.lanes}
        self.height = y + 40
        self.out: list[str] = []

    def x(self, t: float) -> float:
        """The x coordinate of time *t*."""
        return _LEFT + (t - self.t0) / self.duration * self.plot_w


def render_timeline(trace: Trace, result: ReplayResult | None = None) -> str:
    """Draw *trace* as a self-contained SVG document (no scripts, no external resources).

    Args:
        trace: The trace.
        result: A replay of it: its decisions are drawn, those that differ from the recording
            ringed, and its gate estimates give the echo estimate. None draws the recorded ones.

    Returns:
        The SVG text.

    .. versionadded:: 0.1.0
    """
    data = read_timeline(trace, result)
    canvas = _Canvas(data)
    _draw_frame(canvas, trace, result, data)
    axis_y = _draw_grid(canvas)
    _draw_audio(canvas, data)
    _draw_energy(canvas, data)
    _draw_vad(canvas, data)
    _draw_responses(canvas, data)
    _draw_decisions(canvas, data)
    _draw_actions(canvas, data)
    _draw_timers(canvas, data)
    canvas.out.append(
        f'<text x="{_LEFT + canvas.plot_w}" y="{axis_y + 30}" font-size="11" text-anchor="end" '
        'fill="#9e9e9e">seconds since the stream started</text>'
    )
    canvas.out.append("</svg>")
    return "\n".join(canvas.out)


def _draw_frame(
    canvas: _Canvas, trace: Trace, result: ReplayResult | None, data: TimelineData
) -> None:
    """The document, its title and subtitle, and the legend."""
    add = canvas.out.append
    height, duration, ended_by = canvas.height, canvas.duration, data.ended_by
    add(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height:.0f}" '
        f'viewBox="0 0 {WIDTH} {height:.0f}" style="{FONT};background:#fff">'
    )
    add(f'<rect x="0" y="0" width="{WIDTH}" height="{height:.0f}" fill="#ffffff"/>')
    title = f"Call {trace.call_sid or '?'}"
    sub = f"{duration:.1f} s" + (f", ended by {ended_by}" if ended_by else "")
    if result is not None:
        sub += (
            f"; replay: {len(result.differences)} difference(s) (decisions as replayed, ringed "
            "where they differ; audio, speech and actions as recorded)"
            if result.differences
            else "; replay: identical decisions"
        )
    add(
        f'<text x="{_LEFT}" y="26" font-size="18" font-weight="600" fill="#212121">'
        f"{esc(title)}</text>"
    )
    add(f'<text x="{_LEFT}" y="46" font-size="12.5" fill="#616161">{esc(sub)}</text>')
    legend = [
        ("rect", _BOT, "bot audio"),
        ("rect", _HEARD, "heard"),
        ("rect", _FLUSHED, "flushed by clear"),
        ("line", _CALLER, "caller energy"),
        ("dash", _ECHO, "echo estimate"),
        ("dot", "#757575", "noise floor"),
        ("circle", VERDICT_COLOURS["ALLOW"], "allowed"),
        ("circle", VERDICT_COLOURS["SUPPRESS"], "suppressed"),
        ("circle", VERDICT_COLOURS["DEFER"], "deferred"),
        ("ring", "#000", "differs from recording"),
    ]
    lx = float(_LEFT)
    for shape, colour, label in legend:
        ly = 66
        if shape == "rect":
            add(f'<rect x="{lx}" y="{ly - 9}" width="14" height="10" fill="{colour}" rx="2"/>')
        elif shape in ("line", "dash", "dot"):
            dash = {"line": "", "dash": "5 3", "dot": "2 3"}[shape]
            add(
                f'<line x1="{lx}" y1="{ly - 4}" x2="{lx + 14}" y2="{ly - 4}" stroke="{colour}" '
                f'stroke-width="2" stroke-dasharray="{dash}"/>'
            )
        elif shape == "circle":
            add(f'<circle cx="{lx + 7}" cy="{ly - 4}" r="5" fill="{colour}"/>')
        else:
            add(
                f'<circle cx="{lx + 7}" cy="{ly - 4}" r="6" fill="none" stroke="{colour}" '
                'stroke-width="2"/>'
            )
        add(f'<text x="{lx + 19}" y="{ly}" font-size="12" fill="#424242">{esc(label)}</text>')
        lx += 26 + 6.6 * len(label) + 10


def _draw_grid(canvas: _Canvas) -> float:
    """The lanes' backgrounds and titles, and the time grid; returns the axis's y."""
    add = canvas.out.append
    lanes, duration, plot_w = canvas.lanes, canvas.duration, canvas.plot_w
    for i, lane in enumerate(lanes):
        fill = "#fafafa" if i % 2 == 0 else "#f3f5f7"
        add(
            f'<rect x="{_LEFT}" y="{lane.y}" width="{plot_w}" height="{lane.height}" '
            f'fill="{fill}" stroke="#e0e0e0"/>'
        )
        add(
            f'<text x="{_LEFT - 10}" y="{lane.y + lane.height / 2 + 4}" font-size="12.5" '
            f'text-anchor="end" fill="#37474f">{esc(lane.title)}</text>'
        )
    step = _nice_step(duration)
    axis_y = lanes[-1].y + lanes[-1].height + 6
    tick = 0.0
    while tick <= duration + 1e-9:
        gx = _LEFT + tick / duration * plot_w
        add(
            f'<line x1="{gx:.1f}" y1="{_TOP}" x2="{gx:.1f}" y2="{axis_y}" stroke="#000" '
            'stroke-opacity="0.07"/>'
        )
        add(
            f'<text x="{gx:.1f}" y="{axis_y + 14}" font-size="11" text-anchor="middle" '
            f'fill="#616161">{tick:g} s</text>'
        )
        tick += step
    return axis_y


def _draw_audio(canvas: _Canvas, data: TimelineData) -> None:
    """The bot's audio as sent, and as heard (or flushed by a clear)."""
    add, x, by_key, t0 = canvas.out.append, canvas.x, canvas.by_key, canvas.t0
    chunks, heard = data.chunks, data.heard
    for key, items in (("sent", [(t, s, d, False) for t, s, d in chunks]), ("heard", heard)):
        lane = by_key[key]
        base = lane.y + lane.height - 4
        for t, seconds, db, flushed in items:
            level = max(0.0, min(1.0, (db - _FLOOR_DB) / -_FLOOR_DB))
            bar_h = 3 + level * (lane.height - 10)
            start = t if key == "sent" else t - seconds
            bx = x(start)
            bw = max(1.0, x(start + seconds) - bx)
            colour = _BOT if key == "sent" else (_FLUSHED if flushed else _HEARD)
            what = "sent" if key == "sent" else ("flushed" if flushed else "heard")
            add(
                f'<rect x="{bx:.2f}" y="{base - bar_h:.2f}" width="{bw:.2f}" height="{bar_h:.2f}" '
                f'fill="{colour}"><title>bot audio {what} at {start - t0:.3f} s: '
                f"{seconds * 1000:.0f} ms, {db:.1f} dBFS</title></rect>"
            )


def _draw_energy(canvas: _Canvas, data: TimelineData) -> None:
    """The caller's energy, the gate's echo estimate and its noise floor."""
    add, x, plot_w = canvas.out.append, canvas.x, canvas.plot_w
    caller, chunks, gate = data.caller, data.chunks, data.gate
    lane = canvas.by_key["energy"]

    def ey(db: float) -> float:
        level = max(0.0, min(1.0, (db - _FLOOR_DB) / -_FLOOR_DB))
        return lane.y + lane.height - 4 - level * (lane.height - 8)

    for grid_db in (-60, -40, -20):
        gy = ey(grid_db)
        add(
            f'<line x1="{_LEFT}" y1="{gy:.1f}" x2="{_LEFT + plot_w}" y2="{gy:.1f}" '
            'stroke="#000" stroke-opacity="0.06"/>'
        )
        add(
            f'<text x="{_LEFT + 4}" y="{gy - 2:.1f}" font-size="9.5" fill="#9e9e9e">'
            f"{grid_db} dBFS</text>"
        )
    if caller:
        points = " ".join(f"{x(t + 0.01):.1f},{ey(db):.1f}" for t, db in caller)
        first = f"{x(caller[0][0]):.1f},{ey(_FLOOR_DB):.1f}"
        last = f"{x(caller[-1][0] + 0.02):.1f},{ey(_FLOOR_DB):.1f}"
        add(f'<polygon points="{first} {points} {last}" fill="{_CALLER}" fill-opacity="0.16"/>')
        add(
            f'<polyline points="{points}" fill="none" stroke="{_CALLER}" stroke-width="1.2">'
            "<title>caller energy per 20 ms frame</title></polyline>"
        )
    delay = gate.get("echo_delay_ms")
    erl = gate.get("echo_return_loss_db")
    if isinstance(delay, (int, float)) and isinstance(erl, (int, float)) and chunks:
        segments = []
        previous_end = -1.0
        for t, seconds, db in chunks:
            start = t + delay / 1000.0
            joined = abs(start - previous_end) < 0.03
            segments.append(
                f"{'V' if joined else 'M' + f'{x(start):.1f},'}{ey(db - erl):.1f} "
                f"H{x(start + seconds):.1f}"
            )
            previous_end = start + seconds
        add(
            f'<path d="{" ".join(segments)}" fill="none" stroke="{_ECHO}" stroke-width="1.6" '
            f'stroke-dasharray="5 3"><title>echo estimate: bot audio {delay:.0f} ms later, '
            f"{erl:.1f} dB quieter (the gate's estimate, correlation "
            f"{float(gate.get('echo_confidence') or 0.0):.2f})</title></path>"
        )
    floor = gate.get("noise_floor_dbfs")
    if isinstance(floor, (int, float)):
        add(
            f'<line x1="{_LEFT}" y1="{ey(floor):.1f}" x2="{_LEFT + plot_w}" y2="{ey(floor):.1f}" '
            f'stroke="#757575" stroke-width="1.2" stroke-dasharray="2 3">'
            f"<title>noise floor {floor:.1f} dBFS</title></line>"
        )


def _draw_vad(canvas: _Canvas, data: TimelineData) -> None:
    """The server VAD's speech segments and committed turns."""
    add, x, t0, t_end = canvas.out.append, canvas.x, canvas.t0, canvas.t_end
    lane = canvas.by_key["vad"]
    open_at: float | None = None
    for what, t, msg in data.vad:
        if what == "speech_started":
            open_at = t
        elif what == "speech_stopped" and open_at is not None:
            add(
                f'<rect x="{x(open_at):.1f}" y="{lane.y + 7}" '
                f'width="{max(2, x(t) - x(open_at)):.1f}" '
                f'height="{lane.height - 14}" rx="3" fill="{_CALLER}" fill-opacity="0.55">'
                f"<title>speech {open_at - t0:.3f}-{t - t0:.3f} s (item {esc(msg.get('item_id'))})"
                "</title></rect>"
            )
            open_at = None
        elif what == "committed":
            add(
                f'<path d="M{x(t):.1f},{lane.y + 3} l4,-0 l-4,6 l-4,-6 z" fill="#4a148c">'
                f"<title>turn committed at {t - t0:.3f} s</title></path>"
            )
    if open_at is not None:
        add(
            f'<rect x="{x(open_at):.1f}" y="{lane.y + 7}" '
            f'width="{max(2, x(t_end) - x(open_at)):.1f}" '
            f'height="{lane.height - 14}" rx="3" fill="{_CALLER}" fill-opacity="0.3"/>'
        )


def _draw_responses(canvas: _Canvas, data: TimelineData) -> None:
    """Each response, from its ``response.created`` to its ``response.done``."""
    add, x, t0, t_end = canvas.out.append, canvas.x, canvas.t0, canvas.t_end
    lane = canvas.by_key["responses"]
    for rid, (start, stop, status) in data.responses.items():
        stop_t = stop if stop is not None else t_end
        colour = "#90a4ae" if status == "cancelled" else "#1e88e5"
        add(
            f'<rect x="{x(start):.1f}" y="{lane.y + 7}" width="{max(2, x(stop_t) - x(start)):.1f}" '
            f'height="{lane.height - 14}" rx="3" fill="{colour}" fill-opacity="0.75">'
            f"<title>response {esc(rid)}: {start - t0:.3f}-{stop_t - t0:.3f} s "
            f"{esc(status or 'not done')}</title></rect>"
        )


def _draw_decisions(canvas: _Canvas, data: TimelineData) -> None:
    """Each guard's decisions on its lane, coloured by verdict; differences ringed."""
    add, x, by_key, t0 = canvas.out.append, canvas.x, canvas.by_key, canvas.t0
    missing, differing = data.missing, data.differing
    label_end: dict[str, float] = {}
    for decision in [*data.decisions, *missing]:
        guard_lane = by_key.get(decision.guard)
        if guard_lane is None:
            continue
        cx = x(decision.t)
        cy = guard_lane.y + guard_lane.height / 2
        colour = VERDICT_COLOURS.get(decision.verdict, "#757575")
        is_missing = decision in missing
        tip = esc(
            ("recorded, not replayed: " if is_missing else "")
            + decision.describe(t0).replace("  ", " ")
        )
        if is_missing:
            add(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5" fill="none" stroke="{colour}" '
                f'stroke-width="2" stroke-dasharray="2 2"><title>{tip}</title></circle>'
            )
        else:
            add(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="5.5" fill="{colour}" stroke="#fff" '
                f'stroke-width="1"><title>{tip}</title></circle>'
            )
        if id(decision) in differing or is_missing:
            add(
                f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="9" fill="none" stroke="#000" '
                f'stroke-width="2"><title>{tip}</title></circle>'
            )
        if decision.verdict != "ALLOW" and not is_missing:
            below = cx + 8 < label_end.get(decision.guard, -1e9)
            label_end[decision.guard] = -1e9 if below else cx + 8 + 6.2 * len(decision.reason)
            add(
                f'<text x="{cx + 8:.1f}" y="{cy + 12 if below else cy - 6:.1f}" font-size="9.5" '
                f'fill="{colour}">{esc(decision.reason)}</text>'
            )


def _draw_actions(canvas: _Canvas, data: TimelineData) -> None:
    """The actions sent (clear, create, cancel, truncate, hang up) and the errors."""
    add, x, t0 = canvas.out.append, canvas.x, canvas.t0
    lane = canvas.by_key["actions"]
    row_end = [-1e9, -1e9, -1e9]
    for t, label, tip in data.actions:
        ax = x(t)
        row = next((i for i, end in enumerate(row_end) if ax > end + 4), 0)
        row_end[row] = ax + 6.2 * len(label)
        ty = lane.y + 14 + row * 16
        colour = "#c62828" if label in ("clear", "cancel", "hang up") else "#37474f"
        if label.startswith("truncate"):
            colour = "#ad1457"
        add(
            f'<line x1="{ax:.1f}" y1="{lane.y + 2}" x2="{ax:.1f}" y2="{lane.y + lane.height - 2}" '
            f'stroke="{colour}" stroke-width="1.5">'
            f"<title>{esc(tip)} at {t - t0:.3f} s</title></line>"
        )
        add(
            f'<text x="{ax + 3:.1f}" y="{ty}" font-size="10.5" fill="{colour}">{esc(label)}'
            f"<title>{esc(tip)}</title></text>"
        )
    for t, tip in data.bad:
        add(
            f'<text x="{x(t):.1f}" y="{lane.y + lane.height - 3}" font-size="12" fill="#b71c1c" '
            f'text-anchor="middle">⚠<title>{esc(tip)}</title></text>'
        )


def _draw_timers(canvas: _Canvas, data: TimelineData) -> None:
    """The timers that fired."""
    add, x, t0 = canvas.out.append, canvas.x, canvas.t0
    lane = canvas.by_key["timers"]
    for t, name in data.timers:
        add(
            f'<path d="M{x(t):.1f},{lane.y + 6} l6,9 l-6,9 l-6,-9 z" fill="#6d4c41">'
            f"<title>timer {esc(name)} fired at {t - t0:.3f} s</title></path>"
        )
        add(
            f'<text x="{x(t) + 8:.1f}" y="{lane.y + 19}" font-size="10" fill="#6d4c41">'
            f"{esc(name)}</text>"
        )
