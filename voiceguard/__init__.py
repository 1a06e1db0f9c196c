"""voiceguard: race-free phone voice agents, by construction."""

from voiceguard._version import __version__
from voiceguard.clock import Clock, ManualClock, SystemClock
from voiceguard.config import (
    CalibrationConfig,
    CancelConfig,
    CreateConfig,
    PlayoutConfig,
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

__all__ = (
    "Action",
    "AssistantItem",
    "CalibrationConfig",
    "CalibrationGate",
    "CalibrationStatistics",
    "CalibrationStatus",
    "CallScopeError",
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
    "HeardPosition",
    "LifecycleTrigger",
    "LocalProtocolError",
    "ManualClock",
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
    "StateConfig",
    "StateTransitionError",
    "SystemClock",
    "Verdict",
    "VoiceguardError",
    "__version__",
)
