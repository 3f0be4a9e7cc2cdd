"""Clocks that drive the device: real time (sleep then spin), scaled real time, and virtual time."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

import numpy as np

Step = Callable[[int], None]
"""Called with the number of due ticks to process (normally 1)."""


class VirtualClock:
    """Exact device time, advanced by whoever drives the device (as fast as possible)."""

    realtime = False

    def trace_ns(self, device_ns: int) -> int:
        return device_ns


class RealClock:
    """A tick loop at tick_hz: sleep until spin_us before each deadline, then spin to it.

    Lateness (how long after its deadline each tick started) is recorded in ``lateness_ns``.
    If the loop falls behind, it processes every due tick at once (device time never slips).
    """

    realtime = True

    def __init__(self, tick_hz: int = 1000, spin_us: int = 1000, keep: int = 100_000) -> None:
        self.tick_hz = tick_hz
        self.spin_ns = spin_us * 1000
        self.lateness_ns: deque[int] = deque(maxlen=keep)
        self.speed = 1.0

    def trace_ns(self, device_ns: int) -> int:
        return time.monotonic_ns()

    def _deadline_ns(self, start: int, tick: int) -> int:
        return start + int(tick * 1e9 / (self.tick_hz * self.speed))

    def run(self, step: Step, stop: threading.Event) -> None:
        """Run until ``stop`` is set."""
        start = time.monotonic_ns()
        done = 0
        while not stop.is_set():
            deadline = self._deadline_ns(start, done + 1)
            self._wait_until(deadline)
            now = time.monotonic_ns()
            self.lateness_ns.append(now - deadline)
            due = max(done + 1, self._due(start, now))
            step(due - done)
            done = due

    def _due(self, start: int, now: int) -> int:
        return int((now - start) * self.tick_hz * self.speed // 1e9)

    def _wait_until(self, deadline: int) -> None:
        remaining = deadline - time.monotonic_ns() - self.spin_ns
        if remaining > 0:
            time.sleep(remaining / 1e9)
        while time.monotonic_ns() < deadline:
            time.sleep(0)  # spin, but let other threads have the GIL

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
    """Device time = speed x wall time. Wakes about every millisecond of wall time and processes
    every tick that has come due (speed 100 -> about 100 ticks per wake-up)."""

    def __init__(self, speed: float, tick_hz: int = 1000, wake_us: int = 1000) -> None:
        super().__init__(tick_hz=tick_hz, spin_us=0)
        if speed <= 0:
            raise ValueError(f"speed must be > 0, got {speed}")
        self.speed = speed
        self.wake_ns = wake_us * 1000

    def run(self, step: Step, stop: threading.Event) -> None:
        start = time.monotonic_ns()
        done = 0
        while not stop.is_set():
            next_deadline = self._deadline_ns(start, done + 1)
            time.sleep(max(next_deadline - time.monotonic_ns(), self.wake_ns) / 1e9)
            now = time.monotonic_ns()
            due = self._due(start, now)
            if due > done:
                self.lateness_ns.append(now - self._deadline_ns(start, done + 1))
                step(due - done)
                done = due
