"""Sphinx configuration for the voiceguard documentation (built with ``-W``: warnings fail)."""

from __future__ import annotations

import itertools
import os
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voiceguard import __version__

project = "voiceguard"
author = "The voiceguard developers"
copyright = "2026, The voiceguard developers"
release = __version__
version = __version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]

nitpicky = True
# Third-party names without an inventory available offline. Each is a real type of that library.
nitpick_ignore_regex = [
    (r"py:.*", r"(anyio|trio|numpy|np|websockets|openai|starlette|uvicorn|hypothesis)(\..*)?"),
    (r"py:.*", r"(numpy\.typing|npt)\..*"),
    (r"py:class", r"NDArray"),
    # Type variables of generic signatures (documented by the functions that use them).
    (r"py:(class|obj)", r"(voiceguard\.middleware\.(model|call)\.)?_(Raw|E|R|H)"),
    # The turn engine's own parts, behind its properties (described on the design page).
    (r"py:class", r"voiceguard\.core\._(segments|deadlines|answers)\.\w+"),
    (r"py:class", r"~?_P"),
    (r"py:class", r"voiceguard\.config\.mapping\._C"),
    # asyncio documents these under the package's name (asyncio.AbstractEventLoop).
    (r"py:class", r"asyncio\.(events|transports)\.\w+"),
]

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_preserve_defaults = True
autodoc_type_aliases = {"CloseErrors": "voiceguard.middleware.CloseErrors"}
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3


# The Python inventory: a local copy first (Debian's python3.X-doc, installed by .ci/run, or the
# file named by VOICEGUARD_PYTHON_INVENTORY), so the build works offline; otherwise the network.
def _local_python_inventory() -> list[str]:
    named = os.environ.get("VOICEGUARD_PYTHON_INVENTORY")
    if named and Path(named).is_file():
        return [named]
    debian = [
        path
        for path in Path("/usr/share/doc").glob("python3.*/html/objects.inv")
        if re.fullmatch(r"python3\.\d+", path.parent.parent.name)
    ]
    return [str(path) for path in sorted(debian, reverse=True)[:1]]


intersphinx_mapping = {
    "python": ("https://docs.python.org/3", (*_local_python_inventory(), None)),
}
intersphinx_timeout = 5

html_theme = "furo"
html_title = f"voiceguard {version}"
html_static_path = ["_static"] if (Path(__file__).parent / "_static").is_dir() else []
html_css_files = ["voiceguard.css"]


def _write_generated(_app: object) -> None:
    """Draw the response lifecycle from the same table the code runs on."""
    from voiceguard.core.state import TRANSITIONS, LifecycleTrigger, ResponsePhase

    out = Path(__file__).resolve().parent / "_generated"
    out.mkdir(exist_ok=True)
    edges: dict[tuple[str, str], list[str]] = {}
    rows = ["| phase | trigger | names | next |", "|---|---|---|---|"]
    for (phase, trigger, match), outcome in TRANSITIONS.items():
        nxt = outcome.value if isinstance(outcome, ResponsePhase) else f"refused: {outcome}"
        rows.append(f"| `{phase.value}` | `{trigger.value}` | {match.value.lower()} | {nxt} |")
        if isinstance(outcome, ResponsePhase) and outcome is not phase:
            label = trigger.value.lower()
            edges.setdefault((phase.value, outcome.value), [])
            if label not in edges[phase.value, outcome.value]:
                edges[phase.value, outcome.value].append(label)
    local = {LifecycleTrigger.CREATE_SENT.value.lower(), LifecycleTrigger.CANCEL_SENT.value.lower()}
    lines = [
        "digraph lifecycle {",
        '  rankdir=LR; bgcolor="transparent";',
        '  node [shape=box, style="rounded,filled", fillcolor="#eef3fb", fontname="sans-serif"];',
        '  edge [fontname="sans-serif", fontsize=10];',
    ]
    for (src, dst), labels in sorted(edges.items()):
        color = "#1f5fbf" if set(labels) & local else "#333333"
        style = "bold" if set(labels) & local else "solid"
        label = ", ".join(labels)
        lines.append(f'  {src} -> {dst} [label="{label}", color="{color}", style={style}];')
    lines.append("}")
    (out / "lifecycle.dot").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "lifecycle-table.md").write_text("\n".join(rows) + "\n", encoding="utf-8")
    _write_architecture(out)


def _write_architecture(out: Path) -> None:
    """The layers (from the table the import test checks) and the turn engine's floor (from the
    table the engine runs on)."""
    from voiceguard._layers import LAYERS, SIM, SIM_MAY_IMPORT
    from voiceguard.core.floor import FLOOR_TRANSITIONS, FloorTrigger, floor_diagram

    lines = [
        "digraph layers {",
        '  rankdir=TB; bgcolor="transparent"; nodesep=0.3; ranksep=0.25;',
        '  node [shape=box, style="rounded,filled", fontname="sans-serif", fontsize=11,',
        "        width=5.2];",
        '  edge [color="#888888", arrowsize=0.6];',
    ]
    sans_io = {"base", "transports", "protocol", "core"}
    names = [layer.name for layer in reversed(LAYERS)]
    paths = {
        "base": "errors.py  decisions.py  audio.py  config/",
        "package": "voiceguard/__init__.py",
        "cli": "cli.py  __main__.py",
    }
    for layer in reversed(LAYERS):
        fill = "#eef3fb" if layer.name in sans_io else "#fbf3e8"
        label = f"{paths.get(layer.name, layer.name + '/')}\\n{layer.holds}"
        lines.append(f'  {layer.name} [label="{label}", fillcolor="{fill}"];')
    for upper, lower in itertools.pairwise(names):
        lines.append(f"  {upper} -> {lower};")
    allowed = ", ".join(SIM_MAY_IMPORT)
    lines.append(
        f'  sim [label="{SIM.removeprefix("voiceguard.")}/\\nthe simulator of both peers '
        f'(imports {allowed} only)", fillcolor="#eaf6ea", width=3.2];'
    )
    for target in SIM_MAY_IMPORT:
        lines.append(f"  sim -> {target} [style=dashed];")
    lines.append("  { rank=same; core; sim; }")
    lines.append("}")
    (out / "layers.dot").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / "floor.dot").write_text(floor_diagram() + "\n", encoding="utf-8")
    rows = ["| floor | trigger | next |", "|---|---|---|"]
    for (floor, trigger), after in FLOOR_TRANSITIONS.items():
        if after is not floor and trigger is not FloorTrigger.CALL_ENDED:
            rows.append(f"| `{floor.value}` | `{trigger.value}` | `{after.value}` |")
    (out / "floor-table.md").write_text("\n".join(rows) + "\n", encoding="utf-8")


def setup(app: object) -> None:
    app.connect("builder-inited", _write_generated)  # type: ignore[attr-defined]
