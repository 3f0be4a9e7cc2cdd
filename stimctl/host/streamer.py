"""Block streaming: keep the device FIFO near a target lookahead, flag the last block, count late.

The streamer is driven from the link's reader thread: ``on_telemetry`` tops the FIFO up each
time the device reports its level, so under the virtual (lock-step) simulator the stream is
deterministic. The lookahead the host counts on is the device's reported ``fifo_ms`` plus the
blocks written but not yet acknowledged. A block is late when it is written after the host's
estimate of device time has passed the moment the device's FIFO runs dry.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from stimctl.host.schedule import Schedule
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    Block,
    ChannelSetting,
    Message,
    Nak,
    NakReason,
    Telemetry,
)
from stimctl.rules.envelope import STREAM_TARGET_MS

__all__ = ["DEFAULT_TARGET_MS", "StreamStats", "Streamer"]

#: Default lookahead the host keeps queued on the device: the rule table's stream target.
DEFAULT_TARGET_MS = STREAM_TARGET_MS

Send = Callable[[Message, Callable[[Message, Message | None], None]], None]
Guard = Callable[[Block], str | None]  # -> None if the block is within the envelope


@dataclass(slots=True)
class StreamStats:
    """Counters of the stream (read under the streamer's lock via ``Streamer.stats``)."""

    sent: int = 0
    acked: int = 0
    late: int = 0
    underruns: int = 0
    rewinds: int = 0
    naks: int = 0


class Streamer:
    """Turns a Schedule into BLOCK frames, paced by the device's FIFO level."""

    def __init__(
        self,
        schedule: Schedule,
        device_channels: int,
        send: Send,
        guard: Guard,
        *,
        target_ms: int = DEFAULT_TARGET_MS,
        max_lookahead_ms: int = 250,
        fifo_depth: int = 16,
        on_error: Callable[[str, str], None] | None = None,
        on_nak: Callable[[Block, Nak], None] | None = None,
    ) -> None:
        self.schedule = schedule
        self.device_channels = device_channels
        self._send = send
        self._guard = guard
        self._on_error = on_error or (lambda code, reason: None)  # (fault code, why)
        self._on_nak = on_nak or (lambda block, nak: None)
        self.target_ms = min(target_ms, max_lookahead_ms - 2 * schedule.block_ms)
        self.max_blocks = max(1, fifo_depth - 2)
        self.lock = threading.RLock()
        self.next_index = 0
        self._unacked: dict[int, int] = {}  # block index -> duration_ms, written, no answer yet
        self._device_fifo_ms = 0
        self._device_fifo_blocks = 0
        self._dry_at_ms: float | None = None  # device time when its FIFO runs dry
        self._running = False
        self.halted = False
        self.halt_reason = ""
        self.stats = StreamStats()
        self._empty = False
        self._columns = [
            (schedule.channel_ids.index(ch) if ch in schedule.channel_ids else None)
            for ch in range(1, device_channels + 1)
        ]

    # --- queries --------------------------------------------------------------------------
    @property
    def all_sent(self) -> bool:
        return self.next_index >= self.schedule.n_blocks

    def lookahead_ms(self) -> int:
        """What the host counts as queued: device FIFO + written, unanswered blocks."""
        with self.lock:
            return self._device_fifo_ms + sum(self._unacked.values())

    # --- driving --------------------------------------------------------------------------
    def prime(self) -> int:
        """Before START: queue blocks up to the target; returns how many were written."""
        with self.lock:
            return self._fill(device_now_ms=None)

    def started(self, device_ms: int) -> None:
        """The device entered RUNNING at ``device_ms``: lateness is measured from here."""
        with self.lock:
            self._running = True
            self._dry_at_ms = device_ms + self.lookahead_ms()

    def paused(self) -> None:
        with self.lock:
            self._running = False

    def halt(self, reason: str) -> None:
        """Stop writing blocks (operator stop, fault, guard refusal)."""
        with self.lock:
            self.halted = True
            self.halt_reason = self.halt_reason or reason

    def on_telemetry(self, tel: Telemetry, device_now_ms: float) -> int:
        """Record the device's FIFO level and top up; returns blocks written."""
        with self.lock:
            self._device_fifo_ms = tel.fifo_ms
            self._device_fifo_blocks = tel.fifo_blocks
            if self._running:
                self._dry_at_ms = tel.time_ms + self.lookahead_ms()
                empty = tel.fifo_blocks == 0 and not self.all_sent
                if empty and not self._empty:
                    self.stats.underruns += 1
                self._empty = empty
            return self._fill(device_now_ms)

    # --- internals ------------------------------------------------------------------------
    def _fill(self, device_now_ms: float | None) -> int:
        written = 0
        while not self.halted and not self.all_sent:
            if self.lookahead_ms() >= self.target_ms:
                break
            if self._device_fifo_blocks + len(self._unacked) >= self.max_blocks:
                break
            block = self.block(self.next_index)
            refusal = self._guard(block)
            if refusal is not None:
                self.halt(refusal)
                self._on_error("HOST_LIMIT", refusal)
                break
            if self._running and device_now_ms is not None and self._dry_at_ms is not None:
                if device_now_ms > self._dry_at_ms:
                    self.stats.late += 1
                self._dry_at_ms = max(self._dry_at_ms, device_now_ms) + block.duration_ms
            self._unacked[block.index] = block.duration_ms
            self.next_index += 1
            self.stats.sent += 1
            written += 1
            try:
                self._send(block, self._answered)
            except Exception as exc:  # link gone: the controller latches LINK_LOST
                self.halt(f"write failed: {exc}")
                break
        return written

    def block(self, index: int) -> Block:
        """The BLOCK frame for schedule row ``index`` (unused device channels at zero)."""
        s = self.schedule
        freq = int(s.frequency_dhz[index])
        pw = int(s.pulse_width_us[index])
        amps = s.amplitude_ua[index]
        channels = tuple(
            ChannelSetting(int(amps[col]), freq, pw)
            if col is not None
            else ChannelSetting(0, 0, pw)
            for col in self._columns
        )
        last = index == s.n_blocks - 1
        return Block(
            index=index,
            duration_ms=int(s.duration_ms[index]),
            flags=BLOCK_FLAG_LAST if last else 0,
            channels=channels,
        )

    def _answered(self, msg: Message, reply: Message | None) -> None:
        """ACK/NAK of a block (reader thread)."""
        assert isinstance(msg, Block)
        with self.lock:
            self._unacked.pop(msg.index, None)
            if reply is None:
                return
            if not isinstance(reply, Nak):
                self.stats.acked += 1
                return
            self.stats.naks += 1
            self._on_nak(msg, reply)
            if reply.reason == NakReason.FIFO_FULL:
                # rewind: this block and every later one (NAKed BLOCK_SEQUENCE) go again
                if msg.index < self.next_index:
                    self.next_index = msg.index
                    self.stats.rewinds += 1
                for index in [i for i in self._unacked if i >= msg.index]:
                    del self._unacked[index]
                return
            if reply.reason == NakReason.BLOCK_SEQUENCE and msg.index >= self.next_index:
                return  # a follower of a rewound block
            if not self.halted:
                reason = f"block {msg.index} refused: {NakReason(reply.reason).name}"
                self.halt(reason)
                self._on_error("STREAM_REFUSED", reason)
