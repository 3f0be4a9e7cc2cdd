"""One host per port: a second host is refused by name (the holder's PID) and touches nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from stimctl.controller import Controller
from stimctl.host.errors import PortInUse
from stimctl.host.ports import PortLock
from stimctl.host.simprocess import SimulatorProcess
from stimctl.host.status import Outcome

pytestmark = pytest.mark.timeout(90)

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "short-demo.toml"


@pytest.fixture(autouse=True)
def private_lock_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("STIMCTL_LOCK_DIR", str(tmp_path / "locks"))
    (tmp_path / "locks").mkdir()


def test_a_second_lock_on_a_port_names_the_holder_and_a_released_one_is_free(
    tmp_path: Path,
) -> None:
    port = tmp_path / "ttyFAKE0"
    port.write_text("")
    first = PortLock.acquire(str(port))
    assert first is not None
    with pytest.raises(PortInUse, match=rf"port .*ttyFAKE0 in use by PID {os.getpid()}"):
        PortLock.acquire(str(port))
    first.release()
    again = PortLock.acquire(str(port))
    assert again is not None
    again.release()


def test_urls_are_not_locked_here_their_server_owns_the_port() -> None:
    assert PortLock.acquire("socket://127.0.0.1:7777") is None


def test_a_second_host_is_refused_and_the_first_session_is_undisturbed(tmp_path: Path) -> None:
    short = tmp_path / "short.toml"
    short.write_text(DEMO.read_text().replace("duration_s = 60", "duration_s = 3")
                     .replace("ramp_up_s = 5", "ramp_up_s = 1")
                     .replace("ramp_down_s = 5", "ramp_down_s = 1"))  # fmt: skip
    with SimulatorProcess() as sim:
        with Controller.connect(sim.port) as first:
            first.load(short)
            first.check_impedance()
            first.arm(confirm=True)
            first.start()
            second = subprocess.run(
                [sys.executable, "-m", "stimctl", "run", str(short), "--yes", "--port", sim.port,
                 "--record", str(tmp_path / "second.jsonl")],
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert second.returncode == 3, second.stderr
            assert f"port {sim.port} in use by PID {os.getpid()}" in second.stderr
            assert not (tmp_path / "second.jsonl").exists()  # refused before any record
            assert first.wait(timeout=30) is Outcome.COMPLETED
            summary = first.summary()
            assert summary.underruns == 0
            expected = [c.expected_pulses for c in summary.channels]
            assert [c.pulses for c in summary.channels] == expected
        with Controller.connect(sim.port) as later:  # closing the first let the port go
            assert later.device.serial == first.device.serial
