"""Public re-export of :mod:`stimctl.host.status`: the status types a script reads."""

from stimctl.host.status import (
    ChannelStatus,
    ChannelSummary,
    DeviceSummary,
    Event,
    FaultInfo,
    HostState,
    ImpedanceReading,
    Outcome,
    Rescue,
    SessionSummary,
    Status,
)

__all__ = [
    "ChannelStatus",
    "ChannelSummary",
    "DeviceSummary",
    "Event",
    "FaultInfo",
    "HostState",
    "ImpedanceReading",
    "Outcome",
    "Rescue",
    "SessionSummary",
    "Status",
]
