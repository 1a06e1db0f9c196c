"""The package's layers, checked by walking every import (AST): arrows point down only.

The layers (``voiceguard._layers``, drawn in ``docs/design.md``) go bottom to top. A module may
import modules of its own layer and of the layers below it; the simulator stands apart and may
import only the layers it simulates against (protocol, transports and the base); the sans-IO core,
the protocol edge and the base import no I/O library. Every import counts: at module level, inside
``TYPE_CHECKING`` and inside functions (a lazy import is still an arrow).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import pytest

from voiceguard._deprecated import MOVED_MODULES
from voiceguard._layers import IMPORTS_SIM, LAYERS, NO_IO, SIM, SIM_MAY_IMPORT

PACKAGE: Final = Path(__file__).resolve().parent.parent / "voiceguard"

#: Stubs left at old paths for one release (they forward lookups, see voiceguard._deprecated).
STUBS: Final = frozenset({*MOVED_MODULES, "voiceguard.guards", "voiceguard.clock"})
#: Modules whose ``__getattr__`` forwards a deprecated name to a stub (a lazy import, not an arrow).
FORWARDERS: Final = frozenset({"voiceguard", "voiceguard.errors"})


@dataclass(frozen=True)
class Import:
    importer: str
    target: str
    line: int
    top_level: bool  # at import time (module level, not inside a function or TYPE_CHECKING)


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> Iterator[Import]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]

    def visit(node: ast.AST, top: bool) -> Iterator[Import]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) or (
                isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)
            ):
                yield from visit(child, False)
            elif isinstance(child, ast.Import):
                for alias in child.names:
                    yield Import(name, alias.name, child.lineno, top)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    anchor = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*anchor, base] if base else anchor)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    yield Import(name, full if full in known else base, child.lineno, top)
            else:
                yield from visit(child, top)

    yield from visit(tree, True)


def _layer(module: str) -> str | None:
    if module == SIM or module.startswith(SIM + "."):
        return "sim"
    best: tuple[int, str] | None = None
    for layer in LAYERS:
        for prefix in layer.modules:
            inside = module == prefix or module.startswith(prefix + ".")
            if inside and (best is None or len(prefix) > best[0]):
                best = (len(prefix), layer.name)
    return best[1] if best is not None else None


_RANK: Final = {layer.name: rank for rank, layer in enumerate(LAYERS)}


def _all_imports() -> list[Import]:
    modules = _modules()
    known = set(modules)
    return [i for name, path in modules.items() for i in _imports(name, path, known)]


def _problem(imp: Import) -> str | None:
    if imp.importer in STUBS:
        return None
    mine = _layer(imp.importer)
    assert mine is not None, f"{imp.importer} is in no layer: add it to LAYERS"
    where = f"{imp.importer}:{imp.line} imports {imp.target}"
    if not imp.target.startswith("voiceguard"):
        root = imp.target.split(".")[0]
        if root in NO_IO.get(mine, ()):
            return f"{where}: the {mine} layer does no I/O"
        return None
    if imp.target in STUBS:
        if imp.importer in FORWARDERS and not imp.top_level:
            return None
        return (
            f"{where}: a deprecated stub; import from {MOVED_MODULES.get(imp.target, 'voiceguard')}"
        )
    theirs = _layer(imp.target)
    if theirs is None:
        return f"{where}: not a module of the package"
    if mine == "sim":
        return (
            None
            if theirs in ("sim", *SIM_MAY_IMPORT)
            else f"{where}: the simulator imports {theirs}"
        )
    if theirs == "sim":
        return None if mine in IMPORTS_SIM else f"{where}: production code imports the simulator"
    if _RANK[theirs] > _RANK[mine]:
        return f"{where}: {mine} must not import {theirs} (a layer above it)"
    return None


def test_every_import_points_down_the_layers() -> None:
    problems = [p for imp in _all_imports() if (p := _problem(imp)) is not None]
    assert problems == []


def test_the_modules_import_each_other_without_a_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for imp in _all_imports():
        if imp.top_level and imp.target.startswith("voiceguard") and imp.target != imp.importer:
            graph.setdefault(imp.importer, set()).add(imp.target)
    cycles = _cycles(graph)
    assert cycles == []


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                connect(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_the_layer_rules_catch_an_upward_import() -> None:
    assert _problem(Import("voiceguard.core.state", "voiceguard.runtime.scope", 1, True))
    assert _problem(Import("voiceguard.core.state", "anyio", 1, True))
    assert _problem(Import("voiceguard.runtime.handler", "voiceguard.sim.caller", 1, True))
    assert _problem(Import("voiceguard.sim.caller", "voiceguard.core.state", 1, True))
    assert _problem(Import("voiceguard.server.app", "voiceguard.runtime.handler", 1, True)) is None
    assert _cycles({"a": {"b"}, "b": {"a"}, "c": {"a"}}) == [["a", "b"]]


@pytest.mark.parametrize("module", sorted(_modules()))
def test_every_module_is_in_a_layer(module: str) -> None:
    assert module in STUBS or _layer(module) is not None
