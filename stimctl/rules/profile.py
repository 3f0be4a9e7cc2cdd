"""Profile format stimctl.profile/1: pydantic models and TOML/JSON loading (docs/PROFILES.md)."""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PlainSerializer,
    PlainValidator,
    SerializerFunctionWrapHandler,
    ValidationError,
    model_serializer,
    model_validator,
)
from pydantic_core import PydanticCustomError

from stimctl.protocol.constants import ASYMMETRIC_RECOVERY_RATIO
from stimctl.rules import acupoints, plaintoml
from stimctl.rules.parsed import remember
from stimctl.rules.violations import Violation

__all__ = [
    "ASYMMETRIC_RATIO",
    "MAX_CHANNELS",
    "MAX_PHASES",
    "SCHEMA",
    "Channel",
    "Needle",
    "Phase",
    "Profile",
    "ProfileError",
    "Waveform",
    "load_profile",
    "loads_profile",
    "parse_profile",
    "read_profile_data",
    "total",
]

SCHEMA = "stimctl.profile/1"
SCHEMA_SOURCE = "docs/PROFILES.md (stimctl.profile/1)"
#: biphasic_asymmetric: the recovery phase runs at amplitude / ASYMMETRIC_RATIO for
#: ASYMMETRIC_RATIO x pulse_width_us, so it carries the same charge as the leading phase
#: (the wire's ratio: the device delivers it).
ASYMMETRIC_RATIO = ASYMMETRIC_RECOVERY_RATIO
MAX_CHANNELS = 8
MAX_PHASES = 1000
#: Bounds of the needle and of the texts (docs/PROFILES.md); ``recheck.py`` reads them too.
NEEDLE_DIAMETER_MAX_MM = 0.5
NEEDLE_INSERTION_MAX_MM = 75
NAME_MAX_CHARS = 200
SITE_MAX_CHARS = 64
#: Relative tolerance for ramp sums (0.1 + 0.2 must fit in 0.3).
_RAMP_TOLERANCE = 1e-9

Shape = Literal["biphasic_symmetric", "biphasic_asymmetric", "monophasic"]
Mode = Literal["continuous", "dense_disperse", "intermittent"]


def _number(value: Any, at: tuple[int | str, ...] = ()) -> float:
    """A finite int or float (bool and strings refused), as float."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PydanticCustomError(
            "number_type", "expected a number, got {got}", {"got": type(value).__name__, "at": at}
        )
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise PydanticCustomError("finite_number", "expected a finite number", {"at": at})
    if number <= 0:
        raise PydanticCustomError(
            "greater_than", "must be greater than 0, got {got}", {"got": number, "at": at}
        )
    return number


def _number_or_pair(value: Any) -> float | tuple[float, float]:
    """One positive number, or a pair of them (a TOML/JSON array of two)."""
    if isinstance(value, list | tuple):
        if len(value) != 2:
            raise PydanticCustomError(
                "pair_length",
                "expected a number or a pair of two numbers, got {n} items",
                {"n": len(value)},
            )
        return (_number(value[0], (0,)), _number(value[1], (1,)))
    return _number(value)


NumberOrPair = Annotated[
    float | tuple[float, float],
    PlainValidator(_number_or_pair),
    PlainSerializer(lambda v: list(v) if isinstance(v, tuple) else v),
]
Positive = Annotated[float, Field(gt=0)]
NonNegative = Annotated[float, Field(ge=0)]


def total(values: Iterable[float]) -> float:
    """``math.fsum`` of positive figures, inf where the sum overflows (fsum raises there)."""
    try:
        return math.fsum(values)
    except OverflowError:
        return math.inf


def _misplaced(field: str, message: str) -> PydanticCustomError:
    """A structural error reported at ``field`` of the model being validated."""
    return PydanticCustomError("structure", message, {"at": (field,)})


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)


class Needle(_Strict):
    """Needle electrode geometry; its lateral area (pi x d x L) sets the densities."""

    diameter_mm: Annotated[float, Field(gt=0, le=NEEDLE_DIAMETER_MAX_MM)] = 0.25
    insertion_mm: Annotated[float, Field(gt=0, le=NEEDLE_INSERTION_MAX_MM)] = 15.0


class Waveform(_Strict):
    """Pulse shape shared by all channels."""

    shape: Shape


class Channel(_Strict):
    """One output channel: anode and cathode sites and the plateau amplitude (peak, mA)."""

    id: Annotated[int, Field(ge=1, le=MAX_CHANNELS)]
    anode: Annotated[str, Field(min_length=1, max_length=SITE_MAX_CHARS)]
    cathode: Annotated[str, Field(min_length=1, max_length=SITE_MAX_CHARS)]
    amplitude_ma: Positive


class Phase(_Strict):
    """One phase of the session, run in order; see docs/PROFILES.md for timing semantics."""

    duration_s: Positive
    mode: Mode
    frequency_hz: NumberOrPair
    pulse_width_us: NumberOrPair
    switch_s: Positive | None = None
    on_s: Positive | None = None
    off_s: Positive | None = None
    ramp_up_s: NonNegative = 0.0
    ramp_down_s: NonNegative = 0.0
    window_ramp_s: Positive | None = None

    @model_validator(mode="after")
    def _structure(self) -> Phase:
        mode, switch_s, on_s, edges = self.mode, self.switch_s, self.on_s, self.window_ramp_s
        pair_f = isinstance(self.frequency_hz, tuple)
        dense = mode == "dense_disperse"
        intermittent = mode == "intermittent"
        if dense and not pair_f:
            raise _misplaced("frequency_hz", "dense_disperse needs a frequency pair, e.g. [2, 100]")
        if not dense and pair_f:
            raise _misplaced("frequency_hz", f"{mode} takes one frequency, not a pair")
        if not dense and isinstance(self.pulse_width_us, tuple):
            raise _misplaced("pulse_width_us", f"{mode} takes one pulse width, not a pair")
        if dense and switch_s is None:
            raise _misplaced("switch_s", "dense_disperse needs switch_s (time at each frequency)")
        if not dense and switch_s is not None:
            raise _misplaced("switch_s", "switch_s is only for dense_disperse")
        for name, value in (("on_s", on_s), ("off_s", self.off_s)):
            if intermittent and value is None:
                raise _misplaced(name, f"intermittent needs {name}")
            if not intermittent and value is not None:
                raise _misplaced(name, f"{name} is only for intermittent")
        if not intermittent and edges is not None:
            raise _misplaced("window_ramp_s", "window_ramp_s is only for intermittent")
        up, down, duration = self.ramp_up_s, self.ramp_down_s, self.duration_s
        if up + down > duration * (1 + _RAMP_TOLERANCE):
            raise _misplaced(
                "ramp_down_s",
                f"ramp_up_s + ramp_down_s ({up:g} + {down:g} s) exceeds duration_s"
                f" ({duration:g} s)",
            )
        if edges is not None and on_s is not None and 2 * edges > on_s * (1 + _RAMP_TOLERANCE):
            raise _misplaced(
                "window_ramp_s",
                f"two window edges (2 x {edges:g} s) exceed on_s ({on_s:g} s)",
            )
        return self

    @model_serializer(mode="wrap")
    def _without_unset(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        """Keys that do not apply are left out, not written as null: the dump reads back as
        TOML (no null there) and as JSON (null refused, to accept what TOML accepts)."""
        return {k: v for k, v in handler(self).items() if v is not None}

    @property
    def variants(self) -> tuple[tuple[float, float], ...]:
        """(frequency_hz, pulse_width_us) in the order they run; two for dense_disperse."""
        f = self.frequency_hz if isinstance(self.frequency_hz, tuple) else (self.frequency_hz,)
        pw = self.pulse_width_us
        pws = pw if isinstance(pw, tuple) else (pw,) * len(f)
        return tuple(zip(f, pws, strict=True))


class Profile(_Strict):
    """A complete stimulation prescription in format stimctl.profile/1."""

    schema_id: Literal["stimctl.profile/1"] = Field(alias="schema")
    name: Annotated[str, Field(min_length=1, max_length=NAME_MAX_CHARS)]
    description: str = ""
    source: str = ""
    needle: Needle = Needle()
    waveform: Waveform
    channels: Annotated[list[Channel], Field(min_length=1, max_length=MAX_CHANNELS)]
    phases: Annotated[list[Phase], Field(min_length=1, max_length=MAX_PHASES)]

    @model_validator(mode="after")
    def _structure(self) -> Profile:
        seen: set[int] = set()
        for i, channel in enumerate(self.channels):
            if channel.id in seen:
                raise PydanticCustomError(
                    "structure",
                    "channel id {id} is used twice",
                    {"id": channel.id, "at": ("channels", i, "id")},
                )
            seen.add(channel.id)
        return self

    @property
    def duration_s(self) -> float:
        """Total session time: the sum of the phase durations."""
        return total(p.duration_s for p in self.phases)

    def site_channels(self) -> dict[str, tuple[int, ...]]:
        """Canonical site label -> indices of the channels using it (anode or cathode), in
        order. Sites that do not parse are left out (the rule ``point-unknown`` reports them)."""
        users: dict[str, list[int]] = {}
        for i, channel in enumerate(self.channels):
            for text in (channel.anode, channel.cathode):
                try:
                    label = acupoints.parse_site(text).label
                except acupoints.UnknownPoint:
                    continue
                if i not in users.setdefault(label, []):
                    users[label].append(i)
        return {label: tuple(channels) for label, channels in users.items()}

    @property
    def top_amplitude_ma(self) -> float:
        """The strongest electrode's plateau: the highest sum of the plateaus of the channels
        sharing one site (a channel's own where it shares none). Channels on one needle rise
        together, so it sets the steepest ramp of every edge (docs/SAFETY.md)."""
        sums = [
            total(self.channels[i].amplitude_ma for i in users)
            for users in self.site_channels().values()
        ]
        return max([*sums, *(c.amplitude_ma for c in self.channels)])

    def window_ramp_s(
        self, j: int, max_ramp_rate_ma_per_s: float, top_amplitude_ma: float | None = None
    ) -> float | None:
        """Edge time of phase j's on-windows (None unless intermittent): ``window_ramp_s`` as
        written, else the strongest electrode's plateau / ``max_ramp_rate_ma_per_s``, the fastest
        edge the ramp-rate-max policy allows (docs/PROFILES.md, "intermittent").
        ``top_amplitude_ma``: that plateau when the caller has it already."""
        phase = self.phases[j]
        if phase.mode != "intermittent":
            return None
        if phase.window_ramp_s is not None:
            return phase.window_ramp_s
        top = self.top_amplitude_ma if top_amplitude_ma is None else top_amplitude_ma
        return top / max_ramp_rate_ma_per_s

    def slowest_ramp_ma_per_s(self, max_ramp_rate_ma_per_s: float) -> float:
        """The gentlest rise the profile itself prescribes, over every channel and every rising
        edge (phase ramp-ups, on-window edges), never above ``max_ramp_rate_ma_per_s``: the
        pace of a re-ramp after PAUSE (docs/SAFETY.md). k channels on one needle re-ramp
        together at k x the weakest's pace, within the limit since the needle's own edges are
        (``top_amplitude_ma``)."""
        weakest = min(c.amplitude_ma for c in self.channels)
        edges = [p.ramp_up_s for p in self.phases if p.ramp_up_s > 0]
        edges += [
            w
            for j in range(len(self.phases))
            if (w := self.window_ramp_s(j, max_ramp_rate_ma_per_s)) is not None
        ]
        slowest = weakest / max(edges) if edges else max_ramp_rate_ma_per_s
        return min(slowest, max_ramp_rate_ma_per_s)


class ProfileError(ValueError):
    """A profile could not be read or does not match stimctl.profile/1; see ``violations``."""

    def __init__(
        self, violations: list[Violation] | tuple[Violation, ...], path: str | None = None
    ) -> None:
        self.violations: tuple[Violation, ...] = tuple(violations)
        self.path = path
        lines = [f"{v.loc or '(profile)'}: {v.message}" for v in self.violations]
        where = f"{path}: " if path else ""
        super().__init__(where + "invalid profile: " + "; ".join(lines))


def format_loc(parts: tuple[int | str, ...]) -> str:
    """('channels', 0, 'amplitude_ma') -> 'channels[0].amplitude_ma'."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def schema_violation(loc: str, message: str, actual: Any = None) -> Violation:
    """A ``schema`` error at ``loc``."""
    shown = actual if actual is None or isinstance(actual, int | float | str) else repr(actual)
    if isinstance(shown, str) and len(shown) > 80:
        shown = shown[:77] + "..."
    return Violation("schema", "error", loc, message, None, shown, SCHEMA_SOURCE)


_MESSAGES = {
    "extra_forbidden": "unknown key (not part of stimctl.profile/1)",
    "missing": "required key is missing",
}


def _violations_from(error: ValidationError) -> list[Violation]:
    out = []
    for item in error.errors(include_url=False):
        loc = item["loc"]
        ctx = item.get("ctx") or {}
        at = ctx.get("at", ())
        parts = tuple(loc) + tuple(at)
        if item["type"] == "literal_error" and parts == ("schema",):
            message = f"schema must be exactly {SCHEMA!r}"
        else:
            message = _MESSAGES.get(item["type"], item["msg"])
        actual = None if item["type"] == "missing" else item.get("input")
        if isinstance(actual, dict | list | tuple):
            actual = None
        out.append(schema_violation(format_loc(parts), message, actual))
    return out


def parse_profile(data: Any) -> Profile:
    """Validate decoded TOML/JSON data; raises ProfileError with ``schema`` violations."""
    if not isinstance(data, Mapping):
        raise ProfileError([schema_violation("", "a profile must be a table/object")])
    try:
        return remember(Profile.model_validate(dict(data)))
    except ValidationError as error:
        raise ProfileError(_violations_from(error)) from None
    except RecursionError:
        raise ProfileError([schema_violation("", "profile is nested too deeply")]) from None


class _JsonObject(dict[str, Any]):
    """A decoded JSON object that remembers the keys it was given more than once."""

    __slots__ = ("duplicates",)

    def __init__(self, pairs: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.duplicates: list[str] = []
        for key, value in pairs:
            if key in self and key not in self.duplicates:
                self.duplicates.append(key)
            self[key] = value


def _json_plain(value: Any, at: tuple[int | str, ...], problems: list[Violation]) -> Any:
    """``value`` as plain dicts and lists, noting what TOML cannot hold: a key given twice
    (TOML refuses it) and null (TOML has none). NaN and infinities, like TOML's nan and inf,
    reach the model, which refuses them at their field."""
    if value is None:
        problems.append(schema_violation(format_loc(at), "null is not allowed: leave the key out"))
    elif isinstance(value, _JsonObject):
        for key in value.duplicates:
            loc = format_loc((*at, key))
            problems.append(schema_violation(loc, f"key {key!r} is given more than once"))
        return {k: _json_plain(v, (*at, k), problems) for k, v in value.items()}
    elif isinstance(value, list):
        return [_json_plain(v, (*at, i), problems) for i, v in enumerate(value)]
    return value


def _decode(raw: bytes, fmt: Literal["toml", "json"]) -> Any:
    problems: list[Violation] = []
    try:
        if fmt == "json":
            data = _json_plain(json.loads(raw, object_pairs_hook=_JsonObject), (), problems)
        else:
            data = plaintoml.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        message = f"not UTF-8 text: {error.reason} at byte {error.start}"
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as error:
        message = f"not valid {fmt.upper()}: {error}"
    except (RecursionError, ValueError) as error:
        message = f"not valid {fmt.upper()}: {type(error).__name__}"
    else:
        if problems:
            raise ProfileError(problems)
        return data
    raise ProfileError([schema_violation("", message)])


def format_for(path: str | Path) -> Literal["toml", "json"]:
    """JSON for ``*.json``, TOML otherwise."""
    return "json" if str(path).lower().endswith(".json") else "toml"


def loads_profile(raw: bytes | str, fmt: Literal["toml", "json"] = "toml") -> Profile:
    """Parse profile text (TOML or JSON with the same structure); raises ProfileError."""
    data = _decode(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw, fmt)
    return parse_profile(data)


def read_profile_data(path: str | Path) -> Any:
    """Read and decode a profile file without checking its structure; raises ProfileError."""
    try:
        raw = Path(path).read_bytes()
    except OSError as error:
        message = f"cannot read: {error.strerror or error}"
        raise ProfileError([schema_violation("", message)], str(path)) from None
    try:
        return _decode(raw, format_for(path))
    except ProfileError as error:
        raise ProfileError(error.violations, str(path)) from None


def load_profile(path: str | Path) -> Profile:
    """Load a profile file (``*.json`` as JSON, else TOML); raises ProfileError on bad input.

    Only the format is checked here; the safety rules run in ``validate_profile``.
    """
    data = read_profile_data(path)
    try:
        return parse_profile(data)
    except ProfileError as error:
        raise ProfileError(error.violations, str(path)) from None
