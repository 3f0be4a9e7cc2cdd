"""The quantity rules' fast paths give the answer of the general walk they stand for
(stimctl.rules.quantity_rules): the premises written next to them, checked here."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from hil.benchmarks.profilegen import generate
from stimctl.rules.context import RuleContext
from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.profile import Profile, ProfileError, loads_profile
from stimctl.rules.quantities import PulseQuantities, current_density_ma_cm2
from stimctl.rules.quantity_rules import _weaker

_any_float = st.floats(allow_nan=True, allow_infinity=True)


@given(_any_float, _any_float)
def test_with_no_margin_a_figure_that_does_not_clear_fails(value: float, limit: float) -> None:
    """_weaker's one-test loop: "clears" (value + 0.0 <= limit) is value <= limit, and
    "fails" (not value <= limit) is its negation, nan, infinities and -0.0 included."""
    at_limit = False
    clears = (value + 0.0 < limit) if at_limit else (value + 0.0 <= limit)
    fails = not value <= limit or (at_limit and value == limit)
    assert clears == (value <= limit)
    assert fails == (not clears)


def _profiles(count: int, seed: int) -> list[Profile]:
    out = []
    for generated in generate(count, seed=seed):
        try:
            out.append(loads_profile(generated.raw, generated.fmt))
        except ProfileError:
            continue
    return out


def test_one_test_loop_finds_what_the_general_walk_finds() -> None:
    """The current-density walk (one variant phases: the one-test loop) against the same walk
    through RuleContext.quantities (the general loop), at limits that fail few to all rows."""
    index = PulseQuantities._fields.index("current_density_ma_cm2")
    fast = (index, 0.0, False, current_density_ma_cm2)
    general = (index, 0.0, False, None)
    compared = failing = 0
    for profile in _profiles(200, 21):
        ctx = RuleContext(profile, SafetyEnvelope())
        for limit in (0.0, 0.5, 2.0, 5.0, 20.0):
            for per_site in (True, False):
                found = _weaker(ctx, limit, per_site, fast)
                assert found == _weaker(ctx, limit, per_site, general)
                compared += 1
                failing += len(found)
    assert compared > 500 and failing > 1000  # the walks did find rows over the limits
