"""Channel records: a record list seen before is served decoded (or packed), never stale."""

from __future__ import annotations

import dataclasses

import pytest

from stimctl.protocol import (
    Block,
    ChannelSetting,
    ChannelTelemetry,
    FrameDecoder,
    State,
    Telemetry,
    encode,
)
from stimctl.protocol.payload import ITEMS_SEEN_MAX


def block(index: int, amplitude_ua: int) -> Block:
    setting = ChannelSetting(amplitude_ua, 20, 300)
    return Block(seq=index, index=index, duration_ms=20, flags=0, channels=(setting, setting))


def test_blocks_with_the_same_settings_decode_equal_and_a_changed_setting_is_seen() -> None:
    sent = [block(0, 500), block(1, 500), block(2, 510), block(3, 500)]
    decoded = FrameDecoder().feed(b"".join(encode(b) for b in sent))
    assert decoded == sent


def test_more_distinct_record_lists_than_the_cache_keeps_all_decode_right() -> None:
    sent = [block(i, 10 * (i % (ITEMS_SEEN_MAX + 7))) for i in range(3 * ITEMS_SEEN_MAX)]
    decoded = FrameDecoder().feed(b"".join(encode(b) for b in sent))
    assert decoded == sent


def test_telemetry_counters_decode_fresh_in_every_frame() -> None:
    def telemetry(pulses: int) -> Telemetry:
        ch = ChannelTelemetry(set_ua=500, measured_ua=500, impedance_ohm=1500, pulses=pulses)
        return Telemetry(seq=pulses, time_ms=pulses, state=State.RUNNING, fault=0,
                         fault_channel=0, fifo_blocks=3, fifo_ms=60, block_index=pulses,
                         next_block=pulses + 1, channels=(ch,))  # fmt: skip

    sent = [telemetry(p) for p in (1, 2, 2, 3, 1)]
    assert FrameDecoder().feed(b"".join(encode(t) for t in sent)) == sent


def test_a_record_tuple_sent_again_in_other_blocks_encodes_as_before() -> None:
    shared = (ChannelSetting(500, 20, 300), ChannelSetting(0, 0, 300))
    sent = [Block(seq=i, index=i, duration_ms=20, flags=0, channels=shared) for i in range(5)]
    assert FrameDecoder().feed(b"".join(encode(b) for b in sent)) == sent


def test_more_record_tuples_than_the_packing_cache_keeps_all_encode_right() -> None:
    tuples = [(ChannelSetting(10 * i, 20, 300),) for i in range(ITEMS_SEEN_MAX + 7)]
    sent = [
        Block(seq=n, index=n, duration_ms=20, flags=0, channels=tuples[(7 * n) % len(tuples)])
        for n in range(3 * ITEMS_SEEN_MAX)
    ]
    assert FrameDecoder().feed(b"".join(encode(b) for b in sent)) == sent


def test_records_given_as_a_list_encode_like_the_tuple() -> None:
    records = [ChannelSetting(500, 20, 300), ChannelSetting(510, 20, 300)]
    as_list = Block(seq=1, index=0, duration_ms=20, flags=0, channels=records)  # type: ignore[arg-type]
    as_tuple = Block(seq=1, index=0, duration_ms=20, flags=0, channels=tuple(records))
    assert encode(as_list) == encode(as_tuple)
    records[1] = ChannelSetting(520, 20, 300)  # a list can change: never served from a cache
    changed = Block(seq=1, index=0, duration_ms=20, flags=0, channels=tuple(records))
    assert encode(as_list) == encode(changed)


def test_telemetry_records_repeated_across_channels_and_frames_decode_right() -> None:
    def telemetry(pulses: tuple[int, ...]) -> Telemetry:
        chans = tuple(ChannelTelemetry(500, 498, 1500, p) for p in pulses)
        return Telemetry(seq=1, time_ms=0, state=State.RUNNING, fault=0, fault_channel=0,
                         fifo_blocks=3, fifo_ms=60, block_index=0, next_block=1,
                         channels=chans)  # fmt: skip

    pulse_lists = [(1, 1, 1), (1, 2, 1), (2, 2, 2), (2, 2, 3), (1, 1, 1)]
    pulse_lists += [(n, n + 1, n) for n in range(ITEMS_SEEN_MAX + 3)]
    sent = [telemetry(p) for p in pulse_lists]
    assert FrameDecoder().feed(b"".join(encode(t) for t in sent)) == sent


def test_decoded_records_and_messages_are_whole_frozen_dataclasses() -> None:
    sent = block(3, 500)
    (decoded,) = FrameDecoder().feed(encode(sent))
    assert decoded == sent and hash(decoded) == hash(sent) and repr(decoded) == repr(sent)
    assert hash(decoded.channels[0]) == hash(sent.channels[0])
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.channels[0].amplitude_ua = 1  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        decoded.index = 1  # type: ignore[misc]
