"""Payload codec: packs and unpacks each message's fields by its layout in the catalogue.

Layouts are computed once per message class (struct formats, attribute getters, text fields,
constructors), and from each layout one generated function per direction, so a frame costs one
Python call and one struct call plus one per record list, and decoding builds no keyword
dictionaries:

- ``BODY_PACKERS[cls](msg)`` packs header and fixed fields with one precompiled struct (header
  first), then the records; a record list packed before (the same tuple object, as a streamer
  that reuses its settings sends it block after block) is not packed again.
- ``FRAME_UNPACKERS[type](frame)`` reads the header's seq and the fixed fields straight out of
  the decoded frame in one struct call and builds the message and its records without calling
  their ``__init__`` (a draft with the same slots, its fields stored, then given the class by
  ``__class__`` assignment: what the frozen dataclasses' own ``__init__`` makes, without the
  keyword call and the per-field ``object.__setattr__``). Decoded records are
  immutable, so a record list seen before (the same settings block after block) is decoded
  once and shared.

Both hand anything unusual (text fields, a wrong length, a value out of range) to the plain
``pack_payload`` / ``unpack_payload``, which say what is wrong; so the bytes on the wire and the
errors are theirs. The generated source uses only the catalogue's field names."""

from __future__ import annotations

import struct
import types
from collections.abc import Callable
from dataclasses import dataclass, fields
from operator import attrgetter
from typing import Any

from stimctl.protocol.constants import (
    CRC_SIZE,
    HEADER_FORMAT,
    HEADER_SIZE,
    MAX_PAYLOAD,
    PROTOCOL_VERSION,
    SEQ_MODULO,
)
from stimctl.protocol.messages import CATALOGUE, Item, Message, PayloadError

__all__ = ["BODY_PACKERS", "FRAME_UNPACKERS", "ITEMS_SEEN_MAX", "pack_body", "pack_payload",
           "record_structs", "renumbered", "unpack_payload"]  # fmt: skip


def _struct(cls: type[Message] | type[Item], prefix: str = "<") -> struct.Struct:
    return struct.Struct(prefix + "".join(code for _, code in cls.FIELDS))


@dataclass(frozen=True, slots=True)
class _Layout:
    """How one message class packs: precomputed once, so the codec's hot path stays short."""

    cls: type[Message]
    fixed: struct.Struct
    with_header: struct.Struct  # header (version, type, seq) + fixed fields, for pack_body
    names: tuple[str, ...]
    get: Callable[[Any], tuple[Any, ...]]  # attrgetter of the fixed fields (always a tuple)
    text: tuple[tuple[int, int], ...]  # (index in names, width) of the fixed-width text fields
    item: type[Item] | None
    item_struct: struct.Struct | None
    item_get: Callable[[Any], tuple[Any, ...]] | None
    make: Callable[..., Message]  # make(seq, fixed values..., [channels]) -> the message
    make_item: Callable[..., Item] | None  # make_item(record values...) -> the record
    items_seen: dict[bytes, tuple[Item, ...]]  # decoded record lists, by their bytes
    records_seen: dict[bytes, Item]  # decoded records, by their bytes
    items_packed: dict[int, tuple[tuple[Item, ...], bytes]]  # id(records) -> (records, bytes)


ITEMS_SEEN_MAX = 256
"""Distinct record lists kept per message type (then forgotten at once): blocks repeat a few
settings, telemetry's counters never repeat, so a small cache serves the one and costs the other
only an insert. The same bound holds for record lists kept packed for ``pack_body``."""


def _draft(cls: type, names: list[str]) -> type | None:
    """A class whose instances become ``cls``'s by ``__class__`` assignment, or None.

    It has ``cls``'s base and ``cls``'s own slots, so Python allows the assignment (it checks
    that the layouts match and raises TypeError otherwise, which this tries once now), and
    plain attribute stores: the base's frozen ``__setattr__`` and ``__delattr__`` replaced by
    ``object``'s, so each store is a slot store in place. Its ``__init__`` is ``object``'s
    (not the base's, which would set ``seq``): ``draft()`` costs less than
    ``object.__new__(draft)``, which goes through a wrapper with an argument tuple.

    Only when ``names`` are exactly the dataclass's fields, each a slot, and there is no
    ``__post_init__``: then a draft with its fields stored, made a ``cls``, is what the frozen
    dataclass's ``__init__`` makes (tests/test_protocol_build.py compares them: type, fields,
    equality, hash, repr, pickle, copies, frozenness)."""
    own = [f.name for f in fields(cls)]
    slots = cls.__dict__.get("__slots__")
    if own != names or hasattr(cls, "__post_init__") or type(slots) is not tuple:
        return None
    if any(type(getattr(cls, name, None)) is not types.MemberDescriptorType for name in names):
        return None
    draft = type(f"{cls.__name__}Draft", (cls.__base__,), {
        "__slots__": slots, "__module__": __name__, "__init__": object.__init__,
        "__setattr__": object.__setattr__, "__delattr__": object.__delattr__,
    })  # fmt: skip
    try:
        draft().__class__ = cls
    except TypeError:
        return None
    return draft


def _building(cls: type, names: list[str], keyword: bool, namespace: dict[str, Any]) -> str:
    """Source lines (indented 4) that bind ``obj`` to an instance of ``cls`` from the local
    variables ``v0, v1, ...`` (the values of ``names``, in order); ``namespace`` gets what they
    use.

    With a draft class (``_draft``): a draft, its fields stored, then made a ``cls`` by
    ``__class__`` assignment. This is what the frozen dataclass's ``__init__`` makes, in
    less than half the time: that one sets each field through ``object.__setattr__`` by
    name, and even each slot descriptor's ``__set__`` called alone costs more than a store.
    Otherwise the class itself, by keyword (``keyword``: the messages take keywords only) or
    by position."""
    draft = _draft(cls, names)
    namespace.update({"cls": cls, "draft": draft})
    if draft is not None:
        sets = "".join(f"    obj.{name} = v{i}\n" for i, name in enumerate(names))
        return f"    obj = draft()\n{sets}    obj.__class__ = cls\n"
    if keyword:
        return f"    obj = cls({', '.join(f'{name}=v{i}' for i, name in enumerate(names))})\n"
    return f"    obj = cls({', '.join(f'v{i}' for i in range(len(names)))})\n"


def _compiled(name: str, source: str, namespace: dict[str, Any]) -> Callable[..., Any]:
    exec(source, namespace)  # generated from the catalogue's field names only
    return namespace[name]


def _constructor(cls: type, names: list[str], keyword: bool) -> Callable[..., Any]:
    """``make(*values)``: an instance of ``cls`` from positional values of ``names``, in order
    (see ``_building``)."""
    namespace: dict[str, Any] = {}
    body = _building(cls, names, keyword, namespace)
    params = ", ".join(f"v{i}" for i in range(len(names)))
    return _compiled("make", f"def make({params}):\n{body}    return obj\n", namespace)


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
    item = cls.ITEM
    item_names = tuple(name for name, _ in item.FIELDS) if item else ()
    return _Layout(
        cls=cls, fixed=_struct(cls), with_header=_struct(cls, HEADER_FORMAT), names=names,
        get=_getter(names), text=text, item=item,
        item_struct=_struct(item) if item else None,
        item_get=_getter(item_names) if item else None,
        make=_constructor(cls, ["seq", *names, *(["channels"] if item else [])], keyword=True),
        make_item=_constructor(item, list(item_names), keyword=False) if item else None,
        items_seen={}, records_seen={}, items_packed={},
    )  # fmt: skip


_LAYOUTS: dict[type, _Layout] = {cls: _layout(cls) for cls in CATALOGUE.values()}


# --- packing --------------------------------------------------------------------------------


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
            out += _packed_items(msg, layout)
    except (struct.error, ValueError, KeyError, TypeError) as exc:
        if isinstance(exc, PayloadError):
            raise
        raise PayloadError(f"{name}: cannot pack: {exc}") from exc
    if len(out) > MAX_PAYLOAD:
        raise PayloadError(f"{name}: payload {len(out)} > {MAX_PAYLOAD} bytes")
    return out


def _packed_items(msg: Message, layout: _Layout) -> bytes:
    """Count byte and records of ``msg.channels``; a tuple packed before is served again."""
    items: tuple[Item, ...] = msg.channels  # type: ignore[attr-defined]
    packed = layout.items_packed
    hit = packed.get(id(items))
    if hit is not None and hit[0] is items:  # the cache holds the tuple: its id stays its own
        return hit[1]
    assert layout.item is not None and layout.item_struct is not None
    assert layout.item_get is not None
    item, pack, get = layout.item, layout.item_struct.pack, layout.item_get
    records = [pack(*get(i)) for i in items if type(i) is item]
    if len(records) != len(items):
        raise PayloadError(f"{type(msg).__name__}: channels must be {item.__name__} records")
    out = bytes([len(items)]) + b"".join(records)
    if type(items) is tuple:  # immutable (and so are the records): safe to serve again
        if len(packed) >= ITEMS_SEEN_MAX:
            packed.clear()
        packed[id(items)] = (items, out)
    return out


def pack_body(msg: Message) -> bytes:
    """Frame header (PROTOCOL_VERSION, type, seq) and payload of ``msg``: the bytes the CRC
    covers; PayloadError when the message does not fit the wire (seq included)."""
    return BODY_PACKERS.get(type(msg), _plain_body)(msg)


def _plain_body(msg: Message) -> bytes:
    if type(msg.seq) is not int or not 0 <= msg.seq < SEQ_MODULO:
        raise PayloadError(f"seq {msg.seq} outside 0..{SEQ_MODULO - 1}")
    return struct.pack(HEADER_FORMAT, PROTOCOL_VERSION, msg.TYPE, msg.seq) + pack_payload(msg)


def _body_packer(layout: _Layout) -> Callable[[Message], bytes]:
    """``pack_body`` for one message class: one struct call over header and fields read
    straight off the message, then the records; anything the struct refuses (or a payload
    too long, or text fields) goes to ``_plain_body``, which says what is wrong."""
    if layout.text:
        return _plain_body
    namespace: dict[str, Any] = {
        "pack": layout.with_header.pack, "plain": _plain_body, "layout": layout,
        "packed_items": _packed_items, "refused": (struct.error, ValueError, TypeError),
    }  # fmt: skip
    values = "".join(f", msg.{name}" for name in layout.names)
    items = "        out += packed_items(msg, layout)\n" if layout.item else ""
    too_long = f"    if len(out) > {HEADER_SIZE + MAX_PAYLOAD}:\n        return plain(msg)\n"
    source = (
        "def pack_body(msg):\n"
        "    seq = msg.seq\n"
        "    if type(seq) is not int:\n"
        "        return plain(msg)\n"
        "    try:\n"
        f"        out = pack({PROTOCOL_VERSION}, {layout.cls.TYPE}, seq{values})\n"
        f"{items}"
        "    except refused:\n"
        "        return plain(msg)\n"
        f"{too_long if layout.item else ''}"
        "    return out\n"
    )
    return _compiled("pack_body", source, namespace)


def renumbered(msg: Message, seq: int) -> Message:
    """``msg`` with sequence number ``seq`` (``dataclasses.replace(msg, seq=seq)``, without its
    per-call look-up of the fields)."""
    layout = _LAYOUTS.get(type(msg))
    if layout is None:
        raise PayloadError(f"{type(msg).__name__}: not a message of the catalogue")
    if layout.item is None:
        return layout.make(seq, *layout.get(msg))
    return layout.make(seq, *layout.get(msg), msg.channels)  # type: ignore[attr-defined]


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


# --- unpacking ------------------------------------------------------------------------------


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


def _frame_unpacker(layout: _Layout) -> Callable[[bytes], Message]:
    """``frame -> message`` for one message class (header checked by the caller: version and
    type): seq and the fixed fields read in place with one struct call (the header's, then the
    payload's) and the message built in one function; a frame of another length (or text
    fields) goes to ``unpack_payload``, which says what is wrong."""
    type_code = layout.cls.TYPE
    header = struct.Struct(HEADER_FORMAT)

    def plain(frame: bytes) -> Message:
        seq = header.unpack_from(frame)[2]
        return unpack_payload(type_code, seq, frame[HEADER_SIZE:-CRC_SIZE])

    if layout.text:
        return plain
    names = ["seq", *layout.names, *(["channels"] if layout.item else [])]
    namespace: dict[str, Any] = {"plain": plain, "unpack": layout.with_header.unpack_from,
                                 "items": _items, "layout": layout, "cls": layout.cls,
                                 "seen": layout.items_seen.get}  # fmt: skip
    building = _building(layout.cls, names, True, namespace)
    fixed_end = HEADER_SIZE + layout.fixed.size
    count = len(layout.names)
    values = "".join(f", v{i + 1}" for i in range(count))
    read = f"    _, _, v0{values} = unpack(frame)\n"  # version and type: the caller's
    if layout.item is None:
        check = f"    if len(frame) != {fixed_end + CRC_SIZE}:\n        return plain(frame)\n"
        records = ""
    else:
        check = (
            f"    end = len(frame) - {CRC_SIZE}\n"
            f"    if end <= {fixed_end}:\n        return plain(frame)\n"
        )
        records = (  # a record list seen before (the same settings block after block): shared
            f"    rest = frame[{fixed_end}:end]\n    v{count + 1} = seen(rest)\n"
            f"    if v{count + 1} is None:\n        v{count + 1} = items(cls, layout, rest)\n"
        )
    source = f"def unpack_frame(frame):\n{check}{read}{records}{building}    return obj\n"
    return _compiled("unpack_frame", source, namespace)


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
    assert layout.item_struct is not None and layout.make_item is not None
    size = layout.item_struct.size
    if not rest:
        raise PayloadError(f"{cls.__name__}: missing item count")
    count = rest[0]
    if len(rest) - 1 != count * size:
        raise PayloadError(
            f"{cls.__name__}: {count} items need {count * size} bytes, got {len(rest) - 1}"
        )
    items = _records(layout, rest, size)
    if len(seen) >= ITEMS_SEEN_MAX:
        seen.clear()
    seen[rest] = items
    return items


def _records(layout: _Layout, rest: bytes, size: int) -> tuple[Item, ...]:
    """The records of a list not seen whole before, each one built once: telemetry's records
    repeat from frame to frame and from channel to channel while their pulse counts do."""
    assert layout.item_struct is not None and layout.make_item is not None
    seen, make, unpack = layout.records_seen, layout.make_item, layout.item_struct.unpack_from
    if len(seen) >= ITEMS_SEEN_MAX:
        seen.clear()
    out = []
    for offset in range(1, len(rest), size):
        raw = rest[offset : offset + size]
        record = seen.get(raw)
        if record is None:
            record = seen[raw] = make(*unpack(rest, offset))
        out.append(record)
    return tuple(out)


#: Per message class, built from its layout: its ``pack_body``, and (by type code) the function
#: ``frame -> message`` that reads a whole decoded frame (CRC, version and type checked).
BODY_PACKERS: dict[type, Callable[[Message], bytes]] = {
    cls: _body_packer(layout) for cls, layout in _LAYOUTS.items()
}
FRAME_UNPACKERS: dict[int, Callable[[bytes], Message]] = {
    cls.TYPE: _frame_unpacker(layout) for cls, layout in _LAYOUTS.items()
}


def record_structs(cls: type[Message]) -> tuple[struct.Struct, struct.Struct | None]:
    """The codec's structs of a message class: its fixed fields, and one channel record (None
    without records). The payload is the fixed fields, then (with records) a count byte and the
    records: for a sender that packs plain values without building message objects."""
    layout = _LAYOUTS[cls]
    return layout.fixed, layout.item_struct
