"""What the turn engine asks its driver to do.

The engine is sans-IO: every input returns a list of :data:`TurnAction` to carry out, in order.
The reference media handler sends the messages over its two sockets; the middleware sends them
over the bot's own sockets and hands the bot the events it should see.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeAlias, final

if TYPE_CHECKING:
    from voiceguard.tools import Tool

__all__ = ("Deliver", "EndCall", "RunTool", "SendToModel", "SendToPhone", "TurnAction")


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SendToModel:
    """Send *message* to the Realtime API (serialise it with :func:`voiceguard.protocol.dumps`).

    Attributes:
        message: A client event. When the middleware forwards a bot's message unchanged, this
            is the very object the bot passed (so it can go out exactly as the bot wrote it).
    """

    message: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class SendToPhone:
    """Send *message* to Twilio.

    Attributes:
        message: A Twilio ``media``, ``mark`` or ``clear`` message (or a bot's message of
            another kind, forwarded unchanged).
    """

    message: Mapping[str, Any]


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Deliver:
    """Hand the bot one event of the model (middleware only), now, in this order.

    Attributes:
        event: What the driver passed in with the event (the raw message or the SDK's object),
            so the bot gets exactly what the model sent.
    """

    event: object = field(repr=False)


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class EndCall:
    """End the call: close the Twilio stream (with no TwiML after ``<Connect>``, the call ends).

    Attributes:
        reason: Why, for the logs (``"goodbye played"``, ``"hang-up fallback"``,
            ``"caller silent"``, ``"maximum call duration"``).

    .. versionadded:: 0.2.0
       Named ``HangUp`` before (that name stays for one release, deprecated); the simulator's
       ``HangUp`` is the caller hanging up, another thing.
    """

    reason: str


#: What the turn engine asks its driver to do.
TurnAction: TypeAlias = SendToModel | SendToPhone | Deliver | EndCall


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class RunTool:
    """Run a tool the model called (the reference bridge only), then hand its result to
    :meth:`BridgeCore.tool_result() <voiceguard.BridgeCore.tool_result>`.

    Attributes:
        tool: The tool.
        call_id: The function call's ``call_id``.
        arguments: The model's arguments, parsed (a JSON object).

    .. versionadded:: 0.2.0
    """

    tool: Tool
    call_id: str
    arguments: Mapping[str, Any]
