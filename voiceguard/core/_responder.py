"""The turn engine's responses: creates, the one re-send of a lost one, the call's timers, the
hang-up after the goodbye.

:class:`Responder` sends every ``response.create`` of the engine through the
:class:`~voiceguard.ResponseCreateGuard`, counts every create of a request against its budget of
one re-send (:class:`~voiceguard.core._answers.Answers`), watches each for its
``response.created`` (a lost one is abandoned and sent once more), and acts on the call's own
timers (:class:`~voiceguard.core._deadlines.CallDeadlines`): idle prompts, the polite and the hard
time limit, the hang-up fallback. Nothing here decides about barge-ins.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping
from typing import Any, final

from typing_extensions import assert_never

from voiceguard.config import TurnConfig
from voiceguard.core._answers import RETRY_LABEL, Answers
from voiceguard.core._deadlines import CallDeadlines, CallTimer, earliest
from voiceguard.core.actions import EndCall, SendToModel, TurnAction
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import CreateRequest, ResponseCreateGuard
from voiceguard.core.record import TimerSink
from voiceguard.core.state import CallState
from voiceguard.decisions import CreateOrigin, CreatePolicy, Decision, Reason
from voiceguard.protocol.realtime import response_cancel, response_create

__all__ = ("Responder",)

logger = logging.getLogger("voiceguard.turns")


@final
class Responder:
    """The engine's creates and the call's own timers.

    Args:
        config: The engine's configuration.
        state: The call's state.
        creates: The call's create guard.
        cancels: The call's cancel arbiter (its deferred cancel is released here too).
        on_timer: Told of each of the call's timers as it fires (the watch over a create
            included, as ``watchdog``).

    Attributes:
        answers: The open request and its re-send budget.
        deadlines: The call's own timers.
    """

    __slots__ = (
        "_cancels",
        "_config",
        "_creates",
        "_goodbye_after",
        "_on_timer",
        "_state",
        "_wind_up",
        "answers",
        "deadlines",
    )

    def __init__(
        self,
        config: TurnConfig,
        state: CallState,
        creates: ResponseCreateGuard,
        cancels: CancelArbiter,
        on_timer: TimerSink | None = None,
    ) -> None:
        self._config = config
        self._on_timer = on_timer
        self._state = state
        self._creates = creates
        self._cancels = cancels
        self.answers = Answers()
        self.deadlines = CallDeadlines(config)
        self._wind_up: str | None = None  # the wind-up goodbye's instructions
        self._goodbye_after: int | None = None  # the creates sent before that goodbye

    def create(self, request: CreateRequest, now: float) -> tuple[Decision, list[TurnAction]]:
        """Ask for a ``response.create`` of the engine's own (a turn, the greeting, a prompt)."""
        decision = self._creates.request(request, now)
        if not decision.allowed:
            return decision, []
        self.sent(request.response)
        return decision, [SendToModel(message=response_create(request.response))]

    def sent(self, response: Mapping[str, Any] | None) -> None:
        """A create went out (the engine's, or the bot's): it counts for the open request, and
        its ``response.created`` is watched for."""
        self.answers.sent(response)
        if self._config.response_timeout is not None:
            self.deadlines.armed()

    def answered(self, now: float) -> None:
        """A response started: the request it answers is answered; its held re-sends go."""
        if self.answers.answered() is not None:
            self._creates.withdraw(RETRY_LABEL, now, reason=Reason.TURN_ANSWERED)

    def release(self, now: float) -> list[TurnAction]:
        """The deferred cancel and the deferred create that may go now."""
        out: list[TurnAction] = []
        cancel = self._cancels.release(now)
        if cancel is not None and cancel.allowed:
            out.append(SendToModel(message=response_cancel(cancel.response_id)))
        released = self._creates.release(now)
        if released is not None:
            self.sent(released.request.response)
            out.append(SendToModel(message=response_create(released.request.response)))
        return out

    # ------------------------------------------------------------------ lost creates

    def lost_at(self) -> float | None:
        """When the create in flight counts as lost, if one is in flight."""
        timeout = self._config.response_timeout
        state = self._state
        sent = state.last_create_at
        if timeout is None or sent is None or not state.create_in_flight:
            return None
        return sent + timeout

    def lost(self, now: float) -> list[TurnAction]:
        """A create got no ``response.created`` in time: forget it, and send it once more."""
        state = self._state
        state.abandon_create(now=now)
        resend = self.answers.may_resend()
        logger.warning(
            "response.create got no response.created in %.1f s: counted as lost%s",
            self._config.response_timeout,
            ", sending it once more" if resend else "; it was sent again already",
            extra={"call_sid": state.call_sid, "stream_sid": state.stream_sid, "t": now},
        )
        if not resend:
            self.deadlines.fired(Reason.RETRIED_ONCE)
            return []
        if self._creates.pending():
            self.deadlines.fired()
            return []  # a held create (a bot's retry) goes instead, when released
        ask = self.answers.open
        request = CreateRequest(
            origin=CreateOrigin.AUTOMATIC,
            policy=CreatePolicy.DROP,
            require_playback_idle=True,
            response=ask.response if ask is not None else None,
            label="lost",
        )
        return self._timer_create(request, now)

    def _timer_create(self, request: CreateRequest, now: float) -> list[TurnAction]:
        """A create a timer of the engine asks for: counted as fired, or suppressed."""
        decision, out = self.create(request, now)
        self.deadlines.fired(None if decision.allowed else decision.reason)
        return out

    # ------------------------------------------------------------------ the call's timers

    def next_deadline(self) -> float | None:
        """When a create counts as lost, or a timer of the call is due."""
        return earliest(self.lost_at(), self.deadlines.next_deadline())

    def on_tick(self, now: float) -> list[TurnAction]:
        """What is due at *now*: a lost create's re-send, the call's timers."""
        out: list[TurnAction] = []
        lost = self.lost_at()
        if lost is not None and now >= lost:
            if self._on_timer is not None:
                self._on_timer("watchdog", now, None)
            out += self.lost(now)
        for timer, number in self.deadlines.due(now):
            if self._on_timer is not None:
                self._on_timer(timer.value, now, number if timer is CallTimer.IDLE_PROMPT else None)
            out += self._timer(timer, number, now)
        return out

    def _timer(self, timer: CallTimer, number: int, now: float) -> list[TurnAction]:
        cfg = self._config
        match timer:
            case CallTimer.HANGUP_FALLBACK:
                self.deadlines.fired()
                return self.end_call("hang-up fallback")
            case CallTimer.IDLE_HANGUP:
                self.deadlines.fired()
                return self.end_call("caller silent")
            case CallTimer.HARD_TIME_LIMIT:
                self.deadlines.fired()
                return self.end_call("maximum call duration")
            case CallTimer.IDLE_PROMPT:
                prompt = CreateRequest(
                    origin=CreateOrigin.AUTOMATIC,
                    policy=CreatePolicy.DROP,
                    require_playback_idle=True,
                    response={"instructions": cfg.idle_prompt},
                    label=f"idle_prompt_{number}",
                )
                return self._timer_create(prompt, now)
            case CallTimer.TIME_LIMIT:
                goodbye = CreateRequest(
                    response={"instructions": cfg.time_limit_goodbye}, label="time_limit_goodbye"
                )
                return self._timer_create(goodbye, now)
            case CallTimer.WIND_UP:
                return self._wind_up_goodbye(now)
            case CallTimer.WIND_UP_HARD:
                self.deadlines.fired()
                return self.end_call("wind-up deadline")
            case _:
                assert_never(timer)

    def wind_up(self, now: float, *, within: float, instructions: str | None) -> None:
        """The call is to end soon: a goodbye at once, the hang-up by *now + within*."""
        if not (0 <= within < math.inf):
            raise ValueError(f"within = {within!r}; allowed: 0 or more seconds, finite")
        if self._wind_up is None and not self.deadlines.ended:
            self._wind_up = instructions or self._config.time_limit_goodbye
            self.deadlines.wind_up(now, within)

    def _wind_up_goodbye(self, now: float) -> list[TurnAction]:
        instructions = self._wind_up
        if self._state.hangup_pending or instructions is None:
            self.deadlines.fired(Reason.HANGUP_PENDING)  # a goodbye is on its way already
            return []
        # Nothing else starts: what waited to go is dropped, the goodbye goes next.
        self._creates.drop_pending(now, reason=Reason.HANGUP_PENDING)
        self._goodbye_after = self._state.statistics().creates_sent
        goodbye = CreateRequest(response={"instructions": instructions}, label="wind_up_goodbye")
        return self._timer_create(goodbye, now)

    # ------------------------------------------------------------------ the end of the call

    def begin_hang_up(self, now: float) -> None:
        """A hang-up started: no new response starts; deferred creates are dropped."""
        if not self._state.hangup_pending:
            self._state.begin_hangup()
            self._creates.drop_pending(now, reason=Reason.HANGUP_PENDING)

    def hang_up_when_played(self, *, playing: bool, queued: bool, now: float) -> list[TurnAction]:
        """Once the goodbye is all on the phone, arm the fallback; once it played, hang up."""
        state = self._state
        sent_before = self._goodbye_after
        if (
            sent_before is not None
            and not state.hangup_pending
            and not state.response_active
            and not state.create_in_flight
            and state.statistics().creates_sent > sent_before
        ):
            self.begin_hang_up(now)  # the wind-up's goodbye is done: hang up once it played
        if not state.hangup_pending or self.deadlines.ended or state.response_active:
            return []
        if not playing and not state.create_in_flight:
            return self.end_call("goodbye played")
        if not queued:
            # Armed when the last of the goodbye is handed to the phone, not when the model
            # starts it: only the phone's buffer is left to play, so the delay bounds it.
            self.deadlines.arm_fallback(now)
        return []

    def end_call(self, reason: str) -> list[TurnAction]:
        """End the call now (once)."""
        if self.deadlines.ended:
            return []
        self.deadlines.ended = True
        self._state.begin_hangup()
        return [EndCall(reason=reason)]
