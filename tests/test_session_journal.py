"""One owner, one call: the Session alone changes a session's state, and every happening the
event subscribers hear of has its line in the record (issue 9, item 3)."""

from __future__ import annotations

import ast
import json
import math
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from stimctl.controller import Controller
from stimctl.host.journal import Journal
from stimctl.host.recorder import Recorder
from stimctl.host.status import Event, HostState, Outcome
from stimctl.host.subscribers import Subscribers

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "short-demo.toml"
SESSION_STATE = ("faults", "estop_pending", "estop_repeats", "outcome", "pulses", "charge_uc",
                 "elapsed_ms", "plateau_ma", "gain", "device_state", "naks", "profile")  # fmt: skip


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(x) for x in path.read_text().splitlines()]


@pytest.fixture
def journal(tmp_path: Path) -> Iterator[tuple[Journal, list[Event], Path]]:
    recorder = Recorder()
    path = tmp_path / "r.jsonl"
    recorder.open(path)  # tagged under the (test session's) site key
    events: list[Event] = []
    subscribers = Subscribers(threading.RLock())
    subscribers.subscribe("event", events.append)
    yield Journal(recorder, subscribers), events, path
    recorder.close(None, {})


def test_a_happening_is_one_record_line_and_one_event(journal) -> None:
    j, events, path = journal
    j.happened("fault", {"code": "X", "first": True}, "X: broke", {"code": "X"})
    (line,) = [e for e in _lines(path) if e["kind"] == "fault"]
    assert line["data"] == {"code": "X", "first": True}
    assert [(e.kind, e.message, e.data) for e in events] == [("fault", "X: broke", {"code": "X"})]


def test_write_keeps_a_line_no_one_is_told_of_and_announce_an_event_the_record_does_not(
    journal,
) -> None:
    j, events, path = journal
    j.write("impedance", {"1": {"ohm": 1000}})
    j.announce("state", "stimulation started")
    assert [e["kind"] for e in _lines(path)] == ["impedance"]
    assert [(e.kind, e.message, e.data) for e in events] == [("state", "stimulation started", {})]


def test_every_event_of_a_session_has_its_record_line(tmp_path: Path) -> None:
    """Commands, device state changes, faults, the acknowledgement and a note: each event the
    subscribers saw is matched by the record line written with it."""
    record = tmp_path / "s.jsonl"
    events: list[Event] = []
    with Controller.connect(None, speed=math.inf, record=record) as ctl:
        ctl.on_event(events.append)
        heard_from = len(_lines(record))  # the lines before anyone listened
        ctl.load(DEMO)
        ctl.check_impedance()
        ctl.arm(confirm=True)
        ctl.start()
        assert ctl.wait_until(lambda s: s.elapsed_s >= 1.0, 20)
        ctl.note("patient reports tingling")
        ctl.estop()
        assert ctl.wait(20) is Outcome.ESTOP
        ctl.acknowledge_fault()
        assert ctl.state is HostState.IDLE
    lines = _lines(record)[heard_from:]
    faults = [e["data"] for e in lines if e["kind"] == "fault"]
    heard = sorted(json.dumps(e.data, sort_keys=True) for e in events if e.kind == "fault")
    written = [{k: v for k, v in f.items() if k not in ("first", "detail")} for f in faults]
    assert heard == sorted(json.dumps(f, sort_keys=True) for f in written)  # two threads: any order
    commands = [e["data"] for e in lines if e["kind"] == "command"]
    answered = [
        c["name"] for c in commands if c["result"] in ("ack", "nak") and c["name"] != "BLOCK"
    ]
    assert sorted(e.data["name"] for e in events if e.kind == "command") == sorted(answered)
    moves = [e["data"]["device_to"] for e in lines if "device_to" in e["data"]]
    assert [e.data["device"] for e in events if "device" in e.data] == moves
    assert [e.message for e in events if e.kind == "note"] == [
        e["data"]["text"] for e in lines if e["kind"] == "note"
    ]
    acknowledged = [e for e in lines if e["data"].get("from") == "latched"]
    assert len(acknowledged) == 1 and acknowledged[0]["data"]["acknowledged"]["code"] == "ESTOP"
    assert sum(e.message.startswith("fault acknowledged") for e in events) == 1


def _writes_to_session_state(tree: ast.AST) -> list[int]:
    """Lines that assign to (or append to) a session's state field through ``*session.<field>``."""
    found = []
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("append", "clear", "update", "pop", "extend")
        ):
            targets = [node.func.value]
        while any(isinstance(t, ast.Tuple) for t in targets):  # a, b = ...: each of them
            targets = [e for t in targets for e in (t.elts if isinstance(t, ast.Tuple) else [t])]
        for target in targets:
            while isinstance(target, ast.Subscript):  # session.pulses[ch] = ...
                target = target.value
            if (
                isinstance(target, ast.Attribute)
                and target.attr in SESSION_STATE
                and ast.unparse(target.value).endswith("session")
            ):
                found.append(node.lineno)
    return sorted(found)


def test_only_the_session_changes_its_state() -> None:
    offenders = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted((ROOT / "stimctl").rglob("*.py"))
        if path.name != "session.py"
        for line in _writes_to_session_state(ast.parse(path.read_text()))
    ]
    assert offenders == []


def test_the_checker_finds_a_write_to_a_session_field() -> None:
    source = ("self._session.estop_pending = True\nctl.session.faults.append(f)\n"
              "x, session.gain[1] = 1, 2\nsession.naks += 1\nsession.naks == 1\n")  # fmt: skip
    assert _writes_to_session_state(ast.parse(source)) == [1, 2, 3, 4]
