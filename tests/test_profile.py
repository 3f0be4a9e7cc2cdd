"""Profile format stimctl.profile/1: loading, structure rules, locations, never-raising parsing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stimctl import ProfileError, load_profile, validate_file
from stimctl.rules.profile import ASYMMETRIC_RATIO, Profile, loads_profile, parse_profile
from stimctl.rules.quantities import phase_pulse_count
from stimctl.rules.validation import validate_bytes, validate_profile

PROFILES = Path(__file__).parent.parent / "profiles"

SEED = """
schema = "stimctl.profile/1"
name = "EA 2 Hz ST36-LR3"
[waveform]
shape = "biphasic_symmetric"
[[channels]]
id = 1
anode = "ST36-L"
cathode = "LR3-L"
amplitude_ma = 0.5
[[phases]]
duration_s = 1800
mode = "continuous"
frequency_hz = 2
pulse_width_us = 200
ramp_up_s = 10
ramp_down_s = 5
"""


def _data(**phase: object) -> dict:
    base_phase = {
        "duration_s": 60,
        "mode": "continuous",
        "frequency_hz": 2,
        "pulse_width_us": 200,
        "ramp_up_s": 5,
    }
    return {
        "schema": "stimctl.profile/1",
        "name": "t",
        "waveform": {"shape": "biphasic_symmetric"},
        "channels": [{"id": 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 0.5}],
        "phases": [{**base_phase, **phase}],
    }


def _locs(data: dict) -> set[str]:
    with pytest.raises(ProfileError) as info:
        parse_profile(data)
    return {v.loc for v in info.value.violations}


def test_seed_profile_loads_with_its_values() -> None:
    profile = load_profile(PROFILES / "seed-st36-lr3.toml")
    assert profile.channels[0].anode == "ST36-L"
    assert profile.channels[0].amplitude_ma == 0.5
    assert profile.phases[0].frequency_hz == 2
    assert profile.duration_s == 1800


def test_needle_defaults_to_025_mm_by_15_mm() -> None:
    profile = loads_profile(SEED)
    assert (profile.needle.diameter_mm, profile.needle.insertion_mm) == (0.25, 15)


def test_json_with_the_same_structure_loads_like_toml(tmp_path: Path) -> None:
    path = tmp_path / "p.json"
    path.write_text(Profile.model_validate(_data()).model_dump_json(by_alias=True))
    assert load_profile(path) == parse_profile(_data())


def test_load_profile_raises_profile_error_which_is_a_value_error(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(SEED.replace("amplitude_ma = 0.5", "amplitude_ma = -1"))
    with pytest.raises(ValueError) as info:
        load_profile(path)
    assert isinstance(info.value, ProfileError)
    assert [v.loc for v in info.value.violations] == ["channels[0].amplitude_ma"]


def test_load_profile_does_not_apply_safety_rules() -> None:
    profile = loads_profile(SEED.replace("amplitude_ma = 0.5", "amplitude_ma = 50"))
    assert profile.channels[0].amplitude_ma == 50


def test_unknown_key_is_reported_at_its_location() -> None:
    data = _data()
    data["phases"][0]["ramp_up"] = 10
    assert _locs(data) == {"phases[0].ramp_up"}


def test_wrong_schema_string_is_reported_at_schema() -> None:
    data = _data()
    data["schema"] = "stimctl.profile/2"
    assert _locs(data) == {"schema"}


def test_a_string_is_not_accepted_as_a_number() -> None:
    data = _data()
    data["channels"][0]["amplitude_ma"] = "0.5"
    assert _locs(data) == {"channels[0].amplitude_ma"}


def test_a_boolean_is_not_accepted_as_a_frequency() -> None:
    assert _locs(_data(frequency_hz=True)) == {"phases[0].frequency_hz"}


def test_dense_disperse_requires_switch_s() -> None:
    assert _locs(_data(mode="dense_disperse", frequency_hz=[2, 100])) == {"phases[0].switch_s"}


def test_dense_disperse_requires_a_frequency_pair() -> None:
    assert _locs(_data(mode="dense_disperse", switch_s=3)) == {"phases[0].frequency_hz"}


def test_switch_s_is_refused_outside_dense_disperse() -> None:
    assert _locs(_data(switch_s=3)) == {"phases[0].switch_s"}


def test_intermittent_requires_on_s_and_off_s() -> None:
    assert _locs(_data(mode="intermittent", on_s=5)) == {"phases[0].off_s"}


def test_intermittent_phase_ramps_span_the_phase_not_the_on_window() -> None:
    """Issue 10 item 6: 5 s on / 5 s off with a 10 s phase ramp is a valid profile."""
    data = _data(mode="intermittent", on_s=5, off_s=5, ramp_up_s=10, ramp_down_s=10)
    profile = parse_profile(data)
    assert validate_profile(profile).ok


def test_intermittent_phase_ramps_must_fit_in_the_phase() -> None:
    data = _data(mode="intermittent", duration_s=15, on_s=5, off_s=5, ramp_up_s=10, ramp_down_s=6)
    assert _locs(data) == {"phases[0].ramp_down_s"}


def test_window_edges_must_fit_in_the_on_window() -> None:
    data = _data(mode="intermittent", on_s=5, off_s=5, window_ramp_s=3)
    assert _locs(data) == {"phases[0].window_ramp_s"}


def test_window_ramp_s_is_only_for_intermittent() -> None:
    assert _locs(_data(window_ramp_s=1)) == {"phases[0].window_ramp_s"}


def test_window_ramp_s_defaults_to_the_plateau_over_the_ramp_rate() -> None:
    profile = parse_profile(_data(mode="intermittent", on_s=5, off_s=5))
    assert profile.window_ramp_s(0, 2.0) == pytest.approx(0.25)  # 0.5 mA at 2 mA/s
    assert profile.window_ramp_s(0, 0.5) == pytest.approx(1.0)
    written = parse_profile(_data(mode="intermittent", on_s=5, off_s=5, window_ramp_s=2))
    assert written.window_ramp_s(0, 2.0) == 2
    assert parse_profile(_data()).window_ramp_s(0, 2.0) is None


def test_ramps_must_fit_in_the_phase() -> None:
    assert _locs(_data(duration_s=10, ramp_up_s=6, ramp_down_s=5)) == {"phases[0].ramp_down_s"}


def test_ramps_that_exactly_fill_the_phase_are_accepted() -> None:
    assert parse_profile(_data(duration_s=0.3, ramp_up_s=0.1, ramp_down_s=0.2))


def test_pulse_width_pair_follows_the_frequency_pair() -> None:
    profile = parse_profile(
        _data(mode="dense_disperse", frequency_hz=[2, 100], pulse_width_us=[600, 200], switch_s=3)
    )
    assert profile.phases[0].variants == ((2, 600), (100, 200))


def test_single_pulse_width_applies_to_both_frequencies() -> None:
    profile = parse_profile(_data(mode="dense_disperse", frequency_hz=[2, 100], switch_s=3))
    assert profile.phases[0].variants == ((2, 200), (100, 200))


def test_asymmetric_ratio_is_four() -> None:
    assert ASYMMETRIC_RATIO == 4


def test_dense_disperse_2_100_hz_gives_306_pulses_per_6_s() -> None:
    phase = parse_profile(
        _data(mode="dense_disperse", duration_s=6, frequency_hz=[2, 100], switch_s=3)
    ).phases[0]
    assert phase_pulse_count(phase) == 306


def test_intermittent_counts_pulses_only_in_on_windows() -> None:
    phase = parse_profile(
        _data(mode="intermittent", duration_s=25, frequency_hz=10, on_s=5, off_s=5)
    ).phases[0]
    assert phase_pulse_count(phase) == 10 * 15  # on 0-5, 10-15, 20-25


def test_duplicate_channel_ids_are_reported_at_the_second() -> None:
    data = _data()
    data["channels"].append({**data["channels"][0], "anode": "ST36-R", "cathode": "LR3-R"})
    assert _locs(data) == {"channels[1].id"}


def test_needle_insertion_beyond_75_mm_is_refused() -> None:
    data = _data()
    data["needle"] = {"insertion_mm": 150}
    assert _locs(data) == {"needle.insertion_mm"}


def test_profile_error_message_names_the_location() -> None:
    with pytest.raises(ProfileError, match=r"channels\[0\]\.amplitude_ma"):
        loads_profile(SEED.replace("amplitude_ma = 0.5", "amplitude_ma = nan"))


# --- validate_file never raises -------------------------------------------------------------

_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.floats(),
    st.text(max_size=12),
    st.sampled_from(
        [
            "ST36-L",
            "LR3-L",
            "GV20",
            "continuous",
            "dense_disperse",
            "intermittent",
            "biphasic_symmetric",
            "monophasic",
            "stimctl.profile/1",
        ]
    ),
)
_keys = st.sampled_from(
    [
        "schema",
        "name",
        "waveform",
        "shape",
        "channels",
        "phases",
        "id",
        "anode",
        "cathode",
        "amplitude_ma",
        "duration_s",
        "mode",
        "frequency_hz",
        "pulse_width_us",
        "switch_s",
        "on_s",
        "off_s",
        "ramp_up_s",
        "ramp_down_s",
        "needle",
        "diameter_mm",
        "insertion_mm",
        "x",
    ]
)
_tomlish = st.recursive(
    _scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_keys, inner, max_size=6)),
    max_leaves=30,
)


def _mutated(draw_value: object, key: str, where: str) -> dict:
    data = _data(mode="dense_disperse", frequency_hz=[2, 100], switch_s=3)
    target = data if where == "top" else data[where][0]
    target[key] = draw_value
    return data


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=400))
def test_validate_bytes_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    for fmt in ("toml", "json"):
        report = validate_bytes(raw, fmt)  # type: ignore[arg-type]
        assert not report.ok or report.profile is not None


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(_keys, _tomlish, max_size=8))
def test_parse_never_raises_anything_but_profile_error_on_arbitrary_dicts(data: dict) -> None:
    try:
        parse_profile(data)
    except ProfileError as error:
        assert error.violations


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(_tomlish, _keys, st.sampled_from(["top", "channels", "phases"]))
def test_validate_file_never_raises_on_a_mutated_valid_profile(
    tmp_path_factory: pytest.TempPathFactory, value: object, key: str, where: str
) -> None:
    path = tmp_path_factory.mktemp("p") / "p.json"
    path.write_text(json.dumps(_mutated(value, key, where)))
    report = validate_file(path)
    assert report.path == str(path)
    assert report.profile is not None or not report.ok


@settings(max_examples=300)
@given(
    st.floats(min_value=1e-300, max_value=1e308),
    st.floats(min_value=1e-300, max_value=1e308),
    st.floats(min_value=1e-300, max_value=1e308),
    st.sampled_from(["biphasic_symmetric", "biphasic_asymmetric", "monophasic"]),
)
def test_rules_never_raise_on_extreme_finite_numbers(
    amplitude: float, pulse_width: float, frequency: float, shape: str
) -> None:
    from stimctl import validate_profile

    data = _data(frequency_hz=frequency, pulse_width_us=pulse_width, duration_s=1e308)
    data["channels"][0]["amplitude_ma"] = amplitude
    data["waveform"]["shape"] = shape
    report = validate_profile(parse_profile(data))
    assert "duration-max" in report.codes
    json.dumps([v.to_dict() for v in report.violations], allow_nan=False)  # inf/nan as strings
