"""Decoding channel records: a record list seen before is served decoded, never stale."""

from __future__ import annotations

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
