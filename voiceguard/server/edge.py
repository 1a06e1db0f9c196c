"""The server's edge: connections that never finish a request, and a process out of descriptors.

Nothing in uvicorn times out a connection that has not sent a whole request head: a client
that connects and stays silent (or sends half a request) holds a file descriptor for as long as
it likes, and at the process's descriptor limit nothing can connect any more, Twilio's calls and
``/healthz`` included, while asyncio logs every failed ``accept()``, once per backlog slot on
every retry. ``EdgeHTTPProtocol`` (uvicorn's own HTTP protocol, with two limits added)
closes such connections:

* a connection must bring its whole request head (for a media stream: the WebSocket upgrade
  request) within :attr:`EdgeLimits.request_timeout` seconds of connecting;
* at most :attr:`EdgeLimits.max_waiting` connections may be waiting for their request head at
  once; one more closes the one that has waited longest (a real client sends its request at once,
  so it is never the oldest for long; a flood only pushes out its own connections).

Failed ``accept()`` calls are logged once per episode with their count
(:class:`AcceptFailureLog`), not once each. Connections closed here are counted per process
(:data:`DROPPED`, shown by ``/metrics`` as ``voiceguard_connections_closed_total``), and passed
to each of :data:`DROP_SINKS` (with ``--workers N``, a multiprocess counter: every worker's
``/metrics`` shows the whole server's).

Needs the ``server`` extra (uvicorn); only ``voiceguard serve`` and
:func:`~voiceguard.server.serving` import this module.

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import asyncio
import logging
import resource
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, final

from uvicorn.protocols.http.auto import AutoHTTPProtocol

if TYPE_CHECKING:
    from uvicorn.protocols.http.h11_impl import H11Protocol as _HTTPProtocol
else:
    _HTTPProtocol = AutoHTTPProtocol

__all__ = (
    "DROPPED",
    "DROP_SINKS",
    "AcceptFailureLog",
    "EdgeHTTPProtocol",
    "EdgeLimits",
    "raise_descriptor_limit",
)

logger = logging.getLogger("voiceguard.server")

#: The attribute of uvicorn's ``Config`` that carries the limits to ``EdgeHTTPProtocol``.
CONFIG_ATTRIBUTE: Final = "voiceguard_edge"
#: Connections this process closed at its edge, by why (``"no request"``, ``"too many
#: waiting"``), and failed ``accept()`` calls (``"accept failed"``).
DROPPED: Final[Counter[str]] = Counter()
#: Called with the reason of each connection counted in :data:`DROPPED`, as it is counted.
DROP_SINKS: Final[list[Callable[[str], None]]] = []
#: Seconds between two log lines of one kind of trouble (the first is logged at once).
_LOG_INTERVAL: Final = 10.0
_ACCEPT_FAILED: Final = "socket.accept() out of system resource"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeLimits:
    """The limits ``EdgeHTTPProtocol`` enforces.

    Attributes:
        request_timeout: Seconds a connection has to send its whole request head. Default 5.
        max_waiting: Connections waiting for their request head at once; past it the longest
            waiting is closed. Default 256.
    """

    request_timeout: float = 5.0
    max_waiting: int = 256


@final
class _EpisodeLog:
    """Logs the first of a kind of trouble at once, then at most one line per interval with
    the count since: a flood of the same failure is a few lines, not a line per failure."""

    def __init__(self, what: str, level: int) -> None:
        self._what = what
        self._level = level
        self._count = 0
        self._logged_at: float | None = None

    def note(self, now: float, detail: str) -> None:
        self._count += 1
        if self._logged_at is None or now - self._logged_at >= _LOG_INTERVAL:
            logger.log(
                self._level, "%s (%d since the last line): %s", self._what, self._count, detail
            )
            self._count = 0
            self._logged_at = now

    def end(self, now: float, detail: str) -> None:
        """The trouble is over: say so once, with what was not yet logged."""
        if self._logged_at is not None:
            logger.log(self._level, "%s: over (%d more); %s", self._what, self._count, detail)
        self._count = 0
        self._logged_at = None


@final
class AcceptFailureLog:
    """A loop exception handler that reports failed ``accept()`` calls once per episode.

    asyncio logs ``socket.accept() out of system resource`` with a traceback for every failed
    ``accept()`` (when the process is out of file descriptors), once per backlog slot on every
    retry: hundreds of thousands of lines in seconds. This handler logs the first failure and
    then one line per 10 s with the count; every other exception goes to the previous handler.

    Use :meth:`install` on the running loop; ``EdgeHTTPProtocol`` does it on its first
    connection and reports each successful accept (:meth:`accepted`), which ends an episode.
    """

    def __init__(self, previous: Any) -> None:
        self._previous = previous
        self._log = _EpisodeLog("cannot accept connections", logging.ERROR)
        self._failing = False

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop) -> AcceptFailureLog:
        """The loop's handler, installed on *loop* unless it is there already."""
        current = loop.get_exception_handler()
        if isinstance(current, AcceptFailureLog):
            return current
        handler = cls(current)
        loop.set_exception_handler(handler)
        return handler

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") == _ACCEPT_FAILED:
            self._failing = True
            _note_dropped("accept failed")
            exc = context.get("exception")
            self._log.note(
                loop.time(),
                f"{exc}; new connections wait in the listen backlog until descriptors free up "
                "(raise the limit with ulimit -n, or lower --max-waiting-connections)",
            )
            return
        if self._previous is not None:
            self._previous(loop, context)
        else:
            loop.default_exception_handler(context)

    def accepted(self, loop: asyncio.AbstractEventLoop) -> None:
        """A connection was accepted: an episode of failures, if any, is over."""
        if self._failing:
            self._failing = False
            self._log.end(loop.time(), "accepting connections again")


class EdgeHTTPProtocol(_HTTPProtocol):
    """uvicorn's HTTP protocol (httptools when installed, else h11) with a request-head timeout
    and a cap on connections waiting for their request head.

    Give it to uvicorn as ``http=EdgeHTTPProtocol`` (or the string
    ``"voiceguard.server.edge:EdgeHTTPProtocol"``), with the limits set on the uvicorn config as
    the attribute ``voiceguard_edge`` (an :class:`EdgeLimits`; the defaults without it).
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        _watch(self).opened(self)

    def connection_lost(self, exc: Exception | None) -> None:
        _watch(self).closed(self)
        super().connection_lost(exc)


@final
class _Watch:
    """The connections of one uvicorn server that have not sent a whole request head yet."""

    def __init__(self, loop: asyncio.AbstractEventLoop, limits: EdgeLimits) -> None:
        self._loop = loop
        self._limits = limits
        self._waiting: dict[EdgeHTTPProtocol, asyncio.TimerHandle] = {}
        self._accepts = AcceptFailureLog.install(loop)
        self._log = _EpisodeLog("closed connections that sent no request", logging.WARNING)

    def opened(self, protocol: EdgeHTTPProtocol) -> None:
        self._accepts.accepted(self._loop)
        timeout = self._limits.request_timeout
        self._waiting[protocol] = self._loop.call_later(timeout, self._expired, protocol)
        while len(self._waiting) > self._limits.max_waiting:
            oldest = next(iter(self._waiting))
            if _waiting_for_request(oldest):
                self._drop(
                    oldest,
                    "too many waiting",
                    f"more than {self._limits.max_waiting} connections waiting for a request",
                )
            else:
                self.closed(oldest)

    def closed(self, protocol: EdgeHTTPProtocol) -> None:
        timer = self._waiting.pop(protocol, None)
        if timer is not None:
            timer.cancel()

    def _expired(self, protocol: EdgeHTTPProtocol) -> None:
        self._waiting.pop(protocol, None)
        if _waiting_for_request(protocol):
            timeout = self._limits.request_timeout
            self._drop(protocol, "no request", f"no whole request head within {timeout:g} s")

    def _drop(self, protocol: EdgeHTTPProtocol, why: str, detail: str) -> None:
        self.closed(protocol)
        _note_dropped(why)
        self._log.note(self._loop.time(), detail)
        protocol.transport.close()


def _note_dropped(why: str) -> None:
    DROPPED[why] += 1
    for sink in DROP_SINKS:
        sink(why)


def _waiting_for_request(protocol: EdgeHTTPProtocol) -> bool:
    """True while the connection has neither a request under way nor been upgraded."""
    transport = protocol.transport
    cycle: object = protocol.cycle  # None until a request head arrived (typed as never None)
    return cycle is None and not transport.is_closing() and transport.get_protocol() is protocol


def _watch(protocol: EdgeHTTPProtocol) -> _Watch:
    state = protocol.server_state
    watch: _Watch | None = getattr(state, CONFIG_ATTRIBUTE, None)
    if watch is None:
        limits = getattr(protocol.config, CONFIG_ATTRIBUTE, None)
        watch = _Watch(protocol.loop, limits if isinstance(limits, EdgeLimits) else EdgeLimits())
        setattr(state, CONFIG_ATTRIBUTE, watch)
    return watch


def raise_descriptor_limit() -> int:
    """Raise this process's soft limit on open files to its hard limit; returns the limit.

    A server holds two descriptors per call (the phone's socket, the model's); the common
    default soft limit of 1024 is reached by a few hundred calls and connections.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
        return hard
    return soft
