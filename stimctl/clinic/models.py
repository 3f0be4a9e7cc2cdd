"""Typed ORM models of the clinic store and the declarative ``Base`` every clinic table uses.

Tables: ``patients`` (pseudonymous id chosen by the clinic), ``flag_changes`` (each set/unset of a
clinical flag, with time and operator: history, never overwritten), ``sessions`` (one row per run,
opened before ARM, closed at the end) and ``session_channels`` (delivered pulses and charge).
A schema change is a new Alembic revision in ``migrations/versions`` (docs/DATABASE.md).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    DateTime,
    Dialect,
    Double,
    ForeignKey,
    Index,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

__all__ = ["Base", "ClinicSession", "FlagChange", "Patient", "SessionChannel", "UtcDateTime"]

#: Constraint names are part of the migrations: keep them deterministic on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every backend (SQLite keeps no zone: UTC is assumed)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: the clinic store keeps UTC times only")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utc_now() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every clinic table (patients, sessions, and courses built on them)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UtcDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
    }


class Patient(Base):
    """A patient under a pseudonymous id chosen by the clinic (no name is required)."""

    __tablename__ = "patients"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(64), unique=True)  # the clinic's patient id
    born: Mapped[int | None]  # year of birth
    note: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utc_now)
    created_by: Mapped[str] = mapped_column(String(128), default="")

    flag_changes: Mapped[list[FlagChange]] = relationship(
        back_populates="patient", order_by="FlagChange.id"
    )
    sessions: Mapped[list[ClinicSession]] = relationship(
        back_populates="patient", order_by="ClinicSession.id"
    )


class FlagChange(Base):
    """One change of one clinical flag (set: ``value`` true; unset: false), kept for ever."""

    __tablename__ = "flag_changes"

    id: Mapped[int] = mapped_column(primary_key=True)
    patient_id: Mapped[int] = mapped_column(ForeignKey("patients.id"), index=True)
    flag: Mapped[str] = mapped_column(String(32))
    value: Mapped[bool]
    changed_at: Mapped[datetime] = mapped_column(default=utc_now)
    operator: Mapped[str] = mapped_column(String(128), default="")

    patient: Mapped[Patient] = relationship(back_populates="flag_changes")


class ClinicSession(Base):
    """One run of a profile: opened before ARM (``outcome`` empty), closed at every end."""

    __tablename__ = "sessions"
    __table_args__ = (
        UniqueConstraint("patient_id", "number"),
        Index("ix_sessions_record_path", "record_path"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    uid: Mapped[str] = mapped_column(String(36), unique=True)  # the session id in the record
    patient_id: Mapped[int | None] = mapped_column(ForeignKey("patients.id"), index=True)
    number: Mapped[int | None]  # 1, 2, ... per patient (None without a patient)
    started_at: Mapped[datetime] = mapped_column(default=utc_now)
    ended_at: Mapped[datetime | None]
    operator: Mapped[str] = mapped_column(String(128), default="")
    device_serial: Mapped[str | None] = mapped_column(String(64))
    device_firmware: Mapped[str | None] = mapped_column(String(64))
    simulator: Mapped[bool | None]
    profile_name: Mapped[str | None] = mapped_column(String(200))
    profile_sha256: Mapped[str | None] = mapped_column(String(64))
    flags: Mapped[list[Any]] = mapped_column(default=list)  # patient flags used for validation
    flag_change_id: Mapped[int | None] = mapped_column(ForeignKey("flag_changes.id"))
    outcome: Mapped[str | None] = mapped_column(String(16))  # None: still open (or host killed)
    exit_code: Mapped[int | None]
    delivered_s: Mapped[float | None] = mapped_column(Double)
    faults: Mapped[list[Any]] = mapped_column(default=list)
    violations: Mapped[list[Any]] = mapped_column(default=list)  # rule codes
    record_path: Mapped[str | None] = mapped_column(Text)
    record_tag: Mapped[str | None] = mapped_column(String(64))  # the record's final chain tag

    patient: Mapped[Patient | None] = relationship(back_populates="sessions")
    channels: Mapped[list[SessionChannel]] = relationship(
        back_populates="session", order_by="SessionChannel.channel", cascade="all, delete-orphan"
    )


class SessionChannel(Base):
    """What one channel delivered in one session."""

    __tablename__ = "session_channels"

    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id"), primary_key=True)
    channel: Mapped[int] = mapped_column(primary_key=True)
    pulses: Mapped[int | None]
    expected_pulses: Mapped[int | None]
    charge_uc: Mapped[float | None] = mapped_column(Double)

    session: Mapped[ClinicSession] = relationship(back_populates="channels")
