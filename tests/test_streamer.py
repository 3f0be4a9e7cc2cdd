"""The streamer on its own (no link, no device): the BLOCK frames it builds from the schedule, and
its count of what is in flight, under any order of answers (issue 15: a block's round trip is
cheap, and still the same frames and the same pacing)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stimctl.host.schedule import Schedule, compile_schedule
from stimctl.host.streamer import Streamer
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    Ack,
    Block,
    ChannelSetting,
    ChannelTelemetry,
    FrameDecoder,
    Message,
    Nak,
    NakReason,
    State,
    Telemetry,
    encode,
    renumbered,
)
from stimctl.protocol.framing import encode_payload
from stimctl.rules.profile import load_profile

PROFILES = Path(__file__).resolve().parent.parent / "profiles"
LIBRARY = sorted(PROFILES.glob("*.toml"))


def _schedule(path: Path) -> Schedule:
    return compile_schedule(load_profile(path))


def _reference_block(s: Schedule, index: int, device_channels: int) -> Block:
    """The BLOCK for row ``index`` read straight from the schedule's arrays."""
    freq, pw = int(s.frequency_dhz[index]), int(s.pulse_width_us[index])
    channels = []
    for ch in range(1, device_channels + 1):
        if ch in s.channel_ids:
            amp = int(s.amplitude_ua[index][s.channel_ids.index(ch)])
            channels.append(ChannelSetting(amp, freq, pw))
        else:
            channels.append(ChannelSetting(0, 0, pw))
    last = index == s.n_blocks - 1
    return Block(index=index, duration_ms=int(s.duration_ms[index]),
                 flags=BLOCK_FLAG_LAST if last else 0, channels=tuple(channels))  # fmt: skip


class _FakeLink:
    """Numbers what the streamer writes (packed, as ``Link.send_packed``), decodes each frame
    with the codec and keeps it with its answer callback."""

    def __init__(self) -> None:
        self.seq = 0
        self.sent: list[tuple[Block, object]] = []

    def send_packed(self, type_code: int, payload: bytes, on_answer: object, tag: int) -> int:
        self.seq += 1
        frame = encode_payload(type_code, self.seq, payload)
        (sent,) = FrameDecoder().feed(frame)
        assert isinstance(sent, Block) and sent.index == tag
        assert frame == encode(sent)  # the bytes encode() makes of the same message
        self.sent.append((sent, on_answer))
        return self.seq


def _streamer(s: Schedule, link: _FakeLink, channels: int = 4) -> Streamer:
    return Streamer(s, channels, link.send_packed, lambda index, channels: None, target_ms=200,
                    max_lookahead_ms=250, fifo_depth=16)  # fmt: skip


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_every_block_of_the_library_is_the_schedule_row_in_any_order(path: Path) -> None:
    s = _schedule(path)
    streamer = _streamer(s, _FakeLink(), channels=4)
    n = s.n_blocks
    # forwards, then backwards across chunk boundaries (rewinds), then strided
    order = [*range(0, min(n, 700)), *range(n - 1, max(-1, n - 700), -1), *range(0, n, 97)]
    for index in order:
        assert streamer.block(index) == _reference_block(s, index, 4), index


@pytest.mark.parametrize("path", LIBRARY, ids=lambda p: p.stem)
def test_the_frames_written_packed_are_the_schedule_rows_encoded(path: Path) -> None:
    s = _schedule(path)
    link = _FakeLink()
    streamer = _streamer(s, link, channels=4)
    streamer.prime()
    streamer.started(0)
    for now in range(20, 20 * 400, 20):  # the device takes everything written so far
        streamer.on_telemetry(_telemetry(now, 0, 0, streamer.next_index), now)
    assert len(link.sent) >= min(s.n_blocks, 300)
    for sent, _ in link.sent:
        assert sent == renumbered(_reference_block(s, sent.index, 4), sent.seq), sent.index


def test_blocks_with_the_same_settings_share_one_channel_tuple_and_others_do_not() -> None:
    s = _schedule(PROFILES / "han-dense-disperse.toml")
    streamer = _streamer(s, _FakeLink())
    plateau = [i for i in range(s.n_blocks) if s.amplitude_ua[i].min() > 0][1000:1400]
    by_settings: dict[tuple[int, ...], object] = {}
    for i in plateau:
        block = streamer.block(i)
        key = tuple(v for c in block.channels for v in (c.amplitude_ua, c.frequency_dhz,
                                                        c.pulse_width_us))  # fmt: skip
        assert by_settings.setdefault(key, block.channels) is block.channels
    assert len(by_settings) == 2  # 2 Hz / 600 us and 100 Hz / 200 us


def test_a_block_the_wire_cannot_carry_halts_the_stream_with_the_codecs_reason() -> None:
    s = _schedule(PROFILES / "short-demo.toml")
    s = dataclasses.replace(s, amplitude_ua=s.amplitude_ua.astype(np.int64) + 70_000)  # > u16
    link = _FakeLink()
    streamer = _streamer(s, link)
    assert streamer.prime() == 1  # counted as written, as any block whose write failed
    assert link.sent == [] and streamer.halted
    assert streamer.halt_reason.startswith("write failed: Block: cannot pack")


def test_a_block_beyond_the_schedule_is_an_index_error() -> None:
    s = _schedule(PROFILES / "short-demo.toml")
    streamer = _streamer(s, _FakeLink())
    with pytest.raises(IndexError):
        streamer.block(s.n_blocks)


def _telemetry(time_ms: int, fifo_ms: int, fifo_blocks: int, next_block: int) -> Telemetry:
    ch = ChannelTelemetry(set_ua=0, measured_ua=0, impedance_ohm=1000, pulses=0)
    return Telemetry(time_ms=time_ms, state=State.RUNNING, fault=0, fault_channel=0,
                     fifo_blocks=fifo_blocks, fifo_ms=fifo_ms, block_index=0,
                     next_block=next_block, channels=(ch,))  # fmt: skip


_EVENT = st.one_of(
    st.tuples(st.just("ack"), st.integers(0, 30)),
    st.tuples(st.just("fifo_full"), st.integers(0, 30)),
    st.tuples(st.just("sequence"), st.integers(0, 30)),
    st.tuples(st.just("lost"), st.integers(0, 30)),
    st.tuples(st.just("telemetry"), st.integers(0, 40)),
)


@settings(deadline=None, max_examples=150)
@given(events=st.lists(_EVENT, max_size=60))
def test_lookahead_in_flight_is_the_sum_over_the_blocks_in_flight_after_any_answers(
    events: list[tuple[str, int]],
) -> None:
    s = _schedule(PROFILES / "short-demo.toml")
    link = _FakeLink()
    streamer = _streamer(s, link)
    streamer.prime()
    streamer.started(0)
    now, fifo_ms = 0, 0
    for kind, k in events:
        if kind == "telemetry":
            now += 20
            fifo_ms = min(k * 5, 200)
            tel = _telemetry(now, fifo_ms, fifo_ms // 20, streamer.accepted + k % 3)
            streamer.on_telemetry(tel, now)
        elif link.sent:
            block, on_reply = link.sent[k % len(link.sent)]
            if kind == "ack":
                reply: Message | None = Ack(ack_seq=block.seq, ack_type=Block.TYPE)
            elif kind == "lost":
                reply = None
            else:
                reason = NakReason.FIFO_FULL if kind == "fifo_full" else NakReason.BLOCK_SEQUENCE
                detail = max(0, block.index - 1) if kind == "sequence" else 0
                reply = Nak(ack_seq=block.seq, ack_type=Block.TYPE, reason=reason, detail=detail)
            on_reply(block.index, block.seq, reply)  # type: ignore[operator]
        in_flight = sum(f.duration_ms for f in streamer._unacked.values())
        assert streamer.lookahead_ms() == fifo_ms + in_flight
        assert all(i < streamer.next_index for i in streamer._unacked)
