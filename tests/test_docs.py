"""The docs say what the code does: each guard's page lists its reasons, and the snippets run.

The README's Python snippets and every snippet and command of ``docs/decisions.md`` are run as
written (see *The code of the pages* below).
"""

from __future__ import annotations

import ast
import importlib.util
import inspect
import json
import logging
import re
import shlex
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest
import trio.testing
from log_capture import every_record

from voiceguard import CancelConfig, Reason, Verdict
from voiceguard.demo import guarded_bridge
from voiceguard.middleware import GuardedCall
from voiceguard.sim import SCENARIOS, RealtimeSimulator, Reply, memory_pair, run_scenario
from voiceguard.sim.adapters import StarletteSocket

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize(
    ("module", "page"),
    [
        ("voiceguard/core/guards/cancel.py", "docs/cancel-arbiter.md"),
        ("voiceguard/core/guards/create.py", "docs/response-create-guard.md"),
        ("voiceguard/core/bot.py", "docs/middleware.md"),
    ],
)
def test_guard_page_lists_every_reason(module: str, page: str) -> None:
    source = (ROOT / module).read_text(encoding="utf-8")
    reasons = set(re.findall(r"Reason\.([A-Z_]+)", source))
    assert reasons, "no reasons found: the pattern is wrong"
    text = (ROOT / page).read_text(encoding="utf-8")
    listed = set(re.findall(r"`([A-Z_]+)`", text))
    assert reasons - listed == set()


#: Files of the project's own planning, outside the repository: users do not have them.
OUTSIDE = re.compile(r"\b(DESIGN|PROTOCOLS|ANCHORS|STYLE)\.md\b|DESIGN (invariant|section)")


def test_no_code_or_page_cites_a_file_outside_the_repository() -> None:
    roots = ("voiceguard", "tests", "examples", "benchmarks", "docs")
    cited = [
        f"{path.relative_to(ROOT)}:{number}"
        for root in roots
        for path in sorted((ROOT / root).rglob("*"))
        if path.suffix in (".py", ".md") and "_build" not in path.parts
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if OUTSIDE.search(line) and path.name != "test_docs.py"
    ]
    assert cited == []


# ============================================================================================
# The code of the pages, run as written
#
# Every Python snippet of the README and of the decisions page, and the commands of the
# decisions page, run here: each test below takes one by its index on its page, and the first
# test fails when a page gains a snippet that no test runs.

#: The blocks of code of each page, by language, that the tests below run (the README's bash
#: blocks: the quickstart's two, which .ci/run takes from their markers, and the examples and
#: commands, each marked ``<!-- ci: ... -->`` for .ci/readme.py; the test after the next says so).
RUN_HERE = {
    "README.md": {"python": 2, "bash": 13},
    "docs/decisions.md": {"python": 3, "console": 1},
}
_CODE = ("python", "console", "bash", "sh", "shell", "pycon")
_FENCE = re.compile(
    r"^(?P<fence>`{3,})(?P<info>[^\n`]*)\n(?P<code>.*?)^(?P=fence)[ \t]*$", re.M | re.S
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Block:
    """One fenced block of a page."""

    language: str
    code: str
    line: int


def blocks(page: str, *languages: str) -> list[Block]:
    """The fenced blocks of *page* (relative to the repository), of *languages* if given."""
    text = (ROOT / page).read_text(encoding="utf-8")
    found = []
    for match in _FENCE.finditer(text):
        info = match["info"].split()
        language = info[0] if info else ""
        if not languages or language in languages:
            line = text.count("\n", 0, match.start()) + 1
            found.append(Block(language=language, code=match["code"], line=line))
    return found


def shown_after(page: str, snippet: Block) -> list[str]:
    """The lines of the ``text`` block that follows *snippet* on *page* (what it prints)."""
    every = blocks(page)
    following = every[every.index(snippet) + 1]
    assert following.language == "text", f"{page}:{snippet.line}: no output shown after it"
    return following.code.splitlines()


def run_python(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run *code* as a script of its own, as a reader would."""
    script = cwd / "snippet.py"
    script.write_text(code, encoding="utf-8")
    return subprocess.run(
        [sys.executable, str(script)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        check=False,
    )


async def exec_snippet(block: Block, page: str, **names: object) -> dict[str, Any]:
    """Run *block* in this process, with *names* defined (top-level ``await`` allowed)."""
    code = compile(block.code, f"{page}:{block.line}", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    namespace: dict[str, Any] = {"__name__": "snippet", **names}
    result = eval(code, namespace)  # the page's own code, compiled above
    if inspect.iscoroutine(result):
        await result
    return namespace


def in_order(expected: list[str], lines: list[str]) -> list[str]:
    """The lines of *expected* (but ``...``) not found in *lines* in that order."""
    remaining = iter(lines)
    return [line for line in expected if line != "..." and line not in remaining]


@pytest.mark.parametrize("page", sorted(RUN_HERE))
def test_every_snippet_of_the_pages_is_run_by_a_test(page: str) -> None:
    found = Counter(block.language for block in blocks(page, *_CODE))
    assert found == RUN_HERE[page], f"{page}: a block of code no test runs (add one here)"


def test_every_shell_block_of_the_readme_is_run_by_ci(monkeypatch: pytest.MonkeyPatch) -> None:
    # .ci/readme.py's own reading of the README (it fails on a marker it does not know), and
    # the quickstart's two markers, which .ci/run takes the install and test commands from.
    spec = importlib.util.spec_from_file_location("ci_readme", ROOT / ".ci" / "readme.py")
    assert spec is not None and spec.loader is not None
    ci_readme = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, ci_readme)  # its dataclass looks itself up there
    spec.loader.exec_module(ci_readme)
    fences = {block.line - 1 for block in ci_readme.read_blocks(ROOT / "README.md")}
    text = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    for marker in ("<!-- quickstart-run -->", "<!-- quickstart-test -->"):
        fences.add(text.index(marker) + 2)
    unmarked = [block.line for block in blocks("README.md", "bash") if block.line not in fences]
    assert unmarked == [], f"README.md: bash blocks at lines {unmarked} are run by no CI step"


# ------------------------------------------------------------------------------- README.md


@pytest.mark.anyio
async def test_the_readme_guard_snippet_takes_turn_control_and_sends_the_deferred_cancel() -> None:
    snippet = blocks("README.md", "python")[0]
    simulator = RealtimeSimulator(default_reply=Reply(text="A long answer.", duration=6.0))
    with anyio.fail_after(20):
        async with simulator.connect() as model:
            bridge = await exec_snippet(snippet, "README.md", call_sid="CA1", model=model)

            async def until(event_type: str) -> None:
                while True:
                    message = await model.receive()
                    await bridge["on_model_message"](message)
                    if json.loads(message)["type"] == event_type:
                        return

            await bridge["on_model_connected"]()
            await until("session.updated")
            await bridge["on_bot_turn"]()
            await until("response.created")
            await bridge["on_barge_in"]()  # while the answer runs: cancelled now
            await until("response.done")
            await anyio.sleep(CancelConfig().cooldown)  # cancels closer together are refused
            await bridge["on_bot_turn"]()
            await bridge["on_barge_in"]()  # before response.created: sent once it arrives
            await until("response.done")
    statistics = simulator.statistics()
    assert statistics.errors_by_code == {}
    assert (statistics.responses_created, statistics.responses_cancelled) == (2, 2)
    cancels = bridge["cancels"].statistics()
    assert cancels.count(Verdict.ALLOW, Reason.OK) == 2
    assert cancels.count(Verdict.DEFER, Reason.CREATE_IN_FLIGHT) == 1
    assert cancels.count(Verdict.SUPPRESS) == 0  # no SERVER_CANCELS: the session was updated


@pytest.mark.parametrize("anyio_backend", ["asyncio"])  # the websockets package runs on asyncio
@pytest.mark.anyio
async def test_the_readme_middleware_snippet_wraps_a_bots_two_sockets() -> None:
    snippet = blocks("README.md", "python")[1]
    simulator = RealtimeSimulator()
    phone, caller = memory_pair()
    try:
        with anyio.fail_after(20):
            async with simulator.running() as address:
                call = await exec_snippet(
                    snippet,
                    "README.md",
                    websocket=StarletteSocket(phone),
                    url=address.url,
                    headers={"Authorization": "Bearer sk-test"},
                )
                while simulator.statistics().connections_open:
                    await anyio.sleep(0.01)
    finally:
        await phone.aclose()
        await caller.aclose()
    assert isinstance(call["call"], GuardedCall)
    assert call["websocket"] is not None
    assert simulator.statistics().connections_total == 1
    assert simulator.statistics().errors_total == 0


# ----------------------------------------------------------------------- docs/decisions.md

DECISIONS = "docs/decisions.md"


def _decision_snippets() -> tuple[Block, Block, Block]:
    logging_config, middleware, guards = blocks(DECISIONS, "python")
    return logging_config, middleware, guards


def test_the_guards_snippet_prints_what_the_page_shows(tmp_path: Path) -> None:
    _, _, guards = _decision_snippets()
    done = run_python(guards.code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == shown_after(DECISIONS, guards)


def test_the_middleware_snippet_prints_what_the_page_shows(tmp_path: Path) -> None:
    _, middleware, _ = _decision_snippets()
    done = run_python(middleware.code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == shown_after(DECISIONS, middleware)


#: A call through the reference bridge in virtual time: the call of the page's log excerpts.
_SCENARIO_CALL = """
import anyio
import trio.testing

from voiceguard.demo import guarded_bridge
from voiceguard.sim.scenarios import SCENARIOS, run_scenario


async def call() -> None:
    run = await run_scenario(SCENARIOS["speech-started-burst"], guarded_bridge())
    assert run.violations() == (), run.violations()


clock = trio.testing.MockClock(autojump_threshold=0)
anyio.run(call, backend="trio", backend_options={"clock": clock})
"""

#: What ``voiceguard serve`` logs at INFO, in the page's format.
_AT_INFO = """
import logging

logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
"""


def test_the_logging_config_shows_allowed_and_refused_decisions(tmp_path: Path) -> None:
    logging_config, _, guards = _decision_snippets()
    done = run_python(logging_config.code + "\n" + guards.code, tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stderr.splitlines() == [
        "DEBUG voiceguard.guards.create: response_create_guard: CREATE ALLOW OK (turn)",
        "INFO voiceguard.guards.create: response_create_guard: CREATE DEFER CREATE_IN_FLIGHT "
        "(watchdog)",
        "INFO voiceguard.guards.cancel: cancel_arbiter: CANCEL SUPPRESS SERVER_CANCELS "
        "(interrupt_response is on for this session)",
    ]


def test_the_log_excerpts_are_the_logs_of_that_call(tmp_path: Path) -> None:
    logging_config = _decision_snippets()[0]
    at_info, with_decisions = blocks(DECISIONS, "text")[:2]
    for setup, excerpt in ((_AT_INFO, at_info), (logging_config.code, with_decisions)):
        done = run_python(setup + _SCENARIO_CALL, tmp_path)
        assert done.returncode == 0, done.stderr
        lines = done.stderr.splitlines()
        assert in_order(excerpt.code.splitlines(), lines) == [], done.stderr
        frames = [line for line in lines if "sent media" in line or "sent mark" in line]
        assert frames == []  # nothing per audio frame


#: The loggers of the page's table, and the guards whose decisions each one logs.
_TABLE_ROW = re.compile(r"^\| `(voiceguard\.[a-z_.]+)` \| (.+) \|$", re.M)


@pytest.mark.parametrize(
    "anyio_backend", [("trio", {"clock": trio.testing.MockClock(autojump_threshold=0)})]
)
@pytest.mark.anyio
async def test_the_page_names_the_loggers_of_every_decision() -> None:
    table = {
        logger: set(re.findall(r"`([a-z_]+)`", guards))
        for logger, guards in _TABLE_ROW.findall((ROOT / DECISIONS).read_text(encoding="utf-8"))
    }
    sample = importlib.util.spec_from_file_location(
        "twilio_sample_guarded", ROOT / "examples" / "twilio_sample_guarded.py"
    )
    assert sample is not None and sample.loader is not None
    example = importlib.util.module_from_spec(sample)
    sample.loader.exec_module(example)
    handler = _Records()
    with every_record(handler):
        for bridge in (guarded_bridge(), example.bridge):  # both drivers of the turn engine
            for name in ("speech-started-burst", "truncate-long-buffered-audio"):
                await run_scenario(SCENARIOS[name], bridge)
    seen = {(r.name, str(r.__dict__["guard"])) for r in handler.records if hasattr(r, "verdict")}
    assert {logger for logger, _guard in seen} == set(table)
    for logger, guard in seen:
        assert guard in table[logger], (logger, guard)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_the_trace_commands_replay_the_call_and_draw_it(tmp_path: Path) -> None:
    (commands,) = blocks(DECISIONS, "console")
    outputs = []
    for line in commands.code.splitlines():
        assert line.startswith("$ voiceguard "), line
        argv = [sys.executable, "-m", "voiceguard", *shlex.split(line)[2:]]
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=180, cwd=tmp_path, check=False
        )
        assert done.returncode == 0, done.stdout + done.stderr
        outputs.append(done.stdout)
    assert "replayed decisions are identical to the recorded ones" in outputs[-1]
    assert (tmp_path / "call.html").is_file()
    shown = shown_after(DECISIONS, commands)
    assert shown[-1] == "replayed decisions are identical to the recorded ones"
    replayed = [line.split()[2:5] for line in outputs[-1].splitlines() if " s  " in line]
    for line in shown:
        if " s  " in line:  # a decision: its guard, action and verdict were replayed
            assert line.split()[2:5] in replayed, line
