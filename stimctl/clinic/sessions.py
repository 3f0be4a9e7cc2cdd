"""Session rows: opened before ARM, closed at every end, rebuilt from a record, listed as JSON.

``open_session`` numbers the patient's sessions and reads the flags in force in one transaction
(with the patient's row locked), so two stations never get the same number and each session
keeps the flags it was validated with and the flag change they came from.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from stimctl.clinic.models import ClinicSession, FlagChange, Patient, SessionChannel, utc_now
from stimctl.clinic.patients import PatientError, flag_state, get_patient
from stimctl.clinic.recordfacts import record_facts

__all__ = [
    "ChannelTotals",
    "OpenedSession",
    "SessionEnd",
    "assign_patient",
    "close_session",
    "find_for_record",
    "import_record",
    "list_sessions",
    "open_session",
    "session_json",
]

#: Outcomes of a session row: the controller's (status.Outcome) and REFUSED (nothing armed).
REFUSED = "REFUSED"


@dataclass(frozen=True, slots=True)
class OpenedSession:
    """An open row: its session id, the patient's number for it, the flags to validate with."""

    uid: str
    number: int | None
    flags: frozenset[str]
    flag_change_id: int | None


@dataclass(frozen=True, slots=True)
class ChannelTotals:
    channel: int
    pulses: int | None
    expected_pulses: int | None
    charge_uc: float | None


@dataclass(frozen=True, slots=True)
class SessionEnd:
    """What the end of a session adds to its row."""

    outcome: str
    exit_code: int
    ended_at: datetime | None = None
    device_serial: str | None = None
    device_firmware: str | None = None
    simulator: bool | None = None
    profile_name: str | None = None
    profile_sha256: str | None = None
    delivered_s: float | None = None
    channels: Sequence[ChannelTotals] = ()
    faults: Sequence[dict[str, Any]] = ()
    violations: Sequence[str] = ()
    record_tag: str | None = None
    record_written: bool = True  # False: the session ended before its record was created


def open_session(
    session: Session,
    *,
    patient_code: str | None,
    operator: str,
    record_path: str | Path | None,
    flags: Iterable[str] = (),
    uid: str | None = None,
    profile_name: str | None = None,
    now: datetime | None = None,
) -> OpenedSession:
    """Insert an open row. With a patient: the patient's current flags (``flags`` is ignored) and
    the next number; without one: ``flags`` as given (the CLI's ``--patient``)."""
    uid = uid or str(uuid.uuid4())
    patient: Patient | None = None
    number = change_id = None
    used = frozenset(flags)
    if patient_code is not None:
        patient = get_patient(session, patient_code, lock=True)
        state = flag_state(session, patient)
        used, change_id = state.flags, state.change_id
        last = session.scalar(
            select(func.max(ClinicSession.number)).where(ClinicSession.patient_id == patient.id)
        )
        number = (last or 0) + 1
    row = ClinicSession(
        uid=uid, patient=patient, number=number, started_at=now or utc_now(), operator=operator,
        flags=sorted(used), flag_change_id=change_id, profile_name=profile_name,
        record_path=None if record_path is None else str(Path(record_path).absolute()),
    )  # fmt: skip
    session.add(row)
    session.flush()
    return OpenedSession(uid, number, used, change_id)


def assign_patient(session: Session, uid: str, patient_code: str) -> OpenedSession:
    """Give an open row without a patient (the terminal UI's, before anything was armed) its
    patient: the next number and the patient's flags in force, with the patient's row locked."""
    row = _row(session, uid)
    if row.patient_id is not None or row.outcome is not None:
        raise PatientError(f"session {uid} already has a patient or has ended")
    patient = get_patient(session, patient_code, lock=True)
    state = flag_state(session, patient)
    last = session.scalar(
        select(func.max(ClinicSession.number)).where(ClinicSession.patient_id == patient.id)
    )
    row.patient, row.number = patient, (last or 0) + 1
    row.flags, row.flag_change_id = sorted(state.flags), state.change_id
    session.flush()
    return OpenedSession(uid, row.number, state.flags, state.change_id)


def _row(session: Session, uid: str) -> ClinicSession:
    row = session.scalars(select(ClinicSession).where(ClinicSession.uid == uid)).one_or_none()
    if row is None:
        raise PatientError(f"no session {uid}")
    return row


def close_session(session: Session, uid: str, end: SessionEnd) -> ClinicSession:
    """Fill the row's end: outcome, exit code, device, delivery totals, faults, record tag."""
    row = _row(session, uid)
    row.outcome, row.exit_code = end.outcome, end.exit_code
    row.ended_at = end.ended_at or utc_now()
    for name in ("device_serial", "device_firmware", "simulator", "profile_name",
                 "profile_sha256", "delivered_s", "record_tag"):  # fmt: skip
        value = getattr(end, name)
        if value is not None:
            setattr(row, name, value)
    if not end.record_written:
        row.record_path = None
    row.faults = [dict(f) for f in end.faults]
    row.violations = list(dict.fromkeys(end.violations))
    row.channels = [
        SessionChannel(channel=c.channel, pulses=c.pulses, expected_pulses=c.expected_pulses,
                       charge_uc=c.charge_uc)
        for c in end.channels
    ]  # fmt: skip
    session.flush()
    return row


def find_for_record(session: Session, uid: str | None, path: str | Path) -> ClinicSession | None:
    """The row of a record: by its session id, else by its path."""
    if uid is not None:
        row = session.scalars(select(ClinicSession).where(ClinicSession.uid == uid)).one_or_none()
        if row is not None:
            return row
    where = str(Path(path).absolute())
    return session.scalars(
        select(ClinicSession).where(ClinicSession.record_path == where).order_by(ClinicSession.id)
    ).first()


def import_record(
    session: Session, path: str | Path, *, patient_code: str | None = None
) -> tuple[ClinicSession, bool]:
    """Rebuild (or close) the row of a record; (row, created). PatientError when the record
    belongs to another row or patient, or is already imported with another tag."""
    from stimctl.host.record import summarise
    from stimctl.host.verification import VerifyExit, verify

    check = verify(path)  # intact (open, or tags not checkable here, too), never damaged or forged
    if check.exit is VerifyExit.BAD:
        raise PatientError(f"{path}: not imported, the record is damaged: {check.reason}")
    facts = record_facts(path)
    summary = summarise(path)
    if facts.session_id is None:
        raise PatientError(f"{path}: the record has no session id")
    row = find_for_record(session, facts.session_id, path)
    if row is not None and row.uid != facts.session_id:
        row = None  # another session's row at this path: this record gets its own
    code = patient_code or facts.patient_id
    created = row is None
    if row is None:
        started = _parse_time(summary.started)
        opened = open_session(session, patient_code=code, operator=summary.operator or "",
                              record_path=path, flags=facts.flags, uid=facts.session_id,
                              now=started)  # fmt: skip
        row = _row(session, opened.uid)
        row.flags = sorted(facts.flags)  # the flags the record says were used
    else:
        if code is not None and (row.patient is None or row.patient.code != code):
            raise PatientError(f"{path}: its session row belongs to another patient")
        if row.outcome is not None and row.record_tag not in (None, facts.tag):
            raise PatientError(
                f"{path}: session {row.uid} is already stored with another final tag"
            )
    end = SessionEnd(
        outcome=(summary.outcome or "OPEN").upper() if summary.closed else "OPEN",
        exit_code=summary.exit_code if summary.exit_code is not None else 3,
        device_serial=summary.serial, device_firmware=summary.firmware,
        profile_name=summary.profile_name, profile_sha256=summary.profile_sha256,
        delivered_s=summary.delivered_s,
        channels=[ChannelTotals(c.id, c.pulses, None, c.charge_uc) for c in summary.channels],
        faults=summary.faults, violations=facts.violations, record_tag=facts.tag,
    )  # fmt: skip
    return close_session(session, row.uid, end), created


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None


def list_sessions(session: Session, patient_code: str | None = None) -> list[ClinicSession]:
    query = select(ClinicSession).options(
        selectinload(ClinicSession.channels), selectinload(ClinicSession.patient)
    )
    if patient_code is not None:
        patient = get_patient(session, patient_code)
        query = query.where(ClinicSession.patient_id == patient.id)
    return list(session.scalars(query.order_by(ClinicSession.started_at, ClinicSession.id)))


def _time(value: datetime | None) -> str | None:
    return None if value is None else value.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def session_json(row: ClinicSession) -> dict[str, Any]:
    """One session as JSON (keys in this order: the documented contract)."""
    return {
        "id": row.uid,
        "patient": row.patient.code if row.patient is not None else None,
        "number": row.number,
        "started": _time(row.started_at),
        "ended": _time(row.ended_at),
        "operator": row.operator,
        "device_serial": row.device_serial,
        "device_firmware": row.device_firmware,
        "simulator": row.simulator,
        "profile": row.profile_name,
        "profile_sha256": row.profile_sha256,
        "flags": list(row.flags),
        "outcome": row.outcome,
        "exit_code": row.exit_code,
        "delivered_s": row.delivered_s,
        "channels": [channel_json(c) for c in row.channels],
        "faults": list(row.faults),
        "violations": list(row.violations),
        "record": row.record_path,
        "record_tag": row.record_tag,
    }


def channel_json(c: SessionChannel) -> dict[str, Any]:
    return {
        "channel": c.channel,
        "pulses": c.pulses,
        "expected_pulses": c.expected_pulses,
        "charge_uc": c.charge_uc,
    }


def change_json(change: FlagChange) -> dict[str, Any]:
    return {
        "flag": change.flag,
        "change": "set" if change.value else "unset",
        "at": _time(change.changed_at),
        "operator": change.operator,
    }


def patient_json(session: Session, patient: Patient) -> dict[str, Any]:
    """A patient with the flags in force, the whole flag history and every session."""
    state = flag_state(session, patient)
    return {
        "id": patient.code,
        "born": patient.born,
        "note": patient.note,
        "created": _time(patient.created_at),
        "created_by": patient.created_by,
        "flags": {
            flag: {"since": _time(c.changed_at), "operator": c.operator}
            for flag, c in sorted(state.set_by.items())
        },
        "flag_history": [change_json(c) for c in patient.flag_changes],
        "sessions": [session_json(row) for row in list_sessions(session, patient.code)],
    }
