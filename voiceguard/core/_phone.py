"""The turn engine's phone side: the bot's audio on its way to the caller, and what they heard.

:class:`PhoneAudio` holds the playout (:class:`~voiceguard.PlayoutBuffer`) and the phone's clock
(:class:`~voiceguard.core._phoneclock.PhoneClock`), and turns them into Twilio messages. It serves
both drivers: the reference bridge pushes the model's audio in and has it paced; the middleware
pushes the audio the bot forwards and has it handed over at once (an unbounded lead), or, for a
phone it cannot see, only keeps the clock of what the bot forwarded.
"""

from __future__ import annotations

import base64
import logging
from collections import OrderedDict
from typing import Final, final

from voiceguard.audio import UlawConverter
from voiceguard.config import TurnConfig
from voiceguard.core._phoneclock import PhoneClock
from voiceguard.core.actions import SendToPhone, TurnAction
from voiceguard.core.playout import PlayoutBuffer
from voiceguard.core.state import CallState
from voiceguard.protocol.realtime import AudioDelta
from voiceguard.protocol.twilio import clear_message, mark_message, media_message

__all__ = ("PhoneAudio",)

logger = logging.getLogger("voiceguard.turns")

#: Audio deltas whose event ids are remembered (a repeated one is dropped).
_DELTAS_REMEMBERED: Final = 64


@final
class PhoneAudio:
    """The audio between the bot and the caller's ear.

    Args:
        config: The engine's configuration (its playout settings).
        state: The call's state (told what was sent and heard).
        watched: Whether the engine can send to the phone.

    Attributes:
        playout: The call's playout.
        clock: When the audio handed over plays.
        stream_sid: The Twilio stream, once it started.
        bot_item: The item and response of the latest audio delta handed to the bot.
    """

    __slots__ = (
        "_recent",
        "_silenced",
        "_state",
        "_unwatched",
        "_watched",
        "bot_item",
        "clock",
        "playout",
        "stream_sid",
    )

    def __init__(self, config: TurnConfig, state: CallState, *, watched: bool) -> None:
        self._state = state
        self._watched = watched
        self.playout = PlayoutBuffer(config=config.playout)
        self.clock = PhoneClock()
        self.stream_sid: str | None = None
        self.bot_item: tuple[str, str] | None = None
        self._silenced: str | None = None  # a response the caller talked over: never played
        self._unwatched: UlawConverter | None = None
        self._recent: OrderedDict[str, None] = OrderedDict()  # event ids of the latest deltas

    @property
    def watched(self) -> bool:
        """True when the engine can send to the phone."""
        return self._watched

    def watch(self) -> None:
        """From now on the engine can send to the phone."""
        self._watched = True

    def playable(self, response_id: str) -> bool:
        """True if audio of *response_id* may still reach the caller."""
        return response_id != self._silenced and self._state.should_play(response_id)

    def busy(self, now: float) -> bool:
        """True while audio is queued or playing on the phone."""
        if not self.playout.idle:
            return True
        return not self._watched and self.clock.playing(now)

    # ------------------------------------------------------------------ audio in

    def repeated(self, event: AudioDelta) -> bool:
        """True for an audio delta seen before (same event id, a replaying proxy)."""
        recent = self._recent
        if event.event_id in recent:
            logger.warning(
                "dropped a repeated audio delta %s of response %s",
                event.event_id,
                event.response_id,
                extra={"call_sid": self._state.call_sid},
            )
            return True
        recent[event.event_id] = None
        if len(recent) > _DELTAS_REMEMBERED:
            recent.popitem(last=False)
        return False

    def model_audio(self, event: AudioDelta) -> None:
        """The model's audio, for the engine to pace to the phone (the reference bridge)."""
        self.playout.push(item_id=event.item_id, response_id=event.response_id, audio=event.audio)

    def to_bot(self, event: AudioDelta, now: float) -> None:
        """The model's audio goes to the bot, which forwards it to the phone."""
        self.bot_item = (event.item_id, event.response_id)
        if self._watched:
            return  # the audio comes back through bot_audio() when the bot forwards it
        # A phone the engine does not see: the audio plays from now, as far as it knows.
        state = self._state
        fmt = state.audio_format
        converter = self._unwatched
        if converter is None or converter.format != fmt:
            converter = self._unwatched = UlawConverter(fmt)
        item = state.item(event.item_id)
        if item is None:
            return
        offset = item.received_ms - event.num_bytes / fmt.bytes_per_ms
        self.clock.handed(event.item_id, offset, converter.feed(event.audio), now)
        state.record_playout(item_id=event.item_id, sent_ms=item.received_ms)

    def bot_audio(self, audio: bytes, now: float) -> list[TurnAction] | None:
        """The bot forwards *audio* (mu-law) to the phone: through the playout.

        Returns None when it cannot be placed (no audio delta reached the bot yet, or the stream
        has not started): then it goes to the phone as the bot sent it.
        """
        item = self.bot_item
        if item is None or self.stream_sid is None or not audio:
            return None
        if not self.playable(item[1]):
            return []  # the rest of a response the caller talked over
        self.playout.push(item_id=item[0], response_id=item[1], audio=audio)
        return self.pull(now)

    def bot_mark(self, name: str, now: float) -> list[TurnAction]:
        """The bot's own mark keeps its place after the audio before it."""
        self.playout.push_mark(name)
        return self.pull(now)

    def bot_clear(self, now: float) -> list[TurnAction]:
        """The bot clears the phone: everything queued or playing goes, and so does the rest of
        the response it was playing; a ``clear`` is sent only if something was on the phone or
        still to go. A pause of the engine's own (a barge-in being confirmed) stays."""
        playout = self.playout
        paused = playout.paused
        had = playout.pause()
        queued = playout.queued_ms > 0
        playout.drop()
        if not paused:
            playout.resume()
        if self.bot_item is not None:
            self._silenced = self.bot_item[1]
        self._state.playback_cleared()
        self.clock.cleared(now)
        out: list[TurnAction] = []
        if (had or queued) and self.stream_sid is not None:
            out.append(SendToPhone(message=clear_message(self.stream_sid)))
        return out + self.pull(now)

    # ------------------------------------------------------------------ audio out

    def pull(self, now: float) -> list[TurnAction]:
        """The playout's chunks due at *now*, as Twilio messages (media, then its mark)."""
        stream_sid = self.stream_sid
        if stream_sid is None or not self._watched:
            return []
        out: list[TurnAction] = []
        for chunk in self.playout.pull(now):
            if chunk.passenger:
                out.append(SendToPhone(message=mark_message(stream_sid, chunk.mark)))
                continue
            payload = base64.b64encode(chunk.audio).decode("ascii")
            out.append(SendToPhone(message=media_message(stream_sid, payload)))
            out.append(SendToPhone(message=mark_message(stream_sid, chunk.mark)))
            self.clock.handed(chunk.item_id, chunk.start_ms, chunk.audio, now)
            self._state.record_playout(item_id=chunk.item_id, sent_ms=chunk.end_ms)
        return out

    def next_deadline(self) -> float | None:
        """When :meth:`pull` has chunks next (paced playout only)."""
        return self.playout.next_deadline() if self._watched else None

    # ------------------------------------------------------------------ barge-in

    def pause(self, now: float) -> list[TurnAction]:
        """Stop the bot on the phone at once (rewinding to what was heard); the ``clear``."""
        if not self._watched or not self.playout.pause() or self.stream_sid is None:
            return []
        self._state.playback_cleared()
        self.clock.cleared(now)
        return [SendToPhone(message=clear_message(self.stream_sid))]

    def resume(self, now: float) -> list[TurnAction]:
        """Play on from the heard position."""
        self.playout.resume()
        return self.pull(now)

    def silence(self, response_id: str, now: float) -> list[TurnAction]:
        """The caller talked over *response_id*: none of its rest is ever played."""
        self._silenced = response_id
        self.playout.drop(response_id=response_id)
        return self.resume(now)

    def close(self, *, ended: bool) -> list[TurnAction]:
        """The call ends: stop the bot on the phone (unless it was hung up: nothing to stop)."""
        if not self._watched or not self.playout.pause() or self.stream_sid is None or ended:
            return []
        self._state.playback_cleared()
        return [SendToPhone(message=clear_message(self.stream_sid))]

    # ------------------------------------------------------------------ what was heard

    def mark_played(self, name: str) -> bool:
        """Twilio echoed *name*: True if it is one of the playout's (it then moves the heard
        position), False if it is the bot's own."""
        playout = self.playout
        if not playout.owns(name):
            return False
        heard = playout.mark_played(name)
        if heard is not None:
            self._state.record_playout(item_id=heard.item_id, heard_ms=heard.heard_ms)
        return True

    def update_heard(self, now: float) -> None:
        """Bring the current item's heard position up to date, by the clock when no mark tells.

        With the phone watched, the marks tell (to the chunk); without it, the audio handed to
        the phone is taken to play in real time from when the bot got it, with a margin.
        """
        state = self._state
        item = state.current_item
        if item is None or self.playout.statistics().marks_played:
            return
        heard = self.clock.heard_ms(item.item_id, now)
        if heard is not None:
            state.record_playout(item_id=item.item_id, heard_ms=min(heard, item.sent_ms))

    def cleared_unseen(self, now: float) -> None:
        """The bot's phone was cleared where the engine cannot see it (its truncate says so)."""
        self.update_heard(now)
        self.clock.cleared(now)
        self._state.playback_cleared()
