"""The layers hold: tests/layers.py checks the project and small synthetic trees."""

from __future__ import annotations

from pathlib import Path

import layers
import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    base = {
        "stimctl/__init__.py": "",
        "stimctl/controller.py": "from stimctl.host.link import Link\n",
        "stimctl/protocol/__init__.py": "",
        "stimctl/protocol/framing.py": "import struct\n",
        "stimctl/rules/__init__.py": "",
        "stimctl/rules/profile.py": "import tomllib\nfrom stimctl.protocol import framing\n",
        "stimctl/host/__init__.py": "",
        "stimctl/host/link.py": "import serial\nfrom stimctl.rules.profile import x\n",
        "stimctl/host/simprocess.py": "import firmware_sim\n",
        "stimctl/clinic/__init__.py": "",
        "stimctl/clinic/db.py": "import sqlalchemy\nfrom stimctl.host import link\n",
        "stimctl/cli/__init__.py": "from stimctl.controller import Controller\n",
        "stimctl/cli/sim.py": "from firmware_sim import serve\n",
        "stimctl/tui/__init__.py": "",
        "stimctl/tui/app.py": "from stimctl.rules.profile import Profile\n",
        "firmware_sim/__init__.py": "from stimctl.protocol.framing import x\n",
    }
    base.update(files)
    for name, text in base.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_a_clean_synthetic_tree_passes(tmp_path: Path) -> None:
    assert layers.check(_tree(tmp_path, {})) == []


@pytest.mark.parametrize(
    ("path", "text", "expected"),
    [
        (
            "stimctl/protocol/messages.py",
            "from stimctl.rules import profile\n",
            "stimctl.protocol must not import stimctl.rules",
        ),
        (
            "stimctl/rules/safety.py",
            "import threading\n",
            "rules must do no I/O, but imports threading",
        ),
        (
            "stimctl/rules/safety.py",
            "from serial import Serial\n",
            "rules must do no I/O, but imports serial",
        ),
        (
            "stimctl/rules/safety.py",
            "from stimctl.host.link import Link\n",
            "stimctl.rules must not import stimctl.host.link",
        ),
        (
            "stimctl/rules/safety.py",
            "from stimctl.tui import app\n",
            "stimctl.rules must not import stimctl.tui.app",
        ),
        (
            "stimctl/host/session.py",
            "from stimctl.cli import main\n",
            "stimctl.host must not import stimctl.cli",
        ),
        (
            "stimctl/host/session.py",
            "import firmware_sim.device\n",
            "firmware_sim is imported by more than one host module",
        ),
        (
            "stimctl/controller.py",
            "from stimctl.tui.app import StimApp\n",
            "stimctl.controller must not import stimctl.tui.app",
        ),
        (
            "stimctl/cli/run.py",
            "from stimctl.host.link import Link\n",
            "stimctl.cli must not import stimctl.host.link",
        ),
        (
            "stimctl/tui/run.py",
            "from stimctl.protocol import framing\n",
            "stimctl.tui must not import stimctl.protocol.framing",
        ),
        (
            "stimctl/tui/run.py",
            "from stimctl.host import ports\n",
            "stimctl.tui must not import stimctl.host",
        ),
        (
            "stimctl/clinic/course.py",
            "from stimctl.tui import app\n",
            "stimctl.clinic must not import stimctl.tui.app",
        ),
        (
            "firmware_sim/device.py",
            "from stimctl.rules.profile import Profile\n",
            "firmware_sim must not import stimctl.rules.profile",
        ),
        (
            "firmware_sim/device.py",
            "from stimctl.host.link import Link\n",
            "firmware_sim must not import stimctl.host.link",
        ),
    ],
)
def test_a_forbidden_import_is_named(tmp_path: Path, path: str, text: str, expected: str) -> None:
    problems = layers.check(_tree(tmp_path, {path: text}))
    assert any(expected in problem for problem in problems), problems


def test_a_type_only_cycle_is_a_cycle(tmp_path: Path) -> None:
    tree = _tree(
        tmp_path,
        {
            "firmware_sim/device.py": "from firmware_sim import commands\n",
            "firmware_sim/commands.py": (
                "from typing import TYPE_CHECKING\n"
                "if TYPE_CHECKING:\n"
                "    from firmware_sim.device import Device\n"
            ),
        },
    )
    assert layers.check(tree) == ["import cycle: firmware_sim.commands -> firmware_sim.device"]


def test_relative_imports_are_resolved(tmp_path: Path) -> None:
    tree = _tree(tmp_path, {"stimctl/rules/safety.py": "from ..host import link\n"})
    assert any("stimctl.rules must not import stimctl.host.link" in p for p in layers.check(tree))


def test_a_named_exception_is_allowed_only_where_named(tmp_path: Path) -> None:
    allowed = _tree(tmp_path / "a", {"stimctl/cli/sim.py": "import firmware_sim\n"})
    assert layers.check(allowed) == []
    refused = _tree(tmp_path / "b", {"stimctl/cli/run.py": "import firmware_sim\n"})
    assert layers.check(refused) == [
        "stimctl/cli/run.py:1: stimctl.cli must not import firmware_sim"
    ]


def test_the_project_keeps_its_layers() -> None:
    assert layers.check(ROOT) == []
