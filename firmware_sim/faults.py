"""Fault injection: the registry of fault kinds, fault specs (KIND[:CH][@T_MS]) and the faulty link.

``FAULT_KINDS`` is the one registry: it drives injection (``inject``), the spec parser
(``--fault``, URL ``fault=``, repeatable, no commas), the control socket's ``inject`` commands
and the help texts; docs/PROTOCOL.md's tables are checked against it. A spec is::

    KIND[:CH][@T_MS]

CH is 1-based (default 1). T_MS is device time in ms after the first START; without it the fault
applies at once (at power-up).
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Protocol

from firmware_sim.fifo import BlockFifo
from firmware_sim.output import OPEN_CIRCUIT_OHM, OutputStage
from firmware_sim.trace import TraceWriter
from stimctl.protocol import BLOCK_FLAG_LAST

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
        if not (self.drop or self.flip) or not data:  # not corrupting (inlined: every frame)
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


class _Electrodes(Protocol):
    @property
    def channels(self) -> int: ...

    def impedance(self, channel: int) -> float: ...


class FaultTarget(Protocol):
    """What injection needs of a device (``firmware_sim.device.Device`` is one); a protocol, so
    this module does not import device.py."""

    output_stage: OutputStage
    fifo: BlockFifo
    trace: TraceWriter
    scheduled_faults: list[FaultSpec]
    first_start_tick: int | None
    ticks_per_ms: int

    @property
    def config(self) -> _Electrodes: ...

    def brown_out(self) -> None: ...


@dataclass(frozen=True, slots=True)
class FaultKind:
    """One kind of fault: its name (and alias), the control socket's arguments after it, whether
    a spec may name it, its effect (help text and docs) and the function that injects it."""

    name: str
    alias: str | None
    args: str  # control socket: "" (device-wide), "<ch>", "<ohm> <ch>", "<ohm_per_s> <ch>"
    in_spec: bool  # usable in a fault spec (--fault, URL fault=)
    effect: str
    apply: Callable[[FaultTarget, int, float | None], None]

    @property
    def per_channel(self) -> bool:
        return self.args.endswith("<ch>")

    @property
    def takes_value(self) -> bool:
        return self.args.count("<") == 2


def _set_impedance(dev: FaultTarget, channel: int, ohm: float) -> None:
    ch = dev.output_stage.channels[channel - 1]
    ch.impedance_ohm, ch.drift_ohm_per_s = ohm, 0.0


def _impedance(dev: FaultTarget, channel: int, value: float | None) -> None:
    if value is None or value < 0:
        raise ValueError("impedance needs a value in ohm >= 0")
    _set_impedance(dev, channel, float(value))


def _drift(dev: FaultTarget, channel: int, value: float | None) -> None:
    rate = DEFAULT_DRIFT_OHM_PER_S if value is None else float(value)
    dev.output_stage.channels[channel - 1].drift_ohm_per_s = rate


def _overcurrent(dev: FaultTarget, channel: int, value: float | None) -> None:
    dev.output_stage.channels[channel - 1].overcurrent = True


def _clear(dev: FaultTarget, channel: int, value: float | None) -> None:
    """The electrode is healthy again (initial impedance, no drift, no overcurrent)."""
    _set_impedance(dev, channel, dev.config.impedance(channel))
    dev.output_stage.channels[channel - 1].overcurrent = False


_KINDS = (
    FaultKind("electrode_open", "open", "<ch>", True, "impedance 10 MΩ: ELECTRODE_OPEN as soon"
              " as the channel delivers; impedance check OPEN",
              lambda dev, ch, _: _set_impedance(dev, ch, OPEN_CIRCUIT_OHM)),
    FaultKind("electrode_short", "short", "<ch>", True, "impedance 10 Ω: ELECTRODE_SHORT / SHORT",
              lambda dev, ch, _: _set_impedance(dev, ch, SHORT_OHM)),
    FaultKind("drift", None, "<ohm_per_s> <ch>", True, "impedance rises 5 kΩ/s (then COMPLIANCE"
              " or ELECTRODE_OPEN); the control socket gives the rate", _drift),
    FaultKind("overcurrent", None, "<ch>", True, "measured current = delivered + max(500 µA,"
              " 50 %): OVERCURRENT", _overcurrent),
    FaultKind("reset", None, "", True, "the device reboots into FAULT(DEVICE_RESET)",
              lambda dev, _ch, _v: dev.brown_out()),
    FaultKind("underrun", None, "", True, "the FIFO is dropped and the playing block ends at the"
              " next tick: FAULT(UNDERRUN)", lambda dev, _ch, _v: drop_fifo(dev)),
    FaultKind("impedance", None, "<ohm> <ch>", False, "set the channel's impedance (also heals"
              " open/short)", _impedance),
    FaultKind("clear", None, "<ch>", False, "undo the channel's injections: initial impedance,"
              " no drift, no overcurrent", _clear),
)  # fmt: skip
#: name -> FaultKind: every fault the simulator can inject, once.
FAULT_KINDS: dict[str, FaultKind] = {kind.name: kind for kind in _KINDS}
#: alias -> name (``open`` -> ``electrode_open``)
ALIASES: dict[str, str] = {k.alias: k.name for k in _KINDS if k.alias is not None}
#: the kinds a fault spec may name
KINDS: tuple[str, ...] = tuple(k.name for k in _KINDS if k.in_spec)


def fault_kind(name: str) -> FaultKind:
    """The registered kind called ``name`` (or its alias); ValueError when unknown."""
    kind = FAULT_KINDS.get(ALIASES.get(name, name))
    if kind is None:
        raise ValueError(f"unknown fault kind {name!r} (one of {', '.join(FAULT_KINDS)})")
    return kind


def inject(dev: FaultTarget, kind: str, channel: int = 1, value: float | None = None) -> None:
    """Inject a fault into ``dev`` now (see ``Device.inject``); ValueError when unknown."""
    found = fault_kind(kind)
    if not found.per_channel:
        found.apply(dev, 0, value)
        return
    if not 1 <= channel <= dev.config.channels:
        raise ValueError(f"channel {channel} outside 1..{dev.config.channels}")
    found.apply(dev, channel, value)
    dev.output_stage.invalidate()
    dev.trace.write("inject", kind=kind, channel=channel, value=value)


def drop_fifo(dev: FaultTarget) -> None:
    """Injected underrun: the FIFO is lost and the playing block ends at the next tick."""
    fifo = dev.fifo
    fifo.queue.clear()
    fifo.queued_ms = 0
    if fifo.current is not None:
        fifo.elapsed = max(0, fifo.duration_ticks(fifo.current) - 1)
        current = fifo.current
        fifo.current = replace(current, flags=current.flags & ~BLOCK_FLAG_LAST)
    dev.trace.write("inject", kind="underrun", channel=0, value=None)


def run_scheduled(dev: FaultTarget, now: int) -> None:
    """Inject the scheduled faults (``@T_MS`` specs) that are due at tick ``now``."""
    due = [s for s in dev.scheduled_faults if spec_tick(dev, s) <= now]
    for spec in due:
        dev.scheduled_faults.remove(spec)
        inject(dev, spec.kind, spec.channel, spec.value)


def spec_tick(dev: FaultTarget, spec: FaultSpec) -> int:
    """The device tick at which a scheduled fault applies (T_MS after the first START)."""
    assert dev.first_start_tick is not None and spec.at_ms is not None
    return dev.first_start_tick + spec.at_ms * dev.ticks_per_ms
