"""Every subcommand's user errors as a user meets them: one line on stderr, a non-zero exit, never
a traceback; and a closed stdout or Ctrl+C ends a command quietly.

Each case runs the real command (``python -m voiceguard``) in a subprocess with a timeout, in an
environment without VOICEGUARD_/OPENAI_/TWILIO_ variables but those the case sets. The subcommands
come from the parser; for every one of them each table below says how a case runs it or why the
case does not apply, so a new subcommand fails here until it is added to them. No case lets the
demo run (it takes 30 s): its errors must be found before it starts.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, TypeVar

import pytest
import trio
import trio.testing

from voiceguard.cli import build_parser
from voiceguard.demo import guarded_bridge
from voiceguard.observe.trace import TraceRecorder
from voiceguard.sim.scenarios import SCENARIOS, run_scenario

#: Seconds any one command may take; the demo that really ran would take longer.
_TIMEOUT: Final = 20.0
_KEY: Final = {"OPENAI_API_KEY": "sk-test"}
_T = TypeVar("_T")


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(commands.choices)


COMMANDS: Final = _subcommands()


def _options(command: str) -> list[argparse.Action]:
    return [a for a in COMMANDS[command]._actions if a.option_strings]


@dataclass(frozen=True, slots=True)
class Run:
    """A command line after the subcommand (``{name}`` is a file of the ``files`` fixture), the
    variables it needs, and what its one error line must say, if that is checked."""

    args: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    says: str = ""


# ------------------------------------------------------------------------------------ tables

#: How each subcommand runs normally (until it prints to stdout, or serves).
RUN: Final[Mapping[str, Run]] = {
    "tour": Run(("--scenario", "watchdog")),
    "simulate-model": Run(("--port", "0")),
    "serve": Run(("--port", "0"), _KEY),
    "demo": Run(),
    "replay": Run(("{trace}",)),
    "call": Run(("ws://127.0.0.1:9/media-stream", "--hang-up", "1")),
}

#: Bad arguments and inputs beyond the automatic ones (an unknown option, a value outside an
#: option's choices).
BAD: Final[Mapping[str, Sequence[Run]]] = {
    "tour": [Run(("--json", "extra"))],
    "simulate-model": [
        Run(("--port", "70000")),
        Run(("--audio-speed", "0")),
        Run(("--seed", "x")),
        Run(("--scenario", "no-such-scenario")),
        Run(("--scenario", "cancel-races-done", "--audio-speed", "2")),
    ],
    "serve": [
        Run(
            (),
            says="voiceguard serve: OPENAI_API_KEY is not set: set it to your OpenAI API key "
            "(any non-empty value for a local simulator)",
        ),
        Run(("--port", "x"), _KEY),
        Run(("--workers", "0"), _KEY),
        Run((), {**_KEY, "VOICEGUARD_MAX_CALLS": "lots"}, says="VOICEGUARD_MAX_CALLS = 'lots'"),
        Run(("--host", "0.0.0.0", "--port", "0"), _KEY, says="without TWILIO_AUTH_TOKEN"),
    ],
    "demo": [Run(("--calls", "0")), Run(("--seed", "-1"))],
    "replay": [
        Run(),
        Run(("{missing}",), says="cannot read the trace"),
        Run(("{directory}",), says="cannot read the trace"),
        Run(("{binary}",), says="cannot read the trace"),
        Run(("{empty}",), says="empty file"),
        Run(("{garbage}",), says=":1: not JSON"),
        Run(("{headerless}",), says="not a voiceguard trace"),
        Run(("{trace}", "--config", "{missing}"), says="--config"),
        Run(("{trace}", "--config", "{garbage}"), says="not JSON"),
        Run(
            ("{trace}", "--config", "{misspelt}"),
            says="BridgeConfig.confirm_barge_inn = 0.4 is not allowed; allowed: a field of "
            "BridgeConfig (did you mean 'confirm_barge_in'?): instructions, voice,",
        ),
        Run(
            ("{trace}", "--timeline", "{directory}/echo.pdf"),
            says="unknown suffix '.pdf'; use .html, .svg or .png",
        ),
        Run(("{trace}", "--timeline", "{directory}"), says="unknown suffix '(none)'"),
    ],
    "call": [
        Run(("ws://127.0.0.1:9/media-stream", "--say", "1:x"), says="--say '1:x'"),
        Run(("http://127.0.0.1:9/media-stream",)),
        Run(("ws://127.0.0.1:9/media-stream", "--hang-up", "1"), says="cannot connect to"),
    ],
}

#: Why a subcommand without ``--port`` listens on no port a user picks.
NO_PORT: Final[Mapping[str, str]] = {
    "tour": "plays its calls in memory, in virtual time",
    "demo": "listens only on free ports of 127.0.0.1 that it picks itself",
    "replay": "reads a file, listens on nothing",
    "call": "connects out to the bot, listens on nothing",
}

#: Where each subcommand writes a file, ``{out}`` being a directory; or why it writes none.
WRITES: Final[Mapping[str, tuple[str, ...] | str]] = {
    "demo": ("--trace", "{out}"),
    "replay": ("{trace}", "--timeline", "{out}/timeline.svg"),
    "tour": "prints to stdout only",
    "simulate-model": "writes no file",
    "serve": ("--port", "0", "--trace-dir", "{out}"),
    "call": "prints to stdout only",
}

#: How a case waits until each subcommand is running, to press Ctrl+C, and the exit status then
#: (the servers run until Ctrl+C: it is their way to stop, status 0); or why there is no moment.
INTERRUPT: Final[Mapping[str, tuple[str, int] | str]] = {
    "demo": ("its calls started", 130),
    "serve": ("answers at its address", 0),
    "simulate-model": ("answers at its address", 0),
    "replay": ("reading a FIFO", 130),
    "tour": "plays its calls in virtual time and reads nothing: it is done before a signal can be "
    "aimed at it (the replay case covers the same handler)",
    "call": "needs a bot to call: without one it ends at once (the replay case covers the same "
    "handler)",
}

_TABLES: Final[Mapping[str, Mapping[str, object]]] = {
    "RUN": RUN,
    "BAD": BAD,
    "WRITES": WRITES,
    "INTERRUPT": INTERRUPT,
}


def _entry(rows: Mapping[str, _T], command: str) -> _T:
    """The row of *command*; the case fails if the table has none (a new subcommand)."""
    if command not in rows:
        table = next(
            name for name, table in {**_TABLES, "NO_PORT": NO_PORT}.items() if table is rows
        )
        pytest.fail(
            f"voiceguard {command} is not in {table} of {Path(__file__).name}: say how the case "
            "runs it, or why the case does not apply"
        )
    return rows[command]


# ---------------------------------------------------------------------------------- helpers


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The files the command lines name: a recorded trace, bad inputs, a regular file."""
    root = tmp_path_factory.mktemp("cli-errors")
    recorders: list[TraceRecorder] = []

    def recorder() -> TraceRecorder:
        recorders.append(TraceRecorder(root, audio="full"))
        return recorders[-1]

    async def play() -> None:
        await run_scenario(SCENARIOS["speech-started-burst"], guarded_bridge(trace=recorder))

    trio.run(play, clock=trio.testing.MockClock(autojump_threshold=0))
    (trace,) = (r.path for r in recorders)
    assert trace is not None
    paths = {
        "trace": trace,
        "missing": root / "missing.jsonl",
        "directory": root / "a-directory",
        "binary": root / "binary.jsonl",
        "empty": root / "empty.jsonl",
        "garbage": root / "garbage.jsonl",
        "headerless": root / "headerless.jsonl",
        "misspelt": root / "misspelt.json",
        "file": root / "README.md",
    }
    paths["directory"].mkdir()
    paths["binary"].write_bytes(bytes(range(128, 256)))
    paths["empty"].write_bytes(b"")
    paths["garbage"].write_text("this is not JSON\n", encoding="utf-8")
    paths["headerless"].write_text('{"k": "tick", "t": 1.0}\n', encoding="utf-8")
    paths["misspelt"].write_text('{"confirm_barge_inn": 0.4}\n', encoding="utf-8")
    paths["file"].write_text("a regular file\n", encoding="utf-8")
    return {name: str(path) for name, path in paths.items()}


def _env(extra: Mapping[str, str]) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("VOICEGUARD_", "OPENAI_", "TWILIO_"))
        and name != "PYTHONUNBUFFERED"  # each case says how stdout is buffered
    }
    env.update(extra)
    return env


def _argv(command: str, args: Sequence[str], files: Mapping[str, str]) -> list[str]:
    return [sys.executable, "-m", "voiceguard", command, *(a.format(**files) for a in args)]


def _run(
    command: str, run: Run, files: Mapping[str, str], *extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        _argv(command, [*run.args, *extra], files),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=_env(run.env),
        timeout=_TIMEOUT,
        check=False,
    )


def assert_one_error_line(done: subprocess.CompletedProcess[str], command: str) -> str:
    """A non-zero exit, nothing on stdout, and one line on stderr: the command's own, or
    argparse's usage block and its one ``voiceguard <command>: error:`` line. Returns the line."""
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode != 0, done.stderr
    assert done.stdout == "", "printed before the error was found"
    lines = done.stderr.splitlines()
    if lines and lines[0].startswith("usage: "):
        usage, line = lines[:-1], lines[-1]
        assert all(u.startswith(("usage: ", " ")) for u in usage), done.stderr
        assert line.startswith(f"voiceguard {command}: error: "), done.stderr
    else:
        assert len(lines) == 1, done.stderr
        (line,) = lines
        assert line.startswith(f"voiceguard {command}"), line
    return line


def _bad_runs() -> Iterator[object]:
    for command in sorted(COMMANDS):
        yield pytest.param(command, Run(("--no-such-option",)), id=f"{command}-unknown-option")
        for action in _options(command):
            if action.choices is not None:
                flag = action.option_strings[-1]
                yield pytest.param(
                    command, Run((flag, "no-such-choice")), id=f"{command}-{flag}-choice"
                )
        if command not in BAD:
            yield pytest.param(command, None, id=f"{command}-not-in-BAD")
            continue
        for run in BAD[command]:
            words = [*run.args, *(f"{name}={value}" for name, value in run.env.items())]
            yield pytest.param(command, run, id=f"{command} {' '.join(words) or '(nothing)'}")


# ------------------------------------------------------------------------------------ tests


def test_every_subcommand_is_in_every_table() -> None:
    for name, rows in _TABLES.items():
        assert set(rows) == set(COMMANDS), f"{name}: {sorted(set(rows) ^ set(COMMANDS))}"
    for command in COMMANDS:
        has_port = any("--port" in a.option_strings for a in _options(command))
        assert has_port != (command in NO_PORT), f"NO_PORT: {command}"


@pytest.mark.parametrize(("command", "run"), list(_bad_runs()))
def test_bad_arguments(command: str, run: Run | None, files: dict[str, str]) -> None:
    if run is None:
        _entry(BAD, command)
        return
    line = assert_one_error_line(_run(command, run, files), command)
    assert run.says.format(**files) in line


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_busy_port(command: str, files: dict[str, str]) -> None:
    if not any("--port" in a.option_strings for a in _options(command)):
        pytest.skip(_entry(NO_PORT, command))
    run = _entry(RUN, command)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _run(command, run, files, "--port", str(port))
    line = assert_one_error_line(done, command)
    assert line.startswith(f"voiceguard {command}: cannot listen on 127.0.0.1:{port}: "), line


@pytest.mark.parametrize("where", ["a-file", "under-a-file", "/proc/nope"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_an_unwritable_path(command: str, where: str, files: dict[str, str]) -> None:
    writes = _entry(WRITES, command)
    if isinstance(writes, str):
        pytest.skip(writes)
    if where == "/proc/nope" and not Path("/proc").is_dir():
        pytest.skip("no /proc here")
    out = {"a-file": files["file"], "under-a-file": files["file"] + "/sub"}.get(where, where)
    run = Run(tuple(a.replace("{out}", out) for a in writes))
    assert_one_error_line(_run(command, run, files), command)


@pytest.mark.parametrize("buffered", [True, False], ids=["buffered", "unbuffered"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_a_closed_stdout(command: str, buffered: bool, files: dict[str, str]) -> None:
    run = _entry(RUN, command)
    # The read end is closed before the child starts: its first write (or flush) fails, as
    # in `voiceguard tour | head -1` once head has exited, but every time.
    read_end, write_end = os.pipe()
    os.close(read_end)
    try:
        done = subprocess.run(
            _argv(command, run.args, files),
            stdin=subprocess.DEVNULL,
            stdout=write_end,
            stderr=subprocess.PIPE,
            text=True,
            env=_env({**run.env, **({} if buffered else {"PYTHONUNBUFFERED": "1"})}),
            timeout=_TIMEOUT,
            check=False,
        )
    finally:
        os.close(write_end)
    assert done.returncode != 0
    assert done.stderr == "", "a closed stdout ends the command quietly"


def _wait_for_a_line(process: subprocess.Popen[bytes]) -> bytes:
    """What the process printed until its first line on stdout or stderr."""
    assert process.stdout is not None and process.stderr is not None
    seen = b""
    deadline = time.monotonic() + _TIMEOUT
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        selector.register(process.stderr, selectors.EVENT_READ)
        while b"\n" not in seen:
            left = deadline - time.monotonic()
            assert left > 0 and process.poll() is None, seen
            for key, _ in selector.select(left):
                seen += os.read(key.fd, 4096)
    return seen


def _wait_for_an_answer(first: bytes) -> None:
    """Wait until the server whose first line is *first* answers an HTTP request."""
    match = re.search(rb"127\.0\.0\.1:(\d+)", first)
    assert match is not None, first
    # The socket listens before the first line: the request waits in its backlog until the
    # server takes it, so the answer is the moment it serves (and handles Ctrl+C as a stop).
    with socket.create_connection(("127.0.0.1", int(match.group(1))), timeout=_TIMEOUT) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        conn.recv(1)


def _wait_for_a_reader(fifo: Path, process: subprocess.Popen[bytes]) -> int:
    """Open *fifo* for writing once the process opened it for reading, and wait until it is
    blocked reading it.

    A signal that lands between the open and the read would wait for a read that never ends:
    CPython runs the handler only when the read is interrupted, or back in Python code.
    """
    deadline = time.monotonic() + _TIMEOUT
    while True:
        try:
            writer = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as exc:
            if exc.errno != errno.ENXIO:  # no reader yet
                raise
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.01)
    stat = Path(f"/proc/{process.pid}/stat")
    if not stat.exists():
        time.sleep(0.5)  # no /proc to look in: time enough to reach the read
        return writer
    # Woken by the open, it runs until it sleeps again: in the read.
    while stat.read_text().rpartition(")")[2].split()[0] != "S":
        assert time.monotonic() < deadline and process.poll() is None
        time.sleep(0.005)
    return writer


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_ctrl_c(command: str, files: dict[str, str], tmp_path: Path) -> None:
    how = _entry(INTERRUPT, command)
    if isinstance(how, str):
        pytest.skip(how)
    waiting, status = how
    run = _entry(RUN, command)
    fifo = tmp_path / "trace.jsonl"
    args = run.args
    if waiting == "reading a FIFO":
        os.mkfifo(fifo)
        args = tuple(str(fifo) if a == "{trace}" else a for a in args)
    writer: int | None = None
    with subprocess.Popen(
        _argv(command, args, files),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=_env(run.env),
        start_new_session=True,  # a Ctrl+C at the test's terminal is not sent to it too
    ) as process:
        try:
            if waiting == "reading a FIFO":
                writer = _wait_for_a_reader(fifo, process)
            elif waiting == "answers at its address":
                _wait_for_an_answer(_wait_for_a_line(process))
            else:
                _wait_for_a_line(process)
                # Whenever the signal lands the outcome must be the same; this lands it where
                # the servers and the first calls are starting, where a stop is hardest.
                time.sleep(1.5)
            process.send_signal(signal.SIGINT)
            _, err = process.communicate(timeout=_TIMEOUT)
        finally:
            if writer is not None:
                os.close(writer)
            if process.poll() is None:
                process.kill()
    text = err.decode(errors="replace")
    assert "Traceback" not in text, text
    assert process.returncode == status, text
    if status:
        assert text.splitlines()[-1] == f"voiceguard {command}: interrupted", text
