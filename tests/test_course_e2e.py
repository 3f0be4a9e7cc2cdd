"""The course end to end on the simulator (issue 14's acceptance script).

One patient on the chronic plan: 14 baseline diary days at 18 headache days/28, sessions 1-3
logged (manual), sessions 4-6 run on the virtual clock. The database is then copied: in one copy
the diary shows 17 days/28 at session 7 (no response), in the other 8 days/28 (response).
"""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from stimctl.cli import main
from stimctl.clinic.courses import get_course, session_context
from stimctl.clinic.db import open_database
from stimctl.controller import Controller
from stimctl.errors import InterlockError
from stimctl.rules.profile import load_profile

pytestmark = pytest.mark.timeout(600)

ROOT = Path(__file__).resolve().parent.parent
CHRONIC = ROOT / "courses" / "migraine-chronic.toml"
SEED = ROOT / "profiles" / "seed-st36-lr3.toml"
START = date(2025, 3, 3)
SESSION_7 = START + timedelta(days=42)


def diary_csv(path: Path, first: date, days: int, per_28: int) -> Path:
    """``days`` diary rows from ``first`` with headache on ``per_28`` of every 28 days."""
    rows = ["date,headache,intensity,hours,aura,medication"]
    for i in range(days):
        ache = (i * per_28) % 28 < per_28
        cells = ("yes", "6", "4", "", "triptan") if ache else ("no", "", "", "", "")
        rows.append(",".join(((first + timedelta(i)).isoformat(), *cells)))
    path.write_text("\n".join(rows) + "\n")
    return path


def short_profile(folder: Path, amplitude_ma: float, name: str) -> Path:
    """The seed profile at ``amplitude_ma`` for 60 s (shorter than the 30 min delivered)."""
    text = SEED.read_text().replace("amplitude_ma = 0.5", f"amplitude_ma = {amplitude_ma}")
    path = folder / name
    path.write_text(text.replace("duration_s = 1800", "duration_s = 60"))
    return path


class Clinic:
    """Runs `stimctl` in process against one database, on a given day."""

    def __init__(self, db: Path, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.db, self.folder, self.monkeypatch = db, folder, monkeypatch
        self.runs = 0

    def __call__(self, *args: str, today: date | None = None) -> int:
        self.monkeypatch.setenv("STIMCTL_DB", f"sqlite:///{self.db}")
        if today is not None:
            self.monkeypatch.setattr("stimctl.cli.run._today", lambda: today)
        return main(list(args))

    def run(self, *args: str, today: date) -> int:
        self.runs += 1
        record = self.folder / f"run{self.runs}-{self.db.stem}.jsonl"
        return self("run", *args, "--course", "1", "--yes", "--speed", "max",
                    "--record", str(record), today=today)  # fmt: skip

    def copy(self, name: str) -> Clinic:
        target = self.folder / f"{name}.db"
        for suffix in ("", "-wal", "-shm"):
            source = Path(f"{self.db}{suffix}")
            if source.exists():
                shutil.copy(source, f"{target}{suffix}")
        return Clinic(target, self.folder, self.monkeypatch)


@pytest.fixture(scope="module")
def six_sessions(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Clinic]:
    folder = tmp_path_factory.mktemp("course")
    with pytest.MonkeyPatch.context() as monkeypatch:
        clinic = Clinic(folder / "clinic.db", folder, monkeypatch)
        assert clinic("patient", "add", "P1", "--born", "1984") == 0
        assert clinic("course", "start", "P1", str(CHRONIC), "--start", START.isoformat()) == 0
        baseline = diary_csv(folder / "baseline.csv", START - timedelta(14), 14, 18)
        assert clinic("diary", "import", "P1", str(baseline)) == 0
        first = diary_csv(folder / "first.csv", START, 14, 18)
        assert clinic("diary", "import", "P1", str(first)) == 0
        assert clinic("measure", "add", "P1", "hit6", "--date", START.isoformat(),
                      *["very-often"] * 6) == 0  # fmt: skip
        assert clinic("measure", "add", "P1", "midas", "--date", START.isoformat(),
                      "10", "5", "3", "2", "4") == 0  # fmt: skip
        for n in (1, 2, 3):
            day = START + timedelta(days=7 * (n - 1))
            assert clinic("course", "log", "1", "--date", day.isoformat()) == 0
        for n in (4, 5, 6):
            assert clinic.run(today=START + timedelta(days=7 * (n - 1))) == 0
        later = START + timedelta(days=28)
        assert clinic("measure", "add", "P1", "hit6", "--date", later.isoformat(),
                      *["sometimes"] * 6) == 0  # fmt: skip
        yield clinic


@pytest.fixture(scope="module")
def no_response(six_sessions: Clinic) -> Clinic:
    """Diary at 17 headache days/28 in the 28 days before session 7."""
    clinic = six_sessions.copy("no-response")
    csv = diary_csv(clinic.folder / "late17.csv", START + timedelta(14), 28, 17)
    assert clinic("diary", "import", "P1", str(csv)) == 0
    return clinic


@pytest.fixture(scope="module")
def response(six_sessions: Clinic) -> Clinic:
    """Diary at 8 headache days/28 in the 28 days before session 7."""
    clinic = six_sessions.copy("response")
    csv = diary_csv(clinic.folder / "late8.csv", START + timedelta(14), 28, 8)
    assert clinic("diary", "import", "P1", str(csv)) == 0
    return clinic


def _show(clinic: Clinic, capsys: pytest.CaptureFixture[str]) -> dict:  # type: ignore[type-arg]
    capsys.readouterr()
    assert clinic("course", "show", "1", "--json") == 0
    return json.loads(capsys.readouterr().out)


def test_sessions_1_to_6_are_numbered_with_their_dose(
    six_sessions: Clinic, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = _show(six_sessions, capsys)
    done = [r for r in shown["sessions"] if r["status"] == "done"]
    assert [r["number"] for r in done] == [1, 2, 3, 4, 5, 6]
    assert [r["kind"] for r in done] == ["manual"] * 3 + ["stimulation"] * 3
    assert {r["dose"]["peak_ma"] for r in done[3:]} == {0.5}
    assert {r["dose"]["duration_s"] for r in done[3:]} == {1800.0}
    assert (shown["next_session"], shown["next_due"]) == (7, SESSION_7.isoformat())


def test_no_response_refuses_the_stronger_profile_with_the_escalation_code(
    no_response: Clinic, capsys: pytest.CaptureFixture[str]
) -> None:
    stronger = short_profile(no_response.folder, 0.8, "stronger.toml")
    capsys.readouterr()
    assert no_response.run(str(stronger), today=SESSION_7) == 1
    err = capsys.readouterr().err
    assert "course 1: session 7 (central sensitisation)" in err
    assert "error   course-escalation at dose.peak_ma: actual 0.8 vs limit 0.5" in err
    assert "re-evaluate the diagnosis" in err
    shown = _show(no_response, capsys)
    assert shown["next_session"] == 7  # a refused session takes no number
    assert {"date": SESSION_7.isoformat(), "violations": ["course-escalation"]} in [
        {**row, "violations": [c for c in row["violations"] if c == "course-escalation"]}
        for row in shown["not_given"]
    ]


def test_no_response_still_runs_the_plans_own_profile(
    no_response: Clinic, capsys: pytest.CaptureFixture[str]
) -> None:
    assert no_response.run(today=SESSION_7) == 0
    shown = _show(no_response, capsys)
    seventh = shown["sessions"][6]
    assert (seventh["status"], seventh["date"], seventh["kind"]) == (
        "done", SESSION_7.isoformat(), "stimulation"
    )  # fmt: skip


def test_response_allows_the_stronger_profile(
    response: Clinic, capsys: pytest.CaptureFixture[str]
) -> None:
    stronger = short_profile(response.folder, 0.8, "stronger.toml")
    assert response.run(str(stronger), today=SESSION_7) == 0
    seventh = _show(response, capsys)["sessions"][6]
    assert seventh["dose"]["peak_ma"] == 0.8 and seventh["dose"]["duration_s"] == 60.0


def test_course_check_gives_the_same_verdicts_without_running(
    no_response: Clinic, response: Clinic, capsys: pytest.CaptureFixture[str]
) -> None:
    stronger = short_profile(response.folder, 0.8, "stronger.toml")
    capsys.readouterr()
    assert response("course", "check", "1", str(stronger), "--at", SESSION_7.isoformat(),
                    "--json") == 0  # fmt: skip
    assert "course-escalation" not in capsys.readouterr().out
    day = SESSION_7 + timedelta(days=7)
    assert no_response("course", "check", "1", str(stronger), "--at", day.isoformat()) == 1


def _adjust_up(clinic: Clinic, tmp_path: Path) -> float:
    """Run the seed profile (60 s, not stronger than delivered) with the course rules and raise
    channel 1 by one step; the new plateau, or InterlockError."""
    db = open_database(f"sqlite:///{clinic.db}", create=False)
    try:
        with db.session() as session:
            context = session_context(session, get_course(session, 1), SESSION_7)
    finally:
        db.dispose()
    profile = load_profile(short_profile(tmp_path, 0.5, "short-seed.toml"))
    with Controller.connect(None, speed=math.inf, record=tmp_path / "adjust.jsonl") as ctl:
        ctl.add_rules(context.rules)
        ctl.load(profile)
        ctl.check_impedance()
        ctl.arm(confirm=True, acknowledge_warnings=True)
        ctl.start()
        try:
            return ctl.adjust(1, 0.1)
        finally:
            ctl.stop(0)


def test_live_adjust_is_capped_at_the_most_delivered_without_response(
    no_response: Clinic, tmp_path: Path
) -> None:
    with pytest.raises(InterlockError, match=r"ADJUST refused: channel 1 at 0.6 mA breaks"
                                             r" course-escalation"):  # fmt: skip
        _adjust_up(no_response, tmp_path)


def test_live_adjust_may_go_above_the_most_delivered_with_response(
    response: Clinic, tmp_path: Path
) -> None:
    assert _adjust_up(response, tmp_path) == pytest.approx(0.6)


def test_course_report_writes_a_png_of_headache_days_against_baseline(
    no_response: Clinic, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from stimctl.clinic.courses import course_view, measures
    from stimctl.clinic.report import course_figure

    png = tmp_path / "course.png"
    capsys.readouterr()
    assert no_response("course", "report", "1", "-o", str(png)) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = capsys.readouterr().out
    assert "baseline 18.0 headache days/28" in summary and "HIT-6 60 (severe impact)" in summary
    db = open_database(f"sqlite:///{no_response.db}", create=False)
    try:
        with db.session() as session:
            course = get_course(session, 1)
            fig = course_figure(course_view(session, course), measures(session, course.patient_id))
    finally:
        db.dispose()
    ax, ax_hit, ax_midas = fig.axes
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert {"headache days/28", "baseline", "-30 %", "-50 %", "sessions"} <= set(lines)
    assert [lines[k].get_ydata()[0] for k in ("baseline", "-30 %", "-50 %")] == pytest.approx(
        [18.0, 12.6, 9.0]
    )
    rates = lines["headache days/28"]
    assert list(rates.get_xdata())[-1] == SESSION_7 and rates.get_ydata()[-1] == 17.0
    marked = list(lines["sessions"].get_xdata())
    assert marked[:6] == [START + timedelta(days=7 * k) for k in range(6)]
    assert [t.get_text() for t in ax.texts][:4] == [
        "1: manual",
        "2: manual",
        "3: manual",
        "4: 0.5 mA",
    ]
    assert ax.get_ylabel() == "headache days / 28"
    hit6 = ax_hit.get_lines()[0]
    assert (hit6.get_label(), list(hit6.get_ydata())) == ("HIT-6", [66.0, 60.0])
    assert list(ax_midas.get_lines()[0].get_ydata()) == [24.0]
