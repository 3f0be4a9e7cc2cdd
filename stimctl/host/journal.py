"""Journal: a happening's record line and its event, written by one call.

The session record (``stimctl.host.recorder``) and the ``on_event`` subscribers
(``stimctl.host.subscribers``) hear of the same happenings: a command answered, a state change,
a fault, an operator note. ``happened`` writes the record line and announces the event
together, so neither is forgotten; ``write`` is for lines no one is told of (telemetry,
impedance, profile) and ``announce`` for events the record does not keep.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from stimctl.host.recorder import Recorder
from stimctl.host.subscribers import Subscribers

__all__ = ["Journal"]


class Journal:
    """The session's record and its event subscribers, written to together."""

    def __init__(self, recorder: Recorder, subscribers: Subscribers) -> None:
        self.recorder = recorder
        self.subscribers = subscribers

    def happened(
        self,
        kind: str,
        line: Mapping[str, Any],
        message: str,
        event: Mapping[str, Any] | None = None,
        *,
        durable: bool = True,
    ) -> None:
        """The record line ``kind`` (``line``), then the Event ``kind`` (``message``, ``event``)
        to every ``on_event`` subscriber."""
        self.recorder.write(kind, line, durable)
        self.subscribers.emit(kind, message, dict(event) if event else None)

    def write(self, kind: str, line: Mapping[str, Any], *, durable: bool = True) -> None:
        """A record line no subscriber is told of."""
        self.recorder.write(kind, line, durable)

    def announce(self, kind: str, message: str, event: Mapping[str, Any] | None = None) -> None:
        """An Event the record does not keep ("stimulation started", "connected to ...")."""
        self.subscribers.emit(kind, message, dict(event) if event else None)
