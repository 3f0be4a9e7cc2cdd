"""Serve a simulated device on a pseudo-terminal, ticking it in real time (sleep then spin)."""

from __future__ import annotations

import contextlib
import errno
import os
import threading
import tty

from firmware_sim.clock import RealClock
from firmware_sim.device import Device

_READ_CHUNK = 4096


class PtyServer:
    """Owns a pty pair: the host opens ``path`` (the slave); the device reads and writes the master.

    A slave fd stays open inside the server so that a host closing and reopening the port never
    makes the master read EIO. Master reads are non-blocking each tick; when the master cannot take
    more output, TX bytes are dropped and counted in ``tx_dropped`` (the tick loop never blocks).
    """

    def __init__(self, device: Device, clock: RealClock, lock: threading.RLock | None = None):
        self.device = device
        self.clock = clock
        self.lock = lock or threading.RLock()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self.tx_dropped = 0
        self.bytes_in = 0
        self.bytes_out = 0

    def step(self, ticks: int) -> None:
        """One wake-up of the clock: take host bytes, run the due ticks, send device bytes."""
        with self.lock:
            self._pull()
            self.device.run_ticks(ticks)
            data = self.device.read_tx()
        if data:
            self._push(data)

    def _pull(self) -> None:
        while True:
            try:
                data = os.read(self.master, _READ_CHUNK)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return
                raise
            if not data:
                return
            self.bytes_in += len(data)
            self.device.receive(data)

    def _push(self, data: bytes) -> None:
        try:
            written = os.write(self.master, data)
        except (BlockingIOError, OSError):
            written = 0
        self.bytes_out += written
        self.tx_dropped += len(data) - written

    def serve(self, stop: threading.Event) -> None:
        """Run the real-time loop until ``stop`` is set."""
        self.clock.run(self.step, stop)

    def close(self) -> None:
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)
