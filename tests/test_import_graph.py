"""Arrows point down only: the import graph of python/fireside, read with ``ast`` (every
``import``, also inside functions; not those under ``if TYPE_CHECKING:``, which never
run), has no cycle."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent / "python" / "fireside"
NATIVE = {"fireside._core"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in ROOT.rglob("*.py")}


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(name: str) -> set[str]:
    """The package's modules that ``name`` imports when it runs."""
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _type_checking(child):
                for other in child.orelse:
                    visit(other)
                continue
            if isinstance(child, ast.Import):
                found.update(alias.name for alias in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")
                    parts = parts[: len(parts) - (child.level - 1)]
                    base = ".".join([*parts, base] if base else parts)
                for alias in child.names:
                    full = f"{base}.{alias.name}"
                    found.add(full if full in MODULES or full in NATIVE else base)
            visit(child)

    visit(ast.parse(path.read_text(encoding="utf-8")))
    resolved = set()
    for module in found:
        while module and module not in MODULES and module not in NATIVE:
            module = module.rpartition(".")[0]
        if module and module != name and module not in NATIVE:
            resolved.add(module)
    return resolved


def cycles() -> list[set[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    graph = {name: imports_of(name) for name in MODULES}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.add(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(component)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return found


def test_the_graph_is_read() -> None:
    assert "fireside.generation.requests" in imports_of("fireside.generation.stream")
    assert "fireside.generation.engine" not in imports_of("fireside.generation.stream")
    assert "fireside.chat.session" in imports_of("fireside.model")  # inside a function
    assert "fireside.model" not in imports_of("fireside.chat.session")  # TYPE_CHECKING only


def test_no_import_cycles() -> None:
    assert cycles() == []


def test_a_cycle_would_be_found() -> None:
    # the model layer uses the embedder layer, never the other way round
    assert "fireside.embeddings" in imports_of("fireside.model")
    assert "fireside.model" not in imports_of("fireside.embeddings")
    assert "fireside.model" not in imports_of("fireside.docs.embedder")
