"""Render and label the barge-in corpus (shared by ``generate.py`` and ``bargein_quality.py``).

The corpus is shipped as speech clips (``clips/*.ul``, 8 kHz mu-law, synthesized with espeak-ng by
``generate.py``) plus ``cases.json``: one entry per call with its script (which clip plays when),
its line conditions (echo delay and return loss, non-linearity, noise level, caller level), a seed
for the random parts (line noise, noise bursts, echo tail), the labelled ``speech_started`` events
and a SHA-256 of the rendered audio. Rendering a call from that description is deterministic and
takes milliseconds, so the two audio streams of every call (tens of MB in total) are not shipped;
``render`` checks the digest so a changed renderer or numpy cannot silently change the corpus.

Signal model of one call (all at 8 kHz, 16-bit scale)::

    outbound = bot speech, as handed to the phone (only while the bot talks)
    inbound  = caller speech + echo(outbound) + line noise + noise bursts
    echo(x)  = nonlinearity(gain * x delayed by `delay_ms`, plus a 6 ms dispersive tail)

The echo path gain is set so the echo is `erl_db` below the outbound level (echo return loss).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from voiceguard.audio import FRAME_BYTES, decode_ulaw, encode_ulaw

HERE = Path(__file__).resolve().parent
CLIPS_DIR = HERE / "clips"
CASES_FILE = HERE / "cases.json"
RATE = 8000
FRAME_MS = 20
#: A frame of the clean caller track counts as speech when it is within this many dB of the
#: utterance's active level (used for labels only).
CALLER_ACTIVE_BELOW_DB = 25.0


def frame_db(signal: np.ndarray) -> np.ndarray:
    """Energy in dBFS of each complete 20 ms frame of a 16-bit-scale signal."""
    n = len(signal) // FRAME_BYTES
    frames = signal[: n * FRAME_BYTES].reshape(n, FRAME_BYTES) / 32768.0
    db = 10.0 * np.log10(np.maximum(np.mean(frames**2, axis=1), 1e-12))
    return np.asarray(db, dtype=np.float64)


def active_rms_db(signal: np.ndarray) -> float:
    """Level of speech in dBFS: power over the frames within 30 dB of the loudest frame."""
    db = frame_db(signal)
    active = db > db.max() - 30.0
    return float(10.0 * np.log10(np.mean(10.0 ** (db[active] / 10.0))))


_clip_cache: dict[str, np.ndarray] = {}


def load_clip(name: str) -> np.ndarray:
    """A clip as float samples on the 16-bit scale, normalised to 0 dBFS active level."""
    clip = _clip_cache.get(name)
    if clip is None:
        raw = decode_ulaw((CLIPS_DIR / f"{name}.ul").read_bytes()).astype(np.float64)
        clip = raw * 10.0 ** (-active_rms_db(raw) / 20.0)
        _clip_cache[name] = clip
    return clip


def _band_limited_noise(rng: np.random.Generator, n: int) -> np.ndarray:
    """Unit-power noise limited to the telephone band (300-3400 Hz)."""
    spectrum = np.fft.rfft(rng.normal(size=n))
    freqs = np.fft.rfftfreq(n, 1.0 / RATE)
    spectrum[(freqs < 300) | (freqs > 3400)] = 0
    noise = np.fft.irfft(spectrum, n)
    return np.asarray(noise / np.sqrt(np.mean(noise**2)), dtype=np.float64)


def _burst(rng: np.random.Generator, kind: str, dur_ms: float) -> np.ndarray:
    """A unit-power noise burst of the given kind."""
    n = max(8, round(dur_ms * RATE / 1000))
    t = np.arange(n) / RATE
    if kind == "click":
        x = rng.normal(size=n) * np.exp(-t / 0.002)
    elif kind == "thump":
        x = np.sin(2 * np.pi * rng.uniform(150, 400) * t) * np.exp(-t / (dur_ms / 3000))
    else:  # crackle: white noise gated on and off every few ms
        gate = np.repeat(rng.random(n // 40 + 1) < 0.6, 40)[:n]
        x = rng.normal(size=n) * gate * rng.uniform(0.3, 1.0, size=n)
    return np.asarray(x / np.sqrt(np.mean(x**2) + 1e-12), dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One call's audio and the clean tracks used for labelling."""

    inbound: bytes
    outbound: bytes
    bot_frames: np.ndarray  # bool per frame: the bot's audio is handed to the phone
    caller: np.ndarray  # clean caller track as it reaches the bridge
    echo: np.ndarray
    noise: np.ndarray  # line noise plus bursts
    caller_onsets_ms: list[int]
    caller_levels_db: list[float]


def render(case: dict[str, Any], *, check: bool = True) -> Rendered:
    """Render one call of the corpus. Deterministic for a given case description."""
    cond = case["condition"]
    n_frames = round(case["duration_ms"] / FRAME_MS)
    n = n_frames * FRAME_BYTES
    rng = np.random.default_rng(case["seed"])

    bot = np.zeros(n)
    for turn in case["bot"]:
        clip = load_clip(turn["clip"]) * 10.0 ** ((cond["bot_dbfs"] + turn["gain_db"]) / 20.0)
        start = turn["start_ms"] * RATE // 1000
        stop = min(n, start + len(clip), turn.get("stop_ms", 10**9) * RATE // 1000)
        if stop > start:
            segment = clip[: stop - start].copy()
            fade = min(80, len(segment))  # 10 ms fade-out where a turn is cut short
            segment[-fade:] *= np.linspace(1.0, 0.0, fade)
            bot[start:stop] += segment
    bot = np.clip(np.round(bot), -32768, 32767)
    outbound_bytes = encode_ulaw(bot.astype(np.int16))
    bot_frames = np.zeros(n_frames, dtype=bool)
    for turn in case["bot"]:
        first = turn["start_ms"] // FRAME_MS
        end_ms = min(
            turn["start_ms"] + round(len(load_clip(turn["clip"])) * 1000 / RATE),
            turn.get("stop_ms", 10**9),
        )
        bot_frames[first : min(n_frames, -(-end_ms // FRAME_MS))] = True
    bot_heard = decode_ulaw(outbound_bytes).astype(np.float64)

    # Echo: delay, dispersive tail, gain, then the line's non-linearity.
    delay = round(cond["delay_ms"] * RATE / 1000)
    tail = rng.normal(size=48) * np.exp(-np.arange(48) / 12.0) * 0.35
    tail[0] = 1.0
    tail *= 10.0 ** (-cond["erl_db"] / 20.0) / np.sqrt(np.sum(tail**2))
    echo = np.convolve(np.concatenate([np.zeros(delay), bot_heard])[:n], tail)[:n]
    if cond["nonlinearity"] == "clip":
        limit = max(np.percentile(np.abs(echo), 99.5) * 0.5, 1.0)
        echo = limit * np.tanh(echo / limit)
    elif cond["nonlinearity"] == "agc":
        t = np.arange(n) / RATE
        period = rng.uniform(1.5, 4.0)
        depth = rng.uniform(2.0, 4.0)
        echo *= 10.0 ** (depth * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3)) / 20.0)

    # Line noise: telephone-band, level drifting by about +-1 dB, plus bursts.
    t = np.arange(n) / RATE
    drift = 10.0 ** (np.sin(2 * np.pi * t / rng.uniform(3, 8) + rng.uniform(0, 6.3)) / 20.0)
    noise = _band_limited_noise(rng, n) * drift * 32768 * 10.0 ** (cond["noise_dbfs"] / 20.0)
    for burst in case["bursts"]:
        x = _burst(rng, burst["kind"], burst["dur_ms"]) * 32768 * 10.0 ** (burst["dbfs"] / 20.0)
        start = burst["start_ms"] * RATE // 1000
        x = x[: max(0, n - start)]
        noise[start : start + len(x)] += x

    caller = np.zeros(n)
    onsets: list[int] = []
    levels: list[float] = []
    for utt in case["caller"]:
        level = cond["caller_dbfs"] + utt["gain_db"]
        clip = load_clip(utt["clip"]) * 10.0 ** (level / 20.0)
        start = utt["start_ms"] * RATE // 1000
        clip = clip[: max(0, n - start)]
        caller[start : start + len(clip)] += clip
        onsets.append(utt["start_ms"])
        levels.append(level)

    inbound = np.clip(np.round(caller + echo + noise), -32768, 32767).astype(np.int16)
    inbound_bytes = encode_ulaw(inbound)
    if check and "sha256" in case:
        digest = hashlib.sha256(inbound_bytes + outbound_bytes).hexdigest()
        if digest != case["sha256"]:
            raise RuntimeError(
                f"case {case['id']}: rendered audio differs from the labelled corpus "
                "(renderer or numpy changed); re-run benchmarks/corpus/generate.py"
            )
    return Rendered(
        inbound=inbound_bytes,
        outbound=outbound_bytes,
        bot_frames=bot_frames,
        caller=caller,
        echo=echo,
        noise=noise,
        caller_onsets_ms=onsets,
        caller_levels_db=levels,
    )


def digest(rendered: Rendered) -> str:
    """SHA-256 of a rendered call's audio (inbound then outbound)."""
    return hashlib.sha256(rendered.inbound + rendered.outbound).hexdigest()


def load_cases() -> list[dict[str, Any]]:
    """The labelled cases from ``cases.json``."""
    data: dict[str, Any] = json.loads(CASES_FILE.read_text())
    cases: list[dict[str, Any]] = data["cases"]
    return cases
