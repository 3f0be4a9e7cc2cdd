"""Placement rules: electrode sites, channel pairs, current paths, patient flags."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cache
from typing import NamedTuple

from stimctl.rules import acupoints
from stimctl.rules.body import LIMB_SEGMENTS, lower_body, path_between, segment_of
from stimctl.rules.context import ENDS, RuleContext, finding
from stimctl.rules.ruletable import RULES
from stimctl.rules.violations import Violation

__all__ = [
    "PATIENT_FLAGS",
    "PREGNANCY_POINTS",
    "path_rules",
    "patient_rules",
    "placement_clear",
    "same_pair_rule",
    "sites_rule",
]

PATIENT_FLAGS: tuple[str, ...] = ("pregnant", "implanted-device", "epilepsy", "anticoagulant")
#: site-mouth (the catalogue's notes: GV26-GV28 and CV24 are at the mouth): GV28 is needled
#: inside the mouth (error), the others at the lips (warning).
INTRAORAL_POINTS = frozenset({"GV28"})
LIP_POINTS = frozenset({"GV26", "GV27", "CV24"})
#: Points usually avoided in pregnancy (clinical texts), besides abdominal and sacral points.
PREGNANCY_POINTS = frozenset({"LI4", "SP6", "BL60", "BL67", "GB21"})
PREGNANCY_REGIONS = frozenset({"abdomen", "sacral"})


def sites_rule(ctx: RuleContext) -> Iterable[Violation]:
    """point-unknown, point-alias, and anode = cathode (schema). A new check here is a new
    condition in ``placement_clear`` too, or run_rules skips it where that says clear."""
    for i, (anode, cathode) in enumerate(ctx.sites):
        if (
            anode is None
            or cathode is None
            or anode.normalised
            or cathode.normalised
            or anode.label == cathode.label
        ):
            return _site_text_findings(ctx, i)
    return ()  # every site written as its label, no channel on one site


def _site_text_findings(ctx: RuleContext, first: int) -> Iterator[Violation]:
    """``sites_rule``'s findings, from channel ``first`` (the first with one) on."""
    for i in range(first, len(ctx.sites)):
        sites = anode, cathode = ctx.sites[i]
        if anode is None or cathode is None or anode.normalised or cathode.normalised:
            channel = ctx.profile.channels[i]
            for end, site in zip(ENDS, sites, strict=True):
                loc, text = f"channels[{i}].{end}", getattr(channel, end)
                if site is None:
                    try:
                        acupoints.parse_site(text)
                        reason = "not a site"
                    except acupoints.UnknownPoint as error:
                        reason = str(error)
                    yield finding("point-unknown", loc, reason, None, text)
                elif site.normalised:
                    yield finding(
                        "point-alias", loc, f"{text!r} read as {site.label!r}", site.label, text
                    )
        if anode is not None and cathode is not None and anode.label == cathode.label:
            yield Violation(
                "schema",
                "error",
                f"channels[{i}].cathode",
                f"anode and cathode are the same site ({anode.label})",
                None,
                cathode.label,
                RULES["schema"].source,
            )


def same_pair_rule(ctx: RuleContext) -> Iterable[Violation]:
    """channel-same-pair: a channel on the same two sites as an earlier one."""
    found_electrodes = ctx.electrodes  # shared sites come last
    if len(found_electrodes) < 2 or found_electrodes[-2].site is None:
        return ()  # two channels on one pair share two sites: fewer than two are shared
    last = len(ctx.sites) - 1
    if last < len(found_electrodes) and found_electrodes[last].site is None:
        return ()  # every channel an electrode of its own: none has both its sites shared
    seen: dict[tuple[str, str], int] = {}
    found = []
    for i, (anode, cathode) in enumerate(ctx.sites):
        if anode is None or cathode is None:
            continue
        a, c = anode.label, cathode.label
        if a == c:
            continue
        first = seen.setdefault((a, c) if a < c else (c, a), i)  # the pair, either way round
        if first != i:
            ids = ctx.profile.channels[first].id, ctx.profile.channels[i].id
            found.append(
                finding(
                    "channel-same-pair",
                    f"channels[{i}]",
                    f"channels {ids[0]} and {ids[1]} both run between {a} and {c}: their"
                    " currents add in the same needles",
                    None,
                    f"{a} -> {c}",
                )
            )
    return found


class _Crossing(NamedTuple):
    """What ``path_rules`` reports of a channel between two places (region and side): the
    same for every pair of sites at those places."""

    contralateral: bool
    #: Both ends on the lower body (``lower_body``): crossing the midline is only a warning.
    lower: bool
    #: ``thoracic_path``, or None.
    thoracic: str | None
    #: Across the head (contralateral, both ends on it).
    cerebral: bool


def _crossing(anode: acupoints.Site, cathode: acupoints.Site) -> _Crossing | None:
    """The path findings of a channel from ``anode`` to ``cathode``; None when it has none."""
    segment = segment_of(anode)
    if segment in LIMB_SEGMENTS and segment_of(cathode) == segment:
        return None  # both on one limb, so on one side: no path crosses anything
    contralateral = None not in (anode.side, cathode.side) and anode.side != cathode.side
    path = path_between(anode, cathode)
    if not contralateral and path is None:
        return None
    lower = contralateral and lower_body(anode) and lower_body(cathode)
    lower &= (segment_of(anode) == "lower trunk") == (segment_of(cathode) == "lower trunk")
    cerebral = contralateral and segment_of(anode) == segment_of(cathode) == "head"
    return _Crossing(contralateral, lower, path, cerebral)


_PLACES = len(acupoints.REGION_SIDES)
#: [anode.region_side * _PLACES + cathode.region_side] -> ``_crossing``, filled as each pair
#: of places is first met (a fact of the body model alone, the same for every profile).
_CROSSINGS: dict[int, _Crossing | None] = {}


def _crossing_at(anode: acupoints.Site, cathode: acupoints.Site) -> _Crossing | None:
    key = anode.region_side * _PLACES + cathode.region_side
    try:
        return _CROSSINGS[key]
    except KeyError:
        crossing = _CROSSINGS[key] = _crossing(anode, cathode)
        return crossing


def placement_clear(ctx: RuleContext) -> bool:
    """True when neither ``sites_rule`` nor ``path_rules`` finds anything (``run_rules`` then
    skips both): every site is written as its label, no channel runs from a site to itself,
    none is a site ``_site_findings`` reports, and no channel's path crosses anything. One
    pass over the channels for both rules (most profiles have none of these)."""
    crossings, places, plain = _CROSSINGS, _PLACES, _plain_labels()
    for anode, cathode in ctx.sites:
        # A text in ``plain`` is a site's own label (not normalised) and not a marked point.
        if (
            anode is None
            or cathode is None
            or anode.text not in plain
            or cathode.text not in plain
            or anode.text == cathode.text  # labels, as both are
        ):
            return False
        key = anode.region_side * places + cathode.region_side
        if (crossings[key] if key in crossings else _crossing_at(anode, cathode)) is not None:
            return False
    return True


def path_rules(ctx: RuleContext) -> Iterable[Violation]:
    """Sites (anterior neck, eye, periorbital, mouth) and current paths between body segments
    (contralateral, transthoracic, transcerebral; stimctl/rules/body.py). A new check here is
    a new condition in ``placement_clear`` too, or run_rules skips it where that says clear."""
    crossings, places, marked = _CROSSINGS, _PLACES, _marked_points()
    for i, (anode, cathode) in enumerate(ctx.sites):
        if anode is None or cathode is None:
            site = cathode if anode is None else anode
            if site is not None and site.point.code in marked:
                return _path_findings(ctx, i)
            continue
        if anode.point.code in marked or cathode.point.code in marked:
            return _path_findings(ctx, i)
        key = anode.region_side * places + cathode.region_side
        crossing = crossings[key] if key in crossings else _crossing_at(anode, cathode)
        if crossing is not None:
            return _path_findings(ctx, i)
    return ()  # no marked site, no path between segments


def _path_findings(ctx: RuleContext, first: int) -> Iterator[Violation]:
    """``path_rules``' findings, from channel ``first`` (the first with one) on."""
    marked = _marked_points()
    for i in range(first, len(ctx.sites)):
        anode, cathode = ctx.sites[i]
        if anode is not None and anode.point.code in marked:
            yield from _site_findings(anode, f"channels[{i}].anode")
        if cathode is not None and cathode.point.code in marked:
            yield from _site_findings(cathode, f"channels[{i}].cathode")
        if anode is None or cathode is None:
            continue
        crossing = _crossing_at(anode, cathode)
        if crossing is None:
            continue
        pair = f"{anode.label} -> {cathode.label}"
        if crossing.contralateral:
            lower = crossing.lower
            yield finding(
                "path-contralateral",
                f"channels[{i}]",
                f"{pair} crosses the body midline"
                + (f" (both on the {_lower_part(anode)})" if lower else ""),
                None,
                pair,
                "warning" if lower else None,
            )
        if crossing.thoracic is not None:
            yield finding(
                "path-transthoracic",
                f"channels[{i}]",
                f"{pair}: current path {crossing.thoracic} crosses the thorax",
                None,
                pair,
            )
        if crossing.cerebral:
            yield finding(
                "path-transcerebral",
                f"channels[{i}]",
                f"{pair} sends current across the head",
                None,
                pair,
            )


def _lower_part(site: acupoints.Site) -> str:
    return "lower trunk" if segment_of(site) == "lower trunk" else "legs"


#: The regions and points ``_site_findings`` reports (a fast path skips every other site).
_SITE_REGIONS = frozenset({"anterior_neck", "eye", "periorbital"})
_MOUTH_POINTS = INTRAORAL_POINTS | LIP_POINTS


@cache
def _marked_points() -> frozenset[str]:
    """The codes of every point ``_site_findings`` reports (_SITE_REGIONS, _MOUTH_POINTS)."""
    regions = _SITE_REGIONS
    return _MOUTH_POINTS | {c for c, p in acupoints.catalogue().items() if p.region in regions}


@cache
def _plain_labels() -> frozenset[str]:
    """The label of every site whose point is not in ``_marked_points``: a text in it names
    that site as its label ('ST36-L', 'GV20'), and ``_site_findings`` reports nothing there."""
    marked = _marked_points()
    return frozenset(
        code if side is None else f"{code}-{side}"
        for code, point in acupoints.catalogue().items()
        if code not in marked
        for side in ((None,) if point.midline else ("L", "R"))
    )


def _site_findings(site: acupoints.Site, loc: str) -> Iterator[Violation]:
    region = site.point.region
    if region == "anterior_neck":
        yield finding(
            "site-anterior-neck",
            loc,
            f"{site.label} is on the front of the neck (carotid sinus)",
            None,
            site.label,
        )
    elif region == "eye":
        yield finding("site-eye", loc, f"{site.label} is in the orbit", None, site.label)
    elif site.point.code in INTRAORAL_POINTS or site.point.code in LIP_POINTS:
        inside = site.point.code in INTRAORAL_POINTS
        yield finding(
            "site-mouth",
            loc,
            f"{site.label} is {'inside the mouth' if inside else 'at the lips'}",
            None,
            site.label,
            None if inside else "warning",
        )
    elif region == "periorbital":
        yield finding(
            "site-periorbital",
            loc,
            f"{site.label} is at the edge of the orbit: keep needle and current off the eye",
            None,
            site.label,
        )


def patient_rules(ctx: RuleContext) -> Iterable[Violation]:
    """patient-pregnancy-point, -implanted-device, -epilepsy, -anticoagulant."""
    return _patient_findings(ctx) if ctx.patient else ()


def _patient_findings(ctx: RuleContext) -> Iterator[Violation]:
    if "implanted-device" in ctx.patient:
        yield finding(
            "patient-implanted-device",
            "patient",
            "patient has an implanted device (pacemaker, ICD, stimulator): do not stimulate",
            None,
            "implanted-device",
        )
    if "epilepsy" in ctx.patient:
        yield finding(
            "patient-epilepsy",
            "patient",
            "patient has epilepsy: stimulate only under supervision",
            None,
            "epilepsy",
        )
    if "anticoagulant" in ctx.patient:
        yield finding(
            "patient-anticoagulant",
            "patient",
            "patient takes anticoagulants: bleeding risk at the needle sites; use modified"
            " needling (fewer, shallower needles; firm pressure after removal)",
            None,
            "anticoagulant",
        )
    if "pregnant" in ctx.patient:
        for i, sites in enumerate(ctx.sites):
            for end, site in zip(ENDS, sites, strict=True):
                if site is not None and (
                    site.point.code in PREGNANCY_POINTS or site.point.region in PREGNANCY_REGIONS
                ):
                    yield finding(
                        "patient-pregnancy-point",
                        f"channels[{i}].{end}",
                        f"{site.label} ({site.point.region}) is avoided in pregnancy",
                        None,
                        site.label,
                    )
