"""ResponseCreateGuard: the seed's create scenarios, deferral, coalescing and release."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import wire

from voiceguard import (
    CallState,
    CreateConfig,
    CreateOrigin,
    CreatePolicy,
    CreateRequest,
    Decision,
    Reason,
    ResponseCreateGuard,
    Verdict,
)

DROP = CreateRequest(policy=CreatePolicy.DROP)
TURN = CreateRequest(label="turn")
WATCHDOG = CreateRequest(
    origin=CreateOrigin.AUTOMATIC, require_playback_idle=True, label="watchdog"
)
GREETING = CreateRequest(greeting=True, policy=CreatePolicy.DROP, label="greeting")


def make(**config: object) -> tuple[CallState, ResponseCreateGuard]:
    state = CallState()
    state.observe(wire.session_updated())
    return state, ResponseCreateGuard(state, config=CreateConfig(**config))  # type: ignore[arg-type]


# --- the seed's cases -------------------------------------------------------------------------


def test_create_blocked_while_closing() -> None:
    state, guard = make()
    state.begin_closing()
    decision = guard.request(TURN, 1.0)  # even a deferrable request is dropped
    assert (decision.verdict, decision.reason) == (Verdict.SUPPRESS, Reason.CLOSING)
    assert guard.pending() == ()
    assert not state.create_in_flight


def test_create_blocked_by_greeting_lock() -> None:
    _state, guard = make()
    assert guard.request(GREETING, 0.0).reason is Reason.FORCED_GREETING
    decision = guard.request(DROP, 0.5)
    assert (decision.verdict, decision.reason) == (Verdict.SUPPRESS, Reason.GREETING_LOCK)


def test_create_blocked_while_response_active() -> None:
    state, guard = make()
    assert guard.request(DROP, 0.0).allowed
    state.observe(wire.response_created("resp_1"))
    decision = guard.request(DROP, 1.0)
    assert decision.reason is Reason.RESPONSE_ACTIVE
    assert decision.response_id == "resp_1"


def test_create_blocked_while_hangup_pending() -> None:
    state, guard = make()
    state.begin_hangup()
    decision = guard.request(TURN, 1.0)
    assert (decision.verdict, decision.reason) == (Verdict.SUPPRESS, Reason.HANGUP_PENDING)


def test_create_allowed_for_forced_greeting() -> None:
    state, guard = make()
    decision = guard.request(GREETING, 0.0)
    assert decision.allowed
    assert decision.reason is Reason.FORCED_GREETING
    assert state.greeting_lock
    assert state.create_in_flight


def test_create_allowed_in_clean_state() -> None:
    state, guard = make()
    decision = guard.request(DROP, 0.0)
    assert decision.allowed
    assert decision.reason is Reason.OK
    assert state.create_in_flight


# --- in flight, deferral and release ----------------------------------------------------------


def test_create_in_flight_blocks_a_second_create_before_response_created() -> None:
    _state, guard = make()
    assert guard.request(DROP, 0.0).allowed
    assert guard.request(DROP, 0.01).reason is Reason.CREATE_IN_FLIGHT


def test_greeting_lock_lasts_until_the_greeting_is_done() -> None:
    state, guard = make()
    guard.request(GREETING, 0.0)
    locks = [state.greeting_lock]
    state.observe(wire.response_created("resp_greet"))
    locks.append(state.greeting_lock)
    state.observe(wire.response_done("resp_greet"))
    locks.append(state.greeting_lock)
    assert locks == [True, True, False]
    assert guard.request(DROP, 2.0).allowed


def test_rejected_greeting_releases_the_lock() -> None:
    state, guard = make()
    guard.request(GREETING, 0.0)
    state.observe(wire.error("conversation_already_has_active_response"))
    assert not state.greeting_lock
    assert not state.create_in_flight


def test_deferred_create_is_released_exactly_once_after_done() -> None:
    state, guard = make()
    guard.request(TURN, 0.0)
    state.observe(wire.response_created("resp_1"))
    deferred = guard.request(TURN, 0.5)
    assert (deferred.verdict, deferred.reason) == (Verdict.DEFER, Reason.RESPONSE_ACTIVE)
    assert guard.release(0.6) is None
    state.observe(wire.response_done("resp_1"))
    released = guard.release(0.7)
    assert released is not None
    assert released.request == TURN
    assert released.decision.allowed
    assert state.create_in_flight
    assert guard.release(0.8) is None
    assert guard.pending() == ()


def test_automatic_creates_coalesce_and_explicit_ones_keep_their_order() -> None:
    state, guard = make()
    guard.request(TURN, 0.0)
    first = CreateRequest(label="tool_result_1")
    second = CreateRequest(label="tool_result_2")
    assert guard.request(WATCHDOG, 0.1).deferred
    assert guard.request(first, 0.2).deferred
    coalesced = guard.request(WATCHDOG, 0.3)
    assert (coalesced.verdict, coalesced.reason) == (Verdict.SUPPRESS, Reason.COALESCED)
    assert guard.request(second, 0.4).deferred
    assert guard.pending() == (WATCHDOG, first, second)

    released: list[str] = []
    for n in range(3):
        state.observe(wire.response_created(f"resp_{n}"))
        state.observe(wire.response_done(f"resp_{n}"))
        item = guard.release(1.0 + n)
        assert item is not None
        released.append(item.request.label)
    assert released == ["watchdog", "tool_result_1", "tool_result_2"]


def test_released_creates_obey_the_same_rules() -> None:
    state, guard = make()
    guard.request(TURN, 0.0)
    guard.request(TURN, 0.1)
    state.observe(wire.response_created("resp_1"))
    state.begin_hangup()
    state.observe(wire.response_done("resp_1"))
    assert guard.release(1.0) is None
    assert guard.pending() == ()
    assert guard.statistics().count(Verdict.SUPPRESS, Reason.HANGUP_PENDING) == 1
    assert not state.create_in_flight


def test_watchdog_waits_for_playback_to_finish() -> None:
    state, guard = make()
    guard.request(TURN, 0.0)
    state.observe(wire.response_created("resp_1"))
    state.observe(wire.output_item_added("resp_1", "item_1"))
    state.observe(wire.audio_delta("resp_1", "item_1", 1000))
    state.record_playout(item_id="item_1", sent_ms=1000, heard_ms=200)
    state.observe(wire.response_done("resp_1"))
    assert guard.request(WATCHDOG, 1.0).reason is Reason.AUDIO_PLAYING
    assert guard.release(1.5) is None
    state.record_playout(item_id="item_1", heard_ms=1000)
    released = guard.release(2.0)
    assert released is not None
    assert released.request is WATCHDOG


def test_queue_full_drops_with_a_reason() -> None:
    _state, guard = make(max_deferred=1)
    guard.request(TURN, 0.0)
    assert guard.request(TURN, 0.1).deferred
    decision = guard.request(TURN, 0.2)
    assert decision.reason is Reason.QUEUE_FULL
    assert decision.suppressed


def test_outdated_deferred_create_expires() -> None:
    state, guard = make(deferred_ttl=5.0)
    guard.request(TURN, 0.0)
    guard.request(TURN, 0.1)
    state.observe(wire.response_created("resp_1"))
    state.observe(wire.response_done("resp_1"))
    assert guard.release(10.0) is None
    assert guard.statistics().count(Verdict.SUPPRESS, Reason.EXPIRED) == 1


def test_drop_pending_at_call_end() -> None:
    _state, guard = make()
    guard.request(TURN, 0.0)
    guard.request(TURN, 0.1)
    guard.request(WATCHDOG, 0.2)
    assert guard.drop_pending(3.0) == 2
    assert guard.pending() == ()


@dataclass
class Gate:
    calibrated: bool = False


def test_calibration_requirement_is_optional_and_spares_the_greeting() -> None:
    state = CallState()
    gate = Gate()
    guard = ResponseCreateGuard(
        state, config=CreateConfig(require_calibration=True), calibration=gate
    )
    assert guard.decide(DROP, 0.0).reason is Reason.NOT_CALIBRATED
    assert guard.decide(GREETING, 0.0).allowed
    gate.calibrated = True
    assert guard.decide(DROP, 0.0).allowed


def test_create_rejected_error_ends_the_create_in_flight() -> None:
    state, guard = make()
    guard.request(TURN, 0.0)
    state.observe(wire.error("conversation_already_has_active_response"))
    assert not state.create_in_flight
    assert guard.request(TURN, 0.2).allowed


@pytest.mark.parametrize(
    ("setup", "reason"),
    [
        ("closing", Reason.CLOSING),
        ("hangup", Reason.HANGUP_PENDING),
    ],
)
def test_terminal_reasons_are_never_deferred(setup: str, reason: Reason) -> None:
    state, guard = make()
    if setup == "closing":
        state.begin_closing()
    else:
        state.begin_hangup()
    for request in (TURN, WATCHDOG, DROP, GREETING):
        decision: Decision = guard.request(request, 0.0)
        assert (decision.verdict, decision.reason) == (Verdict.SUPPRESS, reason)
