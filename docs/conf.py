"""Sphinx configuration for the voiceguard documentation (built with ``-W``: warnings fail)."""

from __future__ import annotations

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
    "sphinx.ext.graphviz",
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
    (r"py:(class|obj)", r"(voiceguard\.middleware\._adapters\.)?_(Raw|E|R|H)"),
    (r"py:class", r"~?_P"),
    (r"py:class", r"voiceguard\.config\.mapping\._C"),
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

graphviz_output_format = "svg"


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


def setup(app: object) -> None:
    app.connect("builder-inited", _write_generated)  # type: ignore[attr-defined]
