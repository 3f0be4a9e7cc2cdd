"""Courses in the clinic store: start one, read it back as plain facts, log sessions, keep the
diary and the measures, and the view ``course show`` prints.

Every function takes an open ``Session`` (one unit of work, committed by the caller) and raises
``CourseError`` for a refusal (unknown course or patient, a duplicate diary day, ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from stimctl.clinic.coursemodels import Course, CourseProfile, CourseSession, DiaryDay, Measure
from stimctl.clinic.courserules import CourseFacts, Dose, GivenSession, course_rules
from stimctl.clinic.diary import DiaryEntry
from stimctl.clinic.instruments import Score
from stimctl.clinic.models import Patient
from stimctl.clinic.patients import PatientError, flag_state, get_patient
from stimctl.clinic.plan import LoadedPlan, PlanError, PlanProfile, stored_plan
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.profile import Profile
from stimctl.rules.validation import validate_profile
from stimctl.rules.violations import Report, Violation

__all__ = [
    "CourseError",
    "CourseView",
    "SessionContext",
    "add_diary",
    "add_measure",
    "course_facts",
    "course_plan",
    "course_view",
    "find_patient",
    "get_course",
    "list_courses",
    "log_session",
    "session_context",
    "start_course",
]

#: kind of a course session: given with stimulation, given without (manual), or not given.
STIMULATION, MANUAL, NOT_GIVEN = "stimulation", "manual", "not-given"


class CourseError(ValueError):
    """A course operation refused (exit 1): unknown course or patient, duplicate diary day, ..."""


def find_patient(session: Session, code: str) -> Patient:
    """The patient with this id; CourseError if there is none."""
    try:
        return get_patient(session, code)
    except PatientError as error:
        raise CourseError(str(error)) from None


def start_course(
    session: Session, patient_code: str, loaded: LoadedPlan, start: date, operator: str = ""
) -> Course:
    """A new course for the patient on ``loaded`` (the plan and its profiles stored as they are)."""
    patient = find_patient(session, patient_code)
    course = Course(
        patient=patient, start=start, plan_name=loaded.plan.name, plan_path=loaded.path or "",
        plan_sha256=loaded.sha256, plan_text=loaded.raw.decode("utf-8"), created_by=operator,
        profiles=[CourseProfile(ref=p.ref, sha256=p.sha256, text=p.raw.decode("utf-8"))
                  for p in loaded.profiles.values()],
    )  # fmt: skip
    session.add(course)
    session.flush()
    return course


def get_course(session: Session, course_id: int, *, lock: bool = False) -> Course:
    query = select(Course).where(Course.id == course_id)
    if lock:
        query = query.with_for_update()
    course = session.scalars(query).one_or_none()
    if course is None:
        raise CourseError(f"no course {course_id}")
    return course


def list_courses(session: Session, patient_code: str | None = None) -> list[Course]:
    query = select(Course).order_by(Course.id)
    if patient_code is not None:
        query = query.where(Course.patient_id == find_patient(session, patient_code).id)
    return list(session.scalars(query))


def course_plan(course: Course) -> LoadedPlan:
    """The plan and profiles the course began with (from the store, not the files)."""
    try:
        loaded = stored_plan(
            course.plan_text.encode("utf-8"),
            {p.ref: p.text.encode("utf-8") for p in course.profiles},
        )
    except PlanError as error:
        message = f"course {course.id}: its stored plan no longer validates: {error}"
        raise CourseError(message) from None
    return LoadedPlan(loaded.plan, loaded.raw, loaded.sha256, loaded.profiles, course.plan_path)


def _diary(session: Session, patient_id: int) -> tuple[DiaryEntry, ...]:
    rows = session.scalars(
        select(DiaryDay).where(DiaryDay.patient_id == patient_id).order_by(DiaryDay.day)
    )
    return tuple(
        DiaryEntry(r.day, r.headache, r.intensity, r.hours, r.aura, tuple(r.medication))
        for r in rows
    )


def _dose(row: CourseSession) -> Dose | None:
    if row.kind != STIMULATION or row.peak_ma is None:
        return None
    return Dose(row.peak_ma, row.phase_charge_uc or 0.0, row.rms_ma or 0.0, row.duration_s or 0.0)


def course_facts(session: Session, course: Course, plan: LoadedPlan | None = None) -> CourseFacts:
    """The plain facts the course rules look at: plan, sessions given, the patient's diary."""
    plan = plan or course_plan(course)
    given = tuple(
        GivenSession(r.number, r.day, _dose(r)) for r in course.sessions if r.number is not None
    )
    return CourseFacts(plan.plan, course.start, given, _diary(session, course.patient_id))


@dataclass(frozen=True, slots=True)
class SessionContext:
    """What the next session of a course is checked against, read once before it starts: the
    live session (and its ADJUSTs) then needs no database."""

    course_id: int
    patient_code: str
    plan: LoadedPlan
    facts: CourseFacts
    at: date
    number: int
    flags: frozenset[str]

    @property
    def stage_profile(self) -> PlanProfile | None:
        """The profile the plan's stage gives this session (None: no stimulation)."""
        return self.plan.profile_for(self.number)

    @property
    def measures_due(self) -> tuple[str, ...]:
        return self.plan.plan.measures_due(self.number)

    def rules(self, profile: Profile) -> tuple[Violation, ...]:
        """The course rules for this session with ``profile``."""
        return course_rules(self.facts, profile, self.at, self.number)

    def report(
        self,
        profile: Profile | None,
        envelope: SafetyEnvelope | None = None,
        path: str | None = None,
    ) -> Report:
        """The profile rules with the patient's flags, then the course rules."""
        found: tuple[Violation, ...] = ()
        if profile is not None:
            found = validate_profile(profile, envelope, self.flags).violations
        course = course_rules(self.facts, profile, self.at, self.number)
        return Report(found + course, profile, path)


def session_context(session: Session, course: Course, at: date) -> SessionContext:
    """The context of the course's next session on ``at``."""
    plan = course_plan(course)
    facts = course_facts(session, course, plan)
    flags = flag_state(session, course.patient).flags
    return SessionContext(course.id, course.patient.code, plan, facts, at, facts.next_number, flags)


def log_session(
    session: Session,
    course: Course,
    day: date,
    *,
    kind: str = MANUAL,
    note: str = "",
    operator: str = "",
    clinic_session_id: int | None = None,
    profile_sha256: str | None = None,
    dose: Dose | None = None,
    violations: Iterable[str] = (),
) -> CourseSession:
    """A session of the course: given ones get the next number (the course row is locked so two
    stations never take the same one); ``NOT_GIVEN`` ones are kept without a number."""
    get_course(session, course.id, lock=True)
    number = None
    if kind != NOT_GIVEN:
        query = select(func.max(CourseSession.number)).where(CourseSession.course_id == course.id)
        number = (session.scalar(query) or 0) + 1
    row = CourseSession(
        course=course, number=number, day=day, kind=kind, session_id=clinic_session_id,
        profile_sha256=profile_sha256, note=note, operator=operator,
        violations=sorted(set(violations)),
    )  # fmt: skip
    if dose is not None:
        row.peak_ma, row.phase_charge_uc = dose.peak_ma, dose.phase_charge_uc
        row.rms_ma, row.duration_s = dose.rms_ma, dose.duration_s
    session.add(row)
    session.flush()
    return row


def add_diary(
    session: Session, patient_code: str, entries: Sequence[DiaryEntry], operator: str = ""
) -> int:
    """Store diary days (all or none); CourseError if a day is already in the diary."""
    patient = find_patient(session, patient_code)
    days = [e.day for e in entries]
    taken = set(
        session.scalars(
            select(DiaryDay.day).where(DiaryDay.patient_id == patient.id, DiaryDay.day.in_(days))
        )
    )
    if taken:
        first = min(taken).isoformat()
        raise CourseError(f"patient {patient_code!r} already has a diary entry for {first}"
                          f" ({len(taken)} day(s) of these already in the diary)")  # fmt: skip
    for e in entries:
        session.add(DiaryDay(
            patient_id=patient.id, day=e.day, headache=e.headache, intensity=e.intensity,
            hours=e.hours, aura=e.aura, medication=list(e.medication), operator=operator,
        ))  # fmt: skip
    session.flush()
    return len(entries)


def add_measure(
    session: Session, patient_code: str, day: date, score: Score, site: str = "",
    operator: str = "",
) -> Measure:  # fmt: skip
    patient = find_patient(session, patient_code)
    row = Measure(
        patient_id=patient.id, kind=score.kind, day=day, items=list(score.items),
        total=score.total, category=score.category, site=site, operator=operator,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row


def measures(session: Session, patient_id: int) -> list[Measure]:
    query = select(Measure).where(Measure.patient_id == patient_id)
    return list(session.scalars(query.order_by(Measure.day, Measure.id)))


@dataclass(frozen=True, slots=True)
class CourseView:
    """What ``course show`` prints: the plan session by session, done or due."""

    course: Course
    plan: LoadedPlan
    facts: CourseFacts
    rows: tuple[dict[str, Any], ...]
    next_number: int
    next_due: date | None
    measures_due: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        c = self.course
        return {
            "id": c.id,
            "patient": c.patient.code,
            "plan": self.plan.plan.name,
            "plan_sha256": c.plan_sha256,
            "profiles": {p.ref: p.sha256 for p in c.profiles},
            "start": c.start.isoformat(),
            "sessions": list(self.rows),
            "next_session": self.next_number,
            "next_due": self.next_due.isoformat() if self.next_due else None,
            "measures_due": list(self.measures_due),
            "not_given": [
                {"date": r.day.isoformat(), "violations": list(r.violations)}
                for r in c.sessions
                if r.number is None
            ],
        }


def course_view(session: Session, course: Course) -> CourseView:
    """Each planned session with its stage, planned date, and what was given (done or due);
    sessions beyond the plan are listed as given. The next due date keeps the plan's interval
    from the last session given (or is the start date before the first)."""
    plan = course_plan(course)
    facts = course_facts(session, course, plan)
    given = {r.number: r for r in course.sessions if r.number is not None}
    planned = plan.plan.planned_dates(course.start)
    rows: list[dict[str, Any]] = []
    for number in range(1, max(plan.plan.total_sessions, max(given, default=0)) + 1):
        stage = plan.plan.stage_for(number)
        row = given.get(number)
        rows.append({
            "number": number,
            "stage": "taper" if plan.plan.in_taper(number) else stage.name,
            "profile": stage.profile,
            "planned": planned[number - 1].isoformat() if number <= len(planned) else None,
            "status": "done" if row else "due",
            "date": row.day.isoformat() if row else None,
            "kind": row.kind if row else None,
            "dose": _dose_dict(row) if row else None,
            "measures_due": list(plan.plan.measures_due(number)),
        })  # fmt: skip
    nxt = facts.next_number
    last = max((s.day for s in facts.sessions), default=None)
    if nxt > plan.plan.total_sessions:
        due = None
    elif last is None:
        due = course.start
    else:
        due = last + timedelta(days=plan.plan.interval_before(nxt))
    return CourseView(course, plan, facts, tuple(rows), nxt, due, plan.plan.measures_due(nxt))


def _dose_dict(row: CourseSession) -> dict[str, float] | None:
    dose = _dose(row)
    if dose is None:
        return None
    return {"peak_ma": dose.peak_ma, "phase_charge_uc": dose.phase_charge_uc,
            "rms_ma": dose.rms_ma, "duration_s": dose.duration_s}  # fmt: skip
