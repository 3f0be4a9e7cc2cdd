"""What every safety rule looks at (RuleContext), and the helpers that make a Violation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from stimctl.rules import acupoints
from stimctl.rules.electrodes import SiteQuantities, site_quantities
from stimctl.rules.envelope import RULES, SafetyEnvelope
from stimctl.rules.profile import Profile
from stimctl.rules.quantities import OperatingPoint, operating_points
from stimctl.rules.violations import Severity, Value, Violation

__all__ = [
    "ENDS",
    "Rule",
    "RuleContext",
    "elements",
    "exceeds",
    "finding",
    "outside",
    "site_or_none",
]

ENDS = ("anode", "cathode")
Sites = tuple[acupoints.Site | None, acupoints.Site | None]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule may look at, computed once per validation."""

    profile: Profile
    envelope: SafetyEnvelope
    patient: frozenset[str]
    #: Per channel: (anode site, cathode site); None where the text is not a valid site.
    sites: tuple[Sites, ...]
    points: tuple[OperatingPoint, ...]
    #: Per electrode (a channel alone, or a shared site), phase and variant: the summed current.
    site_points: tuple[SiteQuantities, ...]

    @classmethod
    def build(
        cls, profile: Profile, envelope: SafetyEnvelope, patient: Iterable[str] = ()
    ) -> RuleContext:
        sites = tuple((site_or_none(c.anode), site_or_none(c.cathode)) for c in profile.channels)
        return cls(
            profile,
            envelope,
            frozenset(patient),
            sites,
            operating_points(profile),
            site_quantities(profile),
        )


def site_or_none(text: str) -> acupoints.Site | None:
    """The parsed site, or None where the text is not one (``point-unknown`` reports it)."""
    try:
        return acupoints.parse_site(text)
    except acupoints.UnknownPoint:
        return None


def finding(
    code: str,
    loc: str,
    message: str,
    limit: Value = None,
    actual: Value = None,
    severity: Severity | None = None,
) -> Violation:
    """A Violation of ``code`` with the rule table's severity (unless given) and source."""
    rule = RULES[code]
    return Violation(code, severity or rule.severity, loc, message, limit, actual, rule.source)


def exceeds(actual: float, limit: float) -> bool:
    """True unless actual <= limit (so nan counts as exceeding)."""
    return not actual <= limit


def outside(actual: float, lo: float, hi: float) -> bool:
    """True unless lo <= actual <= hi (so nan counts as outside)."""
    return not lo <= actual <= hi


Rule = Callable[[RuleContext], Iterator[Violation]]


def elements(value: float | tuple[float, ...], loc: str) -> Iterator[tuple[str, float]]:
    """(loc, value) for a number, (loc[k], item) for each item of a pair."""
    if isinstance(value, tuple):
        for k, item in enumerate(value):
            yield f"{loc}[{k}]", item
    else:
        yield loc, value
