"""Simulator options shared by the stimsim:// URL and the command line: parse and build a device."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from firmware_sim.clock import RealClock, ScaledClock, VirtualClock, check_speed
from firmware_sim.config import DeviceConfig
from firmware_sim.faults import FaultSpec, LinkFaults
from firmware_sim.limits import HardwareLimits
from stimctl.protocol import MIN_WATCHDOG_MS


@dataclass(slots=True)
class SimOptions:
    """How to run one simulated device: its config plus clock mode and control socket."""

    config: DeviceConfig = field(default_factory=DeviceConfig)
    virtual: bool = False
    lockstep: bool = False  # stimsim:// only: device time advances only while the host waits
    speed: float | None = None  # None: real time; virtual: None unpaced, N at most N x wall time
    control: str | None = None
    spin_us: int = 1000

    def make_clock(self) -> VirtualClock | RealClock:
        if self.virtual:
            return VirtualClock(self.speed, self.config.tick_hz)
        if self.speed is None or self.speed == 1.0:
            return RealClock(self.config.tick_hz, spin_us=self.spin_us)
        return ScaledClock(self.speed, self.config.tick_hz)


def parse_impedance(text: str) -> tuple[float, ...]:
    """``1500`` or ``1500,2200,900``: per channel in ohm, the last value repeats."""
    values = tuple(float(v) for v in text.split(",") if v.strip())
    if not values or any(v < 0 for v in values):
        raise ValueError(f"bad impedance {text!r}: expected OHM[,OHM...] >= 0")
    return values


def parse_flag(text: str) -> bool:
    """``1 true yes on`` (or empty) / ``0 false no off``; ValueError for anything else."""
    value = text.strip().lower()
    if value in ("1", "true", "yes", "on", ""):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"expected 1/0 (true/false, yes/no, on/off), got {text!r}")


def apply_option(opts: SimOptions, name: str, value: str) -> None:
    """Apply one named option (URL parameter or CLI flag, same names); ValueError when bad."""
    cfg = opts.config
    if name == "channels":
        cfg.limits = replace(cfg.limits, channels=int(value))
    elif name == "virtual":
        opts.virtual = parse_flag(value)
    elif name == "lockstep":
        opts.lockstep = parse_flag(value)
        opts.virtual = opts.virtual or opts.lockstep
    elif name == "speed":
        opts.speed = check_speed(float(value))
    elif name == "impedance":
        cfg.impedance_ohm = parse_impedance(value)
    elif name == "fault":
        cfg.faults = (*cfg.faults, FaultSpec.parse(value))
    elif name in ("drop", "flip"):
        setattr(cfg, name, float(value))
        LinkFaults(drop=cfg.drop, flip=cfg.flip)  # validates the rates
    elif name == "delay_ms":
        cfg.delay_ms = int(value)
        if cfg.delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
    elif name == "trace":
        cfg.trace = value or None
    elif name == "watchdog_ms":
        cfg.watchdog_ms = int(value)
        if not MIN_WATCHDOG_MS <= cfg.watchdog_ms <= 0xFFFF:
            raise ValueError(f"watchdog_ms must be {MIN_WATCHDOG_MS}..65535")
    elif name == "impedance_valid_ms":
        cfg.impedance_valid_ms = int(value)
        if not 1 <= cfg.impedance_valid_ms <= 0xFFFFFFFF:
            raise ValueError("impedance_valid_ms must be 1..4294967295")
    elif name == "serial":
        if len(value) > 12 or not value.isascii():
            raise ValueError("serial must be at most 12 ASCII characters")
        cfg.serial = value
    elif name == "tick_by_tick":
        cfg.tick_by_tick = parse_flag(value)
    elif name == "seed":
        cfg.seed = int(value)
    elif name == "control":
        opts.control = value or None
    else:
        raise KeyError(name)


URL_PARAMETERS = (
    "channels", "virtual", "lockstep", "speed", "impedance", "fault", "drop", "flip", "delay_ms",
    "trace", "watchdog_ms", "impedance_valid_ms", "serial", "seed", "control",
    "tick_by_tick",
)  # fmt: skip


def default_limits(channels: int = 4) -> HardwareLimits:
    return HardwareLimits(channels=channels)
