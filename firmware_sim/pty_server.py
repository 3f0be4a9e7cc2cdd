"""Serve a simulated device on a pseudo-terminal: bytes handled as they arrive, ticks as they
come due, and nothing done (no CPU) while nothing is due."""

from __future__ import annotations

import contextlib
import errno
import os
import select
import threading
import tty

from firmware_sim.clock import RealClock, StopFlag
from firmware_sim.device import Device
from firmware_sim.fastpath import quiet_horizon

_READ_CHUNK = 4096


class PtyServer:
    """Owns a pty pair: the host opens ``path`` (the slave); the device reads and writes the master.

    A slave fd stays open inside the server so that a host closing and reopening the port never
    makes the master read EIO. The loop waits in poll() on the master: received bytes are handled
    at once (the device's receive interrupt: an ESTOP zeroes output there, not at the next tick),
    and the tick loop (``RealClock``) keeps pulse timing, sleeping through stretches in which
    nothing but pulses can happen. When the master cannot take more output, TX bytes are dropped
    and counted in ``tx_dropped`` (the loop never blocks on the host).

    ``parent_fd``: the read end of a pipe whose write end only the parent holds; its EOF (the
    parent died, however) stops the server, as does ``parent_pid`` no longer being the parent.
    """

    def __init__(
        self,
        device: Device,
        clock: RealClock,
        lock: threading.RLock | None = None,
        *,
        parent_fd: int | None = None,
        parent_pid: int | None = None,
    ) -> None:
        self.device = device
        self.clock = clock
        self.lock = lock or threading.RLock()
        self.master, self._slave = os.openpty()
        tty.setraw(self._slave)
        self.path = os.ttyname(self._slave)
        os.set_blocking(self.master, False)
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._poll = select.poll()
        self._poll.register(self.master, select.POLLIN)
        self._poll.register(self._wake_r, select.POLLIN)
        self.parent_fd, self.parent_pid = parent_fd, parent_pid
        if parent_fd is not None:
            self._poll.register(parent_fd, select.POLLIN)
        self.parent_gone = False
        self._stop: StopFlag | None = None
        self.tx_dropped = 0
        self.bytes_in = 0
        self.bytes_out = 0

    # --- the loop's callbacks ------------------------------------------------------------------
    def step(self, ticks: int) -> None:
        """Ticks that came due: run them, send what the device said."""
        with self.lock:
            self.device.run_ticks(ticks)
            data = self.device.read_tx()
        if data:
            self._push(data)

    def on_input(self) -> None:
        """The receive interrupt: take the host's bytes and handle them now."""
        with self.lock:
            if self._pull():
                self.device.service_rx()
            data = self.device.read_tx()
        if data:
            self._push(data)

    def quiet(self) -> int:
        with self.lock:
            return quiet_horizon(self.device)

    def wait(self, timeout: float) -> bool:
        """poll() on the master, the wake pipe and the parent pipe; True when woken early."""
        events = self._poll.poll(max(0, int(timeout * 1000 + 0.999)) if timeout > 0 else 0)
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self._parent_died()
        for fd, _ in events:
            if fd == self._wake_r:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wake_r, 4096)
            elif fd == self.parent_fd:
                with contextlib.suppress(OSError):
                    if os.read(fd, 4096):
                        continue  # the parent wrote something: not an EOF
                self._parent_died()
        return bool(events)

    def _parent_died(self) -> None:
        self.parent_gone = True
        if self.parent_fd is not None:
            with contextlib.suppress(KeyError, ValueError):
                self._poll.unregister(self.parent_fd)
        if self._stop is not None:
            self._stop.set()

    # --- bytes ---------------------------------------------------------------------------------
    def _pull(self) -> bool:
        got = False
        while True:
            try:
                data = os.read(self.master, _READ_CHUNK)
            except BlockingIOError:
                return got
            except OSError as exc:
                if exc.errno == errno.EIO:
                    return got
                raise
            if not data:
                return got
            got = True
            self.bytes_in += len(data)
            self.device.receive(data)

    def _push(self, data: bytes) -> None:
        try:
            written = os.write(self.master, data)
        except (BlockingIOError, OSError):
            written = 0
        self.bytes_out += written
        self.tx_dropped += len(data) - written

    # --- running -------------------------------------------------------------------------------
    def serve(self, stop: StopFlag) -> None:
        """Run the loop until ``stop`` is set (call ``kick()`` after setting it from elsewhere,
        e.g. a signal handler) or the parent is gone."""
        self._stop = stop
        if self.parent_pid is not None and os.getppid() != self.parent_pid:
            self._parent_died()  # it died before we started watching
        self.clock.run(self.step, stop, quiet=self.quiet, wait=self.wait, on_input=self.on_input)

    def kick(self) -> None:
        """Wake the loop (async-signal-safe): after a stop request or a change made from another
        thread (the control socket), so that it looks again at what is due."""
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"k")

    def close(self) -> None:
        for fd in (self.master, self._slave, self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)
