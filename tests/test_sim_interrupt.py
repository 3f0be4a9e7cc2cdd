"""The device's receive interrupt: bytes handled when they arrive; ESTOP zeroes output there."""

from __future__ import annotations

import time

import serial

import firmware_sim  # noqa: F401  (registers stimsim://)
from firmware_sim import Device, DeviceConfig
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Arm,
    EStop,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    Start,
    State,
    encode,
)


def running(h: ScriptedHost) -> None:
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    h.command(ImpedanceCheck(channel_mask=1))
    h.wait_for(ImpedanceResult)
    assert isinstance(h.command(Arm(channel_mask=1, shape=0)), Ack)
    for i in range(10):
        h.command(uniform_block(i, 4, 500, 20, 200, mask=1))
    assert isinstance(h.command(Start()), Ack)
    h.pump(60)
    assert h.device.output_stage.any_output


def test_estop_zeroes_the_output_in_the_receive_path_before_any_tick() -> None:
    h = ScriptedHost(Device(DeviceConfig()))
    running(h)
    tick = h.device.tick_count
    h.device.receive(encode(EStop(seq=200)))
    assert h.device.output_stage.any_output  # received, not yet handled
    h.device.service_rx()
    assert h.device.tick_count == tick  # no tick ran
    assert not h.device.output_stage.any_output and h.device.state is State.ESTOP


def test_bytes_without_service_rx_wait_for_the_next_tick_as_before() -> None:
    h = ScriptedHost(Device(DeviceConfig()))
    running(h)
    h.device.receive(encode(EStop(seq=200)))
    h.device.tick()
    assert not h.device.output_stage.any_output and h.device.state is State.ESTOP


def test_real_time_stimsim_handles_a_write_before_write_returns() -> None:
    port = serial.serial_for_url("stimsim://?speed=1", timeout=0.5)
    try:
        dev = port.device
        port.write(encode(Hello(seq=1, protocol_version=PROTOCOL_VERSION)))
        with port.lock:
            assert dev.session_open  # HELLO handled in write(), not at a later tick
        port.write(encode(EStop(seq=2)))
        with port.lock:
            assert dev.state is State.ESTOP
    finally:
        port.close()


def test_an_idle_real_time_tick_thread_sleeps_through_quiet_stretches() -> None:
    # No session: nothing is due but the periodic checks (lateness is recorded per tick waited for).
    port = serial.serial_for_url("stimsim://?speed=1", timeout=0.1)
    try:
        time.sleep(0.3)
        lateness = port.device.clock.lateness_ns  # recorded only for ticks that mattered
        assert len(lateness) < 30  # a tick-by-tick loop records one per tick (about 300)
    finally:
        port.close()
