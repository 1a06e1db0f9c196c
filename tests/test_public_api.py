"""The public API is re-exported flat from ``voiceguard`` with a complete, sorted ``__all__``."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import sys
import typing

import voiceguard
from voiceguard._deprecated import MOVED_MODULES

#: Stubs left at old paths for one release (their lookups warn).
DEPRECATED_MODULES = {*MOVED_MODULES, "voiceguard.clock", "voiceguard.guards"}


#: typing.final marks a class at run time (``__final__``) from Python 3.11 on; before, only
#: mypy --strict checks it (CI type-checks on the main Python).
FINAL_AT_RUN_TIME = sys.version_info >= (3, 11)


def isort_key(name: str) -> tuple[int, str]:
    """The order ruff's RUF022 keeps: CONSTANTS, then Classes, then everything else."""
    if name.isupper():
        return (0, name)
    if name[:1].isupper():
        return (1, name)
    return (2, name)


def public_modules() -> list[str]:
    names = []
    for info in pkgutil.walk_packages(voiceguard.__path__, "voiceguard."):
        parts = info.name.split(".")
        if any(part.startswith("_") for part in parts[1:]) or info.name in DEPRECATED_MODULES:
            continue
        names.append(info.name)
    return names


def test_all_is_sorted_and_unique() -> None:
    names = list(voiceguard.__all__)
    assert names == sorted(names, key=isort_key)
    assert len(names) == len(set(names))
    assert isinstance(voiceguard.__all__, tuple)


def test_all_names_exist() -> None:
    for name in voiceguard.__all__:
        assert hasattr(voiceguard, name), name


def test_all_is_complete() -> None:
    """Every class, function and alias a public guard/core module exports is re-exported."""
    # The protocol edge, the audio helpers, the simulator, the server (its own extra) and the
    # command line keep their own namespaces.
    own_namespace = (
        "voiceguard.protocol",
        "voiceguard.cli",
        "voiceguard.sim",
        "voiceguard.audio",
        "voiceguard.server",
        "voiceguard.transports",
        "voiceguard.testing",
        "voiceguard.demo",
        "voiceguard.middleware",
        "voiceguard.observe.trace",
        "voiceguard.observe.replay",
    )
    missing = []
    for module_name in public_modules():
        if module_name.startswith(own_namespace):
            continue
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", ()):
            if name.isupper():
                continue  # module constants (tables) stay in their module
            if not hasattr(voiceguard, name):
                missing.append(f"{module_name}.{name}")
    assert missing == []


def test_every_module_all_is_sorted() -> None:
    for module_name in ["voiceguard", *public_modules()]:
        module = importlib.import_module(module_name)
        names = list(getattr(module, "__all__", ()))
        assert names == sorted(names, key=isort_key), module_name


def test_public_classes_are_final() -> None:
    for name in voiceguard.__all__:
        obj = getattr(voiceguard, name)
        if not inspect.isclass(obj) or typing.get_origin(obj) is not None:
            continue
        if issubclass(obj, BaseException) or getattr(obj, "_is_protocol", False):
            continue  # exceptions are meant to be subclassed; protocols are structural
        assert getattr(obj, "__final__", not FINAL_AT_RUN_TIME), f"{name} should be @final"
