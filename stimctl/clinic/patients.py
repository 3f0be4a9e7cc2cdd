"""Patients and their clinical flags: add, change (each change kept with time and operator), read.

A flag's state is the last change recorded for it; nothing is overwritten. Changes lock the
patient's row, so do the sessions that read the flags: a session sees a whole change or none,
and the flags it used are those of the last change before it (``FlagState.change_id``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from stimctl.clinic.models import FlagChange, Patient, utc_now
from stimctl.rules.validation import check_patient

__all__ = [
    "FlagState",
    "PatientError",
    "add_patient",
    "change_flags",
    "flag_state",
    "get_patient",
    "list_patients",
]

CODE_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
FIRST_BIRTH_YEAR = 1900


class PatientError(ValueError):
    """An unknown patient, a duplicate id, a bad flag or year: refused (exit 1)."""


@dataclass(frozen=True, slots=True)
class FlagState:
    """The flags in force: each set flag with the change that set it; ``change_id`` is the last
    change of any flag (None: never changed)."""

    set_by: dict[str, FlagChange]
    change_id: int | None

    @property
    def flags(self) -> frozenset[str]:
        return frozenset(self.set_by)


def check_code(code: str) -> str:
    """A patient id: 1-64 letters, digits, '.', '_' or '-', starting with a letter or digit."""
    if not CODE_PATTERN.fullmatch(code):
        raise PatientError(
            f"patient id {code!r}: use 1-64 letters, digits, '.', '_' or '-' (no names)"
        )
    return code


def _flags(flags: Iterable[str]) -> frozenset[str]:
    try:
        return check_patient(flags)
    except ValueError as error:
        raise PatientError(str(error)) from None


def get_patient(session: Session, code: str, *, lock: bool = False) -> Patient:
    """The patient with this id; ``lock`` takes its row for the rest of the transaction."""
    query = select(Patient).where(Patient.code == code)
    if lock:
        query = query.with_for_update()
    patient = session.scalars(query).one_or_none()
    if patient is None:
        raise PatientError(f"no patient {code!r}")
    return patient


def add_patient(
    session: Session,
    code: str,
    *,
    born: int | None = None,
    flags: Iterable[str] = (),
    note: str = "",
    operator: str = "",
    now: datetime | None = None,
) -> Patient:
    """A new patient with its initial flags (each one a recorded change)."""
    check_code(code)
    wanted = _flags(flags)
    now = now or utc_now()
    if born is not None and not FIRST_BIRTH_YEAR <= born <= now.astimezone(UTC).year:
        raise PatientError(f"year of birth {born}: expected {FIRST_BIRTH_YEAR}..{now.year}")
    if session.scalars(select(Patient.id).where(Patient.code == code)).first() is not None:
        raise PatientError(f"patient {code!r} already exists")
    patient = Patient(code=code, born=born, note=note, created_at=now, created_by=operator)
    session.add(patient)
    for flag in sorted(wanted):
        session.add(FlagChange(patient=patient, flag=flag, value=True, changed_at=now,
                               operator=operator))  # fmt: skip
    try:
        session.flush()
    except IntegrityError:  # another station added the same id meanwhile
        raise PatientError(f"patient {code!r} already exists") from None
    return patient


def flag_state(session: Session, patient: Patient) -> FlagState:
    """The flags in force for ``patient`` (read in the caller's transaction)."""
    set_by: dict[str, FlagChange] = {}
    last: int | None = None
    changes = session.scalars(
        select(FlagChange).where(FlagChange.patient_id == patient.id).order_by(FlagChange.id)
    )
    for change in changes:
        last = change.id
        if change.value:
            set_by[change.flag] = change
        else:
            set_by.pop(change.flag, None)
    return FlagState(set_by, last)


def change_flags(
    session: Session,
    code: str,
    *,
    set_flags: Iterable[str] = (),
    unset_flags: Iterable[str] = (),
    operator: str = "",
    now: datetime | None = None,
) -> list[FlagChange]:
    """Set and unset flags; one history row per actual change (a flag already in the asked
    state is left alone). The patient's row is locked for the transaction."""
    to_set, to_unset = _flags(set_flags), _flags(unset_flags)
    both = to_set & to_unset
    if both:
        raise PatientError(f"flag(s) both set and unset: {', '.join(sorted(both))}")
    patient = get_patient(session, code, lock=True)
    current = flag_state(session, patient).flags
    now = now or utc_now()
    changes = [
        FlagChange(patient=patient, flag=flag, value=value, changed_at=now, operator=operator)
        for flag, value in [(f, True) for f in sorted(to_set - current)]
        + [(f, False) for f in sorted(to_unset & current)]
    ]
    session.add_all(changes)
    session.flush()
    return changes


def list_patients(session: Session) -> list[Patient]:
    return list(session.scalars(select(Patient).order_by(Patient.code)))
