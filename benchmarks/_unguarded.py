"""Guards off: the reference bridge with its three guards replaced by ones that allow everything.

Used by the benchmarks only, to measure what the guards cost: the same
:class:`~voiceguard.BridgeCore` / :class:`~voiceguard.MediaHandler` code runs, with the same
:class:`~voiceguard.CallState` and :class:`~voiceguard.PlayoutBuffer`, but

* the calibration gate is never fed audio and takes every ``speech_started`` for the caller;
* the cancel arbiter allows every cancel (naming the active response);
* the create guard allows every create.

The call state still records each send the bridge makes, so the bridge's own bookkeeping stays as
it is. On a clean line (no echo, no noise bursts) and a well-behaved model, the guarded bridge
allows the same actions, so both send the same messages and the CPU difference is the guards'.
Never use this in a real bridge: it is the counter-example the guards exist for.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress

from voiceguard import (
    BridgeCore,
    CalibrationGate,
    CallState,
    CancelArbiter,
    Decision,
    MediaHandler,
    ResponseCreateGuard,
)
from voiceguard.core import turns
from voiceguard.core.guards.calibration import CalibrationStatistics
from voiceguard.core.guards.create import CreateRequest, ReleasedCreate
from voiceguard.decisions import Action, Reason, Verdict
from voiceguard.errors import StateTransitionError


class OpenGate:
    """A calibration gate that measures nothing and allows every barge-in."""

    calibrated = True

    def __init__(self) -> None:
        self._statistics = CalibrationGate().statistics()

    def push_inbound(self, frame: object, now: float) -> None:
        pass

    def push_outbound(self, audio: object, now: float) -> None:
        pass

    def outbound_cleared(self, now: float) -> None:
        pass

    def poll_barge_in(self, now: float) -> Decision | None:
        return None

    def judge_speech_started(self, now: float, **_: object) -> Decision:
        return Decision(action=Action.BARGE_IN, verdict=Verdict.ALLOW, reason=Reason.OK)

    def recheck(self, now: float) -> Decision:
        return self.judge_speech_started(now)

    def caller_quiet(self, seconds: float = 0.2) -> bool:
        return False  # never waits for a backchannel's end: every barge-in is confirmed

    def speech_stopped(self, now: float) -> Decision | None:
        return None

    def next_deadline(self) -> float | None:
        return None

    def statistics(self) -> CalibrationStatistics:
        return self._statistics


class OpenCancels:
    """A cancel arbiter that allows every cancel."""

    pending = False

    def __init__(self, state: CallState) -> None:
        self._state = state
        self._statistics = CancelArbiter(CallState()).statistics()

    def request(
        self, now: float, *, response_id: str | None = None, barge_in: bool = True
    ) -> Decision:
        named = response_id if response_id is not None else self._state.active_response_id
        # With no response active the cancel goes anyway: the race the arbiter prevents.
        with suppress(StateTransitionError):
            self._state.cancel_sent(now=now, response_id=named)
        return Decision(
            action=Action.CANCEL, verdict=Verdict.ALLOW, reason=Reason.OK, response_id=named
        )

    def release(self, now: float) -> Decision | None:
        return None

    def withdraw(self) -> bool:
        return False

    def statistics(self) -> object:
        return self._statistics


class OpenCreates:
    """A create guard that allows every create."""

    def __init__(self, state: CallState) -> None:
        self._state = state
        self._statistics = ResponseCreateGuard(CallState()).statistics()

    def request(self, request: CreateRequest, now: float) -> Decision:
        self._state.create_sent(now=now, greeting=request.greeting)
        return Decision(action=Action.CREATE, verdict=Verdict.ALLOW, reason=Reason.OK)

    def release(self, now: float) -> ReleasedCreate | None:
        return None

    def drop_pending(self, now: float, **_: object) -> int:
        return 0

    def pending(self) -> tuple[CreateRequest, ...]:
        return ()

    def withdraw(self, label: str, now: float, **_: object) -> int:
        return 0

    def refuse(
        self, request: CreateRequest, now: float, *, reason: Reason, **_: object
    ) -> Decision:
        return Decision(action=Action.CREATE, verdict=Verdict.SUPPRESS, reason=reason)

    def statistics(self) -> object:
        return self._statistics


@contextmanager
def open_guards() -> Iterator[None]:
    """Every turn engine built inside this block gets the open guards.

    The engine hands its guards to its parts (the caller's turns, the responder, the barge-in
    judgement) as it is built, so they must be open from the start: replacing them on a built
    engine would leave its parts judging with the real ones.
    """
    saved = (turns.CalibrationGate, turns.CancelArbiter, turns.ResponseCreateGuard)
    turns.CalibrationGate = _open_gate  # type: ignore[assignment,misc]
    turns.CancelArbiter = _open_cancels  # type: ignore[assignment,misc]
    turns.ResponseCreateGuard = _open_creates  # type: ignore[assignment,misc]
    try:
        yield
    finally:
        turns.CalibrationGate, turns.CancelArbiter, turns.ResponseCreateGuard = saved


def _open_gate(*_: object, **__: object) -> OpenGate:
    return OpenGate()


def _open_cancels(state: CallState, *_: object, **__: object) -> OpenCancels:
    return OpenCancels(state)


def _open_creates(state: CallState, *_: object, **__: object) -> OpenCreates:
    return OpenCreates(state)


def unguarded_core(*args: object, **kwargs: object) -> BridgeCore:
    """A :class:`~voiceguard.BridgeCore` whose guards allow everything."""
    with open_guards():
        core = BridgeCore(*args, **kwargs)  # type: ignore[arg-type]
    assert isinstance(core.engine.gate, OpenGate)
    return core


def unguarded_handler(*args: object, **kwargs: object) -> MediaHandler:
    """A :class:`~voiceguard.MediaHandler` whose bridge runs with the guards off."""
    with open_guards():
        handler = MediaHandler(*args, **kwargs)  # type: ignore[arg-type]
    assert isinstance(handler.core.engine.gate, OpenGate)
    return handler
