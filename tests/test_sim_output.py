"""Specification of the output stage: pulse timing, slew, zeroing, charge, rendering, sessions."""

from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

from firmware_sim import Device, DeviceConfig
from firmware_sim.scripted import ScriptedHost, dense_disperse, uniform_block
from stimctl.protocol import (
    PROTOCOL_VERSION,
    Ack,
    Arm,
    EStop,
    Fault,
    Heartbeat,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    Pause,
    Resume,
    Shape,
    Start,
    State,
    Stop,
)

N = 4


def started(
    freq_dhz: int = 20,
    amp: int = 500,
    pw: int = 200,
    shape: int = 0,
    blocks: int = 12,
    **cfg: object,
) -> ScriptedHost:
    """Armed on channel 1 with ``blocks`` x 20 ms queued, START processed at the last tick."""
    h = ScriptedHost(Device(DeviceConfig(**cfg)))  # type: ignore[arg-type]
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    h.command(ImpedanceCheck(channel_mask=1))
    h.wait_for(ImpedanceResult)
    assert isinstance(h.command(Arm(channel_mask=1, shape=shape)), Ack)
    for i in range(blocks):
        h.command(uniform_block(i, N, amp, freq_dhz, pw, mask=1))
    assert isinstance(h.command(Start()), Ack)
    return h


def ch1(h: ScriptedHost) -> int:
    return h.device.output_stage.channels[0].delivered_ua


def run_fed(h: ScriptedHost, ms: int, next_index: int, **block: int) -> int:
    """Run ms of device time, queueing a 20 ms block every 20 ms (keeps FIFO and watchdog fed)."""
    for _ in range(ms // 20):
        h.send(uniform_block(next_index, N, mask=1, **block))
        next_index += 1
        h.pump(20)
    return next_index


def test_first_2_hz_pulse_comes_500_ms_after_start() -> None:
    h = started(freq_dhz=20, blocks=6)
    nxt = run_fed(h, 480, 6)
    h.pump(19)
    assert h.device.output_stage.channels[0].pulses == 0
    h.send(uniform_block(nxt, N, mask=1))
    h.pump(1)  # tick 500 after START
    assert h.device.output_stage.channels[0].pulses == 1


def test_100_hz_pulses_every_10_ms_from_start() -> None:
    h = started(freq_dhz=1000, blocks=12)
    h.pump(9)
    assert h.device.output_stage.channels[0].pulses == 0
    h.pump(1)
    assert h.device.output_stage.channels[0].pulses == 1
    h.pump(190)
    assert h.device.output_stage.channels[0].pulses == 20


def test_start_ramps_up_from_zero_at_the_slew_ceiling_in_whole_dac_steps() -> None:
    h = started(amp=500, blocks=6)
    assert ch1(h) == 0
    seen = []
    for t in range(300):
        if t % 20 == 0:
            h.send(uniform_block(6 + t // 20, N, 500, mask=1))
        h.device.tick()
        seen.append(ch1(h))
    # 2 uA/ms earned per tick, delivered in 10 uA DAC steps: 10 uA every 5 ms, 500 uA at 250 ms
    assert seen[:5] == [0, 0, 0, 0, 10]
    assert all(v % 10 == 0 for v in seen)
    assert seen[248] == 490 and seen[249] == 500 and seen[-1] == 500
    rises = [b - a for a, b in zip([0, *seen], seen, strict=False)]
    assert max(rises) == 10


def test_a_jump_in_the_blocks_never_rises_faster_than_the_slew_ceiling() -> None:
    """A host that streams 0 -> 10 mA in one block still gets 2 mA/s (10 uA per 5 ms)."""
    h = started(amp=10_000, blocks=12)
    seen = []
    for _ in range(200):
        h.device.tick()
        seen.append(ch1(h))
    ceiling = h.device.limits.max_slew_ua_per_ms
    for w in (1, 5, 100, 199):
        worst = max(b - a for a, b in zip(seen, seen[w:], strict=False))
        assert worst <= ceiling * w + h.device.limits.amplitude_step_ua


def test_estop_zeroes_every_output_within_the_tick_it_is_processed() -> None:
    h = started(amp=500, blocks=6)
    run_fed(h, 300, 6, amplitude_ua=500)
    assert ch1(h) == 500
    h.send(EStop())
    h.device.tick()
    assert h.device.state is State.ESTOP
    assert [c.delivered_ua for c in h.device.output_stage.channels] == [0] * N


def test_injected_fault_zeroes_every_output_within_one_tick() -> None:
    h = started(amp=500)
    h.pump(100)
    h.device.inject("electrode_open", 1)
    h.device.tick()
    assert h.device.fault is Fault.ELECTRODE_OPEN
    assert ch1(h) == 0


def test_pause_zeroes_at_once_and_resume_ramps_again_from_zero() -> None:
    h = started(amp=500)
    h.pump(100)
    h.send(Pause())
    h.device.tick()
    assert ch1(h) == 0 and h.device.state is State.PAUSED
    h.send(Resume())
    h.device.tick()
    h.pump(4)
    assert ch1(h) == 0
    h.pump(1)
    assert ch1(h) == 10  # the slew ceiling alone: 2 uA/ms in 10 uA steps


def test_stop_ramps_linearly_to_zero_then_idle() -> None:
    h = started(amp=500, blocks=6)
    run_fed(h, 300, 6, amplitude_ua=500)
    h.send(Stop(ramp_ms=50))
    h.device.tick()
    assert h.device.state is State.STOPPING
    levels = []
    for _ in range(50):
        h.device.tick()
        levels.append(ch1(h))
    assert levels[0] == 490 and levels[24] == 250
    assert all(b <= a for a, b in itertools.pairwise(levels))
    assert h.device.state is State.IDLE and ch1(h) == 0


@pytest.mark.parametrize("shape", list(Shape))
def test_charge_per_pulse_and_zero_net_charge(shape: Shape) -> None:
    h = started(freq_dhz=1000, amp=500, pw=200, shape=shape)
    h.pump(100)  # 2 uA/ms: 2t uA at t ms (10 uA steps); pulses at 10, 20, ... 100 ms
    stats = h.device.output_stage.stats(1)
    assert stats.pulses == 10
    expected = sum(2 * t * 200 for t in range(10, 101, 10)) / 1e6
    assert stats.charge_uc == pytest.approx(expected)
    assert stats.net_charge_uc == 0


@pytest.mark.parametrize("shape", list(Shape))
def test_render_shows_both_phases_of_each_pulse(shape: Shape) -> None:
    h = started(freq_dhz=1000, amp=500, pw=200, shape=shape, blocks=6)
    run_fed(h, 300, 6, amplitude_ua=500, frequency_dhz=1000, pulse_width_us=200)
    t_start = h.device.time_ms - 300  # START tick
    wave = h.device.output_stage.render(1, t_start + 290, t_start + 291, rate_hz=100_000)
    assert wave.shape == (100,)
    assert np.all(wave[:20] == 500)  # phase 1: 200 us at +I
    if shape == Shape.BIPHASIC_SYMMETRIC:
        assert np.all(wave[20:40] == -500) and np.all(wave[40:] == 0)
    else:
        assert np.all(wave[20:100] == -125)
    assert wave.sum() == pytest.approx(0)


def test_heartbeat_alone_does_not_prevent_underrun() -> None:
    h = started(blocks=1)
    h.send(Heartbeat())
    h.pump(25)
    assert h.device.fault is Fault.UNDERRUN


def test_thirty_minute_dense_disperse_session_on_the_virtual_clock() -> None:
    dev = Device(DeviceConfig())
    host = ScriptedHost(dev)
    host.open_session(0b1111)
    t0 = time.perf_counter()
    sent = host.stream(dense_disperse(30, N))
    elapsed = time.perf_counter() - t0
    print(f"\n30-min dense-disperse session: {elapsed:.2f} s wall, x{1800 / elapsed:.0f}")
    assert sent == 90_000
    assert dev.state is State.IDLE and dev.fault is Fault.NONE
    for ch in range(1, N + 1):
        stats = dev.output_stage.stats(ch)
        assert stats.pulses == 300 * (3 * 2 + 3 * 100) == 91_800
        assert stats.net_charge_uc == 0


def test_telemetry_pulse_count_wraps_at_u32_with_the_uncounted_run_included() -> None:
    # output.telemetry_records applies the u32 mask only once a count passes it: the figure
    # reported must still be the count modulo 2**32, counted and pending pulses together.
    h = started(freq_dhz=1000, blocks=12)
    stage = h.device.output_stage
    stage.channels[0].pulses = 0xFFFFFFFF - 2  # counters up to date: no pending run now
    reported = []
    for _ in range(6):  # 100 Hz: a pulse every 10 ticks, pending in the stage's run
        h.pump(10)
        values: list[int | bytes] = []
        stage.telemetry_records(values)
        reported.append(values[1])  # channel 1's (packed figures, pulses)
    assert reported == [0xFFFFFFFF - 1, 0xFFFFFFFF, 0, 1, 2, 3]
    assert stage.channels[0].pulses == 0xFFFFFFFF - 2 + 6  # counted: the figure is not wrapped
