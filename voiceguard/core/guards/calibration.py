"""CalibrationGate: may a ``speech_started`` count as the caller barging in?

Phone lines have no echo canceller. The bot's own voice comes back on the caller's channel after
the network's round trip, line noise trips the server VAD at the start of a call, and a bridge
that cancels the bot on every ``input_audio_buffer.speech_started`` cuts itself off. The gate
listens to both directions of one call and judges each ``speech_started`` from the audio:

* **Noise floor.** From the caller's frames it tracks a low percentile of the frame energies over
  the last 3 s. The line counts as calibrated once that estimate is stable (successive estimates
  within :attr:`~voiceguard.CalibrationConfig.calibration_stable_db`, and enough frames
  sit near the floor to look like line noise rather than speech); a caller who talks first or the
  greeting's echo only delay it. After
  :attr:`~voiceguard.CalibrationConfig.max_calibration_time` it calibrates on what it has.
* **Echo path.** While the bot talks it correlates the caller channel's energy envelope with the
  bot's, over delays up to :attr:`~voiceguard.CalibrationConfig.max_echo_delay`, and keeps
  the delay and the echo return loss (how many dB quieter the echo is than the bot) up to date.
* **Judgement.** For the frames since the speech onset it predicts what the line would carry
  without the caller (noise floor plus the echo of what the bot said one delay earlier) and counts
  the frames that rise :attr:`~voiceguard.CalibrationConfig.speech_margin_db` above it.
  Enough of them: :attr:`~voiceguard.Verdict.ALLOW`. None, and the bot's echo explains the energy:
  suppress with :attr:`~voiceguard.Reason.ECHO_SUSPECTED`. Some but not enough while the bot
  talks: :attr:`~voiceguard.Verdict.DEFER` with :attr:`~voiceguard.Reason.DOUBLE_TALK` and a
  ``retry_at``; ask again with :meth:`CalibrationGate.recheck`.
* **Noise bursts.** Before allowing, it checks the spectrum of the frames that carried the
  evidence (only then, never per frame): as flat as white noise (clicks, crackle) or nearly all
  below 450 Hz (thumps) is noise, suppressed with :attr:`~voiceguard.Reason.BELOW_NOISE_FLOOR`;
  so is a burst with no voiced frame (coughs, typing: no pitch), once the vowel a word's first
  consonant would have led to has had :attr:`~voiceguard.CalibrationConfig.max_defer` to come.
* **Before calibration.** If the bot has sent no audio within
  :attr:`~voiceguard.CalibrationConfig.max_echo_delay`, nothing heard can be echo: speech-like
  frames above the quietest frame so far are allowed
  (:attr:`~voiceguard.CalibrationConfig.allow_speech_before_calibration`); otherwise
  :attr:`~voiceguard.Reason.NOT_CALIBRATED`.
* **Pause to listen.** While the echo path is not known, what the line showed while the bot
  talked bounds the echo at each delay; if the echo might still explain a speech-like onset, the
  gate defers with :attr:`~voiceguard.Reason.ECHO_UNCERTAIN`: the bot pauses, and the frames that
  no echo of it can reach decide (:attr:`~voiceguard.CalibrationConfig.listen_when_unsure`).
* **Watching.** After a suppression it keeps judging the segment's frames until
  ``speech_stopped``; the caller's own speech in it becomes a late barge-in
  (:meth:`CalibrationGate.poll_barge_in`).

Each of these is a part of its own, composed by :class:`CalibrationGate`: the history of the line
(both energy envelopes), the noise floor learner, the echo path learner, the judgement of a
``speech_started`` (with the rule before calibration and the spectral check) and the late barge-in
watch.

The gate is pure and per call: it never reads a clock (it is handed ``now``, and counts audio in
frames of 160 samples) and holds no global state. Feed it every inbound frame, every outbound
frame at the moment it is handed to the phone, and the speech events.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass
from typing import final

import numpy as np

from voiceguard.audio import FRAME_BYTES, FRAME_SECONDS, check_frame
from voiceguard.config import CalibrationConfig
from voiceguard.core.guards._early_speech import EarlySpeech
from voiceguard.core.guards._echo_path import EchoPath, line_without_caller
from voiceguard.core.guards._judgement import SpeechStartJudge
from voiceguard.core.guards._line import BLOCK, LineHistory, window
from voiceguard.core.guards._noise_floor import NoiseFloor
from voiceguard.core.guards._watch import LateBargeInWatch
from voiceguard.decisions import Decision, Reason, Verdict
from voiceguard.errors import StateTransitionError

__all__ = ("CalibrationGate", "CalibrationStatistics")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class CalibrationStatistics:
    """An immutable snapshot of a :class:`CalibrationGate` (for logs and metrics).

    Attributes:
        calibrated: Whether the noise floor is known.
        calibrated_since: The ``now`` at which the gate calibrated, or ``None``.
        calibrated_on_timeout: True if it calibrated because
            :attr:`~voiceguard.CalibrationConfig.max_calibration_time` passed, not because
            the estimate was stable.
        noise_floor_dbfs: The current noise-floor estimate in dBFS (``None`` before the first
            200 ms of caller audio).
        echo_delay_ms: The estimated echo delay in ms, or ``None`` while unknown.
        echo_return_loss_db: The estimated echo return loss in dB (bot level minus echo level),
            or ``None`` while unknown.
        echo_confidence: Correlation (0 to 1) behind the delay estimate.
        inbound_frames: Caller frames seen.
        outbound_frames: Bot frames seen.
        deferrals: How many deferrals were returned.
        decisions: Final decisions so far (allowed or suppressed) per reason, late barge-ins
            (allowed, :attr:`~voiceguard.Reason.OK`) included.
        late_barge_ins: Late barge-ins found inside suppressed segments (see
            :meth:`CalibrationGate.poll_barge_in`).
    """

    calibrated: bool
    calibrated_since: float | None
    calibrated_on_timeout: bool
    noise_floor_dbfs: float | None
    echo_delay_ms: float | None
    echo_return_loss_db: float | None
    echo_confidence: float
    inbound_frames: int
    outbound_frames: int
    deferrals: int
    decisions: Mapping[Reason, int]
    late_barge_ins: int = 0


@final
class CalibrationGate:
    """Judges each ``speech_started`` of one call against the line's noise floor and echo.

    One gate per call; it must never see another call's frames. See the module documentation for
    how it decides.

    Args:
        config: Thresholds and options; the defaults come from the corpus measurements.

    Example:
        >>> gate = CalibrationGate()
        >>> gate.push_inbound(b"\\xff" * 160, now=0.02)
        >>> gate.judge_speech_started(now=0.02).reason
        <Reason.NOT_CALIBRATED: 'NOT_CALIBRATED'>
    """

    __slots__ = ("_config", "_echo", "_floor", "_judge", "_late", "_line", "_watch")

    def __init__(self, config: CalibrationConfig | None = None) -> None:
        self._config = config if config is not None else CalibrationConfig()
        cfg = self._config
        self._line = LineHistory()
        self._echo = EchoPath(cfg, self._line)
        self._floor = NoiseFloor(cfg, self._line, self._echo)
        line, floor, echo = self._line, self._floor, self._echo
        early = EarlySpeech(cfg, line, echo)
        self._watch = LateBargeInWatch(cfg, line=line, floor=floor, echo=echo, early=early)
        self._judge = SpeechStartJudge(
            cfg, line=line, floor=floor, echo=echo, early=early, watch=self._watch
        )
        self._late: Decision | None = None

    # ------------------------------------------------------------------ feeding audio

    def push_inbound(self, frame: bytes | bytearray | memoryview, now: float) -> None:
        """Feed caller audio as it arrives from the phone (Twilio ``media``, decoded base64).

        Args:
            frame: 8 kHz mu-law audio; a positive multiple of 160 bytes (20 ms).
            now: Monotonic time in seconds (only recorded; the gate counts audio in frames).

        Raises:
            TypeError: If *frame* is not bytes-like.
            ValueError: If its length is not a positive multiple of 160 bytes.
        """
        if type(frame) is bytes and len(frame) == FRAME_BYTES:  # the hot path: one frame
            self._inbound_frame(frame, now)
            return
        size = check_frame(frame, what="inbound frame")
        data = bytes(frame)
        for start in range(0, size, FRAME_BYTES):
            self._inbound_frame(data[start : start + FRAME_BYTES], now)

    def _inbound_frame(self, frame: bytes, now: float) -> None:
        """One caller frame: record it, learn every block, watch a suppressed segment."""
        line = self._line
        line.push_inbound(frame)
        n = line.in_count
        if n % BLOCK == 0 and (self._floor.calibrated_since is None or n % (2 * BLOCK) == 0):
            self._echo.update(self._floor.update(now))
        if self._watch.onset is not None:
            detail = self._watch.frame(line.last_power(), n)
            if detail is not None:
                self._line.caller_spoke(self._line.in_count - 1)
                self._late = self._judge.final(Verdict.ALLOW, Reason.OK, detail)

    def push_outbound(self, audio: bytes | bytearray | memoryview, now: float) -> None:
        """Feed the bot's audio at the moment it is handed to the phone.

        Audio of any length is accepted (a model's audio deltas are not frame-aligned); the
        remainder of a partial frame waits for the next call. The gate places each outbound frame
        at the current position of the inbound stream, or right after the previous outbound
        frame if that is later (the phone plays its buffer in order).

        Args:
            audio: 8 kHz mu-law audio.
            now: Monotonic time in seconds (only recorded).

        Raises:
            TypeError: If *audio* is not bytes-like.
        """
        self._line.push_outbound(audio)

    # ------------------------------------------------------------------ judging

    @property
    def calibrated(self) -> bool:
        """True once the noise floor is known."""
        return self._floor.calibrated_since is not None

    @property
    def config(self) -> CalibrationConfig:
        """The gate's configuration."""
        return self._config

    def judge_speech_started(
        self, now: float, *, audio_start_ms: int | None = None, user_has_spoken: bool = False
    ) -> Decision:
        """Judge an ``input_audio_buffer.speech_started``: is it the caller barging in?

        Call it when the event arrives, after feeding the inbound audio received so far.

        Args:
            now: Monotonic time in seconds.
            audio_start_ms: The event's ``audio_start_ms``, if the gate has seen every inbound
                frame appended to the model's input buffer since the session began (then the
                gate looks at the audio from the onset on); otherwise the last 200 ms are judged.
            user_has_spoken: Whether the caller has spoken before in this call (only consulted
                with :attr:`~voiceguard.CalibrationConfig.require_user_has_spoken`).

        Returns:
            A :class:`~voiceguard.Decision` about :attr:`~voiceguard.Action.BARGE_IN`: allowed,
            suppressed with its reason, or deferred (:attr:`~voiceguard.Decision.retry_at` says
            when to call :meth:`recheck`). A new ``speech_started`` replaces a pending one, and
            ends the watch over the previous segment (see :meth:`poll_barge_in`).
        """
        self._watch.stop()
        self._late = None
        return self._judge.start(
            now, audio_start_ms=audio_start_ms, user_has_spoken=user_has_spoken
        )

    def recheck(self, now: float) -> Decision:
        """Judge the deferred ``speech_started`` again (at or after its ``retry_at``).

        Args:
            now: Monotonic time in seconds.

        Returns:
            The new decision (possibly another deferral).

        Raises:
            StateTransitionError: If no ``speech_started`` is deferred.
        """
        if self._judge.deadline is None:
            raise StateTransitionError(
                state="no speech_started deferred",
                event="recheck",
                detail="only a deferred judgement can be rechecked",
            )
        return self._judge.judge(now)

    def speech_stopped(self, now: float) -> Decision | None:
        """Report ``input_audio_buffer.speech_stopped``.

        It also ends the watch over a suppressed segment (see :meth:`poll_barge_in`); a late
        barge-in found before the stop stays available to :meth:`poll_barge_in`.

        Args:
            now: Monotonic time in seconds.

        Returns:
            The final decision on a ``speech_started`` that was still deferred (suppressed with
            :attr:`~voiceguard.Reason.TOO_SHORT`: the speech ended before it was confirmed), or
            ``None`` if none was.
        """
        self._watch.stop()
        return self._judge.speech_stopped()

    def poll_barge_in(self, now: float) -> Decision | None:
        """A late barge-in: the caller's own speech found inside a suppressed segment.

        The server VAD raises one ``speech_started`` per segment. When the bot's echo or line
        noise opened the segment and the gate suppressed it, a caller who starts talking before
        the segment ends gets no ``speech_started`` of their own. So after a suppression the gate
        keeps watching the caller's frames until :meth:`speech_stopped` or the next
        :meth:`judge_speech_started`, with the same test as a judgement (frames
        :attr:`~voiceguard.CalibrationConfig.speech_margin_db` above noise and echo for
        :attr:`~voiceguard.CalibrationConfig.confirm_time`, a speech-like spectrum). Call this
        after :meth:`push_inbound`; it costs nothing when there is no news.

        Args:
            now: Monotonic time in seconds.

        Returns:
            At most once per suppressed segment, an allowed :class:`~voiceguard.Decision`
            about :attr:`~voiceguard.Action.BARGE_IN` with :attr:`~voiceguard.Reason.OK`, to be
            treated as a barge-in; otherwise ``None``. Nothing is watched when
            :attr:`~voiceguard.CalibrationConfig.watch_suppressed_speech` is off, or after a
            suppression with :attr:`~voiceguard.Reason.USER_NOT_SPOKEN`.

        .. versionadded:: 0.1.0
        """
        late = self._late
        if late is not None:
            self._late = None
        return late

    def next_deadline(self) -> float | None:
        """When to call :meth:`recheck` for a deferred ``speech_started``, or ``None``."""
        return self._judge.deadline

    def late_speech_from_ms(self) -> float | None:
        """Where the caller's speech of the last late barge-in (:meth:`poll_barge_in`) began:
        the inbound audio's position (ms from the first frame pushed, the clock of the VAD's
        ``audio_start_ms``), or ``None`` when none was found or its start is not known (found
        before calibration). The segment the VAD opened for echo or noise began earlier; the
        caller's own speech, a backchannel perhaps, is measured from here.

        .. versionadded:: 0.2.0
        """
        start = self._watch.speech_from
        return None if start is None else start * FRAME_SECONDS * 1000

    def caller_quiet(self, seconds: float = 0.2) -> bool:
        """True when the caller's channel stayed below the noise floor plus
        :attr:`~voiceguard.CalibrationConfig.speech_margin_db` for the last *seconds* (their
        speech has ended); False while the floor is unknown or before that much audio came.
        Once the echo path is learnt, the echo it predicts counts with the floor: the tail of
        the bot's echo after a pause is not the caller.

        .. versionadded:: 0.2.0
        """
        floor = self._floor.dbfs
        frames = max(1, round(seconds / FRAME_SECONDS))
        line = self._line
        if floor is None or line.in_count < frames:
            return False
        inbound = window(line.in_db, line.in_count, frames)
        margin = self._config.speech_margin_db
        echo = self._echo
        if echo.delay is None or echo.erl is None:
            return float(inbound.max()) < floor + margin
        predicted = echo.bound(line.in_count, frames)
        expected = line_without_caller(floor, predicted)
        return bool(np.all(inbound < expected + margin))

    # ------------------------------------------------------------------ reporting

    def statistics(self) -> CalibrationStatistics:
        """An immutable snapshot of what the gate has learned and decided."""
        floor, echo, judge = self._floor, self._echo, self._judge
        return CalibrationStatistics(
            calibrated=floor.calibrated_since is not None,
            calibrated_since=floor.calibrated_since,
            calibrated_on_timeout=floor.timed_out,
            noise_floor_dbfs=floor.dbfs,
            echo_delay_ms=None if echo.delay is None else echo.delay * FRAME_SECONDS * 1000,
            echo_return_loss_db=echo.erl,
            echo_confidence=echo.confidence,
            inbound_frames=self._line.in_count,
            outbound_frames=self._line.out_count,
            deferrals=judge.deferrals,
            decisions=types.MappingProxyType(dict(judge.counts)),
            late_barge_ins=self._watch.late_count,
        )

    def __repr__(self) -> str:
        dbfs = self._floor.dbfs
        floor = "unknown" if dbfs is None else f"{dbfs:.1f} dBFS"
        return (
            f"<CalibrationGate calibrated={self.calibrated} noise_floor={floor} "
            f"echo_delay_frames={self._echo.delay}>"
        )
