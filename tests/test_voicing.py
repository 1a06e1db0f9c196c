"""The calibration gate's voicing cue: coughs and typing are not speech; a word's first
consonant waits for its vowel; speech after a cough in the same segment is still heard."""

from __future__ import annotations

import numpy as np
import pytest
from test_calibration import RATE, Call, Signal, _db_to_amp, clip, judge_to_the_end, noise
from test_calibration import place as place_at

from voiceguard.audio import encode_ulaw
from voiceguard.core.guards._spectrum import periodicity, unvoiced
from voiceguard.decisions import Reason, Verdict
from voiceguard.sim import speech_like

FRAME = 160


def _band(x: Signal, low: float, high: float) -> Signal:
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1.0 / RATE)
    spectrum[(freqs < low) | (freqs > high)] = 0
    return np.asarray(np.fft.irfft(spectrum, len(x)), dtype=np.float64)


def _at(x: Signal, dbfs: float) -> Signal:
    return np.asarray(x * _db_to_amp(dbfs) / np.sqrt(np.mean(x**2)), dtype=np.float64)


def cough(dbfs: float, seed: int = 3) -> Signal:
    """A 300 ms cough: a sharp onset, noise shaped by two broad resonances, a decay."""
    rng = np.random.default_rng(seed)
    n = round(0.3 * RATE)
    t = np.arange(n) / RATE
    shaped = _band(rng.normal(size=n), 450.0, 1800.0) + 0.1 * rng.normal(size=n)
    return _at(shaped * (1 - np.exp(-t / 0.008)) * np.exp(-t / 0.12), dbfs)


def typing(dbfs: float, seed: int = 4) -> Signal:
    """Half a second of keystrokes: 6 ms clicks of 1-3.4 kHz noise, press and release."""
    rng = np.random.default_rng(seed)
    x = np.zeros(round(0.5 * RATE))
    for start in range(0, len(x) - 800, 600):
        for offset in (0, 400):
            tick = _band(rng.normal(size=48), 1000.0, 3400.0) * np.exp(-np.arange(48) / 8.0)
            x[start + offset : start + offset + 48] += tick
    return _at(x, dbfs)


def hiss(seconds: float, dbfs: float, seed: int = 5) -> Signal:
    """An /s/: noise of 2-3.4 kHz."""
    white = np.random.default_rng(seed).normal(size=round(seconds * RATE))
    return _at(_band(white, 2000.0, 3400.0), dbfs)


def vowels(seconds: float, dbfs: float, seed: int = 6) -> Signal:
    """Voiced speech-like sound (harmonics on a gliding pitch under formants)."""
    from voiceguard.audio import decode_ulaw  # noqa: PLC0415 - only here

    return decode_ulaw(speech_like(seconds, level_dbfs=dbfs, seed=seed)).astype(np.float64)


def _pairs(x: Signal) -> np.ndarray:
    """The mu-law frames of *x*, each after the one before it (the gate's rows)."""
    codes = np.frombuffer(encode_ulaw(np.clip(x, -32768, 32767).astype(np.int16)), np.uint8)
    n = len(codes) // FRAME
    return np.stack([codes[(i - 1) * FRAME : (i + 1) * FRAME] for i in range(1, n)])


def test_periodicity_tells_a_voice_from_coughs_typing_and_hiss() -> None:
    voice = periodicity(_pairs(clip("caller_19", -20.0)))
    assert np.median(voice) > 0.6
    for sound in (cough(-20.0), hiss(0.3, -20.0), noise(0.3, -20.0)):
        assert periodicity(_pairs(sound)).max() < 0.5
    clicks = _pairs(typing(-20.0))
    assert unvoiced(clicks, floor_dbfs=-62.0) is not None
    assert unvoiced(_pairs(vowels(0.3, -20.0)), floor_dbfs=-62.0) is None


def test_line_noise_lowers_the_bar_by_its_share_of_the_power() -> None:
    # A vowel 8 dB above white line noise: periodicity drops by the noise's share, and the
    # bar with it.
    voiced = vowels(0.3, -30.0) + noise(0.3, -38.0, seed=9)
    rows = _pairs(voiced)
    assert unvoiced(rows, floor_dbfs=-38.0) is None
    assert unvoiced(rows, floor_dbfs=-200.0) is not None or periodicity(rows).max() >= 0.5


@pytest.mark.parametrize("sound", ["cough", "typing"])
def test_a_cough_or_typing_is_suppressed_and_never_becomes_a_late_barge_in(sound: str) -> None:
    inbound = noise(4, -62)
    place_at(inbound, cough(-24.0) if sound == "cough" else typing(-24.0), 2.0)
    call = Call(inbound)
    now = call.run_until(2.08)
    decision, now = judge_to_the_end(call, now, audio_start_ms=1700)
    assert decision.verdict is Verdict.SUPPRESS, decision
    assert decision.reason is Reason.BELOW_NOISE_FLOOR
    # A cough is coloured like a voice, so only its lack of voicing gives it away; typing in
    # line noise may also be as flat as noise.
    assert ("no voiced frame" if sound == "cough" else "noise burst") in decision.detail
    while call.frame < round(2.8 / 0.02):
        now = call.run_until(now + 0.02)
        assert call.gate.poll_barge_in(now) is None


def test_a_word_that_starts_with_a_consonant_waits_for_its_vowel() -> None:
    inbound = noise(4, -62)
    place_at(inbound, hiss(0.12, -26.0), 2.0)  # "s..."
    place_at(inbound, vowels(0.5, -22.0), 2.12)  # "...top"
    call = Call(inbound)
    now = call.run_until(2.08)
    first = call.gate.judge_speech_started(now, audio_start_ms=1700)
    assert first.verdict is Verdict.DEFER, first
    assert first.reason is Reason.TOO_SHORT
    assert "no voiced frame" in first.detail
    decision, now = judge_to_the_end(call, now, audio_start_ms=1700)
    assert decision.allowed, decision
    assert now < 2.0 + 0.3  # decided within the deferral's bound


def test_speech_right_after_a_cough_in_the_same_segment_is_a_late_barge_in() -> None:
    inbound = noise(5, -62)
    place_at(inbound, cough(-22.0), 2.0)
    place_at(inbound, vowels(0.8, -22.0), 2.45)  # the VAD's segment stays open
    call = Call(inbound)
    now = call.run_until(2.08)
    decision, now = judge_to_the_end(call, now, audio_start_ms=1700)
    assert decision.verdict is Verdict.SUPPRESS, decision
    late = None
    while late is None and call.frame < round(3.4 / 0.02):
        now = call.run_until(now + 0.02)
        late = call.gate.poll_barge_in(now)
    assert late is not None and late.allowed, "the caller's words after the cough were lost"
    assert now < 2.45 + 0.4


def _periodicity_by_definition(row: np.ndarray) -> float:
    """The normalised autocorrelation at the best lag of 20-133 samples, summed directly."""
    from voiceguard.core.guards._line import DECODE  # noqa: PLC0415 - only here

    x = DECODE[row].astype(np.float64)
    x -= x.mean()
    whole = float(x @ x)
    best = -np.inf
    for lag in range(20, 134):
        a, b = x[: len(x) - lag], x[lag:]
        energy = max(float(np.sqrt((a @ a) * (b @ b))), 0.5 * whole + 1e-9)
        best = max(best, float(a @ b) / energy)
    return best


def test_periodicity_is_the_normalised_autocorrelation_at_the_pitch_lag() -> None:
    rng = np.random.default_rng(12)
    rows = np.concatenate(
        [_pairs(clip("caller_19", -20.0))[10:14], rng.integers(0, 256, (4, 320), dtype=np.uint8)]
    )
    expected = [_periodicity_by_definition(row) for row in rows]
    assert periodicity(rows) == pytest.approx(expected, abs=1e-9)
