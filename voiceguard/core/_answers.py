"""What the latest ``response.create`` asked for: one answer per caller turn, one re-send at most.

A create can be lost on the way (no ``response.created``, no error). Three things then want to
ask again: the guard's own retry after :attr:`~voiceguard.TurnConfig.response_timeout`, the bot's
own watchdog, and the bot's next try. Counted apart they make three creates for one turn, and
two answers. :class:`Answers` counts them together: every create sent for the same request (a
caller turn, the greeting, a prompt) counts against one budget of two (the create and one
re-send), whoever sends it, and the request is *answered* once a response starts.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, final

__all__ = ("RETRY_LABEL", "Answers", "Ask")

#: Label of a bot's create held as a possible re-send of a request whose create is in flight.
RETRY_LABEL: Final = "retry"
#: Creates per request: the create and one re-send.
_BUDGET: Final = 2


@final
@dataclass(slots=True)
class Ask:
    """One request for a response.

    Attributes:
        turn: The caller turn (user item id) it answers, if it answers one.
        response: The ``response`` object of its first create (what a re-send sends again).
        sent: Creates sent for it so far.
        answered: A response started for it.
    """

    turn: str | None
    response: Mapping[str, Any] | None = None
    sent: int = 0
    answered: bool = False


@final
class Answers:
    """The open request and its budget."""

    __slots__ = ("ask",)

    def __init__(self) -> None:
        #: The latest request, answered or not (None before the first).
        self.ask: Ask | None = None

    @property
    def open(self) -> Ask | None:
        """The request still waiting for its answer, if any."""
        ask = self.ask
        return ask if ask is not None and not ask.answered else None

    def turn_committed(self, item_id: str) -> None:
        """A real caller turn ended: a new request with a fresh budget."""
        self.ask = Ask(turn=item_id)

    def new_request(self) -> None:
        """Something new was asked of the model (a tool's result, a message): a new request."""
        self.ask = None

    def sent(self, response: Mapping[str, Any] | None) -> Ask:
        """A create went out: it counts for the open request, or starts a new one."""
        ask = self.open
        if ask is None:
            ask = self.ask = Ask(turn=None, response=response)
        elif ask.sent == 0:
            ask.response = response
        ask.sent += 1
        return ask

    def answered(self) -> Ask | None:
        """A response started: the open request is answered (returned), if there was one."""
        ask = self.open
        if ask is not None and ask.sent:
            ask.answered = True
            return ask
        return None

    def may_resend(self) -> bool:
        """True while the open request has had at most its create (its re-send is left)."""
        ask = self.open
        return ask is not None and 0 < ask.sent < _BUDGET

    def spent(self) -> bool:
        """True once the open request was sent as often as it may be."""
        ask = self.open
        return ask is not None and ask.sent >= _BUDGET
