from __future__ import annotations

import numpy as np
import pytest

from voiceguard.audio import encode_ulaw
from voiceguard.sim import EnergyVad, VadSpeechStarted, VadSpeechStopped


def _tone(level_dbfs: float, seconds: float) -> np.ndarray:
    """A 440 Hz tone at *level_dbfs* (RMS)."""
    n = round(seconds * 8000)
    t = np.arange(n) / 8000
    amplitude = 32768 * 10 ** (level_dbfs / 20) * np.sqrt(2)
    tone: np.ndarray = amplitude * np.sin(2 * np.pi * 440 * t)
    return tone


def _noise(level_dbfs: float, seconds: float, seed: int = 0) -> np.ndarray:
    n = round(seconds * 8000)
    return np.random.default_rng(seed).normal(0, 32768 * 10 ** (level_dbfs / 20), n)


def _ulaw(signal: np.ndarray) -> bytes:
    return encode_ulaw(np.clip(np.round(signal), -32768, 32767).astype(np.int16))


def _run(vad: EnergyVad, data: bytes) -> list[VadSpeechStarted | VadSpeechStopped]:
    events: list[VadSpeechStarted | VadSpeechStopped] = []
    for i in range(0, len(data), 160):
        events.extend(vad.push(data[i : i + 160]))
    return events


def test_speech_start_and_stop_with_server_fields() -> None:
    signal = np.concatenate(
        [_noise(-65, 1.0), _tone(-25, 1.0) + _noise(-65, 1.0, 1), _noise(-65, 1.5, 2)]
    )
    events = _run(EnergyVad(), _ulaw(signal))
    assert len(events) == 2
    start, stop = events
    assert isinstance(start, VadSpeechStarted)
    assert isinstance(stop, VadSpeechStopped)
    assert start.speech_onset_ms == 1000
    assert start.audio_start_ms == 700  # 300 ms prefix padding
    assert start.detected_ms == 1060  # three active frames
    assert stop.speech_end_ms == 2000
    assert stop.audio_end_ms == stop.detected_ms == 2500  # includes the 500 ms silence


def test_quiet_line_raises_nothing_and_floor_tracks_noise() -> None:
    vad = EnergyVad()
    assert _run(vad, _ulaw(_noise(-60, 3.0))) == []
    assert vad.floor_dbfs == pytest.approx(-61, abs=2)
    assert not vad.speaking
    assert vad.audio_ms == 3000


def test_loud_line_noise_trips_it_until_it_adapts() -> None:
    events = _run(EnergyVad(), _ulaw(_noise(-35, 10.0)))
    assert isinstance(events[0], VadSpeechStarted)
    assert events[0].speech_onset_ms == 0
    assert isinstance(events[1], VadSpeechStopped)  # adapted within the 10 s


def test_higher_threshold_needs_louder_speech() -> None:
    signal = _ulaw(np.concatenate([_noise(-70, 1.0), _tone(-45, 1.0), _noise(-70, 1.0, 1)]))
    assert _run(EnergyVad(threshold=0.5), signal)
    assert _run(EnergyVad(threshold=0.9), signal) == []


def test_push_accepts_several_frames_and_push_energies_matches() -> None:
    signal = _ulaw(np.concatenate([_noise(-65, 1.0), _tone(-20, 0.5), _noise(-65, 1.0, 1)]))
    by_frame = _run(EnergyVad(), signal)
    assert EnergyVad().push(signal) == tuple(by_frame)


def test_bad_input() -> None:
    vad = EnergyVad()
    with pytest.raises(ValueError, match="VAD frame has 100 bytes"):
        vad.push(b"\xff" * 100)
    with pytest.raises(TypeError, match="VAD frame must be mu-law bytes"):
        vad.push("x" * 160)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="threshold"):
        EnergyVad(threshold=1.5)
    with pytest.raises(ValueError, match="silence_duration_ms"):
        EnergyVad(silence_duration_ms=-1)
    assert "threshold=0.5" in repr(vad)
