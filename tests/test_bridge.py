"""BridgeCore: the reference bridge's decisions, driven frame by frame in virtual time.

A small, faithful model of Twilio's side plays the bot's audio in real time and echoes each mark
when its audio has played (all pending marks at once on ``clear``); the caller's audio is real
speech from the shipped corpus over a quiet line, optionally with the bot's own echo. The model
side's events are injected where the server VAD would raise them.
"""

from __future__ import annotations

import base64
import itertools
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest
import wire

from voiceguard import (
    BridgeAction,
    BridgeConfig,
    BridgeCore,
    CalibrationConfig,
    ConfigError,
    EndCall,
    Floor,
    Reason,
    SendToModel,
    SendToPhone,
    Verdict,
)
from voiceguard.audio import decode_ulaw, encode_ulaw
from voiceguard.protocol import parse_twilio_message

CLIPS = Path(__file__).resolve().parents[1] / "benchmarks" / "corpus" / "clips"
RATE = 8000
FRAME = 160
Signal = npt.NDArray[np.float64]


def level(x: Signal, dbfs: float) -> Signal:
    frames = x[: len(x) // FRAME * FRAME].reshape(-1, FRAME)
    power = np.mean(frames**2, axis=1)
    loud = power > power.max() / 1000
    scaled: Signal = x * 32768.0 * 10 ** (dbfs / 20) / np.sqrt(power[loud].mean())
    return scaled


def speech(name: str, dbfs: float) -> Signal:
    return level(decode_ulaw((CLIPS / f"{name}.ul").read_bytes()).astype(np.float64), dbfs)


def ulaw(x: Signal) -> bytes:
    return encode_ulaw(np.clip(np.round(x), -32768, 32767).astype(np.int16))


class Call:
    """One call through a BridgeCore, with Twilio's playout modelled faithfully."""

    def __init__(
        self,
        *,
        echo_loss_db: float | None = None,
        echo_delay: float = 0.12,
        echo_marks: bool = True,
        **config: Any,
    ) -> None:
        self.core = BridgeCore(config=BridgeConfig(**config))
        self.echo_delay = echo_delay  # seconds from the phone playing audio to its echo
        self.echo_marks = echo_marks  # False: Twilio loses every mark echo
        self.now = 0.0
        self.rng = np.random.default_rng(7)
        self.caller: Signal = np.zeros(0)  # caller speech scheduled on the line
        self.echo_loss_db = echo_loss_db
        self.echo: list[tuple[float, Signal]] = []  # (start time, bot audio) heard back
        self.frames_sent = 0
        self.to_model: list[dict[str, Any]] = []
        self.to_phone: list[dict[str, Any]] = []
        self.hangups: list[str] = []
        self.heard: list[tuple[float, bytes]] = []  # what the caller heard, when
        self.playing: list[tuple[float, str, bytes]] = []  # Twilio's buffer: end time, mark, audio
        self.phone_end = 0.0
        self.event_ids = itertools.count(1)
        self.do(self.core.on_phone(parse_twilio_message(self.twilio_start()), self.now))
        # The server confirms the session the bridge asked for (full turn control).
        self.model(wire.session_updated(interrupt_response=False, create_response=False))

    @staticmethod
    def twilio_start() -> dict[str, Any]:
        return {
            "event": "start",
            "sequenceNumber": "1",
            "streamSid": "MZ1",
            "start": {
                "streamSid": "MZ1",
                "accountSid": "AC1",
                "callSid": "CA1",
                "tracks": ["inbound"],
                "customParameters": {},
                "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
            },
        }

    # --- what the bridge asks for -------------------------------------------------------------

    def do(self, actions: list[BridgeAction]) -> None:
        for action in actions:
            if isinstance(action, SendToModel):
                self.to_model.append(dict(action.message))
            elif isinstance(action, SendToPhone):
                self.to_phone.append(dict(action.message))
                self.twilio_receives(dict(action.message))
            elif isinstance(action, EndCall):
                self.hangups.append(action.reason)

    def twilio_receives(self, message: dict[str, Any]) -> None:
        if message["event"] == "media":
            audio = base64.b64decode(message["media"]["payload"])
            start = max(self.phone_end, self.now)
            self.phone_end = start + len(audio) / RATE
            self.playing.append((self.phone_end, "", audio))
            if self.echo_loss_db is not None:
                bot = decode_ulaw(audio).astype(np.float64) * 10 ** (-self.echo_loss_db / 20)
                self.echo.append((start + self.echo_delay, bot))
        elif message["event"] == "mark":
            self.playing.append((self.phone_end, message["mark"]["name"], b""))
        elif message["event"] == "clear":
            for _, name, _ in self.playing:
                if name:
                    self.deliver_phone({"event": "mark", "mark": {"name": name}})
            self.playing.clear()
            self.phone_end = self.now
            # What was not played yet is gone, and so is its echo (of a message cut while it
            # played, the part played).
            played = (
                (at, bot[: max(0, round((self.now - at + self.echo_delay) * RATE))])
                for at, bot in self.echo
            )
            self.echo = [(at, bot) for at, bot in played if bot.size]

    def deliver_phone(self, message: dict[str, Any]) -> None:
        message = {"streamSid": "MZ1", "sequenceNumber": "2", **message}
        self.do(self.core.on_phone(parse_twilio_message(message), self.now))

    # --- time ----------------------------------------------------------------------------------

    def say(self, name: str, at: float, dbfs: float = -15.0) -> None:
        """Schedule caller speech on the line at time *at*."""
        x = speech(name, dbfs)
        start = round(at * RATE)
        if len(self.caller) < start + len(x):
            self.caller = np.concatenate([self.caller, np.zeros(start + len(x) - len(self.caller))])
        self.caller[start : start + len(x)] += x

    def run_until(self, until: float) -> None:
        """Advance time: caller frames every 20 ms, playout ticks, mark echoes, in time order."""
        while True:
            next_frame = (self.frames_sent + 1) * 0.02
            deadline = self.core.next_deadline()
            next_mark = self.playing[0][0] if self.playing else None
            candidates = [t for t in (next_frame, deadline, next_mark) if t is not None]
            t = max(self.now, min(candidates))
            if t > until:
                self.now = until
                return
            self.now = t
            if next_mark is not None and t >= next_mark:
                end, name, audio = self.playing.pop(0)
                if audio:
                    self.heard.append((end, audio))
                if name and self.echo_marks:
                    self.deliver_phone({"event": "mark", "mark": {"name": name}})
            elif deadline is not None and t >= deadline:
                self.do(self.core.on_tick(t))
            else:
                self.send_frame()

    def send_frame(self) -> None:
        start = self.frames_sent * FRAME
        x = self.rng.normal(0.0, 32768 * 10 ** (-60 / 20), FRAME)  # line noise, -60 dBFS
        if start < len(self.caller):
            part = self.caller[start : start + FRAME]
            x[: len(part)] += part
        for at, bot in self.echo:
            offset = start - round(at * RATE)
            if -FRAME < offset < len(bot):
                lo, hi = max(0, offset), min(len(bot), offset + FRAME)
                x[lo - offset : hi - offset] += bot[lo:hi]
        self.frames_sent += 1
        payload = base64.b64encode(ulaw(x)).decode("ascii")
        self.deliver_phone(
            {
                "event": "media",
                "media": {
                    "track": "inbound",
                    "chunk": str(self.frames_sent),
                    "timestamp": str(self.frames_sent * 20),
                    "payload": payload,
                },
            }
        )

    # --- the model's side ----------------------------------------------------------------------

    def model(self, event: Any) -> None:
        self.do(self.core.on_model(event, self.now))

    def bot_says(self, response_id: str, item_id: str, clip: str = "bot_00") -> None:
        """The model answers: created, an item, all its audio at once (faster than real time)."""
        audio = ulaw(speech(clip, -18.0))
        self.model(wire.response_created(response_id))
        self.model(wire.output_item_added(response_id, item_id))
        for n in range(0, len(audio), 800):
            payload = base64.b64encode(audio[n : n + 800]).decode("ascii")
            self.model(wire.parse_audio(response_id, item_id, payload))

    def vad(self, kind: str, item_id: str, ms: int) -> None:
        if kind == "started":
            self.model(
                wire.parse(
                    {
                        "type": "input_audio_buffer.speech_started",
                        "audio_start_ms": ms,
                        "item_id": item_id,
                    }
                )
            )
        elif kind == "stopped":
            self.model(
                wire.parse(
                    {
                        "type": "input_audio_buffer.speech_stopped",
                        "audio_end_ms": ms,
                        "item_id": item_id,
                    }
                )
            )
        else:
            self.model(
                wire.parse(
                    {
                        "type": "input_audio_buffer.committed",
                        "item_id": item_id,
                        "previous_item_id": None,
                    }
                )
            )

    def sent(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.to_model if m["type"] == kind]


def test_start_configures_full_turn_control_and_greets_under_the_lock() -> None:
    call = Call(greeting="Say hello.", instructions="Be brief.")
    update, greeting = call.to_model
    detection = update["session"]["audio"]["input"]["turn_detection"]
    assert detection["interrupt_response"] is False
    assert detection["create_response"] is False
    assert update["session"]["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert update["session"]["instructions"] == "Be brief."
    assert [t["name"] for t in update["session"]["tools"]] == ["end_call"]
    assert greeting == {"type": "response.create", "response": {"instructions": "Say hello."}}
    assert call.core.state.greeting_lock


def test_caller_audio_passes_through_untouched() -> None:
    call = Call()
    call.run_until(0.1)
    appends = call.sent("input_audio_buffer.append")
    assert len(appends) == 5
    frames = [m for m in call.to_model if m["type"] == "input_audio_buffer.append"]
    assert all(len(base64.b64decode(m["audio"])) == FRAME for m in frames)


def test_bot_audio_is_paced_with_a_mark_per_chunk_and_heard_is_tracked() -> None:
    call = Call(greeting=None)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.run_until(1.05)
    media = [m for m in call.to_phone if m["event"] == "media"]
    assert len(media) == 3  # 300 ms of lead, 100 ms chunks
    call.run_until(2.0)
    item = call.core.state.current_item
    assert item is not None
    assert item.heard_ms == pytest.approx(1000, abs=100)
    assert item.sent_ms - item.heard_ms <= 300
    marks = [m["mark"]["name"] for m in call.to_phone if m["event"] == "mark"]
    assert (
        len(marks)
        == len(set(marks))
        == len(media := [m for m in call.to_phone if m["event"] == "media"])
    )


def test_real_barge_in_pauses_at_once_then_cancels_and_truncates_to_what_was_heard() -> None:
    call = Call(greeting=None)
    call.run_until(1.0)  # calibrate on the quiet line
    call.bot_says("resp_1", "item_1")
    call.say("caller_14", at=3.5)
    call.run_until(3.75)
    heard_before = call.core.state.current_item.heard_ms  # type: ignore[union-attr]
    call.vad("started", "item_user_1", ms=3500 - 300)
    clears = [m for m in call.to_phone if m["event"] == "clear"]
    assert len(clears) == 1, "the bot stops on the phone at once"
    assert call.sent("response.cancel") == [], "the cancel waits for the confirmation"
    call.run_until(4.4)
    assert call.core.engine.floor is Floor.CALLER, "confirmed: the caller has the floor"
    (cancel,) = call.sent("response.cancel")
    assert cancel["response_id"] == "resp_1"
    (truncate,) = call.sent("conversation.item.truncate")
    assert truncate["item_id"] == "item_1"
    assert heard_before <= truncate["audio_end_ms"] <= heard_before + 100
    # Nothing of the cancelled response reaches the phone after the cancel.
    media_after = [
        m for m in call.to_phone[call.to_phone.index(clears[0]) :] if m["event"] == "media"
    ]
    assert media_after == []
    call.model(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    call.run_until(6.1)
    call.vad("stopped", "item_user_1", ms=6100)
    call.vad("committed", "item_user_1", ms=0)
    assert call.sent("response.create") == [{"type": "response.create"}]
    assert call.core.state.create_in_flight
    assert call.core.next_deadline() == pytest.approx(call.now + 3.0), "the watchdog's deadline"


def test_a_blip_is_a_false_interruption_and_the_bot_resumes_where_it_stopped() -> None:
    call = Call(greeting=None)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.say("caller_00", at=3.5)  # 0.26 s: a short sound
    call.run_until(3.7)
    call.vad("started", "item_user_1", ms=3500 - 300)
    assert [m["event"] for m in call.to_phone].count("clear") == 1
    paused_at = call.core.state.current_item.heard_ms  # type: ignore[union-attr]
    # The VAD ends the segment after 500 ms of silence: 3.5 + 0.1 s of speech + 0.5 s.
    call.run_until(3.95)
    call.vad("stopped", "item_user_1", ms=3500 + 100 + 500)
    call.vad("committed", "item_user_1", ms=0)
    assert call.sent("response.cancel") == []
    assert call.sent("conversation.item.truncate") == []
    assert call.sent("conversation.item.delete") == [
        {"type": "conversation.item.delete", "item_id": "item_user_1"}
    ]
    call.run_until(4.5)
    resumed = [
        m
        for m in call.to_phone[[m["event"] for m in call.to_phone].index("clear") :]
        if m["event"] == "media"
    ]
    assert resumed, "the bot plays on"
    first = base64.b64decode(resumed[0]["media"]["payload"])
    bot = ulaw(speech("bot_00", -18.0))
    start = round(paused_at * 8)
    assert first == bot[start : start + len(first)], "from the heard position"


def test_echo_of_the_bot_is_not_a_barge_in_and_its_turn_is_deleted() -> None:
    call = Call(greeting=None, echo_loss_db=12.0)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.run_until(3.0)  # the gate learns the echo path while only the bot talks
    call.vad("started", "item_echo_1", ms=3000 - 300)
    call.run_until(3.5)
    assert [m["event"] for m in call.to_phone].count("clear") == 0
    assert call.sent("response.cancel") == []
    call.vad("stopped", "item_echo_1", ms=3900)
    call.vad("committed", "item_echo_1", ms=0)
    assert call.sent("response.create") == []
    assert call.sent("conversation.item.delete")[-1]["item_id"] == "item_echo_1"
    assert call.core.gate.statistics().decisions.get(Reason.ECHO_SUSPECTED, 0) >= 1
    assert call.core.engine.judgement("item_echo_1") is False
    assert not call.core.state.user_has_spoken, "echo must not keep a silent line alive"
    assert call.core.engine.floor is Floor.BOT


def test_end_call_hangs_up_after_the_goodbye_has_played() -> None:
    call = Call(greeting=None)
    call.run_until(0.5)
    call.bot_says("resp_1", "item_1", clip="bot_01")
    call.model(
        wire.parse(
            {
                "type": "response.function_call_arguments.done",
                "response_id": "resp_1",
                "item_id": "item_fc",
                "output_index": 1,
                "call_id": "call_1",
                "name": "end_call",
                "arguments": "{}",
            }
        )
    )
    assert call.core.state.hangup_pending
    call.model(wire.response_done("resp_1"))
    assert call.hangups == []
    call.run_until(10.0)
    assert call.hangups == ["goodbye played"]
    # The fallback was armed once the last chunk went to the phone; the goodbye's mark won.
    assert call.core.engine.deadlines.fallback_armed
    goodbye = len(ulaw(speech("bot_01", -18.0)))
    assert sum(len(a) for _, a in call.heard) == goodbye, "the whole goodbye was heard"
    assert call.core.engine.end_call("again") == [], "a call ends once"


def test_hang_up_fallback_when_the_goodbyes_mark_never_comes() -> None:
    call = Call(greeting=None, echo_marks=False)
    call.run_until(0.5)
    call.bot_says("resp_1", "item_1", clip="bot_01")
    call.model(wire.response_done("resp_1", output=[("end_call", "completed")]))
    length = len(ulaw(speech("bot_01", -18.0))) / RATE
    # The last chunk leaves about the lead before the goodbye's end; then 6 s of fallback.
    call.run_until(0.5 + length + 5.0)
    assert call.hangups == []
    call.run_until(0.5 + length + 6.0)
    assert call.hangups == ["hang-up fallback"]


def test_a_lost_create_is_sent_once_more_and_only_once() -> None:
    call = Call(greeting=None)
    call.run_until(1.0)
    call.core.state.note_user_spoke()
    call.vad("committed", "item_user_1", ms=0)
    create = {"type": "response.create"}
    assert call.sent("response.create") == [create]
    call.run_until(3.9)
    assert len(call.sent("response.create")) == 1
    # The watchdog's whole delay passed without response.created: the create was lost.
    call.run_until(4.1)
    assert call.sent("response.create") == [create, create]
    assert call.core.state.statistics().anomalies["create_abandoned"] == 1
    call.run_until(10.0)  # lost again: never a third
    assert len(call.sent("response.create")) == 2
    assert call.core.state.statistics().anomalies["create_abandoned"] == 2


def test_the_re_send_waits_for_nothing_to_play() -> None:
    call = Call(greeting=None)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.model(wire.response_done("resp_1"))
    call.core.state.note_user_spoke()
    call.vad("committed", "item_user_1", ms=0)  # a turn while the answer still plays
    assert call.sent("response.create") == [{"type": "response.create"}]
    call.run_until(4.1)  # lost, with the previous answer still on the phone: not re-sent
    assert len(call.sent("response.create")) == 1
    stats = call.core.creates.statistics()
    assert stats.count(Verdict.SUPPRESS, Reason.AUDIO_PLAYING) == 1


def test_close_clears_the_phone_and_cancels_what_runs() -> None:
    call = Call(greeting=None)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.run_until(1.5)
    final = call.core.close(call.now)
    assert SendToPhone(message={"event": "clear", "streamSid": "MZ1"}) in final
    assert SendToModel(message={"type": "response.cancel", "response_id": "resp_1"}) in final


def test_bad_config_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"BridgeConfig\.confirm_barge_in"):
        BridgeConfig(confirm_barge_in=-1)
    with pytest.raises(ConfigError, match=r"BridgeConfig\.calibration"):
        BridgeConfig(calibration=CalibrationConfig)  # type: ignore[arg-type]


def test_after_a_barge_in_nothing_plays_and_the_watchdog_may_ask_again() -> None:
    call = Call(greeting=None)
    call.run_until(1.0)
    call.bot_says("resp_1", "item_1")
    call.say("caller_14", at=3.5)
    call.run_until(3.75)
    call.vad("started", "item_user_1", ms=3500 - 300)
    assert not call.core.state.audio_playing, "the clear emptied the phone's buffer"
    call.run_until(4.4)
    call.model(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    call.run_until(5.2)
    call.vad("stopped", "item_user_1", ms=5200)
    call.vad("committed", "item_user_1", ms=0)
    assert call.sent("response.create") == [{"type": "response.create"}], "nothing plays"


def test_speech_while_the_answer_is_being_requested_cancels_it_once_created() -> None:
    call = Call(greeting=None)
    call.run_until(1.0)
    call.core.state.note_user_spoke()
    call.vad("committed", "item_user_0", ms=0)  # the bot asks for an answer
    call.say("caller_14", at=1.1)
    call.run_until(1.4)
    call.vad("started", "item_user_1", ms=1100 - 300)  # the caller goes on talking
    call.run_until(2.1)  # confirmed: the cancel waits for the response to exist
    assert call.sent("response.cancel") == []
    call.bot_says("resp_1", "item_1")
    assert call.sent("response.cancel") == [{"type": "response.cancel", "response_id": "resp_1"}]
    call.run_until(2.5)
    assert [m for m in call.to_phone if m["event"] == "media"] == [], "none of it was played"
