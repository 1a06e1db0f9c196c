"""``voiceguard replay`` and the call timeline (SVG, HTML, and PNG through headless Chromium)."""

from __future__ import annotations

import json
import shutil
import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import trio
import trio.testing

from voiceguard.cli import main
from voiceguard.demo import guarded_bridge
from voiceguard.observe.replay import (
    find_chromium,
    render_timeline,
    replay,
    screenshot_html,
    timeline_html,
    write_timeline,
)
from voiceguard.observe.trace import AudioMode, Trace, TraceRecorder, load_trace
from voiceguard.sim.scenarios import SCENARIOS, run_scenario

SVG = "{http://www.w3.org/2000/svg}"


def record_call(directory: Path, audio: AudioMode) -> Path:
    """One call of a barge-in scenario, recorded (virtual time: instant)."""
    recorders: list[TraceRecorder] = []

    def new_recorder() -> TraceRecorder:
        recorders.append(TraceRecorder(directory, audio=audio))
        return recorders[-1]

    async def play() -> None:
        await run_scenario(SCENARIOS["speech-started-burst"], guarded_bridge(trace=new_recorder))

    trio.run(play, clock=trio.testing.MockClock(autojump_threshold=0))
    (recorder,) = recorders
    assert recorder.path is not None
    return recorder.path


@pytest.fixture(scope="module")
def trace_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return record_call(tmp_path_factory.mktemp("traces"), "full")


@pytest.fixture
def trace(trace_path: Path) -> Trace:
    return load_trace(trace_path)


def test_the_svg_timeline_draws_every_lane_with_hover_titles(trace: Trace) -> None:
    result = replay(trace)
    root = ET.fromstring(render_timeline(trace, result))
    assert root.tag == f"{SVG}svg"
    texts = ["".join(t.itertext()) for t in root.iter(f"{SVG}text")]
    for lane in (
        "Bot audio sent",
        "Bot audio heard",
        "Caller energy (dBFS)",
        "Server VAD",
        "Responses",
        "Calibration gate",
        "Cancel arbiter",
        "Create guard",
        "Actions sent",
    ):
        assert lane in texts
    assert "1 s" in texts  # the time axis, in seconds
    titles = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
    # One circle per decision, coloured by verdict, each with its reason on hover.
    circles = [c for c in root.iter(f"{SVG}circle") if c.find(f"{SVG}title") is not None]
    assert len(circles) == len(result.replayed)
    fills = {c.get("fill") for c in circles}
    assert {"#2e7d32", "#c62828"} <= fills  # allowed and suppressed in this call
    assert any("RESPONSE_ALREADY_DONE" in t for t in titles)
    assert any(t.startswith("response.cancel") or "truncate" in t for t in titles)
    assert any("bot audio heard" in t for t in titles)
    assert any("flushed" in t for t in titles)  # the clear flushed the phone's buffer


def test_a_difference_is_ringed_on_the_timeline(trace: Trace) -> None:
    from voiceguard.observe.trace import bridge_config_from_mapping  # noqa: PLC0415

    strict = bridge_config_from_mapping({"calibration": {"speech_margin_db": 40.0}})
    result = replay(trace, config=strict)
    assert result.differences
    root = ET.fromstring(render_timeline(trace, result))
    rings = [c for c in root.iter(f"{SVG}circle") if c.get("stroke") == "#000"]
    assert len(rings) >= len(result.differences) - 1  # the legend's ring is one


def test_the_html_timeline_embeds_the_svg_and_a_decision_table(trace: Trace) -> None:
    page = timeline_html(trace, replay(trace))
    assert page.startswith("<!DOCTYPE html>")
    assert "<svg" in page
    assert page.count("<tr>") == 1 + len(trace.decisions())
    assert "<script" not in page and "http://" not in page.replace("http://www.w3.org/2000/svg", "")


def test_an_unknown_timeline_suffix_is_refused(trace: Trace, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"unknown suffix '\.pdf'; use \.html, \.svg or \.png"):
        write_timeline(tmp_path / "t.pdf", trace)


def test_replay_command_prints_decisions_and_writes_a_timeline(
    trace_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "call.html"
    assert main(["replay", str(trace_path), "--timeline", str(out)]) == 0
    printed = capsys.readouterr()
    assert "BARGE_IN" in printed.out and "RESPONSE_ALREADY_DONE" in printed.out
    assert "identical to the recorded ones" in printed.out
    assert "<svg" in out.read_text(encoding="utf-8")
    assert "timeline written" in printed.err


def test_replay_command_with_a_config_flags_the_differences(
    trace_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "strict.json"
    config.write_text(json.dumps({"calibration": {"speech_margin_db": 40.0}}))
    assert main(["replay", str(trace_path), "--config", str(config)]) == 0
    printed = capsys.readouterr().out
    assert "with a changed configuration" in printed
    assert "difference(s) from the recording" in printed
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"calibration": {"nonsense": 1}}))
    assert main(["replay", str(trace_path), "--config", str(bad)]) == 2
    assert "BridgeConfig.calibration.nonsense" in capsys.readouterr().err


def test_replay_command_names_the_malformed_line(
    trace_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = trace_path.read_text(encoding="utf-8").splitlines()
    lines[4] = lines[4][:-3]  # cut off the end of line 5
    broken = tmp_path / "broken.jsonl"
    broken.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["replay", str(broken)]) == 2
    assert f"{broken}:5: not JSON" in capsys.readouterr().err


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


chromium = pytest.mark.skipif(find_chromium() is None, reason="needs Chromium (headless)")


@chromium
def test_the_html_timeline_renders_in_headless_chromium(trace: Trace, tmp_path: Path) -> None:
    page = tmp_path / "call.html"
    write_timeline(page, trace, replay(trace))
    shot = tmp_path / "call.png"
    screenshot_html(page, shot, width=1520, height=1100)
    width, height = png_size(shot.read_bytes())
    assert (width, height) == (1520, 1100)
    pytest.importorskip("PIL")
    from PIL import Image  # noqa: PLC0415

    with Image.open(shot) as image:
        colours = {rgb for _, rgb in image.convert("RGB").getcolors(maxcolors=1 << 20) or []}
    # Drawn, not blank: the verdict colours, the bot's audio and the caller's energy are there.
    for colour in ((0x2E, 0x7D, 0x32), (0xC6, 0x28, 0x28), (0x15, 0x65, 0xC0)):
        assert colour in colours
    assert len(colours) > 50


@chromium
def test_replay_command_draws_a_png(
    trace_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "call.png"
    assert main(["replay", str(trace_path), "--timeline", str(out)]) == 0
    width, height = png_size(out.read_bytes())
    assert width == 1500 and height > 500


def test_a_png_without_chromium_says_what_to_install(
    trace: Trace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    with pytest.raises(RuntimeError, match=r"needs Chromium \(Debian/Ubuntu: apt-get install"):
        write_timeline(tmp_path / "t.png", trace)


def test_a_trace_without_audio_shows_its_recorded_decisions_and_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = record_call(tmp_path, "summary")
    out = tmp_path / "call.svg"
    assert main(["replay", str(path), "--timeline", str(out)]) == 0
    printed = capsys.readouterr()
    assert "recorded without audio" in printed.err
    assert "showing the recorded decisions" in printed.err
    assert "RESPONSE_ALREADY_DONE" in printed.out
    root = ET.fromstring(out.read_text(encoding="utf-8"))
    titles = ["".join(t.itertext()) for t in root.iter(f"{SVG}title")]
    assert any("caller energy" in t for t in titles)  # drawn from the recorded energies
    assert any("bot audio heard" in t for t in titles)
