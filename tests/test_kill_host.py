"""A host killed with SIGKILL mid-session: the device (own process, pty) zeroes output itself."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from stimctl.host.simprocess import SimulatorProcess

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parent.parent
DEMO = ROOT / "profiles" / "short-demo.toml"
TICK_MS = 1  # firmware_sim default tick_hz 1000


def _events(trace: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]


def _kill_host_mid_session(tmp_path: Path, sim_args: list[str]) -> list[dict[str, Any]]:
    trace = tmp_path / "trace.jsonl"
    sim = SimulatorProcess(["--trace", str(trace), *sim_args])
    port = sim.port
    host = subprocess.Popen(
        [sys.executable, "-m", "stimctl", "run", str(DEMO), "--yes", "--port", port,
         "--record", str(tmp_path / "r.jsonl")],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=tmp_path,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not any(e["event"] == "output" and e["amplitude_ua"] > 0 for e in _events(trace)):
            assert time.monotonic() < deadline and host.poll() is None, "no output"
            time.sleep(0.05)
        time.sleep(0.5)  # well inside the session: streaming, output on
        host.send_signal(signal.SIGKILL)
        host.wait(timeout=5)
        while not any(e["event"] == "fault" for e in _events(trace)):
            assert time.monotonic() < deadline + 10, "the device never faulted"
            time.sleep(0.05)
        time.sleep(0.1)
    finally:
        host.kill()
        sim.stop()
    return _events(trace)


def _zero_after_last_frame(events: list[dict[str, Any]]) -> tuple[str, int, int]:
    """(fault, device ms from the last frame received to the fault, ms from fault to zero)."""
    i = next(k for k, e in enumerate(events) if e["event"] == "fault")
    fault = events[i]
    last_rx = max(e["device_ms"] for e in events[:i] if e["event"] == "rx")
    outputs: dict[int, dict[str, Any]] = {}
    for e in events:
        if e["event"] == "output":
            outputs[e["channel"]] = e
    assert all(e["amplitude_ua"] == 0 for e in outputs.values())
    zero_ms = max(e["device_ms"] for e in outputs.values())
    return fault["fault"], fault["device_ms"] - last_rx, zero_ms - fault["device_ms"]


def test_killed_host_trips_the_device_watchdog_within_watchdog_plus_one_tick(
    tmp_path: Path,
) -> None:
    # watchdog 100 ms: shorter than the host's 200 ms FIFO lookahead, so the watchdog (not the
    # FIFO running dry) is what stops the output
    fault, silent_ms, zero_delay_ms = _zero_after_last_frame(
        _kill_host_mid_session(tmp_path, ["--watchdog-ms", "100"])
    )
    assert fault == "COMMS_LOSS"
    assert silent_ms <= 100 + TICK_MS
    assert zero_delay_ms == 0


def test_killed_host_with_default_watchdog_stops_output_within_the_lookahead(
    tmp_path: Path,
) -> None:
    # default watchdog 200 ms: FIFO (about 200 ms) or watchdog, whichever runs out first
    fault, silent_ms, zero_delay_ms = _zero_after_last_frame(_kill_host_mid_session(tmp_path, []))
    assert fault in ("UNDERRUN", "COMMS_LOSS")
    assert silent_ms <= 200 + TICK_MS
    assert zero_delay_ms == 0
