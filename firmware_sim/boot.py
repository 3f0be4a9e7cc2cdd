"""A boot of the device: every piece of its session state to the power-up value, at power-up and
after a brown-out (``Device.brown_out``). The link, the output stage's channels (electrodes,
injections), the counters and the trace survive it."""

from __future__ import annotations

from firmware_sim.core import DeviceCore
from firmware_sim.fifo import BlockFifo
from firmware_sim.interlock import Interlock
from stimctl.protocol import GAIN_UNITY, FrameDecoder, Shape


def boot(dev: DeviceCore) -> None:
    """Boot ``dev``: decoder, interlock (BOOT), FIFO, gains, sequence numbers, timers, outputs."""
    cfg = dev.config
    dev.boot_tick = dev.tick_count
    dev.decoder = FrameDecoder()
    dev.interlock = Interlock(cfg.channels, cfg.impedance_valid_ms)
    lookahead = cfg.max_lookahead_ms * dev.ticks_per_ms
    dev.fifo = BlockFifo(cfg.fifo_depth, lookahead, dev.ticks_per_ms)
    dev.armed_mask = 0
    dev.gains = [GAIN_UNITY] * cfg.channels
    dev.tx_seq = 0
    # the last control command answered: (seq, type, answer, tick), for duplicate detection
    dev.last_command = None
    dev.last_rx_tick = dev.tick_count
    dev.next_telemetry = dev.tick_count + dev.telemetry_ticks
    dev.impedance_due = None
    dev.stop_end = 0
    dev.stop_ticks = 0
    dev.stop_from = []
    dev.reramp_rate_na_per_s = 0  # RESUME's re-ramp line; 0: none (the slew ceiling alone)
    dev.reramp_from_tick = 0
    dev.block_passed = ()
    dev.output_stage.zero_all()
    dev.output_stage.reset_session(Shape.BIPHASIC_SYMMETRIC)
