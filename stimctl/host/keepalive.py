"""The keep-alive writer: a thread of its own that feeds the device watchdog on host time.

HEARTBEAT whenever nothing was written for the interval, and HELLO probes while the device is
silent (``probe``), from a thread that takes no lock but the port's write lock: the watchdog
never depends on the reader thread, the telemetry handling or a UI keeping up.
``favour_link_threads`` asks the scheduler for the link's threads and the host process
(threadpriority; docs/PROTOCOL.md, "Keep-alive under load").
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Protocol

from stimctl.host.errors import LinkError
from stimctl.host.threadpriority import favour_process, raise_to_realtime
from stimctl.protocol import PROTOCOL_VERSION, Heartbeat, Hello, Message

__all__ = ["PROBE_SILENCE_S", "KeepAlive", "favour_link_threads", "probe"]

log = logging.getLogger(__name__)

#: No TELEMETRY from the device for this long (host time): say HELLO to reopen its session.
PROBE_SILENCE_S = 0.25


class Link(Protocol):
    """What the keep-alive uses of ``stimctl.host.link.Link``."""

    last_tx: float
    last_telemetry: float
    probed_at: float | None
    probes: int
    unanswered_probes: int

    @property
    def is_open(self) -> bool: ...

    @property
    def device_can_speak(self) -> bool: ...

    def send(self, msg: Message, *, track: bool = True) -> Message: ...

    def probe_if_silent(self) -> bool: ...


def favour_link_threads(reader_id: int | None) -> str:
    """SCHED_RR for the reader thread, nice for the process's threads; what they got (a warning
    is logged when refused)."""
    got = f"{raise_to_realtime(reader_id)}, {favour_process()}"
    if "(" in got:
        log.warning("link threads and host not favoured (%s): on a busy PC the device watchdog"
                    " may trip (docs/PROTOCOL.md)", got)  # fmt: skip
    return got


class KeepAlive(threading.Thread):
    """HEARTBEAT when nothing was written for ``interval_s``; checks every quarter of it.
    ``realtime``: the thread puts itself in SCHED_RR first."""

    def __init__(self, link: Link, interval_s: float, *, realtime: bool) -> None:
        super().__init__(name="stimctl-keepalive", daemon=True)
        self._link = link
        self.interval_s = interval_s
        self.realtime = realtime
        self._stopped = threading.Event()

    def run(self) -> None:
        if self.realtime:
            raise_to_realtime()
        link = self._link
        while not self._stopped.wait(max(0.001, self.interval_s / 4)):
            if not link.is_open:
                return
            if time.monotonic() - link.last_tx >= self.interval_s:
                with contextlib.suppress(LinkError):
                    link.send(Heartbeat(), track=False)
            link.probe_if_silent()

    def stop(self) -> None:
        self._stopped.set()


def probe(link: Link, after_s: float = PROBE_SILENCE_S) -> bool:
    """HELLO when no TELEMETRY came for ``after_s``, and again every ``after_s`` until one
    comes: a device that rebooted, or that ended an idle session the host had left silent,
    sends no telemetry (it still answers HEARTBEAT) until it hears HELLO (allowed in every
    state; it changes no state), and a probe may be lost too. True if one was sent."""
    if not link.device_can_speak or not link.is_open:
        return False
    now = time.monotonic()
    if now - link.last_telemetry <= after_s:
        return False
    probed = link.probed_at
    if probed is not None and probed > link.last_telemetry and now - probed < after_s:
        return False
    with contextlib.suppress(LinkError):
        link.send(Hello(protocol_version=PROTOCOL_VERSION), track=False)
        link.probes += 1
        link.unanswered_probes += 1
        link.probed_at = now
        return True
    return False
