"""Load: concurrent real-time calls through ``voiceguard serve``, every peer in its own process.

Usage::

    python benchmarks/load.py [--json] [--calls 25,50,100,150,200] [--seconds 20] [--smoke]
                              [--plot docs/_static/load.png]

Method: three kinds of processes on 127.0.0.1, all started by this script:

* the **server**: ``python -m voiceguard serve --port 0 --realtime-url ws://...`` exactly as a
  user runs it (a fresh one per round);
* the **model**: a :class:`~voiceguard.sim.realtime.RealtimeSimulator` (this script with
  ``--role model``, a fresh one per round, answering every turn with the same pre-rendered 2 s of
  speech); it notes when each ``input_audio_buffer.append`` arrives and when each
  ``input_audio_buffer.speech_started`` leaves;
* the **callers** (this script with ``--role callers``): N Twilio media streams whose starts are
  spread evenly over 4 s, each sending a 20 ms mu-law frame every 20 ms on an absolute schedule
  (line noise at -60 dBFS; speech-like turns of 1.5 s at 4 s and every 8 s after, each followed
  3 s later by a barge-in into the bot's answer), playing the bot's audio in real time (a mark
  is echoed when the audio before it has played, a ``clear`` flushes the audio and echoes the
  pending marks, as Twilio does) and noting when each ``clear`` arrives; every call hangs up
  after ``--seconds``.

The model and caller processes run without the cyclic garbage collector (reference counting
frees what they drop; a round is short and each process exits after it): a full collection
of the model process, which holds every call's session, paused it for up to 170 ms at 100
calls, and every append that arrived meanwhile would have been counted as the server's
forwarding delay. The server runs as a user runs it (``voiceguard serve`` collects once and
freezes what it holds before its first call: :func:`gc.freeze`).

All three read the same clock (``time.monotonic``: CLOCK_MONOTONIC, shared by the processes of
one machine). Per round of N calls it reports:

* **server CPU per call-second**: the server process's user + system CPU (``/proc/PID/stat``)
  over the round, divided by N x seconds; **calls per core** is its inverse;
* **forwarding delay**: caller frame sent -> its append received by the model (frame *k* of a
  call is append *k* of the model connection that call opened: TCP keeps the order and the
  server forwards every frame; the call is recognised by a tag in its first frame), after the
  call's first second (while the server opens the model connection it holds the caller's
  frames; the first frame's delay, the setup, is reported apart);
* **barge-in reaction**: ``speech_started`` sent by the model -> the ``clear`` it caused received
  by the caller (the first ``clear`` after a ``speech_started`` of the same call, within 2 s);
* **memory per call**: the server's resident memory at the end of the call-starting phase minus
  before the round, divided by N;
* the CPU of the model and caller processes, because on a small machine they compete with the
  server for the same cores.

The largest N whose p99 forwarding delay stays under 20 ms is reported. Linux only (``/proc``).

Target: >= 200 calls per core with p99 forwarding delay under 20 ms.
"""

from __future__ import annotations

import argparse
import base64
import gc
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from array import array
from pathlib import Path
from typing import Any

import _bench
import anyio
import numpy as np

HOST = "127.0.0.1"
FRAME = 160
TAG = b"\xfe\xfeVG"
#: Seconds over which the calls of a round start, evenly spread.
START_SPAN = 4.0
TARGET_DELAY_MS = 20.0
TARGET_CALLS_PER_CORE = 200
#: The first second of a call is its setup: the server opens the model connection at ``start``
#: and holds the caller's frames until it is open. The forwarding delay counts the rest.
_SETUP_FRAMES = 50
_TICKS = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")
_LISTENING = re.compile(r"listening on http://([0-9.]+):(\d+)")


def proc_cpu(pid: int) -> float:
    """User + system CPU seconds of process *pid* (and its reaped children)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(v) for v in fields[11:15]) / _TICKS


def proc_rss(pid: int) -> int:
    """Resident memory of process *pid* in bytes."""
    return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * _PAGE


def proc_tree(pid: int) -> list[int]:
    """*pid* and its live descendants (a server's worker processes)."""
    tree, index = [pid], 0
    while index < len(tree):
        for task in Path(f"/proc/{tree[index]}/task").glob("*"):
            try:
                tree.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
        index += 1
    return tree


def _tree_sum(pid: int, read: Any) -> Any:
    total = 0
    for member in proc_tree(pid):
        try:
            total += read(member)
        except OSError:  # exited between the listing and the read
            continue
    return total


def tree_cpu(pid: int) -> float:
    """CPU seconds of *pid* and its live descendants (each with its reaped children)."""
    return float(_tree_sum(pid, proc_cpu))


def tree_rss(pid: int) -> int:
    """Resident memory of *pid* and its live descendants, in bytes."""
    return int(_tree_sum(pid, proc_rss))


# ------------------------------------------------------------------ the model process


def run_model(out: Path) -> None:
    """Serve the Realtime simulator; on stdin EOF write the timings to *out* and exit."""
    from voiceguard.sim.realtime import RealtimeSimulator, Reply  # noqa: PLC0415
    from voiceguard.sim.signals import speech_like  # noqa: PLC0415
    from voiceguard.transports.websocket import serve_websocket  # noqa: PLC0415

    # Every answer is the same pre-rendered speech: synthesising it at each response (15 ms of
    # CPU per 2 s of audio) would stall the simulator's event loop and show as forwarding delay.
    reply = Reply(audio=speech_like(2.0, level_dbfs=-16.0, seed=7))
    simulator = RealtimeSimulator(seed=1, default_reply=reply)
    connections: list[dict[str, Any]] = []
    clock = time.monotonic

    class Tap:
        def __init__(self, inner: Any, record: dict[str, Any]) -> None:
            self.inner, self.record = inner, record
            self.appends: array[float] = record["appends"]
            self.speech: array[float] = record["speech_started"]

        async def receive(self) -> str:
            text = await self.inner.receive()
            if text.startswith('{"type":"input_audio_buffer.append"'):
                self.appends.append(clock())
                if self.record["call"] is None:
                    audio = base64.b64decode(json.loads(text)["audio"])
                    if audio.startswith(TAG):
                        self.record["call"] = int(audio[len(TAG) : len(TAG) + 4])
            return text

        async def send(self, message: str) -> None:
            if '"input_audio_buffer.speech_started"' in message:
                self.speech.append(clock())
            await self.inner.send(message)

        async def aclose(self, *args: Any) -> None:
            await self.inner.aclose(*args)

        async def abort(self) -> None:
            await self.inner.abort()

        def receive_nowait(self) -> str | None:
            return None

    async def handle(transport: Any) -> None:
        record: dict[str, Any] = {
            "call": None,
            "appends": array("d"),
            "speech_started": array("d"),
        }
        connections.append(record)
        request = transport.request
        await simulator.serve_connection(
            Tap(transport, record), path=request.path, headers=request.headers
        )

    async def main() -> None:
        async with anyio.create_task_group() as tg:
            port = await tg.start(
                lambda task_status: serve_websocket(
                    handle, host=HOST, port=0, subprotocols=("realtime",), task_status=task_status
                )
            )
            print(f"listening {port}", flush=True)
            await anyio.wrap_file(sys.stdin).read()
            tg.cancel_scope.cancel()
        out.write_text(
            json.dumps(
                [
                    {
                        "call": c["call"],
                        "appends": c["appends"].tolist(),
                        "speech_started": c["speech_started"].tolist(),
                    }
                    for c in connections
                ]
            )
        )

    anyio.run(main)


# ------------------------------------------------------------------ the callers process


def _audio(seconds: float, number: int) -> list[str]:
    """The base64 frames of call *number*: noise, speech turns, a tag in the first frame."""
    from voiceguard.sim.signals import line_noise, mix, speech_like  # noqa: PLC0415

    noise = line_noise(seconds + 1.0, level_dbfs=-60.0, seed=number)
    speech = bytearray(b"\xff" * len(noise))  # mu-law silence
    # A turn every 8 s from 4 s on, and a barge-in 3 s after each turn, into the bot's answer.
    turns = [t + offset for t in np.arange(4.0, seconds, 8.0) for offset in (0.0, 3.0)]
    for at in (t for t in turns if t + 1.5 < seconds):
        words = speech_like(1.5, level_dbfs=-20.0, seed=number * 100 + int(at))
        start = int(at * 8000)
        speech[start : start + len(words)] = words
    audio = bytearray(mix(noise, bytes(speech)))
    tag = TAG + f"{number:04d}".encode()
    audio[: len(tag)] = tag
    return [
        base64.b64encode(bytes(audio[i : i + FRAME])).decode("ascii")
        for i in range(0, len(audio) - FRAME + 1, FRAME)
    ]


async def _one_call(url: str, number: int, seconds: float, frames: list[str]) -> dict[str, Any]:
    from voiceguard.transports import TransportClosed  # noqa: PLC0415
    from voiceguard.transports.websocket import connect_websocket  # noqa: PLC0415

    stream_sid = f"MZ{number:032d}"
    sent: array[float] = array("d")
    clears: array[float] = array("d")
    count = round(seconds / 0.02)
    clock = time.monotonic
    ended = ""
    async with connect_websocket(url) as ws:
        await ws.send(json.dumps({"event": "connected", "protocol": "Call", "version": "1.0.0"}))
        await ws.send(
            json.dumps(
                {
                    "event": "start",
                    "sequenceNumber": "1",
                    "streamSid": stream_sid,
                    "start": {
                        "streamSid": stream_sid,
                        "accountSid": "AC" + "0" * 32,
                        "callSid": f"CA{number:032d}",
                        "tracks": ["inbound"],
                        "customParameters": {},
                        "mediaFormat": {
                            "encoding": "audio/x-mulaw",
                            "sampleRate": 8000,
                            "channels": 1,
                        },
                    },
                }
            )
        )

        # The phone's playout: a mark is echoed once the audio queued before it has played
        # (as Twilio does); a clear flushes the audio and echoes the pending marks at once.
        played_until = 0.0
        marks: list[tuple[float, str]] = []

        def mark(name: str) -> str:
            return (
                f'{{"event":"mark","sequenceNumber":"0","streamSid":"{stream_sid}",'
                f'"mark":{{"name":"{name}"}}}}'
            )

        async def receive() -> None:
            nonlocal played_until
            try:
                while True:
                    text = await ws.receive()
                    if '"event":"media"' in text:
                        payload = json.loads(text)["media"]["payload"]
                        seconds = (len(payload) * 3 // 4 - payload[-2:].count("=")) / 8000
                        played_until = max(played_until, clock()) + seconds
                    elif '"event":"mark"' in text:
                        marks.append((played_until, json.loads(text)["mark"]["name"]))
                    elif '"event":"clear"' in text:
                        clears.append(clock())
                        played_until = 0.0
                        pending = [name for _, name in marks]
                        marks.clear()
                        for name in pending:
                            await ws.send(mark(name))
            except TransportClosed:
                pass

        async with anyio.create_task_group() as tg:
            tg.start_soon(receive)
            began = clock()
            try:
                for k in range(count):
                    due = began + 0.02 * k
                    wait = due - clock()
                    if wait > 0:
                        await anyio.sleep(wait)
                    now = clock()
                    while marks and marks[0][0] <= now:
                        await ws.send(mark(marks.pop(0)[1]))
                    sent.append(clock())
                    await ws.send(
                        f'{{"event":"media","sequenceNumber":"{k + 2}","streamSid":"{stream_sid}",'
                        f'"media":{{"track":"inbound","chunk":"{k + 1}","timestamp":"{20 * k}",'
                        f'"payload":"{frames[k]}"}}}}'
                    )
                await ws.send(
                    json.dumps(
                        {
                            "event": "stop",
                            "sequenceNumber": str(count + 2),
                            "streamSid": stream_sid,
                            "stop": {"accountSid": "AC" + "0" * 32, "callSid": f"CA{number:032d}"},
                        }
                    )
                )
                ended = "caller"
            except TransportClosed:
                ended = "server"
            await anyio.sleep(0.2)
            tg.cancel_scope.cancel()
    return {"call": number, "sent": sent.tolist(), "clears": clears.tolist(), "ended": ended}


def run_callers(url: str, first: int, calls: int, seconds: float, out: Path) -> None:
    """Make *calls* concurrent calls (numbers from *first*), their starts spread evenly over
    :data:`START_SPAN` seconds (so that their turns do not all fall in the same instant); write
    the timings."""
    audio = {n: _audio(seconds, n) for n in range(first, first + calls)}

    async def main() -> list[dict[str, Any]]:
        results: list[dict[str, Any]] = []

        async def call(number: int) -> None:
            try:
                results.append(await _one_call(url, number, seconds, audio[number]))
            except Exception as exc:  # a refused or failed call is a result, not a crash
                empty: list[float] = []
                ended = f"error: {type(exc).__name__}: {exc}"
                results.append({"call": number, "sent": empty, "clears": empty, "ended": ended})

        async with anyio.create_task_group() as tg:
            for number in audio:
                tg.start_soon(call, number)
                await anyio.sleep(START_SPAN / calls)
        return results

    calls_done = anyio.run(main)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    out.write_text(json.dumps({"cpu": usage.ru_utime + usage.ru_stime, "calls": calls_done}))


# ------------------------------------------------------------------ the orchestrator


class Process:
    def __init__(self, argv: list[str], *, stdin: bool = False, env: dict[str, str] | None = None):
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - lives as long as the process
        self.process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
            cwd=Path(__file__).resolve().parent,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def wait_line(self, pattern: re.Pattern[str], timeout: float = 30.0) -> re.Match[str]:
        assert self.process.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            match = pattern.search(line)
            if match:
                return match
        self.log.seek(0)
        raise RuntimeError(
            f"{self.process.args!r} did not start:\n{self.log.read().decode(errors='replace')}"
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.pid, signal.SIGKILL)
                self.process.wait()


def _script(*args: str) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), *args]


def run_round(
    calls: int,
    seconds: float,
    workdir: Path,
    callers: int,
    *,
    progress: bool,
    profile: Path | None = None,
    server_command: list[str] | None = None,
    label: str = "",
    workers: int = 1,
) -> dict[str, Any]:
    """One round: a fresh model and server, *calls* concurrent calls of *seconds*.

    *server_command* starts the server (default: ``python -m voiceguard serve``); it is given
    ``--host``, ``--port 0`` and ``--realtime-url`` (and ``--workers`` when *workers* > 1) and
    must print uvicorn's ``listening on`` line. Its CPU and memory are those of its whole
    process tree (its workers included).
    """
    model_out = workdir / f"model-{calls}.json"
    model = Process(_script("--role", "model", "--out", str(model_out)), stdin=True)
    server: Process | None = None
    caller_procs: list[tuple[Process, Path]] = []
    try:
        model_port = int(model.wait_line(re.compile(r"listening (\d+)")).group(1))
        env = dict(
            os.environ,
            OPENAI_API_KEY="sk-load-benchmark",
            VOICEGUARD_MAX_CALLS=str(max(100, 2 * calls)),
        )
        profiling = [] if profile is None else ["-m", "cProfile", "-o", str(profile)]
        if server_command is None:
            server_command = [sys.executable, *profiling, "-m", "voiceguard", "serve"]
        server = Process(
            [
                *server_command,
                "--host",
                HOST,
                "--port",
                "0",
                "--realtime-url",
                f"ws://{HOST}:{model_port}/v1/realtime?model=gpt-realtime",
                *([] if workers == 1 else ["--workers", str(workers)]),
            ],
            env=env,
        )
        server_port = int(server.wait_line(_LISTENING).group(2))
        time.sleep(1.0 if workers == 1 else 4.0)  # every worker up (each imports the server)
        cpu0 = {"server": tree_cpu(server.pid), "model": proc_cpu(model.pid)}
        rss0 = tree_rss(server.pid)
        began = time.monotonic()
        share = [calls // callers + (1 if i < calls % callers else 0) for i in range(callers)]
        first = 0
        for index, count in enumerate(share):
            if not count:
                continue
            out = workdir / f"callers-{calls}-{index}.json"
            proc = Process(
                _script(
                    "--role",
                    "callers",
                    "--url",
                    f"ws://{HOST}:{server_port}/media-stream",
                    "--first",
                    str(first),
                    "--count",
                    str(count),
                    "--seconds",
                    str(seconds),
                    "--out",
                    str(out),
                )
            )
            caller_procs.append((proc, out))
            first += count
        ramp = START_SPAN + 2.0  # every call started and its audio flowing
        total = seconds + ramp
        peak_rss = rss0
        limit = began + seconds + ramp + 60.0
        while any(p.process.poll() is None for p, _ in caller_procs):
            if time.monotonic() > limit:
                raise RuntimeError(f"the callers of round N={calls} did not finish")
            elapsed = time.monotonic() - began
            if elapsed >= ramp:
                peak_rss = max(peak_rss, tree_rss(server.pid))
            if progress:
                print(
                    f"\r  {label}N={calls}: {min(elapsed, total):5.1f} s of ~{total:.0f} s",
                    end="",
                    file=sys.stderr,
                    flush=True,
                )
            time.sleep(0.5)
        time.sleep(0.5)
        cpu1 = {"server": tree_cpu(server.pid), "model": proc_cpu(model.pid)}
        wall = time.monotonic() - began
    finally:
        if server is not None:
            server.stop()
        assert model.process.stdin is not None
        model.process.stdin.close()
        try:
            model.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            model.stop()
        for proc, _ in caller_procs:
            proc.stop()
    if server is not None:
        server.log.seek(0)
        log = server.log.read().decode(errors="replace")
        if "Traceback" in log:
            # Figures from a server that failed inside a call would measure the failure.
            first = log.index("Traceback")
            raise RuntimeError(
                f"the server of round N={calls} failed:\n{log[first : first + 3000]}"
            )
    results = []
    for proc, out in caller_procs:
        if not out.exists():
            proc.log.seek(0)
            log = proc.log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"the callers of round N={calls} failed:\n{log}")
        results.append(json.loads(out.read_text()))
    if progress:
        print("\r" + " " * 60 + "\r", end="", file=sys.stderr)
    return _measure(
        calls=calls,
        seconds=seconds,
        wall=wall,
        cpu={
            "server": cpu1["server"] - cpu0["server"],
            "model": cpu1["model"] - cpu0["model"],
            "callers": sum(r["cpu"] for r in results),
        },
        memory_per_call=(peak_rss - rss0) / calls,
        idle_rss=rss0,
        model=json.loads(model_out.read_text()),
        callers=[call for r in results for call in r["calls"]],
    )


def _measure(
    *,
    calls: int,
    seconds: float,
    wall: float,
    cpu: dict[str, float],
    memory_per_call: float,
    idle_rss: float = float("nan"),
    model: list[dict[str, Any]],
    callers: list[dict[str, Any]],
) -> dict[str, Any]:
    by_call = {c["call"]: c for c in model if c["call"] is not None}
    delays: list[float] = []
    first: list[float] = []
    reactions: list[float] = []
    lost = 0
    for call in callers:
        connection = by_call.get(call["call"])
        if connection is None:
            lost += 1
            continue
        sent = np.asarray(call["sent"])
        appends = np.asarray(connection["appends"])
        n = min(len(sent), len(appends))
        delay = 1000 * (appends[:n] - sent[:n])
        if n:
            first.append(float(delay[0]))
        delays.extend(delay[_SETUP_FRAMES:].tolist())
        lost += len(sent) - n
        speech = np.asarray(connection["speech_started"])
        used: set[int] = set()
        for clear in call["clears"]:
            before = np.nonzero(speech <= clear)[0]
            if not before.size:
                continue
            index = int(before[-1])
            if index in used or clear - speech[index] > 2.0:
                continue
            used.add(index)
            reactions.append(1000 * (clear - speech[index]))
    call_seconds = calls * seconds
    server_cpu = cpu["server"] / call_seconds
    return {
        "calls": calls,
        "seconds": seconds,
        "wall_s": wall,
        "server_cpu_ms_per_call_second": 1000 * server_cpu,
        "calls_per_core": 1 / server_cpu if server_cpu > 0 else float("inf"),
        "model_cpu_ms_per_call_second": 1000 * cpu["model"] / call_seconds,
        "callers_cpu_ms_per_call_second": 1000 * cpu["callers"] / call_seconds,
        "forwarding_delay_ms": {
            "p50": _bench.percentile(delays, 0.50),
            "p99": _bench.percentile(delays, 0.99),
            "max": max(delays, default=float("nan")),
            "frames": len(delays),
        },
        "first_frame_delay_ms": {
            "p50": _bench.percentile(first, 0.50),
            "max": max(first, default=float("nan")),
        },
        "frames_not_forwarded": lost,
        "barge_in_reaction_ms": {
            "p50": _bench.percentile(reactions, 0.50),
            "p99": _bench.percentile(reactions, 0.99),
            "count": len(reactions),
        },
        "server_memory_per_call_kb": memory_per_call / 1024,
        "server_idle_rss_mib": idle_rss / 2**20,
        "calls_ended_by_server": sum(1 for c in callers if c["ended"] == "server"),
        "calls_failed": sum(1 for c in callers if c["ended"].startswith("error")),
    }


def plot(rounds: list[dict[str, Any]], path: Path) -> None:
    """Forwarding delay and server CPU against concurrent calls (needs matplotlib)."""
    import matplotlib  # noqa: PLC0415 - the bench extra

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    n = [r["calls"] for r in rounds]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6), constrained_layout=True)
    left.plot(n, [r["forwarding_delay_ms"]["p50"] for r in rounds], "o-", label="p50")
    left.plot(n, [r["forwarding_delay_ms"]["p99"] for r in rounds], "s-", label="p99")
    left.axhline(TARGET_DELAY_MS, color="grey", linestyle="--", label="20 ms target")
    left.set_xlabel("concurrent calls")
    left.set_ylabel("forwarding delay (ms)")
    left.set_yscale("log")
    left.legend()
    left.set_title("caller frame sent -> append at the model")
    right.plot(
        n,
        [r["server_cpu_ms_per_call_second"] * r["calls"] / 10 for r in rounds],
        "o-",
        label="server",
    )
    right.plot(
        n,
        [r["model_cpu_ms_per_call_second"] * r["calls"] / 10 for r in rounds],
        "s-",
        label="model simulator",
    )
    right.plot(
        n,
        [r["callers_cpu_ms_per_call_second"] * r["calls"] / 10 for r in rounds],
        "^-",
        label="callers",
    )
    right.set_xlabel("concurrent calls")
    right.set_ylabel("CPU (% of one core)")
    right.legend()
    right.set_title("CPU of each process")
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description="concurrent calls through voiceguard serve")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    parser.add_argument(
        "--calls", default="25,50,100,150,200", help="concurrent calls per round (comma list)"
    )
    parser.add_argument("--seconds", type=float, default=20.0, help="call length (default 20)")
    parser.add_argument(
        "--caller-processes", type=int, default=1, help="processes the callers share (default 1)"
    )
    parser.add_argument(
        "--workers", type=int, default=1, help="the server's worker processes (default 1)"
    )
    parser.add_argument("--plot", type=Path, help="save a PNG plot here (needs matplotlib)")
    parser.add_argument(
        "--profile-server",
        type=Path,
        help="run the server under cProfile; PATH gets the round's call count",
    )
    parser.add_argument("--smoke", action="store_true", help="a tiny run: 2 calls for 3 s")
    parser.add_argument("--role", choices=("model", "callers"), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--first", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--count", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role is not None:  # a load generator: its own collections must not show as delay
        gc.collect()
        gc.disable()
    if args.role == "model":
        run_model(args.out)
        return
    if args.role == "callers":
        run_callers(args.url, args.first, args.count, args.seconds, args.out)
        return
    sizes = [int(n) for n in args.calls.split(",")]
    if args.smoke:
        sizes, args.seconds = [2], 3.0
    rounds = []
    failed: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="voiceguard-load-") as workdir:
        for calls in sizes:
            profile = None
            if args.profile_server is not None:
                profile = args.profile_server.with_name(
                    f"{args.profile_server.stem}-{calls}{args.profile_server.suffix}"
                )
            try:
                outcome = run_round(
                    calls,
                    args.seconds,
                    Path(workdir),
                    args.caller_processes,
                    progress=not args.json,
                    profile=profile,
                    workers=args.workers,
                )
            except RuntimeError as exc:  # the machine gave out: report the rounds done
                print(f"  N={calls}: round failed: {exc}", file=sys.stderr, flush=True)
                failed.append({"calls": calls, "error": str(exc)[-1000:]})
                break
            rounds.append(outcome)
            if not args.json:
                d, b = outcome["forwarding_delay_ms"], outcome["barge_in_reaction_ms"]
                print(
                    f"  N={calls}: forwarding p50 {d['p50']:.1f} ms p99 {d['p99']:.1f} ms, "
                    f"barge-in p50 {b['p50']:.0f} ms, server "
                    f"{outcome['server_cpu_ms_per_call_second']:.1f} ms CPU per call-second",
                    file=sys.stderr,
                    flush=True,
                )
    ok = [r for r in rounds if r["forwarding_delay_ms"]["p99"] < TARGET_DELAY_MS]
    best = max(ok, key=lambda r: r["calls"]) if ok else None
    cores = os.cpu_count() or 1
    result = {
        "workers": args.workers,
        "method": (
            "server, model simulator and callers in separate processes on 127.0.0.1; server CPU "
            "from /proc over the round divided by call-seconds; delays on the shared monotonic "
            "clock"
        ),
        "seconds": args.seconds,
        "rounds": rounds,
        "failed_rounds": failed,
        "largest_calls_p99_under_20ms": best["calls"] if best else None,
        "largest_calls_per_core_p99_under_20ms": best["calls"] / cores if best else None,
        "calls_per_core_from_server_cpu": _bench.median([r["calls_per_core"] for r in rounds]),
        "target_calls_per_core": TARGET_CALLS_PER_CORE,
    }
    if args.plot is not None:
        plot(rounds, args.plot)
        result["plot"] = str(args.plot)
    rows = [
        [
            r["calls"],
            r["forwarding_delay_ms"]["p50"],
            r["forwarding_delay_ms"]["p99"],
            r["barge_in_reaction_ms"]["p50"],
            r["barge_in_reaction_ms"]["p99"],
            r["server_cpu_ms_per_call_second"],
            r["calls_per_core"],
            r["server_memory_per_call_kb"],
            r["model_cpu_ms_per_call_second"],
            r["callers_cpu_ms_per_call_second"],
        ]
        for r in rounds
    ]
    text = _bench.table(
        [
            "calls",
            "fwd p50 ms",
            "fwd p99 ms",
            "barge-in p50 ms",
            "barge-in p99 ms",
            "server ms CPU/call-s",
            "calls/core",
            "server KiB/call",
            "model ms CPU/call-s",
            "callers ms CPU/call-s",
        ],
        rows,
    )
    text += (
        f"\n\nlargest N with p99 forwarding delay < {TARGET_DELAY_MS:g} ms: "
        f"{result['largest_calls_p99_under_20ms']} on {cores} cores shared by all processes; "
        f"server CPU alone allows {result['calls_per_core_from_server_cpu']:.0f} calls per core"
    )
    _bench.emit(result, args.json, text)


if __name__ == "__main__":
    main()
