"""Model providers as dialects of one protocol: their URLs, keys and session shapes, the
simulator speaking each, and the reference server's choice of one (``--model-provider``).

The scenario library through the reference server for every provider is in
``test_server_scenarios.py``; here: each difference on its own, and what an operator who gets
one wrong is told.
"""

from __future__ import annotations

import base64
import json
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from server_harness import API_KEY, ModelRouter, ServerProcess

from voiceguard.cli import main
from voiceguard.errors import ConfigError
from voiceguard.protocol import (
    PROVIDERS,
    SessionUpdated,
    dumps,
    model_provider,
    parse_realtime_event,
    session_update,
)
from voiceguard.runtime._model_token import bearer_token
from voiceguard.server import ServerConfig
from voiceguard.sim import RealtimeSimulator, Reply
from voiceguard.sim.caller import CallerSimulator, HangUp, Speak
from voiceguard.sim.realtime import handshake_refusal

pytestmark = pytest.mark.anyio

AZURE_URL = "wss://contoso.openai.azure.com/openai/v1/realtime?model=my-realtime"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# ------------------------------------------------------------------ the descriptions


def test_each_provider_signs_in_as_it_takes_the_key() -> None:
    assert PROVIDERS["openai"].headers(api_key="k") == [("Authorization", "Bearer k")]
    assert PROVIDERS["xai"].headers(api_key="k") == [("Authorization", "Bearer k")]
    assert PROVIDERS["azure"].headers(api_key="k") == [("api-key", "k")]
    # A bearer token (Entra ID) replaces the key, for any provider.
    assert PROVIDERS["azure"].headers(api_key="k", token="t") == [("Authorization", "Bearer t")]
    assert PROVIDERS["openai"].headers() == []


@pytest.mark.parametrize(
    ("name", "url", "problem"),
    [
        ("openai", "wss://api.openai.com/v1/realtime?model=gpt-realtime", None),
        ("openai", "ws://127.0.0.1:9/v1/realtime?model=m", None),
        ("openai", "wss://api.openai.com/v1/realtime", "the model is missing"),
        ("openai", "https://api.openai.com/v1/realtime?model=m", "a ws:// or wss:// URL"),
        ("azure", AZURE_URL, None),
        (
            "azure",
            "wss://contoso.openai.azure.com/openai/realtime?api-version=2025-04-01-preview"
            "&deployment=d",
            "Azure OpenAI serves the Realtime API on /openai/v1/realtime",
        ),
        ("azure", "wss://contoso.openai.azure.com/openai/v1/realtime", "deployment is missing"),
        ("xai", "wss://api.x.ai/v1/realtime?model=grok-voice-latest", None),
        ("xai", "wss://api.x.ai/realtime?model=grok-voice-latest", "/v1/realtime"),
    ],
)
def test_a_url_of_the_wrong_shape_is_named(name: str, url: str, problem: str | None) -> None:
    found = model_provider(name).url_problem(url)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found, found


def test_an_unknown_provider_names_the_ones_there_are() -> None:
    with pytest.raises(ValueError, match="allowed: openai, azure, xai"):
        model_provider("anthropic")
    assert model_provider(" XAI ") is PROVIDERS["xai"]


def test_the_xai_session_update_has_voice_and_turn_detection_at_the_top() -> None:
    ga = session_update(instructions="Be brief.", voice="eve", model="gpt-realtime")
    xai = PROVIDERS["xai"].adapt_session_update(ga)
    session = xai["session"]
    assert "type" not in session and "model" not in session
    assert session["voice"] == "eve"
    assert session["turn_detection"] == {
        "type": "server_vad",
        "interrupt_response": False,
        "create_response": False,
    }
    assert session["audio"] == {
        "input": {"format": {"type": "audio/pcmu"}},
        "output": {"format": {"type": "audio/pcmu"}},
    }
    assert ga["session"]["type"] == "realtime", "the GA message is left as it was"
    assert PROVIDERS["azure"].adapt_session_update(ga) == ga


def test_an_xai_session_with_manual_turns_parses_as_no_turn_detection() -> None:
    event = parse_realtime_event(
        {"type": "session.updated", "event_id": "e1", "session": {"turn_detection": {"type": None}}}
    )
    assert isinstance(event, SessionUpdated)
    assert event.turn_detection is None and event.turn_detection_present


# ------------------------------------------------------------------ the simulator's dialects


@pytest.mark.parametrize(
    ("name", "path", "headers", "status"),
    [
        ("openai", "/v1/realtime?model=m", {"authorization": "Bearer k"}, None),
        ("openai", "/realtime?model=m", {"authorization": "Bearer k"}, None),  # the SDK's
        ("openai", "/v1/realtime?model=m", {"api-key": "k"}, 401),
        ("azure", "/openai/v1/realtime?model=d", {"api-key": "k"}, None),
        ("azure", "/openai/v1/realtime?model=d", {"authorization": "Bearer t"}, None),
        ("azure", "/v1/realtime?model=d", {"api-key": "k"}, 404),
        ("azure", "/openai/v1/realtime?model=d", {}, 401),
        ("xai", "/v1/realtime?model=grok-voice-latest", {"authorization": "Bearer k"}, None),
        ("xai", "/openai/v1/realtime?model=m", {"authorization": "Bearer k"}, 404),
    ],
)
def test_the_simulator_accepts_what_the_provider_accepts(
    name: str, path: str, headers: dict[str, str], status: int | None
) -> None:
    refusal = handshake_refusal(model_provider(name), path, headers)
    assert (refusal[0] if refusal else None) == status


async def _session_events(provider: str, update: dict[str, Any]) -> list[dict[str, Any]]:
    sim = RealtimeSimulator(provider=provider)
    events: list[dict[str, Any]] = []
    async with sim.connect() as client:
        with anyio.fail_after(5):
            await client.send(dumps(update))
            while not events or events[-1]["type"] not in ("session.updated", "error"):
                text = await client.receive()
                assert isinstance(text, str)
                events.append(json.loads(text))
    return events


async def test_the_xai_simulator_ignores_the_ga_places_of_turn_detection() -> None:
    ga = session_update(voice="ara")
    events = await _session_events("xai", ga)
    assert [e["type"] for e in events] == [
        "conversation.created",
        "session.created",
        "session.updated",
    ]
    session = events[-1]["session"]
    assert session["turn_detection"]["create_response"] is True, "GA places have no effect"
    assert session["voice"] == "marin"
    assert "type" not in session

    adapted = PROVIDERS["xai"].adapt_session_update(ga)
    session = (await _session_events("xai", adapted))[-1]["session"]
    assert session["turn_detection"]["create_response"] is False
    assert session["turn_detection"]["interrupt_response"] is False
    assert session["voice"] == "ara"
    assert session["audio"]["input"]["format"] == {"type": "audio/pcmu"}


async def test_the_xai_simulator_refuses_an_audio_rate_xai_does_not_take() -> None:
    update = {
        "type": "session.update",
        "session": {"audio": {"input": {"format": {"type": "audio/pcm", "rate": 11025}}}},
    }
    events = await _session_events("xai", update)
    assert events[-1]["type"] == "error"
    assert events[-1]["error"]["param"] == "session.audio.input.format.rate"


async def test_the_azure_simulator_requires_the_session_type_as_azure_does() -> None:
    events = await _session_events("azure", {"type": "session.update", "session": {}})
    assert events[-1]["error"]["param"] == "session.type"


# ------------------------------------------------------------------ the server's choice


def test_the_config_takes_the_providers_url_or_says_it_has_none() -> None:
    assert ServerConfig().model_url == PROVIDERS["openai"].default_url
    assert ServerConfig(model_provider="xai").model_url == PROVIDERS["xai"].default_url
    with pytest.raises(ConfigError, match="Azure OpenAI has no default endpoint"):
        ServerConfig(model_provider="azure")
    with pytest.raises(ConfigError, match=r"ServerConfig\.model_provider = 'grok'"):
        ServerConfig(model_provider="grok")
    with pytest.raises(ConfigError, match="/openai/v1/realtime"):
        ServerConfig(model_provider="azure", realtime_url="wss://api.openai.com/v1/realtime?m=1")
    assert ServerConfig(model_provider="azure", realtime_url=AZURE_URL).provider.name == "azure"


@pytest.mark.parametrize(
    ("argv", "env", "line"),
    [
        (
            ["--model-provider", "azure"],
            {"AZURE_OPENAI_API_KEY": "k"},
            "Azure OpenAI has no default endpoint: give yours, e.g. wss://<resource>.openai."
            "azure.com/openai/v1/realtime?model=<deployment>",
        ),
        (
            ["--model-provider", "azure", "--realtime-url", AZURE_URL],
            {},
            "AZURE_OPENAI_API_KEY is not set: set it to your Azure OpenAI API key or give "
            "--model-token",
        ),
        (
            ["--model-provider", "xai"],
            {"OPENAI_API_KEY": "k"},
            "XAI_API_KEY is not set",
        ),
        (["--model-provider", "gemini"], {}, "allowed: one of openai, azure, xai"),
        (
            ["--model-token", "no_such_module_here:token"],
            {"OPENAI_API_KEY": "k"},
            "cannot import no_such_module_here",
        ),
    ],
)
def test_a_wrong_provider_setting_is_one_line_and_exit_2(
    argv: list[str],
    env: dict[str, str],
    line: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    for variable in ("OPENAI_API_KEY", "AZURE_OPENAI_API_KEY", "XAI_API_KEY"):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in env.items():
        monkeypatch.setenv(variable, value)
    try:
        code = main(["serve", "--port", "0", *argv])
    except SystemExit as exited:  # argparse's own refusals exit
        code = exited.code  # type: ignore[assignment]
    assert code == 2
    err = capsys.readouterr().err
    assert line in err.strip().splitlines()[-1], err  # one line (argparse's usage before it)
    assert "Traceback" not in err


# ------------------------------------------------------------------ bearer tokens


async def test_a_token_function_plain_or_async_gives_the_token() -> None:
    async def fresh() -> str:
        return "tok-async"

    assert await bearer_token(lambda: "tok-plain") == "tok-plain"
    assert await bearer_token(fresh) == "tok-async"


async def test_a_token_function_that_fails_says_so_without_the_token() -> None:
    def broken() -> str:
        raise RuntimeError("tok-SECRET expired")

    with pytest.raises(OSError, match="broken raised RuntimeError") as raised:
        await bearer_token(broken)
    assert "tok-SECRET" not in str(raised.value)
    with pytest.raises(OSError, match="returned NoneType, not a token"):
        await bearer_token(lambda: None)  # type: ignore[arg-type, return-value]
    with pytest.raises(OSError, match="not a token"):
        await bearer_token(lambda: "two words")


@pytest.fixture
def token_module(tmp_path: Path) -> Iterator[Path]:
    """A module with a token function, as an operator's ``--model-token`` names it."""
    (tmp_path / "entra_tokens.py").write_text(
        textwrap.dedent(
            """
            calls = 0

            def token():
                global calls
                calls += 1
                return f"entra-token-{calls}"
            """
        ),
        encoding="utf-8",
    )
    sys.path.insert(0, str(tmp_path))
    yield tmp_path
    sys.path.remove(str(tmp_path))
    sys.modules.pop("entra_tokens", None)


@pytest.fixture
async def azure_router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running("azure") as running:
        yield running


async def test_an_azure_call_signs_in_with_a_fresh_token_for_each_call(
    azure_router: ModelRouter, token_module: Path, tmp_path: Path
) -> None:
    router = azure_router
    router.use(RealtimeSimulator(provider="azure", replies=[Reply(text="Hi.", duration=0.3)]))
    args = [
        "--model-provider",
        "azure",
        "--realtime-url",
        router.url,
        "--model-token",
        "entra_tokens:token",
    ]
    env = {"PYTHONPATH": str(token_module)}
    async with ServerProcess.running(args, log_dir=tmp_path / "serve", env=env) as server:
        assert "(Azure OpenAI)" in server.output()
        for _ in range(2):
            caller = CallerSimulator(script=[Speak(at=0.3, duration=0.5), HangUp(at=1.5)])
            with anyio.fail_after(20):
                await caller.call(server.media_url)
        with anyio.fail_after(10):
            while router.simulator.statistics().connections_open:
                await anyio.sleep(0.02)
        output = server.output()
    tokens = [r.headers.get("authorization") for r in router.requests]
    assert tokens == ["Bearer entra-token-1", "Bearer entra-token-2"]
    assert all("api-key" not in r.headers for r in router.requests)
    assert "entra-token" not in output
    assert API_KEY not in output
    assert [c.path for c in router.simulator.connections] == [
        "/openai/v1/realtime?model=my-realtime"
    ] * 2


async def test_the_openai_sdk_reaches_the_azure_simulator_as_microsoft_documents() -> None:
    """Microsoft's GA sample: the plain ``openai`` client with ``websocket_base_url`` ending in
    ``/openai/v1`` and the deployment as the model."""
    openai = pytest.importorskip("openai")
    sim = RealtimeSimulator(provider="azure", replies=[Reply(text="Hello.", duration=0.2)])
    with anyio.fail_after(10):
        async with sim.running() as address:
            base = f"ws://{address.host}:{address.port}/openai/v1"
            client = openai.AsyncOpenAI(api_key="azure-key", websocket_base_url=base)
            async with client.realtime.connect(model="my-realtime") as conn:
                first = await conn.recv()
                assert first.type == "session.created"
                await conn.session.update(session={"type": "realtime"})
                await conn.response.create()
                kinds: list[str] = []
                while not kinds or kinds[-1] != "response.done":
                    event = await conn.recv()
                    parse_realtime_event(event)  # our edge reads what the SDK read
                    kinds.append(event.type)
                    if event.type == "response.output_audio.delta":
                        assert base64.b64decode(event.delta)
    assert "response.output_audio.delta" in kinds
    assert sim.connections[0].path.startswith("/openai/v1/realtime?model=my-realtime")
