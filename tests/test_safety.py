"""Safety envelope, quantities and rules: the figures, the limits, and the profile library."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from stimctl import SafetyEnvelope, validate_file, validate_profile
from stimctl.rules.envelope import RULES, EnvelopeError
from stimctl.rules.profile import MAX_CHANNELS, ProfileError, parse_profile
from stimctl.rules.quantities import needle_area_cm2, operating_points, pulse_quantities

PROFILES = Path(__file__).parent.parent / "profiles"
AREA = needle_area_cm2(0.25, 15)


def _profile(
    channels: list[dict] | None = None,
    shape: str = "biphasic_symmetric",
    phases: list[dict] | None = None,
):
    channel = {"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 0.5}
    phase = {
        "duration_s": 600,
        "mode": "continuous",
        "frequency_hz": 2,
        "pulse_width_us": 200,
        "ramp_up_s": 10,
        "ramp_down_s": 10,
    }
    return parse_profile(
        {
            "schema": "stimctl.profile/1",
            "name": "t",
            "waveform": {"shape": shape},
            "channels": channels or [channel],
            "phases": [{**phase, **p} for p in (phases or [{}])],
        }
    )


def _codes(profile, **kwargs) -> set[tuple[str, str]]:
    return {(v.code, v.loc) for v in validate_profile(profile, **kwargs).violations}


# --- quantities -----------------------------------------------------------------------------


def test_needle_area_of_025_by_15_mm_is_0118_cm2() -> None:
    assert round(AREA, 4) == 0.1178


def test_phase_charge_is_ma_times_us_over_1000() -> None:
    assert pulse_quantities(2, 300, 2, "biphasic_symmetric", AREA).phase_charge_uc == 0.6


def test_rms_of_symmetric_train_is_peak_times_sqrt_active_time_times_f() -> None:
    q = pulse_quantities(1, 200, 100, "biphasic_symmetric", AREA)
    assert q.rms_ma == pytest.approx(1 * math.sqrt(400e-6 * 100))


def test_rms_of_asymmetric_train_counts_the_quarter_amplitude_recovery() -> None:
    q = pulse_quantities(1, 200, 100, "biphasic_asymmetric", AREA)
    assert q.rms_ma == pytest.approx(math.sqrt(200e-6 * 100 + (1 / 4) ** 2 * 800e-6 * 100))


def test_asymmetric_pulse_is_charge_balanced() -> None:
    assert pulse_quantities(3, 250, 10, "biphasic_asymmetric", AREA).net_charge_uc == 0


def test_monophasic_net_charge_equals_phase_charge() -> None:
    q = pulse_quantities(3, 250, 10, "monophasic", AREA)
    assert q.net_charge_uc == q.phase_charge_uc == 0.75


def test_pulse_energy_into_500_ohm() -> None:
    # two phases of 10 mA for 1 ms into 500 ohm: 2 x 0.01^2 x 500 x 0.001 J = 0.1 mJ
    assert pulse_quantities(10, 1000, 1, "biphasic_symmetric", AREA).pulse_energy_mj == (
        pytest.approx(0.1)
    )


def test_power_density_is_rms_squared_times_500_ohm_over_area() -> None:
    q = pulse_quantities(10, 500, 200, "biphasic_symmetric", AREA)
    assert q.power_density_w_cm2 == pytest.approx((q.rms_ma / 1000) ** 2 * 500 / AREA)


def test_shannon_k_is_log_q_plus_log_q_over_a() -> None:
    q = pulse_quantities(5, 600, 1, "biphasic_symmetric", AREA)
    assert q.shannon_k == pytest.approx(math.log10(3) + math.log10(3 / AREA))


def test_operating_points_cover_every_phase_channel_and_variant() -> None:
    profile = _profile(
        channels=[
            {"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 1},
            {"id": 2, "anode": "ST36-R", "cathode": "LR3-R", "amplitude_ma": 1},
        ],
        phases=[{}, {"mode": "dense_disperse", "frequency_hz": [2, 100], "switch_s": 3}],
    )
    keys = [(op.phase, op.channel, op.variant) for op in operating_points(profile)]
    assert keys == [(0, 0, 0), (0, 1, 0), (1, 0, 0), (1, 0, 1), (1, 1, 0), (1, 1, 1)]


# --- envelope -------------------------------------------------------------------------------


def test_default_envelope_matches_the_rule_table() -> None:
    env = SafetyEnvelope()
    assert (env.max_amplitude_ma, env.pulse_width_us, env.frequency_hz) == (
        10,
        (50, 1000),
        (1, 200),
    )
    assert (env.max_phase_charge_uc, env.max_rms_ma, env.max_pulse_energy_mj) == (6, 50, 300)
    assert (env.max_power_density_w_cm2, env.max_session_s, env.max_channels) == (0.25, 3600, 8)
    assert (env.max_ramp_rate_ma_per_s, env.max_shannon_k, env.max_current_density_ma_cm2) == (
        2,
        1.85,
        2,
    )


def test_every_rule_names_an_existing_envelope_field_and_a_source() -> None:
    fields = set(SafetyEnvelope.model_fields)
    for rule in RULES.values():
        assert rule.field is None or rule.field in fields
        assert rule.source


def test_narrowed_keeps_the_stricter_bound_of_each_limit() -> None:
    env = SafetyEnvelope().narrowed(
        max_amplitude_ma=20, pulse_width_us=(100, 2000), frequency_hz=(0.5, 150), max_channels=4
    )
    assert (env.max_amplitude_ma, env.pulse_width_us, env.frequency_hz, env.max_channels) == (
        10,
        (100, 1000),
        (1, 150),
        4,
    )


def test_narrowed_refuses_a_device_range_that_does_not_overlap() -> None:
    with pytest.raises(EnvelopeError, match="pulse_width_us"):
        SafetyEnvelope().narrowed(pulse_width_us=(2000, 3000))


def test_narrowed_envelope_refuses_a_profile_the_default_accepts() -> None:
    profile = _profile(phases=[{"pulse_width_us": 600}])
    assert validate_profile(profile).ok
    report = validate_profile(profile, SafetyEnvelope().narrowed(pulse_width_us=(50, 500)))
    assert "pulse-width-range" in report.codes


def test_from_toml_reads_a_site_envelope(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text(
        'schema = "stimctl.envelope/1"\nmax_amplitude_ma = 5\nfrequency_hz = [2, 100]\n'
    )
    env = SafetyEnvelope.from_toml(path)
    assert (env.max_amplitude_ma, env.frequency_hz, env.max_rms_ma) == (5, (2, 100), 50)


def test_from_toml_rejects_unknown_keys(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("max_amplitude = 5\n")
    with pytest.raises(EnvelopeError, match="max_amplitude: unknown key"):
        SafetyEnvelope.from_toml(path)


def test_from_toml_refuses_to_loosen_an_iec_limit(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("max_rms_ma = 80\n")
    with pytest.raises(EnvelopeError, match="max_rms_ma"):
        SafetyEnvelope.from_toml(path)


def test_from_toml_refuses_to_silence_the_iec_current_density_flag(tmp_path: Path) -> None:
    """IEC 60601-2-10 asks that current density above 2 mA/cm2 be flagged; a site envelope
    raising max_current_density_ma_cm2 silenced that flag (20 mA at 1000 us, 2 Hz on a
    0.25 x 15 mm needle validated with no warning). Like the other IEC and FDA limits, it
    may only be lowered."""
    path = tmp_path / "site.toml"
    path.write_text("max_current_density_ma_cm2 = 100\n")
    with pytest.raises(EnvelopeError, match="max_current_density_ma_cm2"):
        SafetyEnvelope.from_toml(path)
    path.write_text("max_current_density_ma_cm2 = 1.5\n")
    assert SafetyEnvelope.from_toml(path).max_current_density_ma_cm2 == 1.5


def test_from_toml_refuses_an_inverted_range(tmp_path: Path) -> None:
    path = tmp_path / "site.toml"
    path.write_text("frequency_hz = [100, 2]\n")
    with pytest.raises(EnvelopeError, match="frequency_hz"):
        SafetyEnvelope.from_toml(path)


def test_from_toml_reports_a_missing_file_as_envelope_error(tmp_path: Path) -> None:
    with pytest.raises(EnvelopeError, match="cannot read"):
        SafetyEnvelope.from_toml(tmp_path / "missing.toml")


# --- rules ----------------------------------------------------------------------------------


def _channels(ids: list[int]) -> list[dict]:
    return [{"id": k, "anode": f"LI{k}-L", "cathode": f"LI{k}-R", "amplitude_ma": 0.5} for k in ids]


@pytest.mark.parametrize("ids", [[MAX_CHANNELS + 1], list(range(1, MAX_CHANNELS + 2))])
def test_the_schema_holds_channels_to_the_device_count(ids: list[int]) -> None:
    # channel_rules judges count and ids only for an envelope narrower than MAX_CHANNELS
    # (SafetyEnvelope.max_channels is at most that): this is why the rest find nothing.
    assert SafetyEnvelope().max_channels == MAX_CHANNELS
    with pytest.raises(ProfileError):
        _profile(channels=_channels(ids))


def test_a_narrowed_channel_count_finds_extra_channels_and_ids_above_it() -> None:
    profile = _profile(channels=_channels([1, 2, 3, MAX_CHANNELS]))
    env = SafetyEnvelope().narrowed(max_channels=2)
    assert {("channel-count-max", "channels"), ("channel-count-max", "channels[2].id")} <= _codes(
        profile, envelope=env
    )
    assert not {c for c, _ in _codes(profile)} & {"channel-count-max"}


def test_amplitude_at_the_limit_is_allowed() -> None:
    profile = _profile(
        channels=[{"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 10}],
        phases=[{"pulse_width_us": 50}],
    )
    assert ("amplitude-max", "channels[0].amplitude_ma") not in _codes(profile)


def test_power_density_at_exactly_the_limit_is_refused() -> None:
    profile = _profile(phases=[{"frequency_hz": 100}])
    q = operating_points(profile)[0].quantities
    envelope = SafetyEnvelope(max_power_density_w_cm2=q.power_density_w_cm2)
    assert ("power-density-max", "phases[0].channels[0]") in _codes(profile, envelope=envelope)


def test_ramp_is_required_after_an_intermittent_phase() -> None:
    intermittent = {
        "mode": "intermittent",
        "on_s": 10,
        "off_s": 10,
        "ramp_up_s": 2,
        "ramp_down_s": 0,
    }
    profile = _profile(phases=[intermittent, {"ramp_up_s": 0}])
    assert ("ramp-required", "phases[1].ramp_up_s") in _codes(profile)


def test_no_ramp_is_needed_when_the_previous_phase_holds_its_plateau() -> None:
    profile = _profile(phases=[{"ramp_down_s": 0}, {"ramp_up_s": 0}])
    assert validate_profile(profile).ok


def test_ramp_rate_uses_the_strongest_channel() -> None:
    profile = _profile(
        channels=[
            {"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 0.5},
            {"id": 2, "anode": "ST36-R", "cathode": "LR3-R", "amplitude_ma": 3},
        ],
        phases=[{"ramp_up_s": 1}],
    )
    [violation] = [v for v in validate_profile(profile).violations if v.code == "ramp-rate-max"]
    assert (violation.loc, violation.actual) == ("phases[0].ramp_up_s", 3)


def test_a_step_down_to_zero_at_the_end_is_allowed() -> None:
    assert validate_profile(_profile(phases=[{"ramp_down_s": 0}])).ok


def test_dense_disperse_is_judged_at_its_worst_frequency() -> None:
    profile = _profile(
        channels=[{"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 1.5}],
        phases=[{"mode": "dense_disperse", "frequency_hz": [2, 100], "switch_s": 3}],
    )
    [violation] = validate_profile(profile).violations
    assert violation.code == "current-density-iec"
    assert violation.actual == pytest.approx(1.5 * math.sqrt(400e-6 * 100) / AREA)


def test_contralateral_lower_limb_pair_is_only_a_warning() -> None:
    profile = _profile(
        channels=[{"id": 1, "anode": "ST36-L", "cathode": "ST36-R", "amplitude_ma": 0.5}]
    )
    report = validate_profile(profile)
    assert report.ok and [v.code for v in report.warnings] == ["path-contralateral"]


def test_midline_point_is_on_neither_side() -> None:
    profile = _profile(
        channels=[{"id": 1, "anode": "GV14", "cathode": "BL15-R", "amplitude_ma": 0.5}]
    )
    assert validate_profile(profile).ok


def test_contralateral_upper_limb_pair_is_transthoracic() -> None:
    profile = _profile(
        channels=[{"id": 1, "anode": "LI4-L", "cathode": "ST36-R", "amplitude_ma": 0.5}]
    )
    assert {code for code, _ in _codes(profile)} == {"path-contralateral", "path-transthoracic"}


def test_pregnancy_points_are_allowed_without_the_flag() -> None:
    profile = _profile(
        channels=[{"id": 1, "anode": "LI4-L", "cathode": "PC6-L", "amplitude_ma": 0.5}]
    )
    assert validate_profile(profile).ok
    assert not validate_profile(profile, patient=["pregnant"]).ok


def test_unknown_patient_flag_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="pacemaker"):
        validate_profile(_profile(), patient=["pacemaker"])


def test_violation_carries_limit_actual_and_source() -> None:
    profile = _profile(phases=[{"frequency_hz": 250}])
    [violation] = validate_profile(profile).violations
    assert (violation.code, violation.severity, violation.loc) == (
        "frequency-range",
        "error",
        "phases[0].frequency_hz",
    )
    assert (violation.limit, violation.actual) == ("1..200", 250)
    assert violation.source == RULES["frequency-range"].source


# --- the library ----------------------------------------------------------------------------

LIBRARY = sorted(PROFILES.glob("*.toml"))


def test_library_holds_the_profiles_others_depend_on() -> None:
    names = {p.name for p in LIBRARY}
    assert {"seed-st36-lr3.toml", "short-demo.toml"} <= names
    assert len(LIBRARY) >= 5


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_library_profile_has_no_finding(path: Path) -> None:
    report = validate_file(path)
    assert report.violations == ()


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.name)
def test_library_profile_names_its_source(path: Path) -> None:
    report = validate_file(path)
    assert report.profile is not None and report.profile.source


def test_seed_profile_is_the_seed_protocol() -> None:
    profile = validate_file(PROFILES / "seed-st36-lr3.toml").profile
    assert profile is not None
    [channel], [phase] = profile.channels, profile.phases
    assert (channel.anode, channel.cathode, channel.amplitude_ma) == ("ST36-L", "LR3-L", 0.5)
    assert (phase.frequency_hz, phase.duration_s, phase.ramp_up_s) == (2, 1800, 10)


def test_short_demo_is_60_s_two_channels_10_hz() -> None:
    profile = validate_file(PROFILES / "short-demo.toml").profile
    assert profile is not None
    [phase] = profile.phases
    assert (profile.duration_s, len(profile.channels), phase.mode, phase.frequency_hz) == (
        60,
        2,
        "continuous",
        10,
    )
    assert (phase.ramp_up_s, phase.ramp_down_s) == (5, 5)
