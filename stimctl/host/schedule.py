"""Profile -> numpy block schedule: ramps, dense-disperse switching, intermittent windows.

Times are integer milliseconds from session start. Phase, switch and window edges are the
prescribed times rounded to the millisecond (from the phase start, so no drift accumulates), and
no block straddles one: blocks are ``block_ms`` long except shorter ones cut at those edges.

Envelope (0..1) of a phase: linear 0 -> 1 over ramp_up_s from the phase start, plateau, linear
1 -> 0 over ramp_down_s ending at the phase end. An intermittent phase's on-windows have edges of
their own on top (the lower of the two envelopes applies): 0 -> 1 over the window ramp from the
window start, 1 -> 0 over it ending at the window end (a window cut short by the phase end ramps
down to the phase end); the window ramp is ``window_ramp_s`` or, by default, the strongest
plateau / ramp-rate-max (``Profile.window_ramp_s``). A block takes the envelope at its start for
a ramp-up and at its end for a ramp-down, i.e. the lowest value within the block, so the first
block of a ramp-up and the last block of a ramp-down are exactly 0 and no block exceeds the
continuous envelope. Amplitudes are rounded down to the device's amplitude step. Off-windows
have frequency 0 and amplitude 0 (the pulse width stays at the phase value, within limits).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from stimctl.rules.envelope import SafetyEnvelope
from stimctl.rules.profile import Phase, Profile

__all__ = ["ACCUMULATOR_WRAP", "BlockRow", "Schedule", "compile_schedule"]

#: Device pulse accumulator (docs/PROTOCOL.md, "Output and timing"): + frequency_dhz x tick_us
#: per tick, one pulse per 10,000,000.
ACCUMULATOR_WRAP = 10_000_000
TICK_US = 1000
_UINT16_MAX = 0xFFFF


class BlockRow(NamedTuple):
    """One block in plain ints, ready for a BLOCK message (amplitudes in channel_ids order)."""

    index: int
    duration_ms: int
    amplitude_ua: tuple[int, ...]
    frequency_dhz: int
    pulse_width_us: int
    phase_index: int
    last: bool


@dataclass(frozen=True, slots=True)
class Schedule:
    """A compiled session: one row per block, one amplitude column per channel."""

    block_ms: int
    channel_ids: tuple[int, ...]
    duration_ms: np.ndarray
    amplitude_ua: np.ndarray
    frequency_dhz: np.ndarray
    pulse_width_us: np.ndarray
    phase_index: np.ndarray
    start_ms: np.ndarray
    amplitude_step_ua: int = 10

    @property
    def n_blocks(self) -> int:
        """Number of blocks."""
        return int(self.duration_ms.shape[0])

    @property
    def total_ms(self) -> int:
        """Session length in milliseconds."""
        return int(self.duration_ms.sum(dtype=np.int64))

    @property
    def end_ms(self) -> np.ndarray:
        """(n,) int64 block end times from session start."""
        return self.start_ms + self.duration_ms

    def expected_pulses(self) -> np.ndarray:
        """(c,) int64 pulses the device delivers per channel, exactly as its accumulator counts
        them: every accumulator wrap in a block whose amplitude on that channel is above zero
        (docs/PROTOCOL.md: a pulse of 0 uA is not delivered, so the zero-amplitude first block of
        a ramp-up and last block of a ramp-down deliver none)."""
        step = self.frequency_dhz.astype(np.int64) * self.duration_ms.astype(np.int64) * TICK_US
        wraps = np.cumsum(step) // ACCUMULATOR_WRAP
        fired = np.diff(wraps, prepend=0)  # pulses emitted during each block
        live = self.amplitude_ua > 0
        return (fired[:, None] * live).sum(axis=0).astype(np.int64)

    def phase_at(self, t_ms: int) -> int:
        """Index of the phase running at ``t_ms`` (the last phase at or after the end)."""
        if self.n_blocks == 0:
            raise ValueError("empty schedule")
        i = int(np.searchsorted(self.start_ms, t_ms, side="right")) - 1
        return int(self.phase_index[min(max(i, 0), self.n_blocks - 1)])

    def block_at(self, t_ms: int) -> int:
        """Index of the block running at ``t_ms`` (clamped to the first/last block)."""
        i = int(np.searchsorted(self.start_ms, t_ms, side="right")) - 1
        return min(max(i, 0), self.n_blocks - 1)

    def column(self, channel_id: int) -> int:
        """Column of ``channel_id`` in ``amplitude_ua``; KeyError if not in the schedule."""
        try:
            return self.channel_ids.index(channel_id)
        except ValueError:
            raise KeyError(f"channel {channel_id} is not in the schedule") from None

    def scaled(self, channel_id: int, gain: float) -> Schedule:
        """A copy with one channel's amplitudes x gain, rounded down to the step (gain >= 0)."""
        if not (math.isfinite(gain) and gain >= 0):
            raise ValueError(f"gain must be finite and >= 0, got {gain}")
        col = self.column(channel_id)
        amplitude = self.amplitude_ua.copy()
        amplitude[:, col] = _quantise(
            amplitude[:, col].astype(np.float64) * gain, self.amplitude_step_ua
        )
        amplitude.setflags(write=False)
        return Schedule(
            self.block_ms,
            self.channel_ids,
            self.duration_ms,
            amplitude,
            self.frequency_dhz,
            self.pulse_width_us,
            self.phase_index,
            self.start_ms,
            self.amplitude_step_ua,
        )

    def rows(self, i0: int = 0, i1: int | None = None) -> Iterator[BlockRow]:
        """Blocks i0..i1-1 as BlockRow (``last`` set on the final block of the schedule)."""
        i1 = self.n_blocks if i1 is None else min(i1, self.n_blocks)
        last = self.n_blocks - 1
        dur = self.duration_ms[i0:i1].tolist()
        amp = self.amplitude_ua[i0:i1].tolist()
        freq = self.frequency_dhz[i0:i1].tolist()
        pw = self.pulse_width_us[i0:i1].tolist()
        phase = self.phase_index[i0:i1].tolist()
        for k in range(len(dur)):
            i = i0 + k
            yield BlockRow(i, dur[k], tuple(amp[k]), freq[k], pw[k], phase[k], i == last)


def _quantise(ua: np.ndarray, step: int) -> np.ndarray:
    """Round microamperes down to ``step`` (float noise below 1e-6 uA ignored) as uint16."""
    steps = np.floor(np.round(ua, 6) / step)
    out = steps * step
    if out.size and out.max() > _UINT16_MAX:
        raise ValueError(f"amplitude {out.max():.0f} uA does not fit the protocol (max 65535)")
    return out.astype(np.uint16)


def _to_uint16(value: float, what: str, scale: float) -> int:
    """A positive prescription value in device units: rounded, at least 1, at most 65535."""
    units = max(1, round(value * scale))
    if units > _UINT16_MAX:
        limit = _UINT16_MAX / scale
        raise ValueError(f"{what} {value:g} does not fit the protocol (max {limit:g})")
    return units


@dataclass(frozen=True, slots=True)
class _Segments:
    """Cut points of one phase, relative to its start: [start, end) with settings and envelope."""

    start: np.ndarray
    end: np.ndarray
    variant: np.ndarray
    on: np.ndarray
    window_start: np.ndarray
    window_end: np.ndarray


def _edges(period_s: float, offset_s: float, duration_s: float, length_ms: int) -> np.ndarray:
    """Millisecond times offset + k x period, rounded from the phase start, clipped to length.

    The last one is past the phase end by construction and is pinned to ``length_ms``, so the
    segments always cover the phase exactly.
    """
    count = math.ceil(duration_s / period_s) + 1
    times = np.minimum(np.rint((np.arange(count) * period_s + offset_s) * 1000.0), length_ms)
    times[-1] = length_ms
    return times


def _segments(phase: Phase, length_ms: int) -> _Segments:
    """Split a phase at its switch or on/off edges."""
    for name in ("switch_s", "on_s", "off_s"):
        value = getattr(phase, name)
        if value is not None and value < 0.001:
            raise ValueError(f"{name} {value:g} s is shorter than the 1 ms device tick")
    if phase.mode == "dense_disperse":
        assert phase.switch_s is not None
        cuts = _edges(phase.switch_s, 0.0, phase.duration_s, length_ms)
        start, end = cuts[:-1], cuts[1:]
        variant = np.arange(start.size) % 2
        on = np.ones(start.size, dtype=bool)
        ws, we = np.zeros_like(start), np.full_like(start, length_ms)
    elif phase.mode == "intermittent":
        assert phase.on_s is not None and phase.off_s is not None
        period = phase.on_s + phase.off_s
        on_start = _edges(period, 0.0, phase.duration_s, length_ms)
        on_end = _edges(period, phase.on_s, phase.duration_s, length_ms)
        start = np.column_stack([on_start, on_end]).ravel()[:-1]
        end = np.column_stack([on_end, np.append(on_start[1:], length_ms)]).ravel()[:-1]
        on = np.arange(start.size) % 2 == 0
        variant = np.zeros(start.size, dtype=np.int64)
        ws = np.repeat(on_start, 2)[: start.size]
        we = np.repeat(on_end, 2)[: start.size]
    else:
        start, end = np.zeros(1), np.full(1, float(length_ms))
        variant = np.zeros(1, dtype=np.int64)
        on = np.ones(1, dtype=bool)
        ws, we = start.copy(), end.copy()
    keep = end > start
    return _Segments(
        start[keep].astype(np.int64),
        end[keep].astype(np.int64),
        variant[keep],
        on[keep],
        ws[keep],
        we[keep],
    )


def _rise(elapsed_ms: np.ndarray, ramp_s: float | None) -> np.ndarray | float:
    """Envelope of an edge ``elapsed_ms`` into a ramp of ``ramp_s`` (1.0: no ramp)."""
    return elapsed_ms / (ramp_s * 1000.0) if ramp_s else 1.0


def _phase_blocks(
    phase: Phase, length_ms: int, block_ms: int, window_ramp_s: float | None
) -> dict[str, np.ndarray]:
    """Blocks of one phase (times relative to its start) and their envelope."""
    seg = _segments(phase, length_ms)
    per_seg = -(-(seg.end - seg.start) // block_ms)
    which = np.repeat(np.arange(per_seg.size), per_seg)
    first = np.repeat(np.cumsum(per_seg) - per_seg, per_seg)
    start = seg.start[which] + (np.arange(which.size) - first) * block_ms
    end = np.minimum(start + block_ms, seg.end[which])
    phase_env = np.minimum(_rise(start, phase.ramp_up_s), _rise(length_ms - end, phase.ramp_down_s))
    window_env = np.minimum(
        _rise(start - seg.window_start[which], window_ramp_s),
        _rise(seg.window_end[which] - end, window_ramp_s),
    )
    envelope = np.clip(np.minimum(phase_env, window_env), 0.0, 1.0) * seg.on[which]
    variants = phase.variants
    f_dhz = np.array([_to_uint16(f, "frequency_hz", 10.0) for f, _ in variants])
    pw_us = np.array([_to_uint16(pw, "pulse_width_us", 1.0) for _, pw in variants])
    v = seg.variant[which]
    return {
        "start": start,
        "duration": end - start,
        "envelope": np.broadcast_to(envelope, start.shape),
        "frequency": np.where(seg.on[which], f_dhz[v], 0),
        "pulse_width": pw_us[v],
    }


def compile_schedule(
    profile: Profile,
    *,
    block_ms: int = 20,
    amplitude_step_ua: int = 10,
    max_ramp_rate_ma_per_s: float | None = None,
) -> Schedule:
    """Compile a profile into blocks of at most ``block_ms`` (see the module docstring).
    ``max_ramp_rate_ma_per_s`` (default: the default envelope's) sets the default window ramp."""
    rate = max_ramp_rate_ma_per_s or SafetyEnvelope().max_ramp_rate_ma_per_s
    if not 1 <= block_ms <= _UINT16_MAX:
        raise ValueError(f"block_ms must be 1..65535, got {block_ms}")
    if amplitude_step_ua < 1:
        raise ValueError(f"amplitude_step_ua must be >= 1, got {amplitude_step_ua}")
    bounds = [0]
    running = 0.0
    for phase in profile.phases:
        running = math.fsum((running, phase.duration_s))
        bounds.append(round(running * 1000.0))
    parts: list[dict[str, np.ndarray]] = []
    phase_ids: list[np.ndarray] = []
    for k, phase in enumerate(profile.phases):
        length = bounds[k + 1] - bounds[k]
        if length <= 0:
            continue
        part = _phase_blocks(phase, length, block_ms, profile.window_ramp_s(k, rate))
        part["start"] = part["start"] + bounds[k]
        parts.append(part)
        phase_ids.append(np.full(part["start"].size, k, dtype=np.int16))

    def joined(key: str) -> np.ndarray:
        return np.concatenate([p[key] for p in parts]) if parts else np.zeros(0)

    plateau_ua = np.array([c.amplitude_ma * 1000.0 for c in profile.channels])
    envelope = joined("envelope").astype(np.float64)
    arrays = {
        "duration_ms": joined("duration").astype(np.uint16),
        "amplitude_ua": _quantise(envelope[:, None] * plateau_ua[None, :], amplitude_step_ua),
        "frequency_dhz": joined("frequency").astype(np.uint16),
        "pulse_width_us": joined("pulse_width").astype(np.uint16),
        "phase_index": np.concatenate(phase_ids) if phase_ids else np.zeros(0, np.int16),
        "start_ms": joined("start").astype(np.int64),
    }
    for array in arrays.values():
        array.setflags(write=False)
    return Schedule(
        block_ms=block_ms,
        channel_ids=tuple(c.id for c in profile.channels),
        amplitude_step_ua=amplitude_step_ua,
        **arrays,
    )
