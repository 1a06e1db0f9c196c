"""The scenario library: the classic races and faults, each with what a bridge must do.

:data:`voiceguard.sim.scenarios.SCENARIOS` holds them by name. A new scenario is a function here
that returns a :class:`~voiceguard.sim.scenarios.Scenario`, listed in :data:`LIBRARY`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from voiceguard.sim._scenario import Expectation, Scenario
from voiceguard.sim.caller import CallerSimulator, EchoPath, HangUp, Speak
from voiceguard.sim.realtime import (
    ConnectionRecord,
    EventFault,
    FunctionCall,
    RealtimeSimulator,
    Reply,
)
from voiceguard.sim.signals import speech_like

if TYPE_CHECKING:
    from voiceguard.sim.scenarios import ScenarioRun

__all__ = ("LIBRARY",)

# ============================================================================================
# Checks shared by several scenarios


def _no_errors(run: ScenarioRun) -> bool:
    return not run.error_codes(crossed=False)


def _no_error(code: str) -> Callable[[ScenarioRun], bool]:
    def check(run: ScenarioRun) -> bool:
        return code not in run.error_codes(crossed=False)

    return check


def _statuses(connection: ConnectionRecord) -> list[tuple[str, str | None]]:
    out = []
    for e in connection.sent("response.done"):
        response = e.event["response"]
        details = response.get("status_details") or {}
        out.append((str(response["status"]), details.get("reason")))
    return out


def _nothing_left(run: ScenarioRun) -> bool:
    return run.leftover_tasks == 0 and run.simulator.statistics().connections_open == 0


_NOTHING_LEFT: Final = Expectation(
    kind="must_not",
    text="leave a task or a model connection behind after the call",
    holds=_nothing_left,
)


def _first_time(connection: ConnectionRecord, event_type: str) -> float | None:
    sent = connection.sent(event_type)
    return sent[0].time if sent else None


# ============================================================================================
# The scenarios

_GREETING: Final = Reply(text="Hello, thanks for calling. How can I help you today?", duration=3.0)


def _echo_in_first_seconds() -> Scenario:
    def greeting_completed(run: ScenarioRun) -> bool:
        statuses = _statuses(run.connections[0]) if run.connections else []
        return bool(statuses) and statuses[0][0] == "completed"

    def heard_whole_greeting(run: ScenarioRun) -> bool:
        return run.calls[0].heard_seconds >= 2.9

    def paused_briefly(run: ScenarioRun) -> bool:
        # Until the echo path is known, the guard may pause the greeting once to listen (echo
        # ends with the bot's audio, a caller goes on): at most once, and briefly.
        call = run.calls[0]
        if not call.heard:
            return False
        span = call.heard[-1].time + 0.02 - call.heard[0].time
        return len(call.clears) <= 1 and span - call.heard_seconds <= 1.0

    return Scenario(
        name="echo-in-first-seconds",
        title="the greeting's echo trips the server VAD",
        description=(
            "The line has no echo canceller and a poor echo return loss (6 dB): the bot's own "
            "greeting comes back in the caller's audio 100 ms later and the server VAD reports "
            "speech_started. The caller says nothing."
        ),
        make_simulator=lambda: RealtimeSimulator(replies=[_GREETING], audio_speed=4.0),
        make_caller=lambda _n: CallerSimulator(
            script=[HangUp(at=7.0)], echo=EchoPath(delay=0.1, return_loss_db=6.0), noise_dbfs=-62
        ),
        expectations=(
            Expectation(
                kind="must_not",
                text="let the greeting be cancelled by its own echo",
                holds=greeting_completed,
            ),
            Expectation(kind="must", text="play the whole greeting", holds=heard_whole_greeting),
            Expectation(
                kind="must_not",
                text="stop the greeting but once, to listen for under a second",
                holds=paused_briefly,
            ),
            _NOTHING_LEFT,
        ),
    )


def _cancel_races_done() -> Scenario:
    def cleared(run: ScenarioRun) -> bool:
        return bool(run.calls[0].clears)

    return Scenario(
        name="cancel-races-done",
        title="barge-in after response.done, while the answer still plays",
        description=(
            "The model generates a 2.5 s answer four times faster than real time, so "
            "response.done arrives while most of it is still buffered on the phone. The caller "
            "interrupts after hearing 1.5 s. A response.cancel now finds nothing active."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[_GREETING, Reply(text="Our opening hours are nine to five.", duration=2.5)]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="What are your hours?"),
                Speak(after_heard=4.5, duration=1.0, text="Sorry, one more thing"),
                HangUp(at=12.0),
            ]
        ),
        expectations=(
            Expectation(
                kind="must_not",
                text="send response.cancel when no response is active",
                holds=_no_error("response_cancel_not_active"),
            ),
            Expectation(kind="must", text="clear the phone's playout on barge-in", holds=cleared),
            _NOTHING_LEFT,
        ),
    )


def _speech_started_burst() -> Scenario:
    return Scenario(
        name="speech-started-burst",
        title="a burst of speech_started while the bot speaks",
        description=(
            "During a long answer the caller says 'uh', 'um', 'wait' with pauses long enough to "
            "end each VAD turn, and the server duplicates one speech_started: several "
            "speech_started arrive within a second."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(text="Let me explain our plans in detail. " * 4, duration=8.0),
            ],
            faults=[
                EventFault(
                    event_type="input_audio_buffer.speech_started",
                    action="duplicate",
                    occurrences=(2,),
                )
            ],
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Tell me about your plans"),
                Speak(after_heard=4.5, duration=0.3, text="uh"),
                Speak(after_heard=5.1, duration=0.3, text="um"),
                Speak(after_heard=5.7, duration=0.6, text="wait"),
                HangUp(at=16.0),
            ]
        ),
        expectations=(
            Expectation(
                kind="must_not",
                text="send a second response.cancel for the same response",
                holds=_no_error("response_cancel_not_active"),
            ),
            Expectation(
                kind="must_not",
                text="send response.create while a response is active",
                holds=_no_error("conversation_already_has_active_response"),
            ),
            _NOTHING_LEFT,
        ),
    )


def _hangup_fallback_outlives_call() -> Scenario:
    def second_call_not_cut(run: ScenarioRun) -> bool:
        return len(run.calls) == 2 and run.calls[1].ended_by == "caller"

    def first_call(number: int) -> CallerSimulator:
        if number == 0:
            return CallerSimulator(
                script=[
                    Speak(after_heard=3.0, duration=0.8, text="That's all, bye"),
                    HangUp(after_heard=3.6),
                ],
                seed=1,
            )
        return CallerSimulator(script=[HangUp(at=9.0)], seed=2)

    return Scenario(
        name="hangup-fallback-outlives-call",
        title="a hang-up fallback from the last call fires in the next one",
        description=(
            "The model says goodbye and calls end_call. The caller hangs up before the goodbye "
            "has played, so the bridge's ~6 s hang-up fallback is still pending when the call "
            "ends. The next call starts half a second later and must not be hung up by it."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(
                    text="Thanks for calling, goodbye!",
                    duration=2.0,
                    function_call=FunctionCall(name="end_call"),
                ),
            ]
        ),
        make_caller=first_call,
        calls=2,
        expectations=(
            Expectation(
                kind="must_not",
                text="hang up the next call with the previous call's timer",
                holds=second_call_not_cut,
            ),
            _NOTHING_LEFT,
        ),
    )


def _watchdog_after_goodbye() -> Scenario:
    def nothing_after_goodbye(run: ScenarioRun) -> bool:
        connection = run.connections[0] if run.connections else None
        if connection is None:
            return False
        goodbye = _first_time(connection, "response.function_call_arguments.done")
        if goodbye is None:
            return False
        return not [e for e in connection.received("response.create") if e.time > goodbye] and not [
            e for e in connection.sent("response.created") if e.time > goodbye
        ]

    return Scenario(
        name="watchdog-after-goodbye",
        title="a watchdog or turn-end create after the goodbye started",
        description=(
            "The model says a 3 s goodbye and calls end_call; the caller talks over the goodbye. "
            "The caller's turn ends while the hang-up is pending: neither the turn nor a "
            "watchdog may start a new response."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(
                    text="Alright, have a great day, goodbye!",
                    duration=3.0,
                    function_call=FunctionCall(name="end_call"),
                ),
            ]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Nothing else, thanks"),
                Speak(after_heard=4.0, duration=0.8, text="Oh and also"),
                HangUp(at=16.0),
            ]
        ),
        expectations=(
            Expectation(
                kind="must_not",
                text="start a response after the end_call function call",
                holds=nothing_after_goodbye,
            ),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _watchdog_lost_response() -> Scenario:
    def answered(run: ScenarioRun) -> bool:
        call = run.calls[0]
        if not call.spoke:
            return False
        return call.heard_between(call.spoke[0][1]) >= 1.0

    def one_retry(run: ScenarioRun) -> bool:
        creates = len(run.connections[0].received("response.create")) if run.connections else 0
        auto = (
            run.simulator.statistics().responses_created + run.simulator.statistics().responses_lost
        )
        return creates <= 3 and auto <= 3

    return Scenario(
        name="watchdog-lost-response",
        title="the response to a caller's turn is lost",
        description=(
            "The caller's turn ends but the model never answers (no response.created, no "
            "error). A watchdog should ask again, once."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(lost=True),
                Reply(text="Sorry, yes, we're open.", duration=2.0),
            ]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[Speak(after_heard=3.0, duration=0.8, text="Are you open?"), HangUp(at=12.0)]
        ),
        expectations=(
            Expectation(
                kind="must", text="answer the caller despite the lost response", holds=answered
            ),
            Expectation(kind="must_not", text="send a storm of response.create", holds=one_retry),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _truncate_long_buffered_audio() -> Scenario:
    def truncated_to_heard(run: ScenarioRun) -> bool:
        connection = run.connections[0] if run.connections else None
        call = run.calls[0]
        if connection is None or not call.clears:
            return False
        truncated = connection.sent("conversation.item.truncated")
        if not truncated:
            return False
        heard_ms = (call.heard_between(0.0, call.clears[0]) - 3.0) * 1000  # minus the greeting
        end_ms = int(truncated[-1].event["audio_end_ms"])
        return heard_ms - 300 <= end_ms <= heard_ms + 100

    def silent_after_clear(run: ScenarioRun) -> bool:
        call = run.calls[0]
        return bool(call.clears) and call.heard_between(call.clears[0] + 0.1) <= 0.05

    return Scenario(
        name="truncate-long-buffered-audio",
        title="barge-in into a long answer buffered far ahead on the phone",
        description=(
            "The model generates a 20 s answer ten times faster than real time: after 2 s all of "
            "it sits in Twilio's buffer. The caller interrupts after hearing 3 s of it. The "
            "truncate must match what was heard (marks), not what was generated or sent."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[_GREETING, Reply(text="Here is the long story. " * 10, duration=20.0)],
            default_reply=Reply(text="", duration=0.0),
            audio_speed=10.0,
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Tell me everything"),
                Speak(after_heard=6.0, duration=1.0, text="Stop, stop"),
                HangUp(at=14.0),
            ]
        ),
        expectations=(
            Expectation(
                kind="must",
                text="truncate the answer to the audio the caller heard",
                holds=truncated_to_heard,
            ),
            Expectation(
                kind="must_not",
                text="play the interrupted answer after the barge-in",
                holds=silent_after_clear,
            ),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _caller_speaks_first() -> Scenario:
    def answered(run: ScenarioRun) -> bool:
        call = run.calls[0]
        created = run.connections[0].sent("response.created") if run.connections else []
        turn_end = call.started_at + call.spoke[0][1] if call.spoke else math.inf
        after_turn = [e.time - call.started_at for e in created if e.time > turn_end]
        return bool(after_turn) and call.heard_between(after_turn[0]) >= 1.0

    return Scenario(
        name="caller-speaks-first",
        title="the caller talks before and over the greeting",
        description=(
            "The caller starts talking as soon as the call connects, over the greeting. The "
            "greeting and the caller's turn compete for the one active response."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[_GREETING, Reply(text="Sure, let me check that for you.", duration=2.0)]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(at=0.1, duration=1.6, text="Hi, I'm calling about my order"),
                HangUp(at=12.0),
            ]
        ),
        expectations=(
            Expectation(kind="must", text="answer the caller after they stop", holds=answered),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _socket_drop_mid_response() -> Scenario:
    def ended(run: ScenarioRun) -> bool:
        call = run.calls[0]
        connection = run.connections[0] if run.connections else None
        if connection is None or not connection.dropped:
            return False
        reconnected = len(run.connections) > 1
        return reconnected or (call.ended_by == "bot" and (call.ended_at or 99.0) < 10.0)

    return Scenario(
        name="socket-drop-mid-response",
        title="the model's socket drops in the middle of an answer",
        description=(
            "After 1 s of the answer's audio the Realtime WebSocket is dropped without a close "
            "frame. The bridge must notice, and either reconnect or end the call; it must not "
            "leave the caller on a dead line."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(text="Let me look that up.", duration=4.0, drop_connection_after=1.0),
            ]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Where is my order?"),
                HangUp(at=20.0),
            ]
        ),
        expectations=(
            Expectation(kind="must", text="end the call or reconnect after the drop", holds=ended),
            _NOTHING_LEFT,
        ),
    )


def _duplicated_and_delayed_events() -> Scenario:
    def answered(run: ScenarioRun) -> bool:
        call = run.calls[0]
        return bool(call.spoke) and call.heard_between(call.spoke[0][1]) >= 1.0

    return Scenario(
        name="duplicated-and-delayed-events",
        title="response.done arrives twice and response.created late",
        description=(
            "The network duplicates every response.done and delays the second response.created "
            "by 0.4 s (after its first audio). A bridge that counts events instead of tracking "
            "ids gets its response state wrong."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[_GREETING, Reply(text="Yes, that's right.", duration=1.5)],
            faults=[
                EventFault(event_type="response.done", action="duplicate"),
                EventFault(
                    event_type="response.created", action="delay", seconds=0.4, occurrences=(2,)
                ),
            ],
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[Speak(after_heard=3.0, duration=0.8, text="Is that right?"), HangUp(at=10.0)]
        ),
        expectations=(
            Expectation(kind="must", text="answer the caller", holds=answered),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


def _cough_during_the_answer() -> Scenario:
    answer_seconds = 8.0

    def statuses(run: ScenarioRun) -> list[tuple[str, str | None]]:
        return _statuses(run.connections[0]) if run.connections else []

    def not_cancelled(run: ScenarioRun) -> bool:
        done = statuses(run)
        cancels = run.connections[0].received("response.cancel") if run.connections else []
        return len(done) >= 2 and done[1][0] == "completed" and not cancels

    def heard_the_answer(run: ScenarioRun) -> bool:
        call = run.calls[0]
        if not call.spoke:
            return False
        return call.heard_between(call.spoke[0][1]) >= 0.95 * answer_seconds

    return Scenario(
        name="cough-during-the-answer",
        title="the caller coughs while the bot answers",
        description=(
            "Three seconds into an 8 s answer the caller coughs: a 180 ms loud burst, enough for "
            "the server VAD to raise speech_started and speech_stopped. It is not the caller "
            "taking the turn: the answer must go on, and the caller must hear it all."
        ),
        make_simulator=lambda: RealtimeSimulator(
            replies=[
                _GREETING,
                Reply(text="Our plans start at ten dollars a month. " * 3, duration=answer_seconds),
            ]
        ),
        make_caller=lambda _n: CallerSimulator(
            script=[
                Speak(after_heard=3.0, duration=0.8, text="Tell me about your plans"),
                Speak(after_heard=6.0, audio=speech_like(0.18, level_dbfs=-12.0, seed=9)),
                HangUp(at=17.0),
            ]
        ),
        expectations=(
            Expectation(kind="must_not", text="cancel the answer for a cough", holds=not_cancelled),
            Expectation(
                kind="must", text="play at least 95% of the answer", holds=heard_the_answer
            ),
            Expectation(kind="must_not", text="trigger protocol errors", holds=_no_errors),
            _NOTHING_LEFT,
        ),
    )


#: Every scenario of the library, in the order they are listed.
LIBRARY: Final[tuple[Scenario, ...]] = (
    _echo_in_first_seconds(),
    _cancel_races_done(),
    _speech_started_burst(),
    _hangup_fallback_outlives_call(),
    _watchdog_after_goodbye(),
    _watchdog_lost_response(),
    _truncate_long_buffered_audio(),
    _caller_speaks_first(),
    _socket_drop_mid_response(),
    _duplicated_and_delayed_events(),
    _cough_during_the_answer(),
)
