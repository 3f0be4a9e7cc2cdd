"""site-mouth: IEC 60601-2-10 warns against stimulation in and at the mouth (DESIGN.md); the
catalogue's notes name GV26-GV28 and CV24 as the points at the mouth."""

from __future__ import annotations

import pytest

from stimctl.rules.envelope import RULES
from stimctl.rules.profile import parse_profile
from stimctl.rules.validation import validate_profile


def profile(anode: str, cathode: str) -> dict:
    return {
        "schema": "stimctl.profile/1", "name": "mouth",
        "waveform": {"shape": "biphasic_symmetric"},
        "channels": [{"id": 1, "anode": anode, "cathode": cathode, "amplitude_ma": 0.5}],
        "phases": [{"duration_s": 600, "mode": "continuous", "frequency_hz": 2,
                    "pulse_width_us": 200, "ramp_up_s": 10}],
    }  # fmt: skip


def findings(anode: str, cathode: str) -> set[tuple[str, str, str]]:
    report = validate_profile(parse_profile(profile(anode, cathode)))
    return {(v.code, v.severity, v.loc) for v in report.violations}


def test_an_electrode_inside_the_mouth_is_an_error() -> None:
    """GV28 (Yinjiao) is needled inside the upper lip, at the frenulum on the gum: intraoral.
    It passed with no finding (only the orbit and the anterior neck had site rules)."""
    assert ("site-mouth", "error", "channels[0].anode") in findings("GV28", "GB14-L")
    assert ("site-mouth", "error", "channels[0].cathode") in findings("GB14-L", "du28")


@pytest.mark.parametrize("point", ["GV26", "GV27", "CV24"])
def test_an_electrode_at_the_lips_is_a_warning(point: str) -> None:
    assert ("site-mouth", "warning", "channels[0].anode") in findings(point, "GB14-L")


def test_site_mouth_names_its_source() -> None:
    rule = RULES["site-mouth"]
    assert rule.severity == "error"
    assert "IEC 60601-2-10" in rule.source and "mouth" in rule.source
    assert "GV28" in rule.source
