"""Echo a handset's canceller half removed: bursts at the bot's loud syllables, at a level that
keeps changing, are still the bot's echo, and a caller over them is still heard."""

from __future__ import annotations

import numpy as np
from test_calibration import RATE, Call, Signal, clip, delayed, judge_to_the_end, noise, place

from voiceguard.decisions import Verdict


def residue(echo: Signal, seed: int = 11) -> Signal:
    """Centre-clipped bursts where the echo is loud, each 200 ms at its own level (0 to -14 dB),
    30 dB down in between."""
    rng = np.random.default_rng(seed)
    envelope = np.convolve(np.abs(echo), np.ones(80) / 80.0)[: len(echo)]
    threshold = np.percentile(envelope[envelope > 0], 70) if np.any(envelope > 0) else 1.0
    open_ = np.clip((envelope / threshold - 0.85) / 0.3, 0.0, 1.0)
    gain = np.repeat(10.0 ** (-rng.uniform(0, 14, len(echo) // 1600 + 1) / 20.0), 1600)
    clipped = np.sign(echo) * np.maximum(np.abs(echo) - 0.4 * envelope, 0.0) * 1.6
    out: Signal = clipped * open_ * gain[: len(echo)] + echo * 10 ** (-30 / 20) * (1 - open_)
    return out


def _line(with_caller: bool) -> tuple[Call, Signal]:
    bot = np.zeros(14 * RATE)
    for k, start in enumerate((0.5, 4.0, 7.5, 11.0)):
        place(bot, clip(f"bot_{k:02d}", -16.0), start)
    inbound = noise(14, -62) + residue(delayed(bot, 0.18, 8.0))
    if with_caller:
        place(inbound, clip("caller_19", -22.0), 12.0)
    return Call(inbound, bot, listen_when_unsure=False), bot


def _onsets_of_bursts(call: Call, start_s: float, end_s: float) -> list[float]:
    """Times where a residue burst rises out of the quiet (an energy VAD would start there)."""
    from voiceguard.audio import decode_ulaw  # noqa: PLC0415 - only here

    x = decode_ulaw(call.inbound).astype(np.float64)
    frames = x[: len(x) // 160 * 160].reshape(-1, 160)
    db = 10 * np.log10(np.maximum(np.mean((frames / 32768.0) ** 2, axis=1), 1e-12))
    onsets: list[float] = []
    for i in range(round(start_s / 0.02), round(end_s / 0.02)):
        if (
            db[i] > -40
            and db[i - 5 : i].max() < -45
            and (not onsets or i * 0.02 - onsets[-1] > 0.5)
        ):
            onsets.append(i * 0.02)
    return onsets


def test_canceller_residue_bursts_are_echo_not_the_caller() -> None:
    call, _bot = _line(with_caller=False)
    onsets = _onsets_of_bursts(call, 7.5, 11.0)
    assert len(onsets) >= 3, onsets  # the line does carry bursts to judge
    allowed = []
    for at in onsets:
        now = call.run_until(at + 0.1)
        decision, now = judge_to_the_end(call, now, audio_start_ms=round(at * 1000) - 300)
        call.gate.speech_stopped(now)
        if decision.verdict is Verdict.ALLOW:
            allowed.append((at, decision.detail))
    assert not allowed, f"residue bursts taken for the caller: {allowed}"


def test_a_caller_over_a_residue_line_is_still_heard() -> None:
    call, _bot = _line(with_caller=True)
    now = call.run_until(12.12)
    decision, _ = judge_to_the_end(call, now, audio_start_ms=11_700)
    assert decision.allowed, decision
