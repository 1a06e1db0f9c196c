"""voiceguard: race-free phone voice agents, by construction."""

import warnings

from voiceguard._deprecated import warn_deprecated
from voiceguard._version import __version__
from voiceguard.config import (
    ACKNOWLEDGEMENTS,
    BackchannelConfig,
    BridgeConfig,
    CalibrationConfig,
    CallScopeConfig,
    CancelConfig,
    CreateConfig,
    GuardConfig,
    HandlerConfig,
    HangupFallbackConfig,
    IdleLadderConfig,
    MaxCallDurationConfig,
    PlayoutConfig,
    ResponseWatchdogConfig,
    StateConfig,
    TurnConfig,
    config_from_mapping,
    config_to_mapping,
)
from voiceguard.core.actions import (
    Deliver,
    EndCall,
    RunTool,
    SendToModel,
    SendToPhone,
    TurnAction,
)
from voiceguard.core.bot import BotSide
from voiceguard.core.bridge import BridgeAction, BridgeCore
from voiceguard.core.floor import Floor, FloorTrigger, floor_diagram
from voiceguard.core.guards.calibration import CalibrationGate, CalibrationStatistics
from voiceguard.core.guards.cancel import CancelArbiter
from voiceguard.core.guards.create import (
    CalibrationStatus,
    CreateOrigin,
    CreatePolicy,
    CreateRequest,
    ReleasedCreate,
    ResponseCreateGuard,
)
from voiceguard.core.playout import HeardPosition, PlayoutBuffer, PlayoutChunk, PlayoutStatistics
from voiceguard.core.record import DecisionCounts, DecisionSink, TimerSink
from voiceguard.core.state import (
    AssistantItem,
    CallState,
    CallStateStatistics,
    LifecycleTrigger,
    ResponseMatch,
    ResponsePhase,
)
from voiceguard.core.turns import TurnEngine
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.errors import (
    CallRefused,
    CallScopeError,
    ConfigError,
    LocalProtocolError,
    ProtocolError,
    RemoteProtocolError,
    StateTransitionError,
    ToolError,
    VoiceguardError,
)
from voiceguard.middleware import GuardedCall
from voiceguard.observe.metrics import CallMetrics, call_metrics
from voiceguard.protocol._dialect import DialectTransport
from voiceguard.runtime._tools import load_tools
from voiceguard.runtime.handler import CallSummary, MediaHandler, ModelConnector
from voiceguard.runtime.scope import (
    CallIdentity,
    CallScope,
    CallScopedTimer,
    CallScopeState,
    CallScopeStatistics,
    TimerCallback,
    current_call_scope,
)
from voiceguard.runtime.timers import HangupFallback, IdleLadder, MaxCallDuration, ResponseWatchdog
from voiceguard.tools import Tool, ToolFunction, tool

__all__ = (
    "ACKNOWLEDGEMENTS",
    "Action",
    "AssistantItem",
    "BackchannelConfig",
    "BotSide",
    "BridgeAction",
    "BridgeConfig",
    "BridgeCore",
    "CalibrationConfig",
    "CalibrationGate",
    "CalibrationStatistics",
    "CalibrationStatus",
    "CallIdentity",
    "CallMetrics",
    "CallRefused",
    "CallScope",
    "CallScopeConfig",
    "CallScopeError",
    "CallScopeState",
    "CallScopeStatistics",
    "CallScopedTimer",
    "CallState",
    "CallStateStatistics",
    "CallSummary",
    "CancelArbiter",
    "CancelConfig",
    "ConfigError",
    "CreateConfig",
    "CreateOrigin",
    "CreatePolicy",
    "CreateRequest",
    "Decision",
    "DecisionCounts",
    "DecisionSink",
    "Deliver",
    "DialectTransport",
    "EndCall",
    "Floor",
    "FloorTrigger",
    "GuardConfig",
    "GuardedCall",
    "HandlerConfig",
    "HangupFallback",
    "HangupFallbackConfig",
    "HeardPosition",
    "IdleLadder",
    "IdleLadderConfig",
    "LifecycleTrigger",
    "LocalProtocolError",
    "MaxCallDuration",
    "MaxCallDurationConfig",
    "MediaHandler",
    "ModelConnector",
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
    "RunTool",
    "SendToModel",
    "SendToPhone",
    "StateConfig",
    "StateTransitionError",
    "TimerCallback",
    "TimerSink",
    "Tool",
    "ToolError",
    "ToolFunction",
    "TurnAction",
    "TurnConfig",
    "TurnEngine",
    "Verdict",
    "VoiceguardError",
    "__version__",
    "call_metrics",
    "config_from_mapping",
    "config_to_mapping",
    "current_call_scope",
    "floor_diagram",
    "load_tools",
    "tool",
)

#: Names removed from the public API, kept importable (with a warning) for one release.
_DEPRECATED = {"Clock", "ClockError", "ManualClock", "SystemClock"}
#: Bridge actions of 0.1: the call's timers are deadlines of the turn engine now.
_OLD_ACTIONS = {"HangUp", "NoteActivity", "StartTimer", "StopTimer", "TimerName"}


def __getattr__(name: str) -> object:
    if name in _OLD_ACTIONS:
        from voiceguard.core import bridge  # noqa: PLC0415 - it warns

        return getattr(bridge, name)
    if name in _DEPRECATED:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from voiceguard import clock  # noqa: PLC0415 - deprecated

        warn_deprecated(
            f"voiceguard.{name}",
            "no API takes a clock object; pass monotonic seconds (now), or a clock() function "
            "to GuardedCall",
        )
        return getattr(clock, name)
    raise AttributeError(f"module 'voiceguard' has no attribute {name!r}")
