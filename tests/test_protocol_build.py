"""Decoded messages and records are built without their ``__init__`` (payload.py: a draft with
the same slots, then ``__class__`` assignment): they are exactly what the dataclasses make,
same type, same fields, equal, hashed, shown, pickled and copied alike, and frozen."""

from __future__ import annotations

import copy
import dataclasses
import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stimctl.protocol import CATALOGUE, SEQ_MODULO, FrameDecoder, Message, encode, renumbered
from stimctl.protocol.messages import Item

CLASSES = sorted(CATALOGUE.values(), key=lambda cls: cls.TYPE)
UINT_MAX = {"B": 0xFF, "H": 0xFFFF, "I": 0xFFFF_FFFF}


def _values(code: str) -> st.SearchStrategy[object]:
    if code.endswith("s"):
        return st.text(st.characters(min_codepoint=1, max_codepoint=127), max_size=int(code[:-1]))
    return st.integers(0, UINT_MAX[code])


def _messages(cls: type[Message]) -> st.SearchStrategy[Message]:
    kwargs = {name: _values(code) for name, code in cls.FIELDS}
    if cls.ITEM is not None:
        item = st.builds(cls.ITEM, *(_values(code) for _, code in cls.ITEM.FIELDS))
        kwargs["channels"] = st.lists(item, max_size=4).map(tuple)
    return st.builds(cls, seq=st.integers(0, SEQ_MODULO - 1), **kwargs)


def _same_object(made: object, expected: object) -> None:
    assert type(made) is type(expected)
    assert dataclasses.astuple(made) == dataclasses.astuple(expected)  # type: ignore[arg-type]
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    assert pickle.loads(pickle.dumps(made)) == expected
    assert copy.copy(made) == expected and copy.deepcopy(made) == expected
    for field in dataclasses.fields(made):  # type: ignore[arg-type]
        with pytest.raises(dataclasses.FrozenInstanceError):
            setattr(made, field.name, getattr(made, field.name))
        with pytest.raises(dataclasses.FrozenInstanceError):
            delattr(made, field.name)
    with pytest.raises((AttributeError, TypeError)):
        made.extra = 1  # type: ignore[attr-defined]


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: cls.__name__)
@settings(deadline=None, max_examples=30)
@given(data=st.data())
def test_a_decoded_message_is_the_dataclass_the_sender_built(cls, data) -> None:
    sent = data.draw(_messages(cls))
    (decoded,) = FrameDecoder().feed(encode(sent))
    _same_object(decoded, sent)
    if cls.ITEM is not None:  # (DeviceInfo's ``channels`` is a count)
        pairs = zip(decoded.channels, sent.channels, strict=True)  # type: ignore[attr-defined]
        for record, expected in pairs:
            assert isinstance(record, Item)
            _same_object(record, expected)
    _same_object(renumbered(decoded, 7), dataclasses.replace(sent, seq=7))
    assert dataclasses.replace(decoded, seq=7) == dataclasses.replace(sent, seq=7)
