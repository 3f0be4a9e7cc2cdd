"""Device mirror: device messages on the link's reader thread, fault latching, link supervision.

``DeviceMirror`` is what the link calls: it keeps the host interlock in step with the device's
state and faults, feeds telemetry into the ``Session`` (totals, stream top-up), sends HEARTBEAT
when nothing else was written, repeats an undelivered operator ESTOP, writes the 1 Hz telemetry
lines, and turns silence, a lost port or a refused stream into a latched host fault. Everything
runs under the controller's lock except the subscriber callbacks and the urgent ESTOP writes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator

from stimctl.host.commander import Commander
from stimctl.host.connection import Connection
from stimctl.host.errors import LinkError, StimctlError
from stimctl.host.interlock import Interlock
from stimctl.host.link import Link, hand_over
from stimctl.host.recorder import Recorder
from stimctl.host.session import Session
from stimctl.host.status import FaultInfo, HostState, Outcome
from stimctl.host.subscribers import Subscribers
from stimctl.protocol import (
    DeviceInfo,
    Disarm,
    EStop,
    Fault,
    FaultEvent,
    Heartbeat,
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


class DeviceMirror:
    """Handles the device's messages and keeps the host's view of it (and the link) current."""

    def __init__(
        self,
        lock: threading.RLock,
        changed: threading.Condition,
        interlock: Interlock,
        connection: Connection,
        session: Session,
        recorder: Recorder,
        subscribers: Subscribers,
        commander: Commander,
    ) -> None:
        self._lock = lock
        self._changed = changed
        self._interlock = interlock
        self._connection = connection
        self._session = session
        self._recorder = recorder
        self._subscribers = subscribers
        self._commander = commander
        self.watchdog_ms = 200  # until DEVICE_INFO says otherwise
        self._telemetry_waiters: list[TelemetryWaiter] = []
        self._hb_frames = -1
        self._next_record_ms: int | None = None
        self._impedance: ImpedanceResult | None = None
        self._impedance_done = threading.Event()

    # --- waiting for the device (caller's thread) ---------------------------------------------
    def read_back(self, timeout: float) -> None:
        """After HELLO: the first telemetry sets the host state (a latch is adopted with its
        cause); a device found armed or running (host restarted) is brought to rest, never
        adopted."""
        tel = self.first_telemetry(timeout)
        with self._lock:
            before = self._interlock.state
            self._interlock.connected(State(tel.state) if tel else State.IDLE)
            self._host_changed(before, "connected")
            if tel is not None and State(tel.state) in (State.FAULT, State.ESTOP):
                self.latch_from_telemetry(tel)
        device, url = self._connection.device, self._connection.url
        if device is None:
            raise StimctlError("not connected")
        self._subscribers.emit("state", f"connected to {device.serial} ({url})")
        if tel is None:
            return
        link = self._connection.require_link()
        if State(tel.state) is State.ARMED:
            self._commander.command(link, Disarm())
        elif State(tel.state) in (State.RUNNING, State.PAUSED):
            self._commander.command(link, Stop(ramp_ms=0))

    def impedance(self, link: Link, msg: Message, timeout: float) -> ImpedanceResult:
        """IMPEDANCE_CHECK, then its IMPEDANCE_RESULT; LinkError if none within ``timeout``. A
        result lost on the link costs another check: asked again when none has come
        IMPEDANCE_RESULT_WAIT_MS of device time (or IMPEDANCE_RESULT_WAIT_S) after the ACK."""
        deadline = time.monotonic() + timeout
        while True:
            self._impedance_done.clear()
            self._impedance = None
            self._commander.command(link, msg, timeout=max(0.05, deadline - time.monotonic()))
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
        with self._lock, self.telemetry_wakeups():
            count = session.tel_count
            self._changed.wait_for(lambda: session.tel_count > count, timeout)
            return session.tel

    @contextlib.contextmanager
    def telemetry_wakeups(self) -> Iterator[TelemetryWaiter]:
        """While inside, every telemetry frame wakes the waiters of ``changed`` (otherwise
        only state changes, answers and faults do). Wait with the waiter's ``wait``: on the
        lock-step simulator device time then stands at each frame until this thread has looked
        at it, so a host reacting to a frame acts at that frame's device time."""
        waiter = TelemetryWaiter(self._changed)
        with self._lock:
            self._telemetry_waiters.append(waiter)
        try:
            yield waiter
        finally:
            with self._lock:
                self._telemetry_waiters.remove(waiter)
            waiter.looked()

    def supervise(self) -> None:
        """Caller's thread: a device that sends nothing at all is a lost link."""
        link = self._connection.link
        if link is None or not link.is_open or self._connection.device is None:
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
    def estopped(self, sent: Message | None) -> None:
        """The operator's ESTOP (``sent``: the frame as written, None if the link was down)."""
        session = self._session
        text = "e-stop by the operator" + ("" if sent else " (link down: not delivered)")
        fault = FaultInfo("ESTOP", source="host", message=text)
        with self._lock:
            before = self._interlock.state
            self._interlock.latch(fault, estop=True)
            self._host_changed(before, "ESTOP")
            session.faults.append(fault)
            session.finish(Outcome.ESTOP)
        self._recorder.write(
            "command",
            {
                "name": "ESTOP",
                "result": "sent" if sent else "not sent",
                "seq": getattr(sent, "seq", None),
            },
        )
        self._recorder.write("fault", fault.to_dict())
        self._subscribers.emit("fault", text, fault.to_dict())

    def host_fault(self, code: str, message: str, estop: bool) -> None:
        """Latch a host-side fault (LINK_LOST, HOST_LIMIT, STREAM_REFUSED); ESTOP when asked."""
        session = self._session
        link = self._connection.open_link()
        if estop and link is not None:
            with contextlib.suppress(LinkError):
                link.write_urgent(EStop())
        fault = FaultInfo(code, source="host", message=message)
        with self._lock:
            first = self._interlock.fault is None
            before = self._interlock.state
            self._interlock.latch(fault)
            self._host_changed(before, code)
            session.faults.append(fault)
            session.halt_stream(code)
            session.finish(Outcome.FAULT)
        self._recorder.write("fault", {**fault.to_dict(), "first": first})
        self._subscribers.emit("fault", f"{code}: {message}", fault.to_dict())

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
        with self._lock:
            notify = not isinstance(msg, Telemetry) or bool(self._telemetry_waiters)
            if isinstance(msg, Telemetry):
                self._on_telemetry(msg)
                self._hand_to_waiters()
                if self._subscribers.wanted("telemetry"):
                    status = session.status(self._interlock.state, self._interlock.fault)
            elif isinstance(msg, StateEvent):
                self._mirror(State(msg.state), msg.time_ms)
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
            if notify or session.notify_pending:
                session.notify_pending = False
                self._changed.notify_all()
        if status is not None:
            self._subscribers.call("telemetry", status)

    def _hand_to_waiters(self) -> None:
        """Each telemetry waiter holds device time (lock-step) until it has looked at this
        frame; one hold per waiter, however many frames came meanwhile."""
        link = self._connection.link
        if link is None:
            return
        for waiter in self._telemetry_waiters:
            if waiter.release is None:
                waiter.release = link.hold_device_time()

    def _on_telemetry(self, tel: Telemetry) -> None:
        session = self._session
        session.count_telemetry(tel)
        state = State(tel.state)
        if state is not session.device_state:
            self._mirror(state, tel.time_ms)
        if state in (State.FAULT, State.ESTOP):
            if session.estop_pending:  # the device has latched: output is zero
                session.estop_pending, session.notify_pending = False, True
            if self._interlock.fault is None:
                self.latch_from_telemetry(tel)
        elif session.estop_pending:
            self._repeat_estop()
        session.top_up(tel)
        self._heartbeat(tel)
        if self._next_record_ms is None or tel.time_ms >= self._next_record_ms:
            self._next_record_ms = tel.time_ms + RECORD_TELEMETRY_MS
            self._recorder.write("telemetry", session.telemetry_line(tel), durable=False)

    def _repeat_estop(self) -> None:
        """The operator's ESTOP has not reached the device yet (lost on a noisy link): send it
        again with every telemetry frame (about 50 Hz) until the device reports a latch."""
        link = self._connection.open_link()
        if link is not None:
            with contextlib.suppress(LinkError):
                link.write_urgent(EStop())
                self._session.estop_repeats += 1

    def _heartbeat(self, tel: Telemetry) -> None:
        """On a virtual-clock simulator (no keep-alive thread: host time means nothing to it),
        HEARTBEAT with every telemetry frame after which nothing else was written: paced on
        device time, and with a frame per telemetry period a run of lost telemetry frames must
        be ten long (200 ms) before the watchdog sees silence."""
        link = self._connection.open_link()
        if link is None or link.keepalive_running:
            return
        if link.tx_frames == self._hb_frames:
            with contextlib.suppress(LinkError):
                link.send(Heartbeat())
        self._hb_frames = link.tx_frames

    def _mirror(self, state: State, device_ms: int) -> None:
        session = self._session
        previous, session.device_state = session.device_state, state
        if previous is state:
            return
        host_before = self._interlock.state
        host = self._interlock.device_state(state)
        self._recorder.write(
            "state",
            {
                "device_from": previous.name if previous else None,
                "device_to": state.name,
                "device_ms": device_ms,
                "from": host_before.value,
                "to": host.value,
            },
        )
        self._subscribers.emit(
            "state", f"device {state.name}", {"device": state.name, "host": host.value}
        )
        ended = session.device_moved(previous, state, device_ms)
        if ended is Outcome.COMPLETED:
            self._interlock.complete()
        if ended is not None:
            session.finish(ended)

    def _fault(self, code: int, channel: int, device_ms: int, before: int, detail: int) -> None:
        name = _fault_name(code)
        where = f" on channel {channel}" if channel else ""
        was = State(before).name if before in State._value2member_map_ else str(before)
        # LIMIT_VIOLATION: the refused field by name ("ch2 AMPLITUDE", not "detail 513")
        what = f"; {fault_detail_text(code, detail)}" if code == Fault.LIMIT_VIOLATION else ""
        fault = FaultInfo(
            name,
            channel,
            device_ms,
            source="device",
            message=f"device fault {name}{where} (was {was}{what}); output is zero",
        )
        first = self._interlock.fault is None
        host_before = self._interlock.state
        self._interlock.latch(fault, estop=code == Fault.ESTOP)
        self._host_changed(host_before, name)
        self._session.faults.append(fault)
        self._session.halt_stream(name)
        self._recorder.write("fault", {**fault.to_dict(), "detail": detail, "first": first})
        self._subscribers.emit("fault", fault.message, fault.to_dict())
        self._session.finish(Outcome.ESTOP if code == Fault.ESTOP else Outcome.FAULT)

    def _host_changed(self, before: HostState, cause: str) -> None:
        after = self._interlock.state
        if after is not before:
            self._recorder.write("state", {"from": before.value, "to": after.value, "cause": cause})

    def latch_from_telemetry(self, tel: Telemetry) -> None:
        """A device found latched (at connect, or a lost FAULT_EVENT): adopt its cause."""
        if self._interlock.fault is None:
            code = tel.fault or (Fault.ESTOP if tel.state == State.ESTOP else Fault.INTERNAL)
            self._fault(code, tel.fault_channel, tel.time_ms, tel.state, 0)
