"""The FIFO's bulk play (the fast path's quiet runs) ends where tick-by-tick play ends: the same
playing block, elapsed ticks, queue and queued time, across block boundaries."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_sim.fifo import BlockFifo
from firmware_sim.scripted import uniform_block


def _fifo(durations: list[int], ticks_per_ms: int) -> BlockFifo:
    fifo = BlockFifo(depth=64, lookahead_ticks=1 << 40, ticks_per_ms=ticks_per_ms)
    for i, duration_ms in enumerate(durations):
        assert fifo.offer(uniform_block(i, 2, duration_ms=duration_ms)) is None
    fifo.pop()
    return fifo


def _state(fifo: BlockFifo) -> tuple[object, ...]:
    current = fifo.current.index if fifo.current is not None else None
    return current, fifo.elapsed, [b.index for b in fifo.queue], fifo.queued_ms


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.integers(1, 40), min_size=1, max_size=12),
    st.integers(1, 4),
    st.lists(st.integers(1, 120), max_size=10),
)
def test_playing_in_bulk_ends_where_playing_tick_by_tick_ends(
    durations: list[int], ticks_per_ms: int, runs: list[int]
) -> None:
    bulk, single = _fifo(durations, ticks_per_ms), _fifo(durations, ticks_per_ms)
    for ticks in runs:
        bulk.play(ticks)
        for _ in range(ticks):  # one tick at a time, popping at each block's end
            single.elapsed += 1
            current = single.current
            if current is not None and single.elapsed >= single.duration_ticks(current):
                single.pop()
        assert _state(bulk) == _state(single)
