"""``voiceguard call`` as a user runs it: a subprocess calling a bot's media stream, real sockets.

The bots are the reference server (``voiceguard serve``, a subprocess, with signatures checked and
an allow-list of custom parameters) and the guarded sample bot (examples/twilio_sample_guarded.py,
its own Starlette app under uvicorn), each with a scenario's model simulator behind a
``ModelRouter``. What the command prints (the table, or the JSON) is checked against what the
bot's side saw: the model simulator's records and the server's log. Real time: about half a
minute, every subprocess and every call under a timeout.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import socket
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any, Final

import anyio
import anyio.abc
import pytest
from anyio.streams.tls import TLSListener
from server_harness import ModelRouter, ServerProcess

from voiceguard.server import compute_twilio_signature, serving
from voiceguard.sim.call_command import add_call_command, main
from voiceguard.sim.realtime import ConnectionRecord, RealtimeSimulator, Reply
from voiceguard.sim.scenarios import SCENARIOS

pytestmark = pytest.mark.anyio

EXAMPLE: Final = Path(__file__).resolve().parent.parent / "examples" / "twilio_sample_guarded.py"
#: ``voiceguard call`` until cli.py registers it; then ``-m voiceguard call`` does the same.
ENTRY: Final = (
    "import sys; from voiceguard.sim.call_command import main; sys.exit(main(sys.argv[1:]))"
)
TOKEN: Final = "0123456789abcdef0123456789abcdef"
_AUDIO_DELTAS: Final = ("response.output_audio.delta", "response.audio.delta")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """The bots run on asyncio (uvicorn); so do their tests."""
    return "asyncio"


async def call(
    *args: str, timeout: float = 40.0, env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run ``voiceguard call ARGS`` as a subprocess, while this event loop serves the bots."""
    environ = None if env is None else {**os.environ, **env}
    with anyio.fail_after(timeout):
        done = await anyio.run_process(
            [sys.executable, "-c", ENTRY, *args], check=False, env=environ
        )
    return subprocess.CompletedProcess(
        done.args, done.returncode, done.stdout.decode(), done.stderr.decode()
    )


def audio_sent(connection: ConnectionRecord) -> float:
    """Seconds of audio the model simulator sent on *connection* (8 kHz mu-law: 8000 bytes/s)."""
    total = 0
    for event in connection.sent():
        if event.type in _AUDIO_DELTAS:
            match = re.fullmatch(r"<(\d+) bytes>", str(event.event.get("delta")))
            assert match, event.event
            total += int(match.group(1))
    return total / 8000


def table_row(out: str, label: str) -> list[str]:
    """The cells of the table row *label* (one per call)."""
    for line in out.splitlines():
        if line.strip().startswith(label):
            return re.split(r"\s{3,}", line.strip()[len(label) :].strip())
    raise AssertionError(f"no row {label!r} in:\n{out}")


# ---------------------------------------------------------------------------------------------
# The reference server: signatures checked, custom parameters on an allow-list


@pytest.fixture(scope="module")
async def server_router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


@pytest.fixture(scope="module")
async def server(
    server_router: ModelRouter, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[ServerProcess]:
    args = [
        "--realtime-url",
        server_router.url,
        "--no-stream-tokens",
        "--allowed-parameters",
        "lang",
    ]
    async with ServerProcess.running(
        args, log_dir=tmp_path_factory.mktemp("serve"), env={"TWILIO_AUTH_TOKEN": TOKEN}
    ) as running:
        yield running


def signature(server: ServerProcess) -> str:
    """The ``--header`` that signs a media stream to *server* (its wss:// URL, no parameters)."""
    host = server.http_url.removeprefix("http://")
    value = compute_twilio_signature(TOKEN, f"wss://{host}/media-stream")
    return f"X-Twilio-Signature: {value}"


async def test_a_scenario_of_two_calls_through_the_reference_server_as_json(
    server: ServerProcess, server_router: ModelRouter
) -> None:
    scenario = SCENARIOS["hangup-fallback-outlives-call"]
    simulator = server_router.use(scenario.make_simulator())
    args = ["--scenario", scenario.name, "--check", "--json", "--header", signature(server)]
    result = await call(server.media_url, *args)
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)  # stdout holds the JSON and nothing else
    assert data["ok"] is True
    calls = data["calls"]
    assert [c["call"] for c in calls] == [1, 2]
    assert "[1/2]" in result.stderr and "[2/2]" in result.stderr

    # What the server's side saw: one model session per call, and the server's own log line.
    with anyio.fail_after(5):
        while simulator.statistics().connections_open:
            await anyio.sleep(0.02)
    connections = simulator.connections
    assert len(connections) == 2
    log = server.output()
    for number, (record, connection) in enumerate(zip(calls, connections, strict=True)):
        assert record["ended_by"] == "caller"
        assert re.search(rf"call {record['call_sid']} ended after [0-9.]+ s: twilio stop", log)
        assert record["protocol_errors"] == [] and record["skipped"] == []
        assert record["clears"] == 0
        sent = audio_sent(connection)
        if number == 0:
            # The caller hangs up after 3.6 s of the bot: the greeting and part of the goodbye
            # (which the model generated faster than real time, all of it).
            assert connection.sent("response.function_call_arguments.done")
            assert record["heard"] == pytest.approx(3.6, abs=0.1)
            assert sent == pytest.approx(5.0, abs=0.05)
        else:
            assert record["heard"] == pytest.approx(sent, abs=0.05)  # the whole greeting
            assert record["ended_at"] == pytest.approx(9.0, abs=0.05)
    verdicts = {v["rule"]: v for v in data["check"]["rules"]}
    cut = verdicts["must not hang up the next call with the previous call's timer"]
    assert cut["held"] is True
    left = verdicts["must not leave a task or a model connection behind after the call"]
    assert left["held"] is None and left["why_not_judged"] == "needs the model's side"
    assert "simulate-model" in result.stderr  # the hint about the model's side


async def test_the_whole_scenario_with_simulate_model_playing_its_model_side(
    tmp_path: Path,
) -> None:
    """The documented pair, each as a user starts it: ``simulate-model --scenario`` serves the
    scenario's model side, ``serve`` talks to it, ``call --scenario --check`` plays the callers."""
    scenario = SCENARIOS["cancel-races-done"]
    command = [sys.executable, "-m", "voiceguard", "simulate-model", "--port", "0"]
    model = await anyio.open_process([*command, "--scenario", scenario.name])
    try:
        assert model.stdout is not None
        first = ""
        with anyio.fail_after(20):
            while "\n" not in first:
                first += (await model.stdout.receive()).decode()
        found = re.search(
            r"listening on (ws://127\.0\.0\.1:\d+/v1/realtime) \(OpenAI; scenario", first
        )
        assert found, first
        url = f"{found.group(1)}?model=gpt-realtime"
        args = ["--realtime-url", url, "--no-stream-tokens"]
        async with ServerProcess.running(
            args, log_dir=tmp_path, env={"TWILIO_AUTH_TOKEN": TOKEN}
        ) as server:
            argv = ["--scenario", scenario.name, "--check", "--json", "--header", signature(server)]
            result = await call(server.media_url, *argv)
    finally:
        model.terminate()
        await model.wait()
    assert result.returncode == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    assert data["ok"] is True
    (record,) = data["calls"]
    # The scenario's model: a greeting, then a 2.5 s answer the caller interrupts after 1.5 s.
    assert record["clears"] >= 1 and record["skipped"] == [] and record["protocol_errors"] == []
    verdicts = {v["rule"]: v["held"] for v in data["check"]["rules"]}
    assert verdicts["must clear the phone's playout on barge-in"] is True


async def test_custom_parameters_reach_the_bot(
    server: ServerProcess, server_router: ModelRouter
) -> None:
    simulator = server_router.use(
        RealtimeSimulator(replies=[Reply(text="Hi", duration=1.0)], audio_speed=8.0)
    )
    header = signature(server)
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    async def one(parameter: str) -> None:
        script = ["--parameter", parameter, "--hang-up", "2.5", "--json"]
        results[parameter] = await call(server.media_url, "--header", header, *script)

    async with anyio.create_task_group() as tg:
        tg.start_soon(one, "lang=en")  # on the server's allow-list
        tg.start_soon(one, "debug=1")  # not on it: refused before any model session
    allowed = json.loads(results["lang=en"].stdout)["calls"][0]
    refused = json.loads(results["debug=1"].stdout)["calls"][0]
    assert allowed["ended_by"] == "caller"
    assert len(simulator.connections) == 1
    assert allowed["heard"] == pytest.approx(audio_sent(simulator.connections[0]), abs=0.05)
    assert allowed["heard"] == pytest.approx(1.0, abs=0.05)
    assert refused["ended_by"] == "bot" and refused["heard"] == 0
    assert refused["ended_at"] < 1.0


async def test_a_refused_handshake_is_one_line_and_exit_2(server: ServerProcess) -> None:
    result = await call(server.media_url, "--hang-up", "2")  # no X-Twilio-Signature
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"voiceguard call: {server.media_url}: handshake refused (HTTP 403)"
    ]


# ---------------------------------------------------------------------------------------------
# The guarded sample bot, under uvicorn


@pytest.fixture(scope="module")
def sample() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("twilio_sample_guarded", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
async def sample_router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


@pytest.fixture(scope="module")
async def sample_port(sample: ModuleType, sample_router: ModelRouter) -> AsyncIterator[int]:
    sample.OPENAI_URL = sample_router.url  # type: ignore[attr-defined]
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("OPENAI_API_KEY", "sk-test")
        async with serving(sample.app) as port:
            yield port


async def test_a_scenario_through_the_guarded_sample_as_a_table(
    sample_port: int, sample_router: ModelRouter
) -> None:
    scenario = SCENARIOS["echo-in-first-seconds"]
    simulator = sample_router.use(scenario.make_simulator())
    url = f"ws://127.0.0.1:{sample_port}/media-stream"
    result = await call(url, "--scenario", scenario.name, "--check")
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert out.splitlines()[1].startswith(f"scenario {scenario.name}, 1 call to {url}")
    with anyio.fail_after(5):
        while simulator.statistics().connections_open:
            await anyio.sleep(0.02)
    (connection,) = simulator.connections
    heard = table_row(out, "bot audio heard")
    assert len(heard) == 1 and heard[0].endswith(" s")
    # All of it was heard; a pause to listen repeats at most one 100 ms chunk when it resumes.
    assert audio_sent(connection) - 0.05 <= float(heard[0].removesuffix(" s"))
    assert float(heard[0].removesuffix(" s")) <= audio_sent(connection) + 0.15
    # The greeting's echo was not taken for a barge-in: at most one pause to listen (a clear the
    # greeting resumed from), no cancel and no truncate at the model.
    assert table_row(out, "clears (barge-ins acted on)") in (["0"], ["1"])
    assert not connection.received("response.cancel")
    assert not connection.received("conversation.item.truncate")
    assert table_row(out, "ended by") == ["caller"]
    assert table_row(out, "call ended at") == ["7.0 s"]
    assert table_row(out, "protocol errors in what the bot sent") == ["0"]
    assert re.search(r"must play the whole greeting\s+held", out)
    assert re.search(
        r"must not stop the greeting but once, to listen for under a second\s+held", out
    )
    assert re.search(
        r"must not let the greeting be cancelled by its own echo\s+not judged: needs the "
        r"model's side",
        out,
    )
    assert f"simulate-model --scenario {scenario.name}" in " ".join(out.split())  # the hint


def _certificate(directory: Path) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1, made by the openssl command."""
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-days",
            "1",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return cert, key


async def _relay(source: anyio.abc.ByteStream, sink: anyio.abc.ByteStream) -> None:
    try:
        async for chunk in source:
            await sink.send(chunk)
    except (anyio.BrokenResourceError, anyio.ClosedResourceError, ssl.SSLError, OSError):
        pass


@pytest.mark.skipif(shutil.which("openssl") is None, reason="needs the openssl command")
async def test_a_wss_url_through_a_tls_front(
    sample_port: int, sample_router: ModelRouter, tmp_path: Path
) -> None:
    cert, key = _certificate(tmp_path)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    sample_router.use(RealtimeSimulator(replies=[Reply(text="Hi", duration=1.0)], audio_speed=8.0))

    async def front(client: anyio.abc.ByteStream) -> None:
        # TLS terminated here, as a proxy in front of a bot does; the bytes go on to the sample.
        async with (
            client,
            await anyio.connect_tcp("127.0.0.1", sample_port) as upstream,
            anyio.create_task_group() as tg,
        ):

            async def both_ways(a: anyio.abc.ByteStream, b: anyio.abc.ByteStream) -> None:
                await _relay(a, b)
                tg.cancel_scope.cancel()

            tg.start_soon(both_ways, client, upstream)
            tg.start_soon(both_ways, upstream, client)

    tcp = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = tcp.extra(anyio.abc.SocketAttribute.local_port)
    async with tcp, anyio.create_task_group() as tg:
        tg.start_soon(TLSListener(tcp, context, standard_compatible=False).serve, front)
        url = f"wss://127.0.0.1:{port}/media-stream"
        trusted = await call(url, "--hang-up", "2", "--json", env={"SSL_CERT_FILE": str(cert)})
        untrusted = await call(url, "--hang-up", "2", env={"SSL_CERT_FILE": "/nonexistent"})
        tg.cancel_scope.cancel()
    assert trusted.returncode == 0, trusted.stderr
    record = json.loads(trusted.stdout)["calls"][0]
    assert record["ended_by"] == "caller" and record["heard"] == pytest.approx(1.0, abs=0.05)
    assert untrusted.returncode == 2
    (line,) = untrusted.stderr.splitlines()
    assert line.startswith(f"voiceguard call: cannot connect to {url}: ")
    assert "CERTIFICATE_VERIFY_FAILED" in line


# ---------------------------------------------------------------------------------------------
# Errors: one line on stderr, exit 2


async def test_an_unreachable_url_is_one_line_and_exit_2() -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"ws://127.0.0.1:{port}/media-stream"
    result = await call(url, "--hang-up", "2", timeout=20.0)
    assert result.returncode == 2
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"voiceguard call: cannot connect to {url}: ")


async def test_a_bad_script_in_a_subprocess_is_one_line_and_exit_2() -> None:
    result = await call("ws://127.0.0.1:9/media-stream", "--say", "1.0:soon", timeout=20.0)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "voiceguard call: --say '1.0:soon': duration 'soon' is not allowed; allowed: seconds >= 0"
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--say", "heard:3"], "--say 'heard:3': time 'heard' is not allowed"),
        (["--say", "later=3"], "--say 'later=3': 'later' is not allowed; allowed: SECONDS or"),
        (["--say", "1:1:-200"], "level '-200' is not allowed; allowed: dBFS from -90 to 0"),
        (["--press", "1"], "--press '1': allowed: WHEN:DIGIT"),
        (["--hang-up", "-1"], "--hang-up '-1': time '-1' is not allowed; allowed: seconds >= 0"),
        ([], "nothing to play: give --scenario NAME or a script"),
        (["--scenario", "nope"], "--scenario 'nope' is not allowed; allowed: one of"),
        (["--scenario", "cancel-races-done", "--hang-up", "1"], "with --scenario is not allowed"),
        (["--check", "--hang-up", "1"], "--check without --scenario is not allowed"),
        (
            ["--scenario", "hangup-fallback-outlives-call", "--check", "--calls", "1"],
            "--calls 1 with --check is not allowed; allowed: the scenario's own 2",
        ),
        (["--calls", "21", "--hang-up", "1"], "allowed: an integer from 1 to 20"),
        (["--header", "X-Nothing", "--hang-up", "1"], "--header 'X-Nothing': allowed: 'Name: "),
        (["--parameter", "=1", "--hang-up", "1"], "--parameter '=1': allowed: name=value"),
        (["--echo", "9", "--hang-up", "1"], "--echo '9': allowed: DELAY[:LOSS]"),
    ],
)
def test_bad_options_are_one_line_naming_the_option_and_what_is_allowed(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["ws://127.0.0.1:9/media-stream", *args]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    (line,) = captured.err.splitlines()
    assert line.startswith("voiceguard call: ") and message in line


@pytest.mark.parametrize("url", ["http://127.0.0.1:5050/media-stream", "ws://", "ws://h:port/x"])
def test_a_bad_url_is_one_line(url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([url, "--hang-up", "1"]) == 2
    (line,) = capsys.readouterr().err.splitlines()
    assert line.startswith(f"voiceguard call: URL {url!r}: allowed: a ws:// or wss:// URL")


def test_help_and_the_registration_in_a_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    for option in ("--scenario", "--say", "--press", "--hang-up", "--header", "--parameter"):
        assert option in out
    assert "heard=3:0.8" in out and "simulate-model" in out
    # Registered as cli.py registers its commands: ``voiceguard call URL ...``.
    import argparse  # noqa: PLC0415

    parser = argparse.ArgumentParser(prog="voiceguard")
    add_call_command(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["call", "ws://h/x", "--say", "1:0.5", "--hang-up", "heard=2"])
    assert args.command == "call" and callable(args.handler)
    assert args.script == [("--say", "1:0.5"), ("--hang-up", "heard=2")]
