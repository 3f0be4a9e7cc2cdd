"""Ending a session on the operator's word: stop (ramp down, or disarm), e-stop, acknowledgement."""

from __future__ import annotations

import contextlib
import threading

from stimctl.host.commander import Commander
from stimctl.host.connection import Connection
from stimctl.host.errors import CommandRejected, InterlockError, LinkError
from stimctl.host.interlock import Command, Interlock
from stimctl.host.mirror import DeviceMirror
from stimctl.host.recorder import Recorder
from stimctl.host.session import Session
from stimctl.host.status import FaultInfo, HostState, Outcome
from stimctl.host.subscribers import Subscribers
from stimctl.protocol import ClearFault, Disarm, EStop, Message, State, Stop
from stimctl.protocol.messages import wire_name

#: How long an acknowledgement waits for the device to confirm an operator E-STOP it has not yet
#: reported (one telemetry period is 20 ms; the ESTOP is re-sent with every one until then).
ESTOP_CONFIRM_S = 1.0

__all__ = ["Stopper"]


class Stopper:
    """The controller's stop, e-stop and acknowledge actions, on the caller's thread."""

    def __init__(
        self,
        lock: threading.RLock,
        interlock: Interlock,
        connection: Connection,
        session: Session,
        commander: Commander,
        mirror: DeviceMirror,
        recorder: Recorder,
        subscribers: Subscribers,
    ) -> None:
        self._lock = lock
        self._interlock = interlock
        self._connection = connection
        self._session = session
        self._commander = commander
        self._mirror = mirror
        self._recorder = recorder
        self._subscribers = subscribers
        self._record_stopped: set[State | None] = set()  # device states stopped for the record

    def stop(self, ramp_ms: int | None, outcome: Outcome) -> None:
        """STOP with ``ramp_ms`` (None: the session's stop ramp); ARMED: DISARM. InterlockError
        when neither is legal now; a NAK after a fault got there first is not an error."""
        interlock, session = self._interlock, self._session
        with self._lock:
            state = interlock.state
            if state is HostState.ARMED:
                interlock.check(Command.DISARM)
                link = self._connection.require_link()
                command: Message = Disarm()
            else:
                interlock.check(Command.STOP)
                link = self._connection.require_link()
                ramp = session.stop_ramp_ms() if ramp_ms is None else ramp_ms
                command = Stop(ramp_ms=max(0, min(0xFFFF, int(ramp))))
            session.stopping(outcome)
        try:
            self._commander.command(link, command)
        except CommandRejected:
            with self._lock:
                if interlock.state in (HostState.FAULT, HostState.ESTOP):
                    return  # a fault got there first; output is already zero
            raise
        with self._lock:
            if isinstance(command, Disarm):
                interlock.accepted(Command.DISARM, state)
                session.finish(outcome)
            else:
                interlock.accepted(Command.STOP, state)

    def record_failed(self, message: str) -> None:
        """The record cannot be written: end the session the normal way, a STOP with the
        session's ramp-down (device ARMED: DISARM), and latch RECORD_FAILED. Called with every
        line written after the failure (any thread, maybe under the lock; never waits), so a
        START that crossed the failure is stopped at the device's next state report. At rest
        nothing is latched: the next ARM is refused instead."""
        interlock, session = self._interlock, self._session
        fault = FaultInfo("RECORD_FAILED", source="host", message=message)
        with self._lock:
            device, before = session.device_state, interlock.state
            command: Message | None = None
            if device not in self._record_stopped:
                if device in (State.RUNNING, State.PAUSED):
                    command = Stop(ramp_ms=session.stop_ramp_ms())
                elif device is State.ARMED:
                    command = Disarm()
            if command is not None:
                self._record_stopped.add(device)
            active = (HostState.ARMED, HostState.RUNNING, HostState.PAUSED, HostState.STOPPING)
            latch = interlock.fault is None and (before in active or command is not None)
            if latch:
                interlock.latch(fault)
                session.faults.append(fault)
                session.stopping(Outcome.FAULT)  # ends when the device is back at rest
            if device is State.ARMED and (latch or command is not None):
                session.finish(Outcome.FAULT)  # disarmed: nothing was delivered
        link = self._connection.open_link()
        if command is not None and link is not None:
            try:
                sent = link.send(command)
            except LinkError:
                self.estop()  # the stop cannot be delivered: ESTOP (and the device's watchdog)
            else:
                self._recorder.write("command", {
                    "name": wire_name(type(sent)), "seq": sent.seq, "result": "sent",
                    "cause": "RECORD_FAILED", **({"ramp_ms": sent.ramp_ms}
                                                if isinstance(sent, Stop) else {}),
                })  # fmt: skip
        if latch:
            self._recorder.write(
                "state", {"from": before.value, "to": interlock.state.value,
                          "cause": "RECORD_FAILED"}
            )  # fmt: skip
            self._recorder.write("fault", {**fault.to_dict(), "first": True})
            self._subscribers.emit("fault", f"RECORD_FAILED: {message}", fault.to_dict())

    def estop(self) -> None:
        """ESTOP at once from the caller's thread, ahead of anything else; never waits."""
        link = self._connection.open_link()  # no lock first: the reader thread may hold it
        sent = None
        self._session.estop_pending = True  # repeated with telemetry until the device latches
        if link is not None:
            with contextlib.suppress(LinkError):
                sent = link.write_urgent(EStop())
        self._mirror.estopped(sent)

    def acknowledge(self) -> None:
        """Operator acknowledgement of a latched FAULT/ESTOP: CLEAR_FAULT, back to IDLE."""
        with self._lock:
            self._interlock.check(Command.ACKNOWLEDGE)
            link = self._connection.require_link()
        with link.waiting():
            confirmed = self._session.estop_confirmed(ESTOP_CONFIRM_S)
        if not confirmed:
            raise InterlockError(
                "acknowledge refused: the device has not confirmed the E-STOP yet (output may"
                " still be on); check the link, E-STOP again"
            )
        try:  # always: the device may not have reported its latch yet (e.g. a host-side fault)
            self._commander.command(link, ClearFault())
        except CommandRejected as exc:
            if exc.reason != "BAD_STATE":  # BAD_STATE: the device was not latched (host-only)
                raise
        with self._lock:
            cause = self._interlock.fault
            self._interlock.apply(Command.ACKNOWLEDGE)
        self._recorder.write(
            "state",
            {"from": "latched", "to": "IDLE", "acknowledged": cause.to_dict() if cause else None},
        )
        self._subscribers.emit("state", "fault acknowledged; impedance must be checked again")
