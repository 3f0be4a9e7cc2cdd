"""Patients, their flag history, sessions and per-channel totals (the first clinic schema).

Revision ID: 0001
Revises: (none)
Create Date: 2026-12-06
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    _patients()
    _flag_changes()
    _sessions()
    _session_channels()


def _patients() -> None:
    """A patient: the clinic's code, and who created the row when."""
    op.create_table(
        "patients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("born", sa.Integer(), nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patients")),
        sa.UniqueConstraint("code", name=op.f("uq_patients_code")),
    )


def _flag_changes() -> None:
    """A patient's flag history: one row per change, never overwritten."""
    op.create_table(
        "flag_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=False),
        sa.Column("flag", sa.String(length=32), nullable=False),
        sa.Column("value", sa.Boolean(), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_flag_changes_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flag_changes")),
    )
    op.create_index(
        op.f("ix_flag_changes_patient_id"), "flag_changes", ["patient_id"], unique=False
    )


def _sessions() -> None:
    """A session: device, profile, flags in force, outcome, and its record (path and tag)."""
    op.create_table(
        "sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("uid", sa.String(length=36), nullable=False),
        sa.Column("patient_id", sa.Integer(), nullable=True),
        sa.Column("number", sa.Integer(), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("operator", sa.String(length=128), nullable=False),
        sa.Column("device_serial", sa.String(length=64), nullable=True),
        sa.Column("device_firmware", sa.String(length=64), nullable=True),
        sa.Column("simulator", sa.Boolean(), nullable=True),
        sa.Column("profile_name", sa.String(length=200), nullable=True),
        sa.Column("profile_sha256", sa.String(length=64), nullable=True),
        sa.Column("flags", sa.JSON(), nullable=False),
        sa.Column("flag_change_id", sa.Integer(), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=True),
        sa.Column("exit_code", sa.Integer(), nullable=True),
        sa.Column("delivered_s", sa.Double(), nullable=True),
        sa.Column("faults", sa.JSON(), nullable=False),
        sa.Column("violations", sa.JSON(), nullable=False),
        sa.Column("record_path", sa.Text(), nullable=True),
        sa.Column("record_tag", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["flag_change_id"],
            ["flag_changes.id"],
            name=op.f("fk_sessions_flag_change_id_flag_changes"),
        ),
        sa.ForeignKeyConstraint(
            ["patient_id"], ["patients.id"], name=op.f("fk_sessions_patient_id_patients")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sessions")),
        sa.UniqueConstraint("patient_id", "number", name=op.f("uq_sessions_patient_id_number")),
        sa.UniqueConstraint("uid", name=op.f("uq_sessions_uid")),
    )
    op.create_index(op.f("ix_sessions_patient_id"), "sessions", ["patient_id"], unique=False)
    op.create_index("ix_sessions_record_path", "sessions", ["record_path"], unique=False)


def _session_channels() -> None:
    """A session's totals per channel: pulses given and expected, charge."""
    op.create_table(
        "session_channels",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.Integer(), nullable=False),
        sa.Column("pulses", sa.Integer(), nullable=True),
        sa.Column("expected_pulses", sa.Integer(), nullable=True),
        sa.Column("charge_uc", sa.Double(), nullable=True),
        sa.ForeignKeyConstraint(
            ["session_id"], ["sessions.id"], name=op.f("fk_session_channels_session_id_sessions")
        ),
        sa.PrimaryKeyConstraint("session_id", "channel", name=op.f("pk_session_channels")),
    )


def downgrade() -> None:
    op.drop_table("session_channels")
    op.drop_index("ix_sessions_record_path", table_name="sessions")
    op.drop_index(op.f("ix_sessions_patient_id"), table_name="sessions")
    op.drop_table("sessions")
    op.drop_index(op.f("ix_flag_changes_patient_id"), table_name="flag_changes")
    op.drop_table("flag_changes")
    op.drop_table("patients")
