"""Property tests of CallState and the two lifecycle guards.

1. Every (phase, trigger, which-response) triple either moves as the transition table says, or
   raises StateTransitionError and leaves the state exactly as it was.
2. A RuleBasedStateMachine plays a faithful full-turn-control server (``create_response`` and
   ``interrupt_response`` off) against the guards, with events delivered late, duplicated and in
   random interleavings with cancels, creates, clock advances and call end. After every step it
   asserts the architecture page's invariants 1, 2 and 7 against an independent model of what was
   observed.
"""

from __future__ import annotations

import copy
import logging
from collections import deque
from typing import Any

import wire
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
)

from voiceguard import (
    CallState,
    CancelArbiter,
    CreateConfig,
    CreateOrigin,
    CreatePolicy,
    CreateRequest,
    Decision,
    ResponseCreateGuard,
    StateTransitionError,
    Verdict,
)
from voiceguard.core.state import TRANSITIONS, LifecycleTrigger, ResponseMatch, ResponsePhase


def snapshot(state: CallState) -> dict[str, Any]:
    return {name: copy.deepcopy(getattr(state, name)) for name in CallState.__slots__}


# A step that drives a state somewhere reachable: (kind, argument).
steps = st.lists(
    st.one_of(
        st.tuples(st.just("create"), st.booleans()),
        st.tuples(st.just("created"), st.sampled_from(["r1", "r2", "r3"])),
        st.tuples(st.just("done"), st.sampled_from(["r1", "r2", "r3"])),
        st.tuples(st.just("cancel"), st.none()),
        st.tuples(
            st.just("error"),
            st.sampled_from(
                ["conversation_already_has_active_response", "response_cancel_not_active"]
            ),
        ),
    ),
    max_size=12,
)


def drive(state: CallState, kind: str, arg: Any) -> None:
    try:
        if kind == "create":
            state.create_sent(now=0.0, greeting=bool(arg))
        elif kind == "cancel":
            state.cancel_sent(now=0.0)
        elif kind == "created":
            state.observe(wire.response_created(arg))
        elif kind == "done":
            state.observe(wire.response_done(arg))
        else:
            state.observe(wire.error(arg))
    except StateTransitionError:
        pass


def response_id_for(state: CallState, match: ResponseMatch) -> str | None:
    """An id that relates to the state as *match* says, or None if there is none such."""
    if match is ResponseMatch.ACTIVE:
        return state.active_response_id
    if match is ResponseMatch.FINISHED:
        return next((r for r in ("r1", "r2", "r3") if state.is_finished(r)), None)
    return "r_never_seen"


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    history=steps,
    trigger=st.sampled_from(list(LifecycleTrigger)),
    match=st.sampled_from(list(ResponseMatch)),
)
def test_every_state_event_pair_transitions_or_raises_leaving_state_unchanged(
    history: list[tuple[str, Any]], trigger: LifecycleTrigger, match: ResponseMatch
) -> None:
    state = CallState()
    for kind, arg in history:
        drive(state, kind, arg)
    before_phase = state.phase
    response_id = response_id_for(state, match)
    if match is not ResponseMatch.ACTIVE and response_id is None:
        return  # no finished response to name in this state
    if (
        trigger in (LifecycleTrigger.RESPONSE_CREATED, LifecycleTrigger.RESPONSE_DONE)
        and response_id is None
    ):
        return  # the server always names the response
    expected = TRANSITIONS[before_phase, trigger, state.match(response_id)]
    before = snapshot(state)
    refused: StateTransitionError | None = None
    try:
        if trigger is LifecycleTrigger.CREATE_SENT:
            state.create_sent(now=1.0)
        elif trigger is LifecycleTrigger.CREATE_ABANDONED:
            state.abandon_create(now=1.0)
        elif trigger is LifecycleTrigger.CANCEL_SENT:
            state.cancel_sent(now=1.0, response_id=response_id)
        elif trigger is LifecycleTrigger.RESPONSE_CREATED:
            assert response_id is not None
            state.observe(wire.response_created(response_id))
        elif trigger is LifecycleTrigger.RESPONSE_DONE:
            assert response_id is not None
            state.observe(wire.response_done(response_id))
        elif trigger is LifecycleTrigger.CREATE_REJECTED:
            state.observe(wire.error("conversation_already_has_active_response"))
        else:
            state.observe(wire.error("response_cancel_not_active"))
    except StateTransitionError as exc:
        refused = exc
    if refused is not None:
        assert isinstance(expected, str), f"{before_phase}/{trigger}: raised but table allows"
        assert refused.detail == expected
        assert snapshot(state) == before, "a refused move changed the state"
    else:
        assert isinstance(expected, ResponsePhase), f"{before_phase}/{trigger}: table forbids"
        assert state.phase is expected


def test_the_table_is_complete_and_only_local_moves_are_illegal() -> None:
    for phase in ResponsePhase:
        for trigger in LifecycleTrigger:
            for match in ResponseMatch:
                outcome = TRANSITIONS[phase, trigger, match]
                if trigger not in (
                    LifecycleTrigger.CREATE_SENT,
                    LifecycleTrigger.CANCEL_SENT,
                    LifecycleTrigger.CREATE_ABANDONED,
                ):
                    assert isinstance(outcome, ResponsePhase)
    assert len(TRANSITIONS) == len(ResponsePhase) * len(LifecycleTrigger) * len(ResponseMatch)


class _Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class FullTurnControlServer:
    """What the Realtime server does with create_response and interrupt_response off.

    Its events reach the client through a queue, so the client acts on a late view of it, as over
    a real network.
    """

    def __init__(self) -> None:
        self.active: str | None = None
        self.outbox: deque[Any] = deque()
        self.count = 0
        self.rejected_creates = 0
        self.rejected_cancels = 0
        self.item: str | None = None

    def create(self) -> None:
        if self.active is not None:
            self.rejected_creates += 1
            self.outbox.append(wire.error("conversation_already_has_active_response"))
            return
        self.count += 1
        self.active = f"resp_{self.count}"
        self.item = f"item_{self.count}"
        self.outbox.append(wire.response_created(self.active))
        self.outbox.append(wire.output_item_added(self.active, self.item))

    def speak(self) -> None:
        if self.active is not None and self.item is not None:
            self.outbox.append(wire.audio_delta(self.active, self.item, 100))

    def cancel(self, response_id: str | None) -> None:
        if self.active is None or (response_id is not None and response_id != self.active):
            self.rejected_cancels += 1
            self.outbox.append(wire.error("response_cancel_not_active"))
            return
        self.outbox.append(wire.response_done(self.active, "cancelled", "client_cancelled"))
        self.active = None

    def finish(self) -> None:
        if self.active is not None:
            if self.item is not None:
                self.outbox.append(wire.audio_done(self.active, self.item))
            self.outbox.append(wire.response_done(self.active, "completed"))
            self.active = None


REQUESTS = st.builds(
    CreateRequest,
    origin=st.sampled_from(list(CreateOrigin)),
    policy=st.sampled_from(list(CreatePolicy)),
    greeting=st.booleans(),
    require_playback_idle=st.booleans(),
    label=st.sampled_from(["turn", "watchdog", "tool"]),
)


class GuardedCall(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.decisions: list[Decision] = []
        self.state = CallState(call_sid="CA_sm")
        self.state.observe(wire.session_updated())
        self.arbiter = CancelArbiter(self.state, on_decision=self.decisions.append)
        self.creates = ResponseCreateGuard(
            self.state,
            config=CreateConfig(max_deferred=3, deferred_ttl=20.0),
            on_decision=self.decisions.append,
        )
        self.server = FullTurnControlServer()
        self.capture = _Capture()
        self.loggers = [logging.getLogger("voiceguard.guards")]
        for log in self.loggers:
            log.addHandler(self.capture)
            log.setLevel(logging.DEBUG)
        # The independent model: what the client has observed and sent.
        self.seen_active: str | None = None
        self.seen_finished: set[str] = set()
        self.create_in_flight = False
        self.cancel_in_flight = False
        self.closing = False
        self.hangup = False
        self.delivered: list[Any] = []

    def teardown(self) -> None:
        for log in self.loggers:
            log.removeHandler(self.capture)
            log.setLevel(logging.NOTSET)

    # --- sends, checked against the model at the moment they happen -------------------------

    def send_create(self) -> None:
        # Invariant 2.
        assert self.seen_active is None, "create while a response is active"
        assert not self.create_in_flight, "create while a create is in flight"
        assert not self.closing, "create while closing"
        assert not self.hangup, "create after the hang-up started"
        self.create_in_flight = True
        self.server.create()

    def send_cancel(self, response_id: str | None) -> None:
        # Invariant 1.
        assert self.seen_active is not None, "cancel with no active response"
        assert response_id == self.seen_active, "cancel of another response"
        assert response_id not in self.seen_finished, "cancel of a finished response"
        assert not self.cancel_in_flight, "cancel while a cancel is in flight"
        self.cancel_in_flight = True
        self.server.cancel(response_id)

    # --- rules --------------------------------------------------------------------------------

    @rule(request=REQUESTS)
    def ask_create(self, request: CreateRequest) -> None:
        if self.creates.request(request, self.now).allowed:
            self.send_create()

    @rule(barge_in=st.booleans())
    def ask_cancel(self, barge_in: bool) -> None:
        decision = self.arbiter.request(self.now, barge_in=barge_in)
        if decision.allowed:
            self.send_cancel(decision.response_id)

    @rule()
    def server_speaks(self) -> None:
        self.server.speak()

    @rule()
    def server_finishes(self) -> None:
        self.server.finish()

    @precondition(lambda self: bool(self.server.outbox))
    @rule()
    def deliver(self) -> None:
        event = self.server.outbox.popleft()
        self.observe(event)

    @precondition(lambda self: bool(self.delivered))
    @rule(data=st.data())
    def redeliver_an_old_event(self, data: st.DataObject) -> None:
        """A duplicated or very late event: must be recognised as stale."""
        event = data.draw(st.sampled_from(self.delivered))
        if getattr(event, "type", None) == "error" or type(event).__name__ == "RealtimeError":
            return  # an error is about a specific send; replaying it would be a new fact
        self.observe(event, replay=True)

    @rule(heard=st.integers(min_value=0, max_value=2000))
    def playout_progress(self, heard: int) -> None:
        item = self.state.current_item
        if item is not None:
            self.state.record_playout(
                item_id=item.item_id, sent_ms=item.received_ms, heard_ms=heard
            )

    @rule(dt=st.sampled_from([0.0, 0.05, 0.1, 0.199, 0.2, 1.0, 30.0]))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule()
    def hang_up(self) -> None:
        self.state.begin_hangup()
        self.hangup = True

    @rule()
    def close(self) -> None:
        self.state.begin_closing()
        self.closing = True

    def observe(self, event: Any, *, replay: bool = False) -> None:
        name = type(event).__name__
        if not replay:
            self.delivered.append(event)
            if name == "ResponseCreated":
                self.create_in_flight = False
                if self.seen_active is not None:  # pragma: no cover - the server never does this
                    self.seen_finished.add(self.seen_active)
                self.seen_active = event.response_id
            elif name == "ResponseDone":
                if event.response_id == self.seen_active:
                    self.seen_finished.add(event.response_id)
                    self.seen_active = None
                    self.cancel_in_flight = False
            elif name == "RealtimeError":
                if event.code == "conversation_already_has_active_response":
                    self.create_in_flight = False
                elif event.code == "response_cancel_not_active" and self.cancel_in_flight:
                    self.cancel_in_flight = False
                    if self.seen_active is not None:
                        self.seen_finished.add(self.seen_active)
                    self.seen_active = None
        self.state.observe(event)
        released_cancel = self.arbiter.release(self.now)
        if released_cancel is not None and released_cancel.allowed:
            self.send_cancel(released_cancel.response_id)
        released = self.creates.release(self.now)
        if released is not None:
            self.send_create()

    # --- invariants after every step -----------------------------------------------------------

    @invariant()
    def state_agrees_with_the_model(self) -> None:
        assert self.state.active_response_id == self.seen_active
        assert self.state.create_in_flight == self.create_in_flight
        assert self.state.cancel_in_flight == self.cancel_in_flight

    @invariant()
    def full_turn_control_never_earns_a_create_rejection(self) -> None:
        # The server never creates on its own here, so "done observed" means "server idle".
        assert self.server.rejected_creates == 0

    @invariant()
    def every_refusal_is_counted_and_logged(self) -> None:
        # Invariant 7.
        stats = self.arbiter.statistics()
        create_stats = self.creates.statistics()
        assert stats.total + create_stats.total == len(self.decisions)
        refused = [d for d in self.decisions if d.verdict is not Verdict.ALLOW]
        logged = [r for r in self.capture.records if r.levelno >= logging.INFO]
        assert len(logged) == len(refused)
        assert [r.__dict__["reason"] for r in logged] == [d.reason.value for d in refused]

    @invariant()
    def deferred_creates_stay_bounded(self) -> None:
        assert len(self.creates.pending()) <= 3

    @invariant()
    def no_truncate_point_beyond_received_audio(self) -> None:
        item = self.state.current_item
        if item is not None:
            point = self.state.truncate_point()
            assert point is not None
            assert point <= item.received_ms
            assert point <= item.heard_ms


TestGuardedCall = GuardedCall.TestCase
TestGuardedCall.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
