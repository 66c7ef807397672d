"""No import cycle among the modules of src/ (and of cli/src/), and every
reference goes down docs/DESIGN.md's layers, never up.

The module graph is read from the source: a node per top-level module of
the crate (``src/config/`` and ``src/config.rs`` are both ``config``); an
edge for every ``crate::x`` path, ``use crate::{x, y}`` group, and
``super::`` that climbs to the crate root. Comments, strings and character
literals are left out, so a doc link is not a dependency.
"""

from __future__ import annotations

import re
from pathlib import Path

from conftest import ROOT

# Edges allowed to close a cycle while a change breaks it: none today. The
# list only shrinks: an edge listed here that the source no longer has fails
# the test, so that it is taken off.
KNOWN_CYCLE_EDGES: set[tuple[str, str, str]] = set()

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"


def strip_code(text: str) -> str:
    """``text`` with comments, string and char literals blanked out."""
    out, i, n = [], 0, len(text)
    while i < n:
        c = text[i]
        if text.startswith("//", i):
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif text.startswith("/*", i):
            depth, i = 1, i + 2
            while i < n and depth:
                if text.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif text.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif (m := re.match(r'b?r(#*)"', text[i:])) and (i == 0 or not re.match(r"\w", text[i - 1])):
            close = '"' + m.group(1)
            end = text.find(close, i + m.end())
            i = n if end < 0 else end + len(close)
            out.append('""')
        elif c == '"':
            i += 1
            while i < n and text[i] != '"':
                i += 2 if text[i] == "\\" else 1
            i += 1
            out.append('""')
        elif c == "'" and (m := re.match(r"'(\\(x..|u\{[0-9a-fA-F]+\}|.)|[^\\'])'", text[i:], re.S)):
            i += m.end()
            out.append("' '")
        else:
            out.append(c)
            i += 1
    return "".join(out)


def group_heads(text: str, start: int) -> list[str]:
    """The first name of each item of the ``{…}`` group opening at ``start``."""
    depth, item, heads = 0, "", []
    for c in text[start:]:
        if c == "{":
            depth += 1
            if depth == 1:
                continue
        elif c == "}":
            depth -= 1
            if depth == 0:
                break
        if c == "," and depth == 1:
            heads.append(item)
            item = ""
        elif depth >= 1:
            item += c
    heads.append(item)
    names = [re.match(rf"\s*({IDENT})", h) for h in heads]
    return [m.group(1) for m in names if m]


def module_path(src: Path, file: Path) -> list[str]:
    parts = list(file.relative_to(src).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "mod" else parts


def references(src: Path, file: Path) -> set[str]:
    """The top-level modules of the crate that ``file`` refers to."""
    code = strip_code(file.read_text(encoding="utf-8"))
    path = module_path(src, file)
    # The inline `mod x {` blocks open at each brace, to resolve super::.
    stack, inline_at = [], {}
    for m in re.finditer(rf"\bmod\s+{IDENT}\s*\{{|[{{}}]", code):
        if m.group(0) == "}":
            if stack:
                stack.pop()
        else:
            stack.append(m.group(0) != "{")
        inline_at[m.end()] = sum(stack)
    marks = sorted(inline_at)

    def depth_at(pos: int) -> int:
        before = [p for p in marks if p <= pos]
        return inline_at[before[-1]] if before else 0

    found = set()
    for m in re.finditer(r"(?<![$\w])crate::", code):
        rest = code[m.end() :]
        if rest.startswith("{"):
            found.update(group_heads(code, m.end()))
        elif name := re.match(IDENT, rest):
            found.add(name.group(0))
    for m in re.finditer(r"(?<![\w:])((?:super::)+)", code):
        climbs = m.group(1).count("super::")
        here = path + ["_"] * depth_at(m.start())
        left = here[: len(here) - climbs]
        if left and left[0] != "_":
            found.add(left[0])
        elif not left:
            rest = code[m.end() :]
            if rest.startswith("{"):
                found.update(group_heads(code, m.end()))
            elif name := re.match(IDENT, rest):
                found.add(name.group(0))
    return found


def module_graph(src: Path) -> dict[str, set[str]]:
    files = [f for f in src.rglob("*.rs") if module_path(src, f) not in (["lib"], ["main"])]
    nodes = {module_path(src, f)[0] for f in files}
    graph: dict[str, set[str]] = {n: set() for n in nodes}
    for f in files:
        top = module_path(src, f)[0]
        graph[top] |= {r for r in references(src, f) if r in nodes and r != top}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, found = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def without_known(root: str, graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in deps if (root, a, b) not in KNOWN_CYCLE_EDGES} for a, deps in graph.items()}


def design_layers() -> dict[str, int]:
    """Each module of src/ and its layer, from docs/DESIGN.md (0 = ground)."""
    text = (ROOT / "docs" / "DESIGN.md").read_text(encoding="utf-8")
    match = re.search(r"```\n(layer \d.*?)\n```", text, re.S)
    assert match, "docs/DESIGN.md has no layer picture (lines `layer N  name  modules…`)"
    layers = {}
    for line in match.group(1).splitlines():
        number, _name, *modules = line.split()[1:]
        for module in modules:
            assert module not in layers, f"docs/DESIGN.md puts {module} in two layers"
            layers[module] = int(number)
    return layers


def test_the_source_resolves_what_it_names():
    """The reader sees through comments, strings, groups and super::."""
    code = strip_code('let s = "crate::nope"; // crate::nope\nlet c = \'{\';')
    assert "nope" not in code and "{" not in code
    src = ROOT / "src"
    assert {"text", "error"} <= references(src, src / "address.rs")
    assert "config" in references(src, src / "client" / "pipeline.rs")


def test_no_cycle_among_the_modules():
    for root in ("src", "cli/src"):
        graph = without_known(root, module_graph(ROOT / root))
        assert cycles(graph) == [], f"an import cycle among the modules of {root}/"


def test_the_known_cycle_edges_still_exist():
    for root, a, b in sorted(KNOWN_CYCLE_EDGES):
        graph = module_graph(ROOT / root)
        assert b in graph.get(a, set()), f"{root}: {a} no longer uses {b}: take it off KNOWN_CYCLE_EDGES"


def test_modules_use_their_layer_or_below():
    layers = design_layers()
    graph = module_graph(ROOT / "src")
    assert sorted(set(graph) - set(layers)) == [], "modules of src/ missing from docs/DESIGN.md's layer picture"
    assert sorted(set(layers) - set(graph)) == [], "docs/DESIGN.md's layer picture names modules that do not exist"
    upward = sorted(
        f"{a} (layer {layers[a]}) -> {b} (layer {layers[b]})"
        for a, deps in graph.items()
        for b in deps
        if layers[b] > layers[a]
    )
    assert upward == [], "modules that use a layer above their own"
