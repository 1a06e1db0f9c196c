"""Observability end to end: decision logs, Prometheus metrics and traces of real calls.

The reference server runs in this process under uvicorn, configured from the environment as a
user would (``OPENAI_API_KEY``, ``TWILIO_AUTH_TOKEN``, ``VOICEGUARD_*``), with the model side a
``RealtimeSimulator`` behind ``ModelRouter`` and the caller a ``CallerSimulator``; real sockets on
127.0.0.1 only. Every log record of the run, from every logger at DEBUG, is kept and scanned.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import anyio
import httpx
import pytest
from log_capture import every_record
from prometheus_client.parser import text_string_to_metric_families
from server_harness import ModelRouter

from voiceguard.demo import run_demo
from voiceguard.observe.replay import replay
from voiceguard.observe.trace import load_trace
from voiceguard.server import ServerConfig, compute_twilio_signature, create_app, serving
from voiceguard.sim import SCENARIOS
from voiceguard.sim.caller import CallerSimulator, EchoPath, HangUp, Speak
from voiceguard.sim.realtime import RealtimeSimulator, Reply

pytestmark = pytest.mark.anyio

API_KEY = "sk-obs-KNOWN-SECRET-5f0c2b7e9a1d4c3b8e6f"
AUTH_TOKEN = "tw-KNOWN-TOKEN-0a9b8c7d6e5f4a3b2c1d"
PUBLIC_URL = "https://voice.example.com"
DECISION_FIELDS = (
    "call_sid",
    "stream_sid",
    "guard",
    "action",
    "verdict",
    "reason",
    "response_id",
    "item_id",
    "t",
)


@pytest.fixture
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn)."""
    return "asyncio"


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def captured() -> Iterator[Capture]:
    """Every record of every logger, at DEBUG."""
    with every_record(Capture()) as capture:
        yield capture


def assert_no_secret(records: list[logging.LogRecord], *texts: str) -> None:
    secrets = (API_KEY, AUTH_TOKEN, API_KEY[7:27], AUTH_TOKEN[3:23])
    for record in records:
        for value in (record.getMessage(), *map(repr, vars(record).values())):
            for secret in secrets:
                assert secret not in value, f"{record.name}: {record.getMessage()[:200]}"
    for text in texts:
        for secret in secrets:
            assert secret not in text


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
    return out


async def test_a_barge_in_call_is_logged_counted_and_traced_without_secrets(
    tmp_path: Path, captured: Capture
) -> None:
    environ = {
        "OPENAI_API_KEY": API_KEY,
        "TWILIO_AUTH_TOKEN": AUTH_TOKEN,
        "VOICEGUARD_PUBLIC_URL": PUBLIC_URL,
        "VOICEGUARD_TRACE_DIR": str(tmp_path),
        "VOICEGUARD_TRACE_AUDIO": "true",
        "VOICEGUARD_STREAM_TOKENS": "false",  # the stream is signed; tokens: test_edge_attacks
    }
    long_answer = Reply(text="Let me tell you all about our opening hours. " * 3, duration=3.0)
    async with ModelRouter.running() as router:
        environ["VOICEGUARD_REALTIME_URL"] = router.url
        simulator = router.use(
            RealtimeSimulator(
                replies=[Reply(text="Hello, how can I help?", duration=0.8), long_answer],
                audio_speed=1.5,
            )
        )
        app = create_app(ServerConfig.from_environ(environ))
        caller = CallerSimulator(
            script=[
                Speak(at=2.2, duration=0.7, text="When are you open?"),
                Speak(at=4.0, duration=1.0, text="Sorry, actually, one more thing"),
                HangUp(at=6.0),
            ],
            echo=EchoPath(delay=0.1, return_loss_db=20.0),
        )
        signature = compute_twilio_signature(AUTH_TOKEN, f"wss://{PUBLIC_URL[8:]}/media-stream")
        async with serving(app) as port:
            with anyio.fail_after(15):
                record = await caller.call(
                    f"ws://127.0.0.1:{port}/media-stream",
                    headers={"X-Twilio-Signature": signature},
                )
                while simulator.statistics().connections_open:
                    await anyio.sleep(0.02)
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                page = (await http.get("/metrics")).text
        assert router.requests[-1].headers["authorization"] == f"Bearer {API_KEY}"
    assert record.protocol_errors == []
    assert record.clears

    # Prometheus: the page parses with prometheus_client's own parser and counts the call.
    metrics = samples(page)

    def value(name: str, **labels: str) -> float:
        return metrics.get((name, tuple(sorted(labels.items()))), 0.0)

    assert value("voiceguard_barge_ins_total", outcome="allowed") >= 1
    assert ("voiceguard_barge_ins_total", (("outcome", "false_resumed"),)) in metrics
    assert value("voiceguard_creates_total", outcome="sent") >= 2
    assert value("voiceguard_cancels_total", outcome="sent") >= 1  # and one at the hang-up
    truncations = value("voiceguard_truncations_total")
    assert truncations >= 1  # one per barge-in that cut the bot's audio short
    assert 1 <= value("voiceguard_truncation_unheard_ms_count") <= truncations
    assert value("voiceguard_barge_in_reaction_seconds_count") >= 1
    assert value("voiceguard_timers_total", outcome="armed") >= 1
    assert (
        value(
            "voiceguard_guard_decisions_total",
            guard="response_create_guard",
            verdict="ALLOW",
            reason="FORCED_GREETING",
        )
        == 1
    )

    # Logs: one record per decision, with its fields; interventions sent at INFO; audio at DEBUG.
    ours = [r for r in captured.records if r.name.startswith("voiceguard.")]
    decisions = [r for r in ours if hasattr(r, "verdict")]
    assert {r.__dict__["guard"] for r in decisions} >= {
        "calibration_gate",
        "response_create_guard",
    }
    for r in decisions:
        for name in DECISION_FIELDS:
            assert hasattr(r, name), (name, r.getMessage())
        assert r.__dict__["call_sid"] == record.call_sid
        assert r.levelno == (logging.DEBUG if r.__dict__["verdict"] == "ALLOW" else logging.INFO)
    sent = {r.__dict__["sent"]: r for r in ours if hasattr(r, "sent")}
    assert sent["response.cancel"].levelno == logging.INFO
    assert sent["response.cancel"].__dict__["call_sid"] == record.call_sid
    assert sent["conversation.item.truncate"].levelno == logging.INFO
    assert sent["clear"].levelno == logging.INFO
    frames = [r for r in ours if r.__dict__.get("sent") in ("media", "mark")]
    assert frames and all(r.levelno == logging.DEBUG for r in frames)
    assert all(
        r.levelno == logging.DEBUG
        for r in ours
        if r.__dict__.get("sent") == "input_audio_buffer.append"
    )

    # The trace: one file for the call, replayable to the same decisions.
    (path,) = tmp_path.glob("*.jsonl")
    trace_text = path.read_text(encoding="utf-8")
    result = replay(load_trace(path))
    assert result.identical, result.render()
    assert any(d.action == "CANCEL" for d in result.replayed)

    # No secret anywhere: not in any record (the server, the handler, the guards, the
    # transports, websockets, uvicorn, httpx, the simulators, which log the headers they get),
    # the metrics page or the trace.
    assert any("authorization" in r.getMessage().lower() for r in captured.records)
    assert_no_secret(captured.records, page, trace_text)


async def test_a_demo_call_trace_replays_to_identical_decisions(
    tmp_path: Path, captured: Capture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Known secrets in the environment, where a user's would be; none may reach a record.
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", AUTH_TOKEN)
    report = await run_demo(trace_dir=tmp_path)  # the full demo: every scenario, both bridges
    assert report.guarded.runs == len(SCENARIOS)  # (how well it went is test_demo's business)
    traces = sorted(tmp_path.glob("*.jsonl"))
    assert len(traces) >= len(SCENARIOS)
    path = tmp_path / "truncate-long-buffered-audio-0.jsonl"
    trace = load_trace(path)
    assert trace.audio == "full"
    result = replay(trace)
    assert result.recorded
    assert result.identical, result.render()
    header = json.loads(path.read_text(encoding="utf-8").splitlines()[0])
    assert header["config"]["calibration"]["speech_margin_db"] > 0
    assert_no_secret(captured.records, *(t.read_text(encoding="utf-8") for t in traces))
