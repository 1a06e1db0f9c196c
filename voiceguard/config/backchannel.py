# ruff: noqa: RUF001 - the acknowledgements are words of many scripts, on purpose
"""Backchannels: the short acknowledgements a caller makes while the bot talks.

"Uh-huh", "okay", "mm-hmm" tell the bot to go on, not to stop. The turn engine pauses the bot
on every barge-in; a segment that ends short (:attr:`BackchannelConfig.max_duration`) and whose
transcript (the session must transcribe the caller) has only acknowledgements resumes it
(:attr:`~voiceguard.Reason.BACKCHANNEL`). Real short barge-ins ("stop", "wait", "no") are not
acknowledgements: they stop the bot.

The shipped words cover Hebrew, English, Arabic, Russian, Spanish, German, French and Portuguese
(:data:`ACKNOWLEDGEMENTS`); a phrase counts word by word, case-folded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, final

from voiceguard.config._checks import check_bool, check_number
from voiceguard.errors import ConfigError

__all__ = ("ACKNOWLEDGEMENTS", "BackchannelConfig")

_WORD: Final = re.compile(r"\w+")

#: The default acknowledgements per language (ISO 639-1 code). None of them asks the bot to
#: stop: "no", "stop", "wait" and their kin are left out on purpose.
ACKNOWLEDGEMENTS: Final[Mapping[str, tuple[str, ...]]] = MappingProxyType(
    {
        "he": ("כן", "אהה", "אה", "אהא", "אוקיי", "אוקי", "בסדר", "נכון", "טוב", "יופי", "ממ"),
        "en": (
            "uh-huh",
            "mm-hmm",
            "mhm",
            "hmm",
            "mm",
            "okay",
            "ok",
            "yeah",
            "yes",
            "yep",
            "right",
            "sure",
            "alright",
            "all right",
            "got it",
            "i see",
        ),
        "ar": ("نعم", "أيوه", "ايوه", "آه", "اه", "طيب", "تمام", "صح", "أكيد"),
        "ru": ("да", "ага", "угу", "ясно", "хорошо", "понятно", "так", "ну да"),
        "es": ("sí", "si", "vale", "ajá", "claro", "ya", "bueno", "okey", "ok", "mhm"),
        "de": ("ja", "genau", "okay", "aha", "mhm", "gut", "stimmt", "richtig", "alles klar"),
        "fr": ("oui", "ouais", "d'accord", "ok", "bon", "voilà", "hum", "mmh", "entendu"),
        "pt": ("sim", "tá", "ta", "certo", "ok", "uhum", "é", "beleza", "entendi", "claro"),
    }
)


def words(text: str) -> list[str]:
    """The words of *text*, case-folded (any script: ``\\w`` is Unicode-aware)."""
    return _WORD.findall(text.casefold())


def _all_words() -> tuple[str, ...]:
    return tuple(dict.fromkeys(word for words in ACKNOWLEDGEMENTS.values() for word in words))


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class BackchannelConfig:
    """How the turn engine tells a backchannel from a barge-in.

    Attributes:
        enabled: Resume the bot after a short acknowledgement. Off: every barge-in that lasts
            :attr:`~voiceguard.TurnConfig.min_barge_in_speech` stops the bot. Default on.
        max_duration: Speech this long at most (seconds, from the VAD's segment minus its
            padding and silence) may be a backchannel; longer is a barge-in. Default 0.8 s.
        words: The acknowledgements (phrases, any language): a short segment whose transcript
            has only these words is a backchannel. Default: every language of
            :data:`ACKNOWLEDGEMENTS`.
        wait: With the caller transcribed, how long (seconds) after the VAD's
            ``speech_stopped`` the paused bot waits for the short segment's words; none in time:
            it stops, as for a barge-in. Default 1.5 s.
        without_words: When the caller is not transcribed, take a short segment for a
            backchannel by its length alone. Off by default: a short "stop" or "no" would then
            resume the bot and its turn be deleted, a caller's words thrown away on the
            evidence of a length; without words a short barge-in stops the bot.
    """

    enabled: bool = True
    max_duration: float = 0.8
    words: tuple[str, ...] = _all_words()
    wait: float = 1.5
    without_words: bool = False

    def __post_init__(self) -> None:
        check_bool(self, "enabled", self.enabled)
        check_bool(self, "without_words", self.without_words)
        check_number(self, "max_duration", self.max_duration, low=0, high=5, unit="seconds")
        check_number(self, "wait", self.wait, low=0, high=30, unit="seconds")
        given: object = self.words
        if not isinstance(given, tuple) or not all(isinstance(w, str) and w.strip() for w in given):
            raise ConfigError(
                f"{type(self).__name__}.words", self.words, "a tuple of non-empty strings"
            )

    def acknowledges(self, transcript: str) -> bool:
        """True if *transcript* has words, every one of them a word of :attr:`words`.

        >>> BackchannelConfig().acknowledges("Uh-huh.")
        True
        >>> BackchannelConfig().acknowledges("okay, stop")
        False
        """
        said = words(transcript)
        if not said:
            return False
        known = {word for phrase in self.words for word in words(phrase)}
        return all(word in known for word in said)
