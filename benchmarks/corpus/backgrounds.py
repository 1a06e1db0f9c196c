"""Sounds of the caller's room, mixed into the inbound audio of a corpus call.

Each background is described in ``cases.json`` by a small dict (its kind, level, a seed, the
speech clips it uses and when it starts) and synthesized from it here, deterministically; only
the speech clips come from the clip store. Kinds:

* ``tv``: a TV or radio in the room: speech from the clip store over music-like content (chords
  of harmonic tones with percussive hits), through a small loudspeaker and a reverberant room;
  continuous from ``start_ms`` (0 in some calls: on from the very start of the call).
* ``babble``: 3-6 quiet background talkers, each its own stream of clips with pauses and its own
  room response.
* ``door``: door slams: a low-frequency impulse with a crack, and the room's reverberant decay.
* ``keyboard``: typing: trains of short clicks (press and release) tens of ms apart.
* ``cough``: coughs: noisy bursts of 200-400 ms with a vocal-tract colouring, sometimes in twos.

:func:`render` returns the track scaled to 0 dBFS active level (like the speech clips); the
corpus scales it to the caller's level plus the background's ``level_db``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

RATE = 8000
KINDS = ("tv", "babble", "door", "keyboard", "cough")
#: Kinds that sound the whole call (from their start); the others are events.
CONTINUOUS = ("tv", "babble")

Loader = Callable[[str], np.ndarray]


def _fft_convolve(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """``x`` convolved with ``h``, cut to the length of ``x``."""
    size = 1 << int(np.ceil(np.log2(len(x) + len(h))))
    y = np.fft.irfft(np.fft.rfft(x, size) * np.fft.rfft(h, size), size)
    return np.asarray(y[: len(x)], dtype=np.float64)


def _band(x: np.ndarray, low: float, high: float) -> np.ndarray:
    """``x`` with its spectrum outside ``low``-``high`` Hz removed."""
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.asarray(np.fft.irfft(spectrum, len(x)), dtype=np.float64)


def room_response(rng: np.random.Generator, rt60_s: float, direct: float = 1.0) -> np.ndarray:
    """A synthetic room impulse response: a direct path, then exponentially decaying noise
    (60 dB down after ``rt60_s``), its high frequencies decaying faster."""
    n = int(rt60_s * RATE)
    t = np.arange(n) / RATE
    tail = rng.normal(size=n) * 10.0 ** (-3.0 * t / rt60_s)
    smooth = np.convolve(tail, np.ones(3) / 3.0, mode="same")  # duller as it decays
    tail = np.where(t < rt60_s / 4, tail, smooth)
    tail[: int(0.004 * RATE)] = 0.0  # first reflections arrive a few ms after the direct sound
    tail *= 0.6 / np.sqrt(np.sum(tail**2))
    tail[0] = direct
    return tail


def _unit(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to 0 dBFS active level (see ``corpus.active_rms_db``), on the 16-bit scale."""
    n = len(x) // 160
    if n == 0 or not np.any(x):
        return x
    power = np.mean((x[: n * 160].reshape(n, 160) / 32768.0) ** 2, axis=1)
    db = 10.0 * np.log10(np.maximum(power, 1e-12))
    active = db > db.max() - 30.0
    level = 10.0 * np.log10(np.mean(10.0 ** (db[active] / 10.0)))
    return np.asarray(x * 10.0 ** (-level / 20.0), dtype=np.float64)


def _speech_stream(
    rng: np.random.Generator, clips: list[str], load: Loader, n: int, gap_s: tuple[float, float]
) -> np.ndarray:
    """The clips one after another (cycled) with random pauses, filling ``n`` samples."""
    out = np.zeros(n)
    at = int(rng.uniform(0, gap_s[1]) * RATE)
    k = 0
    while at < n and clips:
        clip = load(clips[k % len(clips)]) * 10.0 ** (rng.uniform(-4, 4) / 20.0)
        piece = clip[: n - at]
        out[at : at + len(piece)] += piece
        at += len(clip) + int(rng.uniform(*gap_s) * RATE)
        k += 1
    return out


def _music(rng: np.random.Generator, n: int) -> np.ndarray:
    """Music-like content: chords of harmonic tones, changing every 0.25-0.7 s, and hits."""
    out = np.zeros(n)
    scale = 220.0 * 2.0 ** (np.array([0, 2, 4, 5, 7, 9, 11, 12, 14, 16]) / 12.0)
    at = 0
    while at < n:
        length = min(n - at, int(rng.uniform(0.25, 0.7) * RATE))
        t = np.arange(length) / RATE
        envelope = (1 - np.exp(-t / 0.01)) * np.exp(-t / rng.uniform(0.2, 0.8))
        for root in rng.choice(scale, size=3, replace=False):
            for harmonic in range(1, 6):
                if root * harmonic < 3400:
                    tone = np.sin(2 * np.pi * root * harmonic * t + rng.uniform(0, 6.3))
                    out[at : at + length] += envelope * tone / harmonic
        hit = int(0.04 * RATE)
        if rng.random() < 0.6 and length > hit:
            out[at : at + hit] += rng.normal(size=hit) * np.exp(-np.arange(hit) / 60.0) * 1.5
        at += length
    return out


def _tv(spec: dict[str, Any], rng: np.random.Generator, load: Loader, n: int) -> np.ndarray:
    """Speech over music through a small loudspeaker in a reverberant room."""
    speech = _unit(_speech_stream(rng, spec["clips"][0], load, n, (0.1, 0.8)))
    music = _unit(_music(rng, n)) * 10.0 ** (rng.uniform(-8, 0) / 20.0)
    speaker = _band(speech + music, 200.0, 3400.0)
    return _fft_convolve(speaker, room_response(rng, rng.uniform(0.3, 0.7), direct=0.5))


def _babble(spec: dict[str, Any], rng: np.random.Generator, load: Loader, n: int) -> np.ndarray:
    """Several talkers at a distance, each with its own pauses and room response."""
    out = np.zeros(n)
    for clips in spec["clips"]:
        voice = _speech_stream(rng, clips, load, n, (0.3, 2.0))
        room = room_response(rng, rng.uniform(0.3, 0.8), direct=0.3)
        out += _fft_convolve(_unit(voice), room) * 10.0 ** (rng.uniform(-6, 0) / 20.0)
    return out


def _events(rng: np.random.Generator, n: int, count: int, spacing_s: float) -> list[int]:
    """Start samples of ``count`` events spread over the call, at least ``spacing_s`` apart."""
    starts = np.sort(rng.uniform(0.3, max(0.4, n / RATE - 1.0), size=count))
    kept: list[int] = []
    for s in starts:
        if not kept or s * RATE - kept[-1] > spacing_s * RATE:
            kept.append(int(s * RATE))
    return kept


def _door(rng: np.random.Generator, n: int) -> np.ndarray:
    """Door slams: a low thud, a short broadband crack, the room's decay."""
    out = np.zeros(n)
    for start in _events(rng, n, int(rng.integers(1, 4)), 2.0):
        length = int(0.25 * RATE)
        t = np.arange(length) / RATE
        thud = np.sin(2 * np.pi * rng.uniform(60, 140) * t) * np.exp(-t / 0.05)
        body = _band(rng.normal(size=length), 80.0, 500.0) * np.exp(-t / 0.03) * 0.8
        crack = rng.normal(size=length) * np.exp(-t / 0.004) * rng.uniform(0.2, 0.6)
        slam = _fft_convolve(
            np.concatenate([thud + body + crack, np.zeros(RATE)]),
            room_response(rng, rng.uniform(0.4, 0.9), direct=1.0),
        )
        piece = slam[: n - start]
        out[start : start + len(piece)] += piece
    return out


def _keyboard(rng: np.random.Generator, n: int) -> np.ndarray:
    """Typing: bursts of keystrokes, each a press and a release click 30-90 ms apart."""
    out = np.zeros(n)
    click = int(0.006 * RATE)
    tc = np.arange(click)
    for start in _events(rng, n, int(rng.integers(2, 6)), 1.5):
        at = start
        for _ in range(int(rng.integers(4, 25))):
            for offset in (0, int(rng.uniform(0.03, 0.09) * RATE)):
                k = at + offset
                if k + click < n:
                    tick = _band(rng.normal(size=click), 1000.0, 3400.0) * np.exp(-tc / 8.0)
                    out[k : k + click] += tick * rng.uniform(0.4, 1.0)
            at += int(rng.uniform(0.06, 0.25) * RATE)
    return out


def _cough(rng: np.random.Generator, n: int) -> np.ndarray:
    """Coughs: a sharp onset, 200-400 ms of noise shaped by two broad resonances."""
    out = np.zeros(n)
    for start in _events(rng, n, int(rng.integers(1, 5)), 1.5):
        at = start
        for _ in range(1 if rng.random() < 0.6 else 2):
            length = int(rng.uniform(0.2, 0.4) * RATE)
            t = np.arange(length) / RATE
            noise = rng.normal(size=length)
            colour = _band(noise, rng.uniform(300, 600), rng.uniform(1500, 2800))
            shaped = 0.6 * colour + 0.4 * noise
            envelope = (1 - np.exp(-t / 0.008)) * np.exp(-t / (length / RATE / 2.5))
            piece = (shaped * envelope)[: n - at]
            out[at : at + len(piece)] += piece
            at += length + int(rng.uniform(0.08, 0.2) * RATE)
    return out


def render(spec: dict[str, Any], n: int, load: Loader) -> np.ndarray:
    """The background of one call, ``n`` samples at 0 dBFS active level (silent before
    ``spec["start_ms"]``)."""
    rng = np.random.default_rng(spec["seed"])
    start = min(n, spec["start_ms"] * RATE // 1000)
    length = n - start
    kind = spec["kind"]
    if kind == "tv":
        track = _tv(spec, rng, load, length)
    elif kind == "babble":
        track = _babble(spec, rng, load, length)
    elif kind == "door":
        track = _door(rng, length)
    elif kind == "keyboard":
        track = _keyboard(rng, length)
    elif kind == "cough":
        track = _cough(rng, length)
    else:
        raise ValueError(f"unknown background kind {kind!r}")
    return np.concatenate([np.zeros(start), _unit(track)])
