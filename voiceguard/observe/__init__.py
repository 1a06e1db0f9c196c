"""Observability: per-call metrics, call traces, replay and the call timeline.

* :mod:`voiceguard.observe.metrics`: :class:`~voiceguard.CallMetrics`, one snapshot per call.
* :mod:`voiceguard.observe.trace`: JSON Lines call traces (:class:`TraceRecorder`,
  :func:`load_trace`).
* :mod:`voiceguard.observe.replay`: a trace replayed through the guards, and drawn
  (``voiceguard replay``).
"""
