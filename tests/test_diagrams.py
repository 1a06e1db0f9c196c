"""The docs' committed diagrams (``docs/_static/diagrams/*.svg``) draw the tables the code runs on.

Each SVG is read back (Graphviz names every node and edge in a ``<title>``) and compared with
the table it was drawn from, so a changed table without a redrawn picture fails here. Redraw
them all with ``.venv/bin/python docs/draw_diagrams.py`` (needs Graphviz's ``dot``).

``docs/check_built.py``, which CI runs on the built HTML, is checked here on small pages.
"""

from __future__ import annotations

import importlib.util
import itertools
import re
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from voiceguard._layers import LAYERS, SIM_MAY_IMPORT
from voiceguard.core.floor import FLOOR_TRANSITIONS, FloorTrigger
from voiceguard.core.lifecycle import TRANSITIONS, ResponsePhase

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DIAGRAMS = DOCS / "_static" / "diagrams"
SVG = "{http://www.w3.org/2000/svg}"


def _docs_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, DOCS / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DRAW = _docs_script("draw_diagrams")
CHECK_BUILT = _docs_script("check_built")
REDRAW = f"redraw the diagrams with `{DRAW.COMMAND}`"


@dataclass(frozen=True, slots=True, kw_only=True)
class Drawn:
    """What an SVG drawn by Graphviz shows: its nodes and its edges, with their label lines."""

    nodes: dict[str, tuple[str, ...]]
    edges: Counter[tuple[str, str, tuple[str, ...]]]

    @property
    def pairs(self) -> set[tuple[str, str]]:
        return {(tail, head) for tail, head, _label in self.edges}


def read_svg(name: str) -> Drawn:
    root = ET.parse(DIAGRAMS / f"{name}.svg").getroot()
    nodes: dict[str, tuple[str, ...]] = {}
    edges: Counter[tuple[str, str, tuple[str, ...]]] = Counter()
    for group in root.iter(f"{SVG}g"):
        title = group.findtext(f"{SVG}title")
        texts = tuple(t.text or "" for t in group.iter(f"{SVG}text"))
        if title is None:
            continue
        if group.get("class") == "node":
            nodes[title] = texts
        elif group.get("class") == "edge":
            tail, head = title.split("->")
            edges[tail, head, texts] += 1
    return Drawn(nodes=nodes, edges=edges)


def test_the_lifecycle_picture_draws_the_transition_table() -> None:
    labels: dict[tuple[str, str], set[str]] = {}
    for (phase, trigger, _match), outcome in TRANSITIONS.items():
        if isinstance(outcome, ResponsePhase) and outcome is not phase:
            labels.setdefault((phase.value, outcome.value), set()).add(trigger.value.lower())
    drawn = read_svg("lifecycle")
    assert drawn.pairs == set(labels), f"lifecycle.svg is not TRANSITIONS: {REDRAW}"
    for tail, head, texts in drawn.edges:
        shown = {part.strip() for text in texts for part in text.split(",")}
        assert shown == labels[tail, head], f"{tail} -> {head}: {REDRAW}"
    assert set(drawn.nodes) <= {phase.value for phase in ResponsePhase}


def test_the_floor_picture_draws_the_floor_transitions() -> None:
    moves: Counter[tuple[str, str, str]] = Counter(
        (floor.value, after.value, trigger.value.lower().replace("_", " "))
        for (floor, trigger), after in FLOOR_TRANSITIONS.items()
        if after is not floor and trigger is not FloorTrigger.CALL_ENDED
    )
    moves["any", "ENDED", "call ended"] += 1  # every floor ends with the call: one edge for all
    drawn = read_svg("floor")
    shown = Counter({(tail, head, texts[0]): n for (tail, head, texts), n in drawn.edges.items()})
    assert shown == moves, f"floor.svg is not FLOOR_TRANSITIONS: {REDRAW}"


def test_the_layers_picture_draws_the_layer_table() -> None:
    names = [layer.name for layer in reversed(LAYERS)]
    drawn = read_svg("layers")
    expected = set(itertools.pairwise(names)) | {("sim", target) for target in SIM_MAY_IMPORT}
    assert drawn.pairs == expected, f"layers.svg is not voiceguard._layers: {REDRAW}"
    assert set(drawn.nodes) == {*names, "sim"}
    for layer in LAYERS:
        assert drawn.nodes[layer.name][-1] == layer.holds, f"{layer.name}: {REDRAW}"


def test_the_drivers_picture_draws_its_source() -> None:
    source = DRAW.DRIVERS
    edges = set(re.findall(r"(\w+) -> (\w+)", source))
    nodes = set(re.findall(r"^\s*(\w+) \[label=", source, flags=re.MULTILINE))
    drawn = read_svg("drivers")
    assert drawn.pairs == edges, f"drivers.svg is not draw_diagrams.DRIVERS: {REDRAW}"
    assert set(drawn.nodes) == nodes


def test_every_diagram_is_committed_and_shown_on_a_page() -> None:
    committed = {path.stem for path in DIAGRAMS.glob("*.svg")}
    assert committed == {"lifecycle", "floor", "layers", "drivers"}, REDRAW
    pages = "\n".join(path.read_text(encoding="utf-8") for path in DOCS.glob("*.md"))
    for name in committed:
        assert f"_static/diagrams/{name}.svg" in pages, f"no page shows {name}.svg"


@pytest.mark.parametrize("page", sorted(DOCS.glob("*.md")), ids=lambda path: path.name)
def test_no_page_needs_graphviz_to_show_a_picture(page: Path) -> None:
    text = page.read_text(encoding="utf-8")
    assert not re.search(r"^\s*(```|:::)\s*\{graphviz\}", text, flags=re.MULTILINE), (
        f"{page.name} draws with the graphviz directive, which shows raw dot text when Graphviz "
        f"is absent: put the source in docs/draw_diagrams.py, {REDRAW}, and show the SVG"
    )


_PAGE = """<html><head><title>t</title></head><body><article>
<p>A <code>digraph</code> is a directed graph.</p>
<div class="highlight-python"><div class="highlight"><pre>def f() -> None:
    return g() -> h()</pre></div></div>
{body}
</article></body></html>"""


def _built(tmp_path: Path, body: str, source: str = "# Page\n") -> Path:
    built = tmp_path / "html"
    (built / "_sources").mkdir(parents=True)
    (built / "_images").mkdir()
    (built / "_images" / "here.svg").write_text("<svg/>", encoding="utf-8")
    (built / "page.html").write_text(_PAGE.format(body=body), encoding="utf-8")
    (built / "_sources" / "page.md.txt").write_text(source, encoding="utf-8")
    return built


def test_check_built_passes_pages_whose_pictures_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    built = _built(tmp_path, '<img alt="x" src="_images/here.svg" class="diagram"/>')
    assert CHECK_BUILT.main([str(built)]) == 0
    assert capsys.readouterr().out.startswith("check_built: 1 pages")


@pytest.mark.parametrize(
    ("body", "source", "problem"),
    [
        ("digraph lifecycle {\n  NONE -> CREATED;\n}", "", "shown as text, outside a literal"),
        ("<pre>digraph drivers {\n  a -> b;\n}</pre>", "", "a literal block shows raw Graphviz"),
        ("<pre>a -> b;\nb -> c [label=x];</pre>", "", "a literal block shows raw Graphviz"),
        ('<div class="highlight-dot"><pre>a</pre></div>', "", "a literal block shows raw"),
        ('<div class="graphviz"><object data="_images/here.svg"></object></div>', "", "drawn by"),
        ("", "```{graphviz} _generated/floor.dot\n```\n", "its source uses a Graphviz directive"),
        ('<img alt="x" src="_images/gone.svg"/>', "", "missing image _images/gone.svg"),
    ],
)
def test_check_built_fails_a_picture_that_does_not_render(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], body: str, source: str, problem: str
) -> None:
    built = _built(tmp_path, body, source or "# Page\n")
    assert CHECK_BUILT.main([str(built)]) == 1
    (line,) = capsys.readouterr().out.splitlines()
    assert line.startswith("page.html: ") and problem in line
