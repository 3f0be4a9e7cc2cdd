"""What the device reports: TELEMETRY frames, impedance results, status and stats snapshots."""

from __future__ import annotations

import struct
from typing import Any

from firmware_sim.clock import RealClock
from firmware_sim.core import DeviceCore
from firmware_sim.interlock import classify_impedance
from firmware_sim.output import FIGURES
from stimctl.protocol import (
    PROTOCOL_VERSION,
    SEQ_MODULO,
    ChannelImpedance,
    ImpedanceResult,
    Telemetry,
)
from stimctl.protocol.constants import HEADER_FORMAT
from stimctl.protocol.framing import encode_body
from stimctl.protocol.payload import record_structs

_TELEMETRY, _TELEMETRY_CHANNEL = record_structs(Telemetry)
assert _TELEMETRY_CHANNEL is not None
_TELEMETRY_WITH: dict[int, struct.Struct] = {}  # channel count -> the whole body's struct
# A class attribute read goes through the type's attribute lookup on CPython 3.11: once per frame
_TELEMETRY_TYPE = Telemetry.TYPE


def _telemetry_struct(channels: int) -> struct.Struct:
    """The frame's body: header, the fixed fields, the record count, the records (one struct,
    one pack), each record as the channel's packed figures and its pulses (the same bytes as
    the record's fields: little-endian, no padding)."""
    whole = _TELEMETRY_WITH.get(channels)
    if whole is None:
        assert _TELEMETRY_CHANNEL is not None
        pulses = _TELEMETRY_CHANNEL.format[-1]  # the record's last field (output.FIGURES)
        record = f"{FIGURES.size}s{pulses}"
        assert struct.calcsize("<" + record) == _TELEMETRY_CHANNEL.size
        fixed = _TELEMETRY.format.lstrip("<")
        whole = struct.Struct(HEADER_FORMAT + fixed + "B" + record * channels)
        _TELEMETRY_WITH[channels] = whole
    return whole


def telemetry_frame(dev: DeviceCore) -> bytes:
    """One TELEMETRY frame, packed from the device's state without building message objects
    (50 of them a second); takes the next device sequence number. The FIFO's and channels'
    figures, the uptime (``uptime_ms``) and the sequence number (``next_seq``) are read from
    their fields here (the hot path of a streamed session)."""
    fifo = dev.fifo
    interlock = dev.interlock
    current = fifo.current
    if current is None:
        blocks, queued = len(fifo.queue), fifo.queued_ms
        index = fifo.last_index if fifo.last_index is not None else 0
    else:
        blocks, index = len(fifo.queue) + 1, current.index
        queued = fifo.queued_ms + current.duration_ms - -(-fifo.elapsed // dev.ticks_per_ms)
    channels = dev.limits.channels  # dev.config.channels, without the property
    next_block = fifo.expected  # fifo.next_block, inlined
    if next_block is None:
        next_block = (fifo.last_index if fifo.last_index is not None else -1) + 1
    seq = dev.tx_seq
    dev.tx_seq = (seq + 1) % SEQ_MODULO
    values: list[int | bytes] = [
        PROTOCOL_VERSION, _TELEMETRY_TYPE, seq,
        (dev.tick_count - dev.boot_tick) * dev.tick_us // 1000 & 0xFFFFFFFF,
        interlock.state, interlock.fault, interlock.fault_channel,
        blocks if blocks < 255 else 255, queued if queued < 0xFFFF else 0xFFFF,
        index & 0xFFFFFFFF, next_block & 0xFFFFFFFF, channels,
    ]  # fmt: skip
    dev.output_stage.telemetry_records(values)
    return encode_body((_TELEMETRY_WITH.get(channels) or _telemetry_struct(channels)).pack(*values))


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
