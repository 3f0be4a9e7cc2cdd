"""Live plateau rules for ADJUST: the step and ramp-rate clamp, the refusals, the gain to send."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from stimctl.host.errors import InterlockError
from stimctl.protocol import GAIN_UNITY
from stimctl.rules.envelope import ADJUST_GAIN_MAX_PERMILLE, ADJUST_STEP_MA, SafetyEnvelope
from stimctl.rules.profile import Profile
from stimctl.rules.report import Report

__all__ = [
    "ADJUST_STEP_MA",
    "check_plateau",
    "clamped_target",
    "gain_permille",
    "prescribed_ma",
    "reramp_na_per_s",
]


def prescribed_ma(profile: Profile, channel: int) -> float:
    """The channel's amplitude as prescribed by the profile (gain 1000 permille)."""
    return next(c.amplitude_ma for c in profile.channels if c.id == channel)


def clamped_target(
    current_ma: float, delta_ma: float, since_s: float, max_ramp_rate_ma_per_s: float
) -> float:
    """``current_ma + delta_ma`` with the step clamped to one ADJUST_STEP_MA and to the ramp rate
    over ``since_s`` (the time since the channel's last change), never below zero."""
    allowed = min(ADJUST_STEP_MA, max_ramp_rate_ma_per_s * since_s)
    delta = max(-allowed, min(allowed, delta_ma))
    return round(max(0.0, current_ma + delta), 6)


def check_plateau(
    profile: Profile,
    channel: int,
    target_ma: float,
    validate: Callable[[Profile], Report],
    max_ramp_rate_ma_per_s: float | None = None,
    live_ma: Mapping[int, float] | None = None,
) -> None:
    """InterlockError if the channel at ``target_ma`` is above twice the prescription or breaks
    a rule ``validate`` checks (amplitude, charge, r.m.s., density, ramp rate); zero is always
    allowed. The other channels are judged at their live plateaus ``live_ma`` (channel id ->
    mA, as adjusted; the prescription where missing), since channels sharing a needle add up
    at their live gains. The on-window edges are judged as compiled (their default taken from
    the prescription at ``max_ramp_rate_ma_per_s``, the default envelope's when None), since a
    gain steepens every ramp of the stream."""
    rate = max_ramp_rate_ma_per_s or SafetyEnvelope().max_ramp_rate_ma_per_s
    base = prescribed_ma(profile, channel)
    if target_ma / base * GAIN_UNITY > ADJUST_GAIN_MAX_PERMILLE:
        raise InterlockError(
            f"ADJUST refused: channel {channel} at {target_ma:g} mA is above twice the"
            f" prescribed {base:g} mA (gain limit {ADJUST_GAIN_MAX_PERMILLE} permille)"
        )
    if target_ma == 0:
        return
    live = {**(live_ma or {}), channel: target_ma}
    channels = [
        c.model_copy(update={"amplitude_ma": live[c.id]}) if live.get(c.id, 0) > 0 else c
        for c in profile.channels
    ]
    phases = [
        p.model_copy(update={"window_ramp_s": profile.window_ramp_s(j, rate)})
        if p.mode == "intermittent" else p
        for j, p in enumerate(profile.phases)
    ]  # fmt: skip
    report = validate(profile.model_copy(update={"channels": channels, "phases": phases}))
    if not report.ok:
        v = report.errors[0]
        limit = f" (limit {v.limit:g})" if isinstance(v.limit, int | float) else ""
        raise InterlockError(
            f"ADJUST refused: channel {channel} at {target_ma:g} mA breaks {v.code}"
            f" at {v.loc}{limit}: {v.message}"
        )


def gain_permille(profile: Profile, channel: int, target_ma: float) -> int:
    """The ADJUST gain for ``target_ma`` relative to the prescription, rounded down (float
    noise below 1e-6 permille ignored): the device never delivers more than the plateau the
    rules accepted (rounded to nearest, 5.1 / 4.9 mA gave 1041 permille = 5.1009 mA)."""
    return math.floor(target_ma / prescribed_ma(profile, channel) * GAIN_UNITY + 1e-6)


def reramp_na_per_s(rate_ma_per_s: float) -> int:
    """RESUME's re-ramp rate on the wire (nA/s): rounded down, so never faster, and at least 1
    (0 would leave the slew ceiling alone)."""
    return max(1, min(0xFFFFFFFF, int(rate_ma_per_s * 1_000_000)))
