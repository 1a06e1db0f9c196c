"""The call's sends, in the order the call decided them, carried out by the deciding task.

Each of a call's tasks (the phone's reader, the model's reader, the ticker) gives the core an
event and gets back actions to carry out. :class:`OrderedSends` carries them out in the task that
asks, straight away, with no queue and no task in between: the common case, where a send does not
wait. Only while one task is inside a send (a peer's socket full) do the others' batches queue up,
for that task to send next, in order, so that what the core decided first always goes first; past
a bounded backlog the asking task waits too, so a slow peer holds the readers back instead of
growing memory.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar, final

import anyio

__all__ = ("OrderedSends",)

A = TypeVar("A")


@final
class OrderedSends(Generic[A]):
    """Carries out batches of actions in order, in the asking task.

    Args:
        carry_out: Does one action; returns False once the call is over (nothing more is sent).
        depth: Batches that may wait while another task sends before the asking task waits.
    """

    __slots__ = ("_backlog", "_carry_out", "_depth", "_room", "_sending", "open")

    def __init__(self, carry_out: Callable[[A], Awaitable[bool]], *, depth: int) -> None:
        self._carry_out = carry_out
        self._depth = depth
        self._backlog: deque[list[A]] = deque()
        self._sending = False
        self._room = anyio.Event()
        #: True while batches are carried out (from :meth:`start` to :meth:`stop`).
        self.open = False

    def start(self) -> None:
        """Batches are carried out from now on."""
        self.open = True

    def stop(self) -> None:
        """Nothing more is sent: the waiting batches are dropped, the waiting tasks released."""
        self.open = False
        self._backlog.clear()
        self._room.set()

    async def send(self, actions: list[A]) -> None:
        """Carry out *actions* after every batch asked for before them (dropped once stopped)."""
        if not actions or not self.open:
            return
        if self._sending:  # another task is inside a send: it sends these next, in order
            self._backlog.append(actions)
            while len(self._backlog) > self._depth and self.open:
                self._room = anyio.Event()
                await self._room.wait()
            return
        self._sending = True
        try:
            while True:
                for action in actions:
                    if not await self._carry_out(action):
                        self.stop()
                        return
                if not self._backlog:
                    return
                actions = self._backlog.popleft()
                self._room.set()
        finally:
            self._sending = False
