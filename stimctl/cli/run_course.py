"""A course's part in `stimctl run --course ID`: the session's number, its profile from the plan's
stage (unless one is given), the course rules added to validation, the session stored against
the course at the end (docs/COURSE.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stimctl.clinic.courses import SessionContext
    from stimctl.clinic.db import Database
    from stimctl.controller import Controller
    from stimctl.rules.profile import Profile


class CourseRefused(Exception):
    """The course cannot give this session (exit 1): unknown course, a stage without current."""


@dataclass
class CourseRun:
    """The course context of one run, read before anything touches the device."""

    context: SessionContext

    @classmethod
    def start(cls, db: Database, course_id: int, at: date) -> CourseRun:
        """Read the course's next session; CourseRefused for an unknown course."""
        from stimctl.clinic.courses import CourseError, get_course, session_context

        try:
            with db.session() as session:
                return cls(session_context(session, get_course(session, course_id), at))
        except CourseError as error:
            raise CourseRefused(str(error)) from None

    @property
    def patient_code(self) -> str:
        return self.context.patient_code

    def stage_profile(self) -> tuple[str, bytes]:
        """(name for the record, bytes) of the plan's profile for this session; CourseRefused
        when the plan's stage gives no stimulation."""
        stage = self.context.stage_profile
        if stage is None:
            raise CourseRefused(
                f"session {self.context.number} of course {self.context.course_id} is without"
                f" stimulation in the plan: record it with `stimctl course log"
                f" {self.context.course_id} --date DATE`, or name a profile"
            )
        return Path(stage.ref).stem, stage.raw

    def banner(self) -> str:
        due = ", ".join(self.context.measures_due) or "none"
        return (f"course {self.context.course_id}: session {self.context.number}"
                f" ({self.context.plan.plan.stage_for(self.context.number).name});"
                f" measures due: {due}")  # fmt: skip

    def attach(self, ctl: Controller) -> None:
        """The course rules join the controller's validation (load, arm, every ADJUST)."""
        ctl.add_rules(self.context.rules)

    def finish(
        self,
        db: Database,
        ctl: Controller | None,
        session_uid: str | None,
        profile: Profile | None,
        profile_sha256: str | None,
        violations: list[str],
    ) -> str | None:
        """Store the session against the course: numbered if any output was delivered, else
        kept without a number. None, or the one-line reason it could not be stored."""
        from sqlalchemy import select
        from sqlalchemy.exc import SQLAlchemyError

        from stimctl.clinic.courserules import profile_dose
        from stimctl.clinic.courses import NOT_GIVEN, STIMULATION, get_course, log_session
        from stimctl.clinic.db import DatabaseError, db_reason
        from stimctl.clinic.models import ClinicSession

        delivered = ctl.summary().delivered_s if ctl is not None and ctl.profile else 0.0
        dose = None
        if profile is not None and ctl is not None and delivered > 0:
            dose = profile_dose(profile, ctl.most_plateau_ma, delivered)
        codes = [c for c in violations if c.startswith("course-")]
        try:
            with db.session() as session:
                row_id = None
                if session_uid is not None:
                    query = select(ClinicSession.id).where(ClinicSession.uid == session_uid)
                    row_id = session.scalars(query).one_or_none()
                course = get_course(session, self.context.course_id)
                log_session(
                    session, course, self.context.at,
                    kind=STIMULATION if dose is not None else NOT_GIVEN,
                    operator=ctl.operator if ctl is not None else "",
                    clinic_session_id=row_id, dose=dose, violations=codes,
                    profile_sha256=profile_sha256 if dose is not None else None,
                )  # fmt: skip
        except (DatabaseError, SQLAlchemyError) as error:
            return db_reason(error)
        return None
