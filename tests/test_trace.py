"""Call traces: recorded by the media handler, loaded back, replayed to the same decisions.

The calls are scenarios of the simulator library, played in virtual time (trio's MockClock) over
in-memory transports, so every run is the same and takes a fraction of a second.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import trio.testing

from voiceguard import BridgeConfig, CalibrationConfig
from voiceguard.demo import guarded_bridge
from voiceguard.errors import ConfigError
from voiceguard.observe.replay import replay
from voiceguard.observe.trace import (
    AudioMode,
    Trace,
    TraceError,
    TraceRecorder,
    bridge_config_from_mapping,
    load_trace,
)
from voiceguard.sim.scenarios import SCENARIOS, run_scenario


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, Any]]:
    return ("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})


async def record(scenario: str, directory: Path, audio: AudioMode = "full") -> list[Trace]:
    recorders: list[TraceRecorder] = []

    def new_recorder() -> TraceRecorder:
        recorders.append(TraceRecorder(directory, audio=audio))
        return recorders[-1]

    run = await run_scenario(SCENARIOS[scenario], guarded_bridge(trace=new_recorder))
    assert run.violations() == ()
    traces = []
    for recorder in recorders:
        assert recorder.error is None
        assert recorder.path is not None
        traces.append(load_trace(recorder.path))
    return traces


@pytest.mark.anyio
@pytest.mark.parametrize(
    "scenario",
    [
        "speech-started-burst",  # barge-ins allowed, cancels refused, truncations
        "echo-in-first-seconds",  # echo suppressed by the calibration gate
        "hangup-fallback-outlives-call",  # two calls, the hang-up fallback timer
        "watchdog-lost-response",  # the watchdog timer fires and a create is retried
    ],
)
async def test_a_recorded_call_replays_to_identical_decisions(
    scenario: str, tmp_path: Path
) -> None:
    traces = await record(scenario, tmp_path)
    assert traces
    for trace in traces:
        assert trace.audio == "full"
        kinds = {record["k"] for record in trace.records}
        assert {"in", "out", "decision", "end"} <= kinds
        result = replay(trace)
        assert result.recorded  # every call has at least the greeting's create
        assert result.identical, result.render()
        assert [d.key for d in result.replayed] == [d.key for d in result.recorded]
        assert "identical to the recorded ones" in result.render()


@pytest.mark.anyio
async def test_ticks_are_recorded_as_inputs_and_the_engine_timers_as_decisions(
    tmp_path: Path,
) -> None:
    (trace,) = await record("watchdog-lost-response", tmp_path)
    ticks = {float(r["t"]) for r in trace.of_kind("tick")}
    assert ticks
    # The call's timers are deadlines of the turn engine: the lost create's re-send is a create
    # decision made at a tick (the one input that moves time on).
    (resend,) = [
        r for r in trace.of_kind("decision") if r["action"] == "CREATE" and r["detail"] == "lost"
    ]
    assert resend["verdict"] == "ALLOW"
    assert float(resend["t"]) in ticks
    # ... and the trace says which timer fired, after the tick it fired in.
    (watchdog,) = trace.of_kind("timer")
    assert watchdog["name"] == "watchdog"
    assert watchdog["t"] == resend["t"]
    kinds = [r["k"] for r in trace.records if r.get("t") == resend["t"]]
    assert kinds.index("tick") < kinds.index("timer") < kinds.index("decision")
    assert len(list(trace.of_kind("close"))) == 1
    times = [float(r["t"]) for r in trace.records]
    assert times == sorted(times)  # one clock, in order


@pytest.mark.anyio
async def test_timer_records_of_older_traces_replay_as_ticks(tmp_path: Path) -> None:
    # Before the turn engine, the runtime ran the call timers and wrote a "timer" record when
    # one fired; the engine fires its own deadlines, so such a record is one more tick.
    (trace,) = await record("watchdog-lost-response", tmp_path)
    (resend,) = [
        r for r in trace.of_kind("decision") if r["action"] == "CREATE" and r["detail"] == "lost"
    ]
    assert trace.path is not None
    lines = trace.path.read_text().splitlines()
    at = next(i for i, line in enumerate(lines) if json.loads(line).get("t", -1) >= resend["t"])
    timers = [
        {"k": "timer", "t": resend["t"], "name": "watchdog"},
        {"k": "timer", "t": resend["t"], "name": "idle_prompt", "number": 1},
        {"k": "timer", "t": resend["t"], "name": "a-timer-of-another-runtime"},
    ]
    lines[at:at] = [json.dumps(timer) for timer in timers]
    older = tmp_path / "older.jsonl"
    older.write_text("\n".join(lines) + "\n")
    result = replay(load_trace(older))
    assert result.identical, result.render()


@pytest.mark.anyio
async def test_a_summary_trace_has_no_audio_and_cannot_be_re_decided(tmp_path: Path) -> None:
    (trace,) = await record("echo-in-first-seconds", tmp_path, audio="summary")
    assert trace.audio == "summary"
    media_in = [
        r["msg"]["media"]["payload"]
        for r in trace.of_kind("in")
        if r["msg"].get("event") == "media"
    ]
    assert media_in
    assert all(set(p) == {"bytes", "dbfs"} and p["bytes"] == 160 for p in media_in)
    deltas = [
        r["msg"]["delta"]
        for r in trace.of_kind("in")
        if r["msg"].get("type") == "response.output_audio.delta"
    ]
    assert deltas
    assert all(isinstance(d, dict) for d in deltas)
    appends = [
        r["msg"]["audio"]
        for r in trace.of_kind("out")
        if r.get("msg", {}).get("type") == "input_audio_buffer.append"
    ]
    assert appends
    assert all(isinstance(a, dict) for a in appends)
    assert trace.decisions()  # the decisions are there all the same
    with pytest.raises(TraceError, match="recorded without audio"):
        replay(trace)


@pytest.mark.anyio
async def test_a_changed_configuration_shows_where_decisions_differ(tmp_path: Path) -> None:
    (trace,) = await record("speech-started-burst", tmp_path)
    strict = bridge_config_from_mapping(
        {"calibration": {"speech_margin_db": 40.0}}, base=trace.config
    )
    result = replay(trace, config=strict)
    assert result.config_changed
    assert result.differences
    recorded = [d.recorded for d in result.differences if d.recorded is not None]
    assert any(d.action == "BARGE_IN" and d.verdict == "ALLOW" for d in recorded)
    text = result.render()
    assert "difference(s) from the recording" in text
    assert "\n! " in text


# ---------------------------------------------------------------------------------------------
# The loader's errors


def header(**fields: object) -> str:
    data: dict[str, object] = {"k": "header", "format": "voiceguard-trace", "version": 1}
    data.update(fields)
    return json.dumps(data)


def write(tmp_path: Path, *lines: str) -> Path:
    path = tmp_path / "t.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"k": "tick", "t": 1.0', r"t\.jsonl:3: not JSON"),
        ('["tick", 1.0]', r"t\.jsonl:3: a record must be a JSON object, not list"),
        ('{"k": "nap", "t": 1.0}', r"t\.jsonl:3: field 'k' is 'nap'; expected one of"),
        ('{"k": "tick", "t": "soon"}', r"t\.jsonl:3: tick record: field 't' is 'soon'"),
        ('{"k": "in", "t": 1.0, "peer": "fax", "msg": {}}', r":3: in record: field 'peer'"),
        ('{"k": "in", "t": 1.0, "peer": "phone"}', r":3: in record: field 'msg' is missing"),
        ('{"k": "decision", "t": 1.0, "guard": "g"}', r":3: decision record: field 'action'"),
        ('{"k": "timer", "t": 1.0}', r":3: timer record: field 'name' is missing"),
    ],
)
def test_a_malformed_line_names_its_number_and_problem(
    tmp_path: Path, line: str, message: str
) -> None:
    path = write(tmp_path, header(), '{"k": "tick", "t": 0.5}', line)
    with pytest.raises(TraceError, match=message):
        load_trace(path)


def test_files_that_are_not_traces_are_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(TraceError, match="empty file"):
        load_trace(empty)
    with pytest.raises(TraceError, match="only blank lines"):
        load_trace(write(tmp_path, ""))
    with pytest.raises(TraceError, match=r":1: not a voiceguard trace"):
        load_trace(write(tmp_path, '{"k": "tick", "t": 0}'))
    with pytest.raises(TraceError, match=r":1: trace format version 7"):
        load_trace(write(tmp_path, header(version=7)))
    with pytest.raises(TraceError, match=r":2: a second header"):
        load_trace(write(tmp_path, header(), header()))
    with pytest.raises(TraceError, match="cannot read the trace"):
        load_trace(tmp_path / "missing.jsonl")


def test_a_recorded_message_that_does_not_parse_is_named_by_line(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        header(audio="full", config={}),
        '{"k": "tick", "t": 0.5}',
        '{"k": "in", "t": 1.0, "peer": "phone", "msg": {"event": "media", "media": {}}}',
    )
    with pytest.raises(TraceError, match=r"t\.jsonl:3: the recorded message does not parse"):
        replay(load_trace(path))


def test_configuration_round_trips_and_bad_fields_are_named() -> None:
    config = BridgeConfig(confirm_barge_in=0.4, calibration=CalibrationConfig(speech_margin_db=9.0))
    data = json.loads(json.dumps(__import__("dataclasses").asdict(config)))
    assert bridge_config_from_mapping(data) == config
    with pytest.raises(ConfigError, match=r"BridgeConfig\.calibration\.margin"):
        bridge_config_from_mapping({"calibration": {"margin": 3}})
    with pytest.raises(ConfigError, match=r"BridgeConfig\.confirm_barge_in"):
        bridge_config_from_mapping({"confirm_barge_in": -1})
    with pytest.raises(ConfigError, match=r"BridgeConfig\.cancel"):
        bridge_config_from_mapping({"cancel": 3})


def test_the_recorder_refuses_an_unknown_audio_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"TraceRecorder\.audio"):
        TraceRecorder(tmp_path, audio="some")  # type: ignore[arg-type]


def test_an_unwritable_directory_stops_the_trace_not_the_call(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    recorder = TraceRecorder(blocker / "sub")
    recorder.start('{"event": "start"}', 1.0, call_sid="CA1", stream_sid="MZ1")
    recorder.tick(1.1)
    recorder.end(1.2, ended_by="twilio stop")
    assert isinstance(recorder.error, OSError)
    assert recorder.path is None
