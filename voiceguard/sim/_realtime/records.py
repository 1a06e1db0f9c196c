"""What happened on the simulator's connections, and its counters."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, final

__all__ = (
    "ConnectionRecord",
    "Counters",
    "EmittedError",
    "LoggedEvent",
    "RealtimeSimulatorStatistics",
    "SimulatorAddress",
)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class LoggedEvent:
    """One event the simulator received or sent, with audio replaced by its length.

    Attributes:
        time: ``anyio.current_time()`` when it was received or sent.
        direction: ``"received"`` (from the client) or ``"sent"`` (to the client).
        type: The event's ``type``.
        event: The event, with base64 audio replaced by ``"<N bytes>"``.
    """

    time: float
    direction: Literal["received", "sent"]
    type: str
    event: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EmittedError:
    """A protocol ``error`` event the simulator sent.

    Attributes:
        time: When it was emitted.
        code: ``error.code`` (None for errors the real server sends without a code).
        message: ``error.message``.
        param: ``error.param``, if any.
        client_event_id: ``error.event_id``: the client event that caused it, if it had an id.
    """

    time: float
    code: str | None
    message: str
    param: str | None
    client_event_id: str | None


@final
class ConnectionRecord:
    """What happened on one connection to the simulator.

    Attributes:
        index: The connection's number, from 0.
        path: The request path (``/v1/realtime?model=...``), or ``"memory"``.
        beta: Whether the connection spoke beta event names.
        provider: The provider whose dialect the connection spoke: ``"openai"``, ``"azure"`` or
            ``"xai"`` (see :data:`~voiceguard.protocol.PROVIDERS`).
        log: Every event received and sent, in order.
        errors: Every ``error`` event sent.
        open: True while the connection is open.
        dropped: True if the simulator dropped the socket (a scripted fault).
    """

    __slots__ = ("beta", "dropped", "errors", "index", "log", "open", "path", "provider")

    def __init__(self, *, index: int, path: str, beta: bool, provider: str = "openai") -> None:
        self.index = index
        self.path = path
        self.beta = beta
        self.provider = provider
        self.log: list[LoggedEvent] = []
        self.errors: list[EmittedError] = []
        self.open = True
        self.dropped = False

    def sent(self, event_type: str | None = None) -> list[LoggedEvent]:
        """The events sent, optionally only those of one type (GA or beta name)."""
        return [
            e
            for e in self.log
            if e.direction == "sent" and (event_type is None or e.type == event_type)
        ]

    def received(self, event_type: str | None = None) -> list[LoggedEvent]:
        """The events received, optionally only those of one type."""
        return [
            e
            for e in self.log
            if e.direction == "received" and (event_type is None or e.type == event_type)
        ]

    def __repr__(self) -> str:
        return (
            f"<ConnectionRecord {self.index} {self.path!r} events={len(self.log)} "
            f"errors={len(self.errors)} open={self.open}>"
        )


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RealtimeSimulatorStatistics:
    """A snapshot of a :class:`RealtimeSimulator`'s counters.

    Attributes:
        connections_total: Connections accepted so far.
        connections_open: Connections still open.
        errors_total: Protocol ``error`` events sent.
        errors_by_code: Those errors counted by ``error.code`` (``"null"`` for no code).
        responses_created: Responses started (``response.created`` sent).
        responses_completed: Responses that ran to their end.
        responses_cancelled: Responses cancelled (by the client or by server VAD).
        responses_lost: ``response.create`` requests scripted to vanish.
    """

    connections_total: int
    connections_open: int
    errors_total: int
    errors_by_code: Mapping[str, int]
    responses_created: int
    responses_completed: int
    responses_cancelled: int
    responses_lost: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SimulatorAddress:
    """Where a :class:`RealtimeSimulator` listens.

    Attributes:
        host: The address, e.g. ``127.0.0.1``.
        port: The TCP port.
    """

    host: str
    port: int

    @property
    def base_url(self) -> str:
        """The URL to pass as ``AsyncOpenAI(websocket_base_url=...)``, ``ws://HOST:PORT/v1``."""
        return f"ws://{self.host}:{self.port}/v1"

    @property
    def url(self) -> str:
        """The full Realtime URL, ``ws://HOST:PORT/v1/realtime?model=gpt-realtime``."""
        return f"{self.base_url}/realtime?model=gpt-realtime"


@final
@dataclass(slots=True, kw_only=True)
class Counters:
    """The counters a :class:`~voiceguard.sim.realtime.RealtimeSimulator` keeps over all its
    connections (read by its ``statistics()``).

    Attributes:
        errors: ``error`` events sent, by ``error.code`` (``"null"`` for no code).
        created: Responses started.
        completed: Responses that ran to their end.
        cancelled: Responses cancelled.
        lost: ``response.create`` requests scripted to vanish.
    """

    errors: Counter[str] = field(default_factory=Counter)
    created: int = 0
    completed: int = 0
    cancelled: int = 0
    lost: int = 0
