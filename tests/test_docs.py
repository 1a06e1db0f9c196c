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
        ("voiceguard/middleware/_core.py", "docs/middleware.md"),
    ],
)
def test_guard_page_lists_every_reason(module: str, page: str) -> None:
    source = (ROOT / module).read_text(encoding="utf-8")
    reasons = set(re.findall(r"Reason\.([A-Z_]+)", source))
    assert reasons, "no reasons found: the pattern is wrong"
    text = (ROOT / page).read_text(encoding="utf-8")
    listed = set(re.findall(r"`([A-Z_]+)`", text))
    assert reasons - listed == set()
