"""Output targets: the playing block x gain per channel, the STOP ramp and RESUME's re-ramp line."""

from __future__ import annotations

from firmware_sim.core import DeviceCore
from firmware_sim.fastpath import RUNNING, STOPPING
from firmware_sim.fifo import same_settings
from firmware_sim.interlock import Event
from stimctl.protocol import BLOCK_FLAG_LAST, Fault, State


def configure(dev: DeviceCore, ramp_now: int | None = None) -> None:
    """Set every channel's target from the playing block x gain (and the STOP ramp)."""
    block = dev.fifo.current
    stage = dev.output_stage
    cap = reramp_cap_ua(dev)
    for i in range(dev.config.channels):
        if block is None or i >= len(block.channels) or not dev.armed_mask >> i & 1:
            stage.configure(i, 0, 0, 0)
            continue
        s = block.channels[i]
        target = min(dev.limits.scaled(s.amplitude_ua, dev.gains[i]), cap)
        if ramp_now is not None:  # STOPPING: down the ramp, and never up again
            left = max(0, dev.stop_end - ramp_now)
            ramp = dev.stop_from[i] * left // dev.stop_ticks if dev.stop_ticks else 0
            target = min(target, ramp, stage.channels[i].delivered_ua)
        stage.configure(i, target, s.frequency_dhz, s.pulse_width_us)


def reramp_cap_ua(dev: DeviceCore) -> int:
    """RESUME's re-ramp line: rate x time since RESUME (unbounded when no re-ramp runs)."""
    if not dev.reramp_rate_na_per_s or dev.state is not State.RUNNING:
        return dev.limits.max_amplitude_ua
    elapsed_us = (dev.tick_count - dev.reramp_from_tick) * dev.tick_us
    return dev.reramp_rate_na_per_s * elapsed_us // 1_000_000_000


def reramp_step(dev: DeviceCore) -> None:
    """Follow the re-ramp line; it ends once it passes every target still to play."""
    cap = reramp_cap_ua(dev)
    fifo = dev.fifo
    blocks = [*fifo.queue, *([fifo.current] if fifo.current else [])]
    highest = max(
        (dev.limits.scaled(b.channels[i].amplitude_ua, dev.gains[i])
         for b in blocks for i in range(min(len(b.channels), dev.config.channels))),
        default=0,
    )  # fmt: skip
    if cap >= highest:
        dev.reramp_rate_na_per_s = 0
    configure(dev)


def next_block(dev: DeviceCore) -> None:
    """The playing block's time is up: the next one plays (its targets set, unless it plays on
    with the same settings), or the stream ends (LAST block: FINISHED; none queued: UNDERRUN; in
    the STOP ramp the ended block keeps playing)."""
    fifo = dev.fifo
    ended = fifo.current
    block = fifo.pop()
    if block is not None:
        same = ended is not None and same_settings(ended, block)  # (pure: no side effect)
        if not same or dev.state is not RUNNING or dev.reramp_rate_na_per_s:
            dev.configure_outputs()
        # else: the same settings, gains and mask as the block that ended: the same targets
    elif ended is not None and ended.flags & BLOCK_FLAG_LAST:
        dev.output_stage.zero_all()
        dev.armed_mask = 0
        dev.apply_state(Event.FINISHED)
    elif dev.state is STOPPING:
        fifo.current, fifo.elapsed = ended, 0  # keep playing it while ramping down
    else:
        dev.latch_fault(Fault.UNDERRUN, 0, ended.index & 0xFFFFFFFF if ended else 0)
