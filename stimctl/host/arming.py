"""From a valid profile to ARM: the profile compiled for the device and its record lines, the
impedance readings, the ARM guard's facts and the ARM frame."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from stimctl.host.interlock import ArmContext
from stimctl.host.schedule import Schedule, compile_schedule
from stimctl.host.status import DeviceSummary, ImpedanceReading
from stimctl.protocol import Arm, ImpedanceResult, ImpedanceStatus, Shape
from stimctl.rules.profile import Profile
from stimctl.rules.report import Report
from stimctl.rules.violations import Violation

__all__ = [
    "arm_context",
    "arm_message",
    "channel_mask",
    "compile_for_device",
    "impedance_readings",
    "profile_line",
    "refused_line",
]

_SHAPES = {"biphasic_symmetric": Shape.BIPHASIC_SYMMETRIC,
           "biphasic_asymmetric": Shape.BIPHASIC_ASYMMETRIC}  # fmt: skip


def channel_mask(channels: Iterable[int]) -> int:
    """Channels 1..n as the protocol's bit mask (bit 0: channel 1)."""
    return sum(1 << (ch - 1) for ch in channels)


def profile_line(profile: Profile) -> dict[str, Any]:
    """The profile as the record keeps it: its JSON form and the sha256 of that."""
    raw = profile.model_dump(mode="json", by_alias=True)
    return {"profile": raw, "sha256": hashlib.sha256(json.dumps(raw, sort_keys=True).encode())
            .hexdigest()}  # fmt: skip


def refused_line(
    profile: Profile | str | Path, violations: Iterable[Violation], patient: Iterable[str] = ()
) -> dict[str, Any]:
    """The record's ``refused`` line: the profile refused (or the file that did not load as
    one) and why."""
    if isinstance(profile, Profile):
        where = {**profile_line(profile), "patient": sorted(patient)}
    else:
        where = {"path": str(profile)}
    return {**where, "violations": [v.to_dict() for v in violations]}


def compile_for_device(
    profile: Profile,
    report: Report,
    device: DeviceSummary | None,
    patient: Iterable[str],
    max_ramp_rate_ma_per_s: float | None = None,
) -> tuple[Schedule, dict[str, Any]]:
    """The schedule at the device's amplitude step (window edges at the effective envelope's
    ramp rate), and the record's ``profile`` line."""
    step = device.limits["amplitude_step_ua"] if device else 10
    schedule = compile_schedule(
        profile, amplitude_step_ua=step, max_ramp_rate_ma_per_s=max_ramp_rate_ma_per_s
    )
    return schedule, {
        **profile_line(profile), "patient": sorted(patient),
        "warnings": [v.to_dict() for v in report.warnings],
        "expected_pulses": schedule.expected_pulses().tolist(), "blocks": schedule.n_blocks,
    }  # fmt: skip


def impedance_readings(
    result: ImpedanceResult, channels: Iterable[int]
) -> dict[int, ImpedanceReading]:
    """IMPEDANCE_RESULT for ``channels``: ohms, status name, passed (status OK)."""
    readings: dict[int, ImpedanceReading] = {}
    for ch in channels:
        item = result.channels[ch - 1]
        status = ImpedanceStatus(item.status)
        readings[ch] = ImpedanceReading(
            item.impedance_ohm, status.name, status is ImpedanceStatus.OK
        )
    return readings


def arm_context(
    profile: Profile | None,
    report: Report | None,
    active_channels: tuple[int, ...],
    *,
    acknowledge_warnings: bool,
    confirm: bool,
) -> ArmContext:
    """What the ARM guards check, from the profile re-validated now (``report``)."""
    return ArmContext(
        profile_loaded=profile is not None,
        profile_ok=report is not None and report.ok,
        first_error=(f"{report.errors[0].loc}: {report.errors[0].message}"
                     if report is not None and report.errors else ""),
        warnings=len(report.warnings) if report is not None else 0,
        warnings_acknowledged=acknowledge_warnings,
        active_channels=active_channels,
        confirmed=confirm,
    )  # fmt: skip


def arm_message(profile: Profile, active_channels: Iterable[int]) -> Arm:
    """ARM for the profile's active channels and waveform shape."""
    return Arm(channel_mask=channel_mask(active_channels), shape=_SHAPES[profile.waveform.shape])
