"""Smoke runs of the benchmark scripts, so that they cannot rot; and the fast paths they led to.

Each script runs in a subprocess with ``--smoke`` (a tiny size) and ``--json``; the test checks
that it exits 0 and that its JSON has the keys the documentation's tables come from. No
thresholds: timing goals live in the benchmarks themselves, never in tests. The per-frame fast
paths (an append serialised directly, a well-formed ``media`` message read directly) are checked
against the general code they shortcut.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from voiceguard.errors import RemoteProtocolError
from voiceguard.protocol import dumps, input_audio_append, parse_twilio_message

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
_TIMEOUT = 120


def _run(script: str, *args: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--smoke", "--json", *args],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        cwd=BENCHMARKS.parent,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout)
    assert {"command", "machine", "method"} <= result.keys()
    assert {"cpu", "cores", "python"} <= result["machine"].keys()
    assert "--smoke" in result["command"]
    return result


def test_guard_cost() -> None:
    result = _run("guard_cost.py")
    per_event = result["per_event_us"]
    for kind in (
        "CancelArbiter.request (allowed)",
        "CancelArbiter.request (suppressed)",
        "ResponseCreateGuard.request (allowed)",
        "ResponseCreateGuard.request (deferred)",
        "ResponseCreateGuard.request (suppressed)",
        "CallState.observe(audio delta)",
        "CallScopedTimer.restart (arm)",
        "CalibrationGate.judge_speech_started (allowed)",
    ):
        assert per_event[kind] >= 0.0
    assert {"target_us", "worst_us", "target_met"} <= result.keys()


def test_inbound_path() -> None:
    result = _run("inbound_path.py")
    assert result["frames"] == 50
    assert set(result["per_frame_us"]) == set(result["ratio_to_floor"])
    assert result["ratio_to_floor"]["floor (json.loads + json.dumps)"] == pytest.approx(1.0)
    assert {"bridge (guards on)", "bridge (guards off)"} <= result["per_frame_us"].keys()


def test_bridge_cpu() -> None:
    result = _run("bridge_cpu.py")
    assert set(result["cpu_ms_per_call_second"]) == {"guards on", "guards off", "naive"}
    assert all(value > 0 for value in result["cpu_ms_per_call_second"].values())
    assert {"ratio_on_to_off", "ratio_naive_to_off", "target_met"} <= result.keys()
    assert set(result["in_process_ms_per_call_second"]) == {"guards on", "guards off", "naive"}


def test_middleware_cost() -> None:
    """The sample bot, with and without the middleware, and the handler all bridge the calls
    of both measures (each forwards the caller's 50 frames a second to the model)."""
    result = _run("middleware_cost.py")
    bots = {"sample", "sample + middleware", "MediaHandler"}
    for measure in ("virtual_clock", "real_time"):
        part = result[measure]
        assert set(part["bots"]) == bots
        for name, bot in part["bots"].items():
            assert bot["cpu_ms_per_call_second"] > 0, (measure, name)
            assert bot["messages_per_call_second"] >= 100, (measure, name)
        assert part["ratio_to_sample"]["sample"] == pytest.approx(1.0)
        assert "middleware_ms_per_call_second" in part


def test_load() -> None:
    result = _run("load.py")
    (round_,) = result["rounds"]
    assert round_["calls"] == 2
    assert round_["frames_not_forwarded"] == 0
    assert round_["forwarding_delay_ms"]["frames"] > 0
    assert round_["server_cpu_ms_per_call_second"] > 0
    assert {"p50", "p99"} <= round_["barge_in_reaction_ms"].keys()
    assert "largest_calls_p99_under_20ms" in result


def test_side_by_side() -> None:
    """Every bridge of the side-by-side comparison starts, forwards and is measured."""
    result = _run("side_by_side.py")
    assert set(result["bridges"]) == {"voiceguard", "guards-off", "naive", "hand-written"}
    for bridge, sizes in result["bridges"].items():
        figures = sizes["2"]
        assert figures["lost"] == 0 and figures["failed"] == 0, bridge
        assert figures["cpu"] > 0 and figures["idle_mib"] > 10, bridge
    assert result["failed_rounds"] == []
    assert {"voiceguard / hand-written", "voiceguard / guards-off"} <= result["cpu_ratios"].keys()
    assert any(line.startswith("idle RSS") for line in result["verdicts"])


def test_memory() -> None:
    result = _run("memory.py")
    assert result["state"]["after_60s_call_kb"] > 0
    sequential = result["sequential"]
    assert sequential["calls"] == 20
    assert sequential["samples"][-1]["calls"] == 20
    assert {"rss_growth_mb", "gc_objects_growth"} <= sequential.keys()


# The fast paths the benchmarks led to must give exactly what the general code gives.


@given(st.text(max_size=300) | st.from_regex(r"[A-Za-z0-9+/]*={0,2}", fullmatch=True))
def test_dumps_of_an_append_is_the_encoders_text(payload: str) -> None:
    message = input_audio_append(payload)
    expected = json.dumps(message, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    assert dumps(message) == expected
    assert json.loads(dumps(message)) == message


@given(
    chunk=st.sampled_from(["1", "007", 7, "-1", "", "1e3", "x", None, True]),
    sequence=st.sampled_from(["3", None, 3, "", "a"]),
    payload=st.sampled_from(["//8=", "", "////", "not base64!", 5]),
)
def test_parse_media_fast_path_agrees_with_the_field_readers(
    chunk: object, sequence: object, payload: object
) -> None:
    media: dict[str, Any] = {"track": "inbound", "chunk": chunk, "timestamp": "20"}
    media["payload"] = payload
    message: dict[str, Any] = {"event": "media", "streamSid": "MZ1", "media": media}
    if sequence is not None:
        message["sequenceNumber"] = sequence
    # A dict subclass is not a plain dict, so it takes the general field readers only.
    general = _Mapping(message | {"media": _Mapping(media)})
    assert _outcome(json.dumps(message)) == _outcome(general)


def _outcome(message: Any) -> object:
    try:
        return parse_twilio_message(message)
    except RemoteProtocolError as exc:
        return str(exc)


class _Mapping(dict[str, Any]):
    pass


def _run_plain(script: str, *args: str) -> dict[str, Any]:
    """The two calibration benchmarks take a size instead of ``--smoke``."""
    completed = subprocess.run(
        [sys.executable, str(BENCHMARKS / script), "--json", *args],
        capture_output=True,
        text=True,
        timeout=_TIMEOUT,
        cwd=BENCHMARKS.parent,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    result: dict[str, Any] = json.loads(completed.stdout)
    return result


def test_bargein_quality_on_a_few_calls() -> None:
    result = _run_plain("bargein_quality.py", "--limit", "3")
    assert {"naive", "seed", "livekit", "pipecat", "voiceguard"} <= result["strategies"].keys()
    assert result["corpora"].keys() == {"tuning", "held-out"}
    for corpus_result in result["corpora"].values():
        assert {"breakdown", "late_barge_ins", "pauses", "events"} <= corpus_result.keys()
        for numbers in corpus_result["strategies"].values():
            assert 0.0 <= numbers["false_rate"] <= 1.0
            assert 0.0 <= numbers["missed_rate"] <= 1.0
            assert 0.0 <= numbers["backchannels"]["rate"] <= 1.0
            assert 0.0 <= numbers["short_barge_ins"]["rate"] <= 1.0
        assert {"background", "language", "echo line", "echo delay drift"} <= corpus_result[
            "breakdown"
        ].keys()
    assert {"breakdown", "late_barge_ins"} <= result.keys()


def test_heldout_corpus_loads_renders_and_has_every_label() -> None:
    """The held-out corpus ships beside the tuning one, disjoint from it, and renders to the
    digests its labels were made from."""
    sys.path.insert(0, str(BENCHMARKS / "corpus"))
    corpus: Any = importlib.import_module("corpus")  # shipped beside the benchmarks, not installed

    cases = corpus.HELDOUT.cases()
    assert cases
    for case in cases[::25]:
        corpus.render(case, store=corpus.HELDOUT)  # raises if the digest differs
    events = [e for c in cases for e in c["events"]]
    assert {e["label"] for e in events} == {"real", "echo", "noise", "backchannel"}
    assert any(e.get("short") for e in events)
    assert all({"text", "language", "tags"} <= e.keys() for e in events)
    languages = {e["tags"]["language"] for e in events}
    assert {"en", "he", "ar", "ru", "es", "de", "fr", "pt"} <= languages
    heldout, main = corpus.HELDOUT.index(), corpus.MAIN.index()
    assert not {c["text"] for c in heldout.values()} & {c["text"] for c in main.values()}
    variants = [{c["voice"].split("+")[1] for c in i.values()} for i in (heldout, main)]
    assert not variants[0] & variants[1]


def test_calibration_cost_once() -> None:
    result = _run_plain("calibration_cost.py", "--repeats", "1")
    assert result["per_frame_us"]["decode+energy+gate"] > 0.0
    assert result["budget_us"] == 10.0
