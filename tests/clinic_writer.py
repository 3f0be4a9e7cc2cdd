"""A station recording sessions for one patient: used by test_clinic_db's concurrency test, as a
thread (SQLite) or as its own process (PostgreSQL: ``python clinic_writer.py URL PATIENT N``)."""

from __future__ import annotations

import sys
from pathlib import Path

from stimctl.clinic.db import open_database
from stimctl.clinic.sessions import SessionEnd, close_session, open_session
from stimctl.rules.profile import load_profile
from stimctl.rules.validation import validate_profile

#: Han dense-disperse uses SP6: refused for a pregnant patient, valid otherwise.
PROFILE = Path(__file__).resolve().parent.parent / "profiles" / "han-dense-disperse.toml"


def record_sessions(url: str, patient: str, count: int, station: str) -> None:
    """Open, validate with the flags in force, and close ``count`` sessions."""
    profile = load_profile(PROFILE)
    db = open_database(url)
    try:
        for _ in range(count):
            with db.session() as session:
                opened = open_session(
                    session, patient_code=patient, operator=station, record_path=None
                )
            report = validate_profile(profile, patient=opened.flags)
            end = SessionEnd(
                outcome="COMPLETED" if report.ok else "REFUSED",
                exit_code=0 if report.ok else 1,
                violations=[v.code for v in report.violations],
            )
            with db.session() as session:
                close_session(session, opened.uid, end)
    finally:
        db.dispose()


if __name__ == "__main__":
    record_sessions(sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4])
