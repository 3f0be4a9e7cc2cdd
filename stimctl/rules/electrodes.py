"""Electrode sites of a profile: which channels share each needle, and the current it carries.

A needle at one site (point + side, ``ST36-L``) carries the current of every channel that uses
it, as anode or cathode. The device starts the pulses of all channels together (docs/PROTOCOL.md,
"Output and timing"), so the worst case is the coincident sum of their magnitudes: every pulse
phase at the site carries the sum of the channels' amplitudes, whatever their polarity. All
channels of a profile run in every phase at that phase's frequency and pulse width, so the
summed train is a pulse train of the same timing at the summed amplitude.

``Electrode`` is the unit the per-electrode rules judge: a site used by one channel is that
channel (``channels[i]``), a site shared by several is the site with its channels
(``site[ST36-L].channels[0,1]``); docs/PROFILES.md, "Locations".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import chain
from typing import NamedTuple

from stimctl.rules import acupoints
from stimctl.rules.profile import MAX_CHANNELS, Profile, total
from stimctl.rules.quantities import PulseQuantities, needle_area_cm2, pulse_quantities

__all__ = [
    "Electrode",
    "SiteQuantities",
    "channel_labels",
    "electrode_amplitude",
    "electrodes",
    "electrodes_of",
    "site_channels",
    "site_quantities",
]


Labels = tuple[str | None, str | None]


def _label(text: str) -> str | None:
    try:
        return acupoints.parse_site(text).label
    except acupoints.UnknownPoint:
        return None


def channel_labels(profile: Profile) -> list[Labels]:
    """Per channel: the canonical labels of its (anode, cathode); None where one does not parse."""
    return [(_label(c.anode), _label(c.cathode)) for c in profile.channels]


def site_channels(profile: Profile) -> dict[str, tuple[int, ...]]:
    """Canonical site label -> indices of the channels using it (``Profile.site_channels``)."""
    return profile.site_channels()


class Electrode(NamedTuple):
    """What a per-electrode rule judges: one site (None: a channel's own) and its channels."""

    site: str | None
    channels: tuple[int, ...]

    @property
    def shared(self) -> bool:
        return len(self.channels) > 1

    @property
    def loc(self) -> str:
        """``channels[i]`` for one channel, ``site[ST36-L].channels[0,1]`` for a shared site."""
        # Read for every finding of a quantity rule: the channel parts come from tables made
        # once (formatting the numbers costs more than the rest of the text).
        channels = self.channels
        if len(channels) == 1:  # not self.shared
            i = channels[0]
            return _CHANNEL_LOCS[i] if 0 <= i < len(_CHANNEL_LOCS) else f"channels[{i}]"
        listed = _CHANNEL_LISTS.get(channels) or ",".join(map(str, channels))
        return f"site[{self.site}].channels[{listed}]"

    def describe(self, profile: Profile) -> str:
        """'channel 1', or 'site ST36-L (channels 1, 2)' with channel ids."""
        ids = [profile.channels[i].id for i in self.channels]
        if not self.shared:
            return f"channel {ids[0]}"
        return f"site {self.site} (channels {', '.join(str(i) for i in ids)})"


#: ``_new_tuple(Electrode, (site, channels))``: the named tuple without its Python-level __new__.
_new_tuple = tuple.__new__
#: Channel i alone, for i in 0..MAX_CHANNELS-1 (electrodes are immutable: shared freely).
_ALONE = tuple(Electrode(None, (i,)) for i in range(MAX_CHANNELS))
#: [n] -> channels 0..n-1 alone (``_ALONE[:n]``, made once rather than sliced per profile).
_FIRST = tuple(_ALONE[:n] for n in range(MAX_CHANNELS + 1))
#: [mask] -> the channels whose bits are set in mask (bit i: channel i), ascending.
_CHANNELS_OF = tuple(
    tuple(i for i in range(MAX_CHANNELS) if mask >> i & 1) for mask in range(1 << MAX_CHANNELS)
)
#: ``Electrode.loc`` of channel i alone, for i in 0..MAX_CHANNELS-1.
_CHANNEL_LOCS = tuple(f"channels[{i}]" for i in range(MAX_CHANNELS))
#: Channels of 0..MAX_CHANNELS-1 (ascending) -> their list in ``Electrode.loc``: '0,1'.
_CHANNEL_LISTS = {channels: ",".join(map(str, channels)) for channels in _CHANNELS_OF}
_chain = chain.from_iterable


def electrodes(profile: Profile) -> Sequence[Electrode]:
    """Every electrode to judge, once: each channel whose current flows alone through one of
    its needles (or through a site that does not parse), then each site shared by channels."""
    amplitudes = tuple(c.amplitude_ma for c in profile.channels)
    return electrodes_of(channel_labels(profile), amplitudes)[0]


def electrodes_of(
    labels: list[Labels], amplitudes: Sequence[float]
) -> tuple[Sequence[Electrode], Sequence[float]]:
    """``electrodes`` from the channels' site labels (``channel_labels``) and amplitudes, with
    each electrode's peak current (``electrode_amplitude``): ``amplitudes`` itself when every
    channel is an electrode alone."""
    n = len(labels)
    if len(set(_chain(labels))) == 2 * n and n < len(_FIRST):
        return _FIRST[n], amplitudes  # all 2n labels distinct (one set, built in C): no site twice
    # Each label's channels as a bitmask (bit i: channel i): one dict write per label, no list
    # per label; an anode that is its own cathode sets its channel's bit twice, still one bit.
    # Insertion order is the labels' first use, anode before cathode: the shared sites' order.
    masks: dict[str | None, int] = {}
    bit = 1
    for anode, cathode in labels:
        masks[anode] = masks.get(anode, 0) | bit
        masks[cathode] = masks.get(cathode, 0) | bit
        bit <<= 1
    shared: dict[str, int] = {}  # label -> channels using it, when more than one does
    for label, mask in masks.items():
        if mask & (mask - 1) and label is not None:  # two bits or more
            shared[label] = mask
    if not shared and n < len(_FIRST):
        return _FIRST[n], amplitudes  # no site twice: every channel is an electrode alone
    # Plain loops: a comprehension is a call of its own, which costs more than it saves here.
    found: list[Electrode] = []
    peaks: list[float] = []
    for i, (anode, cathode) in enumerate(labels):
        if anode not in shared or cathode not in shared:  # None is never in shared
            found.append(_ALONE[i] if i < len(_ALONE) else _new_tuple(Electrode, (None, (i,))))
            peaks.append(amplitudes[i])
    for label, mask in shared.items():
        channels = _CHANNELS_OF[mask] if mask < len(_CHANNELS_OF) else _bits(mask)
        found.append(_new_tuple(Electrode, (label, channels)))
        if len(channels) == 2:  # most shared sites; a call of fsum costs ten additions
            # Premise: fsum of two floats is their correctly rounded sum, as is a + b, and
            # where it overflows total() answers inf, as a + b does (amplitudes are positive:
            # fsum's inf - inf error cannot arise). tests/test_rules_electrodes.py checks it.
            peaks.append(amplitudes[channels[0]] + amplitudes[channels[1]])
        else:
            peaks.append(total(map(amplitudes.__getitem__, channels)))  # electrode_amplitude's
    return found, peaks  # the lists as built: callers only read them (no tuple copy)


def _bits(mask: int) -> tuple[int, ...]:
    """The channels whose bits are set in ``mask`` (``_CHANNELS_OF`` past MAX_CHANNELS)."""
    return tuple(i for i in range(mask.bit_length()) if mask >> i & 1)


@dataclass(frozen=True, slots=True)
class SiteQuantities:
    """Quantities of an electrode's summed current in phase ``phase`` at variant ``variant``."""

    electrode: Electrode
    phase: int
    variant: int
    quantities: PulseQuantities


def electrode_amplitude(profile: Profile, electrode: Electrode) -> float:
    """The peak current through an electrode: the sum of its channels' amplitudes, mA."""
    return total(profile.channels[i].amplitude_ma for i in electrode.channels)


def site_quantities(profile: Profile) -> tuple[SiteQuantities, ...]:
    """Every (electrode, phase, variant) with the quantities of the summed current."""
    area = needle_area_cm2(profile.needle.diameter_mm, profile.needle.insertion_mm)
    shape = profile.waveform.shape
    out = []
    for electrode in electrodes(profile):
        amplitude = electrode_amplitude(profile, electrode)
        for p, phase in enumerate(profile.phases):
            for v, (f, pw) in enumerate(phase.variants):
                q = pulse_quantities(amplitude, pw, f, shape, area)
                out.append(SiteQuantities(electrode, p, v, q))
    return tuple(out)
