"""Conformance: what the device does for link recovery (docs/PROTOCOL.md, "Link recovery"): a
repeated control command is answered again and not acted on, a repeated block is ACKed and not
queued, a gap is NAKed with the index expected, TELEMETRY acknowledges cumulatively."""

from __future__ import annotations

import dataclasses

from hil.devicelink import DeviceLink
from stimctl.protocol import (
    NO_BLOCK,
    Ack,
    FifoLimit,
    Message,
    Nak,
    NakReason,
    Start,
    State,
    encode,
)


def _again(link: DeviceLink, msg: Message, seq: int) -> Ack | Nak:
    """Write ``msg`` again with the seq it had the first time (a retransmission)."""
    since = link.mark()
    link.write_raw(encode(dataclasses.replace(msg, seq=seq)))
    return link.answer_to(seq, since=since)


def test_a_repeated_start_is_acked_again_and_not_acted_on(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    for i in range(3):
        device_link.command(device_link.block(i, duration_ms=50))
    since = device_link.mark()
    seq = device_link.send(Start())
    assert isinstance(device_link.answer_to(seq, since=since), Ack)
    again = _again(device_link, Start(), seq)
    assert isinstance(again, Ack), again  # a new START in RUNNING would be NAK(BAD_STATE)
    fresh = device_link.request(Start())
    assert isinstance(fresh, Nak) and fresh.reason == NakReason.BAD_STATE


def test_a_repeated_refusal_is_the_same_nak(device_link: DeviceLink) -> None:
    since = device_link.mark()
    seq = device_link.send(Start())  # IDLE: BAD_STATE
    first = device_link.answer_to(seq, since=since)
    again = _again(device_link, Start(), seq)
    assert isinstance(first, Nak) and isinstance(again, Nak)
    assert (again.reason, again.detail) == (first.reason, first.detail)


def test_a_block_sent_twice_is_acked_twice_and_queued_once(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    block = device_link.block(0, duration_ms=50)
    device_link.command(block)
    device_link.command(block)
    telemetry = device_link.telemetry()
    assert (telemetry.fifo_blocks, telemetry.fifo_ms, telemetry.next_block) == (1, 50, 1)


def test_a_gap_is_naked_with_the_index_expected(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    device_link.command(device_link.block(0))
    answer = device_link.request(device_link.block(2))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BLOCK_SEQUENCE
    assert answer.detail == 1


def test_after_a_last_block_nothing_more_is_taken(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    device_link.command(device_link.block(0, flags=1))
    answer = device_link.request(device_link.block(1))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BLOCK_SEQUENCE
    assert answer.detail == NO_BLOCK


def test_fifo_full_says_which_limit(device_link: DeviceLink) -> None:
    info = device_link.info
    assert info is not None
    device_link.enter(State.ARMED)
    index = 0
    while isinstance(answer := device_link.request(device_link.block(index, duration_ms=50)), Ack):
        index += 1
    assert isinstance(answer, Nak) and answer.reason == NakReason.FIFO_FULL
    limit, amount = answer.detail >> 16, answer.detail & 0xFFFF
    if index >= info.fifo_depth:
        assert (limit, amount) == (FifoLimit.DEPTH, index)
    else:
        assert (limit, amount) == (FifoLimit.LOOKAHEAD, 50 * index)
