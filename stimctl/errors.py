"""Public re-export of :mod:`stimctl.host.errors`: the exceptions a script catches."""

from stimctl.host.errors import (
    CommandRejected,
    DeviceFault,
    InterlockError,
    LinkError,
    PortInUse,
    ProtocolMismatch,
    RecordFailed,
    StimctlError,
    ValidationRefused,
)

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
