"""DeviceCore: the device's state and primitives as its handlers (commands, faults, fast path,
reports, control socket) use them.

``Device`` (device.py) is the one implementation; it imports the handler modules, and they type
their ``dev`` argument with this protocol, so no handler imports device.py (no import cycle, type
checks included).
"""

from __future__ import annotations

from collections import deque
from typing import Any, Protocol

from firmware_sim.clock import RealClock, VirtualClock
from firmware_sim.config import DeviceConfig
from firmware_sim.faults import FaultSpec, LinkFaults
from firmware_sim.fifo import BlockFifo
from firmware_sim.interlock import Event, Interlock
from firmware_sim.limits import HardwareLimits, LimitError
from firmware_sim.output import OutputStage
from firmware_sim.trace import TraceWriter
from stimctl.protocol import Fault, FrameDecoder, Message, NakReason, State

__all__ = ["DeviceCore"]


class DeviceCore(Protocol):
    """What a handler may read and change of a device (``firmware_sim.device.Device``)."""

    config: DeviceConfig
    clock: VirtualClock | RealClock
    limits: HardwareLimits
    ticks_per_ms: int
    tick_us: int
    watchdog_ticks: int
    telemetry_ticks: int
    tick_count: int
    boot_tick: int  # tick_count at the last boot: uptime_ms counts from it
    tx_seq: int  # the sequence number of the device's next frame (next_seq takes it)
    link: LinkFaults
    trace: TraceWriter
    decoder: FrameDecoder
    interlock: Interlock
    fifo: BlockFifo
    output_stage: OutputStage
    counters: dict[str, int]
    rx_buffer: bytearray
    rx_delayed: deque[tuple[int, bytes]]
    tx_delayed: deque[tuple[int, bytes]]
    scheduled_faults: list[FaultSpec]
    first_start_tick: int | None
    pending_violation: LimitError | None
    session_open: bool
    armed_mask: int
    gains: list[int]
    last_rx_tick: int
    next_telemetry: int
    impedance_due: tuple[int, int] | None
    stop_end: int
    stop_ticks: int
    stop_from: list[int]
    reramp_rate_na_per_s: int
    reramp_from_tick: int
    block_passed: tuple[object, ...]  # the inputs of the last BLOCK that passed the limits
    last_command: tuple[int, int, tuple[NakReason, int] | None, int] | None

    @property
    def state(self) -> State: ...

    @property
    def fault(self) -> Fault: ...

    @property
    def time_ms(self) -> int: ...

    def apply_state(self, event: Event) -> None: ...

    def latch_fault(self, fault: Fault, channel: int, detail: int) -> None: ...

    def configure_outputs(self, ramp_now: int | None = None) -> None: ...

    def brown_out(self) -> None: ...

    def uptime_ms(self) -> int: ...

    def next_seq(self) -> int: ...

    def send(self, msg: Message) -> None: ...

    def inject(self, kind: str, channel: int = 1, value: float | None = None) -> None: ...

    def status(self) -> dict[str, Any]: ...
