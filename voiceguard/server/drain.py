"""Graceful drain: on SIGTERM the calls in progress end on their own before the server stops.

A rolling deploy stops servers with SIGTERM. Under ``voiceguard serve`` a SIGTERM does not cut
the calls in progress; it starts a *drain*:

1. ``/healthz`` answers 503 ``{"status": "draining"}`` at once, so a load balancer (a
   Kubernetes readiness probe) sends no new calls here, and a new media stream is accepted and
   closed with 1012 ("service restart"): the caller's provider can try another server.
   Streams already open go on, also those still waiting for Twilio's ``start``.
2. The calls in progress go on until they end, for up to the drain timeout
   (``--drain-timeout``, 15 minutes by default).
3. Past it, each call still running is wound up politely
   (:meth:`~voiceguard.MediaHandler.wind_up`): the bot says a short goodbye
   (:data:`DRAIN_GOODBYE`) and hangs up once it played, within :data:`WIND_UP_GRACE`
   seconds.
4. Then the server stops (uvicorn's own shutdown, with nothing left to cut).

A second SIGTERM, or Ctrl+C (SIGINT), stops the server at once, as before.

With ``--workers N`` the supervisor passes the SIGTERM on to every worker, and each drains its
own calls. The Kubernetes Pod's ``terminationGracePeriodSeconds`` must cover the drain timeout,
the wind-up grace and a little more (the deployment page has the manifest).

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, Final, final

import anyio

if TYPE_CHECKING:
    from types import FrameType

    from voiceguard.runtime.handler import MediaHandler

__all__ = ("DRAIN_GOODBYE", "WIND_UP_GRACE", "Drain", "drain_on_sigterm")

logger = logging.getLogger("voiceguard.server")

#: Seconds a call wound up at the end of the drain has for its goodbye before it is hung up.
WIND_UP_GRACE: Final = 30.0
#: The instructions of the goodbye of a call wound up at the end of the drain.
DRAIN_GOODBYE: Final = (
    "The call has to end now: the service is restarting. Apologise briefly, say a short, "
    "friendly goodbye, then call end_call."
)
#: How often the drain looks whether the calls have ended.
_POLL: Final = 0.1


@final
class Drain:
    """The drain of one app: whether it drains, and the drain itself (:meth:`run`).

    Args:
        timeout: Seconds the calls in progress have to end on their own.
        grace: Seconds a call wound up past *timeout* has for its goodbye.

    Attributes:
        draining: True from the start of the drain on (``/healthz`` says so, new streams are
            refused).
    """

    __slots__ = ("_grace", "_timeout", "draining")

    def __init__(self, timeout: float, *, grace: float = WIND_UP_GRACE) -> None:
        self._timeout = timeout
        self._grace = grace
        self.draining = False

    async def run(self, calls: Callable[[], Collection[MediaHandler]]) -> int:
        """Drain: wait for *calls* (the handlers running now, read afresh each time) to end,
        wind up those still running after the timeout, and wait for them.

        Returns:
            The number of calls that were wound up (0: every call ended on its own).
        """
        self.draining = True
        running = len(calls())
        logger.warning(
            "draining: %d call%s in progress, new media streams refused; the calls have up to "
            "%g s to end",
            running,
            "" if running == 1 else "s",
            self._timeout,
        )
        with anyio.move_on_after(self._timeout):
            while calls():
                await anyio.sleep(_POLL)
        left = list(calls())
        if left:
            logger.warning(
                "drain timeout: winding up %d call%s (a goodbye, then the hang-up)",
                len(left),
                "" if len(left) == 1 else "s",
            )
            for handler in left:
                handler.wind_up(within=self._grace, instructions=DRAIN_GOODBYE)
            # The wind-up ends each call by its grace; a little more for the hang-up itself.
            with anyio.move_on_after(self._grace + 5.0):
                while calls():
                    await anyio.sleep(_POLL)
        logger.warning("drained: no call in progress; stopping")
        return len(left)


def drain_on_sigterm(drain: Drain, calls: Callable[[], Collection[MediaHandler]]) -> bool:
    """Make the process's SIGTERM start *drain* instead of stopping the server at once.

    Call it from the event loop's thread, the main thread, while the ASGI server runs with its
    own SIGTERM handler installed (``voiceguard serve`` calls it as uvicorn loads the app): the
    first SIGTERM runs the drain in the loop, then hands the signal to that handler (uvicorn's
    shutdown); a second one hands it on at once.

    Returns:
        False if it could not be installed (not the main thread, or no running loop): SIGTERM
        then stops the server as the ASGI server does.
    """
    if threading.current_thread() is not threading.main_thread():
        return False
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return False
    previous = signal.getsignal(signal.SIGTERM)
    tasks: set[asyncio.Task[Any]] = set()

    def stop_now(sig: int, frame: FrameType | None) -> None:
        if callable(previous):
            previous(sig, frame)
        else:  # no handler of the server's: the default action
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.raise_signal(signal.SIGTERM)

    async def drain_then_stop() -> None:
        try:
            await drain.run(calls)
        finally:
            stop_now(signal.SIGTERM, None)

    def start() -> None:
        task = loop.create_task(drain_then_stop())
        tasks.add(task)  # held until it ends: the loop keeps only a weak reference
        task.add_done_callback(tasks.discard)

    def on_sigterm(sig: int, frame: FrameType | None) -> None:
        if drain.draining:
            logger.warning("second SIGTERM: stopping now")
            stop_now(sig, frame)
        else:
            drain.draining = True  # at once: the next request already sees it
            loop.call_soon_threadsafe(start)

    signal.signal(signal.SIGTERM, on_sigterm)
    return True
