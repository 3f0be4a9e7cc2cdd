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
from stimctl.host.status import HostState, Outcome
from stimctl.host.subscribers import Subscribers
from stimctl.protocol import ClearFault, Disarm, EStop, Message, Stop

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
