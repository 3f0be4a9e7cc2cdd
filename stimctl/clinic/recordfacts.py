"""What the clinic store reads from a session record file: session id, patient, codes, final tag.

``record_facts`` is the one place that reads these from a record file (the anchor check and the
session import both use it).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["RecordFacts", "final_tag", "record_facts"]


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
