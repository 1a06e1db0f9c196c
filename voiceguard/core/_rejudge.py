"""A caller turn taken for echo, judged again by its words before it is deleted.

The calibration gate judges a segment from its audio within a fraction of a second. When it
suppressed one as echo or noise and the session transcribes the caller's audio
(``input_audio_transcription``), the words settle it later: an echo is transcribed as the bot's
own recent words, a caller says something else. So a committed turn judged to be echo is not
deleted at once: it waits (:attr:`~voiceguard.TurnConfig.transcript_wait`) for its
``conversation.item.input_audio_transcription.completed``, and words that are not the bot's make
it the caller's turn, answered like any other (:attr:`~voiceguard.Reason.CALLER_WORDS`).

:class:`TranscriptJudge` keeps the bot's recent words (from its audio transcripts) and the turns
waiting for their words; :class:`~voiceguard.core._caller.CallerTurns` acts on its verdicts.
"""

from __future__ import annotations

import difflib
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Final, final

from voiceguard.config.backchannel import BackchannelConfig, words
from voiceguard.core._segments import Segment
from voiceguard.decisions import Action, Decision, Reason, Verdict
from voiceguard.protocol.realtime import (
    InputTranscriptionCompleted,
    InputTranscriptionFailed,
    RealtimeServerEvent,
    SessionCreated,
    SessionUpdated,
    TranscriptDelta,
    TranscriptDone,
)

__all__ = ("TranscriptJudge", "transcribes_input")

#: Words of the bot's latest transcripts kept to compare with (a few turns of speech).
_BOT_WORDS: Final = 300
#: Assistant items whose transcripts are kept.
_BOT_ITEMS: Final = 8
#: A transcript this much (share of its words, in order) made of the bot's own recent words is
#: the bot's echo: recognisers garble an echo a little, and short words repeat by chance.
_ECHO_SHARE: Final = 0.6
#: Consecutive words shared with the bot, in its order, that are its echo inside a transcript
#: that also holds the caller's words (one word in common is chance: "okay").
_ECHO_RUN: Final = 2


def transcribes_input(event: SessionCreated | SessionUpdated) -> bool:
    """True if the session transcribes the caller's audio (GA ``audio.input.transcription`` or
    beta ``input_audio_transcription`` set to a model)."""
    session: Mapping[str, Any] = event.session
    audio = session.get("audio")
    inp = audio.get("input") if isinstance(audio, Mapping) else None
    if isinstance(inp, Mapping) and isinstance(inp.get("transcription"), Mapping):
        return True
    return isinstance(session.get("input_audio_transcription"), Mapping)


@final
class TranscriptJudge:
    """The bot's recent words, and the turns taken for echo waiting for their transcripts.

    Args:
        backchannel: What counts as an acknowledgement, not a turn.

    Attributes:
        transcribing: Whether the session transcribes the caller's audio (from the latest
            ``session.created`` or ``session.updated``).
        waiting: Per item id, a turn taken for echo and the moment it stops waiting.
    """

    __slots__ = ("_backchannel", "_bot", "transcribing", "waiting")

    def __init__(self, backchannel: BackchannelConfig | None = None) -> None:
        self._backchannel = backchannel if backchannel is not None else BackchannelConfig()
        self._bot: OrderedDict[str, str] = OrderedDict()
        self.transcribing = False
        self.waiting: dict[str, tuple[Segment, float]] = {}

    def session(self, event: SessionCreated | SessionUpdated) -> None:
        """The session as the server reports it."""
        self.transcribing = transcribes_input(event)

    def bot_said(self, item_id: str, text: str, *, done: bool) -> None:
        """Part (``done``: all) of the transcript of the bot's item *item_id*."""
        bot = self._bot
        bot[item_id] = text if done else bot.get(item_id, "") + text
        bot.move_to_end(item_id)
        while len(bot) > _BOT_ITEMS:
            bot.popitem(last=False)

    def wait(self, segment: Segment, until: float) -> None:
        """Hold *segment* (a committed turn taken for echo) for its transcript until *until*."""
        self.waiting[segment.item_id] = (segment, until)

    def next_deadline(self) -> float | None:
        """When the first waiting turn stops waiting."""
        return min((until for _, until in self.waiting.values()), default=None)

    def expired(self, now: float) -> list[Segment]:
        """The turns whose wait is over (they are no longer waiting)."""
        gone = [item for item, (_, until) in self.waiting.items() if until <= now]
        return [self.waiting.pop(item)[0] for item in gone]

    def event(self, event: RealtimeServerEvent) -> tuple[Segment, Decision | None] | None:
        """Learn from a model event: the bot's words, or a waiting turn's transcript.

        Returns:
            For the transcript of a waiting turn (it no longer waits), the turn and the
            decision on it (``None`` when transcription failed: no words will come); else
            ``None``.
        """
        match event:
            case TranscriptDelta():
                self.bot_said(event.item_id, event.delta, done=False)
            case TranscriptDone():
                self.bot_said(event.item_id, event.transcript, done=True)
            case InputTranscriptionCompleted() if event.item_id in self.waiting:
                segment = self.waiting.pop(event.item_id)[0]
                caller, why = self.verdict(event.transcript)
                return segment, Decision(
                    action=Action.BARGE_IN,
                    verdict=Verdict.ALLOW if caller else Verdict.SUPPRESS,
                    reason=Reason.CALLER_WORDS if caller else Reason.ECHO_SUSPECTED,
                    item_id=event.item_id,
                    detail=why,
                )
            case InputTranscriptionFailed() if event.item_id in self.waiting:
                return self.waiting.pop(event.item_id)[0], None
        return None

    def acknowledgement(self, transcript: str, *, beside_bot: bool = False) -> bool:
        """True if *transcript* has words, all of them acknowledgements ("uh-huh", "okay").

        With *beside_bot* (the words of a segment that began as the bot's echo), runs of two or
        more of the bot's own recent words, in its order, are the echo's and left out first; the
        caller's words are what remains, and some must remain.
        """
        if not beside_bot:
            return self._backchannel.acknowledges(transcript)
        said = words(transcript)
        echoed: set[int] = set()
        for block in self._shared_with_bot(said):
            if block.size >= _ECHO_RUN:
                echoed.update(range(block.b, block.b + block.size))
        rest = [word for k, word in enumerate(said) if k not in echoed]
        return bool(rest) and self._backchannel.acknowledges(" ".join(rest))

    def _shared_with_bot(self, said: list[str]) -> list[difflib.Match]:
        """The runs of *said* that are the bot's own recent words, in its order."""
        bot = words(" ".join(self._bot.values()))[-_BOT_WORDS:]
        return difflib.SequenceMatcher(None, bot, said, autojunk=False).get_matching_blocks()

    def verdict(self, transcript: str) -> tuple[bool, str]:
        """Whether *transcript* is the caller's turn (neither the bot's own recent words nor a
        mere acknowledgement), and why."""
        said = words(transcript)
        if not said:
            return False, "its transcript has no words"
        if self.acknowledgement(transcript):
            return False, f"its words are an acknowledgement, not a turn: {transcript.strip()!r}"
        shared = sum(block.size for block in self._shared_with_bot(said))
        share = shared / len(said)
        quoted = transcript.strip()
        if len(quoted) > 60:
            quoted = quoted[:57] + "..."
        if share >= _ECHO_SHARE:
            return False, f"its words are the bot's own ({100 * share:.0f} %): {quoted!r}"
        return True, (
            f"its words are not the bot's ({100 * share:.0f} % shared): {quoted!r}; the audio "
            "had taken it for echo or noise"
        )
