"""Size limits (issue 9): in stimctl/ and firmware_sim/, no module over 450 lines and no function
over 60 lines (a method, a nested function and a migration's ``upgrade`` count as functions).

A file still being split elsewhere is named in ALLOWLIST with the reason; the list only shrinks:
a listed file that is within the limits fails the test too, so it is struck off at once.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("stimctl", "firmware_sim")
MAX_MODULE_LINES = 450
MAX_FUNCTION_LINES = 60

#: Files over a limit today, each being shrunk by another change (path -> why it is here).
ALLOWLIST: dict[str, str] = {}


@dataclass(frozen=True, slots=True)
class Oversize:
    """One module or function over its limit."""

    path: str  # relative to the root, with forward slashes
    what: str  # "module" or the function's qualified name
    lines: int
    limit: int

    def __str__(self) -> str:
        return f"{self.path}: {self.what} has {self.lines} lines (limit {self.limit})"


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    """Every function, method and nested function, with its qualified name."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{node.name}"
            if not isinstance(node, ast.ClassDef):
                yield name, node
            yield from _functions(node, f"{name}.")
        else:
            yield from _functions(node, prefix)


def oversized(root: Path, packages: tuple[str, ...] = PACKAGES) -> list[Oversize]:
    """Every module over MAX_MODULE_LINES and function over MAX_FUNCTION_LINES (from its ``def``
    line to its last line) in the packages under ``root``."""
    found: list[Oversize] = []
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            rel = path.relative_to(root).as_posix()
            text = path.read_text(encoding="utf-8")
            count = len(text.splitlines())
            if count > MAX_MODULE_LINES:
                found.append(Oversize(rel, "module", count, MAX_MODULE_LINES))
            for name, node in _functions(ast.parse(text, filename=rel)):
                length = node.end_lineno - node.lineno + 1  # type: ignore[attr-defined]
                if length > MAX_FUNCTION_LINES:
                    found.append(Oversize(rel, f"{name}()", length, MAX_FUNCTION_LINES))
    return found


def test_no_module_over_450_lines_and_no_function_over_60_lines() -> None:
    over = [o for o in oversized(ROOT) if o.path not in ALLOWLIST]
    assert not over, "over the size limits (split by what the code does):\n" + "\n".join(
        map(str, over)
    )


@pytest.mark.parametrize("path", sorted(ALLOWLIST))
def test_an_allowlisted_file_is_still_over_a_limit(path: str) -> None:
    assert (ROOT / path).is_file(), f"{path} is gone: strike it off ALLOWLIST"
    over = [o for o in oversized(ROOT) if o.path == path]
    assert over, f"{path} is within the limits now: strike it off ALLOWLIST"


def _write(root: Path, name: str, text: str) -> None:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def _function(name: str, lines: int, indent: str = "") -> str:
    """A function of exactly ``lines`` lines, its ``def`` included."""
    body = "".join(f"{indent}    x{i} = {i}\n" for i in range(lines - 1))
    return f"{indent}def {name}() -> None:\n{body}"


def test_the_checker_finds_a_long_module_and_long_functions_and_nothing_else(
    tmp_path: Path,
) -> None:
    _write(tmp_path, "pkg/ok.py", "x = 1\n" * MAX_MODULE_LINES)
    _write(tmp_path, "pkg/long.py", "x = 1\n" * (MAX_MODULE_LINES + 1))
    over = MAX_FUNCTION_LINES + 1
    functions = [
        _function("fits", MAX_FUNCTION_LINES),
        _function("too_long", over),
        "class Screen:\n" + _function("method", over, "    "),
        "def outer() -> None:\n" + _function("inner", over, "    "),
    ]
    _write(tmp_path, "pkg/sub/funcs.py", "".join(functions))
    found = {(o.path, o.what, o.lines) for o in oversized(tmp_path, ("pkg",))}
    assert found == {
        ("pkg/long.py", "module", MAX_MODULE_LINES + 1),
        ("pkg/sub/funcs.py", "too_long()", MAX_FUNCTION_LINES + 1),
        ("pkg/sub/funcs.py", "Screen.method()", MAX_FUNCTION_LINES + 1),
        ("pkg/sub/funcs.py", "outer()", MAX_FUNCTION_LINES + 2),
        ("pkg/sub/funcs.py", "outer.inner()", MAX_FUNCTION_LINES + 1),
    }
