from __future__ import annotations

import importlib
import math
import warnings
from types import ModuleType

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceguard import audio


def _audioop() -> ModuleType | None:
    """The G.711 reference oracle: stdlib ``audioop`` (deprecated) or ``audioop-lts``."""
    for name in ("audioop", "audioop_lts"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            try:
                return importlib.import_module(name)
            except ImportError:
                continue
    return None


ORACLE = _audioop()
needs_oracle = pytest.mark.skipif(ORACLE is None, reason="neither audioop nor audioop-lts")


@needs_oracle
def test_decode_is_bit_exact_with_reference() -> None:
    assert ORACLE is not None
    every_code = bytes(range(256))
    expected = np.frombuffer(ORACLE.ulaw2lin(every_code, 2), dtype=np.int16)
    np.testing.assert_array_equal(audio.decode_ulaw(every_code), expected)


@needs_oracle
def test_encode_is_bit_exact_with_reference_for_every_sample() -> None:
    assert ORACLE is not None
    every_sample = np.arange(-32768, 32768, dtype=np.int16)
    assert audio.encode_ulaw(every_sample) == ORACLE.lin2ulaw(every_sample.tobytes(), 2)


def test_decode_then_encode_round_trips_every_code_but_negative_zero() -> None:
    codes = bytes(range(256))
    again = audio.encode_ulaw(audio.decode_ulaw(codes))
    # 0x7F is "negative zero"; it decodes to 0, which encodes as 0xFF.
    assert again == codes.replace(b"\x7f", b"\xff")


def test_decode_known_values() -> None:
    assert audio.decode_ulaw(b"\xff\x7f\x00\x80").tolist() == [0, 0, -32124, 32124]


@given(st.lists(st.integers(-32768, 32767), min_size=1, max_size=400))
def test_encode_accepts_python_ints_and_int16_alike(samples: list[int]) -> None:
    assert audio.encode_ulaw(samples) == audio.encode_ulaw(np.array(samples, dtype=np.int16))


def test_encode_rejects_out_of_range_and_float() -> None:
    with pytest.raises(ValueError, match="16-bit"):
        audio.encode_ulaw([40000])
    with pytest.raises(ValueError, match="integers"):
        audio.encode_ulaw(np.array([0.5]))


def test_energy_of_full_scale_square_and_silence() -> None:
    square = np.array([32767, -32768] * 80, dtype=np.int16)
    assert audio.pcm_energy_dbfs(square) == pytest.approx(0.0, abs=0.01)
    assert audio.ulaw_energy_dbfs(b"\xff" * 160) == audio.SILENCE_DBFS
    assert audio.pcm_energy_dbfs(np.zeros(160)) == audio.SILENCE_DBFS


def test_ulaw_energy_matches_decoded_pcm_energy() -> None:
    t = np.arange(160) / audio.SAMPLE_RATE
    for level in (-40.0, -30.0, -10.0):
        amplitude = 32768 * 10 ** (level / 20) * math.sqrt(2)
        sine = np.round(amplitude * np.sin(2 * np.pi * 1000 * t)).astype(np.int16)
        frame = audio.encode_ulaw(sine)
        via_pcm = audio.pcm_energy_dbfs(audio.decode_ulaw(frame))
        assert audio.ulaw_energy_dbfs(frame) == pytest.approx(via_pcm, abs=1e-9)
        # mu-law quantisation changes the level by far less than 1 dB
        assert audio.ulaw_energy_dbfs(frame) == pytest.approx(level, abs=0.5)


def test_power_to_dbfs() -> None:
    assert audio.power_to_dbfs(1.0) == 0.0
    assert audio.power_to_dbfs(0.01) == pytest.approx(-20.0)
    assert audio.power_to_dbfs(0.0) == audio.SILENCE_DBFS


def test_check_frame() -> None:
    assert audio.check_frame(b"\xff" * 320) == 320
    assert audio.check_frame(memoryview(bytearray(160))) == 160
    with pytest.raises(TypeError, match="inbound frame must be mu-law bytes"):
        audio.check_frame("abc", what="inbound frame")
    with pytest.raises(TypeError, match="ndarray"):
        audio.check_frame(np.zeros(160, dtype=np.uint8))
    with pytest.raises(ValueError, match="has 159 bytes; expected a positive multiple of 160"):
        audio.check_frame(b"\xff" * 159)
    with pytest.raises(ValueError, match="has 0 bytes"):
        audio.check_frame(b"")


def test_empty_and_wrong_type_inputs() -> None:
    with pytest.raises(ValueError, match="empty"):
        audio.ulaw_power(b"")
    with pytest.raises(ValueError, match="empty"):
        audio.pcm_energy_dbfs([])
    with pytest.raises(TypeError, match="bytes-like"):
        audio.decode_ulaw([1, 2, 3])  # type: ignore[arg-type]


def test_constants() -> None:
    assert audio.FRAME_BYTES == 160
    assert audio.FRAME_SECONDS == 0.02
    assert audio.SAMPLE_RATE == 8000


def _tone(hz: float, seconds: float = 1.0, rate: int = 24000) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (8000 * np.sin(2 * np.pi * hz * t)).astype("<i2")


def test_pcm16_at_24k_becomes_8k_mulaw_of_the_same_level() -> None:
    pcm = _tone(440.0)
    out = audio.UlawConverter(audio.PCM24K).feed(pcm.tobytes())
    assert len(out) == 8000  # one mu-law byte per 8 kHz sample
    assert audio.ulaw_energy_dbfs(out[800:]) == pytest.approx(audio.pcm_energy_dbfs(pcm), abs=0.3)


def test_pcm16_above_the_phone_band_does_not_alias_into_it() -> None:
    out = audio.UlawConverter(audio.PCM24K).feed(_tone(10_000.0).tobytes())
    assert audio.ulaw_energy_dbfs(out[800:]) < -60.0  # a naive decimation gives -15 dBFS here


@given(st.lists(st.integers(min_value=1, max_value=1500), min_size=1, max_size=40))
def test_chunk_boundaries_leave_no_trace(sizes: list[int]) -> None:
    data = _tone(300.0, seconds=0.5).tobytes()
    whole = audio.UlawConverter(audio.PCM24K).feed(data)
    converter = audio.UlawConverter(audio.PCM24K)
    pieces, at = [], 0
    for size in sizes:
        pieces.append(converter.feed(data[at : at + size]))
        at += size
    pieces.append(converter.feed(data[at:]))
    assert b"".join(pieces) == whole


def test_g711_formats_convert_sample_for_sample() -> None:
    ulaw = audio.encode_ulaw(_tone(440.0, rate=8000))
    assert audio.UlawConverter(audio.PCMU).feed(ulaw) == ulaw
    alaw = audio.encode_alaw(audio.decode_ulaw(ulaw))
    back = audio.UlawConverter(audio.PCMA).feed(alaw)
    assert len(back) == len(ulaw)
    assert audio.ulaw_energy_dbfs(back) == pytest.approx(audio.ulaw_energy_dbfs(ulaw), abs=0.2)
    assert np.abs(audio.decode_alaw(alaw).astype(int) - audio.decode_ulaw(ulaw)).max() < 600
