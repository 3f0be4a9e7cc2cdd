"""Lock-step hand-over: a host reacting to a telemetry frame acts at that frame's device time.

On the lock-step simulator device time runs only while a host thread waits for it. The reader
thread that hands a frame to a waiting host thread must also hold device time until that thread
has looked at it: otherwise device time runs on while the woken thread waits for the CPU (the
interpreter's 5 ms switch interval is seconds of device time), and a PAUSE "at" a point of a
ramp lands far later.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from firmware_sim import DeviceConfig
from stimctl.controller import Controller
from stimctl.host.status import Status
from stimctl.rules.profile import parse_profile

pytestmark = pytest.mark.timeout(120)

PERIOD_MS = 1000 // DeviceConfig().telemetry_hz  # one telemetry period of device time
SLOW_LOOK_S = 0.005  # a host that takes 5 ms of wall time to look at each frame


def _profile() -> object:
    return parse_profile({
        "schema": "stimctl.profile/1", "name": "lock-step hand-over",
        "waveform": {"shape": "biphasic_symmetric"},
        "channels": [{"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 1.0}],
        "phases": [{"duration_s": 60, "mode": "continuous", "frequency_hz": 10,
                    "pulse_width_us": 200, "ramp_up_s": 5}],
    })  # fmt: skip


def test_a_slow_host_pauses_within_one_telemetry_period_of_the_frame_it_reacted_to(
    tmp_path: Path,
) -> None:
    trace = tmp_path / "trace.jsonl"
    ctl = Controller.connect(None, speed=math.inf, sim_options={"trace": str(trace)})
    try:
        ctl.load(_profile())  # type: ignore[arg-type]
        ctl.check_impedance()
        ctl.arm(confirm=True, acknowledge_warnings=True)
        ctl.start()
        for target_s in (0.5, 1.0, 2.5, 4.0):
            looked: list[Status] = []

            def due(s: Status, target_s: float = target_s, looked: list[Status] = looked) -> bool:
                looked.append(s)
                time.sleep(SLOW_LOOK_S)  # device time must stand still meanwhile
                return s.elapsed_s >= target_s

            assert ctl.wait_until(due, 60)
            ctl.pause()
            frame = looked[-1]
            pauses = [
                e for e in map(json.loads, trace.read_text().splitlines())
                if e["event"] == "rx" and e["type"] == "Pause"
            ]  # fmt: skip
            # the host saw every frame: the first one past the target satisfied it
            assert frame.elapsed_s - target_s < PERIOD_MS / 1000
            # and its PAUSE landed within one telemetry period of that frame
            assert 0 <= pauses[-1]["device_ms"] - frame.device_time_ms <= PERIOD_MS
            ctl.resume()
    finally:
        ctl.close()
