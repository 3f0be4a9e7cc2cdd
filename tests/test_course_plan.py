"""Course plans (stimctl.course/1): the shipped plans, the session arithmetic, located errors,
and `stimctl course validate`."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pytest

from stimctl.cli import main
from stimctl.clinic.plan import load_plan, plan_report
from stimctl.rules.validation import validate_file

ROOT = Path(__file__).resolve().parent.parent
COURSES = ROOT / "courses"
CHRONIC = COURSES / "migraine-chronic.toml"
EPISODIC = COURSES / "migraine-episodic.toml"

MINIMAL = """\
schema = "stimctl.course/1"
name = "two stages"
source = "test"
baseline_days = 14
interval_days = 7
response_check_session = 2

[[stages]]
sessions = [1, 2]
name = "manual"
profile = "none"

[[stages]]
sessions = [3, 4]
name = "EA"
profile = "p.toml"

[[taper]]
sessions = 2
interval_days = 14

[[measures]]
kind = "hit6"
sessions = [1, 6]
"""


def _report(text: str, profiles: dict[str, bytes] | None = None):  # type: ignore[no-untyped-def]
    seed = (ROOT / "profiles" / "seed-st36-lr3.toml").read_bytes()
    files = {"p.toml": seed} if profiles is None else profiles
    return plan_report(text.encode(), lambda ref: files[ref], "plan.toml")


@pytest.mark.parametrize("path", sorted(COURSES.glob("*.toml")), ids=lambda p: p.name)
def test_every_shipped_plan_validates_with_its_profiles(path: Path) -> None:
    report, loaded = load_plan(path)
    assert report.violations == ()
    assert loaded is not None and loaded.profiles
    for ref in loaded.profiles:
        profile_file = (path.parent / ref).resolve()
        assert profile_file.parent == ROOT / "profiles"
        assert validate_file(profile_file).ok


@pytest.mark.parametrize("path", [CHRONIC, EPISODIC], ids=lambda p: p.name)
def test_migraine_plans_give_st36_lr3_at_2_hz_0_5_ma_from_session_4(path: Path) -> None:
    _, loaded = load_plan(path)
    assert loaded is not None
    plan = loaded.plan
    assert plan.ea_from_session == 4 and plan.response_check_session == 6
    assert loaded.profile_for(3) is None
    profile = loaded.profile_for(4)
    assert profile is not None
    channel = profile.profile.channels[0]
    assert (channel.anode, channel.cathode, channel.amplitude_ma) == ("ST36-L", "LR3-L", 0.5)
    assert {phase.frequency_hz for phase in profile.profile.phases} == {2}
    assert "from session 4" in plan.source  # the simplification is said


def test_chronic_plan_is_16_weekly_sessions_then_two_weekly_x4_and_monthly_x3() -> None:
    _, loaded = load_plan(CHRONIC)
    assert loaded is not None
    plan = loaded.plan
    assert (plan.weekly_sessions, plan.total_sessions, plan.baseline_days) == (16, 23, 14)
    gaps = [plan.interval_before(n) for n in range(2, 24)]
    assert gaps == [7] * 15 + [14] * 4 + [28] * 3


def test_episodic_plan_is_10_weekly_sessions() -> None:
    _, loaded = load_plan(EPISODIC)
    assert loaded is not None and loaded.plan.weekly_sessions == 10


def test_planned_dates_keep_each_interval() -> None:
    report, loaded = _report(MINIMAL)
    assert report.ok and loaded is not None
    dates = loaded.plan.planned_dates(date(2026, 1, 1))
    assert [d.isoformat() for d in dates] == [
        "2026-01-01", "2026-01-08", "2026-01-15", "2026-01-22", "2026-02-05", "2026-02-19",
    ]  # fmt: skip
    assert loaded.plan.measures_due(6) == ("hit6",) and loaded.plan.measures_due(2) == ()
    assert loaded.plan.stage_for(6).name == "EA" and loaded.plan.in_taper(5)


@pytest.mark.parametrize(
    ("old", "new", "loc", "message"),
    [
        ('schema = "stimctl.course/1"', 'schema = "stimctl.course/2"', "schema",
         "schema must be exactly 'stimctl.course/1'"),
        ("sessions = [3, 4]", "sessions = [4, 5]", "stages[1].sessions",
         "should start at session 3"),
        ("sessions = [3, 4]", "sessions = [4, 3]", "stages[1].sessions",
         "first session 4 is after last session 3"),
        ("interval_days = 7", "interval_days = 0", "interval_days", "greater than or equal to 1"),
        ('kind = "hit6"', 'kind = "sf12"', "measures[0].kind", "Input should be"),
        ("sessions = [1, 6]", "sessions = [1, 7]", "measures[0].sessions[1]",
         "session 7 is beyond the plan (6 sessions)"),
        ("response_check_session = 2", "response_check_session = 5", "response_check_session",
         "after the last stage"),
        ('source = "test"', 'source = "test"\ncolour = 1', "colour", "unknown key"),
    ],
)  # fmt: skip
def test_plan_errors_are_located(old: str, new: str, loc: str, message: str) -> None:
    report, loaded = _report(MINIMAL.replace(old, new, 1))
    assert loaded is None
    assert [(v.code, v.loc) for v in report.errors] == [("course-schema", loc)]
    assert message in report.errors[0].message


def test_a_missing_profile_is_reported_at_the_stage_that_names_it() -> None:
    report, loaded = _report(MINIMAL, profiles={})
    assert loaded is None
    assert [(v.code, v.loc) for v in report.errors] == [("course-schema", "stages[1].profile")]
    assert "'p.toml' cannot be read" in report.errors[0].message


def test_a_profile_breaking_a_safety_rule_fails_the_plan_with_that_rule() -> None:
    seed = (ROOT / "profiles" / "seed-st36-lr3.toml").read_text()
    bad = seed.replace("amplitude_ma = 0.5", "amplitude_ma = 10.5").encode()
    report, loaded = _report(MINIMAL, {"p.toml": bad})
    assert loaded is None
    found = {v.code: v for v in report.errors}
    assert found["amplitude-max"].loc == "stages[1].profile"
    assert found["amplitude-max"].message.startswith("p.toml: channels[0].amplitude_ma:")


def test_not_toml_is_a_located_schema_error() -> None:
    report, loaded = _report("schema = ")
    assert loaded is None and report.errors[0].message.startswith("not valid TOML")


def test_course_validate_exits_0_for_a_shipped_plan(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["course", "validate", str(CHRONIC)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"ok   {CHRONIC}: 0 errors, 0 warnings")
    assert "23 sessions" in out and "EA from session 4" in out


def test_course_validate_exits_1_with_located_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plan = tmp_path / "bad.toml"
    plan.write_text(MINIMAL.replace("interval_days = 7", "interval_days = -7"))
    assert main(["course", "validate", str(plan), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert document["ok"] is False
    codes = [(v["code"], v["loc"]) for v in document["violations"]]
    assert ("course-schema", "interval_days") in codes


def test_course_validate_exits_2_for_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["course", "validate", str(tmp_path / "none.toml")]) == 2
    assert "no such plan file" in capsys.readouterr().err
