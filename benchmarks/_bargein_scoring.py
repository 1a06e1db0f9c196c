"""Scoring of ``bargein_quality.py``: rates, per-condition bands, backchannels, short barge-ins.

* :func:`score`: false and missed barge-ins and the delays over (condition, event, act) rows;
* :data:`CONDITIONS`: the per-condition bands, each a test on (call condition, event);
* :func:`utterance_outcomes`: whether each backchannel and each short barge-in stopped the bot;
* :func:`engine_confirms`: the turn engine's confirmation rule, in one place;
* :func:`late_outcome`: the late barge-ins of one call.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from typing import Any, Protocol

import corpus
import numpy as np

from voiceguard.config import TurnConfig

Acts = list[int | None]  # per event: the ms at which the strategy acted, or None
Late = list[tuple[int, int]]  # late barge-ins: (ms, index of the event whose segment it is in)


class GateView(Protocol):
    """What the gate knew at its acts (``bargein_quality.GateRun``)."""

    act_echo_known: list[bool]  # per event: the echo path learnt when the gate acted on it
    late_from: list[float | None]  # per late barge-in: where its speech began (ms)
    late_echo_known: list[bool]  # per late barge-in: the echo path learnt then


Row = tuple[dict[str, Any], dict[str, Any], int | None]  # (call condition, event, act ms)
Test = Callable[[dict[str, Any], dict[str, Any]], bool]

_TURNS = TurnConfig()
#: The engine confirms a barge-in once the caller's speech has lasted this long (ms).
MIN_BARGE_IN_SPEECH_MS = round(_TURNS.min_barge_in_speech * 1000)
#: ... unless it ended within this (ms) and its words are all acknowledgements (a backchannel).
MAX_BACKCHANNEL_MS = round(_TURNS.backchannel.max_duration * 1000)
CONFIRM_BARGE_IN_MS = round(_TURNS.confirm_barge_in * 1000)
_QUIET_MS = 200  # the line quiet this long: the caller's speech ended (``caller_quiet``)
FALSE_CLASSES = ("echo", "noise")


def engine_confirms(segment: dict[str, Any]) -> bool:
    """True if the turn engine would confirm a barge-in the gate let through in this VAD segment.

    The rule of ``voiceguard.core._barge`` with the caller transcribed (the transcript modelled
    as the words of the caller utterance behind the segment): the speech lasted at least
    ``TurnConfig().min_barge_in_speech``, and it is not a backchannel (speech within
    ``BackchannelConfig.max_duration`` whose words ``BackchannelConfig.acknowledges``).
    """
    end = segment["speech_end_ms"]
    if end is None:
        return True
    speech = end - segment["speech_onset_ms"]
    if speech < MIN_BARGE_IN_SPEECH_MS:
        return False
    return not _backchannel(speech, segment.get("text"))


def _backchannel(speech_ms: float, text: str | None) -> bool:
    """True if the engine takes *speech_ms* of speech saying *text* for a backchannel."""
    backchannel = _TURNS.backchannel
    short = backchannel.enabled and speech_ms <= MAX_BACKCHANNEL_MS
    return short and isinstance(text, str) and backchannel.acknowledges(text)


def engine_confirms_paused(
    segment: dict[str, Any],
    *,
    at_ms: int,
    utterance: tuple[int, str | None],
    echo_delay_ms: int,
    held_by_echo: bool,
    echo_known: bool = False,
    late_from_ms: float | None = None,
    late: bool = False,
) -> bool:
    """True if the turn engine would confirm the barge-in the gate allowed at *at_ms* in
    *segment*, the caller's *utterance* (``(end ms, text)``) sounding in it.

    The rule of :func:`engine_confirms`, on the segment as the VAD would see it once the bot
    paused at *at_ms* (the corpus is open loop: a labelled segment runs on with the bot's echo
    after the moment the bot would have paused). A segment the bot's echo holds open
    (*held_by_echo*) then ends with the utterance or with the echo, *echo_delay_ms* after the
    pause, whichever is later; one that noise holds open ends where it ended. The engine measures
    the speech from the segment's onset, or, for a *late* barge-in, from where the gate found the
    caller's speech began (*late_from_ms*), never too short on that measure (a late start may
    come after the caller's first word). The line must also be quiet (200 ms without the caller,
    nor the echo's tail unless the echo path is learnt, *echo_known*:
    ``CalibrationGate.caller_quiet`` discounts the echo it predicts) by
    ``TurnConfig().confirm_barge_in`` after *at_ms*, or the engine confirms. The transcript is
    the utterance's words: the engine leaves the echo's words out of a late barge-in's.
    """
    end = segment["speech_end_ms"]
    if end is None:
        return True
    utterance_end, text = utterance
    sounding = end  # until the line is quiet of all but what the gate expects
    if held_by_echo:
        end = min(end, max(utterance_end, at_ms + echo_delay_ms))
        sounding = min(end, utterance_end) if echo_known else end
    if sounding + _QUIET_MS > at_ms + CONFIRM_BARGE_IN_MS:
        return True  # still sounding when the engine decides: the caller kept talking
    begun = segment["speech_onset_ms"]
    if late and late_from_ms is not None:
        begun = late_from_ms
    if not late and end - begun < MIN_BARGE_IN_SPEECH_MS:
        return False
    return not _backchannel(end - begun, text)


def _percentile(values: list[float], q: float) -> float | None:
    """The ``q`` quantile of ``values`` (nearest rank), or ``None`` when empty."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def score(rows: list[Row]) -> dict[str, Any]:
    """Rates and delays over (case condition, event, act time) rows."""
    bad = [(e, a) for _c, e, a in rows if e["label"] in FALSE_CLASSES]
    real = [(e, a) for _c, e, a in rows if e["label"] == "real"]
    delays = [a - e["true_onset_ms"] for e, a in real if a is not None]
    added = [a - e["detected_ms"] for e, a in real if a is not None]
    return {
        "false_rate": sum(a is not None for _e, a in bad) / len(bad) if bad else 0.0,
        "missed_rate": sum(a is None for _e, a in real) / len(real) if real else 0.0,
        "false": sum(a is not None for _e, a in bad),
        "missed": sum(a is None for _e, a in real),
        "median_delay_ms": statistics.median(delays) if delays else None,
        "p95_delay_ms": _percentile([float(d) for d in delays], 0.95),
        "median_added_delay_ms": statistics.median(added) if added else None,
        "events_false_candidates": len(bad),
        "events_real": len(real),
    }


def _cond(test: Callable[[dict[str, Any]], bool]) -> Test:
    """A band test on the call condition only."""
    return lambda c, _e: test(c)


def _tag(name: str, value: Any) -> Test:
    """A band test on one of the event's condition tags."""
    return lambda _c, e: e.get("tags", {}).get(name, False) == value


def _echoing(c: dict[str, Any]) -> bool:
    """The line carries echo."""
    return c["erl_db"] is not None


_LANGUAGES = {
    "en": "English",
    "he": "Hebrew",
    "ar": "Arabic",
    "ru": "Russian",
    "es": "Spanish",
    "de": "German",
    "fr": "French",
    "pt": "Portuguese",
}
_BACKGROUND_LEVELS = {
    "tv": (-20, -12, -6),
    "babble": (-20, -12, -6),
    "door": (-12, -6, 0),
    "keyboard": (-12, -6, 0),
    "cough": (-12, -6, 0),
}


def _background(kind: str, level: int) -> Test:
    """Events heard with a background of this kind at this level."""
    return lambda _c, e: e["tags"]["background"] == kind and e["tags"]["background_db"] == level


CONDITIONS: dict[str, list[tuple[str, Test]]] = {
    "echo return loss": [
        ("3-10 dB", _cond(lambda c: _echoing(c) and c["erl_db"] < 10)),
        ("10-20 dB", _cond(lambda c: _echoing(c) and 10 <= c["erl_db"] < 20)),
        ("20-30 dB", _cond(lambda c: _echoing(c) and c["erl_db"] >= 20)),
    ],
    "echo delay": [
        ("40-200 ms", _cond(lambda c: _echoing(c) and c["delay_ms"] < 200)),
        ("200-400 ms", _cond(lambda c: _echoing(c) and 200 <= c["delay_ms"] < 400)),
        ("400-600 ms", _cond(lambda c: _echoing(c) and c["delay_ms"] >= 400)),
    ],
    "line noise": [
        ("-75..-58 dBFS", _cond(lambda c: c["noise_dbfs"] < -58)),
        ("-58..-47 dBFS", _cond(lambda c: -58 <= c["noise_dbfs"] < -47)),
        ("-47..-35 dBFS", _cond(lambda c: c["noise_dbfs"] >= -47)),
    ],
    "caller level": [
        ("-40..-30 dBFS", _cond(lambda c: c["caller_dbfs"] < -30)),
        ("-30..-20 dBFS", _cond(lambda c: -30 <= c["caller_dbfs"] < -20)),
        ("-20..-10 dBFS", _cond(lambda c: c["caller_dbfs"] >= -20)),
    ],
    "non-linearity": [
        ("none", _cond(lambda c: _echoing(c) and c["nonlinearity"] == "none")),
        ("clipping", _cond(lambda c: c["nonlinearity"] == "clip")),
        ("AGC", _cond(lambda c: c["nonlinearity"] == "agc")),
    ],
    "call kind": [
        ("ordinary", _cond(lambda c: c["kind"] == "ordinary")),
        ("caller first", _cond(lambda c: c["kind"] == "caller_first")),
        ("silence only", _cond(lambda c: c["kind"] == "silence_only")),
        ("greeting interrupt", _cond(lambda c: c["kind"] == "greeting_interrupt")),
    ],
    "echo line": [
        ("plain echo", _cond(lambda c: _echoing(c) and not c.get("residue"))),
        ("canceller residue", _tag("residue", True)),
        ("clean line (no echo)", _tag("clean_line", True)),
    ],
    "echo delay drift": [
        ("steady", _cond(lambda c: _echoing(c) and not c.get("drift"))),
        ("drifting 10-40 ms", _tag("drift", True)),
    ],
    "background": [
        ("none", _tag("background", "none")),
        *(
            (f"{kind} {level:+d} dB", _background(kind, level))
            for kind, levels in _BACKGROUND_LEVELS.items()
            for level in levels
        ),
    ],
    "language": [(name, _tag("language", code)) for code, name in _LANGUAGES.items()],
    "caller": [
        ("greeting interrupted in its first second, clean line", _tag("greeting_interrupt", True)),
        ("low voice, /m/ or /z/ onset", _tag("low_voice", True)),
    ],
}


def breakdown(rows: dict[str, list[Row]]) -> dict[str, dict[str, dict[str, Any]]]:
    """Per condition group, per band, per strategy: :func:`score` of the band's rows."""
    return {
        group: {
            band: {name: score([r for r in rs if test(r[0], r[1])]) for name, rs in rows.items()}
            for band, test in bands
        }
        for group, bands in CONDITIONS.items()
    }


def utterance_outcomes(
    case: dict[str, Any],
    *,
    index: dict[str, dict[str, Any]],
    clip_ms: Callable[[str], int],
    acts: Acts,
    late: Late | None,
    gate: GateView | None = None,
) -> list[tuple[str, bool]]:
    """Per backchannel and short barge-in of the call: its role and whether it stopped the bot.

    A strategy stops the bot when it acts on the utterance's own event, or on any event while
    the utterance sounds (from its start to 200 ms after its end: a deferred judgement of the
    segment it sounds in, settled by its words). With ``late`` (the voiceguard strategy) a late
    barge-in while the utterance sounds counts too (an utterance inside a segment opened by echo
    has no event), and acting also needs the turn engine to confirm: on the utterance's own
    event or a late barge-in :func:`engine_confirms_paused` (with what *gate* saw then), on
    another event :func:`engine_confirms`.
    """
    events = case["events"]
    cond = case["condition"]
    delay = cond.get("delay_ms") or 0
    echoing = cond.get("erl_db") is not None and not cond.get("clean_line")
    quiet_room = cond.get("background") is None
    out: list[tuple[str, bool]] = []
    for k, utt in enumerate(case["caller"]):
        role = index[utt["clip"]]["role"]
        if role not in ("backchannel", "short"):
            continue
        said = (utt["start_ms"] + clip_ms(utt["clip"]), index[utt["clip"]].get("text"))
        own = [j for j, e in enumerate(events) if e.get("utterance") == k]
        stopped = any(
            (a := acts[j]) is not None
            and (
                late is None
                or engine_confirms_paused(
                    events[j],
                    at_ms=a,
                    utterance=said,
                    echo_delay_ms=delay,
                    held_by_echo=echoing and quiet_room,
                    echo_known=gate is not None and gate.act_echo_known[j],
                )
            )
            for j in own
        )
        first, last = utt["start_ms"], said[0] + 200
        if not stopped:  # an act on the segment it sounds in, while it sounds, stops the bot too
            stopped = any(
                a is not None
                and first <= a <= last
                and (late is None or engine_confirms(events[j]))
                for j, a in enumerate(acts)
            )
        if late is not None and not stopped:
            stopped = any(
                first <= t <= last
                and engine_confirms_paused(
                    events[s],
                    at_ms=t,
                    utterance=said,
                    echo_delay_ms=delay,
                    held_by_echo=events[s]["label"] == "echo",
                    echo_known=gate is not None and gate.late_echo_known[n],
                    late_from_ms=None if gate is None else gate.late_from[n],
                    late=True,
                )
                for n, (t, s) in enumerate(late)
            )
        out.append((role, stopped))
    return out


def late_outcome(
    case: dict[str, Any],
    *,
    rendered: corpus.Rendered,
    index: dict[str, dict[str, Any]],
    clip_ms: Callable[[str], int],
    acts: Acts,
    late: Late,
) -> dict[str, Any]:
    """Score one call's late barge-ins (see the documentation of ``bargein_quality.py``)."""
    events = case["events"]
    caller_db = corpus.frame_db(rendered.caller)
    active = caller_db > case["condition"]["caller_dbfs"] - corpus.CALLER_ACTIVE_BELOW_DB
    end_ms = case["duration_ms"]
    hidden: list[int | None] = []  # per hidden utterance: delay of the late barge-in, or None
    for utt in case["caller"]:
        frames = np.flatnonzero(active[utt["start_ms"] // 20 :])
        if frames.size == 0 or index[utt["clip"]]["role"] == "backchannel":
            continue
        onset = utt["start_ms"] + int(frames[0]) * 20
        segment = next(
            (
                k
                for k, e in enumerate(events)
                if e["label"] in FALSE_CLASSES
                and e["speech_onset_ms"] <= onset < (e["speech_end_ms"] or end_ms)
            ),
            None,
        )
        if segment is None:
            continue
        length = clip_ms(utt["clip"])
        caught = [t for t, k in late if k == segment and onset <= t <= utt["start_ms"] + length]
        hidden.append(caught[0] - onset if caught else None)
    recovered = [
        t - events[k]["true_onset_ms"]
        for t, k in late
        if events[k]["label"] == "real" and acts[k] is None
    ]
    spurious = sum(not active[max(0, t // 20 - 10) : t // 20].any() for t, _k in late)
    return {"hidden": hidden, "recovered": recovered, "spurious": spurious, "late": len(late)}


def summarize_late(outcomes: list[dict[str, Any]], suppressed: int) -> dict[str, Any]:
    """The late barge-in table of one corpus from its calls' :func:`late_outcome`."""
    hidden = [d for o in outcomes for d in o["hidden"]]
    caught = [d for d in hidden if d is not None]
    recovered = [d for o in outcomes for d in o["recovered"]]
    return {
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
