"""voiceguard: race-free phone voice agents, by construction."""

from voiceguard._version import __version__
from voiceguard.call_timers import HangupFallback, IdleLadder, MaxCallDuration, ResponseWatchdog
from voiceguard.clock import Clock, ManualClock, SystemClock
from voiceguard.config import (
    CalibrationConfig,
    CallScopeConfig,
    CancelConfig,
    CreateConfig,
    HangupFallbackConfig,
    IdleLadderConfig,
    MaxCallDurationConfig,
    PlayoutConfig,
    ResponseWatchdogConfig,
    StateConfig,
)
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
from voiceguard.guards._record import DecisionCounts, DecisionSink
from voiceguard.guards.calibration import CalibrationGate, CalibrationStatistics
from voiceguard.guards.cancel import CancelArbiter
from voiceguard.guards.create import (
    CalibrationStatus,
    CreateOrigin,
    CreatePolicy,
    CreateRequest,
    ReleasedCreate,
    ResponseCreateGuard,
)
from voiceguard.playout import HeardPosition, PlayoutBuffer, PlayoutChunk, PlayoutStatistics
from voiceguard.state import (
    AssistantItem,
    CallState,
    CallStateStatistics,
    LifecycleTrigger,
    ResponseMatch,
    ResponsePhase,
)
from voiceguard.timers import (
    CallIdentity,
    CallScope,
    CallScopedTimer,
    CallScopeState,
    CallScopeStatistics,
    TimerCallback,
)

__all__ = (
    "Action",
    "AssistantItem",
    "CalibrationConfig",
    "CalibrationGate",
    "CalibrationStatistics",
    "CalibrationStatus",
    "CallIdentity",
    "CallScope",
    "CallScopeConfig",
    "CallScopeError",
    "CallScopeState",
    "CallScopeStatistics",
    "CallScopedTimer",
    "CallState",
    "CallStateStatistics",
    "CancelArbiter",
    "CancelConfig",
    "Clock",
    "ClockError",
    "ConfigError",
    "CreateConfig",
    "CreateOrigin",
    "CreatePolicy",
    "CreateRequest",
    "Decision",
    "DecisionCounts",
    "DecisionSink",
    "HangupFallback",
    "HangupFallbackConfig",
    "HeardPosition",
    "IdleLadder",
    "IdleLadderConfig",
    "LifecycleTrigger",
    "LocalProtocolError",
    "ManualClock",
    "MaxCallDuration",
    "MaxCallDurationConfig",
    "PlayoutBuffer",
    "PlayoutChunk",
    "PlayoutConfig",
    "PlayoutStatistics",
    "ProtocolError",
    "Reason",
    "ReleasedCreate",
    "RemoteProtocolError",
    "ResponseCreateGuard",
    "ResponseMatch",
    "ResponsePhase",
    "ResponseWatchdog",
    "ResponseWatchdogConfig",
    "StateConfig",
    "StateTransitionError",
    "SystemClock",
    "TimerCallback",
    "Verdict",
    "VoiceguardError",
    "__version__",
)
