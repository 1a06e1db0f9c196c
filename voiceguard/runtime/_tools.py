"""Running one tool the model called: its result, or an error, as the output the model reads.

A tool never ends the call: whatever it does (raises, runs past its timeout, returns what JSON
cannot encode) the model is told in its output, and the handler logs it.
"""

from __future__ import annotations

import enum
import functools
import inspect
import json
import logging
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import anyio
import anyio.to_thread

from voiceguard.errors import ToolError
from voiceguard.protocol.realtime import tool_error_output
from voiceguard.runtime._imports import import_attribute
from voiceguard.tools import Tool, check_tools, tool

if TYPE_CHECKING:
    from voiceguard.core.actions import RunTool
    from voiceguard.core.bridge import BridgeAction, BridgeCore
    from voiceguard.observe.trace import TraceRecorder

__all__ = ("answer_tool", "load_tools", "run_tool")

logger = logging.getLogger("voiceguard.handler")

#: At most this much of an exception's text reaches the model.
_DETAIL: Final = 200


def load_tools(spec: str) -> tuple[Tool, ...]:
    """Import ``package.module:attribute``: a :class:`~voiceguard.Tool`, a function, or a sequence
    of them (functions become tools with :func:`~voiceguard.tool`). The module is looked up on the
    Python path and in the current directory.

    Raises:
        ToolError: If the module or attribute cannot be found, or it holds something else; the
            message says what to give.
    """
    try:
        value = import_attribute(spec)
    except LookupError as exc:
        raise ToolError(f"tools {spec!r}: {exc}") from None
    items = value if isinstance(value, Sequence) and not isinstance(value, str) else (value,)
    tools = []
    for item in items:
        if isinstance(item, Tool):
            tools.append(item)
        elif callable(item):
            tools.append(tool(item))
        else:
            raise ToolError(
                f"tools {spec!r}: {type(item).__name__} is neither a Tool nor a function"
            )
    return check_tools(tools)


async def answer_tool(
    action: RunTool,
    core: BridgeCore,
    emit: Callable[[list[BridgeAction]], Awaitable[None]],
    *,
    clock: Callable[[], float],
    trace: TraceRecorder | None,
    extra: Mapping[str, object],
) -> None:
    """Run the tool of *action* and hand its output to *core* (recorded in *trace*); *emit*
    carries out what the core does then."""
    output = await run_tool(action.tool, action.arguments, extra)
    now = clock()
    if trace is not None:
        trace.tool_result(action.call_id, output, now)
    await emit(core.tool_result(action.call_id, output, now))


async def run_tool(tool: Tool, arguments: Mapping[str, Any], extra: Mapping[str, object]) -> str:
    """Run *tool* with the model's *arguments* within its timeout; the output for the model.

    *extra* goes with the log records (the call's identity).
    """
    began = anyio.current_time()
    try:
        kwargs = _arguments(tool, arguments)
        with anyio.fail_after(tool.timeout):
            if inspect.iscoroutinefunction(tool.function):
                result = await tool.function(**kwargs)
            else:
                call = functools.partial(tool.function, **kwargs)
                result = await anyio.to_thread.run_sync(call, abandon_on_cancel=True)
                if inspect.isawaitable(result):
                    result = await result
    except TimeoutError:
        logger.warning(
            "tool %s did not finish within %g s; the model is told",
            tool.name,
            tool.timeout,
            extra={**extra, "tool": tool.name},
        )
        return _error(f"{tool.name} did not finish within {tool.timeout:g} s")
    except Exception as exc:  # a tool failing is news for the model, never the end of the call
        logger.warning(
            "tool %s failed: %s: %s",
            tool.name,
            type(exc).__name__,
            exc,
            exc_info=True,
            extra={**extra, "tool": tool.name},
        )
        detail = str(exc)[:_DETAIL]
        return _error(
            f"{tool.name} failed: {type(exc).__name__}" + (f": {detail}" if detail else "")
        )
    if isinstance(result, str):
        output = result
    else:
        try:
            output = json.dumps(result, default=_enum_value)
        except (TypeError, ValueError) as exc:
            logger.warning(
                "tool %s returned what JSON cannot encode: %s",
                tool.name,
                exc,
                extra={**extra, "tool": tool.name},
            )
            return _error(f"{tool.name} returned a {type(result).__name__}, not JSON")
    logger.info(
        "tool %s answered in %.2f s",
        tool.name,
        anyio.current_time() - began,
        extra={**extra, "tool": tool.name},
    )
    return output


def _error(text: str) -> str:
    return tool_error_output(text)


def _enum_value(value: object) -> object:
    if isinstance(value, enum.Enum):
        return value.value
    raise TypeError(f"{type(value).__name__} is not JSON")


def _arguments(tool: Tool, arguments: Mapping[str, Any]) -> dict[str, Any]:
    """The model's arguments for the function: enum parameters get their member."""
    try:
        hints = typing.get_type_hints(tool.function)
    except Exception:  # hints that do not resolve: the arguments as they are
        return dict(arguments)
    out = dict(arguments)
    for name, value in arguments.items():
        hint = hints.get(name)
        for kind in (hint, *typing.get_args(hint)):
            if isinstance(kind, type) and issubclass(kind, enum.Enum):
                out[name] = kind(value)  # ValueError: the model's news, like any failure
                break
    return out
