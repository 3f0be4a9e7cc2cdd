"""Safety rules: pure functions from a RuleContext to Violations (table: envelope.RULES).

The electrical, timing and session rules live here, the placement rules (sites, pairs, paths,
patient flags) in ``stimctl.rules.placement``; ``ALL_RULES`` runs both in table order.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from itertools import repeat

from stimctl.rules.context import Rule, RuleContext, exceeds, finding, suffix
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.placement import (
    PATIENT_FLAGS,
    PREGNANCY_POINTS,
    path_rules,
    patient_rules,
    same_pair_rule,
    sites_rule,
)
from stimctl.rules.profile import Profile
from stimctl.rules.quantities import net_charges_uc
from stimctl.rules.quantity_rules import (
    current_density_rule,
    phase_charge_rule,
    power_density_rule,
    pulse_energy_rule,
    rms_current_rule,
    shannon_rule,
)
from stimctl.rules.violations import Violation

__all__ = ["ALL_RULES", "PATIENT_FLAGS", "PREGNANCY_POINTS", "RuleContext", "run_rules"]

#: Device resolution (docs/PROTOCOL.md, BLOCK): frequency in 0.1 Hz, pulse width in 1 us (u16),
#: amplitude in uA (u16), times in 1 ms ticks. Values within this fraction of a step count as on it.
_RESOLUTION_TOLERANCE = 1e-6
_U16 = 0xFFFF
_TIMES = ("duration_s", "switch_s", "on_s", "off_s")


def channel_rules(ctx: RuleContext) -> Iterator[Violation]:
    """channel-count-max (count and ids) and amplitude-max per channel and per shared site."""
    env, channels = ctx.envelope, ctx.profile.channels
    if len(channels) > env.max_channels:
        yield finding(
            "channel-count-max",
            "channels",
            f"{len(channels)} channels > {env.max_channels} allowed",
            env.max_channels,
            len(channels),
        )
    for i, channel in enumerate(
        channels if max([c.id for c in channels]) > env.max_channels else ()
    ):
        if channel.id > env.max_channels:
            yield finding(
                "channel-count-max",
                f"channels[{i}].id",
                f"channel id {channel.id} is above the {env.max_channels} channels allowed"
                f" (the device has channels 1..{env.max_channels})",
                env.max_channels,
                channel.id,
            )
    highest = max(ctx.channel_amplitudes)
    for i, channel in enumerate(channels if not highest <= env.max_amplitude_ma else ()):
        if exceeds(channel.amplitude_ma, env.max_amplitude_ma):
            yield finding(
                "amplitude-max",
                f"channels[{i}].amplitude_ma",
                f"amplitude {channel.amplitude_ma:g} mA > {env.max_amplitude_ma:g} mA peak",
                env.max_amplitude_ma,
                channel.amplitude_ma,
            )
    pairs = zip(ctx.electrodes, ctx.amplitudes, strict=True) if ctx.any_shared else ()
    for electrode, total in pairs:
        if electrode.site is None:
            continue  # a channel alone: judged above
        if exceeds(total, env.max_amplitude_ma):
            yield finding(
                "amplitude-max",
                electrode.loc,
                f"{electrode.describe(ctx.profile)}: {total:.4g} mA peak at one needle"
                f" > {env.max_amplitude_ma:g} mA (pulses of all channels coincide)",
                env.max_amplitude_ma,
                total,
            )


def timing_rules(ctx: RuleContext) -> Iterator[Violation]:
    """pulse-width-range and frequency-range (including: the pulse must fit its period)."""
    env = ctx.envelope
    pw_lo, pw_hi = env.pulse_width_us
    f_lo, f_hi = env.frequency_hz
    for j, phase in enumerate(ctx.profile.phases):
        pws, fs = phase.pulse_width_us, phase.frequency_hz
        for k, pw in enumerate(pws if type(pws) is tuple else (pws,)):
            if not pw_lo <= pw <= pw_hi:  # outside(), inline
                yield finding(
                    "pulse-width-range",
                    f"phases[{j}].pulse_width_us{suffix(pws, k)}",
                    f"pulse width {pw:g} us outside {pw_lo:g}..{pw_hi:g} us",
                    f"{pw_lo:g}..{pw_hi:g}",
                    pw,
                )
        for k, f in enumerate(fs if type(fs) is tuple else (fs,)):
            if not f_lo <= f <= f_hi:  # outside(), inline
                yield finding(
                    "frequency-range",
                    f"phases[{j}].frequency_hz{suffix(fs, k)}",
                    f"frequency {f:g} Hz outside {f_lo:g}..{f_hi:g} Hz",
                    f"{f_lo:g}..{f_hi:g}",
                    f,
                )
    for p, tops in enumerate(ctx.electrode_tops):
        for v, q in enumerate(tops):  # the pulse's length does not depend on amplitude
            fit = 1e6 / q.min_period_us
            if q.frequency_hz <= fit or not f_lo <= q.frequency_hz <= f_hi:  # exceeds(), inline
                continue
            loc = f"phases[{p}].frequency_hz"
            if isinstance(ctx.profile.phases[p].frequency_hz, tuple):
                loc += f"[{v}]"
            yield finding(
                "frequency-range",
                loc,
                f"a {q.active_time_us:g} us pulse does not fit a {q.frequency_hz:g} Hz"
                f" period (max {fit:.4g} Hz)",
                fit,
                q.frequency_hz,
            )


def _off_step(value: float, step: float) -> bool:
    """True unless ``value`` is a whole number of ``step`` (within the tolerance)."""
    units = value / step
    if not math.isfinite(units):
        return True
    return not abs(units - round(units)) <= _RESOLUTION_TOLERANCE * max(1.0, units)


def resolution_rule(ctx: RuleContext) -> Iterator[Violation]:
    """device-resolution: values the device cannot be sent as written (docs/PROTOCOL.md).

    Values outside the envelope's range are left to the range rules (one finding per fault).
    """
    env = ctx.envelope
    pw_lo, pw_hi = env.pulse_width_us
    f_lo, f_hi = env.frequency_hz
    for j, phase in enumerate(ctx.profile.phases):
        pws, fs = phase.pulse_width_us, phase.frequency_hz
        for k, pw in enumerate(pws if type(pws) is tuple else (pws,)):
            if not pw_lo <= pw <= pw_hi or (pw <= _U16 and pw.is_integer()):  # outside(), inline
                continue  # out of range (the range rule's), or a whole number of us
            if not pw <= _U16 or _off_step(pw, 1.0):
                yield finding(
                    "device-resolution",
                    f"phases[{j}].pulse_width_us{suffix(pws, k)}",
                    f"pulse width {pw:g} us is not a whole number of microseconds up to {_U16}"
                    " (the device's resolution)",
                    "1 us",
                    pw,
                )
        for k, f in enumerate(fs if type(fs) is tuple else (fs,)):
            if not f_lo <= f <= f_hi or (f <= _U16 / 10 and f.is_integer()):  # outside(), inline
                continue  # out of range (the range rule's), or whole Hz: f / 0.1 is 10 f within
                # a few ulp, far inside the tolerance
            if not f <= _U16 / 10 or _off_step(f, 0.1):
                yield finding(
                    "device-resolution",
                    f"phases[{j}].frequency_hz{suffix(fs, k)}",
                    f"frequency {f:g} Hz is not a multiple of 0.1 Hz up to {_U16 / 10:g} Hz"
                    " (the device's resolution)",
                    "0.1 Hz",
                    f,
                )
        times = (phase.duration_s, phase.switch_s, phase.on_s, phase.off_s)
        if all(t is None or t >= 0.001 for t in times):
            continue  # every time is at least one tick
        for name, seconds in zip(_TIMES, times, strict=True):
            if seconds is not None and seconds < 0.001:
                yield finding(
                    "device-resolution",
                    f"phases[{j}].{name}",
                    f"{name} {seconds:g} s is shorter than the device's 1 ms tick",
                    0.001,
                    seconds,
                )
    channels = ctx.profile.channels if max(ctx.channel_amplitudes) > _U16 / 1000 else ()
    for i, channel in enumerate(channels):
        amplitude = channel.amplitude_ma
        if amplitude <= env.max_amplitude_ma and exceeds(amplitude, _U16 / 1000):
            yield finding(
                "device-resolution",
                f"channels[{i}].amplitude_ma",
                f"amplitude {channel.amplitude_ma:g} mA does not fit the protocol"
                f" (max {_U16 / 1000:g} mA)",
                _U16 / 1000,
                channel.amplitude_ma,
            )


def charge_balance_rule(ctx: RuleContext) -> Iterator[Violation]:
    """charge-imbalance: monophasic, or a non-zero net charge per pulse."""
    shape = ctx.profile.waveform.shape
    if shape == "biphasic_symmetric":
        return  # no net charge: nothing exceeds the tolerance
    # in table order, [phase][channel][variant] (max() keeps a nan only where it comes first)
    amplitudes = ctx.channel_amplitudes
    if shape == "monophasic":
        # the phase charge: a correctly rounded product of positive figures, never nan, so
        # the strongest channel's is the largest in each phase and variant
        strongest = max(amplitudes)
        pws = [pw for phase in ctx.variants for _, pw in phase]
        worst = max(net_charges_uc(repeat(strongest, len(pws)), pws, shape))
    else:
        pws = [pw for phase in ctx.variants for i in amplitudes for _, pw in phase]
        currents = [i for phase in ctx.variants for i in amplitudes for _ in phase]
        worst = max(map(abs, net_charges_uc(currents, pws, shape)))
    if shape != "monophasic" and worst == 0.0:
        return  # nothing to compare with the tolerance (which is >= 0)
    # the largest phase charge is the strongest channel's (it grows with the amplitude)
    tolerance = 1e-9 * max([q.phase_charge_uc for tops in ctx.channel_tops for q in tops])
    if shape == "monophasic" or exceeds(worst, tolerance):
        yield finding(
            "charge-imbalance",
            "waveform.shape",
            f"{shape} leaves {worst:.4g} uC net charge per pulse; use a biphasic shape",
            0.0,
            worst,
        )


def _default_edges(ctx: RuleContext, j: int, on_s: float) -> Iterator[Violation]:
    """ramp-rate-max of intermittent phase j's default on-window edges (no window_ramp_s)."""
    top, rate_max = ctx.top_amplitude_ma, ctx.envelope.max_ramp_rate_ma_per_s
    edges = ctx.profile.window_ramp_s(j, rate_max, top)
    try:
        squeezed = top / (on_s / 2)  # both default edges fitted into on_s
    except ZeroDivisionError:  # on_s too short for a float to halve
        squeezed = math.inf
    if not squeezed <= rate_max:  # exceeds(), inline
        yield finding(
            "ramp-rate-max",
            f"phases[{j}].on_s",
            lambda: (
                f"on-window edges at {rate_max:g} mA/s: {ctx.strongest_described()}"
                f" ({top:.4g} mA) needs {edges:.4g} s up and {edges:.4g} s down, more than on_s"
                f" {on_s:g} s"
            ),
            rate_max,
            squeezed,
        )


def session_rules(ctx: RuleContext) -> Iterator[Violation]:
    """duration-max, ramp-required and ramp-rate-max."""
    env, profile = ctx.envelope, ctx.profile
    phases = profile.phases
    total = profile.duration_s
    if exceeds(total, env.max_session_s):
        yield finding(
            "duration-max",
            "phases",
            f"session {total:g} s > {env.max_session_s:g} s",
            env.max_session_s,
            total,
        )
    top = ctx.top_amplitude_ma
    rate_max = env.max_ramp_rate_ma_per_s
    previous = None
    for j, phase in enumerate(phases):
        mode, up, down = phase.mode, phase.ramp_up_s, phase.ramp_down_s
        intermittent = mode == "intermittent"
        # an intermittent phase starts with an on-window, which has edges of its own
        if (
            up <= 0
            and not intermittent
            and (previous is None or previous.ramp_down_s > 0 or previous.mode == "intermittent")
        ):
            why = "the first phase" if previous is None else "a phase after one that ended at zero"
            yield finding(
                "ramp-required",
                f"phases[{j}].ramp_up_s",
                f"{why} starts from zero: ramp_up_s must be > 0",
                0.0,
                up,
            )
        previous = phase
        edge = phase.window_ramp_s
        if intermittent and edge is None and phase.on_s is not None:
            yield from _default_edges(ctx, j, phase.on_s)
        for name, seconds in (("ramp_up_s", up), ("ramp_down_s", down), ("window_ramp_s", edge)):
            if seconds is not None and seconds > 0:
                rate = top / seconds
                if not rate <= rate_max:  # exceeds(), inline
                    yield finding(
                        "ramp-rate-max",
                        f"phases[{j}].{name}",
                        lambda seconds=seconds, rate=rate: (
                            f"{ctx.strongest_described()}:"
                            f" {top:.4g} mA over {seconds:g} s is {rate:.4g} mA/s > {rate_max:g}"
                            " mA/s"
                        ),
                        rate_max,
                        rate,
                    )


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


def run_rules(
    profile: Profile, envelope: SafetyEnvelope, patient: Iterable[str] = ()
) -> list[Violation]:
    """Every rule over one profile, in table order."""
    ctx = RuleContext(profile, envelope, patient)
    return [v for rule in ALL_RULES for v in rule(ctx)]
