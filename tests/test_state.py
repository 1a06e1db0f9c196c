"""CallState beyond the lifecycle table: audio, playback, session settings, memory, anomalies."""

from __future__ import annotations

import pytest
import wire

from voiceguard import CallState, StateConfig, StateTransitionError
from voiceguard.protocol.realtime import parse_realtime_event


def speaking(state: CallState, response_id: str = "resp_1", item_id: str = "item_1") -> None:
    state.create_sent(now=0.0)
    state.observe(wire.response_created(response_id))
    state.observe(wire.output_item_added(response_id, item_id))


def test_audio_received_is_counted_in_ms_of_the_session_format() -> None:
    state = CallState()
    speaking(state)
    for _ in range(3):
        state.observe(wire.audio_delta("resp_1", "item_1", 20))
    item = state.current_item
    assert item is not None
    assert item.received_ms == 60


def test_truncate_point_is_heard_audio_clamped_to_received() -> None:
    state = CallState()
    speaking(state)
    state.observe(wire.audio_delta("resp_1", "item_1", 500))
    state.record_playout(item_id="item_1", sent_ms=500, heard_ms=320.7)
    assert state.truncate_point() == 320
    # The phone reports more than the model ever sent (clock skew): never beyond received.
    state.record_playout(item_id="item_1", heard_ms=900)
    assert state.truncate_point("item_1") == 500
    assert state.truncate_point("item_unknown") is None


def test_playout_positions_only_move_forward() -> None:
    state = CallState()
    speaking(state)
    state.observe(wire.audio_delta("resp_1", "item_1", 500))
    state.record_playout(item_id="item_1", sent_ms=400, heard_ms=300)
    state.record_playout(item_id="item_1", sent_ms=100, heard_ms=100)
    item = state.current_item
    assert item is not None
    assert (item.sent_ms, item.heard_ms) == (400, 300)
    assert state.audio_playing
    state.record_playout(item_id="item_1", heard_ms=400)
    assert not state.audio_playing


def test_truncate_beyond_received_audio_is_refused() -> None:
    state = CallState()
    speaking(state)
    state.observe(wire.audio_delta("resp_1", "item_1", 300))
    with pytest.raises(StateTransitionError, match=r"audio_end_ms=301 is outside the 300 ms"):
        state.truncate_sent(item_id="item_1", audio_end_ms=301)
    with pytest.raises(StateTransitionError, match="not a known assistant audio item"):
        state.truncate_sent(item_id="item_x", audio_end_ms=0)
    state.truncate_sent(item_id="item_1", audio_end_ms=300)
    item = state.current_item
    assert item is not None and item.truncated_ms == 300
    assert state.statistics().truncates_sent == 1


def test_audio_of_a_cancelled_response_is_not_played() -> None:
    state = CallState()
    speaking(state)
    state.observe(wire.audio_delta("resp_1", "item_1", 20))
    assert state.should_play("resp_1")
    state.cancel_sent(now=1.0)
    assert not state.should_play("resp_1")
    state.observe(wire.audio_delta("resp_1", "item_1", 20))  # generated before the cancel landed
    state.observe(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    state.observe(wire.audio_delta("resp_1", "item_1", 20))  # after done: stale
    assert not state.should_play("resp_1")
    assert not state.should_play("resp_never")
    stats = state.statistics()
    assert stats.late_deltas == 2
    assert state.finished_status("resp_1") == "cancelled"
    item = state.item("item_1")
    assert item is not None and item.received_ms == 40  # what the server has: the truncate bound


def test_session_settings_come_from_session_events() -> None:
    state = CallState()
    assert (state.server_interrupts, state.server_creates) == (True, True)
    state.observe(wire.session_updated(interrupt_response=False, create_response=True))
    assert (state.server_interrupts, state.server_creates) == (False, True)
    off = parse_realtime_event(
        {
            "type": "session.updated",
            "event_id": "e1",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {"turn_detection": None},
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}},
                },
            },
        }
    )
    state.observe(off)
    assert not state.server_interrupts and not state.server_creates
    assert state.audio_format.bytes_per_ms == 48
    # A partial update that does not mention turn detection changes nothing about it.
    state.observe(
        parse_realtime_event(
            {
                "type": "session.updated",
                "event_id": "e2",
                "session": {"type": "realtime", "instructions": "hi"},
            }
        )
    )
    assert not state.server_interrupts


def test_finished_ids_are_bounded_and_forgotten_oldest_first() -> None:
    state = CallState(config=StateConfig(finished_responses=3))
    for n in range(5):
        state.create_sent(now=float(n))
        state.observe(wire.response_created(f"resp_{n}"))
        state.observe(wire.response_done(f"resp_{n}"))
    assert [state.is_finished(f"resp_{n}") for n in range(5)] == [False, False, True, True, True]


def test_server_created_response_is_tracked_without_a_client_create() -> None:
    state = CallState()
    state.observe(wire.session_updated(interrupt_response=True, create_response=True))
    state.observe(wire.response_created("resp_auto"))
    assert state.active_response_id == "resp_auto"
    assert state.response_active


def test_out_of_order_peer_events_are_counted_not_raised() -> None:
    state = CallState()
    state.observe(wire.response_done("resp_ghost"))
    speaking(state)
    state.observe(wire.response_created("resp_1"))
    state.observe(wire.output_item_added("resp_1", "item_1"))
    state.observe(wire.response_done("resp_1"))
    state.observe(wire.response_done("resp_1"))
    state.observe(wire.error("response_cancel_not_active"))
    assert dict(state.statistics().anomalies) == {
        "response_done_for_unknown_response": 1,
        "duplicate_response_created": 1,
        "duplicate_output_item": 1,
        "duplicate_response_done": 1,
        "cancel_rejected_unexpectedly": 1,
    }


def test_lost_response_created_is_recovered_by_response_done() -> None:
    state = CallState()
    state.create_sent(now=0.0)
    state.observe(wire.response_done("resp_1"))
    assert not state.create_in_flight
    assert state.is_finished("resp_1")
    assert state.statistics().anomalies == {"response_created_lost": 1}


def test_new_response_while_one_is_active_finishes_the_old_one() -> None:
    state = CallState()
    speaking(state, "resp_1")
    state.observe(wire.response_created("resp_2"))
    assert state.active_response_id == "resp_2"
    assert state.is_finished("resp_1")
    assert state.finished_status("resp_1") == "unknown"


def test_closing_and_hangup_refuse_a_reported_create() -> None:
    state = CallState()
    state.begin_hangup()
    with pytest.raises(StateTransitionError, match="a hang-up is pending"):
        state.create_sent(now=0.0)
    state.begin_closing()
    with pytest.raises(StateTransitionError, match="the call is closing"):
        state.create_sent(now=0.0)
    assert state.statistics().creates_sent == 0


def test_user_has_spoken_from_a_real_transcript() -> None:
    state = CallState()
    blank = parse_realtime_event(
        {
            "type": "conversation.item.input_audio_transcription.completed",
            "event_id": "e1",
            "item_id": "item_u1",
            "content_index": 0,
            "transcript": "  ",
        }
    )
    state.observe(blank)
    assert not state.user_has_spoken
    state.note_user_spoke()
    assert state.user_has_spoken


def test_calls_never_share_state() -> None:
    a, b = CallState(call_sid="CA_a"), CallState(call_sid="CA_b")
    speaking(a)
    assert b.active_response_id is None
    assert b.statistics().creates_sent == 0


def test_a_cleared_phone_buffer_plays_nothing_more() -> None:
    state = CallState()
    speaking(state)
    state.observe(wire.audio_delta("resp_1", "item_1", 900))
    state.record_playout(item_id="item_1", sent_ms=600, heard_ms=200)
    playing = [state.audio_playing]
    state.playback_cleared()
    item = state.current_item
    assert item is not None
    assert (item.sent_ms, item.heard_ms) == (200, 200)
    playing.append(state.audio_playing)
    state.record_playout(item_id="item_1", sent_ms=300)  # played on after a false interruption
    playing.append(state.audio_playing)
    assert playing == [True, False, True]


def test_output_before_a_late_response_created_is_adopted() -> None:
    state = CallState()
    state.create_sent(now=0.0)
    state.observe(wire.output_item_added("resp_1", "item_1"))  # response.created is late
    state.observe(wire.audio_delta("resp_1", "item_1", 100))
    assert state.active_response_id == "resp_1"
    assert state.should_play("resp_1")
    state.observe(wire.response_created("resp_1"))  # the late one: a duplicate now
    item = state.current_item
    assert item is not None and item.received_ms == 100
    assert dict(state.statistics().anomalies) == {
        "output_before_response_created": 1,
        "duplicate_response_created": 1,
    }


def test_a_lost_create_can_be_abandoned() -> None:
    state = CallState()
    with pytest.raises(StateTransitionError, match=r"no response\.create is in flight"):
        state.abandon_create(now=0.0)
    state.create_sent(now=0.0, greeting=True)
    state.abandon_create(now=3.0)
    assert not state.create_in_flight
    assert not state.greeting_lock
    state.create_sent(now=3.0)  # a new one may go
    assert state.create_in_flight
