"""Draw the line conditions and the script of one of the multilingual calls of the corpus.

Each call is in one language (bot and caller) and draws independently:

* its kind: ``ordinary``; ``caller_first`` (the caller speaks before the greeting);
  ``silence_only`` (the caller never speaks); ``greeting_interrupt`` (a clean line, no echo at all
  and quiet line noise, and a caller who speaks into the first second of the greeting);
* its line: echo delay 40-600 ms, echo return loss 3-30 dB, non-linearity (none / soft clipping /
  AGC), line noise -70..-35 dBFS, caller level -40..-10 dBFS, bot level -24..-14 dBFS; on a third
  of the echoing lines the echo is a canceller's residue instead of plain echo, and on a third
  its delay drifts by 10-40 ms over the call;
* its background (70 % of the calls): one of ``backgrounds.KINDS`` at one of three levels
  relative to the caller (:data:`LEVELS`); a TV or babble starts with the call in half of its
  calls; clicks, crackle and thumps on the line as before (30 %);
* its script: bot turns, and per turn the caller replies after it, barges in with a sentence or a
  short word (the bot then stops within 0.3-0.6 s, as if the barge-in had been honoured), says a
  backchannel while the bot talks on (and maybe replies after), or says nothing. A third of the
  caller's sentences are those of low-pitched callers starting with /m/ or /z/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import backgrounds
import legacy
import numpy as np

#: Background levels (dB relative to the caller's active level) per kind.
LEVELS: dict[str, tuple[int, ...]] = {
    "tv": (-20, -12, -6),
    "babble": (-20, -12, -6),
    "door": (-12, -6, 0),
    "keyboard": (-12, -6, 0),
    "cough": (-12, -6, 0),
}

Pools = dict[str, list[str]]  # role -> clip names of one language


def _background(
    rng: np.random.Generator, duration_ms: int, speech: list[str]
) -> dict[str, Any] | None:
    """A background of the room, or ``None`` (30 % of the calls)."""
    if rng.random() < 0.3:
        return None
    kind = str(rng.choice(backgrounds.KINDS))
    spec: dict[str, Any] = {
        "kind": kind,
        "level_db": int(rng.choice(LEVELS[kind])),
        "seed": int(rng.integers(2**31)),
        "start_ms": 0,
        "clips": [],
    }
    if kind in backgrounds.CONTINUOUS:
        if rng.random() < 0.5:
            spec["start_ms"] = int(rng.uniform(0, duration_ms / 2)) // 20 * 20
        voices = 1 if kind == "tv" else int(rng.integers(3, 7))
        spec["clips"] = [
            [str(c) for c in rng.choice(speech, size=6, replace=False)] for _ in range(voices)
        ]
    return spec


def _line(rng: np.random.Generator, kind: str) -> dict[str, Any]:
    """The line conditions of a call of the given kind."""
    clean = kind == "greeting_interrupt"
    line: dict[str, Any] = {
        "delay_ms": round(float(rng.uniform(40, 600))),
        "erl_db": None if clean else round(float(rng.uniform(3, 30)), 1),
        "nonlinearity": "none"
        if clean
        else str(rng.choice(["none", "clip", "agc"], p=[0.5, 0.25, 0.25])),
        "noise_dbfs": round(float(rng.uniform(-75, -62) if clean else rng.uniform(-70, -35)), 1),
        "caller_dbfs": round(float(rng.uniform(-40, -10)), 1),
        "bot_dbfs": round(float(rng.uniform(-24, -14)), 1),
        "clean_line": clean,
        "residue": None,
        "drift": None,
    }
    if not clean and rng.random() < 1 / 3:
        line["residue"] = {
            "seed": int(rng.integers(2**31)),
            "percentile": round(float(rng.uniform(60, 85)), 1),
            "min_db": round(float(rng.uniform(-12, -3)), 1),
        }
    if not clean and rng.random() < 1 / 3:
        line["drift"] = {
            "amplitude_ms": round(float(rng.uniform(10, 40)), 1),
            "period_s": round(float(rng.uniform(4, 20)), 2),
            "phase": round(float(rng.uniform(0, 6.28)), 2),
        }
    return line


def draw_call(
    index: int,
    rng: np.random.Generator,
    *,
    language: str,
    pools: Pools,
    speech: list[str],
    clip_ms: Callable[[str], int],
) -> dict[str, Any]:
    """Draw one call in ``language`` from its clip ``pools``; ``speech`` feeds TV and babble."""
    kind = str(
        rng.choice(
            ["ordinary", "caller_first", "silence_only", "greeting_interrupt"],
            p=[0.6, 0.1, 0.1, 0.2],
        )
    )
    condition: dict[str, Any] = {"kind": kind, "language": language, **_line(rng, kind)}
    duration_ms = int(rng.uniform(12_000, 22_000)) // 20 * 20
    condition["background"] = _background(rng, duration_ms, speech)
    bot: list[dict[str, Any]] = []
    caller: list[dict[str, Any]] = []

    def say(start_ms: int, role: str) -> int:
        if role == "caller" and rng.random() < 1 / 3:
            role = "low"
        clip = str(rng.choice(pools[role]))
        gain = round(float(rng.uniform(-3, 3)), 1)
        caller.append({"clip": clip, "start_ms": start_ms, "gain_db": gain})
        return start_ms + clip_ms(clip)

    def barge_in(turn: dict[str, Any], onset: int, role: str) -> int:
        turn["stop_ms"] = onset + int(rng.uniform(300, 600))
        return say(onset, role) + int(rng.uniform(500, 1200))

    t = int(rng.uniform(300, 1200))
    if kind == "caller_first":
        say(int(rng.uniform(0, 1000)), "caller")
    first = True
    while t < duration_ms - 1500:
        clip = str(rng.choice(pools["greet"] if first else pools["bot"]))
        length = clip_ms(clip)
        turn: dict[str, Any] = {
            "clip": clip,
            "start_ms": t,
            "gain_db": round(float(rng.uniform(-2, 2)), 1),
        }
        bot.append(turn)
        r = rng.random()
        after = t + length + int(rng.uniform(200, 1000))
        if first and kind == "greeting_interrupt":
            role = "short" if rng.random() < 0.3 else "caller"
            t = barge_in(turn, t + int(rng.uniform(100, 1000)), role)
        elif kind == "silence_only" or (first and kind == "caller_first"):
            t += length + int(rng.uniform(2500, 4500))
        elif r < 0.2 and length > 1200:
            t = barge_in(turn, t + int(rng.uniform(400, length - 400)), "caller")
        elif r < 0.35 and length > 1000:
            t = barge_in(turn, t + int(rng.uniform(300, length - 300)), "short")
        elif r < 0.6 and length > 1500:
            say(t + int(rng.uniform(400, length - 700)), "backchannel")
            t = after + int(rng.uniform(500, 1200))
            if rng.random() < 0.6:
                t = say(after, "caller") + int(rng.uniform(500, 1200))
        elif r < 0.9:
            t = say(after, "caller") + int(rng.uniform(500, 1200))
        else:
            t += length + int(rng.uniform(2500, 4000))
        first = False
    bursts = legacy.draw_bursts(rng, 0.3, condition["noise_dbfs"], duration_ms)
    return {
        "id": f"call{index:04d}",
        "seed": int(rng.integers(2**31)),
        "duration_ms": duration_ms,
        "condition": condition,
        "bot": bot,
        "caller": caller,
        "bursts": bursts,
    }
