"""Host interlock: the transition table, the ARM guards and latched faults, with a mocked link."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from pathlib import Path

import pytest
from pytest_mock import MockerFixture

from stimctl.controller import Controller
from stimctl.host.errors import InterlockError
from stimctl.host.interlock import IMPEDANCE_MAX_AGE_S, TABLE, Command, Interlock
from stimctl.host.link import Link
from stimctl.host.status import DeviceSummary, FaultInfo, HostState
from stimctl.protocol import Ack, ClearFault, State
from stimctl.rules.envelope import SafetyEnvelope

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
DEMO = PROFILES / "short-demo.toml"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _device() -> DeviceSummary:
    limits = {
        "max_amplitude_ua": 20_000, "amplitude_step_ua": 10, "min_pulse_width_us": 20,
        "max_pulse_width_us": 1000, "min_frequency_dhz": 5, "max_frequency_dhz": 2500,
        "compliance_mv": 60_000, "max_slew_ua_per_ms": 10, "impedance_max_ohm": 20_000,
    }  # fmt: skip
    return DeviceSummary("1.0.0", "TEST", 4, 1000, 50, 200, 32, 250, 300_000, 1, 0, limits, "x")


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def ctl(mocker: MockerFixture, clock: FakeClock) -> Controller:
    """A controller with a mocked link (nothing reaches a port) and a loaded demo profile."""
    c = Controller(clock=clock)
    link = mocker.Mock(spec=Link)
    link.is_open = True
    link.request.side_effect = lambda msg, timeout=1.0: Ack(ack_seq=1, ack_type=msg.TYPE)
    link.waiting.side_effect = contextlib.nullcontext
    c._link = link
    c._device = _device()
    c.interlock.state = HostState.IDLE
    c.load(DEMO)
    return c


def _wrote(ctl: Controller) -> bool:
    link = ctl._link
    return bool(link.send.called or link.request.called or link.write_urgent.called)


ACTIONS: dict[str, tuple[Callable[[Controller], object], Callable[[HostState], Command]]] = {
    "load": (lambda c: c.load(DEMO), lambda s: Command.LOAD),
    "check_impedance": (lambda c: c.check_impedance(), lambda s: Command.IMPEDANCE),
    "arm": (lambda c: c.arm(confirm=True, acknowledge_warnings=True), lambda s: Command.ARM),
    "start": (lambda c: c.start(), lambda s: Command.START),
    "pause": (lambda c: c.pause(), lambda s: Command.PAUSE),
    "resume": (lambda c: c.resume(), lambda s: Command.RESUME),
    "adjust": (lambda c: c.adjust(1, 0.1), lambda s: Command.ADJUST),
    "stop": (lambda c: c.stop(),
             lambda s: Command.DISARM if s is HostState.ARMED else Command.STOP),
    "acknowledge_fault": (lambda c: c.acknowledge_fault(), lambda s: Command.ACKNOWLEDGE),
}  # fmt: skip
ILLEGAL = [
    (state, name)
    for state in HostState
    for name, (_, command) in ACTIONS.items()
    if (state, command(state)) not in TABLE
]


def test_table_only_names_known_states_and_commands() -> None:
    assert all(isinstance(s, HostState) and isinstance(c, Command) for s, c in TABLE)
    assert all(isinstance(t, HostState) for t in TABLE.values())


@pytest.mark.parametrize(("state", "action"), ILLEGAL, ids=[f"{s.value}-{a}" for s, a in ILLEGAL])
def test_illegal_command_is_refused_before_anything_is_written(
    ctl: Controller, state: HostState, action: str
) -> None:
    ctl.interlock.state = state
    ctl._link.reset_mock()
    with pytest.raises(InterlockError):
        ACTIONS[action][0](ctl)
    assert not _wrote(ctl)
    assert ctl.state is state


def test_arm_is_refused_without_an_impedance_check(ctl: Controller) -> None:
    with pytest.raises(InterlockError, match="no passed impedance check on channel 1"):
        ctl.arm(confirm=True)
    assert not _wrote(ctl)


def test_arm_is_refused_when_the_impedance_check_has_expired(
    ctl: Controller, clock: FakeClock
) -> None:
    ctl.interlock.impedance_passed([1, 2])
    clock.now += IMPEDANCE_MAX_AGE_S + 1
    with pytest.raises(InterlockError, match="impedance check on channel 1 is 61 s old"):
        ctl.arm(confirm=True)
    assert not _wrote(ctl)


def test_arm_is_refused_when_one_active_channel_failed_its_check(ctl: Controller) -> None:
    ctl.interlock.impedance_passed([1])
    with pytest.raises(InterlockError, match="channel 2"):
        ctl.arm(confirm=True)
    assert not _wrote(ctl)


def test_arm_is_refused_without_operator_confirmation(ctl: Controller) -> None:
    ctl.interlock.impedance_passed([1, 2])
    with pytest.raises(InterlockError, match="confirmation"):
        ctl.arm(confirm=False)
    assert not _wrote(ctl)


def test_arm_is_refused_with_unacknowledged_warnings(ctl: Controller) -> None:
    ctl.load(DEMO, patient=["epilepsy"])  # patient-epilepsy is a warning
    ctl.interlock.impedance_passed([1, 2])
    with pytest.raises(InterlockError, match="warning"):
        ctl.arm(confirm=True)
    assert not _wrote(ctl)


def test_arm_is_refused_when_the_profile_is_invalid_against_the_effective_envelope(
    ctl: Controller,
) -> None:
    ctl._envelope = SafetyEnvelope(max_amplitude_ma=0.2)  # e.g. a device reporting lower limits
    ctl.interlock.impedance_passed([1, 2])
    with pytest.raises(InterlockError, match="amplitude"):
        ctl.arm(confirm=True, acknowledge_warnings=True)
    assert not _wrote(ctl)


def test_arm_is_refused_without_a_profile(mocker: MockerFixture) -> None:
    c = Controller()
    c._link = mocker.Mock(spec=Link, is_open=True)
    c.interlock.state = HostState.IDLE
    with pytest.raises(InterlockError, match="no profile"):
        c.arm(confirm=True)
    assert not _wrote(c)


def test_arm_with_every_guard_met_sends_arm(ctl: Controller) -> None:
    ctl.interlock.impedance_passed([1, 2])
    ctl.arm(confirm=True)
    assert ctl.state is HostState.ARMED
    (msg,), _ = ctl._link.request.call_args
    assert (msg.channel_mask, msg.shape) == (0b11, 0)


@pytest.mark.parametrize("name", [n for n in ACTIONS if n != "acknowledge_fault"])
def test_latched_fault_blocks_every_command_until_acknowledged(ctl: Controller, name: str) -> None:
    ctl.interlock.impedance_passed([1, 2])
    ctl.interlock.latch(FaultInfo("ELECTRODE_OPEN", channel=1))
    with pytest.raises(InterlockError, match="ELECTRODE_OPEN"):
        ACTIONS[name][0](ctl)
    assert not _wrote(ctl)


def test_acknowledge_clears_the_latch_and_invalidates_impedance(ctl: Controller) -> None:
    ctl.interlock.impedance_passed([1, 2])
    ctl.interlock.latch(FaultInfo("OVERCURRENT", channel=2))
    ctl.session.device_reported(State.FAULT, device_ms=0)  # as the device reports it
    ctl.acknowledge_fault()
    (msg,), _ = ctl._link.request.call_args
    assert isinstance(msg, ClearFault)
    assert (ctl.state, ctl.fault) == (HostState.IDLE, None)
    with pytest.raises(InterlockError, match="impedance"):
        ctl.arm(confirm=True)


def test_latch_keeps_the_first_cause() -> None:
    il = Interlock()
    il.state = HostState.RUNNING
    il.latch(FaultInfo("UNDERRUN"))
    il.latch(FaultInfo("COMMS_LOSS"))
    assert (il.state, il.fault.code if il.fault else None) == (HostState.FAULT, "UNDERRUN")


def test_device_reporting_idle_does_not_unlatch_a_host_fault() -> None:
    il = Interlock()
    il.state = HostState.RUNNING
    il.latch(FaultInfo("LINK_LOST", source="host"))
    assert il.device_state(State.IDLE) is HostState.FAULT


def test_device_fault_latches_the_host_from_running() -> None:
    il = Interlock()
    il.state = HostState.RUNNING
    assert il.device_state(State.FAULT) is HostState.FAULT


def test_estop_is_legal_in_every_connected_state() -> None:
    assert all((s, Command.ESTOP) in TABLE for s in HostState if s is not HostState.DISCONNECTED)
