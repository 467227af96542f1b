"""The layout's rules, read from the source (issue 17): no import circles anywhere in engines/ and streamer/,
and engines/ never imports streamer/ (the compute knows nothing of the service).

Every import counts — at module level, inside functions and under ``TYPE_CHECKING`` — because a lazy or
type-only import is still a dependency a reader has to follow, and a circle hidden in a function today is
a circle at import time after the next refactoring.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engines", "streamer")


def _modules() -> dict[str, Path]:
    """Every module of the two packages by dotted name (a package by its own name, from ``__init__.py``)."""
    found: dict[str, Path] = {}
    for top in PACKAGES:
        for path in sorted((REPO / top).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            found[name] = path
    return found


def _imports(name: str, path: Path, modules: dict[str, Path]) -> Iterator[str]:
    """The modules of ours that ``name`` imports: ``from a.b import c`` is a.b.c when that is a module, else a.b."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name in modules:
                    yield alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = name.split(".")[: len(name.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join([*base_parts, *([node.module] if node.module else [])])
            else:
                base = node.module or ""
            for alias in node.names:
                if f"{base}.{alias.name}" in modules:
                    yield f"{base}.{alias.name}"
                elif base in modules:
                    yield base


def _packages_entered(importer: str, imported: str, modules: dict[str, Path]) -> Iterator[str]:
    """The packages whose ``__init__`` importing ``imported`` runs first: its parents that ``importer`` is not
    inside (a package's own modules run after it). An import circle through a package ``__init__`` is a real
    one: Python hands out the half-initialised module."""
    parts = imported.split(".")
    for i in range(1, len(parts)):
        parent = ".".join(parts[:i])
        if parent in modules and not (importer == parent or importer.startswith(parent + ".")):
            yield parent


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        deps = set(_imports(name, path, modules))
        deps |= {p for d in list(deps) for p in _packages_entered(name, d, modules)}
        graph[name] = deps - {name}
    return graph


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, Iterator[str]]] = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            nxt = next(edges, None)
            if nxt is not None:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph.get(nxt, ())))))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_import_graph_has_no_circle() -> None:
    found = circles(import_graph())
    assert not found, "import circles (break each by moving what both sides need below them):\n" + "\n".join(
        " <-> ".join(c) for c in found
    )


_ENGINE_PACKAGES = ("engines.face", "engines.swap", "engines.light", "engines.compose", "engines.identity")
RULES: dict[str, tuple[str, ...]] = {
    # package (and everything in it) -> what it must not import (each package's docstring says the same)
    "engines": ("streamer",),
    "engines.runtime": (*_ENGINE_PACKAGES, "engines.processor", "engines.catalogue", "engines.settings"),
    "engines.face": (*_ENGINE_PACKAGES[1:], "engines.processor", "engines.catalogue"),
    "engines.light": ("engines.identity", "engines.compose", "engines.processor"),
    "engines.compose": ("engines.identity", "engines.processor"),
    "engines.swap": ("engines.compose", "engines.processor"),
    "engines.identity": ("engines.processor",),
    "engines.train": ("engines.processor",),
    "engines.stages": ("engines.processor",),
    "streamer.live": ("streamer.api", "streamer.record", "streamer.commands"),
    "streamer.record": ("streamer.api", "streamer.commands"),
    "streamer.governance": ("streamer.api", "streamer.live", "streamer.record", "streamer.commands"),
    "streamer.api": ("streamer.commands",),
    "streamer.service": ("streamer.api", "streamer.commands"),
    "streamer.plan": ("streamer.api", "streamer.live", "streamer.record", "streamer.commands"),
    "streamer.config": ("streamer.api", "streamer.live", "streamer.record", "streamer.governance", "streamer.commands"),
}
KNOWN_EXCEPTIONS: set[tuple[str, str]] = set()
"""Imports against the rules that are known and on their way out (each says what removes it)."""


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def _broken_rules(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    return {
        (module, dep)
        for module, deps in graph.items()
        for package, forbidden in RULES.items()
        if _within(module, package)
        for dep in deps
        if any(_within(dep, f) for f in forbidden)
    }


def test_no_package_imports_what_it_must_not() -> None:
    broken = _broken_rules(import_graph())
    wrong = sorted(f"{m} imports {d}" for m, d in broken - KNOWN_EXCEPTIONS)
    assert not wrong, "imports against the layout (see each package's docstring):\n" + "\n".join(wrong)
    stale = sorted(f"{m} -> {d}" for m, d in KNOWN_EXCEPTIONS - broken)
    assert not stale, "known exceptions that are gone (delete them from KNOWN_EXCEPTIONS): " + ", ".join(stale)


def test_only_main_imports_the_commands() -> None:
    graph = import_graph()
    wrong = sorted(
        f"{m} imports {d}"
        for m, deps in graph.items()
        if not _within(m, "streamer.commands") and m != "streamer.__main__"
        for d in deps
        if _within(d, "streamer.commands")
    )
    assert not wrong, "\n".join(wrong)


def test_the_guard_sees_a_circle_and_a_wrong_way_import() -> None:
    """The checks above can fail: a made-up circle is found, and the graph holds real edges of both kinds."""
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    # A circle that runs through a package's __init__ (as engines.swap's eager import of its mesh once made):
    graph_through_init = {"p.a": {"q.b"}, "q": {"q.c"}, "q.b": set(), "q.c": {"p.a"}}
    fake = {m: Path("x.py") for m in graph_through_init}
    entered = {
        m: deps | {p for d in deps for p in _packages_entered(m, d, fake)} for m, deps in graph_through_init.items()
    }
    assert circles(entered) == [["p.a", "q", "q.c"]]
    graph = import_graph()
    assert "engines.face.tracker" in graph["engines.processor"]
    assert "engines.processor" in graph["streamer.live.worker"]
    assert _broken_rules({"engines.face.detect": {"streamer.live.ring"}, "streamer.live.x": {"streamer.api"}}) == {
        ("engines.face.detect", "streamer.live.ring"),
        ("streamer.live.x", "streamer.api"),
    }


def test_every_package_says_what_it_is_for_and_what_it_must_not_import() -> None:
    missing = []
    for init in sorted([*(REPO / "engines").rglob("__init__.py"), *(REPO / "streamer").rglob("__init__.py")]):
        doc = " ".join((ast.get_docstring(ast.parse(init.read_text())) or "").lower().split())
        if "must not import" not in doc:
            missing.append(str(init.relative_to(REPO)))
    assert not missing, "package docstrings without 'must not import': " + ", ".join(missing)
