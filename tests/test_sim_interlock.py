"""Specification of the simulated interlock: admission, impedance gate, latching, watchdog."""

from __future__ import annotations

import pytest

from firmware_sim import Device, DeviceConfig
from firmware_sim.interlock import ADMITTED, ALLOWED, TRANSITIONS, Event, Interlock
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    PROTOCOL_VERSION,
    Ack,
    Arm,
    Block,
    ClearFault,
    Disarm,
    EStop,
    Fault,
    FaultEvent,
    FrameDecoder,
    Goodbye,
    Heartbeat,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    ImpedanceStatus,
    Message,
    Nak,
    NakReason,
    Pause,
    Resume,
    Start,
    State,
    StateEvent,
    Stop,
    encode,
)


def host(**config: object) -> ScriptedHost:
    h = ScriptedHost(Device(DeviceConfig(**config)))  # type: ignore[arg-type]
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    return h


def checked(mask: int = 1, **config: object) -> ScriptedHost:
    h = host(**config)
    assert isinstance(h.command(ImpedanceCheck(channel_mask=mask)), Ack)
    h.wait_for(ImpedanceResult)
    return h


def running(mask: int = 1, blocks: int = 3, last: bool = False, **config: object) -> ScriptedHost:
    h = checked(mask, **config)
    assert isinstance(h.command(Arm(channel_mask=mask, shape=0)), Ack)
    n = h.device.config.channels
    for i in range(blocks):
        flags = BLOCK_FLAG_LAST if last and i == blocks - 1 else 0
        assert isinstance(h.command(uniform_block(i, n, flags=flags, mask=mask)), Ack)
    assert isinstance(h.command(Start()), Ack)
    return h


def nak_reason(answer: Message) -> NakReason:
    assert isinstance(answer, Nak), answer
    return NakReason(answer.reason)


def test_device_boots_into_idle() -> None:
    assert Device().state is State.IDLE


def test_commands_need_an_open_session() -> None:
    h = ScriptedHost(Device())
    assert nak_reason(h.command(ImpedanceCheck(channel_mask=1))) is NakReason.NO_SESSION


def test_hello_is_answered_by_device_info_not_ack() -> None:
    h = ScriptedHost(Device())
    answer = h.command(Hello(protocol_version=PROTOCOL_VERSION))
    assert type(answer).__name__ == "DeviceInfo"


def test_hello_with_another_protocol_version_is_refused() -> None:
    h = ScriptedHost(Device())
    assert nak_reason(h.command(Hello(protocol_version=99))) is NakReason.VERSION


def test_arm_is_refused_without_an_impedance_check() -> None:
    h = host()
    assert nak_reason(h.command(Arm(channel_mask=1, shape=0))) is NakReason.IMPEDANCE_NOT_CHECKED


def test_arm_is_refused_when_the_check_did_not_cover_the_channel() -> None:
    h = checked(mask=0b01)
    answer = h.command(Arm(channel_mask=0b11, shape=0))
    assert nak_reason(answer) is NakReason.IMPEDANCE_NOT_CHECKED


def test_arm_is_refused_after_the_impedance_check_expires() -> None:
    h = checked(impedance_valid_ms=1000, watchdog_ms=5000)
    h.pump(1100)
    assert nak_reason(h.command(Arm(channel_mask=1, shape=0))) is NakReason.IMPEDANCE_NOT_CHECKED


@pytest.mark.parametrize(
    ("ohm", "status"),
    [(150_000.0, ImpedanceStatus.OPEN), (50.0, ImpedanceStatus.SHORT),
     (30_000.0, ImpedanceStatus.HIGH)],
)  # fmt: skip
def test_arm_is_refused_after_a_failed_impedance_check(ohm: float, status: ImpedanceStatus) -> None:
    h = host(impedance_ohm=(ohm,))
    h.command(ImpedanceCheck(channel_mask=1))
    result = h.wait_for(ImpedanceResult)
    assert isinstance(result, ImpedanceResult)
    assert result.channels[0].status == status
    assert nak_reason(h.command(Arm(channel_mask=1, shape=0))) is NakReason.IMPEDANCE_FAILED


def test_impedance_check_takes_50_ms_of_device_time() -> None:
    h = host()
    h.command(ImpedanceCheck(channel_mask=1))
    start = h.device.time_ms
    h.wait_for(ImpedanceResult)
    assert h.device.time_ms - start == 50


@pytest.mark.parametrize(
    "msg",
    [Start(), Pause(), Resume(), Stop(ramp_ms=0), Disarm(), ClearFault(), uniform_block(0, 4)],
    ids=lambda m: type(m).__name__,
)
def test_commands_out_of_order_are_refused_in_idle(msg: Message) -> None:
    h = host()
    assert nak_reason(h.command(msg)) is NakReason.BAD_STATE
    assert h.device.state is State.IDLE


def test_start_with_an_empty_fifo_is_refused() -> None:
    h = checked()
    h.command(Arm(channel_mask=1, shape=0))
    assert nak_reason(h.command(Start())) is NakReason.BAD_STATE


def test_goodbye_is_only_accepted_in_idle() -> None:
    h = checked()
    h.command(Arm(channel_mask=1, shape=0))
    assert nak_reason(h.command(Goodbye())) is NakReason.BAD_STATE


def test_goodbye_closes_the_session_so_the_watchdog_stops() -> None:
    h = host()
    assert isinstance(h.command(Goodbye()), Ack)
    h.pump(1000)
    assert h.device.state is State.IDLE


def test_estop_latches_until_clear_fault() -> None:
    h = running()
    assert isinstance(h.command(EStop()), Ack)
    assert h.device.state is State.ESTOP
    assert nak_reason(h.command(Arm(channel_mask=1, shape=0))) is NakReason.FAULT_LATCHED
    for _ in range(5):
        h.command(Heartbeat())
        h.pump(50)
    assert h.device.state is State.ESTOP
    assert isinstance(h.command(ClearFault()), Ack)
    assert h.device.state is State.IDLE


def test_clear_fault_invalidates_every_impedance_check() -> None:
    h = running()
    h.command(EStop())
    h.command(ClearFault())
    answer = h.command(Arm(channel_mask=1, shape=0))
    assert nak_reason(answer) is NakReason.IMPEDANCE_NOT_CHECKED


def test_hello_does_not_clear_a_latched_fault() -> None:
    h = running()
    h.command(EStop())
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    assert h.device.state is State.ESTOP


def test_watchdog_trips_to_comms_loss_exactly_watchdog_ms_after_the_last_frame() -> None:
    h = checked(watchdog_ms=200)
    assert isinstance(h.command(Arm(channel_mask=1, shape=0)), Ack)
    last = h.device.last_rx_ms
    event = h.wait_for(FaultEvent)
    assert isinstance(event, FaultEvent)
    assert event.fault == Fault.COMMS_LOSS
    assert h.device.state is State.FAULT
    assert last is not None and h.device.time_ms - last == 200


def test_watchdog_trips_while_running_and_output_goes_to_zero() -> None:
    h = running(blocks=12)
    h.wait_for(FaultEvent)
    assert h.device.fault is Fault.COMMS_LOSS
    assert h.device.status()["outputs"] == [0, 0, 0, 0]


def test_heartbeats_keep_the_watchdog_fed() -> None:
    h = host(watchdog_ms=200)
    for _ in range(40):
        h.send(Heartbeat())
        h.pump(50)
    assert h.device.state is State.IDLE


def test_fifo_underrun_latches_underrun() -> None:
    h = running(blocks=2)
    h.send(Heartbeat())
    h.pump(45)
    assert h.device.state is State.FAULT
    assert h.device.fault is Fault.UNDERRUN
    assert h.device.status()["outputs"] == [0, 0, 0, 0]


def test_last_block_ends_the_session_cleanly_in_idle() -> None:
    h = running(blocks=2, last=True)
    h.pump(45)
    assert h.device.state is State.IDLE
    assert h.device.fault is Fault.NONE
    changes = [(m.previous, m.state) for m in h.received if isinstance(m, StateEvent)]
    assert changes[-1] == (State.RUNNING, State.IDLE)


def test_every_state_event_matches_the_transition_table() -> None:
    h = running(blocks=2, last=True)
    h.pump(45)
    for m in h.received:
        if isinstance(m, StateEvent):
            assert any(
                prev == m.previous and new == m.state for (prev, _), new in TRANSITIONS.items()
            )


def test_transition_table_never_leaves_a_latched_state_except_by_clear() -> None:
    for (state, event), new in TRANSITIONS.items():
        if state in (State.FAULT, State.ESTOP) and new not in (State.FAULT, State.ESTOP):
            assert event is Event.CLEAR


@pytest.mark.parametrize("type_code", sorted(ALLOWED))
def test_admitted_states_are_exactly_those_admit_lets_through(type_code: int) -> None:
    """ADMITTED (the BLOCK fast path asks it first) agrees with ``Interlock.admit`` everywhere."""
    interlock = Interlock(channels=4, valid_ms=1000)
    for state in State:
        interlock.state = state
        assert (state in ADMITTED[type_code]) == (interlock.admit(type_code) is None), state


@pytest.mark.parametrize("state", [s for s in State if s not in ADMITTED[Block.TYPE]])
def test_a_block_in_a_state_that_refuses_it_gets_admits_reason_and_the_state(state: State) -> None:
    h = running(blocks=1)
    dev = h.device
    dev.read_tx()
    dev.interlock.state = state
    dev.receive(encode(uniform_block(1, dev.config.channels)))
    dev.service_rx()  # handled now, before a tick can change the state
    (answer,) = FrameDecoder().feed(dev.read_tx())
    assert nak_reason(answer) == Interlock(channels=4, valid_ms=0, state=state).admit(Block.TYPE)
    assert isinstance(answer, Nak) and answer.detail == int(state)
    assert dev.fifo.expected == 1  # not queued
