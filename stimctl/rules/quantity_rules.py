"""The quantity rules: one figure of every current (phase charge, r.m.s. current, energy per
pulse, power density, Shannon k, current density) against its limit, strongest current first
(``RuleContext``); ``safety.ALL_RULES`` runs them in table order."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable, Iterable
from operator import itemgetter

from stimctl.rules.context import Rule, RuleContext
from stimctl.rules.envelope import RULES
from stimctl.rules.profile import MAX_CHANNELS, Shape
from stimctl.rules.quantities import PulseQuantities, current_density_ma_cm2, shannon_k
from stimctl.rules.violations import Severity, Violation, violation_later

__all__ = [
    "RULE_CODES",
    "current_density_rule",
    "phase_charge_rule",
    "power_density_rule",
    "pulse_energy_rule",
    "rms_current_rule",
    "shannon_rule",
    "unclear",
]

#: The quantity rules' checks of the strongest current: (code, figure, limit field, margin,
#: at_limit), one per ``_quantity_rule``, in table order.
_STRONGEST_CHECKS: list[tuple[str, int, str, float, bool]] = []
#: Each quantity rule's code: the rule finds nothing unless its code is in ``unclear(ctx)``.
RULE_CODES: dict[Rule, str] = {}
#: ``unclear`` of the usual profile, every limit cleared: one set, its hash worked out once.
_CLEAR: frozenset[str] = frozenset()


def unclear(ctx: RuleContext) -> frozenset[str]:
    """The quantity rules whose figure of the strongest current (every phase and variant) does
    not clear the limit by the rule's margin; worked out once per validation for all of them.
    Every other current's figure is at most the strongest's, so the rest are done.

    Each check is one comparison with its ``_bound`` (the limit less the margin, exactly):
    a variant's six figures, read in one call, against the six bounds in one test; only a
    variant that fails it is looked at check by check."""
    known = ctx.shared.get("unclear")
    if known is None:
        limits = _LIMITS(ctx.envelope.__dict__)  # past pydantic's slow getattr
        b0, b1, b2, b3, b4, b5 = _BOUNDS.get(limits) or _bounds_for(limits)
        out: set[str] | None = None
        for phase in ctx.electrode_tops:
            for q in phase:
                f0, f1, f2, f3, f4, f5 = _FIGURES(q)
                # x <= bound is False for a nan x: a nan never clears
                if f0 <= b0 and f1 <= b1 and f2 <= b2 and f3 <= b3 and f4 <= b4 and f5 <= b5:
                    continue
                if out is None:
                    out = set()
                c0, c1, c2, c3, c4, c5 = _CODES
                if not f0 <= b0:
                    out.add(c0)
                if not f1 <= b1:
                    out.add(c1)
                if not f2 <= b2:
                    out.add(c2)
                if not f3 <= b3:
                    out.add(c3)
                if not f4 <= b4:
                    out.add(c4)
                if not f5 <= b5:
                    out.add(c5)
        known = ctx.shared["unclear"] = frozenset(out) if out else _CLEAR
    return known  # type: ignore[no-any-return]


def _bound(limit: float, margin: float, at_limit: bool) -> float:
    """The largest float x that clears ``limit`` by ``margin`` (x + margin < limit when
    ``at_limit``, else x + margin <= limit): inf when every float does, nan when none does.

    Premise: x + margin rounds monotonically (a larger x never makes a smaller sum), so the
    floats that clear are every float up to the bound, and "clears" is "x <= bound", nan
    included (tests/test_quantity_rules_fast.py). Found by bisection over the floats in order
    (at most 64 steps), once per envelope's limits (``_bounds_for``)."""

    def clears(x: float) -> bool:
        return (x + margin < limit) if at_limit else (x + margin <= limit)

    if clears(math.inf):
        return math.inf
    if not clears(-math.inf):
        return math.nan
    lo, hi = _ordinal(-math.inf), _ordinal(math.inf)  # lo clears, hi does not
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if clears(_from_ordinal(mid)):
            lo = mid
        else:
            hi = mid
    return _from_ordinal(lo)


def _ordinal(x: float) -> int:
    """Where a float (not nan) stands among all floats in order, as an integer."""
    bits = int.from_bytes(struct.pack("<d", x), "little", signed=True)
    return bits if bits >= 0 else -(bits & 0x7FFF_FFFF_FFFF_FFFF)  # -0.0 stands with 0.0


def _from_ordinal(n: int) -> float:
    """The float at ``_ordinal`` n."""
    bits = n if n >= 0 else -n | -0x8000_0000_0000_0000  # the sign bit set
    return struct.unpack("<d", bits.to_bytes(8, "little", signed=True))[0]  # type: ignore[no-any-return]


def _bounds_for(limits: tuple[float, ...]) -> tuple[float, ...]:
    """Each check's ``_bound`` at the envelope's ``limits`` (``_LIMITS``), kept per limits: a
    process meets a few envelopes (dropped past 64)."""
    if len(_BOUNDS) >= 64:
        _BOUNDS.clear()
    checks = zip(limits, _STRONGEST_CHECKS, strict=True)
    bounds = _BOUNDS[limits] = tuple([_bound(x, c[3], c[4]) for x, c in checks])
    return bounds


def _quantity_rule(
    code: str,
    figure: str,
    what: str,
    unit: str,
    at_limit: bool = False,
    per_site: bool = True,
    margin: float = 0.0,
) -> Rule:
    """A rule over one figure (a PulseQuantities field) of every current. ``margin``: how far
    under the limit the strongest current's figure must stay to clear the others unseen, for a
    figure whose growth with the amplitude rests on a function that is not correctly rounded
    (log10)."""
    field, severity, source = RULES[code].field, RULES[code].severity, RULES[code].source
    assert field is not None
    index = PulseQuantities._fields.index(figure)
    _STRONGEST_CHECKS.append((code, index, field, margin, at_limit))

    def rule(ctx: RuleContext) -> Iterable[Violation]:
        known = ctx.shared.get("unclear")  # worked out by the first quantity rule to ask
        if code not in (unclear(ctx) if known is None else known):  # type: ignore[operator]
            return ()  # the strongest current stays under the limit, so every current does
        limit = ctx.envelope.__dict__[field]  # past pydantic's slow getattr
        failing = _weaker(ctx, limit, per_site, check)
        return _failing_findings(ctx, failing, per_site, (code, severity, source), limit, message)

    check = (index, margin, at_limit, _ALONE.get(figure))
    message = (what, unit, at_limit)
    rule.__name__ = rule.__qualname__ = code.replace("-", "_")
    where = (
        "(phase, electrode site: channels sharing it summed)" if per_site else "(phase, channel)"
    )
    rule.__doc__ = f"{code}: {what} per {where}, worst frequency variant."
    RULE_CODES[rule] = code
    return rule


def _shannon_alone(i: float, pw: float, f: float, shape: Shape, area: float) -> float:
    """``shannon_k`` with ``_ALONE``'s arguments (k depends on neither f nor the shape)."""
    return shannon_k(i, pw, area)


#: Figures worked out alone for the currents a rule walks (not all of PulseQuantities).
_ALONE: dict[str, Callable[[float, float, float, Shape, float], float]] = {
    "current_density_ma_cm2": current_density_ma_cm2,
    "shannon_k": _shannon_alone,
}


def _weaker(
    ctx: RuleContext,
    limit: float,
    per_site: bool,
    check: tuple[int, float, bool, Callable[[float, float, float, Shape, float], float] | None],
) -> list[tuple[int, int, float]]:
    """(electrode or channel, phase, figure) of each current over the limit, in table order:
    [electrode][phase] per site, else [phase][channel]. Each phase is walked strongest
    current first, until one clears the limit by the margin (every weaker one does too).
    ``check``: the figure's PulseQuantities index, the margin, whether reaching the limit
    fails, and the function working the figure out alone (None: ``RuleContext.quantities``)."""
    index, margin, at_limit, alone = check
    rows = ctx.amplitudes if per_site else ctx.channel_amplitudes
    strongest_first = sorted(range(len(rows)), key=rows.__getitem__, reverse=True)
    failing: list[tuple[int, int, float]] = []
    tops, strongest = ctx.electrode_tops, ctx.top_amplitude_ma
    shape, area = tops[0][0].shape, tops[0][0].area_cm2  # the profile's, as RuleContext has them
    if margin or at_limit or alone is None:  # the general walk, every phase
        _walk_general(
            ctx, range(len(ctx.variants)), strongest_first, limit, per_site, check, failing
        )
        failing.sort()  # (row, phase) or (phase, row): all distinct, so the figure never decides
        return failing
    # With no margin, a figure that does not clear the limit fails it: "clears" is value <=
    # limit, "fails" its negation (nan included), and value + 0.0 compares as value does.
    for p, variants in enumerate(ctx.variants):
        if len(variants) == 1:  # the usual phase: one test a row
            f, pw = variants[0]
            top = tops[p][0][index]
            for r in strongest_first:
                amplitude = rows[r]
                value = top if amplitude == strongest else alone(amplitude, pw, f, shape, area)  # type: ignore[misc]
                if value <= limit:
                    break
                failing.append((r, p, value) if per_site else (p, r, value))
            continue
        if len(variants) == 2:  # a dense_disperse phase: the same, the worse variant
            (f, pw), (f2, pw2) = variants
            first, second = tops[p][0][index], tops[p][1][index]
            top = second if not second <= first else first  # a later nan is kept
            for r in strongest_first:
                amplitude = rows[r]
                if amplitude == strongest:
                    value = top
                else:
                    value = alone(amplitude, pw, f, shape, area)  # type: ignore[misc]
                    later = alone(amplitude, pw2, f2, shape, area)  # type: ignore[misc]
                    if not later <= value:
                        value = later
                if value <= limit:
                    break
                failing.append((r, p, value) if per_site else (p, r, value))
            continue
        _walk_general(ctx, (p,), strongest_first, limit, per_site, check, failing)  # more variants
    failing.sort()  # (row, phase) or (phase, row): all distinct, so the figure never decides
    return failing


def _walk_general(
    ctx: RuleContext,
    phases: Iterable[int],
    order: list[int],
    limit: float,
    per_site: bool,
    check: tuple[int, float, bool, Callable[[float, float, float, Shape, float], float] | None],
    failing: list[tuple[int, int, float]],
) -> None:
    """``_weaker``'s walk in general (a margin, the at-limit rule, the figure from
    RuleContext.quantities, or more than two variants) of each of ``phases``: the rows in
    ``order``, strongest first, until one clears the limit by the margin; each failing one
    added to ``failing``."""
    index, margin, at_limit, alone = check
    rows = ctx.amplitudes if per_site else ctx.channel_amplitudes
    tops, strongest = ctx.electrode_tops, ctx.top_amplitude_ma
    shape, area = tops[0][0].shape, tops[0][0].area_cm2  # the profile's, as RuleContext has them
    for p in phases:
        variants = ctx.variants[p]
        for r in order:
            # the worst variant (a later nan is kept)
            amplitude = rows[r]
            if amplitude == strongest:  # its figures are known: RuleContext.quantities' answer
                figures = tops[p]
                value = figures[0][index]
                if len(figures) > 1:
                    for q in figures[1:]:
                        if not q[index] <= value:
                            value = q[index]
            elif alone is not None:  # the figure alone: the same operations, bit for bit
                f, pw = variants[0]
                value = alone(amplitude, pw, f, shape, area)
                if len(variants) > 1:
                    for f, pw in variants[1:]:
                        x = alone(amplitude, pw, f, shape, area)
                        if not x <= value:
                            value = x
            else:
                figures = ctx.quantities(amplitude, p)
                value = figures[0][index]
                for q in figures[1:]:
                    if not q[index] <= value:
                        value = q[index]
            if (value + margin < limit) if at_limit else (value + margin <= limit):
                break
            if not value <= limit or (at_limit and value == limit):  # exceeds(), inline
                failing.append((r, p, value) if per_site else (p, r, value))


def _failing_findings(
    ctx: RuleContext,
    failing: list[tuple[int, int, float]],
    per_site: bool,
    rule: tuple[str, Severity, str],
    limit: float,
    message: tuple[str, str, bool],
) -> list[Violation]:
    """A quantity rule's findings (``_weaker``'s, in its order); ``rule``: its code, severity
    and source; ``message``: what the figure is, its unit and whether reaching the limit fails."""
    code, severity, source = rule
    spec = (*message, limit, per_site)  # what the message says, shared by every finding
    n = len(ctx.variants)
    heads = _HEADS if n <= len(_HEADS) else [f"phases[{p}]." for p in range(n)]
    out = []
    if per_site:  # [electrode][phase]: each electrode's findings one after another
        electrodes, before, loc = ctx.electrodes, -1, ""
        for r, p, value in failing:
            if r != before:
                loc, before = electrodes[r].loc, r
            text = (_message, ctx, r, value, spec)  # finding(), the table read once
            out.append(violation_later(code, severity, heads[p] + loc, text, limit, value, source))
        return out
    n = len(ctx.channel_amplitudes)
    channels = _CHANNELS if n <= len(_CHANNELS) else [f"channels[{r}]" for r in range(n)]
    for p, r, value in failing:
        text = (_message, ctx, r, value, spec)
        loc = heads[p] + channels[r]
        out.append(violation_later(code, severity, loc, text, limit, value, source))
    return out


#: Locations' heads and channels, made once: 'phases[p].' and 'channels[r]' (a profile with
#: more phases or channels, which parsing refuses, gets its own list).
_HEADS = tuple([f"phases[{p}]." for p in range(64)])
_CHANNELS = tuple([f"channels[{r}]" for r in range(MAX_CHANNELS)])


def _message(
    ctx: RuleContext, r: int, value: float, spec: tuple[str, str, bool, float, bool]
) -> str:
    """A quantity finding's message (written when first read): who, the figure, the limit;
    ``spec``: what the figure is, its unit, whether reaching the limit fails, the limit, and
    whether ``r`` is an electrode (else a channel)."""
    what, unit, at_limit, limit, per_site = spec
    u = f" {unit}" if unit else ""
    return (
        f"{_who(ctx, r, per_site)}: {what} {value:.4g}{u} {'>=' if at_limit else '>'} {limit:g}{u}"
    )


def _who(ctx: RuleContext, r: int, per_site: bool) -> str:
    """Who electrode or channel ``r`` is: 'channel 1', 'site ST36-L (channels 1, 2)'."""
    if per_site:
        return ctx.electrodes[r].describe(ctx.profile)
    return f"channel {ctx.profile.channels[r].id}"


phase_charge_rule = _quantity_rule("phase-charge-max", "phase_charge_uc", "phase charge", "uC")
rms_current_rule = _quantity_rule("rms-current-max", "rms_ma", "r.m.s. current", "mA")
pulse_energy_rule = _quantity_rule(
    "pulse-energy-max",
    "pulse_energy_mj",
    "energy per pulse into 500 ohm",
    "mJ",
    per_site=False,
)
power_density_rule = _quantity_rule(
    "power-density-max",
    "power_density_w_cm2",
    "average power density",
    "W/cm2",
    at_limit=True,
)
shannon_rule = _quantity_rule("charge-density-shannon", "shannon_k", "Shannon k", "", margin=1e-9)
current_density_rule = _quantity_rule(
    "current-density-iec", "current_density_ma_cm2", "r.m.s. current density", "mA/cm2"
)


# unclear's tables, in _STRONGEST_CHECKS order: the codes, each check's figure of a
# PulseQuantities and its limit among the envelope's fields, each read in one call. unclear
# names the six checks one by one: a seventh quantity rule is a seventh name there too.
assert len(_STRONGEST_CHECKS) == 6, "unclear() compares six figures"
_CODES = tuple([code for code, _, _, _, _ in _STRONGEST_CHECKS])
_FIGURES = itemgetter(*[index for _, index, _, _, _ in _STRONGEST_CHECKS])
_LIMITS = itemgetter(*[field for _, _, field, _, _ in _STRONGEST_CHECKS])
#: The envelope's limits (``_LIMITS``) -> each check's ``_bound``.
_BOUNDS: dict[tuple[float, ...], tuple[float, ...]] = {}
