from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pytest

from voiceguard.audio import decode_ulaw, encode_ulaw
from voiceguard.config import CalibrationConfig
from voiceguard.core.guards.calibration import CalibrationGate, CalibrationStatistics
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import ConfigError, StateTransitionError

CLIPS = Path(__file__).resolve().parents[1] / "benchmarks" / "corpus" / "clips"
RATE = 8000
FRAME = 160
Signal = npt.NDArray[np.float64]


def _db_to_amp(dbfs: float) -> float:
    return float(32768.0 * 10.0 ** (dbfs / 20.0))


def clip(name: str, level_dbfs: float) -> Signal:
    """A shipped corpus clip scaled to *level_dbfs* (RMS over its loud frames)."""
    x = decode_ulaw((CLIPS / f"{name}.ul").read_bytes()).astype(np.float64)
    frames = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
    power = np.mean(frames**2, axis=1)
    loud = power > power.max() / 1000
    scaled: Signal = x * _db_to_amp(level_dbfs) / np.sqrt(power[loud].mean())
    return scaled


def noise(seconds: float, dbfs: float, seed: int = 1) -> Signal:
    return np.random.default_rng(seed).normal(0.0, _db_to_amp(dbfs), round(seconds * RATE))


def place(total: Signal, part: Signal, at_s: float) -> None:
    start = round(at_s * RATE)
    total[start : start + len(part)] += part[: max(0, len(total) - start)]


def delayed(x: Signal, delay_s: float, loss_db: float) -> Signal:
    d = round(delay_s * RATE)
    out: Signal = np.concatenate([np.zeros(d), x])[: len(x)] * 10.0 ** (-loss_db / 20.0)
    return out


def ulaw(x: Signal) -> bytes:
    return encode_ulaw(np.clip(np.round(x), -32768, 32767).astype(np.int16))


class Call:
    """Feeds a gate frame by frame; outbound is sent only where the bot talks."""

    def __init__(self, inbound: Signal, outbound: Signal | None = None, **config: object) -> None:
        self.gate = CalibrationGate(CalibrationConfig(**config))  # type: ignore[arg-type]
        self.inbound = ulaw(inbound)
        self.outbound = ulaw(outbound) if outbound is not None else None
        self.frame = 0

    def run_until(self, seconds: float) -> float:
        last = round(seconds / 0.02)
        while self.frame < last:
            now = (self.frame + 1) * 0.02
            chunk = slice(self.frame * FRAME, (self.frame + 1) * FRAME)
            if self.outbound is not None and self.outbound[chunk] != b"\xff" * FRAME:
                self.gate.push_outbound(self.outbound[chunk], now)
            self.gate.push_inbound(self.inbound[chunk], now)
            self.frame += 1
        return self.frame * 0.02


def test_echo_only_event_during_greeting_is_suppressed() -> None:
    bot = np.zeros(6 * RATE)
    place(bot, clip("greet_00", -16.0), 0.5)
    inbound = noise(6, -60) + delayed(bot, 0.25, 6.0)  # loud speakerphone echo
    # The bot does not pause here (the echo is pre-recorded), so a pause to listen is off:
    # tests/test_calibration_listen.py covers it with an echo of what the bot actually plays.
    call = Call(inbound, bot, listen_when_unsure=False)
    for at in (0.9, 1.6, 3.0):  # the VAD fires on the echo, early and later in the greeting
        now = call.run_until(at)
        decision = call.gate.judge_speech_started(now)
        assert decision.suppressed, decision
        assert decision.reason in (Reason.NOT_CALIBRATED, Reason.ECHO_SUSPECTED)
        assert decision.action is Action.BARGE_IN


def test_loud_caller_during_bot_speech_is_allowed() -> None:
    bot = np.zeros(8 * RATE)
    place(bot, clip("bot_01", -18.0), 0.5)
    inbound = noise(8, -55) + delayed(bot, 0.2, 12.0)
    place(inbound, clip("caller_13", -15.0), 4.0)
    call = Call(inbound, bot)
    now = call.run_until(4.1)
    decision = call.gate.judge_speech_started(now, audio_start_ms=3700)
    if decision.deferred:  # double talk: ask again at retry_at
        assert decision.reason is Reason.DOUBLE_TALK
        assert decision.retry_at is not None
        now = call.run_until(decision.retry_at)
        decision = call.gate.recheck(now)
    assert decision.allowed, decision
    assert decision.reason is Reason.OK
    stats = call.gate.statistics()
    assert stats.echo_delay_ms == pytest.approx(200, abs=20)
    assert stats.echo_return_loss_db is not None
    assert stats.echo_return_loss_db == pytest.approx(12, abs=4)
    assert stats.decisions[Reason.OK] == 1


def test_caller_who_speaks_first_still_calibrates() -> None:
    inbound = noise(5, -58)
    place(inbound, clip("caller_16", -20.0), 0.0)  # "Hello, is anybody there?" from t = 0
    call = Call(inbound)
    call.run_until(3.0)
    stats = call.gate.statistics()
    assert stats.calibrated
    assert stats.calibrated_since is not None
    assert stats.calibrated_since <= 3.0
    assert stats.noise_floor_dbfs is not None
    assert stats.noise_floor_dbfs == pytest.approx(-58, abs=3)


def test_calibration_on_a_silent_line_is_quick_and_stable() -> None:
    call = Call(noise(2, -65))
    call.run_until(0.2)
    assert not call.gate.calibrated
    call.run_until(1.0)
    stats = call.gate.statistics()
    assert stats.calibrated
    assert not stats.calibrated_on_timeout
    assert stats.calibrated_since is not None
    assert stats.calibrated_since < 1.0
    assert stats.noise_floor_dbfs == pytest.approx(-65, abs=2)


def test_caller_quiet_is_the_last_200_ms_at_the_noise_floor() -> None:
    line = noise(3, -65)
    place(line, clip("caller_13", -20.0)[: int(0.6 * RATE)], at_s=1.5)
    call = Call(line)
    call.run_until(1.0)
    assert call.gate.caller_quiet()  # calibrated on the noise, nothing louder since
    call.run_until(1.7)
    assert not call.gate.caller_quiet()  # speaking
    call.run_until(2.15)
    assert not call.gate.caller_quiet()  # stopped 50 ms ago: too soon to say
    call.run_until(2.4)
    assert call.gate.caller_quiet()
    assert not call.gate.caller_quiet(seconds=1.0)  # the speech is in the last second
    assert not CalibrationGate().caller_quiet()  # no floor yet


@pytest.mark.parametrize("caller", [False, True])
def test_the_echo_tail_after_the_bot_stops_is_not_the_caller_talking(caller: bool) -> None:
    """Once the echo path is learnt, the echo it predicts counts with the floor: the bot's
    echo, 400 ms late, still sounds after the bot stopped (a pause), and the caller is quiet."""
    bot = np.zeros(6 * RATE)
    place(bot, clip("bot_01", -18.0)[: int(3.5 * RATE)], 0.5)  # stops at 4.0 s
    inbound = noise(6, -60) + delayed(bot, 0.4, 10.0)
    if caller:
        place(inbound, clip("caller_13", -20.0), 4.1)
    call = Call(inbound, bot)
    call.run_until(4.35)  # the echo of the bot's last 350 ms still sounds
    assert call.gate.statistics().echo_delay_ms == pytest.approx(400, abs=40)
    assert float(np.abs(delayed(bot, 0.4, 10.0)[int(4.15 * RATE) : int(4.35 * RATE)]).max()) > 300
    assert call.gate.caller_quiet() is not caller


def test_digital_silence_calibrates() -> None:
    call = Call(np.zeros(RATE))
    call.run_until(1.0)
    assert call.gate.calibrated


def test_unstable_line_calibrates_at_the_upper_bound() -> None:
    # Noise falling by 1.25 dB every 100 ms: the estimate never settles, the upper bound decides.
    rng = np.random.default_rng(3)
    levels = np.repeat(np.linspace(-20, -70, 40), 800)
    inbound = rng.normal(0, 1, len(levels)) * 32768 * 10 ** (levels / 20)
    call = Call(inbound, max_calibration_time=1.5, calibration_stable_db=0.5)
    call.run_until(1.4)
    assert not call.gate.calibrated
    call.run_until(1.6)
    stats = call.gate.statistics()
    assert stats.calibrated
    assert stats.calibrated_on_timeout


def test_noise_below_the_margin_and_a_click_are_suppressed() -> None:
    inbound = noise(4, -55)
    place(inbound, noise(0.3, -52, seed=2), 2.0)  # a small rise: 3 dB
    place(inbound, noise(0.02, -20, seed=4), 3.0)  # one loud 20 ms click
    call = Call(inbound)
    now = call.run_until(2.3)
    decision = call.gate.judge_speech_started(now)
    assert decision.suppressed
    assert decision.reason is Reason.BELOW_NOISE_FLOOR
    now = call.run_until(3.06)
    decision = call.gate.judge_speech_started(now)
    while decision.deferred:
        assert decision.retry_at is not None
        now = call.run_until(decision.retry_at + 0.02)
        decision = call.gate.recheck(now)
    assert decision.suppressed
    assert decision.reason is Reason.BELOW_NOISE_FLOOR


def test_speech_on_a_quiet_line_is_allowed_at_once() -> None:
    inbound = noise(4, -60)
    place(inbound, clip("caller_12", -30.0), 2.0)
    call = Call(inbound)
    now = call.run_until(2.1)
    decision = call.gate.judge_speech_started(now, audio_start_ms=1700)
    assert decision.allowed, decision


def test_speech_stopped_ends_a_deferral() -> None:
    inbound = noise(3, -60)
    place(inbound, noise(0.04, -25, seed=5), 2.0)
    call = Call(inbound)
    now = call.run_until(2.04)
    decision = call.gate.judge_speech_started(now)
    assert decision.deferred
    assert call.gate.next_deadline() == decision.retry_at
    final = call.gate.speech_stopped(now + 0.01)
    assert final is not None
    assert final.suppressed
    assert final.reason is Reason.TOO_SHORT
    assert call.gate.next_deadline() is None
    assert call.gate.speech_stopped(now + 0.02) is None
    with pytest.raises(StateTransitionError, match="recheck"):
        call.gate.recheck(now + 0.03)


def test_user_has_spoken_requirement_and_min_duration() -> None:
    inbound = noise(4, -60)
    place(inbound, clip("caller_12", -25.0), 2.0)
    call = Call(inbound, require_user_has_spoken=True, min_speech_duration=0.2)
    now = call.run_until(2.1)
    decision = call.gate.judge_speech_started(now, audio_start_ms=1700)
    assert decision.reason is Reason.USER_NOT_SPOKEN
    decision = call.gate.judge_speech_started(now, audio_start_ms=1700, user_has_spoken=True)
    assert decision.deferred
    assert decision.reason is Reason.TOO_SHORT
    assert decision.retry_at is not None
    now = call.run_until(decision.retry_at + 0.02)
    decision = call.gate.recheck(now)
    assert decision.allowed


def test_not_calibrated_can_be_switched_off() -> None:
    inbound = noise(1, -60)
    place(inbound, clip("caller_12", -25.0), 0.1)
    call = Call(inbound, require_calibration=False)
    now = call.run_until(0.3)
    assert not call.gate.calibrated
    assert call.gate.judge_speech_started(now).reason is not Reason.NOT_CALIBRATED


def test_a_gate_never_sees_another_calls_frames() -> None:
    loud_bot = np.zeros(4 * RATE)
    place(loud_bot, clip("bot_02", -12.0), 0.2)
    busy = Call(noise(4, -40) + delayed(loud_bot, 0.1, 3.0), loud_bot)
    quiet = Call(noise(4, -68, seed=9))
    for t in np.arange(0.2, 4.01, 0.2):  # interleaved, as two calls on one server are
        busy.run_until(float(t))
        quiet.run_until(float(t))
    a, b = busy.gate.statistics(), quiet.gate.statistics()
    assert b.outbound_frames == 0
    assert b.echo_delay_ms is None
    assert b.noise_floor_dbfs == pytest.approx(-68, abs=2)
    assert a.noise_floor_dbfs is not None
    assert a.noise_floor_dbfs > -45
    assert a.outbound_frames > 0


def test_statistics_is_an_immutable_snapshot() -> None:
    call = Call(noise(1, -60))
    call.run_until(1.0)
    decision = call.gate.judge_speech_started(1.0)
    stats = call.gate.statistics()
    assert isinstance(stats, CalibrationStatistics)
    assert stats.inbound_frames == 50
    assert stats.decisions == {decision.reason: 1}
    with pytest.raises(TypeError):
        stats.decisions[Reason.OK] = 3  # type: ignore[index]
    call.gate.judge_speech_started(1.0)
    assert stats.decisions == {decision.reason: 1}
    assert "calibrated=True" in repr(call.gate)


def test_suppressions_are_logged_with_their_reason(caplog: pytest.LogCaptureFixture) -> None:
    gate = CalibrationGate()
    gate.push_inbound(b"\xff" * 160, now=0.02)
    with caplog.at_level(logging.DEBUG, logger="voiceguard.guards.calibration"):
        decision = gate.judge_speech_started(0.02)
    assert decision.verdict is Verdict.SUPPRESS
    assert any("NOT_CALIBRATED" in r.getMessage() for r in caplog.records)


def test_outbound_audio_of_any_length_is_reassembled() -> None:
    gate = CalibrationGate()
    audio = ulaw(clip("bot_03", -20.0))[:1000]
    gate.push_outbound(audio[:70], now=0.0)
    gate.push_outbound(memoryview(audio[70:600]), now=0.0)
    gate.push_outbound(bytearray(audio[600:]), now=0.0)
    assert gate.statistics().outbound_frames == 1000 // 160
    gate.push_inbound(b"\xff" * 480, now=0.06)  # several frames at once
    assert gate.statistics().inbound_frames == 3


def test_bad_frames_give_a_clear_error() -> None:
    gate = CalibrationGate()
    with pytest.raises(ValueError, match=r"inbound frame has 100 bytes; expected a positive"):
        gate.push_inbound(b"\xff" * 100, now=0.0)
    with pytest.raises(ValueError, match="inbound frame has 0 bytes"):
        gate.push_inbound(b"", now=0.0)
    with pytest.raises(TypeError, match="inbound frame must be mu-law bytes"):
        gate.push_inbound("\xff" * 160, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="outbound audio must be mu-law bytes"):
        gate.push_outbound(np.zeros(160, dtype=np.uint8), now=0.0)  # type: ignore[arg-type]
    assert gate.statistics().inbound_frames == 0


def test_config_is_validated() -> None:
    with pytest.raises(ConfigError, match=r"CalibrationConfig\.speech_margin_db"):
        CalibrationConfig(speech_margin_db=-1)
    with pytest.raises(ConfigError, match="max_calibration_time"):
        CalibrationConfig(min_calibration_time=2.0, max_calibration_time=1.0)
    with pytest.raises(ConfigError, match="require_calibration"):
        CalibrationConfig(require_calibration=1)  # type: ignore[arg-type]
    assert CalibrationGate().config == CalibrationConfig()


def crackle(seconds: float, dbfs: float, seed: int = 7) -> Signal:
    """White noise switched on and off every 5 ms (a crackling line)."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    on = np.repeat(rng.random(n // 40 + 1) < 0.6, 40)[:n]
    return rng.normal(0.0, _db_to_amp(dbfs), n) * on


def thump(seconds: float, dbfs: float, hz: float = 220.0) -> Signal:
    """A decaying low tone (the handset knocked against something)."""
    t = np.arange(round(seconds * RATE)) / RATE
    x = np.sin(2 * np.pi * hz * t) * np.exp(-t / (seconds / 3))
    scaled: Signal = x * _db_to_amp(dbfs) / np.sqrt(np.mean(x**2))
    return scaled


def click_train(seconds: float, dbfs: float, seed: int = 8) -> Signal:
    """Clicks every 10 ms, each a 2 ms burst of white noise (a rubbing cable)."""
    rng = np.random.default_rng(seed)
    x = np.zeros(round(seconds * RATE))
    decay = np.exp(-np.arange(40) / 16.0)
    for start in range(0, len(x) - 40, 80):
        x[start : start + 40] += rng.normal(0.0, 1.0, 40) * decay
    scaled: Signal = x * _db_to_amp(dbfs) / np.sqrt(np.mean(x**2))
    return scaled


def judge_to_the_end(call: Call, now: float, audio_start_ms: int) -> tuple[Decision, float]:
    decision = call.gate.judge_speech_started(now, audio_start_ms=audio_start_ms)
    while decision.deferred:
        assert decision.retry_at is not None
        now = call.run_until(decision.retry_at + 0.02)
        decision = call.gate.recheck(now)
    return decision, now


@pytest.mark.parametrize("burst", ["crackle", "thump", "click train"])
def test_noise_bursts_are_not_speech(burst: str) -> None:
    inbound = noise(4, -62)
    make = {"crackle": crackle, "thump": thump, "click train": click_train}[burst]
    place(inbound, make(0.25, -28.0), 2.0)
    call = Call(inbound)
    now = call.run_until(2.1)
    decision, _ = judge_to_the_end(call, now, audio_start_ms=1700)
    assert decision.suppressed, decision
    assert decision.reason is Reason.BELOW_NOISE_FLOOR
    assert "noise burst" in decision.detail
    # ... and no late barge-in comes out of the rest of the burst either.
    while call.frame < round(2.6 / 0.02):
        now = call.run_until(now + 0.02)
        assert call.gate.poll_barge_in(now) is None


def test_speech_after_a_burst_on_the_same_level_is_still_allowed() -> None:
    inbound = noise(4, -62)
    place(inbound, clip("caller_19", -28.0), 2.0)
    call = Call(inbound)
    now = call.run_until(2.1)
    decision, _ = judge_to_the_end(call, now, audio_start_ms=1700)
    assert decision.allowed, decision


def test_early_loud_caller_is_allowed_before_calibration() -> None:
    inbound = noise(2, -60)
    place(inbound, clip("caller_16", -20.0), 0.1)  # "Hello, is anybody there?" at once
    call = Call(inbound)
    now = call.run_until(0.24)
    assert not call.gate.calibrated
    decision = call.gate.judge_speech_started(now, audio_start_ms=0)
    assert decision.allowed, decision
    assert decision.reason is Reason.OK
    assert "cannot be echo" in decision.detail
    # The switch restores the strict rule.
    strict = Call(inbound, allow_speech_before_calibration=False)
    now = strict.run_until(0.24)
    assert strict.gate.judge_speech_started(now, audio_start_ms=0).reason is Reason.NOT_CALIBRATED


def test_a_caller_who_talks_first_is_heard_even_when_the_bot_starts_over_them() -> None:
    bot = np.zeros(2 * RATE)
    place(bot, clip("greet_01", -16.0), 0.2)  # the greeting starts 100 ms into the caller's words
    inbound = noise(2, -60) + delayed(bot, 0.1, 6.0)
    place(inbound, clip("caller_16", -20.0), 0.1)
    call = Call(inbound, bot)
    now = call.run_until(0.3)
    assert not call.gate.calibrated
    decision = call.gate.judge_speech_started(now, audio_start_ms=0)
    assert decision.allowed, decision
    assert "cannot be echo" in decision.detail


def test_early_rule_does_not_allow_what_could_be_echo_or_noise() -> None:
    bot = np.zeros(2 * RATE)
    place(bot, clip("greet_01", -16.0), 0.0)
    inbound = noise(2, -60) + delayed(bot, 0.1, 6.0)
    call = Call(inbound, bot)  # the bot talked: the loud audio may be its echo
    now = call.run_until(0.3)
    decision = call.gate.judge_speech_started(now, audio_start_ms=0)
    assert decision.deferred  # not allowed: the bot pauses and the gate listens
    assert decision.reason is Reason.ECHO_UNCERTAIN
    call = Call(inbound, bot, listen_when_unsure=False)
    now = call.run_until(0.3)
    decision = call.gate.judge_speech_started(now, audio_start_ms=0)
    assert decision.suppressed
    assert decision.reason is Reason.NOT_CALIBRATED
    hiss = noise(2, -60)
    place(hiss, noise(1.5, -35, seed=11), 0.1)  # loud line noise at the start of a call
    call = Call(hiss)
    now = call.run_until(0.26)
    decision = call.gate.judge_speech_started(now, audio_start_ms=0)
    assert decision.reason is Reason.NOT_CALIBRATED


def _echo_then_caller(**config: object) -> tuple[Call, Decision, float]:
    """The bot's echo opens a VAD segment at 1.5 s; the caller barges in at 2 s inside it."""
    bot = np.zeros(6 * RATE)
    place(bot, clip("bot_01", -16.0), 0.3)
    inbound = noise(6, -60) + delayed(bot, 0.2, 8.0)
    place(inbound, clip("caller_13", -14.0), 2.0)
    call = Call(inbound, bot, **config)
    now = call.run_until(1.6)
    decision, now = judge_to_the_end(call, now, audio_start_ms=1200)
    return call, decision, now


def test_caller_inside_a_suppressed_echo_segment_is_a_late_barge_in() -> None:
    call, decision, now = _echo_then_caller()
    assert decision.reason is Reason.ECHO_SUSPECTED
    late = None
    while late is None and now < 4.0:
        now = call.run_until(now + 0.02)
        late = call.gate.poll_barge_in(now)
        if now < 2.0:
            assert late is None, f"late barge-in at {now:.2f} s, before the caller spoke"
    assert late is not None
    assert late.allowed
    assert late.action is Action.BARGE_IN
    assert late.reason is Reason.OK
    assert "late" in late.detail
    assert 2.0 < now <= 2.3
    assert call.gate.poll_barge_in(now) is None  # reported once
    stats = call.gate.statistics()
    assert stats.late_barge_ins == 1
    assert stats.decisions[Reason.OK] == 1


def test_the_watch_ends_with_speech_stopped_and_can_be_switched_off() -> None:
    call, decision, now = _echo_then_caller()
    assert decision.suppressed
    assert call.gate.speech_stopped(now) is None  # nothing deferred; the watch ends
    while now < 4.0:
        now = call.run_until(now + 0.02)
        assert call.gate.poll_barge_in(now) is None
    call, decision, now = _echo_then_caller(watch_suppressed_speech=False)
    assert decision.suppressed
    while now < 4.0:
        now = call.run_until(now + 0.02)
        assert call.gate.poll_barge_in(now) is None
    assert call.gate.statistics().late_barge_ins == 0


def test_a_new_speech_started_ends_the_watch() -> None:
    call, decision, now = _echo_then_caller()
    assert decision.suppressed
    now = call.run_until(1.9)
    assert call.gate.poll_barge_in(now) is None
    second = call.gate.judge_speech_started(now, audio_start_ms=1500)
    assert second.suppressed  # still echo; a fresh watch of the new segment begins
    late = None
    while late is None and now < 4.0:
        now = call.run_until(now + 0.02)
        late = call.gate.poll_barge_in(now)
    assert late is not None
    assert call.gate.statistics().late_barge_ins == 1


def test_new_options_are_validated() -> None:
    with pytest.raises(ConfigError, match="allow_speech_before_calibration"):
        CalibrationConfig(allow_speech_before_calibration="yes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="watch_suppressed_speech"):
        CalibrationConfig(watch_suppressed_speech=None)  # type: ignore[arg-type]
    gate = CalibrationGate()
    assert gate.poll_barge_in(0.0) is None
    with pytest.raises(ValueError, match="inbound frame has 161 bytes"):
        gate.push_inbound(bytearray(161), now=0.0)
    gate.push_inbound(memoryview(b"\xff" * 320), now=0.04)  # two frames through the slow path
    assert gate.statistics().inbound_frames == 2


def test_sound_louder_than_the_bot_is_never_learned_as_its_echo() -> None:
    """Something that follows the bot's envelope but is louder than the bot cannot be its echo.

    (A caller whose speech happens to line up with the bot's words, the pattern the echo path
    learner looks for.) Learning it would give an echo return loss below 0 dB and make the
    caller's own speech look like echo for the rest of the call.
    """
    bot = np.zeros(10 * RATE)
    place(bot, clip("greet_02", -16.0), 0.5)
    inbound = noise(10, -62) + delayed(bot, 0.6, -4.0)  # 4 dB LOUDER than the bot
    place(inbound, clip("caller_15", -12.0), 7.0)
    call = Call(inbound, bot)
    call.run_until(6.9)
    stats = call.gate.statistics()
    assert stats.echo_return_loss_db is None or stats.echo_return_loss_db >= 0
    now = call.run_until(7.2)
    decision = call.gate.judge_speech_started(now, audio_start_ms=7000 - 300)
    if decision.deferred:
        assert decision.retry_at is not None
        now = call.run_until(decision.retry_at)
        decision = call.gate.recheck(now)
    assert decision.allowed, decision
