"""Old import paths that keep working for one release, with a DeprecationWarning.

The package was laid out by layer in 0.2.0 (``core/``, ``runtime/``, ``observe/``,
``transports/``, ...). Each old module is a stub whose attributes are looked up in the module that
now holds them; every lookup warns once per place that makes it. The top-level package
(``from voiceguard import CallState``) is the stable way in and does not warn.
"""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable
from typing import Final

__all__ = ("MOVED_MODULES", "moved_module", "warn_deprecated")

#: Old module -> the module that holds its names now.
MOVED_MODULES: Final = {
    "voiceguard.bridge": "voiceguard.core.bridge",
    "voiceguard.state": "voiceguard.core.state",
    "voiceguard.playout": "voiceguard.core.playout",
    "voiceguard.guards.calibration": "voiceguard.core.guards.calibration",
    "voiceguard.guards.cancel": "voiceguard.core.guards.cancel",
    "voiceguard.guards.create": "voiceguard.core.guards.create",
    "voiceguard.handler": "voiceguard.runtime.handler",
    "voiceguard.timers": "voiceguard.runtime.scope",
    "voiceguard.call_timers": "voiceguard.runtime.timers",
    "voiceguard.trace": "voiceguard.observe.trace",
    "voiceguard.metrics": "voiceguard.observe.metrics",
    "voiceguard.replay": "voiceguard.observe.replay",
    "voiceguard.sim.transport": "voiceguard.transports",
    "voiceguard.sim.websocket": "voiceguard.transports.websocket",
}


def warn_deprecated(what: str, instead: str, *, stacklevel: int = 2) -> None:
    """Warn that *what* goes away in the next release, and say what to use *instead*.

    *stacklevel* counts as :func:`warnings.warn`'s does, from the caller of this function (2:
    the code that called the caller, where the deprecated thing is used).
    """
    warnings.warn(
        f"{what} is deprecated and goes away in the next release: {instead}",
        DeprecationWarning,
        stacklevel=stacklevel + 1,
    )


def moved_module(old: str) -> Callable[[str], object]:
    """The module ``__getattr__`` of the stub left at *old*."""
    new = MOVED_MODULES[old]

    def __getattr__(name: str) -> object:
        if name.startswith("__"):
            raise AttributeError(name)
        value = getattr(importlib.import_module(new), name)
        warn_deprecated(old, f"import {name} from {new}")
        return value

    return __getattr__
