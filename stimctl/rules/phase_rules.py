"""The timing, resolution and session rules (pulse-width-range, frequency-range,
device-resolution, duration-max, ramp-required, ramp-rate-max): one walk of the phases for
all three; ``safety.ALL_RULES`` runs them in table order."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import attrgetter, itemgetter
from typing import TYPE_CHECKING

from stimctl.rules.context import RuleContext, exceeds, finding, suffix
from stimctl.rules.profile import Phase, total
from stimctl.rules.quantities import PulseQuantities
from stimctl.rules.violations import Violation

if TYPE_CHECKING:
    from stimctl.rules.envelope import SafetyEnvelope

__all__ = ["resolution_rule", "session_rules", "timing_rules"]

#: Device resolution (docs/PROTOCOL.md, BLOCK): frequency in 0.1 Hz, pulse width in 1 us (u16),
#: amplitude in uA (u16), times in 1 ms ticks. Values within this fraction of a step count as on it.
_RESOLUTION_TOLERANCE = _TOLERANCE = 1e-6
_U16 = 0xFFFF
_U16_TENTHS = _U16 / 10  # the highest frequency the device takes, Hz
# The walk's pw_top is min(pw_hi, _U16) (the u16 field) written as a comparison: min() parses
# its arguments as keywords, which costs a dozen comparisons (a nan kept, as min keeps it).
#: The frequencies 0.0, 0.1, ..., 200.0 Hz as parsing makes them (k / 10 is the double
#: nearest k tenths, as float("12.3") is). Each is on the device's grid (``_tenths``; tests/
#: test_phase_rules_fast.py checks every one), so the walk takes a set lookup for the usual
#: frequency instead of _tenths' arithmetic; any other value is worked out.
_TENTHS_SET = frozenset([k / 10 for k in range(2001)])
_TIMES = ("duration_s", "switch_s", "on_s", "off_s")
#: A Phase's fields, read from its __dict__ in one call: pydantic models answer attribute
#: reads through BaseModel.__getattr__'s slow hook, several times a dict read.
_PHASE = itemgetter(
    *("duration_s", "mode", "frequency_hz", "pulse_width_us", "switch_s", "on_s", "off_s"),
    *("ramp_up_s", "ramp_down_s", "window_ramp_s"),
)
#: PulseQuantities' min_period_us and frequency_hz, read by index in the walk.
_MIN_PERIOD = PulseQuantities._fields.index("min_period_us")
_FREQUENCY = PulseQuantities._fields.index("frequency_hz")
#: The SafetyEnvelope limits the walk compares with, read the same way.
_LIMITS = itemgetter("pulse_width_us", "frequency_hz", "max_ramp_rate_ma_per_s", "max_session_s")


def timing_rules(ctx: RuleContext) -> list[Violation]:
    """pulse-width-range and frequency-range (including: the pulse must fit its period)."""
    known = ctx.shared.get("phases")  # the walk, done once for the three rules
    if known is None:
        known = ctx.shared["phases"] = _walk_phases(ctx)
    return known[0]  # type: ignore[index]


def resolution_rule(ctx: RuleContext) -> list[Violation]:
    """device-resolution: values the device cannot be sent as written (docs/PROTOCOL.md).

    Values outside the envelope's range are left to the range rules (one finding per fault).
    """
    known = ctx.shared.get("phases")  # the walk, done once for the three rules
    if known is None:
        known = ctx.shared["phases"] = _walk_phases(ctx)
    return known[1]  # type: ignore[index]


def session_rules(ctx: RuleContext) -> list[Violation]:
    """duration-max, ramp-required and ramp-rate-max."""
    known = ctx.shared.get("phases")  # the walk, done once for the three rules
    if known is None:
        known = ctx.shared["phases"] = _walk_phases(ctx)
    return known[2]  # type: ignore[index]


def _walk_phases(ctx: RuleContext) -> tuple[list[Violation], ...]:
    """The timing, resolution and session findings (each list in its rule's order) from one
    walk of the phases: a quick look at each phase's usual values, a full one at the rest."""
    (pw_lo, pw_hi), (f_lo, f_hi), rate_max, most = _LIMITS(ctx.envelope.__dict__)
    top, tops, pw_top = ctx.top_amplitude_ma, ctx.electrode_tops, _U16 if pw_hi > _U16 else pw_hi
    timing: list[Violation] = []
    fits: list[Violation] = []  # the pulse must fit its period: after every range finding
    resolution: list[Violation] = []
    session: list[Violation] = []
    durations = []
    down_before, mode_before = None, None  # the previous phase's ramp_down_s and mode
    for j, phase in enumerate(ctx.profile.phases):
        duration, mode, fs, pws, switch_s, on_s, off_s, up, down, edge = _PHASE(phase.__dict__)
        durations.append(duration)
        if type(pws) is float and type(fs) is float:  # a quick look at the usual values
            whole = pw_lo <= pws <= pw_top and pws.is_integer()
            tenths = fs in _TENTHS_SET and f_lo <= fs <= f_hi
            # the pulse must fit its period (tops[j]: of (fs, pws) alone, the loop below's)
            if not (fs <= 1e6 / tops[j][0][_MIN_PERIOD] or not f_lo <= fs <= f_hi):
                fits.extend(_unfits(j, False, tops[j], f_lo, f_hi))
        else:  # dense_disperse: one call for both fields (_clean is one per field and item)
            whole, tenths = _usual_pairs(pws, fs, pw_lo, pw_top, f_lo, f_hi)
            for q in tops[j]:  # the pulse's length, not the amplitude's (indices: _unfits)
                if not (q[_FREQUENCY] <= 1e6 / q[_MIN_PERIOD] or not f_lo <= q[_FREQUENCY] <= f_hi):
                    fits.extend(_unfits(j, isinstance(fs, tuple), tops[j], f_lo, f_hi))
                    break
        if not whole and not _clean(pws, pw_lo, pw_hi, _whole_us):  # the full look
            _range_and_grid(ctx, j, _PULSE_WIDTH_FIELD, timing, resolution)
        if not tenths and not _clean(fs, f_lo, f_hi, _tenths):
            _range_and_grid(ctx, j, _FREQUENCY_FIELD, timing, resolution)
        if not (
            duration >= 0.001
            and (switch_s is None or switch_s >= 0.001)
            and (on_s is None or on_s >= 0.001)
            and (off_s is None or off_s >= 0.001)
        ):
            resolution.extend(_short_times(j, phase))
        intermittent = mode == "intermittent"
        # an intermittent phase starts with an on-window, which has edges of its own
        if (
            up <= 0
            and not intermittent
            and (j == 0 or down_before > 0 or mode_before == "intermittent")  # type: ignore[operator]
        ):
            session.append(_ramp_required(j, up, j == 0))
        down_before, mode_before = down, mode
        if intermittent and edge is None and on_s is not None:
            half = on_s / 2  # both default edges fitted into on_s (inf: too short to halve)
            squeezed = top / half if half != 0 else math.inf
            if not squeezed <= rate_max:  # exceeds(), inline
                session.append(_default_edges(ctx, j, on_s, squeezed))
        if up > 0 and not top / up <= rate_max:  # exceeds(), inline
            session.append(_steep(ctx, j, "ramp_up_s", up))
        if down > 0 and not top / down <= rate_max:
            session.append(_steep(ctx, j, "ramp_down_s", down))
        if edge is not None and edge > 0 and not top / edge <= rate_max:
            session.append(_steep(ctx, j, "window_ramp_s", edge))
    timing += fits
    _whole_profile(ctx, durations, most, resolution, session)
    return timing, resolution, session


def _whole_profile(
    ctx: RuleContext,
    durations: list[float],
    most: float,
    resolution: list[Violation],
    session: list[Violation],
) -> None:
    """The walk's findings of the whole profile: amplitudes the protocol's u16 of uA cannot
    hold (device-resolution) and the session's length (duration-max, first of its rule's).

    The strongest electrode's plateau is at least every channel's amplitude (a channel's
    own, or part of a sum of positive ones; tests/test_quantity_rules_fast.py): under the
    u16 of uA, every channel is, and max() is not needed."""
    if ctx.top_amplitude_ma > _U16 / 1000 and max(ctx.channel_amplitudes) > _U16 / 1000:
        resolution.extend(_amplitude_resolution(ctx))
    seconds = total(durations)  # Profile.duration_s, from the walk's reads
    if not seconds <= most:  # exceeds(), inline
        session.insert(0, _duration(ctx, seconds))


def _usual_pairs(
    pws: float | tuple[float, ...],
    fs: float | tuple[float, ...],
    pw_lo: float,
    pw_top: float,
    f_lo: float,
    f_hi: float,
) -> tuple[bool, bool]:
    """The walk's quick look at a phase with a pair: (every pulse width in pw_lo..pw_top and
    whole, every frequency in f_lo..f_hi and in _TENTHS_SET). False asks for the full look."""
    if type(pws) is float:
        whole = pw_lo <= pws <= pw_top and pws.is_integer()
    elif len(pws) == 2:  # type: ignore[arg-type]
        a, b = pws  # type: ignore[misc]
        whole = pw_lo <= a <= pw_top and pw_lo <= b <= pw_top and a.is_integer() and b.is_integer()
    else:
        whole = False
    if type(fs) is float:
        tenths = fs in _TENTHS_SET and f_lo <= fs <= f_hi
    elif len(fs) == 2:  # type: ignore[arg-type]
        a, b = fs  # type: ignore[misc]
        tenths = a in _TENTHS_SET and b in _TENTHS_SET and f_lo <= a <= f_hi and f_lo <= b <= f_hi
    else:
        tenths = False
    return whole, tenths


@dataclass(frozen=True, slots=True)
class _Field:
    """A phase field judged for its range and the device's resolution (docs/PROTOCOL.md)."""

    code: str  # the range rule
    name: str  # the Phase field
    noun: str  # in messages
    unit: str
    range_of: Callable[[SafetyEnvelope], tuple[float, float]]  # the envelope's limits
    on_grid: Callable[[float], bool]  # on the device's grid (within its u16 field)
    grid_text: str  # what being off the grid means, in the message
    grid: str  # the resolution finding's limit


_PULSE_WIDTH_FIELD = _Field(
    "pulse-width-range", "pulse_width_us", "pulse width", "us",
    attrgetter("pulse_width_us"), lambda pw: _whole_us(pw),
    f"is not a whole number of microseconds up to {_U16}", "1 us",
)  # fmt: skip
_FREQUENCY_FIELD = _Field(
    "frequency-range", "frequency_hz", "frequency", "Hz",
    attrgetter("frequency_hz"), lambda f: _tenths(f),
    f"is not a multiple of 0.1 Hz up to {_U16_TENTHS:g} Hz", "0.1 Hz",
)  # fmt: skip


def _range_and_grid(
    ctx: RuleContext, j: int, field: _Field, timing: list[Violation], resolution: list[Violation]
) -> None:
    """pulse-width-range or frequency-range, and device-resolution, of phase j's ``field``
    (one value or a pair)."""
    lo, hi = field.range_of(ctx.envelope)
    values = getattr(ctx.profile.phases[j], field.name)
    for k, value in enumerate(values if type(values) is tuple else (values,)):
        where = f"phases[{j}].{field.name}{suffix(values, k)}"
        if not lo <= value <= hi:  # outside(), inline
            text = f"{field.noun} {value:g} {field.unit} outside {lo:g}..{hi:g} {field.unit}"
            timing.append(finding(field.code, where, text, f"{lo:g}..{hi:g}", value))
        elif not field.on_grid(value):
            text = (
                f"{field.noun} {value:g} {field.unit} {field.grid_text} (the device's resolution)"
            )
            resolution.append(finding("device-resolution", where, text, field.grid, value))


def _short_times(j: int, phase: Phase) -> Iterator[Violation]:
    """device-resolution of phase j's times under the device's 1 ms tick."""
    times = (phase.duration_s, phase.switch_s, phase.on_s, phase.off_s)
    for name, seconds in zip(_TIMES, times, strict=True):
        if seconds is not None and seconds < 0.001:
            yield finding(
                "device-resolution",
                f"phases[{j}].{name}",
                f"{name} {seconds:g} s is shorter than the device's 1 ms tick",
                0.001,
                seconds,
            )


def _unfits(
    j: int, pair: bool, variants: tuple[PulseQuantities, ...], f_lo: float, f_hi: float
) -> Iterator[Violation]:
    """frequency-range of each variant of phase j (in range) too fast for its pulse."""
    for v, q in enumerate(variants):
        fit, f = 1e6 / q[_MIN_PERIOD], q[_FREQUENCY]
        if not (f <= fit or not f_lo <= f <= f_hi):
            yield _unfit(j, v, pair, q, fit)


def _unfit(j: int, v: int, pair: bool, q: PulseQuantities, fit: float) -> Violation:
    """frequency-range: variant v of phase j too fast for its pulse to fit its period."""
    return finding(
        "frequency-range",
        f"phases[{j}].frequency_hz[{v}]" if pair else f"phases[{j}].frequency_hz",
        f"a {q.active_time_us:g} us pulse does not fit a {q.frequency_hz:g} Hz"
        f" period (max {fit:.4g} Hz)",
        fit,
        q.frequency_hz,
    )


def _amplitude_resolution(ctx: RuleContext) -> Iterator[Violation]:
    """device-resolution of amplitudes in range but above the protocol's u16 of uA."""
    env = ctx.envelope
    for i, channel in enumerate(ctx.profile.channels):
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


def _clean(
    values: float | tuple[float, ...], lo: float, hi: float, grid: Callable[[float], bool]
) -> bool:
    """True when every item of a field is in lo..hi and on the device's ``grid``: no range
    or resolution finding (the usual case)."""
    if type(values) is float:
        return lo <= values <= hi and grid(values)
    if len(values) == 2:  # type: ignore[arg-type]  # a pair: no comprehension (a call of its own)
        a, b = values  # type: ignore[misc]
        return lo <= a <= hi and grid(a) and lo <= b <= hi and grid(b)
    return all([lo <= v <= hi and grid(v) for v in values])  # type: ignore[union-attr]


def _whole_us(pw: float) -> bool:
    """A pulse width the device takes as written: a whole number of us up to u16."""
    return pw <= _U16 and (pw.is_integer() or not _off_step(pw, 1.0))


def _tenths(f: float) -> bool:
    """A frequency the device takes as written: a multiple of 0.1 Hz up to u16 tenths."""
    if not f <= _U16_TENTHS:
        return False
    if f.is_integer():  # f / 0.1 is 10 f within a few ulp, far inside the tolerance
        return True
    units = f / 0.1  # not _off_step(f, 0.1), inline: f is in the envelope's finite range
    return abs(units - round(units)) <= _RESOLUTION_TOLERANCE * (units if units > 1.0 else 1.0)


def _off_step(value: float, step: float) -> bool:
    """True unless ``value`` is a whole number of ``step`` (within the tolerance)."""
    units = value / step
    if not math.isfinite(units):
        return True
    return not abs(units - round(units)) <= _RESOLUTION_TOLERANCE * max(1.0, units)


def _default_edges(ctx: RuleContext, j: int, on_s: float, squeezed: float) -> Violation:
    """ramp-rate-max of intermittent phase j's default on-window edges (no window_ramp_s):
    fitted into on_s they climb at ``squeezed`` mA/s, above the limit."""
    top, rate_max = ctx.top_amplitude_ma, ctx.envelope.max_ramp_rate_ma_per_s
    edges = ctx.profile.window_ramp_s(j, rate_max, top)
    return finding(
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


def _duration(ctx: RuleContext, seconds: float) -> Violation:
    """duration-max: the whole session (``seconds``: Profile.duration_s) is too long."""
    env = ctx.envelope
    return finding(
        "duration-max",
        "phases",
        f"session {seconds:g} s > {env.max_session_s:g} s",
        env.max_session_s,
        seconds,
    )


def _ramp_required(j: int, up: float, first: bool) -> Violation:
    """ramp-required: phase j starts from zero (the first, or after one that ended at zero)."""
    why = "the first phase" if first else "a phase after one that ended at zero"
    return finding(
        "ramp-required",
        f"phases[{j}].ramp_up_s",
        f"{why} starts from zero: ramp_up_s must be > 0",
        0.0,
        up,
    )


def _steep(ctx: RuleContext, j: int, name: str, seconds: float) -> Violation:
    """ramp-rate-max: phase j's ramp ``name`` takes the strongest plateau up or down too fast."""
    top, rate_max = ctx.top_amplitude_ma, ctx.envelope.max_ramp_rate_ma_per_s
    rate = top / seconds
    return finding(
        "ramp-rate-max",
        f"phases[{j}].{name}",
        lambda: (
            f"{ctx.strongest_described()}:"
            f" {top:.4g} mA over {seconds:g} s is {rate:.4g} mA/s > {rate_max:g} mA/s"
        ),
        rate_max,
        rate,
    )
