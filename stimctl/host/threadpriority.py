"""Real-time scheduling for the link's threads (keep-alive writer, reader), where the OS allows it.

Why (docs/PROTOCOL.md, "Keep-alive under load"): the device's watchdog (200 ms) and the stream's
lookahead (under 250 ms) bound how long the host may go silent. On a busy PC the scheduler, not
the host's code, decides that: with two CPU-bound processes in the host's own scheduling group
(Linux autogroup: one per session), a host process that sleeps between frames was measured
silent for 465 ms (soak, stimctl run) and a bare 10 ms sleeper overslept by up to 122 ms. Threads
in a real-time class (SCHED_RR) preempt every normal task the moment their timer fires, whatever
group those tasks are in; they run a few hundred microseconds per frame, then sleep again.

Linux grants SCHED_RR to root, to a process with CAP_SYS_NICE, or up to ``RLIMIT_RTPRIO`` (e.g.
``@stimctl - rtprio 20`` in /etc/security/limits.conf), as audio software asks for it. Anywhere
else the threads stay as they were, the host says why once (a log warning), and the record's
``link.priority`` shows what the threads got.
"""

from __future__ import annotations

import logging
import os
import sys

__all__ = ["LINK_THREAD_PRIORITY", "NORMAL", "raise_to_realtime"]

log = logging.getLogger(__name__)

LINK_THREAD_PRIORITY = 10
"""SCHED_RR priority of the link threads (Linux: 1..99): above every normal task, below the
kernel's threaded interrupt handlers (50), so the serial driver itself is never held up."""

NORMAL = "normal"


def raise_to_realtime(native_id: int | None = None, priority: int = LINK_THREAD_PRIORITY) -> str:
    """Put a thread (``native_id``; None: the calling one) in SCHED_RR at ``priority``.

    Returns what it got: ``"SCHED_RR <priority>"``, or ``"normal (<why not>)"`` (never raises)."""
    setter = getattr(os, "sched_setscheduler", None)
    if setter is None or not sys.platform.startswith("linux"):
        return f"{NORMAL} (no SCHED_RR on {sys.platform})"
    try:
        setter(native_id or 0, os.SCHED_RR, os.sched_param(priority))  # Linux: a thread id
    except (OSError, ValueError) as exc:
        why = getattr(exc, "strerror", None) or str(exc)
        return f"{NORMAL} ({why})"
    return f"SCHED_RR {priority}"
