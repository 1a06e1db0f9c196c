"""``voiceguard simulate-model``: help, option errors, and a real run until interrupted."""

from __future__ import annotations

import re
import signal
import subprocess
import sys

import anyio
import pytest

from voiceguard.cli import main
from voiceguard.protocol import SessionCreated, parse_realtime_event
from voiceguard.transports.websocket import connect_websocket


def test_help_names_the_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate-model", "--help"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert "--port" in out and "--beta" in out and "--seed" in out and "websocket_base_url" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--port", "70000"], "--port '70000': allowed: an integer from 0 to 65535"),
        (["--port", "x"], "--port 'x': allowed: an integer from 0 to 65535"),
        (["--audio-speed", "0"], "--audio-speed '0': allowed: a number from 0.1 to 100"),
        (["--seed", "x"], "argument --seed: invalid int value"),
    ],
)
def test_bad_options_name_the_option_and_what_is_allowed(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as info:
        main(["simulate-model", *argv])
    assert info.value.code == 2
    assert message in capsys.readouterr().err


def test_tour_still_works(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tour", "--scenario", "watchdog"]) == 0
    assert "watchdog" in capsys.readouterr().out


def _serve_and_connect(argv: list[str], listening: str, query: str, key: dict[str, str]) -> str:
    """Run ``simulate-model --port 0 *argv*``, read where it listens from its banner (the regex
    *listening*, its group the port and path), take one session there with *key*, interrupt it;
    its banner's remaining first lines are returned."""
    command = [sys.executable, "-m", "voiceguard", "simulate-model", "--port", "0", *argv]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(listening, first)
        assert match, first
        second = process.stdout.readline()
        url = f"ws://127.0.0.1:{match.group(1)}{query}"

        async def talk() -> None:
            with anyio.fail_after(5):
                async with connect_websocket(url, headers=key) as ws:
                    assert isinstance(parse_realtime_event(await ws.receive()), SessionCreated)

        anyio.run(talk)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err
    assert "Traceback" not in err
    return second


@pytest.mark.realtime
def test_it_serves_until_interrupted() -> None:
    _serve_and_connect(
        ["--seed", "3"],
        r"ws://127\.0\.0\.1:(\d+/v1/realtime)",
        "?model=gpt-realtime",
        {"Authorization": "Bearer x"},
    )


@pytest.mark.realtime
def test_it_speaks_a_providers_dialect() -> None:
    second = _serve_and_connect(
        ["--provider", "azure"],
        r"ws://127\.0\.0\.1:(\d+/openai/v1/realtime) \(Azure OpenAI;",
        "?model=my-deployment",
        {"api-key": "k"},
    )
    assert "--model-provider azure" in second
