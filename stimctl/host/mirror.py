"""Device mirror: device messages on the link's reader thread, waiting for the device, supervision.

``DeviceMirror`` is what the link calls: it hands the device's state reports and faults to the
``Session`` (which owns them), feeds it telemetry (totals, stream top-up), sends HEARTBEAT when
nothing else was written, repeats an undelivered operator ESTOP, writes the 1 Hz telemetry
lines, and turns silence, a lost port or a refused stream into a latched host fault. On the
caller's thread it waits for the device: the read-back after HELLO, an impedance check, the end
of the session, a condition on the status. Everything runs under the controller's lock except
the subscriber callbacks and the urgent ESTOP writes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator

from stimctl.host.arming import channel_mask, impedance_readings
from stimctl.host.errors import CommandRejected, LinkError, StimctlError
from stimctl.host.link import Link, hand_over
from stimctl.host.session import Session
from stimctl.host.snapshots import status_of, telemetry_line
from stimctl.host.status import FaultInfo, ImpedanceReading, Outcome, Status
from stimctl.protocol import (
    DeviceInfo,
    Disarm,
    EStop,
    Fault,
    FaultEvent,
    Heartbeat,
    ImpedanceCheck,
    ImpedanceResult,
    Message,
    Nak,
    State,
    StateEvent,
    Stop,
    Telemetry,
)
from stimctl.protocol.details import fault_detail_text
from stimctl.rules.envelope import DEVICE_SILENCE_S

__all__ = ["DEVICE_PROBE_S", "DEVICE_SILENCE_S", "RECORD_TELEMETRY_MS", "DeviceMirror"]

#: After this long without a frame the host sends HELLO to see whether the device rebooted or
#: ended an idle session ...
DEVICE_PROBE_S = 0.25
#: ... and again every DEVICE_PROBE_S; the link is lost only after this many went unanswered.
DEVICE_PROBES = 3
#: An IMPEDANCE_RESULT not in this long after the check's ACK (the device takes 50 ms) was lost
#: on the link: the check is asked again.
IMPEDANCE_RESULT_WAIT_MS = 250
IMPEDANCE_RESULT_WAIT_S = 0.5
RECORD_TELEMETRY_MS = 1000  # telemetry lines in the record: one per second of device time


_STATES: dict[int, State] = {state.value: state for state in State}


def _state(value: int) -> State:
    """``State(value)`` (ValueError for a value that is none) without the enum call's cost."""
    state = _STATES.get(value)
    return state if state is not None else State(value)


def _fault_name(code: int) -> str:
    try:
        return Fault(code).name
    except ValueError:
        return f"FAULT_{code}"


class TelemetryWaiter:
    """A thread inside ``DeviceMirror.telemetry_wakeups``: ``wait`` (its lock held) lets the
    device run on; a frame handed over holds device time until the next ``wait`` or the end."""

    __slots__ = ("_changed", "release")

    def __init__(self, changed: threading.Condition) -> None:
        self._changed = changed
        self.release: Callable[[], None] | None = None  # set (under the lock) while holding

    def looked(self) -> None:
        """This thread has looked at every frame handed to it: device time may run on."""
        release, self.release = self.release, None
        if release is not None:
            release()

    def wait(self, timeout: float | None) -> bool:
        self.looked()
        return self._changed.wait(timeout)


def _left(deadline: float | None) -> float:
    """The next slice of a wait (0.1 s at most; <= 0 once ``deadline`` has passed)."""
    return 0.1 if deadline is None else min(0.1, deadline - time.monotonic())


class DeviceMirror:
    """Handles the device's messages and keeps the host's view of it (and the link) current."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._ctx = session.ctx
        self.watchdog_ms = 200  # until DEVICE_INFO says otherwise
        self._telemetry_waiters: list[TelemetryWaiter] = []
        self._hb_frames = -1
        self._next_record_ms: int | None = None
        self._impedance: ImpedanceResult | None = None
        self._impedance_done = threading.Event()

    # --- waiting for the device (caller's thread) ---------------------------------------------
    def attach(self, timeout: float) -> None:
        """Link, HELLO, device and envelope (the record's ``device`` line on disk: RecordFailed
        otherwise), then the device read back and brought to rest."""
        connection = self._ctx.connection
        connection.open(self.on_message, self.on_lost, timeout)
        self._ctx.journal.write("device", connection.device_record())
        self._ctx.journal.recorder.require_intact()
        with self._ctx.waiting():
            self.read_back(timeout)

    def read_back(self, timeout: float) -> None:
        """After HELLO: the first telemetry sets the host state (a latch is adopted with its
        cause); a device found armed or running (host restarted) is brought to rest, never
        adopted."""
        tel = self.first_telemetry(timeout)
        with self._ctx.lock:
            self._session.connected(State(tel.state) if tel else State.IDLE)
            if tel is not None and State(tel.state) in (State.FAULT, State.ESTOP):
                self.latch_from_telemetry(tel)
        device, url = self._ctx.connection.device, self._ctx.connection.url
        if device is None:
            raise StimctlError("not connected")
        self._ctx.journal.announce("state", f"connected to {device.serial} ({url})")
        if tel is None:
            return
        link = self._ctx.connection.require_link()
        if State(tel.state) is State.ARMED:
            self._ctx.commander.command(link, Disarm())
        elif State(tel.state) in (State.RUNNING, State.PAUSED):
            self._ctx.commander.command(link, Stop(ramp_ms=0))

    def check_impedance(
        self, link: Link, channels: Iterable[int], timeout: float
    ) -> dict[int, ImpedanceReading]:
        """Measure ``channels``; the interlock learns which passed, the record every reading."""
        channels = tuple(channels)
        with link.waiting():
            result = self.impedance(link, ImpedanceCheck(channel_mask=channel_mask(channels)),
                                    timeout)  # fmt: skip
        readings = impedance_readings(result, channels)
        with self._ctx.lock:
            self._ctx.interlock.impedance_passed(ch for ch, r in readings.items() if r.ok)
            self._ctx.interlock.impedance_failed(ch for ch, r in readings.items() if not r.ok)
        self._ctx.journal.write(
            "impedance", {str(ch): {"ohm": r.ohm, "status": r.status} for ch, r in readings.items()}
        )
        return readings

    def impedance(self, link: Link, msg: Message, timeout: float) -> ImpedanceResult:
        """IMPEDANCE_CHECK, then its IMPEDANCE_RESULT; LinkError if none within ``timeout``. A
        result lost on the link costs another check: asked again when none has come
        IMPEDANCE_RESULT_WAIT_MS of device time (or IMPEDANCE_RESULT_WAIT_S) after the ACK."""
        deadline = time.monotonic() + timeout
        self._impedance_done.clear()
        self._impedance = None
        asked = False
        while True:
            try:
                self._ctx.commander.command(
                    link, msg, timeout=max(0.05, deadline - time.monotonic())
                )
            except CommandRejected as exc:
                # Asked again while the device still measures (telemetry that came in a burst
                # made device time jump): its first result is on the way, so wait for that.
                if not asked or exc.reason != "BAD_STATE":
                    raise
            asked = True
            since_s, since_ms = time.monotonic(), link.device_ms
            while not self._impedance_done.wait(min(0.02, max(0.0, deadline - time.monotonic()))):
                now = time.monotonic()
                if now >= deadline:
                    raise LinkError(f"no IMPEDANCE_RESULT within {timeout:g} s")
                waited_ms = (link.device_ms or 0) - (since_ms or 0)
                if now - since_s >= IMPEDANCE_RESULT_WAIT_S or (
                    since_ms is not None and waited_ms >= IMPEDANCE_RESULT_WAIT_MS
                ):
                    break
            else:
                if self._impedance is not None:
                    return self._impedance

    def first_telemetry(self, timeout: float) -> Telemetry | None:
        """The next telemetry frame, or the last one seen if none arrives within ``timeout``."""
        session = self._session
        with self._ctx.lock, self.telemetry_wakeups():
            count = session.tel_count
            self._ctx.changed.wait_for(lambda: session.tel_count > count, timeout)
            return session.tel

    def wait_end(self, timeout: float | None) -> Outcome | None:
        """Block until the session ends (its totals in); the outcome, or None after ``timeout``."""
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._ctx.waiting(), self._ctx.lock:
            while True:
                self.supervise()
                outcome = self._session.outcome
                if outcome is not None and self._session.final:
                    return outcome
                if (left := _left(deadline)) <= 0:
                    return None
                self._ctx.changed.wait(left)

    def wait_until(self, predicate: Callable[[Status], bool], timeout: float | None) -> bool:
        """Block until ``predicate(status())`` holds, checked at every telemetry frame."""
        deadline = None if timeout is None else time.monotonic() + timeout
        # the hand-over ends (device time runs on) only after this thread stopped waiting
        with self.telemetry_wakeups() as frames, self._ctx.waiting(), self._ctx.lock:
            while not predicate(self.status()):
                if (left := _left(deadline)) <= 0:
                    return False
                frames.wait(left)
            return True

    def status(self) -> Status:
        with self._ctx.lock:
            self.supervise()
            return status_of(self._session)

    @contextlib.contextmanager
    def telemetry_wakeups(self) -> Iterator[TelemetryWaiter]:
        """While inside, every telemetry frame wakes the waiters of ``changed`` (otherwise
        only state changes, answers and faults do). Wait with the waiter's ``wait``: on the
        lock-step simulator device time then stands at each frame until this thread has looked
        at it, so a host reacting to a frame acts at that frame's device time."""
        waiter = TelemetryWaiter(self._ctx.changed)
        with self._ctx.lock:
            self._telemetry_waiters.append(waiter)
        try:
            yield waiter
        finally:
            with self._ctx.lock:
                self._telemetry_waiters.remove(waiter)
            waiter.looked()

    def supervise(self) -> None:
        """Caller's thread: a device that sends nothing at all is a lost link."""
        link = self._ctx.connection.link
        if link is None or not link.is_open or self._ctx.connection.device is None:
            return
        if not link.device_can_speak:
            return
        now = time.monotonic()
        silent = now - link.last_rx
        # a device that rebooted, or ended an idle session, says nothing until it hears HELLO
        link.probe_if_silent(DEVICE_PROBE_S)
        # a host that was not scheduled for seconds (its own silence ended the device's idle
        # session) gives its HELLOs the time to be answered before it calls the link lost
        if silent > DEVICE_SILENCE_S and link.unanswered_probes >= DEVICE_PROBES:
            link.close()
            self.host_fault("LINK_LOST", f"no frame from the device for {silent:.1f} s", False)

    # --- host-side latches (any thread) ----------------------------------------------------------
    def host_fault(self, code: str, message: str, estop: bool) -> None:
        """Latch a host-side fault (LINK_LOST, HOST_LIMIT, STREAM_REFUSED); ESTOP when asked."""
        link = self._ctx.connection.open_link()
        if estop and link is not None:
            with contextlib.suppress(LinkError):
                link.write_urgent(EStop())
        fault = FaultInfo(code, source="host", message=message)
        self._session.faulted(fault, announce=f"{code}: {message}")

    def stream_failed(self, code: str, reason: str) -> None:
        """The streamer stopped: HOST_LIMIT (a block outside the effective envelope, never sent)
        or STREAM_REFUSED (the device NAKed a block, e.g. one lost on a noisy link)."""
        self.host_fault(code, reason, estop=True)

    # --- reader thread -------------------------------------------------------------------------
    def on_lost(self, exc: BaseException | None) -> None:
        self.host_fault("LINK_LOST", f"serial link lost: {exc or 'closed'}", estop=False)

    def on_message(self, msg: Message) -> None:
        session = self._session
        status = None
        with self._ctx.lock:
            notify = True
            if isinstance(msg, Telemetry):
                notify = bool(self._telemetry_waiters)
                self._on_telemetry(msg)
                if notify:
                    self._hand_to_waiters()
                if self._ctx.journal.subscribers.wanted("telemetry"):
                    status = status_of(session)
            elif isinstance(msg, StateEvent):
                session.device_reported(State(msg.state), msg.time_ms)
            elif isinstance(msg, FaultEvent):
                self._fault(msg.fault, msg.channel, msg.time_ms, msg.state_before, msg.detail)
            elif isinstance(msg, ImpedanceResult):
                self._impedance = msg
                self._impedance_done.set()
                hand_over()
            elif isinstance(msg, DeviceInfo):
                self.watchdog_ms = msg.watchdog_ms
            elif isinstance(msg, Nak):
                session.count_nak()
            if session.take_notify() or notify:
                self._ctx.changed.notify_all()
        if status is not None:
            self._ctx.journal.subscribers.call("telemetry", status)

    def _hand_to_waiters(self) -> None:
        """Each telemetry waiter holds device time (lock-step) until it has looked at this
        frame; one hold per waiter, however many frames came meanwhile."""
        if not self._telemetry_waiters:
            return
        link = self._ctx.connection.link
        if link is None:
            return
        for waiter in self._telemetry_waiters:
            if waiter.release is None:
                waiter.release = link.hold_device_time()

    def _on_telemetry(self, tel: Telemetry) -> None:
        session = self._session
        session.count_telemetry(tel)
        state = _state(tel.state)
        if state is not session.device_state:  # (most frames: no move, no call)
            session.device_reported(state, tel.time_ms)
        if state in (State.FAULT, State.ESTOP):
            session.device_latched()
            if self._ctx.interlock.fault is None:
                self.latch_from_telemetry(tel)
        elif session.estop_pending:
            self._repeat_estop()
        session.top_up(tel, state)
        self._heartbeat(tel)
        if self._next_record_ms is None or tel.time_ms >= self._next_record_ms:
            self._next_record_ms = tel.time_ms + RECORD_TELEMETRY_MS
            self._ctx.journal.write("telemetry", telemetry_line(session, tel), durable=False)

    def _repeat_estop(self) -> None:
        """The operator's ESTOP has not reached the device yet (lost on a noisy link): send it
        again with every telemetry frame (about 50 Hz) until the device reports a latch."""
        link = self._ctx.connection.open_link()
        if link is not None:
            with contextlib.suppress(LinkError):
                link.write_urgent(EStop())
                self._session.estop_repeated()

    def _heartbeat(self, tel: Telemetry) -> None:
        """On a virtual-clock simulator (no keep-alive thread: host time means nothing to it),
        HEARTBEAT with every telemetry frame after which nothing else was written: paced on
        device time, and with a frame per telemetry period a run of lost telemetry frames must
        be ten long (200 ms) before the watchdog sees silence."""
        link = self._ctx.connection.link  # (open_link(), without its call: once a frame)
        if link is None or not link.is_open or link.keepalive_running:
            return
        if link.tx_frames == self._hb_frames:
            with contextlib.suppress(LinkError):
                link.send(Heartbeat())
        self._hb_frames = link.tx_frames

    def _fault(self, code: int, channel: int, device_ms: int, before: int, detail: int) -> None:
        name = _fault_name(code)
        where = f" on channel {channel}" if channel else ""
        was = State(before).name if before in State._value2member_map_ else str(before)
        # LIMIT_VIOLATION: the refused field by name ("ch2 AMPLITUDE", not "detail 513")
        what = f"; {fault_detail_text(code, detail)}" if code == Fault.LIMIT_VIOLATION else ""
        message = f"device fault {name}{where} (was {was}{what}); output is zero"
        fault = FaultInfo(name, channel, device_ms, source="device", message=message)
        self._session.faulted(fault, estop=code == Fault.ESTOP, detail=detail)

    def latch_from_telemetry(self, tel: Telemetry) -> None:
        """A device found latched (at connect, or a lost FAULT_EVENT): adopt its cause."""
        if self._ctx.interlock.fault is None:
            code = tel.fault or (Fault.ESTOP if tel.state == State.ESTOP else Fault.INTERNAL)
            self._fault(code, tel.fault_channel, tel.time_ms, tel.state, 0)
