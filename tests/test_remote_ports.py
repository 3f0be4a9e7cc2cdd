"""Remote benches: the simulator served on 127.0.0.1 behind pyserial's RFC 2217 PortManager
(``rfc2217://``) and a plain TCP bridge (``socket://``); a session and the HIL conformance
subset run through each. The whole conformance suite through each: STIMCTL_SLOW=1."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hil.netbridge import SerialBridge
from stimctl.controller import Controller
from stimctl.host.simprocess import SimulatorProcess
from stimctl.host.status import Outcome

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "short-demo.toml"
#: The subset in the default suite: the handshake, and e-stop from every state (each test opens
#: the port anew; an rfc2217:// open negotiates for about 0.4 s). The whole suite: slow.
SUBSET = [
    "hil/test_conformance_handshake.py::test_hello_is_answered_with_device_info",
    "hil/test_conformance_estop.py::test_estop_latches_estop_from_any_state",
    "hil/test_conformance_estop.py::test_commands_after_estop_are_refused_as_fault_latched",
]


@pytest.fixture(params=["socket", "rfc2217"])
def remote(request: pytest.FixtureRequest) -> Iterator[str]:
    """The URL of a simulator (own process, pty, real time) served on TCP at 127.0.0.1."""
    with SimulatorProcess() as sim, SerialBridge(sim.port, rfc2217=request.param == "rfc2217") as b:
        assert b.url.startswith(f"{request.param}://127.0.0.1:")
        yield b.url


def test_a_session_through_a_remote_port_completes_with_exact_pulse_counts(
    remote: str, tmp_path: Path
) -> None:
    short = tmp_path / "short.toml"
    short.write_text(DEMO.read_text().replace("duration_s = 60", "duration_s = 2")
                     .replace("ramp_up_s = 5", "ramp_up_s = 0.5")
                     .replace("ramp_down_s = 5", "ramp_down_s = 0.5"))  # fmt: skip
    with Controller.connect(remote, record=tmp_path / "r.jsonl") as ctl:
        assert ctl.url == remote and not ctl.is_simulator  # to the host it is just a port
        ctl.load(short)
        ctl.check_impedance()
        ctl.arm(confirm=True)
        ctl.start()
        assert ctl.wait(timeout=60) is Outcome.COMPLETED
        summary = ctl.summary()
    assert summary.underruns == 0
    assert [c.pulses for c in summary.channels] == [c.expected_pulses for c in summary.channels]


def _conformance(url: str, files: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", *files, "--stim-port", url, "-q", "-p", "no:cacheprovider",
         "-W", "ignore::DeprecationWarning", "--stim-json", str(tmp_path / "hil.json")],
        cwd=ROOT, capture_output=True, text=True, timeout=280,
    )  # fmt: skip


def test_the_hil_conformance_subset_passes_through_a_remote_port(
    remote: str, tmp_path: Path
) -> None:
    result = _conformance(remote, SUBSET, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and " failed" not in result.stdout


@pytest.mark.slow
def test_the_whole_hil_conformance_suite_passes_through_a_remote_port(
    remote: str, tmp_path: Path
) -> None:
    result = _conformance(remote, sorted(str(p.relative_to(ROOT))
                                         for p in (ROOT / "hil").glob("test_conformance_*.py")),
                          tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
