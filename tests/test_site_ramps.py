"""ramp-rate-max at a needle: channels sharing an electrode site rise together, so the policy
applies to their summed current there (docs/SAFETY.md, "Per electrode site"), in validation,
in the default on-window edges and in ADJUST's clamp (RESUME's re-ramp stays within it)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from stimctl.controller import Controller
from stimctl.host.status import HostState, Outcome
from stimctl.rules.profile import Profile, parse_profile
from stimctl.rules.validation import validate_profile

pytestmark = pytest.mark.timeout(300)

CATHODES = ["LR3-L", "SP6-L", "GB34-L", "ST40-L"]


def shared(amplitude_ma: float, n: int, phase: dict[str, Any]) -> Profile:
    """``n`` channels with anode ST36-L at ``amplitude_ma`` each."""
    return parse_profile({
        "schema": "stimctl.profile/1", "name": "shared needle",
        "waveform": {"shape": "biphasic_symmetric"},
        "channels": [{"id": i + 1, "anode": "ST36-L", "cathode": CATHODES[i],
                      "amplitude_ma": amplitude_ma} for i in range(n)],
        "phases": [phase],
    })  # fmt: skip


def continuous(ramp_up_s: float, duration_s: float = 6) -> dict[str, Any]:
    return {"duration_s": duration_s, "mode": "continuous", "frequency_hz": 2,
            "pulse_width_us": 100, "ramp_up_s": ramp_up_s}  # fmt: skip


def test_a_ramp_is_judged_at_the_needle_where_channels_add_up() -> None:
    """Four channels at 2.5 mA on ST36-L over 1.25 s: each rises at 2 mA/s, the needle at
    8 mA/s (seen on the trace); it validated with no finding."""
    report = validate_profile(shared(2.5, 4, continuous(1.25)))
    found = [v for v in report.errors if v.code == "ramp-rate-max"]
    assert [v.loc for v in found] == ["phases[0].ramp_up_s"]
    assert "ST36-L" in found[0].message and found[0].actual == pytest.approx(8.0)
    assert validate_profile(shared(2.5, 4, continuous(5.0))).ok  # 10 mA over 5 s: 2 mA/s


def test_default_window_edges_take_the_needle_to_its_plateau_at_the_ramp_rate_max() -> None:
    phase = {"duration_s": 20, "mode": "intermittent", "frequency_hz": 10,
             "pulse_width_us": 200, "on_s": 5, "off_s": 5}  # fmt: skip
    profile = shared(1.0, 2, phase)
    assert profile.window_ramp_s(0, 2.0) == pytest.approx(1.0)  # 2 mA at ST36-L / 2 mA/s


def needle_trace(path: Path, channels: int) -> np.ndarray:
    """Summed amplitude (uA) of channels 1..n at 1 ms of device time, from the trace."""
    events = [json.loads(line) for line in path.read_text().splitlines()]
    end = max(e["device_ms"] for e in events) + 1
    total = np.zeros(end, dtype=np.int64)
    for ch in range(1, channels + 1):
        mine = [e for e in events if e["event"] == "output" and e["channel"] == ch]
        level = np.zeros(end, dtype=np.int64)
        for e, t1 in zip(mine, [e["device_ms"] for e in mine[1:]] + [end], strict=True):
            level[e["device_ms"] : t1] = e["amplitude_ua"]
        total += level
    return total


def worst_rise_over_100ms_ua(a: np.ndarray, rate_ua_per_ms: float = 2.0) -> float:
    b = a - rate_ua_per_ms * np.arange(a.size)
    return float(np.max(b[100:] - np.minimum.accumulate(b[:-100])))


def test_resume_and_adjust_raise_a_shared_needle_no_faster_than_the_ramp_rate_max(
    tmp_path: Path,
) -> None:
    """Four channels at 1 mA on ST36-L (4 mA at the needle, ramp 3 s). RESUME re-ramps each
    channel at the weakest's pace (1/3 mA/s, 4/3 mA/s at the needle). ADJUST clamped each
    channel on its own, so a step on each channel in turn raised the needle by 0.4 mA at
    once; the clamp now counts from the last change of any channel on the needle."""
    trace = tmp_path / "trace.jsonl"
    ctl = Controller.connect(None, speed=math.inf, sim_options={"trace": str(trace)})
    try:
        now = [1000.0]
        ctl.interlock.clock = lambda: now[0]
        ctl.load(shared(1.0, 4, continuous(3.0, duration_s=10)))
        ctl.check_impedance()
        ctl.arm(confirm=True, acknowledge_warnings=True)
        ctl.start()
        assert ctl.wait_until(lambda s: s.elapsed_s >= 4.0, 60)
        ctl.pause()
        ctl.resume()
        assert ctl.wait_until(lambda s: s.elapsed_s >= 6.0, 60)
        now[0] += 1.0
        steps = [ctl.adjust(ch, +0.1) for ch in (1, 2, 3, 4)]
        assert steps[0] == pytest.approx(1.1)
        assert steps[1:] == [1.0, 1.0, 1.0]  # the needle rose 0.1 mA just now
        assert ctl.state is HostState.RUNNING
        assert ctl.wait(timeout=120) is Outcome.COMPLETED
    finally:
        ctl.close()
    assert worst_rise_over_100ms_ua(needle_trace(trace, 4)) <= 100  # + one ADJUST step
