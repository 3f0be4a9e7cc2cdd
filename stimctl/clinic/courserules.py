"""Course rules: pure functions over a course's plain facts (plan, sessions given, diary).

``course_rules(facts, profile, at)`` gives the violations a session of the course would get on
date ``at`` with ``profile`` (None: a session without stimulation). Codes, severities and sources
are in the rule table (``stimctl.rules.envelope.RULES``); docs/COURSE.md explains each rule.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, fields
from datetime import date, timedelta

from stimctl.clinic.diary import DiaryEntry
from stimctl.clinic.plan import Plan
from stimctl.rules.envelope import RULES
from stimctl.rules.profile import Profile
from stimctl.rules.quantities import operating_points
from stimctl.rules.violations import Severity, Value, Violation

__all__ = [
    "CourseFacts",
    "Dose",
    "GivenSession",
    "baseline_rate",
    "course_rules",
    "headache_rate",
    "profile_dose",
    "window_rate",
]

#: The response window and the diary it needs to be judged (fail safe: fewer days, no judgement).
WINDOW_DAYS = 28
MIN_DIARY_DAYS = 21
#: Response: headache days at least 30 % below baseline (IHS chronic-migraine trial guidelines,
#: Tassorelli 2018; the seed protocol's sessions 7-10 target).
RESPONSE_REDUCTION = 0.30
#: Responder: at least 50 % below baseline in each of the last two windows (seed protocol:
#: ">= 50 % reduction sustained >= 8 weeks"; IHS episodic-migraine trial guidelines, Diener 2020).
RESPONDER_REDUCTION = 0.50
RESPONDER_WINDOWS = 2
#: No diary entry in this many days: the response cannot be judged (warning).
STALE_DIARY_DAYS = 14
#: A baseline needs diary on at least this share of the plan's baseline days (as 21 of 28).
MIN_BASELINE_SHARE = MIN_DIARY_DAYS / WINDOW_DAYS
#: ICHD-3 8.2: acute medication days per 30 that count as overuse, by class, for > 3 months.
OVERUSE_DAYS: Mapping[str, int] = {
    "ergot": 10,  # 8.2.1
    "triptan": 10,  # 8.2.2
    "paracetamol": 15,  # 8.2.3.1
    "nsaid": 15,  # 8.2.3.2
    "opioid": 10,  # 8.2.4
    "combination": 10,  # 8.2.5
}
OVERUSE_SEVERAL_CLASSES_DAYS = 10  # 8.2.6: several classes, none overused alone
OVERUSE_PERIOD_DAYS = 30
OVERUSE_PERIODS = 3  # "for more than 3 months": three consecutive 30-day periods
#: Relative tolerance when comparing doses (a profile equal to one delivered is not stronger).
_TOLERANCE = 1e-9
#: A session that delivered all but this much of its profile delivered the whole duration: the
#: delivered time is counted from telemetry (50 Hz) and a completed 1800 s session may report
#: 1799.98 s; without this the plan's own profile would count as longer than that (policy).
DURATION_TOLERANCE_S = 1.0


@dataclass(frozen=True, slots=True)
class Dose:
    """What a session delivers at most: peak amplitude, charge per phase, r.m.s., duration."""

    peak_ma: float
    phase_charge_uc: float
    rms_ma: float
    duration_s: float

    def stronger_than(self, other: Dose) -> list[tuple[str, float, float]]:
        """(quantity, this, other) for each quantity where this dose is higher than ``other``."""
        out = []
        for f in fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if mine > theirs * (1 + _TOLERANCE):
                out.append((f.name, mine, theirs))
        return out

    def most(self, other: Dose) -> Dose:
        """The larger of each quantity."""
        return Dose(*(max(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)))


def profile_dose(
    profile: Profile,
    plateau_ma: Mapping[int, float] | None = None,
    delivered_s: float | None = None,
) -> Dose:
    """The dose of ``profile``; ``plateau_ma`` replaces channels' amplitudes (the most reached by
    live ADJUST), ``delivered_s`` the duration (a session stopped early delivered less)."""
    if plateau_ma:
        channels = [
            c.model_copy(update={"amplitude_ma": max(c.amplitude_ma, plateau_ma.get(c.id, 0.0))})
            for c in profile.channels
        ]
        profile = profile.model_copy(update={"channels": channels})
    points = [p.quantities for p in operating_points(profile)]
    duration = profile.duration_s
    if delivered_s is not None and delivered_s < profile.duration_s - DURATION_TOLERANCE_S:
        duration = delivered_s
    return Dose(
        peak_ma=max(q.amplitude_ma for q in points),
        phase_charge_uc=max(q.phase_charge_uc for q in points),
        rms_ma=max(q.rms_ma for q in points),
        duration_s=duration,
    )


@dataclass(frozen=True, slots=True)
class GivenSession:
    """A session given in the course: its number, date, and dose (None: no stimulation)."""

    number: int
    day: date
    dose: Dose | None = None


@dataclass(frozen=True, slots=True)
class CourseFacts:
    """Everything the course rules look at."""

    plan: Plan
    start: date
    sessions: tuple[GivenSession, ...] = ()
    diary: tuple[DiaryEntry, ...] = ()

    @property
    def next_number(self) -> int:
        return max((s.number for s in self.sessions), default=0) + 1

    @property
    def delivered(self) -> Dose | None:
        """The most delivered so far in the course (None: no stimulation yet)."""
        doses = [s.dose for s in self.sessions if s.dose is not None]
        if not doses:
            return None
        out = doses[0]
        for dose in doses[1:]:
            out = out.most(dose)
        return out

    def baseline_window(self, at: date) -> tuple[date, date]:
        """[first, end): the plan's baseline days before the first session (or before ``at``)."""
        end = min((s.day for s in self.sessions), default=at)
        return end - timedelta(days=self.plan.baseline_days), end


def headache_rate(diary: Iterable[DiaryEntry], first: date, end: date) -> tuple[int, int]:
    """(headache days, days with an entry) in [first, end)."""
    days = [e for e in diary if first <= e.day < end]
    return sum(e.headache for e in days), len(days)


def _per_window(headache: int, recorded: int) -> float:
    return headache * WINDOW_DAYS / recorded if recorded else math.nan


def window_rate(diary: Iterable[DiaryEntry], end: date) -> float | None:
    """Headache days per 28 in the 28 days before ``end`` (None: diary on fewer than 21)."""
    head, recorded = headache_rate(diary, end - timedelta(days=WINDOW_DAYS), end)
    return _per_window(head, recorded) if recorded >= MIN_DIARY_DAYS else None


def baseline_rate(facts: CourseFacts, at: date) -> float | None:
    """Headache days per 28 over the baseline (None: no baseline diary)."""
    head, recorded = headache_rate(facts.diary, *facts.baseline_window(at))
    return _per_window(head, recorded) if recorded else None


def _v(
    code: str, loc: str, message: str, limit: Value = None, actual: Value = None,
    severity: Severity | None = None,
) -> Violation:  # fmt: skip
    rule = RULES[code]
    return Violation(code, severity or rule.severity, loc, message, limit, actual, rule.source)


@dataclass(frozen=True, slots=True)
class _Response:
    """Headache days per 28 at baseline and in the window before ``at``; why not judged."""

    baseline: float
    recent: float
    unjudged: str

    def below_baseline(self, reduction: float) -> bool:
        return not self.unjudged and self.recent <= self.baseline * (1 - reduction)


def _response(facts: CourseFacts, at: date, window_end: date | None = None) -> _Response:
    end = window_end or at
    first, base_end = facts.baseline_window(at)
    b_head, b_days = headache_rate(facts.diary, first, base_end)
    r_head, r_days = headache_rate(facts.diary, end - timedelta(days=WINDOW_DAYS), end)
    baseline, recent = _per_window(b_head, b_days), _per_window(r_head, r_days)
    needed = math.ceil(facts.plan.baseline_days * MIN_BASELINE_SHARE)
    if facts.plan.baseline_days == 0 or b_days < needed:
        why = f"no baseline (diary on {b_days} of the plan's {facts.plan.baseline_days} baseline"
        return _Response(baseline, recent, f"{why} days, at least {needed} needed)")
    if r_days < MIN_DIARY_DAYS:
        return _Response(baseline, recent, f"diary on {r_days} of the last {WINDOW_DAYS} days"
                         f" (at least {MIN_DIARY_DAYS} needed)")  # fmt: skip
    return _Response(baseline, recent, "")


def escalation_rule(
    facts: CourseFacts, profile: Profile | None, at: date, number: int
) -> Iterator[Violation]:
    """course-escalation: after the response check, nothing stronger than delivered so far
    unless headache days are at least 30 % below baseline (judged on enough diary)."""
    if profile is None or number <= facts.plan.response_check_session:
        return
    dose, delivered = profile_dose(profile), facts.delivered
    if delivered is None:
        stronger = [(f.name, getattr(dose, f.name), 0.0) for f in fields(dose)]
    else:
        stronger = dose.stronger_than(delivered)
    if not stronger:
        return
    response = _response(facts, at)
    if response.below_baseline(RESPONSE_REDUCTION):
        return
    if response.unjudged:
        why = f"the response cannot be judged: {response.unjudged}"
    else:
        why = (f"headache days {response.recent:.1f}/28 are not {RESPONSE_REDUCTION:.0%} below"
               f" the baseline {response.baseline:.1f}/28")  # fmt: skip
    for quantity, mine, theirs in stronger:
        yield _v("course-escalation", f"dose.{quantity}",
                 f"session {number} after the response check at session"
                 f" {facts.plan.response_check_session} would exceed the most delivered in the"
                 f" course; {why}: re-evaluate the diagnosis (cluster headache mimics, medication"
                 " overuse, secondary causes) rather than escalating intensity",
                 round(theirs, 6), round(mine, 6))  # fmt: skip


def stage_rules(
    facts: CourseFacts, profile: Profile | None, at: date, number: int
) -> Iterator[Violation]:
    """course-before-ea-stage, course-beyond-plan, course-interval-short."""
    plan = facts.plan
    ea = plan.ea_from_session
    if profile is not None and (ea is None or number < ea):
        stage = "the plan never stimulates" if ea is None else f"EA starts at session {ea}"
        yield _v("course-before-ea-stage", "session",
                 f"stimulation at session {number}: {stage}", ea, number)  # fmt: skip
    if number > plan.total_sessions:
        yield _v("course-beyond-plan", "session",
                 f"session {number} is beyond the plan ({plan.total_sessions} sessions)",
                 plan.total_sessions, number)  # fmt: skip
    last = max((s.day for s in facts.sessions), default=None)
    if last is not None:
        gap, wanted = (at - last).days, plan.interval_before(number)
        if gap < wanted:
            yield _v("course-interval-short", "session",
                     f"session {number} {gap} day(s) after the last one; the plan asks"
                     f" {wanted}", wanted, gap)  # fmt: skip


def diary_rules(facts: CourseFacts, at: date) -> Iterator[Violation]:
    """course-baseline-short, course-diary-stale."""
    first, end = facts.baseline_window(at)
    _, recorded = headache_rate(facts.diary, first, end)
    if recorded < facts.plan.baseline_days:
        yield _v("course-baseline-short", "diary",
                 f"baseline diary on {recorded} of the {facts.plan.baseline_days} days the plan"
                 f" asks before the first session: the response cannot be judged reliably",
                 facts.plan.baseline_days, recorded)  # fmt: skip
    _, recent = headache_rate(facts.diary, at - timedelta(days=STALE_DIARY_DAYS), at + timedelta(1))
    if recent == 0:
        yield _v("course-diary-stale", "diary",
                 f"no diary entry in the last {STALE_DIARY_DAYS} days: the response cannot be"
                 " judged", STALE_DIARY_DAYS, 0)  # fmt: skip


def medication_rule(facts: CourseFacts, at: date) -> Iterator[Violation]:
    """course-medication-overuse: ICHD-3 8.2 thresholds in each of the last three 30-day
    periods (the diary must reach back that far)."""
    span = OVERUSE_PERIOD_DAYS * OVERUSE_PERIODS
    end = at + timedelta(days=1)
    if not facts.diary or min(e.day for e in facts.diary) > end - timedelta(days=span):
        return
    periods = []
    for k in range(OVERUSE_PERIODS):
        hi = end - timedelta(days=OVERUSE_PERIOD_DAYS * k)
        lo = hi - timedelta(days=OVERUSE_PERIOD_DAYS)
        periods.append([e for e in facts.diary if lo <= e.day < hi])
    overused = []
    for name, limit in OVERUSE_DAYS.items():
        counts = [sum(name in e.medication for e in days) for days in periods]
        if min(counts) >= limit:
            overused.append(name)
            yield _v("course-medication-overuse", "diary.medication",
                     f"{name} on >= {limit} days in each of the last {OVERUSE_PERIODS} periods of"
                     f" {OVERUSE_PERIOD_DAYS} days: medication overuse suspected; review acute"
                     " treatment", limit, min(counts))  # fmt: skip
    if overused:
        return
    classes = {name for days in periods for e in days for name in e.medication}
    counts = [sum(bool(e.medication) for e in days) for days in periods]
    if len(classes) > 1 and min(counts) >= OVERUSE_SEVERAL_CLASSES_DAYS:
        yield _v("course-medication-overuse", "diary.medication",
                 f"acute medication of several classes on >= {OVERUSE_SEVERAL_CLASSES_DAYS} days"
                 f" in each of the last {OVERUSE_PERIODS} periods of {OVERUSE_PERIOD_DAYS} days"
                 " (ICHD-3 8.2.6): medication overuse suspected",
                 OVERUSE_SEVERAL_CLASSES_DAYS, min(counts))  # fmt: skip


def responder_rule(facts: CourseFacts, at: date) -> Iterator[Violation]:
    """course-responder: >= 50 % below baseline in each of the last two 28-day windows."""
    if not facts.sessions:
        return
    windows = [_response(facts, at, at - timedelta(days=WINDOW_DAYS * k))
               for k in range(RESPONDER_WINDOWS)]  # fmt: skip
    if all(w.below_baseline(RESPONDER_REDUCTION) for w in windows):
        taper = facts.plan.taper
        what = (f"the taper from session {facts.plan.weekly_sessions + 1}" if taper
                else "maintenance")  # fmt: skip
        yield _v("course-responder", "diary",
                 f"responder: headache days {windows[0].recent:.1f}/28 and"
                 f" {windows[1].recent:.1f}/28 against a baseline of {windows[0].baseline:.1f}/28"
                 f" (>= {RESPONDER_REDUCTION:.0%} below in each): {what} applies",
                 round(windows[0].baseline * (1 - RESPONDER_REDUCTION), 3),
                 round(windows[0].recent, 3))  # fmt: skip


def course_rules(
    facts: CourseFacts, profile: Profile | None, at: date, number: int | None = None
) -> tuple[Violation, ...]:
    """Every course rule for session ``number`` (default: the next) on ``at`` with ``profile``."""
    n = facts.next_number if number is None else number
    return (
        *escalation_rule(facts, profile, at, n),
        *stage_rules(facts, profile, at, n),
        *diary_rules(facts, at),
        *medication_rule(facts, at),
        *responder_rule(facts, at),
    )
