"""What every safety rule looks at (RuleContext), and the helpers that make a Violation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import chain

from stimctl.rules import acupoints
from stimctl.rules.electrodes import Electrode, electrode_amplitude, electrodes_of
from stimctl.rules.envelope import RULES, SafetyEnvelope
from stimctl.rules.profile import Profile
from stimctl.rules.quantities import PulseQuantities, needle_area_cm2, pulse_quantities
from stimctl.rules.violations import Severity, Value, Violation

__all__ = [
    "ENDS",
    "Rule",
    "RuleContext",
    "Variants",
    "exceeds",
    "finding",
    "outside",
    "site_or_none",
    "suffixed",
]

ENDS = ("anode", "cathode")
Sites = tuple[acupoints.Site | None, acupoints.Site | None]
#: The quantities of one current at each frequency variant of one phase.
Variants = tuple[PulseQuantities, ...]


@dataclass(frozen=True, slots=True)
class RuleContext:
    """Everything a rule may look at, computed once per validation."""

    profile: Profile
    envelope: SafetyEnvelope
    patient: frozenset[str]
    #: Per channel: (anode site, cathode site); None where the text is not a valid site.
    sites: tuple[Sites, ...]
    #: Every electrode to judge once (``electrodes.electrodes``): lone channels, shared sites.
    electrodes: tuple[Electrode, ...]
    #: [phase][channel]: the channel's quantities at each of the phase's variants.
    channel_points: tuple[tuple[Variants, ...], ...]
    #: [electrode][phase]: the quantities of the electrode's summed current at each variant.
    electrode_points: tuple[tuple[Variants, ...], ...]
    #: channel_points and electrode_points flattened, in the same order.
    channel_flat: Variants
    electrode_flat: Variants

    @classmethod
    def build(
        cls, profile: Profile, envelope: SafetyEnvelope, patient: Iterable[str] = ()
    ) -> RuleContext:
        sites = tuple([(site_or_none(c.anode), site_or_none(c.cathode)) for c in profile.channels])
        found = electrodes_of([(_label(a), _label(c)) for a, c in sites])
        shape = profile.waveform.shape
        area = needle_area_cm2(profile.needle.diameter_mm, profile.needle.insertion_mm)
        variants = [phase.variants for phase in profile.phases]
        # Channels of equal amplitude share their figures; a lone channel's electrode is it.
        known: dict[float, tuple[Variants, ...]] = {}

        def per_phase(amplitude: float) -> tuple[Variants, ...]:
            figures = known.get(amplitude)
            if figures is None:
                figures = known[amplitude] = tuple(
                    [
                        tuple([pulse_quantities(amplitude, pw, f, shape, area) for f, pw in phase])
                        for phase in variants
                    ]
                )
            return figures

        by_channel = [per_phase(c.amplitude_ma) for c in profile.channels]
        channel_points = tuple(zip(*by_channel, strict=True))
        electrode_points = tuple(
            [
                by_channel[e.channels[0]]
                if e.site is None
                else per_phase(electrode_amplitude(profile, e))
                for e in found
            ]
        )
        return cls(
            profile,
            envelope,
            frozenset(patient),
            sites,
            found,
            channel_points,
            electrode_points,
            tuple(chain.from_iterable(chain.from_iterable(channel_points))),
            tuple(chain.from_iterable(chain.from_iterable(electrode_points))),
        )


def _label(site: acupoints.Site | None) -> str | None:
    return None if site is None else site.label


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


def suffixed(value: float | tuple[float, ...]) -> tuple[tuple[str, float], ...]:
    """('', value) for a number, ('[k]', item) for each item of a pair: the loc suffix and the
    item, so that a rule builds the loc only when it reports."""
    if isinstance(value, tuple):
        return tuple([(f"[{k}]", item) for k, item in enumerate(value)])
    return (("", value),)
