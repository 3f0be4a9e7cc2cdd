"""Clocks that drive the device: real time (sleep, then spin when a tick is due), scaled real
time, and virtual time (optionally paced to at most N times wall time)."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

import numpy as np

Step = Callable[[int], None]
"""Called with the number of due ticks to process."""
Quiet = Callable[[], int]
"""How many ticks after the current one may pass with nothing but pulses (fastpath's horizon)."""
Wait = Callable[[float], bool]
"""Wait up to ``timeout`` seconds; True when received bytes wait to be handled (an interrupt)."""


class Stop(Protocol):
    """What a loop polls to end: threading.Event, or StopFlag when a signal handler sets it."""

    def is_set(self) -> bool: ...


class StopFlag:
    """A stop request that a signal handler may set. ``threading.Event.set`` takes a lock: a
    handler that runs (in the main thread, between two bytecodes) while that same thread is inside
    ``set()`` waits for itself forever. Seen: the parent's death delivered both PR_SET_PDEATHSIG's
    SIGTERM and the parent pipe's EOF, and the orphan hung."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set


MAX_SPEED = 1000.0
"""The fastest scaled clock: 1000 x wall time (the 200 ms watchdog is then 0.2 ms of wall time;
faster than that no host can keep a real-time session alive, and the tick loop cannot keep up)."""

MAX_IDLE_SLEEP_S = 0.1
"""A quiet loop still wakes this often (stop flags, parent checks); 10 wake-ups/s cost nothing."""


def check_speed(speed: float) -> float:
    """``speed`` if 0 < speed <= MAX_SPEED (finite); ValueError naming the range otherwise."""
    if not 0 < speed <= MAX_SPEED:  # nan fails both comparisons
        raise ValueError(f"speed must be > 0 and <= {MAX_SPEED:g}, got {speed:g}")
    return speed


class VirtualClock:
    """Exact device time, advanced by whoever drives the device (as fast as possible).

    ``pace`` (None: unpaced) caps device time at ``pace`` x the wall time since ``start()``: the
    driver asks ``allowed_ticks`` how far it may go now."""

    realtime = False

    def __init__(self, pace: float | None = None, tick_hz: int = 1000) -> None:
        self.pace = None if pace is None else check_speed(pace)
        self.tick_hz = tick_hz
        self._start_ns: int | None = None

    def trace_ns(self, device_ns: int) -> int:
        return device_ns

    def allowed_ticks(self, tick_count: int) -> int | None:
        """How many ticks past ``tick_count`` device time may run now (None: no limit)."""
        if self.pace is None:
            return None
        now = time.monotonic_ns()
        if self._start_ns is None:
            self._start_ns = now - int(tick_count * 1e9 / (self.tick_hz * self.pace))
        return int((now - self._start_ns) * self.tick_hz * self.pace // 1e9) - tick_count

    def seconds_until(self, tick: int) -> float:
        """Wall seconds until a paced clock allows ``tick`` (0 when unpaced or already allowed)."""
        if self.pace is None or self._start_ns is None:
            return 0.0
        due = self._start_ns + int(tick * 1e9 / (self.tick_hz * self.pace))
        return max(0.0, (due - time.monotonic_ns()) / 1e9)


class RealClock:
    """A tick loop at tick_hz x speed, driven by what is due.

    The loop asks ``quiet()`` how many ticks may pass with nothing but pulses (the device's
    quiet horizon). When the very next tick matters (output ramping, a block boundary), it sleeps
    until spin_us before the tick's deadline, then spins to it; otherwise it sleeps (no spin) until
    the next tick that matters, at most MAX_IDLE_SLEEP_S: an idle device costs next to nothing.
    ``wait(timeout)`` is the sleep: a server waits on its port there and returns True when bytes
    arrived, and the loop then calls ``on_input()`` at once (the receive interrupt), before the
    ticks due by then (after them when the loop was stalled). Lateness (how long after its
    deadline a tick that mattered started) is recorded in ``lateness_ns``. A loop that falls
    behind processes every due tick (device time never slips), in steps of at most ``max_step``
    ticks so that a stop is seen between them; behind by more than MAX_LAG_S of wall time (a
    suspended machine), it drops the backlog.
    """

    realtime = True
    MAX_LAG_S = 1.0
    #: Input is handled before the due ticks (an interrupt) unless the loop is further behind
    #: than this (the process was not scheduled): then the ticks of the stall run first, so
    #: bytes that arrived during it do not count as older than they are (no false watchdog).
    INPUT_FIRST_LAG = 2

    def __init__(self, tick_hz: int = 1000, spin_us: int = 1000, keep: int = 100_000,
                 speed: float = 1.0) -> None:  # fmt: skip
        self.tick_hz = tick_hz
        self.spin_ns = spin_us * 1000
        self.lateness_ns: deque[int] = deque(maxlen=keep)
        self.speed = check_speed(speed)
        self.max_step = max(1, tick_hz // 5)

    def trace_ns(self, device_ns: int) -> int:
        return time.monotonic_ns()

    def _deadline_ns(self, start: int, tick: int) -> int:
        return start + int(tick * 1e9 / (self.tick_hz * self.speed))

    def _due(self, start: int, now: int) -> int:
        return int((now - start) * self.tick_hz * self.speed // 1e9)

    def run(
        self,
        step: Step,
        stop: Stop,
        *,
        quiet: Quiet | None = None,
        wait: Wait | None = None,
        on_input: Callable[[], None] | None = None,
    ) -> None:
        """Run until ``stop`` is set."""
        wait = wait or _sleep
        start = time.monotonic_ns()
        done = 0
        while not stop.is_set():
            ahead = 0 if quiet is None else max(0, quiet())
            target = done + 1 + ahead
            deadline = self._deadline_ns(start, target)
            precise = ahead == 0
            woke = self._wait_until(deadline, precise, wait)
            now = time.monotonic_ns()
            due = self._due(start, now)
            lag = due - done
            if woke and on_input is not None and lag <= self.INPUT_FIRST_LAG:
                on_input()  # first, as an interrupt preempts the tick loop
                woke = False
            if lag > self.MAX_LAG_S * self.tick_hz * self.speed:  # suspended: drop the backlog
                skip = lag - self.max_step
                start += int(skip * 1e9 / (self.tick_hz * self.speed))
                due = done + self.max_step
            if due >= target and precise:
                self.lateness_ns.append(now - deadline)
            while due > done and not stop.is_set():
                n = min(due - done, self.max_step)
                step(n)
                done += n
            if woke and on_input is not None:
                on_input()  # after a stall: the bytes came during it, not before it

    def _wait_until(self, deadline: int, precise: bool, wait: Wait) -> bool:
        """Wait until ``deadline`` (spin for the last spin_us when ``precise``); True as soon as
        input is ready."""
        spin = self.spin_ns if precise else 0
        remaining = deadline - time.monotonic_ns() - spin
        if remaining > 0 and wait(min(remaining / 1e9, MAX_IDLE_SLEEP_S)):
            return True
        if remaining / 1e9 > MAX_IDLE_SLEEP_S:
            return False  # woke for the periodic checks; the loop comes back
        while time.monotonic_ns() < deadline:
            if wait(0):  # spin, polling for input and letting other threads have the GIL
                return True
        return False

    def lateness_us(self) -> dict[str, float]:
        """p50 / p99 / max of the recorded lateness, in microseconds."""
        if not self.lateness_ns:
            return {"p50": 0.0, "p99": 0.0, "max": 0.0, "ticks": 0}
        a = np.asarray(self.lateness_ns, dtype=np.float64) / 1000.0
        return {
            "p50": float(np.percentile(a, 50)),
            "p99": float(np.percentile(a, 99)),
            "max": float(a.max()),
            "ticks": len(a),
        }


class ScaledClock(RealClock):
    """Device time = speed x wall time (0 < speed <= MAX_SPEED), no spinning: ticks come due in
    bunches (speed 100 -> about 100 ticks per millisecond of wall time)."""

    def __init__(self, speed: float, tick_hz: int = 1000) -> None:
        super().__init__(tick_hz=tick_hz, spin_us=0, speed=speed)


def _sleep(timeout: float) -> bool:
    if timeout > 0:
        time.sleep(timeout)
    else:
        time.sleep(0)
    return False
