"""Backchannels: a short acknowledgement pauses the bot, which then plays on.

The reference bridge's core is driven with the faithful Twilio model of ``test_bridge``. The
caller makes a short sound while the bot talks; the server VAD's events say how long it lasted
(``audio_start_ms`` of the segment and ``audio_end_ms`` of its speech_stopped, 300 ms padding
and 500 ms silence included), and, with the caller transcribed, its words come after it.
"""

from __future__ import annotations

import pytest
import wire
from test_bridge import Call
from test_middleware import (
    _calibrated,
    _caller_speaks,
    a_response_playing,
    committed,
    guard_with,
    model,
    speech_started,
    speech_stopped,
)

from voiceguard import ACKNOWLEDGEMENTS, Action, BackchannelConfig, Floor, Reason, Verdict
from voiceguard.core._rejudge import TranscriptJudge
from voiceguard.errors import ConfigError


def _short_sound(call: Call, *, speech_ms: int, transcribes: bool = False) -> None:
    """The bot talks; at 3.5 s the caller makes a sound the VAD says lasted *speech_ms*."""
    call.model(wire.session_updated(transcribes=transcribes))
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.say("caller_00", at=3.5)
    call.run_until(3.7)
    call.vad("started", "item_user_1", ms=3500 - 300)
    assert [m["event"] for m in call.to_phone].count("clear") == 1, "paused at once"
    end = 3500 + speech_ms + 500
    call.run_until(end / 1000)
    call.vad("stopped", "item_user_1", ms=end)
    call.vad("committed", "item_user_1", ms=0)


def _words(call: Call, text: str) -> None:
    call.model(_completed("item_user_1", text))


def _resumed(call: Call) -> bool:
    clear = [m["event"] for m in call.to_phone].index("clear")
    return any(m["event"] == "media" for m in call.to_phone[clear:])


def test_a_short_sound_without_a_transcript_stops_the_bot_unless_told_otherwise() -> None:
    call = Call(greeting=None)  # no transcription: a short "stop" cannot be told from "uh-huh"
    _short_sound(call, speech_ms=450)
    assert [c["response_id"] for c in call.sent("response.cancel")] == ["resp_1"]
    assert call.core.engine.judgement("item_user_1") is True
    call = Call(greeting=None, backchannel=BackchannelConfig(without_words=True))
    _short_sound(call, speech_ms=450)
    call.run_until(call.now + 0.3)
    assert call.sent("response.cancel") == []
    assert _resumed(call), "the bot plays on"
    assert call.core.engine.floor is Floor.BOT
    assert call.sent("conversation.item.delete")[-1]["item_id"] == "item_user_1"
    assert call.sent("response.create") == []
    stats = call.core.engine.barge_in_statistics()
    assert stats.count(Verdict.SUPPRESS, Reason.BACKCHANNEL) == 1


@pytest.mark.parametrize("said", ["okay", "mm-hmm", "Uh-huh.", "כן", "בסדר", "да", "d'accord"])
def test_an_acknowledgement_resumes_the_bot(said: str) -> None:
    call = Call(greeting=None)
    _short_sound(call, speech_ms=450, transcribes=True)
    call.run_until(call.now + 0.3)
    assert not _resumed(call), "paused while its words are awaited"
    _words(call, said)
    call.run_until(call.now + 0.3)
    assert _resumed(call)
    assert call.sent("response.cancel") == []
    assert call.sent("conversation.item.delete")[-1]["item_id"] == "item_user_1"
    stats = call.core.engine.barge_in_statistics()
    assert stats.count(Verdict.SUPPRESS, Reason.BACKCHANNEL) == 1


@pytest.mark.parametrize("said", ["stop", "wait", "no", "לא", "עצור", "okay stop"])
def test_a_short_barge_in_whose_words_are_not_an_acknowledgement_stops_the_bot(said: str) -> None:
    call = Call(greeting=None)
    _short_sound(call, speech_ms=450, transcribes=True)
    _words(call, said)
    assert [c["response_id"] for c in call.sent("response.cancel")] == ["resp_1"]
    assert call.core.engine.judgement("item_user_1") is True
    assert call.sent("conversation.item.delete") == []
    call.model(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    assert call.sent("response.create") == [{"type": "response.create"}], "answered"


def test_no_words_in_time_stop_the_bot() -> None:
    call = Call(greeting=None, backchannel=BackchannelConfig(wait=0.5))
    _short_sound(call, speech_ms=450, transcribes=True)
    call.run_until(call.now + 0.4)
    assert call.sent("response.cancel") == []
    call.run_until(call.now + 0.2)
    assert [c["response_id"] for c in call.sent("response.cancel")] == ["resp_1"]


def test_a_longer_segment_or_backchannels_off_stop_the_bot() -> None:
    call = Call(greeting=None)
    _short_sound(call, speech_ms=900)
    assert [c["response_id"] for c in call.sent("response.cancel")] == ["resp_1"]
    call = Call(greeting=None, backchannel=BackchannelConfig(enabled=False))
    _short_sound(call, speech_ms=450, transcribes=True)
    assert [c["response_id"] for c in call.sent("response.cancel")] == ["resp_1"]


def test_an_acknowledgement_is_never_a_turn_when_a_turn_taken_for_echo_is_rejudged() -> None:
    judge = TranscriptJudge(BackchannelConfig())
    judge.bot_said("item_1", "Your appointment is on Tuesday at ten", done=True)
    assert judge.verdict("uh-huh")[0] is False
    assert judge.verdict("okay but can we do Wednesday")[0] is True


def test_every_shipped_language_has_acknowledgements_and_none_says_stop() -> None:
    assert set(ACKNOWLEDGEMENTS) == {"he", "en", "ar", "ru", "es", "de", "fr", "pt"}
    judge = TranscriptJudge(BackchannelConfig())
    for stop in ("stop", "wait", "no", "hold on", "לא", "רגע", "стоп", "нет", "espera", "halt"):
        assert not judge.acknowledgement(stop), stop
    for words in ACKNOWLEDGEMENTS.values():
        assert all(judge.acknowledgement(w) for w in words)


def test_the_backchannel_config_is_checked() -> None:
    with pytest.raises(ConfigError, match="max_duration"):
        BackchannelConfig(max_duration=-1)
    with pytest.raises(ConfigError, match="words"):
        BackchannelConfig(words=("okay", ""))


def test_the_middleware_hides_a_backchannel_from_the_bot_and_never_cancels() -> None:
    guard, recorded = guard_with()
    now = _calibrated(guard)
    a_response_playing(guard, now=now)
    model(guard, wire.session_updated(transcribes=True), now)  # the bot transcribes the caller
    now = _caller_speaks(guard, 0.3, now + 0.15)
    started = speech_started("item_c1", audio_start_ms=1100)
    steps = [model(guard, started, now)]
    while not recorded.last(Action.BARGE_IN).allowed:  # the gate may want a little more speech
        now = _caller_speaks(guard, 0.04, now)
        assert now < 3.0
        steps.append(guard.on_tick(now))
    # The VAD: 450 ms of speech (its segment has 300 ms of padding before, 500 ms of silence
    # after), then the turn and its words.
    steps.append(model(guard, speech_stopped("item_c1", audio_end_ms=1100 + 300 + 450 + 500), now))
    steps.append(model(guard, committed("item_c1"), now + 0.1))
    words = _completed("item_c1", "mm-hmm")
    steps.append(model(guard, words, now + 0.4))
    assert recorded.last(Action.BARGE_IN).reason is Reason.BACKCHANNEL
    sent = [m for step in steps for m in step.send]
    assert not [m for m in sent if m["type"] == "response.cancel"], "the bot plays on"
    assert {"type": "conversation.item.delete", "item_id": "item_c1"} in sent
    assert all(step.deliver == () for step in steps), "the bot never sees the segment"
    assert guard.judgement("item_c1") is False


def _completed(item: str, text: str) -> object:
    return wire.parse(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": item,
            "content_index": 0,
            "transcript": text,
        }
    )


BOT_01 = "Let me check the calendar for you. We have an opening on Tuesday at ten thirty"


def _inside_the_echo(
    clip: str, heard: str, *, speech: float = 0.5, echo_delay: float = 0.12
) -> Call:
    """The bot's echo (learnt in its first answer) holds the VAD's segment open through its
    second answer; 1.5 s into it the caller says *clip*; the VAD's speech ends *speech* later;
    the segment's transcript is the echo's words and the caller's (*heard*)."""
    call = Call(greeting=None, echo_loss_db=10.0, echo_delay=echo_delay)
    call.model(wire.session_updated(transcribes=True))
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")  # the echo path is learnt while it plays
    call.run_until(5.8)
    call.model(wire.response_done("resp_1"))
    call.bot_says("resp_2", "item_2", clip="bot_01")
    call.model(
        wire.parse(
            {
                "type": "response.output_audio_transcript.delta",
                "response_id": "resp_2",
                "item_id": "item_2",
                "output_index": 0,
                "content_index": 0,
                "delta": BOT_01,
            }
        )
    )
    start = call.now
    call.run_until(start + echo_delay + 0.08)
    call.vad("started", "item_echo_1", ms=round((start + echo_delay) * 1000) - 300)
    assert call.core.engine.judgement("item_echo_1") is False, "the echo, suppressed"
    call.say(clip, at=start + 1.5)
    call.run_until(start + 1.75)
    assert [m["event"] for m in call.to_phone].count("clear") == 1, "a late barge-in: paused"
    end = start + 1.5 + speech + 0.5  # the caller's word and the echo's tail, the VAD's silence
    call.run_until(end)
    call.vad("stopped", "item_echo_1", ms=round(end * 1000))
    call.vad("committed", "item_echo_1", ms=0)
    call.run_until(end + 0.2)
    call.model(_completed("item_echo_1", heard))
    call.run_until(end + 0.5)
    return call


@pytest.mark.parametrize("echo_delay", [0.12, 0.6])
def test_a_backchannel_inside_a_segment_the_echo_opened_resumes_the_bot(echo_delay: float) -> None:
    """At a short and a long echo delay (the gate's own test of the echo's tail after a pause is
    in tests/test_calibration.py)."""
    call = _inside_the_echo(
        "en_backchannel_01", "Let me check the calendar okay", echo_delay=echo_delay
    )
    assert call.sent("response.cancel") == []
    assert _resumed(call), "the bot plays on"
    stats = call.core.engine.barge_in_statistics()
    assert stats.count(Verdict.SUPPRESS, Reason.BACKCHANNEL) == 1
    assert call.sent("conversation.item.delete")[-1]["item_id"] == "item_echo_1"


@pytest.mark.parametrize("speech", [0.5, 0.12])
def test_a_short_barge_in_inside_a_segment_the_echo_opened_stops_the_bot(speech: float) -> None:
    """Even when the VAD's speech ends soon after the late barge-in's start (which may come
    after the caller's first word): never a false interruption on that measure."""
    call = _inside_the_echo("en_short_00", "Let me check the calendar stop", speech=speech)
    assert [c["response_id"] for c in call.sent("response.cancel")] == ["resp_2"]
    assert call.core.engine.judgement("item_echo_1") is True


def test_the_echo_words_in_a_transcript_are_left_out_before_it_is_read() -> None:
    judge = TranscriptJudge(BackchannelConfig())
    judge.bot_said("item_1", "Okay. Let me check the calendar for you", done=True)
    assert judge.acknowledgement("Let me check the calendar okay", beside_bot=True)
    assert judge.acknowledgement("okay", beside_bot=True), "one word in common is chance"
    assert not judge.acknowledgement("Let me check the calendar", beside_bot=True), "no caller"
    assert not judge.acknowledgement("let me check okay stop", beside_bot=True)
    assert not judge.acknowledgement("Let me check the calendar okay"), "only beside the bot"
