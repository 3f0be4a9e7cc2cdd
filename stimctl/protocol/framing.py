"""Framing: header + payload + CRC-32, COBS-stuffed, 0x00-delimited. Pure; no I/O.

Frame on the wire::

    COBS( version:u8 | type:u8 | seq:u16le | payload | crc32le(version..payload) ) 0x00

The decoder resynchronises on the next delimiter after any corruption and never holds more than
``MAX_ENCODED`` bytes of an unfinished frame.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

from cobs import cobs

from stimctl.protocol.constants import (
    CRC_SIZE,
    HEADER_FORMAT,
    HEADER_SIZE,
    MAX_ENCODED,
    PROTOCOL_VERSION,
)
from stimctl.protocol.messages import Message, PayloadError
from stimctl.protocol.payload import BODY_PACKERS, FRAME_UNPACKERS, pack_body, unpack_payload

_HEADER = struct.Struct(HEADER_FORMAT)
_CRC = struct.Struct("<I")
CRC_RESIDUE = 0x2144DF1C
"""CRC-32 of a whole frame (body, then its CRC-32 little-endian): the same for every intact
frame, so the check needs no slicing (tests/test_protocol_codec.py checks it against the
plain comparison)."""

_MIN_FRAME = HEADER_SIZE + CRC_SIZE
_cobs_encode, _cobs_decode, _crc32 = cobs.encode, cobs.decode, zlib.crc32
_UNPACKERS = tuple(FRAME_UNPACKERS.get(type_code) for type_code in range(256))
"""FRAME_UNPACKERS by the frame's type byte (None: no unpacker), indexed without a call."""


def encode(msg: Message) -> bytes:
    """The complete wire frame for a message, delimiter included."""
    body = BODY_PACKERS.get(type(msg), pack_body)(msg)
    return _cobs_encode(body + _CRC.pack(_crc32(body))) + b"\x00"


def encode_payload(type_code: int, seq: int, payload: bytes) -> bytes:
    """The complete wire frame for a payload already packed (``encode`` frames
    ``pack_body``'s; a sender that packs with ``payload.record_structs`` frames its own).
    The caller vouches for ``type_code``, ``seq`` and the payload."""
    body = _HEADER.pack(PROTOCOL_VERSION, type_code, seq) + payload
    return _cobs_encode(body + _CRC.pack(_crc32(body))) + b"\x00"


def encode_body(body: bytes) -> bytes:
    """The complete wire frame for a body already packed: header (PROTOCOL_VERSION, type, seq)
    and payload, e.g. in one struct with ``HEADER_FORMAT`` in front of the payload's format.
    The caller vouches for the body."""
    return _cobs_encode(body + _CRC.pack(_crc32(body))) + b"\x00"


@dataclass(frozen=True, slots=True, kw_only=True)
class Invalid:
    """A frame that passed its CRC but could not be understood (unknown type, bad payload,
    other protocol version). The receiver may answer it (NAK); it never acts on it, except that a
    frame of type ESTOP is obeyed whatever its form (docs/PROTOCOL.md, "Commands and answers")."""

    type_code: int
    seq: int
    version: int
    reason: str


@dataclass(slots=True)
class DecoderStats:
    """Counters of what the decoder saw; every dropped byte run is counted once."""

    frames: int = 0  # good messages returned
    invalid: int = 0  # CRC-valid but not understood (returned as Invalid)
    cobs_errors: int = 0
    crc_errors: int = 0
    short_frames: int = 0
    overflows: int = 0  # runs longer than MAX_ENCODED without a delimiter
    bytes_in: int = 0

    @property
    def errors(self) -> int:
        return self.cobs_errors + self.crc_errors + self.short_frames + self.overflows


@dataclass(slots=True)
class FrameDecoder:
    """Incremental decoder: ``feed(data)`` returns the messages (and Invalid records) completed
    by ``data``. Corrupt frames are dropped and counted in ``stats``."""

    stats: DecoderStats = field(default_factory=DecoderStats)
    _buf: bytearray = field(default_factory=bytearray)
    _discarding: bool = False

    def feed(self, data: bytes | bytearray) -> list[Message | Invalid]:
        """The messages (and Invalid records) completed by ``data``, in order. ``data`` is
        only read during the call (what is kept of it is copied): a caller may pass its own
        receive buffer and clear it afterwards."""
        stats = self.stats
        stats.bytes_in += len(data)
        whole = data.split(b"\x00")  # each ended by a delimiter in ``data``, but the last
        rest = whole.pop()
        if whole and (self._buf or self._discarding):  # ends a frame begun in an earlier feed
            self._accumulate(whole[0])
            whole[0] = b"" if self._discarding else bytes(self._buf)
            self._discarding = False
            self._buf.clear()
        out: list[Message | Invalid] = []
        # each frame decoded in this loop, not in a method per frame: one Python call less for
        # each of the stream's frames (a whole frame in ``data`` is decoded in place)
        for encoded in whole:
            if not encoded:
                continue
            if len(encoded) > MAX_ENCODED:  # what _accumulate would count and drop
                stats.overflows += 1
                continue
            try:
                frame = _cobs_decode(encoded)
            except cobs.DecodeError:
                stats.cobs_errors += 1
                continue
            if len(frame) < _MIN_FRAME:
                stats.short_frames += 1
                continue
            if _crc32(frame) != CRC_RESIDUE:
                stats.crc_errors += 1
                continue
            # the header's version and type read by index (one struct call less per frame):
            # the type's unpacker reads seq with the payload's fields; anything else: _other
            unpack = _UNPACKERS[frame[1]] if frame[0] == PROTOCOL_VERSION else None
            if unpack is None:
                out.append(self._other(frame))
                continue
            try:
                msg = unpack(frame)
            except PayloadError as exc:
                out.append(self._invalid(frame, str(exc)))
                continue
            stats.frames += 1
            out.append(msg)
        if rest:
            self._accumulate(rest)
        return out

    def _accumulate(self, chunk: bytes) -> None:
        if self._discarding or not chunk:
            return
        if len(self._buf) + len(chunk) > MAX_ENCODED:
            self.stats.overflows += 1
            self._buf.clear()
            self._discarding = True  # drop everything up to the next delimiter
            return
        self._buf += chunk

    def _other(self, frame: bytes) -> Message | Invalid:
        """A CRC-valid frame of another protocol version or of a type the codec has no
        unpacker for (``unpack_payload`` refuses it and says why)."""
        version, type_code, seq = _HEADER.unpack_from(frame)
        if version != PROTOCOL_VERSION:
            return self._invalid(frame, "version")
        try:
            msg = unpack_payload(type_code, seq, frame[HEADER_SIZE:-CRC_SIZE])
        except PayloadError as exc:
            return self._invalid(frame, str(exc))
        self.stats.frames += 1
        return msg

    def _invalid(self, frame: bytes, reason: str) -> Invalid:
        version, type_code, seq = _HEADER.unpack_from(frame)
        self.stats.invalid += 1
        return Invalid(type_code=type_code, seq=seq, version=version, reason=reason)
