"""CancelArbiter: may ``response.cancel`` be sent now, and for which response?"""

from __future__ import annotations

import logging
from typing import final

from voiceguard.config import CancelConfig
from voiceguard.core.record import DecisionCounts, DecisionSink, Recorder
from voiceguard.core.state import CallState, ResponseMatch, ResponsePhase
from voiceguard.decisions import Action, Decision, Reason, Verdict

__all__ = ("CancelArbiter",)

logger = logging.getLogger("voiceguard.guards.cancel")


@final
class CancelArbiter:
    """Allows ``response.cancel`` only when the server will accept it.

    A cancel is allowed only for a response that is active (``response.created`` seen), not done,
    with no cancel for it in flight, and not within :attr:`~voiceguard.CancelConfig.cooldown` of
    the previous cancel. For a barge-in it also knows when the server cancels by itself: with the
    session's ``interrupt_response`` on, the server has already cancelled at ``speech_started``
    and a client cancel would only earn ``response_cancel_not_active``.

    A cancel asked for while the response's create is still in flight is *deferred*: the arbiter
    remembers it, and :meth:`release` allows it as soon as ``response.created`` arrives.

    Args:
        state: The call's state (read, and updated when a cancel is allowed by :meth:`request`).
        config: The cooldown.
        on_decision: Called with every decision (metrics, traces).

    Decisions (action :attr:`~voiceguard.Action.CANCEL`):

    =========================================  ====================================================
    verdict / reason                           when
    =========================================  ====================================================
    ALLOW ``OK``                               a response is active, no cancel in flight, cooldown
                                               over; ``response_id`` is the one to cancel
    SUPPRESS ``SERVER_CANCELS``                barge-in with ``interrupt_response`` on
    SUPPRESS ``NO_ACTIVE_RESPONSE``            no response exists, or the id asked for is not the
                                               active one
    SUPPRESS ``RESPONSE_ALREADY_DONE``         the response (asked for, or the last one) is done
    SUPPRESS ``CANCEL_ALREADY_SENT``           a cancel for the active response is in flight
    SUPPRESS ``AUDIO_COMPLETE``                barge-in after the response generated all its audio
                                               (``response.output_audio.done``): its
                                               ``response.done`` is on the way
    SUPPRESS ``COOLDOWN``                      the previous cancel was sent less than the cooldown
                                               ago
    DEFER ``CREATE_IN_FLIGHT``                 the create was sent but the response is not created
                                               yet; :meth:`release` sends it once it is
    =========================================  ====================================================
    """

    __slots__ = ("_config", "_pending", "_recorder", "_state")

    def __init__(
        self,
        state: CallState,
        *,
        config: CancelConfig | None = None,
        on_decision: DecisionSink | None = None,
    ) -> None:
        self._state = state
        self._config = config if config is not None else CancelConfig()
        self._pending = False
        self._recorder = Recorder(
            guard="cancel_arbiter",
            logger=logger,
            sink=on_decision,
            identity=lambda: (state.call_sid, state.stream_sid),
        )

    @property
    def config(self) -> CancelConfig:
        """The arbiter's configuration."""
        return self._config

    @property
    def pending(self) -> bool:
        """True while a deferred cancel waits for its response to be created."""
        return self._pending

    def decide(
        self, now: float, *, response_id: str | None = None, barge_in: bool = True
    ) -> Decision:
        """Answer "may I cancel now?" without changing anything.

        Args:
            now: Monotonic time in seconds.
            response_id: The response to cancel; the active one when omitted.
            barge_in: True when the cancel is the reaction to the caller's speech (the server
                may already have cancelled, see ``interrupt_response``); False for a cancel the
                bot wants for its own reasons (a guardrail, a hang-up), which the server never
                makes by itself.
        """
        state = self._state

        def decision(verdict: Verdict, reason: Reason, detail: str = "") -> Decision:
            named = response_id
            if named is None:
                named = (
                    state.last_response_id
                    if reason is Reason.RESPONSE_ALREADY_DONE
                    else state.active_response_id
                )
            return Decision(
                action=Action.CANCEL,
                verdict=verdict,
                reason=reason,
                response_id=named,
                detail=detail,
            )

        if barge_in and state.server_interrupts:
            return decision(
                Verdict.SUPPRESS, Reason.SERVER_CANCELS, "interrupt_response is on for this session"
            )
        phase = state.phase
        match = state.match(response_id)
        if match is ResponseMatch.FINISHED:
            return decision(Verdict.SUPPRESS, Reason.RESPONSE_ALREADY_DONE)
        if phase is ResponsePhase.CREATE_REQUESTED:
            return decision(Verdict.DEFER, Reason.CREATE_IN_FLIGHT, "cancel once it is created")
        if phase is ResponsePhase.NONE:
            return decision(Verdict.SUPPRESS, Reason.NO_ACTIVE_RESPONSE)
        if phase is ResponsePhase.DONE:
            if response_id is None and state.last_response_id is not None:
                return decision(Verdict.SUPPRESS, Reason.RESPONSE_ALREADY_DONE)
            return decision(Verdict.SUPPRESS, Reason.NO_ACTIVE_RESPONSE)
        if match is ResponseMatch.OTHER:
            return decision(Verdict.SUPPRESS, Reason.NO_ACTIVE_RESPONSE, "not the active response")
        if phase is ResponsePhase.CANCEL_REQUESTED:
            return decision(Verdict.SUPPRESS, Reason.CANCEL_ALREADY_SENT)
        if barge_in and state.audio_complete:
            return decision(
                Verdict.SUPPRESS, Reason.AUDIO_COMPLETE, "all audio generated; clear and truncate"
            )
        last = state.last_cancel_at
        if last is not None and now < last + self._config.cooldown:
            return decision(
                Verdict.SUPPRESS,
                Reason.COOLDOWN,
                f"previous cancel {1000 * (now - last):.0f} ms ago",
            )
        return decision(Verdict.ALLOW, Reason.OK)

    def request(
        self, now: float, *, response_id: str | None = None, barge_in: bool = True
    ) -> Decision:
        """Decide, count and log; if allowed, record the cancel as sent.

        On :attr:`~voiceguard.Verdict.ALLOW` the caller must send
        ``response.cancel`` for ``decision.response_id`` now: the state already counts it as in
        flight. On :attr:`~voiceguard.Verdict.DEFER` the arbiter holds the request; call
        :meth:`release` after each observed event.
        """
        decision = self.decide(now, response_id=response_id, barge_in=barge_in)
        if decision.allowed:
            self._state.cancel_sent(now=now, response_id=decision.response_id)
            self._pending = False
        elif decision.deferred:
            self._pending = True
        return self._recorder.record(decision, now)

    def release(self, now: float) -> Decision | None:
        """Allow a deferred cancel once its response exists.

        Returns:
            ``None`` if nothing is deferred or it must still wait; otherwise the final decision
            for the deferred cancel (allowed: send it now; suppressed: it is dropped, e.g. the
            response already finished).
        """
        if not self._pending or self._state.phase is ResponsePhase.CREATE_REQUESTED:
            return None
        self._pending = False
        return self.request(now, barge_in=False)

    def withdraw(self) -> bool:
        """Forget a deferred cancel (e.g. the barge-in proved false). True if one was pending."""
        was, self._pending = self._pending, False
        return was

    def statistics(self) -> DecisionCounts:
        """Counts of every decision made so far, by verdict and reason."""
        return self._recorder.snapshot()
