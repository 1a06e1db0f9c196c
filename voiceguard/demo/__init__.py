"""``voiceguard demo`` and ``voiceguard tour``.

* ``voiceguard demo``: the guarded reference server and a naive bridge, side by side, on the same
  simulated calls (needs the ``server`` extra). Its modules: ``voiceguard.demo.bridges`` (the two
  bridges), ``voiceguard.demo.measures`` (what is measured, per run and per bridge),
  ``voiceguard.demo.report`` (the report and its table), ``voiceguard.demo.runs`` (each run's
  simulator and the routing of calls to it), ``voiceguard.demo.run`` (:func:`run_demo`) and
  ``voiceguard.demo.command`` (the command line).
* ``voiceguard.demo.tour``: the classic races against a toy server model in virtual time
  (``voiceguard tour``; no extras).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from voiceguard.demo.bridges import NaiveBridge, guarded_bridge
    from voiceguard.demo.command import add_demo_command
    from voiceguard.demo.measures import BridgeMeasures, RunOutcome
    from voiceguard.demo.report import DemoReport
    from voiceguard.demo.run import run_demo

__all__ = (
    "BridgeMeasures",
    "DemoReport",
    "NaiveBridge",
    "RunOutcome",
    "add_demo_command",
    "guarded_bridge",
    "run_demo",
)

#: Where each name is defined.
_HOMES: Final = {
    "BridgeMeasures": "voiceguard.demo.measures",
    "DemoReport": "voiceguard.demo.report",
    "NaiveBridge": "voiceguard.demo.bridges",
    "RunOutcome": "voiceguard.demo.measures",
    "add_demo_command": "voiceguard.demo.command",
    "guarded_bridge": "voiceguard.demo.bridges",
    "run_demo": "voiceguard.demo.run",
}


def __getattr__(name: str) -> object:
    # The demo needs the simulator and the server extra; ``voiceguard.demo.tour`` must import
    # without them, so nothing is loaded before it is asked for.
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'voiceguard.demo' has no attribute {name!r}")
