"""Importing what an operator names as ``package.module:attribute`` (``--tools``,
``--model-token``), as uvicorn finds an app: on the Python path and in the current directory."""

from __future__ import annotations

import importlib
import os
import sys

__all__ = ("import_attribute",)


def import_attribute(spec: str) -> object:
    """The attribute *spec* names, ``package.module:attribute``.

    Raises:
        LookupError: Saying what is missing (no ``:``, no module, no attribute), without the
            spec (the caller names it).
    """
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise LookupError("give package.module:attribute")
    here = os.getcwd()
    if here not in sys.path and "" not in sys.path:
        sys.path.insert(0, here)  # as uvicorn finds an app: the current directory too
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise LookupError(f"cannot import {module_name}: {exc}") from None
    try:
        return getattr(module, attribute)
    except AttributeError:
        raise LookupError(f"{module_name} has no {attribute!r}") from None
