"""Turn control over a session the bot configures: its ``session.update``, seen and corrected.

In turn control the server must neither cancel a response when speech starts
(``interrupt_response``) nor answer a turn by itself (``create_response``): the turn engine does
both, after judging the speech. A bot that configures its own session (the middleware's case)
sends ``session.update`` with the server's defaults; these helpers turn the two settings off in
what it sends, and build the correction for a session that reports them on anyway. Both session
shapes are handled: GA (``session.audio.input.turn_detection``) and beta
(``session.turn_detection``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, Final

from voiceguard.protocol.realtime import SessionCreated, SessionUpdated

__all__ = ("keep_turn_control", "turn_control_fix", "turn_detection_set")

_PATHS: Final = (("audio", "input", "turn_detection"), ("turn_detection",))


def turn_detection_set(message: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The turn detection a ``session.update`` sets (GA or beta place), if it sets one."""
    session = message.get("session")
    for path in _PATHS:
        node: object = session
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping):
            return node
    return None


def keep_turn_control(message: Mapping[str, Any]) -> Mapping[str, Any]:
    """The bot's ``session.update`` with the server's own cancel and answer turned off.

    Only a turn detection the update sets is changed (in a copy: the bot's dict stays as it
    was); one it leaves out is corrected when the session reports it (:func:`turn_control_fix`).
    """
    session = message.get("session")
    if not isinstance(session, Mapping):
        return message
    for path in _PATHS:
        node: object = session
        for key in path:
            node = node.get(key) if isinstance(node, Mapping) else None
        if isinstance(node, Mapping) and (
            node.get("interrupt_response") is not False or node.get("create_response") is not False
        ):
            changed = copy.deepcopy(dict(message))
            target = changed["session"]
            for key in path[:-1]:
                target = target[key]
            target[path[-1]] = {**node, "interrupt_response": False, "create_response": False}
            return changed
    return message


def turn_control_fix(event: SessionCreated | SessionUpdated) -> dict[str, Any] | None:
    """The ``session.update`` that turns the server's cancel and answer off, if the session has
    either on (None when it has neither, or turn detection is off)."""
    detection = event.turn_detection
    if detection is None or not (detection.interrupt_response or detection.create_response):
        return None
    session = event.session
    ga = "audio" in session or session.get("type") == "realtime"
    wanted = {**_turn_detection_of(session, ga=ga), "interrupt_response": False}
    wanted["create_response"] = False
    if ga:
        return {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": wanted}}},
        }
    return {"type": "session.update", "session": {"turn_detection": wanted}}


def _turn_detection_of(session: Mapping[str, Any], *, ga: bool) -> dict[str, Any]:
    found: object
    if ga:
        audio = session.get("audio")
        inp = audio.get("input") if isinstance(audio, Mapping) else None
        found = inp.get("turn_detection") if isinstance(inp, Mapping) else None
    else:
        found = session.get("turn_detection")
    return dict(found) if isinstance(found, Mapping) else {"type": "server_vad"}
