"""What the device's hot-path shortcuts must not change: a caller's reused receive buffer,
a refused or duplicate BLOCK (the FIFO's offer), a closed trace."""

from __future__ import annotations

from pathlib import Path

from firmware_sim import Device, DeviceConfig
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import Ack, Nak, NakReason, Start, encode, renumbered


def _armed(config: DeviceConfig | None = None) -> ScriptedHost:
    host = ScriptedHost(Device(config or DeviceConfig()))
    host.open_session(0b1111)
    return host


def test_a_receive_buffer_the_caller_reuses_is_copied_at_once() -> None:
    for delay_ms in (0, 3):
        host = _armed(DeviceConfig(delay_ms=delay_ms))
        buffer = bytearray(encode(renumbered(uniform_block(0, 4), 77)))
        host.device.receive(buffer)
        buffer[:] = bytes(len(buffer))  # the caller reuses its buffer before the device ticks
        answers = host.pump(2 * delay_ms + 2)
        acks = [m for m in answers if isinstance(m, Ack)]
        assert [(a.ack_seq, a.ack_type) for a in acks] == [(77, 0x20)], (delay_ms, answers)


def test_the_fifo_queues_a_block_it_accepts_and_refuses_one_out_of_sequence() -> None:
    host = _armed()
    assert isinstance(host.command(uniform_block(0, 4)), Ack)
    assert isinstance(host.command(uniform_block(0, 4)), Ack)  # a duplicate: ACKed again
    refused = host.command(uniform_block(5, 4))
    assert isinstance(refused, Nak) and refused.reason == NakReason.BLOCK_SEQUENCE
    assert refused.detail == 1  # the index it expects next
    assert host.device.fifo.blocks == 1  # queued once
    assert isinstance(host.command(Start()), Ack)


def test_a_closed_trace_is_no_longer_written(tmp_path: Path) -> None:
    trace = tmp_path / "trace.jsonl"
    host = _armed(DeviceConfig(trace=str(trace)))
    assert host.device.trace.enabled
    lines = len(trace.read_text().splitlines())
    host.device.close()
    assert not host.device.trace.enabled
    host.command(uniform_block(0, 4))
    assert len(trace.read_text().splitlines()) == lines
