"""`stimctl course|diary|measure` against a SQLite clinic database: the course keeps the plan it
began with, sessions are numbered, bad values are refused with nothing stored, the migrations
create the course tables the models describe."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from test_clinic_db import url  # noqa: F401  (the fixture: SQLite, and PostgreSQL if set)

from stimctl.cli import main
from stimctl.clinic.db import open_database
from stimctl.clinic.schema import ensure_current, target_metadata

ROOT = Path(__file__).resolve().parent.parent
CHRONIC = ROOT / "courses" / "migraine-chronic.toml"
SEED = ROOT / "profiles" / "seed-st36-lr3.toml"


@pytest.fixture
def db(url: str, monkeypatch: pytest.MonkeyPatch) -> str:  # noqa: F811
    """A clinic database with patient P1: SQLite, and PostgreSQL when the test server is set."""
    monkeypatch.setenv("STIMCTL_DB", url)
    assert main(["patient", "add", "P1"]) == 0
    return url


def _json(capsys: pytest.CaptureFixture[str], *args: str) -> object:
    capsys.readouterr()
    assert main(list(args)) == 0
    return json.loads(capsys.readouterr().out)


def _start(capsys: pytest.CaptureFixture[str], plan: Path = CHRONIC) -> int:
    course = _json(capsys, "course", "start", "P1", str(plan), "--start", "2026-01-05", "--json")
    assert isinstance(course, dict)
    return int(course["id"])


def test_migrations_create_the_course_tables_the_models_describe(url: str) -> None:  # noqa: F811
    database = open_database(url)
    try:
        ensure_current(database)
        with database.engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert compare_metadata(context, target_metadata()) == []
    finally:
        database.dispose()


def test_a_course_keeps_the_plan_and_profiles_it_began_with(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import hashlib

    folder = tmp_path / "lib"
    (folder / "courses").mkdir(parents=True)
    (folder / "profiles").mkdir()
    plan = folder / "courses" / "plan.toml"
    plan.write_bytes(CHRONIC.read_bytes())
    profile = folder / "profiles" / "seed-st36-lr3.toml"
    profile.write_bytes(SEED.read_bytes())
    course_id = _start(capsys, plan)
    plan.write_text(CHRONIC.read_text().replace("interval_days = 7", "interval_days = 3"))
    profile.write_text(SEED.read_text().replace("amplitude_ma = 0.5", "amplitude_ma = 0.4"))
    shown = _json(capsys, "course", "show", str(course_id), "--json")
    assert isinstance(shown, dict)
    assert shown["plan_sha256"] == hashlib.sha256(CHRONIC.read_bytes()).hexdigest()
    assert shown["profiles"] == {
        "../profiles/seed-st36-lr3.toml": hashlib.sha256(SEED.read_bytes()).hexdigest()
    }
    assert shown["sessions"][1]["planned"] == "2026-01-12"  # still weekly


def test_course_show_lists_each_session_done_or_due_and_the_next_due(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    course_id = str(_start(capsys))
    assert main(["course", "log", course_id, "--date", "2026-01-05", "--note", "manual"]) == 0
    shown = _json(capsys, "course", "show", course_id, "--json")
    assert isinstance(shown, dict)
    assert [r["status"] for r in shown["sessions"][:3]] == ["done", "due", "due"]
    assert len(shown["sessions"]) == 23
    assert (shown["next_session"], shown["next_due"], shown["measures_due"]) == (
        2, "2026-01-12", ["hrv"]
    )  # fmt: skip
    assert main(["course", "show", course_id]) == 0
    text = capsys.readouterr().out
    assert "next: session 2 due 2026-01-12; measures due: hrv" in text


def test_course_log_numbers_manual_sessions_in_order(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    course_id = str(_start(capsys))
    for day in ("2026-01-05", "2026-01-12"):
        assert main(["course", "log", course_id, "--date", day]) == 0
    assert "session 2 on 2026-01-12" in capsys.readouterr().out


def test_course_list_by_patient(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    _start(capsys)
    assert main(["patient", "add", "P2"]) == 0
    listed = _json(capsys, "course", "list", "--patient", "P1", "--json")
    assert isinstance(listed, list) and [c["patient"] for c in listed] == ["P1"]
    assert _json(capsys, "course", "list", "--patient", "P2", "--json") == []


def test_course_start_refusals(db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["course", "start", "NOBODY", str(CHRONIC)]) == 1
    assert "no patient 'NOBODY'" in capsys.readouterr().err
    bad = tmp_path / "bad.toml"
    bad.write_text(CHRONIC.read_text().replace("baseline_days = 14", "baseline_days = -1"))
    assert main(["course", "start", "P1", str(bad)]) == 1
    assert "course-schema at baseline_days" in capsys.readouterr().err
    assert main(["course", "start", "P1", str(tmp_path / "none.toml")]) == 2
    assert main(["course", "start", "P1", str(CHRONIC), "--start", "05/01/2026"]) == 2
    assert main(["course", "show", "7"]) == 1
    assert _json(capsys, "course", "list", "--json") == []


def test_course_check_reports_course_rules_and_the_patients_flags(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course_id = str(_start(capsys))
    assert main(["patient", "set", "P1", "--flag", "epilepsy"]) == 0
    checked = _json(capsys, "course", "check", course_id, str(SEED), "--at", "2026-01-05",
                    "--json")  # fmt: skip
    assert isinstance(checked, dict)
    assert checked["session"] == 1 and checked["ok"] is True
    found = {v["code"] for v in checked["violations"]}
    assert {"patient-epilepsy", "course-before-ea-stage", "course-baseline-short"} <= found
    strong = tmp_path / "strong.toml"
    strong.write_text(SEED.read_text().replace("amplitude_ma = 0.5", "amplitude_ma = 10.5"))
    assert main(["course", "check", course_id, str(strong)]) == 1


def test_diary_add_stores_a_day_and_refuses_it_twice(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["diary", "add", "P1", "--date", "2026-01-01", "--headache", "yes", "--intensity", "7",
            "--hours", "5", "--aura", "--medication", "triptan"]  # fmt: skip
    assert main(args) == 0
    assert main(args) == 1
    assert "already has a diary entry for 2026-01-01" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--headache", "yes", "--intensity", "12"], "intensity: 12, allowed 1-10"),
        (["--headache", "maybe"], "headache: 'maybe', allowed yes or no"),
        (["--headache", "yes", "--medication", "aspirin"], "medication: 'aspirin' is not a class"),
        (["--headache", "yes", "--hours", "30"], "hours: 30, allowed 0-24"),
    ],
)
def test_diary_add_refuses_bad_values_with_the_field_and_range(
    db: str, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    assert main(["diary", "add", "P1", "--date", "2026-01-01", *extra]) == 1
    assert message in capsys.readouterr().err


def test_diary_import_is_all_or_nothing(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "diary.csv"
    header = "date,headache,intensity,hours,aura,medication\n"
    csv.write_text(
        header + "2026-01-01,yes,5,2,no,nsaid\n2026-01-02,no,,,,\n2026-01-03,yes,15,,,\n"
    )
    assert main(["diary", "import", "P1", str(csv)]) == 1
    assert f"{csv}:4: intensity: 15, allowed 1-10" in capsys.readouterr().err
    csv.write_text(header + "2026-01-01,yes,5,2,no,nsaid\n2026-01-02,no,,,,\n")
    assert main(["diary", "import", "P1", str(csv)]) == 0  # nothing was kept the first time
    assert "2 diary day(s) stored" in capsys.readouterr().out
    assert main(["diary", "import", "P1", str(csv)]) == 1


def test_measure_add_prints_the_stored_scores(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    hit6 = _json(capsys, "measure", "add", "P1", "hit6", "--date", "2026-01-01", "never",
                 "rarely", "sometimes", "very-often", "always", "6", "--json")  # fmt: skip
    assert isinstance(hit6, dict) and (hit6["total"], hit6["band"]) == (54, "some impact")
    midas = _json(capsys, "measure", "add", "P1", "midas", "--date", "2026-01-01", "1", "2",
                  "3", "4", "5", "--json")  # fmt: skip
    assert isinstance(midas, dict) and (midas["total"], midas["grade"]) == (15, "III")
    ppt = _json(capsys, "measure", "add", "P1", "ppt", "--date", "2026-01-01", "3.5", "4.5",
                "--site", "temporalis", "--json")  # fmt: skip
    assert isinstance(ppt, dict) and ppt["total"] == 4.0


def test_measure_add_refuses_out_of_range_answers(
    db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["measure", "add", "P1", "midas", "--date", "2026-01-01", "60", "31", "0", "0",
                 "0"]) == 1  # fmt: skip
    assert "midas items 1+2: 60 + 31 days, allowed at most 90" in capsys.readouterr().err
    assert main(["measure", "add", "P1", "hit6", "--date", "2026-01-01", *["9"] * 6]) == 1
    assert main(["measure", "add", "P1", "sf12", "--date", "2026-01-01", "1"]) == 2


def test_run_with_a_course_on_a_manual_stage_is_refused(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course_id = str(_start(capsys))
    record = tmp_path / "r.jsonl"
    assert main(["run", "--course", course_id, "--yes", "--record", str(record)]) == 1
    err = capsys.readouterr().err
    assert "session 1 of course 1 is without stimulation in the plan" in err
    assert not record.exists()


def test_run_usage_with_a_course(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    course_id = str(_start(capsys))
    assert main(["run", "--yes"]) == 2
    assert main(["run", "--course", course_id, "--patient", "epilepsy", "--yes"]) == 2
    assert main(["patient", "add", "P2"]) == 0
    capsys.readouterr()
    assert main(["run", str(SEED), "--course", course_id, "--patient-id", "P2", "--yes"]) == 1
    assert "course 1 is patient P1's, not P2's" in capsys.readouterr().err
    assert main(["run", str(SEED), "--course", "99", "--yes"]) == 1
    assert "no course 99" in capsys.readouterr().err


@pytest.mark.parametrize(("suffix", "magic"), [(".svg", b"<?xml"), (".pdf", b"%PDF")])
def test_course_report_format_follows_the_suffix(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str, magic: bytes
) -> None:
    course_id = str(_start(capsys))
    assert main(["course", "log", course_id, "--date", "2026-01-05"]) == 0
    out = tmp_path / f"course{suffix}"
    assert main(["course", "report", course_id, "-o", str(out)]) == 0
    assert out.read_bytes().startswith(magic)
    assert "sessions given 1 of 23" in capsys.readouterr().out


def test_course_report_refuses_an_unknown_suffix(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    course_id = str(_start(capsys))
    assert main(["course", "report", course_id, "-o", str(tmp_path / "course.txt")]) == 2
    assert "the suffix must be one of .png, .svg, .pdf" in capsys.readouterr().err
