"""Conformance: out-of-limit commands are NAKed OUT_OF_LIMITS and latch FAULT(LIMIT_VIOLATION)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from hil.devicelink import DeviceLink, setting
from stimctl.protocol import (
    Adjust,
    Arm,
    Block,
    DeviceInfo,
    Fault,
    FaultEvent,
    ImpedanceCheck,
    Message,
    Nak,
    NakReason,
    State,
)

BlockBuilder = Callable[[DeviceLink, DeviceInfo], Message]


def _one(
    link: DeviceLink,
    info: DeviceInfo,
    amplitude: int,
    freq: int = 20,
    pw: int = 200,
    duration: int = 20,
    channel: int = 0,
) -> Block:
    chans = tuple(
        setting(amplitude, freq, pw) if c == channel else setting(0, 0, 0)
        for c in range(info.channels)
    )
    return Block(index=0, duration_ms=duration, flags=0, channels=chans)


OUT_OF_LIMITS: dict[str, BlockBuilder] = {
    "amplitude_above_max": lambda lk, i: _one(lk, i, i.max_amplitude_ua + i.amplitude_step_ua),
    "amplitude_off_step": lambda lk, i: (
        _one(lk, i, 500 + i.amplitude_step_ua // 2)
        if i.amplitude_step_ua > 1
        else _one(lk, i, i.max_amplitude_ua + 1)
    ),
    "frequency_below_min": lambda lk, i: _one(lk, i, 500, freq=i.min_frequency_dhz - 1),
    "frequency_above_max": lambda lk, i: _one(lk, i, 500, freq=i.max_frequency_dhz + 1),
    "pulse_width_below_min": lambda lk, i: _one(lk, i, 500, pw=i.min_pulse_width_us - 1),
    "pulse_width_above_max": lambda lk, i: _one(lk, i, 500, pw=i.max_pulse_width_us + 1),
    "amplitude_on_unarmed_channel": lambda lk, i: _one(lk, i, 500, channel=1),
    "duration_zero": lambda lk, i: _one(lk, i, 500, duration=0),
    "adjust_gain_above_max": lambda lk, i: Adjust(channel=1, gain_permille=65535),
}


@pytest.mark.parametrize("case", list(OUT_OF_LIMITS))
def test_out_of_limit_command_is_refused(
    device_link: DeviceLink, device_info: DeviceInfo, case: str
) -> None:
    if case == "amplitude_on_unarmed_channel" and device_info.channels < 2:
        pytest.skip("needs a device with two channels")
    device_link.enter(State.ARMED)
    answer = device_link.request(OUT_OF_LIMITS[case](device_link, device_info))
    assert isinstance(answer, Nak) and answer.reason == NakReason.OUT_OF_LIMITS


@pytest.mark.parametrize("case", list(OUT_OF_LIMITS))
def test_out_of_limit_command_latches_limit_violation(
    device_link: DeviceLink, device_info: DeviceInfo, case: str
) -> None:
    if case == "amplitude_on_unarmed_channel" and device_info.channels < 2:
        pytest.skip("needs a device with two channels")
    device_link.enter(State.ARMED)
    device_link.request(OUT_OF_LIMITS[case](device_link, device_info))
    telemetry = device_link.wait_state(State.FAULT)
    assert telemetry.fault == Fault.LIMIT_VIOLATION


def test_limit_violation_is_announced_with_a_fault_event(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    since = device_link.mark()
    device_link.request(device_link.block(0, 1 << 15))
    event = device_link.expect(FaultEvent, since=since)
    assert event.fault == Fault.LIMIT_VIOLATION and event.state_before == State.ARMED


def test_out_of_limit_block_while_running_zeroes_the_output(device_link: DeviceLink) -> None:
    streamer = device_link.enter(State.RUNNING)
    assert streamer is not None
    streamer.stop()
    device_link.request(device_link.block(streamer.index, 1 << 15))
    telemetry = device_link.wait_state(State.FAULT)
    assert all(c.measured_ua == 0 for c in telemetry.channels)


def test_limit_violation_stays_latched_until_cleared(device_link: DeviceLink) -> None:
    device_link.enter(State.FAULT)
    answer = device_link.request(ImpedanceCheck(channel_mask=1))
    assert isinstance(answer, Nak) and answer.reason == NakReason.FAULT_LATCHED


def test_arm_mask_beyond_the_channels_is_refused(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    if device_info.channels >= 8:
        pytest.skip("an 8-channel device has no channel beyond the mask")
    device_link.check_impedance(1)
    answer = device_link.request(Arm(channel_mask=1 << device_info.channels, shape=0))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_CHANNEL


def test_impedance_check_mask_beyond_the_channels_is_refused(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    if device_info.channels >= 8:
        pytest.skip("an 8-channel device has no channel beyond the mask")
    answer = device_link.request(ImpedanceCheck(channel_mask=1 << device_info.channels))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_CHANNEL


def test_adjust_of_a_channel_beyond_the_device_is_refused(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    device_link.enter(State.ARMED)
    answer = device_link.request(Adjust(channel=device_info.channels + 1, gain_permille=1000))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_CHANNEL


def test_block_out_of_sequence_is_refused_without_a_fault(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    answer = device_link.request(device_link.block(5))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BLOCK_SEQUENCE
    assert device_link.telemetry().state == State.ARMED


def test_block_beyond_the_lookahead_is_refused_without_a_fault(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    device_link.enter(State.ARMED)
    per_block = 20
    index, answer = 0, device_link.request(device_link.block(0, duration_ms=per_block))
    while answer.TYPE != Nak.TYPE and index < device_info.fifo_depth + 20:
        index += 1
        answer = device_link.request(device_link.block(index, duration_ms=per_block))
    assert isinstance(answer, Nak) and answer.reason == NakReason.FIFO_FULL
    assert index * per_block <= device_info.max_lookahead_ms
    assert device_link.telemetry().state == State.ARMED
