"""What the device's hot-path shortcuts must not change: a caller's reused receive buffer,
a refused or duplicate BLOCK (the FIFO's offer), a closed trace, a BLOCK's answer framed in
place (the frame ``encode`` makes, dropped and counted when the TX buffer is full)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim import Device, DeviceConfig
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import SEQ_MODULO, Ack, Block, Nak, NakReason, Start, encode, renumbered


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


@settings(max_examples=100, deadline=None)
@given(
    tx_seq=st.integers(0, SEQ_MODULO - 1), seq=st.integers(0, SEQ_MODULO - 1),
    index=st.sampled_from([0, 0, 1, 7]), amplitude_ua=st.sampled_from([500, 20_010]),
)  # fmt: skip
def test_a_blocks_answer_is_the_frame_encode_makes(tx_seq, seq, index, amplitude_ua) -> None:
    """The ACK of a BLOCK is packed in the receive loop (no message object, no encode call):
    byte for byte the frame ``encode`` makes of the Ack, with the device's next sequence number;
    a NAK too."""
    device = _armed().device
    device.read_tx()
    device.tx_seq = tx_seq
    device.receive(encode(renumbered(uniform_block(index, 4, amplitude_ua=amplitude_ua), seq)))
    device.service_rx()
    acked = index == 0 and amplitude_ua == 500
    if acked:
        expected = encode(Ack(seq=tx_seq, ack_seq=seq, ack_type=Block.TYPE))
    elif amplitude_ua != 500:
        expected = encode(Nak(seq=tx_seq, ack_seq=seq, ack_type=Block.TYPE,
                              reason=NakReason.OUT_OF_LIMITS, detail=1 << 8 | 1))  # fmt: skip
    else:
        expected = encode(Nak(seq=tx_seq, ack_seq=seq, ack_type=Block.TYPE,
                              reason=NakReason.BLOCK_SEQUENCE, detail=0))  # fmt: skip
    sent = device.read_tx()
    assert sent.startswith(expected)  # a NAK for limits: then the fault's events
    if acked:
        assert sent == expected and device.tx_seq == (tx_seq + 1) % SEQ_MODULO


def test_acks_that_do_not_fit_the_tx_buffer_are_dropped_whole_and_counted() -> None:
    ack = len(encode(Ack(seq=0, ack_seq=0, ack_type=Block.TYPE)))
    host = _armed()
    host.device.read_tx()
    host.device.config.tx_buffer_max = 2 * ack
    for index in range(3):  # nobody reads: the third ACK does not fit
        host.device.receive(encode(uniform_block(index, 4)))
        host.device.service_rx()
    assert host.device.tx_pending == 2 * ack
    assert host.device.counters["tx_dropped"] == ack
    answers = host.decoder.feed(host.device.read_tx())
    assert [type(a) for a in answers] == [Ack, Ack] and host.decoder.stats.errors == 0
