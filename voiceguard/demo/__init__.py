"""``voiceguard demo`` and ``voiceguard tour``.

* ``voiceguard.demo.run``: the guarded reference server and a naive bridge, side by side, on
  the same simulated calls (``voiceguard demo``; needs the ``server`` extra).
* ``voiceguard.demo.tour``: the classic races against a toy server model in virtual time
  (``voiceguard tour``; no extras).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voiceguard.demo.run import (
        BridgeMeasures,
        DemoReport,
        NaiveBridge,
        RunOutcome,
        add_demo_command,
        guarded_bridge,
        run_demo,
    )

__all__ = (
    "BridgeMeasures",
    "DemoReport",
    "NaiveBridge",
    "RunOutcome",
    "add_demo_command",
    "guarded_bridge",
    "run_demo",
)


def __getattr__(name: str) -> object:
    # The demo needs the server extra; ``voiceguard.demo.tour`` must import without it.
    if name in __all__:
        return getattr(importlib.import_module("voiceguard.demo.run"), name)
    raise AttributeError(f"module 'voiceguard.demo' has no attribute {name!r}")
