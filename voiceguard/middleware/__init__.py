"""Drop-in guards for an existing bot: wrap its sockets, keep its code.

Most phone bots already bridge Twilio to the Realtime API in their own loop, like the popular
Twilio sample. They adopt voiceguard by wrapping the sockets they already have::

    from voiceguard.middleware import GuardedCall

    call = GuardedCall()                 # one per call
    websocket = call.phone(websocket)    # the Twilio socket: watched, never changed
    openai_ws = call.model(openai_ws)    # the model socket: guarded

From then on, what the bot sends to the model passes the guards (a ``response.cancel`` only
for a response that can still be cancelled, a ``response.create`` only when the conversation is
free, held until it is; a ``conversation.item.truncate`` never past what the caller heard), what
the model sends is observed into the call's state, audio of a cancelled response never reaches
the bot, and, in turn control (the default), the bot sees only real barge-ins: its own echo and
line noise are hidden from it. See the tutorial in the documentation (*Add voiceguard to your
bot*).

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from voiceguard.config import GuardConfig
from voiceguard.middleware.call import GuardedCall
from voiceguard.middleware.decorators import call_timer
from voiceguard.middleware.guard import CallGuard, GuardStep
from voiceguard.middleware.model import (
    CloseErrors,
    GuardedChannel,
    GuardedModel,
    GuardedRealtimeConnection,
    GuardedWebSocket,
)
from voiceguard.middleware.phone import GuardedPhone

__all__ = (
    "CallGuard",
    "CloseErrors",
    "GuardConfig",
    "GuardStep",
    "GuardedCall",
    "GuardedChannel",
    "GuardedModel",
    "GuardedPhone",
    "GuardedRealtimeConnection",
    "GuardedWebSocket",
    "call_timer",
)
