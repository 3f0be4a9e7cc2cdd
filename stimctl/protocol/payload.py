"""Payload codec: packs and unpacks each message's fields by its layout in the catalogue.

Layouts are computed once per message class (struct formats, attribute getters, text fields,
a positional constructor), so the hot path of the codec is a getter call and one struct pack per
record, and decoding builds no keyword dictionaries. Decoded channel records are immutable, so a
record list seen before (the same settings block after block) is decoded once and shared.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from stimctl.protocol.constants import MAX_PAYLOAD
from stimctl.protocol.messages import CATALOGUE, Item, Message, PayloadError


def _struct(cls: type[Message] | type[Item]) -> struct.Struct:
    return struct.Struct("<" + "".join(code for _, code in cls.FIELDS))


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one message class packs: precomputed once, so the codec's hot path stays short."""

    fixed: struct.Struct
    names: tuple[str, ...]
    get: Callable[[Any], tuple[Any, ...]]  # attrgetter of the fixed fields (always a tuple)
    text: tuple[tuple[int, int], ...]  # (index in names, width) of the fixed-width text fields
    item: type[Item] | None
    item_struct: struct.Struct | None
    item_get: Callable[[Any], tuple[Any, ...]] | None
    make: Callable[..., Message]  # make(seq, fixed values..., [channels]) -> the message
    items_seen: dict[bytes, tuple[Item, ...]]  # decoded record lists, by their bytes


ITEMS_SEEN_MAX = 256
"""Distinct record lists kept per message type (then forgotten at once): blocks repeat a few
settings, telemetry's counters never repeat, so a small cache serves the one and costs the other
only an insert."""


def _constructor(cls: type[Message], names: tuple[str, ...]) -> Callable[..., Message]:
    """``make(seq, *values)``: the message from positional values in layout order (the dataclass
    takes keywords only; a dict per frame is what this saves)."""
    fields = [*names, *(["channels"] if cls.ITEM else [])]
    params = ", ".join(["seq", *(f"v{i}" for i in range(len(fields)))])
    args = ", ".join(["seq=seq", *(f"{name}=v{i}" for i, name in enumerate(fields))])
    namespace: dict[str, Any] = {"cls": cls}
    exec(f"def make({params}):\n    return cls({args})\n", namespace)  # catalogue names only
    return namespace["make"]


def _getter(names: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if not names:
        return lambda obj: ()
    if len(names) == 1:
        get_one = attrgetter(names[0])
        return lambda obj: (get_one(obj),)
    return attrgetter(*names)


def _layout(cls: type[Message]) -> _Layout:
    names = tuple(name for name, _ in cls.FIELDS)
    text = tuple((i, int(code[:-1])) for i, (_, code) in enumerate(cls.FIELDS) if code[-1] == "s")
    item_names = tuple(name for name, _ in cls.ITEM.FIELDS) if cls.ITEM else ()
    return _Layout(
        fixed=_struct(cls), names=names, get=_getter(names), text=text, item=cls.ITEM,
        item_struct=_struct(cls.ITEM) if cls.ITEM else None,
        item_get=_getter(item_names) if cls.ITEM else None,
        make=_constructor(cls, names), items_seen={},
    )  # fmt: skip


_LAYOUTS: dict[type, _Layout] = {cls: _layout(cls) for cls in CATALOGUE.values()}


def pack_payload(msg: Message) -> bytes:
    """The payload bytes of a message (no header, no CRC); PayloadError when it does not fit."""
    name = type(msg).__name__
    layout = _LAYOUTS.get(type(msg))
    if layout is None:
        raise PayloadError(f"{name}: not a message of the catalogue")
    try:
        values = layout.get(msg)
        if layout.text:
            values = _with_text(msg, layout, list(values))
        out = layout.fixed.pack(*values)
        if layout.item is not None:
            assert layout.item_struct is not None and layout.item_get is not None
            items: tuple[Item, ...] = msg.channels  # type: ignore[attr-defined]
            if not all(type(i) is layout.item for i in items):
                raise PayloadError(f"{name}: channels must be {layout.item.__name__} records")
            pack, get = layout.item_struct.pack, layout.item_get
            out += bytes([len(items)]) + b"".join([pack(*get(i)) for i in items])
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"{name}: cannot pack: {exc}") from exc
    if len(out) > MAX_PAYLOAD:
        raise PayloadError(f"{name}: payload {len(out)} > {MAX_PAYLOAD} bytes")
    return out


def _with_text(msg: Message, layout: _Layout, values: list[Any]) -> list[Any]:
    """Text fields as struct wants them: ASCII, no NUL, at most the field's width."""
    for i, width in layout.text:
        where = f"{type(msg).__name__}.{layout.names[i]}"
        if not isinstance(values[i], str):
            raise PayloadError(f"{where}: expected text")
        try:
            raw = values[i].encode("ascii")
        except UnicodeEncodeError as exc:
            raise PayloadError(f"{where}: not ASCII") from exc
        if len(raw) > width or b"\x00" in raw:
            raise PayloadError(f"{where}: longer than {width} or has NUL")
        values[i] = raw
    return values


def unpack_payload(type_code: int, seq: int, payload: bytes) -> Message:
    """Build the message of ``type_code`` from its payload; PayloadError when it does not fit."""
    cls = CATALOGUE.get(type_code)
    if cls is None:
        raise PayloadError(f"unknown message type {type_code:#04x}")
    layout = _LAYOUTS[cls]
    fixed = layout.fixed
    if len(payload) < fixed.size:
        raise PayloadError(f"{cls.__name__}: payload {len(payload)} < {fixed.size} bytes")
    values = fixed.unpack_from(payload)
    if layout.text:
        values = _text_values(cls, layout, list(values))
    rest = payload[fixed.size :]
    if layout.item is None:
        if rest:
            raise PayloadError(f"{cls.__name__}: {len(rest)} trailing bytes")
        return layout.make(seq, *values)
    return layout.make(seq, *values, _items(cls, layout, rest))


def _text_values(cls: type[Message], layout: _Layout, values: list[Any]) -> list[Any]:
    for i, _ in layout.text:
        name = layout.names[i]
        value = values[i].rstrip(b"\x00")
        if b"\x00" in value:
            raise PayloadError(f"{cls.__name__}.{name}: NUL inside the text")
        try:
            values[i] = value.decode("ascii")
        except UnicodeDecodeError as exc:
            raise PayloadError(f"{cls.__name__}.{name}: not ASCII") from exc
    return values


def _items(cls: type[Message], layout: _Layout, rest: bytes) -> tuple[Item, ...]:
    """The count-prefixed channel records after the fixed fields."""
    seen = layout.items_seen
    items = seen.get(rest)
    if items is not None:
        return items
    assert layout.item_struct is not None and layout.item is not None
    size = layout.item_struct.size
    if not rest:
        raise PayloadError(f"{cls.__name__}: missing item count")
    count = rest[0]
    if len(rest) - 1 != count * size:
        raise PayloadError(
            f"{cls.__name__}: {count} items need {count * size} bytes, got {len(rest) - 1}"
        )
    item = layout.item
    items = tuple([item(*v) for v in layout.item_struct.iter_unpack(rest[1:])])
    if len(seen) >= ITEMS_SEEN_MAX:
        seen.clear()
    seen[rest] = items
    return items


def record_structs(cls: type[Message]) -> tuple[struct.Struct, struct.Struct | None]:
    """The codec's structs of a message class: its fixed fields, and one channel record (None
    without records). The payload is the fixed fields, then (with records) a count byte and the
    records: for a sender that packs plain values without building message objects."""
    layout = _LAYOUTS[cls]
    return layout.fixed, layout.item_struct
