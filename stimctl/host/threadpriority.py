"""Scheduling for the host under load: real-time link threads, a favoured process, if allowed.

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

import errno
import logging
import os
import sys
from pathlib import Path

__all__ = ["HOST_NICE", "LINK_THREAD_PRIORITY", "NORMAL", "favour_process", "raise_to_realtime"]

log = logging.getLogger(__name__)

LINK_THREAD_PRIORITY = 10
"""SCHED_RR priority of the link threads (Linux: 1..99): above every normal task, below the
kernel's threaded interrupt handlers (50), so the serial driver itself is never held up."""

HOST_NICE = -10
"""Nice of the host process's other threads (a UI, workers): 9.3 times the weight of a nice-0
task (the kernel's sched_prio_to_weight table), so CPU-bound work beside it rarely preempts it."""

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


def favour_process(nice: int = HOST_NICE) -> str:
    """Set every thread of this process now at a higher nice to ``nice`` (threads started later
    inherit it from their creator). Returns ``"nice <n>"`` or ``"nice 0 (<why not>)"``."""
    tasks = Path("/proc/self/task")
    if not hasattr(os, "setpriority") or not tasks.is_dir():
        return f"nice 0 (no per-thread nice on {sys.platform})"
    why = ""
    for task in tasks.iterdir():
        try:
            tid = int(task.name)
            if os.getpriority(os.PRIO_PROCESS, tid) > nice:
                os.setpriority(os.PRIO_PROCESS, tid, nice)  # Linux: one thread
        except (OSError, ValueError) as exc:  # a thread that ended meanwhile: ESRCH
            if getattr(exc, "errno", None) != errno.ESRCH:
                why = getattr(exc, "strerror", None) or str(exc)
    return f"nice 0 ({why})" if why else f"nice {nice}"
