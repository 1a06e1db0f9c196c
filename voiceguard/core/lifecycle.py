"""The response lifecycle of a call, as a table.

The default conversation of a Realtime session has at most one active response. Where its
lifecycle stands is a :class:`ResponsePhase`, and it moves only through :data:`TRANSITIONS`, a
table from ``(phase, trigger, which response)`` to the next phase, in the style of h11's state
machine. Triggers that come from the peer are never illegal (a duplicate, late or unknown
``response.done`` keeps the phase); the triggers the bridge reports (a create or cancel it sent, a
create it gave up on) map to a ``str`` saying why when the table forbids them.
:class:`~voiceguard.CallState` runs on this table; the call-state page draws it.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, final

__all__ = (
    "ACTIVE_PHASES",
    "CANCEL_REJECTED_CODE",
    "CREATE_REJECTED_CODE",
    "IDLE_PHASES",
    "TRANSITIONS",
    "LifecycleTrigger",
    "ResponseMatch",
    "ResponsePhase",
)

#: Error codes of the Realtime API that reject a client ``response.create`` / ``response.cancel``
#: (the remote triggers :attr:`LifecycleTrigger.CREATE_REJECTED` and
#: :attr:`LifecycleTrigger.CANCEL_REJECTED`).
CREATE_REJECTED_CODE: Final = "conversation_already_has_active_response"
CANCEL_REJECTED_CODE: Final = "response_cancel_not_active"


@final
class ResponsePhase(enum.Enum):
    """Where the response lifecycle of the default conversation stands."""

    #: No response has existed in this call yet.
    NONE = "NONE"
    #: A ``response.create`` was sent; its ``response.created`` has not arrived.
    CREATE_REQUESTED = "CREATE_REQUESTED"
    #: A response is active (``response.created`` arrived, ``response.done`` did not).
    CREATED = "CREATED"
    #: A ``response.cancel`` for the active response was sent; its ``response.done`` is not here.
    CANCEL_REQUESTED = "CANCEL_REQUESTED"
    #: No response is active; the last create or response has ended (done, or rejected).
    DONE = "DONE"


@final
class LifecycleTrigger(enum.Enum):
    """What moves the response lifecycle."""

    #: The caller sent ``response.create`` (local).
    CREATE_SENT = "CREATE_SENT"
    #: The caller sent ``response.cancel`` (local).
    CANCEL_SENT = "CANCEL_SENT"
    #: The server sent ``response.created`` (remote).
    RESPONSE_CREATED = "RESPONSE_CREATED"
    #: The server sent ``response.done`` (remote).
    RESPONSE_DONE = "RESPONSE_DONE"
    #: The server rejected the caller's create (remote ``error``).
    CREATE_REJECTED = "CREATE_REJECTED"
    #: The caller gave up waiting for a create's ``response.created`` (local: a lost request).
    CREATE_ABANDONED = "CREATE_ABANDONED"
    #: The server rejected the caller's cancel because nothing was active (remote ``error``).
    CANCEL_REJECTED = "CANCEL_REJECTED"


@final
class ResponseMatch(enum.Enum):
    """How the response a trigger names relates to what the state knows."""

    #: The trigger names no response, or the active one.
    ACTIVE = "ACTIVE"
    #: The trigger names a response that is already finished.
    FINISHED = "FINISHED"
    #: The trigger names a response the state has never seen.
    OTHER = "OTHER"


_P = ResponsePhase
_T = LifecycleTrigger
_M = ResponseMatch
#: The phases in which no response is active and none is being created.
IDLE_PHASES: Final = (_P.NONE, _P.DONE)
#: The phases in which a response is active: created and not done, possibly being cancelled.
ACTIVE_PHASES: Final = (_P.CREATED, _P.CANCEL_REQUESTED)


def _build_transitions() -> Mapping[
    tuple[ResponsePhase, LifecycleTrigger, ResponseMatch], ResponsePhase | str
]:
    """The lifecycle table. A ``str`` value is an illegal move and says why."""
    table: dict[tuple[ResponsePhase, LifecycleTrigger, ResponseMatch], ResponsePhase | str] = {}
    for phase in ResponsePhase:
        for match in ResponseMatch:
            # Local: what the guards would have refused.
            if phase in IDLE_PHASES:
                table[phase, _T.CREATE_SENT, match] = _P.CREATE_REQUESTED
                table[phase, _T.CANCEL_SENT, match] = "no response is active"
            elif phase is _P.CREATE_REQUESTED:
                table[phase, _T.CREATE_SENT, match] = "a response.create is already in flight"
                table[phase, _T.CANCEL_SENT, match] = (
                    "the response has not been created yet; nothing can be cancelled"
                )
            else:
                table[phase, _T.CREATE_SENT, match] = "a response is active"
                if phase is _P.CANCEL_REQUESTED:
                    table[phase, _T.CANCEL_SENT, match] = "a response.cancel is already in flight"
                elif match is _M.ACTIVE:
                    table[phase, _T.CANCEL_SENT, match] = _P.CANCEL_REQUESTED
                elif match is _M.FINISHED:
                    table[phase, _T.CANCEL_SENT, match] = "that response is already done"
                else:
                    table[phase, _T.CANCEL_SENT, match] = "that response is not the active one"

            if phase is _P.CREATE_REQUESTED:
                table[phase, _T.CREATE_ABANDONED, match] = _P.DONE
            else:
                table[phase, _T.CREATE_ABANDONED, match] = "no response.create is in flight"

            # Remote: never illegal; anomalies keep the phase.
            # response.created: a finished id is a late duplicate; any other id becomes active.
            if match is _M.FINISHED or (phase in ACTIVE_PHASES and match is _M.ACTIVE):
                table[phase, _T.RESPONSE_CREATED, match] = phase
            else:
                table[phase, _T.RESPONSE_CREATED, match] = _P.CREATED
            # response.done ends the active response; one never seen created ends a pending create
            # (its response.created was lost); a finished id is a duplicate.
            if (phase in ACTIVE_PHASES and match is _M.ACTIVE) or (
                phase is _P.CREATE_REQUESTED and match is _M.OTHER
            ):
                table[phase, _T.RESPONSE_DONE, match] = _P.DONE
            else:
                table[phase, _T.RESPONSE_DONE, match] = phase
            # Rejections: a rejected create ends the request; "cancel not active" means the
            # response we wanted to cancel has already ended.
            if phase is _P.CREATE_REQUESTED:
                table[phase, _T.CREATE_REJECTED, match] = _P.DONE
            else:
                table[phase, _T.CREATE_REJECTED, match] = phase
            if phase is _P.CANCEL_REQUESTED:
                table[phase, _T.CANCEL_REJECTED, match] = _P.DONE
            else:
                table[phase, _T.CANCEL_REJECTED, match] = phase
    return MappingProxyType(table)


#: ``(phase, trigger, match) -> next phase``, or a ``str`` saying why the move is illegal.
#: Only the triggers the bridge reports (``CREATE_SENT``, ``CANCEL_SENT``, ``CREATE_ABANDONED``)
#: can be illegal.
TRANSITIONS: Final = _build_transitions()
