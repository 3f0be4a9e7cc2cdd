"""The effective envelope's ramp rate is narrowed by the slew ceiling the device reports at
HELLO (DESIGN.md: site envelope intersected with the device's limits), so a site envelope
cannot make validation accept ramps the device will not deliver."""

from __future__ import annotations

import math

import pytest

from stimctl.controller import Controller
from stimctl.host.errors import ValidationRefused
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.profile import parse_profile


def test_a_site_ramp_rate_above_the_device_slew_ceiling_is_narrowed_to_it() -> None:
    """Site envelope at 50 mA/s, device ceiling 2 uA/ms: 5 mA over 0.5 s (10 mA/s) validated
    against the effective envelope and was compiled as a 10 mA/s ramp, 5x what the device
    delivers (the plateau came 2 s late, off the schedule the record promised)."""
    profile = parse_profile({
        "schema": "stimctl.profile/1", "name": "steep",
        "waveform": {"shape": "biphasic_symmetric"},
        "channels": [{"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 5}],
        "phases": [{"duration_s": 10, "mode": "continuous", "frequency_hz": 2,
                    "pulse_width_us": 200, "ramp_up_s": 0.5}],
    })  # fmt: skip
    site = SafetyEnvelope(max_ramp_rate_ma_per_s=50)
    with Controller.connect(None, speed=math.inf, envelope=site) as ctl:
        assert ctl.device.limits["max_slew_ua_per_ms"] == 2
        assert ctl.envelope.max_ramp_rate_ma_per_s == 2.0
        with pytest.raises(ValidationRefused, match="ramp"):
            ctl.load(profile)


def test_narrowed_keeps_the_slower_ramp_rate() -> None:
    env = SafetyEnvelope(max_ramp_rate_ma_per_s=50)
    assert env.narrowed(max_ramp_rate_ma_per_s=2).max_ramp_rate_ma_per_s == 2
    assert SafetyEnvelope().narrowed(max_ramp_rate_ma_per_s=10).max_ramp_rate_ma_per_s == 2
