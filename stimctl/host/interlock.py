"""Host interlock: an explicit (state, command) -> state table with guards, mirroring the device.

The controller asks ``check(command)`` before it writes anything; a command missing from the
table for the current state raises InterlockError and nothing is sent. FAULT and ESTOP latch
(with their cause) until ``acknowledge``. The device's reported state is mirrored with
``device_state``; a host-side latch (LINK_LOST, HOST_LIMIT) holds whatever the device says.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from stimctl.host.errors import InterlockError
from stimctl.host.status import FaultInfo, HostState
from stimctl.protocol import State
from stimctl.rules.envelope import IMPEDANCE_MAX_AGE_S

__all__ = ["IMPEDANCE_MAX_AGE_S", "TABLE", "ArmContext", "Command", "Interlock"]


class Command(StrEnum):
    """Host actions that put a command frame on the wire (HELLO/HEARTBEAT are always allowed)."""

    CONNECT = "CONNECT"
    DISCONNECT = "DISCONNECT"
    LOAD = "LOAD"
    IMPEDANCE = "IMPEDANCE"
    ARM = "ARM"
    DISARM = "DISARM"
    BLOCK = "BLOCK"
    START = "START"
    PAUSE = "PAUSE"
    RESUME = "RESUME"
    ADJUST = "ADJUST"
    STOP = "STOP"
    ESTOP = "ESTOP"
    ACKNOWLEDGE = "ACKNOWLEDGE"


S, C = HostState, Command
_IDLE_LIKE = {C.LOAD: S.IDLE, C.IMPEDANCE: S.IDLE, C.ARM: S.ARMED, C.DISCONNECT: S.DISCONNECTED,
              C.ESTOP: S.ESTOP}  # fmt: skip

#: The transition table: (state, command) -> next state. Anything absent is illegal.
TABLE: Mapping[tuple[HostState, Command], HostState] = {
    (S.DISCONNECTED, C.CONNECT): S.IDLE,
    **{(S.IDLE, c): s for c, s in _IDLE_LIKE.items()},
    **{(S.COMPLETED, c): s for c, s in _IDLE_LIKE.items()},
    (S.ARMED, C.IMPEDANCE): S.ARMED,
    (S.ARMED, C.DISARM): S.IDLE,
    (S.ARMED, C.BLOCK): S.ARMED,
    (S.ARMED, C.ADJUST): S.ARMED,
    (S.ARMED, C.START): S.RUNNING,
    (S.ARMED, C.ESTOP): S.ESTOP,
    (S.RUNNING, C.BLOCK): S.RUNNING,
    (S.RUNNING, C.ADJUST): S.RUNNING,
    (S.RUNNING, C.PAUSE): S.PAUSED,
    (S.RUNNING, C.STOP): S.STOPPING,
    (S.RUNNING, C.ESTOP): S.ESTOP,
    (S.PAUSED, C.BLOCK): S.PAUSED,  # no ADJUST: raised unfelt, it would arrive at once on RESUME
    (S.PAUSED, C.RESUME): S.RUNNING,
    (S.PAUSED, C.STOP): S.STOPPING,
    (S.PAUSED, C.ESTOP): S.ESTOP,
    (S.STOPPING, C.ESTOP): S.ESTOP,
    (S.FAULT, C.ESTOP): S.ESTOP,
    (S.FAULT, C.ACKNOWLEDGE): S.IDLE,
    (S.FAULT, C.DISCONNECT): S.DISCONNECTED,
    (S.ESTOP, C.ESTOP): S.ESTOP,
    (S.ESTOP, C.ACKNOWLEDGE): S.IDLE,
    (S.ESTOP, C.DISCONNECT): S.DISCONNECTED,
}  # fmt: skip

#: Device state -> the host state that mirrors it (COMPLETED is decided by the controller).
_MIRROR = {
    State.BOOT: S.IDLE, State.IDLE: S.IDLE, State.ARMED: S.ARMED, State.RUNNING: S.RUNNING,
    State.PAUSED: S.PAUSED, State.STOPPING: S.STOPPING, State.FAULT: S.FAULT,
    State.ESTOP: S.ESTOP,
}  # fmt: skip
_LATCHED = (S.FAULT, S.ESTOP)


@dataclass(frozen=True, slots=True)
class ArmContext:
    """What the ARM guards look at; the controller fills it in."""

    profile_loaded: bool
    profile_ok: bool  # valid against the effective envelope
    first_error: str = ""
    warnings: int = 0
    warnings_acknowledged: bool = False
    active_channels: tuple[int, ...] = ()
    confirmed: bool = False


class Interlock:
    """The host state machine; thread-safe use is the controller's job (it holds a lock)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.state: HostState = S.DISCONNECTED
        self.fault: FaultInfo | None = None
        self._impedance_passed: dict[int, float] = {}  # channel -> host clock when it passed

    # --- commands -------------------------------------------------------------------------
    def check(self, command: Command) -> HostState:
        """The state ``command`` leads to; InterlockError if it is illegal now."""
        target = TABLE.get((self.state, command))
        if target is None:
            if self.state in _LATCHED:
                cause = f" ({self.fault.code})" if self.fault else ""
                raise InterlockError(
                    f"{command.value} refused: {self.state.value}{cause} is latched;"
                    " acknowledge it first"
                )
            raise InterlockError(f"{command.value} refused in state {self.state.value}")
        return target

    def check_arm(self, ctx: ArmContext) -> None:
        """The ARM guards, in order; InterlockError naming the first one that fails."""
        self.check(C.ARM)
        if not ctx.profile_loaded:
            raise InterlockError("ARM refused: no profile loaded")
        if not ctx.profile_ok:
            raise InterlockError(
                f"ARM refused: profile invalid against the effective envelope: {ctx.first_error}"
            )
        if ctx.warnings and not ctx.warnings_acknowledged:
            raise InterlockError(
                f"ARM refused: {ctx.warnings} validation warning(s) not acknowledged"
            )
        now = self.clock()
        for channel in ctx.active_channels:
            passed = self._impedance_passed.get(channel)
            if passed is None:
                raise InterlockError(f"ARM refused: no passed impedance check on channel {channel}")
            age = now - passed
            if age > IMPEDANCE_MAX_AGE_S:
                raise InterlockError(
                    f"ARM refused: impedance check on channel {channel} is {age:.0f} s old"
                    f" (limit {IMPEDANCE_MAX_AGE_S:.0f} s)"
                )
        if not ctx.confirmed:
            raise InterlockError("ARM refused: operator confirmation missing")

    def apply(self, command: Command) -> HostState:
        """Take the transition for a command that was sent (and accepted)."""
        self.state = self.check(command)
        if command is C.ACKNOWLEDGE:
            self.fault = None
            self._impedance_passed.clear()
        elif command in (C.CONNECT, C.DISCONNECT):
            self._impedance_passed.clear()
        return self.state

    def accepted(self, command: Command, before: HostState) -> HostState:
        """The device accepted ``command`` sent in state ``before``: take the transition, unless
        the device's own state report already moved the host on (reader thread raced us)."""
        if self.state is before:
            return self.apply(command)
        return self.state

    # --- facts from the device or the link -------------------------------------------------
    def impedance_passed(self, channels: Iterable[int]) -> None:
        now = self.clock()
        for channel in channels:
            self._impedance_passed[channel] = now

    def impedance_failed(self, channels: Iterable[int]) -> None:
        for channel in channels:
            self._impedance_passed.pop(channel, None)

    def latch(self, fault: FaultInfo, estop: bool = False) -> None:
        """Enter FAULT (or ESTOP) from any state; the first cause is kept until acknowledged."""
        if self.fault is None:
            self.fault = fault
        self._impedance_passed.clear()
        if self.state is not S.ESTOP:
            self.state = S.ESTOP if estop else S.FAULT

    def device_state(self, state: State) -> HostState:
        """Mirror a state the device reported; host latches and COMPLETED are not overwritten
        by IDLE. A device in FAULT/ESTOP always latches the host."""
        target = _MIRROR.get(state, S.FAULT)
        if target in _LATCHED:
            if self.state not in _LATCHED:
                self.state = target
            return self.state
        if self.state in _LATCHED or self.state is S.DISCONNECTED:
            return self.state
        if target is S.IDLE and self.state is S.COMPLETED:
            return self.state
        self.state = target
        return self.state

    def complete(self) -> None:
        """The last block played out and the device went back to IDLE."""
        if self.state not in _LATCHED:
            self.state = S.COMPLETED

    def disconnected(self) -> None:
        self.state = S.DISCONNECTED
        self._impedance_passed.clear()

    def connected(self, device: State) -> HostState:
        """After HELLO: the host starts from what the device reports; never ARMED or RUNNING.

        A device found ARMED/RUNNING/PAUSED/STOPPING (host restarted mid-session) is treated as
        a fault the operator must see: the controller e-stops it."""
        if self.state is S.DISCONNECTED:
            self.state = S.IDLE
        if device in (State.FAULT, State.ESTOP):
            self.state = _MIRROR[device]
        return self.state
