"""Tools in the reference bridge: schemas from type hints, the bridge's answers, running them.

Through the reference server (in this process, real sockets on 127.0.0.1, the model simulator):
a caller asks, the model calls a tool that takes 3 s while the caller stays silent, the idle
ladder waits (it would have prompted after 1 s), the tool's result goes back with one guarded
``response.create``, the model speaks the answer, and nothing is refused.
"""

from __future__ import annotations

import enum
import json
import subprocess
import sys
import textwrap
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any, Literal

import anyio
import pytest
from server_harness import API_KEY, ModelRouter
from trio.testing import MockClock

from voiceguard import BridgeCore, HandlerConfig, RunTool, SendToModel, Tool, load_tools, tool
from voiceguard.config import IdleLadderConfig
from voiceguard.errors import ConfigError, ToolError
from voiceguard.observe.replay import replay
from voiceguard.observe.trace import load_trace
from voiceguard.protocol import parse_realtime_event, parse_twilio_message
from voiceguard.runtime._tools import run_tool
from voiceguard.server import ServerConfig, create_app, serving
from voiceguard.sim.caller import CallerSimulator, HangUp, Speak
from voiceguard.sim.realtime import FunctionCall, RealtimeSimulator, Reply

# ------------------------------------------------------------------ schemas


class Size(enum.Enum):
    SMALL = "small"
    LARGE = "large"


async def order_status(
    order_id: int,
    size: Size = Size.SMALL,
    unit: Literal["days", "hours"] = "days",
    tags: list[str] | None = None,
    note: Annotated[str, "anything the caller added"] = "",
) -> dict[str, Any]:
    """When an order arrives.

    Looked up in the shop's system.

    Args:
        order_id: The order's number,
            as the caller reads it out.
        size: The parcel's size.
    """
    return {"order": order_id, "arrives_in": 2, "unit": unit, "size": size}


def test_the_schema_comes_from_the_type_hints_and_the_docstring() -> None:
    made = tool(order_status)
    assert made.name == "order_status"
    assert made.definition() == {
        "type": "function",
        "name": "order_status",
        "description": "When an order arrives.",
        "parameters": {
            "type": "object",
            "properties": {
                "order_id": {
                    "type": "integer",
                    "description": "The order's number, as the caller reads it out.",
                },
                "size": {
                    "type": "string",
                    "enum": ["small", "large"],
                    "description": "The parcel's size.",
                },
                "unit": {"type": "string", "enum": ["days", "hours"]},
                "tags": {"type": "array", "items": {"type": "string"}},
                "note": {"type": "string", "description": "anything the caller added"},
            },
            "required": ["order_id"],
        },
    }


def test_what_has_no_schema_is_refused_with_what_to_do() -> None:
    def untyped(city):  # type: ignore[no-untyped-def]
        return city

    def star(*cities: str) -> None:
        pass

    def odd(when: complex) -> None:
        pass

    with pytest.raises(ToolError, match=r"'city' has no type hint; annotate it or give parameters"):
        tool(untyped)
    with pytest.raises(ToolError, match="variadic positional; the model passes named arguments"):
        tool(star)
    with pytest.raises(ToolError, match=r"'when': no JSON schema for <class 'complex'>"):
        tool(odd)
    assert tool(odd, parameters={"type": "object", "properties": {}}).name == "odd"


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"name": "has space"}, "name must be 1-64 letters"),
        ({"name": "end_call"}, "the bridge's own hang-up tool"),
        ({"timeout": 0}, "timeout = 0; allowed: seconds > 0"),
        ({"timeout": float("inf")}, "timeout = inf"),
        ({"parameters": {"type": "string"}}, "a JSON schema of type 'object'"),
    ],
)
def test_a_tool_out_of_range_is_refused(fields: dict[str, Any], problem: str) -> None:
    with pytest.raises(ToolError, match=problem):
        Tool(**{"name": "lookup", "function": order_status, **fields})


def test_two_tools_of_one_name_are_refused() -> None:
    with pytest.raises(ConfigError, match="two tools are named 'order_status'"):
        HandlerConfig(tools=(tool(order_status), tool(order_status)))
    listed: Any = [tool(order_status)]  # a list is taken too
    assert HandlerConfig(tools=listed).tools == (tool(order_status),)


def test_tools_load_from_module_and_attribute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "shop_tools.py").write_text(
        textwrap.dedent(
            """
            import voiceguard

            async def hours(day: str) -> str:
                '''Opening hours on a day.'''
                return "nine to five"

            def price(item: str) -> float:
                return 4.5

            TOOLS = [hours, voiceguard.tool(price, timeout=2.0)]
            NOT_TOOLS = [3]
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    loaded = load_tools("shop_tools:TOOLS")
    assert [(t.name, t.description, t.timeout) for t in loaded] == [
        ("hours", "Opening hours on a day.", 10.0),
        ("price", "", 2.0),
    ]
    assert [t.name for t in load_tools("shop_tools:hours")] == ["hours"]
    for spec, problem in [
        ("shop_tools", "give package.module:attribute"),
        ("no_such_module:TOOLS", "cannot import no_such_module"),
        ("shop_tools:MISSING", "shop_tools has no 'MISSING'"),
        ("shop_tools:NOT_TOOLS", "int is neither a Tool nor a function"),
    ]:
        with pytest.raises(ToolError, match=problem):
            load_tools(spec)


def test_a_bad_tools_option_is_one_line_and_a_non_zero_exit(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "voiceguard", "serve", "--tools", "no_such_module:TOOLS"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        check=False,
    )
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    usage, line = result.stderr.splitlines()[:-1], result.stderr.splitlines()[-1]
    assert all(u.startswith(("usage: ", " ")) for u in usage), result.stderr
    assert line == (
        "voiceguard serve: error: argument --tools: 'no_such_module:TOOLS' is not allowed; "
        "allowed: package.module:attribute of Tools or functions (cannot import "
        "no_such_module: No module named 'no_such_module')"
    )


# ------------------------------------------------------------------ the bridge (sans-IO)

_START = {
    "event": "start",
    "sequenceNumber": "1",
    "streamSid": "MZ" + "0" * 32,
    "start": {
        "accountSid": "AC" + "0" * 32,
        "streamSid": "MZ" + "0" * 32,
        "callSid": "CA" + "0" * 32,
        "tracks": ["inbound"],
        "customParameters": {},
        "mediaFormat": {"encoding": "audio/x-mulaw", "sampleRate": 8000, "channels": 1},
    },
}


def _started(tools: list[Tool]) -> tuple[BridgeCore, dict[str, Any]]:
    core = BridgeCore(tools=tools)
    actions = core.on_phone(parse_twilio_message(json.dumps(_START)), 0.0)
    session = next(
        a.message
        for a in actions
        if isinstance(a, SendToModel) and a.message["type"] == "session.update"
    )
    core.on_model(
        parse_realtime_event({"type": "session.created", "event_id": "e0", "session": {"id": "s"}}),
        0.0,
    )
    return core, dict(session)


def _response(rid: str, calls: list[tuple[str, str, str]], status: str = "completed") -> list[Any]:
    """A response of function calls: created, then done with the calls as its output."""
    output = [
        {
            "id": f"item_{cid}",
            "type": "function_call",
            "status": status,
            "name": name,
            "call_id": cid,
            "arguments": args,
        }
        for cid, name, args in calls
    ]
    return [
        parse_realtime_event(
            {
                "type": "response.created",
                "event_id": f"c{rid}",
                "response": {"id": rid, "status": "in_progress", "output": []},
            }
        ),
        parse_realtime_event(
            {
                "type": "response.done",
                "event_id": f"d{rid}",
                "response": {
                    "id": rid,
                    "status": "cancelled" if status == "incomplete" else "completed",
                    "output": output,
                },
            }
        ),
    ]


def _sent(actions: list[Any]) -> list[dict[str, Any]]:
    return [dict(a.message) for a in actions if isinstance(a, SendToModel)]


def test_the_session_offers_the_tools_beside_end_call() -> None:
    _, session = _started([tool(order_status)])
    names = [t["name"] for t in session["session"]["tools"]]
    assert names == ["end_call", "order_status"]


def test_both_calls_of_a_response_run_then_one_create_follows_the_last_result() -> None:
    core, _ = _started([tool(order_status)])
    created, done = _response(
        "resp_1",
        [
            ("call_a", "order_status", '{"order_id": 1}'),
            ("call_b", "order_status", '{"order_id": 2}'),
        ],
    )
    core.on_model(created, 1.0)
    actions = core.on_model(done, 1.1)
    runs = [a for a in actions if isinstance(a, RunTool)]
    assert [(r.call_id, dict(r.arguments)) for r in runs] == [
        ("call_a", {"order_id": 1}),
        ("call_b", {"order_id": 2}),
    ]
    assert core.tools_running == 2
    assert core.tool_result("call_b", '{"arrives_in": 3}', 2.0) == []  # one still runs
    sent = _sent(core.tool_result("call_a", '{"arrives_in": 2}', 2.5))
    assert [(m["type"], m.get("item", {}).get("call_id")) for m in sent] == [
        ("conversation.item.create", "call_b"),
        ("conversation.item.create", "call_a"),
        ("response.create", None),
    ]
    assert core.tool_result("call_a", "again", 2.6) == []  # a second result is ignored
    assert core.tools_running == 0


def test_a_call_cut_off_by_a_barge_in_is_not_run() -> None:
    core, _ = _started([tool(order_status)])
    created, done = _response("resp_1", [("call_a", "order_status", '{"order_')], "incomplete")
    core.on_model(created, 1.0)
    actions = core.on_model(done, 1.1)
    assert not [a for a in actions if isinstance(a, RunTool)]
    assert _sent(actions) == []
    assert core.tools_running == 0


@pytest.mark.parametrize(
    ("name", "arguments", "error"),
    [
        ("weather", "{}", "no tool named 'weather'"),
        ("order_status", "[1, 2]", "the arguments are not a JSON object"),
        ("order_status", "{not json", "the arguments are not a JSON object"),
    ],
)
def test_a_call_that_cannot_run_is_answered_with_an_error_at_once(
    name: str, arguments: str, error: str
) -> None:
    core, _ = _started([tool(order_status)])
    created, done = _response("resp_1", [("call_a", name, arguments)])
    core.on_model(created, 1.0)
    sent = _sent(core.on_model(done, 1.1))
    assert sent[0]["item"] == {
        "type": "function_call_output",
        "call_id": "call_a",
        "output": json.dumps({"error": error}),
    }
    assert sent[1]["type"] == "response.create"


# ------------------------------------------------------------------ running one tool


@pytest.mark.anyio
async def test_a_tool_runs_with_its_arguments_and_its_result_becomes_json() -> None:
    output = await run_tool(tool(order_status), {"order_id": 5, "size": "large"}, {})
    assert json.loads(output) == {"order": 5, "arrives_in": 2, "unit": "days", "size": "large"}


@pytest.mark.anyio
async def test_a_plain_function_runs_in_a_thread_and_a_string_is_sent_as_is() -> None:
    def slow_lookup(order_id: int) -> str:
        time.sleep(0.05)  # blocking work: in a worker thread, not the event loop
        return f"order {order_id} ships tomorrow"

    assert await run_tool(tool(slow_lookup), {"order_id": 9}, {}) == "order 9 ships tomorrow"


@pytest.mark.anyio
async def test_failures_are_the_models_news_and_never_raise(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(order_id: int) -> str:
        raise LookupError(f"order {order_id} not found")

    async def unencodable(order_id: int) -> object:
        return {1, 2}

    cases: list[tuple[Tool, dict[str, Any], str]] = [
        (tool(broken), {"order_id": 4}, "broken failed: LookupError: order 4 not found"),
        (tool(unencodable), {"order_id": 4}, "unencodable returned a set, not JSON"),
        (tool(order_status), {"order_id": 1, "size": "huge"}, "order_status failed: ValueError"),
        (tool(order_status), {"id": 1}, "order_status failed: TypeError"),
    ]
    for made, arguments, error in cases:
        output = json.loads(await run_tool(made, arguments, {}))
        assert output["error"].startswith(error), output
    assert "tool broken failed: LookupError" in caplog.text


def test_a_tool_past_its_timeout_is_reported_as_such() -> None:
    async def stuck(order_id: int) -> str:
        await anyio.sleep(3600)
        return "never"

    async def main() -> tuple[str, float]:
        began = anyio.current_time()
        output = await run_tool(tool(stuck, timeout=2.5), {"order_id": 1}, {})
        return output, anyio.current_time() - began

    output, took = anyio.run(
        main, backend="trio", backend_options={"clock": MockClock(autojump_threshold=0)}
    )
    assert json.loads(output) == {"error": "stuck did not finish within 2.5 s"}
    assert took == pytest.approx(2.5)


# ------------------------------------------------------------------ through the reference server

LOOKUP_SECONDS = 3.0


async def lookup_order(order_id: int) -> dict[str, object]:
    """The delivery date of an order."""
    await anyio.sleep(LOOKUP_SECONDS)  # a slow back end, while the caller waits in silence
    return {"order": order_id, "delivery": "tomorrow"}


@pytest.fixture
async def router() -> AsyncIterator[ModelRouter]:
    async with ModelRouter.running() as running:
        yield running


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_a_slow_tool_through_the_reference_server(
    router: ModelRouter, tmp_path: Path, anyio_backend: str
) -> None:
    simulator = router.use(
        RealtimeSimulator(
            replies=[
                Reply(text="Hello, how can I help?", duration=0.6),
                Reply(
                    text="",
                    duration=0.0,
                    function_call=FunctionCall(name="lookup_order", arguments='{"order_id": 42}'),
                ),
                Reply(text="Your order arrives tomorrow.", duration=0.8),
            ],
            audio_speed=4.0,
        )
    )
    handler = HandlerConfig(
        tools=(tool(lookup_order),),
        # The ladder would prompt after 1 s of silence: the tool runs for 3.
        idle=IdleLadderConfig(prompt_delays=(1.0, 1.0), hangup_delay=1.0),
    )
    config = ServerConfig(
        realtime_url=router.url,
        api_key=API_KEY,
        handler=handler,
        trace_dir=str(tmp_path),
        trace_audio=True,
    )
    async with serving(create_app(config)) as port:
        caller = CallerSimulator(
            script=[Speak(at=1.2, duration=0.8), HangUp(at=7.0)], noise_dbfs=-65.0
        )
        with anyio.fail_after(20):
            record = await caller.call(f"ws://127.0.0.1:{port}/media-stream")
    assert record.ended_by == "caller", f"the bot hung up after {record.ended_at} s"
    assert record.protocol_errors == []
    connection = simulator.connections[-1]
    creates = connection.received("response.create")
    outputs = connection.received("conversation.item.create")
    # The greeting, the caller's turn, the tool's result: no idle prompt while it ran.
    assert len(creates) == 3, [e.type for e in connection.received()]
    assert len(outputs) == 1
    assert json.loads(outputs[0].event["item"]["output"]) == {"order": 42, "delivery": "tomorrow"}
    assert outputs[0].time < creates[2].time
    assert creates[2].time - creates[1].time >= LOOKUP_SECONDS
    assert simulator.statistics().errors_total == 0, simulator.statistics().errors_by_code
    assert record.heard_seconds > 1.2, "the answer was heard"
    # The trace keeps the tool's result: a replay decides the same and sends the same.
    [path] = tmp_path.glob("*.jsonl")
    trace = load_trace(path)
    assert [t["name"] for t in trace.tools] == ["lookup_order"]
    assert len(list(trace.of_kind("tool"))) == 1
    result = replay(trace)
    assert result.differences == ()
    assert [kind for _, kind in result.sent].count("response.create") == 3
