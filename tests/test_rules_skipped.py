"""run_rules skips rules that cannot find anything: it finds exactly what every rule finds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hil.benchmarks.profilegen import generate, parsable
from stimctl.rules.acupoints import catalogue, parse_site
from stimctl.rules.context import RuleContext
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.placement import (
    PATIENT_FLAGS,
    _plain_labels,
    _site_findings,
    path_rules,
    placement_clear,
    same_pair_rule,
    sites_rule,
)
from stimctl.rules.profile import Profile, parse_profile
from stimctl.rules.safety import _QUIET_RULES, ALL_RULES, _quiet, run_rules


@pytest.mark.parametrize("seed", [3, 4])
def test_run_rules_finds_what_every_rule_finds(seed: int) -> None:
    rng = random.Random(seed)
    clear = 0
    for profile in parsable(generate(300, seed)):
        patient = rng.choice([(), (), ("pregnant",), tuple(PATIENT_FLAGS)])
        envelope = SafetyEnvelope()
        found = [v.to_dict() for v in run_rules(profile, envelope, patient)]
        ctx = RuleContext(profile, envelope, patient)
        every = [v.to_dict() for rule in ALL_RULES for v in rule(ctx)]
        assert found == every
        clear += placement_clear(ctx)
    assert clear > 0  # some profiles take the shortcut, some do not (next test)


@pytest.mark.parametrize("seed", [5, 6])
def test_placement_clear_only_where_sites_and_paths_find_nothing(seed: int) -> None:
    answers = set()
    for profile in parsable(generate(300, seed)):
        ctx = RuleContext(profile, SafetyEnvelope())
        found = [*sites_rule(ctx), *path_rules(ctx)]
        if placement_clear(ctx):
            assert found == []
        answers.add(placement_clear(ctx))
    assert answers == {True, False}


def _channels(pairs: list[tuple[str, str]]) -> Profile:
    return parse_profile(
        {
            "schema": "stimctl.profile/1",
            "name": "t",
            "waveform": {"shape": "biphasic_symmetric"},
            "channels": [
                {"id": k, "anode": a, "cathode": c, "amplitude_ma": 1.0}
                for k, (a, c) in enumerate(pairs, start=1)
            ],
            "phases": [
                {
                    "duration_s": 60.0,
                    "mode": "continuous",
                    "frequency_hz": 2.0,
                    "pulse_width_us": 200.0,
                    "ramp_up_s": 5.0,
                }
            ],
        }
    )


def _two_channels(anode: str, cathode: str) -> Profile:
    return _channels([("ST36-L", "ST37-L"), (anode, cathode)])


@pytest.mark.parametrize(
    ("anode", "cathode"),
    [
        ("st36-r", "ST37-R"),  # written unlike its label
        ("XX1", "ST37-R"),  # not a site
        ("ST36-R", "ST36-R"),  # a channel from a site to itself
        ("CV24", "ST37-R"),  # a site reported for itself (lips)
        ("ST9-R", "ST37-R"),  # anterior neck
        ("ST36-R", "ST36-L"),  # across the midline
        ("LI4-L", "ST36-L"),  # through the thorax
    ],
)
def test_a_channel_with_a_placement_finding_is_not_clear(anode: str, cathode: str) -> None:
    ctx = RuleContext(_two_channels(anode, cathode), SafetyEnvelope())
    assert [*sites_rule(ctx), *path_rules(ctx)]
    assert not placement_clear(ctx)


def test_two_channels_along_one_leg_are_clear() -> None:
    ctx = RuleContext(_two_channels("ST36-R", "ST37-R"), SafetyEnvelope())
    assert placement_clear(ctx)


def test_plain_labels_are_the_unreported_sites_written_as_their_labels() -> None:
    """placement_clear reads a text in _plain_labels as a site written as its label that
    _site_findings does not report: every catalogue site is in it exactly when that holds."""
    plain = _plain_labels()
    labels = set()
    for code, point in catalogue().items():
        for side in (None,) if point.midline else ("L", "R"):
            site = parse_site(code if side is None else f"{code}-{side}")
            labels.add(site.label)
            reported = list(_site_findings(site, "x"))
            assert (site.label in plain) == (not reported), site.label
            assert not site.normalised
    assert plain <= labels


_SITES = ["ST36-L", "ST37-L", "LI4-L", "GV20", "SP6-L"]


@given(st.lists(st.tuples(st.sampled_from(_SITES), st.sampled_from(_SITES)), max_size=7))
def test_same_pair_rule_finds_each_channel_on_an_earlier_channels_pair(
    pairs: list[tuple[str, str]],
) -> None:
    """same_pair_rule returns early unless some channel has both sites shared: it still finds
    every channel whose two sites an earlier channel runs between."""
    pairs = [("ST36-L", "ST37-L"), *pairs]
    profile = _channels(pairs)
    found = [v.loc for v in same_pair_rule(RuleContext(profile, SafetyEnvelope()))]
    expected = []
    for i, (a, c) in enumerate(pairs):
        earlier = {frozenset(p) for p in pairs[:i] if p[0] != p[1]}
        if a != c and frozenset((a, c)) in earlier:
            expected.append(f"channels[{i}]")
    assert found == expected


_ENVELOPES = [
    SafetyEnvelope(),
    SafetyEnvelope(max_amplitude_ma=2.0),  # channel_rules finds amplitudes
    SafetyEnvelope(max_channels=3),  # and channel counts
]


@pytest.mark.parametrize("seed", [7, 8])
def test_each_quiet_bit_leaves_out_only_rules_that_find_nothing(seed: int) -> None:
    """safety._quiet: each bit it sets is a premise under which its rules (_QUIET_RULES) find
    nothing; every bit is seen set and clear over the generated profiles and envelopes."""
    rng = random.Random(seed)
    seen: dict[int, set[bool]] = {bit: set() for bit in range(len(_QUIET_RULES))}
    for profile in parsable(generate(300, seed)):
        patient = rng.choice([(), ("pregnant",), tuple(PATIENT_FLAGS)])
        ctx = RuleContext(profile, rng.choice(_ENVELOPES), patient)
        quiet = _quiet(ctx)
        for bit, rules in enumerate(_QUIET_RULES):
            seen[bit].add(bool(quiet >> bit & 1))
            if quiet >> bit & 1:
                assert [v for rule in rules for v in rule(ctx)] == [], (bit, profile.name)
    assert all(answers == {True, False} for answers in seen.values()), seen
