"""`stimctl tui --course`: what is stored when the UI ends, through the command's own code (its
clinic row, connector, controller close and course bookkeeping), the UI itself replaced by an
operator who gives the course's stage profile as the set-up screen would (the course stage
chosen, preflight, ARM, START, to the end)."""

from __future__ import annotations

import hashlib
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from test_clinic_db import url  # noqa: F401  (the fixture: SQLite, and PostgreSQL if set)

from stimctl.cli import main
from stimctl.clinic.coursemodels import CourseSession
from stimctl.clinic.db import open_database
from stimctl.clinic.models import ClinicSession
from stimctl.tui.app import StimApp

pytestmark = pytest.mark.timeout(300)

ROOT = Path(__file__).resolve().parent.parent
CHRONIC = ROOT / "courses" / "migraine-chronic.toml"


def _operator_gives_the_stage(app: StimApp) -> int:
    """What the operator does in the UI, on the app's own controller: the course stage chosen
    (SetupScreen.choose: the stage's Profile), preflight, ARM, START, wait for the outcome."""
    ctl = app.controller = app._connect()
    assert app.course is not None and app.course.stage_profile is not None
    ctl.add_rules(app.course.rules)  # as StimApp._connected does
    stage = app.course.stage_profile.profile
    app.profile_path = stage
    ctl.load(stage, patient=app.patient_flags or ())
    ctl.check_impedance()
    ctl.arm(confirm=True, acknowledge_warnings=True)
    ctl.start()
    ctl.wait()
    return 0


@pytest.fixture
def course_at_session_4(url: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """Patient P1 on the chronic plan begun three weeks ago, sessions 1-3 logged (manual):
    session 4, the first with stimulation, is today's."""
    monkeypatch.setenv("STIMCTL_DB", url)
    start = date.today() - timedelta(days=21)
    assert main(["patient", "add", "P1"]) == 0
    assert main(["course", "start", "P1", str(CHRONIC), "--start", start.isoformat()]) == 0
    for n in range(3):
        assert main(["course", "log", "1", "--date", (start + timedelta(7 * n)).isoformat()]) == 0
    return url


def test_a_course_session_given_in_the_tui_is_numbered_with_its_dose_and_stage(
    course_at_session_4: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(StimApp, "run", _operator_gives_the_stage)
    record = tmp_path / "session.jsonl"
    code = main(["tui", "--course", "1", "--speed", "max", "--operator", "T. Nurse",
                 "--record", str(record)])  # fmt: skip
    assert code == 0
    database = open_database(course_at_session_4)
    try:
        with database.session() as session:
            given = session.scalars(select(CourseSession).where(CourseSession.number == 4)).one()
            row = session.scalars(select(ClinicSession)).one()
            stage_sha = hashlib.sha256(
                (ROOT / "profiles" / "seed-st36-lr3.toml").read_bytes()
            ).hexdigest()
            assert (given.kind, given.day) == ("stimulation", date.today())
            assert given.session_id == row.id  # the course session is this row's
            assert given.peak_ma == 0.5 and given.duration_s == 1800.0
            assert given.profile_sha256 == stage_sha  # the stage's stored copy
            assert (row.outcome, row.exit_code, row.operator) == ("COMPLETED", 0, "T. Nurse")
            assert row.delivered_s == 1800.0
    finally:
        database.dispose()
    assert record.exists()
