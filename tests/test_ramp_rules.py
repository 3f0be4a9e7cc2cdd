"""Ramp rules of the profile format: phase ramps span the phase, on-windows have edges of their own
that obey ramp-rate-max, and the re-ramp pace after PAUSE (issue 10, items 3 and 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.profile import Profile, load_profile, parse_profile
from stimctl.rules.validation import validate_profile

LIBRARY = Path(__file__).resolve().parent.parent / "profiles"


def profile(*phases: dict[str, Any], amplitudes_ma: tuple[float, ...] = (1.0,)) -> Profile:
    return parse_profile({
        "schema": "stimctl.profile/1", "name": "t", "waveform": {"shape": "biphasic_symmetric"},
        "channels": [{"id": i + 1, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": a}
                     for i, a in enumerate(amplitudes_ma)],
        "phases": list(phases),
    })  # fmt: skip


def intermittent(**extra: Any) -> dict[str, Any]:
    return {"duration_s": 60, "mode": "intermittent", "frequency_hz": 2, "pulse_width_us": 200,
            "on_s": 5, "off_s": 5, **extra}  # fmt: skip


def codes(p: Profile, envelope: SafetyEnvelope | None = None) -> set[tuple[str, str]]:
    return {(v.code, v.loc) for v in validate_profile(p, envelope=envelope).errors}


def test_a_5_s_on_5_s_off_phase_with_a_10_s_phase_ramp_is_valid() -> None:
    assert codes(profile(intermittent(ramp_up_s=10, ramp_down_s=10), amplitudes_ma=(0.5,))) == set()


def test_an_intermittent_phase_needs_no_ramp_up_its_on_windows_ramp() -> None:
    assert codes(profile(intermittent())) == set()


def test_a_written_window_ramp_steeper_than_the_policy_is_refused() -> None:
    found = codes(profile(intermittent(window_ramp_s=0.2)))  # 1 mA in 0.2 s: 5 mA/s
    assert found == {("ramp-rate-max", "phases[0].window_ramp_s")}


def test_default_window_edges_that_do_not_fit_in_on_s_are_refused_at_on_s() -> None:
    found = codes(profile(intermittent(on_s=1.5), amplitudes_ma=(2.0,)))  # 1 s edges, 1.5 s on
    assert found == {("ramp-rate-max", "phases[0].on_s")}


def test_default_window_edges_follow_a_site_envelopes_ramp_rate() -> None:
    strict = SafetyEnvelope(max_ramp_rate_ma_per_s=0.25)  # 1 mA: 4 s edges, 5 s on
    assert codes(profile(intermittent()), strict) == {("ramp-rate-max", "phases[0].on_s")}
    assert codes(profile(intermittent(on_s=8)), strict) == set()


@pytest.mark.parametrize(
    ("name", "expected"),
    [("seed-st36-lr3.toml", 0.05), ("intermittent-10hz-st36-st40.toml", 0.5)],
)
def test_the_re_ramp_pace_is_the_profiles_slowest_rising_edge(name: str, expected: float) -> None:
    assert load_profile(LIBRARY / name).slowest_ramp_ma_per_s(2.0) == pytest.approx(expected)


def test_the_re_ramp_pace_takes_the_weakest_channel_and_never_exceeds_the_policy() -> None:
    continuous = {"duration_s": 60, "mode": "continuous", "frequency_hz": 2,
                  "pulse_width_us": 200, "ramp_up_s": 5}  # fmt: skip
    two = profile(continuous, amplitudes_ma=(0.5, 1.0))
    assert two.slowest_ramp_ma_per_s(2.0) == pytest.approx(0.1)
    assert two.slowest_ramp_ma_per_s(0.05) == pytest.approx(0.05)


def test_the_wire_rate_is_rounded_down_and_never_zero() -> None:
    from stimctl.host.plateau import reramp_na_per_s  # host side of RESUME(ramp_na_per_s)

    assert reramp_na_per_s(0.05) == 50_000
    assert reramp_na_per_s(1e-12) == 1
    assert reramp_na_per_s(0.0699999999) == 69_999


def test_adjust_judges_the_default_window_edges_as_compiled() -> None:
    """A gain steepens the compiled edges: default edges (exactly at the limit) leave no headroom
    for +; a written window_ramp_s with room allows it."""
    from stimctl.host.errors import InterlockError
    from stimctl.host.plateau import check_plateau

    tight = profile(intermittent())  # 1 mA: default edges 0.5 s at 2 mA/s
    with pytest.raises(InterlockError, match=r"ramp-rate-max at phases\[0\]\.window_ramp_s"):
        check_plateau(tight, 1, 1.1, validate_profile, 2.0)
    check_plateau(profile(intermittent(window_ramp_s=1.0)), 1, 1.1, validate_profile, 2.0)
