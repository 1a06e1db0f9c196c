"""Scripting the simulated model: what it says, the function calls it makes, the faults."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final, Literal, final

__all__ = ("CHARS_PER_SECOND", "EventFault", "FunctionCall", "Reply")

#: How fast the simulated model speaks a reply's text when no duration is given.
CHARS_PER_SECOND: Final = 15.0


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class FunctionCall:
    """A function call the simulated model makes at the end of a response.

    Attributes:
        name: The function's name, e.g. ``"end_call"``.
        arguments: The JSON arguments string.
    """

    name: str
    arguments: str = "{}"


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Reply:
    """What the simulated model does for one response.

    The default is a short spoken answer. Set :attr:`text` and :attr:`duration` (or
    :attr:`audio`) to change what is said, :attr:`function_call` to call a tool after speaking,
    and the fault fields to make the response misbehave.

    Attributes:
        text: The transcript of what the model says; empty with :attr:`duration` 0 for a
            response without a message (e.g. a bare function call).
        duration: Seconds of speech-like audio to generate; None derives it from the text
            (about 15 characters a second, at least 0.5 s). Ignored when :attr:`audio` is given.
        audio: The exact audio to send, as 8 kHz mu-law (converted to the session's output
            format); None generates a speech-like signal.
        function_call: A function call made after the message (e.g. ``end_call`` after a
            goodbye).
        lost: The ``response.create`` vanishes: no ``response.created``, no error, nothing
            active (a lost request, for watchdog tests).
        stall: The response starts (``response.created``) and then sends nothing until it is
            cancelled.
        drop_connection_after: Drop the socket (no close frame) after this many seconds of audio
            have been sent.
        status: The final ``response.done`` status when the response runs to its end:
            ``completed``, or ``incomplete`` (``reason: "max_output_tokens"``) or ``failed``.
    """

    text: str = "Sure, I can help you with that."
    duration: float | None = None
    audio: bytes | None = field(default=None, repr=False)
    function_call: FunctionCall | None = None
    lost: bool = False
    stall: bool = False
    drop_connection_after: float | None = None
    status: Literal["completed", "incomplete", "failed"] = "completed"

    def audio_seconds(self) -> float:
        """Seconds of audio this reply speaks."""
        if self.audio is not None:
            return len(self.audio) / 8000
        if self.duration is not None:
            return max(0.0, self.duration)
        if not self.text:
            return 0.0
        return max(0.5, len(self.text) / CHARS_PER_SECOND)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EventFault:
    """Tamper with the server events of one type on their way to the client.

    Delaying an event past the ones after it reorders them (e.g. delay ``response.done`` by
    0.2 s and a ``speech_started`` sent meanwhile overtakes it).

    Attributes:
        event_type: The GA event type, e.g. ``"response.done"`` (matches the beta alias too).
        action: ``"delay"``, ``"duplicate"`` (sent twice in a row) or ``"drop"`` (never sent).
        seconds: The delay, for ``"delay"``.
        occurrences: Which occurrences on a connection are affected, counting from 1; None
            affects all.
    """

    event_type: str
    action: Literal["delay", "duplicate", "drop"]
    seconds: float = 0.0
    occurrences: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.action not in ("delay", "duplicate", "drop"):
            raise ValueError(f"action = {self.action!r}; allowed: 'delay', 'duplicate' or 'drop'")
        if not (math.isfinite(self.seconds) and self.seconds >= 0):
            raise ValueError(f"seconds = {self.seconds!r}; allowed: a finite number >= 0")
