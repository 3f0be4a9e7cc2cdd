"""The device side of link recovery (docs/PROTOCOL.md, "Link recovery"): duplicates are answered
again and never acted on twice, NAK details name what the host must know, the cumulative
acknowledgement in TELEMETRY, and a silent host in IDLE ends the session without a latch."""

from __future__ import annotations

from dataclasses import replace

from firmware_sim import Device, DeviceConfig
from firmware_sim.scripted import ScriptedHost, uniform_block
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    NO_BLOCK,
    PROTOCOL_VERSION,
    Ack,
    Arm,
    FaultEvent,
    FifoLimit,
    Hello,
    ImpedanceCheck,
    ImpedanceResult,
    Message,
    Nak,
    NakReason,
    Start,
    State,
    Telemetry,
    encode,
)


def session(mask: int = 1, **config: object) -> ScriptedHost:
    h = ScriptedHost(Device(DeviceConfig(**config)))  # type: ignore[arg-type]
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    assert isinstance(h.command(ImpedanceCheck(channel_mask=mask)), Ack)
    h.wait_for(ImpedanceResult)
    return h


def armed(mask: int = 1, **config: object) -> ScriptedHost:
    h = session(mask, **config)
    assert isinstance(h.command(Arm(channel_mask=mask, shape=0)), Ack)
    return h


def resend(h: ScriptedHost, msg: Message, seq: int) -> Ack | Nak:
    """Send ``msg`` again with the sequence number it had (a retransmission)."""
    h.send_raw(encode(replace(msg, seq=seq)))
    for _ in range(10):
        for m in h.pump(1):
            if isinstance(m, Ack | Nak) and m.ack_seq == seq:
                return m
    raise TimeoutError("no answer to the retransmission")


def test_a_repeated_control_command_is_answered_again_and_not_acted_on() -> None:
    h = armed()
    block = uniform_block(0, 4, mask=1)
    assert isinstance(h.command(block), Ack)
    seq = h.send(Start())
    h.pump(5)
    assert h.device.state is State.RUNNING
    pulses_before = h.device.counters["duplicates"]
    answer = resend(h, Start(), seq)  # the ACK was lost: the host repeats START, same seq
    assert isinstance(answer, Ack) and answer.ack_seq == seq
    assert h.device.state is State.RUNNING  # not a second START (which would be BAD_STATE)
    assert h.device.counters["duplicates"] == pulses_before + 1


def test_a_repeated_refused_command_gets_the_same_nak() -> None:
    h = session()
    seq = h.send(Start())  # IDLE: BAD_STATE
    first = next(m for m in h.pump(3) if isinstance(m, Nak))
    again = resend(h, Start(), seq)
    assert isinstance(again, Nak) and (again.reason, again.detail) == (first.reason, first.detail)


def test_the_same_seq_with_another_type_is_a_new_command() -> None:
    h = armed()
    seq = h.send(uniform_block(0, 4, mask=1))
    h.pump(3)
    answer = resend(h, Start(), seq)
    assert isinstance(answer, Ack) and h.device.state is State.RUNNING


def test_hello_forgets_the_last_command() -> None:
    h = session()
    seq = h.send(Arm(channel_mask=1, shape=0))
    h.pump(3)
    h.command(Hello(protocol_version=PROTOCOL_VERSION))
    answer = resend(h, Arm(channel_mask=1, shape=0), seq)  # a new host: acted on (ARMED: refused)
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_STATE


def test_a_block_received_twice_is_acked_and_queued_once() -> None:
    h = armed()
    block = uniform_block(0, 4, mask=1)
    assert isinstance(h.command(block), Ack)
    assert isinstance(h.command(block), Ack)  # a new seq: the block index says duplicate
    assert h.device.fifo.blocks == 1
    assert isinstance(h.command(uniform_block(1, 4, mask=1)), Ack)
    assert h.device.counters["duplicates"] == 1


def test_a_block_after_a_gap_is_refused_with_the_index_expected_next() -> None:
    h = armed()
    for i in range(3):
        assert isinstance(h.command(uniform_block(i, 4, mask=1)), Ack)
    nak = h.command(uniform_block(4, 4, mask=1))  # block 3 was lost on the way
    assert isinstance(nak, Nak) and nak.reason == NakReason.BLOCK_SEQUENCE
    assert nak.detail == 3


def test_block_sequence_detail_holds_indices_beyond_16_bits() -> None:
    h = armed()
    h.device.fifo.expected = 70_000  # 23 minutes of 20 ms blocks
    nak = h.command(uniform_block(70_002, 4, mask=1))
    assert isinstance(nak, Nak) and nak.detail == 70_000


def test_after_the_last_block_only_duplicates_are_acked() -> None:
    h = armed()
    assert isinstance(h.command(uniform_block(0, 4, mask=1, flags=BLOCK_FLAG_LAST)), Ack)
    assert isinstance(h.command(uniform_block(0, 4, mask=1, flags=BLOCK_FLAG_LAST)), Ack)
    nak = h.command(uniform_block(1, 4, mask=1))
    assert isinstance(nak, Nak) and nak.reason == NakReason.BLOCK_SEQUENCE
    assert nak.detail == NO_BLOCK


def test_telemetry_acknowledges_every_block_accepted() -> None:
    h = armed()
    for i in range(4):
        h.send(uniform_block(i, 4, mask=1))
    tel = h.wait_for(Telemetry)
    assert isinstance(tel, Telemetry) and tel.next_block == 4


def test_fifo_full_detail_names_the_depth_limit() -> None:
    h = armed(fifo_depth=4, max_lookahead_ms=1000)
    for i in range(4):
        assert isinstance(h.command(uniform_block(i, 4, mask=1, duration_ms=10)), Ack)
    nak = h.command(uniform_block(4, 4, mask=1, duration_ms=10))
    assert isinstance(nak, Nak) and nak.reason == NakReason.FIFO_FULL
    assert (nak.detail >> 16, nak.detail & 0xFFFF) == (FifoLimit.DEPTH, 4)


def test_fifo_full_detail_names_the_lookahead_limit() -> None:
    h = armed()
    for i in range(2):
        assert isinstance(h.command(uniform_block(i, 4, mask=1, duration_ms=100)), Ack)
    nak = h.command(uniform_block(2, 4, mask=1, duration_ms=100))
    assert isinstance(nak, Nak) and nak.reason == NakReason.FIFO_FULL
    assert (nak.detail >> 16, nak.detail & 0xFFFF) == (FifoLimit.LOOKAHEAD, 200)


def test_impedance_not_checked_names_the_missing_channels() -> None:
    h = session(mask=0b0001)
    nak = h.command(Arm(channel_mask=0b0111, shape=0))
    assert isinstance(nak, Nak) and nak.reason == NakReason.IMPEDANCE_NOT_CHECKED
    assert nak.detail == 0b0110


def test_silence_in_idle_ends_the_session_without_a_fault() -> None:
    h = session(watchdog_ms=200)
    h.pump(400)
    assert h.device.state is State.IDLE and not h.device.session_open
    assert not any(isinstance(m, FaultEvent) for m in h.received)
    h.received.clear()
    h.pump(100)
    assert not any(isinstance(m, Telemetry) for m in h.received)  # the session is over
    nak = h.command(Arm(channel_mask=1, shape=0))
    assert isinstance(nak, Nak) and nak.reason == NakReason.NO_SESSION
    h.command(Hello(protocol_version=PROTOCOL_VERSION))  # the host comes back
    assert isinstance(h.command(Arm(channel_mask=1, shape=0)), Ack)  # checks are kept


def test_silence_while_armed_latches_comms_loss() -> None:
    h = armed(watchdog_ms=200)
    event = h.wait_for(FaultEvent, max_ticks=400)
    assert isinstance(event, FaultEvent) and event.state_before == State.ARMED
    assert h.device.state is State.FAULT


def test_a_command_with_a_remembered_seq_is_new_after_the_repeat_window() -> None:
    """Seq wrap-around cannot fake a repeat: after REPEAT_WINDOW_MS the same seq and type is a
    new command (here: a second START, refused for its state)."""
    h = armed()
    for i in range(3):
        assert isinstance(h.command(uniform_block(i, 4, mask=1, duration_ms=80)), Ack)
    seq = h.send(Start())
    h.pump(2)
    h.device.last_command = (*h.device.last_command[:3], h.device.tick_count - 5001)  # type: ignore[index]
    answer = resend(h, Start(), seq)
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_STATE
