"""Course rules as pure functions: escalation without response (and its fail-safe), the stage,
interval and plan-length warnings, diary warnings, medication overuse (ICHD-3 8.2), responder."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest

from stimctl.clinic.courserules import CourseFacts, Dose, GivenSession, course_rules, profile_dose
from stimctl.clinic.diary import DiaryEntry
from stimctl.clinic.plan import load_plan
from stimctl.rules.envelope import RULES
from stimctl.rules.profile import Profile

ROOT = Path(__file__).resolve().parent.parent
_, LOADED = load_plan(ROOT / "courses" / "migraine-chronic.toml")
assert LOADED is not None
PLAN = LOADED.plan
_STAGE = LOADED.profile_for(4)
assert _STAGE is not None
SEED: Profile = _STAGE.profile
START = date(2026, 1, 15)
SESSION_7 = START + timedelta(days=42)


def stronger(amplitude_ma: float = 0.8) -> Profile:
    channel = SEED.channels[0].model_copy(update={"amplitude_ma": amplitude_ma})
    return SEED.model_copy(update={"channels": [channel]})


def diary(first: date, days: int, headache_per_28: float, **extra: object) -> list[DiaryEntry]:
    """``days`` consecutive entries from ``first`` with headache on ``headache_per_28``/28 days."""
    out = []
    for i in range(days):
        ache = (i * headache_per_28) % 28 < headache_per_28
        out.append(DiaryEntry(first + timedelta(days=i), ache, 5 if ache else None, **extra))  # type: ignore[arg-type]
    return out


def sessions(count: int, dose: Dose | None = None) -> tuple[GivenSession, ...]:
    """Weekly sessions 1..count from START; 1-3 manual, 4 on at the seed profile's dose."""
    dose = dose or profile_dose(SEED)
    return tuple(GivenSession(n, START + timedelta(days=7 * (n - 1)), dose if n >= 4 else None)
                 for n in range(1, count + 1))  # fmt: skip


def facts(recent_per_28: float, *, diary_days: int = 42, baseline_days: int = 14) -> CourseFacts:
    """Baseline 18/28 before START, 14 days at 18/28, then ``recent_per_28`` up to session 7."""
    entries = diary(START - timedelta(days=baseline_days), baseline_days, 18)
    entries += diary(START, 14, 18)
    entries += diary(START + timedelta(days=14), diary_days - 14, recent_per_28)
    return CourseFacts(PLAN, START, sessions(6), tuple(entries))


def codes(found: tuple) -> list[str]:  # type: ignore[type-arg]
    return [v.code for v in found]


def test_diary_helper_makes_the_asked_rate() -> None:
    assert sum(e.headache for e in diary(START, 28, 17)) == 17


def test_escalation_without_response_is_refused_and_says_re_evaluate() -> None:
    found = course_rules(facts(17), stronger(), SESSION_7)
    errors = [v for v in found if v.severity == "error"]
    assert {v.code for v in errors} == {"course-escalation"}
    assert {v.loc for v in errors} == {"dose.peak_ma", "dose.phase_charge_uc", "dose.rms_ma"}
    peak = next(v for v in errors if v.loc == "dose.peak_ma")
    assert (peak.limit, peak.actual) == (0.5, 0.8)
    assert "not 30% below the baseline 18.0/28" in peak.message
    assert "re-evaluate the diagnosis" in peak.message
    assert peak.source == RULES["course-escalation"].source


def test_escalation_with_response_is_allowed() -> None:
    assert "course-escalation" not in codes(course_rules(facts(8), stronger(), SESSION_7))


def test_response_threshold_is_30_percent_below_baseline() -> None:
    # baseline 18/28: 12.6 is the line; 12 is below it, 13 is not
    assert "course-escalation" not in codes(course_rules(facts(12), stronger(), SESSION_7))
    assert "course-escalation" in codes(course_rules(facts(13), stronger(), SESSION_7))


def test_the_plans_own_profile_is_not_an_escalation() -> None:
    assert "course-escalation" not in codes(course_rules(facts(17), SEED, SESSION_7))


def test_a_session_delivered_to_within_a_second_counts_its_whole_duration() -> None:
    assert profile_dose(SEED, delivered_s=1799.982).duration_s == 1800.0
    assert profile_dose(SEED, delivered_s=600.0).duration_s == 600.0
    stopped_early = sessions(6, profile_dose(SEED, delivered_s=600.0))
    facts17 = CourseFacts(PLAN, START, stopped_early, facts(17).diary)
    found = course_rules(facts17, SEED, SESSION_7)
    assert [v.loc for v in found if v.code == "course-escalation"] == ["dose.duration_s"]


def test_a_longer_session_is_an_escalation() -> None:
    phase = SEED.phases[0].model_copy(update={"duration_s": 2400.0})
    longer = SEED.model_copy(update={"phases": [phase]})
    found = course_rules(facts(17), longer, SESSION_7)
    assert [v.loc for v in found if v.code == "course-escalation"] == ["dose.duration_s"]


def test_escalation_is_judged_only_after_the_response_check_session() -> None:
    early = CourseFacts(PLAN, START, sessions(5), facts(17).diary)
    assert "course-escalation" not in codes(course_rules(early, stronger(), START + timedelta(35)))


def test_without_21_of_28_diary_days_escalation_is_refused_as_unjudged() -> None:
    base = facts(8)
    gappy = tuple(e for e in base.diary if not (SESSION_7 - timedelta(8) <= e.day < SESSION_7))
    found = course_rules(CourseFacts(PLAN, START, base.sessions, gappy), stronger(), SESSION_7)
    escalation = [v for v in found if v.code == "course-escalation"]
    assert (
        escalation and "cannot be judged: diary on 20 of the last 28 days" in escalation[0].message
    )


def test_without_a_baseline_escalation_is_refused_as_unjudged() -> None:
    base = facts(8)
    no_baseline = tuple(e for e in base.diary if e.day >= START)
    found = course_rules(
        CourseFacts(PLAN, START, base.sessions, no_baseline), stronger(), SESSION_7
    )
    escalation = [v for v in found if v.code == "course-escalation"]
    assert escalation and "no baseline" in escalation[0].message
    assert "course-baseline-short" in codes(found)


def test_nothing_delivered_yet_makes_any_stimulation_after_the_check_an_escalation() -> None:
    manual = tuple(GivenSession(n, START + timedelta(7 * (n - 1))) for n in range(1, 7))
    unfinished = CourseFacts(PLAN, START, manual, facts(17).diary)
    assert "course-escalation" in codes(course_rules(unfinished, SEED, SESSION_7))


def test_stimulation_before_the_ea_stage_is_a_warning() -> None:
    early = CourseFacts(PLAN, START, sessions(1), facts(17).diary)
    found = course_rules(early, SEED, START + timedelta(7))
    warning = next(v for v in found if v.code == "course-before-ea-stage")
    assert (warning.severity, warning.limit, warning.actual) == ("warning", 4, 2)
    assert "course-before-ea-stage" not in codes(course_rules(early, None, START + timedelta(7)))


def test_a_session_sooner_than_the_interval_is_a_warning() -> None:
    found = course_rules(facts(17), SEED, START + timedelta(days=38))
    warning = next(v for v in found if v.code == "course-interval-short")
    assert (warning.limit, warning.actual) == (7, 3)
    assert "course-interval-short" not in codes(course_rules(facts(17), SEED, SESSION_7))


def test_sessions_beyond_the_plan_are_a_warning() -> None:
    base = facts(8)
    done = tuple(GivenSession(n, START + timedelta(n)) for n in range(1, 24))
    found = course_rules(CourseFacts(PLAN, START, done, base.diary), None, START + timedelta(200))
    assert "course-beyond-plan" in codes(found)


def test_a_short_baseline_is_a_warning() -> None:
    found = course_rules(facts(8, baseline_days=10), SEED, SESSION_7)
    warning = next(v for v in found if v.code == "course-baseline-short")
    assert (warning.limit, warning.actual) == (14, 10)


def test_no_diary_in_the_last_14_days_is_a_warning() -> None:
    found = course_rules(facts(8), SEED, SESSION_7 + timedelta(days=15))
    assert "course-diary-stale" in codes(found)
    assert "course-diary-stale" not in codes(course_rules(facts(8), SEED, SESSION_7))


def _medicated(per_30: int, classes: tuple[str, ...], days: int = 95) -> CourseFacts:
    first = SESSION_7 - timedelta(days=days - 1)
    entries = tuple(
        DiaryEntry(first + timedelta(i), True, 5, None, False,
                   classes if (i * per_30) % 30 < per_30 else ())
        for i in range(days)
    )  # fmt: skip
    return CourseFacts(PLAN, START, sessions(6), entries)


@pytest.mark.parametrize(
    ("per_30", "classes", "suspected"),
    [
        (10, ("triptan",), True),
        (9, ("triptan",), False),
        (10, ("opioid",), True),
        (10, ("combination",), True),
        (10, ("ergot",), True),
        (14, ("paracetamol",), False),
        (15, ("nsaid",), True),
    ],
)
def test_medication_overuse_thresholds_per_class(
    per_30: int, classes: tuple[str, ...], suspected: bool
) -> None:
    found = course_rules(_medicated(per_30, classes), SEED, SESSION_7)
    assert ("course-medication-overuse" in codes(found)) is suspected


def test_several_classes_none_overused_alone_count_together_ichd_8_2_6() -> None:
    entries = []
    first = SESSION_7 - timedelta(days=94)
    for i in range(95):
        medication = ("triptan",) if i % 6 == 0 else ("nsaid",) if i % 6 == 3 else ()
        entries.append(DiaryEntry(first + timedelta(i), True, 5, None, False, medication))
    found = course_rules(CourseFacts(PLAN, START, sessions(6), tuple(entries)), SEED, SESSION_7)
    overuse = [v for v in found if v.code == "course-medication-overuse"]
    assert len(overuse) == 1 and "8.2.6" in overuse[0].message


def test_medication_overuse_needs_more_than_3_months_of_diary() -> None:
    found = course_rules(_medicated(20, ("triptan",), days=80), SEED, SESSION_7)
    assert "course-medication-overuse" not in codes(found)


def test_responder_in_two_windows_is_an_information() -> None:
    base = facts(18)
    entries = diary(START - timedelta(14), 14, 18) + diary(START, 120, 6)
    responder = CourseFacts(PLAN, START, base.sessions, tuple(entries))
    found = course_rules(responder, SEED, START + timedelta(days=100))
    info = next(v for v in found if v.code == "course-responder")
    assert info.severity == "info" and "the taper from session 17 applies" in info.message
    late = diary(START - timedelta(14), 14, 18) + diary(START, 72, 18)
    late += diary(START + timedelta(72), 28, 6)
    one_window = CourseFacts(PLAN, START, base.sessions, tuple(late))
    assert "course-responder" not in codes(course_rules(one_window, SEED, START + timedelta(100)))


def test_every_course_rule_code_is_in_the_rule_table_with_a_source() -> None:
    course_codes = {c for c in RULES if c.startswith("course-")}
    assert course_codes == {
        "course-schema", "course-escalation", "course-before-ea-stage", "course-interval-short",
        "course-beyond-plan", "course-baseline-short", "course-diary-stale",
        "course-medication-overuse", "course-responder",
    }  # fmt: skip
    assert all(RULES[c].source for c in course_codes)
