"""The clinic database's part in `stimctl run`: the session row opened first, closed at the end.

The database is opened (and the patient found) before anything touches the device; a failure
there refuses the session with exit 3. The row is opened before the profile is even loaded, so
a refusal is a row too, and a killed host leaves an open row; it is closed at every end from
what the controller and the record say. A failure at the end is reported, never hidden, and
`stimctl session import RECORD` rebuilds the row later.
"""

from __future__ import annotations

import argparse
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from stimctl.clinic.db import Database
    from stimctl.clinic.sessions import SessionEnd
    from stimctl.controller import Controller
    from stimctl.host.status import DeviceSummary

#: The row's outcome when the session never produced one: by the command's exit code.
OUTCOME_BY_EXIT = {0: "COMPLETED", 1: "REFUSED", 3: "FAULT", 4: "ABORTED"}


@dataclass
class ClinicRun:
    """One run's row: ``open`` before the device, ``close`` in the ``finally``."""

    db: Database
    patient_code: str | None
    uid: str | None = None

    @classmethod
    def start(cls, args: argparse.Namespace) -> ClinicRun:
        """Open the database, check the patient exists; DatabaseError, PatientError."""
        from stimctl.cli.clinic_options import open_clinic
        from stimctl.clinic.patients import get_patient

        db = open_clinic(args)
        try:
            if args.patient_id is not None:
                with db.session() as session:
                    get_patient(session, args.patient_id)
        except BaseException:
            db.dispose()
            raise
        return cls(db, args.patient_id)

    def open(
        self, operator: str, record: Path, flags: Iterable[str], profile: str
    ) -> frozenset[str]:
        """Open the row; the flags to validate with (the patient's in force, else ``flags``)."""
        from stimctl.clinic.sessions import open_session

        with self.db.session() as session:
            opened = open_session(
                session, patient_code=self.patient_code, operator=operator,
                record_path=record, flags=flags, profile_name=profile,
            )  # fmt: skip
        self.uid = opened.uid
        return opened.flags

    def patients(self) -> list[str]:
        """The clinic's patient ids (the terminal UI's picker); DatabaseError, SQLAlchemyError."""
        from stimctl.clinic.patients import list_patients

        with self.db.session() as session:
            return [p.code for p in list_patients(session)]

    def choose(self, code: str) -> frozenset[str]:
        """Give this run's open row its patient; the patient's flags in force. PatientError,
        DatabaseError, SQLAlchemyError."""
        from stimctl.clinic.sessions import assign_patient

        assert self.uid is not None
        with self.db.session() as session:
            opened = assign_patient(session, self.uid, code)
        self.patient_code = code
        return opened.flags

    def close(
        self,
        ctl: Controller | None,
        code: int,
        record: Path,
        violations: Iterable[str],
        idle: str | None = None,
    ) -> str | None:
        """Close the row; None, or the one-line reason it could not be. ``idle``: the outcome
        when the controller never ran a session (else the exit code's)."""
        from sqlalchemy.exc import SQLAlchemyError

        from stimctl.clinic.db import DatabaseError, db_reason
        from stimctl.clinic.sessions import close_session

        if self.uid is None:
            return None
        try:
            end = _end(ctl, code, record, violations, idle)
            with self.db.session() as session:
                close_session(session, self.uid, end)
        except (DatabaseError, SQLAlchemyError) as error:
            return db_reason(error)
        finally:
            self.db.dispose()
        return None


def _end(
    ctl: Controller | None, code: int, record: Path, violations: Iterable[str], idle: str | None
) -> SessionEnd:
    from stimctl.clinic.recordfacts import record_facts
    from stimctl.clinic.sessions import ChannelTotals, SessionEnd
    from stimctl.host.errors import StimctlError

    outcome = idle if idle and code != 1 else OUTCOME_BY_EXIT.get(code, "FAULT")
    serial = firmware = simulator = None
    delivered = None
    channels: list[ChannelTotals] = []
    faults: list[dict[str, object]] = []
    if ctl is not None:
        summary = ctl.summary()
        if summary.outcome is not None and code != 1:
            outcome = summary.outcome.value
            code = summary.outcome.exit_code if idle else code
        try:
            device: DeviceSummary | None = ctl.device
        except StimctlError:  # never connected
            device = None
        if device is not None:
            serial, firmware, simulator = device.serial, device.firmware, ctl.is_simulator
        if ctl.profile is not None:
            delivered = summary.delivered_s
            channels = [ChannelTotals(c.id, c.pulses, c.expected_pulses, c.charge_uc)
                        for c in summary.channels]  # fmt: skip
        faults = [f.to_dict() for f in summary.faults]
    codes = list(violations)
    name = sha = tag = None
    if record.is_file():
        facts = record_facts(record)
        codes += facts.violations
        name, sha, tag = facts.profile_name, facts.profile_sha256, facts.tag
    if ctl is not None and ctl.record_tag is not None:  # the final tag, rescued lines too
        tag = ctl.record_tag
    return SessionEnd(
        outcome=outcome, exit_code=code, device_serial=serial, device_firmware=firmware,
        simulator=simulator, profile_name=name, profile_sha256=sha, delivered_s=delivered,
        channels=channels, faults=faults, violations=codes, record_tag=tag,
        record_written=record.is_file(),
    )  # fmt: skip
