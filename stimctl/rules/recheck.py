"""Re-checking a Profile that did not come from ``parse_profile`` just now (``sound``).

``validate_profile`` never trusts the Profile it is given: one built past pydantic
(``model_copy(update=...)``, ``model_construct``, a list edited in place) may hold a negative or
non-finite figure that every rule's "above the limit" comparison would pass. ``sound`` walks the
object as it is and answers True only when it holds exactly what ``parse_profile`` makes of its
dump: the exact types parsing produces (float, int, str, tuple pairs, lists of the models), every
bound of the models and their structure checks. Anything else, however harmless, answers False,
and ``validate_profile`` then dumps and parses it again (the slow path, with pydantic's own
messages). tests/test_recheck.py holds it to that: it never says True where parsing the dump
would refuse or change a value.
"""

from __future__ import annotations

import math
from typing import Any, get_args

from pydantic_core import PydanticCustomError

from stimctl.rules.profile import (
    MAX_CHANNELS,
    MAX_PHASES,
    NAME_MAX_CHARS,
    NEEDLE_DIAMETER_MAX_MM,
    NEEDLE_INSERTION_MAX_MM,
    SCHEMA,
    SITE_MAX_CHARS,
    Channel,
    Mode,
    Needle,
    Phase,
    Profile,
    Shape,
    Waveform,
)

__all__ = ["sound"]

_INF = math.inf
_SHAPES = frozenset(get_args(Shape))
_MODES = frozenset(get_args(Mode))
_PROFILE_KEYS = frozenset(Profile.model_fields)
_NEEDLE_KEYS = frozenset(Needle.model_fields)
_WAVEFORM_KEYS = frozenset(Waveform.model_fields)
_CHANNEL_KEYS = frozenset(Channel.model_fields)
_PHASE_KEYS = frozenset(Phase.model_fields)
_OPTIONAL = ("switch_s", "on_s", "off_s", "window_ramp_s")
#: The model validator of Phase as a plain function (raises PydanticCustomError).
_phase_structure = Phase._structure


def _positive(value: Any) -> bool:
    """A finite float > 0, as parsing leaves every positive figure."""
    return type(value) is float and 0.0 < value < _INF


def _number_or_pair(value: Any) -> bool:
    if type(value) is tuple:
        return len(value) == 2 and _positive(value[0]) and _positive(value[1])
    return _positive(value)


def _text(value: Any, most: int) -> bool:
    return type(value) is str and 1 <= len(value) <= most


def _fields(model: Any, cls: type, keys: frozenset[str]) -> dict[str, Any] | None:
    """The model's field values when it is exactly ``cls`` with exactly its fields set."""
    if type(model) is not cls or model.__pydantic_extra__ is not None:
        return None
    fields: dict[str, Any] = model.__dict__
    return fields if fields.keys() == keys else None


def _channels_sound(channels: Any) -> bool:
    if type(channels) is not list or not 1 <= len(channels) <= MAX_CHANNELS:
        return False
    ids = set()
    for channel in channels:
        f = _fields(channel, Channel, _CHANNEL_KEYS)
        if f is None:
            return False
        channel_id = f["id"]
        if type(channel_id) is not int or not 1 <= channel_id <= MAX_CHANNELS:
            return False
        if not (
            _text(f["anode"], SITE_MAX_CHARS)
            and _text(f["cathode"], SITE_MAX_CHARS)
            and _positive(f["amplitude_ma"])
        ):
            return False
        ids.add(channel_id)
    return len(ids) == len(channels)  # each id once (Profile._structure)


def _phase_sound(phase: Any) -> bool:
    f = _fields(phase, Phase, _PHASE_KEYS)
    if f is None:
        return False
    if not (
        _positive(f["duration_s"])
        and type(f["mode"]) is str
        and f["mode"] in _MODES
        and _number_or_pair(f["frequency_hz"])
        and _number_or_pair(f["pulse_width_us"])
    ):
        return False
    for name in _OPTIONAL:
        value = f[name]
        if value is not None and not _positive(value):
            return False
    for name in ("ramp_up_s", "ramp_down_s"):
        value = f[name]
        if type(value) is not float or not 0.0 <= value < _INF:
            return False
    try:
        _phase_structure(phase)
    except PydanticCustomError:
        return False
    return True


def sound(profile: Any) -> bool:
    """True when ``profile`` holds exactly what ``parse_profile`` makes of its dump."""
    f = _fields(profile, Profile, _PROFILE_KEYS)
    if f is None:
        return False
    if f["schema_id"] != SCHEMA or type(f["schema_id"]) is not str:
        return False
    if not _text(f["name"], NAME_MAX_CHARS):
        return False
    if type(f["description"]) is not str or type(f["source"]) is not str:
        return False
    needle = _fields(f["needle"], Needle, _NEEDLE_KEYS)
    if needle is None:
        return False
    diameter, insertion = needle["diameter_mm"], needle["insertion_mm"]
    if not (
        type(diameter) is float
        and 0.0 < diameter <= NEEDLE_DIAMETER_MAX_MM
        and type(insertion) is float
        and 0.0 < insertion <= NEEDLE_INSERTION_MAX_MM
    ):
        return False
    waveform = _fields(f["waveform"], Waveform, _WAVEFORM_KEYS)
    if waveform is None or type(waveform["shape"]) is not str or waveform["shape"] not in _SHAPES:
        return False
    if not _channels_sound(f["channels"]):
        return False
    phases = f["phases"]
    if type(phases) is not list or not 1 <= len(phases) <= MAX_PHASES:
        return False
    return all(_phase_sound(phase) for phase in phases)
