"""The engine of :class:`~voiceguard.sim.caller.CallerSimulator`, one module per concern.

``script`` (what the caller does) and ``records`` (what happened) hold the public classes that
:mod:`voiceguard.sim.caller` exports; ``outbound`` reads the messages a bot sends to Twilio, and
``call`` is one call's loop: the script, Twilio's playout buffer, and the line to the bot.
"""
