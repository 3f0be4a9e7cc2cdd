"""docs/PROTOCOL.md describes exactly the catalogue in stimctl/protocol: every message, every field,
at its offset, with its size and type."""

from __future__ import annotations

import re
import struct
import zlib
from pathlib import Path

import pytest

from stimctl.protocol import (
    CATALOGUE,
    CATALOGUE_HASH,
    HELLO_RETRY_MS,
    MAX_FRAME,
    MAX_PAYLOAD,
    MIN_WATCHDOG_MS,
    PROTOCOL_VERSION,
    Block,
    Message,
    NakReason,
)
from stimctl.protocol.messages import catalogue_description, wire_name

DOC = (Path(__file__).resolve().parent.parent / "docs" / "PROTOCOL.md").read_text()
TYPE_NAMES = {"B": "u8", "H": "u16", "I": "u32"}


def _section(cls: type[Message]) -> str:
    heading = rf"#### `{cls.TYPE:#04x}` {wire_name(cls)} \(.*?\)\n"
    match = re.search(heading + r"(.*?)(?=\n#### |\n## |\Z)", DOC, re.S)
    assert match, f"no section for {cls.__name__} ({cls.TYPE:#04x}) in docs/PROTOCOL.md"
    return match.group(1)


def _rows(cls: type[Message]) -> list[tuple[str, int, str, str]]:
    """(offset, size, field, type) for every fixed field, then the count and item fields."""
    rows, offset = [], 0
    for name, code in cls.FIELDS:
        size = struct.calcsize("<" + code)
        rows.append((str(offset), size, name, TYPE_NAMES.get(code, f"char[{size}]")))
        offset += size
    if cls.ITEM is not None:
        rows.append((str(offset), 1, "count", "u8"))
        stride = struct.calcsize("<" + "".join(c for _, c in cls.ITEM.FIELDS))
        at = 0
        for name, code in cls.ITEM.FIELDS:
            size = struct.calcsize("<" + code)
            rows.append((f"{offset + 1}+{stride}k+{at}", size, name, TYPE_NAMES[code]))
            at += size
    return rows


@pytest.mark.parametrize("cls", list(CATALOGUE.values()), ids=lambda c: c.__name__)
def test_every_field_of_every_message_is_documented_at_its_offset(cls: type[Message]) -> None:
    section = _section(cls)
    for offset, size, name, type_name in _rows(cls):
        row = rf"\| {re.escape(offset)} \| {size} \| `{name}` \| {re.escape(type_name)} \|"
        assert re.search(row, section), f"{cls.__name__}.{name}: expected a row like {row}"


def test_the_frame_limits_in_the_doc_are_the_codes() -> None:
    assert str(MAX_PAYLOAD) in DOC and str(MAX_FRAME) in DOC


def test_the_catalogue_description_is_in_the_doc_verbatim_with_its_hash() -> None:
    """An outside implementer computes catalogue_hash from the document alone."""
    section = DOC.split("### Catalogue description", 1)[1].split("\n## ", 1)[0]
    text = re.search(r"```text\n(.*?)\n```", section, re.S)
    assert text, "no ```text block under 'Catalogue description'"
    assert text.group(1) == catalogue_description()
    assert zlib.crc32(text.group(1).encode("ascii")) == CATALOGUE_HASH
    assert f"`{CATALOGUE_HASH:#010x}`" in section


def test_every_nak_reason_is_in_the_table_with_its_code() -> None:
    for reason in NakReason:
        assert re.search(rf"\| {reason.name} \| {int(reason)} \|", DOC), reason.name


def test_the_doc_states_the_protocol_version() -> None:
    assert f"# stimctl wire protocol (version {PROTOCOL_VERSION})" in DOC
    assert f"`version` is `PROTOCOL_VERSION` = {PROTOCOL_VERSION}" in DOC


def _fixed_size(cls: type[Message]) -> int:
    return struct.calcsize("<" + "".join(code for _, code in cls.FIELDS))


@pytest.mark.parametrize("cls", list(CATALOGUE.values()), ids=lambda c: c.__name__)
def test_every_heading_names_the_catalogue_name_and_records_theirs(cls: type[Message]) -> None:
    """The catalogue description uses names an implementer cannot derive from the wire names
    (ESTOP is `EStop`): the document gives each one."""
    heading = rf"#### `{cls.TYPE:#04x}` {wire_name(cls)} \([^)\n]*catalogue name `{cls.__name__}`\)"
    assert re.search(heading, DOC), f"{cls.__name__}: heading must name `{cls.__name__}`"
    if cls.ITEM is not None:
        assert f"record catalogue name `{cls.ITEM.__name__}`" in _section(cls), cls.ITEM.__name__


@pytest.mark.parametrize("cls", list(CATALOGUE.values()), ids=lambda c: c.__name__)
def test_every_payload_line_is_the_exact_length_the_codec_takes(cls: type[Message]) -> None:
    """One reading of "Payload:" for every message: a record message's line includes the count
    byte (F + R x count), as the Framing section says."""
    section, fixed = _section(cls), _fixed_size(cls)
    if cls.ITEM is None:
        expected = "Empty payload." if fixed == 0 else f"Payload: {fixed} byte{'s' * (fixed > 1)}."
    else:
        stride = struct.calcsize("<" + "".join(code for _, code in cls.ITEM.FIELDS))
        expected = f"Payload: {fixed + 1} + {stride} × count bytes ({fixed} byte"
    assert expected in section, f"{cls.__name__}: expected {expected!r}"


def test_the_framing_rule_says_the_payload_line_includes_the_count_byte() -> None:
    framing = " ".join(DOC.split("## Framing", 1)[1].split("\n## ", 1)[0].split())
    assert Block.ITEM is not None
    fixed, stride = (
        _fixed_size(Block),
        struct.calcsize("<" + "".join(c for _, c in Block.ITEM.FIELDS)),
    )
    assert "**plus the count byte**" in framing
    assert (
        f"BLOCK: {fixed} bytes of fixed fields + the count byte = {fixed + 1}, records of"
        f" {stride} bytes"
    ) in framing


def test_the_hello_pacing_in_the_doc_is_the_protocols_and_beats_the_smallest_watchdog() -> None:
    assert HELLO_RETRY_MS < MIN_WATCHDOG_MS
    assert f"`HELLO_RETRY_MS` = {HELLO_RETRY_MS} ms" in DOC
    assert f"`MIN_WATCHDOG_MS` = {MIN_WATCHDOG_MS} ms" in DOC
