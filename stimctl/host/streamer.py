"""Block streaming: keep the device FIFO near a target lookahead, flag the last block, count late,
and recover lost blocks (docs/PROTOCOL.md, "Link recovery").

The streamer is driven from the link's reader thread: ``on_telemetry`` tops the FIFO up each
time the device reports its level, so under the virtual (lock-step) simulator the stream is
deterministic. The lookahead the host counts on is the device's reported ``fifo_ms`` plus the
blocks written but not yet acknowledged. A block is late when it is written after the host's
estimate of device time has passed the moment the device's FIFO runs dry.

Recovery is go-back-N from the host's copy of the schedule: the device accepts blocks only in
order, so everything it has is acknowledged cumulatively (an ACK of block i, TELEMETRY
``next_block``). A NAK(BLOCK_SEQUENCE) names the index the device expects: the host writes again
from there. A block neither acknowledged nor refused RESEND_AFTER_MS of device time after it was
written is written again from the first one the device lacks. Answers to a block written before
such a rewind are stale and ignored (an ACK is always good news: the device has that block).

A block's round trip is kept cheap (issue 15): schedule rows are read as plain ints a chunk at a
time, the channel records of a settings row are built and packed once and reused for every block
with those settings, a block goes out as its packed payload (the codec's ``record_structs``, the
same bytes ``encode`` makes of the ``Block``; no message object per block) and its answer comes
back by index and seq, and the lookahead in flight is a running sum.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass

from stimctl.host.link import hand_over
from stimctl.host.linkretry import OnAnswer
from stimctl.host.schedule import BlockRow, Schedule
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    NO_BLOCK,
    Ack,
    Block,
    ChannelSetting,
    Message,
    Nak,
    NakReason,
    Telemetry,
    encode,
)
from stimctl.protocol.payload import record_structs
from stimctl.rules.envelope import STREAM_TARGET_MS

__all__ = ["DEFAULT_TARGET_MS", "RESEND_AFTER_MS", "StreamStats", "Streamer"]

#: Default lookahead the host keeps queued on the device: the rule table's stream target.
DEFAULT_TARGET_MS = STREAM_TARGET_MS
#: A block the device has neither acknowledged (ACK, TELEMETRY next_block) nor refused this long
#: (device time, measured on its telemetry clock) after it was written is taken as lost: three
#: telemetry periods, well inside the lookahead, and longer than a frame's trip at 115200 baud.
RESEND_AFTER_MS = 60
#: Schedule rows converted to plain ints at a time (blocks are asked for in order, a rewind goes
#: back a few), and distinct channel settings kept built (then forgotten at once).
_ROWS_CHUNK = 256
_SETTINGS_KEPT = 1024

#: (type code, payload, on_answer, tag = block index) -> the frame's seq (``Link.send_packed``)
Send = Callable[[int, bytes, OnAnswer, int], int]
#: (block index, its channel settings) -> None if the block is within the envelope, else why not
Guard = Callable[[int, tuple[ChannelSetting, ...]], str | None]
_BLOCK, _SETTING = record_structs(Block)
assert _SETTING is not None


@dataclass(slots=True)
class StreamStats:
    """Counters of the stream (read under the streamer's lock via ``Streamer.stats``)."""

    sent: int = 0
    acked: int = 0
    late: int = 0
    underruns: int = 0
    rewinds: int = 0
    naks: int = 0
    resent: int = 0  # blocks written again (lost, or refused FIFO_FULL): retransmissions


@dataclass(slots=True)
class _InFlight:
    """A block written and not yet known to be on the device."""

    duration_ms: int
    sent_ms: float | None  # the host's estimate of device time when written (None: no telemetry
    # yet, e.g. primed right after ARM; the timer then starts at the first telemetry)
    seq: int = -1  # the frame's seq (-1 until the link has numbered it)


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
        on_nak: Callable[[int, int, Nak], None] | None = None,
    ) -> None:
        self.schedule = schedule
        self.device_channels = device_channels
        self._send = send
        self._guard = guard
        self._on_error = on_error or (lambda code, reason: None)  # (fault code, why)
        self._on_nak = on_nak or (lambda index, seq, nak: None)
        self.target_ms = min(target_ms, max_lookahead_ms - 2 * schedule.block_ms)
        self.max_blocks = max(1, fifo_depth - 2)
        self.lock = threading.RLock()
        self.accepted_changed = threading.Condition(self.lock)
        self.next_index = 0
        self.accepted = 0  # the device has every block below this index
        self._high = 0  # one past the highest index ever written (retransmissions: below it)
        self._now_ms: float | None = None  # the host's latest estimate of device time
        self._unacked: dict[int, _InFlight] = {}  # written, not yet known to be on the device
        self._unacked_ms = 0  # sum of their durations
        self._waiters = 0  # threads in wait_accepted
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
        self._n_blocks = schedule.n_blocks
        self._rows: list[BlockRow] = []  # schedule rows _rows_from.._rows_from + len - 1
        self._rows_from = 0
        # settings row -> its channel records and their packed bytes (count byte first)
        self._settings: dict[tuple[int, ...], tuple[tuple[ChannelSetting, ...], bytes | None]] = {}

    # --- queries --------------------------------------------------------------------------
    @property
    def all_sent(self) -> bool:
        return self.next_index >= self._n_blocks

    def lookahead_ms(self) -> int:
        """What the host counts as queued: device FIFO + written, unanswered blocks."""
        with self.lock:
            return self._device_fifo_ms + self._unacked_ms

    # --- driving --------------------------------------------------------------------------
    def prime(self) -> int:
        """Before START: queue blocks up to the target; returns how many were written."""
        with self.lock:
            return self._fill(device_now_ms=None)

    def wait_accepted(self, count: int, timeout: float) -> bool:
        """Wait (caller's thread) until the device has the first ``count`` blocks (or the
        stream halted); before START, so that START never finds the FIFO empty because the
        first block was lost on the way."""
        with self.accepted_changed:
            self._waiters += 1
            try:
                return self.accepted_changed.wait_for(
                    lambda: self.accepted >= count or self.halted, timeout
                )
            finally:
                self._waiters -= 1

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
        """Record the device's FIFO level and what it has, recover lost blocks, top up;
        returns blocks written."""
        with self.lock:
            self._now_ms = device_now_ms
            self._device_fifo_ms = tel.fifo_ms
            self._device_fifo_blocks = tel.fifo_blocks
            self._accept(tel.next_block)
            if self._unacked:  # (mostly none: each block's ACK came before this frame)
                overdue = []
                for index, flight in self._unacked.items():
                    if flight.sent_ms is None:
                        flight.sent_ms = device_now_ms
                    elif tel.time_ms - flight.sent_ms >= RESEND_AFTER_MS:
                        overdue.append(index)
                if overdue:  # lost on the way (or its NAK was): again from the first it lacks
                    self._go_back(min(overdue))
            if self._running:
                self._dry_at_ms = tel.time_ms + self._device_fifo_ms + self._unacked_ms
                empty = tel.fifo_blocks == 0 and not self.all_sent
                if empty and not self._empty:
                    self.stats.underruns += 1
                self._empty = empty
            return self._fill(device_now_ms)

    # --- internals ------------------------------------------------------------------------
    def _accept(self, next_block: int) -> None:
        """The device has every block below ``next_block``."""
        if next_block <= self.accepted:
            return
        self.accepted = next_block
        for index in [i for i in self._unacked if i < next_block]:
            self._forget(index)
        if self.next_index < next_block:  # (a rewind overtaken by a late acknowledgement)
            self.next_index = next_block
        if self._waiters:  # (counted under this lock, so none can be missed)
            self.accepted_changed.notify_all()

    def _go_back(self, index: int) -> None:
        """Write again from ``index``: forget every block in flight from there."""
        for i in [i for i in self._unacked if i >= index]:
            self._forget(i)
        if index < self.next_index:
            self.next_index = index
            self.stats.rewinds += 1

    def _forget(self, index: int) -> None:
        """Block ``index`` is no longer in flight (on the device, or to be written again)."""
        self._unacked_ms -= self._unacked.pop(index).duration_ms

    def _fill(self, device_now_ms: float | None) -> int:
        written = 0
        unacked, stats, n_blocks = self._unacked, self.stats, self._n_blocks
        while not self.halted and self.next_index < n_blocks:
            if self._device_fifo_ms + self._unacked_ms >= self.target_ms:
                break
            if self._device_fifo_blocks + len(unacked) >= self.max_blocks:
                break
            index = self.next_index
            row = self._row(index)
            channels, records = self._setting(row)
            refusal = self._guard(index, channels)
            if refusal is not None:
                self.halt(refusal)
                self._on_error("HOST_LIMIT", refusal)
                break
            duration = row.duration_ms
            dry_at = self._dry_at_ms
            if self._running and device_now_ms is not None and dry_at is not None:
                if device_now_ms > dry_at:
                    stats.late += 1
                self._dry_at_ms = (dry_at if dry_at >= device_now_ms else device_now_ms) + duration
            flight = _InFlight(duration, self._now_ms)
            replaced = unacked.get(index)
            unacked[index] = flight
            self._unacked_ms += duration - (replaced.duration_ms if replaced else 0)
            self.next_index = index + 1
            if index < self._high:
                stats.resent += 1
            else:
                self._high = index + 1
                stats.sent += 1
            written += 1
            try:
                if records is None:
                    encode(self.block(index))  # raises the codec's PayloadError (which field)
                payload = _BLOCK.pack(index, duration, BLOCK_FLAG_LAST if row.last else 0)
                flight.seq = self._send(Block.TYPE, payload + records, self._answered, index)
            except Exception as exc:  # link gone: the controller latches LINK_LOST
                self.halt(f"write failed: {exc}")
                break
        return written

    def block(self, index: int) -> Block:
        """The BLOCK for schedule row ``index`` (unused device channels at zero), as a message:
        what ``_fill`` writes packed."""
        row = self._row(index)
        return Block(
            index=index,
            duration_ms=row.duration_ms,
            flags=BLOCK_FLAG_LAST if row.last else 0,
            channels=self._setting(row)[0],
        )

    def _setting(self, row: BlockRow) -> tuple[tuple[ChannelSetting, ...], bytes | None]:
        """The channel records of a row's settings (one tuple per distinct settings, as the
        guard keeps its verdicts by it) and those records packed."""
        key = (row.frequency_dhz, row.pulse_width_us, *row.amplitude_ua)
        kept = self._settings.get(key)
        if kept is None:
            freq, pw, amps = row.frequency_dhz, row.pulse_width_us, row.amplitude_ua
            channels = tuple(
                ChannelSetting(amps[col], freq, pw) if col is not None else ChannelSetting(0, 0, pw)
                for col in self._columns
            )
            try:
                records: bytes | None = bytes([len(channels)]) + b"".join(
                    _SETTING.pack(c.amplitude_ua, c.frequency_dhz, c.pulse_width_us)
                    for c in channels
                )
            except struct.error:  # not on the wire: _fill lets the codec say why
                records = None
            if len(self._settings) >= _SETTINGS_KEPT:
                self._settings.clear()
            kept = self._settings[key] = (channels, records)
        return kept

    def _row(self, index: int) -> BlockRow:
        """Schedule row ``index`` in plain ints (IndexError beyond the schedule)."""
        at = index - self._rows_from
        if not 0 <= at < len(self._rows):
            if not 0 <= index < self._n_blocks:
                raise IndexError(f"block {index} outside the schedule's {self._n_blocks}")
            self._rows_from = index - index % _ROWS_CHUNK
            self._rows = list(self.schedule.rows(self._rows_from, self._rows_from + _ROWS_CHUNK))
            at = index - self._rows_from
        return self._rows[at]

    def _answered(self, index: int, seq: int, reply: Message | None) -> None:
        """ACK/NAK of block ``index`` written as frame ``seq`` (reader thread)."""
        if isinstance(reply, Ack):  # in order only: the device has every block up to it
            with self.lock:
                self.stats.acked += 1
                self._accept(index + 1)
        else:
            self._answer(index, seq, reply)
        if self._waiters:
            hand_over()  # a START waits for this: let it run before device time runs on

    def _answer(self, index: int, seq: int, reply: Message | None) -> None:
        """No answer (link lost: None) or a NAK."""
        with self.lock:
            flight = self._unacked.get(index)
            current = flight is not None and flight.seq in (-1, seq)
            if reply is None:
                if current:
                    self._forget(index)
                return
            if not isinstance(reply, Nak):
                return
            self.stats.naks += 1
            self._on_nak(index, seq, reply)
            if reply.reason == NakReason.FIFO_FULL:
                if current:  # not taken: this block and every later one go again
                    self._go_back(index)
                return
            if reply.reason == NakReason.BLOCK_SEQUENCE and reply.detail != NO_BLOCK:
                if current and reply.detail < index:  # one before it was lost on the way
                    self._accept(reply.detail)
                    self._go_back(reply.detail)
                    self._fill(self._now_ms)
                return
            if not self.halted:
                reason = f"block {index} refused: {_reason(reply)}"
                self.halt(reason)
                self._on_error("STREAM_REFUSED", reason)


def _reason(nak: Nak) -> str:
    try:
        return NakReason(nak.reason).name
    except ValueError:
        return f"reason {nak.reason}"
