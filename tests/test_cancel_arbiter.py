"""CancelArbiter: the seed's cancel scenarios, and the cases it did not cover."""

from __future__ import annotations

import logging

import pytest
import wire

from voiceguard import (
    Action,
    CallState,
    CancelArbiter,
    CancelConfig,
    Decision,
    Reason,
    StateTransitionError,
    Verdict,
)


def make(
    *, interrupt_response: bool = False, cooldown: float = 0.2
) -> tuple[CallState, CancelArbiter]:
    state = CallState()
    state.observe(wire.session_updated(interrupt_response=interrupt_response))
    return state, CancelArbiter(state, config=CancelConfig(cooldown=cooldown))


def active(state: CallState, response_id: str = "resp_1", *, now: float = 0.0) -> None:
    state.create_sent(now=now)
    state.observe(wire.response_created(response_id))


# --- the seed's six cases -------------------------------------------------------------------


def test_cancel_denied_without_active_response_id() -> None:
    state, arbiter = make()
    decision = arbiter.request(1.0)
    assert decision.verdict is Verdict.SUPPRESS
    assert decision.reason is Reason.NO_ACTIVE_RESPONSE
    assert state.cancel_in_flight is False


def test_cancel_denied_when_response_not_active() -> None:
    state, arbiter = make()
    active(state)
    state.observe(wire.response_done("resp_1"))
    decision = arbiter.request(1.0)
    assert decision.reason is Reason.RESPONSE_ALREADY_DONE
    assert decision.suppressed


def test_cancel_denied_when_id_already_done() -> None:
    state, arbiter = make()
    active(state, "resp_1")
    state.observe(wire.response_done("resp_1"))
    active(state, "resp_2")
    decision = arbiter.request(1.0, response_id="resp_1")
    assert decision.reason is Reason.RESPONSE_ALREADY_DONE
    assert decision.response_id == "resp_1"
    assert state.active_response_id == "resp_2"
    assert not state.cancel_in_flight


def test_cancel_denied_within_cooldown() -> None:
    state, arbiter = make()
    active(state, "resp_1")
    assert arbiter.request(1.0).allowed
    state.observe(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    active(state, "resp_2", now=1.05)
    decision = arbiter.request(1.15)  # 150 ms after the previous cancel
    assert decision.reason is Reason.COOLDOWN
    assert "150 ms" in decision.detail


def test_cancel_allowed_after_cooldown_expired() -> None:
    state, arbiter = make()
    active(state, "resp_1")
    assert arbiter.request(1.0).allowed
    state.observe(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    active(state, "resp_2", now=1.05)
    decision = arbiter.request(1.2)  # exactly the cooldown: allowed
    assert decision.allowed
    assert decision.response_id == "resp_2"


def test_cancel_allowed_when_all_conditions_met() -> None:
    state, arbiter = make()
    active(state, "resp_7")
    decision = arbiter.request(3.0)
    assert decision == Decision(
        action=Action.CANCEL, verdict=Verdict.ALLOW, reason=Reason.OK, response_id="resp_7"
    )
    assert state.cancel_in_flight
    assert state.last_cancel_at == 3.0


# --- beyond the seed --------------------------------------------------------------------------


def test_second_cancel_in_a_burst_is_refused_as_already_sent() -> None:
    state, arbiter = make(cooldown=0.0)
    active(state)
    assert arbiter.request(1.0).allowed
    for t in (1.01, 1.02, 1.5, 9.0):  # a burst of speech_started, and much later
        assert arbiter.request(t).reason is Reason.CANCEL_ALREADY_SENT
    assert state.statistics().cancels_sent == 1


def test_server_cancels_by_itself_when_interrupt_response_is_on() -> None:
    state, arbiter = make(interrupt_response=True)
    active(state)
    decision = arbiter.request(1.0)
    assert decision.reason is Reason.SERVER_CANCELS
    # A cancel the bot wants for its own reasons is still needed and allowed.
    assert arbiter.request(1.0, barge_in=False).allowed


def test_interrupt_response_defaults_to_the_server_default_before_the_session_says() -> None:
    state = CallState()
    arbiter = CancelArbiter(state)
    assert state.server_interrupts is True
    assert arbiter.decide(0.0).reason is Reason.SERVER_CANCELS


def test_cancel_while_create_in_flight_is_deferred_until_created() -> None:
    state, arbiter = make()
    state.create_sent(now=0.0)
    decision = arbiter.request(0.1)
    assert decision.verdict is Verdict.DEFER
    assert decision.reason is Reason.CREATE_IN_FLIGHT
    assert arbiter.pending
    assert arbiter.release(0.2) is None  # still not created
    state.observe(wire.response_created("resp_1"))
    released = arbiter.release(0.3)
    assert released is not None
    assert released.allowed
    assert released.response_id == "resp_1"
    assert state.cancel_in_flight
    assert not arbiter.pending


def test_deferred_cancel_is_dropped_if_the_response_ends_first() -> None:
    state, arbiter = make()
    state.create_sent(now=0.0)
    arbiter.request(0.1)
    state.observe(wire.response_done("resp_1"))  # response.created lost, done arrived
    released = arbiter.release(0.3)
    assert released is not None
    assert released.reason is Reason.RESPONSE_ALREADY_DONE


def test_withdrawn_deferred_cancel_is_never_sent() -> None:
    state, arbiter = make()
    state.create_sent(now=0.0)
    arbiter.request(0.1)
    assert arbiter.withdraw() is True
    state.observe(wire.response_created("resp_1"))
    assert arbiter.release(0.3) is None
    assert not state.cancel_in_flight


def test_cancel_of_an_unknown_id_is_refused() -> None:
    state, arbiter = make()
    active(state, "resp_1")
    decision = arbiter.request(1.0, response_id="resp_999")
    assert decision.reason is Reason.NO_ACTIVE_RESPONSE
    assert decision.detail == "not the active response"


def test_cancel_not_active_error_ends_the_cancel() -> None:
    state, arbiter = make()
    active(state, "resp_1")
    assert arbiter.request(1.0).allowed
    state.observe(wire.error("response_cancel_not_active"))
    assert state.active_response_id is None
    assert state.is_finished("resp_1")
    state.observe(wire.response_done("resp_1", "completed"))  # the late done is a duplicate
    assert state.statistics().anomalies == {"duplicate_response_done": 1}


def test_decide_changes_nothing() -> None:
    state, arbiter = make()
    active(state)
    for _ in range(3):
        assert arbiter.decide(1.0).allowed
    assert not state.cancel_in_flight
    assert arbiter.statistics().total == 0


def test_reporting_a_refused_cancel_raises_and_changes_nothing() -> None:
    state, _ = make()
    with pytest.raises(StateTransitionError, match="no response is active") as info:
        state.cancel_sent(now=1.0)
    assert info.value.state == "NONE"
    assert info.value.event == "CANCEL_SENT"
    assert state.last_cancel_at is None


def test_every_refusal_is_counted_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[Decision] = []
    state = CallState(call_sid="CA1", stream_sid="MZ1")
    state.observe(wire.session_updated())
    arbiter = CancelArbiter(state, on_decision=seen.append)
    with caplog.at_level(logging.DEBUG, logger="voiceguard.guards.cancel"):
        arbiter.request(0.0)
        active(state)
        arbiter.request(1.0)
        arbiter.request(1.1)
    assert [d.reason for d in seen] == [
        Reason.NO_ACTIVE_RESPONSE,
        Reason.OK,
        Reason.CANCEL_ALREADY_SENT,
    ]
    stats = arbiter.statistics()
    assert stats.total == 3
    assert stats.count(Verdict.SUPPRESS) == 2
    assert stats.count(Verdict.SUPPRESS, Reason.CANCEL_ALREADY_SENT) == 1
    info = [r for r in caplog.records if r.levelno == logging.INFO]
    assert len(info) == 2
    record = info[1]
    assert record.__dict__["call_sid"] == "CA1"
    assert record.__dict__["stream_sid"] == "MZ1"
    assert record.__dict__["reason"] == "CANCEL_ALREADY_SENT"
    assert record.__dict__["response_id"] == "resp_1"
    assert record.__dict__["t"] == 1.1


def test_barge_in_after_all_audio_was_generated_does_not_race_response_done() -> None:
    state, arbiter = make()
    active(state, "resp_1")
    state.observe(wire.output_item_added("resp_1", "item_1"))
    state.observe(wire.audio_delta("resp_1", "item_1", 400))
    state.observe(wire.audio_done("resp_1", "item_1"))
    decision = arbiter.request(1.0)
    assert decision.reason is Reason.AUDIO_COMPLETE
    assert not state.cancel_in_flight
    # A cancel for the bot's own reasons is not a barge-in and still goes.
    assert arbiter.request(1.0, barge_in=False).allowed
    # The next response starts with its audio incomplete.
    state.observe(wire.response_done("resp_1", "cancelled", "client_cancelled"))
    active(state, "resp_2", now=2.0)
    assert arbiter.decide(2.0).allowed
