"""ADJUST judges a channel's new plateau with every other channel at its live plateau (as
adjusted), not at its prescription: channels sharing a needle add up at their live gains."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stimctl.controller import Controller
from stimctl.host.errors import InterlockError
from stimctl.host.status import HostState, Outcome
from stimctl.rules.profile import parse_profile

pytestmark = pytest.mark.timeout(300)


def shared_needle() -> dict:
    """Two channels through ST36-L at 4.9 mA each: 9.8 mA at the needle (limit 10)."""
    return {
        "schema": "stimctl.profile/1", "name": "shared needle",
        "waveform": {"shape": "biphasic_symmetric"},
        "channels": [
            {"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 4.9},
            {"id": 2, "anode": "ST36-L", "cathode": "SP6-L", "amplitude_ma": 4.9},
        ],
        "phases": [{"duration_s": 10, "mode": "continuous", "frequency_hz": 10,
                    "pulse_width_us": 200, "ramp_up_s": 6}],
    }  # fmt: skip


def test_adjust_refuses_a_step_that_takes_a_shared_needle_over_the_limit_at_live_gains(
    tmp_path: Path,
) -> None:
    """+0.1 mA on each channel in turn: 5.0 + 5.0 is allowed, 5.1 + 5.0 is not (10.1 mA at
    ST36-L). The old check held the other channel at its prescribed 4.9 mA, accepted 5.1 + 5.1
    (10.2 mA) and the host guard then e-stopped the session at the next block."""
    ctl = Controller.connect(None, speed=math.inf)
    try:
        now = [1000.0]
        ctl.interlock.clock = lambda: now[0]  # ADJUST's rate clamp on a clock the test drives
        ctl.load(parse_profile(shared_needle()))
        ctl.check_impedance()
        ctl.arm(confirm=True, acknowledge_warnings=True)
        ctl.start()
        assert ctl.wait_until(lambda s: s.elapsed_s >= 6.5, 60)
        accepted = []
        for k in range(6):
            now[0] += 1.0
            try:
                accepted.append(ctl.adjust(1 + k % 2, +0.1))
            except InterlockError as refusal:
                assert "site[ST36-L]" in str(refusal)
        assert accepted == [5.0, 5.0]
        plateaus = {c.id: c.plateau_ma for c in ctl.status().channels}
        assert plateaus[1] + plateaus[2] <= 10.0
        assert ctl.state is HostState.RUNNING
        assert ctl.wait(timeout=120) is Outcome.COMPLETED
    finally:
        ctl.close()


def test_an_adjust_accepted_at_the_site_limit_runs_on_without_a_host_limit_fault(
    tmp_path: Path,
) -> None:
    """5.1 + 4.9 mA is exactly 10 mA at ST36-L: accepted, so it must also pass the host guard.
    The gain was rounded to nearest (5.1 / 4.9 -> 1041 permille = 5.1009 mA), the guard saw
    10.0009 mA at the next block and e-stopped the session; the gain now rounds down."""
    ctl = Controller.connect(None, speed=math.inf)
    try:
        now = [1000.0]
        ctl.interlock.clock = lambda: now[0]
        ctl.load(parse_profile(shared_needle()))
        ctl.check_impedance()
        ctl.arm(confirm=True, acknowledge_warnings=True)
        ctl.start()
        assert ctl.wait_until(lambda s: s.elapsed_s >= 6.5, 60)
        for _ in range(2):
            now[0] += 1.0
            ctl.adjust(1, +0.1)
        assert ctl.wait(timeout=120) is Outcome.COMPLETED, ctl.fault
    finally:
        ctl.close()
