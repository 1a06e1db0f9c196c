"""The docs page of each guard lists every reason the guard can return."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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
