"""Course panel: the session's number, stage and measures due, and the headache-days chart."""

from __future__ import annotations

from datetime import date
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import Label

from stimctl.clinic.courserules import RESPONDER_REDUCTION, RESPONSE_REDUCTION
from stimctl.clinic.report import headache_series


def course_line(context: Any) -> str:
    """'Course 1 · session 7 of 23 (central sensitisation) · measures due: hit6'."""
    plan = context.plan.plan
    stage = "taper" if plan.in_taper(context.number) else plan.stage_for(context.number).name
    due = ", ".join(context.measures_due) or "none"
    return (f"Course {context.course_id} · session {context.number} of {plan.total_sessions}"
            f" ({stage}) · measures due: {due}")  # fmt: skip


class CoursePanel(Vertical):
    """Headache days per 28 against baseline, -30 % and -50 %, sessions marked (textual-plotext),
    days counted from the first session."""

    def __init__(self, context: Any, today: date | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.context = context
        self.today = today or context.at
        self.border_title = "Course"
        #: label -> (x, y) of each line drawn (days since session 1, headache days/28)
        self.drawn: dict[str, tuple[list[float], list[float]]] = {}

    def compose(self) -> ComposeResult:
        yield Label(course_line(self.context), id="course-line", markup=False)
        try:
            from textual_plotext import PlotextPlot
        except ModuleNotFoundError:
            yield Label("(the chart needs textual-plotext: pip install 'stimctl[report]')")
            return
        yield PlotextPlot(id="course-chart")

    def on_mount(self) -> None:
        try:
            from textual_plotext import PlotextPlot
        except ModuleNotFoundError:
            return

        series = headache_series(self.context.facts, self.today)
        origin = min([d for d, _, _ in series.sessions] or [self.today])
        plt = self.query_one(PlotextPlot).plt
        plt.clear_figure()
        plt.title("headache days / 28")
        x = [(d - origin).days for d in series.days]
        if x:
            self._draw(plt.plot, x, list(series.rates), "headache days/28", marker="braille")
        marks = [(d - origin).days for d, _, _ in series.sessions]
        left = min([*x, *marks, 0])
        right = max([*x, (self.today - origin).days, 1])
        if series.baseline is not None:
            for factor, label in (
                (1.0, "baseline"),
                (1 - RESPONSE_REDUCTION, f"-{RESPONSE_REDUCTION:.0%}"),
                (1 - RESPONDER_REDUCTION, f"-{RESPONDER_REDUCTION:.0%}"),
            ):
                level = series.baseline * factor
                self._draw(plt.plot, [left, right], [level, level], label)  # fmt: skip
        if series.sessions:
            self._draw(plt.scatter, marks, [0.0] * len(marks), "sessions", marker="▲")
        plt.ylim(0, 28)
        plt.xlabel("days since session 1")

    def _draw(self, how: Any, x: list[Any], y: list[float], label: str, **options: Any) -> None:
        self.drawn[label] = ([float(v) for v in x], [float(v) for v in y])
        how(x, y, label=label, **options)
