"""electrodes_of against its definition: which channels share a needle, and the current there."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from stimctl.rules.electrodes import Electrode, Labels, electrodes_of
from stimctl.rules.profile import MAX_CHANNELS, total

#: A few labels, so that channels often meet at one (None: a site that does not parse).
_LABEL = st.sampled_from(["ST36-L", "ST36-R", "LI4-L", "GV20", "SP6-R", None])
_CHANNELS = st.lists(st.tuples(_LABEL, _LABEL), min_size=1, max_size=MAX_CHANNELS + 3)


def _reference(labels: list[Labels]) -> list[Electrode]:
    """The electrodes as docs/PROFILES.md defines them, written plainly: each label's
    channels in order of first use (anode before cathode); a site used by two channels or more
    is shared; each channel not on two shared sites is an electrode alone, shared sites last."""
    users: dict[str, list[int]] = {}
    for i, pair in enumerate(labels):
        for label in pair:
            if label is not None and i not in users.setdefault(label, []):
                users[label].append(i)
    shared = {label: channels for label, channels in users.items() if len(channels) > 1}
    alone = [
        Electrode(None, (i,))
        for i, (anode, cathode) in enumerate(labels)
        if anode not in shared or cathode not in shared
    ]
    return alone + [Electrode(label, tuple(c)) for label, c in shared.items()]


@given(_CHANNELS, st.data())
def test_electrodes_of_groups_channels_as_defined(
    labels: list[Labels], data: st.DataObject
) -> None:
    amplitudes = tuple(
        data.draw(st.lists(st.floats(0.01, 50), min_size=len(labels), max_size=len(labels)))
    )
    found, peaks = electrodes_of(labels, amplitudes)
    expected = _reference(labels)
    assert list(found) == expected
    assert list(peaks) == [total(amplitudes[i] for i in e.channels) for e in expected]
    assert max(peaks) >= max(amplitudes)  # channel_rules judges the strongest first


def test_channels_alone_keep_the_amplitudes_given() -> None:
    amplitudes = (1.0, 2.0)
    found, peaks = electrodes_of([("ST36-L", "ST36-R"), ("LI4-L", "GV20")], amplitudes)
    assert found == (Electrode(None, (0,)), Electrode(None, (1,)))
    assert peaks is amplitudes


def test_a_channel_on_one_site_twice_is_not_a_shared_site() -> None:
    found, _ = electrodes_of([("ST36-L", "ST36-L"), ("LI4-L", "GV20")], (1.0, 2.0))
    assert found == (Electrode(None, (0,)), Electrode(None, (1,)))


def test_a_shared_site_carries_the_sum_of_its_channels() -> None:
    labels: list[Labels] = [("ST36-L", "GV20"), ("LI4-L", "GV20"), ("SP6-R", "GV20")]
    found, peaks = electrodes_of(labels, (1.0, 2.5, 0.5))
    assert found[-1] == Electrode("GV20", (0, 1, 2))
    assert peaks[-1] == 4.0


_AMPLITUDE = st.floats(min_value=5e-324, max_value=1.7976931348623157e308)


@given(_AMPLITUDE, _AMPLITUDE)
def test_two_channels_add_up_as_total_does(a: float, b: float) -> None:
    """electrodes_of sums a site of two channels with +: total()'s answer, overflow included."""
    assert a + b == total([a, b])
    _, peaks = electrodes_of([("ST36-L", "GV20"), ("LI4-L", "GV20")], (a, b))
    assert peaks[-1] == total([a, b])


@given(st.sets(st.integers(0, MAX_CHANNELS + 3), min_size=1), st.sampled_from(["ST36-L", "GV20"]))
def test_loc_names_the_channel_or_the_site_and_its_channels(chosen: set[int], site: str) -> None:
    channels = tuple(sorted(chosen))
    if len(channels) == 1:
        assert Electrode(None, channels).loc == f"channels[{channels[0]}]"
    else:
        listed = ",".join(str(i) for i in channels)
        assert Electrode(site, channels).loc == f"site[{site}].channels[{listed}]"
