"""The house's import rules, as data and a checker over a source tree (used by test_layers.py).

Each layer may import only what its row allows (docs/DESIGN in README's Layout section says why):

- ``stimctl.protocol``: nothing of stimctl but itself; firmware_sim imports only it.
- ``stimctl.rules``: pure; protocol and itself; no serial, socket, threading, subprocess, database.
- ``stimctl.host``: protocol, rules, itself; exactly one module imports firmware_sim (the embedded
  simulator).
- ``stimctl.clinic``: protocol, rules, host, itself; never the faces or the controller.
- ``stimctl.controller``: everything below it; never the faces.
- the faces (``stimctl.cli``, ``stimctl.tui``): the controller, the public types they display
  (rules, status, errors, clinic), themselves; never link, frames, ports or firmware_sim, except
  the named exceptions in EXCEPTIONS.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

#: The one host module that may import firmware_sim: it registers and launches the simulator.
EMBEDDED_SIMULATOR = "stimctl.host.simprocess"

#: Standard-library and third-party modules that mean I/O or concurrency; rules must not use them.
IMPURE_FOR_RULES = (
    "serial", "socket", "threading", "subprocess", "multiprocessing", "asyncio", "sqlalchemy",
    "alembic", "psycopg", "sqlite3", "select", "signal",
)  # fmt: skip

#: What each layer may import of the project (prefix match on dotted module names).
ALLOWED: dict[str, tuple[str, ...]] = {
    "stimctl.protocol": ("stimctl.protocol",),
    "stimctl.rules": ("stimctl.protocol", "stimctl.rules"),
    "stimctl.host": ("stimctl.protocol", "stimctl.rules", "stimctl.host"),
    "stimctl.clinic": ("stimctl.protocol", "stimctl.rules", "stimctl.host", "stimctl.clinic"),
    "stimctl.controller": ("stimctl.protocol", "stimctl.rules", "stimctl.host", "stimctl.clinic"),
    "stimctl.cli": (
        "stimctl.cli", "stimctl.controller", "stimctl.rules", "stimctl.status", "stimctl.errors",
        "stimctl.host.status", "stimctl.host.errors", "stimctl.clinic", "stimctl.__init__",
    ),
    "stimctl.tui": (
        "stimctl.tui", "stimctl.controller", "stimctl.rules", "stimctl.status", "stimctl.errors",
        "stimctl.host.status", "stimctl.host.errors", "stimctl.clinic", "stimctl.__init__",
    ),
    "stimctl.status": ("stimctl.host.status",),
    "stimctl.errors": ("stimctl.host.errors",),
    "stimctl.__init__": ("stimctl.controller", "stimctl.rules"),
    "stimctl.__main__": ("stimctl.cli",),
    "firmware_sim": ("stimctl.protocol", "firmware_sim"),
}  # fmt: skip

#: Named exceptions: (importing module, imported module prefix) -> why.
EXCEPTIONS: dict[tuple[str, str], str] = {
    ("stimctl.cli.sim", "firmware_sim"): "`stimctl sim` serves the simulator",
    ("stimctl.cli.ports", "stimctl.host.ports"): "`stimctl ports` lists the host's ports",
    ("stimctl.cli.record", "stimctl.host.record"): "`stimctl record` reads and verifies records",
    ("stimctl.cli.record", "stimctl.host.verification"): "`stimctl record verify`: the verdict",
    ("stimctl.cli.record", "stimctl.host.recordkey"): "`stimctl record verify --key FILE`",
    ("stimctl.cli.run", "stimctl.host.record"): "a run names its record file (new_record_path)",
    ("stimctl.cli.tui", "stimctl.host.record"): "the TUI names its record file (new_record_path)",
    ("stimctl.cli.tui", "stimctl.tui"): "`stimctl tui` starts the terminal UI",
    (EMBEDDED_SIMULATOR, "firmware_sim"): "the embedded simulator",
}


@dataclass(frozen=True, slots=True)
class Import:
    """One import statement: who imports what, where, and whether only for type checking."""

    module: str
    target: str
    line: int
    type_only: bool


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts.pop()
    return ".".join(parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def imports_of(root: Path, path: Path) -> Iterator[Import]:
    """Every import in one file (module level, in functions and under TYPE_CHECKING)."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    type_only_lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.body:
                for sub in ast.walk(child):
                    type_only_lines.add(getattr(sub, "lineno", -1))
    for node in ast.walk(tree):
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # `from pkg import mod` imports pkg.mod when mod is a module of pkg.
            for alias in node.names:
                sub = root.joinpath(*f"{base}.{alias.name}".split("."))
                is_module = sub.with_suffix(".py").exists() or (sub / "__init__.py").exists()
                targets.append(f"{base}.{alias.name}" if is_module else base)
        for target in targets:
            yield Import(name, target, node.lineno, node.lineno in type_only_lines)


def _layer(module: str) -> str | None:
    """The ALLOWED row that governs a module: the longest matching prefix."""
    if module == "stimctl":
        return "stimctl.__init__"
    best = None
    for layer in ALLOWED:
        if (module == layer or module.startswith(layer + ".")) and (
            best is None or len(layer) > len(best)
        ):
            best = layer
    return best


def _matches(target: str, prefix: str) -> bool:
    return target == prefix or target.startswith(prefix + ".")


def project_files(root: Path) -> list[Path]:
    files: list[Path] = []
    for top in ("stimctl", "firmware_sim"):
        if (root / top).is_dir():
            files += sorted((root / top).rglob("*.py"))
    return files


def check(root: Path) -> list[str]:
    """Every breach of the import rules in the tree at ``root``, one line each."""
    problems: list[str] = []
    project = ("stimctl", "firmware_sim")
    graph: dict[str, set[str]] = {}
    simulator_importers: set[str] = set()
    for path in project_files(root):
        for imp in imports_of(root, path):
            top = imp.target.split(".")[0]
            where = f"{path.relative_to(root)}:{imp.line}"
            layer = _layer(imp.module)
            if imp.module.startswith("stimctl.rules") and top in IMPURE_FOR_RULES:
                problems.append(f"{where}: rules must do no I/O, but imports {imp.target}")
            if top not in project:
                continue
            if imp.target != imp.module:
                graph.setdefault(imp.module, set()).add(imp.target)
            if imp.module.startswith("stimctl.host") and top == "firmware_sim":
                simulator_importers.add(imp.module)
            if any(imp.module == who and _matches(imp.target, what) for who, what in EXCEPTIONS):
                continue
            allowed = ALLOWED.get(layer or "", ())
            if layer is None:
                problems.append(f"{where}: {imp.module} belongs to no layer")
            elif not any(_matches(imp.target, prefix) for prefix in allowed) and not (
                imp.target == "stimctl" and layer.startswith("stimctl")
            ):
                problems.append(f"{where}: {layer} must not import {imp.target}")
    if len(simulator_importers) > 1:
        names = ", ".join(sorted(simulator_importers))
        problems.append(f"firmware_sim is imported by more than one host module: {names}")
    problems += [f"import cycle: {' -> '.join(cycle)}" for cycle in cycles(graph)]
    return problems


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One representative cycle per strongly connected component of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = [0]

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found
