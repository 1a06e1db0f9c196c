"""What every part of one simulated connection shares."""

from __future__ import annotations

import itertools
import random
import string
from collections.abc import Callable
from typing import Final, Protocol, final

from voiceguard.sim._realtime.records import ConnectionRecord, Counters
from voiceguard.sim._realtime.script import EventFault, Reply

__all__ = ("Context", "Settings")

_ID_ALPHABET: Final = string.ascii_letters + string.digits


class Settings(Protocol):
    """The simulator's settings a connection reads, live (a
    :class:`~voiceguard.sim.realtime.RealtimeSimulator`)."""

    seed: int
    audio_speed: float
    first_audio_delay: float
    delta_ms: int
    audio_level_dbfs: float
    latency: float
    faults: tuple[EventFault, ...]
    model: str
    voice: str

    @property
    def delta_seconds(self) -> float:
        """Seconds between two deltas."""
        ...


@final
class Context:
    """The settings, counters and record of one connection, its ids and its order of events.

    Every id comes from one seeded generator and every queued event or timer takes its place
    from one counter, so a connection does the same things in the same order on every run.

    Attributes:
        settings: The simulator's settings.
        counters: The simulator's counters.
        record: This connection's record.
        reply: The reply for a response number.
        beta: Whether the connection speaks beta names.
        xai: Whether the connection speaks xAI's session shape (voice and turn detection at the
            session's top level, ``modalities``, no ``session.type``).
        dropping: Set when a reply's scripted fault drops the connection: nothing more runs.
    """

    __slots__ = (
        "_rng",
        "_seq",
        "beta",
        "counters",
        "dropping",
        "record",
        "reply",
        "settings",
        "xai",
    )

    def __init__(
        self,
        settings: Settings,
        counters: Counters,
        record: ConnectionRecord,
        reply: Callable[[int], Reply],
    ) -> None:
        self.settings = settings
        self.counters = counters
        self.record = record
        self.reply = reply
        self.beta = record.beta
        self.xai = record.provider == "xai"
        self.dropping = False
        self._rng = random.Random(settings.seed * 1_000_003 + record.index)
        self._seq = itertools.count()

    def new_id(self, prefix: str) -> str:
        """A fresh id, e.g. ``item_`` and 21 letters and digits."""
        return prefix + "".join(self._rng.choice(_ID_ALPHABET) for _ in range(21))

    def next_in_order(self) -> int:
        """The next place in the order of queued events and timers (ties at one instant)."""
        return next(self._seq)
