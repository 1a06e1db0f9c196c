"""Security of the reference server: nobody else gets to use its model key.

* ``voiceguard serve`` refuses to listen on a non-loopback address without a Twilio auth token,
  unless told ``--allow-unsigned``.
* Each call's ``start.customParameters`` are checked (count, names, sizes, an optional allow-list)
  before a model session is opened; a refused call opens none.
* No secret (the OpenAI key, the Twilio auth token, a custom parameter's value) appears in the
  logs at debug level, in ``/metrics``, in a refusal sent to a client, or in a call trace.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import anyio
import pytest
from server_harness import API_KEY, ModelRouter, ServerProcess
from twilio.request_validator import RequestValidator

from voiceguard import cli
from voiceguard.errors import RemoteProtocolError
from voiceguard.server import (
    MAX_CUSTOM_PARAMETER_CHARS,
    MAX_CUSTOM_PARAMETERS,
    ServerConfig,
    check_custom_parameters,
)
from voiceguard.server.options import OPTIONS_BY_NAME
from voiceguard.server.serve import is_loopback
from voiceguard.sim.caller import CallerSimulator, HangUp, Speak
from voiceguard.sim.realtime import RealtimeSimulator, Reply
from voiceguard.transports import TransportClosed
from voiceguard.transports.websocket import connect_websocket

TOKEN = "fedcba9876543210-TWILIO-TOKEN-SECRET"
SECRET_PARAMETER = "pin-4711-SECRET-PARAMETER-VALUE"

# ============================================================================================
# Listening without signatures


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("voice.example.com", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_serve_refuses_a_public_address_without_a_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("VOICEGUARD_ALLOW_UNSIGNED", raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert "refusing to listen on 0.0.0.0 without TWILIO_AUTH_TOKEN" in error
    assert "--allow-unsigned" in error
    assert API_KEY not in error


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--allow-unsigned"], {}),
        ([], {"VOICEGUARD_ALLOW_UNSIGNED": "true"}),
        (["--public-url", "https://voice.example.com"], {"TWILIO_AUTH_TOKEN": TOKEN}),
        (["--allowed-hosts", "voice.example.com"], {"TWILIO_AUTH_TOKEN": TOKEN}),
    ],
)
def test_serve_on_a_public_address_with_a_token_or_allow_unsigned(
    args: list[str],
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Past the check, the server goes on to bind (here: an address this machine lacks)."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.delenv("TWILIO_AUTH_TOKEN", raising=False)
    monkeypatch.delenv("VOICEGUARD_ALLOW_UNSIGNED", raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    # 192.0.2.1 is TEST-NET-1: not loopback, and never an address of this machine.
    assert cli.main(["serve", "--host", "192.0.2.1", "--port", "0", *args]) == 1
    error = capsys.readouterr().err
    assert "cannot listen on 192.0.2.1" in error
    assert "refusing" not in error


def test_serve_with_a_token_on_a_public_address_needs_the_public_url(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Signatures checked against the Host header would accept another app's requests."""
    monkeypatch.setenv("OPENAI_API_KEY", API_KEY)
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
    for name in ("VOICEGUARD_PUBLIC_URL", "VOICEGUARD_ALLOWED_HOSTS"):
        monkeypatch.delenv(name, raising=False)
    assert cli.main(["serve", "--host", "192.0.2.1", "--port", "0"]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1, "one line"
    assert "neither --public-url nor --allowed-hosts" in error
    assert TOKEN not in error and API_KEY not in error


# ============================================================================================
# Custom parameters


def refusal(parameters: Mapping[str, object], allowed: frozenset[str] | None = None) -> str:
    with pytest.raises(RemoteProtocolError) as caught:
        check_custom_parameters(parameters, allowed=allowed)
    error = caught.value
    assert error.peer == "twilio"
    assert error.message_type == "start"
    assert error.field is not None and error.field.startswith("start.customParameters")
    return str(error)


def test_custom_parameters_within_the_limits_pass() -> None:
    check_custom_parameters({})
    check_custom_parameters({"caller": "+15550100", "lang.code": "en-US", "x_1": ""})
    many = {f"p{n}": "v" * MAX_CUSTOM_PARAMETER_CHARS for n in range(MAX_CUSTOM_PARAMETERS)}
    check_custom_parameters(many)
    check_custom_parameters({"caller": "x"}, allowed=frozenset({"caller", "lang"}))


def test_custom_parameters_out_of_the_limits_are_refused_without_quoting_values() -> None:
    too_many = {f"p{n}": "v" for n in range(MAX_CUSTOM_PARAMETERS + 1)}
    assert "33 parameters; allowed: at most 32" in refusal(too_many)
    assert "not 1 to 64 letters" in refusal({"bad name!": "x"})
    assert "not 1 to 64 letters" in refusal({"n" * 65: "x"})
    long = refusal({"token": SECRET_PARAMETER * 100})
    assert "start.customParameters.token" in long and "at most 1024" in long
    assert SECRET_PARAMETER not in long
    control = refusal({"token": SECRET_PARAMETER + "\n"})
    assert "control characters" in control and SECRET_PARAMETER not in control
    assert "expected a string, got int" in refusal({"n": 7})
    other = refusal({"token": SECRET_PARAMETER}, allowed=frozenset({"caller"}))
    assert "not an allowed parameter" in other and SECRET_PARAMETER not in other


def test_allowed_parameters_are_configured_and_checked() -> None:
    parse = OPTIONS_BY_NAME["allowed_parameters"].parse
    assert parse("caller, lang") == frozenset({"caller", "lang"})
    with pytest.raises(ValueError, match="comma-separated parameter names"):
        parse("caller,bad name")
    with pytest.raises(ValueError, match="comma-separated parameter names"):
        parse(" , ")
    config = ServerConfig.from_environ({"VOICEGUARD_ALLOWED_PARAMETERS": "caller,lang"})
    assert config.allowed_parameters == frozenset({"caller", "lang"})
    with pytest.raises(ValueError, match=r"ServerConfig\.allowed_parameters"):
        ServerConfig(allowed_parameters=frozenset({"bad name"}))


# ============================================================================================
# The server, end to end: refusals and secrets


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The server runs on asyncio (uvicorn); so do its tests."""
    return "asyncio"


@pytest.fixture(scope="module")
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        running.use(RealtimeSimulator(replies=[Reply(text="Hi", duration=0.4)], audio_speed=8.0))
        yield running


@pytest.fixture(scope="module")
async def guarded(
    router: ModelRouter, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[tuple[ServerProcess, Path]]:
    """A server with a token, an allow-list, debug logs and (when available) call traces."""
    log_dir = tmp_path_factory.mktemp("secure")
    trace_dir = log_dir / "traces"
    args = [
        "--realtime-url",
        router.url,
        "--allowed-parameters",
        "caller,token",
        "--log-level",
        "debug",
    ]
    if "trace_dir" in OPTIONS_BY_NAME:
        args += ["--trace-dir", str(trace_dir)]
    async with ServerProcess.running(
        args, log_dir=log_dir, env={"TWILIO_AUTH_TOKEN": TOKEN}
    ) as running:
        yield running, trace_dir


def signed(server: ServerProcess) -> dict[str, str]:
    host = server.http_url.removeprefix("http://")
    return {
        "X-Twilio-Signature": RequestValidator(TOKEN).compute_signature(
            f"wss://{host}/media-stream", {}
        )
    }


async def stream_token(server: ServerProcess, call_sid: str) -> dict[str, str]:
    """The stream token of the TwiML the server answers a signed webhook for *call_sid*."""
    url = f"{server.http_url}/incoming-call"
    form = {"CallSid": call_sid, "AccountSid": "AC" + "0" * 32}
    signature = RequestValidator(TOKEN).compute_signature(url, form)
    answer = await server.post(
        "/incoming-call", data=form, headers={"X-Twilio-Signature": signature}
    )
    assert answer.status_code == 200, answer.text
    stream = ET.fromstring(answer.text).find("./Connect/Stream")
    assert stream is not None
    return {p.attrib["name"]: p.attrib["value"] for p in stream.iter("Parameter")}


@pytest.mark.anyio
async def test_a_call_with_refused_parameters_opens_no_model_session(
    guarded: tuple[ServerProcess, Path], router: ModelRouter
) -> None:
    server, _ = guarded
    sessions = len(router.requests)
    for number, refused in enumerate(
        (
            {"caller": "+15550100", "debug": "1"},  # not on the allow-list
            {"token": "x" * (MAX_CUSTOM_PARAMETER_CHARS + 1)},  # too long
        )
    ):
        call_sid = f"CA{number:032d}"
        parameters = {**refused, **await stream_token(server, call_sid)}
        caller = CallerSimulator(
            script=[HangUp(at=5.0)], custom_parameters=parameters, call_sid=call_sid
        )
        with anyio.fail_after(10):
            record = await caller.call(server.media_url, headers=signed(server))
        assert record.ended_by == "bot"
        assert record.ended_at is not None and record.ended_at < 1.0
    assert len(router.requests) == sessions, "a refused call opened a model session"
    page = (await server.get("/metrics")).text
    assert 'voiceguard_calls_ended_total{reason="start refused"} 2.0' in page


@pytest.mark.anyio
async def test_no_secret_in_logs_metrics_refusals_or_traces(
    guarded: tuple[ServerProcess, Path], router: ModelRouter
) -> None:
    server, trace_dir = guarded
    # A good call carrying a secret in its parameters...
    call_sid = "CA" + "9" * 32
    caller = CallerSimulator(
        script=[Speak(at=0.2, duration=0.3), HangUp(at=1.2)],
        custom_parameters={
            "caller": "+15550100",
            "token": SECRET_PARAMETER,
            **await stream_token(server, call_sid),
        },
        call_sid=call_sid,
    )
    with anyio.fail_after(10):
        record = await caller.call(server.media_url, headers=signed(server))
    assert record.ended_by == "caller" and record.protocol_errors == []
    # ...refused ones, with a wrong signature and none...
    refusals: list[str] = []
    for headers in ({"X-Twilio-Signature": "d3Jvbmc="}, {}):
        with anyio.fail_after(5), pytest.raises(TransportClosed) as closed:
            async with connect_websocket(server.media_url, headers=headers):
                pass  # pragma: no cover - refused before this
        refusals.append(str(closed.value))
    webhook = await server.post("/incoming-call", data={"CallSid": "CA1"})
    assert webhook.status_code == 403
    refusals.append(webhook.text)
    # ...and a refused parameter that is a secret itself.
    bad_sid = "CA" + "8" * 32
    bad = CallerSimulator(
        script=[HangUp(at=5.0)],
        custom_parameters={
            "token": SECRET_PARAMETER + "\x00",
            **await stream_token(server, bad_sid),
        },
        call_sid=bad_sid,
    )
    with anyio.fail_after(10):
        await bad.call(server.media_url, headers=signed(server))
    with anyio.fail_after(10):
        while (await server.get("/healthz")).json()["active_calls"]:
            await anyio.sleep(0.05)

    places = {
        "logs": server.output(),
        "metrics": (await server.get("/metrics")).text,
        "refusals": "\n".join(refusals),
    }
    if trace_dir.exists():
        traces = "\n".join(
            p.read_text(errors="replace") for p in trace_dir.rglob("*") if p.is_file()
        )
        assert traces, "the calls were traced"
        places["traces"] = traces
    assert "voiceguard.server: call" in places["logs"]  # the calls were logged
    for where, text in places.items():
        for secret in (API_KEY, API_KEY[8:24], TOKEN, TOKEN[:16]):
            assert secret not in text, f"a secret in the {where}"
        if where != "traces":  # a trace records the call's own parameters, by design
            assert SECRET_PARAMETER not in text, f"a custom parameter's value in the {where}"
