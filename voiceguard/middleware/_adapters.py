"""The adapters: a bot's own sockets, with the guards of :class:`CallGuard` in between."""

from __future__ import annotations

import functools
import json
import logging
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from typing import (
    TYPE_CHECKING,
    Any,
    Concatenate,
    Final,
    Generic,
    ParamSpec,
    TypeAlias,
    TypeVar,
    final,
    overload,
)

import anyio

from voiceguard.core.guards.create import CreateOrigin, CreatePolicy, CreateRequest
from voiceguard.decisions import Decision
from voiceguard.errors import RemoteProtocolError
from voiceguard.middleware._core import CallGuard, GuardConfig, GuardStep
from voiceguard.protocol import dumps, parse_realtime_event, parse_twilio_message, response_create
from voiceguard.transports import TransportClosed

if TYPE_CHECKING:
    from voiceguard.core.record import DecisionSink

__all__ = (
    "CloseErrors",
    "GuardedCall",
    "GuardedChannel",
    "GuardedModel",
    "GuardedPhone",
    "GuardedRealtimeConnection",
    "GuardedWebSocket",
)

logger = logging.getLogger("voiceguard.middleware")

#: Exceptions of a model connection's receive that mean it closed cleanly (iteration then ends).
CloseErrors: TypeAlias = "tuple[type[BaseException], ...]"

_Raw = TypeVar("_Raw")
_E = TypeVar("_E")
_R = TypeVar("_R")
_P = ParamSpec("_P")
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
        call._attach_model(self)

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
            await self._send(message)
            return
        for out in self._call.guard.to_model(view, self._call.now()):
            if out is not view or isinstance(message, Mapping):
                await self._send(self._encode(out))  # changed, or a dict to put on the wire
            else:
                await self._send(message)  # exactly as the bot wrote it

    async def _send_guard(self, messages: tuple[Mapping[str, Any], ...]) -> None:
        for message in messages:
            await self._send(self._encode(message))

    # ------------------------------------------------------------------ receiving

    async def recv(self) -> _Raw:
        """The model's next message that the bot should see (its events observed first).

        When the connection closes, this raises what the wrapped connection's receive raises.
        """
        guard = self._call.guard
        while True:
            if self._ready:
                return self._ready.popleft()
            now = self._call.now()
            deadline = guard.next_deadline(now)
            if deadline is None:
                raw: object = await self._receive()
            else:
                raw = _TIMED_OUT
                with anyio.move_on_after(max(_MIN_WAIT, deadline - now)):
                    raw = await self._receive()
                if raw is _TIMED_OUT:
                    await self._carry_out(guard.on_tick(self._call.now()))
                    continue
            try:
                event = parse_realtime_event(raw)
            except RemoteProtocolError as exc:
                logger.warning(
                    "model message not understood, handed to the bot as it is: %s",
                    exc,
                    extra={"call_sid": guard.state.call_sid, "stream_sid": guard.state.stream_sid},
                )
                return raw  # type: ignore[return-value]
            await self._carry_out(guard.from_model(event, raw, self._call.now()))

    async def _carry_out(self, step: GuardStep) -> None:
        self._ready.extend(step.deliver)  # type: ignore[arg-type]
        await self._send_guard(step.send)

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


@final
class GuardedPhone:
    """The bot's Twilio Media Streams socket, watched by the guards (nothing is changed).

    The guards learn the call's identity, the caller's audio (for the calibration gate), the
    bot's audio as it goes to the phone, the marks and their echoes (what the caller heard, to
    the chunk) and ``clear``. Works with a Starlette/FastAPI ``WebSocket`` (``iter_text``,
    ``receive_text``, ``receive_json``, ``send_text``, ``send_json``) and with any object with
    ``send(text)``/``receive()`` or ``recv()`` and ``async for``; every other attribute
    (``accept``, ``close``, ...) is the wrapped socket's.

    Args:
        call: The guarded call.
        websocket: The Twilio socket.

    Attributes:
        websocket: The wrapped Twilio socket.
    """

    def __init__(self, call: GuardedCall, websocket: Any) -> None:
        self._call = call
        self.websocket = websocket
        call.guard.watch_phone()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.websocket, name)

    def _incoming(self, message: object) -> None:
        try:
            event = parse_twilio_message(message)  # type: ignore[arg-type]
        except RemoteProtocolError:
            return  # the bot reads it as it is; a bad message is its to report
        self._call.guard.from_phone(event, self._call.now())

    def _outgoing(self, message: object) -> None:
        if isinstance(message, (str, bytes, bytearray)):
            try:
                message = json.loads(message)
            except (ValueError, UnicodeDecodeError):
                return
        if isinstance(message, Mapping):
            self._call.guard.to_phone(message, self._call.now())

    async def send_json(self, data: Any, *args: Any, **kwargs: Any) -> None:
        """Send a JSON message (Starlette's ``send_json``)."""
        self._outgoing(data)
        await self.websocket.send_json(data, *args, **kwargs)

    async def send_text(self, data: str) -> None:
        """Send a text message (Starlette's ``send_text``)."""
        self._outgoing(data)
        await self.websocket.send_text(data)

    async def send(self, message: Any) -> None:
        """Send a message (``websockets``-style ``send``)."""
        self._outgoing(message)
        await self.websocket.send(message)

    async def receive_text(self) -> str:
        """Receive a text message (Starlette's ``receive_text``)."""
        text: str = await self.websocket.receive_text()
        self._incoming(text)
        return text

    async def receive_json(self, *args: Any, **kwargs: Any) -> Any:
        """Receive a JSON message (Starlette's ``receive_json``)."""
        data = await self.websocket.receive_json(*args, **kwargs)
        self._incoming(data)
        return data

    async def recv(self) -> Any:
        """Receive a message (``websockets``-style ``recv``)."""
        message = await self.websocket.recv()
        self._incoming(message)
        return message

    async def receive(self) -> Any:
        """Receive a message (``receive()`` of voiceguard's transports)."""
        message = await self.websocket.receive()
        self._incoming(message)
        return message

    def iter_text(self) -> AsyncIterator[str]:
        """Iterate over text messages (Starlette's ``iter_text``)."""
        return _Watched(self.websocket.iter_text(), self._incoming)

    def iter_json(self) -> AsyncIterator[Any]:
        """Iterate over JSON messages (Starlette's ``iter_json``)."""
        return _Watched(self.websocket.iter_json(), self._incoming)

    def __aiter__(self) -> AsyncIterator[Any]:
        return _Watched(self.websocket.__aiter__(), self._incoming)


@final
class _Watched:
    """An async iterator that shows each item to *watch* before handing it on."""

    __slots__ = ("_inner", "_watch")

    def __init__(self, inner: AsyncIterator[Any], watch: Callable[[object], None]) -> None:
        self._inner = inner
        self._watch = watch

    def __aiter__(self) -> _Watched:
        return self

    async def __anext__(self) -> Any:
        item = await self._inner.__anext__()
        self._watch(item)
        return item


def _item_id(event: object) -> str | None:
    """The ``item_id`` of an event given as JSON text, a mapping or an SDK event."""
    if isinstance(event, (str, bytes, bytearray)):
        try:
            event = json.loads(event)
        except (ValueError, UnicodeDecodeError):
            return None
    found = event.get("item_id") if isinstance(event, Mapping) else getattr(event, "item_id", None)
    return found if isinstance(found, str) else None


@final
class _GuardedOpening:
    """``async with call.model(opener) as connection``: the opened connection, guarded."""

    __slots__ = ("_call", "_opener")

    def __init__(self, call: GuardedCall, opener: Any) -> None:
        self._call = call
        self._opener = opener

    async def __aenter__(self) -> Any:
        opened = await self._opener.__aenter__()
        return self._call.model(opened)

    async def __aexit__(self, *exc_info: object) -> bool | None:
        result: bool | None = await self._opener.__aexit__(*exc_info)
        return result


@final
class GuardedCall:
    """One call of an existing bot, with voiceguard's guards around its sockets.

    Make one per call, then wrap the call's sockets where the bot opens them::

        call = GuardedCall()
        websocket = call.phone(websocket)        # the Twilio socket: watched
        openai_ws = call.model(openai_ws)        # the model socket: guarded

    Args:
        config: Turn control (the default) or observer mode, and the guards' settings.
        call_sid: The call's id for log records (learnt from Twilio's ``start`` when the phone
            socket is wrapped).
        on_decision: Receives every decision of the call's guards, in order.
        clock: Monotonic seconds; :func:`anyio.current_time` by default.

    Attributes:
        guard: The sans-IO :class:`CallGuard` (its ``state``, ``cancels``, ``creates`` and
            ``gate``, and their statistics).
        judgement_timeout: Seconds a :meth:`barge_in` handler waits for the gate's judgement
            (the gate needs :attr:`~voiceguard.CalibrationConfig.confirm_time` of speech, more
            while caller and bot talk at once); after it, the handler does not run.
    """

    judgement_timeout: float = 2.0

    def __init__(
        self,
        config: GuardConfig | None = None,
        *,
        call_sid: str | None = None,
        on_decision: DecisionSink | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.guard = CallGuard(
            config, call_sid=call_sid, on_decision=on_decision, on_judged=self._judged
        )
        self._clock = clock if clock is not None else anyio.current_time
        self._model: GuardedModel[Any] | None = None
        self._waiting: dict[str, anyio.Event] = {}

    def _judged(self, item_id: str, real: bool) -> None:
        waiting = self._waiting.pop(item_id, None)
        if waiting is not None:
            waiting.set()

    def now(self) -> float:
        """The call's clock: monotonic seconds."""
        return self._clock()

    def _attach_model(self, model: GuardedModel[Any]) -> None:
        self._model = model

    def model(self, connection: Any) -> Any:
        """Guard *connection*, the call's connection to the Realtime API.

        Wrap the connection, or the expression that opens it::

            async with call.model(websockets.connect(url, additional_headers=headers)) as ws:
                ...
            async with call.model(client.realtime.connect(model="gpt-realtime")) as conn:
                ...
            ws = call.model(ws)  # a connection that is already open

        Args:
            connection: A ``websockets`` connection or the ``openai`` SDK's
                ``AsyncRealtimeConnection`` (told apart by its ``parse_event`` method), or what
                opens one in ``async with`` (``websockets.connect(...)``,
                ``client.realtime.connect(...)``).

        Returns:
            For a connection: a :class:`GuardedRealtimeConnection` for the SDK's, else a
            :class:`GuardedWebSocket`; use it everywhere the bot used *connection*. For an
            opener: an async context manager that yields the guarded connection.

        Raises:
            TypeError: If *connection* is neither.
        """
        if callable(getattr(connection, "parse_event", None)) and hasattr(connection, "response"):
            return GuardedRealtimeConnection(self, connection)
        if callable(getattr(connection, "recv", None)):
            return GuardedWebSocket(self, connection)
        if callable(getattr(connection, "__aenter__", None)):
            return _GuardedOpening(self, connection)
        raise TypeError(
            "GuardedCall.model() takes a model connection (websockets, the openai SDK's realtime "
            f"connection) or what opens one in `async with`, not {type(connection).__name__}"
        )

    def channel(
        self,
        send: Callable[[str], Awaitable[object]],
        receive: Callable[[], Awaitable[Any]],
        *,
        closed: CloseErrors = (),
    ) -> GuardedChannel:
        """Guard a connection to the Realtime API given as a ``send``/``receive`` pair."""
        return GuardedChannel(self, send, receive, closed=closed)

    def phone(self, websocket: Any) -> Any:
        """Watch *websocket*, the call's Twilio Media Streams socket.

        Optional, and worth it: the guards then know what the caller heard to the chunk (from
        the marks), where the bot's audio really is on the phone, and the caller's audio without
        decoding it twice.

        Returns:
            A :class:`GuardedPhone`; use it everywhere the bot used *websocket*.
        """
        return GuardedPhone(self, websocket)

    def barge_in(
        self, handler: Callable[Concatenate[_E, _P], Awaitable[_R]]
    ) -> Callable[Concatenate[_E, _P], Coroutine[Any, Any, _R | None]]:
        """Decorate a ``speech_started`` handler to run only for a real barge-in.

        The handler's first argument is the ``input_audio_buffer.speech_started`` event (JSON
        text, a dict or an SDK event). The decorated handler waits for the calibration gate's
        judgement of that caller segment (at most :attr:`judgement_timeout`), then calls the
        handler if the caller really spoke, and otherwise logs why not and returns ``None``. In
        turn control the guarded connection already hides echo and noise from the bot; the
        decorator makes the rule explicit, and applies it in observer mode too::

            @call.barge_in
            async def on_speech_started(event) -> None:
                await twilio_ws.send_json(clear_message(stream_sid))
        """

        @functools.wraps(handler)
        async def guarded(event: _E, /, *args: _P.args, **kwargs: _P.kwargs) -> _R | None:
            item_id = _item_id(event)
            real = await self._real_speech(item_id)
            if not real:
                logger.info(
                    "barge-in handler %s not run: caller segment %s was %s",
                    getattr(handler, "__qualname__", handler),
                    item_id,
                    "echo or noise" if real is False else "not judged in time",
                    extra={
                        "call_sid": self.guard.state.call_sid,
                        "stream_sid": self.guard.state.stream_sid,
                        "item_id": item_id,
                    },
                )
                return None
            return await handler(event, *args, **kwargs)

        return guarded

    async def _real_speech(self, item_id: str | None) -> bool | None:
        if item_id is None:
            return None
        known = self.guard.judgement(item_id)
        if known is not None:
            return known
        waiting = self._waiting.setdefault(item_id, anyio.Event())
        with anyio.move_on_after(self.judgement_timeout):
            await waiting.wait()
        self._waiting.pop(item_id, None)
        return self.guard.judgement(item_id)

    async def create_response(
        self,
        response: Mapping[str, Any] | None = None,
        *,
        label: str = "bot",
        policy: CreatePolicy = CreatePolicy.DEFER,
        automatic: bool = False,
    ) -> Decision:
        """Ask for a ``response.create`` that waits instead of failing.

        Sent now if the model would accept it; otherwise held and sent by the guarded model
        connection as soon as it can go (after ``response.done``, ...), or dropped by *policy*.

        Args:
            response: The ``response`` object (instructions, metadata, ...).
            label: A name for logs.
            policy: Defer (the default) or drop when it cannot go now.
            automatic: A retry or nudge: several waiting at once are merged into one.

        Returns:
            The decision (allowed: sent; deferred: held; suppressed: dropped, with its reason).

        Raises:
            RuntimeError: If no model connection of this call is guarded yet.
        """
        model = self._model
        if model is None:
            raise RuntimeError(
                "GuardedCall.create_response: wrap the model connection first (call.model(...))"
            )
        request = CreateRequest(
            origin=CreateOrigin.AUTOMATIC if automatic else CreateOrigin.EXPLICIT,
            policy=policy,
            response=response,
            label=label,
        )
        decision = self.guard.request_response(request, self.now())
        if decision.allowed:
            await model._send_guard((response_create(response),))
        return decision
