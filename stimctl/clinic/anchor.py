"""What the clinic store keeps of a session record: its session id, patient and final chain tag.

The record is the evidence; the store keeps its final tag so that a swapped, truncated or
re-chained file no longer matches. ``stimctl.clinic.recordfacts`` reads these from a record
file.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.exc import SQLAlchemyError

if TYPE_CHECKING:
    from stimctl.host.verification import Anchor, Anchored, AnchorResult

__all__ = ["database_anchor"]


def database_anchor(db_url: str | None, path: str | Path) -> Anchor | None:
    """The clinic database as an outside anchor for ``record verify`` (None when no database is
    named and none exists at the default place). It finds the record's row by session id and by
    path: another session stored at this path (a swapped file) or another final tag (truncated,
    re-chained) disagrees; no row, an open row, or a database that cannot be read is said and
    agrees (the exit code stays). Never creates or changes a database."""
    from stimctl.clinic.db import database_url, sqlite_file

    url, default = database_url(db_url)
    if default and not (sqlite_file(url) or Path()).is_file():
        return None

    def check(record: Anchored) -> AnchorResult:
        return _compare(url, path, record)

    return check


def _compare(url: str, path: str | Path, record: Anchored) -> AnchorResult:
    from stimctl.clinic.db import DatabaseError, db_reason, open_database
    from stimctl.clinic.schema import current_revision, head_revision
    from stimctl.clinic.sessions import find_for_record
    from stimctl.host.verification import short_anchor

    try:
        db = open_database(url, create=False)
    except DatabaseError as error:
        return True, f"database: not checked: {error}"
    try:
        revision = current_revision(db)
        if revision != head_revision():
            return True, (
                f"database: not checked: schema revision {revision}, expected"
                f" {head_revision()} (stimctl db upgrade)"
            )
        with db.session() as session:
            row = find_for_record(session, record.session_id, path)
            at_path = find_for_record(session, None, path)
            if row is None:
                return True, "database: no session row for this record (run without it?)"
            if at_path is not None and at_path.uid != row.uid:
                return False, (
                    f"database: anchor DISAGREES: the session stored at this path is {at_path.uid},"
                    f" this record is session {row.uid} (a swapped file?)"
                )
            if record.session_id is not None and row.uid != record.session_id:
                return False, (
                    f"database: anchor DISAGREES: the session stored at this path is {row.uid},"
                    f" this record says {record.session_id} (a swapped file?)"
                )
            who = f"patient {row.patient.code} #{row.number}" if row.patient else "no patient"
            uid, stored = row.uid, row.record_tag
    except (DatabaseError, SQLAlchemyError) as error:
        return True, f"database: not checked: {db_reason(error)}"
    finally:
        db.dispose()
    if stored is None:
        return True, (
            f"database: session {uid} ({who}) is still open, no final tag stored"
            f" (stimctl session import {path} closes it)"
        )
    if stored != record.final:
        return False, (
            f"database: anchor DISAGREES: session {uid} ({who}) ended with tag"
            f" {short_anchor(stored)}, the record ends with {short_anchor(record.final)}"
            " (truncated, re-chained or replaced)"
        )
    return True, f"database: anchor agrees (session {uid}, {who}, tag {short_anchor(stored)})"
