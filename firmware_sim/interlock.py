"""Device-side interlock: explicit state transition table, command admission, impedance validity."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum, auto

from stimctl.protocol import (
    Adjust,
    Arm,
    Block,
    ClearFault,
    Disarm,
    EStop,
    Fault,
    Goodbye,
    Heartbeat,
    Hello,
    ImpedanceCheck,
    ImpedanceStatus,
    NakReason,
    Pause,
    Resume,
    Start,
    State,
    Stop,
)


class Event(Enum):
    """What makes the device change state."""

    BOOTED = auto()
    ARM = auto()
    DISARM = auto()
    START = auto()
    PAUSE = auto()
    RESUME = auto()
    STOP = auto()
    STOPPED = auto()  # the STOP ramp has finished
    FINISHED = auto()  # the LAST block has ended
    FAULT = auto()
    ESTOP = auto()
    CLEAR = auto()
    RESET = auto()  # the device rebooted mid-session


_ALL = tuple(State)
_LATCHED = (State.FAULT, State.ESTOP)

TRANSITIONS: dict[tuple[State, Event], State] = {
    (State.BOOT, Event.BOOTED): State.IDLE,
    (State.IDLE, Event.ARM): State.ARMED,
    (State.ARMED, Event.DISARM): State.IDLE,
    (State.ARMED, Event.START): State.RUNNING,
    (State.RUNNING, Event.PAUSE): State.PAUSED,
    (State.PAUSED, Event.RESUME): State.RUNNING,
    (State.RUNNING, Event.STOP): State.STOPPING,
    (State.PAUSED, Event.STOP): State.STOPPING,
    (State.STOPPING, Event.STOPPED): State.IDLE,
    (State.RUNNING, Event.FINISHED): State.IDLE,
    (State.STOPPING, Event.FINISHED): State.IDLE,
    (State.FAULT, Event.CLEAR): State.IDLE,
    (State.ESTOP, Event.CLEAR): State.IDLE,
    **{(s, Event.FAULT): State.FAULT for s in _ALL if s not in _LATCHED},
    **{(s, Event.ESTOP): State.ESTOP for s in _ALL},
    **{(s, Event.RESET): State.FAULT for s in _ALL},
}
"""The only state changes the device makes. Anything not listed is refused (NAK BAD_STATE)."""

ALLOWED: dict[int, frozenset[State]] = {
    Hello.TYPE: frozenset(_ALL),
    Heartbeat.TYPE: frozenset(_ALL),
    EStop.TYPE: frozenset(_ALL),
    ClearFault.TYPE: frozenset(_LATCHED),
    Goodbye.TYPE: frozenset({State.IDLE}),
    ImpedanceCheck.TYPE: frozenset({State.IDLE, State.ARMED}),
    Arm.TYPE: frozenset({State.IDLE}),
    Disarm.TYPE: frozenset({State.ARMED}),
    Block.TYPE: frozenset({State.ARMED, State.RUNNING, State.PAUSED}),
    Start.TYPE: frozenset({State.ARMED}),
    Pause.TYPE: frozenset({State.RUNNING}),
    Resume.TYPE: frozenset({State.PAUSED}),
    Stop.TYPE: frozenset({State.RUNNING, State.PAUSED}),
    # not PAUSED: gain raised unfelt while the output is zero would arrive at once on RESUME
    Adjust.TYPE: frozenset({State.ARMED, State.RUNNING}),
}
"""Command type -> states in which it is accepted."""

_NOWHERE: frozenset[State] = frozenset()  # a command type no state accepts
ACCEPTED_WHEN_LATCHED = frozenset({Hello.TYPE, Heartbeat.TYPE, EStop.TYPE, ClearFault.TYPE})
OUTPUT_STATES = frozenset({State.RUNNING, State.STOPPING})
ADMITTED: dict[int, frozenset[State]] = {
    type_code: states if type_code in ACCEPTED_WHEN_LATCHED else states - frozenset(_LATCHED)
    for type_code, states in ALLOWED.items()
}
"""Command type -> states in which ``Interlock.admit`` lets it through (ALLOWED, less the latched
states unless it is accepted when latched): built from the two tables, so a caller may test
``state in ADMITTED[type]`` first and ask ``admit`` for the reason only when it is refused."""
LIVE_STATES = frozenset({State.ARMED, State.RUNNING, State.PAUSED, State.STOPPING})
"""Output can be live (or start without another ARM): here silence latches COMMS_LOSS."""


@dataclass(slots=True)
class ImpedanceRecord:
    """The last impedance measurement of one channel."""

    time_ms: int
    ohm: int
    status: ImpedanceStatus


@dataclass(slots=True)
class Interlock:
    """The device state, its latched fault and the impedance checks that gate ARM and START."""

    channels: int
    valid_ms: int
    state: State = State.BOOT
    fault: Fault = Fault.NONE
    fault_channel: int = 0
    checks: dict[int, ImpedanceRecord] = field(default_factory=dict)  # channel (1-based) -> rec

    @property
    def latched(self) -> bool:
        return self.state in _LATCHED

    def can(self, event: Event) -> bool:
        return (self.state, event) in TRANSITIONS

    def fire(self, event: Event) -> tuple[State, State] | None:
        """Apply a transition; (previous, new) or None when the table does not allow it."""
        new = TRANSITIONS.get((self.state, event))
        if new is None:
            return None
        previous, self.state = self.state, new
        if event is Event.CLEAR:
            self.fault, self.fault_channel = Fault.NONE, 0
            self.invalidate()
        return previous, new

    def admit(self, type_code: int) -> NakReason | None:
        """Whether a command of this type is accepted in the current state."""
        if self.state in _LATCHED and type_code not in ACCEPTED_WHEN_LATCHED:  # self.latched
            return NakReason.FAULT_LATCHED
        if self.state not in ALLOWED.get(type_code, _NOWHERE):
            return NakReason.BAD_STATE
        return None

    def latch(self, fault: Fault, channel: int) -> tuple[State, State] | None:
        """Latch a fault (or ESTOP). The first fault stays latched; later ones are ignored."""
        if self.latched and fault is not Fault.ESTOP:
            return None
        change = self.fire(Event.ESTOP if fault is Fault.ESTOP else Event.FAULT)
        if change is not None:
            self.fault, self.fault_channel = fault, channel
        return change

    def record(self, channel: int, now_ms: int, ohm: int, status: ImpedanceStatus) -> None:
        self.checks[channel] = ImpedanceRecord(now_ms, ohm, status)

    def invalidate(self) -> None:
        self.checks.clear()

    def impedance_verdict(self, mask: int, now_ms: int) -> tuple[NakReason, int] | None:
        """ARM/START gate: every channel in mask passed a check within valid_ms. Refused: the
        reason and the mask of the channels that caused it (IMPEDANCE_FAILED, the channels whose
        valid check was not OK, before IMPEDANCE_NOT_CHECKED, the channels without one)."""
        failed = missing = 0
        for ch in range(1, self.channels + 1):
            bit = 1 << (ch - 1)
            if not mask & bit:
                continue
            rec = self.checks.get(ch)
            if rec is None or now_ms - rec.time_ms > self.valid_ms:
                missing |= bit
            elif rec.status is not ImpedanceStatus.OK:
                failed |= bit
        if failed:
            return NakReason.IMPEDANCE_FAILED, failed
        if missing:
            return NakReason.IMPEDANCE_NOT_CHECKED, missing
        return None


def classify_impedance(
    ohm: float, short_ohm: int, pass_max_ohm: int, open_ohm: int
) -> ImpedanceStatus:
    """Verdict of one impedance measurement."""
    if ohm >= open_ohm:
        return ImpedanceStatus.OPEN
    if ohm < short_ohm:
        return ImpedanceStatus.SHORT
    if ohm > pass_max_ohm:
        return ImpedanceStatus.HIGH
    return ImpedanceStatus.OK
