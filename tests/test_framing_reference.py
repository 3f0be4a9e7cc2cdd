"""The frame decoder against a plain reference: one byte at a time, each frame decoded by the
general ``unpack_payload`` and its CRC compared the obvious way. Whatever the stream (good
frames, corrupted ones, CRC-valid frames of any header and payload, junk, overlong runs) and
however it is cut into ``feed`` calls (as bytes or as a reused bytearray), the decoder returns
what the reference returns, feed by feed, and counts the same."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stimctl.protocol import (
    MAX_ENCODED,
    PROTOCOL_VERSION,
    Ack,
    Block,
    ChannelSetting,
    FrameDecoder,
    Heartbeat,
    Message,
    PayloadError,
    Stop,
    encode,
)
from stimctl.protocol.framing import DecoderStats, Invalid
from stimctl.protocol.payload import unpack_payload


@dataclass
class Reference:
    """The decoder's specification, written for clarity, not speed."""

    stats: DecoderStats = field(default_factory=DecoderStats)
    buf: bytearray = field(default_factory=bytearray)
    discarding: bool = False

    def feed(self, data: bytes | bytearray) -> list[Message | Invalid]:
        self.stats.bytes_in += len(data)
        out: list[Message | Invalid] = []
        for byte in bytes(data):
            if byte == 0:
                if not self.discarding and self.buf:
                    item = self.decode(bytes(self.buf))
                    if item is not None:
                        out.append(item)
                self.buf.clear()
                self.discarding = False
            elif self.discarding:
                continue
            elif len(self.buf) == MAX_ENCODED:  # one byte more than a frame can have
                self.stats.overflows += 1
                self.buf.clear()
                self.discarding = True
            else:
                self.buf.append(byte)
        return out

    def decode(self, encoded: bytes) -> Message | Invalid | None:
        try:
            frame = cobs.decode(encoded)
        except cobs.DecodeError:
            self.stats.cobs_errors += 1
            return None
        if len(frame) < 8:
            self.stats.short_frames += 1
            return None
        if zlib.crc32(frame[:-4]) != int.from_bytes(frame[-4:], "little"):
            self.stats.crc_errors += 1
            return None
        version, type_code, seq = struct.unpack_from("<BBH", frame)
        reason = "version"
        if version == PROTOCOL_VERSION:
            try:
                msg = unpack_payload(type_code, seq, frame[4:-4])
            except PayloadError as exc:
                reason = str(exc)
            else:
                self.stats.frames += 1
                return msg
        self.stats.invalid += 1
        return Invalid(type_code=type_code, seq=seq, version=version, reason=reason)


def _short(frame: bytes) -> bytes:
    """A COBS-valid frame of a few bytes (about as short as a frame can be)."""
    return cobs.encode(frame) + b"\x00"


def _crc_valid(body: bytes) -> bytes:
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


u16 = st.integers(0, 0xFFFF)
settings_ = st.builds(ChannelSetting, u16, u16, u16)
blocks = st.builds(
    Block, seq=u16, index=st.integers(0, 0xFFFF_FFFF), duration_ms=u16,
    flags=st.integers(0, 255), channels=st.lists(settings_, max_size=6).map(tuple),
)  # fmt: skip
others = st.one_of(
    st.builds(Heartbeat, seq=u16),
    st.builds(Stop, seq=u16, ramp_ms=u16),
    st.builds(Ack, seq=u16, ack_seq=u16, ack_type=st.integers(0, 255)),
)
good = st.one_of(blocks, others).map(encode)


@st.composite
def corrupted(draw: st.DrawFn) -> bytes:
    frame = bytearray(draw(good))
    at = draw(st.integers(0, len(frame) - 1))
    kind = draw(st.sampled_from(["flip", "cut", "drop_delimiter", "zero", "insert"]))
    if kind == "flip":
        frame[at] ^= 1 << draw(st.integers(0, 7))
    elif kind == "cut":
        del frame[at:]
    elif kind == "drop_delimiter":
        del frame[-1]
    elif kind == "zero":
        frame[at] = 0
    else:
        frame[at:at] = draw(st.binary(min_size=1, max_size=4))
    return bytes(frame)


@st.composite
def crc_valid(draw: st.DrawFn) -> bytes:
    """CRC-valid frames of any header and payload: they reach the payload decoders."""
    version = draw(st.sampled_from([PROTOCOL_VERSION, PROTOCOL_VERSION, 1, 3]))
    type_code = draw(st.sampled_from([Block.TYPE, Block.TYPE, 0x02, 0x16, 0x80, 0x83, 0x7F]))
    if type_code == Block.TYPE and draw(st.booleans()):  # a BLOCK's fields, records miscounted
        count, records = draw(st.integers(0, 8)), draw(st.integers(0, 8))
        payload = struct.pack("<IHBB", 0, 20, 0, count) + b"\x01\x02\x03\x04\x05\x06" * records
    else:
        payload = draw(st.binary(max_size=40))
    return _crc_valid(struct.pack("<BBH", version, type_code, draw(u16)) + payload)


pieces = st.one_of(
    good, good, corrupted(), crc_valid(),
    st.binary(max_size=12), st.binary(min_size=MAX_ENCODED - 2, max_size=MAX_ENCODED + 3),
    st.integers(MAX_ENCODED - 2, MAX_ENCODED + 2).map(lambda n: b"\x01" * n + b"\x00"),
    st.integers(0, 9).flatmap(lambda n: st.binary(min_size=n, max_size=n)).map(_short),
    st.just(b"\x00"),
)  # fmt: skip


@settings(deadline=None, max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(pieces, max_size=12), st.data())
def test_the_decoder_is_the_reference_however_the_stream_is_cut(stream, data) -> None:
    raw = b"".join(stream)
    cuts = sorted(data.draw(st.lists(st.integers(0, len(raw)), max_size=8)))
    reference, decoder = Reference(), FrameDecoder()
    reused = bytearray()  # a receive buffer, as the device passes its own
    for start, end in zip([0, *cuts], [*cuts, len(raw)], strict=True):
        chunk = raw[start:end]
        if data.draw(st.booleans()):
            reused += chunk
            got = decoder.feed(reused)
            reused.clear()
        else:
            got = decoder.feed(chunk)
        assert got == reference.feed(chunk)
    assert decoder.stats == reference.stats
    assert bytes(decoder._buf) == bytes(reference.buf)
    assert decoder._discarding == reference.discarding
