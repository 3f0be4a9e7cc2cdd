"""The premises the rules' shortcuts rest on (phase_rules' quick look at a phase,
quantity_rules.unclear's largest figure): each shortcut must give the answer of the full
check it stands for, extremes included."""

from __future__ import annotations

import math
from types import SimpleNamespace

from hypothesis import given
from hypothesis import strategies as st

from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.phase_rules import (
    _TENTHS_SET,
    _U16,
    _clean,
    _tenths,
    _usual_pairs,
    _whole_us,
)
from stimctl.rules.profile import loads_profile
from stimctl.rules.quantities import PulseQuantities
from stimctl.rules.quantity_rules import _STRONGEST_CHECKS, unclear
from stimctl.rules.validation import validate_profile

_floats = st.floats(allow_nan=True, allow_infinity=True)
_positive = st.floats(min_value=5e-324, max_value=1e6)


def test_every_listed_frequency_is_on_the_grid() -> None:
    """The walk takes a frequency in _TENTHS_SET as on the device's 0.1 Hz grid unseen."""
    assert len(_TENTHS_SET) == 2001
    for f in _TENTHS_SET:
        assert _tenths(f), f
    assert float("12.3") in _TENTHS_SET and float("200") in _TENTHS_SET  # as parsing makes them


@given(st.one_of(_floats, st.sampled_from(sorted(_TENTHS_SET))), _positive, _positive)
def test_quick_frequency_look_is_the_full_one(f: float, lo: float, hi: float) -> None:
    if f in _TENTHS_SET and lo <= f <= hi:  # the walk's quick look
        assert _clean(f, lo, hi, _tenths)


@given(_floats, _positive, st.one_of(_positive, st.just(math.inf), st.just(1e9)))
def test_quick_pulse_width_look_is_the_full_one(pw: float, lo: float, hi: float) -> None:
    top = hi if hi <= _U16 else _U16
    if lo <= pw <= top and pw.is_integer():  # the walk's quick look
        assert _clean(pw, lo, hi, _whole_us)


# --- quantity_rules.unclear: the largest figure stands for all of them ------------------------

_figure = st.one_of(
    st.floats(min_value=0.0, max_value=3.0),  # around the default limits
    st.sampled_from([math.nan, math.inf, -math.inf, 0.25, 2.0, 1.85, 1.85 - 1e-9, 50.0]),
)


def _unclear_one_by_one(tops: list[list[PulseQuantities]], limits: dict[str, float]) -> set[str]:
    """unclear's definition: every figure of every phase and variant against the limit."""
    out = set()
    for code, index, field, margin, at_limit in _STRONGEST_CHECKS:
        limit = limits[field]
        for q in [q for phase in tops for q in phase]:
            value = q[index]
            if not ((value + margin < limit) if at_limit else (value + margin <= limit)):
                out.add(code)
    return out


@given(
    st.lists(
        st.lists(st.lists(_figure, min_size=15, max_size=15), min_size=1, max_size=2),
        min_size=1,
        max_size=4,
    )
)
def test_unclear_is_every_figure_against_its_limit(phases: list[list[list[float]]]) -> None:
    tops = [[PulseQuantities(*figures) for figures in phase] for phase in phases]
    envelope = SafetyEnvelope()
    ctx = SimpleNamespace(electrode_tops=tops, envelope=envelope, shared={})
    assert set(unclear(ctx)) == _unclear_one_by_one(tops, envelope.__dict__)  # type: ignore[arg-type]


# --- the walk's fit check: a variant's index only where one does not fit ------------------------

_DENSE = """
schema = "stimctl.profile/1"
name = "fit"
[waveform]
shape = "biphasic_asymmetric"
[[channels]]
id = 1
anode = "ST36-L"
cathode = "LR3-L"
amplitude_ma = 0.5
[[phases]]
duration_s = 60
mode = "continuous"
frequency_hz = 2
pulse_width_us = 200
ramp_up_s = 10
[[phases]]
duration_s = 60
mode = "dense_disperse"
frequency_hz = [{f0}, {f1}]
pulse_width_us = 2000
switch_s = 3
"""


def _fit_locs(f0: float, f1: float) -> list[tuple[str, float]]:
    profile = loads_profile(_DENSE.format(f0=f0, f1=f1))
    found = validate_profile(profile).violations
    return [(v.loc, v.actual) for v in found if "does not fit" in v.message]  # type: ignore[misc]


def test_each_variant_that_does_not_fit_is_reported_at_its_index() -> None:
    """A 2000 us asymmetric pulse (10 ms active) fits up to 100 Hz."""
    assert _fit_locs(50, 60) == []
    assert _fit_locs(50, 150) == [("phases[1].frequency_hz[1]", 150.0)]
    assert _fit_locs(150, 60) == [("phases[1].frequency_hz[0]", 150.0)]
    assert _fit_locs(150, 180) == [
        ("phases[1].frequency_hz[0]", 150.0),
        ("phases[1].frequency_hz[1]", 180.0),
    ]


_item = st.one_of(_floats, st.sampled_from(sorted(_TENTHS_SET)), st.integers(1, 1000).map(float))


@given(st.one_of(_item, st.tuples(_item, _item)), st.tuples(_item, _item), _positive, _positive)
def test_quick_look_at_pairs_is_the_full_one(pws, fs, lo: float, hi: float) -> None:
    top = hi if hi <= _U16 else _U16
    whole, tenths = _usual_pairs(pws, fs, lo, top, lo, hi)
    if whole:
        assert _clean(pws, lo, hi, _whole_us)
    if tenths:
        assert _clean(fs, lo, hi, _tenths)


def test_a_single_variant_that_does_not_fit_is_reported_at_its_phase() -> None:
    """The walk's fit check of a one-variant phase reads its frequency as the phase's own."""
    single = _DENSE.replace(
        "frequency_hz = 2\npulse_width_us = 200", "frequency_hz = {f}\npulse_width_us = 2000"
    )
    for f, expected in ((60, []), (150, [("phases[0].frequency_hz", 150.0)])):
        profile = loads_profile(single.format(f=f, f0=50, f1=60))
        found = validate_profile(profile).violations
        assert [(v.loc, v.actual) for v in found if "does not fit" in v.message] == expected


def test_a_single_variant_phase_holds_its_own_frequency() -> None:
    """RuleContext makes a one-variant phase's quantities of (frequency_hz, pulse_width_us)
    as written: the walk takes the phase's frequency for them."""
    from hil.benchmarks.profilegen import generate
    from stimctl.rules.context import RuleContext
    from stimctl.rules.profile import ProfileError

    seen = 0
    for generated in generate(200, seed=31):
        try:
            profile = loads_profile(generated.raw, generated.fmt)
        except ProfileError:
            continue
        ctx = RuleContext(profile, SafetyEnvelope())
        for phase, tops in zip(profile.phases, ctx.electrode_tops, strict=True):
            if type(phase.frequency_hz) is float and type(phase.pulse_width_us) is float:
                assert len(tops) == 1 and tops[0].frequency_hz is phase.frequency_hz
                seen += 1
    assert seen > 50
