"""pyserial URL handler ``stimsim://``: a simulated stimulator that is "just another serial port".

``import firmware_sim`` registers the handler; then ``serial.serial_for_url("stimsim://?...")``.

URL: ``stimsim://[?param=value[&param=value...]]``, parameters (all optional):

- ``channels=N``      output channels, 1..8 (default 4)
- ``virtual=1``       co-simulation on the virtual clock, no thread: device time advances only
                      inside read() (see below). Default 0.
- ``lockstep=1``      strict lock-step (implies ``virtual=1``): device time advances only while a
                      host thread is inside ``host_waiting()`` (see below). Default 0.
- ``speed=N``         0 < N <= 1000. Real-time mode: device time = N x wall time (default 1: a
                      1 kHz tick thread). With ``virtual=1``/``lockstep=1``: device time runs at
                      most N x wall time (read() waits, in wall time, for the pace)
- ``impedance=OHM[,OHM...]``  electrode impedance per channel, the last value repeats (default 1500)
- ``fault=SPEC``      a fault to inject, ``KIND[:CH][@T_MS]``; repeatable (see firmware_sim.faults)
- ``drop=P``          link: probability that a byte is lost (both directions)
- ``flip=P``          link: probability that a byte has one bit flipped (both directions)
- ``delay_ms=N``      link: one-way delay of every byte, in device time
- ``trace=PATH``      write the JSON-lines trace (output, state, fault, rx events) to PATH
- ``watchdog_ms=N``   host watchdog (default 200)
- ``serial=S``        serial number reported in DEVICE_INFO (up to 12 ASCII characters)
- ``seed=N``          seed of the link-fault random generator (default 0)
- ``control=PATH``    serve the control socket (fault injection at runtime) at PATH

Unknown parameters or bad values raise serial.SerialException.

Modes. Real time (``speed``): a background thread ticks the device; write() hands the bytes to
the device at once (its receive interrupt, on the writer's thread: an ESTOP zeroes the output
before write() returns), read() returns what the device sent with pyserial timeout semantics.
Virtual (``virtual=1``): write() queues bytes; read() with nothing pending runs the device until
it sends something or until the read timeout's worth of virtual time has passed (timeout None:
until it sends something). A host that answers TELEMETRY from its reader thread runs as fast as
the CPU allows, deterministically. The Serial object exposes ``.device`` (the Device) and
``.lock``.

Lock-step (``lockstep=1``): plain virtual mode lets device time run on (hundreds of times faster
than wall time) while the host is busy between two waits (compiling a profile, printing), so
a 300 s impedance validity can lapse in the second between a host's IMPEDANCE_CHECK and its ARM.
In lock-step, device time is held until some host thread says it is waiting for the device
(``with port.host_waiting(): ...``, around every wait for an answer, a state or the end of a
session); read() with the time held waits, in wall time, up to its timeout, for that. Device
time then stands still while the host computes, as a device's would beside an infinitely fast
host. A host that never waits (a UI) should use plain ``virtual=1``.

A host thread that reacts to a frame must get to react at that frame's device time: the reader
thread that handed the frame over says so with ``hold_time()`` (device time then stands still,
even with host threads waiting) and the reacting thread with ``release_time()`` once it has
looked (and, say, sent its PAUSE). Without that, the reader thread runs device time on while the
woken thread waits for the CPU (the interpreter lets it in after up to 5 ms of the reader's
work: seconds of device time).
"""

from __future__ import annotations

import threading
import time
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from serial.serialutil import PortNotOpenError, SerialBase, SerialException, Timeout, to_bytes

from firmware_sim.clock import RealClock, VirtualClock
from firmware_sim.control import ControlServer
from firmware_sim.device import Device
from firmware_sim.fastpath import quiet_horizon
from firmware_sim.options import URL_PARAMETERS, SimOptions, apply_option

URL_SPIN_US = 300
"""The in-process tick thread sleeps until 0.3 ms before each deadline (not 1 ms) so that it leaves
the CPU to the host in the same process; lateness stays well under a tick."""

_VIRTUAL_CHUNK_S = 1.0


def parse_url(url: str) -> SimOptions:
    """The options of a stimsim:// URL; SerialException with a clear message when bad."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme != "stimsim":
        raise SerialException(f"expected a stimsim:// URL, got {url!r}")
    opts = SimOptions(spin_us=URL_SPIN_US)
    try:
        pairs = urllib.parse.parse_qsl(parts.query, keep_blank_values=True, strict_parsing=False)
    except ValueError as exc:
        raise SerialException(f"stimsim: bad query in {url!r}: {exc}") from exc
    for name, value in pairs:
        if name not in URL_PARAMETERS:
            raise SerialException(
                f"stimsim: unknown URL parameter {name!r}; known: {', '.join(URL_PARAMETERS)}"
            )
        try:
            apply_option(opts, name, value)
        except (ValueError, KeyError) as exc:
            raise SerialException(f"stimsim: bad value {value!r} for {name!r}: {exc}") from exc
    return opts


def _began_at(duration: float | None, began: float) -> Timeout:
    """A pyserial ``Timeout`` of ``duration`` seconds that began at ``began`` (monotonic)."""
    wall = Timeout(duration)
    if duration is not None:
        wall.target_time = began + duration
    return wall


class Serial(SerialBase):
    """A serial port whose other end is a simulated stimulator (a firmware_sim Device)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.device: Device | None = None
        self.options: SimOptions | None = None
        self.lock = threading.RLock()
        self._data = threading.Condition(self.lock)
        self._stop = threading.Event()
        self._kick = threading.Event()  # a write woke the tick thread
        self._thread: threading.Thread | None = None
        self._control: ControlServer | None = None
        self._cancel = False
        self._host_waits = 0  # lock-step: host threads inside host_waiting()
        self._holds = 0  # lock-step: frames handed to host threads that have not reacted yet
        self._gate_lock = threading.Lock()  # not self.lock: no lock ordering
        self._gate = threading.Condition(self._gate_lock)
        # the mode, fixed at open(): read() looks at these on every call
        self._virtual = self._lockstep = False
        self._paced_clock: VirtualClock | None = None  # virtual and ``speed=N``: the clock
        self._chunk_ticks = 0  # virtual: device time one run between two looks may take
        super().__init__(*args, **kwargs)

    def open(self) -> None:
        if self.is_open:
            raise SerialException("Port is already open.")
        if self._port is None:
            raise SerialException("Port must be configured before it can be used.")
        self.options = opts = parse_url(self.portstr or "")
        clock = opts.make_clock()
        self.device = Device(opts.config, clock)
        self._virtual, self._lockstep = bool(opts.virtual), bool(opts.lockstep)
        paced = isinstance(clock, VirtualClock) and clock.pace is not None
        self._paced_clock = clock if paced else None
        self._chunk_ticks = int(_VIRTUAL_CHUNK_S * opts.config.tick_hz)
        self._stop.clear()
        if opts.control:
            self._control = ControlServer(opts.control, self.device, self.lock, self._kick.set)
        if isinstance(clock, RealClock):
            self._thread = threading.Thread(
                target=clock.run, args=(self._step, self._stop), name="stimsim-ticks",
                kwargs={"quiet": self._quiet, "wait": self._wait}, daemon=True,
            )  # fmt: skip
            self._thread.start()
        self.is_open = True

    def _step(self, ticks: int) -> None:
        with self.lock:
            assert self.device is not None
            self.device.run_ticks(ticks)
            if self.device.tx_pending:
                self._data.notify_all()

    def _quiet(self) -> int:
        with self.lock:
            assert self.device is not None
            return quiet_horizon(self.device)

    def _wait(self, timeout: float) -> bool:
        """The tick thread's sleep: cut short by a write (the device may have work due now)."""
        if self._kick.wait(timeout) if timeout > 0 else self._kick.is_set():
            self._kick.clear()
            return True
        if timeout <= 0:
            time.sleep(0)
        return False

    def close(self) -> None:
        if self.is_open:
            self.is_open = False
            self._stop.set()
            self._kick.set()
            if self._thread is not None:
                self._thread.join(timeout=2)
                self._thread = None
            if self._control is not None:
                self._control.close()
                self._control = None
            with self.lock:
                self._data.notify_all()
                if self.device is not None:
                    self.device.close()
            with self._gate:
                self._gate.notify_all()
        super().close()

    def _reconfigure_port(self) -> None:
        """Baud rate and framing do not matter to a simulated link."""

    def _device(self) -> Device:
        if not self.is_open or self.device is None:
            raise PortNotOpenError()
        return self.device

    @property
    def virtual(self) -> bool:
        return bool(self.options and self.options.virtual)

    @property
    def lockstep(self) -> bool:
        return bool(self.options and self.options.lockstep)

    @contextmanager
    def host_waiting(self) -> Iterator[None]:
        """Lock-step: device time may advance while a host thread is inside (nestable, any
        thread). Outside lock-step mode it changes nothing."""
        with self._gate:
            self._host_waits += 1
            self._gate.notify_all()
        try:
            yield
        finally:
            with self._gate:
                self._host_waits -= 1

    def hold_time(self) -> None:
        """Lock-step: hold device time until the matching ``release_time()`` (any thread), also
        while host threads wait: a frame was handed to a host thread that has yet to react.
        Outside lock-step mode it changes nothing."""
        with self._gate:
            self._holds += 1

    def release_time(self) -> None:
        with self._gate:
            self._holds = max(0, self._holds - 1)
            self._gate.notify_all()

    def _time_may_run(self, timeout: Timeout) -> bool:
        """Lock-step: wait (wall time, up to ``timeout``) until a host thread is waiting and
        none has a frame still to react to."""
        if not self._lockstep:
            return True
        with self._gate_lock:  # the lock itself: Condition.__enter__ is a Python call
            if self._host_waits and not self._holds:
                return True
        with self._gate:
            while self._host_waits == 0 or self._holds:
                if not self.is_open or self._cancel or timeout.expired():
                    return False
                self._gate.wait(timeout.time_left() if self._timeout is not None else None)
            return True

    # --- data --------------------------------------------------------------------------------

    @property
    def in_waiting(self) -> int:
        """Bytes the device has sent and nobody has read yet (a length: read without the lock,
        as a snapshot it is the same)."""
        dev = self.device
        if dev is None or not self.is_open:
            raise PortNotOpenError()
        return dev.tx_pending

    @property
    def out_waiting(self) -> int:
        self._device()
        return 0

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        dev = self.device  # (``_device()`` and ``to_bytes`` without their calls: once a frame)
        if dev is None or not self.is_open:
            raise PortNotOpenError()
        payload = data if type(data) is bytes else to_bytes(data)
        with self.lock:
            dev.receive(payload)
            if not self._virtual:  # real time: the receive interrupt, on the writer's thread
                dev.service_rx()
                if dev.tx_pending:
                    self._data.notify_all()
        if not self._virtual:
            self._kick.set()
        return len(payload)

    def read(self, size: int = 1) -> bytes:
        dev = self._device()
        self._cancel = False
        if size <= 0:
            return b""
        if self._virtual:
            # what the device has sent already: no clock, no timeout to set up (a reader
            # thread's read after in_waiting, or the rest of a frame, takes only this)
            with self.lock:
                first = dev.read_tx(size)
            if len(first) >= size or self._timeout == 0:
                return first
            out = bytearray(first)
            self._read_virtual(dev, size, out)
        else:
            out = bytearray()
            self._read_realtime(dev, size, out)
        return bytes(out)

    def read_some(self) -> bytes:
        """``read(1)``, then what else the device has sent with that byte (a reader thread's
        ``read(1)`` + ``in_waiting`` + ``read(n)`` in one call): b"" when the read's time is
        over first."""
        dev = self.device
        if dev is None or not self.is_open:
            raise PortNotOpenError()
        if not self._virtual:
            data = self.read(1)
            with self.lock:
                return data + dev.read_tx() if data else data
        self._cancel = False
        if dev.tx_pending:  # (a length, read without the lock as in_waiting does)
            with self.lock:
                return dev.read_tx()
        if self._timeout == 0:
            return b""
        out = bytearray()
        self._read_virtual(dev, 1, out, rest=True)
        return bytes(out)

    def _read_realtime(self, dev: Device, size: int, out: bytearray) -> None:
        timeout = Timeout(self._timeout)
        with self.lock:
            while len(out) < size and self.is_open and not self._cancel:
                out += dev.read_tx(size - len(out))
                if len(out) >= size or timeout.expired():
                    break
                self._data.wait(timeout.time_left() if self._timeout is not None else 0.1)

    def _read_virtual(self, dev: Device, size: int, out: bytearray, *, rest: bool = False) -> None:
        """The rest of a virtual-clock read (``out``: what ``read`` found pending, too little):
        run the device until it has sent enough or the read's time is over, taking what it
        sent after each run (``rest``: all of it, not only up to ``size``). The read's wall-time
        limit is set up only when something waits for wall time (a closed lock-step gate, a
        paced clock): most reads need none."""
        timeout, began = self._timeout, time.monotonic()
        deadline = None
        if timeout is not None:
            deadline = dev.tick_count + int(timeout * dev.config.tick_hz)
        wall: Timeout | None = None
        gate, paced = self._gate_lock, self._paced_clock
        while len(out) < size and self.is_open and not self._cancel:
            if self._lockstep:
                with gate:  # the lock itself: Condition.__enter__ is a Python call
                    open_now = self._host_waits and not self._holds
                if not open_now:
                    wall = wall or _began_at(timeout, began)
                    if not self._time_may_run(wall):
                        break
            with self.lock:
                budget = self._chunk_ticks
                if deadline is not None:
                    budget = min(budget, deadline - dev.tick_count)
                    if budget <= 0:
                        break
                if paced is not None:
                    wall = wall or _began_at(timeout, began)
                    allowed = self._paced(dev, wall)
                    assert allowed is not None
                    if allowed < 0:
                        break  # paced, and the read's time is over
                    if allowed == 0:  # paced, waited (wall time) for the clock; look again
                        out += dev.read_tx(-1 if rest else size - len(out))
                        continue
                    budget = min(budget, allowed)
                dev.run_ticks(budget, until_output=True)
                out += dev.read_tx(-1 if rest else size - len(out))

    def _paced(self, dev: Device, wall: Timeout) -> int | None:
        """``speed=N`` on the virtual clock: how many ticks device time may run now (at most N
        x wall time); None when unpaced. With none allowed, wait for one (at most the read's
        time left; the caller holds ``self.lock``, released meanwhile) and return 0; -1 when the
        read's time is over."""
        clock = self._paced_clock
        if clock is None:
            return None
        allowed = clock.allowed_ticks(dev.tick_count)
        assert allowed is not None
        if allowed > 0:
            return allowed
        pause = clock.seconds_until(dev.tick_count + 1)
        if self._timeout is not None:
            if wall.expired():
                return -1
            pause = min(pause, wall.time_left())
        self._data.wait(max(pause, 0.0005))
        return 0

    def cancel_read(self) -> None:
        self._cancel = True
        with self.lock:
            self._data.notify_all()
        with self._gate:
            self._gate.notify_all()

    def reset_input_buffer(self) -> None:
        dev = self._device()
        with self.lock:
            dev.read_tx()

    def reset_output_buffer(self) -> None:
        self._device()

    # --- modem lines (a simulated port has none; answer like pyserial's loop://) ---------------

    def _update_break_state(self) -> None:
        pass

    def _update_rts_state(self) -> None:
        pass

    def _update_dtr_state(self) -> None:
        pass

    @property
    def cts(self) -> bool:
        self._device()
        return True

    @property
    def dsr(self) -> bool:
        self._device()
        return True

    @property
    def ri(self) -> bool:
        self._device()
        return False

    @property
    def cd(self) -> bool:
        self._device()
        return True
