"""Fault injection: fault specs (KIND[:CH][@T_MS]), runtime injections and the faulty link layer.

Fault spec syntax (``--fault``, URL ``fault=``, repeatable, no commas)::

    KIND[:CH][@T_MS]

KIND is one of (aliases in brackets):

- ``electrode_open`` [``open``]: channel CH's electrode comes off (impedance 10 Mohm); detected as
  ELECTRODE_OPEN as soon as that channel delivers current, reported OPEN by impedance checks.
- ``electrode_short`` [``short``]: channel CH short-circuited (10 ohm): ELECTRODE_SHORT / SHORT.
- ``drift``: channel CH's impedance rises by 5 kohm/s (until COMPLIANCE or ELECTRODE_OPEN).
- ``overcurrent``: channel CH measures more than it sets (+max(500 uA, 50 %)): OVERCURRENT.
- ``reset``: the device reboots mid-session into FAULT(DEVICE_RESET).
- ``underrun``: the block FIFO is dropped (FAULT(UNDERRUN) when the playing block ends).

CH is 1-based (default 1). T_MS is device time in ms after the first START; without it the fault
applies at once (at power-up).
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from firmware_sim.output import OPEN_CIRCUIT_OHM
from stimctl.protocol import BLOCK_FLAG_LAST

if TYPE_CHECKING:
    from firmware_sim.device import Device

KINDS = ("electrode_open", "electrode_short", "drift", "overcurrent", "reset", "underrun")
ALIASES = {"open": "electrode_open", "short": "electrode_short"}
DEFAULT_DRIFT_OHM_PER_S = 5000.0
SHORT_OHM = 10.0

_SPEC = re.compile(r"^(?P<kind>[a-z_]+)(?::(?P<ch>\d+))?(?:@(?P<at>\d+))?$")


class FaultSpecError(ValueError):
    """A fault spec that does not parse."""


@dataclass(frozen=True, slots=True)
class FaultSpec:
    """One fault to inject: what, on which channel (1-based), when (ms after first START)."""

    kind: str
    channel: int = 1
    at_ms: int | None = None
    value: float | None = None  # drift rate (ohm/s) or impedance (ohm) for runtime injections

    @classmethod
    def parse(cls, text: str) -> FaultSpec:
        m = _SPEC.match(text.strip().lower())
        if m is None:
            raise FaultSpecError(f"bad fault spec {text!r}: expected KIND[:CH][@T_MS]")
        kind = ALIASES.get(m["kind"], m["kind"])
        if kind not in KINDS:
            raise FaultSpecError(
                f"bad fault spec {text!r}: unknown kind {m['kind']!r} (one of {', '.join(KINDS)})"
            )
        channel = int(m["ch"]) if m["ch"] else 1
        at = int(m["at"]) if m["at"] else None
        return cls(kind=kind, channel=channel, at_ms=at)


@dataclass(slots=True)
class LinkFaults:
    """Byte-level link impairments between the port and the device codec (both directions):
    each byte dropped with ``drop`` probability, one random bit flipped with ``flip``
    probability, and everything delayed by ``delay_ms`` of device time. Seeded: reproducible."""

    drop: float = 0.0
    flip: float = 0.0
    delay_ms: int = 0
    seed: int = 0
    dropped: int = 0
    flipped: int = 0
    rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.validate()

    def validate(self) -> None:
        if not (0.0 <= self.drop <= 1.0 and 0.0 <= self.flip <= 1.0):
            raise ValueError("link drop and flip rates must be within 0..1")
        if self.delay_ms < 0:
            raise ValueError("link delay must be >= 0 ms")

    @property
    def corrupting(self) -> bool:
        return bool(self.drop or self.flip)

    def apply(self, data: bytes) -> bytes:
        """Drop and flip bytes (delay is the device's job: it holds bytes until due)."""
        if not self.corrupting or not data:
            return data
        out = bytearray()
        rng = self.rng
        for b in data:
            if self.drop and rng.random() < self.drop:
                self.dropped += 1
                continue
            if self.flip and rng.random() < self.flip:
                b ^= 1 << rng.randrange(8)
                self.flipped += 1
            out.append(b)
        return bytes(out)

    def clear(self) -> None:
        self.drop = self.flip = 0.0
        self.delay_ms = 0


# --- runtime injection into a device -----------------------------------------------------------


def inject(dev: Device, kind: str, channel: int = 1, value: float | None = None) -> None:
    """Inject a fault into ``dev`` now (see ``Device.inject``); ValueError when unknown."""
    if kind in ("reset", "underrun"):
        dev.brown_out() if kind == "reset" else drop_fifo(dev)
        return
    if not 1 <= channel <= dev.config.channels:
        raise ValueError(f"channel {channel} outside 1..{dev.config.channels}")
    ch = dev.output_stage.channels[channel - 1]
    if kind in ("electrode_open", "open"):
        ch.impedance_ohm, ch.drift_ohm_per_s = OPEN_CIRCUIT_OHM, 0.0
    elif kind in ("electrode_short", "short"):
        ch.impedance_ohm, ch.drift_ohm_per_s = SHORT_OHM, 0.0
    elif kind == "impedance":
        if value is None or value < 0:
            raise ValueError("impedance needs a value in ohm >= 0")
        ch.impedance_ohm, ch.drift_ohm_per_s = float(value), 0.0
    elif kind == "drift":
        ch.drift_ohm_per_s = DEFAULT_DRIFT_OHM_PER_S if value is None else float(value)
    elif kind == "overcurrent":
        ch.overcurrent = True
    elif kind == "clear":  # the electrode is healthy again (initial impedance, no drift)
        ch.impedance_ohm, ch.drift_ohm_per_s = dev.config.impedance(channel), 0.0
        ch.overcurrent = False
    else:
        raise ValueError(f"unknown fault kind {kind!r}")
    dev.output_stage.invalidate()
    dev.trace.write("inject", kind=kind, channel=channel, value=value)


def drop_fifo(dev: Device) -> None:
    """Injected underrun: the FIFO is lost and the playing block ends at the next tick."""
    fifo = dev.fifo
    fifo.queue.clear()
    fifo.queued_ms = 0
    if fifo.current is not None:
        fifo.elapsed = max(0, fifo.duration_ticks(fifo.current) - 1)
        current = fifo.current
        fifo.current = replace(current, flags=current.flags & ~BLOCK_FLAG_LAST)
    dev.trace.write("inject", kind="underrun", channel=0, value=None)


def run_scheduled(dev: Device, now: int) -> None:
    """Inject the scheduled faults (``@T_MS`` specs) that are due at tick ``now``."""
    due = [s for s in dev.scheduled_faults if spec_tick(dev, s) <= now]
    for spec in due:
        dev.scheduled_faults.remove(spec)
        inject(dev, spec.kind, spec.channel, spec.value)


def spec_tick(dev: Device, spec: FaultSpec) -> int:
    """The device tick at which a scheduled fault applies (T_MS after the first START)."""
    assert dev.first_start_tick is not None and spec.at_ms is not None
    return dev.first_start_tick + spec.at_ms * dev.ticks_per_ms
