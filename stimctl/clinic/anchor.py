"""What the clinic store keeps of a session record: its session id, patient and final chain tag.

The record is the evidence; the store keeps its final tag so that a swapped, truncated or
re-chained file no longer matches. ``record_facts`` is the one place that reads these from a
record file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

__all__ = ["AnchorCheck", "RecordFacts", "check_anchor", "record_facts"]


@dataclass(frozen=True, slots=True)
class RecordFacts:
    """Session id and patient from the record's opening line, rule codes, the final tag."""

    session_id: str | None = None
    patient_id: str | None = None
    profile_name: str | None = None
    profile_sha256: str | None = None
    flags: tuple[str, ...] = ()
    violations: tuple[str, ...] = ()
    tag: str | None = None
    lines: int = 0


def _entries(path: Path) -> list[dict[str, Any]]:
    entries = []
    for raw in path.read_bytes().splitlines():
        try:
            entry = json.loads(raw)
        except (UnicodeDecodeError, ValueError, RecursionError):
            continue
        if isinstance(entry, dict) and isinstance(entry.get("data"), dict):
            entries.append(entry)
    return entries


def final_tag(entry: dict[str, Any]) -> str | None:
    """A line's chain tag: the keyed ``tag`` when the record has one, else its ``hash``."""
    value = entry.get("tag", entry.get("hash"))
    return value if isinstance(value, str) else None


def record_facts(path: str | Path) -> RecordFacts:
    """Read what the store needs from a record file; OSError if it cannot be read."""
    from stimctl.host.record import summarise

    told = summarise(path)
    entries = _entries(Path(path))
    session_id = patient_id = None
    flags: tuple[str, ...] = ()
    codes: list[str] = []
    for entry in entries:
        kind, data = entry.get("kind"), entry["data"]
        if kind == "session":
            session_id = _text(data.get("session_id"))
            patient_id = _text(data.get("patient_id"))
            flags = tuple(str(f) for f in data.get("patient", []) if isinstance(f, str))
        elif kind in ("refused", "profile"):
            items = data.get("violations" if kind == "refused" else "warnings", [])
            codes += [v["code"] for v in items if isinstance(v, dict) and "code" in v]
    tag = final_tag(entries[-1]) if entries else None
    return RecordFacts(session_id, patient_id, told.profile_name, told.profile_sha256, flags,
                       tuple(dict.fromkeys(codes)), tag, len(entries))  # fmt: skip


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True, slots=True)
class AnchorCheck:
    """What the database says about a record: ``agrees`` None when it cannot say (no database,
    no row, an open row), False when the stored anchor disagrees."""

    agrees: bool | None
    message: str


def check_anchor(db_url: str | None, path: str | Path) -> AnchorCheck | None:
    """Compare a record with its session row; None when no database is configured and none
    exists at the default place. Never creates or changes a database."""
    from stimctl.clinic.db import DatabaseError, database_url, db_reason, open_database, sqlite_file
    from stimctl.clinic.schema import current_revision, head_revision
    from stimctl.clinic.sessions import find_for_record

    url, default = database_url(db_url)
    if default and not (sqlite_file(url) or Path()).is_file():
        return None
    try:
        db = open_database(url, create=False)
    except DatabaseError as error:
        return AnchorCheck(None, f"database: not checked: {error}")
    try:
        revision = current_revision(db)
        if revision != head_revision():
            return AnchorCheck(
                None,
                f"database: not checked: schema revision {revision}, expected"
                f" {head_revision()} (stimctl db upgrade)",
            )
        facts = record_facts(path)
        with db.session() as session:
            row = find_for_record(session, facts.session_id, path)
            at_path = find_for_record(session, None, path)
            if at_path is not None and row is not None and at_path.uid != row.uid:
                return AnchorCheck(
                    False,
                    f"database: anchor DISAGREES: the session stored at this path is"
                    f" {at_path.uid}, the record is session {row.uid} (swapped?)",
                )
            if row is None:
                return AnchorCheck(None, "database: no session row for this record"
                                         " (run without the database?)")  # fmt: skip
            who = f"patient {row.patient.code} #{row.number}" if row.patient else "no patient"
            uid, stored = row.uid, row.record_tag
    except (DatabaseError, SQLAlchemyError) as error:
        return AnchorCheck(None, f"database: not checked: {db_reason(error)}")
    finally:
        db.dispose()
    if facts.session_id != uid:
        return AnchorCheck(False, f"database: anchor DISAGREES: the session stored for this path"
                                  f" is {uid}, the record says {facts.session_id}")  # fmt: skip
    if stored is None:
        return AnchorCheck(None, f"database: session {uid} ({who}) is still open: no final tag"
                                 f" stored (stimctl session import {path} closes it)")  # fmt: skip
    if stored != facts.tag:
        return AnchorCheck(
            False,
            f"database: anchor DISAGREES: session {uid} ({who}) ended with tag {stored[:12]},"
            f" the record ends with {(facts.tag or 'nothing')[:12]}"
            " (swapped, truncated or re-chained)",
        )
    return AnchorCheck(True, f"database: anchor agrees (session {uid}, {who}, tag {stored[:12]})")
