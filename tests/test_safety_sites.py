"""Per-electrode-site rules: channels sharing a needle sum their current there."""

from __future__ import annotations

import math

import pytest

from stimctl import validate_profile
from stimctl.rules.electrodes import site_channels
from stimctl.rules.envelope import RULES
from stimctl.rules.profile import Profile, parse_profile
from stimctl.rules.quantities import needle_area_cm2

AREA = needle_area_cm2(0.25, 15)


def _profile(channels: list[tuple[str, str, float]], pulse_width_us: float = 200) -> Profile:
    return parse_profile(
        {
            "schema": "stimctl.profile/1",
            "name": "t",
            "waveform": {"shape": "biphasic_symmetric"},
            "channels": [
                {"id": k, "anode": a, "cathode": c, "amplitude_ma": i}
                for k, (a, c, i) in enumerate(channels, start=1)
            ],
            "phases": [
                {
                    "duration_s": 600,
                    "mode": "continuous",
                    "frequency_hz": 2,
                    "pulse_width_us": pulse_width_us,
                    "ramp_up_s": 10,
                    "ramp_down_s": 10,
                }
            ],
        }
    )


FOUR_ON_ST36 = [
    ("ST36-L", "SP6-L", 2.88),
    ("ST36-L", "LR3-L", 2.88),
    ("ST36-L", "GB34-L", 2.88),
    ("ST36-L", "ST40-L", 2.88),
]
SITE_LOC = "phases[0].site[ST36-L].channels[0,1,2,3]"


def test_four_channels_sharing_an_anode_sum_their_phase_charge_at_the_site() -> None:
    report = validate_profile(_profile(FOUR_ON_ST36, pulse_width_us=1000))
    [charge] = [v for v in report.violations if v.code == "phase-charge-max"]
    assert charge.loc == SITE_LOC
    assert charge.actual == pytest.approx(4 * 2.88)
    assert charge.limit == 6.0
    assert not report.ok


def test_four_channels_sharing_an_anode_sum_their_amplitude_at_the_site() -> None:
    report = validate_profile(_profile(FOUR_ON_ST36, pulse_width_us=1000))
    [amplitude] = [v for v in report.violations if v.code == "amplitude-max"]
    assert amplitude.loc == "site[ST36-L].channels[0,1,2,3]"
    assert amplitude.actual == pytest.approx(11.52)
    assert "channels 1, 2, 3, 4" in amplitude.message


def test_four_channels_sharing_an_anode_sum_shannon_k_at_the_site() -> None:
    report = validate_profile(_profile(FOUR_ON_ST36, pulse_width_us=1000))
    [k] = [v for v in report.violations if v.code == "charge-density-shannon"]
    q = 4 * 2.88
    assert k.loc == SITE_LOC
    assert k.actual == pytest.approx(math.log10(q) + math.log10(q / AREA))
    assert k.actual == pytest.approx(3.05, abs=0.01)


def test_each_channel_alone_at_the_shared_site_is_within_the_limits() -> None:
    """The same channels on four separate anodes: nothing but the density warnings."""
    separate = [("ST36-L", "SP6-L", 2.88), ("ST37-L", "LR3-L", 2.88),
                ("ST38-L", "GB34-L", 2.88), ("ST39-L", "ST40-L", 2.88)]  # fmt: skip
    report = validate_profile(_profile(separate, pulse_width_us=1000))
    assert report.ok
    assert all(v.code == "charge-density-shannon" for v in report.violations)


def test_the_site_sum_ignores_polarity() -> None:
    """ST36-L is the anode of one channel and the cathode of the other: magnitudes still add."""
    report = validate_profile(
        _profile([("ST36-L", "SP6-L", 3.5), ("LR3-L", "ST36-L", 3.5)], pulse_width_us=1000)
    )
    [charge] = [v for v in report.violations if v.code == "phase-charge-max"]
    assert charge.loc == "phases[0].site[ST36-L].channels[0,1]"
    assert charge.actual == pytest.approx(7.0)


@pytest.mark.parametrize(
    "pair", [("ST36-L", "LR3-L"), ("LR3-L", "ST36-L")], ids=["same-way", "reversed"]
)
def test_two_channels_on_one_pair_are_an_error(pair: tuple[str, str]) -> None:
    report = validate_profile(_profile([("ST36-L", "LR3-L", 10.0), (*pair, 10.0)]))
    same = [v for v in report.violations if v.code == "channel-same-pair"]
    assert [(v.loc, v.severity) for v in same] == [("channels[1]", "error")]
    assert "channels 1 and 2" in same[0].message
    amplitude = {v.loc for v in report.violations if v.code == "amplitude-max"}
    assert amplitude == {"site[ST36-L].channels[0,1]", "site[LR3-L].channels[0,1]"}


def test_a_site_used_by_one_channel_is_reported_at_the_channel() -> None:
    report = validate_profile(_profile([("ST36-L", "LR3-L", 7.0)], pulse_width_us=1000))
    assert [(v.code, v.loc) for v in report.errors] == [
        ("phase-charge-max", "phases[0].channels[0]")
    ]


def test_r_m_s_and_densities_are_summed_at_the_site() -> None:
    """Two 1 mA channels at 100 Hz on one needle: 2 mA peak there, density as for 2 mA."""
    profile = _profile([("ST36-L", "SP6-L", 1.0), ("ST36-L", "LR3-L", 1.0)])
    profile = profile.model_copy(
        update={"phases": [profile.phases[0].model_copy(update={"frequency_hz": 100})]}
    )
    report = validate_profile(profile)
    density = {v.loc: v.actual for v in report.violations if v.code == "current-density-iec"}
    expected = 2.0 * math.sqrt(2 * 200e-6 * 100) / AREA
    assert density == {"phases[0].site[ST36-L].channels[0,1]": pytest.approx(expected)}


def test_site_channels_groups_channels_by_canonical_site() -> None:
    profile = _profile([("st36-l", "SP6-L", 1.0), ("LR3-L", "ST36-L", 1.0)])
    assert site_channels(profile)["ST36-L"] == (0, 1)
    assert site_channels(profile)["SP6-L"] == (0,)


def test_same_pair_rule_is_in_the_table_with_a_source() -> None:
    rule = RULES["channel-same-pair"]
    assert rule.severity == "error" and rule.source
