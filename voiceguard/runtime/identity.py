"""Who a call is, and where its scope is in its life: what a call-scoped timer checks when it fires.

A :class:`~voiceguard.runtime.scope.CallScopedTimer` captures the scope's :class:`CallIdentity`
when it is armed; when its delay is up it runs its callback only if the scope is still
:attr:`CallScopeState.OPEN` and still has that identity. Both are re-exported by
:mod:`voiceguard.runtime.scope`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import final

__all__ = ("CallIdentity", "CallScopeState")


@final
class CallScopeState(enum.Enum):
    """Where a :class:`CallScope` is in its life. It only moves forward."""

    #: Created, not entered yet. Timers may be made, not armed.
    NEW = "NEW"
    #: Inside ``async with``: timers may be armed and tasks started.
    OPEN = "OPEN"
    #: :meth:`CallScope.close` was called or the block is being left: nothing new starts, timers
    #: and tasks are being cancelled, the close callbacks run.
    CLOSING = "CLOSING"
    #: The block has been left; every task of the call has finished.
    CLOSED = "CLOSED"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CallIdentity:
    """Who a call is: what a timer captures when it is armed and compares when it fires.

    Attributes:
        call_sid: Twilio's call SID (``CA...``), or ``None`` while it is not known yet.
        stream_sid: Twilio's media stream SID (``MZ...``), or ``None`` while it is not known yet.
        generation: Counts the identity changes of one scope (see :meth:`CallScope.rebind`), so
            two identities with the same SIDs are still told apart.

    .. versionadded:: 0.1.0
    """

    call_sid: str | None = None
    stream_sid: str | None = None
    generation: int = 0

    def __str__(self) -> str:
        return f"call {self.call_sid} stream {self.stream_sid} generation {self.generation}"
