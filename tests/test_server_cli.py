"""``voiceguard serve``: options, environment variables, errors, workers; and the config, the
docs' option table and the example app."""

from __future__ import annotations

import argparse
import importlib.util
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from server_harness import ModelRouter, ServerProcess
from starlette.testclient import TestClient

import voiceguard.server.app as server_app
from voiceguard import server
from voiceguard.cli import build_parser, main
from voiceguard.config import HandlerConfig
from voiceguard.errors import ConfigError
from voiceguard.server import DEFAULT_REALTIME_URL, ServerConfig, create_app
from voiceguard.server.config import config_from_values
from voiceguard.server.options import OPTIONS, resolve_options
from voiceguard.sim.caller import CallerSimulator, HangUp, Speak
from voiceguard.sim.realtime import RealtimeSimulator, Reply

ROOT = Path(__file__).resolve().parent.parent


def parse(argv: list[str]) -> argparse.Namespace:
    return build_parser().parse_args(["serve", *argv])


def test_help_lists_every_command() -> None:
    text = build_parser().format_help()
    for command in ("tour", "simulate-model", "serve"):
        assert command in text


def test_a_flag_wins_over_its_environment_variable() -> None:
    env = {"VOICEGUARD_MAX_CALLS": "7", "VOICEGUARD_PUBLIC_URL": "https://a.example.com"}
    values = resolve_options(parse(["--max-calls", "3"]), env)
    assert values["max_calls"] == 3
    assert values["public_url"] == "https://a.example.com"
    assert values["realtime_url"] is None  # the provider's, filled in by the config
    assert config_from_values(values, env).model_url == DEFAULT_REALTIME_URL
    assert resolve_options(parse([]), env)["max_calls"] == 7
    assert (
        resolve_options(parse(["--no-realtime-beta"]), {"VOICEGUARD_REALTIME_BETA": "yes"})[
            "realtime_beta"
        ]
        is False
    )
    assert resolve_options(parse([]), {"VOICEGUARD_REALTIME_BETA": "yes"})["realtime_beta"] is True


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (
            ["--port", "70000"],
            "argument --port: '70000' is not allowed; allowed: an integer from 0",
        ),
        (["--workers", "0"], "argument --workers: '0' is not allowed; allowed: an integer from 1"),
        (["--realtime-url", "http://x"], "argument --realtime-url: 'http://x' is not allowed"),
        (["--public-url", "https://h:8443"], "argument --public-url: 'https://h:8443' is not"),
        (["--log-level", "loud"], "allowed: one of critical, error, warning, info, debug"),
    ],
)
def test_bad_options_name_the_option_the_value_and_what_is_allowed(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["serve", *argv])
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_bad_environment_variables_are_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    monkeypatch.setenv("VOICEGUARD_MAX_CALLS", "lots")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert (
        "VOICEGUARD_MAX_CALLS = 'lots' is not allowed; allowed: an integer from 1 to 100000" in err
    )


def test_serve_needs_an_api_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    assert main(["serve", "--port", "0"]) == 2
    assert "OPENAI_API_KEY is not set" in capsys.readouterr().err


def test_config_is_validated_and_hides_secrets() -> None:
    config = ServerConfig(api_key="sk-secret", twilio_auth_token="tok-secret")
    assert "sk-secret" not in repr(config) and "tok-secret" not in repr(config)
    with pytest.raises(ConfigError, match=r"ServerConfig.max_calls = 0 is not allowed"):
        ServerConfig(max_calls=0)
    with pytest.raises(ConfigError, match=r"ServerConfig.realtime_url = 'https://x'"):
        ServerConfig(realtime_url="https://x")
    with pytest.raises(ConfigError, match=r"ServerConfig.public_url = 'wss://x'"):
        ServerConfig(public_url="wss://x")
    with pytest.raises(ConfigError, match=r"ServerConfig.handler"):
        ServerConfig(handler="no")  # type: ignore[arg-type]
    assert ServerConfig(public_url="https://h.example.com/voice/").stream_url() == (
        "wss://h.example.com/voice/media-stream"
    )


def test_config_from_the_environment() -> None:
    config = ServerConfig.from_environ(
        {
            "OPENAI_API_KEY": "sk-x",
            "TWILIO_AUTH_TOKEN": "t",
            "VOICEGUARD_REALTIME_URL": "ws://127.0.0.1:9000/v1/realtime?model=m",
            "VOICEGUARD_GREETING": "",
            "VOICEGUARD_VOICE": "marin",
            "VOICEGUARD_TRANSCRIBE": "gpt-4o-transcribe",
            "VOICEGUARD_MAX_BODY_BYTES": "2048",
        }
    )
    assert config.api_key == "sk-x"
    assert config.twilio_auth_token == "t"
    assert config.realtime_url == "ws://127.0.0.1:9000/v1/realtime?model=m"
    assert config.handler.bridge.greeting is None
    assert config.handler.bridge.voice == "marin"
    assert config.handler.bridge.input_transcription_model == "gpt-4o-transcribe"
    assert config.max_body_bytes == 2048
    with pytest.raises(ConfigError, match="VOICEGUARD_PUBLIC_URL"):
        ServerConfig.from_environ({"VOICEGUARD_PUBLIC_URL": "voice.example.com"})


def test_the_docs_table_lists_every_option_and_variable() -> None:
    page = (ROOT / "docs" / "server.md").read_text(encoding="utf-8")
    for option in OPTIONS:
        assert f"`{option.flag}" in page, option.flag
        assert f"`{option.env}`" in page, option.env
    for variable in ("OPENAI_API_KEY", "TWILIO_AUTH_TOKEN"):
        assert f"`{variable}`" in page


def test_the_example_app_builds_and_answers() -> None:
    spec = importlib.util.spec_from_file_location(
        "reference_server", ROOT / "examples" / "reference_server.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app, base_url="https://voice.example.com") as client:
        assert client.get("/").text == "my app\n"
        assert client.get("/healthz").json()["status"] == "ok"
        twiml = client.post("/incoming-call", data={"CallSid": "CA1"})
        assert '<Stream url="wss://voice.example.com/media-stream"/>' in twiml.text
        assert "voiceguard_calls_active 0.0" in client.get("/metrics").text


def test_the_app_module_still_gives_every_name_it_held() -> None:
    # voiceguard.server.app held the whole server before it was split by concern.
    held = server_app.__all__
    for name in (*held, "INCOMING_CALL_PATH", "MEDIA_STREAM_PATH"):
        assert getattr(server_app, name) is getattr(server, name, getattr(server_app, name))
    with pytest.raises(AttributeError):
        server_app.NoSuchThing  # noqa: B018


def test_each_app_has_its_own_metrics() -> None:
    one = TestClient(create_app(ServerConfig(handler=HandlerConfig())))
    two = TestClient(create_app())
    with one, two:
        assert one.post("/incoming-call").status_code == 200
        assert "voiceguard_calls_active 0.0" in two.get("/metrics").text


# ---------------------------------------------------------------------------------------------
# Several worker processes


@pytest.fixture
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn); so do its tests."""
    return "asyncio"


@pytest.fixture
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


@pytest.mark.anyio
async def test_workers_serve_calls(router: ModelRouter, tmp_path: Path) -> None:
    simulator = router.use(
        RealtimeSimulator(replies=[Reply(text="Hello!", duration=0.6)], audio_speed=8.0)
    )
    args = ["--realtime-url", router.url, "--workers", "2"]
    async with ServerProcess.running(args, log_dir=tmp_path, env={}) as server:
        assert "(2 workers, up to 100 calls)" in server.output()

        async def one(seed: int) -> None:
            caller = CallerSimulator(
                script=[Speak(at=0.1, duration=0.2), HangUp(at=1.5)], seed=seed
            )
            with anyio.fail_after(8):
                record = await caller.call(server.media_url)
            assert record.ended_by == "caller"
            assert record.protocol_errors == []
            assert record.heard_seconds > 0.3

        async with anyio.create_task_group() as tg:
            for seed in range(2):
                tg.start_soon(one, seed)
        assert (await server.get("/healthz")).status_code == 200
        pids = set(re.findall(r"Started server process \[(\d+)\]", server.output()))
        assert len(pids) == 2
    assert simulator.statistics().errors_total == 0


def test_serve_prints_its_url_and_stops_on_sigint(tmp_path: Path) -> None:
    env = {"OPENAI_API_KEY": "sk-test", "PATH": "/usr/bin:/bin"}
    with subprocess.Popen(
        [sys.executable, "-m", "voiceguard", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        env=env,
        text=True,
        start_new_session=True,
    ) as process:
        try:
            assert process.stdout is not None
            first = process.stdout.readline()
            match = re.match(r"voiceguard serve: listening on (http://127\.0\.0\.1:\d+) ", first)
            assert match is not None, first
            with httpx.Client(base_url=match.group(1), timeout=1.0) as client:
                for _ in range(100):  # up to 10 s for uvicorn to start serving
                    try:
                        if client.get("/healthz").status_code == 200:
                            break
                    except httpx.TransportError:
                        time.sleep(0.1)
            process.send_signal(signal.SIGINT)
            out, _ = process.communicate(timeout=10)
            assert "voiceguard serve: stopped" in out
            assert process.returncode == 0
        finally:
            if process.poll() is None:
                process.kill()
