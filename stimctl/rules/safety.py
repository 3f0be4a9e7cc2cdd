"""Safety rules: pure functions from a RuleContext to Violations (table: envelope.RULES).

The channel and charge-balance rules live here, the quantity rules (charge, currents,
densities) in ``stimctl.rules.quantity_rules``, the timing, resolution and session rules in
``stimctl.rules.phase_rules``, the placement rules (sites, pairs, paths, patient flags) in
``stimctl.rules.placement``; ``ALL_RULES`` runs them all in table order.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from itertools import repeat
from operator import itemgetter

from stimctl.rules.context import Rule, RuleContext, exceeds, finding
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.phase_rules import resolution_rule, session_rules, timing_rules
from stimctl.rules.placement import (
    PATIENT_FLAGS,
    PREGNANCY_POINTS,
    path_rules,
    patient_rules,
    placement_clear,
    same_pair_rule,
    sites_rule,
)
from stimctl.rules.profile import MAX_CHANNELS, Profile
from stimctl.rules.quantities import net_charges_uc, recovery_exact
from stimctl.rules.quantity_rules import (
    RULE_CODES,
    current_density_rule,
    phase_charge_rule,
    power_density_rule,
    pulse_energy_rule,
    rms_current_rule,
    shannon_rule,
    unclear,
)
from stimctl.rules.violations import Violation

__all__ = ["ALL_RULES", "PATIENT_FLAGS", "PREGNANCY_POINTS", "RuleContext", "run_rules"]

#: The SafetyEnvelope limits channel_rules compares with, from its __dict__ in one call
#: (pydantic answers attribute reads through BaseModel.__getattr__'s slow hook).
_CHANNEL_LIMITS = itemgetter("max_channels", "max_amplitude_ma")


def channel_rules(ctx: RuleContext) -> list[Violation]:
    """channel-count-max (count and ids) and amplitude-max per channel and per shared site."""
    max_channels, max_amplitude = _CHANNEL_LIMITS(ctx.envelope.__dict__)
    out = []
    # Premise: the rules see only profiles the schema passes (validate_profile re-parses any
    # other), which holds them to MAX_CHANNELS channels with ids 1..MAX_CHANNELS
    # (Profile.channels, Channel.id): only a narrower envelope can find too many or an id
    # above its count (tests/test_safety.py, the schema's channel bounds).
    if max_channels < MAX_CHANNELS:
        channels = ctx.profile.channels
        if len(channels) > max_channels:
            out.append(
                finding(
                    "channel-count-max",
                    "channels",
                    f"{len(channels)} channels > {max_channels} allowed",
                    max_channels,
                    len(channels),
                )
            )
        if max([c.id for c in channels]) > max_channels:
            out.extend(_ids_above(ctx))
    # The strongest electrode's plateau: when it is within the limit, every site's is, and
    # every channel's (a channel's amplitude is at most the sum at any site it shares;
    # tests/test_rules_electrodes.py).
    if ctx.top_amplitude_ma <= max_amplitude:
        return out
    if not max(ctx.channel_amplitudes) <= max_amplitude:
        out.extend(_amplitudes_above(ctx))
    if ctx.any_shared:
        out.extend(_sites_above(ctx))
    return out


def _ids_above(ctx: RuleContext) -> Iterator[Violation]:
    """channel-count-max of each channel id above the envelope's channel count."""
    env = ctx.envelope
    for i, channel in enumerate(ctx.profile.channels):
        if channel.id > env.max_channels:
            yield finding(
                "channel-count-max",
                f"channels[{i}].id",
                f"channel id {channel.id} is above the {env.max_channels} channels allowed"
                f" (the device has channels 1..{env.max_channels})",
                env.max_channels,
                channel.id,
            )


def _amplitudes_above(ctx: RuleContext) -> Iterator[Violation]:
    """amplitude-max of each channel above the limit."""
    env = ctx.envelope
    for i, channel in enumerate(ctx.profile.channels):
        if exceeds(channel.amplitude_ma, env.max_amplitude_ma):
            yield finding(
                "amplitude-max",
                f"channels[{i}].amplitude_ma",
                f"amplitude {channel.amplitude_ma:g} mA > {env.max_amplitude_ma:g} mA peak",
                env.max_amplitude_ma,
                channel.amplitude_ma,
            )


def _sites_above(ctx: RuleContext) -> Iterator[Violation]:
    """amplitude-max of each shared site whose channels add up above the limit."""
    env = ctx.envelope
    for electrode, amplitude in zip(ctx.electrodes, ctx.amplitudes, strict=True):
        if electrode.site is None:
            continue  # a channel alone: judged above
        if exceeds(amplitude, env.max_amplitude_ma):
            yield finding(
                "amplitude-max",
                electrode.loc,
                f"{electrode.describe(ctx.profile)}: {amplitude:.4g} mA peak at one needle"
                f" > {env.max_amplitude_ma:g} mA (pulses of all channels coincide)",
                env.max_amplitude_ma,
                amplitude,
            )


def charge_balance_rule(ctx: RuleContext) -> list[Violation]:
    """charge-imbalance: monophasic, or a non-zero net charge per pulse."""
    shape = ctx.electrode_tops[0][0].shape  # the waveform's, past pydantic's slow getattr
    if shape == "biphasic_symmetric":
        return []  # no net charge: nothing exceeds the tolerance
    amplitudes = ctx.channel_amplitudes
    pws = [pw for phase in ctx.variants for _, pw in phase]
    if shape == "monophasic":
        # the phase charge: a correctly rounded product of positive figures, never nan, so
        # the strongest channel's is the largest in each phase and variant
        worst = max(net_charges_uc(repeat(max(amplitudes), len(pws)), pws, shape))
    elif recovery_exact(amplitudes, pws):
        return []  # every net charge is exactly 0: nothing exceeds the tolerance
    else:  # in table order, [phase][channel][variant] (max() keeps a nan only where it is first)
        pws = [pw for phase in ctx.variants for i in amplitudes for _, pw in phase]
        currents = [i for phase in ctx.variants for i in amplitudes for _ in phase]
        worst = max(map(abs, net_charges_uc(currents, pws, shape)))
        if worst == 0.0:
            return []  # nothing to compare with the tolerance (which is >= 0)
    # the largest phase charge is the strongest channel's (it grows with the amplitude)
    tolerance = 1e-9 * max([q.phase_charge_uc for tops in ctx.channel_tops for q in tops])
    if shape != "monophasic" and not exceeds(worst, tolerance):
        return []
    return [
        finding(
            "charge-imbalance",
            "waveform.shape",
            f"{shape} leaves {worst:.4g} uC net charge per pulse; use a biphasic shape",
            0.0,
            worst,
        )
    ]


ALL_RULES: tuple[Rule, ...] = (
    sites_rule,
    channel_rules,
    same_pair_rule,
    timing_rules,
    resolution_rule,
    phase_charge_rule,
    charge_balance_rule,
    rms_current_rule,
    pulse_energy_rule,
    power_density_rule,
    session_rules,
    shannon_rule,
    current_density_rule,
    path_rules,
    patient_rules,
)


#: The rules ``run_rules`` leaves out, by bit of its ``quiet`` (``_quiet``): sites_rule and
#: path_rules when placement_clear, patient_rules with no patient flag, charge_balance_rule
#: for biphasic_symmetric, channel_rules within the envelope's channels and amplitude,
#: same_pair_rule with fewer than two shared sites.
_QUIET_RULES: tuple[frozenset[Rule], ...] = (
    frozenset({sites_rule, path_rules}),
    frozenset({patient_rules}),
    frozenset({charge_balance_rule}),
    frozenset({channel_rules}),
    frozenset({same_pair_rule}),
)
#: [quiet][unclear(ctx)] -> ``_rules_for``'s answer.
_RULES_FOR: tuple[dict[frozenset[str], tuple[Rule, ...]], ...] = tuple(
    [{} for _ in range(1 << len(_QUIET_RULES))]
)


def _rules_for(codes: frozenset[str], quiet: int) -> tuple[Rule, ...]:
    """ALL_RULES less the rules that find nothing: the quantity rules whose code is not in
    ``codes`` (``unclear``: their strongest current clears the limit), and the rules of each
    bit set in ``quiet`` (``_QUIET_RULES``). At most 2**5 x 2**6 sets of rules."""
    rules = _RULES_FOR[quiet].get(codes)
    if rules is None:
        skipped = frozenset().union(
            *[group for bit, group in enumerate(_QUIET_RULES) if quiet >> bit & 1]
        )
        rules = _RULES_FOR[quiet][codes] = tuple(
            [
                r
                for r in ALL_RULES
                if r not in skipped and (r not in RULE_CODES or RULE_CODES[r] in codes)
            ]
        )
    return rules


def _quiet(ctx: RuleContext) -> int:
    """The bits of ``_QUIET_RULES`` whose rules find nothing in ``ctx``, each on its premise:
    1: ``placement_clear``; 2: no patient flag (patient_rules looks at the flags alone);
    4: biphasic_symmetric, which leaves no net charge (charge_balance_rule's first answer);
    8: the schema's channel count within the envelope's and the strongest electrode within
    its amplitude (channel_rules' own tests, which find nothing then); 16: fewer than two
    shared sites (same_pair_rule's first answer: two channels on one pair share two sites).
    tests/test_rules_skipped.py holds run_rules to every rule's findings."""
    env = ctx.envelope.__dict__  # the limits, past pydantic's slow getattr
    electrodes = ctx.electrodes  # shared sites come last
    return (
        placement_clear(ctx)
        + (0 if ctx.patient else 2)
        + (4 if ctx.electrode_tops[0][0].shape == "biphasic_symmetric" else 0)
        + (
            8
            if env["max_channels"] >= MAX_CHANNELS
            and ctx.top_amplitude_ma <= env["max_amplitude_ma"]
            else 0
        )
        + (16 if len(electrodes) < 2 or electrodes[-2].site is None else 0)
    )


def run_rules(
    profile: Profile, envelope: SafetyEnvelope, patient: Iterable[str] = ()
) -> list[Violation]:
    """Every rule over one profile, in table order (less the rules that would find nothing:
    ``_rules_for``)."""
    ctx = RuleContext(profile, envelope, patient)
    try:
        codes = unclear(ctx)
        quiet = _quiet(ctx)
        rules = _RULES_FOR[quiet].get(codes) or _rules_for(codes, quiet)  # lookup inline
        return [v for rule in rules for v in rule(ctx)]
    finally:
        # Findings format their messages lazily from ctx; ctx.shared holds findings (the phase
        # walk's). Cleared, no reference cycle is left: ctx goes when its findings go, without
        # waiting for the cyclic collector (whose full passes walk every live object).
        ctx.shared.clear()
