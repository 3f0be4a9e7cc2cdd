"""Conformance: block FIFO playback, underrun -> FAULT(UNDERRUN), clean end on the LAST block."""

from __future__ import annotations

import time

import pytest

from hil.benchconfig import BenchConfig
from hil.devicelink import DeviceLink
from stimctl.protocol import (
    BLOCK_FLAG_LAST,
    DeviceInfo,
    Fault,
    Nak,
    NakReason,
    Pause,
    Start,
    State,
)

BLOCKS = 5
BLOCK_MS = 20


def _queue_and_start(link: DeviceLink, *, last: bool = False) -> None:
    link.enter(State.ARMED)
    for i in range(BLOCKS):
        flags = BLOCK_FLAG_LAST if last and i == BLOCKS - 1 else 0
        link.command(link.block(i, duration_ms=BLOCK_MS, flags=flags))
    link.command(Start())


def test_empty_fifo_while_running_latches_underrun(device_link: DeviceLink) -> None:
    _queue_and_start(device_link)
    telemetry = device_link.wait_state(State.FAULT)
    assert telemetry.fault == Fault.UNDERRUN


def test_underrun_leaves_the_output_at_zero(device_link: DeviceLink) -> None:
    _queue_and_start(device_link)
    telemetry = device_link.wait_state(State.FAULT)
    assert all(c.measured_ua == 0 and c.set_ua == 0 for c in telemetry.channels)


@pytest.mark.needs("trace")
def test_underrun_happens_when_the_last_queued_block_ends(
    bench: BenchConfig, device_link: DeviceLink, device_info: DeviceInfo, measure: object
) -> None:
    since = bench.trace_offset()
    _queue_and_start(device_link)
    fault = bench.wait_event(since, "fault", fault="UNDERRUN")
    start = bench.first_event(since, "rx", type="Start")
    assert fault is not None and start is not None
    tick_ms = 1000 / device_info.tick_hz
    played_ms = fault["device_ms"] - start["device_ms"]
    measure(
        "underrun_after_queued_ms",
        played_ms,
        "ms",
        low=BLOCKS * BLOCK_MS - tick_ms,
        high=BLOCKS * BLOCK_MS + 2 * tick_ms,
    )


@pytest.mark.needs("trace")
def test_output_is_zero_in_the_tick_of_the_underrun(
    bench: BenchConfig, device_link: DeviceLink
) -> None:
    since = bench.trace_offset()
    _queue_and_start(device_link)
    fault = bench.wait_event(since, "fault", fault="UNDERRUN")
    assert fault is not None
    zero = bench.wait_output_zero(since, fault["t_ns"])
    assert zero is not None and (zero.get("already") or zero["device_ms"] <= fault["device_ms"])


def test_last_block_ends_the_session_cleanly(device_link: DeviceLink) -> None:
    _queue_and_start(device_link, last=True)
    telemetry = device_link.wait_state(State.IDLE)
    assert telemetry.fault == Fault.NONE


def test_no_block_is_accepted_after_the_last_block(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    device_link.command(device_link.block(0, flags=BLOCK_FLAG_LAST))
    answer = device_link.request(device_link.block(1))
    assert isinstance(answer, Nak) and answer.reason == NakReason.BLOCK_SEQUENCE


def test_start_with_an_empty_fifo_is_refused(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    answer = device_link.request(Start())
    assert isinstance(answer, Nak) and answer.reason == NakReason.BAD_STATE


def test_pause_keeps_the_fifo_without_underrun(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    device_link.enter(State.ARMED)
    for i in range(BLOCKS):
        device_link.command(device_link.block(i, duration_ms=BLOCK_MS))
    device_link.command(Start())
    device_link.command(Pause())
    before = device_link.wait_state(State.PAUSED).fifo_ms
    time.sleep(max(device_info.max_lookahead_ms, BLOCKS * BLOCK_MS) / 1000)
    after = device_link.telemetry()
    assert after.state == State.PAUSED and after.fifo_ms == before


def test_telemetry_reports_the_fifo_level(device_link: DeviceLink) -> None:
    device_link.enter(State.ARMED)
    for i in range(3):
        device_link.command(device_link.block(i, duration_ms=BLOCK_MS))
    telemetry = device_link.telemetry()
    assert (telemetry.fifo_blocks, telemetry.fifo_ms) == (3, 3 * BLOCK_MS)
