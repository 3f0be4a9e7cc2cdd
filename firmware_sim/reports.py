"""What the device reports: TELEMETRY frames, impedance results, status and stats snapshots."""

from __future__ import annotations

from typing import Any

from firmware_sim.clock import RealClock
from firmware_sim.core import DeviceCore
from firmware_sim.interlock import classify_impedance
from stimctl.protocol import (
    IMPEDANCE_OPEN,
    ChannelImpedance,
    ChannelTelemetry,
    ImpedanceResult,
    Telemetry,
)


def telemetry(dev: DeviceCore) -> Telemetry:
    """One TELEMETRY frame (takes the next device sequence number)."""
    chans = tuple(
        ChannelTelemetry(set_ua=ch.target_ua, measured_ua=min(ch.measured_ua, 0xFFFF),
                         impedance_ohm=min(int(ch.impedance_ohm), IMPEDANCE_OPEN),
                         pulses=ch.pulses & 0xFFFFFFFF)
        for ch in dev.output_stage.channels
    )  # fmt: skip
    fifo = dev.fifo
    return Telemetry(
        seq=dev.next_seq(), time_ms=dev.uptime_ms(), state=dev.state, fault=dev.fault,
        fault_channel=dev.interlock.fault_channel, fifo_blocks=min(fifo.blocks, 255),
        fifo_ms=min(fifo.queued_ticks // dev.ticks_per_ms, 0xFFFF),
        block_index=fifo.block_index & 0xFFFFFFFF, next_block=fifo.next_block & 0xFFFFFFFF,
        channels=chans,
    )  # fmt: skip


def measure_impedance(dev: DeviceCore, mask: int) -> ImpedanceResult:
    """Measure the channels in ``mask``, record each result in the interlock, and report them."""
    lim = dev.limits
    records = []
    for i, ch in enumerate(dev.output_stage.channels):
        if not mask >> i & 1:
            records.append(ChannelImpedance(impedance_ohm=0, status=0))
            continue
        status = classify_impedance(
            ch.impedance_ohm, lim.short_ohm, lim.impedance_max_ohm, lim.open_ohm
        )
        ohm = min(int(ch.impedance_ohm), 0xFFFFFFFF)
        dev.interlock.record(i + 1, dev.uptime_ms(), ohm, status)
        records.append(ChannelImpedance(impedance_ohm=ohm, status=status))
    return ImpedanceResult(channel_mask=mask, channels=tuple(records))


def status(dev: DeviceCore) -> dict[str, Any]:
    """A JSON-able snapshot: state, fault, outputs and counters."""
    st = dev.output_stage
    link = dev.link
    return {
        "time_ms": dev.time_ms, "state": dev.state.name, "fault": dev.fault.name,
        "fault_channel": dev.interlock.fault_channel, "session_open": dev.session_open,
        "fifo_blocks": dev.fifo.blocks, "block_index": dev.fifo.block_index,
        "outputs": [ch.delivered_ua for ch in st.channels],
        "measured": [ch.measured_ua for ch in st.channels],
        "impedance": [round(ch.impedance_ohm) for ch in st.channels],
        "pulses": [ch.pulses for ch in st.channels],
        "link": {"drop": link.drop, "flip": link.flip, "delay_ms": link.delay_ms,
                 "dropped": link.dropped, "flipped": link.flipped},
        "counters": dict(dev.counters), "decoder_errors": dev.decoder.stats.errors,
    }  # fmt: skip


def stats(dev: DeviceCore) -> dict[str, Any]:
    """Per-channel pulses, charge_uc, net_charge_uc; tick lateness under a real clock."""
    out: dict[str, Any] = {"channels": dev.output_stage.counters()}
    if isinstance(dev.clock, RealClock):
        out["tick_lateness_us"] = dev.clock.lateness_us()
    return out
