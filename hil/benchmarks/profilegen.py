"""Generated profiles, valid and invalid, for the validation benchmark (each one distinct).

``generate(count, seed)`` returns ``count`` profiles as file bytes: about half are clean,
the rest break one or more rules (amplitude, pulse width, frequency, device resolution, charge
balance, ramps, duration, paths, sites, aliases, shared needles), the schema (missing, extra or
mistyped keys, mode structure) or the TOML/JSON syntax itself. Channels 1-8 with random ids,
1-4 phases of every mode, needles, shapes and site spellings vary; every profile has its own
name, so no two files are the same. The same seed gives the same profiles.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from stimctl.rules import acupoints
from stimctl.rules.profile import MAX_CHANNELS, SCHEMA, Profile, ProfileError, loads_profile

__all__ = ["GeneratedProfile", "generate", "profile_data", "to_toml", "write"]

#: canonical meridian -> spellings stimctl also reads (acupoints.MERIDIAN_ALIASES).
_ALIASES: dict[str, list[str]] = {}
for _alias, _code in acupoints.MERIDIAN_ALIASES.items():
    _ALIASES.setdefault(_code, []).append(_alias)

_WORDS = (
    *("dense", "disperse", "electroacupuncture", "needle", "plateau", "ramp", "tolerance"),
    *("titrated", "protocol", "trial", "analgesia", "migraine", "knee", "osteoarthritis"),
    *("postoperative", "nausea", "session", "clinic", "start", "low"),
)
_SHAPES = ("biphasic_symmetric", "biphasic_asymmetric", "monophasic")
_SCHEMA_FAULTS = (
    "missing-key",
    "extra-key",
    "wrong-type",
    "duplicate-id",
    "dense-single",
    "switch-on-continuous",
    "negative",
    "nan",
    "nine-channels",
    "schema-string",
    "no-phases",
    "ramps-exceed",
)
_RULE_FAULTS = (
    "amplitude",
    "pulse-width",
    "frequency",
    "resolution",
    "monophasic",
    "duration",
    "no-ramp",
    "steep-ramp",
    "contralateral",
    "transthoracic",
    "unknown-point",
    "alias",
    "neck-or-eye",
    "same-pair",
    "shared-needle",
    "thin-needle",
)
_SYNTAX_FAULTS = ("duplicate-key", "unterminated", "binary", "bad-value")


@dataclass(frozen=True, slots=True)
class GeneratedProfile:
    """One generated file: its name (unique), format and bytes."""

    name: str
    fmt: Literal["toml", "json"]
    raw: bytes

    @property
    def filename(self) -> str:
        return f"{self.name}.{self.fmt}"


def _limb_points() -> dict[str, list[str]]:
    by_region: dict[str, list[str]] = {}
    for point in acupoints.catalogue().values():
        by_region.setdefault(point.region, []).append(point.code)
    return by_region


_BY_REGION = _limb_points()


def _spell(rng: random.Random, code: str, side: str | None, variant: bool) -> str:
    """``ST36-L``, or with ``variant`` one of the other spellings stimctl reads."""
    if not variant:
        return code if side is None else f"{code}-{side}"
    point = acupoints.get(code)
    meridian = rng.choice([point.meridian, *_ALIASES.get(point.meridian, [])])
    number = str(point.number).zfill(rng.choice((1, 2)))
    text = meridian + rng.choice(("", "-", " ")) + number
    if side is not None:
        text += rng.choice(("", "-", " ")) + side
    return text.lower() if rng.random() < 0.5 else text.title()


def _pair(rng: random.Random, region: str | None = None) -> tuple[str, str, str | None]:
    """Two different points of one limb (or ``region``) and the side they share."""
    region = region or rng.choice(("lower_limb", "upper_limb"))
    a, b = rng.sample(_BY_REGION[region], 2)
    side = None if acupoints.get(a).midline else rng.choice("LR")
    return a, b, side


def _number(rng: random.Random, lo: float, hi: float, step: float) -> float | int:
    """A random multiple of ``step`` in lo..hi; an int when it is whole (as people write)."""
    value = round(rng.uniform(lo, hi) / step) * step
    value = round(value, 6)
    return int(value) if value == int(value) and rng.random() < 0.7 else value


def _words(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(_WORDS) for _ in range(n))


def _channels(rng: random.Random, n: int, top_ma: float) -> list[dict[str, Any]]:
    ids = rng.sample(range(1, MAX_CHANNELS + 1), n)
    region = rng.choice(("lower_limb", "upper_limb"))
    side = rng.choice("LR")
    out = []
    for channel_id in ids:
        a, b = rng.sample(_BY_REGION[region], 2)
        out.append(
            {
                "id": channel_id,
                "anode": _spell(rng, a, side, False),
                "cathode": _spell(rng, b, side, False),
                "amplitude_ma": _number(rng, 0.1, top_ma, 0.01),
            }
        )
    return out


def _phase(rng: random.Random, top_ma: float, first: bool) -> dict[str, Any]:
    mode = rng.choice(("continuous", "dense_disperse", "intermittent"))
    ramp_min = top_ma / 1.5  # keeps the ramp rate under 2 mA/s
    phase: dict[str, Any] = {"duration_s": _number(rng, 60, 900, 1), "mode": mode}
    if mode == "dense_disperse":
        low, high = _number(rng, 1, 4, 1), _number(rng, 50, 100, 10)
        phase["frequency_hz"] = [low, high]
        phase["pulse_width_us"] = (
            [_number(rng, 300, 600, 10), _number(rng, 100, 300, 10)]
            if rng.random() < 0.5
            else _number(rng, 100, 300, 10)
        )
        phase["switch_s"] = _number(rng, 1, 5, 0.5)
    else:
        phase["frequency_hz"] = _number(rng, 1, 100, 0.1)
        phase["pulse_width_us"] = _number(rng, 100, 500, 1)
    if mode == "intermittent":
        on = _number(rng, 2 * ramp_min + 1, 2 * ramp_min + 10, 0.5)
        phase["on_s"] = on
        phase["off_s"] = _number(rng, 1, 10, 0.5)
        phase["ramp_up_s"] = round(ramp_min + 0.1, 3)
        phase["ramp_down_s"] = round(ramp_min, 3) if rng.random() < 0.5 else 0
    else:
        phase["ramp_up_s"] = _number(rng, ramp_min + 0.5, ramp_min + 20, 0.5)
        phase["ramp_down_s"] = _number(rng, ramp_min + 0.5, ramp_min + 20, 0.5)
        if not first and rng.random() < 0.5:
            del phase["ramp_down_s"]
    return phase


def profile_data(rng: random.Random, index: int, faults: tuple[str, ...] = ()) -> dict[str, Any]:
    """A clean profile named for ``index``, then each of ``faults`` applied to it."""
    top_ma = rng.choice((0.5, 1.0, 2.0, 3.0))
    data: dict[str, Any] = {"schema": SCHEMA, "name": f"generated profile {index}"}
    if rng.random() < 0.7:
        data["description"] = _words(rng, rng.randrange(5, 60))
    if rng.random() < 0.5:
        data["source"] = _words(rng, rng.randrange(3, 20))
    if rng.random() < 0.4:
        data["needle"] = {
            "diameter_mm": _number(rng, 0.12, 0.35, 0.01),
            "insertion_mm": _number(rng, 10, 40, 1),
        }
    data["waveform"] = {"shape": rng.choice(_SHAPES[:2])}
    data["channels"] = _channels(rng, rng.randint(1, MAX_CHANNELS), top_ma)
    phases = [_phase(rng, top_ma, j == 0) for j in range(rng.randint(1, 4))]
    data["phases"] = phases
    for fault in faults:
        _FAULTS[fault](rng, data)
    return data


def _any_channel(rng: random.Random, data: dict[str, Any]) -> dict[str, Any]:
    return rng.choice(data["channels"])


def _any_phase(rng: random.Random, data: dict[str, Any]) -> dict[str, Any]:
    return rng.choice(data["phases"])


def _set_pair(channel: dict[str, Any], a: str, b: str) -> None:
    channel["anode"], channel["cathode"] = a, b


def _fault_missing_key(rng: random.Random, data: dict[str, Any]) -> None:
    where = rng.choice(("top", "channel", "phase"))
    if where == "top":
        del data[rng.choice(("name", "waveform", "schema"))]
    elif where == "channel":
        del _any_channel(rng, data)[rng.choice(("anode", "amplitude_ma", "id"))]
    else:
        del _any_phase(rng, data)[rng.choice(("duration_s", "mode", "pulse_width_us"))]


def _fault_extra_key(rng: random.Random, data: dict[str, Any]) -> None:
    target = rng.choice((data, _any_channel(rng, data), _any_phase(rng, data)))
    target[rng.choice(("ramp_up", "amplitude", "notes", "freq_hz"))] = rng.randint(1, 9)


def _fault_wrong_type(rng: random.Random, data: dict[str, Any]) -> None:
    channel = _any_channel(rng, data)
    choice = rng.randrange(3)
    if choice == 0:
        channel["amplitude_ma"] = str(channel["amplitude_ma"])
    elif choice == 1:
        channel["id"] = float(channel["id"]) + 0.5
    else:
        _any_phase(rng, data)["duration_s"] = True


def _fault_duplicate_id(rng: random.Random, data: dict[str, Any]) -> None:
    if len(data["channels"]) < 2:
        a, b, side = _pair(rng)
        data["channels"].append(
            {"id": 0, "anode": f"{a}-{side}", "cathode": f"{b}-{side}", "amplitude_ma": 0.5}
        )
    data["channels"][-1]["id"] = data["channels"][0]["id"]


def _fault_dense_single(rng: random.Random, data: dict[str, Any]) -> None:
    phase = _any_phase(rng, data)
    phase["mode"] = "dense_disperse"
    phase.pop("on_s", None), phase.pop("off_s", None)
    phase["frequency_hz"] = 2
    phase["switch_s"] = 3


def _fault_switch_on_continuous(rng: random.Random, data: dict[str, Any]) -> None:
    phase = _any_phase(rng, data)
    phase["switch_s"] = 3
    if phase["mode"] == "dense_disperse":
        phase["mode"] = "continuous"


def _fault_negative(rng: random.Random, data: dict[str, Any]) -> None:
    target = rng.choice(("amplitude", "pulse", "ramp"))
    if target == "amplitude":
        _any_channel(rng, data)["amplitude_ma"] = -rng.uniform(0.1, 3)
    elif target == "pulse":
        _any_phase(rng, data)["pulse_width_us"] = -rng.randint(1, 500)
    else:
        _any_phase(rng, data)["ramp_up_s"] = -rng.uniform(0.1, 3)


def _fault_nan(rng: random.Random, data: dict[str, Any]) -> None:
    value = rng.choice((math.nan, math.inf, -math.inf))
    if rng.random() < 0.5:
        _any_channel(rng, data)["amplitude_ma"] = value
    else:
        _any_phase(rng, data)["duration_s"] = value


def _fault_nine_channels(rng: random.Random, data: dict[str, Any]) -> None:
    while len(data["channels"]) <= MAX_CHANNELS:
        a, b, side = _pair(rng)
        data["channels"].append(
            {"id": 9, "anode": f"{a}-{side}", "cathode": f"{b}-{side}", "amplitude_ma": 0.5}
        )


def _fault_schema_string(rng: random.Random, data: dict[str, Any]) -> None:
    data["schema"] = rng.choice(("stimctl.profile/2", "stimctl.profile", ""))


def _fault_no_phases(rng: random.Random, data: dict[str, Any]) -> None:
    data[rng.choice(("phases", "channels"))] = []


def _fault_ramps_exceed(rng: random.Random, data: dict[str, Any]) -> None:
    phase = _any_phase(rng, data)
    window = phase.get("on_s", phase["duration_s"])
    phase["ramp_up_s"] = window
    phase["ramp_down_s"] = rng.uniform(1, 5)


def _fault_amplitude(rng: random.Random, data: dict[str, Any]) -> None:
    _any_channel(rng, data)["amplitude_ma"] = _number(rng, 10.01, 30, 0.01)


def _fault_pulse_width(rng: random.Random, data: dict[str, Any]) -> None:
    phase = _any_phase(rng, data)
    phase["pulse_width_us"] = rng.choice((_number(rng, 1, 49, 1), _number(rng, 1001, 5000, 1)))


def _fault_frequency(rng: random.Random, data: dict[str, Any]) -> None:
    phase = _any_phase(rng, data)
    high = _number(rng, 201, 2000, 1)
    if isinstance(phase["frequency_hz"], list):
        phase["frequency_hz"] = [phase["frequency_hz"][0], high]
    else:
        phase["frequency_hz"] = rng.choice((high, _number(rng, 0.1, 0.9, 0.1)))


def _fault_resolution(rng: random.Random, data: dict[str, Any]) -> None:
    phase = _any_phase(rng, data)
    choice = rng.randrange(3)
    if choice == 0 and not isinstance(phase["frequency_hz"], list):
        phase["frequency_hz"] = round(rng.uniform(1, 100), 3) + 0.0005
    elif choice == 1 and not isinstance(phase["pulse_width_us"], list):
        phase["pulse_width_us"] = round(rng.uniform(100, 500), 1) + 0.25
    else:
        phase["duration_s"] = round(rng.uniform(0.0001, 0.0009), 5)


def _fault_monophasic(rng: random.Random, data: dict[str, Any]) -> None:
    data["waveform"]["shape"] = "monophasic"


def _fault_duration(rng: random.Random, data: dict[str, Any]) -> None:
    _any_phase(rng, data)["duration_s"] = _number(rng, 3601, 20000, 1)


def _fault_no_ramp(rng: random.Random, data: dict[str, Any]) -> None:
    data["phases"][0]["ramp_up_s"] = 0


def _fault_steep_ramp(rng: random.Random, data: dict[str, Any]) -> None:
    phase = _any_phase(rng, data)
    phase["ramp_up_s" if rng.random() < 0.5 else "ramp_down_s"] = rng.choice((0.1, 0.2, 0.25))


def _fault_contralateral(rng: random.Random, data: dict[str, Any]) -> None:
    """Left to right: on the legs (a warning), the arms or across the head."""
    region = rng.choice(("lower_limb", "upper_limb", "head"))
    a, b = rng.sample([c for c in _BY_REGION[region] if not acupoints.get(c).midline], 2)
    _set_pair(_any_channel(rng, data), f"{a}-L", f"{b}-R")


def _fault_transthoracic(rng: random.Random, data: dict[str, Any]) -> None:
    arm = rng.choice(_BY_REGION["upper_limb"])
    other = rng.choice(_BY_REGION[rng.choice(("lower_limb", "chest"))])
    side = rng.choice("LR")
    _set_pair(_any_channel(rng, data), f"{arm}-{side}", f"{other}-{side}")


def _fault_unknown_point(rng: random.Random, data: dict[str, Any]) -> None:
    bad = rng.choice(("ST99-L", "XX3-L", "ST36", "GV20-L", "36ST", "", "LR3-X"))
    channel = _any_channel(rng, data)
    channel[rng.choice(("anode", "cathode"))] = bad or " "


def _fault_alias(rng: random.Random, data: dict[str, Any]) -> None:
    for channel in data["channels"]:
        for end in ("anode", "cathode"):
            try:
                site = acupoints.parse_site(channel[end])
            except acupoints.UnknownPoint:
                continue
            if rng.random() < 0.5:
                channel[end] = _spell(rng, site.point.code, site.side, True)


def _fault_neck_or_eye(rng: random.Random, data: dict[str, Any]) -> None:
    region = rng.choice(("anterior_neck", "eye", "periorbital", "face"))
    a, b = rng.sample(_BY_REGION[region], 2) if len(_BY_REGION[region]) > 1 else (None, None)
    if a is None:
        a, b = _BY_REGION[region][0], rng.choice(_BY_REGION["face"])
    ends = []
    for code in (a, b):
        point = acupoints.get(code)
        ends.append(code if point.midline else f"{code}-L")
    _set_pair(_any_channel(rng, data), ends[0], ends[1])


def _fault_same_pair(rng: random.Random, data: dict[str, Any]) -> None:
    first = data["channels"][0]
    free = sorted(set(range(1, MAX_CHANNELS + 1)) - {c["id"] for c in data["channels"]})
    if not free:
        data["channels"][-1].update(anode=first["cathode"], cathode=first["anode"])
        return
    data["channels"].append({**first, "id": free[0], "anode": first["cathode"]})
    data["channels"][-1]["cathode"] = first["anode"]


def _fault_shared_needle(rng: random.Random, data: dict[str, Any]) -> None:
    first = data["channels"][0]
    free = sorted(set(range(1, MAX_CHANNELS + 1)) - {c["id"] for c in data["channels"]})
    try:
        site = acupoints.parse_site(first["anode"])
    except acupoints.UnknownPoint:
        return
    other = rng.choice([c for c in _BY_REGION[site.point.region] if c != site.point.code])
    amplitude = _number(rng, 4, 9, 0.01)
    first["amplitude_ma"] = amplitude
    cathode = _spell(rng, other, site.side, False)
    new = {"anode": first["anode"], "cathode": cathode, "amplitude_ma": amplitude}
    if free:
        data["channels"].append({"id": free[0], **new})
    elif len(data["channels"]) > 1:
        data["channels"][-1].update(new)


def _fault_thin_needle(rng: random.Random, data: dict[str, Any]) -> None:
    data["needle"] = {"diameter_mm": 0.12, "insertion_mm": _number(rng, 1, 5, 1)}
    for channel in data["channels"]:
        channel["amplitude_ma"] = _number(rng, 2, 9, 0.01)


_FAULTS: dict[str, Callable[[random.Random, dict[str, Any]], None]] = {
    name: globals()["_fault_" + name.replace("-", "_")] for name in _SCHEMA_FAULTS + _RULE_FAULTS
}


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def to_toml(data: dict[str, Any]) -> str:
    """Profile-shaped data (scalars, tables, arrays of tables) as TOML text."""
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not _is_table(v)]
    for key, value in data.items():
        if isinstance(value, dict):
            lines += ["", f"[{key}]", *(f"{k} = {_toml_value(v)}" for k, v in value.items())]
        elif _is_table(value):
            for item in value:
                lines += ["", f"[[{key}]]", *(f"{k} = {_toml_value(v)}" for k, v in item.items())]
    return "\n".join(lines) + "\n"


def _is_table(value: Any) -> bool:
    return isinstance(value, dict) or (
        isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)
    )


def _break_syntax(rng: random.Random, text: str, fault: str) -> bytes:
    lines = text.splitlines()
    if fault == "duplicate-key":
        i = next(i for i, line in enumerate(lines) if line.startswith("name = "))
        lines.insert(i + 1, lines[i])
    elif fault == "unterminated":
        i = rng.choice([i for i, line in enumerate(lines) if '"' in line])
        lines[i] = lines[i].rstrip('"')
    elif fault == "bad-value":
        i = rng.choice([i for i, line in enumerate(lines) if line.startswith("amplitude_ma")])
        lines[i] = "amplitude_ma = 1.5 mA"
    else:
        return text.encode() + bytes(rng.randrange(256) for _ in range(16)) + b"\xff\xfe"
    return ("\n".join(lines) + "\n").encode()


def generate(count: int, seed: int = 15) -> list[GeneratedProfile]:
    """``count`` distinct profiles: ~45% clean, ~35% rule faults, ~15% schema faults,
    ~5% syntax faults; ~10% written as JSON."""
    rng = random.Random(seed)
    out = []
    for index in range(count):
        roll = rng.random()
        syntax = None
        if roll < 0.45:
            faults: tuple[str, ...] = ()
        elif roll < 0.80:
            faults = tuple(rng.sample(_RULE_FAULTS, rng.choice((1, 1, 2, 3))))
        elif roll < 0.95:
            faults = (rng.choice(_SCHEMA_FAULTS),)
        else:
            faults, syntax = (), rng.choice(_SYNTAX_FAULTS)
        data = profile_data(rng, index, faults)
        name = f"gen-{index:05d}"
        if syntax is None and rng.random() < 0.1:
            out.append(GeneratedProfile(name, "json", json.dumps(data, indent=1).encode()))
            continue
        text = to_toml(data)
        raw = text.encode() if syntax is None else _break_syntax(rng, text, syntax)
        out.append(GeneratedProfile(name, "toml", raw))
    return out


def parsable(profiles: list[GeneratedProfile]) -> list[Profile]:
    """The profiles among ``profiles`` that parse (in order): those the rules see."""
    out = []
    for generated in profiles:
        try:
            out.append(loads_profile(generated.raw, generated.fmt))
        except ProfileError:
            continue
    return out


def write(folder: Path, profiles: list[GeneratedProfile]) -> list[Path]:
    """Each profile as a file in ``folder``; the paths in order."""
    paths = []
    for profile in profiles:
        path = folder / profile.filename
        path.write_bytes(profile.raw)
        paths.append(path)
    return paths
