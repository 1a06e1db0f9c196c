"""A turn the gate took for echo is judged again by its words when the session transcribes.

The reference bridge's core is driven with the faithful Twilio model of ``test_bridge``; the
model's transcripts are fed as the Realtime API sends them (the bot's own words from
``response.output_audio_transcript.delta``, the caller's from
``conversation.item.input_audio_transcription.completed``).
"""

from __future__ import annotations

import pytest
import wire
from test_bridge import Call
from test_middleware import committed, guard_with, model, speech_started, speech_stopped

from voiceguard import Action, Reason, Verdict
from voiceguard.config import BridgeConfig, CalibrationConfig, GuardConfig, TurnConfig
from voiceguard.core._rejudge import TranscriptJudge
from voiceguard.errors import ConfigError
from voiceguard.middleware import GuardStep

BOT_TEXT = "Sure, I can help with that. Can I have your full name, please?"


def _echo_turn(call: Call, item: str = "item_echo_1") -> None:
    """The bot talks; the gate learns the echo path, then the VAD fires on the echo."""
    call.model(wire.session_updated(transcribes=True))
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.model(
        wire.parse(
            {
                "type": "response.output_audio_transcript.delta",
                "response_id": "resp_1",
                "item_id": "item_1",
                "output_index": 0,
                "content_index": 0,
                "delta": BOT_TEXT,
            }
        )
    )
    call.run_until(3.0)
    call.vad("started", item, ms=3000 - 300)
    call.run_until(3.5)
    call.vad("stopped", item, ms=3900)
    call.vad("committed", item, ms=0)


def _transcript(call: Call, item: str, text: str) -> None:
    call.model(
        wire.parse(
            {
                "type": "conversation.item.input_audio_transcription.completed",
                "item_id": item,
                "content_index": 0,
                "transcript": text,
            }
        )
    )


def test_an_echo_turn_waits_for_its_words_and_the_bots_own_words_delete_it() -> None:
    call = Call(greeting=None, echo_loss_db=12.0)
    _echo_turn(call)
    assert call.core.engine.judgement("item_echo_1") is False
    assert call.sent("conversation.item.delete") == [], "held for its transcript"
    _transcript(call, "item_echo_1", "can i have your full name")  # the echo, transcribed
    assert call.sent("conversation.item.delete")[-1]["item_id"] == "item_echo_1"
    assert call.sent("response.create") == []
    stats = call.core.engine.barge_in_statistics()
    assert stats.count(Verdict.SUPPRESS, Reason.ECHO_SUSPECTED) == 2  # the audio, the words


def test_words_that_are_not_the_bots_make_it_the_callers_turn_and_it_is_answered() -> None:
    call = Call(greeting=None, echo_loss_db=12.0)
    _echo_turn(call)
    call.model(wire.response_done("resp_1", "completed"))
    call.run_until(6.0)  # the bot's answer has played out
    _transcript(call, "item_echo_1", "I need to move my appointment to Friday")
    assert call.sent("conversation.item.delete") == []
    assert call.sent("response.create") == [{"type": "response.create"}], "answered"
    assert call.core.engine.judgement("item_echo_1") is True
    assert call.core.state.user_has_spoken
    stats = call.core.engine.barge_in_statistics()
    assert stats.count(Verdict.ALLOW, Reason.CALLER_WORDS) == 1


def test_no_words_in_time_leave_the_audios_judgement_standing() -> None:
    call = Call(greeting=None, echo_loss_db=12.0, transcript_wait=1.0)
    _echo_turn(call)
    call.run_until(call.now + 0.9)
    assert call.sent("conversation.item.delete") == []
    call.run_until(call.now + 0.2)
    assert call.sent("conversation.item.delete")[-1]["item_id"] == "item_echo_1"
    _transcript(call, "item_echo_1", "I need to move my appointment")  # too late: nothing
    assert call.sent("response.create") == []


def test_without_transcription_an_echo_turn_is_deleted_at_once() -> None:
    call = Call(greeting=None, echo_loss_db=12.0)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.run_until(3.0)
    call.vad("started", "item_echo_1", ms=2700)
    call.run_until(3.5)
    call.vad("stopped", "item_echo_1", ms=3900)
    call.vad("committed", "item_echo_1", ms=0)
    assert call.sent("conversation.item.delete")[-1]["item_id"] == "item_echo_1"


@pytest.mark.parametrize(
    ("bot", "said", "caller"),
    [
        (BOT_TEXT, "", False),
        (BOT_TEXT, "Can I have your full name", False),
        (BOT_TEXT, "can I have you full name please", False),  # garbled a little
        (BOT_TEXT, "My name is Dana Levi", True),
        (BOT_TEXT, "Sure", False),
        ("שלום, איך אפשר לעזור לך היום?", "איך אפשר לעזור", False),
        ("שלום, איך אפשר לעזור לך היום?", "אני רוצה לקבוע תור", True),
    ],
)
def test_the_words_verdict(bot: str, said: str, caller: bool) -> None:
    judge = TranscriptJudge()
    judge.bot_said("item_1", bot, done=True)
    verdict, why = judge.verdict(said)
    assert verdict is caller, why


def test_the_bots_words_are_its_latest_items() -> None:
    judge = TranscriptJudge()
    judge.bot_said("item_1", "Your table is booked", done=True)
    for n in range(2, 12):
        judge.bot_said(f"item_{n}", f"filler number {n}", done=True)
    assert judge.verdict("your table is booked")[0], "an old turn of the bot's is forgotten"


def test_transcript_wait_is_checked() -> None:
    with pytest.raises(ConfigError, match="transcript_wait"):
        TurnConfig(transcript_wait=-1.0)
    with pytest.raises(ConfigError, match="input_transcription_model"):
        BridgeConfig(input_transcription_model=3)  # type: ignore[arg-type]


def test_the_reference_bridge_asks_for_transcription_when_configured() -> None:
    call = Call(greeting=None, input_transcription_model="gpt-4o-transcribe")
    (update,) = call.sent("session.update")
    assert update["session"]["audio"]["input"]["transcription"] == {"model": "gpt-4o-transcribe"}
    assert (
        "transcription"
        not in Call(greeting=None).sent("session.update")[0]["session"]["audio"]["input"]
    )


def test_the_middleware_holds_the_turn_and_shows_it_to_the_bot_once_its_words_are_the_callers() -> (
    None
):
    guard, recorded = guard_with(
        GuardConfig(calibration=CalibrationConfig(allow_speech_before_calibration=False))
    )
    model(guard, wire.session_updated(transcribes=True), 0.0)
    started, stopped, done = (
        speech_started("item_c1"),
        speech_stopped("item_c1"),
        committed("item_c1"),
    )
    assert model(guard, started, 0.1).deliver == ()
    assert recorded.last(Action.BARGE_IN).reason is Reason.NOT_CALIBRATED
    assert model(guard, stopped, 0.9).deliver == ()
    assert model(guard, done, 0.9) == GuardStep(()), "held for its words, not deleted"
    words = wire.parse(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "item_id": "item_c1",
            "content_index": 0,
            "transcript": "hello, is this the dental clinic?",
        }
    )
    step = model(guard, words, 1.4)
    assert recorded.last(Action.BARGE_IN).reason is Reason.CALLER_WORDS
    assert step.deliver == (started, stopped, done, words), "the bot sees the whole turn"
    assert guard.judgement("item_c1") is True
