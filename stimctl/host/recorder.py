"""Session-record writer: the controller's record, its opening lines, failures and their rescue.

The file format, its keyed chain and the line writer are ``stimctl.host.record``; this module
opens the record (folder, site key, session id), writes the opening lines that must be on disk
before ARM, and turns a write that fails into a reported failure: the controller is told once
(it stops the session), every unwritten line is kept and, at close, rescued to a file beside
the record, else to the user's state folder (``recordkey.rescue_dir``), else to standard error.
No line is dropped silently.
"""

from __future__ import annotations

import logging
import os
import platform
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, TextIO

from stimctl.host.errors import RecordFailed
from stimctl.host.record import SessionRecord
from stimctl.host.recordkey import rescue_dir, writing_key
from stimctl.host.status import Rescue
from stimctl.protocol import CATALOGUE_HASH, PROTOCOL_VERSION

__all__ = ["Recorder", "rescue_lines", "versions"]

log = logging.getLogger(__name__)


def versions() -> dict[str, str]:
    """Software versions for the record."""
    import numpy
    import pydantic
    import serial

    from stimctl import __version__

    return {
        "stimctl": __version__, "python": sys.version.split()[0], "platform": platform.platform(),
        "pyserial": serial.__version__, "numpy": numpy.__version__,
        "pydantic": pydantic.__version__, "protocol": str(PROTOCOL_VERSION),
        "catalogue_hash": f"{CATALOGUE_HASH:#010x}",
    }  # fmt: skip


def _why(exc: BaseException) -> str:
    return getattr(exc, "strerror", None) or str(exc)


def _write_new(path: Path, lines: Sequence[bytes]) -> None:
    """Write ``lines`` to a new file and make it durable (OSError if any step fails)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        data = memoryview(b"".join(lines))
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    except OSError:
        os.close(fd)
        path.unlink(missing_ok=True)  # a torn rescue is no rescue: the next place gets it all
        raise
    os.close(fd)


def _free_name(folder: Path, stem: str) -> Path:
    path, n = folder / f"{stem}.rescue.jsonl", 2
    while path.exists():
        path, n = folder / f"{stem}.rescue-{n}.jsonl", n + 1
    return path


def rescue_lines(record: Path, lines: Sequence[bytes], stderr: TextIO | None = None) -> Rescue:
    """Put ``lines`` (whole record lines) beside ``record`` as ``<stem>.rescue.jsonl``, else in
    the state folder, else on standard error; never raises."""
    tried: list[str] = []
    for folder in (record.parent, rescue_dir()):
        try:
            path = _free_name(folder, record.stem)
            _write_new(path, lines)
        except OSError as exc:
            tried.append(f"{folder}: {_why(exc)}")
            continue
        return Rescue(len(lines), path, tuple(tried))
    out = stderr or sys.stderr
    out.write(f"stimctl: record {record} could not be written; its unwritten lines follow\n")
    for line in lines:
        out.write(line.decode("ascii"))
    out.flush()
    return Rescue(len(lines), None, tuple(tried))


class Recorder:
    """The controller's session record, or nothing when it runs without one."""

    def __init__(self, on_failure: Callable[[str], None] | None = None) -> None:
        self._record: SessionRecord | None = None
        self._on_failure = on_failure
        self._notifying = False
        self.session_id: str | None = None
        self.rescue: Rescue | None = None

    def open(self, path: Path, key_file: Path | None = None, session_id: str | None = None) -> None:
        """Create the record (never over an existing file) with its key and session id (a new
        UUID unless given); RecordFailed (one line: what and why) if the folder, the key or the
        file cannot be had."""
        key = writing_key(key_file, path.parent)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            why = "it is a file" if path.parent.is_file() else _why(exc)
            raise RecordFailed(f"cannot create the records folder {path.parent}: {why}") from None
        try:
            self._record = SessionRecord(path, key)
        except FileExistsError as exc:
            raise RecordFailed(str(exc)) from None
        except OSError as exc:
            raise RecordFailed(f"cannot create the session record {path}: {_why(exc)}") from None
        self.session_id = session_id or str(uuid.uuid4())

    def opening(self, data: Mapping[str, Any]) -> None:
        """The record's first line (``session``: operator, versions, ...) with the session id
        and the key id; durable. RecordFailed if it is not on disk."""
        rec = self._record
        if rec is None:
            return
        key_id = rec.key.id if rec.key is not None else None
        self.write("session", {**data, "session_id": self.session_id, "key_id": key_id})
        self.require_intact()

    @property
    def path(self) -> Path | None:
        return None if self._record is None else self._record.path

    @property
    def is_open(self) -> bool:
        return self._record is not None and not self._record.closed

    @property
    def failure(self) -> str | None:
        """Why the record failed (one line), or None while every line is on disk."""
        rec = self._record
        if rec is None or rec.failure is None:
            return None
        return f"cannot write the session record {rec.path}: {_why(rec.failure)}"

    @property
    def anchor(self) -> str | None:
        """The last line's tag so far (the final one once closed)."""
        return None if self._record is None else self._record.anchor

    def require_intact(self) -> None:
        """RecordFailed if a line of the record is not on disk (nothing may be armed then)."""
        failure = self.failure
        if failure is not None:
            raise RecordFailed(failure)

    def write(self, kind: str, data: Mapping[str, Any], durable: bool = True) -> None:
        """Append one line; never raises. From the first failed write on, the line and all later
        ones are kept for the rescue, and ``on_failure`` is called after each (not from inside
        itself: the lines it writes do not call it again)."""
        rec = self._record
        if rec is None or rec.closed:
            return
        try:
            rec.append(kind, data, durable=durable)
        except ValueError as exc:  # closed meanwhile by another thread: after its end line
            log.warning("record %s: %s", kind, exc)
            return
        if rec.failure is not None and self._on_failure is not None and not self._notifying:
            self._notifying = True
            try:
                self._on_failure(self.failure or "")
            finally:
                self._notifying = False

    def close(self, summary: Mapping[str, Any] | None, end: Mapping[str, Any]) -> None:
        """The ``summary`` line (if any), then the ``end`` line; then unwritten lines are
        rescued (``rescue`` says where)."""
        rec = self._record
        if rec is None or rec.closed:
            return
        if summary is not None:
            self.write("summary", summary)
        rec.close(end)
        if rec.unwritten:
            self.rescue = rescue_lines(rec.path, rec.unwritten)
