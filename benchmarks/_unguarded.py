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

from voiceguard import (
    BridgeCore,
    CalibrationGate,
    CallState,
    CancelArbiter,
    Decision,
    MediaHandler,
    ResponseCreateGuard,
)
from voiceguard.core.guards.calibration import CalibrationStatistics
from voiceguard.core.guards.create import CreateRequest, ReleasedCreate
from voiceguard.decisions import Action, Reason, Verdict


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

    def statistics(self) -> object:
        return self._statistics


def unguard(core: BridgeCore) -> BridgeCore:
    """Replace the guards of *core* (a fresh one) by open ones; returns *core*."""
    engine = core.engine
    engine.gate = OpenGate()  # type: ignore[assignment]
    engine.cancels = OpenCancels(core.state)  # type: ignore[assignment]
    engine.creates = OpenCreates(core.state)  # type: ignore[assignment]
    return core


def unguarded_handler(*args: object, **kwargs: object) -> MediaHandler:
    """A :class:`~voiceguard.MediaHandler` whose bridge runs with the guards off."""
    handler = MediaHandler(*args, **kwargs)  # type: ignore[arg-type]
    unguard(handler.core)
    return handler
