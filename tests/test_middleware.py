"""CallGuard, the middleware's sans-IO core, driven message by message with literal times."""

from __future__ import annotations

import base64
import logging
from collections.abc import Mapping
from typing import Any

import pytest
import wire

from voiceguard import CalibrationConfig, ConfigError, CreatePolicy, CreateRequest, Reason, Verdict
from voiceguard.core.actions import SendToModel
from voiceguard.decisions import Action, Decision
from voiceguard.middleware import CallGuard, GuardConfig, GuardStep
from voiceguard.protocol import (
    clear_message,
    item_truncate,
    mark_message,
    media_message,
    parse_twilio_message,
    response_cancel,
    response_create,
    session_update,
)
from voiceguard.protocol import (
    item_delete as item_delete_message,
)
from voiceguard.sim.signals import line_noise, speech_like


def speech_started(item_id: str, audio_start_ms: int = 0) -> Any:
    return wire.parse(
        {
            "type": "input_audio_buffer.speech_started",
            "audio_start_ms": audio_start_ms,
            "item_id": item_id,
        }
    )


def speech_stopped(item_id: str, audio_end_ms: int = 1000) -> Any:
    return wire.parse(
        {
            "type": "input_audio_buffer.speech_stopped",
            "audio_end_ms": audio_end_ms,
            "item_id": item_id,
        }
    )


def committed(item_id: str) -> Any:
    return wire.parse(
        {"type": "input_audio_buffer.committed", "item_id": item_id, "previous_item_id": None}
    )


def item_deleted(item_id: str) -> Any:
    return wire.parse({"type": "conversation.item.deleted", "item_id": item_id})


def end_call(response_id: str) -> Any:
    return wire.parse(
        {
            "type": "response.function_call_arguments.done",
            "response_id": response_id,
            "item_id": "item_fc",
            "output_index": 0,
            "call_id": "call_1",
            "name": "end_call",
            "arguments": "{}",
        }
    )


def session_created_defaults(*, ga: bool = True) -> Any:
    detection = {"type": "server_vad", "threshold": 0.5, "silence_duration_ms": 500}
    session: dict[str, Any] = (
        {
            "type": "realtime",
            "id": "sess_1",
            "audio": {
                "input": {"format": {"type": "audio/pcmu"}, "turn_detection": detection},
                "output": {"format": {"type": "audio/pcmu"}},
            },
        }
        if ga
        else {
            "id": "sess_1",
            "turn_detection": detection,
            "input_audio_format": "g711_ulaw",
            "output_audio_format": "g711_ulaw",
        }
    )
    return wire.parse({"type": "session.created", "session": session})


class Recorded:
    """Every decision the guards make, in order."""

    def __init__(self) -> None:
        self.decisions: list[Decision] = []

    def __call__(self, decision: Decision) -> None:
        self.decisions.append(decision)

    def last(self, action: Action) -> Decision:
        return [d for d in self.decisions if d.action is action][-1]


def guard_with(config: GuardConfig | None = None) -> tuple[CallGuard, Recorded]:
    recorded = Recorded()
    return CallGuard(config, call_sid="CA1", on_decision=recorded), recorded


def model(guard: CallGuard, event: Any, now: float) -> GuardStep:
    return guard.from_model(event, event, now)


def a_response_playing(guard: CallGuard, *, ms: int = 1000, now: float = 0.0) -> None:
    """The bot asked for a response and the model is sending *ms* of its audio."""
    assert guard.to_model(response_create(), now).send != ()
    model(guard, wire.session_updated(), now)
    model(guard, wire.response_created("resp_1"), now + 0.1)
    model(guard, wire.output_item_added("resp_1", "item_1"), now + 0.1)
    for _ in range(ms // 100):
        model(guard, wire.audio_delta("resp_1", "item_1", 100), now + 0.15)


# ============================================================================================
# Outgoing: cancel, create, truncate, session


def test_a_cancel_with_nothing_active_is_suppressed_and_never_sent() -> None:
    guard, recorded = guard_with()
    assert guard.to_model(response_cancel(), now=1.0).send == ()
    decision = recorded.last(Action.CANCEL)
    assert (decision.verdict, decision.reason) == (Verdict.SUPPRESS, Reason.NO_ACTIVE_RESPONSE)


def test_a_cancel_goes_once_and_names_the_response_it_cancels() -> None:
    guard, recorded = guard_with()
    a_response_playing(guard)
    sent = guard.to_model(response_cancel(), now=1.0).send
    assert sent == ({"type": "response.cancel", "response_id": "resp_1"},)
    assert guard.to_model(response_cancel(), now=1.05).send == ()
    assert recorded.last(Action.CANCEL).reason is Reason.CANCEL_ALREADY_SENT


def test_observer_mode_suppresses_the_cancel_the_server_already_made() -> None:
    guard, recorded = guard_with(GuardConfig(turn_control=False))
    guard.to_model(response_create(), now=0.0)
    model(guard, wire.session_updated(interrupt_response=True, create_response=True), 0.0)
    model(guard, wire.response_created("resp_1"), 0.1)
    started = speech_started("item_c1")
    assert model(guard, started, 1.0).deliver == (started,)  # the bot sees everything
    assert guard.to_model(response_cancel(), now=1.01).send == ()
    assert recorded.last(Action.CANCEL).reason is Reason.SERVER_CANCELS


def test_a_create_while_a_response_runs_is_held_and_sent_after_its_done() -> None:
    guard, recorded = guard_with()
    a_response_playing(guard)
    assert guard.to_model(response_create({"instructions": "Tool result."}), now=1.0).send == ()
    assert recorded.last(Action.CREATE).verdict is Verdict.DEFER
    step = model(guard, wire.response_done("resp_1"), 2.0)
    assert step.send == ({"type": "response.create", "response": {"instructions": "Tool result."}},)


def test_a_create_with_the_drop_policy_is_dropped_while_a_response_runs() -> None:
    guard, recorded = guard_with(GuardConfig(create_policy=CreatePolicy.DROP))
    a_response_playing(guard)
    assert guard.to_model(response_create(), now=1.0).send == ()
    assert recorded.last(Action.CREATE).reason is Reason.RESPONSE_ACTIVE
    assert model(guard, wire.response_done("resp_1"), 2.0).send == ()


def test_an_out_of_band_create_passes_untouched() -> None:
    guard, _ = guard_with()
    a_response_playing(guard)
    message = response_create({"conversation": "none", "instructions": "Classify."})
    assert guard.to_model(message, now=1.0).send == (message,)
    assert guard.to_model(message, now=1.0).send[0] is message


def test_a_truncate_past_what_was_heard_is_lowered_to_it() -> None:
    guard, recorded = guard_with()
    a_response_playing(guard, ms=3000)  # 3 s handed to the phone at 0.15 s: it plays until 3.15
    # With no mark to tell, the clock does, 250 ms behind (the way to the caller's ear).
    sent = guard.to_model(item_truncate("item_1", 2500), now=1.40).send
    assert sent == ({**item_truncate("item_1", 2500), "audio_end_ms": 1000},)
    decision = recorded.last(Action.TRUNCATE)
    assert (decision.verdict, decision.reason) == (Verdict.ALLOW, Reason.CLAMPED_TO_HEARD)
    assert decision.detail == "asked 2500 ms, heard 1000 ms"


def test_a_truncate_within_what_was_heard_goes_unchanged() -> None:
    guard, recorded = guard_with()
    a_response_playing(guard, ms=3000)
    message = item_truncate("item_1", 800)
    assert guard.to_model(message, now=1.40).send == (message,)
    assert recorded.last(Action.TRUNCATE).reason is Reason.OK


def test_a_truncate_never_points_past_the_audio_received() -> None:
    guard, _ = guard_with()
    a_response_playing(guard, ms=500)
    assert guard.to_model(item_truncate("item_1", 900), now=5.0).send[0]["audio_end_ms"] == 500


def test_a_truncate_of_an_unknown_item_or_a_second_one_is_suppressed() -> None:
    guard, recorded = guard_with()
    a_response_playing(guard)
    assert guard.to_model(item_truncate("item_nope", 100), now=1.0).send == ()
    assert recorded.last(Action.TRUNCATE).reason is Reason.UNKNOWN_ITEM
    assert guard.to_model(item_truncate("item_1", 300), now=1.0).send != ()
    assert guard.to_model(item_truncate("item_1", 300), now=1.1).send == ()
    assert recorded.last(Action.TRUNCATE).reason is Reason.ALREADY_TRUNCATED
    assert guard.to_model(item_truncate("item_1", 200), now=1.2).send != ()  # shorter: fine


def test_marks_give_the_heard_position_to_the_chunk_and_stale_echoes_are_ignored() -> None:
    guard, _ = guard_with()
    guard.from_phone(parse_twilio_message(_start()), now=0.0)
    a_response_playing(guard, ms=0)
    sent: list[Mapping[str, Any]] = []  # what reaches Twilio, in order
    for n in range(4):  # four deltas of 200 ms, the bot's own mark after each
        model(guard, wire.audio_delta("resp_1", "item_1", 200), 0.2)
        audio = base64.b64encode(b"\xff" * 1600).decode()
        sent += guard.to_phone(media_message("MZ1", audio), 0.2).to_phone
        sent += guard.to_phone(mark_message("MZ1", f"m{n}"), 0.2).to_phone
    media = [m for m in sent if m["event"] == "media"]
    marks = [m["mark"]["name"] for m in sent if m["event"] == "mark"]
    assert len(media) == 8, "the bot's audio goes on at once, in 100 ms chunks"
    assert [m for m in marks if m.startswith("m")] == ["m0", "m1", "m2", "m3"]
    assert marks.index("m0") == 2, "the bot's mark keeps its place after its audio"
    # Twilio plays in order: the first four marks (two of the guard's, then the bot's m0, then
    # one more of the guard's) have come back by 0.55 s. The guard's own echoes are hidden.
    shown = [guard.from_phone(parse_twilio_message(_mark(name)), now=0.55)[0] for name in marks[:4]]
    assert shown == [False, False, True, False]
    # Time says about 600 ms played by 0.8 s; the marks confirm 300 ms: the truncate keeps 300.
    assert guard.to_model(item_truncate("item_1", 700), now=0.8).send[0]["audio_end_ms"] == 300
    clear = guard.to_phone(clear_message("MZ1"), 0.8).to_phone
    assert clear == ({"event": "clear", "streamSid": "MZ1"},)
    for name in marks[4:]:  # echoed by the clear: not heard
        guard.from_phone(parse_twilio_message(_mark(name)), now=0.85)
    item = guard.state.item("item_1")
    assert item is not None and item.heard_ms == 300
    assert guard.to_phone(clear_message("MZ1"), 0.9).to_phone == (), "nothing left to clear"


def test_a_session_update_keeps_turn_control_in_both_shapes_and_leaves_the_bots_dict_alone() -> (
    None
):
    guard, _ = guard_with()
    ga = session_update(interrupt_response=True, create_response=True)
    sent = guard.to_model(ga, now=0.0).send[0]
    detection = sent["session"]["audio"]["input"]["turn_detection"]
    assert (detection["interrupt_response"], detection["create_response"]) == (False, False)
    assert ga["session"]["audio"]["input"]["turn_detection"]["interrupt_response"] is True
    beta = {"type": "session.update", "session": {"turn_detection": {"type": "server_vad"}}}
    sent = guard.to_model(beta, now=0.0).send[0]
    assert sent["session"]["turn_detection"] == {
        "type": "server_vad",
        "interrupt_response": False,
        "create_response": False,
    }
    off = {"type": "session.update", "session": {"turn_detection": None}}
    assert guard.to_model(off, now=0.0).send[0] is off  # turn detection off stays off


def test_observer_mode_leaves_the_session_update_alone() -> None:
    guard, _ = guard_with(GuardConfig(turn_control=False))
    message = session_update(interrupt_response=True, create_response=True)
    assert guard.to_model(message, now=0.0).send[0] is message


@pytest.mark.parametrize("ga", [True, False])
def test_a_session_that_still_lets_the_server_cancel_is_corrected_at_most_twice(ga: bool) -> None:
    guard, _ = guard_with()
    fixes = [model(guard, session_created_defaults(ga=ga), float(n)).send for n in range(3)]
    wanted = {
        "type": "server_vad",
        "threshold": 0.5,
        "silence_duration_ms": 500,
        "interrupt_response": False,
        "create_response": False,
    }
    expected = (
        {"type": "realtime", "audio": {"input": {"turn_detection": wanted}}}
        if ga
        else {"turn_detection": wanted}
    )
    assert fixes[0] == ({"type": "session.update", "session": expected},)
    assert fixes[1] == fixes[0]
    assert fixes[2] == ()


# ============================================================================================
# Incoming: stale audio, echo hidden, real speech answered


def test_audio_of_a_cancelled_response_never_reaches_the_bot() -> None:
    guard, _ = guard_with()
    a_response_playing(guard)
    guard.to_model(response_cancel(), now=1.0)
    late = wire.audio_delta("resp_1", "item_1", 100)
    assert model(guard, late, 1.05).deliver == ()
    assert guard.state.statistics().late_deltas == 1


def _calibrated(guard: CallGuard, seconds: float = 1.0) -> float:
    """Feed the caller's line noise through the bot's appends until the gate is calibrated."""
    now = 0.0
    noise = line_noise(seconds, level_dbfs=-60.0, seed=3)
    for offset in range(0, len(noise), 160):
        now += 0.02
        append = {"type": "input_audio_buffer.append"}
        append["audio"] = base64.b64encode(noise[offset : offset + 160]).decode()
        assert guard.to_model(append, now).send[0] is append  # passes untouched
    assert guard.gate.calibrated
    return now


def _caller_speaks(guard: CallGuard, seconds: float, now: float) -> float:
    speech = speech_like(seconds, level_dbfs=-20.0, seed=5)
    for offset in range(0, len(speech), 160):
        now += 0.02
        append = {
            "type": "input_audio_buffer.append",
            "audio": base64.b64encode(speech[offset : offset + 160]).decode(),
        }
        guard.to_model(append, now)
    return now


def _judged(guard: CallGuard, started: Any, now: float) -> tuple[GuardStep, float]:
    """Hand *started* to the guard while the caller talks on, as the adapters do, until the
    gate's judgement lets the event through; returns that step and the time."""
    step = model(guard, started, now)
    while step.deliver == ():  # the gate may want a little more speech first
        now = _caller_speaks(guard, 0.04, now)
        deadline = guard.next_deadline()
        assert deadline is not None and now < 3.0
        if deadline <= now:
            step = guard.on_tick(now)
    return step, now


def test_an_uncalibrated_speech_start_is_hidden_with_its_turn_and_the_turn_deleted() -> None:
    guard, recorded = guard_with(
        GuardConfig(calibration=CalibrationConfig(allow_speech_before_calibration=False))
    )
    model(guard, wire.session_updated(), 0.0)
    assert model(guard, speech_started("item_c1"), 0.1).deliver == ()
    assert recorded.last(Action.BARGE_IN).reason is Reason.NOT_CALIBRATED
    assert guard.judgement("item_c1") is False
    assert model(guard, speech_stopped("item_c1"), 0.9).deliver == ()
    step = model(guard, committed("item_c1"), 0.9)
    assert step == GuardStep((SendToModel(message=item_delete_message("item_c1")),))
    assert model(guard, item_deleted("item_c1"), 1.0).deliver == ()  # the bot did not ask
    other = item_deleted("item_bots_own")
    assert model(guard, other, 1.0).deliver == (other,)


def test_a_confirmed_barge_in_is_shown_the_bot_is_stopped_and_the_turn_answered() -> None:
    guard, recorded = guard_with()
    now = _calibrated(guard)
    a_response_playing(guard, now=now)
    now = _caller_speaks(guard, 0.3, now + 0.15)
    started = speech_started("item_c1", audio_start_ms=1100)
    step = model(guard, started, now)
    assert step.deliver == (), "held until the barge-in is confirmed"
    # The caller keeps talking past the confirmation time: cancel, truncate, then the bot's
    # own speech_started handler.
    while step.deliver == ():
        now = _caller_speaks(guard, 0.04, now)
        assert now < 5.0
        step = guard.on_tick(now)
    assert recorded.last(Action.BARGE_IN).allowed
    assert step.deliver == (started,)
    cancel, truncate = step.send
    assert cancel == {"type": "response.cancel", "response_id": "resp_1"}
    assert truncate["type"] == "conversation.item.truncate"
    assert truncate["audio_end_ms"] <= 1000
    model(guard, wire.response_done("resp_1", "cancelled", "client_cancelled"), now + 0.1)
    stopped = speech_stopped("item_c1")
    assert model(guard, stopped, now + 0.5).deliver == (stopped,)
    turn = committed("item_c1")
    step = model(guard, turn, now + 0.5)
    assert step.deliver == (turn,)
    assert step.send == ({"type": "response.create"},)


def test_observer_mode_judges_speech_but_hides_nothing() -> None:
    guard, recorded = guard_with(
        GuardConfig(
            turn_control=False,
            calibration=CalibrationConfig(allow_speech_before_calibration=False),
        )
    )
    started = speech_started("item_c1")
    assert model(guard, started, 0.1).deliver == (started,)
    assert guard.judgement("item_c1") is False
    turn = committed("item_c1")
    assert model(guard, turn, 0.5).deliver == (turn,)
    assert model(guard, turn, 0.5).send == ()
    assert recorded.last(Action.BARGE_IN).reason is Reason.NOT_CALIBRATED


# ============================================================================================
# Lost creates, hang-up tools, configuration


def test_a_lost_create_is_forgotten_and_sent_once_more() -> None:
    guard, _ = guard_with()
    guard.to_model(response_create({"instructions": "Hi"}), now=0.0)
    assert guard.next_deadline() == 3.0
    assert guard.on_tick(2.9).send == ()
    assert guard.on_tick(3.0).send == (
        {"type": "response.create", "response": {"instructions": "Hi"}},
    )
    assert guard.on_tick(6.0).send == ()  # lost again: not retried twice
    assert not guard.state.create_in_flight
    # The same request a third time would be a second re-send: refused; a new one goes.
    assert guard.to_model(response_create({"instructions": "Hi"}), now=6.1).send == ()
    assert guard.creates.statistics().count(Verdict.SUPPRESS, Reason.RETRIED_ONCE) == 1
    assert guard.to_model(response_create({"instructions": "Bye"}), now=6.2).send != ()


def test_no_lost_create_timeout_means_waiting_for_ever() -> None:
    guard, _ = guard_with(GuardConfig(lost_create_timeout=None))
    guard.to_model(response_create(), now=0.0)
    assert guard.next_deadline() is None


def test_after_the_hang_up_tool_no_response_starts(caplog: pytest.LogCaptureFixture) -> None:
    guard, recorded = guard_with()
    a_response_playing(guard)
    guard.to_model(response_create(), now=0.5)  # deferred behind the goodbye
    with caplog.at_level(logging.INFO, logger="voiceguard"):
        model(guard, end_call("resp_1"), 1.0)
    assert recorded.last(Action.CREATE).reason is Reason.HANGUP_PENDING
    assert model(guard, wire.response_done("resp_1"), 2.0).send == ()
    assert guard.to_model(response_create(), now=2.1).send == ()


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"turn_control": "yes"}, "GuardConfig.turn_control"),
        ({"create_policy": "defer"}, "GuardConfig.create_policy"),
        ({"lost_create_timeout": 0.0}, "GuardConfig.lost_create_timeout"),
        ({"hangup_tools": ["end_call"]}, "GuardConfig.hangup_tools"),
        ({"hangup_tools": ("",)}, "GuardConfig.hangup_tools"),
        ({"calibration": None}, "GuardConfig.calibration"),
    ],
)
def test_a_bad_setting_names_its_field(changes: Mapping[str, Any], field: str) -> None:
    with pytest.raises(ConfigError) as raised:
        GuardConfig(**changes)
    assert raised.value.field == field


def _start() -> str:
    return (
        '{"event":"start","sequenceNumber":"1","streamSid":"MZ1","start":{"streamSid":"MZ1",'
        '"accountSid":"AC1","callSid":"CA9","tracks":["inbound"],"customParameters":{},'
        '"mediaFormat":{"encoding":"audio/x-mulaw","sampleRate":8000,"channels":1}}}'
    )


def _mark(name: str) -> str:
    return f'{{"event":"mark","sequenceNumber":"9","streamSid":"MZ1","mark":{{"name":"{name}"}}}}'


def test_a_bot_that_answers_its_own_turns_is_not_answered_for() -> None:
    guard, recorded = guard_with()
    update = session_update(interrupt_response=False, create_response=False)  # turn control
    guard.to_model(update, now=0.0)
    now = _calibrated(guard)
    a_response_playing(guard, now=now)
    now = _caller_speaks(guard, 0.3, now + 0.15)
    step, now = _judged(guard, speech_started("item_c1", audio_start_ms=1100), now)
    # The barge-in is the guard's, as in the reference server: its cancel went with the
    # confirmation, and the bot's own cancel (its handler runs now) is one too many.
    assert step.send[0] == {"type": "response.cancel", "response_id": "resp_1"}
    assert guard.to_model(response_cancel(), now).send == ()
    assert recorded.last(Action.CANCEL).reason is Reason.CANCEL_ALREADY_SENT
    model(guard, wire.response_done("resp_1", "cancelled", "client_cancelled"), now + 0.1)
    turn = committed("item_c1")
    step = model(guard, turn, now + 0.5)
    assert (step.deliver, step.send) == ((turn,), ())  # the bot answers itself


def test_a_lost_create_of_the_guards_own_is_sent_again_as_it_was() -> None:
    guard, _ = guard_with()
    request = CreateRequest(response={"instructions": "Hi"}, label="helper")
    decision, step = guard.request_response(request, now=0.0)
    assert decision.allowed
    assert step.send == ({"type": "response.create", "response": {"instructions": "Hi"}},)
    resent = guard.on_tick(3.0).send
    assert resent == ({"type": "response.create", "response": {"instructions": "Hi"}},)
