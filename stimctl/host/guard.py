"""Host runtime guard: every BLOCK checked against the effective envelope before it is sent.

Layer 2 of the three safety layers (DESIGN.md). Per channel, at the live gain: amplitude,
frequency, pulse width and charge per phase; per electrode site shared by channels (the device
starts every channel's pulses together): the summed amplitude and charge per phase, as the
validation rules judge them (docs/SAFETY.md, "Per electrode site").
"""

from __future__ import annotations

from collections.abc import Mapping

from stimctl.protocol import Block
from stimctl.rules.envelope import SafetyEnvelope

__all__ = ["check_block"]

#: Float slack when comparing figures computed from integer device units with the limits.
_SLACK = 1e-9


def check_block(
    block: Block,
    envelope: SafetyEnvelope,
    gain_permille: Mapping[int, int],
    shared_sites: Mapping[str, tuple[int, ...]],
) -> str | None:
    """None if ``block`` is within ``envelope`` at the live gains, else why not (one line).

    ``gain_permille`` holds the profile's channel ids (others must carry no current);
    ``shared_sites`` maps a site label to the ids of the channels sharing it.
    """
    at = f"block {block.index}"
    live: dict[int, tuple[float, float]] = {}  # channel -> (mA, uC per phase)
    for ch, cs in enumerate(block.channels, start=1):
        if cs.amplitude_ua == 0:
            continue
        if ch not in gain_permille:
            return f"{at}: current on channel {ch}, not in the profile"
        amp_ma = cs.amplitude_ua * gain_permille[ch] / 1_000_000
        if amp_ma > envelope.max_amplitude_ma + _SLACK:
            return (
                f"{at} channel {ch}: {amp_ma:g} mA above"
                f" max_amplitude_ma {envelope.max_amplitude_ma:g}"
            )
        lo, hi = envelope.frequency_hz
        if cs.frequency_dhz and not lo <= cs.frequency_dhz / 10 <= hi:
            return (
                f"{at} channel {ch}: {cs.frequency_dhz / 10:g} Hz outside"
                f" frequency_hz {lo:g}..{hi:g}"
            )
        lo, hi = envelope.pulse_width_us
        if not lo <= cs.pulse_width_us <= hi:
            return (
                f"{at} channel {ch}: {cs.pulse_width_us} us outside pulse_width_us {lo:g}..{hi:g}"
            )
        charge_uc = amp_ma * cs.pulse_width_us / 1000
        if charge_uc > envelope.max_phase_charge_uc + _SLACK:
            return (
                f"{at} channel {ch}: {charge_uc:g} uC per phase above"
                f" max_phase_charge_uc {envelope.max_phase_charge_uc:g}"
            )
        live[ch] = (amp_ma, charge_uc)
    for site, channels in shared_sites.items():
        amp_ma = sum(live.get(ch, (0.0, 0.0))[0] for ch in channels)
        charge_uc = sum(live.get(ch, (0.0, 0.0))[1] for ch in channels)
        names = ", ".join(str(ch) for ch in channels)
        if amp_ma > envelope.max_amplitude_ma + _SLACK:
            return (
                f"{at} site {site} (channels {names}): {amp_ma:g} mA above"
                f" max_amplitude_ma {envelope.max_amplitude_ma:g}"
            )
        if charge_uc > envelope.max_phase_charge_uc + _SLACK:
            return (
                f"{at} site {site} (channels {names}): {charge_uc:g} uC per phase above"
                f" max_phase_charge_uc {envelope.max_phase_charge_uc:g}"
            )
    return None
