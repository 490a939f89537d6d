"""The package's layers, read from the source's own imports, so that they stay true.

Imports run down only (see docs/architecture.md): the wire and policy modules at the bottom,
then ``runner`` and ``diagnostics``, then ``supervisor``, then ``report``, and the front ends
(``testing``, ``cli``, ``server``) on top. Every import counts, including the ones made inside a
function or under ``TYPE_CHECKING``: a lazy import still ties the two modules together.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

import crashsight

PACKAGE = Path(crashsight.__file__).parent

#: Each layer, and the layers it may import from (its own package always allowed).
ALLOWED: dict[str, frozenset[str]] = {
    "base": frozenset(),
    "runner": frozenset({"base"}),
    "diagnostics": frozenset({"base"}),
    "supervisor": frozenset({"base", "runner", "diagnostics"}),
    "report": frozenset({"base", "diagnostics", "supervisor"}),
    "testing": frozenset({"base", "runner", "diagnostics", "supervisor", "report"}),
    "server": frozenset({"base", "diagnostics", "supervisor", "report"}),
    "cli": frozenset({"base", "diagnostics", "supervisor", "report", "server", "testing"}),
    # An adapter at the edge: runs supervisors inside Ray's workers, reports to Ray's driver.
    "ray": frozenset({"base", "runner", "diagnostics", "supervisor", "report"}),
    "top": frozenset({"base", "runner", "diagnostics", "supervisor", "report", "testing", "cli"}),
}
#: Third-party packages a worker must never load: it runs inside every worker process.
RUNNER_FORBIDDEN_THIRD_PARTY = frozenset({"anyio", "psutil", "trio", "starlette", "uvicorn"})
MAX_MODULE_LINES = 500


def module_name(path: Path) -> str:
    parts = ["crashsight", *path.relative_to(PACKAGE).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer_of(module: str) -> str:
    """The layer of a crashsight module: its sub-package, ``base`` for a plain module, or ``top``."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in {"__init__", "__main__"}:
        return "top"
    if (PACKAGE / parts[1]).is_dir():
        assert parts[1] in ALLOWED, f"new package {parts[1]}: give it a layer in ALLOWED"
        return parts[1]
    return "base"


def imports_of(path: Path) -> Iterator[tuple[int, str]]:
    """Every module ``path`` imports (absolute names), with its line number."""
    return imports_in(path.read_text(), module_name(path), is_package=path.name == "__init__.py")


def imports_in(source: str, module: str, *, is_package: bool = False) -> Iterator[tuple[int, str]]:
    """Every module that ``source``, the text of ``module``, imports, with its line number."""
    package = module if is_package else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:  # `from . import x` imports the module x
                if f"{target}.{alias.name}" in MODULES:
                    yield node.lineno, f"{target}.{alias.name}"


SOURCES = sorted(PACKAGE.rglob("*.py"))
MODULES = {module_name(path) for path in SOURCES}


def internal_imports(path: Path) -> Iterator[tuple[int, str]]:
    return internal(imports_of(path))


def internal(imports: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
    """The crashsight modules among ``imports`` (``from .x import name`` counts as module x)."""
    for lineno, target in imports:
        while target and target not in MODULES:
            target = target.rpartition(".")[0]
        if target.startswith("crashsight") and target != "crashsight":
            yield lineno, target


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_run_down_the_layers(path: Path) -> None:
    """A module imports only from its own layer's package or the layers below it."""
    wrong = upward_imports(module_name(path), internal_imports(path))
    assert not wrong, f"{module_name(path)} imports up or across: {wrong}"


def upward_imports(module: str, imports: Iterator[tuple[int, str]]) -> list[str]:
    layer = layer_of(module)
    return [
        f"line {lineno}: {target} ({layer_of(target)})"
        for lineno, target in imports
        if layer_of(target) != layer and layer_of(target) not in ALLOWED[layer]
    ]


@pytest.mark.parametrize(
    "path",
    [p for p in SOURCES if layer_of(module_name(p)) in {"runner", "base"}],
    ids=lambda p: str(p.relative_to(PACKAGE)),
)
def test_worker_side_imports_no_heavy_library(path: Path) -> None:
    """The runner and the wire modules load in every worker: standard library, pydantic, orjson."""
    heavy = [
        f"line {lineno}: {target}"
        for lineno, target in imports_of(path)
        if target.split(".")[0] in RUNNER_FORBIDDEN_THIRD_PARTY
    ]
    assert not heavy, f"{module_name(path)} imports {heavy}"


def test_no_import_cycles() -> None:
    """No two modules depend on each other, directly or through others."""
    graph = {module_name(path): {t for _, t in internal_imports(path)} for path in SOURCES}
    # A package's __init__ may re-export its children; its children importing it is the cycle.
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt == "crashsight" or nxt.startswith(node + "."):
                continue  # a package importing its own submodule is not a cycle
            if state.get(nxt) == 1:
                cycles.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module)
    assert not cycles, f"import cycles: {cycles}"


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_modules_stay_small(path: Path) -> None:
    """One job a module: none grows past 500 lines."""
    lines = len(path.read_text().splitlines())
    assert lines <= MAX_MODULE_LINES, f"{path.name} has {lines} lines"


def test_the_checker_sees_lazy_and_relative_imports() -> None:
    """An upward import hidden in a function, relative or not, is reported with its line."""
    source = "def f():\n    from ..report.html import render_panel\n    import crashsight.cli.run\n"
    module = "crashsight.diagnostics.classify"
    assert upward_imports(module, internal(imports_in(source, module))) == [
        "line 2: crashsight.report.html (report)",
        "line 3: crashsight.cli.run (cli)",
    ]
    assert upward_imports("crashsight.cli.run", internal(imports_in(source, module))) == []
