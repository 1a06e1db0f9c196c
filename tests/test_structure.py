"""The package's shape, checked by reading its source (AST): small modules, small classes, and no
private name imported from another module.

A module is at most 600 lines and a class at most 400 (a longer one is two ideas in one place);
``from voiceguard.x import _name`` is not allowed anywhere in the package, the tests, the examples
or the benchmarks: a private name is private to its module, and what another module needs is
public (documented, and kept working across releases).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path
from typing import Final

import pytest

ROOT: Final = Path(__file__).resolve().parent.parent
PACKAGE: Final = ROOT / "voiceguard"
MAX_MODULE_LINES: Final = 600
MAX_CLASS_LINES: Final = 400


def _sources(*folders: str) -> list[Path]:
    return sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))


def _long_classes(tree: ast.AST) -> Iterator[tuple[str, int]]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
            lines = node.end_lineno - node.lineno + 1
            if lines > MAX_CLASS_LINES:
                yield node.name, lines


def _private_imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        ours = node.level > 0 or (node.module or "").split(".")[0] == "voiceguard"
        for alias in node.names:
            if ours and alias.name.startswith("_") and not alias.name.startswith("__"):
                where = "." * node.level + (node.module or "")
                yield f"line {node.lineno}: from {where} import {alias.name}"


@pytest.mark.parametrize("path", _sources("voiceguard"), ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_or_class_is_too_long(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    lines = len(text.splitlines())
    assert lines <= MAX_MODULE_LINES, f"{lines} lines: split it by idea"
    assert list(_long_classes(ast.parse(text))) == []


@pytest.mark.parametrize(
    "path",
    _sources("voiceguard", "tests", "examples", "benchmarks"),
    ids=lambda p: str(p.relative_to(ROOT)),
)
def test_no_private_name_is_imported_from_another_module(path: Path) -> None:
    assert list(_private_imports(ast.parse(path.read_text(encoding="utf-8")))) == []


def test_the_checks_catch_what_they_look_for() -> None:
    tree = ast.parse(
        "from voiceguard.core import _legacy\n"
        "from ._caller import CallerTurns\n"
        "from .x import _y\n"
        "from os import _exit\n"
        "from voiceguard import __version__\n"
    )
    assert list(_private_imports(tree)) == [
        "line 1: from voiceguard.core import _legacy",
        "line 3: from .x import _y",
    ]
    big = "class Big:\n" + "    x = 1\n" * MAX_CLASS_LINES
    assert list(_long_classes(ast.parse(big))) == [("Big", MAX_CLASS_LINES + 1)]
