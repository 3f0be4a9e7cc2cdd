"""Placement rules: electrode sites, channel pairs, current paths, patient flags."""

from __future__ import annotations

from collections.abc import Iterator

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


def sites_rule(ctx: RuleContext) -> Iterator[Violation]:
    """point-unknown, point-alias, and anode = cathode (schema)."""
    for i, sites in enumerate(ctx.sites):
        anode, cathode = sites
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


def same_pair_rule(ctx: RuleContext) -> Iterator[Violation]:
    """channel-same-pair: a channel on the same two sites as an earlier one."""
    if not ctx.any_shared:
        return  # no site has two channels, so no two channels have both sites
    seen: dict[frozenset[str], int] = {}
    for i, (anode, cathode) in enumerate(ctx.sites):
        if anode is None or cathode is None or anode.label == cathode.label:
            continue
        pair = frozenset((anode.label, cathode.label))
        first = seen.setdefault(pair, i)
        if first != i:
            ids = ctx.profile.channels[first].id, ctx.profile.channels[i].id
            yield finding(
                "channel-same-pair",
                f"channels[{i}]",
                f"channels {ids[0]} and {ids[1]} both run between {anode.label} and"
                f" {cathode.label}: their currents add in the same needles",
                None,
                f"{anode.label} -> {cathode.label}",
            )


def path_rules(ctx: RuleContext) -> Iterator[Violation]:
    """Sites (anterior neck, eye, periorbital, mouth) and current paths between body segments
    (contralateral, transthoracic, transcerebral; stimctl/rules/body.py)."""
    for i, (anode, cathode) in enumerate(ctx.sites):
        if anode is not None and (
            anode.point.region in _SITE_REGIONS or anode.point.code in _MOUTH_POINTS
        ):
            yield from _site_findings(anode, f"channels[{i}].anode")
        if cathode is not None and (
            cathode.point.region in _SITE_REGIONS or cathode.point.code in _MOUTH_POINTS
        ):
            yield from _site_findings(cathode, f"channels[{i}].cathode")
        if anode is None or cathode is None:
            continue
        segment = segment_of(anode)
        if segment in LIMB_SEGMENTS and segment_of(cathode) == segment:
            continue  # both on one limb, so on one side: no path crosses anything
        contralateral = None not in (anode.side, cathode.side) and anode.side != cathode.side
        path = path_between(anode, cathode)
        if not contralateral and path is None:
            continue
        pair = f"{anode.label} -> {cathode.label}"
        if contralateral:
            lower = lower_body(anode) and lower_body(cathode)
            lower &= (segment_of(anode) == "lower trunk") == (segment_of(cathode) == "lower trunk")
            yield finding(
                "path-contralateral",
                f"channels[{i}]",
                f"{pair} crosses the body midline"
                + (f" (both on the {_lower_part(anode)})" if lower else ""),
                None,
                pair,
                "warning" if lower else None,
            )
        if path is not None:
            yield finding(
                "path-transthoracic",
                f"channels[{i}]",
                f"{pair}: current path {path} crosses the thorax",
                None,
                pair,
            )
        if contralateral and segment_of(anode) == segment_of(cathode) == "head":
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


def patient_rules(ctx: RuleContext) -> Iterator[Violation]:
    """patient-pregnancy-point, -implanted-device, -epilepsy, -anticoagulant."""
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
