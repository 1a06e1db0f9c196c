"""Render and label the barge-in corpus (shared by ``generate.py`` and ``bargein_quality.py``).

A corpus directory holds speech clips (``clips/*.ul``, 8 kHz mu-law, synthesized with espeak-ng by
``generate.py``; ``clips/index.json`` gives each clip's text, language and role) plus
``cases.json``: one entry per call with its script (which clip plays when), its line conditions
(echo delay and return loss, non-linearity, canceller residue, delay drift, noise level, caller
level, language, background), a seed for the random parts (line noise, noise bursts, echo tail),
the labelled ``speech_started`` events and a SHA-256 of the rendered audio. Rendering a call from
that description is deterministic and takes milliseconds, so the two audio streams of every call
are not shipped; ``render`` checks the digest so a changed renderer or numpy cannot silently
change the corpus. Two corpora ship: :data:`MAIN` (the tuning corpus, this directory) and
:data:`HELDOUT` (``heldout/``: another seed, other voices, other texts).

Signal model of one call (all at 8 kHz, 16-bit scale)::

    outbound   = bot speech, as handed to the phone (only while the bot talks)
    inbound    = caller speech + echo(outbound as played) + line noise + bursts + background
    echo(x)    = residue(nonlinearity(gain * x delayed by delay(t), plus a 6 ms dispersive tail))
    delay(t)   = delay_ms, or delay_ms + drift * sin(2 pi t / period + phase)
    background = a TV, babble, door slams, typing or coughs (``backgrounds.py``), at a level
                 relative to the caller's

The echo path gain is set so the echo is `erl_db` below the outbound level (echo return loss); a
clean line (``erl_db`` null) has no echo. ``residue`` models a handset or carrier echo canceller
that already removed most of the echo: only choppy, centre-clipped bursts at the bot's loudest
syllables get through, at a level that varies. The echo is causal, so :meth:`Rendered.inbound_with`
re-renders the inbound for a bot that paused (some outbound frames never played).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import backgrounds
import numpy as np

from voiceguard.audio import FRAME_BYTES, decode_ulaw, encode_ulaw

HERE = Path(__file__).resolve().parent
RATE = 8000
FRAME_MS = 20
#: A frame of the clean caller track counts as speech when it is within this many dB of the
#: utterance's active level (used for labels only).
CALLER_ACTIVE_BELOW_DB = 25.0
#: Level of what a canceller leaves between the bursts of its residue, relative to the echo.
RESIDUE_FLOOR_DB = -30.0


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


@dataclass(slots=True)
class Store:
    """One corpus directory: its clips (cached once decoded), their index and its cases."""

    root: Path
    _clips: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    @property
    def clips_dir(self) -> Path:
        """The directory of the ``.ul`` clips and ``index.json``."""
        return self.root / "clips"

    @property
    def cases_file(self) -> Path:
        """The labelled calls."""
        return self.root / "cases.json"

    def clip(self, name: str) -> np.ndarray:
        """A clip as float samples on the 16-bit scale, normalised to 0 dBFS active level."""
        clip = self._clips.get(name)
        if clip is None:
            raw = decode_ulaw((self.clips_dir / f"{name}.ul").read_bytes()).astype(np.float64)
            clip = raw * 10.0 ** (-active_rms_db(raw) / 20.0)
            self._clips[name] = clip
        return clip

    def clip_ms(self, name: str) -> int:
        """Length of a clip in ms."""
        return round(len(self.clip(name)) * 1000 / RATE)

    def index(self) -> dict[str, dict[str, Any]]:
        """Per clip name: its ``text``, ``language``, ``role`` (see ``texts.ROLES``), ``voice``."""
        data: dict[str, dict[str, Any]] = json.loads((self.clips_dir / "index.json").read_text())
        return data

    def cases(self) -> list[dict[str, Any]]:
        """The labelled cases from ``cases.json``."""
        data: dict[str, Any] = json.loads(self.cases_file.read_text())
        cases: list[dict[str, Any]] = data["cases"]
        return cases


MAIN = Store(HERE)
HELDOUT = Store(HERE / "heldout")


def load_clip(name: str) -> np.ndarray:
    """A clip of the tuning corpus (see :meth:`Store.clip`)."""
    return MAIN.clip(name)


def load_cases() -> list[dict[str, Any]]:
    """The labelled cases of the tuning corpus."""
    return MAIN.cases()


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
class EchoPath:
    """The echo path of one call, fixed from the call's full (unpaused) render so that the echo
    of any outbound is causal: the echo at a sample depends only on earlier outbound samples."""

    n: int
    delay: int  # samples, when the delay does not drift
    drift: np.ndarray | None  # per-sample delay in samples, when it drifts
    tail: np.ndarray
    clip_limit: float | None  # soft clipping of the echo ("clip" lines)
    agc: np.ndarray | None  # per-sample gain ("agc" lines)
    residue_threshold: float | None  # envelope above which a canceller lets bursts through
    residue_gain: np.ndarray | None  # per-sample level of the residue's bursts

    def of(self, heard: np.ndarray) -> np.ndarray:
        """The echo of ``heard`` (the outbound as played, decoded) as it reaches the bridge."""
        n = self.n
        if self.tail[0] == 0.0:  # a clean line
            return np.zeros(n)
        if self.drift is None:
            delayed = np.concatenate([np.zeros(self.delay), heard])[:n]
        else:
            delayed = np.interp(np.arange(n) - self.drift, np.arange(n), heard, left=0.0)
        echo = np.convolve(delayed, self.tail)[:n]
        if self.clip_limit is not None:
            echo = self.clip_limit * np.tanh(echo / self.clip_limit)
        if self.agc is not None:
            echo *= self.agc
        if self.residue_threshold is not None and self.residue_gain is not None:
            echo = _residue(echo, self.residue_threshold, self.residue_gain)
        return np.asarray(echo, dtype=np.float64)


def _envelope(x: np.ndarray) -> np.ndarray:
    """Causal 10 ms moving average of ``|x|``."""
    return np.convolve(np.abs(x), np.ones(80) / 80.0)[: len(x)]


def _residue(echo: np.ndarray, threshold: float, gain: np.ndarray) -> np.ndarray:
    """What an echo canceller leaves: centre-clipped bursts where the echo's envelope is above
    ``threshold`` (the bot's loud syllables), ``RESIDUE_FLOOR_DB`` down elsewhere."""
    envelope = _envelope(echo)
    open_ = np.clip((envelope / threshold - 0.85) / 0.3, 0.0, 1.0)
    clipped = np.sign(echo) * np.maximum(np.abs(echo) - 0.4 * envelope, 0.0) * 1.6
    floor = 10.0 ** (RESIDUE_FLOOR_DB / 20.0)
    return np.asarray(clipped * open_ * gain + echo * floor * (1.0 - open_), dtype=np.float64)


def _echo_path(
    case: dict[str, Any], rng: np.random.Generator, heard: np.ndarray, n: int
) -> EchoPath:
    """The call's echo path (the draws from ``rng`` come first in a render, as always)."""
    cond = case["condition"]
    delay = round(cond["delay_ms"] * RATE / 1000)
    tail = rng.normal(size=48) * np.exp(-np.arange(48) / 12.0) * 0.35
    tail[0] = 1.0
    if cond["erl_db"] is None:
        tail[:] = 0.0
    else:
        tail *= 10.0 ** (-cond["erl_db"] / 20.0) / np.sqrt(np.sum(tail**2))
    drift = None
    spec = cond.get("drift")
    if spec:
        t = np.arange(n) / RATE
        wave = np.sin(2 * np.pi * t / spec["period_s"] + spec["phase"])
        drift = (cond["delay_ms"] + spec["amplitude_ms"] * wave) * RATE / 1000
    path = EchoPath(n, delay, drift, tail, None, None, None, None)
    limit = agc = threshold = gain = None
    if cond["nonlinearity"] == "clip":
        echo = path.of(heard)
        limit = max(float(np.percentile(np.abs(echo), 99.5)) * 0.5, 1.0)
    elif cond["nonlinearity"] == "agc":
        t = np.arange(n) / RATE
        period = rng.uniform(1.5, 4.0)
        depth = rng.uniform(2.0, 4.0)
        agc = 10.0 ** (depth * np.sin(2 * np.pi * t / period + rng.uniform(0, 6.3)) / 20.0)
    residue = cond.get("residue")
    if residue:
        plain = EchoPath(n, delay, drift, tail, limit, agc, None, None).of(heard)
        envelope = _envelope(plain)
        loud = envelope[envelope > envelope.max() * 1e-3]
        threshold = float(np.percentile(loud, residue["percentile"])) if loud.size else 1.0
        sub = np.random.default_rng(residue["seed"])
        steps = sub.uniform(residue["min_db"], 0.0, size=n // 1600 + 2)  # a level per 200 ms
        gain = 10.0 ** (np.repeat(steps, 1600)[:n] / 20.0)
    return EchoPath(n, delay, drift, tail, limit, agc, threshold, gain)


@dataclass(frozen=True, slots=True)
class Rendered:
    """One call's audio and the clean tracks used for labelling."""

    inbound: bytes
    outbound: bytes
    bot_frames: np.ndarray  # bool per frame: the bot's audio is handed to the phone
    caller: np.ndarray  # clean caller track as it reaches the bridge
    echo: np.ndarray
    noise: np.ndarray  # line noise plus bursts
    background: np.ndarray  # the room's background (zeros without one)
    utterance: np.ndarray  # per frame: index of the loudest caller utterance there, or -1
    caller_onsets_ms: list[int]
    caller_levels_db: list[float]
    echo_path: EchoPath

    def inbound_with(self, muted: np.ndarray) -> bytes:
        """The inbound if the bot's outbound frames marked in ``muted`` were never played."""
        heard = decode_ulaw(self.outbound).astype(np.float64)
        heard[np.repeat(muted, FRAME_BYTES)[: len(heard)]] = 0.0
        echo = self.echo_path.of(heard)
        return _mix(self.caller, echo, self.noise, self.background)


def _mix(caller: np.ndarray, echo: np.ndarray, noise: np.ndarray, back: np.ndarray) -> bytes:
    """The inbound audio, mu-law encoded."""
    inbound = np.clip(np.round(caller + echo + noise + back), -32768, 32767).astype(np.int16)
    return encode_ulaw(inbound)


def _bot_track(case: dict[str, Any], store: Store, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The bot's outbound samples and the frames in which it talks."""
    cond = case["condition"]
    n_frames = n // FRAME_BYTES
    bot = np.zeros(n)
    bot_frames = np.zeros(n_frames, dtype=bool)
    for turn in case["bot"]:
        clip = store.clip(turn["clip"]) * 10.0 ** ((cond["bot_dbfs"] + turn["gain_db"]) / 20.0)
        start = turn["start_ms"] * RATE // 1000
        stop = min(n, start + len(clip), turn.get("stop_ms", 10**9) * RATE // 1000)
        if stop > start:
            segment = clip[: stop - start].copy()
            fade = min(80, len(segment))  # 10 ms fade-out where a turn is cut short
            segment[-fade:] *= np.linspace(1.0, 0.0, fade)
            bot[start:stop] += segment
        end_ms = min(turn["start_ms"] + store.clip_ms(turn["clip"]), turn.get("stop_ms", 10**9))
        bot_frames[turn["start_ms"] // FRAME_MS : min(n_frames, -(-end_ms // FRAME_MS))] = True
    return np.clip(np.round(bot), -32768, 32767), bot_frames


def render(case: dict[str, Any], *, store: Store = MAIN, check: bool = True) -> Rendered:
    """Render one call of a corpus. Deterministic for a given case description."""
    cond = case["condition"]
    n_frames = round(case["duration_ms"] / FRAME_MS)
    n = n_frames * FRAME_BYTES
    rng = np.random.default_rng(case["seed"])

    bot, bot_frames = _bot_track(case, store, n)
    outbound_bytes = encode_ulaw(bot.astype(np.int16))
    heard = decode_ulaw(outbound_bytes).astype(np.float64)
    path = _echo_path(case, rng, heard, n)
    echo = path.of(heard)

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
    loudest = np.full(n_frames, -200.0)
    utterance = np.full(n_frames, -1)
    for k, utt in enumerate(case["caller"]):
        level = cond["caller_dbfs"] + utt["gain_db"]
        clip = store.clip(utt["clip"]) * 10.0 ** (level / 20.0)
        start = utt["start_ms"] * RATE // 1000
        clip = clip[: max(0, n - start)]
        caller[start : start + len(clip)] += clip
        onsets.append(utt["start_ms"])
        levels.append(level)
        own = np.zeros(n)
        own[start : start + len(clip)] = clip
        db = frame_db(own)
        louder = db > np.maximum(loudest, -100.0)
        utterance[louder] = k
        loudest = np.maximum(loudest, db)

    back = np.zeros(n)
    spec = cond.get("background")
    if spec:
        level = cond["caller_dbfs"] + spec["level_db"]
        back = backgrounds.render(spec, n, store.clip) * 10.0 ** (level / 20.0)

    inbound_bytes = _mix(caller, echo, noise, back)
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
        background=back,
        utterance=utterance,
        caller_onsets_ms=onsets,
        caller_levels_db=levels,
        echo_path=path,
    )


def digest(rendered: Rendered) -> str:
    """SHA-256 of a rendered call's audio (inbound then outbound)."""
    return hashlib.sha256(rendered.inbound + rendered.outbound).hexdigest()
