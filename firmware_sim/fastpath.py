"""The virtual clock's fast path: how many ticks can run in bulk, and running them in one step.

A quiet stretch is one in which nothing but pulses (and slew credit) can happen: no bytes to
process, no telemetry, watchdog, impedance result, scheduled fault, link release or change of
settings due (a boundary to a block of the same settings changes nothing: the stretch plays
across it), and no output change: every channel at its target, or rising under the slew ceiling
with its next DAC step still ahead. ``Device.run_ticks`` asks ``quiet_horizon`` and runs that
many ticks with ``run_quiet``; the tick that holds the next event runs as an ordinary
``Device.tick``. So on the virtual clock the device goes from event to event, and every
observable (trace, telemetry, pulses, charge, fault timing) is that of a tick-by-tick run
(``DeviceConfig.tick_by_tick``, the reference tests/test_sim_event_driven.py compares against).
Pulses and charge are counted in closed form per run of unchanged settings (output.py).
"""

from __future__ import annotations

from collections.abc import Callable

from firmware_sim.core import DeviceCore
from firmware_sim.faults import spec_tick
from firmware_sim.output import OutputStage
from firmware_sim.reports import telemetry_frame
from stimctl.protocol import State

_FOREVER = 1 << 62
# The hot path's states as module constants: an enum member read through its class goes through
# the enum metaclass's attribute hook (about 1,000 instructions on CPython 3.11).
RUNNING, STOPPING = State.RUNNING, State.STOPPING


def quiet_horizon(dev: DeviceCore, telemetry: bool = True, enough: int = _FOREVER) -> int:
    """How many ticks from now can run in bulk: nothing but pulses can happen in them (with
    ``telemetry`` False, nothing but pulses and TELEMETRY frames: see ``run_quiet``); looked for
    no further than ``enough`` ticks. Asked per streamed block: written with plain comparisons,
    no min() or property calls."""
    if dev.rx_buffer:
        return 0  # bytes to process
    state = dev.interlock.state
    stage = dev.output_stage
    running = state is RUNNING
    if running or state is STOPPING:
        if not stage.checked or state is STOPPING:
            return 0  # an electrode change (injection) to check at once; or the STOP ramp
        if dev.reramp_rate_na_per_s:
            return 0  # following RESUME's re-ramp line (its target moves every tick)
    if stage.drifting and stage.any_output:
        return 0
    now = dev.tick_count
    event = now + enough + 1 if enough < _FOREVER else _FOREVER
    if dev.rx_delayed:
        event = dev.rx_delayed[0][0]
    if dev.tx_delayed and dev.tx_delayed[0][0] < event:
        event = dev.tx_delayed[0][0]
    if dev.session_open:
        if (telemetry or stage.drifting) and dev.next_telemetry < event:
            event = dev.next_telemetry  # (drift runs tick by tick up to each report, as ticks do)
        silence_ends = dev.last_rx_tick + dev.watchdog_ticks
        if silence_ends < event and not dev.interlock.latched:
            event = silence_ends
    if dev.impedance_due is not None and dev.impedance_due[0] < event:
        event = dev.impedance_due[0]
    if dev.scheduled_faults and dev.first_start_tick is not None:
        event = min(event, min(spec_tick(dev, s) for s in dev.scheduled_faults))
    if running:
        if not stage.settled:
            event = min(event, now + next_slew_step(stage))
        # boundaries to blocks of the same settings change nothing: a quiet stretch crosses them
        fifo = dev.fifo
        current = fifo.current
        if current is None:
            return 0  # the next tick ends the stream (underrun, last block) or waits for one
        ends = now + current.duration_ms * fifo.ticks_per_ms - fifo.elapsed  # fifo.remaining
        if ends < event:
            # A streamed block ends in almost every horizon asked: when the next block plays on
            # with the very same settings object (decoded settings are shared) past the event,
            # that is unchanged_ticks' answer after its first step, without the call.
            queue = fifo.queue
            if not (
                queue
                and queue[0].channels is current.channels
                and ends + queue[0].duration_ms * fifo.ticks_per_ms >= event
            ):
                unchanged = fifo.unchanged_ticks(event - now)
                if now + unchanged < event:
                    event = now + unchanged
    return event - now - 1 if event > now else 0


def next_slew_step(stage: OutputStage) -> int:
    """In how many ticks (>= 1) the slew ceiling changes some output: 1 when one falls (at once),
    else the first tick at which a rising channel's credit makes a whole DAC step."""
    limits = stage.limits
    earned = limits.max_slew_ua_per_ms * stage.tick_us
    need = limits.amplitude_step_ua * 1000
    soonest = _FOREVER
    for ch in stage.outputs:
        target = limits.clamp(ch.target_ua)
        if ch.delivered_ua > target or earned <= 0:
            return 1
        if ch.delivered_ua < target:
            soonest = min(soonest, max(1, -(-(need - ch.slew_credit_na) // earned)))
    return soonest


def run_quiet(dev: DeviceCore, ticks: int, put: Callable[[bytes], None] | None = None) -> None:
    """Run ``ticks`` quiet ticks at once. With ``put`` (the horizon was asked without telemetry),
    the TELEMETRY frames due in them are put on the link at their ticks: such a tick is a quiet
    tick and then its report, as in ``Device.tick`` (nothing else is due in it)."""
    now = dev.tick_count  # kept in step with dev.tick_count (only this loop moves it here)
    end = now + ticks
    due = end + 1  # no report due in the run (none put, or no session)
    if put is not None and dev.session_open:
        due = dev.next_telemetry
        if due <= now:
            due = now + 1
    stage = dev.output_stage
    while True:  # the stretches up to each report due, and the last one (one loop: no calls)
        stop = due if due < end else end
        ticks = stop - now  # >= 1
        if stage.drifting:  # electrode drift, pulses, block time and tick count of the stretch
            stage.drift(ticks)
        if dev.interlock.state is RUNNING:
            if not stage.settled:
                stage.earn_slew_credit(ticks)
            run = stage._run  # stage.pulse(now, ticks), its common case: the run goes on
            if run and stage._run0 + run == now:
                stage._run = run + ticks
            else:
                stage.pulse(now, ticks)
            dev.fifo.play(ticks)
        dev.tick_count = now = stop
        if now != due:
            return
        dev.next_telemetry = due = due + dev.telemetry_ticks  # > the tick now: the next due
        put(telemetry_frame(dev))  # type: ignore[misc]  # (due <= end only with put)
        if now == end:
            return
