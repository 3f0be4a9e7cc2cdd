"""DeviceConfig: what defines one simulated device (timing, limits, electrodes, link, faults)."""

from __future__ import annotations

from dataclasses import dataclass, field

from firmware_sim.faults import FaultSpec
from firmware_sim.limits import HardwareLimits


@dataclass(slots=True)
class DeviceConfig:
    """Everything that defines one simulated device (firmware, electrodes, faults)."""

    limits: HardwareLimits = field(default_factory=HardwareLimits)
    tick_hz: int = 1000
    telemetry_hz: int = 50
    watchdog_ms: int = 200
    fifo_depth: int = 32
    max_lookahead_ms: int = 250
    impedance_valid_ms: int = 300_000
    impedance_check_ms: int = 50
    impedance_ohm: tuple[float, ...] = (1500.0,)  # per channel; the last value repeats
    serial: str = "SIM0001"
    firmware: tuple[int, int, int] = (1, 0, 0)
    faults: tuple[FaultSpec, ...] = ()
    drop: float = 0.0  # link: byte drop probability (both directions)
    flip: float = 0.0  # link: per-byte bit-flip probability
    delay_ms: int = 0  # link: one-way delay in device time
    seed: int = 0
    trace: str | None = None
    pulse_log_ms: int = 10_000
    tx_buffer_max: int = 1 << 20
    # Virtual clock: one Device.tick per tick instead of jumping from event to event (the
    # reference the event-driven path is tested against; same observables, much slower).
    tick_by_tick: bool = False

    @property
    def channels(self) -> int:
        return self.limits.channels

    def impedance(self, channel: int) -> float:
        """Initial electrode impedance of a channel (1-based)."""
        values = self.impedance_ohm or (1500.0,)
        return float(values[min(channel, len(values)) - 1])
