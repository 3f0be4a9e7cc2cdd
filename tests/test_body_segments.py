"""Body segments and current paths: path-transthoracic, path-transcerebral, eye and periorbital."""

from __future__ import annotations

import pytest

from stimctl import validate_profile
from stimctl.rules.acupoints import catalogue, parse_site
from stimctl.rules.body import REGION_SEGMENT, SEGMENTS, segment_of, thoracic_path
from stimctl.rules.envelope import RULES
from stimctl.rules.profile import Profile, parse_profile


def _pair(anode: str, cathode: str) -> Profile:
    return parse_profile(
        {
            "schema": "stimctl.profile/1",
            "name": "t",
            "waveform": {"shape": "biphasic_symmetric"},
            "channels": [{"id": 1, "anode": anode, "cathode": cathode, "amplitude_ma": 0.5}],
            "phases": [
                {
                    "duration_s": 600,
                    "mode": "continuous",
                    "frequency_hz": 2,
                    "pulse_width_us": 200,
                    "ramp_up_s": 10,
                    "ramp_down_s": 10,
                }
            ],
        }
    )


def _findings(anode: str, cathode: str) -> dict[str, str]:
    return {v.code: v.severity for v in validate_profile(_pair(anode, cathode)).violations}


# --- the segment model ------------------------------------------------------------------------


def test_every_catalogue_point_lands_in_a_segment_on_every_side_it_takes() -> None:
    for point in catalogue().values():
        sides = (None,) if point.midline else ("L", "R")
        for side in sides:
            site = parse_site(point.code if side is None else f"{point.code}-{side}")
            assert segment_of(site) in SEGMENTS, site.label


def test_every_region_maps_to_a_segment() -> None:
    from stimctl.rules.acupoints import REGIONS

    assert set(REGION_SEGMENT) == set(REGIONS)


def test_no_midline_point_lies_on_a_limb() -> None:
    assert not [p.code for p in catalogue().values() if p.midline and p.region.endswith("_limb")]


@pytest.mark.parametrize(
    ("site", "segment"),
    [
        ("ST36-L", "left leg"),
        ("PC6-R", "right arm"),
        ("CV17", "chest"),
        ("GV14", "neck"),
        ("BL15-L", "upper back"),
        ("BL23-L", "lower trunk"),
        ("ST25-R", "lower trunk"),
        ("BL32-L", "lower trunk"),
        ("GV20", "head"),
        ("BL2-L", "head"),
    ],
)
def test_segment_spot_checks(site: str, segment: str) -> None:
    assert segment_of(parse_site(site)) == segment


# --- the paths through the thorax ------------------------------------------------------


@pytest.mark.parametrize(
    ("anode", "cathode", "path"),
    [
        ("CV17", "PC6-L", "chest -> left arm"),
        ("PC6-L", "ST36-L", "left arm -> thorax -> left leg"),
        ("GV14", "CV17", "neck -> chest"),
        ("LU1-L", "BL23-L", "chest -> lower trunk"),
    ],
)
def test_paths_through_the_thorax_are_refused_and_named(
    anode: str, cathode: str, path: str
) -> None:
    report = validate_profile(_pair(anode, cathode))
    [finding] = [v for v in report.violations if v.code == "path-transthoracic"]
    assert (finding.severity, finding.loc) == ("error", "channels[0]")
    assert f"current path {path} crosses the thorax" in finding.message
    assert not report.ok


@pytest.mark.parametrize(
    ("anode", "cathode"),
    [
        ("LI4-L", "LI4-R"),  # arm to the other arm
        ("PC6-L", "CV4"),  # arm to the lower trunk
        ("PC6-L", "GV20"),  # arm to the head
        ("LI11-L", "BL15-L"),  # arm to the upper back
        ("ST36-L", "CV17"),  # leg to the chest
        ("ST36-L", "BL15-L"),  # leg to the upper back
        ("ST36-L", "GB20-L"),  # leg to the neck
        ("ST36-L", "GV20"),  # leg to the head
        ("CV17", "BL15-L"),  # chest to the upper back
        ("CV17", "GV4"),  # chest to the low back
        ("CV17", "BL32-L"),  # chest to the sacrum
        ("CV17", "GV20"),  # chest to the head
        ("LU1-L", "LU1-R"),  # left to right across the chest
        ("BL15-L", "BL15-R"),  # left to right across the upper back
        ("BL15-L", "CV12"),  # upper back to the abdomen
        ("CV4", "GV20"),  # lower trunk to the head
        ("GV4", "GV14"),  # lower trunk to the neck
    ],
)
def test_every_listed_crossing_is_transthoracic(anode: str, cathode: str) -> None:
    assert _findings(anode, cathode).get("path-transthoracic") == "error"
    assert _findings(cathode, anode).get("path-transthoracic") == "error"


@pytest.mark.parametrize(
    ("anode", "cathode", "expected"),
    [
        ("ST36-L", "LR3-L", {}),  # one leg
        ("PC6-L", "LI4-L", {}),  # one arm
        ("LI15-L", "LI4-L", {}),  # shoulder to hand: one arm
        ("BL15-L", "BL23-L", {}),  # paravertebral, one side of the back
        ("BL13-L", "BL17-L", {}),  # upper back, one side
        ("GV14", "BL15-R", {}),  # neck to upper back (midline: neither side)
        ("CV12", "ST25-L", {}),  # abdomen
        ("CV17", "CV12", {}),  # chest to abdomen along the front
        ("ST25-L", "ST25-R", {"path-contralateral": "warning"}),  # abdomen across the midline
        ("BL23-L", "BL23-R", {"path-contralateral": "warning"}),  # low back across
        ("ST25-L", "ST36-L", {}),  # lower trunk to a leg
        ("BL23-L", "BL40-L", {}),  # low back to a leg
        ("ST36-L", "ST36-R", {"path-contralateral": "warning"}),  # legs across (as before)
    ],
)
def test_everyday_pairs_stay_legal(anode: str, cathode: str, expected: dict[str, str]) -> None:
    assert _findings(anode, cathode) == expected


def test_thoracic_path_is_none_for_a_pair_on_one_limb() -> None:
    assert thoracic_path(parse_site("ST36-L"), parse_site("SP6-L")) is None


# --- the head ----------------------------------------------------------------------------------


def test_transcerebral_is_unchanged_left_to_right_across_the_head() -> None:
    assert _findings("GB8-L", "GB8-R") == {
        "path-contralateral": "error",
        "path-transcerebral": "error",
    }


def test_a_midline_head_point_is_never_on_the_opposite_side() -> None:
    assert _findings("GV20", "GB8-R") == {}


@pytest.mark.parametrize("code", ["BL1", "ST1"])
def test_points_in_the_orbit_are_site_eye_errors(code: str) -> None:
    report = validate_profile(_pair(f"{code}-L", "GB14-L"))
    assert [(v.code, v.severity, v.loc) for v in report.violations] == [
        ("site-eye", "error", "channels[0].anode")
    ]


@pytest.mark.parametrize("code", ["BL2", "GB1", "ST2", "TE23"])
def test_periorbital_points_are_a_warning_of_their_own(code: str) -> None:
    report = validate_profile(_pair("GB14-L", f"{code}-L"))
    assert report.ok
    assert [(v.code, v.severity, v.loc) for v in report.violations] == [
        ("site-periorbital", "warning", "channels[0].cathode")
    ]


def test_periorbital_rule_names_its_source() -> None:
    assert "BL2" in RULES["site-periorbital"].source
    assert RULES["site-periorbital"].severity == "warning"


def test_the_path_table_gives_what_thoracic_path_gives_for_every_pair_of_sites() -> None:
    """body.path_between reads thoracic_path's answers from a table made at import."""
    from stimctl.rules import acupoints
    from stimctl.rules.body import path_between, thoracic_path

    sites = [
        acupoints.parse_site(code if side is None else f"{code}-{side}")
        for code, point in acupoints._load().items()
        for side in (("L", "R") if point.bilateral else (None,))
    ]
    ends = {(s.point.region, s.side): s for s in sites}  # one site per (region, side)
    assert len(ends) > 20
    for a in ends.values():
        for b in ends.values():
            assert path_between(a, b) == thoracic_path(a, b)
