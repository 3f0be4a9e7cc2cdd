"""The TUI with a course (`stimctl tui --course ID`): session number, stage and measures due on
the set-up screen, the course panel's chart, the course rules in the validation report."""

from __future__ import annotations

import asyncio
import math
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from test_tui import PROFILES, SEED, choose_profile, until
from test_tui_snapshots import FIXED_NOW, freeze
from textual.pilot import Pilot
from textual_plotext import PlotextPlot

from stimctl.clinic.courserules import CourseFacts, GivenSession, profile_dose
from stimctl.clinic.courses import SessionContext
from stimctl.clinic.diary import DiaryEntry
from stimctl.clinic.plan import load_plan
from stimctl.controller import Controller
from stimctl.tui.app import StimApp
from stimctl.tui.widgets import CoursePanel

SIZE = (120, 50)
START = date(2026, 1, 5)
SESSION_7 = START + timedelta(days=42)
STAGE_OPTION = "EA 2 Hz ST36-LR3 (course plan, session 7)"


def diary(first: date, days: int, per_28: int) -> list[DiaryEntry]:
    return [DiaryEntry(first + timedelta(i), (i * per_28) % 28 < per_28) for i in range(days)]


def context(recent_per_28: int) -> SessionContext:
    """Chronic plan, baseline 18/28, sessions 1-6 given (4-6 at the seed's dose), session 7 next;
    the 28 days before it at ``recent_per_28``."""
    _, loaded = load_plan(PROFILES.parent / "courses" / "migraine-chronic.toml")
    assert loaded is not None
    stage = loaded.profile_for(4)
    assert stage is not None
    dose = profile_dose(stage.profile)
    given = tuple(GivenSession(n, START + timedelta(7 * (n - 1)), dose if n >= 4 else None)
                  for n in range(1, 7))  # fmt: skip
    entries = diary(START - timedelta(14), 28, 18) + diary(START + timedelta(14), 28, recent_per_28)
    facts = CourseFacts(loaded.plan, START, given, tuple(entries))
    return SessionContext(1, "P1", loaded, facts, SESSION_7, 7, frozenset())


@pytest.fixture
def controllers() -> Any:
    made: list[Controller] = []
    yield made
    for ctrl in made:
        ctrl.close()


@pytest.fixture
def library(tmp_path: Path) -> Path:
    """The seed, and the seed at 0.8 mA (stronger than anything delivered in the course)."""
    seed = (PROFILES / SEED).read_text()
    (tmp_path / SEED).write_text(seed)
    (tmp_path / "stronger.toml").write_text(
        seed.replace("amplitude_ma = 0.5", "amplitude_ma = 0.8")
    )
    return tmp_path


def run(app: StimApp, scenario: Any) -> None:
    """``scenario(pilot)`` against the app at SIZE (test_tui's drive, at this size)."""

    async def main() -> None:
        async with app.run_test(size=SIZE) as pilot:
            await scenario(pilot)

    asyncio.run(main())


def make_app(made: list[Controller], library: Path, recent_per_28: int) -> StimApp:
    def connect() -> Controller:
        options = {"channels": "4", "lockstep": "0"}
        ctrl = Controller.connect(None, speed=math.inf, sim_options=options)
        made.append(ctrl)
        return ctrl

    return StimApp(connect, operator="Dr. Example", profiles_dir=library,
                   clock=lambda: FIXED_NOW, patient_id="P1", patient_flags=frozenset(),
                   course=context(recent_per_28))  # fmt: skip


def test_setup_shows_the_session_number_stage_and_measures_due(controllers, library) -> None:
    app = make_app(controllers, library, 17)

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: bool(app.screen.query(CoursePanel)), "course panel")
        line = str(app.screen.query_one("#course-line").render())
        assert line == "Course 1 · session 7 of 23 (central sensitisation) · measures due: none"
        await choose_profile(pilot, STAGE_OPTION)
        assert app.report.ok and app.loaded_ok
        assert app.controller.profile is app.course.stage_profile.profile

    run(app, scenario)


def test_a_stronger_profile_is_refused_without_response(controllers, library) -> None:
    app = make_app(controllers, library, 17)

    async def scenario(pilot: Pilot) -> None:
        await choose_profile(pilot, "stronger.toml")
        assert not app.report.ok and "course-escalation" in app.report.codes
        assert app.preflight_refusal() == "This profile has errors: it cannot be armed."

    run(app, scenario)


def test_a_stronger_profile_is_allowed_with_response(controllers, library) -> None:
    app = make_app(controllers, library, 8)

    async def scenario(pilot: Pilot) -> None:
        await choose_profile(pilot, "stronger.toml")
        assert app.report.ok and "course-escalation" not in app.report.codes

    run(app, scenario)


def test_the_course_chart_plots_headache_days_and_the_baseline_lines(controllers, library) -> None:
    app = make_app(controllers, library, 8)

    async def scenario(pilot: Pilot) -> None:
        await until(pilot, lambda: bool(app.screen.query(PlotextPlot)), "chart")
        drawn = app.screen.query_one(CoursePanel).drawn
        assert list(drawn) == ["headache days/28", "baseline", "-30%", "-50%", "sessions"]
        levels = [drawn[k][1] for k in ("baseline", "-30%", "-50%")]
        assert levels == [[18.0, 18.0], pytest.approx([12.6, 12.6]), [9.0, 9.0]]
        x, rates = drawn["headache days/28"]
        assert (x[-1], rates[-1]) == (42.0, 8.0)  # the 28 days before session 7
        assert drawn["sessions"] == ([0.0, 7.0, 14.0, 21.0, 28.0, 35.0], [0.0] * 6)

    run(app, scenario)


def test_setup_screen_with_a_course(snap_compare, controllers, library) -> None:
    app = make_app(controllers, library, 17)

    async def run_before(pilot: Pilot) -> None:
        await choose_profile(pilot, "stronger.toml")
        await freeze(pilot)

    assert snap_compare(app, terminal_size=SIZE, run_before=run_before)
