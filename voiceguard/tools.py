"""Tools: Python functions the model may call during a call, answered by the reference bridge.

A :class:`~voiceguard.Tool` is a function with the JSON schema of its arguments, as the Realtime
API takes it in ``session.tools``. Make one from a function with :func:`~voiceguard.tool` (the
schema comes from its type hints, its description from its docstring), give the tools to
:class:`~voiceguard.HandlerConfig` (``HandlerConfig(tools=[...])``) or to ``voiceguard serve
--tools package.module:attribute`` (:func:`~voiceguard.load_tools`), and the handler answers the
model's function calls: it runs the function inside the call's scope with the tool's timeout,
sends its result as the ``function_call_output`` and then one guarded ``response.create``, so
the model speaks the answer. While a tool runs the caller's silence is not idleness (the idle
ladder waits). A tool that raises or runs out of time gives the model an error result (logged),
and never ends the call.

Example:
    >>> async def weather(city: str, unit: Literal["C", "F"] = "C") -> dict[str, object]:
    ...     '''The weather in a city now.
    ...
    ...     Args:
    ...         city: The city's name.
    ...         unit: The temperature unit.
    ...     '''
    ...     return {"city": city, "sky": "clear", "temperature": 21}
    >>> weather_tool = tool(weather)
    >>> weather_tool.definition()["parameters"]["required"]
    ['city']

.. versionadded:: 0.2.0
"""

from __future__ import annotations

import enum
import inspect
import math
import re
import types
import typing
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, final

from voiceguard.errors import ToolError

__all__ = ("Tool", "ToolFunction", "tool")

#: A tool's function: called with the model's arguments as keyword arguments; sync functions
#: run in a worker thread. Returns a string (sent as is) or anything JSON can encode.
ToolFunction = Callable[..., Any] | Callable[..., Awaitable[Any]]

#: The names the Realtime API accepts for a function.
_NAME: Final = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
#: Names the bridge itself answers.
_RESERVED: Final = frozenset({"end_call"})
DEFAULT_TIMEOUT: Final = 10.0


@final
@dataclass(frozen=True, slots=True, kw_only=True)
class Tool:
    """A function the model may call, with what the model is told about it.

    Attributes:
        name: The function's name for the model (letters, digits, ``_`` and ``-``; at most 64;
            ``end_call`` is the bridge's own).
        function: Called with the model's arguments as keyword arguments (see
            :data:`~voiceguard.ToolFunction`).
        description: What the tool does, for the model.
        parameters: The JSON schema (an ``object``) of its arguments.
        timeout: Seconds it may run before the model is told it timed out. Default 10.

    Raises:
        ToolError: If a field is out of range.
    """

    name: str
    function: ToolFunction = field(repr=False, compare=False)
    description: str = ""
    parameters: Mapping[str, Any] = field(
        default_factory=lambda: {"type": "object", "properties": {}}
    )
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        where = f"Tool {self.name!r}"
        if not _NAME.match(str(self.name)):
            raise ToolError(
                f"{where}: name must be 1-64 letters, digits, '_' or '-' (the Realtime API's "
                "rule for function names)"
            )
        if self.name in _RESERVED:
            raise ToolError(f"{where}: the name is the bridge's own hang-up tool; choose another")
        if not callable(self.function):
            raise ToolError(f"{where}: function is not callable")
        parameters: object = self.parameters
        if not (isinstance(parameters, Mapping) and parameters.get("type") == "object"):
            raise ToolError(f"{where}: parameters must be a JSON schema of type 'object'")
        timeout: object = self.timeout
        if (
            isinstance(timeout, bool)
            or not isinstance(timeout, (int, float))
            or not math.isfinite(timeout)
            or timeout <= 0
        ):
            raise ToolError(f"{where}: timeout = {self.timeout!r}; allowed: seconds > 0")

    def definition(self) -> dict[str, Any]:
        """The tool as ``session.tools`` lists it: ``{"type": "function", "name": ..., ...}``."""
        return {
            "type": "function",
            "name": self.name,
            "description": self.description,
            "parameters": dict(self.parameters),
        }


def tool(
    function: ToolFunction,
    *,
    name: str | None = None,
    description: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    timeout: float = DEFAULT_TIMEOUT,
) -> Tool:
    """Make a :class:`~voiceguard.Tool` of *function*.

    The schema comes from the function's signature and type hints unless *parameters* is given:
    ``str``, ``int``, ``float``, ``bool``, ``None``, ``Literal[...]``, enums, ``list[X]`` /
    ``Sequence[X]`` / ``tuple[X, ...]``, ``dict[str, X]``, ``X | None`` and ``Annotated[X,
    "description"]``; a parameter with a default is optional. Each parameter's description
    comes from an ``Annotated`` string or the docstring's ``Args:`` section; the tool's
    description from the docstring's first paragraph.

    Raises:
        ToolError: If a parameter's type has no JSON schema here (give *parameters*), or the
            function takes ``*args`` / ``**kwargs`` / positional-only parameters.
    """
    label = name if name is not None else getattr(function, "__name__", "")
    doc = inspect.getdoc(function) or ""
    return Tool(
        name=label,
        function=function,
        description=description if description is not None else _summary(doc),
        parameters=parameters if parameters is not None else _schema(function, label, doc),
        timeout=timeout,
    )


def check_tools(tools: Sequence[Tool]) -> tuple[Tool, ...]:
    """*tools* as a tuple, checked: each a :class:`~voiceguard.Tool`, no name twice.

    Raises:
        ToolError: Otherwise.
    """
    seen: set[str] = set()
    for item in tools:
        if not isinstance(item, Tool):
            raise ToolError(
                f"tools: {type(item).__name__} is not a Tool (make one with voiceguard.tool())"
            )
        if item.name in seen:
            raise ToolError(f"tools: two tools are named {item.name!r}")
        seen.add(item.name)
    return tuple(tools)


# ------------------------------------------------------------------ schemas from type hints


def _summary(doc: str) -> str:
    """The first paragraph of a docstring, on one line."""
    return " ".join(doc.split("\n\n", 1)[0].split())


def _arg_docs(doc: str) -> dict[str, str]:
    """Parameter descriptions from a Google-style ``Args:`` section."""
    out: dict[str, str] = {}
    lines = doc.splitlines()
    try:
        start = next(i for i, line in enumerate(lines) if line.strip() in ("Args:", "Arguments:"))
    except StopIteration:
        return out
    indent: int | None = None
    current: str | None = None
    for line in lines[start + 1 :]:
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        if indent is None:
            indent = depth
        if depth < indent:
            break
        match = re.match(r"\s*\*{0,2}(\w+)(?:\s*\(.*?\))?:\s*(.*)", line)
        if depth == indent and match:
            current = match.group(1)
            out[current] = match.group(2).strip()
        elif current is not None:
            out[current] = f"{out[current]} {line.strip()}".strip()
    return out


def _schema(function: ToolFunction, name: str, doc: str) -> dict[str, Any]:
    try:
        signature = inspect.signature(function)
        hints = typing.get_type_hints(function, include_extras=True)
    except (TypeError, ValueError, NameError) as exc:
        raise ToolError(f"tool {name!r}: cannot read its signature: {exc}") from None
    described = _arg_docs(doc)
    properties: dict[str, Any] = {}
    required: list[str] = []
    for parameter in signature.parameters.values():
        if parameter.kind in (
            inspect.Parameter.VAR_POSITIONAL,
            inspect.Parameter.VAR_KEYWORD,
            inspect.Parameter.POSITIONAL_ONLY,
        ):
            raise ToolError(
                f"tool {name!r}: parameter {parameter.name!r} is {parameter.kind.description}; "
                "the model passes named arguments only"
            )
        if parameter.name not in hints:
            raise ToolError(
                f"tool {name!r}: parameter {parameter.name!r} has no type hint; annotate it or "
                "give parameters= (a JSON schema)"
            )
        where = f"tool {name!r}, parameter {parameter.name!r}"
        schema = _type_schema(hints[parameter.name], where)
        if parameter.name in described and "description" not in schema:
            schema["description"] = described[parameter.name]
        properties[parameter.name] = schema
        if parameter.default is inspect.Parameter.empty:
            required.append(parameter.name)
    out: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        out["required"] = required
    return out


_SCALARS: Final[Mapping[Any, str]] = {
    str: "string",
    int: "integer",
    float: "number",
    bool: "boolean",
    type(None): "null",
}


def _type_schema(hint: Any, where: str) -> dict[str, Any]:
    """The JSON schema of one type hint."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Annotated:
        schema = _type_schema(args[0], where)
        notes = [a for a in args[1:] if isinstance(a, str)]
        if notes:
            schema["description"] = " ".join(notes)
        return schema
    if hint in _SCALARS:
        return {"type": _SCALARS[hint]}
    if origin is Literal:
        kinds = {_SCALARS.get(type(a)) for a in args}
        if None in kinds or len(kinds) != 1:
            raise ToolError(f"{where}: a Literal of one JSON type is needed, not {hint!r}")
        return {"type": kinds.pop(), "enum": list(args)}
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        values = [member.value for member in hint]
        return _type_schema(Literal[tuple(values)], where)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        if len(options) == 1:
            return _type_schema(options[0], where)  # X | None: optional by its default
        return {"anyOf": [_type_schema(a, where) for a in args]}
    if origin in (list, tuple, set, frozenset, Sequence):
        if origin is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            raise ToolError(f"{where}: a tuple must be tuple[X, ...], not {hint!r}")
        if not args or args[0] is Any:
            return {"type": "array"}
        return {"type": "array", "items": _type_schema(args[0], where)}
    if origin in (dict, Mapping) or hint in (dict, Mapping):
        if args and args[0] is not str:
            raise ToolError(f"{where}: JSON object keys are strings, not {args[0]!r}")
        if len(args) == 2 and args[1] is not Any:
            return {"type": "object", "additionalProperties": _type_schema(args[1], where)}
        return {"type": "object"}
    if hint in (list, tuple):
        return {"type": "array"}
    raise ToolError(
        f"{where}: no JSON schema for {hint!r}; use str, int, float, bool, Literal, an enum, "
        "list, dict or X | None, or give parameters= (a JSON schema)"
    )
