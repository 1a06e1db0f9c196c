"""Opening a call's model session in time, and saying why it could not be opened.

:class:`ModelSession` opens the model connection through the handler's connector and waits for
the model's first event (``session.created``), both within the handler's ``model_timeout``;
a stop or a closed socket on the phone meanwhile ends the wait at once. Then it runs the call
over the connection. When the call cannot go on, it ends it with the reason (the connector
refused the start; the model could not be reached, closed before its session, or stayed
silent) and says whether the model failed, so the caller can be told (the apology).
"""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from typing import final

import anyio

from voiceguard.errors import CallRefused, RemoteProtocolError
from voiceguard.protocol import StreamStarted
from voiceguard.runtime._phone_in import PhoneInput
from voiceguard.transports import Transport, TransportClosed

__all__ = ("ModelSession",)


@final
class ModelSession:
    """One call's model session, from the connector's handshake to its end.

    Args:
        connect: The handler's model connector.
        phone_in: The call's phone reader (a stop during the handshake ends the wait).
        timeout: Seconds for the handshake and the first event together.
        end: Ends the call with a reason (the first reason given wins).
        count_bad: Counts a malformed message: ``count_bad(peer, what)``.

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
    ) -> None:
        self._connect = connect
        self._phone_in = phone_in
        self._timeout = timeout
        self._end = end
        self._count_bad = count_bad
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
