"""Exceptions raised by the link, the interlock and the controller (the scripting API)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from stimctl.protocol.constants import NakReason
from stimctl.protocol.details import nak_detail_text

if TYPE_CHECKING:
    from stimctl.host.status import FaultInfo, Rescue
    from stimctl.rules.report import Report

__all__ = [
    "CommandRejected",
    "DeviceFault",
    "InterlockError",
    "LinkError",
    "PortInUse",
    "ProtocolMismatch",
    "RecordFailed",
    "StimctlError",
    "ValidationRefused",
]


class StimctlError(Exception):
    """Base of every error stimctl raises on purpose; its message is one clear line."""


class LinkError(StimctlError):
    """The serial link failed: port cannot be opened, vanished (unplug, EIO) or timed out."""


class PortInUse(LinkError):
    """Another host holds the port (``pid``): refused before anything is opened or written."""

    def __init__(self, port: str, pid: int | None) -> None:
        who = f"PID {pid}" if pid else "another process"
        super().__init__(f"port {port} in use by {who}")
        self.port, self.pid = port, pid


class ProtocolMismatch(StimctlError):
    """The device speaks another protocol version or message catalogue (checked at HELLO)."""


class InterlockError(StimctlError):
    """A command refused by the host interlock before anything was sent; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class RecordFailed(StimctlError):
    """The session record cannot be written (folder, key, file, a line): no session without it.
    Before ARM nothing is armed; during a session the controller stops it with a ramp-down.
    ``rescue`` says where unwritten lines went once the record is closed."""

    rescue: Rescue | None = None


class ValidationRefused(StimctlError):
    """The profile has errors against the effective envelope; ``report`` lists them."""

    def __init__(self, report: Report) -> None:
        self.report = report
        first = report.errors[0] if report.errors else None
        where = f"{first.loc or '(profile)'}: {first.message}" if first else "invalid profile"
        more = len(report.errors) - 1
        super().__init__(f"profile refused: {where}" + (f" (+{more} more)" if more > 0 else ""))


class DeviceFault(StimctlError):
    """A latched fault (device or host side) stopped the session; ``fault`` holds the cause."""

    def __init__(self, fault: FaultInfo) -> None:
        self.fault = fault
        super().__init__(f"fault {fault.code}: {fault.message}")


class CommandRejected(StimctlError):
    """The device answered NAK; ``reason`` is the NakReason name, ``command`` the message type."""

    def __init__(self, command: str, reason: str, detail: int = 0) -> None:
        self.command = command
        self.reason = reason
        self.detail = detail
        code = NakReason[reason] if reason in NakReason.__members__ else -1
        said = nak_detail_text(code, detail, command)
        super().__init__(f"{command} rejected by the device: {reason} ({said})")
