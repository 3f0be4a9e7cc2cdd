"""The documentation matches the code: its Python examples run, its commands exist."""

from __future__ import annotations

import re
import runpy
import shutil
from pathlib import Path

import pytest

from stimctl.cli import SUBCOMMANDS

REPO = Path(__file__).resolve().parent.parent
PYTHON_BLOCK = re.compile(r"```python\n(.*?)```", re.S)


def _python_blocks(doc: str) -> list[str]:
    return PYTHON_BLOCK.findall((REPO / doc).read_text())


@pytest.mark.parametrize(
    ("doc", "index"),
    [("README.md", i) for i in range(len(_python_blocks("README.md")))] + [("docs/API.md", 0)],
)
def test_python_examples_in_the_docs_run(
    doc: str, index: int, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(REPO / "profiles", tmp_path / "profiles")
    (tmp_path / "records").mkdir()
    script = tmp_path / "example.py"
    script.write_text(_python_blocks(doc)[index])
    monkeypatch.chdir(tmp_path)
    runpy.run_path(str(script), run_name="__main__")


def test_every_subcommand_in_the_readme_table_exists() -> None:
    readme = (REPO / "README.md").read_text()
    named = set(re.findall(r"^\| `stimctl (\w+)", readme, re.M))
    assert named == {module.__name__.rsplit(".", 1)[1] for module in SUBCOMMANDS}


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    readme = (REPO / "README.md").read_text()
    commands = re.findall(r"```sh\n(.*?)\n```", readme, re.S)
    assert "pytest" in commands[1]
    assert commands[1] in (REPO / ".ci" / "run").read_text()


def _rule_rows(doc: str) -> dict[str, str]:
    return {
        m.group(1): m.group(2)
        for m in re.finditer(r"^\| `([a-z0-9-]+)` \| ([^|]+) \|", (REPO / doc).read_text(), re.M)
    }


@pytest.mark.parametrize(
    ("doc", "course"), [("docs/SAFETY.md", False), ("docs/COURSE.md", True)]
)  # profile rules in SAFETY.md, course rules (course-*) in COURSE.md
def test_every_rule_code_has_a_row_in_its_doc_with_its_severity(doc: str, course: bool) -> None:
    from stimctl.rules.envelope import RULES

    rules = {c: r for c, r in RULES.items() if c.startswith("course-") is course}
    rows = {c: r for c, r in _rule_rows(doc).items() if c.startswith("course-") is course}
    assert list(rows) == list(rules)  # same codes, in table order
    for code, rule in rules.items():
        assert rows[code].startswith(rule.severity), code
