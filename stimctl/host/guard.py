"""Host runtime guard: every BLOCK checked against the effective envelope before it is sent.

Layer 2 of the three safety layers (DESIGN.md). Per channel, at the live gain: amplitude,
frequency, pulse width and charge per phase; per electrode site shared by channels (the device
starts every channel's pulses together): the summed amplitude and charge per phase, as the
validation rules judge them (docs/SAFETY.md, "Per electrode site").

``check_block`` judges one block. ``BlockGuard`` is the same judgement for a stream: a verdict
depends only on the block's channel settings, the envelope, the gains and the shared sites, and
the streamer hands every block of one settings row the same tuple of settings, so the guard
keeps each tuple's verdict while the envelope, gains and sites stay what they were (any change
and every tuple is judged afresh). Every block is checked; a repeated row just costs a look-up.
"""

from __future__ import annotations

from collections.abc import Mapping

from stimctl.protocol import Block, ChannelSetting
from stimctl.rules.envelope import SafetyEnvelope

__all__ = ["BlockGuard", "check_block"]

#: Float slack when comparing figures computed from integer device units with the limits.
_SLACK = 1e-9
#: Verdicts a BlockGuard keeps (one per distinct settings tuple); all forgotten beyond this.
VERDICTS_KEPT = 4096


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
    why = _check_channels(block.channels, envelope, gain_permille, shared_sites)
    return None if why is None else f"block {block.index}{why}"


class BlockGuard:
    """``check_block`` for a stream of blocks, each distinct settings tuple judged once per
    envelope, gains and shared sites (the streamer shares one tuple per settings row)."""

    __slots__ = ("_envelope", "_gains", "_sites", "_verdicts")

    def __init__(self) -> None:
        self._envelope: SafetyEnvelope | None = None
        self._gains: dict[int, int] = {}
        self._sites: dict[str, tuple[int, ...]] = {}
        # id(settings tuple) -> (that tuple, kept alive so its id stays its own; the verdict)
        self._verdicts: dict[int, tuple[tuple[ChannelSetting, ...], str | None]] = {}

    def __call__(
        self,
        block: Block,
        envelope: SafetyEnvelope,
        gain_permille: Mapping[int, int],
        shared_sites: Mapping[str, tuple[int, ...]],
    ) -> str | None:
        """Exactly ``check_block(block, envelope, gain_permille, shared_sites)``."""
        return self.settings(block.index, block.channels, envelope, gain_permille, shared_sites)

    def settings(
        self,
        index: int,
        channels: tuple[ChannelSetting, ...],
        envelope: SafetyEnvelope,
        gain_permille: Mapping[int, int],
        shared_sites: Mapping[str, tuple[int, ...]],
    ) -> str | None:
        """The same for block ``index`` with settings ``channels`` (a streamer that writes
        blocks packed has no Block message to hand over)."""
        verdicts = self._verdicts
        if (
            envelope is not self._envelope
            or gain_permille != self._gains
            or shared_sites != self._sites
        ):
            verdicts.clear()
            self._envelope = envelope
            self._gains, self._sites = dict(gain_permille), dict(shared_sites)
        kept = verdicts.get(id(channels))
        if kept is not None and kept[0] is channels:
            why = kept[1]
        else:  # judged at the gains and sites the verdict is kept for (a copy, not the live map)
            why = _check_channels(channels, envelope, self._gains, self._sites)
            if len(verdicts) >= VERDICTS_KEPT:
                verdicts.clear()
            verdicts[id(channels)] = (channels, why)
        return None if why is None else f"block {index}{why}"


def _check_channels(
    channels: tuple[ChannelSetting, ...],
    envelope: SafetyEnvelope,
    gain_permille: Mapping[int, int],
    shared_sites: Mapping[str, tuple[int, ...]],
) -> str | None:
    """None if the settings are within ``envelope``, else why not: the text after "block N"."""
    live: dict[int, tuple[float, float]] = {}  # channel -> (mA, uC per phase)
    for ch, cs in enumerate(channels, start=1):
        if cs.amplitude_ua == 0:
            continue
        if ch not in gain_permille:
            return f": current on channel {ch}, not in the profile"
        amp_ma = cs.amplitude_ua * gain_permille[ch] / 1_000_000
        if amp_ma > envelope.max_amplitude_ma + _SLACK:
            return (
                f" channel {ch}: {amp_ma:g} mA above max_amplitude_ma {envelope.max_amplitude_ma:g}"
            )
        lo, hi = envelope.frequency_hz
        if cs.frequency_dhz and not lo <= cs.frequency_dhz / 10 <= hi:
            return (
                f" channel {ch}: {cs.frequency_dhz / 10:g} Hz outside frequency_hz {lo:g}..{hi:g}"
            )
        lo, hi = envelope.pulse_width_us
        if not lo <= cs.pulse_width_us <= hi:
            return f" channel {ch}: {cs.pulse_width_us} us outside pulse_width_us {lo:g}..{hi:g}"
        charge_uc = amp_ma * cs.pulse_width_us / 1000
        if charge_uc > envelope.max_phase_charge_uc + _SLACK:
            return (
                f" channel {ch}: {charge_uc:g} uC per phase above"
                f" max_phase_charge_uc {envelope.max_phase_charge_uc:g}"
            )
        live[ch] = (amp_ma, charge_uc)
    for site, ids in shared_sites.items():
        amp_ma = sum(live.get(ch, (0.0, 0.0))[0] for ch in ids)
        charge_uc = sum(live.get(ch, (0.0, 0.0))[1] for ch in ids)
        names = ", ".join(str(ch) for ch in ids)
        if amp_ma > envelope.max_amplitude_ma + _SLACK:
            return (
                f" site {site} (channels {names}): {amp_ma:g} mA above"
                f" max_amplitude_ma {envelope.max_amplitude_ma:g}"
            )
        if charge_uc > envelope.max_phase_charge_uc + _SLACK:
            return (
                f" site {site} (channels {names}): {charge_uc:g} uC per phase above"
                f" max_phase_charge_uc {envelope.max_phase_charge_uc:g}"
            )
    return None
