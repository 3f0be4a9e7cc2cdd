"""ORM tables of treatment courses: the course with its stored plan and profiles, the sessions
numbered in it, and each patient's diary and measures (same ``Base`` as ``models``).

A course keeps the exact bytes and sha256 of the plan and of every profile it names, so it runs
on the plan it began with even if the files change. Schema changes are Alembic revisions.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from stimctl.clinic.models import Base, ClinicSession, Patient, utc_now

__all__ = ["Course", "CourseProfile", "CourseSession", "DiaryDay", "Measure"]


class Course(Base):
    """A patient's course on one plan, from ``start`` (the planned date of session 1)."""

    __tablename__ = "courses"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    start: Mapped[date]
    plan_name: Mapped[str] = mapped_column(String(200))
    plan_path: Mapped[str] = mapped_column(Text, default="")
    plan_sha256: Mapped[str] = mapped_column(String(64))
    plan_text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    created_by: Mapped[str] = mapped_column(String(128), default="")

    patient: Mapped[Patient] = relationship()
    profiles: Mapped[list[CourseProfile]] = relationship(
        back_populates="course", order_by="CourseProfile.ref", cascade="all, delete-orphan"
    )
    sessions: Mapped[list[CourseSession]] = relationship(
        back_populates="course", order_by="CourseSession.id", cascade="all, delete-orphan"
    )


class CourseProfile(Base):
    """A profile the course's plan names (by its reference in the plan), as it was at start."""

    __tablename__ = "course_profiles"

    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), primary_key=True)
    ref: Mapped[str] = mapped_column(String(500), primary_key=True)
    sha256: Mapped[str] = mapped_column(String(64))
    text: Mapped[str] = mapped_column(Text)

    course: Mapped[Course] = relationship(back_populates="profiles")


class CourseSession(Base):
    """A session of a course: given (``number`` 1, 2, ...; with stimulation or manual) or not
    given (refused, or ended before any output: no number). The dose is what was delivered."""

    __tablename__ = "course_sessions"
    __table_args__ = (UniqueConstraint("course_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = mapped_column(ForeignKey("courses.id"), index=True)
    number: Mapped[int | None]
    day: Mapped[date]
    kind: Mapped[str] = mapped_column(String(16))  # "stimulation", "manual" or "not-given"
    session_id: Mapped[int | None] = mapped_column(ForeignKey("sessions.id"), unique=True)
    profile_sha256: Mapped[str | None] = mapped_column(String(64))
    peak_ma: Mapped[float | None]
    phase_charge_uc: Mapped[float | None]
    rms_ma: Mapped[float | None]
    duration_s: Mapped[float | None]
    violations: Mapped[list[Any]] = mapped_column(default=list)  # course rule codes found
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    operator: Mapped[str] = mapped_column(String(128), default="")

    course: Mapped[Course] = relationship(back_populates="sessions")
    session: Mapped[ClinicSession | None] = relationship()


class DiaryDay(Base):
    """One day of a patient's headache diary."""

    __tablename__ = "diary_entries"
    __table_args__ = (UniqueConstraint("patient_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    day: Mapped[date]
    headache: Mapped[bool]
    intensity: Mapped[int | None]
    hours: Mapped[float | None]
    aura: Mapped[bool] = mapped_column(default=False)
    medication: Mapped[list[Any]] = mapped_column(default=list)  # class names
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    operator: Mapped[str] = mapped_column(String(128), default="")


class Measure(Base):
    """One scored instrument (HIT-6, MIDAS, PPT, HRV) for a patient on a day."""

    __tablename__ = "measures"
    __table_args__ = (Index("ix_measures_patient_id_day", "patient_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"))
    kind: Mapped[str] = mapped_column(String(16))
    day: Mapped[date]
    items: Mapped[list[Any]] = mapped_column(default=list)
    total: Mapped[float]
    category: Mapped[str] = mapped_column(String(32), default="")  # HIT-6 band, MIDAS grade
    site: Mapped[str] = mapped_column(String(32), default="")  # PPT: where it was measured
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    operator: Mapped[str] = mapped_column(String(128), default="")
