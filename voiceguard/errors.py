"""Exceptions raised by voiceguard.

Expected races between the two peers (a cancel that would arrive after ``response.done``, a create
while a response runs, a timer of a finished call) are never exceptions: the guards answer them with
a :class:`~voiceguard.Decision`. Exceptions are for misuse by the caller and for peers that break
the protocol, and each one says whose fault it is::

    VoiceguardError
    ├── ConfigError                 a configuration value is out of range (also ValueError)
    ├── ProtocolError
    │   ├── RemoteProtocolError     a peer sent a malformed message (also ValueError)
    │   └── LocalProtocolError      the caller asked to build an invalid message (also ValueError)
    ├── StateTransitionError        the caller reported an action the call state forbids
    ├── CallScopeError              a call scope or its timers were misused (also RuntimeError)
    └── CallRefused                 a model connector turned a started call away (capacity, token)

Every exception leaves the object that raised it unchanged.
"""

from __future__ import annotations

import warnings
from typing import Literal

from voiceguard._deprecated import warn_deprecated

__all__ = (
    "CallRefused",
    "CallScopeError",
    "ConfigError",
    "LocalProtocolError",
    "ProtocolError",
    "RemoteProtocolError",
    "StateTransitionError",
    "ToolError",
    "VoiceguardError",
)


class VoiceguardError(Exception):
    """Base class of every exception voiceguard raises on purpose."""


class ConfigError(VoiceguardError, ValueError):
    """A configuration value is invalid.

    Attributes:
        field: Dotted name of the offending field, e.g. ``"CancelConfig.cooldown"``.
        value: The value that was rejected.
        allowed: Human-readable description of what is allowed, e.g. ``"0 <= value <= 5"``.
    """

    def __init__(self, field: str, value: object, allowed: str) -> None:
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{field} = {value!r} is not allowed; allowed: {allowed}")


class ToolError(VoiceguardError, ValueError):
    """A tool cannot be defined or loaded (see :mod:`voiceguard.tools`); the message names the
    tool, the parameter if any, and what to change.

    .. versionadded:: 0.2.0
    """


class ProtocolError(VoiceguardError):
    """Base class of :class:`RemoteProtocolError` and :class:`LocalProtocolError`."""


class RemoteProtocolError(ProtocolError, ValueError):
    """A peer sent a message that violates its protocol.

    The message names the message type, the field and what was wrong, e.g.
    ``twilio 'media': field 'media.payload': not valid base64``.

    Attributes:
        peer: ``"realtime"`` (the model side) or ``"twilio"`` (the phone side).
        message_type: The message's ``type`` / ``event`` string, or ``None`` if it had none.
        field: Dotted path of the offending field, or ``None`` when the whole message is wrong.
        problem: What was wrong with it.
    """

    def __init__(
        self,
        *,
        peer: Literal["realtime", "twilio"],
        message_type: str | None,
        field: str | None,
        problem: str,
    ) -> None:
        self.peer = peer
        self.message_type = message_type
        self.field = field
        self.problem = problem
        what = f"{peer} {message_type!r}" if message_type is not None else f"{peer} message"
        where = f": field {field!r}" if field is not None else ""
        super().__init__(f"{what}{where}: {problem}")


class LocalProtocolError(ProtocolError, ValueError):
    """The caller asked to build a message the protocol does not allow (a bug in the caller)."""


class StateTransitionError(VoiceguardError):
    """The caller reported an action that the call's state does not allow.

    Raised, for example, when a ``response.cancel`` is reported as sent while no response is active
    (the :class:`~voiceguard.CancelArbiter` would have refused it). The state is left unchanged.

    Attributes:
        state: Name of the state the call was in.
        event: Name of the reported action or event.
    """

    def __init__(self, *, state: str, event: str, detail: str) -> None:
        self.state = state
        self.event = event
        self.detail = detail
        super().__init__(f"{event} is not allowed in state {state}: {detail}")


class CallScopeError(VoiceguardError, RuntimeError):
    """A call scope or one of its timers was used in a way that cannot be right.

    The message says which misuse happened (entered twice, re-entered after exit, timer armed on a
    closed or closing scope, ...).
    """


class CallRefused(VoiceguardError):
    """A :data:`~voiceguard.ModelConnector` turns a started call away before any model session.

    Raised by the connector when the call may not go on: the server is full, the stream's token
    is missing, expired or used already. :class:`~voiceguard.MediaHandler` ends the call with
    ``"start refused: <reason>"`` and closes the phone's socket with :attr:`close_code`; it is
    not counted as a malformed message (the phone did nothing wrong).

    Args:
        reason: Why, in words for the log (never a secret).
        close_code: The WebSocket close code the phone gets: 1008 (policy violation) by
            default, 1013 (try again later) for a full server.

    Attributes:
        reason: Why.
        close_code: The close code.

    .. versionadded:: 0.2.0
    """

    def __init__(self, reason: str, *, close_code: int = 1008) -> None:
        self.reason = reason
        self.close_code = close_code
        super().__init__(reason)


def __getattr__(name: str) -> object:
    # ClockError went with the clocks (deprecated in 0.2.0, see voiceguard.clock).
    if name == "ClockError":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from voiceguard.clock import ClockError  # noqa: PLC0415 - deprecated

        warn_deprecated(
            "voiceguard.errors.ClockError",
            "it goes with the clocks; pass monotonic seconds (now) instead",
        )
        return ClockError
    raise AttributeError(f"module 'voiceguard.errors' has no attribute {name!r}")
