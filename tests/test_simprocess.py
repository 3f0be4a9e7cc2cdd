"""The embedded simulator in real time runs in its own process, and goes away with the host."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from stimctl.controller import Controller
from stimctl.host.errors import StimctlError
from stimctl.host.simprocess import SimulatorProcess, sim_args
from stimctl.host.status import Outcome

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "short-demo.toml"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_simulator_options_become_its_command_line_flags() -> None:
    assert sim_args(4.0, {"channels": "8", "watchdog_ms": "100"}) == [
        "--speed", "4", "--channels", "8", "--watchdog-ms", "100",
    ]  # fmt: skip
    assert sim_args(None, {"channels": "8"}) == ["--channels", "8"]


def test_an_unknown_simulator_option_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="unknown simulator option 'chanels'"):
        sim_args(None, {"chanels": "8"})


def test_a_simulator_that_cannot_start_says_why() -> None:
    with pytest.raises(StimctlError, match=r"did not start.*channels"):
        SimulatorProcess(["--channels", "99"])


def test_real_time_embedded_simulator_is_its_own_process_and_ends_with_the_host(
    tmp_path: Path,
) -> None:
    # A 4 s session in real time (scaled speeds run on the virtual clock in this process).
    short = tmp_path / "short.toml"
    short.write_text(DEMO.read_text().replace("duration_s = 60", "duration_s = 4")
                     .replace("ramp_up_s = 5", "ramp_up_s = 1")
                     .replace("ramp_down_s = 5", "ramp_down_s = 1"))  # fmt: skip
    with Controller.connect(None, record=tmp_path / "s.jsonl") as ctl:
        sim = ctl.connection.sim_process
        assert sim is not None and sim.pid != os.getpid() and _alive(sim.pid)
        assert ctl.url == sim.port and ctl.is_simulator
        ctl.load(short)
        assert ctl.profile is not None and ctl.profile.duration_s == 4
        ctl.check_impedance()
        ctl.arm(confirm=True)
        ctl.start()
        assert ctl.wait(timeout=60) is Outcome.COMPLETED
        assert [c.pulses for c in ctl.summary().channels] == [
            c.expected_pulses for c in ctl.summary().channels
        ]
    assert sim.proc.returncode == 0 and not _alive(sim.pid)
