"""``RealtimeSimulator``: a local, protocol-faithful stand-in for the OpenAI Realtime server.

It speaks the Realtime WebSocket protocol (GA event names; beta names as an option) over a real
WebSocket on 127.0.0.1 or over an in-memory :class:`~voiceguard.transports.base.Transport`, and
keeps the server's rules strictly (the protocol page of the docs):

* ``session.created`` on connect; ``session.update`` is a partial update answered by
  ``session.updated`` with the whole merged configuration.
* An energy VAD (:class:`~voiceguard.sim.vad.EnergyVad`) listens to the appended audio and emits
  ``input_audio_buffer.speech_started`` / ``speech_stopped`` / ``committed`` with
  ``audio_start_ms`` / ``audio_end_ms`` counted in ms of all audio appended this session. With
  ``interrupt_response`` on, a speech start cancels the active response (``response.done`` with
  ``status: "cancelled"``, ``reason: "turn_detected"``); with ``create_response`` on, a speech stop
  creates a response.
* Responses: ``response.created``, the output item, audio deltas generated faster than real time,
  transcript deltas, function calls, and ``response.done`` with the right ``status`` and
  ``status_details.reason``.
* Strict errors: ``response_cancel_not_active``, ``conversation_already_has_active_response``,
  truncation beyond the audio, unknown items, malformed client events (``invalid_request_error``);
  the session stays open after each, as on the real server.
* Scripting and faults: what the model says, function calls (e.g. ``end_call``), lost and stalled
  responses, a socket dropped mid-response, and delayed, duplicated or dropped server events.

Time comes from anyio only, so the same code runs in real time over sockets and in virtual time
(trio's ``MockClock``) over in-memory transports, where a scenario gives the same event log on
every run.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import TypeAlias, final

import anyio
import anyio.abc

from voiceguard.protocol import ModelProvider, model_provider
from voiceguard.sim._realtime.connection import Connection
from voiceguard.sim._realtime.records import (
    ConnectionRecord,
    Counters,
    EmittedError,
    LoggedEvent,
    RealtimeSimulatorStatistics,
    SimulatorAddress,
)
from voiceguard.sim._realtime.script import EventFault, FunctionCall, Reply
from voiceguard.transports import Transport, memory_pair

__all__ = (
    "ConnectionRecord",
    "EmittedError",
    "EventFault",
    "FunctionCall",
    "LoggedEvent",
    "RealtimeSimulator",
    "RealtimeSimulatorStatistics",
    "Reply",
    "ReplySource",
    "SimulatorAddress",
    "handshake_refusal",
)


def handshake_refusal(
    provider: ModelProvider, path: str, headers: Mapping[str, str]
) -> tuple[int, str] | None:
    """How *provider*'s endpoint would refuse a WebSocket handshake, or None if it accepts it.

    Args:
        provider: The provider whose endpoint is simulated.
        path: The request path, with its query string.
        headers: The request headers (lower-case names).

    Returns:
        The HTTP status and body of the refusal: 404 for a path the provider does not serve,
        401 without a key it takes.
    """
    route = path.split("?", 1)[0].rstrip("/")
    paths = (*provider.paths, "/realtime") if provider.name == "openai" else provider.paths
    if route not in paths:
        return 404, f"Not found: {route}\n"
    auth = headers.get("authorization", "")
    has_key = auth.lower().startswith("bearer ") and len(auth) > len("bearer ")
    if provider.key_header == "api-key" and headers.get("api-key", "").strip():
        has_key = True
    protocols = headers.get("sec-websocket-protocol", "")
    if not has_key and "openai-insecure-api-key." not in protocols:
        return 401, "Missing bearer authentication in header\n"
    return None


#: What the model says on a connection, as replies in order or a function of the response number.
ReplySource: TypeAlias = Sequence[Reply] | Callable[[int], Reply]


@final
class RealtimeSimulator:
    """A local OpenAI Realtime server for tests, demos and users' own test suites.

    One simulator serves any number of connections, each with its own session and conversation
    (and its own copy of the reply script). Serve it over a real WebSocket with :meth:`serve` /
    :meth:`running`, or connect in memory with :meth:`connect`.

    Args:
        replies: What the model does for each response on a connection, in order: a sequence of
            :class:`Reply` (after the last, *default_reply* is used) or a function of the
            response number (0, 1, ...) that returns one.
        default_reply: The reply used when *replies* is exhausted (a default
            :class:`Reply` when None).
        beta: Speak beta event names (``response.audio.delta``, ...) and the beta session
            shape; None (the default) picks beta for a connection that sends the
            ``OpenAI-Beta: realtime=v1`` header, GA otherwise.
        seed: Seed of ids and generated audio; the same seed gives the same bytes.
        audio_speed: How many times faster than real time audio is generated (the real service
            is faster than real time too).
        first_audio_delay: Seconds from ``response.created`` to the first output item.
        delta_ms: Milliseconds of audio per ``response.output_audio.delta``.
        audio_level_dbfs: Level of the generated speech-like audio.
        latency: Extra seconds before each server event is sent (on top of the transport's).
        faults: Tampering with server events (delay, duplicate, drop); see :class:`EventFault`.
        model: The model name reported in the session.
        voice: The default voice reported in the session.
        provider: Whose dialect to speak (:data:`~voiceguard.protocol.PROVIDERS`):
            ``"openai"`` (the default), ``"azure"`` (the same protocol; served on Azure's path
            ``/openai/v1/realtime`` with an ``api-key`` header or a bearer token) or ``"xai"``
            (xAI's session shape: ``voice`` and ``turn_detection`` at the session's top level,
            OpenAI-only fields ignored, ``conversation.created`` before ``session.created``).

    Raises:
        ValueError: On an option out of range.

    Example:
        >>> sim = RealtimeSimulator(replies=[Reply(text="Hello! How can I help?")])
        >>> sim.statistics().connections_total
        0
    """

    def __init__(
        self,
        *,
        replies: ReplySource = (),
        default_reply: Reply | None = None,
        beta: bool | None = None,
        seed: int = 0,
        audio_speed: float = 4.0,
        first_audio_delay: float = 0.15,
        delta_ms: int = 100,
        audio_level_dbfs: float = -16.0,
        latency: float = 0.0,
        faults: Sequence[EventFault] = (),
        model: str = "gpt-realtime",
        voice: str = "marin",
        provider: str = "openai",
    ) -> None:
        if not (math.isfinite(audio_speed) and audio_speed > 0):
            raise ValueError(f"audio_speed = {audio_speed!r}; allowed: a finite number > 0")
        delta: object = delta_ms  # checked at run time: callers may not be type-checked
        if not (isinstance(delta, int) and 20 <= delta <= 5000 and delta % 20 == 0):
            raise ValueError(f"delta_ms = {delta_ms!r}; allowed: a multiple of 20 from 20 to 5000")
        for name, value in (("first_audio_delay", first_audio_delay), ("latency", latency)):
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} = {value!r}; allowed: a finite number of seconds >= 0")
        self.provider = model_provider(provider)
        self.replies = replies
        self.default_reply = default_reply if default_reply is not None else Reply()
        self.beta = beta
        self.seed = seed
        self.audio_speed = float(audio_speed)
        self.first_audio_delay = float(first_audio_delay)
        self.delta_ms = delta_ms
        self.audio_level_dbfs = audio_level_dbfs
        self.latency = float(latency)
        self.faults = tuple(faults)
        self.model = model
        self.voice = voice
        self._records: list[ConnectionRecord] = []
        self._counters = Counters()

    @property
    def delta_seconds(self) -> float:
        """Seconds between two deltas at the simulator's *audio_speed*."""
        return self.delta_ms / 1000 / self.audio_speed

    @property
    def connections(self) -> tuple[ConnectionRecord, ...]:
        """Every connection so far, open or closed, in order."""
        return tuple(self._records)

    def statistics(self) -> RealtimeSimulatorStatistics:
        """A snapshot of the counters (errors emitted, connections open, responses)."""
        counters = self._counters
        return RealtimeSimulatorStatistics(
            connections_total=len(self._records),
            connections_open=sum(1 for r in self._records if r.open),
            errors_total=sum(counters.errors.values()),
            errors_by_code=dict(counters.errors),
            responses_created=counters.created,
            responses_completed=counters.completed,
            responses_cancelled=counters.cancelled,
            responses_lost=counters.lost,
        )

    def _reply(self, number: int) -> Reply:
        source = self.replies
        if callable(source):
            return source(number)
        if number < len(source):
            return source[number]
        return self.default_reply

    async def serve_connection(
        self,
        transport: Transport,
        *,
        path: str = "memory",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        """Serve one client connection until it closes (or a scripted fault drops it).

        Args:
            transport: The server's end of the connection.
            path: The request path, for the record.
            headers: The request headers (lower-case names); ``openai-beta: realtime=v1``
                selects beta names when the simulator's *beta* is None.
        """
        beta = self.beta
        if beta is None:
            beta = "realtime=v1" in (headers or {}).get("openai-beta", "")
        record = ConnectionRecord(
            index=len(self._records), path=path, beta=beta, provider=self.provider.name
        )
        self._records.append(record)
        try:
            await Connection(self, self._counters, self._reply, transport, record).run()
        finally:
            record.open = False
            with anyio.CancelScope(shield=True):
                await transport.aclose()

    @asynccontextmanager
    async def connect(
        self, *, latency: float = 0.0, beta: bool = False
    ) -> AsyncIterator[Transport]:
        """Connect in memory: yields the client's end; the server runs until the block ends.

        Args:
            latency: One-way network latency of the in-memory link, in seconds.
            beta: Behave as if the client sent ``OpenAI-Beta: realtime=v1``.

        Yields:
            The client's end of the connection; send client events as JSON text.
        """
        client, server = memory_pair(latency=latency, names=("client", "realtime-sim"))
        headers = {"openai-beta": "realtime=v1"} if beta else {}
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: self.serve_connection(server, path="memory", headers=headers))
            try:
                yield client
            finally:
                await client.aclose()

    async def serve(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        task_status: anyio.abc.TaskStatus[SimulatorAddress] = anyio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen for WebSocket clients until cancelled (needs ``voiceguard[sim]``).

        Accepts the provider's path (``/v1/realtime``, and ``/realtime`` as the ``openai`` SDK
        asks; Azure: ``/openai/v1/realtime``; any query string) with any key the provider takes
        (``Authorization: Bearer``; Azure also ``api-key``); refuses other paths (404) and
        requests without a key (401), as the real service would (:func:`handshake_refusal`).

        Args:
            host: The address to listen on.
            port: The TCP port; 0 picks a free one.
            task_status: Receives the :class:`SimulatorAddress` once listening.
        """
        from voiceguard.transports.websocket import (  # noqa: PLC0415 - websockets is optional
            HandshakeRejected,
            WebSocketRequest,
            WebSocketTransport,
            serve_websocket,
        )

        def accept(request: WebSocketRequest) -> None:
            refusal = handshake_refusal(self.provider, request.path, request.headers)
            if refusal is not None:
                raise HandshakeRejected(*refusal)

        async def handler(transport: WebSocketTransport) -> None:
            request = transport.request
            assert request is not None
            await self.serve_connection(transport, path=request.path, headers=request.headers)

        async with anyio.create_task_group() as tg:
            bound = await tg.start(
                lambda task_status: serve_websocket(
                    handler,
                    host=host,
                    port=port,
                    accept=accept,
                    subprotocols=("realtime",),
                    task_status=task_status,
                )
            )
            task_status.started(SimulatorAddress(host=host, port=bound))

    @asynccontextmanager
    async def running(
        self, *, host: str = "127.0.0.1", port: int = 0
    ) -> AsyncIterator[SimulatorAddress]:
        """Serve over WebSocket for the duration of an ``async with`` block.

        Args:
            host: The address to listen on.
            port: The TCP port; 0 picks a free one.

        Yields:
            Where it listens; pass :attr:`SimulatorAddress.base_url` to the ``openai`` SDK.
        """
        async with anyio.create_task_group() as tg:
            address = await tg.start(
                lambda task_status: self.serve(host=host, port=port, task_status=task_status)
            )
            try:
                yield address
            finally:
                tg.cancel_scope.cancel()

    def __repr__(self) -> str:
        stats = self.statistics()
        return (
            f"<RealtimeSimulator connections={stats.connections_total} "
            f"open={stats.connections_open} errors={stats.errors_total}>"
        )
