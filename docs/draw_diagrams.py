"""Draw the docs' diagrams as SVG files, committed so that the pages never need Graphviz.

Run it after changing a table a diagram is drawn from (``tests/test_diagrams.py`` fails until
you do)::

    .venv/bin/python docs/draw_diagrams.py

It needs Graphviz's ``dot`` (``apt-get install graphviz``); reading the docs or building them
does not. The sources are the ones the docs build has always used: the response lifecycle and
the layers are drawn by ``docs/conf.py`` from ``voiceguard.core.lifecycle.TRANSITIONS`` and
``voiceguard._layers``, the floor by :func:`voiceguard.core.floor.floor_diagram` from
``FLOOR_TRANSITIONS``; the two drivers of the turn engine, which no table holds, are drawn from
:data:`DRIVERS` below. The SVG files go to ``docs/_static/diagrams/``.
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

DOCS = Path(__file__).resolve().parent
OUT = DOCS / "_static" / "diagrams"
#: The command that redraws every diagram (quoted by the tests when a picture is out of date).
COMMAND = ".venv/bin/python docs/draw_diagrams.py"

#: The turn engine and the two drivers that run it (the architecture page).
DRIVERS = r"""digraph drivers {
  rankdir=LR; bgcolor="transparent"; nodesep=0.4;
  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11];
  edge [fontname="sans-serif", fontsize=10];
  twilio [label="Twilio\n(phone)", fillcolor="#ffffff"];
  model [label="Realtime API\n(model)", fillcolor="#ffffff"];
  bot [label="your bot's\nown loop", fillcolor="#ffffff"];
  handler [label="MediaHandler\n(runtime)", fillcolor="#fbf3e8"];
  bridge [label="BridgeCore\nsession, greeting,\naudio passed through", fillcolor="#eef3fb"];
  adapters [label="GuardedCall\nphone + model adapters\n(middleware)", fillcolor="#fbf3e8"];
  guard [label="CallGuard + BotSide\nthe bot's sends checked", fillcolor="#eef3fb"];
  engine [label="TurnEngine\nthe one policy", fillcolor="#dde8fa", penwidth=2];
  twilio -> handler [dir=both]; handler -> model [dir=both];
  handler -> bridge [label="events"]; bridge -> engine;
  twilio -> adapters [dir=both]; adapters -> bot [dir=both]; adapters -> model [dir=both];
  adapters -> guard [label="events, sends"]; guard -> engine;
}
"""


def _docs_conf() -> ModuleType:
    """``docs/conf.py`` as a module (its generators write ``docs/_generated/``)."""
    spec = importlib.util.spec_from_file_location("voiceguard_docs_conf", DOCS / "conf.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def sources() -> dict[str, str]:
    """Every diagram's Graphviz source, by the name of its SVG file (without ``.svg``)."""
    from voiceguard.core.floor import floor_diagram  # noqa: PLC0415 - after conf's sys.path

    conf = _docs_conf()
    conf._write_generated(None)  # writes lifecycle.dot and layers.dot
    generated = DOCS / "_generated"
    return {
        "lifecycle": (generated / "lifecycle.dot").read_text(encoding="utf-8"),
        "layers": (generated / "layers.dot").read_text(encoding="utf-8"),
        "drivers": DRIVERS,
        "floor": floor_diagram() + "\n",
    }


def draw(source: str, dot: str) -> str:
    """The SVG ``dot`` draws from *source*."""
    done = subprocess.run(
        [dot, "-Tsvg"], input=source, capture_output=True, text=True, check=False, timeout=60
    )
    if done.returncode != 0:
        raise SystemExit(f"dot failed: {done.stderr.strip()}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=OUT, help=f"directory (default {OUT})")
    args = parser.parse_args(argv)
    dot = shutil.which("dot")
    if dot is None:
        print("draw_diagrams: Graphviz's dot is not installed (apt-get install graphviz)")
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    for name, source in sources().items():
        path = args.out / f"{name}.svg"
        path.write_text(draw(source, dot), encoding="utf-8")
        print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
