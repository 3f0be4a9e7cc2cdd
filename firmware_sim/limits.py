"""Hardware limits of the simulated stimulator and the check of every command against them."""

from __future__ import annotations

from dataclasses import dataclass

from stimctl.protocol import (
    ACC_WRAP,
    ASYMMETRIC_RECOVERY_RATIO,
    GAIN_UNITY,
    ChannelSetting,
    LimitField,
    Shape,
    limit_detail,
)


@dataclass(frozen=True, slots=True)
class LimitError:
    """One out-of-limits finding; ``channel`` is 1-based, 0 when the field is not per channel."""

    field: LimitField
    channel: int = 0

    @property
    def detail(self) -> int:
        return limit_detail(self.field, self.channel)


@dataclass(frozen=True, slots=True)
class HardwareLimits:
    """What the output stage can and may do; the device refuses anything outside it."""

    channels: int = 4
    max_amplitude_ua: int = 20_000  # 20 mA peak
    amplitude_step_ua: int = 10  # DAC resolution
    min_pulse_width_us: int = 20
    max_pulse_width_us: int = 1000
    min_frequency_dhz: int = 5  # 0.5 Hz
    max_frequency_dhz: int = 2500  # 250 Hz
    compliance_mv: int = 60_000  # 60 V
    # Slew ceiling: output never rises faster, whatever the host streams (START, RESUME, louder
    # blocks, ADJUST). 2 uA/ms = 2 mA/s, stimctl's ramp-rate-max policy (docs/SAFETY.md); the
    # device enforces it itself because it never trusts the host (issue 10: 10 uA/ms let RESUME
    # rise at 5x the policy).
    max_slew_ua_per_ms: int = 2
    impedance_max_ohm: int = 20_000  # impedance check pass threshold
    short_ohm: int = 100  # below: short circuit
    open_ohm: int = 100_000  # above: open circuit
    max_gain_permille: int = 2 * GAIN_UNITY
    min_block_ms: int = 1
    max_block_ms: int = 1000
    overcurrent_tolerance_ua: int = 100  # measured may exceed set by max(this, 10 %)
    overcurrent_tolerance_permille: int = 100

    def __post_init__(self) -> None:
        if not 1 <= self.channels <= 8:
            raise ValueError(f"channels must be 1..8 (an 8-bit mask), got {self.channels}")

    @property
    def channel_mask(self) -> int:
        return (1 << self.channels) - 1

    def phase_time_us(self, pulse_width_us: int, shape: int) -> int:
        """Total time of both phases of one pulse."""
        if shape == Shape.BIPHASIC_ASYMMETRIC:
            return pulse_width_us * (1 + ASYMMETRIC_RECOVERY_RATIO)
        return 2 * pulse_width_us

    def scaled(self, amplitude_ua: int, gain_permille: int) -> int:
        """Amplitude x gain, rounded down to the DAC step (not clamped)."""
        raw = amplitude_ua * gain_permille // GAIN_UNITY
        return raw - raw % self.amplitude_step_ua

    def clamp(self, amplitude_ua: int) -> int:
        """Second line of defence: whatever is computed, never above the hardware maximum."""
        return max(0, min(amplitude_ua, self.max_amplitude_ua))

    def check_setting(
        self, channel: int, s: ChannelSetting, shape: int, armed: bool, gain: int
    ) -> LimitError | None:
        """The checks of one channel of a BLOCK (channel is 1-based)."""
        amp, freq, pw = s.amplitude_ua, s.frequency_dhz, s.pulse_width_us
        if amp > self.max_amplitude_ua:
            return LimitError(LimitField.AMPLITUDE, channel)
        if amp % self.amplitude_step_ua:
            return LimitError(LimitField.AMPLITUDE_STEP, channel)
        if (freq or amp) and not self.min_frequency_dhz <= freq <= self.max_frequency_dhz:
            return LimitError(LimitField.FREQUENCY, channel)
        if (pw or amp) and not self.min_pulse_width_us <= pw <= self.max_pulse_width_us:
            return LimitError(LimitField.PULSE_WIDTH, channel)
        if freq and pw and self.phase_time_us(pw, shape) * freq > ACC_WRAP:
            return LimitError(LimitField.DUTY, channel)
        if amp and not armed:
            return LimitError(LimitField.UNARMED, channel)
        if self.scaled(amp, gain) > self.max_amplitude_ua:
            return LimitError(LimitField.SCALED_AMPLITUDE, channel)
        return None

    def check_block(
        self,
        duration_ms: int,
        settings: tuple[ChannelSetting, ...],
        shape: int,
        armed_mask: int,
        gains: list[int],
        max_duration_ms: int,
    ) -> LimitError | None:
        """Every field of a BLOCK against the limits (the armed mask is part of the check)."""
        if not self.min_block_ms <= duration_ms <= min(self.max_block_ms, max_duration_ms):
            return LimitError(LimitField.DURATION)
        for i, s in enumerate(settings):
            err = self.check_setting(i + 1, s, shape, bool(armed_mask >> i & 1), gains[i])
            if err is not None:
                return err
        return None

    def check_gain(self, channel: int, gain: int, amplitudes: list[int]) -> LimitError | None:
        """ADJUST: the gain itself and its product with every amplitude queued or playing."""
        if gain > self.max_gain_permille:
            return LimitError(LimitField.GAIN, channel)
        if any(self.scaled(a, gain) > self.max_amplitude_ua for a in amplitudes):
            return LimitError(LimitField.SCALED_AMPLITUDE, channel)
        return None
