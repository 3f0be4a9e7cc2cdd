"""recheck.sound: validate_profile trusts a Profile as it is only when it holds exactly what
parsing its dump would make of it; anything else is parsed again (tests/
test_validate_unchecked_profile.py has the adversary's -5 mA)."""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hil.benchmarks.profilegen import generate
from stimctl.rules.parsed import as_parsed
from stimctl.rules.profile import (
    Channel,
    Phase,
    Profile,
    ProfileError,
    load_profile,
    loads_profile,
    parse_profile,
)
from stimctl.rules.recheck import sound
from stimctl.rules.validation import validate_profile

LIBRARY = sorted((Path(__file__).parents[1] / "profiles").glob("*.toml"))
SEED = Path(__file__).parents[1] / "profiles" / "seed-st36-lr3.toml"


def _reparsed(profile: Profile) -> Profile | None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # pydantic warns when it dumps a value of the wrong type
        try:
            return parse_profile(profile.model_dump(by_alias=True))
        except (ProfileError, AttributeError, TypeError, ValueError):
            return None


def test_every_parsed_profile_is_sound() -> None:
    """The fast path is the common one: what loading makes, re-checking accepts."""
    parsed = [load_profile(path) for path in LIBRARY]
    for generated in generate(400, seed=3):
        try:
            parsed.append(loads_profile(generated.raw, generated.fmt))
        except ProfileError:
            continue
    assert len(parsed) > 300
    assert all(sound(profile) for profile in parsed)


def _seed() -> Profile:
    return load_profile(SEED)


def _with_channel(**update: Any) -> Profile:
    seed = _seed()
    return seed.model_copy(update={"channels": [seed.channels[0].model_copy(update=update)]})


def _with_phase(**update: Any) -> Profile:
    seed = _seed()
    return seed.model_copy(update={"phases": [seed.phases[0].model_copy(update=update)]})


@pytest.mark.parametrize(
    "build",
    [
        lambda: _with_channel(amplitude_ma=-5.0),
        lambda: _with_channel(amplitude_ma=math.nan),
        lambda: _with_channel(amplitude_ma=math.inf),
        lambda: _with_channel(amplitude_ma=1),  # an int: parsing makes it 1.0
        lambda: _with_channel(id=True),
        lambda: _with_channel(id=9),
        lambda: _with_channel(anode=""),
        lambda: _with_phase(ramp_up_s=None),
        lambda: _with_phase(ramp_up_s=-1.0),
        lambda: _with_phase(pulse_width_us=[200.0, 300.0]),
        lambda: _with_phase(frequency_hz=(2.0, 100.0)),  # a pair on a continuous phase
        lambda: _with_phase(switch_s=3.0),
        lambda: _with_phase(ramp_up_s=1000.0, ramp_down_s=1000.0),  # longer than the phase
        lambda: _seed().model_copy(update={"phases": tuple(_seed().phases)}),
        lambda: _seed().model_copy(update={"channels": _seed().channels * 2}),  # ids twice
        lambda: _seed().model_copy(update={"channels": []}),
        lambda: _seed().model_copy(update={"extra": 1}),
        lambda: _seed().model_copy(update={"schema_id": "stimctl.profile/2"}),
        lambda: type("Sub", (Profile,), {})(**_seed().model_dump(by_alias=True)),
    ],
)
def test_a_profile_built_past_the_model_is_not_trusted(build: Any) -> None:
    profile = build()
    assert not sound(profile)
    report = validate_profile(profile)  # parsed again: a report, never an exception
    if "schema" in report.codes:  # refused as it stands
        assert report.profile is profile
    else:  # judged as parsing makes it, and the report says which profile that was
        assert report.profile is not profile and sound(report.profile)


def test_a_constructed_copy_of_a_parsed_profile_is_trusted_and_judged_alike() -> None:
    seed = _seed()
    copy = Profile.model_construct(**dict(seed))
    assert sound(copy)
    assert validate_profile(copy).violations == validate_profile(seed).violations


def test_a_list_edited_in_place_is_seen() -> None:
    profile = _seed()
    profile.channels.append(profile.channels[0].model_copy(update={"id": 2, "amplitude_ma": -1.0}))
    assert not sound(profile)
    assert "schema" in validate_profile(profile).codes


_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-3, max_value=10),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(min_value=1e-3, max_value=1e4),
    st.text(max_size=3),
    st.sampled_from(["continuous", "dense_disperse", "intermittent", "monophasic", "ST36-L"]),
    st.tuples(st.floats(min_value=0.1, max_value=200), st.floats(min_value=0.1, max_value=200)),
    st.lists(st.floats(min_value=0.1, max_value=200), max_size=3),
)
_channel_fields = st.sampled_from(list(Channel.model_fields))
_phase_fields = st.sampled_from(list(Phase.model_fields))
_profile_fields = st.sampled_from(["name", "description", "source", "schema_id"])


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(["channel", "phase", "profile"]),
    _channel_fields,
    _phase_fields,
    _profile_fields,
    _values,
)
def test_sound_never_trusts_what_parsing_would_refuse_or_change(
    where: str, channel_field: str, phase_field: str, profile_field: str, value: object
) -> None:
    if where == "channel":
        profile = _with_channel(**{channel_field: value})
    elif where == "phase":
        profile = _with_phase(**{phase_field: value})
    else:
        profile = _seed().model_copy(update={profile_field: value})
    if sound(profile):
        again = _reparsed(profile)
        assert again is not None, "sound() trusted a profile that parsing refuses"
        assert again == profile, "sound() trusted a profile that parsing changes"
        assert all(
            type(a) is type(b)
            for x, y in zip(again.phases, profile.phases, strict=True)
            for a, b in zip(x.__dict__.values(), y.__dict__.values(), strict=True)
        )


def test_a_parsed_profile_edited_in_place_is_not_trusted_as_parsed() -> None:
    """The registry of parsed profiles (profile.as_parsed) holds by identity: an item swapped
    in a list, or a field set past the frozen model, sends the profile to the full re-check."""
    profile = _seed()
    assert as_parsed(profile)
    profile.channels[0] = profile.channels[0].model_copy(update={"amplitude_ma": -5.0})
    assert not as_parsed(profile) and not sound(profile)
    assert "schema" in validate_profile(profile).codes
    other = _seed()
    object.__setattr__(other, "phases", [other.phases[0].model_copy(update={"ramp_up_s": -1.0})])
    assert not as_parsed(other) and not sound(other)
    assert "schema" in validate_profile(other).codes
    assert not as_parsed(Profile.model_construct(**dict(_seed())))  # a copy: not what parsing made
