"""What every safety rule looks at (RuleContext), and the helpers that make a Violation."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from stimctl.rules import acupoints
from stimctl.rules.electrodes import Electrode, Labels, electrodes_of
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.profile import Profile
from stimctl.rules.quantities import (
    PulseQuantities,
    needle_area_cm2,
    pulse_quantities,
)
from stimctl.rules.ruletable import RULES
from stimctl.rules.violations import Severity, Value, Violation, violation, violation_later

__all__ = [
    "ENDS",
    "Rule",
    "RuleContext",
    "Variants",
    "exceeds",
    "finding",
    "outside",
    "site_or_none",
    "suffix",
]

ENDS = ("anode", "cathode")
Sites = tuple[acupoints.Site | None, acupoints.Site | None]
#: The quantities of one current at each frequency variant of one phase.
Variants = tuple[PulseQuantities, ...]


class RuleContext:
    """Everything a rule may look at, computed once per validation.

    The quantities of a current are worked out when a rule first asks for them
    (``quantities``). Each figure grows with the amplitude at a given pulse width, frequency,
    shape and needle (every step is a correctly rounded product, quotient or square root of
    positive numbers), so a rule looks at the strongest current first (``channel_tops``,
    ``electrode_tops``): when it stays under the limit, every weaker current does too.
    """

    __slots__ = (
        "_area",
        "_channel_tops",
        "_known",
        "_shape",
        "amplitudes",
        "any_shared",
        "channel_amplitudes",
        "electrode_tops",
        "electrodes",
        "envelope",
        "patient",
        "profile",
        "shared",
        "sites",
        "top_amplitude_ma",
        "variants",
    )

    profile: Profile
    envelope: SafetyEnvelope
    patient: frozenset[str]
    # The per-channel and per-phase sequences below are the lists the constructor builds, kept
    # as they are (rules only read them): copying each into a tuple cost more than it gave.
    #: Per channel: (anode site, cathode site); None where the text is not a valid site.
    sites: list[Sites]
    #: Every electrode to judge once (``electrodes.electrodes``): lone channels, shared sites.
    electrodes: Sequence[Electrode]
    #: True when some site is shared by channels (an electrode with a site).
    any_shared: bool
    #: Per electrode: its peak current, the sum of its channels' amplitudes (mA).
    amplitudes: Sequence[float]
    #: Per channel: its amplitude (mA).
    channel_amplitudes: list[float]
    #: The strongest electrode's plateau (``Profile.top_amplitude_ma``).
    top_amplitude_ma: float
    #: Per phase: its (frequency_hz, pulse_width_us) variants (``Phase.variants``).
    variants: list[tuple[tuple[float, float], ...]]
    #: [phase]: the quantities at each variant of the strongest electrode.
    electrode_tops: list[Variants]
    #: What one rule works out once for several (quantity_rules.unclear), by name.
    shared: dict[str, object]

    def __init__(
        self, profile: Profile, envelope: SafetyEnvelope, patient: Iterable[str] = ()
    ) -> None:
        self.profile, self.envelope = profile, envelope
        self.patient = patient if type(patient) is frozenset else frozenset(patient)
        # Field values are read from the models' __dict__: each attribute read of a pydantic
        # model goes through its __getattr__ hook, which costs as much again.
        fields = profile.__dict__
        known = _SITES
        sites: list[Sites] = []
        labels: list[Labels] = []
        own: list[float] = []
        for channel in fields["channels"]:
            values = channel.__dict__
            anode, cathode = values["anode"], values["cathode"]
            try:
                a, c = known[anode], known[cathode]
            except KeyError:
                a, c = _site_or_none(anode), _site_or_none(cathode)
            sites.append((a, c))
            labels.append((a and a.label, c and c.label))
            own.append(values["amplitude_ma"])
        self.sites = sites
        self.channel_amplitudes = own
        found, amplitudes = electrodes_of(labels, own)
        self.electrodes, self.amplitudes = found, amplitudes
        self.any_shared = found[-1].site is not None  # shared sites come last
        self.top_amplitude_ma = top = max(amplitudes)
        shape = self._shape = fields["waveform"].shape
        needle = fields["needle"].__dict__
        area = self._area = needle_area_cm2(needle["diameter_mm"], needle["insertion_mm"])
        self._channel_tops: tuple[Variants, ...] | None = None
        # quantities() of other currents, made on the first (most validations ask for none)
        self._known: dict[tuple[float, int], Variants] | None = None
        self.shared = {}
        # Per phase: its (frequency_hz, pulse_width_us) variants (Phase.variants) and the
        # quantities of the strongest current at each. Inline rather than a helper: its call
        # and the pair of tuples it returned cost more than this loop's own work.
        variants: list[tuple[tuple[float, float], ...]] = []
        tops: list[Variants] = []
        for phase in fields["phases"]:
            values = phase.__dict__
            f, pw = values["frequency_hz"], values["pulse_width_us"]
            if type(f) is float and type(pw) is float:
                variants.append(((f, pw),))
                tops.append((pulse_quantities(top, pw, f, shape, area),))
            elif type(f) is tuple and len(f) == 2:  # dense_disperse (Phase.variants)
                pws = pw if type(pw) is tuple and len(pw) == 2 else (pw, pw)
                variants.append(((f[0], pws[0]), (f[1], pws[1])))
                tops.append(
                    (
                        pulse_quantities(top, pws[0], f[0], shape, area),
                        pulse_quantities(top, pws[1], f[1], shape, area),
                    )
                )
            else:
                pairs = phase.variants
                variants.append(pairs)
                tops.append(tuple([pulse_quantities(top, w, h, shape, area) for h, w in pairs]))
        self.variants, self.electrode_tops = variants, tops

    @property
    def strongest(self) -> int:
        """The index in ``electrodes`` of the strongest electrode (``top_amplitude_ma``)."""
        return self.amplitudes.index(self.top_amplitude_ma)

    @classmethod
    def build(
        cls, profile: Profile, envelope: SafetyEnvelope, patient: Iterable[str] = ()
    ) -> RuleContext:
        return cls(profile, envelope, patient)

    def quantities(self, amplitude: float, phase: int) -> Variants:
        """The quantities of a current of ``amplitude`` at each variant of phase ``phase``."""
        if amplitude == self.top_amplitude_ma:  # equal positive floats: the same figures
            return self.electrode_tops[phase]
        key = (amplitude, phase)
        known = self._known
        if known is None:
            known = self._known = {}
        figures = known.get(key)
        if figures is None:
            shape, area, variants = self._shape, self._area, self.variants[phase]
            if len(variants) == 1:
                f, pw = variants[0]
                figures = (pulse_quantities(amplitude, pw, f, shape, area),)
            elif len(variants) == 2:  # no comprehension (a call of its own) for the pair
                (f, pw), (f2, pw2) = variants
                figures = (
                    pulse_quantities(amplitude, pw, f, shape, area),
                    pulse_quantities(amplitude, pw2, f2, shape, area),
                )
            else:
                figures = tuple(
                    [pulse_quantities(amplitude, pw, f, shape, area) for f, pw in variants]
                )
            known[key] = figures
        return figures

    @property
    def channel_tops(self) -> tuple[Variants, ...]:
        """[phase]: the quantities at each variant of the strongest channel."""
        if self._channel_tops is None:
            strongest = max(self.channel_amplitudes)
            phases = range(len(self.variants))
            self._channel_tops = tuple([self.quantities(strongest, p) for p in phases])
        return self._channel_tops

    def strongest_described(self) -> str:
        """Who carries ``top_amplitude_ma``: 'channel 1' or 'site ST36-L (channels 1, 2)'."""
        return self.electrodes[self.strongest].describe(self.profile)


_site_or_reason, _Site = acupoints.site_or_reason, acupoints.Site


#: text -> the Site it names, or None: ``acupoints.site_or_reason`` without the reason, read
#: with a plain dict lookup (an lru_cache call costs several times more). Profiles use a few
#: hundred sites over and over; cleared past _SITES_KEPT texts, so no input grows it forever.
_SITES: dict[str, acupoints.Site | None] = {}
_SITES_KEPT = 4096


def _site_or_none(text: str) -> acupoints.Site | None:
    """The Site ``text`` names, or None (and remembered in _SITES)."""
    if len(_SITES) >= _SITES_KEPT:
        _SITES.clear()
    site = _site_or_reason(text)
    found = _SITES[text] = site if type(site) is _Site else None
    return found


def site_or_none(text: str) -> acupoints.Site | None:
    """The parsed site, or None where the text is not one (``point-unknown`` reports it)."""
    try:
        return acupoints.parse_site(text)
    except acupoints.UnknownPoint:
        return None


def finding(
    code: str,
    loc: str,
    message: str | Callable[[], str],
    limit: Value = None,
    actual: Value = None,
    severity: Severity | None = None,
) -> Violation:
    """A Violation of ``code`` with the rule table's severity (unless given) and source.
    ``message``: the text, or a function that makes it when it is first read (for messages
    that format figures: most findings are only counted)."""
    rule = RULES[code]
    if type(message) is str:
        return violation(code, severity or rule.severity, loc, message, limit, actual, rule.source)
    return violation_later(
        code,
        severity or rule.severity,
        loc,
        message,  # type: ignore[arg-type]
        limit,
        actual,
        rule.source,
    )


def exceeds(actual: float, limit: float) -> bool:
    """True unless actual <= limit (so nan counts as exceeding)."""
    return not actual <= limit


def outside(actual: float, lo: float, hi: float) -> bool:
    """True unless lo <= actual <= hi (so nan counts as outside)."""
    return not lo <= actual <= hi


Rule = Callable[[RuleContext], Iterable[Violation]]


def suffix(value: float | tuple[float, ...], k: int) -> str:
    """The loc suffix of item ``k`` of a field: '' for a number, '[k]' for an item of a pair
    (built only when a rule reports)."""
    return f"[{k}]" if isinstance(value, tuple) else ""
