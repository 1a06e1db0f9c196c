"""The pause to listen: a caller the gate cannot tell from the bot's echo is never thrown away.

Early in a call the echo path is unknown, and a caller who speaks half a second into the bot's
speech sounds like an echo half a second late. The gate defers with ``ECHO_UNCERTAIN``, the
engine pauses the bot (Twilio ``clear``), and the gate listens where no echo can reach: an echo
ends with the bot's audio, a caller goes on. These tests drive the reference bridge's core with
the faithful Twilio model of ``test_bridge`` (the echo is of what the phone actually played).
"""

from __future__ import annotations

import base64

import numpy as np
import pytest
import wire
from test_bridge import Call, speech, ulaw
from test_voicing import cough

from voiceguard import Floor, Reason
from voiceguard.config import CalibrationConfig
from voiceguard.core.guards.calibration import CalibrationGate


def _floor(call: Call) -> Floor:
    """The engine's floor now (read afresh: it moves between two looks)."""
    return call.core.engine.floor


def _barge_in(call: Call, at: float, item: str) -> None:
    """The caller speaks at *at*; the server VAD reports it 100 ms later."""
    call.say("caller_14", at=at)
    call.run_until(at + 0.1)
    call.vad("started", item, ms=round(at * 1000) - 300)


@pytest.mark.parametrize("offset", [0.2, 0.4, 0.6, 0.8, 1.0, 1.5, 2.0])
def test_a_caller_interrupting_on_a_clean_line_is_heard_and_answered(offset: float) -> None:
    call = Call(greeting=None)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    start = call.now
    _barge_in(call, start + offset, "item_user_1")
    call.run_until(start + offset + 1.6)
    assert [m["event"] for m in call.to_phone].count("clear") == 1, "the bot stopped once"
    assert [c["response_id"] for c in call.sent("response.cancel")] == ["resp_1"]
    assert call.core.engine.judgement("item_user_1") is True
    call.model(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    call.run_until(start + offset + 2.0)
    call.vad("stopped", "item_user_1", ms=round((start + offset + 1.9) * 1000))
    call.vad("committed", "item_user_1", ms=0)
    assert call.sent("conversation.item.delete") == [], "the caller's turn is kept"
    assert call.sent("response.create") == [{"type": "response.create"}], "and answered"
    decisions = call.core.gate.statistics().decisions
    assert decisions.get(Reason.ECHO_SUSPECTED, 0) == 0
    assert decisions.get(Reason.NOT_CALIBRATED, 0) == 0


def test_an_early_echo_pauses_the_bot_which_then_plays_on_from_where_it_stopped() -> None:
    call = Call(greeting=None, echo_loss_db=6.0)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.run_until(1.3)  # the echo (120 ms late, 6 dB down) trips the VAD
    call.vad("started", "item_echo_1", ms=1120 - 300)
    assert [m["event"] for m in call.to_phone].count("clear") == 1, "paused to listen"
    assert _floor(call) is Floor.PAUSED
    paused_at = call.core.state.current_item.heard_ms  # type: ignore[union-attr]
    call.run_until(1.9)
    assert _floor(call) is Floor.BOT, "the echo ended with the bot's audio"
    assert call.sent("response.cancel") == []
    clear = [m["event"] for m in call.to_phone].index("clear")
    resumed = [m for m in call.to_phone[clear:] if m["event"] == "media"]
    first = base64.b64decode(resumed[0]["media"]["payload"])
    bot = ulaw(speech("bot_00", -18.0))
    start = round(paused_at * 8)
    assert first == bot[start : start + len(first)], "from the heard position"
    call.run_until(2.5)
    call.vad("stopped", "item_echo_1", ms=2400)
    call.vad("committed", "item_echo_1", ms=0)
    assert call.sent("response.create") == []
    assert call.sent("conversation.item.delete")[-1]["item_id"] == "item_echo_1"
    assert call.core.gate.statistics().decisions[Reason.ECHO_SUSPECTED] == 1


def test_a_bot_that_never_pauses_is_judged_as_without_the_pause() -> None:
    gate = CalibrationGate()
    caller = ulaw(speech("caller_14", -20.0))
    bot = ulaw(speech("bot_00", -16.0))
    quiet = b"\xff" * 160
    now = 0.0
    for _ in range(50):  # a quiet line: calibrated
        now += 0.02
        gate.push_inbound(quiet, now)
    for i in range(25):  # the bot talks, nothing comes back yet
        now += 0.02
        gate.push_outbound(bot[i * 160 : (i + 1) * 160], now)
        gate.push_inbound(quiet, now)
    decision = None
    for i in range(25, 75):  # loud speech while the bot goes on talking, never pausing
        now += 0.02
        gate.push_outbound(bot[i * 160 : (i + 1) * 160], now)
        gate.push_inbound(caller[(i - 25) * 160 : (i - 24) * 160], now)
        if i == 30:
            decision = gate.judge_speech_started(now)
            assert decision.reason is Reason.ECHO_UNCERTAIN
        elif decision is not None and decision.deferred and now >= (decision.retry_at or 0):
            decision = gate.recheck(now)
    assert decision is not None and decision.suppressed
    assert decision.reason is Reason.ECHO_SUSPECTED
    assert "did not pause" in decision.detail


def test_the_pause_to_listen_can_be_turned_off() -> None:
    config = CalibrationConfig(listen_when_unsure=False)
    call = Call(greeting=None, echo_loss_db=6.0, calibration=config)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.run_until(1.3)
    call.vad("started", "item_echo_1", ms=1120 - 300)
    call.run_until(1.9)
    assert [m["event"] for m in call.to_phone].count("clear") == 0, "no pause"
    assert call.core.gate.statistics().decisions == {Reason.ECHO_SUSPECTED: 1}


@pytest.mark.parametrize(
    ("clip", "offset"), [("en_short_00", 0.45), ("pt_short_00", 0.45), ("pt_short_00", 0.6)]
)
def test_a_short_word_interrupting_on_a_clean_line_is_heard(clip: str, offset: float) -> None:
    """A 220 ms "stop" is over before an echo of the greeting could have ended: the quiet after
    it, where that echo would still sound, says it was the caller (not the echo it might be)."""
    call = Call(greeting=None)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    start = call.now
    call.say(clip, at=start + offset, dbfs=-26.0)
    call.run_until(start + offset + 0.06)
    call.vad("started", "item_user_1", ms=round((start + offset) * 1000) - 300)
    assert _floor(call) is Floor.PAUSED, "paused to listen"
    call.run_until(start + offset + 0.75)
    call.vad("stopped", "item_user_1", ms=round((start + offset + 0.7) * 1000))
    call.vad("committed", "item_user_1", ms=0)
    call.run_until(start + offset + 1.5)
    assert call.core.engine.judgement("item_user_1") is True
    assert [c["response_id"] for c in call.sent("response.cancel")] == ["resp_1"]
    call.model(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    call.run_until(start + offset + 1.8)
    assert call.sent("conversation.item.delete") == [], "the caller's turn is kept"
    assert call.sent("response.create") == [{"type": "response.create"}], "and answered"
    assert call.core.gate.statistics().decisions.get(Reason.ECHO_SUSPECTED, 0) == 0


def _paused_gate(sound: np.ndarray) -> tuple[Reason, str]:
    """The gate's final word on *sound*, said 700 ms into the bot's speech on a line with no
    echo; the bot pauses when asked and the gate listens (rechecks at ``retry_at``)."""
    rng = np.random.default_rng(1)
    hum = 32768 * 10 ** (-62 / 20)  # line noise, -62 dBFS
    gate = CalibrationGate()
    bot = ulaw(speech("bot_00", -16.0))
    inbound = np.concatenate([np.zeros(160 * 85), sound, np.zeros(160 * 60)])
    line = ulaw(inbound + rng.normal(0.0, hum, inbound.size))
    now = 0.0
    decision = None
    for i in range(inbound.size // 160):
        now += 0.02
        pausing = decision is not None and decision.reason is Reason.ECHO_UNCERTAIN
        if i >= 50 and not pausing:  # the bot talks from 1 s until asked to pause
            gate.push_outbound(bot[(i - 50) * 160 : (i - 49) * 160], now)
        gate.push_inbound(line[i * 160 : (i + 1) * 160], now)
        if i == 88:
            decision = gate.judge_speech_started(now)
            assert decision.reason is Reason.ECHO_UNCERTAIN, decision.detail
        elif decision is not None and decision.deferred and now >= (decision.retry_at or 0):
            decision = gate.recheck(now)
    assert decision is not None and not decision.deferred
    return decision.reason, decision.detail


def test_a_cough_that_ends_before_its_echo_would_is_no_barge_in() -> None:
    """The quiet after the energy says only that it was not the echo: a cough is not the caller
    either (a word in its place is)."""
    reason, detail = _paused_gate(cough(-20.0))
    assert reason is Reason.ECHO_SUSPECTED, detail
    reason, detail = _paused_gate(speech("en_short_00", -20.0))
    assert reason is Reason.OK, detail


def test_an_echo_a_pause_heard_end_does_not_pause_the_bot_again() -> None:
    """On a line whose echo delay wanders (100 to 220 ms: a jittery network), the echo path is
    not learnt yet when the resumed bot's echo trips the VAD again (a pause as long as its
    silence ends the segment). The first pause heard the echo end within 220 ms of the bot's
    audio; the echo at those delays explains the new energy: it is suppressed as echo, the bot
    not stopped a second time (before, it paused again, for 840 ms)."""
    rng = np.random.default_rng(3)
    gate = CalibrationGate()
    bot = speech("bot_00", -16.0)
    hum = 32768 * 10 ** (-62 / 20)  # line noise, -62 dBFS
    played: list[np.ndarray | None] = []  # what the phone played, frame by frame
    now, position, second = 0.0, 0, -1
    decisions = []
    decision = None
    for i in range(120):
        now += 0.02
        paused = decision is not None and decision.reason is Reason.ECHO_UNCERTAIN
        if i >= 50 and not (paused and decision is not None and decision.deferred):
            frame = bot[position : position + 160]
            position += 160
            gate.push_outbound(ulaw(frame), now)
            played.append(frame)
        else:
            played.append(None)
        late = 5 + (i // 5) % 4 * 2  # 6 dB down, 5 to 11 frames late
        source = played[i - late] if i >= late else None
        echo = 0.0 if source is None else source * 10 ** (-6 / 20)
        gate.push_inbound(ulaw(np.asarray(echo + rng.normal(0.0, hum, 160))), now)
        if i in (64, second):  # the VAD reports speech 160 ms after its onset
            if i == second:
                assert gate.statistics().echo_return_loss_db is None, "path not learnt yet"
            decision = gate.judge_speech_started(now, audio_start_ms=(i - 8) * 20 - 300)
            decisions.append(decision)
        elif decision is not None and decision.deferred and now >= (decision.retry_at or 0):
            decision = gate.recheck(now)
            if not decision.deferred:
                decisions.append(decision)
                second = i + 10 if second < 0 else second
    first, heard, again = decisions
    assert first.reason is Reason.ECHO_UNCERTAIN, "the first pauses the bot"
    assert heard.reason is Reason.ECHO_SUSPECTED and "ended within 220 ms" in heard.detail
    assert again.suppressed and again.reason is Reason.ECHO_SUSPECTED, again.detail
    assert "a pause heard its echo end within 220 ms" in again.detail
