"""The virtual clock's fast path: how many ticks can run in bulk, and running them in one step.

A quiet stretch is one in which nothing but pulses (and slew credit) can happen: no bytes to
process, no telemetry, watchdog, impedance result, scheduled fault, link release or block boundary
due, and no output change: every channel at its target, or rising under the slew ceiling with its
next DAC step still ahead. ``Device.run_ticks`` asks ``quiet_horizon`` and runs that many ticks
with ``run_quiet``; the tick that holds the next event runs as an ordinary ``Device.tick``. So on
the virtual clock the device goes from event to event, and every observable (trace, telemetry,
pulses, charge, fault timing) is that of a tick-by-tick run (``DeviceConfig.tick_by_tick``, the
reference tests/test_sim_event_driven.py compares against).
"""

from __future__ import annotations

from firmware_sim.core import DeviceCore
from firmware_sim.faults import spec_tick
from firmware_sim.output import OutputStage
from stimctl.protocol import State

_FOREVER = 1 << 62


def quiet_horizon(dev: DeviceCore) -> int:
    """How many ticks from now can run in bulk: nothing but pulses can happen in them."""
    state = dev.state
    live = state is State.RUNNING or state is State.STOPPING  # electrodes checked every tick
    if dev.rx_buffer or (live and not dev.output_stage.checked):
        return 0  # bytes to process, or an electrode change (injection) to check at once
    now = dev.tick_count
    event = _FOREVER
    if dev.rx_delayed:
        event = min(event, dev.rx_delayed[0][0])
    if dev.tx_delayed:
        event = min(event, dev.tx_delayed[0][0])
    if dev.session_open:
        event = min(event, dev.next_telemetry)
        if not dev.interlock.latched:
            event = min(event, dev.last_rx_tick + dev.watchdog_ticks)
    if dev.impedance_due is not None:
        event = min(event, dev.impedance_due[0])
    if dev.scheduled_faults and dev.first_start_tick is not None:
        event = min(event, min(spec_tick(dev, s) for s in dev.scheduled_faults))
    stage = dev.output_stage
    if state is State.STOPPING or (stage.drifting and stage.any_output):
        return 0
    if state is State.RUNNING:
        if dev.reramp_rate_na_per_s:
            return 0  # following RESUME's re-ramp line (its target moves every tick)
        if not stage.at_target:
            event = min(event, now + next_slew_step(stage))
        event = min(event, now + dev.fifo.remaining)
    return max(0, event - now - 1)


def next_slew_step(stage: OutputStage) -> int:
    """In how many ticks (>= 1) the slew ceiling changes some output: 1 when one falls (at once),
    else the first tick at which a rising channel's credit makes a whole DAC step."""
    limits = stage.limits
    earned = limits.max_slew_ua_per_ms * stage.tick_us
    need = limits.amplitude_step_ua * 1000
    soonest = _FOREVER
    for ch in stage.channels:
        target = limits.clamp(ch.target_ua)
        if ch.delivered_ua > target or earned <= 0:
            return 1
        if ch.delivered_ua < target:
            soonest = min(soonest, max(1, -(-(need - ch.slew_credit_na) // earned)))
    return soonest


def run_quiet(dev: DeviceCore, ticks: int) -> None:
    """Run ``ticks`` quiet ticks at once: electrode drift, pulses, block time, the tick count."""
    stage = dev.output_stage
    if stage.drifting:
        stage.drift(ticks)
    if dev.state is State.RUNNING:
        if not stage.settled:
            stage.earn_slew_credit(ticks)
        stage.pulse(dev.tick_count, ticks)
        dev.fifo.elapsed += ticks
    dev.tick_count += ticks
