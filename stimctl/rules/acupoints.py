"""WHO standard acupoint catalogue (361 points) and parsing of electrode sites such as 'ST36-L'.

The data lives in ``stimctl/rules/data/acupoints.json`` (WHO Standard Acupuncture Point Locations in
the Western Pacific Region, 2008). Each point carries a body ``region`` that drives the safety
rules; the judgement calls behind the regions are recorded in that file's ``notes``.

Accepted input (case-insensitive, surrounding whitespace ignored):

* a meridian code or alias, an optional single ``-`` or space, then the point number:
  ``ST36``, ``st-36``, ``st 36``, ``LV3``, ``Liv3``, ``SJ5``, ``Du20``, ``Ren12``, ``P6``;
* leading zeros in the number are accepted and dropped (``BL01`` -> ``BL1``), as some
  devices and data sets zero-pad;
* for a site, a side suffix ``L`` or ``R``, optionally after ``-`` or a space: ``ST36-L``,
  ``lv3-r``, ``ST36L``. Bilateral points need a side; midline (GV, CV) points take none.

Aliases: LV, LIV -> LR; TH, SJ, TW, TB -> TE; DU -> GV; REN -> CV; P -> PC; H -> HT; K -> KI;
UB -> BL. The letters before the number are read as a whole, so ``LI4`` is Large Intestine 4
and ``LIV3`` is Liver 3.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cache, lru_cache
from importlib import resources
from types import MappingProxyType
from typing import Literal, get_args

__all__ = [
    "MERIDIANS",
    "MERIDIAN_ALIASES",
    "REGIONS",
    "REGION_SIDES",
    "Point",
    "Region",
    "Site",
    "UnknownPoint",
    "catalogue",
    "get",
    "normalise_code",
    "parse_site",
    "site_or_reason",
]

Region = Literal[
    "head",
    "face",
    "eye",
    "periorbital",
    "anterior_neck",
    "posterior_neck",
    "chest",
    "abdomen",
    "upper_back",
    "lower_back",
    "sacral",
    "upper_limb",
    "lower_limb",
]
REGIONS: tuple[str, ...] = get_args(Region)

#: Canonical WHO meridian code -> number of points, in the WHO order.
MERIDIANS: dict[str, int] = {
    "LU": 11,
    "LI": 20,
    "ST": 45,
    "SP": 21,
    "HT": 9,
    "SI": 19,
    "BL": 67,
    "KI": 27,
    "PC": 9,
    "TE": 23,
    "GB": 44,
    "LR": 14,
    "GV": 28,
    "CV": 24,
}

#: Upper-case non-WHO meridian abbreviation -> canonical code.
MERIDIAN_ALIASES: dict[str, str] = {
    "LV": "LR",
    "LIV": "LR",
    "TH": "TE",
    "SJ": "TE",
    "TW": "TE",
    "TB": "TE",
    "DU": "GV",
    "REN": "CV",
    "P": "PC",
    "H": "HT",
    "K": "KI",
    "UB": "BL",
}

#: Every (region, side) a site can name; ``Site.region_side`` is its index here, so a table of
#: what follows from where two electrodes sit (placement.py's current paths) is a list.
REGION_SIDES: tuple[tuple[str, Literal["L", "R"] | None], ...] = tuple(
    (region, side) for region in REGIONS for side in ("L", "R", None)
)
_REGION_SIDE_INDEX = {pair: i for i, pair in enumerate(REGION_SIDES)}
_MIDLINE_MERIDIANS = frozenset({"GV", "CV"})
_DATA_FILE = "data/acupoints.json"
_PATTERN = re.compile(r"(?P<mer>[A-Z]+)[ -]?(?P<num>[0-9]+)(?:[ -]?(?P<side>[LR]))?")
_EXAMPLE = "e.g. 'ST36-L' or 'GV20'"
_SIDES: dict[str, Literal["L", "R"]] = {"L": "L", "R": "R"}


class UnknownPoint(ValueError):
    """The text does not name a WHO standard point, or a site is written wrongly."""


@dataclass(frozen=True, slots=True)
class Point:
    """One WHO standard acupoint."""

    code: str
    pinyin: str
    meridian: str
    number: int
    region: str
    midline: bool

    @property
    def bilateral(self) -> bool:
        """True for paired points (all but GV and CV), which need a side in a site."""
        return not self.midline


@dataclass(frozen=True, slots=True)
class Site:
    """A point plus side, as written in a profile electrode ('ST36-L', 'GV20')."""

    point: Point
    side: Literal["L", "R"] | None
    text: str
    #: Canonical form: 'ST36-L' for a bilateral point, 'GV20' for a midline one.
    label: str = field(init=False, repr=False, compare=False)
    #: True when the input differed from the canonical label (alias, case, hyphen...).
    normalised: bool = field(init=False, repr=False, compare=False)
    #: The index of (point.region, side) in REGION_SIDES.
    region_side: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Worked out once: the rules read them for every electrode of every profile.
        label, normalised, region_side = _derived(self.point, self.side, self.text)
        object.__setattr__(self, "label", label)
        object.__setattr__(self, "normalised", normalised)
        object.__setattr__(self, "region_side", region_side)


def _derived(point: Point, side: Literal["L", "R"] | None, text: str) -> tuple[str, bool, int]:
    """A Site's label, normalised and region_side from its point, side and text."""
    label = point.code if side is None else f"{point.code}-{side}"
    return label, text != label, _REGION_SIDE_INDEX[point.region, side]


#: The slots' own setters, in field order: ``_new_site`` builds a Site through them (a frozen
#: dataclass's __init__ and __post_init__ go through object.__setattr__ by name, twice as slow).
_SITE_SETTERS = tuple(
    getattr(Site, name).__set__
    for name in ("point", "side", "text", "label", "normalised", "region_side")
)


def _new_site(point: Point, side: Literal["L", "R"] | None, text: str) -> Site:
    """``Site(point=point, side=side, text=text)``, built in a third of the time: every new
    site text of a profile is parsed into one (tests/test_acupoints.py checks they agree)."""
    made = object.__new__(Site)
    set_point, set_side, set_text, set_label, set_normalised, set_region_side = _SITE_SETTERS
    set_point(made, point)
    set_side(made, side)
    set_text(made, text)
    label, normalised, region_side = _derived(point, side, text)
    set_label(made, label)
    set_normalised(made, normalised)
    set_region_side(made, region_side)
    return made


@cache
def _load() -> Mapping[str, Point]:
    raw = resources.files("stimctl.rules").joinpath(_DATA_FILE).read_text(encoding="utf-8")
    points = {entry["code"]: Point(**entry) for entry in json.loads(raw)["points"]}
    _check(points)
    return MappingProxyType(points)


def _check(points: Mapping[str, Point]) -> None:
    """Fail loudly if the data file disagrees with MERIDIANS or REGIONS."""
    for meridian, count in MERIDIANS.items():
        numbers = sorted(p.number for p in points.values() if p.meridian == meridian)
        if numbers != list(range(1, count + 1)):
            raise RuntimeError(f"{_DATA_FILE}: {meridian} must number 1..{count}")
    for p in points.values():
        if p.code != f"{p.meridian}{p.number}" or p.meridian not in MERIDIANS:
            raise RuntimeError(f"{_DATA_FILE}: malformed entry {p.code!r}")
        if p.region not in REGIONS:
            raise RuntimeError(f"{_DATA_FILE}: {p.code} has unknown region {p.region!r}")
        if p.midline != (p.meridian in _MIDLINE_MERIDIANS):
            raise RuntimeError(f"{_DATA_FILE}: {p.code} midline flag is wrong")


def catalogue() -> Mapping[str, Point]:
    """All 361 points, canonical code -> Point, in WHO order (read-only, loaded once)."""
    return _load()


def get(code: str) -> Point:
    """The point with this canonical code ('ST36', 'LR3'); KeyError for anything else."""
    try:
        return _load()[code]
    except KeyError:
        raise KeyError(
            f"{code!r} is not a canonical WHO point code; use normalise_code() for aliases"
        ) from None


def _split(text: str) -> tuple[Point, Literal["L", "R"] | None]:
    """Parse 'meridian number [side]' into a Point and an optional side."""
    if not isinstance(text, str) or not text.strip():
        raise UnknownPoint(f"empty point code: expected a WHO point, {_EXAMPLE}")
    match = _PATTERN.fullmatch(text.strip().upper())
    if match is None:
        raise UnknownPoint(
            f"{text!r} is not a point code: expected meridian letters and a number, {_EXAMPLE}"
        )
    letters, number = match["mer"], int(match["num"])
    meridian = MERIDIAN_ALIASES.get(letters, letters)
    if meridian not in MERIDIANS:
        known = ", ".join(MERIDIANS)
        raise UnknownPoint(
            f"{text!r} is not a WHO standard point: unknown meridian {letters!r} "
            f"(expected one of {known}, or an alias such as LV, SJ, DU, REN)"
        )
    count = MERIDIANS[meridian]
    if not 1 <= number <= count:
        raise UnknownPoint(f"{text!r} is not a WHO standard point ({meridian} has {count} points)")
    side = None if match["side"] is None else _SIDES[match["side"]]
    return _load()[f"{meridian}{number}"], side


def normalise_code(text: str) -> str:
    """Canonical WHO code for a point code or alias: 'lv3', 'LV-3', 'Liv3' -> 'LR3'.

    Takes a bare code: a side suffix is refused (use parse_site for 'ST36-L').
    Raises UnknownPoint for anything that is not a WHO standard point.
    """
    point, side = _split(text)
    if side is not None:
        raise UnknownPoint(
            f"{text!r} has a side: normalise_code takes a bare point code such as "
            f"{point.code!r}; use parse_site for a site"
        )
    return point.code


def parse_site(text: str) -> Site:
    """Parse an electrode site: 'ST36-L', 'st36-l', 'LV-3-R', 'Liv3-L', 'GV20', 'du20'.

    Raises UnknownPoint for an unknown or malformed code, a bilateral point without a
    side, or a midline point with one.
    """
    if not isinstance(text, str):
        return _parse_site(text)  # raises UnknownPoint
    parsed = site_or_reason(text)
    if isinstance(parsed, str):
        raise UnknownPoint(parsed)
    return parsed


@lru_cache(maxsize=4096)
def site_or_reason(text: str) -> Site | str:
    """The Site ``text`` (a str) names, or why it names none; remembered, as profiles use a few
    hundred sites over and over (Site is immutable, so one instance serves every caller)."""
    try:
        return _parse_site(text)
    except UnknownPoint as error:
        return str(error)


def _parse_site(text: str) -> Site:
    point, side = _split(text)
    got = "" if text == point.code else f" (got {text!r})"
    if point.bilateral and side is None:
        raise UnknownPoint(f"'{point.code}' is bilateral: add a side, e.g. '{point.code}-L'{got}")
    if point.midline and side is not None:
        raise UnknownPoint(
            f"'{point.code}' is a midline point: it takes no side, write '{point.code}'{got}"
        )
    return _new_site(point, side, text)
