"""Session-record writer: opens the controller's record, appends lines (never fatal), closes it.

The file format and its hash chain are ``stimctl.host.record``; this module decides nothing about
what a line says, only that a line that cannot be written is logged and never stops a session.
"""

from __future__ import annotations

import contextlib
import logging
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from stimctl.host.errors import StimctlError
from stimctl.host.record import SessionRecord
from stimctl.protocol import CATALOGUE_HASH, PROTOCOL_VERSION

__all__ = ["Recorder", "versions"]

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


class Recorder:
    """The controller's session record, or nothing when it runs without one."""

    def __init__(self) -> None:
        self._record: SessionRecord | None = None

    def open(self, path: Path) -> None:
        """Create the record (never over an existing file); StimctlError if it exists."""
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._record = SessionRecord(path)
        except FileExistsError as exc:
            raise StimctlError(str(exc)) from None

    @property
    def path(self) -> Path | None:
        return None if self._record is None else self._record.path

    @property
    def is_open(self) -> bool:
        return self._record is not None and not self._record.closed

    def write(self, kind: str, data: Mapping[str, Any], durable: bool = True) -> None:
        """Append one line; a closed record or disk trouble is logged, never raised."""
        rec = self._record
        if rec is None or rec.closed:
            return
        try:
            rec.append(kind, data, durable=durable)
        except (ValueError, OSError) as exc:  # closed meanwhile, or disk trouble: never fatal here
            log.warning("record %s: %s", kind, exc)

    def close(self, summary: Mapping[str, Any] | None, end: Mapping[str, Any]) -> None:
        """The ``summary`` line (if any), then the ``end`` line; the record is closed after."""
        rec = self._record
        if rec is None or rec.closed:
            return
        if summary is not None:
            self.write("summary", summary)
        with contextlib.suppress(ValueError, OSError):
            rec.close(end)
