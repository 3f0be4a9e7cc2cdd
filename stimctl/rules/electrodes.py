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

import math
from dataclasses import dataclass

from stimctl.rules import acupoints
from stimctl.rules.profile import Profile
from stimctl.rules.quantities import PulseQuantities, needle_area_cm2, pulse_quantities

__all__ = ["Electrode", "SiteQuantities", "electrodes", "site_channels", "site_quantities"]


def _label(text: str) -> str | None:
    try:
        return acupoints.parse_site(text).label
    except acupoints.UnknownPoint:
        return None


def site_channels(profile: Profile) -> dict[str, tuple[int, ...]]:
    """Canonical site label -> indices of the channels using it (``Profile.site_channels``)."""
    return profile.site_channels()


@dataclass(frozen=True, slots=True)
class Electrode:
    """What a per-electrode rule judges: one site (None: a channel's own) and its channels."""

    site: str | None
    channels: tuple[int, ...]

    @property
    def shared(self) -> bool:
        return len(self.channels) > 1

    @property
    def loc(self) -> str:
        """``channels[i]`` for one channel, ``site[ST36-L].channels[0,1]`` for a shared site."""
        if not self.shared:
            return f"channels[{self.channels[0]}]"
        return f"site[{self.site}].channels[{','.join(str(i) for i in self.channels)}]"

    def describe(self, profile: Profile) -> str:
        """'channel 1', or 'site ST36-L (channels 1, 2)' with channel ids."""
        ids = [profile.channels[i].id for i in self.channels]
        if not self.shared:
            return f"channel {ids[0]}"
        return f"site {self.site} (channels {', '.join(str(i) for i in ids)})"


def electrodes(profile: Profile) -> tuple[Electrode, ...]:
    """Every electrode to judge, once: each channel whose current flows alone through one of
    its needles (or through a site that does not parse), then each site shared by channels."""
    shared = {label: users for label, users in site_channels(profile).items() if len(users) > 1}
    alone = []
    for i, channel in enumerate(profile.channels):
        labels = (_label(channel.anode), _label(channel.cathode))
        if any(label is None or label not in shared for label in labels):
            alone.append(Electrode(None, (i,)))
    return (*alone, *(Electrode(label, users) for label, users in shared.items()))


@dataclass(frozen=True, slots=True)
class SiteQuantities:
    """Quantities of an electrode's summed current in phase ``phase`` at variant ``variant``."""

    electrode: Electrode
    phase: int
    variant: int
    quantities: PulseQuantities


def site_quantities(profile: Profile) -> tuple[SiteQuantities, ...]:
    """Every (electrode, phase, variant) with the quantities of the summed current."""
    area = needle_area_cm2(profile.needle.diameter_mm, profile.needle.insertion_mm)
    shape = profile.waveform.shape
    out = []
    for electrode in electrodes(profile):
        amplitude = math.fsum(profile.channels[i].amplitude_ma for i in electrode.channels)
        for p, phase in enumerate(profile.phases):
            for v, (f, pw) in enumerate(phase.variants):
                q = pulse_quantities(amplitude, pw, f, shape, area)
                out.append(SiteQuantities(electrode, p, v, q))
    return tuple(out)
