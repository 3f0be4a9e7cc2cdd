"""Output targets: the playing block x gain per channel, the STOP ramp and RESUME's re-ramp line."""

from __future__ import annotations

from firmware_sim.core import DeviceCore
from stimctl.protocol import State


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
