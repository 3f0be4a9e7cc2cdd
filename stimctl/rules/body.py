"""Body segments and current paths: which channels send current through the thorax or the head.

The body is modelled as nine segments joined as the body is: head - neck - thorax (front: chest,
back: upper back) - lower trunk (abdomen, low back, sacrum), the arms joined to the thorax at the
shoulders, the legs to the lower trunk at the hips. Each acupoint region (``acupoints.Region``)
lies in one segment; a limb point lies in the arm or leg of its site's side.

A channel's current is judged by the segments of its two electrodes (``thoracic_path``):
it crosses the thorax when it runs from an arm to anywhere but that arm; from a leg to the
thorax, an arm, the neck or the head; from the chest to the back (upper or low back, sacrum),
the neck or the head; from the upper back to the abdomen; from the lower trunk to the neck or
the head; or from left to right with either electrode on the chest or the upper back. Pairs on
one limb, along one side of the back, on the lower trunk, or from the lower trunk to a leg stay
legal (IEC 60601-2-10 warns against transthoracic paths: across the chest, chest to back).
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, Literal, get_args

from stimctl.rules.acupoints import Site

__all__ = [
    "LIMB_SEGMENTS",
    "REGION_SEGMENT",
    "SEGMENTS",
    "Segment",
    "lower_body",
    "path_between",
    "segment_of",
    "thoracic_path",
]

Segment = Literal[
    "head",
    "neck",
    "chest",
    "upper back",
    "lower trunk",
    "left arm",
    "right arm",
    "left leg",
    "right leg",
]
SEGMENTS: tuple[str, ...] = get_args(Segment)

#: acupoint region -> segment; "arm" and "leg" take the site's side ("left arm").
REGION_SEGMENT: dict[str, str] = {
    "head": "head",
    "face": "head",
    "eye": "head",
    "periorbital": "head",
    "anterior_neck": "neck",
    "posterior_neck": "neck",
    "chest": "chest",
    "upper_back": "upper back",
    "abdomen": "lower trunk",
    "lower_back": "lower trunk",
    "sacral": "lower trunk",
    "upper_limb": "arm",
    "lower_limb": "leg",
}
THORAX = frozenset({"chest", "upper back"})
#: The limb segments: a channel with both electrodes on one of them has no path finding.
LIMB_SEGMENTS = frozenset({"left arm", "right arm", "left leg", "right leg"})
_BACK_REGIONS = frozenset({"lower_back", "sacral"})
_SIDE_NAMES = {"L": "left", "R": "right"}


def _segment(region: str, side: str | None) -> str:
    segment = REGION_SEGMENT[region]
    if segment in ("arm", "leg"):
        if side is None:
            raise ValueError("a limb point needs a side")
        return f"{_SIDE_NAMES[side]} {segment}"
    return segment


#: (region, side) -> segment, for every pair that has one.
_SEGMENTS = {
    (region, side): _segment(region, side)
    for region, segment in REGION_SEGMENT.items()
    for side in ("L", "R", None)
    if side is not None or segment not in ("arm", "leg")
}


def segment_of(site: Site) -> str:
    """The segment of a site ('left leg' for ST36-L, 'chest' for CV17).

    ValueError for a limb point without a side (the catalogue has none: a test checks it).
    """
    try:
        return _SEGMENTS[site.point.region, site.side]
    except KeyError:
        pass
    try:
        return _segment(site.point.region, site.side)  # KeyError for an unknown region
    except ValueError:
        raise ValueError(f"{site.label}: a limb point needs a side") from None


def _limb(segment: str) -> str | None:
    """'arm' or 'leg' for a limb segment, else None."""
    _, _, limb = segment.rpartition(" ")
    return limb if limb in ("arm", "leg") else None


def lower_body(site: Site) -> bool:
    """True on the lower trunk or a leg (contralateral pairs there are only a warning)."""
    return segment_of(site) == "lower trunk" or _limb(segment_of(site)) == "leg"


def _crosses(a: Site, b: Site, sa: str, sb: str) -> bool:
    contralateral = None not in (a.side, b.side) and a.side != b.side
    if contralateral and (sa in THORAX or sb in THORAX):
        return True  # left to right across the chest or the upper back
    pair = {sa, sb}
    limbs = {_limb(sa), _limb(sb)}
    if "arm" in limbs:
        return sa != sb  # an arm to anything but the same arm
    if "leg" in limbs:
        other = pair - {sa if _limb(sa) else sb}
        return bool(other & (THORAX | {"neck", "head"}))
    regions = {a.point.region, b.point.region}
    if "chest" in pair:
        back = "upper back" in pair or bool(regions & _BACK_REGIONS)
        return back or bool(pair & {"neck", "head"})
    if pair == {"upper back", "lower trunk"}:
        return "abdomen" in regions  # back of the thorax to the front of the abdomen
    return "lower trunk" in pair and bool(pair & {"neck", "head"})


def _name(site: Site, segment: str, sided: bool) -> str:
    if sided and segment in THORAX and site.side is not None:
        return f"{_SIDE_NAMES[site.side]} {segment}"
    return segment


def thoracic_path(a: Site, b: Site) -> str | None:
    """The path ('left arm -> thorax -> left leg') when current from ``a`` to ``b`` crosses
    the thorax, else None. The thorax is named between the ends unless an end lies in it."""
    sa, sb = segment_of(a), segment_of(b)
    if not _crosses(a, b, sa, sb):
        return None
    sided = sa == sb
    ends = (_name(a, sa, sided), _name(b, sb, sided))
    if sa in THORAX or sb in THORAX:
        return " -> ".join(ends)
    return f"{ends[0]} -> thorax -> {ends[1]}"


def _stand_in(region: str, side: str | None) -> Any:
    """What the functions above read of a Site at ``region`` on ``side``."""
    return SimpleNamespace(point=SimpleNamespace(region=region), side=side, label=region)


#: thoracic_path of every pair of (region, side) ends, worked out once at import: the path
#: rules ask it for every channel of every profile.
_PATHS: dict[tuple[str, str | None, str, str | None], str | None] = {
    (ra, sa, rb, sb): thoracic_path(_stand_in(ra, sa), _stand_in(rb, sb))
    for ra, sa in _SEGMENTS
    for rb, sb in _SEGMENTS
}


def path_between(a: Site, b: Site) -> str | None:
    """``thoracic_path(a, b)``, from the table of every pair of ends."""
    try:
        return _PATHS[a.point.region, a.side, b.point.region, b.side]
    except KeyError:
        return thoracic_path(a, b)
