"""An energy voice-activity detector that emulates the OpenAI Realtime ``server_vad``.

The real server VAD is a model we cannot run locally. :class:`EnergyVad` stands in for it where a
deterministic, explainable detector is good enough: labelling the barge-in corpus (which
``speech_started`` events would the server raise on this audio?) and driving the simulator. It takes
the three ``server_vad`` options with their server defaults and reports the same two events,
counting time in milliseconds of audio appended, exactly as ``audio_start_ms`` and ``audio_end_ms``
are counted by the server.

How it decides, per 20 ms frame of 8 kHz mu-law audio:

* It tracks the line's background level: down quickly when a frame is quieter, up slowly
  (:attr:`EnergyVad.FLOOR_RISE_DB_PER_S`) otherwise, starting from
  :attr:`EnergyVad.INITIAL_FLOOR_DBFS`. Like the server's detector it is therefore fooled by loud
  line noise at the start of a call until it has adapted.
* A frame is *active* when its energy is at least ``20 * threshold`` dB above that level and above
  an absolute level of ``-75 + 50 * threshold`` dBFS (with the default ``threshold=0.5``: 10 dB
  and -50 dBFS). Higher ``threshold`` means louder speech is needed, as on the server.
* Speech starts when :attr:`EnergyVad.START_FRAMES` of the last
  :attr:`EnergyVad.START_WINDOW_FRAMES` frames are active (the detection lags the onset by about
  60 ms); ``audio_start_ms`` is the first active frame minus ``prefix_padding_ms``.
* Speech stops after ``silence_duration_ms`` without an active frame; ``audio_end_ms`` is the
  moment the stop is detected, so it includes the silence, as the server's does.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, final

import numpy as np

from voiceguard.audio import FRAME_BYTES, SAMPLE_RATE, SILENCE_DBFS, check_frame, decode_ulaw

__all__ = ("EnergyVad", "VadEvent", "VadSpeechStarted", "VadSpeechStopped")

_FRAME_MS = FRAME_BYTES * 1000 // SAMPLE_RATE


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class VadSpeechStarted:
    """The detector heard speech start (the server's ``input_audio_buffer.speech_started``).

    Attributes:
        audio_start_ms: Start of the speech in ms of audio since the detector began, including
            the prefix padding (what the server reports).
        speech_onset_ms: The first active frame, without padding (not sent by the server; useful
            for labelling and for minimum-duration rules).
        detected_ms: The end of the frame on which the detector decided: the earliest moment, in
            ms of audio, that the event could be sent.
    """

    audio_start_ms: int
    speech_onset_ms: int
    detected_ms: int


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class VadSpeechStopped:
    """The detector heard speech stop (the server's ``input_audio_buffer.speech_stopped``).

    Attributes:
        audio_end_ms: End of the speech in ms of audio, including the silence that ended it
            (what the server reports); equal to :attr:`detected_ms`.
        speech_end_ms: End of the last active frame.
        detected_ms: The end of the frame on which the detector decided.
    """

    audio_end_ms: int
    speech_end_ms: int
    detected_ms: int


#: Either event of :class:`EnergyVad`.
VadEvent = VadSpeechStarted | VadSpeechStopped


@final
class EnergyVad:
    """Energy VAD with the OpenAI ``server_vad`` options; one instance per audio stream.

    Args:
        threshold: ``server_vad`` activation threshold, 0.0 to 1.0 (default 0.5).
        prefix_padding_ms: Audio kept before the detected onset, in ms (default 300).
        silence_duration_ms: Silence that ends speech, in ms (default 500).

    Raises:
        ValueError: If an option is out of range.

    Example:
        >>> vad = EnergyVad()
        >>> vad.push(b"\\xff" * 160)
        ()
    """

    #: Where the background level starts, in dBFS.
    INITIAL_FLOOR_DBFS: ClassVar[float] = -70.0
    #: How fast the background level rises towards louder frames, in dB per second.
    FLOOR_RISE_DB_PER_S: ClassVar[float] = 5.0
    #: Active frames needed within the start window for speech to start.
    START_FRAMES: ClassVar[int] = 3
    #: Length of the start window, in frames.
    START_WINDOW_FRAMES: ClassVar[int] = 4

    __slots__ = (
        "_abs_min_db",
        "_active_run",
        "_floor_db",
        "_frames",
        "_last_active_frame",
        "_margin_db",
        "_prefix_ms",
        "_recent",
        "_silence_frames",
        "_speaking",
        "prefix_padding_ms",
        "silence_duration_ms",
        "threshold",
    )

    def __init__(
        self,
        *,
        threshold: float = 0.5,
        prefix_padding_ms: int = 300,
        silence_duration_ms: int = 500,
    ) -> None:
        if isinstance(threshold, bool) or not 0.0 <= threshold <= 1.0:
            raise ValueError(f"threshold = {threshold!r}; allowed: 0.0 <= threshold <= 1.0")
        for name, value in (
            ("prefix_padding_ms", prefix_padding_ms),
            ("silence_duration_ms", silence_duration_ms),
        ):
            if isinstance(value, bool) or not 0 <= value <= 10_000:
                raise ValueError(f"{name} = {value!r}; allowed: an integer, 0 <= value <= 10000")
        self.threshold = float(threshold)
        self.prefix_padding_ms = prefix_padding_ms
        self.silence_duration_ms = silence_duration_ms
        self._margin_db = 20.0 * self.threshold
        self._abs_min_db = -75.0 + 50.0 * self.threshold
        self._prefix_ms = prefix_padding_ms
        self._silence_frames = max(1, math.ceil(silence_duration_ms / _FRAME_MS))
        self._floor_db = self.INITIAL_FLOOR_DBFS
        self._frames = 0
        self._recent: list[bool] = []
        self._speaking = False
        self._active_run = 0  # frames since the last active frame, while speaking
        self._last_active_frame = -1

    @property
    def speaking(self) -> bool:
        """True between a speech start and the following stop."""
        return self._speaking

    @property
    def audio_ms(self) -> int:
        """Milliseconds of audio consumed so far."""
        return self._frames * _FRAME_MS

    @property
    def floor_dbfs(self) -> float:
        """The detector's current estimate of the background level, in dBFS."""
        return self._floor_db

    def push(self, frame: bytes | bytearray | memoryview) -> tuple[VadEvent, ...]:
        """Consume mu-law audio (a whole number of 20 ms frames) and return the events it caused.

        Args:
            frame: 8 kHz mu-law audio; its length must be a positive multiple of 160 bytes.

        Returns:
            The events, in order (usually none).

        Raises:
            TypeError: If *frame* is not bytes-like.
            ValueError: If its length is not a positive multiple of 160.
        """
        size = check_frame(frame, what="VAD frame")
        pcm = decode_ulaw(frame).astype(np.float64).reshape(size // FRAME_BYTES, FRAME_BYTES)
        power = np.mean((pcm / 32768.0) ** 2, axis=1)
        return self.push_energies(10.0 * np.log10(np.maximum(power, 1e-12)))

    def push_energies(self, energies_dbfs: Sequence[float] | np.ndarray) -> tuple[VadEvent, ...]:
        """Consume precomputed per-frame energies (dBFS of consecutive 20 ms frames).

        This is what :meth:`push` does after measuring; use it to run the detector over a long
        recording whose energies were computed at once.

        Args:
            energies_dbfs: Energy of each frame in dBFS.

        Returns:
            The events, in order.
        """
        events: list[VadEvent] = []
        rise = self.FLOOR_RISE_DB_PER_S * _FRAME_MS / 1000.0
        for value in energies_dbfs:
            energy = max(float(value), SILENCE_DBFS)
            active = energy > max(self._floor_db + self._margin_db, self._abs_min_db)
            if energy < self._floor_db:
                self._floor_db += 0.5 * (energy - self._floor_db)
            else:
                self._floor_db += min(rise, energy - self._floor_db)
            index = self._frames
            self._frames += 1
            end_ms = self._frames * _FRAME_MS
            self._recent.append(active)
            if len(self._recent) > self.START_WINDOW_FRAMES:
                del self._recent[0]
            if not self._speaking:
                if active and sum(self._recent) >= self.START_FRAMES:
                    first = index - len(self._recent) + 1 + self._recent.index(True)
                    onset_ms = first * _FRAME_MS
                    self._speaking = True
                    self._active_run = 0
                    self._last_active_frame = index
                    events.append(
                        VadSpeechStarted(
                            audio_start_ms=max(0, onset_ms - self._prefix_ms),
                            speech_onset_ms=onset_ms,
                            detected_ms=end_ms,
                        )
                    )
            elif active:
                self._active_run = 0
                self._last_active_frame = index
            else:
                self._active_run += 1
                if self._active_run >= self._silence_frames:
                    self._speaking = False
                    self._recent.clear()
                    events.append(
                        VadSpeechStopped(
                            audio_end_ms=end_ms,
                            speech_end_ms=(self._last_active_frame + 1) * _FRAME_MS,
                            detected_ms=end_ms,
                        )
                    )
        return tuple(events)

    def __repr__(self) -> str:
        return (
            f"EnergyVad(threshold={self.threshold}, prefix_padding_ms={self.prefix_padding_ms}, "
            f"silence_duration_ms={self.silence_duration_ms})"
        )
