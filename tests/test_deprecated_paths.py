"""The import paths of 0.1 keep working for one release, each with a DeprecationWarning."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest

import voiceguard
from voiceguard import errors
from voiceguard._deprecated import MOVED_MODULES
from voiceguard.core import bridge
from voiceguard.demo import tour


@pytest.mark.parametrize(("old", "new"), sorted(MOVED_MODULES.items()))
def test_an_old_module_path_forwards_to_the_new_one_with_a_warning(old: str, new: str) -> None:
    stub = importlib.import_module(old)
    target = importlib.import_module(new)
    names = [n for n in getattr(target, "__all__", ()) if not n.startswith("_")]
    assert names, f"{new} exports nothing"
    with pytest.warns(
        DeprecationWarning, match=f"{old} is deprecated.*import {names[0]} from {new}"
    ):
        value = getattr(stub, names[0])
    assert value is getattr(target, names[0])


def test_a_name_the_old_module_never_had_is_an_attribute_error() -> None:
    stub = importlib.import_module("voiceguard.bridge")
    with pytest.raises(AttributeError):
        stub.NoSuchThing  # noqa: B018


def test_the_top_level_names_do_not_warn() -> None:
    for name in voiceguard.__all__:
        getattr(voiceguard, name)  # filterwarnings = error: a warning would fail here


def _deprecated_uses() -> list[tuple[str, Callable[[], object]]]:
    core = voiceguard.BridgeCore()
    stub = importlib.import_module("voiceguard.bridge")
    return [
        ("a moved module's name", lambda: stub.BridgeCore),
        ("a renamed action", lambda: bridge.HangUp),
        ("an action no longer returned", lambda: bridge.StartTimer),
        ("a timer method of the bridge", lambda: core.on_watchdog(0.0)),
        ("a renamed name of the tour", lambda: tour.SCENARIOS),
        ("the clock error", lambda: errors.ClockError),
        ("a clock", lambda: voiceguard.ManualClock),
    ]


@pytest.mark.parametrize(
    "index", range(len(_deprecated_uses())), ids=lambda i: _deprecated_uses()[i][0]
)
def test_a_deprecation_warning_points_at_the_line_that_uses_the_old_name(index: int) -> None:
    _, use = _deprecated_uses()[index]
    with pytest.warns(DeprecationWarning, match="goes away in the next release") as caught:
        use()
    assert {Path(w.filename).name for w in caught} == {Path(__file__).name}
