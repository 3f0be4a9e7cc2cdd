"""Plain data the controller hands out: host state, status snapshots, faults, events, summaries."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import IntEnum, StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_CODES",
    "ChannelStatus",
    "ChannelSummary",
    "DeviceSummary",
    "Event",
    "ExitCode",
    "FaultInfo",
    "HostState",
    "ImpedanceReading",
    "Outcome",
    "Rescue",
    "SessionSummary",
    "Status",
]


class HostState(StrEnum):
    """The host interlock's state; mirrors the device's states plus DISCONNECTED and COMPLETED."""

    DISCONNECTED = "DISCONNECTED"
    IDLE = "IDLE"
    ARMED = "ARMED"
    RUNNING = "RUNNING"
    PAUSED = "PAUSED"
    STOPPING = "STOPPING"
    COMPLETED = "COMPLETED"
    FAULT = "FAULT"
    ESTOP = "ESTOP"


class ExitCode(IntEnum):
    """The exit codes of every ``stimctl`` subcommand (``record verify`` has its own:
    ``stimctl.host.verification.VerifyExit``)."""

    OK = 0
    REFUSED = 1
    USAGE = 2
    FAULT = 3
    ABORTED = 4


#: What each exit code means: the table in docs/API.md ("Exit codes") and ``stimctl --help``.
EXIT_CODES: Mapping[ExitCode, str] = {
    ExitCode.OK: "success: valid, completed, done",
    ExitCode.REFUSED: "refused or invalid: a profile with an error, the interlock, a record whose"
    " opening lines cannot be written",
    ExitCode.USAGE: "usage: a bad option, argument or file name",
    ExitCode.FAULT: "device or database fault: a latched fault, e-stop, RECORD FAILED, a port in"
    " use by another host",
    ExitCode.ABORTED: "aborted: an operator stop, Ctrl-C, SIGTERM, SIGHUP",
}


class Outcome(StrEnum):
    """How a session ended (``Controller.wait``); ``exit_code`` is the CLI's code for it."""

    COMPLETED = "COMPLETED"
    STOPPED = "STOPPED"
    FAULT = "FAULT"
    ESTOP = "ESTOP"
    ABORTED = "ABORTED"

    @property
    def exit_code(self) -> ExitCode:
        if self is Outcome.COMPLETED:
            return ExitCode.OK
        return ExitCode.FAULT if self in (Outcome.FAULT, Outcome.ESTOP) else ExitCode.ABORTED


#: FaultInfo.code of the host fault latched when the session record cannot be written (the
#: session is stopped with its normal ramp-down; nothing more can be armed).
RECORD_FAILED = "RECORD_FAILED"


@dataclass(frozen=True, slots=True)
class FaultInfo:
    """A latched fault: code (a protocol Fault name or LINK_LOST / HOST_LIMIT / STREAM_REFUSED /
    DEVICE_SILENT)."""

    code: str
    channel: int = 0  # 1-based; 0 = not channel specific
    device_time_ms: int | None = None
    host_time: float = field(default_factory=time.time)  # UNIX time when the host learnt it
    source: str = "device"  # "device" | "host"
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class DeviceSummary:
    """Identity, timing and the hardware limits table the device reported at HELLO."""

    firmware: str
    serial: str
    channels: int
    tick_hz: int
    telemetry_hz: int
    watchdog_ms: int
    fifo_depth: int
    max_lookahead_ms: int
    impedance_valid_ms: int
    protocol_version: int
    catalogue_hash: int
    limits: dict[str, int]
    limits_hash: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class ImpedanceReading:
    """One channel's impedance check: ohm, status name (OK/OPEN/SHORT/HIGH), passed or not."""

    ohm: int
    status: str
    ok: bool


@dataclass(frozen=True, slots=True)
class ChannelStatus:
    """One channel in a status snapshot (currents in mA)."""

    id: int
    set_ma: float
    measured_ma: float
    impedance_ohm: int
    pulses: int
    plateau_ma: float  # the profile plateau after live adjustment (0 for unused channels)


@dataclass(frozen=True, slots=True)
class Status:
    """A cheap, thread-safe snapshot of the session."""

    state: HostState
    fault: FaultInfo | None = None
    channels: tuple[ChannelStatus, ...] = ()
    fifo_ms: int = 0
    heartbeat_age_ms: float = 0.0  # host time since the last frame written
    frame_errors: int = 0
    naks: int = 0
    phase_index: int = 0  # 0-based
    phase_count: int = 0
    phase_mode: str = ""
    elapsed_s: float = 0.0  # device time since START, pauses excluded
    remaining_s: float = 0.0
    late_blocks: int = 0
    underruns: int = 0
    device_time_ms: int = 0
    device_state: str = ""
    blocks_sent: int = 0
    blocks_total: int = 0
    retransmits: int = 0  # frames written again after a loss: blocks and commands (link recovery)


@dataclass(frozen=True, slots=True)
class Event:
    """Something happened: kind "state" | "fault" | "command" | "log"."""

    kind: str
    message: str
    data: dict[str, Any] = field(default_factory=dict)
    t: float = field(default_factory=time.time)


@dataclass(frozen=True, slots=True)
class ChannelSummary:
    """Per channel totals: pulses counted by the device and the charge they carried per phase."""

    id: int
    pulses: int
    expected_pulses: int
    charge_uc: float  # sum of phase charge (amplitude x pulse width) over the delivered pulses


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """What a session delivered and how it ended."""

    outcome: Outcome | None
    delivered_s: float
    channels: tuple[ChannelSummary, ...]
    faults: tuple[FaultInfo, ...]
    late_blocks: int
    underruns: int
    naks: int
    record_path: str | None
    retransmits: int = 0  # blocks and commands written again after a loss on the link

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["outcome"] = None if self.outcome is None else self.outcome.value
        return data


@dataclass(frozen=True, slots=True)
class Rescue:
    """Where a failed record's unwritten lines went: a file, or standard error (path None)."""

    lines: int
    path: Path | None
    tried: tuple[str, ...] = ()  # the places that failed first, each with why

    def text(self) -> str:
        """One line for the operator."""
        where = str(self.path) if self.path is not None else "standard error (above)"
        failed = f" ({'; '.join(self.tried)})" if self.tried else ""
        return f"{self.lines} unwritten record line(s) rescued to {where}{failed}"
