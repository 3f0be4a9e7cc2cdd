"""Simulator options shared by the stimsim:// URL and the command line: parse and build a device."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from firmware_sim.clock import RealClock, ScaledClock, VirtualClock, check_speed
from firmware_sim.config import DeviceConfig
from firmware_sim.faults import KINDS, FaultSpec, LinkFaults
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


def _set_channels(opts: SimOptions, value: str) -> None:
    opts.config.limits = replace(opts.config.limits, channels=int(value))


def _set_virtual(opts: SimOptions, value: str) -> None:
    opts.virtual = parse_flag(value)


def _set_lockstep(opts: SimOptions, value: str) -> None:
    opts.lockstep = parse_flag(value)
    opts.virtual = opts.virtual or opts.lockstep


def _set_speed(opts: SimOptions, value: str) -> None:
    opts.speed = check_speed(float(value))


def _set_impedance(opts: SimOptions, value: str) -> None:
    opts.config.impedance_ohm = parse_impedance(value)


def _add_fault(opts: SimOptions, value: str) -> None:
    opts.config.faults = (*opts.config.faults, FaultSpec.parse(value))


def _set_link_rate(name: str) -> Callable[[SimOptions, str], None]:
    def apply(opts: SimOptions, value: str) -> None:
        cfg = opts.config
        setattr(cfg, name, float(value))
        LinkFaults(drop=cfg.drop, flip=cfg.flip)  # validates the rates

    return apply


def _set_int(name: str, low: int, high: int | None = None) -> Callable[[SimOptions, str], None]:
    """An integer field of the DeviceConfig, checked against ``low..high``."""

    def apply(opts: SimOptions, value: str) -> None:
        number = int(value)
        if number < low or (high is not None and number > high):
            raise ValueError(
                f"{name} must be {low}..{high}" if high else f"{name} must be >= {low}"
            )
        setattr(opts.config, name, number)

    return apply


def _set_seed(opts: SimOptions, value: str) -> None:
    opts.config.seed = int(value)


def _set_trace(opts: SimOptions, value: str) -> None:
    opts.config.trace = value or None


def _set_serial(opts: SimOptions, value: str) -> None:
    if len(value) > 12 or not value.isascii():
        raise ValueError("serial must be at most 12 ASCII characters")
    opts.config.serial = value


def _set_tick_by_tick(opts: SimOptions, value: str) -> None:
    opts.config.tick_by_tick = parse_flag(value)


def _set_control(opts: SimOptions, value: str) -> None:
    opts.control = value or None


@dataclass(frozen=True, slots=True)
class SimOption:
    """One simulator option: URL parameter ``name=VALUE``, its `stimctl sim` flag (None: URL only),
    the value's form, the default, one help line, and the function that applies it."""

    name: str
    flag: str | None
    metavar: str
    default: str
    help: str
    apply: Callable[[SimOptions, str], None]
    repeatable: bool = False


_FAULT_HELP = f"inject a fault, KIND[:CH][@T_MS] (repeatable); kinds: {', '.join(KINDS)}"

#: The one table of simulator options: URL parsing, the command line, the host's option list and
#: docs/PROTOCOL.md's tables all come from it (tests/test_facts.py checks the docs).
OPTIONS: tuple[SimOption, ...] = (
    SimOption("channels", "--channels", "N", "4", "output channels, 1..8", _set_channels),
    SimOption("virtual", None, "1", "0", "co-simulation on the virtual clock", _set_virtual),
    SimOption("lockstep", None, "1", "0", "strict lock-step (implies virtual=1)", _set_lockstep),
    SimOption("speed", "--speed", "N", "1", "device time / wall time", _set_speed),
    SimOption("impedance", "--impedance", "OHM[,OHM...]", "1500",
              "electrode impedance per channel; the last value repeats", _set_impedance),
    SimOption("fault", "--fault", "SPEC", "", _FAULT_HELP, _add_fault, repeatable=True),
    SimOption("drop", "--drop", "P", "0", "link byte-drop probability", _set_link_rate("drop")),
    SimOption("flip", "--flip", "P", "0", "link bit-flip probability per byte",
              _set_link_rate("flip")),
    SimOption("delay_ms", "--delay-ms", "N", "0", "link one-way delay (ms of device time)",
              _set_int("delay_ms", 0)),
    SimOption("trace", "--trace", "PATH", "", "write the JSON-lines trace to PATH", _set_trace),
    SimOption("watchdog_ms", "--watchdog-ms", "N", "200", "host watchdog (ms)",
              _set_int("watchdog_ms", MIN_WATCHDOG_MS, 0xFFFF)),
    SimOption("impedance_valid_ms", "--impedance-valid-ms", "N", "300000",
              "how long a passed impedance check stays valid (ms)",
              _set_int("impedance_valid_ms", 1, 0xFFFFFFFF)),
    SimOption("serial", "--serial", "S", "SIM0001", "serial number in DEVICE_INFO", _set_serial),
    SimOption("seed", "--seed", "N", "0", "seed of the link-fault generator", _set_seed),
    SimOption("control", "--control", "PATH", "", "serve the control socket at PATH",
              _set_control),
    SimOption("tick_by_tick", None, "1", "0", "virtual clock: run every tick (the reference the"
              " event-driven path is tested against)", _set_tick_by_tick),
)  # fmt: skip
_BY_NAME = {option.name: option for option in OPTIONS}
#: the stimsim:// URL parameters
URL_PARAMETERS: tuple[str, ...] = tuple(_BY_NAME)
#: option name -> `stimctl sim` flag (the options a separate simulator process takes)
CLI_FLAGS: dict[str, str] = {o.name: o.flag for o in OPTIONS if o.flag is not None}


def apply_option(opts: SimOptions, name: str, value: str) -> None:
    """Apply one named option (URL parameter or CLI flag, same names); ValueError when bad,
    KeyError when there is no such option."""
    _BY_NAME[name].apply(opts, value)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The command-line flags of every option that has one (values applied by ``apply_option``)."""
    for option in OPTIONS:
        if option.flag is None:
            continue
        default = f" (default {option.default})" if option.default else ""
        parser.add_argument(
            option.flag, dest=option.name, metavar=option.metavar, help=option.help + default,
            action="append" if option.repeatable else "store", default=None,
        )  # fmt: skip


def options_from_namespace(args: argparse.Namespace) -> SimOptions:
    """SimOptions from parsed command-line flags (``add_arguments``), in table order."""
    opts = SimOptions()
    for option in OPTIONS:
        value = getattr(args, option.name, None) if option.flag is not None else None
        for one in (value or []) if option.repeatable else [value]:
            if one is not None:
                apply_option(opts, option.name, one)
    return opts


def default_limits(channels: int = 4) -> HardwareLimits:
    return HardwareLimits(channels=channels)
