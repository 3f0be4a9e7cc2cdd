"""Injected faults end a session with output zero, a latch on both sides, exit 3, a fault record."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from stimctl.cli import main
from stimctl.controller import Controller
from stimctl.host.status import HostState, Outcome
from stimctl.host.verification import verify

pytestmark = pytest.mark.timeout(60)

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "short-demo.toml"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _run_with_fault(tmp_path: Path, spec: str) -> tuple[int, Path, Path]:
    record, trace = tmp_path / "session.jsonl", tmp_path / "trace.jsonl"
    code = main([
        "run", str(DEMO), "--yes", "--speed", "max", "--record", str(record),
        "--sim", f"fault={spec}", "--sim", f"trace={trace}",
    ])  # fmt: skip
    return code, record, trace


def _assert_device_zero_and_latched(trace: Path, fault: str) -> None:
    events = _lines(trace)
    faults = [e for e in events if e["event"] == "fault"]
    assert faults and faults[0]["fault"] == fault
    outputs: dict[int, int] = {}
    for e in events:
        if e["event"] == "output":
            outputs[e["channel"]] = e["amplitude_ua"]
    assert outputs and all(ua == 0 for ua in outputs.values())
    states = [e["state"] for e in events if e["event"] == "state"]
    assert states[-1] == "FAULT"


def _assert_host_latched_and_recorded(record: Path, fault: str) -> None:
    assert verify(record).ok
    lines = _lines(record)
    assert any(e["kind"] == "fault" and e["data"]["code"] == fault for e in lines)
    assert any(e["kind"] == "state" and e["data"].get("to") == "FAULT" for e in lines)
    assert lines[-1]["kind"] == "end" and lines[-1]["data"]["exit_code"] == 3


@pytest.mark.parametrize(
    ("spec", "fault"),
    [
        ("electrode_open:1@5000", "ELECTRODE_OPEN"),
        ("overcurrent:2@5000", "OVERCURRENT"),
        ("underrun@5000", "UNDERRUN"),
        ("reset@5000", "DEVICE_RESET"),
    ],
)
def test_injected_device_fault_ends_the_run_with_exit_3(
    tmp_path: Path, spec: str, fault: str
) -> None:
    code, record, trace = _run_with_fault(tmp_path, spec)
    assert code == 3
    _assert_device_zero_and_latched(trace, fault)
    _assert_host_latched_and_recorded(record, fault)


def _running(tmp_path: Path, **sim: str) -> Controller:
    ctl = Controller.connect(
        None, speed=math.inf, record=tmp_path / "session.jsonl",
        sim_options={"trace": str(tmp_path / "trace.jsonl"), **sim},
    )  # fmt: skip
    ctl.load(DEMO)
    ctl.check_impedance()
    ctl.arm(confirm=True)
    ctl.start()
    assert ctl.wait_until(lambda status: status.elapsed_s >= 2.0, timeout=30)
    return ctl


def test_host_going_silent_latches_comms_loss_on_both_sides(tmp_path: Path) -> None:
    ctl = _running(tmp_path)
    ctl.link.mute = True  # test hook: the host stops heartbeats and blocks
    outcome = ctl.wait(timeout=30)
    ctl.close()
    assert (outcome, outcome.exit_code) == (Outcome.FAULT, 3)
    # FIFO (about 200 ms) and watchdog (200 ms) run out together: either cause zeroes output
    assert ctl.summary().faults[0].code in ("COMMS_LOSS", "UNDERRUN")
    _assert_device_zero_and_latched(tmp_path / "trace.jsonl", ctl.summary().faults[0].code)
    _assert_host_latched_and_recorded(tmp_path / "session.jsonl", ctl.summary().faults[0].code)


def test_link_dropping_every_byte_latches_link_lost_on_the_host(tmp_path: Path) -> None:
    ctl = _running(tmp_path)
    port = ctl.link.port
    with port.lock:
        port.device.link.drop = 1.0  # the wire goes dead in both directions
    outcome = ctl.wait(timeout=30)
    assert (outcome, ctl.state, ctl.fault.code) == (Outcome.FAULT, HostState.FAULT, "LINK_LOST")
    # FIFO (about 200 ms) and watchdog (200 ms) run out together: either cause zeroes output
    assert port.device.state.name == "FAULT"
    assert port.device.fault.name in ("UNDERRUN", "COMMS_LOSS")
    assert not any(port.device.status()["outputs"])
    ctl.close()
    _assert_host_latched_and_recorded(tmp_path / "session.jsonl", "LINK_LOST")
