"""The engine of :class:`~voiceguard.sim.realtime.RealtimeSimulator`, one module per concern.

``script`` (what the model does) and ``records`` (what happened) hold the public classes that
:mod:`voiceguard.sim.realtime` exports. A connection's server state is split by the job each part
does: ``context`` (what they share: settings, counters, ids, event order), ``outbox`` (server events
on their way out, with faults and beta names), ``session`` (the session configuration),
``conversation`` (the items), ``input_audio`` (the input buffer and the server VAD), ``responses``
(the responses and their timelines), ``output`` (what a response streams) and ``connection`` (the
receive loop that dispatches client events to them).
"""
