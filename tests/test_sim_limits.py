"""Specification of the device's own limits: out-of-limit fields are NAKed and latch a fault."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim import Device, DeviceConfig, HardwareLimits
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Adjust,
    Arm,
    Block,
    ChannelSetting,
    Fault,
    FaultEvent,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    LimitField,
    Nak,
    NakReason,
    Shape,
    Start,
    State,
)

CHANNELS = 4


def armed(shape: int = Shape.BIPHASIC_SYMMETRIC, mask: int = 0b1111) -> ScriptedHost:
    h = ScriptedHost(Device(DeviceConfig()))
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    h.command(ImpedanceCheck(channel_mask=mask))
    h.wait_for(ImpedanceResult)
    assert isinstance(h.command(Arm(channel_mask=mask, shape=shape)), Ack)
    return h


def block_with(channel: int, setting: ChannelSetting, duration_ms: int = 20) -> Block:
    base = uniform_block(0, CHANNELS)
    chans = tuple(setting if i == channel - 1 else s for i, s in enumerate(base.channels))
    return replace(base, duration_ms=duration_ms, channels=chans)


def assert_violation(h: ScriptedHost, answer: object, field: LimitField, channel: int) -> None:
    assert isinstance(answer, Nak), answer
    assert answer.reason == NakReason.OUT_OF_LIMITS
    assert answer.detail == (channel << 8 | field)
    events = [m for m in h.received if isinstance(m, FaultEvent)]
    assert [e.fault for e in events] == [Fault.LIMIT_VIOLATION]
    assert events[0].detail == answer.detail
    assert h.device.state is State.FAULT
    assert h.device.fault is Fault.LIMIT_VIOLATION


OUT_OF_LIMITS = [
    ("amplitude above 20 mA", 2, ChannelSetting(20_010, 20, 200), LimitField.AMPLITUDE),
    ("amplitude off the 10 uA step", 1, ChannelSetting(505, 20, 200), LimitField.AMPLITUDE_STEP),
    ("frequency below 0.5 Hz", 3, ChannelSetting(500, 4, 200), LimitField.FREQUENCY),
    ("frequency above 250 Hz", 1, ChannelSetting(500, 2510, 200), LimitField.FREQUENCY),
    ("zero frequency with amplitude", 1, ChannelSetting(500, 0, 200), LimitField.FREQUENCY),
    ("pulse width below 20 us", 4, ChannelSetting(500, 20, 10), LimitField.PULSE_WIDTH),
    ("pulse width above 1000 us", 1, ChannelSetting(500, 20, 1010), LimitField.PULSE_WIDTH),
]


@pytest.mark.parametrize(
    ("channel", "setting", "field"),
    [case[1:] for case in OUT_OF_LIMITS],
    ids=[case[0] for case in OUT_OF_LIMITS],
)
def test_out_of_limit_channel_field_is_naked_and_latches(
    channel: int, setting: ChannelSetting, field: LimitField
) -> None:
    h = armed()
    answer = h.command(block_with(channel, setting))
    assert_violation(h, answer, field, channel)


@pytest.mark.parametrize("duration_ms", [0, 251])
def test_block_duration_outside_limits_is_naked_and_latches(duration_ms: int) -> None:
    h = armed()
    answer = h.command(replace(uniform_block(0, CHANNELS), duration_ms=duration_ms))
    assert_violation(h, answer, LimitField.DURATION, 0)


def test_pulse_that_does_not_fit_its_period_is_naked_and_latches() -> None:
    h = armed(shape=Shape.BIPHASIC_ASYMMETRIC)  # 1000 us + 4000 us > 4 ms period at 250 Hz
    answer = h.command(block_with(1, ChannelSetting(500, 2500, 1000)))
    assert_violation(h, answer, LimitField.DUTY, 1)


def test_amplitude_on_a_channel_not_armed_is_naked_and_latches() -> None:
    h = armed(mask=0b0001)
    answer = h.command(uniform_block(0, CHANNELS, mask=0b0011))
    assert_violation(h, answer, LimitField.UNARMED, 2)


def test_adjust_gain_above_2000_permille_is_naked_and_latches() -> None:
    h = armed()
    answer = h.command(Adjust(channel=1, gain_permille=2001))
    assert_violation(h, answer, LimitField.GAIN, 1)


def test_adjust_that_would_push_a_queued_block_above_20_ma_is_naked_and_latches() -> None:
    h = armed()
    h.command(uniform_block(0, CHANNELS, amplitude_ua=15_000))
    answer = h.command(Adjust(channel=3, gain_permille=1500))
    assert_violation(h, answer, LimitField.SCALED_AMPLITUDE, 3)


def test_block_beyond_the_device_channels_is_bad_channel_not_a_fault() -> None:
    h = armed()
    answer = h.command(uniform_block(0, CHANNELS + 1, mask=1))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_CHANNEL
    assert h.device.state is State.ARMED


def test_values_at_the_limits_are_accepted() -> None:
    h = armed()
    at_limits = ChannelSetting(20_000, 2500, 1000)  # symmetric: 2 ms of phases in a 4 ms period
    assert isinstance(h.command(block_with(1, at_limits, duration_ms=250)), Ack)


def test_output_reaches_but_never_exceeds_the_maximum_at_full_gain() -> None:
    h = armed(mask=1)
    h.command(uniform_block(0, CHANNELS, amplitude_ua=10_000, duration_ms=250, mask=1))
    h.command(Adjust(channel=1, gain_permille=2000))
    h.command(Start())
    peak = 0
    for _ in range(240):
        h.device.tick()
        peak = max(peak, h.device.output_stage.channels[0].delivered_ua)
    assert peak <= 20_000


@settings(max_examples=300, deadline=None)
@given(
    amp=st.integers(0, 0xFFFF), freq=st.integers(0, 0xFFFF), pw=st.integers(0, 0xFFFF),
    gain=st.integers(0, 3000), shape=st.sampled_from(list(Shape)), armed_=st.booleans(),
)  # fmt: skip
def test_anything_the_limit_check_accepts_is_within_the_hardware_limits(
    amp: int, freq: int, pw: int, gain: int, shape: Shape, armed_: bool
) -> None:
    lim = HardwareLimits()
    if lim.check_setting(1, ChannelSetting(amp, freq, pw), shape, armed_, gain) is None:
        assert lim.scaled(amp, gain) <= lim.max_amplitude_ua
        assert amp == 0 or armed_
        assert amp == 0 or lim.min_frequency_dhz <= freq <= lim.max_frequency_dhz
        assert amp == 0 or lim.min_pulse_width_us <= pw <= lim.max_pulse_width_us
        assert lim.clamp(lim.scaled(amp, gain)) == lim.scaled(amp, gain)


_ROWS = [
    (ChannelSetting(15_000, 20, 200), ChannelSetting(0, 0, 0)),  # refused above gain 1333
    (ChannelSetting(500, 20, 200), ChannelSetting(500, 20, 200)),  # refused unless 2 is armed
    (ChannelSetting(500, 2500, 1000), ChannelSetting(0, 0, 0)),  # refused when asymmetric
    (ChannelSetting(20_010, 20, 200), ChannelSetting(0, 0, 0)),  # always refused
]
_BLOCKS = [(row, shared, ms) for row in _ROWS for shared in (True, False) for ms in (20, 0, 250)]
_CHANGES = [
    None,
    *(("adjust", channel, gain) for channel in (0, 1) for gain in (500, 1000, 1500)),
    *(("arm", mask, shape) for mask in (0b0001, 0b1111) for shape in Shape),
]


def test_a_block_is_judged_as_check_block_judges_it_whatever_changed_since_the_last() -> None:
    """The device keeps the inputs of the last BLOCK that passed the limits and skips the check
    for the same inputs again: every pair of blocks, with every change in between (ADJUST in
    place, ARM's mask, shape and new gains, a copy of the settings), is answered as a fresh
    check answers."""
    from firmware_sim import commands

    dev = armed().device

    def judged(row: tuple[ChannelSetting, ...], shared: bool, duration_ms: int) -> None:
        settings_ = row if shared else tuple(replace(s) for s in row)  # the same or a copy
        block = Block(index=0, duration_ms=duration_ms, channels=settings_)
        err = dev.limits.check_block(
            duration_ms, settings_, dev.output_stage.shape, dev.armed_mask, list(dev.gains),
            dev.config.max_lookahead_ms,
        )  # fmt: skip
        dev.fifo.reset()
        answer = commands.block(dev, block)
        assert answer == (None if err is None else (NakReason.OUT_OF_LIMITS, err.detail))
        dev.pending_violation = None

    for first in _BLOCKS:
        for change in _CHANGES:
            for second in _BLOCKS:
                dev.armed_mask, dev.gains = 0b1111, [1000] * CHANNELS  # as ARM leaves them
                dev.output_stage.reset_session(Shape.BIPHASIC_SYMMETRIC)
                dev.block_passed = ()  # as boot leaves it: the first block is checked
                judged(*first)
                if change is not None and change[0] == "adjust":
                    dev.gains[change[1]] = change[2]  # as ADJUST does: the list changed in place
                elif change is not None:
                    dev.armed_mask, dev.gains = change[1], [1000] * CHANNELS
                    dev.output_stage.reset_session(change[2])
                judged(*second)
