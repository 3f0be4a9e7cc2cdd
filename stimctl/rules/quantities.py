"""Electrical quantities of a pulse train (charge, r.m.s. current, energy, densities, Shannon k).

Computed once per (phase, channel, frequency variant) and shared by the safety rules and the
device output specification. Units are in the names: mA, us, uC, mJ, W, cm2. The reference
load is 500 ohm (IEC 60601-2-10, FDA 1999 guidance). All functions are total: absurd inputs
give inf or nan, never an exception.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from stimctl.rules.profile import ASYMMETRIC_RATIO, Needle, Phase, Profile, Shape, total

__all__ = [
    "ASYMMETRIC_RATIO",
    "LOAD_OHM",
    "OperatingPoint",
    "PulseQuantities",
    "current_density_ma_cm2",
    "needle_area_cm2",
    "net_charge_uc",
    "net_charges_uc",
    "operating_points",
    "phase_pulse_count",
    "pulse_quantities",
    "recovery_exact",
    "shannon_k",
    "variant_seconds",
]

#: Reference load for energy and power figures (IEC 60601-2-10; FDA 1999 guidance).
LOAD_OHM = 500.0
_new_tuple = tuple.__new__
_sqrt, _log10 = math.sqrt, math.log10
#: The recovery phase's current per mA of the leading phase (biphasic_asymmetric).
_RECOVERY_SCALE = 1.0 / ASYMMETRIC_RATIO


def needle_area_cm2(diameter_mm: float, insertion_mm: float) -> float:
    """Lateral area of the inserted shaft, pi x d x L, in cm2 (0.25 mm x 15 mm -> 0.1178)."""
    return math.pi * (diameter_mm / 10.0) * (insertion_mm / 10.0)


def net_charge_uc(amplitude_ma: float, pulse_width_us: float, shape: Shape) -> float:
    """Net charge per pulse, uC: 0 for biphasic_symmetric, the leading phase's charge less the
    recovery's for biphasic_asymmetric (0 unless a product overflows), the phase charge for
    monophasic (``PulseQuantities.net_charge_uc``)."""
    return net_charges_uc((amplitude_ma,), (pulse_width_us,), shape)[0]


def net_charges_uc(
    amplitudes_ma: Iterable[float], pulse_widths_us: Iterable[float], shape: Shape
) -> list[float]:
    """``net_charge_uc`` of each (amplitude, pulse width) pair, in one call (the charge
    balance rule judges every channel in every phase and variant)."""
    pairs = zip(amplitudes_ma, pulse_widths_us, strict=True)
    if shape == "biphasic_symmetric":
        return [0.0 for _ in pairs]
    if shape == "biphasic_asymmetric":  # leading phase less recovery (i / ratio, pw x ratio)
        inverse = 1.0 / ASYMMETRIC_RATIO
        return [
            1.0 * i * pw / 1000.0 - 1.0 * (i * inverse) * (pw * ASYMMETRIC_RATIO) / 1000.0
            for i, pw in pairs
        ]
    return [1.0 * i * pw / 1000.0 for i, pw in pairs]


#: ASYMMETRIC_RATIO is a power of two (4): the recovery's scalings, i / ratio and pw x ratio,
#: are then exact, and its charge is the leading phase's to the last bit (``recovery_exact``).
_RATIO_POWER_OF_TWO = math.frexp(ASYMMETRIC_RATIO)[0] == 0.5
#: Amplitudes and pulse widths within these bounds keep both scalings and the product i x pw
#: inside the float range (i / ratio stays normal; pw x ratio and i x pw do not overflow).
_EXACT_MIN_MA, _EXACT_MAX = 2.0**-1000, 1e150


def recovery_exact(amplitudes_ma: Sequence[float], pulse_widths_us: Sequence[float]) -> bool:
    """True when ``net_charge_uc`` of biphasic_asymmetric is exactly 0 for every amplitude and
    pulse width: both charges are then the same real product rounded once, so they are
    equal. False says nothing (work the net charges out)."""
    return (
        _RATIO_POWER_OF_TWO
        and sum(amplitudes_ma) <= _EXACT_MAX  # not nan, so min() below is the minimum
        and min(amplitudes_ma) >= _EXACT_MIN_MA
        and sum(pulse_widths_us) <= _EXACT_MAX
        and min(pulse_widths_us) >= 0.0
    )


def _per_area(value: float) -> float:
    """``value`` / 0 cm2 (a needle too thin for a float): inf, or nan for 0 / 0."""
    return math.inf if value > 0 else math.nan


def _mul(*factors: float) -> float:
    """Product that saturates to inf/nan instead of raising (float ** 2 can raise)."""
    out = 1.0
    for f in factors:
        out *= f
    return out


class PulseQuantities(NamedTuple):
    """Figures for one pulse train at one amplitude, pulse width and frequency.

    A named tuple rather than a dataclass: the rules make one per (phase, electrode, variant)
    of every profile, and a tuple is built several times faster.
    """

    shape: Shape
    amplitude_ma: float
    pulse_width_us: float
    frequency_hz: float
    area_cm2: float
    #: Charge of the leading phase, uC (mA x us / 1000).
    phase_charge_uc: float
    #: Net charge per pulse, uC (0 for the biphasic shapes, = phase charge for monophasic).
    net_charge_uc: float
    #: Time the current flows per pulse, us (2 pw symmetric, (1 + 4) pw asymmetric, pw mono).
    active_time_us: float
    #: R.m.s. current of the train, mA.
    rms_ma: float
    #: Energy per pulse into LOAD_OHM, mJ.
    pulse_energy_mj: float
    #: Average power into LOAD_OHM, W (r.m.s. current squared x load).
    power_w: float
    #: Average power per needle area, W/cm2.
    power_density_w_cm2: float
    #: R.m.s. current per needle area, mA/cm2.
    current_density_ma_cm2: float
    #: Shannon (1992) k = log10(Q) + log10(Q/A), Q in uC per phase, A in cm2.
    shannon_k: float
    #: Shortest pulse period that fits the pulse, us (= active time; no inter-phase gap).
    min_period_us: float


def current_density_ma_cm2(
    amplitude_ma: float,
    pulse_width_us: float,
    frequency_hz: float,
    shape: Shape,
    area_cm2: float,
) -> float:
    """``pulse_quantities(...).current_density_ma_cm2`` alone: r.m.s. current per needle area
    (the IEC rule works it out for every current over the limit), ``pulse_quantities``'
    operations (tests/test_rules_quantities_inline.py)."""
    i, pw = amplitude_ma, pulse_width_us
    if shape == "biphasic_symmetric":
        square_sum = 1.0 * i * i * (2 * pw)
    elif shape == "biphasic_asymmetric":
        recovery_ma = i * _RECOVERY_SCALE
        square_sum = 1.0 * i * i * pw + recovery_ma * recovery_ma * (pw * ASYMMETRIC_RATIO)
    else:
        square_sum = 1.0 * i * i * pw
    mean_square_ma2 = square_sum * frequency_hz * 1e-6
    rms = _sqrt(mean_square_ma2) if mean_square_ma2 >= 0 else math.nan
    try:
        return rms / area_cm2
    except ZeroDivisionError:
        return _per_area(rms)


def shannon_k(amplitude_ma: float, pulse_width_us: float, area_cm2: float) -> float:
    """``pulse_quantities(...).shannon_k`` alone, with its operations (the Shannon rule works
    it out for every current over the limit)."""
    q = 1.0 * amplitude_ma * pulse_width_us / 1000.0
    try:
        return _log10(q) + _log10(q / area_cm2) if q > 0 else -math.inf
    except (ValueError, ZeroDivisionError):
        return math.nan


def pulse_quantities(
    amplitude_ma: float,
    pulse_width_us: float,
    frequency_hz: float,
    shape: Shape,
    area_cm2: float,
) -> PulseQuantities:
    """All figures for one train; see docs/SAFETY.md for the formulas.

    Products are written ``1.0 * a * b``: float multiplication saturates to inf/nan instead
    of raising (``**`` can raise), and the leading 1.0 makes integer input float first; not
    where the first factor is a float already (square_sum, recovery_ma: 1.0 * x is x).
    """
    i, pw, f = amplitude_ma, pulse_width_us, frequency_hz
    q = 1.0 * i * pw / 1000.0
    # the train in one pass: net charge, active time and square sum (mA^2 x us per pulse)
    if shape == "biphasic_symmetric":
        net, active_us = 0.0, 2 * pw
        square_sum = 1.0 * i * i * active_us
    elif shape == "biphasic_asymmetric":  # net_charge_uc's operations
        recovery_ma, recovery_us = i * _RECOVERY_SCALE, pw * ASYMMETRIC_RATIO
        net = q - recovery_ma * recovery_us / 1000.0
        active_us = pw + recovery_us
        square_sum = 1.0 * i * i * pw + recovery_ma * recovery_ma * recovery_us
    else:
        net, active_us, square_sum = q, pw, 1.0 * i * i * pw
    # square_sum is in mA^2 x us: per second that is square_sum x f x 1e-6 mA^2.
    mean_square_ma2 = square_sum * f * 1e-6
    rms = _sqrt(mean_square_ma2) if mean_square_ma2 >= 0 else math.nan
    # energy: (mA^2 x us) x ohm = 1e-6 A^2 x 1e-6 s x ohm = 1e-12 J = 1e-9 mJ
    energy_mj = square_sum * LOAD_OHM * 1e-9
    power_w = mean_square_ma2 * LOAD_OHM * 1e-6
    try:
        shannon = _log10(q) + _log10(q / area_cm2) if q > 0 else -math.inf
    except (ValueError, ZeroDivisionError):
        shannon = math.nan
    try:  # current_density_ma_cm2's division
        power_density, current_density = power_w / area_cm2, rms / area_cm2
    except ZeroDivisionError:
        power_density, current_density = _per_area(power_w), _per_area(rms)
    return _new_tuple(  # PulseQuantities(...) without the Python-level __new__
        PulseQuantities,
        (
            shape,
            i,
            pw,
            f,
            area_cm2,
            q,
            net,
            active_us,
            rms,
            energy_mj,
            power_w,
            power_density,
            current_density,
            shannon,
            active_us,
        ),
    )


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """Quantities of channel ``channel`` in phase ``phase`` at frequency variant ``variant``."""

    phase: int
    channel: int
    variant: int
    quantities: PulseQuantities


def operating_points(profile: Profile) -> tuple[OperatingPoint, ...]:
    """Every (phase, channel, variant) of a profile with its quantities, in that order."""
    area = _area(profile.needle)
    shape = profile.waveform.shape
    out = []
    for p, phase in enumerate(profile.phases):
        for c, channel in enumerate(profile.channels):
            for v, (f, pw) in enumerate(phase.variants):
                q = pulse_quantities(channel.amplitude_ma, pw, f, shape, area)
                out.append(OperatingPoint(p, c, v, q))
    return tuple(out)


def _area(needle: Needle) -> float:
    return needle_area_cm2(needle.diameter_mm, needle.insertion_mm)


def _windows(total: float, first: float, second: float) -> tuple[float, float]:
    """Time spent in each half of a repeating (first, second) cycle over ``total`` seconds."""
    period = first + second
    if not math.isfinite(total / period):
        return (math.inf, math.inf)
    cycles = math.floor(total / period)
    rest = max(0.0, total - cycles * period)
    in_first = min(rest, first)
    return (cycles * first + in_first, cycles * second + (rest - in_first))


def variant_seconds(phase: Phase) -> tuple[float, ...]:
    """Seconds of output at each of ``phase.variants`` (intermittent: on-windows only)."""
    if phase.mode == "dense_disperse" and phase.switch_s is not None:
        return _windows(phase.duration_s, phase.switch_s, phase.switch_s)
    if phase.mode == "intermittent" and phase.on_s is not None and phase.off_s is not None:
        return (_windows(phase.duration_s, phase.on_s, phase.off_s)[0],)
    return (phase.duration_s,)


def phase_pulse_count(phase: Phase) -> float:
    """Pulses a phase implies: frequency x time at that frequency, ramps included.

    dense_disperse 3 s at 2 Hz + 3 s at 100 Hz gives 306 pulses per 6 s; intermittent
    counts only the on-windows.
    """
    return total(
        _mul(f, t) for (f, _), t in zip(phase.variants, variant_seconds(phase), strict=True)
    )
