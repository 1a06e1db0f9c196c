"""Simulation helpers: stand-ins for the peers of a phone call.

For now this holds :class:`~voiceguard.sim.vad.EnergyVad`, an energy voice-activity detector that
emulates the OpenAI Realtime ``server_vad`` closely enough to label a corpus and to drive a
simulator: it consumes 8 kHz mu-law frames and reports speech start and stop with the same
``audio_start_ms`` / ``audio_end_ms`` fields the server sends.
"""

from __future__ import annotations

from voiceguard.sim.vad import EnergyVad, VadEvent, VadSpeechStarted, VadSpeechStopped

__all__ = ("EnergyVad", "VadEvent", "VadSpeechStarted", "VadSpeechStopped")
