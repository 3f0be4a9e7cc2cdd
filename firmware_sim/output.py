"""Output stage: slew-limited amplitude, accumulator pulse timing, charge, electrodes, rendering."""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from math import trunc

import numpy as np

from firmware_sim.limits import HardwareLimits
from stimctl.protocol import (
    ACC_WRAP,
    ASYMMETRIC_RECOVERY_RATIO,
    IMPEDANCE_OPEN,
    ChannelTelemetry,
    Fault,
    Shape,
)

OPEN_CIRCUIT_OHM = 10_000_000  # what an injected open electrode looks like
# The fields TELEMETRY's figures of a channel (all but pulses) are made of: ChannelOutput.figures
_REPORTED = frozenset({"target_ua", "delivered_ua", "overcurrent", "impedance_ohm"})
# A TELEMETRY record's fields but its last, pulses: the figures, packed once while they hold (a
# value packed costs ~150 instructions; the report packs the bytes in one "s" field instead)
assert ChannelTelemetry.FIELDS[-1][0] == "pulses"
FIGURES = struct.Struct("<" + "".join(code for _, code in ChannelTelemetry.FIELDS[:-1]))
_SET = object.__setattr__  # a slot's setter; bound once (ChannelOutput.__setattr__ runs per write)


@dataclass(slots=True)
class ChannelOutput:
    """Live state of one output channel. Charges are integers in uA x us (= pC)."""

    impedance_ohm: float = 1500.0
    drift_ohm_per_s: float = 0.0
    overcurrent: bool = False  # injected: measured current exceeds the set current
    target_ua: int = 0
    delivered_ua: int = 0
    increment: int = 0  # frequency_dhz x tick_us, added to acc per tick
    pulse_width_us: int = 0
    slew_credit_na: int = 0  # rise earned by the slew ceiling, not yet a whole DAC step
    acc: int = 0
    pulses: int = 0
    charge_pc: int = 0  # sum of |phase-1 charge|
    net_charge_pc: int = 0  # phase 1 + phase 2
    # TELEMETRY's (set, measured, impedance) of this channel, capped to their fields and packed
    # (FIGURES), or None: 50 reports a second read them, the fields they are made of change
    # seldom. __setattr__ clears them whenever one of those fields is set, whoever sets it, so
    # they cannot go stale.
    _figures: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __setattr__(self, name: str, value: object) -> None:
        _SET(self, name, value)
        if name in _REPORTED:
            _SET(self, "_figures", None)

    @property
    def measured_ua(self) -> int:
        if self.overcurrent and self.delivered_ua:
            return self.delivered_ua + max(500, self.delivered_ua // 2)
        return self.delivered_ua

    @property
    def figures(self) -> bytes:
        """TELEMETRY's set, measured and impedance figures, capped to their fields, packed."""
        figures = self._figures
        if figures is None:
            measured, ohm = self.measured_ua, self.impedance_ohm  # ohm >= 0: trunc() is int()
            figures = FIGURES.pack(
                self.target_ua, measured if measured < 0xFFFF else 0xFFFF,
                trunc(ohm) if ohm < IMPEDANCE_OPEN else IMPEDANCE_OPEN,
            )  # fmt: skip
            _SET(self, "_figures", figures)
        return figures


@dataclass(frozen=True, slots=True)
class ChannelStats:
    """Counters of one channel since ARM."""

    pulses: int
    charge_uc: float  # sum of |phase-1 charge|
    net_charge_uc: float


@dataclass(slots=True)
class Segment:
    """A run of ticks with constant amplitude and timing, from which its pulses are recomputed.
    The stage lengthens the newest run in place while the next ticks continue it unchanged."""

    tick0: int  # the run covers ticks tick0+1 .. tick0+ticks
    acc0: int
    increment: int
    ticks: int
    amplitude_ua: int
    pulse_width_us: int
    shape: int

    def pulse_ticks(self) -> np.ndarray:
        """Ticks at which this run emitted its pulses."""
        n = (self.acc0 + self.increment * self.ticks) // ACC_WRAP
        m = np.arange(1, n + 1, dtype=np.int64)
        return self.tick0 + (m * ACC_WRAP - self.acc0 + self.increment - 1) // self.increment


@dataclass(slots=True)
class OutputStage:
    """All output channels: the device sets targets; the stage slews, pulses and checks."""

    limits: HardwareLimits
    tick_us: int
    impedances: list[float]
    log_ms: int = 10_000
    # (channel 1-based, delivered uA): a change of the delivered amplitude, or of the pulse width
    # while delivering
    on_change: Callable[[int, int], None] | None = None
    shape: int = Shape.BIPHASIC_SYMMETRIC
    _chans: list[ChannelOutput] = field(init=False)
    log: list[deque[Segment]] = field(init=False)
    settled: bool = True  # every channel delivers its target (no slewing to do)
    checked: bool = False  # the electrode check passed and nothing changed since
    drifting: bool = False  # some channel's impedance is drifting (kept by invalidate())
    # ticks run0+1 .. run0+run played at the present settings, their pulses not yet counted
    _run0: int = 0
    _run: int = 0

    @property
    def channels(self) -> list[ChannelOutput]:
        """The channels, their pulse and charge counters up to date."""
        if self._run:
            self.count_pulses()
        return self._chans

    @property
    def outputs(self) -> list[ChannelOutput]:
        """The channels as they are: targets, outputs, electrodes (pulse and charge counters
        may lag behind: ``channels`` brings them up to date)."""
        return self._chans

    def __post_init__(self) -> None:
        self._chans = [ChannelOutput(impedance_ohm=z) for z in self.impedances]
        self.log = [deque() for _ in self._chans]

    # --- configuration by the device ---------------------------------------------------------

    def configure(
        self, index: int, target_ua: int, frequency_dhz: int, pulse_width_us: int
    ) -> None:
        ch = self._chans[index]
        ch.target_ua = self.limits.clamp(target_ua)
        if ch.target_ua != ch.delivered_ua:
            self.settled = False
        increment = frequency_dhz * self.tick_us
        if self._run and (increment != ch.increment or pulse_width_us != ch.pulse_width_us):
            self.count_pulses()
        ch.increment = increment
        if pulse_width_us != ch.pulse_width_us:
            ch.pulse_width_us = pulse_width_us
            if ch.delivered_ua and self.on_change is not None:
                self.on_change(index + 1, ch.delivered_ua)  # the charge per phase changed

    def reset_session(self, shape: int) -> None:
        """At ARM: counters, accumulators and targets to zero."""
        self._run = 0  # not counted: the counters restart
        self.shape = shape
        for ch in self._chans:
            ch.pulses = ch.charge_pc = ch.net_charge_pc = ch.acc = 0
            ch.target_ua = ch.increment = ch.pulse_width_us = 0
        for log in self.log:
            log.clear()

    def zero_all(self) -> None:
        """Output to zero at once, without slewing (fault, e-stop, pause)."""
        for i, ch in enumerate(self._chans):
            ch.target_ua = ch.slew_credit_na = 0
            self._deliver(i, ch, 0)
        self.settled = True

    def zero_accumulators(self) -> None:
        self.count_pulses()
        for ch in self._chans:
            ch.acc = 0

    @property
    def at_target(self) -> bool:
        return self.settled

    def invalidate(self) -> None:
        """The electrode model changed (injection): check again at the next tick."""
        self.checked = False
        self.drifting = any(ch.drift_ohm_per_s for ch in self._chans)

    @property
    def any_output(self) -> bool:
        return any(ch.delivered_ua for ch in self._chans)

    # --- time ----------------------------------------------------------------------------------

    def drift(self, ticks: int) -> None:
        self.checked = False
        for ch in self._chans:
            if ch.drift_ohm_per_s:
                ch.impedance_ohm = max(
                    0.0, ch.impedance_ohm + ch.drift_ohm_per_s * ticks * self.tick_us / 1e6
                )

    def slew(self) -> None:
        """One tick of slewing: down at once; up by the slew ceiling (max_slew_ua_per_ms), in
        whole DAC steps. Each tick earns max_slew_ua_per_ms x tick_us nA of rise; a step is taken
        once a whole one is earned, so over any n ticks the rise is at most n x the ceiling
        plus one DAC step, and credit never builds up while the output is at its target."""
        if self.settled:
            return
        earned_na = self.limits.max_slew_ua_per_ms * self.tick_us
        dac_step = self.limits.amplitude_step_ua
        settled = True
        for i, ch in enumerate(self._chans):
            target = self.limits.clamp(ch.target_ua)
            if ch.delivered_ua < target:
                ch.slew_credit_na += earned_na
                rise = ch.slew_credit_na // 1000
                rise -= rise % dac_step
                if rise:
                    new = min(target, ch.delivered_ua + rise)
                    ch.slew_credit_na -= (new - ch.delivered_ua) * 1000
                    self._deliver(i, ch, new)
            elif ch.delivered_ua > target:
                self._deliver(i, ch, target)
            if ch.delivered_ua == target:
                ch.slew_credit_na = 0
            else:
                settled = False
        self.settled = settled

    def earn_slew_credit(self, ticks: int) -> None:
        """``ticks`` ticks of slewing in which no channel takes a step (the fast path's quiet
        ticks, see fastpath.next_slew_step): each rising channel only earns its credit."""
        earned_na = self.limits.max_slew_ua_per_ms * self.tick_us * ticks
        for ch in self._chans:
            if ch.delivered_ua < self.limits.clamp(ch.target_ua):
                ch.slew_credit_na += earned_na

    def check_electrodes(self) -> tuple[Fault, int, int] | None:
        """(fault, channel 1-based, detail) for the first channel whose electrode misbehaves."""
        if self.checked:
            return None
        lim = self.limits
        for i, ch in enumerate(self._chans):
            if not ch.delivered_ua:
                continue
            z = ch.impedance_ohm
            if z >= lim.open_ohm:
                return Fault.ELECTRODE_OPEN, i + 1, min(int(z), 0xFFFFFFFF)
            if z < lim.short_ohm:
                return Fault.ELECTRODE_SHORT, i + 1, int(z)
            if ch.delivered_ua * z > lim.compliance_mv * 1000:
                return Fault.COMPLIANCE, i + 1, int(ch.delivered_ua * z / 1000)
            tol = max(
                lim.overcurrent_tolerance_ua,
                ch.delivered_ua * lim.overcurrent_tolerance_permille // 1000,
            )
            if ch.measured_ua > ch.delivered_ua + tol:
                return Fault.OVERCURRENT, i + 1, ch.measured_ua
        self.checked = True
        return None

    def pulse(self, tick0: int, ticks: int) -> None:
        """Play ``ticks`` ticks (ticks tick0+1..tick0+ticks) at the present settings. Counted
        lazily: a run of such ticks is counted in one step when a setting changes (configure,
        a slew step, zero) or a counter is read (``channels``, ``count_pulses``), with the same
        result as counting tick by tick. Its common case (the run goes on: ``_run += ticks``) is
        inlined where ticks play (Device.tick, fastpath.run_quiet): keep them alike."""
        if self._run:
            if self._run0 + self._run == tick0:
                self._run += ticks
                return
            self.count_pulses()
        self._run0, self._run = tick0, ticks

    def telemetry_records(self, values: list[int | bytes]) -> None:
        """Append each channel's TELEMETRY record to ``values`` as its packed figures (target,
        measured, impedance: FIGURES) and its pulses, capped to their fields (50 of these a
        second). Pulses up to the last tick played, the uncounted run included without counting
        it (its charge and log wait)."""
        run = self._run
        for ch in self._chans:
            figures = ch._figures  # ch.figures without the property call while it is kept
            values.append(figures if figures is not None else ch.figures)
            pulses = ch.pulses
            if run and ch.delivered_ua:
                pulses += (ch.acc + ch.increment * run) // ACC_WRAP
            # the u32 mask only once the count passes it: a two-digit int operation and a new
            # object per record otherwise
            values.append(pulses if pulses <= 0xFFFFFFFF else pulses & 0xFFFFFFFF)

    def count_pulses(self) -> None:
        """Count the pulses and charge of the ticks played but not counted yet."""
        if self._run:
            tick0, ticks, self._run = self._run0, self._run, 0
            self._count(tick0, ticks)

    def _count(self, tick0: int, ticks: int) -> None:
        """Advance every accumulator by ``ticks`` ticks (ticks tick0+1..tick0+ticks) at constant
        amplitude: exact integer pulse count, charge added per pulse, one log segment (the last
        one lengthened when these ticks continue it with the same settings)."""
        asymmetric = self.shape == Shape.BIPHASIC_ASYMMETRIC
        for i, ch in enumerate(self._chans):
            increment = ch.increment
            if not increment:
                continue
            acc0 = ch.acc
            n, ch.acc = divmod(acc0 + increment * ticks, ACC_WRAP)
            ua = ch.delivered_ua
            if not n or not ua:
                continue
            pw = ch.pulse_width_us
            q1 = ua * pw
            if asymmetric:
                ratio = ASYMMETRIC_RECOVERY_RATIO
                q2 = -(ua * ratio * pw) // ratio
            else:
                q2 = -q1
            ch.pulses += n
            ch.charge_pc += n * q1
            ch.net_charge_pc += n * (q1 + q2)
            log = self.log[i]
            last = log[-1] if log else None
            if (
                last is not None
                and last.tick0 + last.ticks == tick0
                and last.increment == increment
                and (last.acc0 + increment * last.ticks) % ACC_WRAP == acc0
                and last.amplitude_ua == ua
                and last.pulse_width_us == pw
                and last.shape == self.shape
            ):
                last.ticks += ticks  # same run: acc0 follows from the run's own accumulator
            else:
                log.append(Segment(tick0, acc0, increment, ticks, ua, pw, self.shape))
            horizon = tick0 + ticks - self.log_ms * 1000 // self.tick_us
            while log[0].tick0 + log[0].ticks < horizon:
                log.popleft()

    def _deliver(self, index: int, ch: ChannelOutput, ua: int) -> None:
        if ua != ch.delivered_ua:
            if self._run:
                self.count_pulses()
            ch.delivered_ua = ua
            self.checked = False
            if self.on_change is not None:
                self.on_change(index + 1, ua)

    # --- views ---------------------------------------------------------------------------------

    def stats(self, channel: int) -> ChannelStats:
        ch = self.channels[channel - 1]
        return ChannelStats(ch.pulses, ch.charge_pc / 1e6, ch.net_charge_pc / 1e6)

    def counters(self) -> list[dict[str, float | int]]:
        return [
            {"channel": i + 1, "pulses": ch.pulses, "charge_uc": ch.charge_pc / 1e6,
             "net_charge_uc": ch.net_charge_pc / 1e6}
            for i, ch in enumerate(self.channels)
        ]  # fmt: skip

    def render(
        self, channel: int, t0_ms: float, t1_ms: float, rate_hz: int = 100_000
    ) -> np.ndarray:
        """Instantaneous current (uA) of one channel over [t0_ms, t1_ms) of device time, sampled at
        rate_hz, from the pulse log (the last log_ms of pulses)."""
        n = max(0, round((t1_ms - t0_ms) * rate_hz / 1000))
        out = np.zeros(n, dtype=np.float64)
        t0_us, dt_us = t0_ms * 1000.0, 1e6 / rate_hz
        self.count_pulses()
        for seg in self.log[channel - 1]:
            ticks = seg.pulse_ticks()
            onsets = ticks * self.tick_us
            w = seg.pulse_width_us
            if seg.shape == Shape.BIPHASIC_ASYMMETRIC:
                phases = (
                    (0, w, 1.0),
                    (w, w * (1 + ASYMMETRIC_RECOVERY_RATIO), -1.0 / ASYMMETRIC_RECOVERY_RATIO),
                )
            else:
                phases = ((0, w, 1.0), (w, 2 * w, -1.0))
            for onset in onsets:
                for a, b, sign in phases:
                    i0 = max(0, int(np.ceil((onset + a - t0_us) / dt_us)))
                    i1 = min(n, int(np.ceil((onset + b - t0_us) / dt_us)))
                    if i0 < i1:
                        out[i0:i1] = sign * seg.amplitude_ua
        return out
