"""The quantity rules' fast paths give the answer of the general walk they stand for
(stimctl.rules.quantity_rules): the premises written next to them, checked here."""

from __future__ import annotations

import math
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from hil.benchmarks.profilegen import generate, parsable
from stimctl.rules.context import RuleContext
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.profile import (
    Channel,
    Needle,
    Profile,
    Waveform,
    parse_profile,
)
from stimctl.rules.quantities import PulseQuantities, current_density_ma_cm2
from stimctl.rules.quantity_rules import (
    _STRONGEST_CHECKS,
    _bound,
    _weaker,
    current_density_rule,
    pulse_energy_rule,
    unclear,
)

_any_float = st.floats(allow_nan=True, allow_infinity=True)
#: An envelope every channel's pulse energy exceeds (pulse-energy-max is judged per channel).
_ENERGY_ENVELOPE = SafetyEnvelope(max_pulse_energy_mj=1e-9)
#: A PulseQuantities' 15 figures, near the default limits and at the extremes.
_figures = st.lists(
    st.one_of(
        st.floats(min_value=0.0, max_value=3.0),
        st.sampled_from([math.nan, math.inf, -math.inf, 0.25, 2.0, 1.85, 1.85 - 1e-9, 50.0]),
    ),
    min_size=15,
    max_size=15,
)
_envelopes = st.builds(
    SafetyEnvelope,
    max_phase_charge_uc=st.floats(min_value=1e-3, max_value=10.0),
    max_rms_ma=st.floats(min_value=1e-3, max_value=50.0),
    max_power_density_w_cm2=st.sampled_from([0.25, 0.1, 1e-3]),
    max_shannon_k=st.floats(min_value=-5.0, max_value=5.0),
    max_current_density_ma_cm2=st.floats(min_value=1e-3, max_value=2.0),
)


@given(_any_float, _any_float)
def test_with_no_margin_a_figure_that_does_not_clear_fails(value: float, limit: float) -> None:
    """_weaker's one-test loop: "clears" (value + 0.0 <= limit) is value <= limit, and
    "fails" (not value <= limit) is its negation, nan, infinities and -0.0 included."""
    at_limit = False
    clears = (value + 0.0 < limit) if at_limit else (value + 0.0 <= limit)
    fails = not value <= limit or (at_limit and value == limit)
    assert clears == (value <= limit)
    assert fails == (not clears)


def test_one_test_loop_finds_what_the_general_walk_finds() -> None:
    """The current-density walk (one variant phases: the one-test loop) against the same walk
    through RuleContext.quantities (the general loop), at limits that fail few to all rows."""
    index = PulseQuantities._fields.index("current_density_ma_cm2")
    fast = (index, 0.0, False, current_density_ma_cm2)
    general = (index, 0.0, False, None)
    compared = failing = 0
    for profile in parsable(generate(200, 21)):
        ctx = RuleContext(profile, SafetyEnvelope())
        for limit in (0.0, 0.5, 2.0, 5.0, 20.0):
            for per_site in (True, False):
                found = _weaker(ctx, limit, per_site, fast)
                assert found == _weaker(ctx, limit, per_site, general)
                compared += 1
                failing += len(found)
    assert compared > 500 and failing > 1000  # the walks did find rows over the limits


def _long_profile(phases: int) -> Profile:
    return parse_profile(
        {
            "schema": "stimctl.profile/1",
            "name": "long",
            "waveform": {"shape": "biphasic_asymmetric"},
            "channels": [
                {"id": 1, "anode": "ST36-L", "cathode": "ST37-L", "amplitude_ma": 2.0},
                {"id": 2, "anode": "ST36-L", "cathode": "LR3-L", "amplitude_ma": 1.0},
                {"id": 3, "anode": "LI4-R", "cathode": "LI11-R", "amplitude_ma": 1.5},
            ],
            "phases": [
                {
                    "duration_s": 10.0,
                    "mode": "continuous",
                    "frequency_hz": 2.0 + k,
                    "pulse_width_us": 200.0,
                    "ramp_up_s": 5.0,
                }
                for k in range(phases)
            ],
        }
    )


def test_each_finding_is_at_its_phase_and_electrode_or_channel() -> None:
    """The locations come from tables (_HEADS, _CHANNELS) up to their length, from a list of
    the profile's own past it: both say 'phases[p].' + the electrode's or channel's loc."""
    for phases in (1, 3, 64, 70):
        ctx = RuleContext(_long_profile(phases), SafetyEnvelope(max_current_density_ma_cm2=0.01))
        found = list(current_density_rule(ctx))
        expected = [f"phases[{p}].{e.loc}" for e in ctx.electrodes for p in range(phases)]
        assert [v.loc for v in found] == expected
        assert any(e.site is not None for e in ctx.electrodes)  # a shared site's loc too
        found = list(pulse_energy_rule(RuleContext(ctx.profile, _ENERGY_ENVELOPE)))
        expected = [f"phases[{p}].channels[{r}]" for p in range(phases) for r in range(3)]
        assert [v.loc for v in found] == expected


_SITE_TEXTS = ["ST36-L", "ST37-L", "LI4-R", "GV20", "SP6-L", "XX1"]
_amplitudes = st.floats(min_value=5e-324, max_value=1.7976931348623157e308)


@given(
    st.lists(
        st.tuples(st.sampled_from(_SITE_TEXTS), st.sampled_from(_SITE_TEXTS), _amplitudes),
        min_size=1,
        max_size=8,
    )
)
def test_the_strongest_electrode_is_at_least_every_channel(channels) -> None:
    """phase_rules' walk (and channel_rules) take top_amplitude_ma under a limit as every
    channel's amplitude under it: a channel alone is an electrode, a shared site carries a
    sum of positive amplitudes (overflow: inf)."""
    profile = Profile.model_construct(
        channels=[
            Channel.model_construct(id=k, anode=a, cathode=c, amplitude_ma=i)
            for k, (a, c, i) in enumerate(channels, start=1)
        ],
        phases=_long_profile(1).phases,
        needle=Needle(),
        waveform=Waveform(shape="biphasic_symmetric"),
    )
    ctx = RuleContext(profile, SafetyEnvelope())
    assert ctx.top_amplitude_ma >= max(ctx.channel_amplitudes)


_limits = st.one_of(
    _any_float,
    st.sampled_from([0.0, -0.0, 0.25, 1.85, 2.0, 6.0, 50.0, 300.0, 5e-324, 1.7976931348623157e308]),
)
_margins = st.one_of(st.just(0.0), st.just(1e-9), st.floats(min_value=0.0, max_value=1e3))


@given(_limits, _margins, st.booleans(), _any_float)
def test_bound_is_the_largest_float_that_clears(
    limit: float, margin: float, at_limit: bool, x: float
) -> None:
    """unclear's one comparison: x clears the limit by the margin exactly when x <= _bound,
    for any x (nan, infinities, the bound itself and its neighbours included)."""
    bound = _bound(limit, margin, at_limit)

    def clears(value: float) -> bool:
        return (value + margin < limit) if at_limit else (value + margin <= limit)

    near = [x, bound, -math.inf, math.inf, math.nan]
    if math.isfinite(bound):
        near += [math.nextafter(bound, math.inf), math.nextafter(bound, -math.inf)]
    for value in near:
        assert (value <= bound) == clears(value), (value, bound)


@given(st.lists(st.lists(_figures, min_size=1, max_size=2), min_size=1, max_size=4), _envelopes)
def test_unclear_is_every_figure_against_its_limit_at_any_envelope(phases, envelope) -> None:
    """unclear against its definition (every figure of every phase and variant), at envelopes
    of any limits: the bounds are worked out per envelope."""
    tops = [[PulseQuantities(*figures) for figures in phase] for phase in phases]
    ctx = SimpleNamespace(electrode_tops=tops, envelope=envelope, shared={})
    expected = set()
    for code, index, field, margin, at_limit in _STRONGEST_CHECKS:
        limit = envelope.__dict__[field]
        for q in [q for phase in tops for q in phase]:
            value = q[index]
            if not ((value + margin < limit) if at_limit else (value + margin <= limit)):
                expected.add(code)
    assert set(unclear(ctx)) == expected  # type: ignore[arg-type]
