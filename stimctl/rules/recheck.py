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

from stimctl.rules.parsed import as_parsed
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
#: The model validator of Phase as a plain function (raises PydanticCustomError).
_phase_structure = Phase._structure
_FIELD_COUNTS = {cls: len(cls.model_fields) for cls in (Profile, Needle, Waveform, Channel, Phase)}


def _fields(model: Any, cls: type) -> dict[str, Any]:
    """The model's field values when it is exactly ``cls`` with as many fields set as it has;
    KeyError otherwise. Every caller reads each field, so a wrong name raises there too."""
    if type(model) is not cls or model.__pydantic_extra__ is not None:
        raise KeyError(cls.__name__)
    fields: dict[str, Any] = model.__dict__
    if len(fields) != _FIELD_COUNTS[cls]:
        raise KeyError(cls.__name__)
    return fields


def _text(value: Any, most: int) -> bool:
    return type(value) is str and 1 <= len(value) <= most


def _channels_sound(channels: Any) -> bool:
    if type(channels) is not list or not 1 <= len(channels) <= MAX_CHANNELS:
        return False
    ids = set()
    for channel in channels:
        f = _fields(channel, Channel)
        channel_id, amplitude, anode, cathode = f["id"], f["amplitude_ma"], f["anode"], f["cathode"]
        if not (
            type(channel_id) is int
            and 1 <= channel_id <= MAX_CHANNELS
            and type(amplitude) is float
            and 0.0 < amplitude < _INF
            and type(anode) is str
            and 1 <= len(anode) <= SITE_MAX_CHARS
            and type(cathode) is str
            and 1 <= len(cathode) <= SITE_MAX_CHARS
        ):
            return False
        ids.add(channel_id)
    return len(ids) == len(channels)  # each id once (Profile._structure)


def _phase_sound(phase: Any) -> bool:
    f = _fields(phase, Phase)
    mode, frequency, width = f["mode"], f["frequency_hz"], f["pulse_width_us"]
    up, down = f["ramp_up_s"], f["ramp_down_s"]
    if type(mode) is not str or mode not in _MODES:
        return False
    if (type(frequency) is tuple and len(frequency) != 2) or (
        type(width) is tuple and len(width) != 2
    ):
        return False
    positive = (
        f["duration_s"],
        *(frequency if type(frequency) is tuple else (frequency,)),
        *(width if type(width) is tuple else (width,)),
    )
    for value in positive:
        if type(value) is not float or not 0.0 < value < _INF:
            return False
    for value in (f["switch_s"], f["on_s"], f["off_s"], f["window_ramp_s"]):
        if value is not None and (type(value) is not float or not 0.0 < value < _INF):
            return False
    for value in (up, down):
        if type(value) is not float or not 0.0 <= value < _INF:
            return False
    try:
        _phase_structure(phase)
    except PydanticCustomError:
        return False
    return True


def _profile_sound(profile: Any) -> bool:
    f = _fields(profile, Profile)
    schema, needle, waveform = f["schema_id"], _fields(f["needle"], Needle), f["waveform"]
    diameter, insertion = needle["diameter_mm"], needle["insertion_mm"]
    shape, phases = _fields(waveform, Waveform)["shape"], f["phases"]
    return (
        type(schema) is str
        and schema == SCHEMA
        and _text(f["name"], NAME_MAX_CHARS)
        and type(f["description"]) is str
        and type(f["source"]) is str
        and type(diameter) is float
        and 0.0 < diameter <= NEEDLE_DIAMETER_MAX_MM
        and type(insertion) is float
        and 0.0 < insertion <= NEEDLE_INSERTION_MAX_MM
        and type(shape) is str
        and shape in _SHAPES
        and _channels_sound(f["channels"])
        and type(phases) is list
        and 1 <= len(phases) <= MAX_PHASES
        and all(_phase_sound(phase) for phase in phases)
    )


def sound(profile: Any) -> bool:
    """True when ``profile`` holds exactly what ``parse_profile`` makes of its dump."""
    if as_parsed(profile):  # made by parsing, and still made of what parsing gave it
        return True
    try:
        return _profile_sound(profile)
    except KeyError:  # not exactly the model, or not exactly its fields
        return False
