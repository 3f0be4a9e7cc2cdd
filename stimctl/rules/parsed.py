"""The profiles ``parse_profile`` made in this process, and whether one still holds exactly
what parsing gave it (``as_parsed``): ``validate_profile`` then skips re-checking it."""

from __future__ import annotations

import weakref
from operator import is_
from typing import Any, TypeVar

#: A Profile (stimctl.rules.profile, which imports this module).
Profile = TypeVar("Profile")

__all__ = ["as_parsed", "remember"]

#: id() of each Profile ``parse_profile`` made and still alive -> (a weak reference to it,
#: ``_parts`` of it as parsing left it). ``as_parsed`` asks it; model_copy, model_construct
#: and subclasses make new objects, which are not in it.
_PARSED: dict[int, tuple[weakref.ref[Any], tuple[Any, ...]]] = {}


def _parts(profile: Any) -> tuple[Any, ...]:
    """What a parsed profile is made of: its field values and the items of its two lists.
    The sub-models (Needle, Waveform, Channel, Phase) are frozen and their values immutable,
    so holding the same ones means holding the same figures; only writing past pydantic
    (``object.__setattr__``, ``__dict__``) could change one, and that is no way to build a
    profile."""
    fields = profile.__dict__
    return (*fields.values(), *fields["channels"], *fields["phases"])


def _forget(ref: weakref.ref[Any], key: int) -> None:
    entry = _PARSED.get(key)
    if entry is not None and entry[0] is ref:
        del _PARSED[key]


def remember(profile: Profile) -> Profile:
    """Note ``profile`` as what parsing made (``parse_profile``); returns it."""
    key = id(profile)
    ref = weakref.ref(profile, lambda dead: _forget(dead, key))
    _PARSED[key] = (ref, _parts(profile))
    return profile


def as_parsed(profile: object) -> bool:
    """True when ``profile`` is a Profile ``parse_profile`` made in this process and still
    holds exactly the objects parsing gave it (by identity: a list edited in place or a field
    set past the frozen model answers False). Much cheaper than ``recheck.sound``."""
    entry = _PARSED.get(id(profile))
    if entry is None:
        return False
    ref, then = entry
    if ref() is not profile or profile.__pydantic_extra__ is not None:
        return False
    try:  # _parts(profile), inline, as a list: no tuple copy of it (asked for every profile)
        fields = profile.__dict__
        now = [*fields.values(), *fields["channels"], *fields["phases"]]
    except (KeyError, TypeError):
        return False
    return len(now) == len(then) and all(map(is_, now, then))
