"""BlockGuard: the runtime guard for a stream, one verdict per distinct settings tuple.

The streamer shares one tuple of ChannelSettings per settings row; BlockGuard may keep a
tuple's verdict only while the envelope, the gains and the shared sites are what they were.
Whatever happens in between, its answer is check_block's, to the byte.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from stimctl.host.guard import BlockGuard, check_block
from stimctl.protocol import Block, ChannelSetting
from stimctl.rules.envelope import SafetyEnvelope

ROWS = [
    (ChannelSetting(5000, 20, 1000), ChannelSetting(0, 0, 1000)),  # 5 uC: passes at gain 1000
    (ChannelSetting(3500, 20, 1000), ChannelSetting(3500, 20, 1000)),  # a site sum refuses
    (ChannelSetting(9990, 20, 601), ChannelSetting(0, 0, 601)),  # 6.004 uC: always refused
    (ChannelSetting(0, 0, 200), ChannelSetting(2000, 20, 600)),  # only channel 2 live
    (ChannelSetting(1000, 20, 200), ChannelSetting(1000, 20, 200)),
]
ENVELOPES = [SafetyEnvelope(), SafetyEnvelope(max_amplitude_ma=4.0)]


def _block(index: int, row: int) -> Block:
    return Block(index=index, duration_ms=20, channels=ROWS[row])


def test_a_kept_verdict_goes_when_a_gain_rises() -> None:
    guard, env, gains = BlockGuard(), SafetyEnvelope(), {1: 1000, 2: 1000}
    assert guard(_block(1, 0), env, gains, {}) is None
    gains[1] = 1300  # ADJUST changes the session's map in place
    why = guard(_block(2, 0), env, gains, {})
    assert why == check_block(_block(2, 0), env, gains, {})
    assert why is not None and why.startswith("block 2 channel 1: 6.5 uC per phase above")


def test_a_refused_tuple_is_refused_every_time_with_its_own_block_index() -> None:
    guard, env, gains = BlockGuard(), SafetyEnvelope(), {1: 1000, 2: 1000}
    for index in (10, 11, 12):
        assert guard(_block(index, 2), env, gains, {}) == check_block(
            _block(index, 2), env, gains, {}
        )
        assert (guard(_block(index, 2), env, gains, {}) or "").startswith(f"block {index} ")


def test_a_new_site_or_envelope_is_judged_afresh() -> None:
    guard, gains = BlockGuard(), {1: 1000, 2: 1000}
    assert guard(_block(1, 1), ENVELOPES[0], gains, {}) is None
    assert guard(_block(2, 1), ENVELOPES[0], gains, {"ST36-L": (1, 2)}) is not None
    assert guard(_block(3, 4), ENVELOPES[0], gains, {}) is None
    assert guard(_block(4, 1), ENVELOPES[1], gains, {}) is None  # 3.5 mA under 4 mA
    assert guard(_block(5, 0), ENVELOPES[1], gains, {}) is not None  # 5 mA over 4 mA


def test_an_equal_tuple_that_is_another_object_gets_the_same_verdict() -> None:
    guard, env, gains = BlockGuard(), SafetyEnvelope(), {1: 1000, 2: 1000}
    copy = Block(index=3, duration_ms=20, channels=tuple(ChannelSetting(*(
        c.amplitude_ua, c.frequency_dhz, c.pulse_width_us)) for c in ROWS[2]))  # fmt: skip
    assert guard(_block(2, 2), env, gains, {}) == check_block(_block(2, 2), env, gains, {})
    assert guard(copy, env, gains, {}) == check_block(copy, env, gains, {})


_steps = st.lists(
    st.one_of(
        st.tuples(st.just("block"), st.integers(0, len(ROWS) - 1)),
        st.tuples(st.just("gain"), st.sampled_from([1, 2]), st.sampled_from([500, 1000, 1300])),
        st.tuples(st.just("site"), st.booleans()),
        st.tuples(st.just("envelope"), st.integers(0, len(ENVELOPES) - 1)),
        st.tuples(st.just("drop"), st.sampled_from([1, 2])),
    ),
    max_size=60,
)


@settings(max_examples=200, deadline=None)
@given(_steps)
def test_the_guard_answers_as_check_block_whatever_changes_in_between(steps: list) -> None:
    guard, gains, sites, env = BlockGuard(), {1: 1000, 2: 1000}, {}, ENVELOPES[0]
    for index, step in enumerate(steps):
        if step[0] == "block":
            block = _block(index, step[1])
            assert guard(block, env, gains, sites) == check_block(block, env, gains, sites)
        elif step[0] == "gain":
            gains[step[1]] = step[2]
        elif step[0] == "site":
            sites = {"ST36-L": (1, 2)} if step[1] else {}
        elif step[0] == "envelope":
            env = ENVELOPES[step[1]]
        else:
            gains.pop(step[1], None)
