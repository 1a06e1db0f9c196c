"""Who has the floor: the turn engine's state machine, as a table.

A phone call is a conversation over one line: at any moment the bot speaks, the caller speaks,
or the line waits. :class:`~voiceguard.core.turns.TurnEngine` keeps that as a :class:`Floor` and
moves it only through :data:`FLOOR_TRANSITIONS`, a table from ``(floor, trigger)`` to the next
floor, in the style of h11's state machine. The engine's barge-in policy reads off the moves:

* ``BOT`` or ``JUDGING`` → ``PAUSED``: the caller barged in; the bot is paused at once (Twilio
  ``clear``), not yet cancelled.
* ``PAUSED`` → ``CALLER``: the caller kept talking; the response is cancelled and truncated to
  what was heard.
* ``PAUSED`` → ``BOT``: the speech was too short to be the caller taking the turn (a cough, a
  click); the bot plays on from where the caller stopped hearing it.
* ``BOT`` or ``JUDGING`` → ``PAUSED`` → ``BOT`` or ``CALLER``: the gate could not tell the
  speech from the bot's echo (the echo path is not known yet), so the bot pauses while the gate
  listens; an echo ends with the bot's audio (the bot plays on), a caller goes on talking (the
  barge-in is confirmed as above).

The same table draws the state diagram of the architecture page (:func:`floor_diagram`). Every
pair is in the table: a trigger that changes nothing maps a floor to itself, so the engine never
meets a missing move.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from types import MappingProxyType
from typing import Final, final

__all__ = ("FLOOR_TRANSITIONS", "Floor", "FloorTrigger", "floor_diagram")


@final
class Floor(enum.Enum):
    """Who holds the floor of the call."""

    #: Nobody speaks. No response runs, nothing plays; the line waits for the caller.
    LISTENING = "LISTENING"
    #: The caller speaks (speech the calibration gate judged real), and the bot is silent.
    CALLER = "CALLER"
    #: The bot speaks. A response was asked for or runs, or its audio still plays on the phone.
    BOT = "BOT"
    #: The bot speaks and the server heard speech start; the gate has not decided yet whether it
    #: is the caller (the bot plays on meanwhile).
    JUDGING = "JUDGING"
    #: The caller barged in. The bot is paused on the phone, waiting for the barge-in to be
    #: confirmed (the caller keeps talking) or found false (the speech stopped too soon).
    PAUSED = "PAUSED"
    #: The call is over.
    ENDED = "ENDED"


@final
class FloorTrigger(enum.Enum):
    """What moves the floor."""

    #: The server's VAD heard speech start (``speech_started``); the gate judges it.
    SPEECH_STARTED = "SPEECH_STARTED"
    #: The gate judged the speech to be the caller (at once, after a deferral, or a late
    #: barge-in found inside a segment it had suppressed).
    SPEECH_REAL = "SPEECH_REAL"
    #: The gate judged the speech to be the bot's echo or line noise.
    SPEECH_NOT_REAL = "SPEECH_NOT_REAL"
    #: The gate cannot yet tell the speech from the bot's echo, whose path is not known, so the
    #: bot pauses and the gate listens where no echo of it can reach.
    SPEECH_UNSURE = "SPEECH_UNSURE"
    #: The pause to listen found the speech to be the bot's echo, which ended with its audio.
    ECHO_HEARD = "ECHO_HEARD"
    #: A barge-in's speech stopped before it lasted the minimum (a false interruption).
    SPEECH_TOO_SHORT = "SPEECH_TOO_SHORT"
    #: A barge-in's speech went on until the confirmation time (or stopped after the minimum).
    BARGE_IN_CONFIRMED = "BARGE_IN_CONFIRMED"
    #: A real caller turn ended (``input_audio_buffer.committed``).
    TURN_COMMITTED = "TURN_COMMITTED"
    #: The bot started. A ``response.create`` went out, a response started, or audio plays.
    BOT_STARTED = "BOT_STARTED"
    #: The bot finished. No response runs or is asked for, and nothing is left to play.
    BOT_FINISHED = "BOT_FINISHED"
    #: The call ended (hung up, Twilio ``stop``, a socket closed).
    CALL_ENDED = "CALL_ENDED"


_F = Floor
_T = FloorTrigger


def _build() -> Mapping[tuple[Floor, FloorTrigger], Floor]:
    moves: dict[tuple[Floor, FloorTrigger], Floor] = {
        (_F.LISTENING, _T.SPEECH_REAL): _F.CALLER,
        (_F.LISTENING, _T.BOT_STARTED): _F.BOT,
        (_F.CALLER, _T.TURN_COMMITTED): _F.LISTENING,
        (_F.CALLER, _T.BOT_STARTED): _F.BOT,
        (_F.BOT, _T.SPEECH_STARTED): _F.JUDGING,
        (_F.BOT, _T.SPEECH_REAL): _F.PAUSED,
        (_F.BOT, _T.SPEECH_UNSURE): _F.PAUSED,
        (_F.BOT, _T.BOT_FINISHED): _F.LISTENING,
        (_F.JUDGING, _T.SPEECH_REAL): _F.PAUSED,
        (_F.JUDGING, _T.SPEECH_NOT_REAL): _F.BOT,
        (_F.JUDGING, _T.SPEECH_UNSURE): _F.PAUSED,
        (_F.JUDGING, _T.BOT_FINISHED): _F.LISTENING,
        (_F.PAUSED, _T.BARGE_IN_CONFIRMED): _F.CALLER,
        (_F.PAUSED, _T.SPEECH_TOO_SHORT): _F.BOT,
        (_F.PAUSED, _T.ECHO_HEARD): _F.BOT,
    }
    table: dict[tuple[Floor, FloorTrigger], Floor] = {}
    for floor in Floor:
        for trigger in FloorTrigger:
            if trigger is _T.CALL_ENDED:
                table[floor, trigger] = _F.ENDED
            else:
                table[floor, trigger] = moves.get((floor, trigger), floor)
    return MappingProxyType(table)


#: ``(floor, trigger) -> next floor``, for every pair (most pairs keep the floor).
FLOOR_TRANSITIONS: Final = _build()

#: What each move that changes the floor does, for the diagram and the docs.
_EFFECTS: Final = {
    (_F.BOT, _T.SPEECH_REAL): "pause: Twilio clear",
    (_F.JUDGING, _T.SPEECH_REAL): "pause: Twilio clear",
    (_F.BOT, _T.SPEECH_UNSURE): "pause to listen: Twilio clear",
    (_F.JUDGING, _T.SPEECH_UNSURE): "pause to listen: Twilio clear",
    (_F.PAUSED, _T.ECHO_HEARD): "resume from heard",
    (_F.PAUSED, _T.BARGE_IN_CONFIRMED): "cancel + truncate to heard",
    (_F.PAUSED, _T.SPEECH_TOO_SHORT): "resume from heard",
    (_F.CALLER, _T.TURN_COMMITTED): "answer the turn",
}


def floor_diagram() -> str:
    """The floor's state diagram in Graphviz ``dot``, drawn from
    :data:`~voiceguard.core.floor.FLOOR_TRANSITIONS`.

    Only the moves that change the floor are drawn; every floor also moves to ``ENDED`` when the
    call ends (one edge stands for all of them).
    """
    lines = [
        "digraph floor {",
        '  rankdir=LR; node [shape=box, style="rounded,filled", fillcolor="#f4f6fb", '
        'fontname="Helvetica"]; edge [fontname="Helvetica", fontsize=10];',
    ]
    for (floor, trigger), after in FLOOR_TRANSITIONS.items():
        if after is floor or trigger is _T.CALL_ENDED:
            continue
        label = trigger.value.lower().replace("_", " ")
        effect = _EFFECTS.get((floor, trigger))
        if effect:
            label += f"\\n({effect})"
        lines.append(f'  {floor.value} -> {after.value} [label="{label}"];')
    lines.append('  any [shape=plaintext, style="", label="any floor"];')
    lines.append('  any -> ENDED [label="call ended", style=dashed];')
    lines.append("}")
    return "\n".join(lines)
