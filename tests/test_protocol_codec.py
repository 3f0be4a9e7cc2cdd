"""Specification of the wire codec: round trip, framing bounds, rejection, resync, catalogue hash.

Messages are generated from each class's own layout (``FIELDS`` / ``ITEM``), so a catalogue
change is covered without editing this file.
"""

from __future__ import annotations

import dataclasses
import os
import struct
import subprocess
import sys
import zlib

import pytest
from cobs import cobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from stimctl.protocol import (
    CATALOGUE,
    CATALOGUE_HASH,
    MAX_ENCODED,
    MAX_FRAME,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    SEQ_MODULO,
    Block,
    DeviceInfo,
    FrameDecoder,
    Heartbeat,
    Invalid,
    Message,
    PayloadError,
    encode,
    renumbered,
)
from stimctl.protocol.framing import CRC_RESIDUE
from stimctl.protocol.messages import Item, catalogue_description
from stimctl.protocol.payload import pack_payload, unpack_payload

CLASSES = sorted(CATALOGUE.values(), key=lambda cls: cls.TYPE)
ITEM_CLASSES = [cls for cls in CLASSES if cls.ITEM is not None]
UINT_MAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF}

PROPERTY = settings(deadline=None, max_examples=100)
QUICK = settings(deadline=None, max_examples=50, suppress_health_check=[HealthCheck.too_slow])


def _size(fields: tuple[tuple[str, str], ...]) -> int:
    return struct.calcsize("<" + "".join(code for _, code in fields))


def max_items(cls: type[Message]) -> int:
    """Most items that keep the payload (fixed fields + u8 count + items) within MAX_PAYLOAD."""
    assert cls.ITEM is not None
    return min(255, (MAX_PAYLOAD - _size(cls.FIELDS) - 1) // _size(cls.ITEM.FIELDS))


# --- strategies -----------------------------------------------------------------------------


def field_values(code: str) -> st.SearchStrategy[object]:
    if code.endswith("s"):  # fixed-size text: ASCII without NULs (NUL is the padding)
        alphabet = st.characters(min_codepoint=1, max_codepoint=127)
        return st.text(alphabet=alphabet, max_size=int(code[:-1]))
    return st.integers(0, UINT_MAX[code])


def items(item_cls: type[Item]) -> st.SearchStrategy[Item]:
    return st.builds(item_cls, *(field_values(code) for _, code in item_cls.FIELDS))


def messages_of(cls: type[Message]) -> st.SearchStrategy[Message]:
    kwargs = {name: field_values(code) for name, code in cls.FIELDS}
    if cls.ITEM is not None:
        kwargs["channels"] = st.lists(items(cls.ITEM), max_size=max_items(cls)).map(tuple)
    return st.builds(cls, seq=st.integers(0, SEQ_MODULO - 1), **kwargs)


any_message = st.one_of([messages_of(cls) for cls in CLASSES])


# --- fixed examples -------------------------------------------------------------------------


def _fill(fields: tuple[tuple[str, str], ...], value: int) -> dict[str, object]:
    return {
        name: ("S" * int(code[:-1]) if code.endswith("s") else min(value, UINT_MAX[code]))
        for name, code in fields
    }


def sample(cls: type[Message], value: int = 0, count: int = 1, seq: int = 1) -> Message:
    """A valid message with every integer field at ``value`` (clipped) and ``count`` items."""
    kwargs = _fill(cls.FIELDS, value)
    if cls.ITEM is not None:
        item = cls.ITEM(**_fill(cls.ITEM.FIELDS, value))
        kwargs["channels"] = (item,) * count
    return cls(seq=seq, **kwargs)


def largest(cls: type[Message]) -> Message:
    """The longest encodable message of a class: every field at its maximum, items to the brim."""
    return sample(cls, value=0xFFFF_FFFF, count=max_items(cls) if cls.ITEM else 0, seq=0xFFFF)


def raw_frame(
    payload: bytes, type_code: int, seq: int = 7, version: int = PROTOCOL_VERSION
) -> bytes:
    """A CRC-valid frame around arbitrary header values and payload (bypassing encode)."""
    body = struct.pack("<BBH", version, type_code, seq) + payload
    return cobs.encode(body + struct.pack("<I", zlib.crc32(body))) + b"\x00"


def decode_all(data: bytes) -> tuple[list[Message | Invalid], FrameDecoder]:
    decoder = FrameDecoder()
    return decoder.feed(data), decoder


def _name(cls: type) -> str:
    return cls.__name__


# --- round trip -----------------------------------------------------------------------------


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
@PROPERTY
@given(data=st.data())
def test_every_message_roundtrips_through_encode_and_decode(cls, data):
    msg = data.draw(messages_of(cls))
    assert FrameDecoder().feed(encode(msg)) == [msg]


@pytest.mark.parametrize("cls", ITEM_CLASSES, ids=_name)
def test_message_with_items_up_to_max_payload_roundtrips(cls):
    msg = largest(cls)
    assert len(pack_payload(msg)) <= MAX_PAYLOAD
    assert FrameDecoder().feed(encode(msg)) == [msg]


@pytest.mark.parametrize("seq", [0, SEQ_MODULO - 1])
def test_seq_at_the_ends_of_its_range_roundtrips(seq):
    msg = Heartbeat(seq=seq)
    assert FrameDecoder().feed(encode(msg)) == [msg]


@QUICK
@given(msgs=st.lists(any_message, min_size=1, max_size=8), data=st.data())
def test_concatenated_frames_split_at_arbitrary_points_decode_in_order(msgs, data):
    stream = b"".join(encode(m) for m in msgs)
    cuts = data.draw(st.lists(st.integers(0, len(stream)), max_size=20).map(sorted))
    decoder = FrameDecoder()
    out: list[Message | Invalid] = []
    for start, end in zip([0, *cuts], [*cuts, len(stream)], strict=True):
        out += decoder.feed(stream[start:end])
    assert out == msgs


def _reference_frame(msg: Message) -> bytes:
    """The frame by the catalogue's layout, packed field by field (docs/PROTOCOL.md)."""
    payload = b""
    for name, code in msg.FIELDS:
        value = getattr(msg, name)
        payload += struct.pack("<" + code, value.encode("ascii") if code.endswith("s") else value)
    if msg.ITEM is not None:
        records = msg.channels  # type: ignore[attr-defined]
        payload += bytes([len(records)])
        for record in records:
            for name, code in msg.ITEM.FIELDS:
                payload += struct.pack("<" + code, getattr(record, name))
    return raw_frame(payload, msg.TYPE, seq=msg.seq)


@PROPERTY
@given(msg=any_message)
def test_encoded_frame_is_the_catalogue_layout_byte_for_byte(msg):
    assert encode(msg) == _reference_frame(msg)


@PROPERTY
@given(msg=any_message, seq=st.integers(0, SEQ_MODULO - 1))
def test_renumbered_is_the_message_with_the_other_seq(msg, seq):
    again = renumbered(msg, seq)
    assert again == dataclasses.replace(msg, seq=seq) and type(again) is type(msg)


@PROPERTY
@given(body=st.binary(max_size=MAX_FRAME), crc=st.integers(0, 0xFFFF_FFFF))
def test_crc_residue_check_is_the_crc_comparison(body, crc):
    assert zlib.crc32(body + struct.pack("<I", zlib.crc32(body))) == CRC_RESIDUE
    frame = body + struct.pack("<I", crc)
    assert (zlib.crc32(frame) == CRC_RESIDUE) == (crc == zlib.crc32(body))


# --- frame bounds ---------------------------------------------------------------------------


@PROPERTY
@given(msg=any_message)
def test_encoded_frame_contains_only_the_trailing_delimiter(msg):
    frame = encode(msg)
    assert frame.count(0) == 1
    assert frame[-1] == 0


@PROPERTY
@given(msg=any_message)
def test_encoded_frame_is_at_most_max_encoded_plus_delimiter(msg):
    assert len(encode(msg)) <= MAX_ENCODED + 1


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_largest_message_of_each_type_fits_max_encoded_plus_delimiter(cls):
    assert len(encode(largest(cls))) <= MAX_ENCODED + 1


def test_max_encoded_is_the_cobs_worst_case_for_max_frame():
    assert len(cobs.encode(b"\xff" * MAX_FRAME)) == MAX_ENCODED


# --- encode rejects what does not fit the wire ----------------------------------------------


def _out_of_range_cases():
    for cls in CLASSES:
        for name, code in cls.FIELDS:
            if code in UINT_MAX:
                for value in (-1, UINT_MAX[code] + 1):
                    yield pytest.param(cls, name, None, value, id=f"{cls.__name__}.{name}={value}")
        if cls.ITEM is not None:
            for name, code in cls.ITEM.FIELDS:
                for value in (-1, UINT_MAX[code] + 1):
                    case_id = f"{cls.__name__}.channels[0].{name}={value}"
                    yield pytest.param(cls, None, name, value, id=case_id)


@pytest.mark.parametrize(("cls", "field", "item_field", "value"), list(_out_of_range_cases()))
def test_encode_rejects_field_value_outside_its_wire_range(cls, field, item_field, value):
    msg = sample(cls)
    if field is not None:
        msg = dataclasses.replace(msg, **{field: value})
    else:
        bad_item = dataclasses.replace(msg.channels[0], **{item_field: value})
        msg = dataclasses.replace(msg, channels=(bad_item,))
    with pytest.raises(PayloadError):
        encode(msg)


@pytest.mark.parametrize("seq", [-1, SEQ_MODULO, 2**32])
def test_encode_rejects_seq_outside_0_to_65535(seq):
    with pytest.raises(PayloadError):
        encode(Heartbeat(seq=seq))


@pytest.mark.parametrize("cls", ITEM_CLASSES, ids=_name)
def test_encode_rejects_items_beyond_max_payload(cls):
    msg = sample(cls, count=max_items(cls) + 1)
    with pytest.raises(PayloadError):
        encode(msg)


@pytest.mark.parametrize("cls", ITEM_CLASSES, ids=_name)
def test_encode_rejects_items_of_another_item_type(cls):
    other = next(c.ITEM for c in ITEM_CLASSES if c.ITEM is not cls.ITEM)
    assert other is not None
    wrong = other(**_fill(other.FIELDS, 1))
    with pytest.raises(PayloadError):
        encode(dataclasses.replace(sample(cls), channels=(wrong,)))


def test_encode_rejects_serial_longer_than_12_chars():
    with pytest.raises(PayloadError):
        encode(dataclasses.replace(sample(DeviceInfo), serial="SN-0123456789"))


def test_encode_rejects_non_ascii_serial_with_payload_error():
    with pytest.raises(PayloadError):
        encode(dataclasses.replace(sample(DeviceInfo), serial="SN-µ"))


def test_encode_rejects_a_non_integer_seq():
    with pytest.raises(PayloadError):
        encode(dataclasses.replace(sample(Heartbeat), seq=1.5))


def test_encode_rejects_items_that_are_not_item_records():
    with pytest.raises(PayloadError):
        encode(dataclasses.replace(sample(Block), channels=(1,)))


# --- corruption is never acted on -----------------------------------------------------------


def _flip(frame: bytes, bit: int) -> bytes:
    damaged = bytearray(frame)
    damaged[bit // 8] ^= 1 << (bit % 8)
    return bytes(damaged)


@PROPERTY
@given(msg=any_message, data=st.data())
def test_single_bit_flip_anywhere_in_a_frame_is_never_decoded(msg, data):
    frame = encode(msg)
    bit = data.draw(st.integers(0, len(frame) * 8 - 1))
    # The extra delimiter closes the frame when the flip hit its own delimiter.
    out, decoder = decode_all(_flip(frame, bit) + b"\x00")
    assert out == []
    assert decoder.stats.errors >= 1


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_every_single_bit_flip_of_a_frame_is_rejected_exhaustively(cls):
    for msg in (sample(cls, value=0x5A5A_5A5A, count=2), largest(cls)):
        frame = encode(msg)
        for bit in range(len(frame) * 8):
            out, decoder = decode_all(_flip(frame, bit) + b"\x00")
            assert out == [], (msg, bit)
            assert decoder.stats.errors >= 1, (msg, bit)


@QUICK
@given(lost=any_message, good=any_message, data=st.data())
def test_truncated_frame_then_good_frame_yields_only_the_good_frame(lost, good, data):
    body = encode(lost)[:-1]
    cut = data.draw(st.integers(1, len(body) - 1))
    out, decoder = decode_all(body[:cut] + b"\x00" + encode(good))
    assert out == [good]
    assert decoder.stats.errors == 1


def test_frame_run_into_by_an_undelimited_fragment_is_dropped_and_the_next_decodes():
    first, second = Heartbeat(seq=1), Heartbeat(seq=2)
    out, decoder = decode_all(encode(sample(CLASSES[-1]))[:5] + encode(first) + encode(second))
    assert out == [second]
    assert decoder.stats.errors == 1


# --- overflow: long runs without a delimiter ------------------------------------------------


def test_run_of_max_encoded_bytes_is_not_an_overflow():
    _, decoder = decode_all(b"\x01" * MAX_ENCODED + b"\x00")
    assert decoder.stats.overflows == 0


def test_run_longer_than_max_encoded_is_discarded_and_counted_as_overflow():
    out, decoder = decode_all(b"\x01" * (MAX_ENCODED + 1) + b"\x00")
    assert out == []
    assert decoder.stats.overflows == 1


def test_long_run_fed_in_pieces_counts_one_overflow():
    decoder = FrameDecoder()
    run = b"\xaa" * (10 * MAX_ENCODED)
    for i in range(0, len(run), 7):
        decoder.feed(run[i : i + 7])
    decoder.feed(b"\x00")
    assert decoder.stats.overflows == 1


@QUICK
@given(
    junk=st.binary(min_size=MAX_ENCODED + 1, max_size=4 * MAX_ENCODED).map(
        lambda b: b.replace(b"\x00", b"\x01")
    ),
    chunk=st.integers(1, 300),
)
def test_decoder_buffer_never_exceeds_max_encoded(junk, chunk):
    decoder = FrameDecoder()
    for i in range(0, len(junk), chunk):
        decoder.feed(junk[i : i + chunk])
        assert len(decoder._buf) <= MAX_ENCODED


def test_good_frame_after_an_overflow_decodes():
    msg = Heartbeat(seq=42)
    out, decoder = decode_all(b"\x55" * (3 * MAX_ENCODED) + b"\x00" + encode(msg))
    assert out == [msg]
    assert decoder.stats.overflows == 1


@pytest.mark.parametrize("cls", ITEM_CLASSES, ids=_name)
def test_largest_frame_fed_byte_by_byte_decodes_without_overflow(cls):
    msg = largest(cls)
    decoder = FrameDecoder()
    out = [item for byte in encode(msg) for item in decoder.feed(bytes([byte]))]
    assert out == [msg]
    assert decoder.stats.overflows == 0


# --- CRC-valid but not understood: Invalid, never a Message ---------------------------------


def test_crc_valid_frame_of_unknown_type_comes_out_invalid():
    unknown = [t for t in range(256) if t not in CATALOGUE]
    for type_code in unknown:
        out, _ = decode_all(raw_frame(b"\x01\x02", type_code, seq=300))
        assert len(out) == 1 and isinstance(out[0], Invalid), type_code
        assert (out[0].type_code, out[0].seq, out[0].version) == (type_code, 300, PROTOCOL_VERSION)


@pytest.mark.parametrize("cls", CLASSES, ids=_name)
def test_crc_valid_frame_with_one_payload_byte_too_many_comes_out_invalid(cls):
    out, _ = decode_all(raw_frame(pack_payload(sample(cls)) + b"\x00", cls.TYPE))
    assert len(out) == 1 and isinstance(out[0], Invalid)


@pytest.mark.parametrize("cls", [c for c in CLASSES if c.FIELDS or c.ITEM], ids=_name)
def test_crc_valid_frame_with_one_payload_byte_missing_comes_out_invalid(cls):
    out, _ = decode_all(raw_frame(pack_payload(sample(cls))[:-1], cls.TYPE))
    assert len(out) == 1 and isinstance(out[0], Invalid)


@pytest.mark.parametrize("cls", ITEM_CLASSES, ids=_name)
def test_crc_valid_frame_whose_item_count_overstates_its_items_comes_out_invalid(cls):
    payload = bytearray(pack_payload(sample(cls, count=2)))
    payload[_size(cls.FIELDS)] = 3  # the count byte follows the fixed fields
    out, _ = decode_all(raw_frame(bytes(payload), cls.TYPE))
    assert len(out) == 1 and isinstance(out[0], Invalid)


@pytest.mark.parametrize("version", [0, PROTOCOL_VERSION + 1, 255])
def test_crc_valid_frame_of_another_protocol_version_comes_out_invalid(version):
    out, _ = decode_all(raw_frame(b"", Heartbeat.TYPE, seq=9, version=version))
    assert out == [Invalid(type_code=Heartbeat.TYPE, seq=9, version=version, reason="version")]


def test_crc_valid_device_info_with_non_ascii_serial_comes_out_invalid():
    payload = bytearray(pack_payload(sample(DeviceInfo)))
    offset = _size(tuple(DeviceInfo.FIELDS[:5]))  # serial follows version, hash and fw x.y.z
    payload[offset] = 0xB5
    out, _ = decode_all(raw_frame(bytes(payload), DeviceInfo.TYPE))
    assert len(out) == 1 and isinstance(out[0], Invalid)


def _refusal(type_code: int, seq: int, payload: bytes) -> str:
    with pytest.raises(PayloadError) as refused:
        unpack_payload(type_code, seq, payload)
    return str(refused.value)


_PAYLOAD_CHANGES = [(cls, "byte too many") for cls in CLASSES] + [
    (cls, "byte missing") for cls in CLASSES if cls.FIELDS or cls.ITEM
]


@pytest.mark.parametrize(
    ("cls", "change"), _PAYLOAD_CHANGES, ids=lambda v: getattr(v, "__name__", v)
)
def test_an_invalid_frames_reason_is_what_unpack_payload_says_of_its_payload(cls, change):
    """The decoder's per-type unpackers read the header themselves: their refusals still carry
    the plain codec's reason, and the header's type and seq."""
    payload = pack_payload(sample(cls))
    payload = payload + b"\x00" if change == "byte too many" else payload[:-1]
    out, _ = decode_all(raw_frame(payload, cls.TYPE, seq=300))
    reason = _refusal(cls.TYPE, 300, payload)
    assert out == [Invalid(type_code=cls.TYPE, seq=300, version=PROTOCOL_VERSION, reason=reason)]


def test_an_unknown_types_reason_is_what_unpack_payload_says():
    out, _ = decode_all(raw_frame(b"\x01", 0xFE, seq=301))
    reason = _refusal(0xFE, 301, b"\x01")
    assert out == [Invalid(type_code=0xFE, seq=301, version=PROTOCOL_VERSION, reason=reason)]


def test_invalid_frames_are_counted_as_invalid_not_as_frames_or_errors():
    out, decoder = decode_all(raw_frame(b"", 0xFE) + raw_frame(b"", Heartbeat.TYPE, version=9))
    assert len(out) == 2
    assert (decoder.stats.invalid, decoder.stats.frames, decoder.stats.errors) == (2, 0, 0)


# --- catalogue hash -------------------------------------------------------------------------


def _hash() -> int:
    return zlib.crc32(catalogue_description().encode("ascii"))


def test_catalogue_hash_is_the_crc32_of_the_catalogue_description():
    assert _hash() == CATALOGUE_HASH


#: The catalogue hash of each protocol version: changing the catalogue needs a new version (and a
#: row here); refactoring how the catalogue is declared must leave the hash alone.
CATALOGUE_HASHES = {1: 0x871C8232, 2: 0x34BDFC74}


def test_catalogue_hash_is_the_one_recorded_for_this_protocol_version():
    assert CATALOGUE_HASHES[PROTOCOL_VERSION] == CATALOGUE_HASH


def test_catalogue_hash_is_stable_across_interpreter_runs():
    code = "from stimctl.protocol import CATALOGUE_HASH; print(CATALOGUE_HASH)"
    for hash_seed in ("1", "2"):
        env = {**os.environ, "PYTHONHASHSEED": hash_seed}
        result = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
        )
        assert int(result.stdout) == CATALOGUE_HASH


def _changed_code(code: str) -> str:
    return {"B": "H", "H": "I", "I": "B"}.get(code, "13s")


def _field_cases(kind: str):
    for cls in CLASSES:
        owners = [cls] if kind == "message" else ([cls.ITEM] if cls.ITEM else [])
        for owner in owners:
            for index, (name, _) in enumerate(owner.FIELDS):
                yield pytest.param(owner, index, id=f"{owner.__name__}.{name}")


@pytest.mark.parametrize(("owner", "index"), list(_field_cases("message")))
def test_catalogue_hash_changes_when_a_message_field_format_changes(monkeypatch, owner, index):
    fields = list(owner.FIELDS)
    fields[index] = (fields[index][0], _changed_code(fields[index][1]))
    monkeypatch.setattr(owner, "FIELDS", tuple(fields))
    assert _hash() != CATALOGUE_HASH


@pytest.mark.parametrize(("owner", "index"), list(_field_cases("item")))
def test_catalogue_hash_changes_when_an_item_field_format_changes(monkeypatch, owner, index):
    fields = list(owner.FIELDS)
    fields[index] = (fields[index][0], _changed_code(fields[index][1]))
    monkeypatch.setattr(owner, "FIELDS", tuple(fields))
    assert _hash() != CATALOGUE_HASH


@pytest.mark.parametrize(("owner", "index"), list(_field_cases("message")))
def test_catalogue_hash_changes_when_a_field_is_renamed(monkeypatch, owner, index):
    fields = list(owner.FIELDS)
    fields[index] = (fields[index][0] + "_x", fields[index][1])
    monkeypatch.setattr(owner, "FIELDS", tuple(fields))
    assert _hash() != CATALOGUE_HASH


def test_catalogue_hash_changes_when_fields_are_reordered(monkeypatch):
    cls = DeviceInfo
    monkeypatch.setattr(cls, "FIELDS", (cls.FIELDS[1], cls.FIELDS[0], *cls.FIELDS[2:]))
    assert _hash() != CATALOGUE_HASH


def test_catalogue_hash_changes_when_a_type_code_changes(monkeypatch):
    monkeypatch.delitem(CATALOGUE, Heartbeat.TYPE)
    monkeypatch.setitem(CATALOGUE, 0x7F, Heartbeat)
    assert _hash() != CATALOGUE_HASH


def test_catalogue_hash_changes_when_a_message_is_added(monkeypatch):
    @dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
    class Extra(Message):
        TYPE = 0x7E

    monkeypatch.setitem(CATALOGUE, Extra.TYPE, Extra)
    assert _hash() != CATALOGUE_HASH


def test_catalogue_hash_changes_when_the_description_changes_by_one_character():
    text = catalogue_description()
    edited = text.replace("ramp_ms:H", "ramp_ms:I")
    assert edited != text
    assert zlib.crc32(edited.encode("ascii")) != CATALOGUE_HASH
