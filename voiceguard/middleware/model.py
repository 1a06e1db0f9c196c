"""The model side of the middleware: a bot's connection to the Realtime API, guarded."""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar, final, overload

import anyio

from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import dumps, parse_realtime_event
from voiceguard.transports import TransportClosed

if TYPE_CHECKING:
    from voiceguard.middleware.call import GuardedCall

__all__ = (
    "CloseErrors",
    "GuardedChannel",
    "GuardedModel",
    "GuardedRealtimeConnection",
    "GuardedWebSocket",
)

logger = logging.getLogger("voiceguard.middleware")

#: Exceptions of a model connection's receive that mean it closed cleanly (iteration then ends).
CloseErrors: TypeAlias = "tuple[type[BaseException], ...]"

_Raw = TypeVar("_Raw")
_H = TypeVar("_H", bound=Callable[..., Any])
_TIMED_OUT: Final = object()
#: The shortest wait for the model's next message when a guard deadline is already due.
_MIN_WAIT: Final = 0.001


def _clean_close_types() -> CloseErrors:
    """Exceptions that mean "the model closed the connection cleanly": iteration just ends."""
    types: list[type[BaseException]] = []
    try:
        from websockets.exceptions import ConnectionClosedOK  # noqa: PLC0415 - optional extra
    except ImportError:  # pragma: no cover - websockets is in every extra that talks to a model
        pass
    else:
        types.append(ConnectionClosedOK)
    return tuple(types)


class GuardedModel(Generic[_Raw]):
    """The model connection of one call, with the guards in between (base of the adapters).

    Outgoing ``response.cancel``, ``response.create`` and ``conversation.item.truncate`` pass
    through the guards (sent, changed, suppressed with a logged reason, or deferred and sent
    later); everything the model sends is observed into the call's state before the bot sees it,
    and in turn control, echo and noise are hidden from the bot. Everything else passes
    untouched.

    Receiving must be cancel-safe (a cancelled receive loses no message): the adapter waits for
    the model's next message only until the guards' next deadline. ``websockets`` and the
    ``openai`` SDK are.
    """

    def __init__(
        self,
        call: GuardedCall,
        *,
        send: Callable[[Any], Awaitable[object]],
        receive: Callable[[], Awaitable[_Raw]],
        closed: CloseErrors = (),
    ) -> None:
        self._call = call
        self._send = send
        self._receive = receive
        self._closed = (*_clean_close_types(), *closed)
        self._ready: deque[_Raw] = deque()
        call.attach_model(self)

    @property
    def call(self) -> GuardedCall:
        """The guarded call this connection belongs to."""
        return self._call

    # ------------------------------------------------------------------ sending

    def _view(self, message: object) -> Mapping[str, Any] | None:
        """The outgoing *message* as a mapping to inspect (None: pass it on unseen)."""
        if isinstance(message, Mapping):
            return message
        if isinstance(message, (str, bytes, bytearray)):
            try:
                data = json.loads(message)
            except (ValueError, UnicodeDecodeError):
                return None  # not JSON: the model will say so; it is the bot's message
            return data if isinstance(data, dict) else None
        return None

    def _encode(self, message: Mapping[str, Any]) -> object:
        """A message of the guard, in the form the wrapped connection sends."""
        return dumps(message)

    async def send(self, message: Any) -> None:
        """Send *message* to the model through the guards.

        Args:
            message: What the wrapped connection's ``send`` takes (JSON text, a dict, an SDK
                event model, ...).
        """
        view = self._view(message)
        if view is None:
            await self._send(message)  # not JSON: the model will say so; it is the bot's
            return
        step = self._call.guard.to_model(view, self._call.now())
        await self._call.carry_out(step, original=(view, message))

    async def send_direct(self, message: Mapping[str, Any]) -> None:
        """Send a message the guards already decided on (the guard's own, or the bot's as it
        goes). Bots use :meth:`send`."""
        await self._send(self._encode(message))

    async def send_original(self, message: object) -> None:
        """Send the bot's message exactly as the bot wrote it (the guards let it pass)."""
        await self._send(message)

    def deliver(self, events: Sequence[object]) -> None:
        """Queue the model's *events* for the bot (they come out of :meth:`recv` in order)."""
        self._ready.extend(events)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ receiving

    async def recv(self) -> _Raw:
        """The model's next message that the bot should see (its events observed first).

        When the connection closes, this raises what the wrapped connection's receive raises.
        """
        call = self._call
        guard = call.guard
        while True:
            if self._ready:
                return self._ready.popleft()
            now = call.now()
            deadline = guard.next_deadline()
            if deadline is None:
                raw: object = await self._receive()
            else:
                raw = _TIMED_OUT
                with anyio.move_on_after(max(_MIN_WAIT, deadline - now)):
                    raw = await self._receive()
                if raw is _TIMED_OUT:
                    await call.carry_out(guard.on_tick(call.now()))
                    continue
            try:
                event = parse_realtime_event(raw, audio_format=guard.state.audio_format)
            except RemoteProtocolError as exc:
                logger.warning(
                    "model message not understood, handed to the bot as it is: %s",
                    exc,
                    extra={"call_sid": guard.state.call_sid, "stream_sid": guard.state.stream_sid},
                )
                return raw  # type: ignore[return-value]
            await call.carry_out(guard.from_model(event, raw, call.now()))

    def __aiter__(self) -> GuardedModel[_Raw]:
        return self

    async def __anext__(self) -> _Raw:
        try:
            return await self.recv()
        except self._closed:
            raise StopAsyncIteration from None


@final
class GuardedWebSocket(GuardedModel[Any]):
    """A raw ``websockets`` connection to the Realtime API, guarded.

    Use it where the bot used the connection: ``await ws.send(json.dumps(...))``,
    ``await ws.recv()`` and ``async for message in ws`` go through the guards; every other
    attribute (``close``, ``state``, ...) is the wrapped connection's.

    Args:
        call: The guarded call.
        websocket: The connection (anything with ``send(text)`` and a cancel-safe ``recv()``).

    Attributes:
        websocket: The wrapped connection.
    """

    def __init__(self, call: GuardedCall, websocket: Any) -> None:
        super().__init__(call, send=websocket.send, receive=websocket.recv)
        self.websocket = websocket

    def __getattr__(self, name: str) -> Any:
        return getattr(self.websocket, name)


@final
class GuardedChannel(GuardedModel[Any]):
    """Any pair of ``send``/``receive`` coroutines speaking JSON text to the Realtime API, guarded.

    Args:
        call: The guarded call.
        send: Sends one text message to the model.
        receive: Returns the model's next text message; must be cancel-safe.
        closed: Exceptions of *receive* that mean a clean close (``async for`` then ends);
            ``websockets``' ``ConnectionClosedOK`` and voiceguard's ``TransportClosed`` always do.
    """

    def __init__(
        self,
        call: GuardedCall,
        send: Callable[[str], Awaitable[object]],
        receive: Callable[[], Awaitable[Any]],
        *,
        closed: CloseErrors = (),
    ) -> None:
        super().__init__(call, send=send, receive=receive, closed=(TransportClosed, *closed))


@final
class GuardedRealtimeConnection(GuardedModel[Any]):
    """The ``openai`` SDK's ``AsyncRealtimeConnection``, guarded.

    ``send``, ``recv``, ``async for event in conn``, the typed helpers
    (``conn.response.cancel()``, ``conn.response.create()``,
    ``conn.conversation.item.truncate(...)``, ``conn.session.update(...)``, ...) and push-style
    ``conn.on(type)(handler)`` with ``await conn.dispatch_events()`` all go through the guards;
    events are the SDK's own objects. Other attributes are the wrapped connection's.

    Not covered: ``recv_bytes()`` (raw frames, unseen by the guards: use ``recv()``) and the
    SDK's reconnection (``on_reconnecting``): a reconnected session is a new session whose state
    the guards would not know, so the guarded iteration ends or raises where the SDK would
    reconnect.

    Args:
        call: The guarded call.
        connection: The SDK connection (``await client.realtime.connect(...).enter()``, or the
            ``conn`` of ``async with client.realtime.connect(...) as conn``).

    Attributes:
        connection: The wrapped SDK connection.
        session: The SDK's ``session`` helpers, sending through the guards.
        response: The SDK's ``response`` helpers (``create``, ``cancel``), through the guards.
        input_audio_buffer: The SDK's ``input_audio_buffer`` helpers, through the guards.
        conversation: The SDK's ``conversation.item`` helpers (``truncate``, ...), through the
            guards.
        output_audio_buffer: The SDK's ``output_audio_buffer`` helpers, through the guards.
    """

    def __init__(self, call: GuardedCall, connection: Any) -> None:
        super().__init__(call, send=connection.send, receive=connection.recv)
        self.connection = connection
        from openai.resources.realtime.realtime import (  # noqa: PLC0415 - the openai extra
            AsyncRealtimeConversationResource,
            AsyncRealtimeInputAudioBufferResource,
            AsyncRealtimeOutputAudioBufferResource,
            AsyncRealtimeResponseResource,
            AsyncRealtimeSessionResource,
        )

        # The SDK's helpers, bound to this object so that what they send passes the guards.
        self.session = AsyncRealtimeSessionResource(self)  # type: ignore[arg-type]
        self.response = AsyncRealtimeResponseResource(self)  # type: ignore[arg-type]
        self.input_audio_buffer = AsyncRealtimeInputAudioBufferResource(self)  # type: ignore[arg-type]
        self.conversation = AsyncRealtimeConversationResource(self)  # type: ignore[arg-type]
        self.output_audio_buffer = AsyncRealtimeOutputAudioBufferResource(self)  # type: ignore[arg-type]
        self._handlers: dict[str, list[tuple[Callable[..., Any], bool]]] = {}

    def _view(self, message: object) -> Mapping[str, Any] | None:
        to_dict = getattr(message, "to_dict", None)
        if callable(to_dict):  # an SDK event model
            data = to_dict()
            return data if isinstance(data, Mapping) else None
        if isinstance(message, Mapping):
            # The SDK's typed helpers leave its "not given" markers in (it drops them when it
            # sends); the guards judge the message as it will go.
            return _given(message)
        return super()._view(message)

    def _encode(self, message: Mapping[str, Any]) -> object:
        return dict(message)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)

    @overload
    def on(self, event_type: str) -> Callable[[_H], _H]: ...
    @overload
    def on(self, event_type: str, handler: Callable[..., Any]) -> GuardedRealtimeConnection: ...
    def on(self, event_type: str, handler: Callable[..., Any] | None = None) -> Any:
        """Register *handler* for *event_type* (``"event"``: every event), as the SDK does.

        With no *handler*, a decorator: ``@conn.on("input_audio_buffer.speech_started")``.
        """
        return self._register(event_type, handler, once=False)

    @overload
    def once(self, event_type: str) -> Callable[[_H], _H]: ...
    @overload
    def once(self, event_type: str, handler: Callable[..., Any]) -> GuardedRealtimeConnection: ...
    def once(self, event_type: str, handler: Callable[..., Any] | None = None) -> Any:
        """Like :meth:`on`, for the first such event only."""
        return self._register(event_type, handler, once=True)

    def off(self, event_type: str, handler: Callable[..., Any]) -> GuardedRealtimeConnection:
        """Remove a handler registered with :meth:`on` or :meth:`once`."""
        handlers = self._handlers.get(event_type, [])
        for index, (registered, _) in enumerate(handlers):
            if registered is handler:
                del handlers[index]
                break
        return self

    def _register(self, event_type: str, handler: Callable[..., Any] | None, *, once: bool) -> Any:
        if handler is not None:
            self._handlers.setdefault(event_type, []).append((handler, once))
            return self

        def decorator(fn: Callable[..., Any]) -> Callable[..., Any]:
            self._handlers.setdefault(event_type, []).append((fn, once))
            return fn

        return decorator

    async def dispatch_events(self) -> None:
        """Receive events and run their handlers until the connection closes (as the SDK does).

        Raises:
            openai.OpenAIError: On an ``error`` event with no handler for it (the SDK's rule).
        """
        from openai import OpenAIError  # noqa: PLC0415 - the openai extra

        async for event in self:
            event_type = getattr(event, "type", None)
            specific = list(self._handlers.get(str(event_type), []))
            generic = list(self._handlers.get("event", []))
            if event_type == "error" and not specific and not generic:
                raise OpenAIError(f"WebSocket error: {event}")
            for kind, handlers in ((str(event_type), specific), ("event", generic)):
                for handler, once in handlers:
                    if once:
                        self.off(kind, handler)
                    result = handler(event)
                    if isinstance(result, Awaitable):
                        await result


def _given(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """*message* without the ``openai`` SDK's ``NotGiven``/``Omit`` markers (itself if none)."""
    from openai import NotGiven, Omit  # noqa: PLC0415 - the openai extra

    def strip(value: Any) -> Any:
        if isinstance(value, Mapping):
            return {k: strip(v) for k, v in value.items() if not isinstance(v, (NotGiven, Omit))}
        return value

    def marked(value: Any) -> bool:
        if isinstance(value, Mapping):
            return any(isinstance(v, (NotGiven, Omit)) or marked(v) for v in value.values())
        return False

    return strip(message) if marked(message) else message
