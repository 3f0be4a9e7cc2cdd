"""pulse_quantities computes the net charge with net_charge_uc's own operations inline (the
rules make one PulseQuantities per phase and electrode): the two must agree bit for bit,
extremes included (overflow to inf, inf - inf = nan)."""

from __future__ import annotations

import math

from hypothesis import given
from hypothesis import strategies as st

from stimctl.rules.quantities import (
    ASYMMETRIC_RATIO,
    current_density_ma_cm2,
    net_charge_uc,
    pulse_quantities,
    recovery_exact,
    shannon_k,
)

_positive = st.floats(min_value=5e-324, max_value=1.7976931348623157e308)


def _same(a: float, b: float) -> bool:
    return a == b or (math.isnan(a) and math.isnan(b))


@given(
    _positive,
    _positive,
    st.sampled_from(["biphasic_symmetric", "biphasic_asymmetric", "monophasic"]),
)
def test_pulse_quantities_net_charge_is_net_charge_uc(
    amplitude_ma: float, pulse_width_us: float, shape: str
) -> None:
    q = pulse_quantities(amplitude_ma, pulse_width_us, 100.0, shape, 0.1178)  # type: ignore[arg-type]
    assert _same(q.net_charge_uc, net_charge_uc(amplitude_ma, pulse_width_us, shape))  # type: ignore[arg-type]


def test_extremes_agree() -> None:
    for i, pw in [(1e300, 1e300), (1e-300, 1e-300), (3.0, 1e308), (1e308, 3.0), (5.0, 200.0)]:
        for shape in ("biphasic_symmetric", "biphasic_asymmetric", "monophasic"):
            q = pulse_quantities(i, pw, 2.0, shape, 0.1178)  # type: ignore[arg-type]
            assert _same(q.net_charge_uc, net_charge_uc(i, pw, shape))  # type: ignore[arg-type]


@given(
    _positive,
    _positive,
    _positive,
    st.sampled_from(["biphasic_symmetric", "biphasic_asymmetric", "monophasic"]),
    st.one_of(_positive, st.just(0.0)),
)
def test_current_density_alone_is_pulse_quantities_own(
    amplitude_ma: float, pulse_width_us: float, frequency_hz: float, shape: str, area: float
) -> None:
    """The IEC rule works out the current density alone (current_density_ma_cm2) for the
    currents it walks: the very figure pulse_quantities gives, bit for bit."""
    q = pulse_quantities(amplitude_ma, pulse_width_us, frequency_hz, shape, area)  # type: ignore[arg-type]
    alone = current_density_ma_cm2(amplitude_ma, pulse_width_us, frequency_hz, shape, area)  # type: ignore[arg-type]
    assert _same(alone, q.current_density_ma_cm2)


@given(
    st.floats(min_value=2.0**-1000, max_value=1e149),
    st.floats(min_value=0.0, max_value=1e149),
)
def test_recovery_exact_means_no_net_charge(amplitude_ma: float, pulse_width_us: float) -> None:
    """The charge balance rule skips the net charges where recovery_exact holds: there every
    biphasic_asymmetric net charge is exactly zero."""
    assert recovery_exact([amplitude_ma, 1.0], [pulse_width_us, 1.0])
    assert net_charge_uc(amplitude_ma, pulse_width_us, "biphasic_asymmetric") == 0.0


def test_recovery_exact_leaves_extremes_and_nan_to_the_net_charges() -> None:
    for amplitudes, widths in [
        ([1e-310], [200.0]),
        ([5.0, 1e200], [200.0]),
        ([5.0], [200.0, 1e200]),
        ([math.nan, 5.0], [200.0]),
        ([5.0], [200.0, math.nan]),
    ]:
        assert not recovery_exact(amplitudes, widths)


@given(_positive, _positive, st.one_of(_positive, st.just(0.0)))
def test_shannon_k_alone_is_pulse_quantities_own(
    amplitude_ma: float, pulse_width_us: float, area: float
) -> None:
    """The Shannon rule works out k alone (shannon_k) for the currents it walks: the very
    figure pulse_quantities gives, bit for bit."""
    for shape in ("biphasic_symmetric", "biphasic_asymmetric", "monophasic"):
        q = pulse_quantities(amplitude_ma, pulse_width_us, 100.0, shape, area)  # type: ignore[arg-type]
        assert _same(shannon_k(amplitude_ma, pulse_width_us, area), q.shannon_k)


def _written_out(i: float, pw: float, f: float, shape: str, area: float) -> tuple[float, ...]:
    """pulse_quantities' figures as docs/SAFETY.md writes them, every product led by 1.0
    (pulse_quantities leaves that 1.0 off products of a float already: 1.0 * x is x)."""
    q = 1.0 * i * pw / 1000.0
    if shape == "biphasic_symmetric":
        net, active = 0.0, 2 * pw
        square_sum = 1.0 * i * i * active
    elif shape == "biphasic_asymmetric":
        recovery_ma, recovery_us = i * (1.0 / 4), pw * 4
        net = q - 1.0 * recovery_ma * recovery_us / 1000.0
        active = pw + recovery_us
        square_sum = 1.0 * i * i * pw + 1.0 * recovery_ma * recovery_ma * recovery_us
    else:
        net, active, square_sum = q, pw, 1.0 * i * i * pw
    mean_square = 1.0 * square_sum * f * 1e-6
    rms = math.sqrt(mean_square) if mean_square >= 0 else math.nan
    power = 1.0 * mean_square * 500.0 * 1e-6
    try:
        shannon = math.log10(q) + math.log10(q / area) if q > 0 else -math.inf
    except (ValueError, ZeroDivisionError):
        shannon = math.nan
    try:
        densities = (power / area, rms / area)
    except ZeroDivisionError:
        densities = tuple(math.inf if x > 0 else math.nan for x in (power, rms))
    energy = 1.0 * square_sum * 500.0 * 1e-9
    return (q, net, active, rms, energy, power, *densities, shannon, active)


@given(
    st.one_of(_positive, st.integers(1, 10**6)),
    st.one_of(_positive, st.integers(1, 10**6)),
    st.one_of(_positive, st.integers(1, 10**6)),
    st.sampled_from(["biphasic_symmetric", "biphasic_asymmetric", "monophasic"]),
    st.one_of(_positive, st.just(0.0)),
)
def test_pulse_quantities_are_the_written_out_figures(
    amplitude_ma: float, pulse_width_us: float, frequency_hz: float, shape: str, area: float
) -> None:
    q = pulse_quantities(amplitude_ma, pulse_width_us, frequency_hz, shape, area)  # type: ignore[arg-type]
    figures = _written_out(amplitude_ma, pulse_width_us, frequency_hz, shape, area)
    assert ASYMMETRIC_RATIO == 4  # _written_out's ratio
    assert all(map(_same, q[5:], figures)), (q, figures)
