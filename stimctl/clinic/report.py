"""Course report: headache days per 28 against baseline (30 % and 50 % lines, sessions marked
with their dose), HIT-6 and MIDAS over time (matplotlib, object API, Agg); and a text summary.

matplotlib is in the optional ``report`` extra: it is imported only when a figure is drawn.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stimctl.clinic.courserules import (
    RESPONDER_REDUCTION,
    RESPONSE_REDUCTION,
    CourseFacts,
    Dose,
    baseline_rate,
    window_rate,
)

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from stimctl.clinic.courses import CourseView

__all__ = ["FORMATS", "HeadacheSeries", "course_figure", "course_summary", "headache_series"]

#: Output formats by file suffix.
FORMATS = (".png", ".svg", ".pdf")


@dataclass(frozen=True, slots=True)
class HeadacheSeries:
    """Headache days per 28 (each day's preceding 28 days, where the diary allows a judgement),
    the baseline rate, and the sessions given (date, dose label)."""

    days: tuple[date, ...]
    rates: tuple[float, ...]
    baseline: float | None
    sessions: tuple[tuple[date, int, str], ...]


def _dose_label(dose: Dose | None) -> str:
    return "manual" if dose is None else f"{dose.peak_ma:g} mA"


def headache_series(facts: CourseFacts, today: date | None = None) -> HeadacheSeries:
    """The chart's data: a rolling 28-day rate from the first diary day + 28 to the last."""
    given = [(s.day, s.number, _dose_label(s.dose)) for s in facts.sessions]
    at = today or date.today()
    baseline = baseline_rate(facts, at)
    days: list[date] = []
    rates: list[float] = []
    if facts.diary:
        first = facts.diary[0].day + timedelta(days=28)
        last = facts.diary[-1].day + timedelta(days=1)
        day = first
        while day <= last:
            rate = window_rate(facts.diary, day)
            if rate is not None:
                days.append(day)
                rates.append(rate)
            day += timedelta(days=1)
    return HeadacheSeries(tuple(days), tuple(rates), baseline, tuple(given))


def _measure_points(rows: Sequence[Any], kind: str) -> tuple[list[date], list[float]]:
    chosen = [r for r in rows if r.kind == kind]
    return [r.day for r in chosen], [r.total for r in chosen]


def course_figure(view: CourseView, rows: Sequence[Any], today: date | None = None) -> Figure:
    """Three axes: headache days per 28 with baseline, -30 %, -50 % and the sessions; HIT-6;
    MIDAS. Lines carry labels (``headache days/28``, ``baseline``, ``-30 %``, ``-50 %``,
    ``HIT-6``, ``MIDAS``) and the session markers the label ``sessions``."""
    from matplotlib.figure import Figure

    series = headache_series(view.facts, today)
    fig = Figure(figsize=(10, 9), layout="constrained")
    ax, ax_hit, ax_midas = fig.subplots(3, 1, sharex=True, height_ratios=(2, 1, 1))
    c = view.course
    ax.set_title(f"course {c.id}: patient {c.patient.code}, {view.plan.plan.name}")
    ax.plot(series.days, series.rates, color="tab:blue", label="headache days/28")
    if series.baseline is not None:
        for factor, style, label in (
            (1.0, "-", "baseline"),
            (1 - RESPONSE_REDUCTION, "--", f"-{RESPONSE_REDUCTION:.0%}".replace("%", " %")),
            (1 - RESPONDER_REDUCTION, ":", f"-{RESPONDER_REDUCTION:.0%}".replace("%", " %")),
        ):
            ax.axhline(series.baseline * factor, color="grey", linestyle=style, label=label)
    if series.sessions:
        x = [d for d, _, _ in series.sessions]
        ax.plot(x, [0.0] * len(x), linestyle="none", marker="^", color="tab:red",
                label="sessions")  # fmt: skip
        for d, number, text in series.sessions:
            ax.annotate(f"{number}: {text}", (d, 0.0), xytext=(0, 8), textcoords="offset points",
                        rotation=90, fontsize=7, ha="center")  # fmt: skip
    ax.set_ylabel("headache days / 28")
    ax.set_ylim(bottom=-1, top=29)
    ax.legend(loc="upper right", fontsize=8)
    for axis, kind, label, limits in (
        (ax_hit, "hit6", "HIT-6", (36, 78)),
        (ax_midas, "midas", "MIDAS", None),
    ):
        x, y = _measure_points(rows, kind)
        axis.plot(x, y, marker="o", label=label)
        axis.set_ylabel(label)
        if limits is not None:
            axis.set_ylim(*limits)
        axis.legend(loc="upper right", fontsize=8)
    ax_midas.set_xlabel("date")
    return fig


def write_course_report(
    view: CourseView, rows: Sequence[Any], path: str | Path, today: date | None = None
) -> None:
    """Draw the course figure and save it (format by suffix: .png, .svg, .pdf)."""
    fig = course_figure(view, rows, today)
    fig.savefig(Path(path))


def course_summary(view: CourseView, rows: Sequence[Any], today: date | None = None) -> str:
    """A few lines for the terminal: sessions, headache days against baseline, latest scores."""
    series = headache_series(view.facts, today)
    d = view.to_dict()
    given = sum(r["status"] == "done" for r in d["sessions"])
    lines = [f"course {d['id']}: patient {d['patient']}, {d['plan']}",
             f"  sessions given {given} of {view.plan.plan.total_sessions}"]  # fmt: skip
    if series.baseline is None:
        lines.append("  baseline: no diary before the first session")
    else:
        lines.append(f"  baseline {series.baseline:.1f} headache days/28")
    if series.rates:
        latest = series.rates[-1]
        change = ""
        if series.baseline:
            change = f" ({(latest - series.baseline) / series.baseline:+.0%} from baseline)"
        lines.append(f"  last 28 days to {series.days[-1].isoformat()}: {latest:.1f}{change}")
    for kind, name in (("hit6", "HIT-6"), ("midas", "MIDAS")):
        latest_row = next((r for r in reversed(rows) if r.kind == kind), None)
        if latest_row is not None:
            what = f" ({latest_row.category})" if latest_row.category else ""
            lines.append(f"  {name} {latest_row.total:g}{what} on {latest_row.day.isoformat()}")
    nxt = d["next_due"] or "beyond the plan"
    lines.append(f"  next: session {d['next_session']} due {nxt}")
    return "\n".join(lines) + "\n"
