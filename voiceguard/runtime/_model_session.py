"""Opening a call's model session in time, and saying why it could not be opened.

:class:`ModelSession` opens the model connection through the handler's connector and waits for
the model's first event (``session.created``), both within the handler's ``model_timeout``;
a stop or a closed socket on the phone meanwhile ends the wait at once. Then it runs the call
over the connection. When the call cannot go on, it ends it with the reason (the connector
refused the start; the model could not be reached, closed before its session, or stayed
silent, or refused the session: an ``error`` where ``session.created`` belongs) and says
whether the model failed, so the caller can be told (the apology). A refusal is logged as one
ERROR line that says what to change.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from contextlib import AbstractAsyncContextManager
from typing import Final, final

import anyio

from voiceguard.errors import CallRefused, RemoteProtocolError
from voiceguard.protocol import RealtimeError, StreamStarted, parse_realtime_event
from voiceguard.runtime._phone_in import PhoneInput
from voiceguard.transports import Transport, TransportClosed

__all__ = ("ModelSession", "log_model_error")

logger = logging.getLogger("voiceguard.handler")

#: What to change when the model refuses a session with this error code.
_ADVICE: Final[Mapping[str, str]] = {
    "beta_api_shape_disabled": (
        "the endpoint no longer speaks the retired Realtime beta protocol, and voiceguard speaks "
        "the GA one: connect to a GA endpoint (wss://api.openai.com/v1/realtime?model=...) "
        "without the OpenAI-Beta header"
    ),
    "invalid_api_key": (
        "check the API key (for voiceguard serve: OPENAI_API_KEY, AZURE_OPENAI_API_KEY or "
        "XAI_API_KEY, by --model-provider)"
    ),
    "model_not_found": "check the model named in the Realtime URL (?model=...)",
}


def log_model_error(error: RealtimeError, extra: Mapping[str, object]) -> None:
    """Log a model's ``error`` in a running call (WARNING: the call goes on)."""
    what = error.code or error.error_type
    logger.warning("model error %s: %s", what, error.message, extra=extra)


@final
class ModelSession:
    """One call's model session, from the connector's handshake to its end.

    Args:
        connect: The handler's model connector.
        phone_in: The call's phone reader (a stop during the handshake ends the wait).
        timeout: Seconds for the handshake and the first event together.
        end: Ends the call with a reason (the first reason given wins).
        count_bad: Counts a malformed message: ``count_bad(peer, what)``.
        extra: The call's identity for log records (``extra(**more)``).

    Attributes:
        failed: The model could not be reached, closed before its session or stayed silent.
        refused: Why the connector turned the call away, if it did.
    """

    def __init__(
        self,
        connect: Callable[[StreamStarted], AbstractAsyncContextManager[Transport]],
        phone_in: PhoneInput,
        *,
        timeout: float,
        end: Callable[[str], None],
        count_bad: Callable[[str, str], None],
        extra: Callable[..., Mapping[str, object]] = lambda **fields: fields,
    ) -> None:
        self._connect = connect
        self._phone_in = phone_in
        self._timeout = timeout
        self._end = end
        self._count_bad = count_bad
        self._extra = extra
        self._opened = False
        self.failed = False
        self.refused: CallRefused | None = None

    async def run(
        self,
        start: StreamStarted,
        call: Callable[[Transport, str], Awaitable[None]],
        silent: Callable[[], Awaitable[None]],
    ) -> None:
        """Open the session and run *call* (the model, its first message) over it.

        *silent* runs, with the model's socket still open, when the model connected but sent
        nothing in time: the caller can be told before the socket's close handshake, which a
        silent peer makes slow.
        """
        phone_in = self._phone_in
        deadline = anyio.current_time() + self._timeout
        connecting = anyio.CancelScope(deadline=deadline)
        try:
            with connecting:
                self._watch_phone(connecting)
                async with self._connect(start) as model:
                    connecting.deadline = math.inf
                    first_text: str | None = None
                    with anyio.CancelScope(deadline=deadline) as first:
                        self._watch_phone(first)
                        try:
                            first_text = await model.receive()
                        except TransportClosed as exc:  # inside the connector's task group
                            self.failed = True
                            self._end(f"model closed before its session ({exc.code})")
                            return
                    phone_in.on_gone = None
                    if first_text is None:
                        self._no_session()
                        await silent()
                        return
                    self._opened = True
                    phone_in.opened()
                    await call(model, first_text)
        except CallRefused as exc:
            self.refused = exc
            self._end(f"start refused: {exc.reason}")
        except RemoteProtocolError as exc:  # the connector refused the start's parameters
            self._count_bad(exc.peer, str(exc))
            self._end(f"start refused: {exc}")
        except TransportClosed as exc:
            self.failed = not self._opened
            self._end(f"model connection failed: {exc}")
        except OSError as exc:
            self.failed = not self._opened
            self._end(f"model connection failed: {exc}")
        finally:
            phone_in.on_gone = None
        if connecting.cancelled_caught:
            self._no_session()

    def refusal(self, first: str) -> str | None:
        """If the model's first message *first* is an ``error`` (where ``session.created``
        belongs), the session is refused: one ERROR line says what to change, the call ends
        (with the apology), and the error's code is returned; else None."""
        try:
            error = parse_realtime_event(first)
        except RemoteProtocolError:
            return None  # counted as malformed where the call reads it
        if not isinstance(error, RealtimeError):
            return None
        what = error.code or error.error_type
        advice = _ADVICE.get(error.code or "", "check the Realtime URL and the API key")
        logger.error(
            "the model refused the session: %s: %s -- %s",
            what,
            error.message,
            advice,
            extra=self._extra(code=error.code),
        )
        self.failed = True
        self._end(f"model refused the session ({what})")
        return what

    def _watch_phone(self, scope: anyio.CancelScope) -> None:
        self._phone_in.on_gone = scope.cancel
        if self._phone_in.gone is not None:
            scope.cancel()

    def _no_session(self) -> None:
        gone = self._phone_in.gone
        if gone is not None:
            self._end(f"{gone} while the model session opened")
        else:
            self.failed = True
            self._end(f"model timeout: no session within {self._timeout:g} s")
