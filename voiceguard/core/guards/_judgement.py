"""The calibration gate's judgement of one ``speech_started``: allow, suppress or defer.

For the frames since the speech onset :class:`SpeechStartJudge` predicts what the line would carry
without the caller (noise floor plus the echo of what the bot said one delay earlier) and counts
the frames that rise :attr:`~voiceguard.CalibrationConfig.speech_margin_db` above it. Enough of
them, with a speech-like spectrum: allowed. None, and the bot's echo explains the energy:
suppressed as echo. Some but not enough while the bot talks: deferred as double talk, to be
judged again. Before calibration only the early rule (:class:`EarlySpeech`) can allow.
"""

from __future__ import annotations

import logging
from typing import final

import numpy as np
import numpy.typing as npt

from voiceguard.audio import FRAME_SECONDS, SILENCE_DBFS
from voiceguard.config import CalibrationConfig
from voiceguard.core.guards._early_speech import EarlySpeech
from voiceguard.core.guards._echo_path import EchoPath, line_without_caller
from voiceguard.core.guards._line import RING, LineHistory, frames_of, window
from voiceguard.core.guards._listen import EchoListen
from voiceguard.core.guards._noise_floor import NoiseFloor
from voiceguard.core.guards._spectrum import noise_like, unvoiced
from voiceguard.core.guards._watch import LateBargeInWatch
from voiceguard.decisions import Action, Decision, Reason, Verdict

__all__ = ("SpeechStartJudge",)

logger = logging.getLogger("voiceguard.guards.calibration")


@final
class SpeechStartJudge:
    """Judges the pending ``speech_started`` of one call, and counts the decisions.

    Args:
        config: The gate's configuration.
        line: The call's history, read only.
        floor: The call's noise floor, read only.
        echo: The call's echo path, read only.
        early: The rule before calibration.
        watch: Started on the segment of each suppression it explains by the audio.

    Attributes:
        deadline: When to judge the deferred ``speech_started`` again, or ``None``.
        deferrals: How many deferrals were returned.
        counts: Final decisions so far, per reason.
    """

    __slots__ = (
        "_config",
        "_confirm_frames",
        "_early",
        "_echo",
        "_floor",
        "_line",
        "_listen",
        "_onset",
        "_since",
        "_user_has_spoken",
        "_watch",
        "counts",
        "deadline",
        "deferrals",
    )

    def __init__(
        self,
        config: CalibrationConfig,
        *,
        line: LineHistory,
        floor: NoiseFloor,
        echo: EchoPath,
        early: EarlySpeech,
        watch: LateBargeInWatch,
    ) -> None:
        self._config = config
        self._line = line
        self._floor = floor
        self._echo = echo
        self._early = early
        self._watch = watch
        self._listen = EchoListen(config, line, echo)
        self._confirm_frames = frames_of(config.confirm_time)
        self._onset: int | None = None
        self._since = 0.0
        self._user_has_spoken = False
        self.deadline: float | None = None
        self.deferrals = 0
        self.counts: dict[Reason, int] = {}

    def start(self, now: float, *, audio_start_ms: int | None, user_has_spoken: bool) -> Decision:
        """A new ``speech_started`` (see :meth:`CalibrationGate.judge_speech_started`)."""
        cfg = self._config
        n = self._line.in_count
        if audio_start_ms is not None:
            onset = (audio_start_ms + cfg.prefix_padding_ms) // round(FRAME_SECONDS * 1000)
            if audio_start_ms <= 0:  # the padding was cut at the start: onset is earlier
                onset = 0
            onset = min(max(onset, n - 25), n - 1)
        else:
            onset = n - 10
        self._onset = max(0, onset)
        self._listen.stop()
        self._line.caller_spoke(self._onset)  # the echo path learns nothing from it meanwhile
        self._since = now
        self._user_has_spoken = user_has_spoken
        return self.judge(now)

    def speech_stopped(self) -> Decision | None:
        """``speech_stopped``: the final decision on a still deferred ``speech_started``, if any.

        A segment listened to (the bot paused) is judged on what the pause let through.
        """
        pending = self.deadline is not None
        self.deadline = None
        onset, self._onset = self._onset, None
        listening = pending and self._listen.onset is not None
        heard: tuple[bool, str] | None = None
        if listening:  # judged while the segment is still the one listened to
            n, reference = self._line.in_count, self._reference()
            heard = self._listen.judge(n, reference)
            if heard is None:  # no verdict yet: a word may have ended before its echo would
                refuted = self._listen.absent_after(n, reference)
                heard = None if refuted is None else (True, refuted)
        self._listen.stop()
        self._line.caller_ended()
        if not pending:
            return None
        if listening:
            if heard is not None and heard[0]:
                return self._allow(heard[1], onset)
            why = heard[1] if heard is not None else "speech stopped while the bot paused"
            return self.final(Verdict.SUPPRESS, Reason.ECHO_SUSPECTED, why)
        return self.final(Verdict.SUPPRESS, Reason.TOO_SHORT, "speech stopped before confirmed")

    def _reference(self) -> float:
        """The line without anyone on it: the noise floor, or the quietest frame before it."""
        if self._floor.calibrated_since is not None and self._floor.dbfs is not None:
            return self._floor.dbfs
        return self._line.quietest_db()

    def _allow(self, detail: str, onset: int | None) -> Decision:
        """Allow the pending ``speech_started``: the caller speaks from *onset* on."""
        self._line.caller_spoke(onset if onset is not None else self._line.in_count)
        return self.final(Verdict.ALLOW, Reason.OK, detail)

    def final(self, verdict: Verdict, reason: Reason, detail: str) -> Decision:
        """Record a final decision (allowed or suppressed) and return it."""
        self.deadline = None
        self.counts[reason] = self.counts.get(reason, 0) + 1
        if verdict is Verdict.SUPPRESS:
            self._line.caller_cleared()  # echo or noise: the echo path may learn from it
        # DEBUG: the bridge and the middleware record each judgement once, at INFO when
        # suppressed, with the call's fields (guard "calibration_gate").
        if verdict is Verdict.SUPPRESS:
            logger.debug("speech_started suppressed: %s (%s)", reason.value, detail)
        else:
            logger.debug("speech_started allowed: %s", detail)
        return Decision(action=Action.BARGE_IN, verdict=verdict, reason=reason, detail=detail)

    def _suppress(self, reason: Reason, detail: str, onset: int) -> Decision:
        """Suppress the pending ``speech_started`` and watch its segment for the caller."""
        if self._config.watch_suppressed_speech:
            self._watch.start(onset)
        return self.final(Verdict.SUPPRESS, reason, detail)

    def _defer(self, now: float, reason: Reason, detail: str, *, capped: bool = True) -> Decision:
        """Ask again shortly; *capped*: no later than ``max_defer`` after the event (a pause to
        listen is bounded by the listening itself)."""
        cfg = self._config
        retry_at = now + cfg.retry_interval
        if capped:
            retry_at = max(min(retry_at, self._since + cfg.max_defer), now + 0.001)
        self.deadline = retry_at
        self.deferrals += 1
        logger.debug("speech_started deferred: %s (%s)", reason.value, detail)
        return Decision(
            action=Action.BARGE_IN,
            verdict=Verdict.DEFER,
            reason=reason,
            retry_at=retry_at,
            detail=detail,
        )

    def judge(self, now: float) -> Decision:
        """Judge the pending ``speech_started`` on the audio heard so far."""
        cfg = self._config
        n = self._line.in_count
        onset = self._onset if self._onset is not None else n - 10
        if self._listen.onset is not None:
            return self._listened(now, onset, n)
        early: str | None = None
        if self._floor.calibrated_since is None:
            if cfg.allow_speech_before_calibration:
                early = self._early.find(onset, n)
                waiting = self._early.unvoiced  # a word's first consonant, or a cough
                if (
                    waiting is not None
                    and self._early.echo_free_end(onset, n) == n
                    and now - self._since < cfg.max_defer - 1e-9
                ):
                    return self._defer(now, Reason.TOO_SHORT, waiting)
            if early is None and cfg.require_calibration:
                reference = self._reference()
                if (
                    cfg.listen_when_unsure
                    and self._early.echo_free_end(onset, n) < n
                    and self._speech_like(onset, n, reference)
                ):
                    return self._start_listening(now, onset, n, reference)
                return self._suppress(
                    Reason.NOT_CALIBRATED,
                    f"noise floor unknown after {n * FRAME_SECONDS:.2f} s of caller audio",
                    onset,
                )
        if cfg.require_user_has_spoken and not self._user_has_spoken:
            return self.final(Verdict.SUPPRESS, Reason.USER_NOT_SPOKEN, "caller has not spoken")
        if early is not None:
            return self._allow(early, onset)
        width = max(1, min(n - onset, RING // 4))
        floor = self._floor.dbfs if self._floor.dbfs is not None else SILENCE_DBFS
        inbound = window(self._line.in_db, n, width)
        bound = self._echo.bound(n, width)
        known = self._echo.delay is not None and self._echo.erl is not None
        echo = bound
        if not known:
            echo = np.minimum(bound, self._listen.echo_prediction(n - width, n, floor))
        bot_talks = bool(np.any(echo > floor - 3.0))
        above = inbound - line_without_caller(floor, echo) >= cfg.speech_margin_db
        evidence = int(np.count_nonzero(above))
        peak = float(inbound.max() - floor)
        timed_out = now - self._since >= cfg.max_defer - 1e-9
        if peak < cfg.noise_margin_db:
            return self._suppress(
                Reason.BELOW_NOISE_FLOOR,
                f"peak {peak:.1f} dB above the noise floor ({floor:.1f} dBFS)",
                onset,
            )
        if evidence >= self._confirm_frames:
            return self._confirmed(now, onset, above, evidence)
        if bot_talks:
            if evidence == 0 or timed_out:
                # A pause that heard the echo end bounds its delay: energy that the echo at
                # those delays explains needs no second pause (a pause longer than the server
                # VAD's silence ends its segment, and the resumed bot's echo starts the next).
                heard = not known and evidence == 0 and self._heard_echo(n, floor, bound, inbound)
                unsure = not known and not heard
                if cfg.listen_when_unsure and unsure and self._speech_like(onset, n, floor):
                    return self._start_listening(now, onset, n, floor)
                why = f"echo explains the energy ({evidence} caller frames)"
                if heard:
                    within = self._listen.heard_within or 0
                    why = f"{why[:-1]}; a pause heard its echo end within {within * 20} ms)"
                return self._suppress(Reason.ECHO_SUSPECTED, why, onset)
            return self._defer(now, Reason.DOUBLE_TALK, f"{evidence} caller frames so far")
        if timed_out or (evidence == 0 and n - onset >= self._confirm_frames * 3):
            return self._suppress(
                Reason.BELOW_NOISE_FLOOR,
                f"only {evidence} frames {cfg.speech_margin_db:g} dB above the noise floor",
                onset,
            )
        return self._defer(now, Reason.TOO_SHORT, f"{evidence} speech frames so far")

    def _heard_echo(
        self,
        n: int,
        floor: float,
        bound: npt.NDArray[np.float64],
        inbound: npt.NDArray[np.float64],
    ) -> bool:
        """True if a pause heard the echo end and the echo at the delays it left possible
        explains every frame of *inbound* (the frames before *n*)."""
        if self._listen.heard_within is None:
            return False
        heard = self._listen.echo_prediction(n - inbound.size, n, floor, heard=True)
        expected = line_without_caller(floor, np.minimum(bound, heard))
        return not np.any(inbound - expected >= self._config.speech_margin_db)

    def _speech_like(self, onset: int, n: int, reference: float) -> bool:
        """True if frames *onset* to *n* carry enough speech-like energy above *reference* to
        be a caller (the echo aside): worth a pause to find out."""
        inbound = window(self._line.in_db, n, max(1, min(n - onset, RING // 4)))
        loud = inbound - reference >= self._config.speech_margin_db
        if int(np.count_nonzero(loud)) < self._confirm_frames:
            return False
        return noise_like(self._line.speech_frames(loud, n)) is None

    def _start_listening(self, now: float, onset: int, n: int, floor: float) -> Decision:
        """Ask the bot to pause, and listen for speech where its echo cannot reach."""
        self._listen.start(onset, n, floor)
        return self._defer(
            now,
            Reason.ECHO_UNCERTAIN,
            f"echo path not known yet: pause the bot and listen (echo up to "
            f"{self._listen.lag * 20} ms late)",
            capped=False,
        )

    def _listened(self, now: float, onset: int, n: int) -> Decision:
        """The bot was asked to pause: judge what the pause lets through."""
        heard = self._listen.judge(n, self._reference())
        if heard is None:
            return self._defer(
                now, Reason.ECHO_UNCERTAIN, "listening while the bot pauses", capped=False
            )
        self._listen.stop()
        allowed, why = heard
        if allowed:
            return self._allow(why, onset)
        return self._suppress(Reason.ECHO_SUSPECTED, why, onset)

    def _confirmed(
        self, now: float, onset: int, above: npt.NDArray[np.bool_], evidence: int
    ) -> Decision:
        """Enough frames rose above noise and echo: allowed, unless too short or a noise burst."""
        cfg = self._config
        n = self._line.in_count
        lasted = (n - onset) * FRAME_SECONDS
        if lasted + 1e-9 < cfg.min_speech_duration:
            retry_at = now + (cfg.min_speech_duration - lasted)
            self.deadline = retry_at
            self.deferrals += 1
            logger.debug("speech_started deferred: TOO_SHORT (lasted %.0f ms)", lasted * 1e3)
            return Decision(
                action=Action.BARGE_IN,
                verdict=Verdict.DEFER,
                reason=Reason.TOO_SHORT,
                retry_at=retry_at,
                detail=f"speech lasted {lasted * 1000:.0f} ms so far",
            )
        if cfg.min_speech_duration > 0 and not above[-(self._confirm_frames + 1) :].any():
            return self._suppress(
                Reason.TOO_SHORT,
                f"energy gone before {cfg.min_speech_duration * 1000:.0f} ms",
                onset,
            )
        frames = self._line.speech_frames(above, n)
        burst = noise_like(frames)
        if burst is not None:
            return self._suppress(Reason.BELOW_NOISE_FLOOR, burst, onset)
        silent = unvoiced(frames, self._reference())
        if silent is not None:
            # A word may begin with a consonant (/s/ of "stop"): its vowel decides. Where the
            # bot's echo, not known yet, may hide that vowel, pause the bot and listen.
            known = self._echo.delay is not None and self._echo.erl is not None
            if cfg.listen_when_unsure and not known and self._line.last_bot_frame >= onset:
                return self._start_listening(now, onset, n, self._reference())
            if now - self._since < cfg.max_defer - 1e-9:
                return self._defer(now, Reason.TOO_SHORT, silent)
            return self._suppress(Reason.BELOW_NOISE_FLOOR, f"noise burst: {silent}", onset)
        return self._allow(
            f"{evidence} frames {cfg.speech_margin_db:g} dB above noise and echo", onset
        )
