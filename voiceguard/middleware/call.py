"""GuardedCall: one call of an existing bot, with the turn engine around its sockets."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar, final

import anyio
from typing_extensions import assert_never

from voiceguard.config import GuardConfig
from voiceguard.core.actions import Deliver, EndCall, SendToModel, SendToPhone
from voiceguard.core.guards.create import CreateRequest
from voiceguard.core.record import DecisionSink
from voiceguard.decisions import CreateOrigin, CreatePolicy, Decision
from voiceguard.middleware.guard import CallGuard, GuardStep
from voiceguard.middleware.model import (
    CloseErrors,
    GuardedChannel,
    GuardedModel,
    GuardedRealtimeConnection,
    GuardedWebSocket,
)
from voiceguard.middleware.phone import GuardedPhone
from voiceguard.protocol import PhoneDialect, phone_dialect
from voiceguard.runtime._clock import loop_clock

__all__ = ("GuardedCall",)

logger = logging.getLogger("voiceguard.middleware")

_E = TypeVar("_E")
_R = TypeVar("_R")
_P = ParamSpec("_P")


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
        self.guard = CallGuard(config, call_sid=call_sid, on_decision=on_decision)
        self._clock = clock  # None: the running loop's, looked up at the first reading
        self._model: GuardedModel[Any] | None = None
        self._phone: GuardedPhone | None = None
        self._waiting: dict[str, anyio.Event] = {}
        self._ended: str | None = None

    def now(self) -> float:
        """The call's clock: monotonic seconds."""
        clock = self._clock
        if clock is None:  # anyio.current_time's, without its backend lookup at every reading
            clock = self._clock = loop_clock()
        return clock()

    @property
    def ended(self) -> str | None:
        """Why the guard ended the call (it closed the phone socket), or None."""
        return self._ended

    def attach_model(self, model: GuardedModel[Any]) -> None:
        """Called by a guarded model connection when it is made (one per call)."""
        self._model = model

    def attach_phone(self, phone: GuardedPhone) -> None:
        """Called by the watched phone socket when it is made (one per call)."""
        self._phone = phone
        self.guard.watch_phone()

    async def carry_out(
        self, step: GuardStep, *, original: tuple[Mapping[str, Any], object] | None = None
    ) -> None:
        """Do what the guard decided, in order.

        Args:
            step: The guard's step.
            original: The bot's message being sent, as ``(the mapping the guard saw, what the
                bot passed)``: when the guard lets it pass unchanged, what the bot passed goes.
        """
        model = self._model
        for action in step.actions:
            match action:
                case SendToModel():
                    if model is None:
                        logger.warning(
                            "no model connection is guarded yet: %s not sent",
                            action.message.get("type"),
                            extra=self._extra(),
                        )
                    elif original is not None and action.message is original[0]:
                        if isinstance(original[1], Mapping):
                            await model.send_direct(action.message)
                        else:
                            await model.send_original(original[1])
                    else:
                        await model.send_direct(action.message)
                case SendToPhone():
                    if self._phone is not None:
                        await self._phone.send_direct(action.message)
                case Deliver():
                    if model is not None:
                        model.deliver((action.event,))
                case EndCall():
                    await self._end_call(action.reason)
                case _:
                    assert_never(action)
        if self._waiting:
            for item_id in [i for i in self._waiting if self.guard.judgement(i) is not None]:
                self._waiting.pop(item_id).set()

    async def wind_up(self, *, within: float, instructions: str | None = None) -> None:
        """End the call soon and politely, as :meth:`MediaHandler.wind_up
        <voiceguard.MediaHandler.wind_up>` does in the reference server: the bot says goodbye
        now, the call hangs up once it played, and *within* seconds from now at the latest.

        .. versionadded:: 0.2.0
        """
        self.guard.wind_up(self.now(), within=within, instructions=instructions)
        await self.tick_if_due()

    async def tick_if_due(self) -> None:
        """Do what is due now, if anything (the phone's frames wake the guard too)."""
        deadline = self.guard.next_deadline()
        now = self.now()
        if deadline is not None and now >= deadline:
            await self.carry_out(self.guard.on_tick(now))

    async def _end_call(self, reason: str) -> None:
        if self._ended is not None:
            return
        self._ended = reason
        phone = self._phone
        if not self.guard.config.hang_up or phone is None:
            logger.info("the call may end (%s); the bot ends it", reason, extra=self._extra())
            return
        logger.info("hanging up: %s", reason, extra=self._extra())
        await phone.hang_up()

    def _extra(self) -> dict[str, object]:
        state = self.guard.state
        return {"call_sid": state.call_sid, "stream_sid": state.stream_sid}

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

    def phone(self, websocket: Any, *, phone: str | PhoneDialect = "twilio") -> Any:
        """Watch *websocket*, the call's Twilio Media Streams socket (or, with *phone*,
        Telnyx's or Plivo's).

        Optional, and worth it: the guards then pause the phone themselves on a barge-in and
        resume the answer after a false interruption, know what the caller heard to the chunk
        (from the marks), and judge the caller's exact mu-law whatever the model's audio format.

        Args:
            websocket: The phone socket.
            phone: Whose media streams it carries: ``"twilio"``, ``"telnyx"`` or ``"plivo"``
                (the bot speaks that provider's words; so do the guards' own messages).

        Returns:
            A :class:`GuardedPhone`; use it everywhere the bot used *websocket*.

        Raises:
            ValueError: For an unknown provider, or Vonage (binary audio: not taken here).
        """
        dialect = phone if isinstance(phone, PhoneDialect) else phone_dialect(phone)
        return GuardedPhone(self, websocket, dialect)

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
        decision, step = self.guard.request_response(request, self.now())
        await self.carry_out(step)
        return decision
