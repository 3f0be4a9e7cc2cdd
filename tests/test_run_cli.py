"""`stimctl run` and `stimctl ports`: end to end on the embedded simulator, refusals, signals."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stimctl.cli import main
from stimctl.host.record import summarise
from stimctl.host.schedule import compile_schedule
from stimctl.host.simprocess import SimulatorProcess
from stimctl.host.verification import verify
from stimctl.rules.profile import load_profile

pytestmark = pytest.mark.timeout(90)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "short-demo.toml"
SEED = ROOT / "profiles" / "seed-st36-lr3.toml"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _commands(path: Path) -> list[str]:
    return [e["data"]["name"] for e in _lines(path) if e["kind"] == "command"]


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, Path]:
    """One 30-minute seed session on the virtual clock (about 20 s), shared by two tests."""
    record = tmp_path_factory.mktemp("seed") / "seed.jsonl"
    return main(["run", str(SEED), "--yes", "--speed", "max", "--record", str(record)]), record


def test_seed_profile_completes_with_exit_0_and_a_valid_record(seed_run: tuple[int, Path]) -> None:
    code, record = seed_run
    summary = summarise(record)
    assert code == 0 and verify(record).ok
    assert (summary.outcome, summary.exit_code, summary.delivered_s) == ("COMPLETED", 0, 1800.0)


def test_seed_profile_delivers_the_pulse_count_the_profile_implies(
    seed_run: tuple[int, Path],
) -> None:
    # 2 Hz x 1800 s = 3600 accumulator wraps; the last falls at t = 1800 s, at the end of the
    # ramp-down where the amplitude is 0, and a 0 uA pulse is not delivered (docs/PROTOCOL.md).
    _, record = seed_run
    expected = compile_schedule(load_profile(SEED)).expected_pulses().tolist()
    assert expected == [3599]
    assert [c.pulses for c in summarise(record).channels] == expected


def test_short_demo_completes_on_the_simulator_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    record = tmp_path / "demo.jsonl"
    code = main(["run", str(DEMO), "--yes", "--speed", "max", "--record", str(record)])
    err = capsys.readouterr().err
    summary = summarise(record)
    assert code == 0 and "SIMULATOR" in err
    assert verify(record).ok and summary.outcome == "COMPLETED" and summary.exit_code == 0
    assert len(summary.channels) == 2 and all(c.pulses for c in summary.channels)


def test_default_record_goes_to_records_folder_named_by_utc_time_and_profile(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(DEMO), "--yes", "--speed", "max"]) == 0
    (record,) = (tmp_path / "records").glob("*-short-demo.jsonl")
    assert record.name[:8].isdigit() and record.name[8] == "T"


def test_existing_record_is_never_overwritten(tmp_path: Path) -> None:
    record = tmp_path / "taken.jsonl"
    record.write_text("keep\n")
    assert main(["run", str(DEMO), "--yes", "--speed", "max", "--record", str(record)]) == 2
    assert record.read_text() == "keep\n"


def test_speed_with_a_port_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(DEMO), "--port", "/dev/null", "--speed", "max"]) == 2
    assert "simulator only" in capsys.readouterr().err


def test_bad_speed_is_a_usage_error() -> None:
    assert main(["run", str(DEMO), "--speed", "fast"]) == 2


def test_missing_profile_is_a_usage_error(tmp_path: Path) -> None:
    assert main(["run", str(tmp_path / "nope.toml"), "--yes"]) == 2


def test_unknown_patient_flag_is_a_usage_error() -> None:
    assert main(["run", str(DEMO), "--yes", "--patient", "astronaut"]) == 2


def test_profile_over_the_envelope_is_refused_naming_field_and_limit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "too-strong.toml"
    bad.write_text(DEMO.read_text().replace("amplitude_ma = 0.5", "amplitude_ma = 15", 1))
    record = tmp_path / "r.jsonl"
    code = main(["run", str(bad), "--yes", "--speed", "max", "--record", str(record)])
    err = capsys.readouterr().err
    assert code == 1 and "Traceback" not in err
    assert "amplitude-max at channels[0].amplitude_ma: actual 15 vs limit 10" in err
    assert "ARM" not in _commands(record)
    summary = summarise(record)  # the refusal is recorded: which profile, which errors
    assert summary.profile_name is not None and summary.profile_sha256 is not None
    assert "amplitude-max at channels[0].amplitude_ma" in summary.refused
    assert verify(record).ok


def test_without_yes_and_without_a_terminal_the_run_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", open(os.devnull))  # noqa: SIM115
    record = tmp_path / "r.jsonl"
    assert main(["run", str(DEMO), "--speed", "max", "--record", str(record)]) == 1
    assert "--yes" in capsys.readouterr().err
    assert not {"IMPEDANCE_CHECK", "ARM", "START"} & set(_commands(record))


def test_failed_impedance_check_refuses_to_arm(tmp_path: Path) -> None:
    record = tmp_path / "r.jsonl"
    code = main(["run", str(DEMO), "--yes", "--speed", "max", "--record", str(record),
                 "--sim", "impedance=150000"])  # fmt: skip
    assert code == 1 and "ARM" not in _commands(record)


def _wait_for(path: Path, text: str, proc: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text():
            return
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_stops_at_once_closes_the_record_and_exits_4(tmp_path: Path, sig: int) -> None:
    record = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stimctl", "run", str(DEMO), "--yes", "--record", str(record)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    _wait_for(record, '"device_to":"RUNNING"', proc)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=20)
    stops = [e["data"] for e in _lines(record) if e["kind"] == "command"
             and e["data"]["name"] == "STOP"]  # fmt: skip
    assert proc.returncode == 4 and "Traceback" not in err
    assert stops and stops[0]["ramp_ms"] == 0
    assert verify(record).ok and summarise(record).outcome == "ABORTED"


def test_vanished_port_is_a_clean_fault_with_exit_3(tmp_path: Path) -> None:
    sim = SimulatorProcess()
    port = sim.port
    record = tmp_path / "r.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "stimctl", "run", str(DEMO), "--yes", "--port", port,
         "--record", str(record)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
    )  # fmt: skip
    try:
        _wait_for(record, '"device_to":"RUNNING"', proc)
        sim.proc.kill()  # the port vanishes (like an unplugged USB adapter)
        sim.proc.wait(timeout=5)
        _, err = proc.communicate(timeout=20)
    finally:
        sim.stop()
        proc.kill()
    assert proc.returncode == 3 and "Traceback" not in err
    assert "LINK_LOST" in err
    assert verify(record).ok and summarise(record).faults[0]["code"] == "LINK_LOST"


def test_ports_lists_serial_ports(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ports", "--json"]) == 0
    assert isinstance(json.loads(capsys.readouterr().out), list)


def test_unknown_usb_serial_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", str(DEMO), "--yes", "--port", "usb:NO-SUCH-SERIAL"]) == 3
    err = capsys.readouterr().err
    assert "no serial port with USB serial number 'NO-SUCH-SERIAL'" in err
    assert "Traceback" not in err
