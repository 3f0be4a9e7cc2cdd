"""Messages from I/O threads to the UI, and the slot that coalesces telemetry (latest wins)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from textual.message import Message

if TYPE_CHECKING:
    from stimctl import Report
    from stimctl.host.status import Event, Status
    from stimctl.rules.profile import Profile


class TelemetryReady(Message):
    """A new Status is waiting in the app's TelemetrySlot (carries no data: the slot holds it)."""

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, TelemetryReady)


class DeviceEvent(Message):
    """A controller Event (state change, fault, command, log) from any thread."""

    def __init__(self, event: Event) -> None:
        super().__init__()
        self.event = event


class DeviceCallDone(Message):
    """A blocking controller call made in a worker thread has returned or raised.

    ``result`` is whatever the call returned (its receiver knows which call ``name`` was)."""

    def __init__(
        self, name: str, result: object = None, error: BaseException | None = None
    ) -> None:
        super().__init__()
        self.name = name
        self.result = result
        self.error = error

    @property
    def ok(self) -> bool:
        return self.error is None


@dataclass(frozen=True, slots=True)
class ProfileLoaded:
    """What a profile load (run in a worker) found, for the request (path, patient) it answers."""

    path: Path | Profile  # a file, or the course stage's stored profile
    patient: tuple[str, ...]
    report: Report | None  # None: nothing could be loaded now (see notice)
    loaded: bool  # the controller holds it: it may be armed
    notice: str
    is_error: bool


class TelemetrySlot:
    """One-deep mailbox: the I/O thread overwrites, the UI takes. A stale sample is replaced.

    ``put`` returns True only when the slot was empty, i.e. when the caller must post a
    TelemetryReady; while one is pending, newer samples just replace the stored one.
    """

    __slots__ = ("_lock", "_pending", "_value", "replaced")

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._value: Status | None = None
        self._pending = False
        self.replaced = 0  # samples overwritten before the UI saw them (diagnostic)

    def put(self, value: Status) -> bool:
        with self._lock:
            if self._pending:
                self.replaced += 1
            self._value = value
            was_empty = not self._pending
            self._pending = True
            return was_empty

    def take(self) -> Status | None:
        with self._lock:
            self._pending = False
            return self._value
