"""Check the built HTML docs for pictures that do not render: raw Graphviz text, missing images.

Usage (after the docs build)::

    .venv/bin/python -m sphinx -W -b html docs /tmp/docs_html
    python docs/check_built.py /tmp/docs_html

Prints one line per problem and exits 1 if there is any; exits 0 (printing how many pages it
read) otherwise. A problem is:

* a literal block showing Graphviz source: a ``digraph``/``graph`` header, two or more ``a -> b``
  edge statements, or a block highlighted as ``dot``/``graphviz``;
* Graphviz source in the page's text outside any literal block (what ``sphinx.ext.graphviz``
  writes when ``dot`` is absent);
* a picture drawn by ``sphinx.ext.graphviz`` at all: it shows raw text wherever Graphviz is not
  installed (the diagrams are committed SVG files, see ``docs/draw_diagrams.py``), and a
  Graphviz directive in a page's source as the build copied it (``_sources/``), which without
  the extension draws nothing;
* an ``<img>`` or ``<object>`` whose local file is not in the built directory.

The highlighted source pages of ``sphinx.ext.viewcode`` (``_modules/``) are not read: code that
writes Graphviz source is not a picture.
"""

from __future__ import annotations

import argparse
import re
import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

#: A Graphviz graph header: ``digraph name {``, ``strict graph {``.
HEADER = re.compile(r"\b(?:strict\s+)?(?:di)?graph\s+(?:\"[^\"]*\"|\w+)?\s*\{")
#: One edge statement: ``a -> b;`` or ``a -> b [label="x"]``.
EDGE = re.compile(r"^\s*(?:\"[^\"]+\"|[\w.]+)\s*->\s*(?:\"[^\"]+\"|[\w.]+)\s*(?:\[[^\]]*\]|;)")
#: Highlighting languages of Graphviz source.
DOT_LANGUAGE = re.compile(r"\bhighlight-(?:dot|graphviz|gv)\b")
#: A Graphviz directive in a page's source (MyST or reStructuredText), as the build ships it in
#: ``_sources/``: without ``sphinx.ext.graphviz`` the picture is missing, without ``dot`` raw text.
DIRECTIVE = re.compile(
    r"^\s*(?:(?:`{3,}|:{3,})\s*\{(?:graphviz|digraph|graph)\}|\.\. (?:graphviz|digraph|graph)::)",
    re.M,
)
#: Elements whose text is never shown.
HIDDEN = frozenset({"script", "style", "title", "head"})
#: Void elements: never closed.
VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "wbr"}
)


class Page(HTMLParser):
    """The parts of one HTML page the checks read."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.blocks: list[tuple[str, str]] = []  # literal blocks: (classes around, text)
        self.text: list[str] = []  # shown text outside literal blocks
        self.sources: list[str] = []  # img src, object data
        self.graphviz = 0  # <div class="graphviz">: pictures of sphinx.ext.graphviz
        self._open: list[tuple[str, str]] = []  # (tag, class) of the open elements
        self._pre: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        classes = attributes.get("class") or ""
        if tag == "div" and "graphviz" in classes.split():
            self.graphviz += 1
        if tag == "img" and attributes.get("src"):
            self.sources.append(attributes["src"] or "")
        if tag == "object" and attributes.get("data"):
            self.sources.append(attributes["data"] or "")
        if tag in VOID:
            return
        self._open.append((tag, classes))
        if tag == "pre" and self._pre is None:
            self._pre = []

    def handle_endtag(self, tag: str) -> None:
        if tag in VOID:
            return
        while self._open:
            name, _classes = self._open.pop()
            outermost = not any(t == "pre" for t, _ in self._open)
            if name == "pre" and self._pre is not None and outermost:
                around = " ".join(c for _t, c in self._open)
                self.blocks.append((around, "".join(self._pre)))
                self._pre = None
            if name == tag:
                break

    def handle_data(self, data: str) -> None:
        if self._pre is not None:
            self._pre.append(data)
        elif not any(tag in HIDDEN for tag, _ in self._open):
            self.text.append(data)


def _first_line(text: str) -> str:
    line = next((line.strip() for line in text.splitlines() if line.strip()), "")
    return line if len(line) <= 60 else line[:57] + "..."


def _sources_of(page: Path, built: Path) -> list[Path]:
    """The page's source as the build copied it (``_sources/NAME.md.txt``), if it did."""
    stem = page.relative_to(built).with_suffix("")
    folder = built / "_sources" / stem.parent
    return sorted(folder.glob(f"{stem.name}.*.txt")) + sorted(folder.glob(f"{stem.name}.txt"))


def problems(page: Path, built: Path) -> list[str]:
    """Every problem of one built page, one line each."""
    parsed = Page()
    parsed.feed(page.read_text(encoding="utf-8", errors="replace"))
    parsed.close()
    name = page.relative_to(built).as_posix()
    found: list[str] = []
    for around, text in parsed.blocks:
        edges = sum(1 for line in text.splitlines() if EDGE.match(line))
        if HEADER.search(text) or edges >= 2 or DOT_LANGUAGE.search(around):
            found.append(f"{name}: a literal block shows raw Graphviz text: {_first_line(text)!r}")
    shown = "".join(parsed.text)
    for match in HEADER.finditer(shown):
        if "->" in shown[match.end() : match.end() + 2000]:
            found.append(
                f"{name}: Graphviz source shown as text, outside a literal block: "
                f"{_first_line(shown[match.start() :])!r}"
            )
    if parsed.graphviz:
        found.append(
            f"{name}: {parsed.graphviz} picture(s) drawn by sphinx.ext.graphviz, raw text "
            "wherever Graphviz is absent: commit an SVG (docs/draw_diagrams.py) instead"
        )
    for source_page in _sources_of(page, built):
        text = source_page.read_text(encoding="utf-8", errors="replace")
        for match in DIRECTIVE.finditer(text):
            number = text.count("\n", 0, match.start()) + 1
            found.append(
                f"{name}: its source uses a Graphviz directive (line {number}): the picture is "
                "missing, or raw text wherever Graphviz is absent; show a committed SVG instead"
            )
    for source in parsed.sources:
        parts = urlsplit(source)
        if parts.scheme or parts.netloc or source.startswith("data:"):
            continue
        target = (page.parent / unquote(parts.path)).resolve()
        if not target.is_file():
            found.append(f"{name}: missing image {source}")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("built", type=Path, help="the directory the HTML build wrote")
    args = parser.parse_args(argv)
    built: Path = args.built.resolve()
    pages = sorted(
        path for path in built.rglob("*.html") if "_modules" not in path.relative_to(built).parts
    )
    if not pages:
        print(f"{args.built}: no HTML pages (build the docs first)")
        return 1
    found = [line for page in pages for line in problems(page, built)]
    for line in found:
        print(line)
    if found:
        return 1
    print(f"check_built: {len(pages)} pages, every picture renders, no raw Graphviz text")
    return 0


if __name__ == "__main__":
    sys.exit(main())
