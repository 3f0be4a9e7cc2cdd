"""The runtime policy limits the host applies during a session (POLICIES), each with its source.

Host code and the TUI import the constants from here (or from ``stimctl.rules.envelope``).
"""

from __future__ import annotations

from dataclasses import dataclass

from stimctl.rules.ruletable import POLICY

__all__ = [
    "ADJUST_GAIN_MAX_PERMILLE", "ADJUST_STEP_MA", "DEFAULT_STOP_RAMP_MS", "DEVICE_SILENCE_S",
    "IMPEDANCE_MAX_AGE_S", "POLICIES", "STREAM_TARGET_MS", "Policy",
]  # fmt: skip


@dataclass(frozen=True, slots=True)
class Policy:
    """One runtime policy limit the host applies during a session: value, unit, source."""

    name: str
    value: float
    unit: str
    source: str
    summary: str


#: Largest single live-amplitude step of ADJUST.
ADJUST_STEP_MA = 0.1
#: ADJUST never takes a channel above this gain of its prescription (2000 = twice).
ADJUST_GAIN_MAX_PERMILLE = 2000
#: An impedance check older than this does not count for ARM (the device has its own).
IMPEDANCE_MAX_AGE_S = 60.0
#: The operator stop ramp when the current phase has no ramp_down.
DEFAULT_STOP_RAMP_MS = 2000
#: No frame at all from the device for this long (host time) is a lost link.
DEVICE_SILENCE_S = 2.0
#: Lookahead the host keeps queued on the device (device maximum is typically 250 ms). 120 ms
#: underran on a loaded 2-CPU bench (host not scheduled for > 120 ms); 200 ms rides that out,
#: and a stream that stops still stops the output within the device's 250 ms bound.
STREAM_TARGET_MS = 200

_POLICIES = (
    Policy("adjust-step", ADJUST_STEP_MA, "mA", f"{POLICY} (one +/- press; the ramp rate bounds it"
           " again)", "largest single live-amplitude step of ADJUST"),
    Policy("adjust-gain-max", ADJUST_GAIN_MAX_PERMILLE, "permille", f"{POLICY} (2x the"
           " prescription; every rule still checked)",
           "ADJUST never above this gain of the prescription"),
    Policy("impedance-max-age", IMPEDANCE_MAX_AGE_S, "s", f"{POLICY} (the device keeps its own"
           " validity)", "an older impedance check does not count for ARM"),
    Policy("stop-ramp-default", DEFAULT_STOP_RAMP_MS, "ms", f"{POLICY}; never steeper than"
           " max_ramp_rate_ma_per_s", "operator stop ramp when the phase has no ramp_down"),
    Policy("device-silence", DEVICE_SILENCE_S, "s", f"{POLICY}; ScienceMode stops after 1.5 s,"
           " MAVLink failsafe 5 s", "no frame from the device this long: LINK_LOST"),
    Policy("stream-target", STREAM_TARGET_MS, "ms", f"{POLICY}; measured on a loaded 2-CPU bench"
           " (120 ms underran)", "lookahead the host keeps queued (device maximum 250 ms)"),
)  # fmt: skip
#: name -> Policy: the runtime policy limits (docs/SAFETY.md, "Runtime policy limits").
POLICIES: dict[str, Policy] = {policy.name: policy for policy in _POLICIES}
