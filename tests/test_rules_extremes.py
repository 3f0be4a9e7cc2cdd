"""The rules on valid but absurd numbers, and the quantity rules' shortcut against every current.

Each profile here passes the schema (positive finite figures), so validation must answer with
findings, never an exception. The quantity rules look at the strongest current first and stop
at the first that clears the limit (RuleContext); the last test holds them to the answer of
judging every current of every phase.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from hil.benchmarks.profilegen import generate
from stimctl.rules.context import RuleContext
from stimctl.rules.electrodes import electrodes
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.profile import ProfileError, loads_profile, parse_profile
from stimctl.rules.quantities import needle_area_cm2, pulse_quantities
from stimctl.rules.ruletable import RULES
from stimctl.rules.safety import (
    current_density_rule,
    phase_charge_rule,
    power_density_rule,
    pulse_energy_rule,
    rms_current_rule,
    shannon_rule,
)
from stimctl.rules.validation import validate_profile


def _data(**phase: Any) -> dict[str, Any]:
    return {
        "schema": "stimctl.profile/1",
        "name": "extreme",
        "waveform": {"shape": "biphasic_symmetric"},
        "channels": [{"id": 1, "anode": "ST36-L", "cathode": "ST37-L", "amplitude_ma": 1.0}],
        "phases": [
            {
                "duration_s": 60.0,
                "mode": "continuous",
                "frequency_hz": 2.0,
                "pulse_width_us": 200.0,
                "ramp_up_s": 5.0,
                **phase,
            }
        ],
    }


def _codes(data: dict[str, Any]) -> set[str]:
    report = validate_profile(parse_profile(data))
    json.dumps([v.to_dict() for v in report.violations], allow_nan=False)
    return set(report.codes)


def test_a_needle_too_thin_for_its_area_is_a_density_finding_not_a_crash() -> None:
    data = _data()
    data["needle"] = {"diameter_mm": 5e-324, "insertion_mm": 15.0}  # pi x d x L is 0.0
    assert needle_area_cm2(5e-324, 15.0) == 0.0
    assert {"power-density-max", "current-density-iec"} <= _codes(data)


def test_amplitudes_whose_sum_overflows_are_an_amplitude_finding_not_a_crash() -> None:
    data = _data()
    data["channels"] = [
        {"id": 1, "anode": "ST36-L", "cathode": "ST37-L", "amplitude_ma": 1e308},
        {"id": 2, "anode": "ST36-L", "cathode": "ST38-L", "amplitude_ma": 1e308},
    ]
    report = validate_profile(parse_profile(data))
    shared = [v for v in report.violations if v.loc.startswith("site[ST36-L]")]
    assert any(v.code == "amplitude-max" and v.actual == math.inf for v in shared)


def test_durations_whose_sum_overflows_are_a_duration_finding_not_a_crash() -> None:
    data = _data(duration_s=1e308)
    data["phases"].append({**data["phases"][0], "ramp_up_s": 0.0})
    assert "duration-max" in _codes(data)


def test_an_on_window_too_short_to_halve_is_a_ramp_finding_not_a_crash() -> None:
    data = _data(mode="intermittent", on_s=5e-324, off_s=1.0, ramp_up_s=0.0)
    assert "ramp-rate-max" in _codes(data)


_QUANTITY_RULES = (
    (phase_charge_rule, "phase_charge_uc", False, True),
    (rms_current_rule, "rms_ma", False, True),
    (pulse_energy_rule, "pulse_energy_mj", False, False),
    (power_density_rule, "power_density_w_cm2", True, True),
    (shannon_rule, "shannon_k", False, True),
    (current_density_rule, "current_density_ma_cm2", False, True),
)


def _every_current(ctx: RuleContext, key: str, at_limit: bool, per_site: bool) -> list[Any]:
    """The findings of a quantity rule the long way: every current of every phase."""
    profile = ctx.profile
    code = {
        "phase_charge_uc": "phase-charge-max",
        "rms_ma": "rms-current-max",
        "pulse_energy_mj": "pulse-energy-max",
        "power_density_w_cm2": "power-density-max",
        "shannon_k": "charge-density-shannon",
        "current_density_ma_cm2": "current-density-iec",
    }[key]
    field = RULES[code].field
    assert field is not None
    limit = getattr(ctx.envelope, field)
    area = needle_area_cm2(profile.needle.diameter_mm, profile.needle.insertion_mm)
    shape = profile.waveform.shape

    def worst(amplitude: float, phase: int) -> float:
        value = math.nan
        for k, (f, pw) in enumerate(profile.phases[phase].variants):
            other = getattr(pulse_quantities(amplitude, pw, f, shape, area), key)
            if k == 0 or not other <= value:
                value = other
        return value

    out = []
    if per_site:
        for electrode in electrodes(profile):
            amplitude = math.fsum(profile.channels[i].amplitude_ma for i in electrode.channels)
            for p in range(len(profile.phases)):
                value = worst(amplitude, p)
                if not value <= limit or (at_limit and value == limit):
                    out.append((f"phases[{p}].{electrode.loc}", value))
    else:
        for p in range(len(profile.phases)):
            for c, channel in enumerate(profile.channels):
                value = worst(channel.amplitude_ma, p)
                if not value <= limit or (at_limit and value == limit):
                    out.append((f"phases[{p}].channels[{c}]", value))
    return out


@pytest.mark.parametrize("seed", [1, 2])
def test_quantity_rules_find_what_judging_every_current_finds(seed: int) -> None:
    rng = random.Random(seed)
    envelopes = (
        SafetyEnvelope(),
        SafetyEnvelope(max_shannon_k=1.0, max_current_density_ma_cm2=1.0),
        SafetyEnvelope(max_phase_charge_uc=0.3, max_rms_ma=0.5, max_pulse_energy_mj=0.0005),
        SafetyEnvelope(max_power_density_w_cm2=0.0005, max_shannon_k=0.5),
    )
    checked = 0
    for generated in generate(250, seed=seed):
        try:
            profile = loads_profile(generated.raw, generated.fmt)
        except ProfileError:
            continue
        ctx = RuleContext(profile, rng.choice(envelopes))
        for rule, key, at_limit, per_site in _QUANTITY_RULES:
            found = [(v.loc, v.actual) for v in rule(ctx)]
            assert found == _every_current(ctx, key, at_limit, per_site), (rule.__name__, key)
            checked += 1
    assert checked > 1000


def test_every_whole_frequency_the_device_takes_is_on_its_tenth_hz_step() -> None:
    """resolution_rule skips the division for whole Hz: that shortcut rests on this."""
    from stimctl.rules.phase_rules import _off_step

    assert not any(_off_step(float(f), 0.1) for f in range(0, 0xFFFF // 10 + 1))
