"""voiceguard: race-free phone voice agents, by construction."""

from voiceguard._version import __version__
from voiceguard.clock import Clock, ManualClock, SystemClock
from voiceguard.config import CancelConfig, CreateConfig, StateConfig
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import (
    CallScopeError,
    ClockError,
    ConfigError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    StateTransitionError,
    VoiceguardError,
)

__all__ = (
    "Action",
    "CallScopeError",
    "CancelConfig",
    "Clock",
    "ClockError",
    "ConfigError",
    "CreateConfig",
    "Decision",
    "LocalProtocolError",
    "ManualClock",
    "ProtocolError",
    "Reason",
    "RemoteProtocolError",
    "StateConfig",
    "StateTransitionError",
    "SystemClock",
    "Verdict",
    "VoiceguardError",
    "__version__",
)
