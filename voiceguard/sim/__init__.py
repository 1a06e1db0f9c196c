"""The simulator: local, protocol-faithful stand-ins for both peers of a phone call.

* :class:`RealtimeSimulator`: an OpenAI Realtime server (GA names, beta optional) over a real
  WebSocket on 127.0.0.1 or an in-memory transport, with server VAD, strict errors, scripted replies
  and fault injection.
* :class:`CallerSimulator`: Twilio Media Streams and the person calling: paced frames, a playout
  buffer that echoes marks, an echo path, scripted speech, DTMF and hang-up.
* :data:`SCENARIOS` and :func:`run_scenario`: the classic races as named scenarios that state what
  a correct bridge must and must not do.
* :class:`EnergyVad`: the energy VAD that emulates ``server_vad``.

Everything runs in real time over sockets, or in virtual time over :func:`memory_pair` transports
(trio's ``MockClock``), where a scenario gives the same event log on every run. The WebSocket mode
needs the ``websockets`` package (``pip install voiceguard[sim]``).
"""

from __future__ import annotations

from voiceguard.sim.caller import (
    CallerSimulator,
    CallRecord,
    EchoPath,
    HangUp,
    HeardAudio,
    MarkEchoed,
    PressDigit,
    ReceivedMessage,
    ScriptStep,
    Speak,
)
from voiceguard.sim.measures import BridgeCheck, check_bridge, render_checks
from voiceguard.sim.realtime import (
    ConnectionRecord,
    EmittedError,
    EventFault,
    FunctionCall,
    LoggedEvent,
    RealtimeSimulator,
    RealtimeSimulatorStatistics,
    Reply,
    SimulatorAddress,
)
from voiceguard.sim.scenarios import (
    SCENARIOS,
    Bridge,
    ConnectModel,
    Expectation,
    Scenario,
    ScenarioRun,
    UrlBot,
    run_scenario,
    run_scenario_over_websocket,
)
from voiceguard.sim.signals import line_noise, silence, speech_like, tone
from voiceguard.sim.vad import EnergyVad, VadEvent, VadSpeechStarted, VadSpeechStopped
from voiceguard.transports import MemoryTransport, Transport, TransportClosed, memory_pair

__all__ = (
    "SCENARIOS",
    "Bridge",
    "BridgeCheck",
    "CallRecord",
    "CallerSimulator",
    "ConnectModel",
    "ConnectionRecord",
    "EchoPath",
    "EmittedError",
    "EnergyVad",
    "EventFault",
    "Expectation",
    "FunctionCall",
    "HangUp",
    "HeardAudio",
    "LoggedEvent",
    "MarkEchoed",
    "MemoryTransport",
    "PressDigit",
    "RealtimeSimulator",
    "RealtimeSimulatorStatistics",
    "ReceivedMessage",
    "Reply",
    "Scenario",
    "ScenarioRun",
    "ScriptStep",
    "SimulatorAddress",
    "Speak",
    "Transport",
    "TransportClosed",
    "UrlBot",
    "VadEvent",
    "VadSpeechStarted",
    "VadSpeechStopped",
    "check_bridge",
    "line_noise",
    "memory_pair",
    "render_checks",
    "run_scenario",
    "run_scenario_over_websocket",
    "silence",
    "speech_like",
    "tone",
)
