"""Conformance: the host watchdog trips to FAULT(COMMS_LOSS) with output zero while output can be
live (ARMED, RUNNING); in IDLE silence ends the session and latches nothing."""

from __future__ import annotations

import time

import pytest

from hil.benchconfig import BenchConfig
from hil.devicelink import DeviceLink, raw_frame
from stimctl.protocol import (
    Ack,
    Arm,
    DeviceInfo,
    Fault,
    Goodbye,
    Heartbeat,
    Nak,
    NakReason,
    State,
    Telemetry,
)


def _fill_fifo(link: DeviceLink, first_index: int) -> int:
    """Queue blocks until the device refuses (FIFO_FULL); returns the next index."""
    index = first_index
    while isinstance(link.request(link.block(index)), Ack):
        index += 1
    return index


def _go_silent(link: DeviceLink, state: State) -> None:
    """Enter ``state`` and stop sending; in RUNNING fill the FIFO first so it outlasts the
    watchdog (when the lookahead allows it)."""
    streamer = link.enter(state)
    if streamer is not None:
        streamer.stop()
        _fill_fifo(link, streamer.index)
    link.stop_keepalive()
    link.command(Heartbeat())  # the last frame the device gets


@pytest.mark.parametrize("state", [State.ARMED, State.RUNNING], ids=lambda s: s.name)
def test_silence_latches_comms_loss(
    device_link: DeviceLink, device_info: DeviceInfo, state: State
) -> None:
    _go_silent(device_link, state)
    telemetry = device_link.wait_state(State.FAULT, timeout=3 * device_info.watchdog_ms / 1000)
    expected = {Fault.COMMS_LOSS}
    if state == State.RUNNING and device_info.max_lookahead_ms <= device_info.watchdog_ms:
        expected.add(Fault.UNDERRUN)  # the FIFO cannot outlast the watchdog on this device
    assert telemetry.fault in expected


def test_silence_in_idle_ends_the_session_without_a_fault(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    _go_silent(device_link, State.IDLE)
    time.sleep(3 * device_info.watchdog_ms / 1000)
    since = device_link.mark()
    time.sleep(3 / device_info.telemetry_hz)
    assert not device_link.messages(Telemetry, since), "telemetry after the session ended"
    answer = device_link.request(Arm(channel_mask=1, shape=0))
    assert isinstance(answer, Nak) and answer.reason == NakReason.NO_SESSION
    device_link.hello()
    telemetry = device_link.telemetry()
    assert (telemetry.state, telemetry.fault) == (State.IDLE, Fault.NONE)


@pytest.mark.needs("trace")
def test_silence_in_idle_ends_the_session_after_watchdog_ms_of_device_time(
    bench: BenchConfig, device_link: DeviceLink, device_info: DeviceInfo, measure: object
) -> None:
    since = bench.trace_offset()
    _go_silent(device_link, State.IDLE)
    ended = bench.wait_event(since, "session", timeout=3 * device_info.watchdog_ms / 1000)
    assert ended is not None and ended["open"] is False
    assert bench.first_event(since, "fault") is None
    last_rx = [
        e for e in bench.trace_events(since)
        if e["event"] == "rx" and e["device_ms"] <= ended["device_ms"]
    ][-1]  # fmt: skip
    tick_ms = 1000 / device_info.tick_hz
    measure(
        "session_end_device_ms[IDLE]",
        ended["device_ms"] - last_rx["device_ms"],
        "ms",
        low=device_info.watchdog_ms - tick_ms,
        high=device_info.watchdog_ms + tick_ms,
    )


@pytest.mark.needs("trace")
@pytest.mark.parametrize("state", [State.ARMED, State.RUNNING], ids=lambda s: s.name)
def test_watchdog_trips_after_watchdog_ms_of_device_time(
    bench: BenchConfig,
    device_link: DeviceLink,
    device_info: DeviceInfo,
    measure: object,
    state: State,
) -> None:
    since = bench.trace_offset()
    _go_silent(device_link, state)
    fault = bench.wait_event(since, "fault", timeout=3 * device_info.watchdog_ms / 1000)
    assert fault is not None and fault["fault"] == "COMMS_LOSS"
    last_rx = [
        e
        for e in bench.trace_events(since)
        if e["event"] == "rx" and e["device_ms"] <= fault["device_ms"]
    ][-1]
    tick_ms = 1000 / device_info.tick_hz
    trip_ms = fault["device_ms"] - last_rx["device_ms"]
    measure(
        f"watchdog_trip_device_ms[{state.name}]",
        trip_ms,
        "ms",
        low=device_info.watchdog_ms - tick_ms,
        high=device_info.watchdog_ms + tick_ms,
    )


@pytest.mark.needs("trace")
def test_output_is_zero_in_the_tick_the_watchdog_trips(
    bench: BenchConfig, device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    since = bench.trace_offset()
    _go_silent(device_link, State.RUNNING)
    fault = bench.wait_event(since, "fault", timeout=3 * device_info.watchdog_ms / 1000)
    assert fault is not None
    zero = bench.wait_output_zero(since, fault["t_ns"])
    assert zero is not None
    assert zero.get("already") or zero["device_ms"] <= fault["device_ms"]


def test_heartbeats_keep_the_session_alive(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    device_link.enter(State.ARMED)  # keep-alive on
    time.sleep(3 * device_info.watchdog_ms / 1000)
    assert device_link.telemetry().state == State.ARMED


def test_frames_with_a_bad_crc_do_not_feed_the_watchdog(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    device_link.enter(State.ARMED)
    device_link.stop_keepalive()
    period = device_info.watchdog_ms / 8000
    deadline = time.monotonic() + 2 * device_info.watchdog_ms / 1000
    while time.monotonic() < deadline:
        device_link.write_raw(raw_frame(Heartbeat.TYPE, device_link.next_seq(), corrupt_crc=True))
        time.sleep(period)
    telemetry = device_link.wait_state(State.FAULT, timeout=device_info.watchdog_ms / 1000)
    assert telemetry.fault == Fault.COMMS_LOSS


def test_refused_frames_still_feed_the_watchdog(
    device_link: DeviceLink, device_info: DeviceInfo
) -> None:
    period = device_info.watchdog_ms / 8000
    deadline = time.monotonic() + 2 * device_info.watchdog_ms / 1000
    while time.monotonic() < deadline:
        assert isinstance(device_link.request(device_link.block(0)), Nak)  # BLOCK in IDLE
        time.sleep(period)
    assert device_link.telemetry().state == State.IDLE


def test_goodbye_stops_the_watchdog(device_link: DeviceLink, device_info: DeviceInfo) -> None:
    device_link.command(Goodbye())
    time.sleep(2 * device_info.watchdog_ms / 1000)
    device_link.hello()
    assert device_link.telemetry().state == State.IDLE
