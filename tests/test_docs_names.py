"""The docs name only what exists: every source path (``stimctl/tui/loading.py``, a package
folder) and every dotted name (``stimctl.tui.messages.TelemetrySlot``) in README.md and docs/*.md
is a file, a folder, a module or an attribute of one. A module moved or renamed fails this until
the docs follow it."""

from __future__ import annotations

import importlib
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
#: A repository path (a .py file or a folder), not part of a longer one ($XDG_DATA_HOME/stimctl/).
PATH = re.compile(r"(?<![\w/$~.-])((?:stimctl|firmware_sim|tests|hil)/[\w/]*(?:\.py\b|/))")
#: A dotted name; a format name (stimctl.profile/1, stimctl.patient-export/1) is not one.
DOTTED = re.compile(r"(?<![\w/$~.-])((?:stimctl|firmware_sim)(?:\.[A-Za-z_]\w*)+)(?![\w/-])")


def _named(pattern: re.Pattern[str]) -> list[tuple[str, str]]:
    return sorted(
        {(doc.name, m.group(1)) for doc in DOCS for m in pattern.finditer(doc.read_text())}
    )


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


@pytest.mark.parametrize(("doc", "path"), _named(PATH))
def test_every_source_path_in_the_docs_exists(doc: str, path: str) -> None:
    assert (ROOT / path).exists(), f"{doc} names {path}, which does not exist"


@pytest.mark.parametrize(("doc", "name"), _named(DOTTED))
def test_every_dotted_name_in_the_docs_can_be_imported(doc: str, name: str) -> None:
    assert _resolves(name), f"{doc} names {name}, which is neither a module nor in one"


def test_the_patterns_catch_a_moved_module_and_skip_user_paths_and_format_names() -> None:
    text = (
        "see `stimctl/acupoints.py` and stimctl.host.nowhere, not ~/.local/share/stimctl/x.py,"
        " $XDG_STATE_HOME/stimctl/rescue/ or `stimctl.profile/1`"
    )
    assert [m.group(1) for m in PATH.finditer(text)] == ["stimctl/acupoints.py"]
    assert [m.group(1) for m in DOTTED.finditer(text)] == ["stimctl.host.nowhere"]
    assert not (ROOT / "stimctl/acupoints.py").exists()
    assert not _resolves("stimctl.host.nowhere")
    assert _resolves("stimctl.tui.messages.TelemetrySlot")
