"""Treatment courses (stored plan and profiles), their numbered sessions, diary and measures.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    _courses()
    _diary_entries()
    _measures()
    _course_profiles()
    _course_sessions()


def _courses() -> None:
    """A course: its patient, start date and the stored plan (path, sha256, text)."""
    op.create_table(
        "courses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("start", sa.Date(), nullable=False),
        sa.Column("plan_name", sa.String(length=200), nullable=False),
        sa.Column("plan_path", sa.Text(), nullable=False),
        sa.Column("plan_sha256", sa.String(length=64), nullable=False),
        sa.Column("plan_text", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_courses_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_courses")),
    )
    op.create_index(op.f("ix_courses_patient_id"), "courses", ["patient_id"], unique=False)


def _diary_entries() -> None:
    """A patient's headache diary: one row per day."""
    op.create_table(
        "diary_entries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("headache", sa.Boolean(), nullable=False),
        sa.Column("intensity", sa.Integer(), nullable=True),
        sa.Column("hours", sa.Double(), nullable=True),
        sa.Column("aura", sa.Boolean(), nullable=False),
        sa.Column("medication", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_diary_entries_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_diary_entries")),
        sa.UniqueConstraint("patient_id", "day", name=op.f("uq_diary_entries_patient_id_day")),
    )


def _measures() -> None:
    """A patient's questionnaire measures (kind, day, items, total, category)."""
    op.create_table(
        "measures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("items", sa.JSON(), nullable=False),
        sa.Column("total", sa.Double(), nullable=False),
        sa.Column("category", sa.String(length=32), nullable=False),
        sa.Column("site", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_measures_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_measures")),
    )
    op.create_index("ix_measures_patient_id_day", "measures", ["patient_id", "day"], unique=False)


def _course_profiles() -> None:
    """The profiles a course's plan names, stored with the course."""
    op.create_table(
        "course_profiles",
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("ref", sa.String(length=500), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_course_profiles_course_id_courses")
        ),
        sa.PrimaryKeyConstraint("course_id", "ref", name=op.f("pk_course_profiles")),
    )


def _course_sessions() -> None:
    """A course's numbered sessions: kind, dose, and the clinic session it was."""
    op.create_table(
        "course_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("course_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=True),
        sa.Column("profile_sha256", sa.String(length=64), nullable=True),
        sa.Column("peak_ma", sa.Double(), nullable=True),
        sa.Column("phase_charge_uc", sa.Double(), nullable=True),
        sa.Column("rms_ma", sa.Double(), nullable=True),
        sa.Column("duration_s", sa.Double(), nullable=True),
        sa.Column("violations", sa.JSON(), nullable=False),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["course_id"], ["courses.id"], name=op.f("fk_course_sessions_course_id_courses")
        ),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_course_sessions_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_course_sessions")),
        sa.UniqueConstraint(
            "course_id", "number", name=op.f("uq_course_sessions_course_id_number")
        ),
        sa.UniqueConstraint("session_id", name=op.f("uq_course_sessions_session_id")),
    )
    op.create_index(
        op.f("ix_course_sessions_course_id"), "course_sessions", ["course_id"], unique=False
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_course_sessions_course_id"), table_name="course_sessions")

    op.drop_table("course_sessions")
    op.drop_table("course_profiles")
    op.drop_index("ix_measures_patient_id_day", table_name="measures")

    op.drop_table("measures")
    op.drop_table("diary_entries")
    op.drop_index(op.f("ix_courses_patient_id"), table_name="courses")

    op.drop_table("courses")
