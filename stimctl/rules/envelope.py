"""The SafetyEnvelope model: the limits the rules check against, a site's envelope file, and its
narrowing to a device's limits.

The rule table lives in ``stimctl.rules.ruletable`` and the runtime policy limits in
``stimctl.rules.policies``; both are importable from here as before.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from stimctl.rules.policies import (
    ADJUST_GAIN_MAX_PERMILLE,
    ADJUST_STEP_MA,
    DEFAULT_STOP_RAMP_MS,
    DEVICE_SILENCE_S,
    IMPEDANCE_MAX_AGE_S,
    POLICIES,
    STREAM_TARGET_MS,
    Policy,
)
from stimctl.rules.profile import MAX_CHANNELS, format_loc
from stimctl.rules.ruletable import RULES, Rule

__all__ = [
    "ADJUST_GAIN_MAX_PERMILLE", "ADJUST_STEP_MA", "DEFAULT_STOP_RAMP_MS", "DEVICE_SILENCE_S",
    "ENVELOPE_SCHEMA", "IMPEDANCE_MAX_AGE_S", "POLICIES", "RULES", "STREAM_TARGET_MS",
    "EnvelopeError", "Policy", "Rule", "SafetyEnvelope",
]  # fmt: skip

ENVELOPE_SCHEMA = "stimctl.envelope/1"


Positive = Annotated[float, Field(gt=0)]
Range = tuple[Positive, Positive]


class EnvelopeError(ValueError):
    """An envelope file or narrowing that cannot be used."""


class SafetyEnvelope(BaseModel):
    """Limits the rules check against; defaults are the table in docs/SAFETY.md.

    A site may set any limit; the standard-derived ones (r.m.s. current, pulse energy, power
    density, the current-density flag) may only be made stricter. ``narrowed`` intersects
    with a device's limits.
    """

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False, frozen=True)

    max_amplitude_ma: Positive = 10.0
    pulse_width_us: Range = (50.0, 1000.0)
    frequency_hz: Range = (1.0, 200.0)
    max_phase_charge_uc: Positive = 6.0
    max_rms_ma: Annotated[float, Field(gt=0, le=50)] = 50.0
    max_pulse_energy_mj: Annotated[float, Field(gt=0, le=300)] = 300.0
    max_power_density_w_cm2: Annotated[float, Field(gt=0, le=0.25)] = 0.25
    max_session_s: Positive = 3600.0
    max_ramp_rate_ma_per_s: Positive = 2.0
    max_shannon_k: Annotated[float, Field(allow_inf_nan=False)] = 1.85
    max_current_density_ma_cm2: Annotated[float, Field(gt=0, le=2)] = 2.0
    max_channels: Annotated[int, Field(ge=1, le=MAX_CHANNELS)] = MAX_CHANNELS

    @model_validator(mode="before")
    @classmethod
    def _pairs_from_arrays(cls, data: Any) -> Any:
        """TOML arrays arrive as lists; strict mode wants tuples for the ranges."""
        if isinstance(data, dict):
            data = dict(data)
            for key in ("pulse_width_us", "frequency_hz"):
                if isinstance(data.get(key), list):
                    data[key] = tuple(data[key])
        return data

    @model_validator(mode="after")
    def _ranges_ordered(self) -> SafetyEnvelope:
        for key in ("pulse_width_us", "frequency_hz"):
            lo, hi = getattr(self, key)
            if lo > hi:
                raise ValueError(f"{key}: low bound {lo:g} is above high bound {hi:g}")
        return self

    def narrowed(
        self,
        *,
        max_amplitude_ma: float | None = None,
        pulse_width_us: tuple[float, float] | None = None,
        frequency_hz: tuple[float, float] | None = None,
        max_channels: int | None = None,
        max_ramp_rate_ma_per_s: float | None = None,
    ) -> SafetyEnvelope:
        """This envelope intersected with a device's limits: the stricter of each bound.

        Raises EnvelopeError when a range would be empty or a limit is not positive.
        """
        changes: dict[str, Any] = {}
        if max_amplitude_ma is not None:
            changes["max_amplitude_ma"] = min(self.max_amplitude_ma, float(max_amplitude_ma))
        if max_channels is not None:
            changes["max_channels"] = min(self.max_channels, int(max_channels))
        if max_ramp_rate_ma_per_s is not None:  # the device's slew ceiling
            rate = min(self.max_ramp_rate_ma_per_s, float(max_ramp_rate_ma_per_s))
            changes["max_ramp_rate_ma_per_s"] = rate
        for key, given in (("pulse_width_us", pulse_width_us), ("frequency_hz", frequency_hz)):
            if given is not None:
                lo, hi = getattr(self, key)
                new = (max(lo, float(given[0])), min(hi, float(given[1])))
                if new[0] > new[1]:
                    raise EnvelopeError(
                        f"{key}: device range {given[0]:g}..{given[1]:g} does not overlap "
                        f"the envelope {lo:g}..{hi:g}"
                    )
                changes[key] = new
        try:
            return SafetyEnvelope.model_validate({**self.model_dump(), **changes})
        except ValidationError as error:
            raise EnvelopeError(_describe(error, "device limits")) from None

    @classmethod
    def from_toml(cls, path: str | Path) -> SafetyEnvelope:
        """Load a site envelope: flat keys named like the fields, optional ``schema``.

        Missing keys keep their defaults; unknown keys and bad values raise EnvelopeError.
        """
        try:
            data = tomllib.loads(Path(path).read_bytes().decode("utf-8"))
        except OSError as error:
            raise EnvelopeError(f"{path}: cannot read envelope: {error.strerror}") from None
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            raise EnvelopeError(f"{path}: not valid TOML: {error}") from None
        schema = data.pop("schema", ENVELOPE_SCHEMA)
        if schema != ENVELOPE_SCHEMA:
            raise EnvelopeError(f"{path}: schema must be {ENVELOPE_SCHEMA!r}, got {schema!r}")
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise EnvelopeError(_describe(error, str(path))) from None


def _describe(error: ValidationError, where: str) -> str:
    lines = []
    for item in error.errors(include_url=False):
        loc = format_loc(tuple(item["loc"])) or "(envelope)"
        message = "unknown key" if item["type"] == "extra_forbidden" else item["msg"]
        lines.append(f"{loc}: {message}")
    return f"{where}: invalid envelope: " + "; ".join(lines)
