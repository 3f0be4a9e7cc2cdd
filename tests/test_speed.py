"""`--speed N`: the virtual lock-step clock paced at N x wall time, coherent at every N."""

from __future__ import annotations

import math
import time
from pathlib import Path

import pytest
import serial

import firmware_sim  # noqa: F401  (registers stimsim://)
from stimctl.cli import main
from stimctl.controller import MAX_SIM_SPEED, Controller
from stimctl.host.connection import simulator_url
from stimctl.host.record import summarise
from stimctl.host.schedule import compile_schedule
from stimctl.rules.profile import load_profile

pytestmark = pytest.mark.timeout(120)

DEMO = Path(__file__).resolve().parent.parent / "profiles" / "short-demo.toml"


@pytest.fixture(scope="module")
def short_profile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """short-demo cut to 3 s (1 s ramps): 1.5 s of wall time at --speed 2."""
    path = tmp_path_factory.mktemp("speed") / "short3.toml"
    path.write_text(DEMO.read_text().replace("duration_s = 60", "duration_s = 3")
                    .replace("ramp_up_s = 5", "ramp_up_s = 1")
                    .replace("ramp_down_s = 5", "ramp_down_s = 1"))  # fmt: skip
    return path


@pytest.mark.parametrize("speed", ["2", "20", "50", "300", "1000"])
def test_a_short_profile_completes_with_exact_pulse_counts_at_speed(
    speed: str, short_profile: Path, tmp_path: Path
) -> None:
    record = tmp_path / "r.jsonl"
    code = main(["run", str(short_profile), "--yes", "--speed", speed, "--record", str(record)])
    summary = summarise(record)
    expected = compile_schedule(load_profile(short_profile)).expected_pulses().tolist()
    assert (code, summary.outcome) == (0, "COMPLETED")
    assert [c.pulses for c in summary.channels] == expected and min(expected) > 0


@pytest.mark.parametrize("bad", ["0", "-3", "nan", "1e9", "1001", "fast", "-inf"])
def test_a_bad_speed_is_a_usage_error_naming_the_range(
    bad: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["run", str(DEMO), "--yes", f"--speed={bad}", "--record", str(tmp_path / "r")]) == 2
    assert f"<= {MAX_SIM_SPEED:g}" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_the_tui_refuses_a_bad_speed_the_same_way(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tui", "--speed", "nan"]) == 2
    assert f"<= {MAX_SIM_SPEED:g}" in capsys.readouterr().out


def test_scaled_speed_runs_the_simulator_in_lock_step_in_this_process() -> None:
    with Controller.connect(None, speed=20) as ctl:
        assert ctl.connection.sim_process is None and ctl.speed == 20
        port = ctl.link.port if ctl.link is not None else None
        assert port is not None and port.lockstep and port.device.clock.pace == 20


def test_paced_device_time_runs_at_most_n_times_wall_time() -> None:
    port = serial.serial_for_url(simulator_url(50, {"lockstep": "0"}), timeout=0.2)
    try:
        t0 = time.monotonic()
        for _ in range(5):
            port.read(1 << 16)  # no session: nothing to say, so each read runs its full timeout
        wall = time.monotonic() - t0
        assert 0 < port.device.time_ms <= 50 * wall * 1000 + 50
    finally:
        port.close()


def test_speed_infinity_stays_unpaced() -> None:
    url = simulator_url(math.inf)
    assert "speed" not in url and "lockstep=1" in url
