"""Ending a session: the operator's stop (ramp down, or disarm), abort, e-stop, acknowledgement,
a failed record's stop, and closing the connection safely."""

from __future__ import annotations

import contextlib

from stimctl.host.errors import CommandRejected, InterlockError, LinkError, StimctlError
from stimctl.host.interlock import Command
from stimctl.host.session import AT_REST, Session
from stimctl.host.snapshots import end_line, summary_line
from stimctl.host.status import RECORD_FAILED, FaultInfo, HostState, Outcome
from stimctl.protocol import ClearFault, Disarm, EStop, Goodbye, Message, State, Stop
from stimctl.protocol.messages import wire_name

#: How long an acknowledgement waits for the device to confirm an operator E-STOP it has not yet
#: reported (one telemetry period is 20 ms; the ESTOP is re-sent with every one until then).
ESTOP_CONFIRM_S = 1.0
#: How long closing waits for the device to come to rest after its last stop.
CLOSE_REST_S = 0.5

__all__ = ["Stopper"]

_ACTIVE = (HostState.RUNNING, HostState.PAUSED, HostState.ARMED)


class Stopper:
    """The controller's stop, abort, e-stop, acknowledge and close, on the caller's thread."""

    def __init__(self, session: Session) -> None:
        self._session = session
        self._ctx = session.ctx
        self._record_stopped: set[State | None] = set()  # device states stopped for the record

    def stop(self, ramp_ms: int | None, outcome: Outcome) -> None:
        """STOP with ``ramp_ms`` (None: the session's stop ramp); ARMED: DISARM. InterlockError
        when neither is legal now; a NAK after a fault got there first is not an error."""
        interlock, session = self._ctx.interlock, self._session
        with self._ctx.lock:
            state = interlock.state
            if state is HostState.ARMED:
                interlock.check(Command.DISARM)
                link = self._ctx.connection.require_link()
                command: Message = Disarm()
            else:
                interlock.check(Command.STOP)
                link = self._ctx.connection.require_link()
                ramp = session.stop_ramp_ms() if ramp_ms is None else ramp_ms
                command = Stop(ramp_ms=max(0, min(0xFFFF, int(ramp))))
            session.stopping(outcome)
        try:
            self._ctx.commander.command(link, command)
        except CommandRejected:
            with self._ctx.lock:
                if interlock.state in (HostState.FAULT, HostState.ESTOP):
                    return  # a fault got there first; output is already zero
            raise
        with self._ctx.lock:
            if isinstance(command, Disarm):
                interlock.accepted(Command.DISARM, state)
                session.finish(outcome)
            else:
                interlock.accepted(Command.STOP, state)

    def abort(self) -> None:
        """Immediate stop to zero: STOP with a zero ramp (ARMED: disarm); ESTOP if that cannot
        be delivered or a stop ramp is already running. No-op when at rest."""
        state = self._ctx.interlock.state
        if state is HostState.STOPPING:
            self.estop()
            return
        if state not in _ACTIVE:
            return
        try:
            self.stop(0, Outcome.ABORTED)
        except (StimctlError, OSError):
            self.estop()

    def record_failed(self, message: str) -> None:
        """The record cannot be written: end the session the normal way, a STOP with the
        session's ramp-down (device ARMED: DISARM), and latch RECORD_FAILED. Called with every
        line written after the failure (any thread, maybe under the lock; never waits), so a
        START that crossed the failure is stopped at the device's next state report. At rest
        nothing is latched: the next ARM is refused instead."""
        session = self._session
        fault = FaultInfo(RECORD_FAILED, source="host", message=message)
        with self._ctx.lock:
            device = session.device_state
            command: Message | None = None
            if device not in self._record_stopped:
                if device in (State.RUNNING, State.PAUSED):
                    command = Stop(ramp_ms=session.stop_ramp_ms())
                elif device is State.ARMED:
                    command = Disarm()
            if command is not None:
                self._record_stopped.add(device)
            latched = session.record_failed(fault, stop_sent=command is not None)
        link = self._ctx.connection.open_link()
        if command is not None and link is not None:
            try:
                sent = link.send(command)
            except LinkError:
                self.estop()  # the stop cannot be delivered: ESTOP (and the device's watchdog)
            else:
                self._ctx.journal.write("command", {
                    "name": wire_name(type(sent)), "seq": sent.seq, "result": "sent",
                    "cause": RECORD_FAILED, **({"ramp_ms": sent.ramp_ms}
                                                if isinstance(sent, Stop) else {}),
                })  # fmt: skip
        if latched:
            line, why = {**fault.to_dict(), "first": True}, f"{RECORD_FAILED}: {message}"
            self._ctx.journal.happened("fault", line, why, fault.to_dict())

    def estop(self) -> None:
        """ESTOP at once from the caller's thread, ahead of anything else; never waits."""
        link = self._ctx.connection.open_link()  # no lock first: the reader thread may hold it
        sent = None
        self._session.estop_requested()  # repeated with telemetry until the device latches
        if link is not None:
            with contextlib.suppress(LinkError):
                sent = link.write_urgent(EStop())
        self._session.estopped(sent)

    def acknowledge(self) -> None:
        """Operator acknowledgement of a latched FAULT/ESTOP: CLEAR_FAULT, back to IDLE."""
        with self._ctx.lock:
            self._ctx.interlock.check(Command.ACKNOWLEDGE)
            link = self._ctx.connection.require_link()
        with link.waiting():
            confirmed = self._session.estop_confirmed(ESTOP_CONFIRM_S)
        if not confirmed:
            raise InterlockError(
                "acknowledge refused: the device has not confirmed the E-STOP yet (output may"
                " still be on); check the link, E-STOP again"
            )
        try:  # always: the device may not have reported its latch yet (e.g. a host-side fault)
            self._ctx.commander.command(link, ClearFault())
        except CommandRejected as exc:
            if exc.reason != "BAD_STATE":  # BAD_STATE: the device was not latched (host-only)
                raise
        self._session.acknowledged()

    def close(self, exit_code: int | None) -> None:
        """Make everything safe: output to zero (STOP ramp 0, or ESTOP if that fails), GOODBYE,
        port closed, simulator stopped, record closed with its summary and end line."""
        session, connection = self._session, self._ctx.connection
        with contextlib.suppress(StimctlError, OSError):
            if self._ctx.interlock.state in (*_ACTIVE, HostState.STOPPING):
                self.abort()  # STOPPING: e-stop, do not leave a ramp running behind us
                with self._ctx.waiting(), self._ctx.lock:
                    self._ctx.changed.wait_for(lambda: session.device_state in AT_REST,
                                               CLOSE_REST_S)  # fmt: skip
        link = connection.open_link()
        if link is not None:
            if session.device_state is State.IDLE:
                with contextlib.suppress(StimctlError, OSError):
                    self._ctx.commander.command(link, Goodbye(), timeout=0.5)
            link.close()
        connection.release_port()
        connection.stop_simulator()
        recorder = self._ctx.journal.recorder
        if recorder.is_open:
            recorder.close(summary_line(session), end_line(session, exit_code))
        with self._ctx.lock:
            self._ctx.interlock.disconnected()
            self._ctx.changed.notify_all()
