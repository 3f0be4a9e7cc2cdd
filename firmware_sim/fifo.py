"""Block FIFO: queued blocks, the block now playing, sequence numbering and the lookahead bound."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from stimctl.protocol import BLOCK_FLAG_LAST, NO_BLOCK, Block, FifoLimit, NakReason


def same_settings(a: Block, b: Block) -> bool:
    """Whether ``b`` plays on with ``a``'s channel settings (decoded settings are shared, so
    usually the same object)."""
    return a.channels is b.channels or a.channels == b.channels


@dataclass(slots=True)
class BlockFifo:
    """Blocks waiting to play plus the one playing; times in device ticks."""

    depth: int
    lookahead_ticks: int
    ticks_per_ms: int
    queue: deque[Block] = field(default_factory=deque)
    current: Block | None = None
    elapsed: int = 0  # ticks of ``current`` already played
    expected: int | None = 0  # next block index accepted; None after a LAST block
    last_index: int | None = None
    queued_ms: int = 0  # total duration of ``queue`` (kept as a running sum)

    def clear(self) -> None:
        self.queue.clear()
        self.queued_ms = 0
        self.current = None
        self.elapsed = 0

    def reset(self) -> None:
        """At ARM: empty, next expected index 0."""
        self.clear()
        self.expected = 0
        self.last_index = None

    def duration_ticks(self, block: Block) -> int:
        return block.duration_ms * self.ticks_per_ms

    @property
    def queued_ticks(self) -> int:
        """Remaining time of the playing block plus every queued block."""
        current = self.current
        if current is None:
            return self.queued_ms * self.ticks_per_ms
        return (self.queued_ms + current.duration_ms) * self.ticks_per_ms - self.elapsed

    @property
    def blocks(self) -> int:
        return len(self.queue) + (self.current is not None)

    @property
    def remaining(self) -> int:
        """Ticks until the playing block ends (0 when none is playing)."""
        if self.current is None:
            return 0
        return self.duration_ticks(self.current) - self.elapsed

    def unchanged_ticks(self, enough: int) -> int:
        """Ticks until the settings change or the stream ends: the playing block's remaining
        time plus that of the queued blocks that play on with its settings (0 when none plays),
        counted only until it reaches ``enough`` (the caller needs to know no further)."""
        current = self.current
        if current is None:
            return 0
        ticks = current.duration_ms * self.ticks_per_ms - self.elapsed  # duration_ticks, inlined
        settings = current.channels
        for block in self.queue:  # same_settings(current, block), inlined
            if ticks >= enough or (block.channels is not settings and block.channels != settings):
                break
            ticks += block.duration_ms * self.ticks_per_ms
        return ticks

    def play(self, ticks: int) -> None:
        """``ticks`` ticks of playing, across the boundaries of blocks that play on with the same
        settings (``unchanged_ticks``: the caller stays within it)."""
        elapsed = self.elapsed + ticks
        current = self.current
        while current is not None and elapsed >= current.duration_ms * self.ticks_per_ms:
            elapsed -= current.duration_ms * self.ticks_per_ms
            current = self.pop()
        self.elapsed = elapsed

    @property
    def block_index(self) -> int:
        if self.current is not None:
            return self.current.index
        return self.last_index if self.last_index is not None else 0

    @property
    def next_block(self) -> int:
        """TELEMETRY ``next_block``: every block below this index has been accepted since ARM."""
        if self.expected is not None:
            return self.expected
        return (self.last_index if self.last_index is not None else -1) + 1

    def duplicate(self, block: Block) -> bool:
        """A block already accepted since ARM (its ACK was lost and the host sent it again):
        ACKed again, never queued twice."""
        expected = self.expected
        return block.index < (expected if expected is not None else self.next_block)

    def offer(self, block: Block) -> tuple[NakReason, int] | None:
        """Sequence and capacity checks (limits are checked before this); a block that passes
        them is queued (None), one that does not is refused (NAK reason, detail)."""
        expected = self.expected
        if expected is None or block.index != expected:
            return NakReason.BLOCK_SEQUENCE, NO_BLOCK if expected is None else expected
        queue, current = self.queue, self.current
        if len(queue) + (current is not None) >= self.depth:  # self.blocks
            return NakReason.FIFO_FULL, FifoLimit.DEPTH << 16 | min(self.blocks, 0xFFFF)
        ticks_per_ms, queued_ms, duration_ms = self.ticks_per_ms, self.queued_ms, block.duration_ms
        queued = queued_ms * ticks_per_ms  # queued_ticks, inlined
        if current is not None:
            queued += current.duration_ms * ticks_per_ms - self.elapsed
        if queued + duration_ms * ticks_per_ms > self.lookahead_ticks:
            queued_ms = min(queued // ticks_per_ms, 0xFFFF)
            return NakReason.FIFO_FULL, FifoLimit.LOOKAHEAD << 16 | queued_ms
        queue.append(block)
        self.queued_ms = queued_ms + duration_ms
        self.last_index = index = block.index
        self.expected = None if block.flags & BLOCK_FLAG_LAST else index + 1
        return None

    def pop(self) -> Block | None:
        """Make the next queued block the playing one (None when the queue is empty)."""
        queue = self.queue
        if queue:
            self.current = current = queue.popleft()
            self.queued_ms -= current.duration_ms
        else:
            self.current = current = None
        self.elapsed = 0
        return current
